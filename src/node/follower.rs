//! The [`Follower`]: joins a leader's group and plays its stream in step.
//!
//! [`Follower::start`] binds the follower's sockets, connects to the leader's control port
//! and runs the handshake before it returns, so a wrong household key, a refused stereo
//! pair or an unreachable leader is an error the caller sees. Then four threads run: the
//! PTP slave ([`ClockFollower`]), the media receiver, the audio output and the control
//! session. When the control connection drops (the leader restarted), the session thread
//! reconnects by itself, every 100 ms, and the new session's stream replaces the old.
//!
//! Everything a follower decides is in one [`FollowerCore`] that the threads share: the
//! clock, the control session, the stream and the playout. The threads only move bytes and
//! time between it and the sockets, the clock and the output.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::control::{
    Capabilities, ControlError, FollowerStatus, Hello, HouseholdKey, PeerPorts, Rejections, Role,
    SessionError, StreamParams, new_nonce,
};
use crate::core::{
    CoreEvent, EstimatorFactory, FollowerCore, FollowerCoreConfig, PullOutput, StageFactory,
    default_estimator,
};
use crate::net::{Dscp, Multicast, UdpConfig, UdpSocket};
use crate::node::clock::{LocalClock, NodeClock};
use crate::node::follower_io::{MediaLoop, OutputLoop, OutputShared};
use crate::node::ptp::{ClockFollower, ClockFollowerConfig, PtpPeer, PtpSocketConfig, lock};
use crate::node::{NodeError, spawn};
use crate::playout::corrector::CorrectorKind;
use crate::playout::sink::{SampleFormat, SharedSink, SinkError};
use crate::ptp::{ClockIdentity, PortIdentity, SlaveConfig};
use crate::time::Nanos;

/// Why [`Output::Device`] is refused in a build without the `cpal` feature.
pub(crate) const NEEDS_CPAL: &str = "a sound card needs lockstep built with the `cpal` feature";

/// Where a follower's audio goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Nowhere (the timing still runs, on the virtual DAC).
    Null,
    /// A 32-bit float WAV file, with a sidecar `<file>.json` holding the true emission time
    /// of its first sample and its rate, for the sync meter.
    Wav(PathBuf),
    /// A sound card: the named output device (an ALSA PCM name such as `default`, `pulse`
    /// or `hw:0,0`, or the description the host lists), or the host's default output when
    /// `None`. The card's own crystal sets the pace: its callbacks' timestamps are filtered
    /// into when each frame plays (see [`DeviceClock`](crate::playout::device_clock)), and
    /// the playout steers the resampler to that. Needs the `cpal` feature; without it
    /// [`Follower::start`] refuses it with [`NodeError::Config`].
    Device(Option<String>),
    /// Raw interleaved PCM in this format on standard output, each block written when it
    /// leaves the virtual DAC, so that the bytes arrive at the DAC's pace: for a pipe
    /// (`| aplay`, `| pw-cat`) or a measurement. A closed pipe stops the output with
    /// [`SinkError::Closed`].
    Stdout(SampleFormat),
    /// A sink of the caller's own, paced by the virtual DAC on the node's clock.
    Custom(SharedSink),
    /// The caller's own audio callback pulls the audio: a device of `rate` Hz with
    /// `channels` interleaved channels, on its own crystal (an I2S driver, an ALSA or
    /// CoreAudio callback). [`Follower::take_pull_output`] hands the caller its
    /// [`PullOutput`], whose `fill` the callback calls with its buffer and its timestamps
    /// (see [`core::pull`](crate::core::PullRenderer)). A stream at another rate plays as
    /// silence and is reported by [`Follower::output_error`].
    Callback {
        /// The device's rate, Hz.
        rate: u32,
        /// The device's channels.
        channels: usize,
    },
}

/// The media socket's receive buffer, bytes (the kernel doubles it): junk sent to the
/// media port at line rate fills it first, and the stream's own packets are dropped once
/// it is full, so it holds about an eighth of a second of a 1500-byte flood at 28 000
/// datagrams a second (what one port of the flood test takes) while the media thread is
/// kept off the CPU.
const MEDIA_RECV_BUFFER: usize = 4 << 20;

/// How a [`Follower`] is set up. [`FollowerConfig::new`] gives the defaults.
#[derive(Clone)]
#[non_exhaustive]
pub struct FollowerConfig {
    /// The leader's control address.
    pub leader: SocketAddr,
    /// The household key.
    pub key: HouseholdKey,
    /// The role asked for.
    pub role: Role,
    /// The group asked for; empty takes the leader's.
    pub group: String,
    /// The device's name.
    pub name: String,
    /// The device's model id (both halves of a stereo pair must have the same).
    pub model: String,
    /// Where the audio goes.
    pub output: Output,
    /// The local clock; [`LocalClock::Drifting`] simulates a crystal for tests and the demo.
    pub clock: LocalClock,
    /// Address to bind the UDP sockets to.
    pub bind: IpAddr,
    /// The address of the interface to join a multicast stream on. Multicast is never
    /// joined wherever the routing table points: without it, a leader that streams to a
    /// multicast group is refused with [`NodeError::Config`]. Default: `bind`, when that
    /// is a specific IPv4 address.
    pub multicast_interface: Option<Ipv4Addr>,
    /// The drift corrector.
    pub corrector: CorrectorKind,
    /// DAC block, in frames (at 48 kHz, 240 is 5 ms).
    pub block_frames: usize,
    /// How long before a block leaves the DAC it is rendered.
    pub render_lead: Nanos,
    /// A sound card's callback size, in frames ([`Output::Device`] only); `None` takes the
    /// device's default. Larger survives a busier machine, at the cost of latency the
    /// follower then renders further ahead for.
    pub device_period_frames: Option<u32>,
    /// Delay from the DAC to the ear (a sound card's buffer, an amplifier's DSP): the
    /// follower emits that much earlier so that the sound is heard on time, and reports it
    /// to the leader.
    pub output_latency: Nanos,
    /// Makes the clock estimator. Default: lockstep's own.
    pub estimator: EstimatorFactory,
    /// Extra stages after the role's (a room EQ): `None`, none.
    pub stages: Option<StageFactory>,
    /// Play a leader's stream even if its media or clock is not authenticated. Default
    /// `false`: such a leader is refused with a clear error, since anyone on the network
    /// could then play on this speaker or pull its clock. The status says when it is.
    pub accept_unauthenticated: bool,
}

impl std::fmt::Debug for FollowerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowerConfig")
            .field("leader", &self.leader)
            .field("role", &self.role)
            .field("group", &self.group)
            .field("name", &self.name)
            .field("model", &self.model)
            .field("output", &self.output)
            .field("clock", &self.clock)
            .field("bind", &self.bind)
            .field("corrector", &self.corrector)
            .field("block_frames", &self.block_frames)
            .field("render_lead", &self.render_lead)
            .field("output_latency", &self.output_latency)
            .field("stages", &self.stages.is_some())
            .field("accept_unauthenticated", &self.accept_unauthenticated)
            .finish_non_exhaustive()
    }
}

impl FollowerConfig {
    /// Defaults: full range, no output, monotonic clock, sockets on the leader's side of
    /// loopback or any address, sinc corrector, 5 ms blocks rendered 3 ms ahead.
    pub fn new(leader: SocketAddr, key: HouseholdKey, role: Role) -> FollowerConfig {
        let bind = if leader.ip().is_loopback() {
            leader.ip()
        } else {
            IpAddr::from([0, 0, 0, 0])
        };
        let multicast_interface = match bind {
            IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
            _ => None,
        };
        FollowerConfig {
            leader,
            key,
            role,
            multicast_interface,
            group: String::new(),
            name: "lockstep speaker".into(),
            model: "lockstep-generic".into(),
            output: Output::Null,
            clock: LocalClock::Monotonic,
            bind,
            corrector: CorrectorKind::Sinc,
            block_frames: 240,
            render_lead: Nanos::from_millis(3),
            output_latency: Nanos::ZERO,
            device_period_frames: None,
            estimator: default_estimator(),
            stages: None,
            accept_unauthenticated: false,
        }
    }
}

/// The session a follower holds with its leader.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// The session id.
    pub session: u64,
    /// The group.
    pub group: String,
    /// The role granted.
    pub role: Role,
    /// The stream.
    pub stream: StreamParams,
    /// The leader's address (its IP is where the stream comes from).
    pub leader: SocketAddr,
}

/// What a stopped follower played.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowerReport {
    /// The WAV file, if the output was one.
    pub wav: Option<PathBuf>,
    /// When its first sample left the DAC, on the machine's monotonic clock (ns).
    pub first_sample_ns: Option<i64>,
    /// Frames per second of the monotonic clock the DAC emitted at.
    pub rate_hz: f64,
    /// Frames emitted.
    pub frames: u64,
    /// Its status at the end.
    pub status: FollowerStatus,
    /// Sessions held (more than 1 after reconnections).
    pub sessions: u64,
    /// Blocks the sink took longer than a block's duration to take.
    pub late_blocks: u64,
    /// Blocks a paced sink (a pipe a player reads in real time) skipped, as a card runs
    /// dry, because the follower got to them more than 100 ms after they were due (it was
    /// stopped or starved): silence where they were, rather than a burst of stale audio.
    pub skipped_blocks: u64,
}

pub(crate) struct FollowerShared {
    pub(crate) shutdown: AtomicBool,
    pub(crate) session: Mutex<Option<SessionInfo>>,
    /// Bumped for every new session or stream: the media thread takes its source afresh.
    pub(crate) generation: AtomicU64,
    /// The follower itself; every thread drives it.
    pub(crate) core: Arc<Mutex<FollowerCore<SocketAddr>>>,
    pub(crate) unknown_source: AtomicU64,
    pub(crate) output: Mutex<OutputShared>,
    /// Why the sink stopped the output, typed, for [`Follower::stop`].
    /// The first failure that stopped the output, typed, for [`Follower::stop`].
    pub(crate) output_failure: Mutex<Option<NodeError>>,
    pub(crate) sessions: AtomicU64,
    pub(crate) clock: ClockFollower,
    /// The node's own clock (the one `clock` estimates the leader's against).
    pub(crate) local: NodeClock,
    /// Where to join a multicast stream.
    pub(crate) multicast_interface: Option<Ipv4Addr>,
    /// The socket joined to the current session's multicast group, handed to the media
    /// thread at the session's start.
    pub(crate) multicast: Mutex<Option<UdpSocket>>,
    /// The pull handle of an [`Output::Callback`], until the caller takes it.
    pub(crate) pull_output: Mutex<Option<PullOutput<SocketAddr>>>,
}

impl FollowerShared {
    /// The output stopped working: its reason shows in the status and
    /// [`Follower::output_error`], and the first such failure is what [`Follower::stop`]
    /// returns.
    pub(crate) fn output_failed(&self, e: NodeError) {
        lock(&self.output).sink_error = Some(e.to_string());
        lock(&self.output_failure).get_or_insert(e);
    }

    fn status(&self) -> FollowerStatus {
        let (est, rx_stats, (volume, muted, trim, _), security) = {
            let core = lock(&self.core);
            let clock = core.clock();
            let a = clock.auth_rejections();
            (
                core.estimate(),
                core.receiver_stats().unwrap_or_default(),
                core.steering(),
                (
                    core.media_authenticated(),
                    clock.is_authenticated(),
                    core.media_rejections(),
                    Rejections {
                        bad_tag: a.bad_tag + a.missing,
                        replay: a.replay,
                        unknown_key: a.unknown_key,
                        malformed: a.malformed,
                    },
                ),
            )
        };
        let out = lock(&self.output).clone();
        let now = self.local.now();
        FollowerStatus {
            clock_offset: est.map(|e| e.offset_at(now)),
            clock_rate_ppm: est.map(|e| e.rate_ppm).filter(|r| r.is_finite()),
            uncertainty: est.map(|e| e.uncertainty),
            clock_settled: est.is_some_and(|e| e.settled),
            clock_reason: est.map(|e| e.reason),
            buffer_level: out.buffer_level,
            packets_received: rx_stats.received,
            packets_lost: rx_stats.lost,
            packets_late: rx_stats.late,
            unknown_source: self.unknown_source.load(Ordering::Relaxed)
                + rx_stats
                    .rejected
                    .get(crate::media::receiver::RejectReason::WrongSsrc),
            underruns: out.underruns,
            skew_estimate: out.error,
            playing: out.playing,
            volume,
            muted,
            trim,
            timestamping: self.clock.timestamping(),
            media_authenticated: security.0,
            clock_authenticated: security.1,
            media_rejected: security.2,
            clock_rejected: security.3,
        }
    }
}

/// A follower node. See the [`node`](crate::node) module docs.
pub struct Follower {
    shared: Arc<FollowerShared>,
    threads: Vec<JoinHandle<()>>,
    control: Arc<Mutex<Option<TcpStream>>>,
    output: Output,
    ports: PeerPorts,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("session", &*lock(&self.shared.session))
            .finish_non_exhaustive()
    }
}

/// How long a connect or a handshake step may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between reconnection attempts.
const RECONNECT_EVERY: Duration = Duration::from_millis(100);

/// A follower's fixed identity, as it introduces itself.
#[derive(Clone)]
struct Identity {
    leader: SocketAddr,
    key: HouseholdKey,
    caps: Capabilities,
    role: Role,
    group: String,
    ports: PeerPorts,
}

impl Follower {
    /// Binds the sockets, joins the leader's group and starts playing.
    ///
    /// Errors: [`NodeError::Unreachable`] if the leader's control port does not answer,
    /// [`NodeError::Refused`] with the leader's reason (a wrong household key, a stereo
    /// pair of two models, ...), [`NodeError::LeaderNotAuthenticated`] if the leader cannot
    /// prove the key, [`NodeError::AddrInUse`] if a port is taken.
    pub fn start(config: FollowerConfig) -> Result<Follower, NodeError> {
        if config.block_frames == 0 || config.block_frames > 4096 {
            return Err(NodeError::Config {
                field: "block_frames",
                reason: format!("must be 1 to 4096, got {}", config.block_frames),
            });
        }
        if matches!(config.output, Output::Device(_)) && !cfg!(feature = "cpal") {
            return Err(NodeError::Config {
                field: "output",
                reason: NEEDS_CPAL.into(),
            });
        }
        let clock = NodeClock::new(config.clock.clone());
        let media = UdpSocket::bind(&UdpConfig {
            bind: SocketAddr::new(config.bind, 0),
            reuse_addr: false,
            dscp: Dscp::Af41,
            rx_timestamps: true,
            tx_timestamps: false,
            multicast: None,
            recv_buffer: Some(MEDIA_RECV_BUFFER),
        })
        .map_err(NodeError::from_net)?;
        let nonce = new_nonce().map_err(NodeError::Random)?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&nonce[..8]);
        let port = PortIdentity {
            clock_identity: ClockIdentity(id),
            port_number: 1,
        };
        let mut core_config = FollowerCoreConfig::new(SlaveConfig::new(port));
        core_config.estimator = Arc::clone(&config.estimator);
        core_config.stages = config.stages.clone();
        core_config.block_frames = config.block_frames;
        core_config.accept_unauthenticated = config.accept_unauthenticated;
        core_config.corrector = config.corrector;
        core_config.output_latency = config.output_latency;
        let core = Arc::new(Mutex::new(FollowerCore::new(core_config, config.role)));
        let ptp = ClockFollower::start_hosted(
            ClockFollowerConfig {
                sockets: PtpSocketConfig::new(config.bind),
                master: None,
                clock_identity: ClockIdentity(id),
            },
            clock.clone(),
            Arc::clone(&core),
        )?;
        let (ptp_event, ptp_general) = ptp.ports();
        let channels = match config.role {
            Role::Full => 2,
            _ => 1,
        };
        let identity = Identity {
            leader: config.leader,
            key: config.key.clone(),
            caps: Capabilities {
                model: config.model.clone(),
                name: config.name.clone(),
                channels,
                max_rate: 192_000,
                output_latency: config.output_latency,
            },
            role: config.role,
            group: config.group.clone(),
            ports: PeerPorts {
                rtp: media.local_addr().port(),
                ptp_event,
                ptp_general,
            },
        };
        let (stream, writer, session) = connect(&identity, &core)?;

        let shared = Arc::new(FollowerShared {
            shutdown: AtomicBool::new(false),
            session: Mutex::new(None),
            generation: AtomicU64::new(0),
            core,
            unknown_source: AtomicU64::new(0),
            output: Mutex::new(OutputShared::new()),
            output_failure: Mutex::new(None),
            sessions: AtomicU64::new(0),
            clock: ptp,
            local: clock.clone(),
            multicast_interface: config.multicast_interface,
            multicast: Mutex::new(None),
            pull_output: Mutex::new(None),
        });
        begin_session(&shared, session)?;
        let control = Arc::new(Mutex::new(Some(writer)));

        // The output (and its file) is made before any thread starts, so that a failure
        // here leaves nothing running.
        let output_loop = OutputLoop::new(Arc::clone(&shared), clock.clone(), &config)?;
        let mut threads = Vec::new();
        let media_loop = MediaLoop {
            shared: Arc::clone(&shared),
            socket: media,
            clock,
        };
        threads.push(spawn("lockstep-rx", move || media_loop.run())?);
        threads.push(spawn("lockstep-out", move || output_loop.run())?);
        let ports = identity.ports;
        let (s, c) = (Arc::clone(&shared), Arc::clone(&control));
        threads.push(spawn("lockstep-control", move || {
            control_loop(&s, &c, stream, &identity)
        })?);
        Ok(Follower {
            shared,
            threads,
            control,
            output: config.output,
            ports,
        })
    }

    /// The UDP ports it receives the stream and the clock on.
    pub fn ports(&self) -> PeerPorts {
        self.ports
    }

    /// The session held now (`None` while reconnecting).
    pub fn session(&self) -> Option<SessionInfo> {
        lock(&self.shared.session).clone()
    }

    /// Sessions held since the start (more than 1 after reconnections).
    pub fn sessions(&self) -> u64 {
        self.shared.sessions.load(Ordering::Relaxed)
    }

    /// Its status, as the leader's status query gets it.
    pub fn status(&self) -> FollowerStatus {
        self.shared.status()
    }

    /// The clock this follower reads (its simulated crystal, for a drifting one).
    pub fn clock(&self) -> NodeClock {
        self.shared.local.clone()
    }

    /// Why the output stopped working, if it did: the WAV file could not be written, or
    /// the sound card failed (or is no clock). The follower keeps its session; the caller
    /// decides whether to go on.
    pub fn output_error(&self) -> Option<String> {
        lock(&self.shared.output).sink_error.clone()
    }

    /// The handle an [`Output::Callback`] follower's audio callback fills its buffers
    /// with; `Some` once, for such a follower. The follower keeps publishing its counters
    /// in [`status`](Self::status) and the final report.
    pub fn take_pull_output(&self) -> Option<PullOutput<SocketAddr>> {
        lock(&self.shared.pull_output).take()
    }

    /// The clock estimate of the leader, if any.
    pub fn clock_estimate(&self) -> Option<crate::clock::ClockEstimate> {
        self.shared.clock.estimate()
    }

    /// Leaves the group, stops the threads and finishes the output file. Returns within a
    /// few seconds whatever the sink does: one that does not return from a block is left
    /// behind and reported as [`SinkError::Hung`].
    pub fn stop(mut self) -> Result<FollowerReport, NodeError> {
        self.halt();
        if let Some(e) = lock(&self.shared.output_failure).take() {
            return Err(e);
        }
        let out = lock(&self.shared.output).clone();
        Ok(FollowerReport {
            wav: match &self.output {
                Output::Wav(p) => Some(p.clone()),
                Output::Null
                | Output::Device(_)
                | Output::Stdout(_)
                | Output::Custom(_)
                | Output::Callback { .. } => None,
            },
            first_sample_ns: out.first_sample_ns,
            rate_hz: out.rate_hz,
            frames: out.frames,
            status: self.shared.status(),
            sessions: self.sessions(),
            late_blocks: out.late_blocks,
            skipped_blocks: out.skipped_blocks,
        })
    }

    fn halt(&mut self) {
        if self.shared.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(w) = lock(&self.control).as_mut() {
            if lock(&self.shared.core).leave().is_ok() {
                let _ = flush(&self.shared.core, w);
            }
            let _ = w.shutdown(Shutdown::Both);
        }
        // Every thread ends within moments of the flag; one that does not is inside a sink
        // that never returns. It is left behind rather than hang the caller.
        let deadline = std::time::Instant::now() + STOP_WAIT;
        for t in self.threads.drain(..) {
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                lock(&self.shared.output_failure).get_or_insert(NodeError::Sink(SinkError::Hung {
                    waited_ms: STOP_WAIT.as_millis() as u64,
                }));
            }
        }
    }
}

/// How long a stop waits for the follower's threads.
const STOP_WAIT: Duration = Duration::from_secs(3);

impl Drop for Follower {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Sends what the core has for the leader's control connection.
fn flush(core: &Mutex<FollowerCore<SocketAddr>>, w: &mut TcpStream) -> std::io::Result<()> {
    loop {
        let Some(bytes) = lock(core).poll_control_transmit() else {
            return Ok(());
        };
        w.write_all(&bytes)?;
    }
}

fn session_error(leader: SocketAddr, e: SessionError) -> NodeError {
    match e {
        SessionError::Refused(r) => NodeError::Refused(r),
        SessionError::LeaderNotAuthenticated => NodeError::LeaderNotAuthenticated { addr: leader },
        SessionError::Unexpected { what } => NodeError::Control(ControlError::Malformed { what }),
        SessionError::Frame(e) => NodeError::Control(e),
        SessionError::NotJoined => NodeError::Control(ControlError::Closed),
    }
}

/// Connects and runs the follower's half of the handshake through the core, within
/// [`CONTROL_TIMEOUT`] for each read and twice that overall. Returns the socket to read
/// from, a clone to write to, and the session joined (the core plays its stream already,
/// and holds whatever came with the Welcome).
fn connect(
    id: &Identity,
    core: &Mutex<FollowerCore<SocketAddr>>,
) -> Result<(TcpStream, TcpStream, SessionInfo), NodeError> {
    let mut stream = TcpStream::connect_timeout(&id.leader, CONTROL_TIMEOUT).map_err(|source| {
        NodeError::Unreachable {
            addr: id.leader,
            source,
        }
    })?;
    crate::net::tune_control(&stream);
    let _ = stream.set_read_timeout(Some(CONTROL_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CONTROL_TIMEOUT));
    let nonce = new_nonce().map_err(NodeError::Random)?;
    let hello = Hello {
        caps: id.caps.clone(),
        role: id.role,
        group: id.group.clone(),
        ports: id.ports,
    };
    lock(core)
        .connect(hello, id.key.clone(), nonce)
        .map_err(|e| session_error(id.leader, e))?;
    let mut writer = stream.try_clone().map_err(|e| NodeError::Socket {
        what: "the control connection",
        source: e,
    })?;
    let io = |e| NodeError::Control(ControlError::Io(e));
    let deadline = Instant::now() + 2 * CONTROL_TIMEOUT;
    let mut buf = [0u8; 1024];
    loop {
        flush(core, &mut writer).map_err(io)?;
        let event = lock(core).poll_event();
        match event {
            Some(CoreEvent::Joined(w)) => {
                let _ = stream.set_read_timeout(None);
                let info = SessionInfo {
                    session: w.session,
                    group: w.group,
                    role: w.role,
                    stream: w.stream,
                    leader: id.leader,
                };
                return Ok((stream, writer, info));
            }
            Some(CoreEvent::Failed(e)) => return Err(session_error(id.leader, e)),
            Some(CoreEvent::Unplayable(e)) => return Err(NodeError::Stream(e)),
            Some(_) => continue,
            None => {}
        }
        if Instant::now() >= deadline {
            return Err(io(std::io::ErrorKind::TimedOut.into()));
        }
        match stream.read(&mut buf) {
            Ok(0) => return Err(NodeError::Control(ControlError::Closed)),
            Ok(n) => lock(core).handle_control(&buf[..n]),
            Err(e) => return Err(io(e)),
        }
    }
}

/// Makes `session` the current one: the clock on its leader, its stream's source (the
/// core plays the stream already).
fn begin_session(shared: &FollowerShared, session: SessionInfo) -> Result<(), NodeError> {
    take_stream(shared, &session.stream)?;
    shared.clock.follow(Some(PtpPeer::new(
        session.leader.ip(),
        session.stream.ptp_event_port,
        session.stream.ptp_general_port,
    )));
    *lock(&shared.session) = Some(session);
    shared.sessions.fetch_add(1, Ordering::Relaxed);
    shared.generation.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// Where the datagrams of `stream` arrive: a multicast stream's group is joined on its own
/// socket, which the media thread takes at the next generation.
fn take_stream(shared: &FollowerShared, s: &StreamParams) -> Result<(), NodeError> {
    let multicast = match s.multicast {
        None => None,
        Some(group) => {
            let interface = shared.multicast_interface.ok_or(NodeError::Config {
                field: "multicast_interface",
                reason: format!(
                    "the leader streams to multicast group {group}: name the interface to \
                     join it on"
                ),
            })?;
            let socket = UdpSocket::bind(&UdpConfig {
                // Bound to the group itself: only its datagrams, whatever else shares the
                // port; several followers on one host share it.
                reuse_addr: true,
                dscp: Dscp::Af41,
                rx_timestamps: true,
                multicast: Some(Multicast {
                    group: *group.ip(),
                    interface,
                    ttl: 1,
                    loopback: true,
                }),
                recv_buffer: Some(MEDIA_RECV_BUFFER),
                ..UdpConfig::new(SocketAddr::V4(group))
            })
            .map_err(NodeError::from_net)?;
            Some(socket)
        }
    };
    *lock(&shared.multicast) = multicast;
    Ok(())
}

/// The session thread: moves the leader's bytes to the core and the core's back, acts on
/// what the core reports, and reconnects.
fn control_loop(
    shared: &FollowerShared,
    writer: &Mutex<Option<TcpStream>>,
    mut stream: TcpStream,
    id: &Identity,
) {
    let core = &*shared.core;
    let mut buf = [0u8; 4096];
    while !shared.shutdown.load(Ordering::Acquire) {
        // (The first pass runs what came with the Welcome.)
        let mut broken = false;
        loop {
            let event = lock(core).poll_event();
            let Some(event) = event else { break };
            match event {
                CoreEvent::StatusQuery(q) => {
                    let status = shared.status();
                    let _ = lock(core).send_status(q, status);
                }
                CoreEvent::Stream(st) => {
                    if let Err(e) = take_stream(shared, &st) {
                        shared.output_failed(e);
                    }
                    if let Some(s) = lock(&shared.session).as_mut() {
                        s.stream = st;
                    }
                    shared.generation.fetch_add(1, Ordering::AcqRel);
                }
                CoreEvent::Role(r) => {
                    if let Some(s) = lock(&shared.session).as_mut() {
                        s.role = r;
                    }
                }
                CoreEvent::Unplayable(e) => shared.output_failed(NodeError::Stream(e)),
                CoreEvent::Failed(_) => broken = true,
                CoreEvent::Joined(_) => {}
            }
        }
        if let Some(w) = lock(writer).as_mut() {
            broken |= flush(core, w).is_err();
        }
        if !broken {
            match stream.read(&mut buf) {
                Ok(n) if n > 0 => {
                    lock(core).handle_control(&buf[..n]);
                    continue;
                }
                // The connection ended or failed.
                _ => {}
            }
        }
        if shared.shutdown.load(Ordering::Acquire) {
            break;
        }
        // The leader went away: keep playing what is buffered, and reconnect.
        *lock(&shared.session) = None;
        match reconnect(shared, id) {
            Some((s, w)) => {
                *lock(writer) = Some(w);
                stream = s;
            }
            None => break,
        }
    }
}

fn reconnect(shared: &FollowerShared, id: &Identity) -> Option<(TcpStream, TcpStream)> {
    while !shared.shutdown.load(Ordering::Acquire) {
        std::thread::sleep(RECONNECT_EVERY);
        if let Ok((stream, writer, session)) = connect(id, &shared.core)
            && begin_session(shared, session).is_ok()
        {
            return Some((stream, writer));
        }
    }
    None
}
