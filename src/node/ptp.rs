//! The clock side of the nodes: a PTP master or slave driven on a pair of UDP sockets
//! (event and general ports) by a thread of its own.
//!
//! The sans-IO cores decide what to send and when: a [`MasterCore`] (alone, or inside a
//! leader's [`LeaderCore`](crate::core::LeaderCore)) and a [`ClockCore`] (alone, or inside
//! a follower's [`FollowerCore`](crate::core::FollowerCore)). This module gives them real
//! time (the node's [`NodeClock`]), kernel receive and transmit timestamps
//! where the socket has them (user-space readings otherwise), and moves their datagrams.
//! The thread wakes at the protocol's next deadline or when a datagram arrives.
//!
//! [`ClockFollower`] and [`ClockLeader`] are public so that a speaker project (or an interop
//! test against linuxptp) can run the clock protocol alone; [`Follower`](super::Follower) and
//! [`Leader`](super::Leader) run the same threads over their whole cores.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::ClockEstimate;
use crate::control::TimestampKind;
use crate::core::{ClockCore, EstimatorFactory, MasterCore, default_estimator};
use crate::net::{Dscp, Multicast, TimestampSource, Transport, UdpConfig, UdpSocket};
use crate::node::NodeError;
use crate::node::clock::NodeClock;
use crate::ptp::{
    ClockIdentity, MasterConfig, PortIdentity, PtpPort, PtpStats, SlaveConfig, Transmit, TxTag,
};
use crate::time::LocalInstant;

/// Where a PTP peer listens: its event and general ports.
pub type PtpPeer = crate::core::PtpPeer<SocketAddr>;

/// How a clock node's sockets are set up.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PtpSocketConfig {
    /// Address to bind both sockets to.
    pub ip: IpAddr,
    /// Event port (319 for linuxptp; 0 picks a free one).
    pub event_port: u16,
    /// General port (320 for linuxptp; 0 picks a free one).
    pub general_port: u16,
    /// Join the PTP multicast group 224.0.1.129 on the interface with this address (for
    /// peers that send to it, as linuxptp does). Never joined on a default route. A socket
    /// bound to a unicast address does not see the group's datagrams: with multicast, bind
    /// `ip` to the wildcard 0.0.0.0.
    pub multicast_interface: Option<Ipv4Addr>,
    /// Ask the kernel for receive and transmit timestamps (falls back to user space).
    pub kernel_timestamps: bool,
}

impl PtpSocketConfig {
    /// Any free ports on `ip`, kernel timestamps on, no multicast.
    pub fn new(ip: IpAddr) -> PtpSocketConfig {
        PtpSocketConfig {
            ip,
            event_port: 0,
            general_port: 0,
            multicast_interface: None,
            kernel_timestamps: true,
        }
    }
}

/// The IPv4 multicast group of PTP (IEEE 1588 annex D).
pub const PTP_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 129);

/// Transmit ids remembered while their kernel timestamps are outstanding.
const TX_RING: usize = 64;

/// The event and general sockets of a clock node, with the bookkeeping that matches
/// transmit timestamps to the messages they belong to.
pub(crate) struct PtpSockets<T: Transport = UdpSocket> {
    event: T,
    general: T,
    clock: NodeClock,
    tx_ring: [Option<(u32, TxTag)>; TX_RING],
    tx_next: usize,
    buf: [u8; 1500],
}

impl PtpSockets<UdpSocket> {
    pub(crate) fn bind(cfg: &PtpSocketConfig, clock: NodeClock) -> Result<PtpSockets, NodeError> {
        let multicast = match (cfg.multicast_interface, cfg.ip) {
            (Some(interface), _) => Some(Multicast {
                group: PTP_MULTICAST,
                interface,
                ttl: 1,
                loopback: false,
            }),
            _ => None,
        };
        let udp = |port: u16, timestamps: bool| UdpConfig {
            bind: SocketAddr::new(cfg.ip, port),
            reuse_addr: multicast.is_some(),
            dscp: Dscp::Ef,
            rx_timestamps: timestamps,
            tx_timestamps: timestamps,
            multicast,
            recv_buffer: None,
        };
        let bind = |port: u16, timestamps: bool| {
            UdpSocket::bind(&udp(port, timestamps)).map_err(NodeError::from_net)
        };
        let event = bind(cfg.event_port, cfg.kernel_timestamps)?;
        // General messages carry their timestamps inside; only their arrival matters.
        let general = bind(cfg.general_port, false)?;
        Ok(PtpSockets::new(event, general, clock))
    }
}

impl<T: Transport> PtpSockets<T> {
    /// The pair over any transport, for `clock`.
    pub(crate) fn new(event: T, general: T, clock: NodeClock) -> PtpSockets<T> {
        PtpSockets {
            event,
            general,
            clock,
            tx_ring: [None; TX_RING],
            tx_next: 0,
            buf: [0; 1500],
        }
    }

    pub(crate) fn event_port(&self) -> u16 {
        self.event.local_addr().port()
    }

    pub(crate) fn general_port(&self) -> u16 {
        self.general.local_addr().port()
    }

    /// Which receive timestamps the event socket delivers.
    pub(crate) fn timestamping(&self) -> TimestampKind {
        match self.event.rx_source() {
            TimestampSource::Kernel => TimestampKind::Kernel,
            TimestampSource::User => TimestampKind::User,
        }
    }

    /// Whether transmit timestamps come from the kernel.
    pub(crate) fn kernel_tx(&self) -> bool {
        self.event.tx_source() == TimestampSource::Kernel
    }

    /// Sends `tx` to `peer`, remembering its tag under the kernel's transmit id.
    pub(crate) fn send<A>(&mut self, tx: &Transmit<A>, peer: &PtpPeer) {
        let sock = match tx.port {
            PtpPort::Event => &self.event,
            PtpPort::General => &self.general,
        };
        let to = peer.to(tx.port);
        // A send that fails (peer gone, buffer full) is a lost datagram: the protocol
        // times it out and counts it.
        if let Ok(Some(id)) = sock.send_to(tx.payload(), to)
            && let Some(tag) = tx.tag
            && tx.port == PtpPort::Event
        {
            self.tx_ring[self.tx_next % TX_RING] = Some((id, tag));
            self.tx_next += 1;
        }
    }

    /// Waits until a datagram arrives on either socket or `timeout` passes.
    pub(crate) fn wait(&self, timeout: Duration) {
        T::wait_any(&[&self.event, &self.general], timeout);
    }

    /// Hands each kernel transmit timestamp, as a local instant, to `f` with its tag.
    pub(crate) fn drain_tx(&mut self, f: &mut dyn FnMut(TxTag, LocalInstant)) {
        let (ring, clock) = (&mut self.tx_ring, self.clock.clone());
        let _ = self.event.drain_tx_timestamps(&mut |id, rt_ns| {
            if let Some(slot) = ring.iter_mut().find(|s| s.is_some_and(|(i, _)| i == id))
                && let Some((_, tag)) = slot.take()
            {
                f(tag, clock.from_realtime(rt_ns));
            }
        });
    }

    /// Receives every datagram waiting on either socket: `f(from, local arrival, bytes)`.
    pub(crate) fn drain_rx(&mut self, f: &mut dyn FnMut(SocketAddr, LocalInstant, &[u8])) {
        for which in 0..2 {
            // Bounded: a socket that keeps failing cannot hold the thread here.
            for _ in 0..256 {
                let sock = if which == 0 {
                    &self.event
                } else {
                    &self.general
                };
                let d = match sock.recv(&mut self.buf, None) {
                    Ok(Some(d)) => d,
                    Ok(None) => break,
                    // Oversized or failed: that datagram is gone, the next may be fine.
                    Err(_) => continue,
                };
                let at = match d.rx_realtime_ns {
                    Some(rt) => self.clock.from_realtime(rt),
                    None => self.clock.now(),
                };
                f(d.from, at, &self.buf[..d.len.min(self.buf.len())]);
            }
        }
    }
}

/// What a clock node shares with its owner.
#[derive(Debug, Default)]
pub(crate) struct ClockShared {
    pub(crate) estimate: Mutex<Option<ClockEstimate>>,
    pub(crate) stats: Mutex<PtpStats>,
    pub(crate) shutdown: AtomicBool,
    /// Bumped by the owner to make the slave start afresh (a new leader).
    pub(crate) generation: std::sync::atomic::AtomicU64,
    pub(crate) master: Mutex<Option<PtpPeer>>,
    pub(crate) unknown_source: std::sync::atomic::AtomicU64,
}

/// How a [`ClockFollower`] runs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ClockFollowerConfig {
    /// Its sockets.
    pub sockets: PtpSocketConfig,
    /// The master to follow. `None` follows the first master heard (multicast), as a
    /// linuxptp slave does.
    pub master: Option<PtpPeer>,
    /// Its port identity's clock id.
    pub clock_identity: ClockIdentity,
}

/// A PTP slave and clock estimator on their own thread: learns the leader's clock.
pub struct ClockFollower {
    shared: Arc<ClockShared>,
    runner: Runner,
    timestamping: TimestampKind,
    ports: (u16, u16),
}

impl std::fmt::Debug for ClockFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClockFollower")
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl ClockFollower {
    /// Binds its sockets and starts its thread, reading `clock`.
    pub fn start(
        config: ClockFollowerConfig,
        clock: NodeClock,
    ) -> Result<ClockFollower, NodeError> {
        ClockFollower::start_with(config, clock, default_estimator())
    }

    /// As [`start`](Self::start), with an estimator of the caller's choice.
    pub fn start_with(
        config: ClockFollowerConfig,
        clock: NodeClock,
        estimator: EstimatorFactory,
    ) -> Result<ClockFollower, NodeError> {
        let sockets = PtpSockets::bind(&config.sockets, clock.clone())?;
        ClockFollower::start_on(sockets, config, clock, estimator)
    }

    /// Runs the clock side of `host` (a follower's core, which the caller shares with its
    /// other threads) over sockets bound as `config.sockets` says. `config.clock_identity`
    /// is not used: the host's slave has its own.
    pub(crate) fn start_hosted<H: ClockHost>(
        config: ClockFollowerConfig,
        clock: NodeClock,
        host: Arc<Mutex<H>>,
    ) -> Result<ClockFollower, NodeError> {
        let sockets = PtpSockets::bind(&config.sockets, clock.clone())?;
        ClockFollower::run(sockets, config.master, clock, host)
    }

    fn run<T: Transport, H: ClockHost>(
        sockets: PtpSockets<T>,
        master: Option<PtpPeer>,
        clock: NodeClock,
        host: Arc<Mutex<H>>,
    ) -> Result<ClockFollower, NodeError> {
        let shared = Arc::new(ClockShared::default());
        *lock(&shared.master) = master;
        let timestamping = sockets.timestamping();
        let ports = (sockets.event_port(), sockets.general_port());
        let s = Arc::clone(&shared);
        let thread = crate::node::spawn("lockstep-ptp-slave", move || {
            run_slave(sockets, clock, &host, &s)
        })?;
        Ok(ClockFollower {
            runner: Runner::new(&shared, thread),
            shared,
            timestamping,
            ports,
        })
    }

    /// Starts on `sockets` of any transport (`config.sockets` is not used).
    pub(crate) fn start_on<T: Transport>(
        sockets: PtpSockets<T>,
        config: ClockFollowerConfig,
        clock: NodeClock,
        estimator: EstimatorFactory,
    ) -> Result<ClockFollower, NodeError> {
        let port = PortIdentity {
            clock_identity: config.clock_identity,
            port_number: 1,
        };
        let core = ClockCore::<SocketAddr>::new(SlaveConfig::new(port), estimator());
        ClockFollower::run(sockets, config.master, clock, Arc::new(Mutex::new(core)))
    }

    /// The current estimate of the leader's clock, if any.
    pub fn estimate(&self) -> Option<ClockEstimate> {
        *lock(&self.shared.estimate)
    }

    /// The slave's counters.
    pub fn stats(&self) -> PtpStats {
        *lock(&self.shared.stats)
    }

    /// Which receive timestamps it uses.
    pub fn timestamping(&self) -> TimestampKind {
        self.timestamping
    }

    /// Its bound event and general ports.
    pub fn ports(&self) -> (u16, u16) {
        self.ports
    }

    /// Datagrams from anyone but the master, ignored.
    pub fn unknown_source(&self) -> u64 {
        self.shared.unknown_source.load(Ordering::Relaxed)
    }

    /// Follows `master` from now on, starting the estimate afresh.
    pub fn follow(&self, master: Option<PtpPeer>) {
        *lock(&self.shared.master) = master;
        *lock(&self.shared.estimate) = None;
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Stops its thread.
    pub fn stop(mut self) {
        self.runner.halt();
    }
}

/// A clock node's thread: stopped (flag set, thread joined) by `halt` or on drop.
struct Runner {
    shared: Arc<ClockShared>,
    thread: Option<JoinHandle<()>>,
}

impl Runner {
    fn new(shared: &Arc<ClockShared>, thread: JoinHandle<()>) -> Runner {
        Runner {
            shared: Arc::clone(shared),
            thread: Some(thread),
        }
    }

    fn halt(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.halt();
    }
}

pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicked thread leaves plain data behind, still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Longest sleep between checks of the shutdown flag.
const MAX_WAIT: Duration = Duration::from_millis(20);

fn wait_for(clock: &NodeClock, deadline: Option<LocalInstant>) -> Duration {
    let now = clock.now();
    match deadline {
        Some(t) if t <= now => Duration::ZERO,
        Some(t) => Duration::from_nanos((t - now).as_nanos() as u64).min(MAX_WAIT),
        None => MAX_WAIT,
    }
}

/// What a PTP slave thread drives: a clock core, alone or inside a follower's core.
pub(crate) trait ClockHost: Send + 'static {
    /// The clock core.
    fn clock_core(&mut self) -> &mut ClockCore<SocketAddr>;
}

impl ClockHost for ClockCore<SocketAddr> {
    fn clock_core(&mut self) -> &mut ClockCore<SocketAddr> {
        self
    }
}

impl ClockHost for crate::core::FollowerCore<SocketAddr> {
    fn clock_core(&mut self) -> &mut ClockCore<SocketAddr> {
        self.clock_mut()
    }
}

fn run_slave<T: Transport, H: ClockHost>(
    mut sockets: PtpSockets<T>,
    clock: NodeClock,
    host: &Mutex<H>,
    shared: &ClockShared,
) {
    let mut generation = shared.generation.load(Ordering::Acquire);
    let mut master = *lock(&shared.master);
    // With no configured master, the one first heard (its event and general addresses).
    let mut heard: Option<PtpPeer> = None;
    while !shared.shutdown.load(Ordering::Acquire) {
        let g = shared.generation.load(Ordering::Acquire);
        if g != generation {
            generation = g;
            lock(host).clock_core().reset();
            master = *lock(&shared.master);
            heard = None;
        }
        let deadline = lock(host).clock_core().poll_timeout();
        sockets.wait(wait_for(&clock, deadline));
        let mut guard = lock(host);
        let core = guard.clock_core();
        sockets.drain_tx(&mut |tag, at| core.handle_transmitted(tag, at));
        sockets.drain_rx(&mut |from, at, bytes| {
            let known = match master {
                Some(m) => from.ip() == m.event.ip(),
                None => heard.is_none_or(|h| h.event.ip() == from.ip()),
            };
            if !known {
                shared.unknown_source.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // The slave keys its master by the event address; general messages come from
            // the master's general port, so both map to one key.
            let key = SocketAddr::new(from.ip(), 0);
            if core.handle_ptp(key, at, bytes).is_ok() && master.is_none() && heard.is_none() {
                heard = Some(PtpPeer::new(
                    from.ip(),
                    crate::ptp::EVENT_PORT,
                    crate::ptp::GENERAL_PORT,
                ));
            }
        });
        core.handle_timeout(clock.now());
        // (Each is sent as soon as it is polled: a Delay_Req is stamped at its poll.)
        while let Some(tx) = core.poll_transmit(clock.now()) {
            if let Some(peer) = master.or(heard) {
                sockets.send(&tx, &peer);
            }
        }
        // Transmit stamps that are in already complete their exchanges now.
        sockets.drain_tx(&mut |tag, at| core.handle_transmitted(tag, at));
        while let Some(tx) = core.poll_transmit(clock.now()) {
            if let Some(peer) = master.or(heard) {
                sockets.send(&tx, &peer);
            }
        }
        *lock(&shared.estimate) = core.estimate();
        *lock(&shared.stats) = *core.stats();
    }
}

/// How a [`ClockLeader`] runs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ClockLeaderConfig {
    /// Its sockets.
    pub sockets: PtpSocketConfig,
    /// Its clock identity.
    pub clock_identity: ClockIdentity,
}

/// A PTP master on its own thread: serves its clock to the peers it is given.
pub struct ClockLeader {
    host: Arc<Mutex<MasterCore<SocketAddr>>>,
    clock: NodeClock,
    runner: Runner,
    timestamping: TimestampKind,
    ports: (u16, u16),
}

impl std::fmt::Debug for ClockLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClockLeader")
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

/// A running master thread: its sockets' ports and timestamping, and its runner.
pub(crate) struct MasterThread {
    runner: Runner,
    pub(crate) timestamping: TimestampKind,
    pub(crate) ports: (u16, u16),
}

impl MasterThread {
    /// Stops the thread.
    pub(crate) fn halt(&mut self) {
        self.runner.halt();
    }
}

impl ClockLeader {
    /// Binds its sockets and starts its thread, serving `clock`.
    pub fn start(config: ClockLeaderConfig, clock: NodeClock) -> Result<ClockLeader, NodeError> {
        let sockets = PtpSockets::bind(&config.sockets, clock.clone())?;
        ClockLeader::start_on(sockets, config, clock)
    }

    /// Starts on `sockets` of any transport (`config.sockets` is not used).
    pub(crate) fn start_on<T: Transport>(
        sockets: PtpSockets<T>,
        config: ClockLeaderConfig,
        clock: NodeClock,
    ) -> Result<ClockLeader, NodeError> {
        let mut mc = MasterConfig::new(config.clock_identity);
        mc.tx_timestamps = sockets.kernel_tx();
        let host = Arc::new(Mutex::new(MasterCore::new(mc)));
        let t = ClockLeader::run(sockets, clock.clone(), Arc::clone(&host))?;
        Ok(ClockLeader {
            host,
            clock,
            runner: t.runner,
            timestamping: t.timestamping,
            ports: t.ports,
        })
    }

    /// Runs the master of `host` (alone, or inside a leader's core that the caller shares
    /// with its other threads) over `sockets`, on a thread of its own. The master should
    /// wait for transmit stamps only if [`PtpSockets::kernel_tx`] says they come.
    pub(crate) fn run<T: Transport, H: MasterHost>(
        sockets: PtpSockets<T>,
        clock: NodeClock,
        host: Arc<Mutex<H>>,
    ) -> Result<MasterThread, NodeError> {
        let shared = Arc::new(ClockShared::default());
        let timestamping = sockets.timestamping();
        let ports = (sockets.event_port(), sockets.general_port());
        let s = Arc::clone(&shared);
        let thread = crate::node::spawn("lockstep-ptp-master", move || {
            run_master(sockets, &clock, &host, &s)
        })?;
        Ok(MasterThread {
            runner: Runner::new(&shared, thread),
            timestamping,
            ports,
        })
    }

    /// Starts serving `peer` (with the burst of fast Syncs a new follower gets).
    pub fn add_peer(&self, peer: PtpPeer) {
        lock(&self.host).add_peer(peer, self.clock.now());
    }

    /// Stops serving `peer`.
    pub fn remove_peer(&self, peer: PtpPeer) {
        lock(&self.host).remove_peer(peer);
    }

    /// The master's counters.
    pub fn stats(&self) -> PtpStats {
        *lock(&self.host).stats()
    }

    /// Which receive timestamps it uses.
    pub fn timestamping(&self) -> TimestampKind {
        self.timestamping
    }

    /// Its bound event and general ports.
    pub fn ports(&self) -> (u16, u16) {
        self.ports
    }

    /// Stops its thread.
    pub fn stop(mut self) {
        self.runner.halt();
    }
}

/// What a PTP master thread drives: a master core, alone or inside a leader's core.
pub(crate) trait MasterHost: Send + 'static {
    /// The master core.
    fn master_core(&mut self) -> &mut MasterCore<SocketAddr>;
}

impl MasterHost for MasterCore<SocketAddr> {
    fn master_core(&mut self) -> &mut MasterCore<SocketAddr> {
        self
    }
}

impl MasterHost for crate::core::LeaderCore<SocketAddr> {
    fn master_core(&mut self) -> &mut MasterCore<SocketAddr> {
        self.clock_mut()
    }
}

fn run_master<T: Transport, H: MasterHost>(
    mut sockets: PtpSockets<T>,
    clock: &NodeClock,
    host: &Mutex<H>,
    shared: &ClockShared,
) {
    while !shared.shutdown.load(Ordering::Acquire) {
        let deadline = lock(host).master_core().poll_timeout();
        sockets.wait(wait_for(clock, deadline));
        let mut guard = lock(host);
        let master = guard.master_core();
        sockets.drain_tx(&mut |tag, at| master.handle_transmitted(tag, at));
        // A Delay_Req comes from the peer's event socket, a burst request (Signaling) from
        // its general one; the core tells them apart and counts strangers.
        sockets.drain_rx(&mut |from, at, bytes| {
            let _ = master.handle_ptp(from, at, bytes);
        });
        let now = clock.now();
        master.handle_timeout(now);
        while let Some(tx) = master.poll_transmit(now) {
            sockets.send(&tx, &tx.to);
        }
        // Transmit stamps that are in already (on loopback, all of them) let their
        // Follow_Ups go now rather than at the next deadline.
        sockets.drain_tx(&mut |tag, at| master.handle_transmitted(tag, at));
        while let Some(tx) = master.poll_transmit(now) {
            sockets.send(&tx, &tx.to);
        }
    }
}
