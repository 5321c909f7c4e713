//! The [`Leader`]: serves its clock, streams its source and admits followers.
//!
//! Control sessions: the acceptor thread takes TCP connections on the control port and
//! gives each its own thread, up to [`LeaderConfig::max_sessions`] at once. When all are
//! taken, the oldest handshake unfinished for half a second gives its slot to the new
//! connection, so idle or trickling connections cannot keep a speaker out; without one,
//! the new connection is closed at once, so a flood of connections costs little and never
//! touches the media or clock threads. A session first runs the handshake of [`crate::control`] with a deadline; a
//! follower that fails it gets a typed [`Refusal`] and a closed connection. An admitted one
//! is added as a PTP peer and an RTP destination until it leaves or its connection drops.
//!
//! Everything the leader decides lives in one [`LeaderCore`] shared by the threads: the
//! PTP master, the sender and its pacing, the sessions and the group. The threads only
//! read the clock and move bytes between the sockets and the core: the PTP thread
//! ([`ClockLeader`]'s), the media thread ([`MediaLoop`]), the acceptor and one thread per
//! control connection.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::control::{
    FollowerStatus, GroupSecret, HouseholdKey, Message, Protection, Refusal, Role, StreamParams,
    TimestampKind, new_nonce, write_message,
};
use crate::core::{
    ConnId, LeaderCore, LeaderCoreConfig, LeaderCoreEvent, LeaderError, LeaderMember, check_latency,
};
use crate::media::sdp::{PtpReference, SessionDescription};
use crate::media::sender::{RtpSender, SenderConfig};
use crate::media::{AudioFormat, CodecKind};
use crate::net::{Dscp, Multicast, UdpConfig, UdpSocket};
use crate::node::clock::{LocalClock, NodeClock};
use crate::node::leader_media::MediaLoop;
use crate::node::ptp::{ClockLeader, MasterThread, PtpSocketConfig, PtpSockets, lock};
use crate::node::source::AudioSource;
use crate::node::{NodeError, spawn};
use crate::ptp::{ClockIdentity, MasterConfig, PtpStats};
use crate::time::Nanos;

/// How a [`Leader`] is set up. [`LeaderConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// How the stream and the clock are protected between this leader and the followers
    /// it admits, with each session's keys. Default: both
    /// ([`Protection::default`]); followers refuse less unless configured to accept it.
    /// The static destinations ([`dests`](Self::dests)) always get plain RTP.
    pub protection: Protection,
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
            protection: Protection::default(),
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
    /// Unfinished handshakes closed to give their slot to a new connection.
    pub evicted: u64,
    /// New group keys handed out because a member left a protected multicast stream.
    pub group_key_rotations: u64,
    /// The PTP master's counters.
    pub ptp: PtpStats,
    /// Which receive timestamps the PTP event socket delivers (kernel or user space).
    pub timestamping: TimestampKind,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rtp_packets: AtomicU64,
    pub(crate) rtp_send_errors: AtomicU64,
}

/// The core all the leader's threads drive.
pub(crate) type Core = Arc<Mutex<LeaderCore<SocketAddr>>>;

pub(crate) struct LeaderShared {
    pub(crate) shutdown: AtomicBool,
    pub(crate) next_source: Mutex<Option<Box<dyn AudioSource>>>,
    pub(crate) counters: Counters,
    pub(crate) core: Core,
    /// Each open connection's socket, that its bytes leave by. (Lock order: a writer
    /// before the core.)
    writers: Mutex<Vec<(ConnId, Arc<Mutex<TcpStream>>)>>,
    /// Bumped, and notified, whenever a status answer comes in.
    answers: (Mutex<u64>, Condvar),
    /// Session threads running.
    open: AtomicU64,
    next_conn: AtomicU64,
    handshake_timeout: Duration,
    clock: NodeClock,
}

impl LeaderShared {
    fn writer(&self, conn: ConnId) -> Option<Arc<Mutex<TcpStream>>> {
        lock(&self.writers)
            .iter()
            .find(|(c, _)| *c == conn)
            .map(|(_, w)| Arc::clone(w))
    }

    /// Sends what the core has queued for `conn`. The writer is held from the poll to the
    /// write, so that frames leave in the order the core queued them.
    fn flush(&self, conn: ConnId) -> std::io::Result<()> {
        let Some(writer) = self.writer(conn) else {
            return Ok(());
        };
        let mut w = lock(&writer);
        while let Some(bytes) = lock(&self.core).poll_control_transmit(conn) {
            w.write_all(&bytes)?;
        }
        Ok(())
    }

    fn flush_all(&self) {
        let conns: Vec<ConnId> = lock(&self.writers).iter().map(|(c, _)| *c).collect();
        for conn in conns {
            // A follower whose connection fails is dropped by its session thread.
            let _ = self.flush(conn);
        }
    }

    /// Takes the core's events: only status answers need a thread woken.
    fn drain_events(&self, core: &mut LeaderCore<SocketAddr>) {
        while let Some(e) = core.poll_event() {
            if let LeaderCoreEvent::Status { .. } = e {
                let (m, cv) = &self.answers;
                *lock(m) += 1;
                cv.notify_all();
            }
        }
    }
}

fn node_error(e: LeaderError) -> NodeError {
    match e {
        LeaderError::UnknownFollower { id } => NodeError::UnknownFollower { id },
        LeaderError::Pair(Refusal::ModelMismatch {
            model,
            partner_model,
        }) => NodeError::ModelMismatch {
            model,
            partner_model,
        },
        LeaderError::Pair(r) => NodeError::Config {
            field: "pair",
            reason: r.to_string(),
        },
        LeaderError::OutOfRange { field, reason } => NodeError::Config { field, reason },
        LeaderError::Media(e) => NodeError::Sender(e),
        other => NodeError::Leader(other),
    }
}

/// A leader node. See the [`node`](crate::node) module docs.
pub struct Leader {
    shared: Arc<LeaderShared>,
    threads: Vec<JoinHandle<()>>,
    ptp: MasterThread,
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
        let format = AudioFormat::new(config.sample_rate, config.channels)?;
        let ptime_ms = (config.ptime.as_nanos() / 1_000_000) as u32;
        let nonce = new_nonce().map_err(NodeError::Random)?;
        let mut sc = SenderConfig::new(config.codec, format, ssrc_from(&nonce));
        sc.ptime_ms = Some(ptime_ms);
        sc.initial_sequence = u16::from_be_bytes([nonce[4], nonce[5]]);
        // Checked before any port is bound (the core checks them again).
        let sender = RtpSender::new(sc.clone())?;
        check_latency(config.latency, config.ptime).map_err(node_error)?;

        let listener = TcpListener::bind(config.control).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => NodeError::AddrInUse {
                addr: config.control,
            },
            _ => NodeError::Socket {
                what: "the control port",
                source: e,
            },
        })?;
        let control = listener.local_addr().map_err(|e| NodeError::Socket {
            what: "the control port's address",
            source: e,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| NodeError::Socket {
                what: "the control port (non-blocking)",
                source: e,
            })?;

        let mut ptp_sockets = PtpSocketConfig::new(ip);
        (ptp_sockets.event_port, ptp_sockets.general_port) = config.ptp_ports;
        let mut id = [0u8; 8];
        id.copy_from_slice(&nonce[8..16]);
        let clock_identity = ClockIdentity(id);
        let ptp_sockets = PtpSockets::bind(&ptp_sockets, clock.clone())?;
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
                .map_err(NodeError::from_net)?;
        }
        let rtp_port = rtp.local_addr().port();
        let rtcp = if config.dests.is_empty() {
            None
        } else {
            Some(
                std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| {
                    NodeError::Socket {
                        what: "the RTCP socket",
                        source: e,
                    }
                })?,
            )
        };
        let stream = StreamParams {
            codec: crate::control::CodecId::from_kind(config.codec),
            sample_rate: config.sample_rate,
            channels: config.channels as u8,
            payload_type: sender.payload_type(),
            ssrc: sender.ssrc(),
            rtp_port,
            multicast: config.multicast.map(|m| m.group),
            ptp_event_port: ptp_sockets.event_port(),
            ptp_general_port: ptp_sockets.general_port(),
            target_latency: config.latency,
            ptime: config.ptime,
            protection: config.protection,
        };
        if let Some(path) = &config.sdp {
            write_sdp(path, &config, &stream, clock_identity, ip)?;
        }

        let mut master = MasterConfig::new(clock_identity);
        master.tx_timestamps = ptp_sockets.kernel_tx();
        let mut cc = LeaderCoreConfig::new(
            config.group.clone(),
            config.key.clone(),
            stream.clone(),
            sc,
            master,
        );
        cc.dests = config.dests.clone();
        cc.multicast = config.multicast.map(|m| SocketAddr::V4(m.group));
        cc.rtcp = rtcp.is_some();
        cc.max_sessions = config.max_sessions;
        if cc.multicast.is_some() && stream.protection.media.is_some() {
            let mut secret = [0u8; 32];
            secret[..16].copy_from_slice(&new_nonce().map_err(NodeError::Random)?);
            secret[16..].copy_from_slice(&new_nonce().map_err(NodeError::Random)?);
            cc.group_secret = Some(GroupSecret::new(secret));
            secret.fill(0);
        }
        let core: Core = Arc::new(Mutex::new(
            LeaderCore::new(cc, clock.now()).map_err(node_error)?,
        ));
        let ptp = ClockLeader::run(ptp_sockets, clock.clone(), Arc::clone(&core))?;
        let shared = Arc::new(LeaderShared {
            shutdown: AtomicBool::new(false),
            next_source: Mutex::new(None),
            counters: Counters::default(),
            core,
            writers: Mutex::new(Vec::new()),
            answers: (Mutex::new(0), Condvar::new()),
            open: AtomicU64::new(0),
            next_conn: AtomicU64::new(1),
            handshake_timeout: config.handshake_timeout,
            clock: clock.clone(),
        });

        let media = MediaLoop {
            shared: Arc::clone(&shared),
            clock,
            rtp,
            rtcp,
            source,
            channels: usize::from(config.channels),
            frames: sender.frames_per_packet(),
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
            ptp,
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
        lock(&self.shared.core)
            .members()
            .into_iter()
            .map(info)
            .collect()
    }

    /// The counters.
    pub fn stats(&self) -> LeaderStats {
        let c = &self.shared.counters;
        let core = lock(&self.shared.core);
        let s = core.stats();
        LeaderStats {
            rtp_packets: c.rtp_packets.load(Ordering::Relaxed),
            rtp_send_errors: c.rtp_send_errors.load(Ordering::Relaxed),
            admitted: s.admitted,
            refused_wrong_key: s.refused_wrong_key,
            refused_other: s.refused_other,
            refused_busy: s.refused_busy,
            evicted: s.evicted,
            group_key_rotations: s.group_key_rotations,
            ptp: *core.ptp_stats(),
            timestamping: self.ptp.timestamping,
        }
    }

    /// Runs `command` on the core, then sends what it queued for the connections it names.
    fn command<const N: usize>(
        &self,
        command: impl FnOnce(&mut LeaderCore<SocketAddr>) -> Result<[ConnId; N], LeaderError>,
    ) -> Result<(), NodeError> {
        let conns = command(&mut lock(&self.shared.core)).map_err(node_error)?;
        for conn in conns {
            self.shared
                .flush(conn)
                .map_err(|e| NodeError::Control(crate::control::ControlError::Io(e)))?;
        }
        Ok(())
    }

    /// Sets follower `id`'s volume (0 to 1).
    pub fn set_volume(&self, id: u64, volume: f32) -> Result<(), NodeError> {
        self.command(|c| c.set_volume(id, volume).map(|c| [c]))
    }

    /// Mutes or unmutes follower `id`.
    pub fn set_mute(&self, id: u64, muted: bool) -> Result<(), NodeError> {
        self.command(|c| c.set_mute(id, muted).map(|c| [c]))
    }

    /// Sets follower `id`'s latency trim: positive plays later (a speaker nearer the
    /// listener), within ±100 ms.
    pub fn set_trim(&self, id: u64, trim: Nanos) -> Result<(), NodeError> {
        self.command(|c| c.set_trim(id, trim).map(|c| [c]))
    }

    /// Makes followers `left` and `right` a stereo pair. Two different models are refused
    /// with [`NodeError::ModelMismatch`] and nothing changes.
    pub fn pair(&self, left: u64, right: u64) -> Result<(), NodeError> {
        self.command(|c| c.pair(left, right))
    }

    /// Pauses the group: the stream stops and every follower fades out.
    pub fn pause(&self) {
        lock(&self.shared.core).pause();
        self.shared.flush_all();
    }

    /// Resumes the group after [`pause`](Self::pause).
    pub fn resume(&self) {
        lock(&self.shared.core).resume();
        self.shared.flush_all();
    }

    /// Whether paused.
    pub fn is_paused(&self) -> bool {
        lock(&self.shared.core).is_paused()
    }

    /// Switches to `source`, with a 50 ms crossfade; the followers carry on.
    pub fn switch_source(&self, source: Box<dyn AudioSource>) {
        *lock(&self.shared.next_source) = Some(source);
    }

    /// Asks every joined follower for its status and waits up to `timeout` for the answers;
    /// a follower that does not answer in time has `None`.
    pub fn status(&self, timeout: Duration) -> Vec<(FollowerInfo, Option<FollowerStatus>)> {
        let asked: Vec<(FollowerInfo, u32)> = {
            let mut core = lock(&self.shared.core);
            let queries = core.query_status();
            core.members()
                .into_iter()
                .filter_map(|mb| {
                    let &(_, q) = queries.iter().find(|(id, _)| *id == mb.id)?;
                    Some((info(mb), q))
                })
                .collect()
        };
        self.shared.flush_all();
        let deadline = Instant::now() + timeout;
        let (m, cv) = &self.shared.answers;
        loop {
            // (The answers' lock is never held with the core's: session threads take the
            // core first.)
            let seen = *lock(m);
            {
                let core = lock(&self.shared.core);
                let answered = |id: u64, q: u32| {
                    core.status(id)
                        .filter(|(got, _)| *got == q)
                        .map(|(_, st)| st.clone())
                };
                let done = asked.iter().all(|(i, q)| answered(i.id, *q).is_some());
                if done || Instant::now() >= deadline {
                    return asked
                        .into_iter()
                        .map(|(i, q)| {
                            let st = answered(i.id, q);
                            (i, st)
                        })
                        .collect();
                }
            }
            let mut now_seen = lock(m);
            while *now_seen == seen {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                now_seen = cv
                    .wait_timeout(now_seen, left)
                    .map(|r| r.0)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
    }

    /// Stops streaming, closes every session and joins the threads.
    pub fn shutdown(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        let writers: Vec<_> = lock(&self.shared.writers)
            .iter()
            .map(|(_, w)| Arc::clone(w))
            .collect();
        for w in writers {
            let _ = lock(&w).shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.ptp.halt();
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

fn info(m: LeaderMember<SocketAddr>) -> FollowerInfo {
    FollowerInfo {
        id: m.id,
        name: m.name,
        model: m.model,
        role: m.role,
        addr: m.addr,
        volume: m.volume,
        muted: m.muted,
        trim: m.trim,
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
    let format = AudioFormat::new(config.sample_rate, config.channels)?;
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
                let conn = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
                let Ok(nonce) = new_nonce() else {
                    continue;
                };
                let opened =
                    lock(&shared.core).handle_connect(conn, shared.clock.now(), addr, nonce);
                if let Ok(Some(evicted)) = opened {
                    // An unfinished handshake gave its slot up: its thread, blocked on the
                    // read, sees the connection end and leaves.
                    let writer = lock(&shared.writers)
                        .iter()
                        .find(|(c, _)| *c == evicted)
                        .map(|(_, w)| Arc::clone(w));
                    if let Some(w) = writer {
                        let _ = lock(&w).shutdown(Shutdown::Both);
                    }
                }
                if opened.is_err() {
                    // Full: a Busy refusal, then the close. The fresh socket's send buffer
                    // takes the frame at once, so a flood never holds this thread; a
                    // follower that gets it retries.
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
                    serve(&s, stream, conn);
                    s.open.fetch_sub(1, Ordering::AcqRel);
                });
                if spawned.is_err() {
                    lock(&shared.core).handle_disconnect(conn);
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

/// One control connection: moves its bytes into the core and the core's out, until the
/// session is over or the connection fails. The handshake must finish within the
/// handshake timeout overall: a peer trickling bytes cannot hold the session open.
fn serve(shared: &Arc<LeaderShared>, mut stream: TcpStream, conn: ConnId) {
    let _ = stream.set_nonblocking(false);
    crate::net::tune_control(&stream);
    let _ = stream.set_read_timeout(Some(shared.handshake_timeout));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if let Ok(writer) = stream.try_clone() {
        lock(&shared.writers).push((conn, Arc::new(Mutex::new(writer))));
        let deadline = Instant::now() + shared.handshake_timeout;
        let mut joined = false;
        let mut buf = [0u8; 4096];
        while !shared.shutdown.load(Ordering::Acquire) {
            if !joined && Instant::now() >= deadline {
                break;
            }
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let closed = {
                let mut core = lock(&shared.core);
                let _ = core.handle_control(conn, shared.clock.now(), &buf[..n]);
                shared.drain_events(&mut core);
                if !joined && core.is_joined(conn) {
                    joined = true;
                    let _ = stream.set_read_timeout(None);
                }
                core.is_closed(conn)
            };
            // The Challenge, the Welcome, a Pong, or the refusal before the close.
            if shared.flush(conn).is_err() || closed {
                break;
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    lock(&shared.writers).retain(|(c, _)| *c != conn);
    let mut core = lock(&shared.core);
    core.handle_disconnect(conn);
    shared.drain_events(&mut core);
    drop(core);
    // A member of a protected multicast stream left: the others' new group key goes now.
    shared.flush_all();
}
