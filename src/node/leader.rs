//! The [`Leader`]: serves its clock, streams its source and admits followers.
//!
//! Control sessions: the acceptor thread takes TCP connections on the control port and
//! gives each its own thread, up to [`LeaderConfig::max_sessions`] at once (more are closed
//! at once, so a flood of connections costs little and never touches the media or clock
//! threads). A session first runs the handshake of [`crate::control`] with a deadline; a
//! follower that fails it gets a typed [`Refusal`] and a closed connection. An admitted one
//! is added as a PTP peer and an RTP destination until it leaves or its connection drops.
//!
//! The protocol lives in [`LeaderSession`] and the rules in one [`Admission`] that every
//! session shares; a session thread only moves bytes between its socket and those.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::control::{
    Admission, AdmissionError, FollowerStatus, HouseholdKey, LeaderEvent, LeaderSession, Message,
    Refusal, Role, StreamParams, TimestampKind, new_nonce, write_message,
};
use crate::media::sdp::{PtpReference, SessionDescription};
use crate::media::sender::{RtpSender, SenderConfig};
use crate::media::{AudioFormat, CodecKind};
use crate::net::{Dscp, Multicast, UdpConfig, UdpSocket};
use crate::node::clock::{LocalClock, NodeClock};
use crate::node::leader_media::MediaLoop;
use crate::node::ptp::{ClockLeader, ClockLeaderConfig, PtpPeer, PtpSocketConfig, lock};
use crate::node::source::AudioSource;
use crate::node::{NodeError, spawn};
use crate::ptp::{ClockIdentity, PtpStats};
use crate::time::Nanos;

/// How a [`Leader`] is set up. [`LeaderConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// The group's name; followers asking for another group are refused.
    pub group: String,
    /// The household key followers must prove.
    pub key: HouseholdKey,
    /// TCP address of the control port. Its IP is also where the UDP sockets bind.
    pub control: SocketAddr,
    /// PTP event and general ports (0: any free port; 319 and 320 for linuxptp).
    pub ptp_ports: (u16, u16),
    /// Source port of the RTP stream (0: any).
    pub rtp_port: u16,
    /// The codec.
    pub codec: CodecKind,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Channels of the stream.
    pub channels: u16,
    /// Audio per packet.
    pub ptime: Nanos,
    /// From capture to playout on every follower: the group's target latency.
    pub latency: Nanos,
    /// Static destinations that get the stream without joining (a standard player).
    pub dests: Vec<SocketAddr>,
    /// Send the stream once to an IPv4 multicast group (AES67 style) instead of once to
    /// each follower; followers join the group. `None`: unicast.
    pub multicast: Option<MulticastStream>,
    /// Where to write an SDP file describing the stream for the static destinations.
    pub sdp: Option<PathBuf>,
    /// The leader's clock.
    pub clock: LocalClock,
    /// Most control sessions (handshaking or joined) at once.
    pub max_sessions: usize,
    /// How long a connecting follower has to finish the handshake.
    pub handshake_timeout: Duration,
}

impl LeaderConfig {
    /// Defaults: control on `control`, L24 48 kHz stereo in 5 ms packets, the default
    /// latency ([`DEFAULT_LATENCY`]), monotonic clock, 64 sessions, 2 s handshakes.
    pub fn new(group: &str, key: HouseholdKey, control: SocketAddr) -> LeaderConfig {
        LeaderConfig {
            group: group.into(),
            key,
            control,
            ptp_ports: (0, 0),
            rtp_port: 0,
            codec: CodecKind::L24,
            sample_rate: 48_000,
            channels: 2,
            ptime: Nanos::from_millis(5),
            latency: DEFAULT_LATENCY,
            dests: Vec::new(),
            multicast: None,
            sdp: None,
            clock: LocalClock::Monotonic,
            max_sessions: 64,
            handshake_timeout: Duration::from_secs(2),
        }
    }
}

/// Where a multicast stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastStream {
    /// The IPv4 multicast group and port (for example 239.69.0.1:5004).
    pub group: SocketAddrV4,
    /// The address of the leader's interface the stream leaves by: multicast is only ever
    /// sent where the caller says, never wherever the routing table points.
    pub interface: Ipv4Addr,
    /// Hops the datagrams may take; 1 keeps them on the local link.
    pub ttl: u32,
}

/// The default target latency. See the README ("Latency") for why: it covers a Wi-Fi
/// retransmission burst and a busy machine's scheduling stalls with room to spare, yet is
/// short enough that pressing play feels immediate. Loopback runs down to 20 ms.
pub const DEFAULT_LATENCY: Nanos = Nanos(100_000_000);

/// A joined follower, as the leader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowerInfo {
    /// The session id the leader gave it.
    pub id: u64,
    /// Its device name.
    pub name: String,
    /// Its model id.
    pub model: String,
    /// Its role.
    pub role: Role,
    /// Its control connection's address.
    pub addr: SocketAddr,
    /// Volume, 0 to 1.
    pub volume: f32,
    /// Muted or not.
    pub muted: bool,
    /// Latency trim.
    pub trim: Nanos,
}

/// The leader's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderStats {
    /// RTP datagrams sent (each destination counts).
    pub rtp_packets: u64,
    /// RTP sends that failed.
    pub rtp_send_errors: u64,
    /// Followers admitted since the start.
    pub admitted: u64,
    /// Handshakes refused because the key proof failed.
    pub refused_wrong_key: u64,
    /// Handshakes refused for another reason (replay, role, model, group, version, malformed).
    pub refused_other: u64,
    /// Connections closed at once because every session slot was taken.
    pub refused_busy: u64,
    /// The PTP master's counters.
    pub ptp: PtpStats,
    /// Which receive timestamps the PTP event socket delivers (kernel or user space).
    pub timestamping: TimestampKind,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rtp_packets: AtomicU64,
    pub(crate) rtp_send_errors: AtomicU64,
    admitted: AtomicU64,
    refused_wrong_key: AtomicU64,
    refused_other: AtomicU64,
    refused_busy: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Dests {
    /// Joined followers' RTP addresses, by session id.
    pub(crate) followers: Vec<(u64, SocketAddr)>,
    /// Static destinations.
    pub(crate) fixed: Vec<SocketAddr>,
}

/// Where a session's reader leaves the latest Status answer for [`Leader::status`].
type StatusSlot = Arc<(Mutex<Option<(u32, FollowerStatus)>>, Condvar)>;

/// A joined follower's connection: its session, and the socket its frames leave by.
struct Link {
    session: LeaderSession,
    stream: TcpStream,
}

impl Link {
    /// Queues `msg` and sends what is queued.
    fn send(&mut self, msg: &Message) -> Result<(), NodeError> {
        self.session
            .send(msg)
            .map_err(|e| NodeError::Socket(format!("control message: {e}")))?;
        self.flush()
            .map_err(|e| NodeError::Control(crate::control::ControlError::Io(e)))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        while let Some(bytes) = self.session.poll_transmit() {
            self.stream.write_all(&bytes)?;
        }
        Ok(())
    }
}

/// What the leader keeps of a joined follower beside its [`Member`] entry in the
/// admission (name, model, role).
///
/// [`Member`]: crate::control::Member
struct Session {
    id: u64,
    addr: SocketAddr,
    volume: f32,
    muted: bool,
    trim: Nanos,
    link: Arc<Mutex<Link>>,
    status: StatusSlot,
}

/// The admission rules and the joined followers, under one lock. (Lock order: the registry
/// before any [`Link`]; nothing takes the registry while holding a link.)
struct Registry {
    admission: Admission,
    sessions: Vec<Session>,
}

impl Registry {
    fn info(&self, s: &Session) -> Option<FollowerInfo> {
        let m = self.admission.member(s.id)?;
        Some(FollowerInfo {
            id: s.id,
            name: m.name.clone(),
            model: m.model.clone(),
            role: m.role,
            addr: s.addr,
            volume: s.volume,
            muted: s.muted,
            trim: s.trim,
        })
    }

    fn links(&self) -> Vec<Arc<Mutex<Link>>> {
        self.sessions.iter().map(|s| Arc::clone(&s.link)).collect()
    }

    fn link(&self, id: u64) -> Option<Arc<Mutex<Link>>> {
        self.sessions
            .iter()
            .find(|s| s.id == id)
            .map(|s| Arc::clone(&s.link))
    }
}

pub(crate) struct LeaderShared {
    pub(crate) shutdown: AtomicBool,
    pub(crate) paused: AtomicBool,
    pub(crate) next_source: Mutex<Option<Box<dyn AudioSource>>>,
    pub(crate) dests: Mutex<Dests>,
    pub(crate) dest_version: AtomicU64,
    pub(crate) counters: Counters,
    registry: Mutex<Registry>,
    /// Connections being served (handshaking or joined).
    open: AtomicU64,
    next_query: AtomicU64,
    handshake_timeout: Duration,
    max_sessions: usize,
    clock: Arc<ClockLeader>,
}

/// A leader node. See the [`node`](crate::node) module docs.
pub struct Leader {
    shared: Arc<LeaderShared>,
    threads: Vec<JoinHandle<()>>,
    control: SocketAddr,
    stream: StreamParams,
}

impl std::fmt::Debug for Leader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leader")
            .field("control", &self.control)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

fn ssrc_from(nonce: &[u8; 16]) -> u32 {
    u32::from_be_bytes([nonce[0], nonce[1], nonce[2], nonce[3]])
}

impl Leader {
    /// Binds its ports, starts its threads and begins streaming `source`.
    ///
    /// Fails with [`NodeError::AddrInUse`] if a port is taken.
    pub fn start(config: LeaderConfig, source: Box<dyn AudioSource>) -> Result<Leader, NodeError> {
        let ip = config.control.ip();
        let clock = NodeClock::new(config.clock.clone());
        let format = AudioFormat::new(config.sample_rate, config.channels)
            .map_err(|e| NodeError::Media(e.to_string()))?;
        let ptime_ms = (config.ptime.as_nanos() / 1_000_000) as u32;
        let nonce = new_nonce().map_err(|e| NodeError::Socket(e.to_string()))?;
        let mut sc = SenderConfig::new(config.codec, format, ssrc_from(&nonce));
        sc.ptime_ms = Some(ptime_ms);
        sc.initial_sequence = u16::from_be_bytes([nonce[4], nonce[5]]);
        let sender = RtpSender::new(sc).map_err(|e| NodeError::Media(e.to_string()))?;
        if config.latency < config.ptime + Nanos::from_millis(5)
            || config.latency > Nanos::from_secs(5)
        {
            return Err(NodeError::Config {
                field: "latency",
                reason: format!(
                    "must be from ptime + 5 ms to 5 s, got {} ms",
                    config.latency.as_nanos() / 1_000_000
                ),
            });
        }

        let listener = TcpListener::bind(config.control).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => NodeError::AddrInUse {
                addr: config.control,
            },
            _ => NodeError::Socket(format!("control port {}: {e}", config.control)),
        })?;
        let control = listener
            .local_addr()
            .map_err(|e| NodeError::Socket(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| NodeError::Socket(e.to_string()))?;

        let mut ptp_sockets = PtpSocketConfig::new(ip);
        (ptp_sockets.event_port, ptp_sockets.general_port) = config.ptp_ports;
        let mut id = [0u8; 8];
        id.copy_from_slice(&nonce[8..16]);
        let clock_identity = ClockIdentity(id);
        let ptp = ClockLeader::start(
            ClockLeaderConfig {
                sockets: ptp_sockets,
                clock_identity,
            },
            clock.clone(),
        )?;
        if let Some(m) = config.multicast
            && !m.group.ip().is_multicast()
        {
            return Err(NodeError::Config {
                field: "multicast",
                reason: format!("{} is not an IPv4 multicast group", m.group.ip()),
            });
        }
        let rtp = UdpSocket::bind(&UdpConfig {
            dscp: Dscp::Af41,
            multicast: config.multicast.map(|m| Multicast {
                group: *m.group.ip(),
                interface: m.interface,
                ttl: m.ttl,
                // Followers on this host hear the stream too.
                loopback: true,
            }),
            ..UdpConfig::new(SocketAddr::new(ip, config.rtp_port))
        })
        .map_err(NodeError::from_net)?;
        if let Some(m) = config.multicast {
            // The socket only sends: out of the group, it does not queue its own copies.
            rtp.leave_multicast(*m.group.ip(), m.interface)
                .map_err(|e| NodeError::Socket(e.to_string()))?;
        }
        let rtp_port = rtp.local_addr().port();
        let rtcp = if config.dests.is_empty() {
            None
        } else {
            Some(
                std::net::UdpSocket::bind(SocketAddr::new(ip, 0))
                    .map_err(|e| NodeError::Socket(format!("RTCP socket: {e}")))?,
            )
        };
        let (ev, gen_port) = ptp.ports();
        let stream = StreamParams {
            codec: crate::control::CodecId::from_kind(config.codec),
            sample_rate: config.sample_rate,
            channels: config.channels as u8,
            payload_type: sender.payload_type(),
            ssrc: sender.ssrc(),
            rtp_port,
            multicast: config.multicast.map(|m| m.group),
            ptp_event_port: ev,
            ptp_general_port: gen_port,
            target_latency: config.latency,
            ptime: config.ptime,
        };
        if let Some(path) = &config.sdp {
            write_sdp(path, &config, &stream, clock_identity, ip)?;
        }

        let shared = Arc::new(LeaderShared {
            shutdown: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            next_source: Mutex::new(None),
            dests: Mutex::new(Dests {
                followers: Vec::new(),
                fixed: config.dests.clone(),
            }),
            dest_version: AtomicU64::new(0),
            counters: Counters::default(),
            registry: Mutex::new(Registry {
                admission: Admission::new(config.group.clone(), config.key.clone(), stream.clone()),
                sessions: Vec::new(),
            }),
            open: AtomicU64::new(0),
            next_query: AtomicU64::new(1),
            handshake_timeout: config.handshake_timeout,
            max_sessions: config.max_sessions.max(1),
            clock: Arc::new(ptp),
        });

        // One packet per chunk: the sender's own frame count (it rounds 44.1 kHz down).
        let frames = sender.frames_per_packet();
        let media = MediaLoop {
            shared: Arc::clone(&shared),
            clock,
            sender,
            rtp,
            rtcp,
            source,
            channels: usize::from(config.channels),
            latency: config.latency,
            multicast: config.multicast.map(|m| SocketAddr::V4(m.group)),
            frames,
            rate: config.sample_rate,
        };
        let mut threads = Vec::new();
        threads.push(spawn("lockstep-media", move || media.run())?);
        let s = Arc::clone(&shared);
        threads.push(spawn("lockstep-accept", move || {
            accept_loop(&s, &listener)
        })?);
        Ok(Leader {
            shared,
            threads,
            control,
            stream,
        })
    }

    /// The control port's address (with the port picked, if 0 was asked for).
    pub fn control_addr(&self) -> SocketAddr {
        self.control
    }

    /// The stream's parameters, as followers are told them.
    pub fn stream(&self) -> &StreamParams {
        &self.stream
    }

    /// The joined followers.
    pub fn followers(&self) -> Vec<FollowerInfo> {
        let reg = lock(&self.shared.registry);
        reg.sessions.iter().filter_map(|s| reg.info(s)).collect()
    }

    /// The counters.
    pub fn stats(&self) -> LeaderStats {
        let c = &self.shared.counters;
        LeaderStats {
            rtp_packets: c.rtp_packets.load(Ordering::Relaxed),
            rtp_send_errors: c.rtp_send_errors.load(Ordering::Relaxed),
            admitted: c.admitted.load(Ordering::Relaxed),
            refused_wrong_key: c.refused_wrong_key.load(Ordering::Relaxed),
            refused_other: c.refused_other.load(Ordering::Relaxed),
            refused_busy: c.refused_busy.load(Ordering::Relaxed),
            ptp: self.shared.clock.stats(),
            timestamping: self.shared.clock.timestamping(),
        }
    }

    fn send_to(
        &self,
        id: u64,
        msg: &Message,
        update: impl FnOnce(&mut Session),
    ) -> Result<(), NodeError> {
        let link = {
            let mut reg = lock(&self.shared.registry);
            let s = reg
                .sessions
                .iter_mut()
                .find(|s| s.id == id)
                .ok_or(NodeError::UnknownFollower { id })?;
            update(s);
            Arc::clone(&s.link)
        };
        lock(&link).send(msg)
    }

    /// Sets follower `id`'s volume (0 to 1).
    pub fn set_volume(&self, id: u64, volume: f32) -> Result<(), NodeError> {
        if !(0.0..=1.0).contains(&volume) {
            return Err(NodeError::Config {
                field: "volume",
                reason: format!("must be 0 to 1, got {volume}"),
            });
        }
        self.send_to(id, &Message::SetVolume { volume }, |i| i.volume = volume)
    }

    /// Mutes or unmutes follower `id`.
    pub fn set_mute(&self, id: u64, muted: bool) -> Result<(), NodeError> {
        self.send_to(id, &Message::SetMute { muted }, |i| i.muted = muted)
    }

    /// Sets follower `id`'s latency trim: positive plays later (a speaker nearer the
    /// listener), within ±100 ms.
    pub fn set_trim(&self, id: u64, trim: Nanos) -> Result<(), NodeError> {
        if trim.abs() > Nanos::from_millis(100) {
            return Err(NodeError::Config {
                field: "trim",
                reason: "must be within ±100 ms".into(),
            });
        }
        self.send_to(id, &Message::SetTrim { trim }, |i| i.trim = trim)
    }

    /// Makes followers `left` and `right` a stereo pair. Two different models are refused
    /// with [`NodeError::ModelMismatch`] and nothing changes.
    pub fn pair(&self, left: u64, right: u64) -> Result<(), NodeError> {
        let links = {
            let mut reg = lock(&self.shared.registry);
            reg.admission.pair(left, right).map_err(|e| match e {
                AdmissionError::UnknownMember { id } => NodeError::UnknownFollower { id },
                AdmissionError::Refused(Refusal::ModelMismatch {
                    model,
                    partner_model,
                }) => NodeError::ModelMismatch {
                    model,
                    partner_model,
                },
                AdmissionError::Refused(r) => NodeError::Config {
                    field: "pair",
                    reason: r.to_string(),
                },
            })?;
            [(left, Role::Left), (right, Role::Right)].map(|(id, role)| (reg.link(id), role))
        };
        for (link, role) in links {
            if let Some(link) = link {
                lock(&link).send(&Message::SetRole { role })?;
            }
        }
        Ok(())
    }

    /// Pauses the group: the stream stops and every follower fades out.
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::Release);
        self.broadcast(&Message::Pause);
    }

    /// Resumes the group after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.broadcast(&Message::Resume);
        self.shared.paused.store(false, Ordering::Release);
    }

    /// Whether paused.
    pub fn is_paused(&self) -> bool {
        self.shared.paused.load(Ordering::Acquire)
    }

    /// Switches to `source`, with a 50 ms crossfade; the followers carry on.
    pub fn switch_source(&self, source: Box<dyn AudioSource>) {
        *lock(&self.shared.next_source) = Some(source);
    }

    fn broadcast(&self, msg: &Message) {
        let links = lock(&self.shared.registry).links();
        for link in links {
            // A follower whose connection fails is dropped by its session thread.
            let _ = lock(&link).send(msg);
        }
    }

    /// Asks every joined follower for its status and waits up to `timeout` for the answers;
    /// a follower that does not answer in time has `None`.
    pub fn status(&self, timeout: Duration) -> Vec<(FollowerInfo, Option<FollowerStatus>)> {
        let asked: Vec<_> = {
            let reg = lock(&self.shared.registry);
            reg.sessions
                .iter()
                .filter_map(|s| {
                    let id = self.shared.next_query.fetch_add(1, Ordering::Relaxed) as u32;
                    Some((reg.info(s)?, Arc::clone(&s.link), Arc::clone(&s.status), id))
                })
                .collect()
        };
        for (_, link, _, id) in &asked {
            let _ = lock(link).send(&Message::StatusQuery { id: *id });
        }
        let deadline = std::time::Instant::now() + timeout;
        asked
            .into_iter()
            .map(|(info, _, slot, id)| {
                let (m, cv) = &*slot;
                let mut got = lock(m);
                loop {
                    if let Some((qid, st)) = got.as_ref()
                        && *qid == id
                    {
                        let st = st.clone();
                        return (info, Some(st));
                    }
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return (info, None);
                    }
                    got = cv
                        .wait_timeout(got, left)
                        .map(|r| r.0)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            })
            .collect()
    }

    /// Stops streaming, closes every session and joins the threads.
    pub fn shutdown(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        let links = lock(&self.shared.registry).links();
        for link in links {
            let _ = lock(&link).stream.shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Session threads end when their sockets close; wait a little for them to
        // deregister so that the ports are free for a restart.
        for _ in 0..100 {
            if self.shared.open.load(Ordering::Acquire) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.halt();
    }
}

fn write_sdp(
    path: &std::path::Path,
    config: &LeaderConfig,
    stream: &StreamParams,
    clock: ClockIdentity,
    origin: IpAddr,
) -> Result<(), NodeError> {
    let (dest, ttl) = match (config.multicast, config.dests.first()) {
        (Some(m), _) => (SocketAddr::V4(m.group), Some(m.ttl.min(255) as u8)),
        (None, Some(d)) => (*d, None),
        (None, None) => {
            return Err(NodeError::Config {
                field: "sdp",
                reason: "an SDP file describes a static destination or a multicast group: \
                         set dests or multicast too"
                    .into(),
            });
        }
    };
    let format = AudioFormat::new(config.sample_rate, config.channels)
        .map_err(|e| NodeError::Media(e.to_string()))?;
    let sdp = SessionDescription {
        session_name: config.group.clone(),
        session_id: u64::from(stream.ssrc),
        origin,
        destination: dest,
        multicast_ttl: ttl,
        payload_type: stream.payload_type,
        codec: config.codec,
        format,
        ptime_ms: Some((config.ptime.as_nanos() / 1_000_000) as u32),
        ntp_extension_id: Some(1),
        ptp_reference: Some(PtpReference {
            clock_identity: clock.0,
            domain: 0,
        }),
        media_clock_offset: Some(0),
    };
    std::fs::write(path, sdp.to_sdp()).map_err(|e| NodeError::Config {
        field: "sdp",
        reason: format!("cannot write {}: {e}", path.display()),
    })
}

fn accept_loop(shared: &Arc<LeaderShared>, listener: &TcpListener) {
    while !shared.shutdown.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, addr)) => {
                if shared.open.load(Ordering::Acquire) as usize >= shared.max_sessions {
                    // Full: a Busy refusal, then the close. The fresh socket's send buffer
                    // takes the frame at once, so a flood never holds this thread; a
                    // follower that gets it retries.
                    shared.counters.refused_busy.fetch_add(1, Ordering::Relaxed);
                    let mut s = stream;
                    let mut scratch = Vec::new();
                    let _ = s.set_write_timeout(Some(Duration::from_millis(50)));
                    let _ = write_message(
                        &mut s,
                        &Message::Refused {
                            refusal: Refusal::Busy,
                        },
                        &mut scratch,
                    );
                    continue;
                }
                shared.open.fetch_add(1, Ordering::AcqRel);
                let s = Arc::clone(shared);
                let spawned = spawn("lockstep-session", move || {
                    serve(&s, stream, addr);
                    s.open.fetch_sub(1, Ordering::AcqRel);
                });
                if spawned.is_err() {
                    shared.open.fetch_sub(1, Ordering::AcqRel);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// One control session: the handshake, then messages until the follower leaves.
fn serve(shared: &Arc<LeaderShared>, mut stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nonblocking(false);
    crate::net::tune_control(&stream);
    let _ = stream.set_read_timeout(Some(shared.handshake_timeout));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let Some((id, link, status, peer)) = handshake(shared, &mut stream, addr) else {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    };
    shared.counters.admitted.fetch_add(1, Ordering::Relaxed);
    shared.dest_version.fetch_add(1, Ordering::AcqRel);
    shared.clock.add_peer(peer);

    // Joined: read until the follower leaves or the connection fails. Writes come from the
    // Leader's methods through the link too.
    let _ = stream.set_read_timeout(None);
    let mut buf = [0u8; 4096];
    let mut events = Vec::new();
    'read: while !shared.shutdown.load(Ordering::Acquire) {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut reg = lock(&shared.registry);
            let mut l = lock(&link);
            l.session.handle_input(&buf[..n], &mut reg.admission);
            drop(reg);
            // (A Pong, or a refusal of a frame that did not decode.)
            let _ = l.flush();
            while let Some(e) = l.session.poll_event() {
                events.push(e);
            }
        }
        for e in events.drain(..) {
            match e {
                LeaderEvent::Status {
                    id: qid,
                    status: st,
                } => {
                    let (m, cv) = &*status;
                    *lock(m) = Some((qid, st));
                    cv.notify_all();
                }
                LeaderEvent::Refused(_) => {
                    shared
                        .counters
                        .refused_other
                        .fetch_add(1, Ordering::Relaxed);
                    break 'read;
                }
                LeaderEvent::Left => break 'read,
                LeaderEvent::Joined { .. } => {}
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    {
        let mut reg = lock(&shared.registry);
        reg.admission.remove(id);
        reg.sessions.retain(|s| s.id != id);
    }
    lock(&shared.dests).followers.retain(|(sid, _)| *sid != id);
    shared.dest_version.fetch_add(1, Ordering::AcqRel);
    shared.clock.remove_peer(peer);
}

/// Runs the leader's half of the handshake, within the handshake timeout overall. A
/// refusal is sent before it returns `None`; so is nothing when the connection failed.
fn handshake(
    shared: &LeaderShared,
    stream: &mut TcpStream,
    addr: SocketAddr,
) -> Option<(u64, Arc<Mutex<Link>>, StatusSlot, PtpPeer)> {
    let deadline = Instant::now() + shared.handshake_timeout;
    let mut session = LeaderSession::new(new_nonce().ok()?);
    let writer = stream.try_clone().ok()?;
    let mut buf = [0u8; 1024];
    loop {
        // (Each read waits the handshake timeout at most, and the whole handshake too: a
        // peer trickling bytes cannot hold the session open.)
        if Instant::now() >= deadline {
            return None;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        let mut reg = lock(&shared.registry);
        session.handle_input(&buf[..n], &mut reg.admission);
        let mut joined = None;
        while let Some(e) = session.poll_event() {
            match e {
                LeaderEvent::Joined { id, ports, .. } => joined = Some((id, ports)),
                LeaderEvent::Refused(r) => {
                    let counter = if r == Refusal::WrongKey {
                        &shared.counters.refused_wrong_key
                    } else {
                        &shared.counters.refused_other
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                LeaderEvent::Status { .. } | LeaderEvent::Left => {}
            }
        }
        let Some((id, ports)) = joined else {
            drop(reg);
            // The Challenge, or the refusal before the close.
            let mut sent = true;
            while let Some(bytes) = session.poll_transmit() {
                sent &= stream.write_all(&bytes).is_ok();
            }
            if session.is_closed() || !sent {
                let _ = stream.flush();
                return None;
            }
            continue;
        };
        // Registered before the Welcome leaves: a follower that has it can be steered.
        let status: StatusSlot = Arc::new((Mutex::new(None), Condvar::new()));
        let link = Arc::new(Mutex::new(Link {
            session,
            stream: writer,
        }));
        reg.sessions.push(Session {
            id,
            addr,
            volume: 1.0,
            muted: false,
            trim: Nanos::ZERO,
            link: Arc::clone(&link),
            status: Arc::clone(&status),
        });
        drop(reg);
        if lock(&link).flush().is_err() {
            let mut reg = lock(&shared.registry);
            reg.admission.remove(id);
            reg.sessions.retain(|s| s.id != id);
            return None;
        }
        lock(&shared.dests)
            .followers
            .push((id, SocketAddr::new(addr.ip(), ports.rtp)));
        let peer = PtpPeer::new(addr.ip(), ports.ptp_event, ports.ptp_general);
        return Some((id, link, status, peer));
    }
}
