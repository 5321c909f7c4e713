//! A seeded userspace UDP impairment relay, for running real nodes over a simulated network.
//!
//! The kernel of a test machine may have no `netem`, and a test should not need root to
//! make a network bad. A [`Relay`] sits between a [`Leader`](crate::node::Leader) and its
//! [`Follower`](crate::node::Follower)s on loopback and passes every UDP datagram between
//! them through the simulator's link models: each follower gets a [`PathConfig`] of two
//! [`Link`]s (delay, jitter, spikes, loss, duplicates, reordering) and any scheduled
//! [`LinkChange`]s (path steps, episodes, outages). The links draw from a [`SimRng`] seeded
//! from [`RelayConfig::seed`], so the same seed makes the same decisions for the same
//! packets: the n-th datagram of a direction is lost, duplicated or held alike in every
//! run. Only the times differ, by the scheduler's few tens of microseconds.
//!
//! # How a follower is pointed at it
//!
//! The relay is a port-preserving translator between loopback addresses of its own (all of
//! `127.0.0.0/8` is local on Linux):
//!
//! - The follower names [`Relay::control_addr`] as its leader. That is a TCP port on the
//!   relay's *leader face*, an address of its own; the relay passes the control connection
//!   on to the real leader unimpaired, reading (never changing) the frames on the way.
//! - From the follower's Hello it learns the follower's UDP ports. The follower gets a
//!   *follower face*, another address of the relay's own, where the relay binds the same
//!   port numbers; it connects to the leader from that address, so the leader sees one
//!   distinct follower per path and sends its Sync, Follow_Up, Delay_Resp and RTP there.
//! - From the Welcome (and any later Stream) it learns the leader's UDP ports, and binds
//!   the same port numbers on the leader face before the follower sees them. The follower
//!   sends its Delay_Req there, and takes the stream from there, as it would from the
//!   leader.
//!
//! Each datagram is then forwarded out of the socket with the same port on the other face,
//! so each side sees exactly the addresses it expects. Nothing in the nodes knows a relay
//! is there. As the leader does, the relay sends a follower's datagrams to the address its
//! control connection came from: on loopback, bind the follower's sockets on `127.0.0.1`
//! (where a connection to any `127.x.y.z` comes from), not on the relay's face. Multicast
//! streams are not relayed.
//!
//! Tests without nodes can make the faces themselves with [`Relay::add_leader_ports`] and
//! [`Relay::add_follower`].
//!
//! # Arrival times
//!
//! A datagram's delay is counted from when it reached the relay's socket, as the kernel
//! stamped it (`SO_TIMESTAMPING` software receive stamps, or `SO_TIMESTAMPNS`), moved
//! from `CLOCK_REALTIME` onto the relay's monotonic timescale. Counting from when the
//! poll thread got to it instead would add the thread's wake-up and its place in a burst
//! to the delay: a burst the leader sends to every follower at once (its Syncs) would hold
//! the later followers' datagrams longer, in that direction only, which is an asymmetry no
//! two-way exchange can see. A datagram without a stamp, or with one that is not within
//! the last second, is counted from when it was read ([`RelayStats::user_stamps`]).
//!
//! # Threads
//!
//! One thread polls every UDP socket and decides each datagram's fate; one sends the
//! datagrams when they are due: it sleeps (with the timer slack at 1 µs) until
//! [`RelayConfig::spin`] before, then watches the clock, as a sleep's wake-up alone is late
//! by tens of microseconds, more on a busy machine, and lateness is delay the link did not
//! ask for (counted in [`DirectionStats::late`]); one accepts control
//! connections, and two per connection copy its bytes. All of them look at a shutdown flag
//! at least every 50 ms: [`Relay::stop`] (or dropping the relay) ends them within that and
//! returns the counters. Pending datagrams are bounded by [`RelayConfig::max_pending`];
//! beyond it they are dropped and counted.

use std::collections::BinaryHeap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{SockAddr, SockAddrStorage};

use super::clock::{monotonic_ns, realtime_to_monotonic};
use super::timestamp::{self, CmsgBuf};
use crate::control::{Message, decode_frame};
use crate::sim::{Delivery, Link, LinkChange, PathConfig, SimConfigError, SimRng, SimTime};

/// Which way a datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Leader to follower: Sync, Follow_Up, Delay_Resp, the stream.
    ToFollower,
    /// Follower to leader: Delay_Req, anything else a follower sends.
    ToLeader,
}

/// A change scheduled on the relay's links from its start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlannedChange {
    /// The follower path it applies to, in the order followers first appear (`None`: every
    /// path).
    pub path: Option<usize>,
    /// The direction it applies to.
    pub direction: Direction,
    /// The change, its times counted from the relay's start ([`Relay::now`]).
    pub change: LinkChange,
}

/// How a [`Relay`] is set up. [`RelayConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RelayConfig {
    /// The leader's control address (a loopback address).
    pub leader: SocketAddr,
    /// The path every follower gets.
    pub path: PathConfig,
    /// The seed of every link's luck: path `i` draws from fork `i` of it.
    pub seed: u64,
    /// Changes scheduled from the start.
    pub changes: Vec<PlannedChange>,
    /// Most datagrams waiting to be sent at once; more are dropped and counted.
    pub max_pending: usize,
    /// Most control connections at once; more are closed at once.
    pub max_connections: usize,
    /// How long before a datagram is due the sending thread stops sleeping and watches
    /// the clock instead; zero never to. A sleeping thread wakes late by tens of
    /// microseconds (more on a busy machine), which adds to the link's delay; watching
    /// costs up to this much of a core per datagram.
    pub spin: Duration,
}

impl RelayConfig {
    /// A relay in front of `leader`'s control port, every follower on `path`, seeded with
    /// `seed`; no changes, 65 536 pending datagrams, 64 control connections, a spin of
    /// 100 µs before each send.
    pub fn new(leader: SocketAddr, path: PathConfig, seed: u64) -> RelayConfig {
        RelayConfig {
            leader,
            path,
            seed,
            changes: Vec::new(),
            max_pending: 65_536,
            max_connections: 64,
            spin: Duration::from_micros(100),
        }
    }
}

/// Why a relay could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The leader is not on loopback: the relay only works there.
    #[error("the relay works on loopback only, and {addr} is not a loopback address")]
    NotLoopback {
        /// The address refused.
        addr: SocketAddr,
    },
    /// A link or a change does not validate.
    #[error("the relay's path: {0}")]
    Path(#[from] SimConfigError),
    /// A socket could not be made or bound.
    #[error("the relay's {what}: {source}")]
    Socket {
        /// Which socket.
        what: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
    /// No follower path with this index.
    #[error("the relay has no follower path {0}")]
    UnknownPath(usize),
    /// Every loopback address the relay may take is taken.
    #[error("the relay has run out of loopback addresses")]
    NoAddress,
}

/// What a relay did in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams taken in.
    pub received: u64,
    /// Datagrams sent on (a duplicate's copy counts too).
    pub forwarded: u64,
    /// Datagrams the link lost (an outage's included).
    pub dropped: u64,
    /// Datagrams the link delivered twice.
    pub duplicated: u64,
    /// Datagrams sent after one that came in later on the same path and direction.
    pub reordered: u64,
    /// Datagrams dropped because [`RelayConfig::max_pending`] were waiting already.
    pub overflow: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Datagrams sent more than [`LATE`] after they were due: the sending thread woke
    /// late, or had others to send first. Each adds its lateness to the link's delay.
    pub late: u64,
}

impl DirectionStats {
    fn add(&mut self, o: &DirectionStats) {
        self.received += o.received;
        self.forwarded += o.forwarded;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.overflow += o.overflow;
        self.send_errors += o.send_errors;
        self.late += o.late;
    }
}

/// What a relay did, per direction and overall.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Leader to followers, all paths.
    pub to_follower: DirectionStats,
    /// Followers to leader, all paths.
    pub to_leader: DirectionStats,
    /// Per follower path, in the order they appeared: (to follower, to leader).
    pub paths: Vec<(DirectionStats, DirectionStats)>,
    /// Datagrams from an address that is neither a path's follower nor one of the leader's
    /// known ports: dropped.
    pub unknown_source: u64,
    /// Control connections passed on to the leader.
    pub connections: u64,
    /// Control connections closed unserved: no Hello first, too many, or the leader
    /// unreachable.
    pub refused_connections: u64,
    /// Leader ports that could not be bound on the leader face.
    pub bind_failures: u64,
    /// Datagrams the kernel gave no usable receive stamp for: their delay counts from when
    /// the relay read them, which adds its own scheduling to it.
    pub user_stamps: u64,
}

/// How often every thread looks at the shutdown flag.
const TICK: Duration = Duration::from_millis(50);
/// The largest datagram relayed.
const MAX_DATAGRAM: usize = 65_536;
/// How long a control connection may take to send its Hello, or to reach the leader.
const HANDSHAKE: Duration = Duration::from_secs(2);
/// Datagrams taken from one socket before the others get their turn.
const BATCH: usize = 64;
/// A datagram sent later than this after it was due counts as [late](DirectionStats::late).
pub const LATE: Duration = Duration::from_micros(20);

/// Loopback addresses taken by relays of this process, so that relays running side by side
/// (tests in parallel) never share a face.
static NEXT_ADDRESS: AtomicU32 = AtomicU32::new(0);

/// A fresh loopback address in `127.100.0.0/14`, distinct for every call in this process.
fn fresh_address() -> Result<IpAddr, RelayError> {
    let n = NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed);
    if n >= 4 * 256 * 250 {
        return Err(RelayError::NoAddress);
    }
    let (hi, mid, lo) = (n / (256 * 250), (n / 250) % 256, n % 250 + 1);
    Ok(IpAddr::V4(Ipv4Addr::new(
        127,
        100 + hi as u8,
        mid as u8,
        lo as u8,
    )))
}

/// Binds a non-blocking UDP socket on `addr`, with kernel receive stamps where the kernel
/// gives them.
fn bind_udp(addr: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    let s = UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    // A refusal leaves the socket without stamps: its datagrams are stamped when read.
    timestamp::enable(s.as_raw_fd(), true, false, true);
    Ok(Arc::new(s))
}

/// The oldest a kernel receive stamp may be, against the time the datagram is read: an
/// older one (a clock stepped between the stamp and its conversion) is not believed.
const MAX_STAMP_AGE: i64 = 1_000_000_000;

/// One datagram read from `socket` into `buf` without blocking: its length, its sender and
/// the kernel's receive stamp (`CLOCK_REALTIME` ns) if there is one. `None` if nothing is
/// queued or the read failed.
fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr, Option<i64>)> {
    let mut storage = SockAddrStorage::zeroed();
    let mut control = CmsgBuf::new();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all zeroes (null pointers, zero lengths)
    // is a valid value; the fields that matter are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // SAFETY: sockaddr_storage is a sockaddr type of this platform, as view_as requires.
    msg.msg_name =
        std::ptr::from_mut(unsafe { storage.view_as::<libc::sockaddr_storage>() }).cast();
    msg.msg_namelen = storage.size_of();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len();
    // SAFETY: every pointer in `msg` (the name storage, the iovec and `buf` behind it, the
    // control buffer) points to memory that is live and writable for the whole call, with
    // the lengths given.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    let len = usize::try_from(n).ok()?;
    // SAFETY: recvmsg succeeded with `msg` pointing at `control`, still alive and unchanged.
    let found = unsafe { timestamp::parse(&msg) };
    let namelen = msg.msg_namelen;
    // SAFETY: recvmsg wrote a sockaddr of `namelen` bytes (at most the storage's size, which
    // it was told) into `storage`.
    let from = unsafe { SockAddr::new(storage, namelen) }.as_socket()?;
    Some((len.min(buf.len()), from, found.realtime_ns))
}

/// One follower's path through the relay.
struct Path {
    /// Where the follower's datagrams come from and go to.
    follower_ip: IpAddr,
    /// The relay's address for this follower, facing the leader.
    face: IpAddr,
    /// The follower's ports, each bound on `face`.
    sockets: Vec<(u16, Arc<UdpSocket>)>,
    links: [Link; 2],
    stats: [DirectionStats; 2],
    /// Arrivals counted per direction, and the latest arrival number sent so far.
    arrivals: [u64; 2],
    latest_sent: [Option<u64>; 2],
}

impl Path {
    fn socket(&self, port: u16) -> Option<&Arc<UdpSocket>> {
        self.sockets
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, s)| s)
    }
}

fn index(d: Direction) -> usize {
    match d {
        Direction::ToFollower => 0,
        Direction::ToLeader => 1,
    }
}

/// The sockets and paths, shared by the threads.
struct Table {
    /// The leader's ports, each bound on the leader face.
    leader_ports: Vec<(u16, Arc<UdpSocket>)>,
    paths: Vec<Path>,
    unknown_source: u64,
    connections: u64,
    refused_connections: u64,
    bind_failures: u64,
    user_stamps: u64,
}

/// A datagram waiting for its time.
struct Pending {
    due: SimTime,
    /// Order of scheduling, so that equal times keep their order.
    order: u64,
    path: usize,
    direction: Direction,
    arrival: u64,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    data: Arc<[u8]>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.order) == (o.due, o.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // Reversed: the heap's top is the earliest.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.order).cmp(&(self.due, self.order))
    }
}

struct Shared {
    shutdown: AtomicBool,
    /// The relay's start on the monotonic clock, ns (the clock `Instant` reads on Linux).
    start_ns: i64,
    leader: SocketAddr,
    leader_face: IpAddr,
    config: RelayConfig,
    table: Mutex<Table>,
    queue: Mutex<BinaryHeap<Pending>>,
    ready: Condvar,
    /// Bumped whenever a socket is added: the poll thread rebuilds its list.
    generation: AtomicU64,
    /// Wakes the poll thread when a socket is added.
    waker: UdpSocket,
    order: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn now(&self) -> SimTime {
        SimTime(monotonic_ns().saturating_sub(self.start_ns))
    }

    /// When a datagram read now arrived: its kernel stamp `realtime_ns` on the relay's
    /// timescale if it has a believable one (not in the future, not older than
    /// [`MAX_STAMP_AGE`]), else now. The second value says whether the stamp was used.
    fn arrival(&self, realtime_ns: Option<i64>) -> (SimTime, bool) {
        let now = self.now();
        let stamped = realtime_ns
            .map(|rt| SimTime(realtime_to_monotonic(rt).saturating_sub(self.start_ns)))
            .filter(|t| *t <= now && now.0.saturating_sub(t.0) <= MAX_STAMP_AGE);
        match stamped {
            Some(t) => (t, true),
            None => (now, false),
        }
    }

    fn wake(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(a) = self.waker.local_addr() {
            let _ = self.waker.send_to(&[0], a);
        }
    }

    /// Binds the leader's `ports` on the leader face (those not bound yet).
    fn add_leader_ports(&self, ports: &[u16]) -> Result<(), RelayError> {
        let mut t = lock(&self.table);
        let mut added = false;
        let mut result = Ok(());
        for &port in ports {
            if port == 0 || t.leader_ports.iter().any(|(p, _)| *p == port) {
                continue;
            }
            match bind_udp(SocketAddr::new(self.leader_face, port)) {
                Ok(s) => {
                    t.leader_ports.push((port, s));
                    added = true;
                }
                Err(source) => {
                    t.bind_failures += 1;
                    result = Err(RelayError::Socket {
                        what: "leader-face port",
                        source,
                    });
                }
            }
        }
        drop(t);
        if added {
            self.wake();
        }
        result
    }

    /// The path of the follower at `ip` with `ports`, made (with its face bound) if new.
    fn path_for(&self, ip: IpAddr, ports: &[u16]) -> Result<(usize, IpAddr), RelayError> {
        let mut t = lock(&self.table);
        if let Some((i, p)) = t.paths.iter().enumerate().find(|(_, p)| {
            p.follower_ip == ip
                && p.sockets.len() == ports.len()
                && ports.iter().all(|&q| p.socket(q).is_some())
        }) {
            return Ok((i, p.face));
        }
        let i = t.paths.len();
        let rng = SimRng::new(self.config.seed).fork(i as u64);
        let changes = |d: Direction| -> Vec<LinkChange> {
            self.config
                .changes
                .iter()
                .filter(|c| c.direction == d && c.path.is_none_or(|p| p == i))
                .map(|c| c.change)
                .collect()
        };
        let links = [
            Link::with_changes(
                self.config.path.to_follower,
                rng.fork(0),
                &changes(Direction::ToFollower),
            )?,
            Link::with_changes(
                self.config.path.to_leader,
                rng.fork(1),
                &changes(Direction::ToLeader),
            )?,
        ];
        // A face where every port is free; another address if one is taken.
        let mut last = None;
        for _ in 0..16 {
            let face = fresh_address()?;
            let bound: Result<Vec<_>, _> = ports
                .iter()
                .map(|&p| bind_udp(SocketAddr::new(face, p)).map(|s| (p, s)))
                .collect();
            match bound {
                Ok(sockets) => {
                    t.paths.push(Path {
                        follower_ip: ip,
                        face,
                        sockets,
                        links,
                        stats: [DirectionStats::default(); 2],
                        arrivals: [0; 2],
                        latest_sent: [None; 2],
                    });
                    drop(t);
                    self.wake();
                    return Ok((i, face));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(RelayError::Socket {
            what: "follower-face port",
            source: last.unwrap_or_else(|| ErrorKind::AddrInUse.into()),
        })
    }

    /// Decides the fate of a datagram that came in on `port` of the leader face (from
    /// a follower) or of path `on_path`'s face (from the leader), with its kernel receive
    /// stamp if it has one.
    fn handle(
        &self,
        on_path: Option<usize>,
        port: u16,
        from: SocketAddr,
        data: &[u8],
        stamp: Option<i64>,
    ) {
        let (now, kernel) = self.arrival(stamp);
        let mut t = lock(&self.table);
        if !kernel {
            t.user_stamps += 1;
        }
        let route = match on_path {
            // From a follower to the leader.
            None => t
                .paths
                .iter()
                .position(|p| p.follower_ip == from.ip() && p.socket(from.port()).is_some())
                .map(|i| {
                    let s = Arc::clone(t.paths[i].socket(from.port()).expect("checked"));
                    (
                        i,
                        Direction::ToLeader,
                        s,
                        SocketAddr::new(self.leader.ip(), port),
                    )
                }),
            // From the leader to a follower.
            Some(i) if from.ip() == self.leader.ip() => t
                .leader_ports
                .iter()
                .find(|(p, _)| *p == from.port())
                .map(|(_, s)| {
                    let to = SocketAddr::new(t.paths[i].follower_ip, port);
                    (i, Direction::ToFollower, Arc::clone(s), to)
                }),
            Some(_) => None,
        };
        let Some((i, direction, socket, to)) = route else {
            t.unknown_source += 1;
            return;
        };
        let d = index(direction);
        let path = &mut t.paths[i];
        path.stats[d].received += 1;
        let arrival = path.arrivals[d];
        path.arrivals[d] += 1;
        let times = match path.links[d].transmit(now) {
            Delivery::Lost => {
                path.stats[d].dropped += 1;
                return;
            }
            Delivery::Once(a) => [Some(a), None],
            Delivery::Twice(a, b) => {
                path.stats[d].duplicated += 1;
                [Some(a), Some(b)]
            }
        };
        let mut q = lock(&self.queue);
        let data: Arc<[u8]> = data.into();
        for due in times.into_iter().flatten() {
            if q.len() >= self.config.max_pending {
                path.stats[d].overflow += 1;
                continue;
            }
            q.push(Pending {
                due,
                order: self.order.fetch_add(1, Ordering::Relaxed),
                path: i,
                direction,
                arrival,
                socket: Arc::clone(&socket),
                to,
                data: Arc::clone(&data),
            });
        }
        drop(q);
        self.ready.notify_one();
    }

    /// Counts a datagram sent (or failed).
    fn sent(&self, p: &Pending, ok: bool, late: bool) {
        let mut t = lock(&self.table);
        let d = index(p.direction);
        let path = &mut t.paths[p.path];
        if late {
            path.stats[d].late += 1;
        }
        if !ok {
            path.stats[d].send_errors += 1;
            return;
        }
        path.stats[d].forwarded += 1;
        match path.latest_sent[d] {
            Some(l) if p.arrival < l => path.stats[d].reordered += 1,
            Some(l) if p.arrival == l => {}
            _ => path.latest_sent[d] = Some(p.arrival),
        }
    }

    fn stats(&self) -> RelayStats {
        let t = lock(&self.table);
        let mut s = RelayStats {
            unknown_source: t.unknown_source,
            connections: t.connections,
            refused_connections: t.refused_connections,
            bind_failures: t.bind_failures,
            user_stamps: t.user_stamps,
            ..RelayStats::default()
        };
        for p in &t.paths {
            s.to_follower.add(&p.stats[0]);
            s.to_leader.add(&p.stats[1]);
            s.paths.push((p.stats[0], p.stats[1]));
        }
        s
    }
}

/// A running relay. See the [module docs](self).
pub struct Relay {
    shared: Arc<Shared>,
    control: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("control", &self.control)
            .field("leader", &self.shared.leader)
            .finish_non_exhaustive()
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, RelayError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|source| RelayError::Socket {
            what: "thread",
            source,
        })
}

impl Relay {
    /// Takes a leader face, listens for control connections on it and starts the threads.
    ///
    /// Fails with [`RelayError::NotLoopback`] for a leader off loopback, and
    /// [`RelayError::Path`] if the path or a change does not validate.
    pub fn start(config: RelayConfig) -> Result<Relay, RelayError> {
        if !config.leader.ip().is_loopback() || !config.leader.is_ipv4() {
            return Err(RelayError::NotLoopback {
                addr: config.leader,
            });
        }
        config.path.to_follower.validate()?;
        config.path.to_leader.validate()?;
        for c in &config.changes {
            c.change.validate()?;
        }
        let socket = |what| move |source| RelayError::Socket { what, source };
        let leader_face = fresh_address()?;
        let listener =
            TcpListener::bind(SocketAddr::new(leader_face, 0)).map_err(socket("control port"))?;
        listener
            .set_nonblocking(true)
            .map_err(socket("control port"))?;
        let control = listener.local_addr().map_err(socket("control port"))?;
        let waker = UdpSocket::bind(SocketAddr::new(leader_face, 0)).map_err(socket("waker"))?;
        waker.set_nonblocking(true).map_err(socket("waker"))?;
        let shared = Arc::new(Shared {
            shutdown: AtomicBool::new(false),
            start_ns: monotonic_ns(),
            leader: config.leader,
            leader_face,
            config,
            table: Mutex::new(Table {
                leader_ports: Vec::new(),
                paths: Vec::new(),
                unknown_source: 0,
                connections: 0,
                refused_connections: 0,
                bind_failures: 0,
                user_stamps: 0,
            }),
            queue: Mutex::new(BinaryHeap::new()),
            ready: Condvar::new(),
            generation: AtomicU64::new(0),
            waker,
            order: AtomicU64::new(0),
        });
        let mut relay = Relay {
            shared: Arc::clone(&shared),
            control,
            threads: Vec::new(),
        };
        let s = Arc::clone(&shared);
        relay
            .threads
            .push(spawn("relay-poll", move || poll_loop(&s))?);
        let s = Arc::clone(&shared);
        relay
            .threads
            .push(spawn("relay-send", move || send_loop(&s))?);
        let s = Arc::clone(&shared);
        relay
            .threads
            .push(spawn("relay-accept", move || accept_loop(&s, &listener))?);
        Ok(relay)
    }

    /// The address followers name as their leader's.
    pub fn control_addr(&self) -> SocketAddr {
        self.control
    }

    /// The relay's leader face: where followers find the leader's UDP ports.
    pub fn leader_face(&self) -> IpAddr {
        self.shared.leader_face
    }

    /// The relay's time: since its start, the timescale of every [`LinkChange`] on it.
    pub fn now(&self) -> SimTime {
        self.shared.now()
    }

    /// Binds the leader's UDP `ports` on the leader face, as a Welcome naming them would.
    /// Ports bound already are left as they are.
    pub fn add_leader_ports(&self, ports: &[u16]) -> Result<(), RelayError> {
        self.shared.add_leader_ports(ports)
    }

    /// Makes (or finds) the path of a follower at `ip` with UDP `ports`, as its Hello would,
    /// and returns its index and its follower face: the address the leader sees it at.
    pub fn add_follower(&self, ip: IpAddr, ports: &[u16]) -> Result<(usize, IpAddr), RelayError> {
        self.shared.path_for(ip, ports)
    }

    /// Follower paths made so far.
    pub fn paths(&self) -> usize {
        lock(&self.shared.table).paths.len()
    }

    /// Adds `change` to one direction of path `path`, its times on [`Relay::now`]'s scale:
    /// an outage or a path step while the relay runs.
    pub fn schedule(
        &self,
        path: usize,
        direction: Direction,
        change: LinkChange,
    ) -> Result<(), RelayError> {
        let mut t = lock(&self.shared.table);
        let p = t.paths.get_mut(path).ok_or(RelayError::UnknownPath(path))?;
        p.links[index(direction)].schedule(change)?;
        Ok(())
    }

    /// Adds `change` to both directions of path `path` at once, its times on
    /// [`Relay::now`]'s scale: a follower cut off from its leader (media and clock, both
    /// ways), or its whole path made longer or shorter. Nothing is added if the change does
    /// not validate.
    pub fn schedule_path(&self, path: usize, change: LinkChange) -> Result<(), RelayError> {
        change.validate()?;
        let mut t = lock(&self.shared.table);
        let p = t.paths.get_mut(path).ok_or(RelayError::UnknownPath(path))?;
        for link in &mut p.links {
            link.schedule(change)?;
        }
        Ok(())
    }

    /// The index of the follower path whose follower face is `face`: the address the
    /// leader sees that follower's control connection come from
    /// ([`FollowerInfo::addr`](crate::node::FollowerInfo::addr)). `None` if no path has
    /// that face.
    pub fn path_at(&self, face: IpAddr) -> Option<usize> {
        lock(&self.shared.table)
            .paths
            .iter()
            .position(|p| p.face == face)
    }

    /// What the relay has done so far.
    pub fn stats(&self) -> RelayStats {
        self.shared.stats()
    }

    /// Stops the threads (within 50 ms, and a connection's last copy), drops what is
    /// pending and returns the counters.
    pub fn stop(mut self) -> RelayStats {
        self.halt();
        self.shared.stats()
    }

    fn halt(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.ready.notify_all();
        self.shared.wake();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        lock(&self.shared.queue).clear();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Where a polled socket belongs.
#[derive(Clone, Copy)]
enum Face {
    Waker,
    Leader(u16),
    Follower(usize, u16),
}

/// Takes datagrams in from every socket and hands each to [`Shared::handle`].
fn poll_loop(shared: &Shared) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut generation = u64::MAX;
    let mut sockets: Vec<(Face, Arc<UdpSocket>)> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    while !shared.shutdown.load(Ordering::Acquire) {
        let g = shared.generation.load(Ordering::Acquire);
        if g != generation {
            generation = g;
            sockets.clear();
            {
                let t = lock(&shared.table);
                for (p, s) in &t.leader_ports {
                    sockets.push((Face::Leader(*p), Arc::clone(s)));
                }
                for (i, path) in t.paths.iter().enumerate() {
                    for (p, s) in &path.sockets {
                        sockets.push((Face::Follower(i, *p), Arc::clone(s)));
                    }
                }
            }
            fds = std::iter::once(shared.waker.as_raw_fd())
                .chain(sockets.iter().map(|(_, s)| s.as_raw_fd()))
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
        }
        // SAFETY: `fds` holds initialised pollfd structs for sockets `sockets` (and the
        // waker) keep open across the call; poll writes only their `revents`.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                TICK.as_millis() as i32,
            )
        };
        if n <= 0 {
            continue;
        }
        for (k, fd) in fds.iter().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            let (face, socket) = if k == 0 {
                (Face::Waker, &shared.waker)
            } else {
                let (f, s) = &sockets[k - 1];
                (*f, &**s)
            };
            for _ in 0..BATCH {
                let Some((len, from, stamp)) = recv_stamped(socket, &mut buf) else {
                    break;
                };
                let data = &buf[..len];
                match face {
                    Face::Waker => {}
                    Face::Leader(port) => shared.handle(None, port, from, data, stamp),
                    Face::Follower(i, port) => shared.handle(Some(i), port, from, data, stamp),
                }
            }
        }
    }
}

/// Sends each pending datagram when it is due.
fn send_loop(shared: &Shared) {
    // SAFETY: prctl with PR_SET_TIMERSLACK only sets this thread's timer slack, in ns.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    let spin = i64::try_from(shared.config.spin.as_nanos()).unwrap_or(i64::MAX);
    let mut q = lock(&shared.queue);
    while !shared.shutdown.load(Ordering::Acquire) {
        let now = shared.now();
        match q.peek() {
            Some(p) if p.due <= now => {
                let p = q.pop().expect("peeked");
                drop(q);
                let late = shared.now().0 - p.due.0 > LATE.as_nanos() as i64;
                let ok = p.socket.send_to(&p.data, p.to).is_ok();
                shared.sent(&p, ok, late);
                q = lock(&shared.queue);
            }
            // Due within the spin: watch the clock rather than sleep, whose wake-up is
            // late by tens of microseconds.
            Some(p) if p.due.0 - now.0 <= spin => {
                let due = p.due;
                drop(q);
                while shared.now() < due && !shared.shutdown.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
                q = lock(&shared.queue);
            }
            next => {
                let wait = next.map_or(TICK, |p| {
                    Duration::from_nanos((p.due.0 - now.0 - spin) as u64).min(TICK)
                });
                q = shared
                    .ready
                    .wait_timeout(q, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}

/// Accepts control connections and serves each on threads of its own.
fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    let open = Arc::new(AtomicU64::new(0));
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    while !shared.shutdown.load(Ordering::Acquire) {
        threads.retain(|t| !t.is_finished());
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        if open.load(Ordering::Acquire) as usize >= shared.config.max_connections {
            lock(&shared.table).refused_connections += 1;
            continue;
        }
        open.fetch_add(1, Ordering::AcqRel);
        let (s, o) = (Arc::clone(shared), Arc::clone(&open));
        let t = std::thread::Builder::new()
            .name("relay-conn".into())
            .spawn(move || {
                if serve(&s, stream, peer).is_err() {
                    lock(&s.table).refused_connections += 1;
                }
                o.fetch_sub(1, Ordering::AcqRel);
            });
        match t {
            Ok(t) => threads.push(t),
            Err(_) => {
                open.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Serves one control connection: reads the Hello, makes the follower's path, connects to
/// the leader from its face and copies bytes both ways until either side closes.
fn serve(shared: &Arc<Shared>, mut follower: TcpStream, peer: SocketAddr) -> Result<(), ()> {
    follower.set_nonblocking(false).map_err(drop)?;
    follower.set_read_timeout(Some(TICK)).map_err(drop)?;
    let _ = follower.set_nodelay(true);
    // The Hello first, within the handshake's time.
    let deadline = Instant::now() + HANDSHAKE;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    let ports = loop {
        if Instant::now() >= deadline || shared.shutdown.load(Ordering::Acquire) {
            return Err(());
        }
        match decode_frame(&head) {
            Ok(Some((Message::Hello { ports, .. }, _))) => {
                break [ports.rtp, ports.ptp_event, ports.ptp_general];
            }
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => return Err(()),
        }
        match follower.read(&mut chunk) {
            Ok(0) => return Err(()),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Err(()),
        }
    };
    let (_, face) = shared.path_for(peer.ip(), &ports).map_err(drop)?;
    let upstream = connect_from(face, shared.leader).map_err(drop)?;
    upstream.set_read_timeout(Some(TICK)).map_err(drop)?;
    let _ = upstream.set_nodelay(true);
    let mut up_writer = upstream.try_clone().map_err(drop)?;
    up_writer.write_all(&head).map_err(drop)?;
    lock(&shared.table).connections += 1;
    let down_writer = follower.try_clone().map_err(drop)?;
    let s = Arc::clone(shared);
    let back = std::thread::Builder::new()
        .name("relay-conn-back".into())
        .spawn(move || copy(&s, upstream, down_writer, true))
        .map_err(drop)?;
    copy(shared, follower, up_writer, false);
    let _ = back.join();
    Ok(())
}

/// Connects to `to` from address `from` (any port).
fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), HANDSHAKE)?;
    Ok(socket.into())
}

/// Copies `from` to `to` until either closes or the relay stops; leader to follower
/// (`inspect`), binds the leader's ports a Welcome or Stream names before passing it on.
fn copy(shared: &Shared, mut from: TcpStream, mut to: TcpStream, inspect: bool) {
    let mut chunk = [0u8; 4096];
    let mut frames: Vec<u8> = Vec::new();
    let mut inspecting = inspect;
    // Frames after the Welcome are sealed: read them without their key (it cannot check
    // them, and only forwards them).
    let mut sealed = false;
    while !shared.shutdown.load(Ordering::Acquire) {
        let n = match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        if inspecting {
            frames.extend_from_slice(&chunk[..n]);
            loop {
                let next = if sealed {
                    crate::control::seal::peek_sealed(&frames)
                } else {
                    decode_frame(&frames)
                };
                match next {
                    Ok(Some((msg, used))) => {
                        sealed |= matches!(msg, Message::Welcome { .. });
                        let stream = match msg {
                            Message::Welcome { stream, .. } | Message::Stream { stream } => {
                                Some(stream)
                            }
                            _ => None,
                        };
                        if let Some(st) = stream {
                            let _ = shared.add_leader_ports(&[
                                st.rtp_port,
                                st.ptp_event_port,
                                st.ptp_general_port,
                            ]);
                        }
                        frames.drain(..used);
                    }
                    Ok(None) => break,
                    // Something this relay does not read: pass the rest on unread.
                    Err(_) => {
                        inspecting = false;
                        frames = Vec::new();
                        break;
                    }
                }
            }
        }
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
