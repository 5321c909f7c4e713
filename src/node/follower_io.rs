//! A follower's media receiver and audio output threads.
//!
//! The receiver stamps each RTP datagram with its arrival (the kernel's receive time when
//! the socket has it) and hands it to the follower's [`FollowerCore`], which places it on
//! the leader's timeline. Datagrams from anyone but the leader's RTP socket are counted and
//! dropped; the core's receiver drops other SSRCs.
//!
//! The output runs a virtual DAC on the node's clock: block `n` leaves when that clock reads
//! `start + n·block/rate`, and is rendered `render_lead` before, by
//! [`FollowerCore::render`]; the emitted block goes to the sink with its true (monotonic)
//! time. A pulled output (a sound card through cpal, or the caller's own callback) renders
//! in the device's callback through a [`PullOutput`]; the output thread then only watches
//! it and publishes its counters.
//!
//! [`PullOutput`]: crate::core::PullOutput
//! [`FollowerCore`]: crate::core::FollowerCore
//! [`FollowerCore::render`]: crate::core::FollowerCore::render

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::control::Role;
use crate::core::{PullConfig, PullMonitor, PullOutput, PullStats};
use crate::measure::WavSink;
use crate::net::UdpSocket;
use crate::node::NodeError;
use crate::node::clock::NodeClock;
#[cfg(feature = "cpal")]
use crate::node::device::DeviceDac;
#[cfg(not(feature = "cpal"))]
use crate::node::follower::NEEDS_CPAL;
use crate::node::follower::{FollowerConfig, FollowerShared, Output};
use crate::node::ptp::lock;
use crate::playout::controller::State;
use crate::playout::dac::VirtualDac;
use crate::playout::sink::{AudioSink, Block, NullSink, PcmWriter};
use crate::time::{LocalInstant, MediaTime, Nanos, TrueInstant};

/// How late a block may be for a paced sink before the DAC runs dry rather than hand it
/// over late (see `next_block`).
const MAX_PACED_LATE: Nanos = Nanos::from_millis(100);

/// What the output thread publishes for status queries and the final report.
#[derive(Debug, Clone)]
pub(crate) struct OutputShared {
    pub(crate) buffer_level: Nanos,
    pub(crate) underruns: u64,
    pub(crate) error: Option<Nanos>,
    pub(crate) playing: bool,
    pub(crate) first_sample_ns: Option<i64>,
    pub(crate) rate_hz: f64,
    pub(crate) frames: u64,
    pub(crate) sink_error: Option<String>,
    pub(crate) late_blocks: u64,
    pub(crate) skipped_blocks: u64,
}

impl OutputShared {
    pub(crate) fn new() -> OutputShared {
        OutputShared {
            buffer_level: Nanos::ZERO,
            underruns: 0,
            error: None,
            playing: false,
            first_sample_ns: None,
            rate_hz: 0.0,
            frames: 0,
            sink_error: None,
            late_blocks: 0,
            skipped_blocks: 0,
        }
    }
}

pub(crate) struct MediaLoop {
    pub(crate) shared: Arc<FollowerShared>,
    pub(crate) socket: UdpSocket,
    pub(crate) clock: NodeClock,
}

impl MediaLoop {
    pub(crate) fn run(self) {
        let mut buf = vec![0u8; 2048];
        let mut expect: Option<std::net::SocketAddr> = None;
        let mut multicast: Option<UdpSocket> = None;
        let mut generation = u64::MAX;
        while !self.shared.shutdown.load(Ordering::Acquire) {
            let g = self.shared.generation.load(Ordering::Acquire);
            if g != generation {
                generation = g;
                expect = lock(&self.shared.session)
                    .as_ref()
                    .map(|s| std::net::SocketAddr::new(s.leader.ip(), s.stream.rtp_port));
                // A multicast session's socket; a role change keeps the one it has.
                if let Some(m) = lock(&self.shared.multicast).take() {
                    multicast = Some(m);
                } else if lock(&self.shared.session)
                    .as_ref()
                    .is_some_and(|s| s.stream.multicast.is_none())
                {
                    multicast = None;
                }
            }
            let socket = multicast.as_ref().unwrap_or(&self.socket);
            let Ok(Some(d)) = socket.recv(&mut buf, Some(Duration::from_millis(20))) else {
                continue;
            };
            if Some(d.from) != expect {
                self.shared.unknown_source.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let at = match d.rx_realtime_ns {
                Some(rt) => self.clock.from_realtime(rt),
                None => self.clock.now(),
            };
            lock(&self.shared.core).handle_rtp(at, &buf[..d.len.min(buf.len())]);
        }
    }
}

/// What paces the output and when its blocks leave.
enum Dac {
    /// A DAC on the node's clock (for `null` and WAV output).
    Virtual(VirtualDac),
    /// A sound card on its own crystal, pulling from the core in its callback.
    #[cfg(feature = "cpal")]
    Device(Box<DeviceDac>),
    /// The caller's own callback, pulling through the handle it took; the device's rate.
    Callback(PullMonitor, u32),
}

pub(crate) struct OutputLoop {
    shared: Arc<FollowerShared>,
    clock: NodeClock,
    block: usize,
    lead: Nanos,
    /// Blocks a paced sink skipped because they were already due (see `next_block`).
    skipped_blocks: u64,
    /// Channels the output device has (fixed by the role asked for at the start).
    channels: usize,
    sink: Box<dyn AudioSink>,
    dac: Dac,
    /// The sound card's name, to reopen it at another rate.
    #[cfg(feature = "cpal")]
    device_name: Option<String>,
    #[cfg(feature = "cpal")]
    device_period_frames: Option<u32>,
    /// The session's target latency and packet duration (a sound card must fit in them).
    #[cfg(feature = "cpal")]
    latency: Nanos,
    #[cfg(feature = "cpal")]
    packet: Nanos,
    rate_hz: f64,
}

impl OutputLoop {
    pub(crate) fn new(
        shared: Arc<FollowerShared>,
        clock: NodeClock,
        config: &FollowerConfig,
    ) -> Result<OutputLoop, NodeError> {
        let stream = lock(&shared.session).as_ref().map(|s| s.stream.clone());
        let (rate, stream_channels) = stream
            .as_ref()
            .map(|s| (s.sample_rate, usize::from(s.channels)))
            .unwrap_or((48_000, 2));
        // Replaced from the session at the output thread's first pass.
        #[cfg(feature = "cpal")]
        let (latency, packet) = stream
            .as_ref()
            .map(|s| (s.target_latency, s.ptime))
            .unwrap_or((Nanos::from_millis(100), Nanos::from_millis(5)));
        let channels = if config.role == Role::Full {
            stream_channels
        } else {
            1
        };
        let drift_ppm = clock.drift_ppm();
        let rate_hz = f64::from(rate) * (1.0 + drift_ppm * 1e-6);
        let virtual_dac = || Dac::Virtual(VirtualDac::new(rate, channels));
        let (sink, dac, channels): (Box<dyn AudioSink>, _, _) = match config.output.clone() {
            Output::Null => (Box::new(NullSink), virtual_dac(), channels),
            Output::Wav(path) => {
                let mut w = WavSink::create(&path, rate, channels as u16)?;
                w.set_rate_hz(rate_hz);
                (Box::new(w), virtual_dac(), channels)
            }
            Output::Stdout(format) => (
                Box::new(PcmWriter::new(std::io::stdout(), format)),
                virtual_dac(),
                channels,
            ),
            Output::Custom(sink) => (Box::new(sink), virtual_dac(), channels),
            Output::Callback {
                rate: device_rate,
                channels: device_channels,
            } => {
                let pull = PullOutput::new(
                    Arc::clone(&shared.core),
                    PullConfig::new(device_rate, device_channels),
                )
                .map_err(|e| NodeError::Config {
                    field: "output",
                    reason: e.to_string(),
                })?;
                let monitor = pull.monitor();
                *lock(&shared.pull_output) = Some(pull);
                (
                    Box::new(NullSink),
                    Dac::Callback(monitor, device_rate),
                    device_channels,
                )
            }
            #[cfg(feature = "cpal")]
            Output::Device(name) => {
                let device = DeviceDac::open(
                    name.as_deref(),
                    rate,
                    channels,
                    config.device_period_frames,
                    clock.clone(),
                    Arc::clone(&shared.core),
                )?;
                let channels = device.channels();
                (Box::new(NullSink), Dac::Device(Box::new(device)), channels)
            }
            #[cfg(not(feature = "cpal"))]
            Output::Device(_) => {
                return Err(NodeError::Config {
                    field: "output",
                    reason: NEEDS_CPAL.into(),
                });
            }
        };
        Ok(OutputLoop {
            shared,
            clock,
            block: config.block_frames,
            lead: config.render_lead,
            skipped_blocks: 0,
            channels,
            sink,
            dac,
            #[cfg(feature = "cpal")]
            device_name: match &config.output {
                Output::Device(name) => name.clone(),
                _ => None,
            },
            #[cfg(feature = "cpal")]
            device_period_frames: config.device_period_frames,
            #[cfg(feature = "cpal")]
            latency,
            #[cfg(feature = "cpal")]
            packet,
            rate_hz,
        })
    }

    /// Makes the DAC ready for a session at `rate`: a virtual DAC restarts when the rate
    /// changes or it never started; a sound card is reopened at a new rate.
    fn prepare_dac(&mut self, rate: u32, rate_changed: bool) -> Result<(), NodeError> {
        match &mut self.dac {
            Dac::Virtual(dac) => {
                if rate_changed || !dac.started() {
                    *dac = VirtualDac::new(rate, self.channels);
                    dac.start(self.clock.now() + Nanos::from_millis(20));
                }
            }
            #[cfg(feature = "cpal")]
            Dac::Device(device) => {
                if device.rate() != rate {
                    // Close the old stream before the new one takes the card.
                    self.dac = Dac::Virtual(VirtualDac::new(rate, self.channels));
                    let device = DeviceDac::open(
                        self.device_name.as_deref(),
                        rate,
                        self.channels,
                        self.device_period_frames,
                        self.clock.clone(),
                        Arc::clone(&self.shared.core),
                    )?;
                    self.dac = Dac::Device(Box::new(device));
                }
            }
            Dac::Callback(..) => {}
        }
        Ok(())
    }

    /// Waits until the next block is due; returns when it leaves (local clock) and the
    /// DAC's frame count there. `None` when the output must end.
    ///
    /// A paced sink (a pipe that a player reads in real time) runs dry, as a card does,
    /// when the follower could not run for longer than [`MAX_PACED_LATE`] (stopped,
    /// starved): the blocks already due are skipped, whole, and counted, rather than
    /// written late in a burst of stale audio. An unpaced sink (a file) keeps its virtual
    /// timeline.
    fn next_block(&mut self) -> Option<(LocalInstant, u64)> {
        let paced = self.sink.paced();
        match &mut self.dac {
            Dac::Virtual(dac) => {
                let mut next = dac.next_local()?;
                let now = self.clock.now();
                if paced && now - next > MAX_PACED_LATE {
                    let block = self.block.max(1) as u64;
                    let behind = MediaTime::from_nanos_floor(now - next, dac.rate()).ticks();
                    let blocks = u64::try_from(behind).unwrap_or(0) / block + 1;
                    dac.skip(blocks * block);
                    self.skipped_blocks += blocks;
                    next = dac.next_local()?;
                }
                self.clock.sleep_until(next - self.lead);
                Some((next, dac.frames_emitted()))
            }
            // Pulled outputs render in their callback (`run_pulled`).
            _ => None,
        }
    }

    /// Sends a block out (`at` is when it leaves, on the local clock); returns when its
    /// first frame leaves on the monotonic clock.
    fn emit(&mut self, block: &[f32]) -> Option<i64> {
        match &mut self.dac {
            Dac::Virtual(dac) => dac
                .emit(block, &mut self.clock)
                .map(|e| e.true_time.as_nanos()),
            _ => None,
        }
    }

    /// The rate and the channels of the stream the core plays, if it has one.
    fn shape(&mut self) -> Option<(u32, usize)> {
        let core = lock(&self.shared.core);
        let stream = core.stream()?;
        #[cfg(feature = "cpal")]
        {
            self.latency = stream.target_latency;
            self.packet = stream.ptime;
        }
        Some((stream.sample_rate, core.channels_out()))
    }

    pub(crate) fn run(mut self) {
        if !matches!(self.dac, Dac::Virtual(_)) {
            self.run_pulled();
            return;
        }
        let mut out = vec![0f32; self.block * 2];
        let mut sink_buf = vec![0f32; self.block * self.channels];
        // The rate the DAC was made ready for.
        let mut rate: Option<u32> = None;
        let mut first_ns = None;
        let mut frames = 0u64;
        let mut late_blocks = 0u64;
        while !self.shared.shutdown.load(Ordering::Acquire) {
            let Some((r, _)) = self.shape() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            if rate != Some(r) {
                // A new stream at another rate (or the first): the DAC is made ready for it
                // (allocation here is off the steady-state path).
                if let Err(e) = self.prepare_dac(r, rate.is_some()) {
                    self.shared.output_failed(e);
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                rate = Some(r);
            }
            let Some((next, dac_frames)) = self.next_block() else {
                break;
            };
            let rendered = {
                let mut core = lock(&self.shared.core);
                let ch = core.channels_out();
                if core.stream().map(|s| s.sample_rate) != rate || ch == 0 {
                    // The stream changed while the block waited: the next pass adapts.
                    continue;
                }
                if out.len() != self.block * ch {
                    // A role change (allocation here happens once per change).
                    out.resize(self.block * ch, 0.0);
                }
                let now = self.clock.now();
                core.render(now, next, dac_frames, &mut out)
            };
            let ch = rendered.channels.max(1);
            let r = rate.unwrap_or(48_000);
            // The device's channels: a chain with fewer (a role change, a card with more
            // channels) repeats its last.
            for (dst, src) in sink_buf
                .chunks_exact_mut(self.channels)
                .zip(out.chunks_exact(ch))
            {
                for (c, d) in dst.iter_mut().enumerate() {
                    *d = src[c.min(ch - 1)];
                }
            }
            let Some(true_ns) = self.emit(&sink_buf) else {
                break;
            };
            first_ns.get_or_insert(true_ns);
            frames += self.block as u64;
            let block = Block {
                samples: &sink_buf,
                channels: self.channels,
                rate: r,
                first_frame: dac_frames,
                leaves_at: next,
                leaves_at_monotonic: TrueInstant::from_nanos(true_ns),
            };
            if self.sink.paced() {
                // Handed over when it leaves, so that a pipe's bytes come at the DAC's pace.
                self.clock.sleep_until(next);
            }
            let began = self.clock.now();
            if let Err(e) = self.sink.write(&block) {
                // The sink's error stops the output; the follower reports it.
                lock(&self.shared.output).playing = false;
                self.shared.output_failed(NodeError::Sink(e));
                return;
            }
            let block_ns = frames_to_span(self.block, r).as_nanos();
            if (self.clock.now() - began).as_nanos() > block_ns {
                late_blocks += 1;
            }
            let mut o = lock(&self.shared.output);
            o.buffer_level = frames_to_span(rendered.buffered_frames, r);
            if let Some(report) = rendered.report {
                o.underruns = report.underruns;
                o.playing = report.state != State::Idle;
                o.error = Some(Nanos(report.error_ns.round() as i64));
            } else {
                o.playing = false;
            }
            o.first_sample_ns = first_ns;
            o.frames = frames;
            o.rate_hz = self.rate_hz;
            o.late_blocks = late_blocks;
            o.skipped_blocks = self.skipped_blocks;
        }
        if let Err(e) = self.sink.finish() {
            self.shared.output_failed(NodeError::Sink(e));
        }
    }

    /// The output of a pulled device: the callback renders; this thread reopens a sound
    /// card at a new stream rate, checks it, and publishes the callback's counters.
    fn run_pulled(mut self) {
        #[cfg(feature = "cpal")]
        let mut prepared: Option<u32> = None;
        let mut mismatch_reported = false;
        while !self.shared.shutdown.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(20));
            let shape = self.shape();
            #[cfg(feature = "cpal")]
            if let Some((r, _)) = shape
                && prepared != Some(r)
            {
                if let Err(e) = self.prepare_dac(r, prepared.is_some()) {
                    self.shared.output_failed(e);
                    continue;
                }
                prepared = Some(r);
            }
            let (stats, rate) = match &mut self.dac {
                #[cfg(feature = "cpal")]
                Dac::Device(device) => {
                    if let Some(reason) = device.check(self.latency, self.packet) {
                        // The card stops: the follower reports why.
                        lock(&self.shared.output).playing = false;
                        self.shared.output_failed(NodeError::Device { reason });
                        break;
                    }
                    (device.stats(), device.rate())
                }
                Dac::Callback(monitor, device_rate) => {
                    let stats = monitor.stats();
                    if let Some((r, _)) = shape
                        && r != *device_rate
                        && stats.mismatched_callbacks > 0
                        && !mismatch_reported
                    {
                        mismatch_reported = true;
                        self.shared.output_failed(NodeError::Device {
                            reason: format!(
                                "the stream's rate is {r} Hz, the callback's device \
                                 {device_rate} Hz: it plays silence"
                            ),
                        });
                    }
                    (stats, *device_rate)
                }
                Dac::Virtual(_) => return,
            };
            self.publish(&stats, rate);
        }
    }

    /// Publishes a pulled output's counters for status queries and the report.
    fn publish(&self, stats: &PullStats, rate: u32) {
        let mut o = lock(&self.shared.output);
        o.buffer_level = frames_to_span(stats.buffered_frames as usize, rate);
        o.underruns = stats.underruns + stats.missed_callbacks;
        o.playing = stats.playing;
        o.error = stats.playing.then_some(Nanos(stats.error_ns));
        o.first_sample_ns = stats.first_play.map(|t| self.clock.to_monotonic(t));
        o.rate_hz = stats.rate_hz * (1.0 + self.clock.drift_ppm() * 1e-6);
        o.frames = stats.frames;
    }
}

/// How long `frames` frames at `rate` Hz last (a rate of 0 counts as 1 Hz).
fn frames_to_span(frames: usize, rate: u32) -> Nanos {
    MediaTime::new(frames as i64, rate.max(1)).to_nanos_floor()
}
