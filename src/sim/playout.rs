//! The playout experiment: one leader, a group of followers, skew measured from the audio.
//!
//! The leader runs the real [`PtpMaster`] and [`RtpSender`]; each follower runs the real
//! [`PtpSlave`], [`EnvelopeEstimator`], [`RtpReceiver`] and [`Playout`] on its own simulated
//! crystal (drift and wander), which also drives its [`VirtualDac`]. Clock messages and media
//! cross the simulated network (each follower has its own links, with the preset's delay,
//! jitter, spikes and loss). Every DAC block is recorded with its true emission time, and
//! the [sync meter](crate::playout::meter) then cross-correlates the recordings of the
//! full-range speakers pairwise: the skew is measured from the audio alone, against true
//! time, never from what any follower believes.
//!
//! The standard group ([`PlayoutScenario::preset`]) is a stereo pair (left and right, same
//! model), a subwoofer and a full-range speaker in another room, on crystals at +120, −80,
//! +40 and −150 ppm, playing white noise that is the same on both channels.

use std::fmt::Write as _;

use super::{ClockModel, Delivery, EventQueue, Link, PathConfig, SimClock, SimRng, SimTime};
use crate::clock::{ClockEstimate, ClockEstimator, EnvelopeEstimator};
use crate::media::receiver::{ReceiverConfig, RtpReceiver};
use crate::media::sender::{RtpSender, SenderConfig};
use crate::media::{AudioFormat, CodecKind};
use crate::playout::corrector::CorrectorKind;
use crate::playout::dac::{Crystal, VirtualDac};
use crate::playout::meter::{Capture, MeterConfig, SkewWindow, measure_skew};
use crate::playout::pipeline::{Playout, PlayoutConfig};
use crate::playout::stage::{Chain, ChainError, Stage};
use crate::playout::stages::{ChannelSplit, Crossover, CrossoverKind, SplitMode};
use crate::ptp::{ClockIdentity, MasterConfig, PortIdentity, PtpMaster, PtpSlave, SlaveConfig};
use crate::sim::sync::{LEADER_EPOCH, json_num, json_str, percentile};
use crate::time::{LeaderInstant, LocalInstant, Nanos};

/// A speaker's job in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Left of a stereo pair: plays the left channel.
    Left,
    /// Right of a stereo pair: plays the right channel.
    Right,
    /// Subwoofer: mono downmix, low-passed at 80 Hz.
    Sub,
    /// Full range, both channels.
    Full,
}

impl Role {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::Left => "left",
            Role::Right => "right",
            Role::Sub => "sub",
            Role::Full => "full",
        }
    }

    /// Whether its output carries the full band (and so takes part in skew measurement).
    pub fn full_range(self) -> bool {
        self != Role::Sub
    }

    /// The stage chain for this role, fed with `channels` channels at `rate` Hz.
    pub fn chain(self, channels: usize, rate: u32) -> Result<Chain, ChainError> {
        let stages: Vec<Box<dyn Stage>> = match self {
            Role::Left => vec![Box::new(ChannelSplit::new(SplitMode::Left, channels)?)],
            Role::Right => vec![Box::new(ChannelSplit::new(SplitMode::Right, channels)?)],
            Role::Sub => vec![
                Box::new(ChannelSplit::new(SplitMode::MonoDownmix, channels)?),
                Box::new(Crossover::new(CrossoverKind::LowPass, 80.0, rate, 1)?),
            ],
            Role::Full => Vec::new(),
        };
        Chain::new(channels, stages)
    }
}

/// One speaker of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerSpec {
    /// Its name in reports.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its crystal's drift in ppm (its wander is 0.01 ppm/√s).
    pub drift_ppm: f64,
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
        })
    }
}

/// Why the experiment could not run.
#[derive(Debug, thiserror::Error)]
pub enum PlayoutSimError {
    /// A clock or link is invalid.
    #[error(transparent)]
    Sim(#[from] super::SimConfigError),
    /// A speaker's chain could not be built.
    #[error("speaker chain: {0}")]
    Chain(#[from] ChainError),
    /// The playout path could not be built.
    #[error("playout: {0}")]
    Playout(#[from] crate::playout::pipeline::PlayoutError),
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
}

/// The skew between two speakers.
#[derive(Debug, Clone, PartialEq)]
pub struct PairResult {
    /// First speaker.
    pub a: String,
    /// Second speaker.
    pub b: String,
    /// Median |skew|, µs.
    pub p50_us: f64,
    /// 99th percentile of |skew|, µs.
    pub p99_us: f64,
    /// Largest |skew|, µs.
    pub max_us: f64,
    /// Windows measured.
    pub windows: usize,
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
    pub pairs: Vec<PairResult>,
    /// Per speaker.
    pub speakers: Vec<SpeakerResult>,
    /// Skew over time: (seconds, worst |skew| µs over the pairs in that window).
    pub series: Vec<(f64, f64)>,
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

struct Follower {
    spec: SpeakerSpec,
    clock: SimClock,
    slave: PtpSlave<u32>,
    estimator: EnvelopeEstimator,
    estimate: Option<ClockEstimate>,
    up: Link,
    down: Link,
    media: Link,
    rx: RtpReceiver,
    playout: Playout,
    dac: VirtualDac,
    out: Vec<f32>,
    /// Channel 0 of everything the DAC emitted (full-range speakers only).
    capture: Vec<f32>,
    /// (first frame, true emission ns) of every block.
    timeline: Vec<(u64, i64)>,
    next_render: SimTime,
    started_at: Option<u64>,
    first_realigns: u64,
}

impl Follower {
    fn leader_now(&self, local: LocalInstant) -> Option<LeaderInstant> {
        self.estimate.map(|e| e.to_leader(local))
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
    /// at true time `source_first_ns + k / 48000 s`.
    pub source: Vec<f32>,
    /// True time at which the source's frame 0 is meant to be played.
    pub source_first_ns: i64,
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
    /// (index of the block's first frame in `samples`, true emission time in ns) of every
    /// block.
    pub timeline: Vec<(u64, i64)>,
}

impl SpeakerRun {
    /// The recording between true times `from` and `to` (ns), widened to whole blocks,
    /// as a meter capture at the true emission rate of that stretch.
    pub fn capture(&self, from: i64, to: i64) -> Option<Capture<'_>> {
        let tl = &self.timeline;
        let i0 = tl.partition_point(|&(_, t)| t <= from).checked_sub(1)?;
        let i1 = tl.partition_point(|&(_, t)| t < to);
        if i1 >= tl.len() || i1 <= i0 {
            return None;
        }
        let (k0, t0) = tl[i0];
        let (k1, t1) = tl[i1];
        let (a, b) = (k0 as usize, k1 as usize);
        if b > self.samples.len() {
            return None;
        }
        Some(Capture {
            samples: &self.samples[a..b],
            channels: 1,
            channel: 0,
            first_ns: t0,
            rate_hz: (k1 - k0) as f64 * 1e9 / (t1 - t0) as f64,
        })
    }
}

/// Runs the experiment and measures the skew from the recordings.
pub fn run_playout(s: &PlayoutScenario) -> Result<PlayoutReport, PlayoutSimError> {
    let run = run_group(s)?;
    measure(s, run)
}

/// Runs the experiment and returns what the DACs emitted, unmeasured.
pub fn run_group(s: &PlayoutScenario) -> Result<GroupRun, PlayoutSimError> {
    let rng = SimRng::new(s.seed);
    let format = AudioFormat::new(RATE, CHANNELS as u16).expect("48 kHz stereo");
    let mut leader_model = ClockModel::ideal();
    leader_model.offset += LEADER_EPOCH;
    let mut leader = SimClock::new(leader_model, rng.fork(2))?;
    let mut master = PtpMaster::new(MasterConfig::new(ClockIdentity([
        0x00, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1,
    ])));
    let mut sender_cfg = SenderConfig::new(CodecKind::L24, format, 0x51AB_0001);
    sender_cfg.payload_type = 96;
    let mut sender =
        RtpSender::new(sender_cfg).map_err(|e| PlayoutSimError::Media(e.to_string()))?;

    let mut followers = Vec::new();
    for (i, spec) in s.speakers.iter().enumerate() {
        let fork = rng.fork(100 + i as u64);
        let mut model = ClockModel::random_follower(&mut fork.fork(1));
        model.drift_ppm = spec.drift_ppm;
        model.offset += LEADER_EPOCH;
        let clock = SimClock::new(model, fork.fork(2))?;
        let port = PortIdentity {
            clock_identity: ClockIdentity([0x02, 0, 0, 0xff, 0xfe, 0, 0, 2 + i as u8]),
            port_number: 1,
        };
        master.add_slave(
            1 + i as u32,
            LeaderInstant::from_nanos(leader.reading(SimTime(0))),
        );
        let rx = RtpReceiver::new(ReceiverConfig::new(CodecKind::L24, format, 96))
            .map_err(|e| PlayoutSimError::Media(e.to_string()))?;
        let chain = spec.role.chain(CHANNELS, RATE)?;
        let mut config = PlayoutConfig::new(RATE);
        config.corrector = s.corrector;
        config.block_frames = BLOCK;
        let playout = Playout::new(config, chain)?;
        let channels = playout.channels_out();
        let seconds = s.duration.as_secs_f64().max(0.0);
        let capture_len = (seconds * f64::from(RATE) * 1.001) as usize + BLOCK;
        followers.push(Follower {
            spec: spec.clone(),
            clock,
            slave: PtpSlave::new(SlaveConfig::new(port)),
            estimator: EnvelopeEstimator::default(),
            estimate: None,
            up: Link::new(s.path.to_leader, fork.fork(3))?,
            down: Link::new(s.path.to_follower, fork.fork(4))?,
            media: Link::new(s.path.to_follower, fork.fork(5))?,
            rx,
            playout,
            dac: VirtualDac::new(RATE, channels),
            out: vec![0.0; BLOCK * channels],
            capture: Vec::with_capacity(capture_len),
            timeline: Vec::with_capacity(capture_len / BLOCK + 1),
            // Every DAC starts half a second in, rendering a block ahead of emission.
            next_render: SimTime(500_000_000),
            started_at: None,
            first_realigns: 0,
        });
    }

    let end = SimTime(s.duration.as_nanos());
    let mut queue: EventQueue<Packet> = EventQueue::new();
    let mut source = Source::new(s.signal, s.seed, RATE);
    let source_len = (s.duration.as_secs_f64().max(0.0) * f64::from(RATE)) as usize + 1;
    let mut source_rec: Vec<f32> = Vec::with_capacity(source_len);
    let chunk = (RATE as i64 * PTIME_MS / 1000) as usize;
    let mut pcm = vec![0f32; chunk * CHANNELS];
    // The leader captures chunk k during [k, k+1) × ptime and sends it at the end of it.
    let mut next_chunk = 1i64;
    let media_at = |k: i64| SimTime(k * PTIME_MS * 1_000_000);
    let mut last = SimTime(0);

    loop {
        let master_wake = master
            .poll_timeout()
            .map(|t| leader.time_of(t.as_nanos()).max(last));
        let mut now = media_at(next_chunk);
        if let Some(t) = master_wake {
            now = now.min(t);
        }
        if let Some(t) = queue.peek_time() {
            now = now.min(t);
        }
        for f in followers.iter_mut() {
            if let Some(t) = f.slave.poll_timeout() {
                now = now.min(f.clock.time_of(t.as_nanos()).max(last));
            }
            now = now.min(f.next_render);
        }
        if now > end {
            break;
        }
        last = now;
        let leader_now = LeaderInstant::from_nanos(leader.reading(now));

        // Media: the leader finishes a chunk and sends it.
        if now == media_at(next_chunk) {
            let k = next_chunk - 1;
            for frame in pcm.chunks_exact_mut(CHANNELS) {
                let x = source.next();
                frame.fill(x);
                if source_rec.len() < source_rec.capacity() {
                    source_rec.push(x);
                }
            }
            let captured = LEADER_EPOCH + Nanos::from_millis(k * PTIME_MS);
            let at = LeaderInstant::from_nanos(0) + captured + s.latency;
            let mut out: Vec<Vec<u8>> = Vec::new();
            sender
                .push(&pcm, at, &mut |p: &[u8]| out.push(p.to_vec()))
                .map_err(|e| PlayoutSimError::Media(e.to_string()))?;
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
        while queue.peek_time() == Some(now) {
            let Some((_, pkt)) = queue.pop() else { break };
            match pkt.kind {
                Kind::PtpToLeader(i) => {
                    let _ = master.handle_receive(1 + i as u32, leader_now, &pkt.data);
                }
                Kind::PtpToFollower(i) => {
                    let f = &mut followers[i];
                    let local = LocalInstant::from_nanos(f.clock.reading(now));
                    let _ = f.slave.handle_receive(LEADER, local, &pkt.data);
                }
                Kind::Media(i) => {
                    let f = &mut followers[i];
                    let local = LocalInstant::from_nanos(f.clock.reading(now));
                    if let Some(t) = f.leader_now(local) {
                        f.rx.receive(&pkt.data, t);
                    }
                }
            }
        }

        if master_wake.is_some_and(|t| t <= now) {
            master.handle_timeout(leader_now);
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
            let local = LocalInstant::from_nanos(f.clock.reading(now));
            if f.slave
                .poll_timeout()
                .is_some_and(|t| f.clock.time_of(t.as_nanos()) <= now)
            {
                f.slave.handle_timeout(local);
            }
            while let Some(tx) = f.slave.poll_transmit(local) {
                let data = tx.payload().to_vec();
                schedule(
                    &mut queue,
                    f.up.transmit(now),
                    Packet {
                        kind: Kind::PtpToLeader(i),
                        data,
                    },
                );
            }
            let mut burst = false;
            while let Some(ex) = f.slave.poll_exchange() {
                if f.estimator.wants(ex.completed_at()) {
                    f.estimator.handle_exchange(&ex);
                    burst |= f.estimator.poll_burst_request();
                }
            }
            // The request leaves now, as on a node, rather than at the next wake.
            if burst && f.slave.request_burst(local) {
                while let Some(tx) = f.slave.poll_transmit(local) {
                    let data = tx.payload().to_vec();
                    schedule(
                        &mut queue,
                        f.up.transmit(now),
                        Packet {
                            kind: Kind::PtpToLeader(i),
                            data,
                        },
                    );
                }
            }
            f.estimate = f.estimator.estimate();

            if f.next_render == now {
                render(f, now);
            }
        }
    }

    Ok(GroupRun {
        source: source_rec,
        // Chunk 0 is captured at leader time LEADER_EPOCH (true time 0) and played
        // `latency` later; the leader's clock is ideal.
        source_first_ns: s.latency.as_nanos(),
        speakers: followers.into_iter().map(Follower::finish).collect(),
    })
}

impl Follower {
    fn finish(self) -> SpeakerRun {
        let r = self.playout.controller().report();
        let st = self.rx.stats();
        let base = self.timeline.first().map_or(0, |t| t.0);
        SpeakerRun {
            result: SpeakerResult {
                name: self.spec.name,
                role: self.spec.role,
                drift_ppm: self.spec.drift_ppm,
                underruns: r.underruns,
                realigns: r.realigns.saturating_sub(self.first_realigns),
                lost_packets: st.lost,
                late_packets: st.late,
                abs_error_us: None,
            },
            samples: self.capture,
            timeline: self
                .timeline
                .into_iter()
                .map(|(k, t)| (k - base, t))
                .collect(),
        }
    }
}

/// Renders one DAC block for follower `f` at true time `now` and schedules the next.
fn render(f: &mut Follower, now: SimTime) {
    let local = LocalInstant::from_nanos(f.clock.reading(now));
    if !f.dac.started() {
        // The first block leaves one block after this render.
        f.dac.start(local + Nanos::from_millis(10));
    }
    if let Some(t) = f.leader_now(local) {
        f.rx.poll(t);
    }
    let dac_next = f.dac.next_local().expect("started");
    let report = f.playout.render(
        &mut f.rx,
        f.estimate.as_ref(),
        dac_next,
        f.dac.frames_emitted(),
        &mut f.out,
    );
    if f.started_at.is_none() && report.realigns > 0 {
        f.started_at = Some(f.dac.frames_emitted());
        f.first_realigns = report.realigns;
    }
    let channels = f.dac.channels();
    let emission = f
        .dac
        .emit(&f.out, &mut f.clock as &mut dyn Crystal)
        .expect("started");
    if f.capture.len() + BLOCK <= f.capture.capacity() {
        f.timeline.push((emission.first_frame, emission.true_ns));
        f.capture
            .extend(f.out.chunks_exact(channels).map(|frame| frame[0]));
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
    start_ns: None,
    min_rms: 1e-3,
};

/// Measures `b` against `a` over `[from, to)` in 2 s pieces (each piece's rate from its
/// own stretch of the timeline, so crystal wander does not bend the timeline); returns
/// every window.
fn skew_windows<'a>(
    a: impl Fn(i64, i64) -> Option<Capture<'a>>,
    b: impl Fn(i64, i64) -> Option<Capture<'a>>,
    from: i64,
    to: i64,
) -> Vec<SkewWindow> {
    let piece = 2_000_000_000i64;
    let margin = 10_000_000;
    let mut out = Vec::new();
    let mut t = from;
    while t + piece <= to {
        if let (Some(ca), Some(cb)) = (a(t, t + piece), b(t - margin, t + piece + margin))
            && let Ok(r) = measure_skew(&ca, &cb, &METER)
        {
            out.extend_from_slice(&r.windows);
        }
        t += piece;
    }
    out
}

fn sorted_abs(windows: &[SkewWindow]) -> Vec<f64> {
    let mut v: Vec<f64> = windows.iter().map(|w| w.skew_us.abs()).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn measure(s: &PlayoutScenario, mut run: GroupRun) -> Result<PlayoutReport, PlayoutSimError> {
    let start = s.measure_from.as_nanos();
    let end = s.duration.as_nanos() - 200_000_000;
    let source = |from: i64, to: i64| {
        let first = run.source_first_ns;
        let k0 = ((from - first).max(0) as i128 * i128::from(RATE) / 1_000_000_000) as usize;
        let k1 = ((to - first).max(0) as i128 * i128::from(RATE) / 1_000_000_000) as usize;
        let k1 = k1.min(run.source.len());
        (k1 > k0).then(|| Capture {
            samples: &run.source[k0..k1],
            channels: 1,
            channel: 0,
            first_ns: first + (k0 as i128 * 1_000_000_000 / i128::from(RATE)) as i64,
            rate_hz: f64::from(RATE),
        })
    };
    let full: Vec<usize> = (0..run.speakers.len())
        .filter(|&i| run.speakers[i].result.role.full_range())
        .collect();
    let mut abs = Vec::new();
    for &i in &full {
        let sp = &run.speakers[i];
        let w = skew_windows(source, |f, t| sp.capture(f, t), start, end);
        let v = sorted_abs(&w);
        let mean = w.iter().map(|w| w.skew_us).sum::<f64>() / w.len().max(1) as f64;
        abs.push((
            i,
            (!v.is_empty()).then(|| (percentile(&v, 0.5), percentile(&v, 0.99), mean)),
        ));
    }
    for (i, e) in abs {
        run.speakers[i].result.abs_error_us = e;
    }
    let mut pairs = Vec::new();
    let mut all = Vec::new();
    let mut series: Vec<(f64, f64)> = Vec::new();
    for (x, &i) in full.iter().enumerate() {
        for &j in &full[x + 1..] {
            let (a, b) = (&run.speakers[i], &run.speakers[j]);
            let windows = skew_windows(|f, t| a.capture(f, t), |f, t| b.capture(f, t), start, end);
            for w in &windows {
                let slot = (w.t_ns as f64 * 1e-9 * 2.0).round() / 2.0;
                match series.iter_mut().find(|(ts, _)| *ts == slot) {
                    Some(e) => e.1 = e.1.max(w.skew_us.abs()),
                    None => series.push((slot, w.skew_us.abs())),
                }
            }
            let skews = sorted_abs(&windows);
            all.extend_from_slice(&skews);
            pairs.push(PairResult {
                a: a.result.name.clone(),
                b: b.result.name.clone(),
                p50_us: percentile(&skews, 0.5),
                p99_us: percentile(&skews, 0.99),
                max_us: skews.last().copied().unwrap_or(f64::NAN),
                windows: skews.len(),
            });
        }
    }
    if all.is_empty() {
        return Err(PlayoutSimError::Meter(
            "no window of any pair had audio in common".into(),
        ));
    }
    all.sort_by(f64::total_cmp);
    series.sort_by(|a, b| a.0.total_cmp(&b.0));
    let speakers: Vec<SpeakerResult> = run.speakers.into_iter().map(|s| s.result).collect();
    Ok(PlayoutReport {
        scenario: s.name.clone(),
        seed: s.seed,
        corrector: s.corrector,
        skew_p50_us: percentile(&all, 0.5),
        skew_p99_us: percentile(&all, 0.99),
        skew_max_us: *all.last().expect("not empty"),
        underruns: speakers.iter().map(|s| s.underruns).sum(),
        realigns: speakers.iter().map(|s| s.realigns).sum(),
        pairs,
        speakers,
        series,
    })
}

impl PlayoutReport {
    /// One JSON object with the keys `scenario`, `seed`, `corrector`, `skew_p50_us`,
    /// `skew_p99_us`, `skew_max_us`, `underruns`, `realigns`, and per-pair and per-speaker
    /// detail under `pairs` and `speakers`.
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
        s
    }
}
