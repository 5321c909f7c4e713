//! The playout experiment: one leader, a group of followers, skew measured from the audio.
//!
//! The leader runs the real [`PtpMaster`] and [`RtpSender`]; each follower runs the real
//! [`FollowerCore`] (the one a [`Follower`](crate::node::Follower) node runs: its PTP slave,
//! the [`EnvelopeEstimator`], its receiver, its role's stages and its playout) on its own
//! simulated crystal (drift and wander), which also drives its [`VirtualDac`]. It is told
//! its stream as a leader's Welcome tells it, and again when the leader restarts. Clock messages and media
//! cross the simulated network (each follower has its own links, with the preset's delay,
//! jitter, spikes and loss). Every DAC block is recorded with its true emission time, and
//! the [sync meter](crate::measure::meter) then cross-correlates the recordings of the
//! full-range speakers pairwise: the skew is measured from the audio alone, against true
//! time, never from what any follower believes.
//!
//! [`PlayoutScenario::events`] change the run as they change the clock experiment's
//! ([`crate::sim::sync`]), on every follower alike, plus what only a playout sees: a DAC
//! that stalls, a follower without CPU. [`run_playout`] measures as it goes, 2 s at a time,
//! and forgets the audio behind it, so memory stays bounded however long the run; for a
//! day's soak [`Sampling::Sparse`] measures a stretch every few minutes and every event.
//!
//! The standard group ([`PlayoutScenario::preset`]) is a stereo pair (left and right, same
//! model), a subwoofer and a full-range speaker in another room, on crystals at +120, −80,
//! +40 and −150 ppm, playing white noise that is the same on both channels.

use std::fmt::Write as _;
use std::sync::Arc;

use super::events::{Events, Variant};
use super::{ClockModel, Delivery, EventQueue, Link, PathConfig, SimClock, SimRng, SimTime};
use crate::clock::EnvelopeEstimator;
use crate::control::{CodecId, StreamParams};
use crate::core::{FollowerCore, FollowerCoreConfig};
use crate::measure::{
    Capture, MeterConfig, PairSkew, PairwiseSkew, SkewWindow, measure_skew, percentile,
};
use crate::media::sender::{RtpSender, SenderConfig};
use crate::media::{AudioFormat, CodecKind};
use crate::playout::controller::State;
use crate::playout::corrector::CorrectorKind;
use crate::playout::dac::{Crystal, VirtualDac};
use crate::playout::sink::{AudioSink, Block, SharedSink};
use crate::ptp::{ClockIdentity, MasterConfig, PortIdentity, PtpMaster, SlaveConfig};
use crate::sim::sync::{LEADER_EPOCH, json_num, json_str};
use crate::time::{LeaderInstant, LocalInstant, MediaTime, Nanos, TrueInstant};

pub use crate::control::Role;

/// One speaker of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerSpec {
    /// Its name in reports.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its crystal's drift in ppm (its wander is 0.01 ppm/√s).
    pub drift_ppm: f64,
    /// A sink of the caller's own that also gets every block its DAC emits, with the block's
    /// true emission time as `leaves_at_monotonic` (`None`: the recording only). Its
    /// error stops nothing: it is counted in [`SpeakerResult::sink_errors`].
    pub sink: Option<SharedSink>,
}

/// Everything that defines one run of the playout experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayoutScenario {
    /// Name for reports (a preset's name).
    pub name: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// Simulated duration.
    pub duration: Nanos,
    /// Each follower's path (every follower has its own links with this configuration).
    pub path: PathConfig,
    /// The group.
    pub speakers: Vec<SpeakerSpec>,
    /// Leader's target latency: audio captured at `t` is played at `t + latency`.
    pub latency: Nanos,
    /// The drift corrector every follower uses.
    pub corrector: CorrectorKind,
    /// Skew is measured from this time on.
    pub measure_from: Nanos,
    /// What the leader plays.
    pub signal: TestSignal,
    /// What changes during the run (see [`crate::sim::events`]), to every follower alike:
    /// path changes, episodes and outages on each one's links, frequency changes on each
    /// one's crystal, restarts, DAC stalls and starvation of each.
    pub events: Events,
    /// Which stretches the meter measures.
    pub sampling: Sampling,
}

/// Which stretches of a run the meter measures, in 2 s pieces from
/// [`PlayoutScenario::measure_from`] on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Every piece.
    Continuous,
    /// The pieces that start within the first `span` of every `every` (from true time 0),
    /// and every piece within the 10 s after an event: a day's soak then costs the meter what
    /// an hour would, and every event is still seen.
    Sparse {
        /// The period of the measured stretches.
        every: Nanos,
        /// How much of each period is measured.
        span: Nanos,
    },
}

/// What the leader plays in the experiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TestSignal {
    /// White noise at −12 dBFS RMS, the same on both channels: broadband, so the meter
    /// finds one unambiguous correlation peak.
    Noise,
    /// A sine of this frequency (Hz) and peak amplitude (full scale 1.0) on both channels,
    /// for measuring distortion.
    Sine {
        /// Frequency, Hz.
        freq_hz: f64,
        /// Peak amplitude, 0 to 1.
        amplitude: f64,
    },
}

impl PlayoutScenario {
    /// The standard group on a network preset: left +120 ppm, right −80, sub +40, another
    /// room −150; 100 ms latency (150 ms on congested Wi-Fi); skew measured after 5 s.
    pub fn preset(name: &str, seed: u64, duration: Nanos) -> Option<PlayoutScenario> {
        let path = PathConfig::preset(name)?;
        let speaker = |name: &str, role, drift_ppm| SpeakerSpec {
            sink: None,
            name: name.to_string(),
            role,
            drift_ppm,
        };
        Some(PlayoutScenario {
            name: name.to_string(),
            seed,
            duration,
            path,
            speakers: vec![
                speaker("left", Role::Left, 120.0),
                speaker("right", Role::Right, -80.0),
                speaker("sub", Role::Sub, 40.0),
                speaker("other_room", Role::Full, -150.0),
            ],
            latency: Nanos::from_millis(if name == "congested_wifi" { 150 } else { 100 }),
            corrector: CorrectorKind::Sinc,
            measure_from: Nanos::from_secs(5),
            signal: TestSignal::Noise,
            events: Events::none(),
            sampling: Sampling::Continuous,
        })
    }

    /// The standard group on a network preset with the events of a family's `variant` (see
    /// [`crate::sim::events::family`]); its name is `variant@preset`. The `soak` family is
    /// measured sparsely: 10 s every 5 minutes and the 10 s after every event.
    pub fn with_variant(
        preset: &str,
        variant: &Variant,
        seed: u64,
        duration: Nanos,
    ) -> Option<PlayoutScenario> {
        let mut s = PlayoutScenario::preset(preset, seed, duration)?;
        s.name = format!("{}@{preset}", variant.name);
        s.events = variant.events.clone();
        s.path.to_follower.base_delay += variant.longer_path;
        s.path.to_leader.base_delay += variant.longer_path;
        if variant.name.starts_with("soak/") {
            s.sampling = Sampling::Sparse {
                every: Nanos::from_secs(300),
                span: Nanos::from_secs(10),
            };
        }
        Some(s)
    }
}

/// Why the experiment could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlayoutSimError {
    /// A clock or link is invalid.
    #[error(transparent)]
    Sim(#[from] super::SimConfigError),
    /// A speaker's follower could not play the stream (its chain, its playout).
    #[error("follower: {0}")]
    Follower(#[from] crate::core::CoreError),
    /// The media path could not be built.
    #[error("media: {0}")]
    Media(String),
    /// No pair of full-range speakers could be compared.
    #[error("no skew could be measured: {0}")]
    Meter(String),
}

/// One speaker's counters over a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerResult {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its drift.
    pub drift_ppm: f64,
    /// Blocks it could not fill after it first started.
    pub underruns: u64,
    /// Re-alignments after its first start.
    pub realigns: u64,
    /// Media packets lost on its link or concealed.
    pub lost_packets: u64,
    /// Packets dropped as late by its receiver.
    pub late_packets: u64,
    /// For a full-range speaker: its emission time minus the leader's intended instant
    /// for the same audio, measured by the meter against the leader's source, as
    /// (p50 |error|, p99 |error|, mean signed error), µs. Shows a speaker that is off
    /// on its own, which inter-speaker skew cannot.
    pub abs_error_us: Option<(f64, f64, f64)>,
    /// Blocks the speaker's own sink ([`SpeakerSpec::sink`]) refused.
    pub sink_errors: u64,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayoutReport {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Corrector used.
    pub corrector: CorrectorKind,
    /// Median |skew| over every window of every full-range pair, µs.
    pub skew_p50_us: f64,
    /// 99th percentile, µs.
    pub skew_p99_us: f64,
    /// Largest, µs.
    pub skew_max_us: f64,
    /// Underruns over all speakers, after their first start.
    pub underruns: u64,
    /// Re-alignments over all speakers, after their first start.
    pub realigns: u64,
    /// Per pair.
    pub pairs: Vec<PairSkew>,
    /// Per speaker.
    pub speakers: Vec<SpeakerResult>,
    /// Skew over time: (seconds, worst |skew| µs over the pairs in that window).
    pub series: Vec<(f64, f64)>,
    /// 99th percentile of |skew| over the windows of every pair, leaving out those within
    /// a counted re-align's or a stop's fades (1 s before to 1.5 s after it) on either
    /// speaker of the pair, µs.
    pub skew_p99_outside_us: f64,
    /// Largest |skew| so, µs.
    pub skew_max_outside_us: f64,
    /// How each event was ridden out, in time order.
    pub events: Vec<PlayoutEventResult>,
    /// Each simulated hour (the last one maybe partial), when the run was measured as it
    /// went.
    pub hours: Vec<HourResult>,
    /// The process's peak memory at the end of the run (see [`peak_memory_kib`]), KiB.
    pub peak_memory_kib: Option<u64>,
}

/// How the group rode out one event, from the audio. Its window lasts until the next
/// event (or the end of the run).
#[derive(Debug, Clone, PartialEq)]
pub struct PlayoutEventResult {
    /// The event, as [`crate::sim::events::Event::label`] describes it.
    pub label: String,
    /// When it happened, s.
    pub at_s: f64,
    /// When its window ended, s.
    pub until_s: f64,
    /// Largest |skew| of any pair in the first 5 s of the window, µs (NaN: none measured).
    pub max_5s_us: f64,
    /// Largest |skew| of any pair in the rest of the window, µs.
    pub max_after_us: f64,
    /// Counted re-aligns (fade out, start again) of all speakers in the window.
    pub realigns: u64,
    /// Underruns of all speakers in the window.
    pub underruns: u64,
}

/// One simulated hour of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct HourResult {
    /// Which hour, from 0.
    pub hour: u32,
    /// 99th percentile of |skew| over every pair's windows in the hour, µs.
    pub p99_us: f64,
    /// Largest, µs.
    pub max_us: f64,
    /// Windows measured in it.
    pub windows: usize,
    /// Counted re-aligns of all speakers in it.
    pub realigns: u64,
    /// The process's peak memory when the hour ended, KiB.
    pub peak_memory_kib: Option<u64>,
}

const RATE: u32 = 48_000;
const CHANNELS: usize = 2;
const PTIME_MS: i64 = 5;
const BLOCK: usize = 480;
const LEADER: u32 = 0;

enum Kind {
    PtpToLeader(usize),
    PtpToFollower(usize),
    Media(usize),
}

struct Packet {
    kind: Kind,
    data: Vec<u8>,
}

/// One simulated speaker: what the simulator keeps around the [`FollowerCore`] it drives
/// (its crystal, its links, its DAC, its recording and the disruptions it saw). The
/// follower itself is the core; nothing here decides what to play.
struct Speaker {
    spec: SpeakerSpec,
    clock: SimClock,
    /// The follower itself: the same core a node runs.
    core: FollowerCore<u32>,
    /// The slave's last deadline and the true time it falls due at.
    wake: Option<(LocalInstant, SimTime)>,
    up: Link,
    down: Link,
    media: Link,
    dac: VirtualDac,
    out: Vec<f32>,
    /// Channel 0 of what the DAC emitted: all of it for [`run_group`], the last seconds of
    /// it (full-range speakers only) when the run is measured as it goes.
    rec: Recording,
    next_render: SimTime,
    started_at: Option<u64>,
    first_realigns: u64,
    /// True times (ns) of the counted re-aligns (starts after the first one)...
    realign_at: Vec<i64>,
    /// ...of the underruns after the first start...
    underrun_at: Vec<i64>,
    /// ...and of every block at which playing stopped (a fade-out, an underrun, a lost
    /// estimate): with the re-aligns, what the skew outside re-align fades leaves out.
    stop_at: Vec<i64>,
    /// Until when the follower gets no CPU, and what reached it meanwhile.
    starved_until: SimTime,
    backlog: Vec<Packet>,
    /// Receiver counters of the receivers a restart threw away (lost, late).
    rx_before: (u64, u64),
    /// True times (ns) of the blocks rendered silent for want of audio or of a settled
    /// estimate, or at which the receiver had concealed more audio (a lost packet, a
    /// stream run dry) than by the block before; and that count. Kept only where the
    /// whole run's audio is (on a lossy link it grows with the run: a measured run, the
    /// soak, keeps its memory flat).
    quiet_at: Option<Vec<i64>>,
    concealed_seen: u64,
    /// The caller's sink, and the blocks it refused.
    sink: Option<SharedSink>,
    sink_errors: u64,
}

impl Speaker {
    /// The true time at which the slave's timer falls due. The answer for a reading does not
    /// change, and finding it walks the crystal's wander from now on, so the last one is
    /// kept: the loop asks every follower at every step.
    fn slave_wake(&mut self) -> Option<SimTime> {
        let t = self.core.poll_timeout()?;
        match self.wake {
            Some((reading, at)) if reading == t => Some(at),
            _ => {
                let at = self.clock.time_of(t.as_nanos());
                self.wake = Some((t, at));
                Some(at)
            }
        }
    }

    fn starved(&self, now: SimTime) -> bool {
        now < self.starved_until
    }

    /// Handles a datagram from the leader that reached it at `now`.
    fn handle(&mut self, kind: &Kind, data: &[u8], now: SimTime) {
        let local = LocalInstant::from_nanos(self.clock.reading(now));
        match kind {
            Kind::PtpToFollower(_) => {
                let _ = self.core.handle_ptp(LEADER, local, data);
            }
            Kind::Media(_) => self.core.handle_rtp(local, data),
            Kind::PtpToLeader(_) => {}
        }
    }
}

/// The leader's signal generator (also the leader node's built-in test signal).
#[derive(Debug, Clone)]
pub(crate) struct Source {
    signal: TestSignal,
    state: u64,
    frame: u64,
    rate: u32,
}

impl Source {
    /// `signal` at `rate` Hz; `seed` picks the noise.
    pub(crate) fn new(signal: TestSignal, seed: u64, rate: u32) -> Source {
        Source {
            signal,
            state: 0x9E37_79B9_7F4A_7C15 ^ seed,
            frame: 0,
            rate: rate.max(1),
        }
    }

    /// The next sample (the same on every channel).
    pub(crate) fn next(&mut self) -> f32 {
        let n = self.frame;
        self.frame += 1;
        match self.signal {
            TestSignal::Noise => {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                // Uniform in ±0.433: −12 dBFS RMS.
                ((self.state >> 40) as f64 / (1u64 << 24) as f64 - 0.5) as f32 * 0.866
            }
            TestSignal::Sine { freq_hz, amplitude } => {
                let cycles = (n as f64 * freq_hz / f64::from(self.rate)).fract();
                (amplitude * (std::f64::consts::TAU * cycles).sin()) as f32
            }
        }
    }
}

/// What a group run recorded: the leader's source and each speaker's output, with true
/// times. [`run_group`] returns it; [`run_playout`] measures it.
#[derive(Debug, Clone)]
pub struct GroupRun {
    /// The leader's source, channel 0, as played: frame `k` is meant to leave every DAC
    /// at true time `source_first + k / 48000 s`.
    pub source: Vec<f32>,
    /// True time at which the source's frame 0 is meant to be played.
    pub source_first: TrueInstant,
    /// Each speaker, in the scenario's order.
    pub speakers: Vec<SpeakerRun>,
}

/// One speaker's recording and counters.
#[derive(Debug, Clone)]
pub struct SpeakerRun {
    /// Its counters (the absolute error is filled in by [`run_playout`]).
    pub result: SpeakerResult,
    /// Channel 0 of everything its DAC emitted.
    pub samples: Vec<f32>,
    /// (index of the block's first frame in `samples`, true emission time) of every
    /// block.
    pub timeline: Vec<(u64, TrueInstant)>,
    /// True render times (ns), in order, of the blocks at which this speaker's audio was
    /// not the leader's played through: a counted re-align (a fade out and in), an
    /// underrun, a stop, silence after its first start (nothing to play, or no settled
    /// estimate), or audio the receiver concealed (a lost packet, a stream run dry). What a measure of the
    /// corrector's sound leaves out. Silence and concealment are recorded only in a whole
    /// run ([`run_group`]), which keeps all the audio anyway; a measured run
    /// ([`run_playout`]) records only re-aligns, underruns and stops, so that its memory
    /// stays flat over a day.
    pub disrupted_at: Vec<TrueInstant>,
}

impl SpeakerRun {
    /// The recording between true times `from` and `to`, widened to whole blocks,
    /// as a meter capture at the true emission rate of that stretch; `None` where the
    /// recording does not cover it, or its timeline jumps within it (a stalled DAC).
    pub fn capture(&self, from: TrueInstant, to: TrueInstant) -> Option<Capture<'_>> {
        capture_of(
            &self.samples,
            0,
            &self.timeline,
            from.as_nanos(),
            to.as_nanos(),
        )
    }
}

/// A true time as ns: a timeline's times, raw (a run's own recording) or typed (a
/// [`SpeakerRun`]'s).
trait Nanos64: Copy {
    fn ns(self) -> i64;
}

impl Nanos64 for i64 {
    fn ns(self) -> i64 {
        self
    }
}

impl Nanos64 for TrueInstant {
    fn ns(self) -> i64 {
        self.as_nanos()
    }
}

/// `samples` (frame `first_frame` on) between true times `from` and `to` as a capture.
fn capture_of<'a, T: Nanos64>(
    samples: &'a [f32],
    first_frame: u64,
    tl: &[(u64, T)],
    from: i64,
    to: i64,
) -> Option<Capture<'a>> {
    let i0 = tl
        .partition_point(|&(_, t)| t.ns() <= from)
        .checked_sub(1)?;
    let i1 = tl.partition_point(|&(_, t)| t.ns() < to);
    if i1 >= tl.len() || i1 <= i0 {
        return None;
    }
    let (k0, t0) = (tl[i0].0, tl[i0].1.ns());
    let (k1, t1) = (tl[i1].0, tl[i1].1.ns());
    let (a, b) = ((k0 - first_frame) as usize, (k1 - first_frame) as usize);
    if b > samples.len() || t1 <= t0 {
        return None;
    }
    let rate_hz = (k1 - k0) as f64 * 1e9 / (t1 - t0) as f64;
    // Crystals run within a few hundred ppm; a stretch that seems 0.2% slow holds a stall,
    // and one rate for all of it would be a lie.
    if (rate_hz / f64::from(RATE) - 1.0).abs() > 2e-3 {
        return None;
    }
    Some(Capture {
        samples: &samples[a..b],
        channels: 1,
        channel: 0,
        first: TrueInstant::from_nanos(t0),
        rate_hz,
    })
}

/// A speaker's output as the meter takes it: channel 0 and the true emission time of every
/// block. A run measured as it goes forgets what it has measured, so a day costs the
/// memory of a few seconds.
#[derive(Debug, Default)]
struct Recording {
    /// Frames kept at most (a whole run's, for [`run_group`]); `None`: no bound, the meter
    /// trims it.
    limit: Option<usize>,
    samples: Vec<f32>,
    /// DAC frame index of `samples[0]`.
    first_frame: u64,
    /// (DAC frame index, true emission ns) of every block kept.
    timeline: Vec<(u64, i64)>,
}

impl Recording {
    fn push(&mut self, first_frame: u64, true_ns: i64, block: impl Iterator<Item = f32>) {
        if self.limit.is_some_and(|n| self.samples.len() + BLOCK > n) {
            return;
        }
        if self.timeline.is_empty() {
            self.first_frame = first_frame;
        }
        self.timeline.push((first_frame, true_ns));
        self.samples.extend(block);
    }

    fn capture(&self, from: i64, to: i64) -> Option<Capture<'_>> {
        capture_of(&self.samples, self.first_frame, &self.timeline, from, to)
    }

    /// Forgets what left before true time `before`, keeping the block that holds it.
    fn trim(&mut self, before: i64) {
        let i = self
            .timeline
            .partition_point(|&(_, t)| t <= before)
            .saturating_sub(1);
        if i == 0 {
            return;
        }
        let k = self.timeline[i].0;
        self.samples.drain(..(k - self.first_frame) as usize);
        self.timeline.drain(..i);
        self.first_frame = k;
    }
}

/// The leader's source as recorded: frame `first + i` of the stream is `samples[i]`.
#[derive(Debug, Default)]
struct SourceRecording {
    samples: Vec<f32>,
    first: u64,
    first_ns: i64,
}

impl SourceRecording {
    fn capture(&self, from: i64, to: i64) -> Option<Capture<'_>> {
        let frame = |t: i64| self.frame_at(t);
        let k0 = frame(from).max(self.first);
        let k1 = frame(to).min(self.first + self.samples.len() as u64);
        (k1 > k0).then(|| Capture {
            samples: &self.samples[(k0 - self.first) as usize..(k1 - self.first) as usize],
            channels: 1,
            channel: 0,
            first: TrueInstant::from_nanos(self.first_ns) + frame_offset(k0),
            rate_hz: f64::from(RATE),
        })
    }

    /// The stream frame in progress at true time `t` (0 before the first).
    fn frame_at(&self, t: i64) -> u64 {
        let span = Nanos(t - self.first_ns).max(Nanos::ZERO);
        MediaTime::from_nanos_floor(span, RATE).ticks() as u64
    }

    fn trim(&mut self, before: i64) {
        let k = self.frame_at(before);
        if k > self.first {
            let n = ((k - self.first) as usize).min(self.samples.len());
            self.samples.drain(..n);
            self.first += n as u64;
        }
    }
}

/// How long after the stream's frame 0 frame `k` is meant to leave (rounded down).
fn frame_offset(k: u64) -> Nanos {
    MediaTime::new(i64::try_from(k).unwrap_or(i64::MAX), RATE).to_nanos_floor()
}

/// Measures a run as it goes, one 2 s piece at a time, and forgets the audio behind it.
struct Meter {
    /// Start (ns) of the next piece to measure, and where pieces end.
    next: i64,
    end: i64,
    sampling: Sampling,
    /// Event times, ns: the 10 s after each are measured however sparse the sampling.
    events: Vec<i64>,
    /// Full-range speakers, in order.
    full: Vec<usize>,
    /// Each full-range speaker against the source (pair `x`: the source and `full[x]`).
    abs: PairwiseSkew,
    /// Each pair of full-range speakers: the skew windows, and the pair's speakers
    /// (indices into `full`).
    pairs: PairwiseSkew,
    pair_of: Vec<(usize, usize)>,
    /// Peak memory (KiB) at the end of each simulated hour.
    hourly_peak_kib: Vec<Option<u64>>,
}

/// Length of a measured piece (each piece's rate from its own stretch of the timeline, so
/// crystal wander does not bend it) and the search margin around it.
const PIECE_NS: i64 = 2_000_000_000;
const MARGIN_NS: i64 = 10_000_000;

impl Meter {
    fn new(s: &PlayoutScenario) -> Meter {
        let full: Vec<usize> = (0..s.speakers.len())
            .filter(|&i| s.speakers[i].role.full_range())
            .collect();
        let name = |x: usize| s.speakers[full[x]].name.as_str();
        let mut abs = PairwiseSkew::new();
        let mut pairs = PairwiseSkew::new();
        let mut pair_of = Vec::new();
        for x in 0..full.len() {
            abs.add_pair("source", name(x));
            for y in x + 1..full.len() {
                pairs.add_pair(name(x), name(y));
                pair_of.push((x, y));
            }
        }
        Meter {
            next: s.measure_from.as_nanos(),
            end: s.duration.as_nanos() - 200_000_000,
            sampling: s.sampling,
            events: s.events.events.iter().map(|e| e.at.as_nanos()).collect(),
            abs,
            full,
            pairs,
            pair_of,
            hourly_peak_kib: Vec::new(),
        }
    }

    /// Whether the piece from `t` is measured.
    fn wanted(&self, t: i64) -> bool {
        match self.sampling {
            Sampling::Continuous => true,
            Sampling::Sparse { every, span } => {
                let every = every.as_nanos().max(PIECE_NS);
                t.rem_euclid(every) < span.as_nanos()
                    || self
                        .events
                        .iter()
                        .any(|&e| t + PIECE_NS > e && t < e + 10_000_000_000)
            }
        }
    }

    /// Measures every piece that all speakers have emitted by true time `now`, then
    /// forgets the audio before the next one.
    fn advance(&mut self, now: i64, source: &mut SourceRecording, followers: &mut [Speaker]) {
        // Blocks are rendered 10 ms before they leave; 50 ms covers a piece's margin.
        while self.next + PIECE_NS <= self.end
            && now >= self.next + PIECE_NS + MARGIN_NS + 50_000_000
        {
            let t = self.next;
            if self.wanted(t) {
                for (x, &i) in self.full.iter().enumerate() {
                    let w = piece(
                        |f, to| source.capture(f, to),
                        |f, to| followers[i].rec.capture(f, to),
                        t,
                    );
                    self.abs.extend(x, w);
                }
                for (p, &(x, y)) in self.pair_of.iter().enumerate() {
                    let (a, b) = (&followers[self.full[x]].rec, &followers[self.full[y]].rec);
                    let w = piece(|f, to| a.capture(f, to), |f, to| b.capture(f, to), t);
                    self.pairs.extend(p, w);
                }
            }
            self.next += PIECE_NS;
        }
        let keep = self.next - MARGIN_NS - 20_000_000;
        source.trim(keep);
        for f in followers.iter_mut() {
            f.rec.trim(keep);
        }
    }
}

/// The skew windows of `b` against `a` in the piece from `t`.
fn piece<'a>(
    a: impl Fn(i64, i64) -> Option<Capture<'a>>,
    b: impl Fn(i64, i64) -> Option<Capture<'a>>,
    t: i64,
) -> impl Iterator<Item = (f64, f64)> {
    let windows = match (
        a(t, t + PIECE_NS),
        b(t - MARGIN_NS, t + PIECE_NS + MARGIN_NS),
    ) {
        (Some(ca), Some(cb)) => measure_skew(&ca, &cb, &METER).map_or(Vec::new(), |r| r.windows),
        _ => Vec::new(),
    };
    windows
        .into_iter()
        .map(|w: SkewWindow| (w.t.as_nanos() as f64 * 1e-9, w.skew_us))
}

/// The process's peak resident memory so far (`VmHWM` of `/proc/self/status`), KiB; `None`
/// where there is no such file (not Linux).
pub fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the experiment and measures the skew from the audio as it goes (see
/// [`PlayoutScenario::sampling`]); memory stays bounded however long the run.
pub fn run_playout(s: &PlayoutScenario) -> Result<PlayoutReport, PlayoutSimError> {
    let mut meter = Meter::new(s);
    let run = simulate(s, Some(&mut meter))?;
    report(s, run, meter)
}

/// Runs the experiment and returns what the DACs emitted, unmeasured: the whole recording,
/// which for long runs is large (4 bytes per frame per full-range speaker).
pub fn run_group(s: &PlayoutScenario) -> Result<GroupRun, PlayoutSimError> {
    let (run, _) = simulate(s, None)?;
    Ok(run)
}

/// A timed action of the driver itself (not of a clock or link).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Action {
    LeaderRestart,
    FollowerRestart,
    DacStall(Nanos),
    Starve(Nanos),
}

/// What followers did over a run, apart from their recordings.
struct Disruptions {
    /// Per speaker: counted re-aligns, underruns and stops (true ns).
    realign_at: Vec<Vec<i64>>,
    underrun_at: Vec<Vec<i64>>,
    stop_at: Vec<Vec<i64>>,
}

fn simulate(
    s: &PlayoutScenario,
    mut meter: Option<&mut Meter>,
) -> Result<(GroupRun, Disruptions), PlayoutSimError> {
    let rng = SimRng::new(s.seed);
    let split = s.events.split();
    let format = AudioFormat::new(RATE, CHANNELS as u16).expect("48 kHz stereo");
    let mut leader_model = ClockModel::ideal();
    leader_model.offset += LEADER_EPOCH;
    leader_model
        .steps
        .extend(split.leader_steps.iter().copied());
    leader_model
        .frequency
        .extend(split.leader_frequency.iter().copied());
    let mut leader = SimClock::new(leader_model, rng.fork(2))?;
    let master_config = MasterConfig::new(ClockIdentity([0x00, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1]));
    let mut master = PtpMaster::new(master_config);
    let mut sender_cfg = SenderConfig::new(CodecKind::L24, format, 0x51AB_0001);
    sender_cfg.payload_type = 96;
    let new_sender =
        |cfg: SenderConfig| RtpSender::new(cfg).map_err(|e| PlayoutSimError::Media(e.to_string()));
    let mut sender = new_sender(sender_cfg.clone())?;
    // What a follower is told it plays, as a leader's Welcome tells it.
    let stream_of = |ssrc: u32| StreamParams {
        codec: CodecId::from_kind(CodecKind::L24),
        sample_rate: RATE,
        channels: CHANNELS as u8,
        payload_type: 96,
        ssrc,
        rtp_port: 0,
        multicast: None,
        ptp_event_port: 0,
        ptp_general_port: 0,
        target_latency: s.latency,
        ptime: Nanos::from_millis(PTIME_MS),
        // The simulated leader runs no control session, so no session keys.
        protection: crate::control::Protection::NONE,
    };
    let mut stream = stream_of(sender_cfg.ssrc);
    let keep_all = meter.is_none();

    let mut followers = Vec::new();
    for (i, spec) in s.speakers.iter().enumerate() {
        let fork = rng.fork(100 + i as u64);
        let mut model = ClockModel::random_follower(&mut fork.fork(1));
        model.drift_ppm = spec.drift_ppm;
        model.offset += LEADER_EPOCH;
        model
            .frequency
            .extend(split.follower_frequency.iter().copied());
        let clock = SimClock::new(model, fork.fork(2))?;
        let port = PortIdentity {
            clock_identity: ClockIdentity([0x02, 0, 0, 0xff, 0xfe, 0, 0, 2 + i as u8]),
            port_number: 1,
        };
        master.add_slave(
            1 + i as u32,
            LeaderInstant::from_nanos(leader.reading(SimTime(0))),
        );
        let mut config = FollowerCoreConfig::new(SlaveConfig::new(port));
        config.estimator = Arc::new(|| Box::new(EnvelopeEstimator::default()));
        config.corrector = s.corrector;
        config.block_frames = BLOCK;
        let mut core = FollowerCore::new(config, spec.role);
        core.set_stream(&stream, spec.role)?;
        let channels = core.channels_out();
        let mut rec = Recording::default();
        // A whole run keeps every speaker's output; a measured one only what the meter
        // compares.
        if keep_all {
            let seconds = s.duration.as_secs_f64().max(0.0);
            let len = (seconds * f64::from(RATE) * 1.001) as usize + BLOCK;
            rec.limit = Some(len);
            rec.samples.reserve_exact(len);
            rec.timeline.reserve_exact(len / BLOCK + 1);
        }
        followers.push(Speaker {
            spec: spec.clone(),
            clock,
            core,
            wake: None,
            up: Link::with_changes(s.path.to_leader, fork.fork(3), &split.to_leader)?,
            down: Link::with_changes(s.path.to_follower, fork.fork(4), &split.to_follower)?,
            media: Link::with_changes(s.path.to_follower, fork.fork(5), &split.to_follower)?,
            dac: VirtualDac::new(RATE, channels),
            out: vec![0.0; BLOCK * channels],
            rec,
            // Every DAC starts half a second in, rendering a block ahead of emission.
            next_render: SimTime(500_000_000),
            started_at: None,
            first_realigns: 0,
            realign_at: Vec::new(),
            underrun_at: Vec::new(),
            stop_at: Vec::new(),
            starved_until: SimTime(0),
            backlog: Vec::new(),
            rx_before: (0, 0),
            quiet_at: keep_all.then(Vec::new),
            concealed_seen: 0,
            sink: spec.sink.clone(),
            sink_errors: 0,
        });
    }

    let mut actions: Vec<(SimTime, Action)> = Vec::new();
    actions.extend(
        split
            .leader_restarts
            .iter()
            .map(|&t| (t, Action::LeaderRestart)),
    );
    actions.extend(
        split
            .follower_restarts
            .iter()
            .map(|&t| (t, Action::FollowerRestart)),
    );
    actions.extend(
        split
            .dac_stalls
            .iter()
            .map(|&(t, d)| (t, Action::DacStall(d))),
    );
    actions.extend(
        split
            .starvation
            .iter()
            .map(|&(t, d)| (t, Action::Starve(d))),
    );
    actions.sort_by_key(|a| a.0);
    let mut actions = actions.into_iter().peekable();
    let mut leader_restarts = 0u8;

    let end = SimTime(s.duration.as_nanos());
    let mut queue: EventQueue<Packet> = EventQueue::new();
    let mut source = Source::new(s.signal, s.seed, RATE);
    let mut source_rec = SourceRecording {
        // Chunk 0 is captured at true time 0 and played `latency` later.
        first_ns: s.latency.as_nanos(),
        ..SourceRecording::default()
    };
    if keep_all {
        let len = (s.duration.as_secs_f64().max(0.0) * f64::from(RATE)) as usize + 1;
        source_rec.samples.reserve_exact(len);
    }
    let chunk = (RATE as i64 * PTIME_MS / 1000) as usize;
    let mut pcm = vec![0f32; chunk * CHANNELS];
    // The leader captures chunk k during [k, k+1) × ptime and sends it at the end of it.
    let mut next_chunk = 1i64;
    let media_at = |k: i64| SimTime(k * PTIME_MS * 1_000_000);
    let mut last = SimTime(0);
    let mut master_woken = SimTime(0);
    let mut next_hour = SimTime(3_600_000_000_000);

    loop {
        // A driver wakes its master at least once a Sync interval, so that a leader clock
        // set back does not silence it for as long as the step.
        let master_wake = master.poll_timeout().map(|t| {
            let cap = master_woken + master_config.sync_interval;
            leader.time_of(t.as_nanos()).max(last).min(cap.max(last))
        });
        let mut now = media_at(next_chunk);
        for t in [master_wake, queue.peek_time(), actions.peek().map(|a| a.0)]
            .into_iter()
            .flatten()
        {
            now = now.min(t.max(last));
        }
        for f in followers.iter_mut() {
            if f.starved(last) {
                now = now.min(f.starved_until);
            } else if let Some(t) = f.slave_wake() {
                now = now.min(t.max(last));
            }
            now = now.min(f.next_render);
        }
        if now > end {
            break;
        }
        last = now;
        let leader_now = LeaderInstant::from_nanos(leader.reading(now));

        while let Some((_, action)) = actions.next_if(|a| a.0 <= now) {
            match action {
                Action::LeaderRestart => {
                    // A new process: a new clock identity and a new SSRC, sequence numbers
                    // from zero, every follower served from scratch.
                    leader_restarts = leader_restarts.wrapping_add(1);
                    let mut config = master_config;
                    config.port.clock_identity.0[7] ^= leader_restarts;
                    config.port.clock_identity.0[6] ^= 0x5a;
                    master = PtpMaster::new(config);
                    for i in 0..followers.len() {
                        master.add_slave(1 + i as u32, leader_now);
                    }
                    let mut cfg = sender_cfg.clone();
                    cfg.ssrc ^= 0x0101_0000 * u32::from(leader_restarts);
                    stream = stream_of(cfg.ssrc);
                    sender = new_sender(cfg)?;
                    // Each follower joins the new leader, and is told its stream.
                    for f in followers.iter_mut() {
                        f.core.set_stream(&stream, f.spec.role)?;
                    }
                }
                Action::FollowerRestart => {
                    // Its estimator, slave and receiver start from nothing; its crystal and
                    // DAC run on, and it joins again as a new follower.
                    for (i, f) in followers.iter_mut().enumerate() {
                        let st = f.core.receiver_stats().unwrap_or_default();
                        f.rx_before = (f.rx_before.0 + st.lost, f.rx_before.1 + st.late);
                        f.core.reset_clock();
                        f.core.set_stream(&stream, f.spec.role)?;
                        f.backlog.clear();
                        master.add_slave(1 + i as u32, leader_now);
                    }
                }
                Action::DacStall(d) => {
                    for f in followers.iter_mut() {
                        f.dac.stall(d);
                        if let Some(next) = f.dac.next_local() {
                            let at = f.clock.time_of((next - Nanos::from_millis(10)).as_nanos());
                            f.next_render = at.max(now);
                        }
                    }
                }
                Action::Starve(d) => {
                    // What starves is the network side: datagrams wait, unhandled, and the
                    // slave's timers with them. The audio callback runs at real-time
                    // priority and still renders, from what the FIFO holds.
                    for f in followers.iter_mut() {
                        f.starved_until = f.starved_until.max(now + d);
                    }
                }
            }
        }
        // A follower given the CPU back handles what waited for it, in arrival order.
        for f in followers.iter_mut() {
            if !f.starved(now) && !f.backlog.is_empty() {
                for pkt in std::mem::take(&mut f.backlog) {
                    f.handle(&pkt.kind, &pkt.data, now);
                }
            }
        }

        // Media: the leader finishes a chunk and sends it.
        if now == media_at(next_chunk) {
            for frame in pcm.chunks_exact_mut(CHANNELS) {
                let x = source.next();
                frame.fill(x);
                if !keep_all || source_rec.samples.len() < source_rec.samples.capacity() {
                    source_rec.samples.push(x);
                }
            }
            // The chunk's first frame was captured one ptime ago, on the leader's clock.
            let at = leader_now - Nanos::from_millis(PTIME_MS) + s.latency;
            let mut out: Vec<Vec<u8>> = Vec::new();
            sender
                .handle_pcm(&pcm, at)
                .map_err(|e| PlayoutSimError::Media(e.to_string()))?;
            while let Some(p) = sender.poll_transmit() {
                out.push(p.to_vec());
            }
            for p in out {
                for (i, f) in followers.iter_mut().enumerate() {
                    schedule(
                        &mut queue,
                        f.media.transmit(now),
                        Packet {
                            kind: Kind::Media(i),
                            data: p.clone(),
                        },
                    );
                }
            }
            next_chunk += 1;
        }

        // Packets due now.
        while queue.peek_time().is_some_and(|t| t <= now) {
            let Some((_, pkt)) = queue.pop() else { break };
            match pkt.kind {
                Kind::PtpToLeader(i) => {
                    let _ = master.handle_receive(1 + i as u32, leader_now, &pkt.data);
                }
                Kind::PtpToFollower(i) | Kind::Media(i) => {
                    let f = &mut followers[i];
                    if f.starved(now) {
                        f.backlog.push(pkt);
                    } else {
                        f.handle(&pkt.kind, &pkt.data, now);
                    }
                }
            }
        }

        if master_wake.is_some_and(|t| t <= now) {
            master.handle_timeout(leader_now);
            master_woken = now;
        }
        while let Some(tx) = master.poll_transmit(leader_now) {
            let i = (tx.to - 1) as usize;
            if let Some(f) = followers.get_mut(i) {
                let data = tx.payload().to_vec();
                schedule(
                    &mut queue,
                    f.down.transmit(now),
                    Packet {
                        kind: Kind::PtpToFollower(i),
                        data,
                    },
                );
            }
        }

        for (i, f) in followers.iter_mut().enumerate() {
            if !f.starved(now) {
                follow(f, i, now, &mut queue);
            }
            if f.next_render == now {
                render(f, now);
            }
        }
        if let Some(m) = meter.as_deref_mut() {
            m.advance(now.as_nanos(), &mut source_rec, &mut followers);
            if now >= next_hour {
                m.hourly_peak_kib.push(peak_memory_kib());
                next_hour += Nanos::from_secs(3600);
            }
        }
    }
    if let Some(m) = meter {
        m.advance(i64::MAX, &mut source_rec, &mut followers);
        if m.hourly_peak_kib.len() < (end.as_nanos() as f64 / 3.6e12).ceil() as usize {
            m.hourly_peak_kib.push(peak_memory_kib());
        }
    }

    let disruptions = Disruptions {
        realign_at: followers.iter().map(|f| f.realign_at.clone()).collect(),
        underrun_at: followers.iter().map(|f| f.underrun_at.clone()).collect(),
        stop_at: followers.iter().map(|f| f.stop_at.clone()).collect(),
    };
    Ok((
        GroupRun {
            source: source_rec.samples,
            source_first: TrueInstant::from_nanos(source_rec.first_ns),
            speakers: followers.into_iter().map(Speaker::finish).collect(),
        },
        disruptions,
    ))
}

/// Follower `f`'s clock side at `now`: its slave's timer, what it sends, the exchanges it
/// completed, and its estimate.
fn follow(f: &mut Speaker, i: usize, now: SimTime, queue: &mut EventQueue<Packet>) {
    let local = LocalInstant::from_nanos(f.clock.reading(now));
    if f.slave_wake().is_some_and(|t| t <= now) {
        f.core.handle_timeout(local);
    }
    while let Some(tx) = f.core.poll_transmit(local) {
        let data = tx.payload().to_vec();
        schedule(
            queue,
            f.up.transmit(now),
            Packet {
                kind: Kind::PtpToLeader(i),
                data,
            },
        );
    }
}

impl Speaker {
    fn finish(self) -> SpeakerRun {
        let r = self.core.playout_report().unwrap_or_default();
        let st = self.core.receiver_stats().unwrap_or_default();
        let base = self.rec.timeline.first().map_or(0, |t| t.0);
        SpeakerRun {
            result: SpeakerResult {
                name: self.spec.name,
                role: self.spec.role,
                drift_ppm: self.spec.drift_ppm,
                underruns: r.underruns,
                realigns: r.realigns.saturating_sub(self.first_realigns),
                lost_packets: self.rx_before.0 + st.lost,
                late_packets: self.rx_before.1 + st.late,
                abs_error_us: None,
                sink_errors: self.sink_errors,
            },
            disrupted_at: {
                let mut at: Vec<i64> = [
                    self.realign_at,
                    self.underrun_at,
                    self.stop_at,
                    self.quiet_at.unwrap_or_default(),
                ]
                .concat();
                at.sort_unstable();
                at.into_iter().map(TrueInstant::from_nanos).collect()
            },
            samples: self.rec.samples,
            timeline: self
                .rec
                .timeline
                .into_iter()
                .map(|(k, t)| (k - base, TrueInstant::from_nanos(t)))
                .collect(),
        }
    }
}

/// Renders one DAC block for follower `f` at true time `now` and schedules the next.
fn render(f: &mut Speaker, now: SimTime) {
    let local = LocalInstant::from_nanos(f.clock.reading(now));
    if !f.dac.started() {
        // The first block leaves one block after this render.
        f.dac.start(local + Nanos::from_millis(10));
    }
    let dac_next = f.dac.next_local().expect("started");
    let before = f.core.playout_report().unwrap_or_default();
    let rendered = f
        .core
        .render(local, dac_next, f.dac.frames_emitted(), &mut f.out);
    let report = rendered.report.unwrap_or_default();
    let t_ns = now.as_nanos();
    if f.started_at.is_none() && report.realigns > 0 {
        f.started_at = Some(f.dac.frames_emitted());
        f.first_realigns = report.realigns;
    } else if f.started_at.is_some() {
        if report.realigns > before.realigns {
            f.realign_at.push(t_ns);
        }
        if report.underruns > before.underruns {
            f.underrun_at.push(t_ns);
        }
        if before.state != State::Idle && report.state == State::Idle {
            f.stop_at.push(t_ns);
        }
    }
    let st = f.core.receiver_stats().unwrap_or_default();
    let concealed = st.concealed_frames + st.dry_frames;
    // (A restarted follower's new receiver counts from zero. Before the first start the
    // speaker is silent anyway, and from it on the start's glide is to be heard.)
    let idle = f.started_at.is_some() && report.state == State::Idle;
    if concealed != f.concealed_seen || idle {
        f.concealed_seen = concealed;
        if let Some(at) = &mut f.quiet_at {
            at.push(t_ns);
        }
    }
    let channels = f.dac.channels();
    let emission = f
        .dac
        .emit(&f.out, &mut f.clock as &mut dyn Crystal)
        .expect("started");
    if let Some(sink) = f.sink.as_mut() {
        let block = Block {
            samples: &f.out,
            channels,
            rate: RATE,
            first_frame: emission.first_frame,
            leaves_at: emission.local,
            leaves_at_monotonic: emission.true_time,
        };
        if sink.write(&block).is_err() {
            f.sink_errors += 1;
        }
    }
    if f.spec.role.full_range() || f.rec.limit.is_some() {
        f.rec.push(
            emission.first_frame,
            emission.true_time.as_nanos(),
            f.out.chunks_exact(channels).map(|frame| frame[0]),
        );
    }
    // The next block renders one block before it leaves.
    let next_local = f.dac.next_local().expect("started") - Nanos::from_millis(10);
    f.next_render = SimTime(
        f.clock
            .time_of(next_local.as_nanos())
            .as_nanos()
            .max(now.as_nanos() + 1),
    );
}

fn schedule(queue: &mut EventQueue<Packet>, delivery: Delivery, packet: Packet) {
    match delivery {
        Delivery::Lost => {}
        Delivery::Once(at) => queue.push(at, packet),
        Delivery::Twice(a, b) => {
            queue.push(
                a,
                Packet {
                    kind: match packet.kind {
                        Kind::PtpToLeader(i) => Kind::PtpToLeader(i),
                        Kind::PtpToFollower(i) => Kind::PtpToFollower(i),
                        Kind::Media(i) => Kind::Media(i),
                    },
                    data: packet.data.clone(),
                },
            );
            queue.push(b, packet);
        }
    }
}

/// The meter settings for the experiment: half-second windows, ±2 ms search.
const METER: MeterConfig = MeterConfig {
    window_s: 0.5,
    hop_s: 0.5,
    max_skew_us: 2_000.0,
    start: None,
    min_rms: 1e-3,
};

/// How long before a stop or re-align, and after it, a skew window counts as within its
/// fades: the half-second window itself, and the second the servo takes to slew away what
/// a start leaves.
const FADE_BEFORE_S: f64 = 1.0;
const FADE_AFTER_S: f64 = 1.5;

fn report(
    s: &PlayoutScenario,
    run: (GroupRun, Disruptions),
    meter: Meter,
) -> Result<PlayoutReport, PlayoutSimError> {
    let (run, d) = run;
    let mut speakers: Vec<SpeakerResult> = run.speakers.into_iter().map(|s| s.result).collect();
    for (x, &i) in meter.full.iter().enumerate() {
        let p = meter.abs.pair(x);
        speakers[i].abs_error_us = (p.windows > 0).then_some((p.p50_us, p.p99_us, p.mean_us));
    }
    // Where each speaker's audio was cut: its stops and re-aligns, in seconds.
    let cuts: Vec<Vec<f64>> = (0..speakers.len())
        .map(|i| {
            let mut c: Vec<f64> = d.stop_at[i]
                .iter()
                .chain(&d.realign_at[i])
                .map(|&t| t as f64 * 1e-9)
                .collect();
            c.sort_by(f64::total_cmp);
            c
        })
        .collect();
    let near_cut = |i: usize, t: f64| {
        let c = &cuts[i];
        let k = c.partition_point(|&x| x < t - FADE_AFTER_S);
        c.get(k).is_some_and(|&x| x <= t + 0.5 + FADE_BEFORE_S)
    };
    let skew = &meter.pairs;
    let group = skew.group().ok_or_else(|| {
        PlayoutSimError::Meter("no window of any pair had audio in common".into())
    })?;
    let outside = skew.abs_where(|p, t| {
        let (x, y) = meter.pair_of[p];
        !near_cut(meter.full[x], t) && !near_cut(meter.full[y], t)
    });
    let end_s = s.duration.as_secs_f64();
    let count = |times: &Vec<Vec<i64>>, from: f64, to: f64| {
        times
            .iter()
            .flatten()
            .filter(|&&t| (from..to).contains(&(t as f64 * 1e-9)))
            .count() as u64
    };
    let abs_in = |from: f64, to: f64| skew.abs_where(|_, t| (from..to).contains(&t));
    let max_in = |from: f64, to: f64| abs_in(from, to).last().copied().unwrap_or(f64::NAN);
    let evs = &s.events.events;
    let events = evs
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let at_s = e.at.as_secs_f64();
            let until_s = evs
                .get(k + 1)
                .map_or(end_s, |n| n.at.as_secs_f64())
                .max(at_s);
            PlayoutEventResult {
                label: e.label(),
                at_s,
                until_s,
                max_5s_us: max_in(at_s, (at_s + 5.0).min(until_s)),
                max_after_us: max_in(at_s + 5.0, until_s),
                realigns: count(&d.realign_at, at_s, until_s),
                underruns: count(&d.underrun_at, at_s, until_s),
            }
        })
        .collect();
    let hours = (0..meter.hourly_peak_kib.len())
        .map(|h| {
            let (from, to) = (h as f64 * 3600.0, (h + 1) as f64 * 3600.0);
            let v = abs_in(from, to);
            HourResult {
                hour: h as u32,
                p99_us: percentile(&v, 0.99),
                max_us: v.last().copied().unwrap_or(f64::NAN),
                windows: v.len(),
                realigns: count(&d.realign_at, from, to),
                peak_memory_kib: meter.hourly_peak_kib[h],
            }
        })
        .collect();
    Ok(PlayoutReport {
        scenario: s.name.clone(),
        seed: s.seed,
        corrector: s.corrector,
        skew_p50_us: group.p50_us,
        skew_p99_us: group.p99_us,
        skew_max_us: group.max_us,
        skew_p99_outside_us: percentile(&outside, 0.99),
        skew_max_outside_us: outside.last().copied().unwrap_or(f64::NAN),
        underruns: speakers.iter().map(|s| s.underruns).sum(),
        realigns: speakers.iter().map(|s| s.realigns).sum(),
        pairs: group.pairs,
        speakers,
        series: group.series,
        events,
        hours,
        peak_memory_kib: peak_memory_kib(),
    })
}

impl PlayoutReport {
    /// One JSON object with the keys `scenario`, `seed`, `corrector`, `skew_p50_us`,
    /// `skew_p99_us`, `skew_max_us`, `underruns`, `realigns`, per-pair and per-speaker
    /// detail under `pairs` and `speakers`, `skew_p99_outside_us`, `skew_max_outside_us`
    /// and `peak_memory_kib` (null where unknown), one object per event under `events` and
    /// per simulated hour under `hours`, with the fields of [`PlayoutEventResult`] and
    /// [`HourResult`] under their own names (NaN as null).
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"scenario\": {}, \"seed\": {}, \"corrector\": {}, \"skew_p50_us\": {}, \
             \"skew_p99_us\": {}, \"skew_max_us\": {}, \"underruns\": {}, \"realigns\": {}, \
             \"pairs\": [",
            json_str(&self.scenario),
            self.seed,
            json_str(self.corrector.name()),
            json_num(self.skew_p50_us),
            json_num(self.skew_p99_us),
            json_num(self.skew_max_us),
            self.underruns,
            self.realigns
        );
        for (i, p) in self.pairs.iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"a\": {}, \"b\": {}, \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}, \
                 \"windows\": {}}}",
                if i > 0 { ", " } else { "" },
                json_str(&p.a),
                json_str(&p.b),
                json_num(p.p50_us),
                json_num(p.p99_us),
                json_num(p.max_us),
                p.windows
            );
        }
        s.push_str("], \"speakers\": [");
        for (i, f) in self.speakers.iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"name\": {}, \"role\": {}, \"drift_ppm\": {}, \"underruns\": {}, \
                 \"realigns\": {}, \"lost_packets\": {}, \"late_packets\": {}, \
                 \"abs_error_p50_us\": {}, \"abs_error_p99_us\": {}, \"abs_error_mean_us\": {}}}",
                if i > 0 { ", " } else { "" },
                json_str(&f.name),
                json_str(f.role.name()),
                json_num(f.drift_ppm),
                f.underruns,
                f.realigns,
                f.lost_packets,
                f.late_packets,
                json_num(f.abs_error_us.map_or(f64::NAN, |e| e.0)),
                json_num(f.abs_error_us.map_or(f64::NAN, |e| e.1)),
                json_num(f.abs_error_us.map_or(f64::NAN, |e| e.2))
            );
        }
        let _ = write!(
            s,
            "], \"skew_p99_outside_us\": {}, \"skew_max_outside_us\": {}, \"peak_memory_kib\": {}, \
             \"events\": [",
            json_num(self.skew_p99_outside_us),
            json_num(self.skew_max_outside_us),
            self.peak_memory_kib
                .map_or("null".into(), |k| k.to_string()),
        );
        for (i, e) in self.events.iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"label\": {}, \"at_s\": {}, \"until_s\": {}, \"max_5s_us\": {}, \
                 \"max_after_us\": {}, \"realigns\": {}, \"underruns\": {}}}",
                if i > 0 { ", " } else { "" },
                json_str(&e.label),
                json_num(e.at_s),
                json_num(e.until_s),
                json_num(e.max_5s_us),
                json_num(e.max_after_us),
                e.realigns,
                e.underruns
            );
        }
        s.push_str("], \"hours\": [");
        for (i, h) in self.hours.iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"hour\": {}, \"p99_us\": {}, \"max_us\": {}, \"windows\": {}, \
                 \"realigns\": {}, \"peak_memory_kib\": {}}}",
                if i > 0 { ", " } else { "" },
                h.hour,
                json_num(h.p99_us),
                json_num(h.max_us),
                h.windows,
                h.realigns,
                h.peak_memory_kib.map_or("null".into(), |k| k.to_string()),
            );
        }
        s.push_str("]}");
        s
    }

    /// A human-readable table.
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "playout: {} seed {} corrector {}: skew p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs; \
             underruns {}, realigns {}\n",
            self.scenario,
            self.seed,
            self.corrector.name(),
            self.skew_p50_us,
            self.skew_p99_us,
            self.skew_max_us,
            self.underruns,
            self.realigns
        );
        for p in &self.pairs {
            let _ = writeln!(
                s,
                "  {:>10} ~ {:<10} p50 {:8.2} µs  p99 {:8.2} µs  max {:8.2} µs  ({} windows)",
                p.a, p.b, p.p50_us, p.p99_us, p.max_us, p.windows
            );
        }
        for f in &self.speakers {
            let _ = writeln!(
                s,
                "  {:>10} {:<5} {:+7.1} ppm  underruns {}  realigns {}  lost {}  late {}{}",
                f.name,
                f.role.name(),
                f.drift_ppm,
                f.underruns,
                f.realigns,
                f.lost_packets,
                f.late_packets,
                f.abs_error_us
                    .map_or(String::new(), |(p50, p99, mean)| format!(
                        "  vs leader: p50 {p50:.2} µs p99 {p99:.2} µs mean {mean:+.2} µs"
                    ))
            );
        }
        let _ = writeln!(
            s,
            "  outside re-align fades: p99 {:.2} µs, max {:.2} µs",
            self.skew_p99_outside_us, self.skew_max_outside_us
        );
        for e in &self.events {
            let _ = writeln!(
                s,
                "  @{:>8.1}s {:<36} max 5s {:>9.2} µs  after {:>9.2} µs  realigns {}  underruns {}",
                e.at_s, e.label, e.max_5s_us, e.max_after_us, e.realigns, e.underruns
            );
        }
        if self.hours.len() > 1 {
            let first = self.hours[0].peak_memory_kib;
            for h in &self.hours {
                let _ = writeln!(
                    s,
                    "  hour {:>2}: p99 {:>7.2} µs  max {:>7.2} µs  {:>5} windows  realigns {:>2}  \
                     peak {}",
                    h.hour,
                    h.p99_us,
                    h.max_us,
                    h.windows,
                    h.realigns,
                    memory(h.peak_memory_kib, first)
                );
            }
        }
        s
    }
}

/// A peak memory in MiB, and against the first hour's.
fn memory(kib: Option<u64>, first: Option<u64>) -> String {
    match (kib, first) {
        (Some(k), Some(f)) if f > 0 => format!(
            "{:.1} MiB ({:+.1}% on hour 0)",
            k as f64 / 1024.0,
            100.0 * (k as f64 / f as f64 - 1.0)
        ),
        (Some(k), _) => format!("{:.1} MiB", k as f64 / 1024.0),
        _ => "unknown".into(),
    }
}
