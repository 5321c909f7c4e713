//! A whole leader, sans-IO: the PTP master, the RTP sender and its pacing, the control
//! sessions and the group they admit.

use std::collections::VecDeque;
use std::net::SocketAddr;

use thiserror::Error;

use crate::control::{
    Admission, AdmissionError, End, FollowerStatus, GroupSecret, HouseholdKey, LeaderEvent,
    LeaderSession, Message, Nonce, PeerPorts, Refusal, Role, SessionError, StreamParams,
};
use crate::media::rtcp::MAX_COMPOUND_LEN;
use crate::media::sender::{RtpSender, SenderConfig, SenderError};
use crate::media::srtp::{SrtpContext, SrtpProfile, SrtpStats};
use crate::ptp::{MasterConfig, PtpError, PtpKeys, PtpMaster, PtpPort, PtpStats, Transmit, TxTag};
use crate::time::{LeaderInstant, LocalInstant, MediaTime, Nanos};

/// If media is polled this late (a stalled machine), the pacing skips ahead rather than
/// bursting out the chunks it missed.
pub const MAX_MEDIA_BEHIND: Nanos = Nanos(200_000_000);

/// How long after a member leaves a protected multicast stream switches to the next
/// epoch's key: the new key goes to the other members at once, over their control
/// connections, and must be there before the first packet under it.
pub const GROUP_KEY_SWITCH: Nanos = Nanos(200_000_000);

/// The widest delay trim a leader sets: ±100 ms.
pub const MAX_TRIM: Nanos = Nanos(100_000_000);

/// An address a leader core sends to: a socket address on a node. The core derives a
/// follower's stream and clock addresses from its control connection's address and the
/// ports it names in its Hello.
pub trait Endpoint: Copy + Eq + std::fmt::Debug {
    /// The same host, at `port`.
    fn with_port(self, port: u16) -> Self;
    /// Its port.
    fn port(&self) -> u16;
}

impl Endpoint for SocketAddr {
    fn with_port(self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(), port)
    }

    fn port(&self) -> u16 {
        SocketAddr::port(self)
    }
}

/// Where a PTP peer listens: its event and general ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PtpPeer<A> {
    /// Event messages (Sync, Delay_Req) go here.
    pub event: A,
    /// General messages (Follow_Up, Delay_Resp, Announce, Signaling) go here.
    pub general: A,
}

impl<A: Copy> PtpPeer<A> {
    /// Where a datagram for `port` goes.
    pub fn to(&self, port: PtpPort) -> A {
        match port {
            PtpPort::Event => self.event,
            PtpPort::General => self.general,
        }
    }
}

impl PtpPeer<SocketAddr> {
    /// The peer at `ip` with ports `event` and `general`.
    pub fn new(ip: std::net::IpAddr, event: u16, general: u16) -> PtpPeer<SocketAddr> {
        PtpPeer {
            event: SocketAddr::new(ip, event),
            general: SocketAddr::new(ip, general),
        }
    }
}

/// Why a [`LeaderCore`] did not take an input or a command.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LeaderError {
    /// A PTP datagram came from an address that is no peer of the master.
    #[error("a PTP datagram from an address that is not a peer")]
    UnknownPeer,
    /// A PTP datagram was not used.
    #[error(transparent)]
    Ptp(#[from] PtpError),
    /// No open connection has this handle.
    #[error("no control connection {conn:?}")]
    UnknownConnection {
        /// The handle given.
        conn: ConnId,
    },
    /// A connection with this handle is open already.
    #[error("control connection {conn:?} is open already")]
    DuplicateConnection {
        /// The handle given.
        conn: ConnId,
    },
    /// Every session slot is taken: refuse the connection with [`Refusal::Busy`] and close.
    #[error("all {max} control sessions are taken")]
    Busy {
        /// The most sessions at once.
        max: usize,
    },
    /// The session refused its follower (after what it sent): send what is queued, then
    /// close.
    #[error("the follower was refused: {0}")]
    Refused(Refusal),
    /// No joined follower has this id.
    #[error("no follower with id {id}")]
    UnknownFollower {
        /// The id asked for.
        id: u64,
    },
    /// A stereo pair the admission rules refuse.
    #[error("cannot pair: {0}")]
    Pair(Refusal),
    /// A setting out of range.
    #[error("invalid {field}: {reason}")]
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A message could not be queued on a session.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The RTP sender refused its settings or the PCM.
    #[error(transparent)]
    Media(#[from] SenderError),
}

/// The target latency a leader accepts: from one packet plus 5 ms to 5 s.
pub fn check_latency(latency: Nanos, ptime: Nanos) -> Result<(), LeaderError> {
    if latency < ptime + Nanos::from_millis(5) || latency > Nanos::from_secs(5) {
        return Err(LeaderError::OutOfRange {
            field: "latency",
            reason: format!(
                "must be from ptime + 5 ms to 5 s, got {} ms",
                latency.as_nanos() / 1_000_000
            ),
        });
    }
    Ok(())
}

fn leader_time(t: LocalInstant) -> LeaderInstant {
    // The leader's own clock is the group's timeline.
    LeaderInstant::from_nanos(t.as_nanos())
}

/// A PTP master and the peers it serves: the clock side of a leader. Sans-IO.
///
/// Call order: [`handle_ptp`](Self::handle_ptp) for every datagram with its receive time,
/// [`handle_transmitted`](Self::handle_transmitted) for every transmit stamp the sockets
/// report, [`handle_timeout`](Self::handle_timeout) once [`poll_timeout`](Self::poll_timeout)
/// has come, and after any of them [`poll_transmit`](Self::poll_transmit) until `None`,
/// sending each at once (a Sync is stamped when it is polled).
#[derive(Debug)]
pub struct MasterCore<A> {
    master: PtpMaster<PtpPeer<A>>,
    peers: Vec<PtpPeer<A>>,
    unknown_source: u64,
}

impl<A: Copy + Eq> MasterCore<A> {
    /// A master with `config`, serving nobody yet.
    pub fn new(config: MasterConfig) -> MasterCore<A> {
        MasterCore {
            master: PtpMaster::new(config),
            peers: Vec::new(),
            unknown_source: 0,
        }
    }

    /// Starts serving `peer` at `now` (with the burst of fast Syncs a new follower gets).
    /// A peer served already is left as it is.
    pub fn add_peer(&mut self, peer: PtpPeer<A>, now: LocalInstant) {
        if !self.peers.contains(&peer) {
            self.peers.push(peer);
            self.master.add_slave(peer, leader_time(now));
        }
    }

    /// As [`add_peer`](Self::add_peer), signing and checking its messages with `keys` (a
    /// session's: see [`PtpMaster::add_slave_with_keys`]). A peer served already starts
    /// again with these keys.
    pub fn add_peer_with_keys(&mut self, peer: PtpPeer<A>, now: LocalInstant, keys: PtpKeys) {
        if !self.peers.contains(&peer) {
            self.peers.push(peer);
        }
        self.master
            .add_slave_with_keys(peer, leader_time(now), Some(keys));
    }

    /// Stops serving `peer`.
    pub fn remove_peer(&mut self, peer: PtpPeer<A>) {
        self.peers.retain(|p| *p != peer);
        self.master.remove_slave(peer);
    }

    /// The peers served.
    pub fn peers(&self) -> &[PtpPeer<A>] {
        &self.peers
    }

    /// A datagram that arrived at `at` from `from`: a Delay_Req from a peer's event port or
    /// a burst request from its general port. Anything from elsewhere is counted in
    /// [`unknown_source`](Self::unknown_source).
    pub fn handle_ptp(
        &mut self,
        from: A,
        at: LocalInstant,
        bytes: &[u8],
    ) -> Result<(), LeaderError> {
        let Some(peer) = self
            .peers
            .iter()
            .find(|p| p.event == from || p.general == from)
        else {
            self.unknown_source += 1;
            return Err(LeaderError::UnknownPeer);
        };
        Ok(self.master.handle_receive(*peer, leader_time(at), bytes)?)
    }

    /// The transmit stamp of a datagram sent earlier.
    pub fn handle_transmitted(&mut self, tag: TxTag, at: LocalInstant) {
        self.master.handle_transmitted(tag, leader_time(at));
    }

    /// Queues what is due by `now` (Syncs, Announces, overdue Follow_Ups).
    pub fn handle_timeout(&mut self, now: LocalInstant) {
        if self
            .master
            .poll_timeout()
            .is_some_and(|t| t <= leader_time(now))
        {
            self.master.handle_timeout(leader_time(now));
        }
    }

    /// The next datagram, stamped as leaving at `now`; send it to
    /// [`PtpPeer::to`]`(tx.port)` of `tx.to`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: LocalInstant) -> Option<Transmit<PtpPeer<A>>> {
        self.master.poll_transmit(leader_time(now))
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<LocalInstant> {
        self.master
            .poll_timeout()
            .map(|t| LocalInstant::from_nanos(t.as_nanos()))
    }

    /// The master's counters.
    pub fn stats(&self) -> &PtpStats {
        self.master.stats()
    }

    /// Datagrams from addresses that are no peer.
    pub fn unknown_source(&self) -> u64 {
        self.unknown_source
    }
}

/// A control connection's handle, chosen by the driver (unique among open connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// How a [`LeaderCore`] is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeaderCoreConfig<A> {
    /// The group's name; followers asking for another group are refused.
    pub group: String,
    /// The household key followers must prove.
    pub key: HouseholdKey,
    /// The stream as followers are told it. Its target latency is the pacing's.
    pub stream: StreamParams,
    /// The RTP sender (codec, format, SSRC, first sequence number, packet time).
    pub sender: SenderConfig,
    /// The PTP master.
    pub master: MasterConfig,
    /// Destinations that get the stream without joining (a standard player).
    pub dests: Vec<A>,
    /// Send the stream once to this multicast group instead of once to each follower.
    pub multicast: Option<A>,
    /// Send RTCP sender reports to the static destinations' RTCP ports (RTP + 1).
    pub rtcp: bool,
    /// Most control connections (handshaking or joined) at once.
    pub max_sessions: usize,
    /// When every slot is taken, a handshake still unfinished after this long gives its
    /// slot to a new connection (the oldest such first): idle or trickling connections
    /// cannot keep a speaker out, and a handshake younger than this (a follower's takes a
    /// few round trips) is never cut short.
    pub evict_after: Nanos,
    /// The secret a protected multicast stream's group keys are derived from (32 random
    /// bytes; see [`GroupSecret`]). Needed when [`multicast`](Self::multicast) is set and
    /// the stream's media is protected; ignored otherwise.
    pub group_secret: Option<GroupSecret>,
}

impl<A> LeaderCoreConfig<A> {
    /// A unicast leader of `group` with key `key`, streaming `stream` with `sender`, its
    /// clock served by `master`; no static destinations, no RTCP, 64 sessions.
    pub fn new(
        group: impl Into<String>,
        key: HouseholdKey,
        stream: StreamParams,
        sender: SenderConfig,
        master: MasterConfig,
    ) -> LeaderCoreConfig<A> {
        LeaderCoreConfig {
            group: group.into(),
            key,
            stream,
            sender,
            master,
            dests: Vec::new(),
            multicast: None,
            rtcp: false,
            max_sessions: 64,
            evict_after: Nanos::from_millis(500),
            group_secret: None,
        }
    }
}

/// What a [`LeaderCore`] tells its driver.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LeaderCoreEvent {
    /// A follower joined: it is a PTP peer and an RTP destination now.
    Joined {
        /// Its connection.
        conn: ConnId,
        /// Its session id.
        id: u64,
    },
    /// A connection's follower was refused; close the connection once its queued bytes
    /// are sent.
    Refused {
        /// Its connection.
        conn: ConnId,
        /// Why.
        refusal: Refusal,
    },
    /// A joined follower left or its connection closed: it is no peer or destination now.
    Left {
        /// Its connection.
        conn: ConnId,
        /// Its session id.
        id: u64,
    },
    /// A follower answered a status query.
    Status {
        /// Its session id.
        id: u64,
        /// The query's id.
        query: u32,
        /// Its status.
        status: FollowerStatus,
    },
}

/// A joined follower, as a [`LeaderCore`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderMember<A> {
    /// Its session id.
    pub id: u64,
    /// Its control connection.
    pub conn: ConnId,
    /// Its control connection's address.
    pub addr: A,
    /// Its device name.
    pub name: String,
    /// Its model id.
    pub model: String,
    /// Its role.
    pub role: Role,
    /// Volume, 0 to 1.
    pub volume: f32,
    /// Muted or not.
    pub muted: bool,
    /// Delay trim.
    pub trim: Nanos,
}

/// A [`LeaderCore`]'s counters of the control side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderCoreStats {
    /// Followers admitted.
    pub admitted: u64,
    /// Handshakes refused because the key proof failed.
    pub refused_wrong_key: u64,
    /// Sessions refused for another reason (replay, role, model, group, version, malformed).
    pub refused_other: u64,
    /// Connections refused because every session slot was taken.
    pub refused_busy: u64,
    /// Unfinished handshakes closed to give their slot to a new connection.
    pub evicted: u64,
    /// New group keys handed out because a member left a protected multicast stream.
    pub group_key_rotations: u64,
}

/// Which socket a [`LeaderTransmit`] leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Channel {
    /// A PTP port; an event message has a tag for its transmit stamp.
    Ptp {
        /// Event or general.
        port: PtpPort,
        /// The tag to report the transmit stamp with.
        tag: Option<TxTag>,
    },
    /// The RTP socket.
    Rtp,
    /// The RTCP socket.
    Rtcp,
}

/// A datagram a [`LeaderCore`] sends: borrowed until the next call on the core.
#[derive(Debug, Clone, Copy)]
pub struct LeaderTransmit<'a, A> {
    /// Its destination.
    pub to: A,
    /// The socket it leaves by.
    pub channel: Channel,
    /// Its bytes.
    pub payload: &'a [u8],
}

/// A chunk of media due: fill `frames × channels` interleaved samples from the source and
/// hand them to [`LeaderCore::handle_media`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaChunk {
    /// Frames in the chunk (one packet's).
    pub frames: usize,
    /// Channels per frame.
    pub channels: usize,
    /// When its first frame was captured, on the leader's clock.
    pub captured: LocalInstant,
    /// When every follower plays its first frame: capture plus the target latency.
    pub play_at: LeaderInstant,
}

struct Conn<A> {
    id: ConnId,
    /// When it opened.
    opened: LocalInstant,
    addr: A,
    session: LeaderSession,
    joined: Option<Joined<A>>,
}

struct Joined<A> {
    id: u64,
    rtp: A,
    peer: PtpPeer<A>,
    volume: f32,
    muted: bool,
    trim: Nanos,
    status: Option<(u32, FollowerStatus)>,
    /// The SRTP context its stream is protected with.
    srtp: Option<SrtpContext>,
}

/// Media pacing: chunk `k` is captured during `[t₀ + k·d, t₀ + (k+1)·d)` and due at its end.
#[derive(Debug)]
struct Pacer {
    t0: LocalInstant,
    k: i64,
    frames: usize,
    rate: u32,
}

impl Pacer {
    /// The span of `k` chunks, exact to the nanosecond (a chunk is a whole number of
    /// frames, which at 44.1 kHz is not a whole number of nanoseconds).
    fn span(&self, k: i64) -> Nanos {
        let frames = k.saturating_mul(self.frames as i64);
        MediaTime::new(frames, self.rate.max(1)).to_nanos_floor()
    }

    fn due(&self) -> LocalInstant {
        self.t0 + self.span(self.k + 1)
    }
}

/// A protected multicast stream: its key's epoch and context, and the next epoch's,
/// handed out ahead of the switch.
struct GroupStream {
    secret: GroupSecret,
    profile: SrtpProfile,
    epoch: u32,
    srtp: SrtpContext,
    pending: Option<PendingKey>,
}

struct PendingKey {
    epoch: u32,
    srtp: SrtpContext,
    /// When the stream switches to it (set at the first media after the rotation).
    switch_at: Option<LocalInstant>,
}

/// Which context protects a media destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protect {
    /// Plain RTP.
    None,
    /// The member on this connection index, with its session's key.
    Member(usize),
    /// The multicast stream's group key.
    Group,
}

struct OutPacket {
    bytes: Vec<u8>,
    channel: Channel,
}

/// A leader, sans-IO: the PTP master and its peers ([`MasterCore`]), the RTP sender and the
/// pacing of its media, the control sessions keyed by a [`ConnId`] the driver chooses, the
/// one [`Admission`] they share, and the joined followers (each a PTP peer and an RTP
/// destination). It never reads a clock, sleeps or touches a socket: the
/// [`Leader`](crate::node::Leader) node drives one over real sockets and threads.
///
/// The leader's own clock is the group's timeline: a [`LocalInstant`] given to it is the
/// [`LeaderInstant`] of the same nanoseconds.
///
/// Call order:
/// - the clock: [`handle_ptp`](Self::handle_ptp) for every PTP datagram with its receive
///   time, [`handle_ptp_transmitted`](Self::handle_ptp_transmitted) for every transmit
///   stamp, [`handle_timeout`](Self::handle_timeout) once [`poll_timeout`](Self::poll_timeout)
///   has come;
/// - the control connections: [`handle_connect`](Self::handle_connect) with a fresh nonce
///   when one opens, [`handle_control`](Self::handle_control) with whatever arrives on it,
///   [`handle_disconnect`](Self::handle_disconnect) when it closes. Close a connection once
///   [`is_closed`](Self::is_closed) says so, after sending what is queued for it;
/// - the media: at [`poll_media_timeout`](Self::poll_media_timeout), take the chunk
///   [`poll_media`](Self::poll_media) gives, fill it from the source, and
///   [`handle_media`](Self::handle_media) it;
/// - the commands ([`set_volume`](Self::set_volume), [`pair`](Self::pair),
///   [`pause`](Self::pause)...) at any time.
///
/// The drain rule: after any `handle_*` or command, call every `poll_*` until
/// `None`: [`poll_transmit`](Self::poll_transmit) (send each datagram at once: a Sync is
/// stamped when it is polled), [`poll_control_transmit`](Self::poll_control_transmit) for
/// each connection, and [`poll_event`](Self::poll_event). A driver with one thread per
/// socket may drain the clock through [`clock_mut`](Self::clock_mut) and the media through
/// [`poll_media_transmit`](Self::poll_media_transmit) instead of `poll_transmit`.
pub struct LeaderCore<A> {
    config: LeaderCoreConfig<A>,
    clock: MasterCore<A>,
    ptp_out: Option<Transmit<PtpPeer<A>>>,
    sender: RtpSender,
    pacer: Pacer,
    paused: bool,
    out: Vec<OutPacket>,
    out_used: usize,
    /// The packet and the destination the next media datagram is.
    cursor: (usize, usize),
    rtp_dests: Vec<A>,
    /// For each of `rtp_dests`: what protects it.
    rtp_protect: Vec<Protect>,
    /// A protected multicast stream's keys.
    group: Option<GroupStream>,
    /// Where a protected datagram is made.
    sealed: Vec<u8>,
    /// Packets that could not be protected (and so were not sent).
    protect_errors: u64,
    admission: Admission,
    conns: Vec<Conn<A>>,
    events: VecDeque<LeaderCoreEvent>,
    next_query: u32,
    stats: LeaderCoreStats,
}

impl<A> std::fmt::Debug for LeaderCore<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderCore")
            .field("stream", &self.config.stream)
            .field("connections", &self.conns.len())
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl<A: Endpoint> LeaderCore<A> {
    /// A leader with `config`, its media paced from `now`. Fails if the sender refuses its
    /// settings or the target latency is out of range ([`check_latency`]).
    pub fn new(
        config: LeaderCoreConfig<A>,
        now: LocalInstant,
    ) -> Result<LeaderCore<A>, LeaderError> {
        let sender = RtpSender::new(config.sender.clone())?;
        let rate = config.sender.format.sample_rate();
        let pacer = Pacer {
            t0: now,
            k: 0,
            frames: sender.frames_per_packet(),
            rate,
        };
        check_latency(config.stream.target_latency, pacer.span(1))?;
        let group = match (config.multicast.is_some(), config.stream.protection.media) {
            (true, Some(profile)) => {
                let Some(secret) = config.group_secret.clone() else {
                    return Err(LeaderError::OutOfRange {
                        field: "group_secret",
                        reason: "a protected multicast stream needs a group secret".into(),
                    });
                };
                let srtp = secret.key(1).srtp(profile, sender.ssrc()).map_err(|e| {
                    LeaderError::OutOfRange {
                        field: "protection",
                        reason: e.to_string(),
                    }
                })?;
                Some(GroupStream {
                    secret,
                    profile,
                    epoch: 1,
                    srtp,
                    pending: None,
                })
            }
            _ => None,
        };
        let admission = Admission::new(
            config.group.clone(),
            config.key.clone(),
            config.stream.clone(),
        );
        let mut core = LeaderCore {
            clock: MasterCore::new(config.master),
            ptp_out: None,
            sender,
            pacer,
            paused: false,
            out: Vec::new(),
            out_used: 0,
            cursor: (0, 0),
            rtp_dests: Vec::new(),
            rtp_protect: Vec::new(),
            group,
            sealed: Vec::with_capacity(2048),
            protect_errors: 0,
            admission,
            conns: Vec::new(),
            events: VecDeque::new(),
            next_query: 1,
            stats: LeaderCoreStats::default(),
            config,
        };
        core.update_dests();
        Ok(core)
    }

    // ----- the clock -----

    /// A PTP datagram that arrived at `at` from `from`.
    pub fn handle_ptp(
        &mut self,
        from: A,
        at: LocalInstant,
        bytes: &[u8],
    ) -> Result<(), LeaderError> {
        self.clock.handle_ptp(from, at, bytes)
    }

    /// The transmit stamp of a PTP datagram sent earlier.
    pub fn handle_ptp_transmitted(&mut self, tag: TxTag, at: LocalInstant) {
        self.clock.handle_transmitted(tag, at);
    }

    /// Runs the clock's timers due by `now`.
    pub fn handle_timeout(&mut self, now: LocalInstant) {
        self.clock.handle_timeout(now);
    }

    /// The clock side, for a driver that runs it on a thread of its own.
    pub fn clock_mut(&mut self) -> &mut MasterCore<A> {
        &mut self.clock
    }

    /// The clock side.
    pub fn clock(&self) -> &MasterCore<A> {
        &self.clock
    }

    /// The next datagram to send, stamped (if a Sync) as leaving at `now`: the clock's
    /// first, then the media's. Drain it after every input.
    #[must_use]
    pub fn poll_transmit(&mut self, now: LocalInstant) -> Option<LeaderTransmit<'_, A>> {
        if let Some(tx) = self.clock.poll_transmit(now) {
            let tx = self.ptp_out.insert(tx);
            return Some(LeaderTransmit {
                to: tx.to.to(tx.port),
                channel: Channel::Ptp {
                    port: tx.port,
                    tag: tx.tag,
                },
                payload: tx.payload(),
            });
        }
        self.poll_media_transmit()
    }

    /// When the core next needs the driver: the clock's next timer or the next chunk of
    /// media, whichever is first.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<LocalInstant> {
        let media = self.poll_media_timeout();
        Some(self.clock.poll_timeout().map_or(media, |t| t.min(media)))
    }

    // ----- the media -----

    /// When the next chunk of media is due.
    #[must_use]
    pub fn poll_media_timeout(&self) -> LocalInstant {
        self.pacer.due()
    }

    /// The chunk due by `now`, if one is. While paused, due chunks pass unsent; after a
    /// stall longer than [`MAX_MEDIA_BEHIND`] the pacing starts again from `now` (the
    /// sender marks the discontinuity). Call until `None`.
    #[must_use]
    pub fn poll_media(&mut self, now: LocalInstant) -> Option<MediaChunk> {
        loop {
            let due = self.pacer.due();
            if now < due {
                return None;
            }
            if now - due > MAX_MEDIA_BEHIND {
                self.pacer.t0 = now;
                self.pacer.k = 0;
                return None;
            }
            let captured = self.pacer.t0 + self.pacer.span(self.pacer.k);
            self.pacer.k += 1;
            if self.paused {
                continue;
            }
            return Some(MediaChunk {
                frames: self.pacer.frames,
                channels: usize::from(self.config.sender.format.channels()),
                captured,
                play_at: leader_time(captured + self.config.stream.target_latency),
            });
        }
    }

    /// The PCM of `chunk` (interleaved, `chunk.frames × chunk.channels` samples), at `now`:
    /// cut into RTP packets for every destination, with a sender report when one is due.
    /// Drain [`poll_media_transmit`](Self::poll_media_transmit) (or
    /// [`poll_transmit`](Self::poll_transmit)) after it. Allocates nothing once warm.
    pub fn handle_media(
        &mut self,
        now: LocalInstant,
        chunk: &MediaChunk,
        pcm: &[f32],
    ) -> Result<usize, LeaderError> {
        if let Some(g) = self.group.as_mut()
            && let Some(p) = g.pending.as_mut()
        {
            let at = *p.switch_at.get_or_insert(now + GROUP_KEY_SWITCH);
            if now >= at
                && let Some(p) = g.pending.take()
            {
                g.epoch = p.epoch;
                g.srtp = p.srtp;
            }
        }
        let sent = self.sender.handle_pcm(pcm, chunk.play_at);
        // Drained even after an error: the packets completed before it are good.
        while let Some(p) = self.sender.poll_transmit() {
            queue_packet(&mut self.out, &mut self.out_used, p, Channel::Rtp);
        }
        if self.config.rtcp && !self.config.dests.is_empty() {
            let mut buf = [0u8; MAX_COMPOUND_LEN];
            if let Some(n) = self.sender.poll_rtcp(leader_time(now), &mut buf) {
                queue_packet(&mut self.out, &mut self.out_used, &buf[..n], Channel::Rtcp);
            }
        }
        Ok(sent?)
    }

    /// The next media datagram (RTP to each destination, RTCP to each static one).
    #[must_use]
    pub fn poll_media_transmit(&mut self) -> Option<LeaderTransmit<'_, A>> {
        loop {
            let (i, j) = self.cursor;
            let Some(p) = self.out[..self.out_used].get(i) else {
                self.cursor = (0, 0);
                self.out_used = 0;
                return None;
            };
            let to = match p.channel {
                Channel::Rtp => self.rtp_dests.get(j).copied(),
                _ => self
                    .config
                    .dests
                    .get(j)
                    .map(|d| d.with_port(d.port().wrapping_add(1))),
            };
            let Some(to) = to else {
                self.cursor = (i + 1, 0);
                continue;
            };
            self.cursor = (i, j + 1);
            let p = &self.out[i];
            let protect = match p.channel {
                Channel::Rtp => self.rtp_protect.get(j).copied().unwrap_or(Protect::None),
                _ => Protect::None,
            };
            let srtp = match protect {
                Protect::None => {
                    return Some(LeaderTransmit {
                        to,
                        channel: p.channel,
                        payload: &p.bytes,
                    });
                }
                Protect::Member(conn) => self
                    .conns
                    .get_mut(conn)
                    .and_then(|c| c.joined.as_mut())
                    .and_then(|j| j.srtp.as_mut()),
                Protect::Group => self.group.as_mut().map(|g| &mut g.srtp),
            };
            let Some(srtp) = srtp else { continue };
            let tag = srtp.profile().tag_len();
            self.sealed.clear();
            self.sealed.extend_from_slice(&p.bytes);
            self.sealed.resize(p.bytes.len() + tag, 0);
            match srtp.protect_in_place(&mut self.sealed, p.bytes.len()) {
                Ok(n) => {
                    return Some(LeaderTransmit {
                        to,
                        channel: Channel::Rtp,
                        payload: &self.sealed[..n],
                    });
                }
                Err(_) => self.protect_errors += 1,
            }
        }
    }

    /// The RTP sender.
    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    /// Where the stream goes now: the multicast group or each joined follower, then the
    /// static destinations.
    pub fn media_dests(&self) -> &[A] {
        &self.rtp_dests
    }

    fn update_dests(&mut self) {
        self.rtp_dests.clear();
        self.rtp_protect.clear();
        match self.config.multicast {
            Some(group) => {
                self.rtp_dests.push(group);
                self.rtp_protect.push(if self.group.is_some() {
                    Protect::Group
                } else {
                    Protect::None
                });
            }
            None => {
                for (at, c) in self.conns.iter().enumerate() {
                    if let Some(j) = c.joined.as_ref() {
                        self.rtp_dests.push(j.rtp);
                        self.rtp_protect.push(if j.srtp.is_some() {
                            Protect::Member(at)
                        } else {
                            Protect::None
                        });
                    }
                }
            }
        }
        // Static destinations are standard players: plain RTP.
        for d in &self.config.dests {
            self.rtp_dests.push(*d);
            self.rtp_protect.push(Protect::None);
        }
    }

    /// RTP packets that could not be protected, and so were not sent (an SRTP context
    /// that refused an index: should never happen).
    pub fn protect_errors(&self) -> u64 {
        self.protect_errors
    }

    /// What each joined follower's SRTP context has done, by session id.
    pub fn srtp_stats(&self) -> Vec<(u64, SrtpStats)> {
        self.conns
            .iter()
            .filter_map(|c| c.joined.as_ref())
            .filter_map(|j| j.srtp.as_ref().map(|s| (j.id, s.stats())))
            .collect()
    }

    // ----- the control connections -----

    /// A control connection `conn` from `addr` opened at `now`; `nonce` is the leader's
    /// fresh nonce for it. When every slot is taken, the oldest handshake unfinished for
    /// [`LeaderCoreConfig::evict_after`] gives its slot up: its id is returned, its session
    /// is gone (counted), and the driver closes its connection at once. With none such, the
    /// new connection is refused with [`LeaderError::Busy`] (counted; send
    /// [`Refusal::Busy`] and close).
    pub fn handle_connect(
        &mut self,
        conn: ConnId,
        now: LocalInstant,
        addr: A,
        nonce: Nonce,
    ) -> Result<Option<ConnId>, LeaderError> {
        if self.conns.iter().any(|c| c.id == conn) {
            return Err(LeaderError::DuplicateConnection { conn });
        }
        let max = self.config.max_sessions.max(1);
        let mut evicted = None;
        if self.conns.len() >= max {
            let oldest = self
                .conns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.joined.is_none() && now - c.opened >= self.config.evict_after)
                .min_by_key(|(_, c)| c.opened)
                .map(|(at, _)| at);
            let Some(at) = oldest else {
                self.stats.refused_busy += 1;
                return Err(LeaderError::Busy { max });
            };
            evicted = Some(self.conns.remove(at).id);
            self.stats.evicted += 1;
            self.update_dests();
        }
        self.conns.push(Conn {
            id: conn,
            opened: now,
            addr,
            session: LeaderSession::new(nonce),
            joined: None,
        });
        Ok(evicted)
    }

    /// Bytes that arrived at `now` on connection `conn`. A follower that joins becomes a PTP
    /// peer (from `now`) and an RTP destination. Refused with [`LeaderError::Refused`] when
    /// its session refused the follower on this input (wrong key, bytes that do not
    /// decode...); the refusal is queued for the connection, which is then closed.
    pub fn handle_control(
        &mut self,
        conn: ConnId,
        now: LocalInstant,
        bytes: &[u8],
    ) -> Result<(), LeaderError> {
        let at = self.conn_index(conn)?;
        let c = &mut self.conns[at];
        c.session.handle_input(bytes, &mut self.admission);
        let mut refused = None;
        let mut joined = false;
        while let Some(e) = c.session.poll_event() {
            match e {
                LeaderEvent::Joined { id, ports, .. } => {
                    c.joined = Some(member_of(c.addr, id, ports));
                    self.stats.admitted += 1;
                    self.events.push_back(LeaderCoreEvent::Joined { conn, id });
                    joined = true;
                }
                LeaderEvent::Refused(r) => {
                    if r == Refusal::WrongKey {
                        self.stats.refused_wrong_key += 1;
                    } else {
                        self.stats.refused_other += 1;
                    }
                    self.events.push_back(LeaderCoreEvent::Refused {
                        conn,
                        refusal: r.clone(),
                    });
                    refused = Some(r);
                }
                LeaderEvent::Status { id: query, status } => {
                    if let Some(j) = c.joined.as_mut() {
                        j.status = Some((query, status.clone()));
                        self.events.push_back(LeaderCoreEvent::Status {
                            id: j.id,
                            query,
                            status,
                        });
                    }
                }
                LeaderEvent::Left => {}
            }
        }
        if joined {
            self.protect_member(at, now);
        }
        if self.conns[at].session.is_closed() {
            self.drop_member(at);
        }
        self.update_dests();
        match refused {
            Some(r) => Err(LeaderError::Refused(r)),
            None => Ok(()),
        }
    }

    /// Sets up a newly joined member's protection with its session's keys, as the stream
    /// says, and makes it a PTP peer.
    fn protect_member(&mut self, at: usize, now: LocalInstant) {
        let protection = self.admission.stream().protection;
        let ssrc = self.sender.ssrc();
        let c = &mut self.conns[at];
        let keys = c.session.keys().cloned();
        let Some(j) = c.joined.as_mut() else { return };
        j.srtp = match (protection.media, keys.as_ref(), &self.group) {
            (Some(profile), Some(k), None) => k.srtp(profile, ssrc).ok(),
            _ => None,
        };
        if let (Some(g), Some(k)) = (&self.group, keys.as_ref()) {
            // The key in use, and the next one if a switch is coming.
            let epochs = std::iter::once(g.epoch).chain(g.pending.as_ref().map(|p| p.epoch));
            for epoch in epochs {
                let sealed = k.seal_group_key(epoch, &g.secret.key(epoch));
                // Fixed-size: it always encodes.
                let _ = c.session.send(&Message::GroupKey { epoch, sealed });
            }
        }
        let peer = j.peer;
        match keys.filter(|_| protection.clock) {
            Some(k) => self
                .clock
                .add_peer_with_keys(peer, now, k.ptp(j.id, End::Leader)),
            None => self.clock.add_peer(peer, now),
        }
    }

    /// Connection `conn` closed: its follower, if joined, leaves. Queued bytes for it are
    /// dropped.
    pub fn handle_disconnect(&mut self, conn: ConnId) {
        if let Ok(at) = self.conn_index(conn) {
            self.drop_member(at);
            self.conns.remove(at);
            self.update_dests();
        }
    }

    fn drop_member(&mut self, at: usize) {
        let c = &mut self.conns[at];
        if let Some(j) = c.joined.take() {
            self.admission.remove(j.id);
            self.clock.remove_peer(j.peer);
            self.events.push_back(LeaderCoreEvent::Left {
                conn: c.id,
                id: j.id,
            });
            self.rotate_group_key();
        }
    }

    /// A member left a protected multicast stream: the next epoch's key goes to every
    /// member still joined, and the stream switches to it [`GROUP_KEY_SWITCH`] after the
    /// next media. The member that left keeps only the keys it had.
    fn rotate_group_key(&mut self) {
        let Some(g) = self.group.as_mut() else { return };
        let epoch = g
            .pending
            .as_ref()
            .map_or(g.epoch, |p| p.epoch)
            .wrapping_add(1);
        let key = g.secret.key(epoch);
        let Ok(srtp) = key.srtp(g.profile, self.sender.ssrc()) else {
            return;
        };
        g.pending = Some(PendingKey {
            epoch,
            srtp,
            switch_at: None,
        });
        for c in &mut self.conns {
            if c.joined.is_none() {
                continue;
            }
            if let Some(k) = c.session.keys() {
                let sealed = k.seal_group_key(epoch, &key);
                let _ = c.session.send(&Message::GroupKey { epoch, sealed });
            }
        }
        self.stats.group_key_rotations += 1;
    }

    /// The epoch of the multicast stream's group key in use (`None`: no protected
    /// multicast stream).
    pub fn group_epoch(&self) -> Option<u32> {
        self.group.as_ref().map(|g| g.epoch)
    }

    fn conn_index(&self, conn: ConnId) -> Result<usize, LeaderError> {
        self.conns
            .iter()
            .position(|c| c.id == conn)
            .ok_or(LeaderError::UnknownConnection { conn })
    }

    /// Whether connection `conn`'s session is over (refused or left): close it once its
    /// queued bytes are sent. An unknown connection is closed.
    pub fn is_closed(&self, conn: ConnId) -> bool {
        self.conns
            .iter()
            .find(|c| c.id == conn)
            .is_none_or(|c| c.session.is_closed())
    }

    /// Whether connection `conn`'s follower has joined.
    pub fn is_joined(&self, conn: ConnId) -> bool {
        self.conns
            .iter()
            .any(|c| c.id == conn && c.joined.is_some())
    }

    /// The open connections.
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.iter().map(|c| c.id)
    }

    /// The next bytes to send on connection `conn`.
    #[must_use]
    pub fn poll_control_transmit(&mut self, conn: ConnId) -> Option<Vec<u8>> {
        let at = self.conn_index(conn).ok()?;
        self.conns[at].session.poll_transmit()
    }

    /// The next event for the driver.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<LeaderCoreEvent> {
        self.events.pop_front()
    }

    // ----- the group -----

    /// The joined followers, in the order they joined.
    pub fn members(&self) -> Vec<LeaderMember<A>> {
        // (Session ids grow in the order of admission.)
        let mut members: Vec<LeaderMember<A>> = self
            .conns
            .iter()
            .filter_map(|c| {
                let j = c.joined.as_ref()?;
                let m = self.admission.member(j.id)?;
                Some(LeaderMember {
                    id: j.id,
                    conn: c.id,
                    addr: c.addr,
                    name: m.name.clone(),
                    model: m.model.clone(),
                    role: m.role,
                    volume: j.volume,
                    muted: j.muted,
                    trim: j.trim,
                })
            })
            .collect();
        members.sort_by_key(|m| m.id);
        members
    }

    fn joined_mut(&mut self, id: u64) -> Result<&mut Conn<A>, LeaderError> {
        self.conns
            .iter_mut()
            .find(|c| c.joined.as_ref().is_some_and(|j| j.id == id))
            .ok_or(LeaderError::UnknownFollower { id })
    }

    /// Sends `msg` to follower `id` and notes what it changes; returns its connection.
    fn command(
        &mut self,
        id: u64,
        msg: &Message,
        update: impl FnOnce(&mut Joined<A>),
    ) -> Result<ConnId, LeaderError> {
        let c = self.joined_mut(id)?;
        c.session.send(msg)?;
        if let Some(j) = c.joined.as_mut() {
            update(j);
        }
        Ok(c.id)
    }

    /// Sets follower `id`'s volume (0 to 1). Returns the connection to drain.
    pub fn set_volume(&mut self, id: u64, volume: f32) -> Result<ConnId, LeaderError> {
        if !(0.0..=1.0).contains(&volume) {
            return Err(LeaderError::OutOfRange {
                field: "volume",
                reason: format!("must be 0 to 1, got {volume}"),
            });
        }
        self.command(id, &Message::SetVolume { volume }, |j| j.volume = volume)
    }

    /// Mutes or unmutes follower `id`. Returns the connection to drain.
    pub fn set_mute(&mut self, id: u64, muted: bool) -> Result<ConnId, LeaderError> {
        self.command(id, &Message::SetMute { muted }, |j| j.muted = muted)
    }

    /// Sets follower `id`'s delay trim, within ±[`MAX_TRIM`]. Returns the connection to
    /// drain.
    pub fn set_trim(&mut self, id: u64, trim: Nanos) -> Result<ConnId, LeaderError> {
        if trim.abs() > MAX_TRIM {
            return Err(LeaderError::OutOfRange {
                field: "trim",
                reason: "must be within ±100 ms".into(),
            });
        }
        self.command(id, &Message::SetTrim { trim }, |j| j.trim = trim)
    }

    /// Makes followers `left` and `right` a stereo pair; nothing changes when the rules
    /// refuse it. Returns the two connections to drain.
    pub fn pair(&mut self, left: u64, right: u64) -> Result<[ConnId; 2], LeaderError> {
        self.admission.pair(left, right).map_err(|e| match e {
            AdmissionError::UnknownMember { id } => LeaderError::UnknownFollower { id },
            AdmissionError::Refused(r) => LeaderError::Pair(r),
        })?;
        let l = self.command(left, &Message::SetRole { role: Role::Left }, |_| {})?;
        let r = self.command(right, &Message::SetRole { role: Role::Right }, |_| {})?;
        Ok([l, r])
    }

    /// Pauses the group: no media is sent and every follower is told.
    pub fn pause(&mut self) {
        self.paused = true;
        self.broadcast(&Message::Pause);
    }

    /// Resumes the group: the stream carries on from the current time.
    pub fn resume(&mut self) {
        self.broadcast(&Message::Resume);
        self.paused = false;
    }

    /// Whether paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn broadcast(&mut self, msg: &Message) {
        for c in self.conns.iter_mut().filter(|c| c.joined.is_some()) {
            // Only a message too long to encode fails; these are fixed-size.
            let _ = c.session.send(msg);
        }
    }

    /// Asks every joined follower for its status: returns each one's id and the query's;
    /// the answers come as [`LeaderCoreEvent::Status`] and in [`status`](Self::status).
    pub fn query_status(&mut self) -> Vec<(u64, u32)> {
        let mut asked = Vec::new();
        for c in &mut self.conns {
            let Some(j) = c.joined.as_ref() else { continue };
            let query = self.next_query;
            self.next_query = self.next_query.wrapping_add(1).max(1);
            if c.session.send(&Message::StatusQuery { id: query }).is_ok() {
                asked.push((j.id, query));
            }
        }
        asked
    }

    /// Follower `id`'s latest answer to a status query, with the query's id.
    pub fn status(&self, id: u64) -> Option<(u32, &FollowerStatus)> {
        self.conns
            .iter()
            .filter_map(|c| c.joined.as_ref())
            .find(|j| j.id == id)
            .and_then(|j| j.status.as_ref().map(|(q, s)| (*q, s)))
    }

    /// The stream followers are told.
    pub fn stream(&self) -> &StreamParams {
        self.admission.stream()
    }

    /// The control side's counters.
    pub fn stats(&self) -> LeaderCoreStats {
        self.stats
    }

    /// The PTP master's counters.
    pub fn ptp_stats(&self) -> &PtpStats {
        self.clock.stats()
    }
}

fn member_of<A: Endpoint>(addr: A, id: u64, ports: PeerPorts) -> Joined<A> {
    Joined {
        id,
        rtp: addr.with_port(ports.rtp),
        peer: PtpPeer {
            event: addr.with_port(ports.ptp_event),
            general: addr.with_port(ports.ptp_general),
        },
        volume: 1.0,
        muted: false,
        trim: Nanos::ZERO,
        status: None,
        srtp: None,
    }
}

/// Copies `bytes` into the next free packet buffer (growing the pool only the first time it
/// is this deep).
fn queue_packet(out: &mut Vec<OutPacket>, used: &mut usize, bytes: &[u8], channel: Channel) {
    if *used == out.len() {
        out.push(OutPacket {
            bytes: Vec::with_capacity(bytes.len().max(1500)),
            channel,
        });
    }
    let p = &mut out[*used];
    p.bytes.clear();
    p.bytes.extend_from_slice(bytes);
    p.channel = channel;
    *used += 1;
}
