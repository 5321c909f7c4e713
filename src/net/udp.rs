//! [`UdpSocket`]: a UDP socket with kernel timestamps, DSCP marking and explicit multicast.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

use super::error::NetError;
use super::timestamp::{self, CmsgBuf, Enabled, RxStamps, TimestampSource};

/// Differentiated-services code points we mark traffic with, so that switches and Wi-Fi
/// access points that honour them queue clock messages ahead of bulk traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dscp {
    /// Best effort (0): no marking.
    Default,
    /// Expedited forwarding (46): clock messages, whose queueing delay is the sync error.
    Ef,
    /// Assured forwarding 41 (34): media, which has a jitter buffer but must not be dropped.
    Af41,
}

impl Dscp {
    /// The 6-bit code point.
    pub(crate) fn code_point(self) -> u8 {
        match self {
            Dscp::Default => 0,
            Dscp::Ef => 46,
            Dscp::Af41 => 34,
        }
    }

    /// The value of the IPv4 TOS / IPv6 traffic-class byte: the code point above the two ECN
    /// bits, which are left zero.
    pub(crate) fn tos(self) -> u32 {
        u32::from(self.code_point()) << 2
    }
}

/// Multicast settings. The interface is always named: multicast must go out (and be joined)
/// only where the caller said, never wherever the routing table points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Multicast {
    /// The group to join at bind time.
    pub group: Ipv4Addr,
    /// The address of the local interface to send from and join on (`IP_MULTICAST_IF`).
    pub interface: Ipv4Addr,
    /// Hops a sent datagram may take (`IP_MULTICAST_TTL`); 1 keeps it on the local link.
    pub ttl: u32,
    /// Whether this host's own sockets get copies of what it sends (`IP_MULTICAST_LOOP`).
    pub loopback: bool,
}

/// How to set up a [`UdpSocket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UdpConfig {
    /// The local address; port 0 picks a free one. A multicast receiver binds the
    /// unspecified address (or the group) with the group's port.
    pub bind: SocketAddr,
    /// `SO_REUSEADDR`: let other sockets that also set it bind the same address and port.
    /// On Linux that is all UDP multicast needs for several receivers of one port (each gets
    /// a copy), so `SO_REUSEPORT`, which would spread unicast among them, is not set.
    pub reuse_addr: bool,
    /// The DSCP marking of everything sent.
    pub dscp: Dscp,
    /// Ask the kernel for receive timestamps.
    pub rx_timestamps: bool,
    /// Ask the kernel for software transmit timestamps (read with
    /// [`UdpSocket::drain_tx_timestamps`]).
    pub tx_timestamps: bool,
    /// Multicast sending and membership; `None` for a unicast socket, which then refuses to
    /// send to multicast addresses.
    pub multicast: Option<Multicast>,
    /// `SO_RCVBUF` in bytes (the kernel doubles it and caps it at `net.core.rmem_max`,
    /// unless the process has `CAP_NET_ADMIN`: then it asks past the cap); `None` keeps
    /// the system default.
    pub recv_buffer: Option<usize>,
}

impl UdpConfig {
    /// A unicast socket on `bind`: no reuse, no marking, no timestamps, default buffer.
    pub(crate) fn new(bind: SocketAddr) -> UdpConfig {
        UdpConfig {
            bind,
            reuse_addr: false,
            dscp: Dscp::Default,
            rx_timestamps: false,
            tx_timestamps: false,
            multicast: None,
            recv_buffer: None,
        }
    }
}

/// One received datagram; its bytes are the first `len` of the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Datagram {
    /// Its length in bytes.
    pub len: usize,
    /// Who sent it.
    pub from: SocketAddr,
    /// When the kernel received it, `CLOCK_REALTIME` ns (see
    /// [`realtime_to_monotonic`](super::clock::realtime_to_monotonic)); `None` when the
    /// socket has no kernel receive timestamps or the kernel gave none for this datagram, in
    /// which case the caller stamps it on return. The second happens to the first datagrams
    /// after the host's first stamping socket opens: Linux switches stamping on in deferred
    /// work.
    pub rx_realtime_ns: Option<i64>,
}

/// The most transmit timestamps [`UdpSocket::recv`] keeps for a caller that does not drain
/// them; beyond it the oldest are dropped, as the kernel does when its error queue is full.
const STASH_LIMIT: usize = 1024;

/// State that clones of one socket share, since they share the kernel socket.
#[derive(Debug)]
struct Shared {
    /// The `OPT_ID` the kernel will give the next datagram sent. Held across the send so
    /// that concurrent senders get ids in the order the kernel numbers their datagrams.
    next_tx_id: Mutex<u32>,
    /// Transmit timestamps `(id, realtime ns)` taken off the error queue by `recv` (which
    /// must empty it to stop `poll` waking on it) and not yet handed to the caller.
    stash: Mutex<VecDeque<(u32, i64)>>,
}

/// Locks `m`, carrying on if another thread panicked while holding it: the data behind
/// these locks (a counter, a queue) stays consistent whatever point a holder stopped at.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long [`UdpSocket::recv`] may wait.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all.
    Now,
    /// Until this instant.
    Until(Instant),
    /// Forever (a timeout too large to represent).
    Forever,
}

/// A bound UDP socket. All methods take `&self`; clones from [`UdpSocket::try_clone`] share
/// the kernel socket, its transmit counter and its stashed timestamps.
#[derive(Debug)]
pub(crate) struct UdpSocket {
    /// The kernel socket.
    socket: Socket,
    /// The address it is bound to (with the port the kernel picked, if 0 was asked for).
    local: SocketAddr,
    /// The timestamps the kernel agreed to give.
    stamps: Enabled,
    /// The interface multicast goes out on; `None` refuses multicast destinations.
    multicast_if: Option<Ipv4Addr>,
    /// What clones share.
    shared: Arc<Shared>,
}

/// Maps a failed setsockopt to [`NetError::Option`].
fn option(option: &'static str) -> impl FnOnce(io::Error) -> NetError {
    move |source| NetError::Option { option, source }
}

impl UdpSocket {
    /// Creates, configures and binds a socket, then joins `cfg.multicast`'s group.
    ///
    /// Timestamps the kernel refuses are not an error: [`UdpSocket::rx_source`] and
    /// [`UdpSocket::tx_source`] then say [`TimestampSource::User`].
    pub(crate) fn bind(cfg: &UdpConfig) -> Result<UdpSocket, NetError> {
        UdpSocket::bind_with(cfg, true)
    }

    /// [`UdpSocket::bind`], with `SO_TIMESTAMPING` optionally left untried so that tests
    /// reach the `SO_TIMESTAMPNS` fallback.
    fn bind_with(cfg: &UdpConfig, allow_timestamping: bool) -> Result<UdpSocket, NetError> {
        if cfg.multicast.is_some() && !cfg.bind.is_ipv4() {
            return Err(NetError::MulticastNeedsIpv4 { bind: cfg.bind });
        }
        let socket = Socket::new(
            Domain::for_address(cfg.bind),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        if cfg.reuse_addr {
            socket
                .set_reuse_address(true)
                .map_err(option("SO_REUSEADDR"))?;
        }
        if let Some(size) = cfg.recv_buffer {
            socket
                .set_recv_buffer_size(size)
                .map_err(option("SO_RCVBUF"))?;
            // The kernel caps SO_RCVBUF at net.core.rmem_max (212 992 bytes by default: a
            // fifth of a second of a junk flood at one port). A privileged process may go
            // past the cap; where that is refused, the capped buffer stays.
            if socket.recv_buffer_size().is_ok_and(|got| got < size) {
                let want = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
                // SAFETY: `want` is a valid c_int for the call's duration, with its size.
                let _ = unsafe {
                    libc::setsockopt(
                        socket.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_RCVBUFFORCE,
                        ptr::from_ref(&want).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
            }
        }
        if cfg.bind.is_ipv4() {
            socket
                .set_tos_v4(cfg.dscp.tos())
                .map_err(option("IP_TOS"))?;
            // By default Linux hands a socket bound to the unspecified address the datagrams
            // of every group any socket on the host joined; a socket should see only its own.
            socket
                .set_multicast_all_v4(false)
                .map_err(option("IP_MULTICAST_ALL"))?;
        } else {
            socket
                .set_tclass_v6(cfg.dscp.tos())
                .map_err(option("IPV6_TCLASS"))?;
        }
        let stamps = timestamp::enable(
            socket.as_raw_fd(),
            cfg.rx_timestamps,
            cfg.tx_timestamps,
            allow_timestamping,
        );
        if let Some(mc) = &cfg.multicast {
            socket
                .set_multicast_if_v4(&mc.interface)
                .map_err(option("IP_MULTICAST_IF"))?;
            socket
                .set_multicast_ttl_v4(mc.ttl)
                .map_err(option("IP_MULTICAST_TTL"))?;
            socket
                .set_multicast_loop_v4(mc.loopback)
                .map_err(option("IP_MULTICAST_LOOP"))?;
        }
        let addr = cfg.bind;
        socket.bind(&addr.into()).map_err(|source| {
            if source.kind() == io::ErrorKind::AddrInUse {
                NetError::AddrInUse { addr }
            } else {
                NetError::Bind { addr, source }
            }
        })?;
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("the bound socket has no IP address"))?;
        let sock = UdpSocket {
            socket,
            local,
            stamps,
            multicast_if: cfg.multicast.map(|mc| mc.interface),
            shared: Arc::new(Shared {
                next_tx_id: Mutex::new(0),
                stash: Mutex::new(VecDeque::new()),
            }),
        };
        if let Some(mc) = &cfg.multicast {
            sock.join_multicast(mc.group, mc.interface)?;
        }
        Ok(sock)
    }

    /// The address the socket is bound to.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether [`Datagram::rx_realtime_ns`] comes from the kernel.
    pub(crate) fn rx_source(&self) -> TimestampSource {
        match self.stamps.rx {
            RxStamps::Timestamping | RxStamps::TimestampNs => TimestampSource::Kernel,
            RxStamps::Off => TimestampSource::User,
        }
    }

    /// Whether the kernel reports transmit times ([`UdpSocket::drain_tx_timestamps`]).
    pub(crate) fn tx_source(&self) -> TimestampSource {
        if self.stamps.tx {
            TimestampSource::Kernel
        } else {
            TimestampSource::User
        }
    }

    /// Sends one datagram to `to`.
    ///
    /// With transmit timestamps on, returns the id the kernel will report the datagram's
    /// transmit time under (the `SOF_TIMESTAMPING_OPT_ID` counter: 0 for the first send,
    /// then one more per send); `None` otherwise. The count moves only on a successful
    /// send, as the kernel's does for the errors UDP reports synchronously.
    ///
    /// Refuses a multicast destination unless the socket was bound with
    /// [`UdpConfig::multicast`], so multicast never leaves on an interface nobody chose.
    pub(crate) fn send_to(&self, buf: &[u8], to: SocketAddr) -> Result<Option<u32>, NetError> {
        if to.ip().is_multicast() && (self.multicast_if.is_none() || !to.is_ipv4()) {
            return Err(NetError::MulticastWithoutInterface { to });
        }
        let to_addr = SockAddr::from(to);
        if !self.stamps.tx {
            self.send_raw(buf, &to_addr)?;
            return Ok(None);
        }
        let mut next = lock(&self.shared.next_tx_id);
        self.send_raw(buf, &to_addr)?;
        let id = *next;
        *next = next.wrapping_add(1);
        Ok(Some(id))
    }

    /// `sendto`, retried when a signal interrupts it.
    fn send_raw(&self, buf: &[u8], to: &SockAddr) -> io::Result<()> {
        loop {
            match self.socket.send_to(buf, to) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits up to `timeout` for one datagram and reads it into `buf`.
    ///
    /// `None` as the timeout returns at once when nothing is queued. `Ok(None)` means the
    /// time ran out. A datagram longer than `buf` is dropped and reported as
    /// [`NetError::Truncated`]; the socket stays usable, so a caller logs it and calls again.
    ///
    /// Transmit timestamps arriving while it waits are set aside for
    /// [`UdpSocket::drain_tx_timestamps`] rather than ending the wait early.
    pub(crate) fn recv(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<Option<Datagram>, NetError> {
        let wait = match timeout {
            None => Wait::Now,
            Some(t) => Instant::now()
                .checked_add(t)
                .map_or(Wait::Forever, Wait::Until),
        };
        loop {
            if let Some(datagram) = self.recv_now(buf)? {
                return Ok(Some(datagram));
            }
            let (poll_ms, left) = match wait {
                Wait::Now => return Ok(None),
                Wait::Forever => (-1, Duration::MAX),
                Wait::Until(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    // Rounded up: poll's unit is the millisecond, and waking a little early
                    // would return before the caller's timeout.
                    let ms = left.as_nanos().div_ceil(1_000_000);
                    (libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX), left)
                }
            };
            let mut pfd = libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one valid pollfd, matching the count of 1, for the whole call.
            let rc = unsafe { libc::poll(&mut pfd, 1, poll_ms) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err.into());
            }
            if rc == 0 || pfd.revents & libc::POLLIN != 0 {
                // Timed out (the loop head returns) or readable.
                continue;
            }
            if pfd.revents & libc::POLLNVAL != 0 {
                return Err(io::Error::from_raw_os_error(libc::EBADF).into());
            }
            // Woken without data: poll reports POLLERR while the error queue holds transmit
            // timestamps or a socket error is pending, and would wake again at once until
            // that is cleared. Clear it; if there was nothing to clear, pause briefly so an
            // unexpected readiness cannot make this loop spin.
            if !self.clear_error_readiness()? {
                std::thread::sleep(left.min(Duration::from_millis(1)));
            }
        }
    }

    /// One non-blocking `recvmsg`: `Ok(None)` if nothing is queued.
    fn recv_now(&self, buf: &mut [u8]) -> Result<Option<Datagram>, NetError> {
        let mut storage = SockAddrStorage::zeroed();
        let mut control = CmsgBuf::new();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is a plain C struct; all-zero is a valid value (null pointers,
        // zero lengths), and every field that matters is set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // SAFETY: sockaddr_storage is a sockaddr type of this platform, as view_as requires.
        msg.msg_name = ptr::from_mut(unsafe { storage.view_as::<libc::sockaddr_storage>() }).cast();
        msg.msg_namelen = storage.size_of();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len();
        // MSG_TRUNC makes the call return a datagram's full length even when it was longer
        // than the buffer, which the Truncated error reports.
        let len = self.recvmsg(&mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC)?;
        let Some(len) = len else {
            return Ok(None);
        };
        let namelen = msg.msg_namelen;
        // SAFETY: recvmsg returned successfully with `msg` pointing at `control`, which is
        // still alive and unchanged.
        let found = unsafe { timestamp::parse(&msg) };
        let flags = msg.msg_flags;
        // SAFETY: recvmsg wrote a sockaddr of `namelen` bytes (at most the storage's size,
        // which it was told) into `storage`.
        let from = unsafe { SockAddr::new(storage, namelen) }
            .as_socket()
            .ok_or_else(|| io::Error::other("received a datagram without a sender address"))?;
        if flags & libc::MSG_TRUNC != 0 {
            return Err(NetError::Truncated {
                from,
                len,
                capacity: buf.len(),
            });
        }
        // Another socket turning on kernel timestamping can make stamps appear on this one
        // too; report them only when asked for, so the datagrams agree with rx_source().
        let rx_realtime_ns = match self.stamps.rx {
            RxStamps::Off => None,
            RxStamps::Timestamping | RxStamps::TimestampNs => found.realtime_ns,
        };
        Ok(Some(Datagram {
            len,
            from,
            rx_realtime_ns,
        }))
    }

    /// `recvmsg` on this socket, retried after a signal; `Ok(None)` when it would block.
    fn recvmsg(&self, msg: &mut libc::msghdr, flags: libc::c_int) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: every pointer in `msg` (name, iovec and its buffer, control) was set by
            // the caller to memory that is alive, writable and as long as the lengths say.
            let rc = unsafe { libc::recvmsg(self.socket.as_raw_fd(), msg, flags) };
            if let Ok(len) = usize::try_from(rc) {
                return Ok(Some(len));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(err),
            }
        }
    }

    /// Moves everything on the error queue into `stash` (transmit timestamps; anything else
    /// is dropped). Returns how many messages it took off the queue.
    fn read_error_queue(&self, stash: &mut VecDeque<(u32, i64)>) -> io::Result<usize> {
        let mut taken = 0;
        loop {
            let mut control = CmsgBuf::new();
            // With OPT_TSONLY the kernel queues no payload; the buffer only gives the iovec
            // somewhere to point should an older kernel send one (it is then cut, harmlessly).
            let mut data = [0u8; 64];
            let mut iov = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            // SAFETY: as in recv_now: all-zero is a valid msghdr; no name is asked for.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = control.0.len();
            if self
                .recvmsg(&mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT)?
                .is_none()
            {
                return Ok(taken);
            }
            taken += 1;
            // SAFETY: recvmsg just succeeded with `msg` pointing at the live `control`.
            let found = unsafe { timestamp::parse(&msg) };
            if let (Some(id), Some(ns)) = (found.tx_id, found.realtime_ns) {
                if stash.len() >= STASH_LIMIT {
                    stash.pop_front();
                }
                stash.push_back((id, ns));
            }
        }
    }

    /// Clears what makes `poll` report POLLERR: the error queue (into the stash) and a
    /// pending socket error. Returns whether there was anything.
    fn clear_error_readiness(&self) -> Result<bool, NetError> {
        let taken = self.read_error_queue(&mut lock(&self.shared.stash))?;
        if taken > 0 {
            return Ok(true);
        }
        // A pending error (ICMP unreachable and the like) is kept by Linux only for connected
        // UDP sockets, which these are not; should one appear it names no datagram the caller
        // could act on, so it is read to clear it and dropped.
        Ok(self.socket.take_error()?.is_some())
    }

    /// Hands every transmit timestamp the kernel has reported so far to `f(id, realtime_ns)`,
    /// in the order they were reported, without blocking; returns how many.
    ///
    /// `id` is what [`UdpSocket::send_to`] returned for the datagram; `realtime_ns` is when
    /// the kernel passed it to the device, `CLOCK_REALTIME` ns. Timestamps can arrive a
    /// little after `send_to` returns, so a caller waiting for one drains again later.
    pub(crate) fn drain_tx_timestamps(
        &self,
        f: &mut dyn FnMut(u32, i64),
    ) -> Result<usize, NetError> {
        // Taken out under the lock and handed over after it, so `f` may use this socket.
        let batch = {
            let mut stash = lock(&self.shared.stash);
            self.read_error_queue(&mut stash)?;
            std::mem::take(&mut *stash)
        };
        for &(id, ns) in &batch {
            f(id, ns);
        }
        Ok(batch.len())
    }

    /// Joins `group` on the interface with address `interface` (`IP_ADD_MEMBERSHIP`).
    pub(crate) fn join_multicast(
        &self,
        group: Ipv4Addr,
        interface: Ipv4Addr,
    ) -> Result<(), NetError> {
        self.socket
            .join_multicast_v4(&group, &interface)
            .map_err(|source| NetError::Multicast {
                group,
                interface,
                source,
            })
    }

    /// Leaves `group` on the interface with address `interface` (`IP_DROP_MEMBERSHIP`).
    pub(crate) fn leave_multicast(
        &self,
        group: Ipv4Addr,
        interface: Ipv4Addr,
    ) -> Result<(), NetError> {
        self.socket
            .leave_multicast_v4(&group, &interface)
            .map_err(|source| NetError::Multicast {
                group,
                interface,
                source,
            })
    }

    /// A second handle on the same kernel socket (for a receive thread beside a sending
    /// one); it shares the transmit counter and stashed timestamps.
    #[cfg_attr(not(test), allow(dead_code))] // the driver's API; tests use it
    pub(crate) fn try_clone(&self) -> Result<UdpSocket, NetError> {
        Ok(UdpSocket {
            socket: self.socket.try_clone()?,
            local: self.local,
            stamps: self.stamps,
            multicast_if: self.multicast_if,
            shared: Arc::clone(&self.shared),
        })
    }
}

/// For waiting on several sockets at once (e.g. the PTP event and general ports) with poll.
impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[cfg(test)]
#[path = "udp_tests.rs"]
mod tests;

/// Waits until any of `sockets` has something to read (a datagram, or a transmit timestamp
/// on its error queue) or `timeout` passes. A node thread that serves two sockets (PTP's
/// event and general ports) sleeps here instead of polling each in turn.
pub(crate) fn wait_readable(sockets: &[&UdpSocket], timeout: Duration) {
    use std::os::fd::AsRawFd;
    let mut fds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 4];
    let n = sockets.len().min(fds.len());
    for (p, s) in fds.iter_mut().zip(sockets) {
        p.fd = s.socket.as_raw_fd();
        p.events = libc::POLLIN;
    }
    // Rounded up: poll counts whole milliseconds, and a wait cut short would wake the
    // caller before its deadline only to wait again (a whole loop of system calls for
    // nothing). So a deadline is met up to a millisecond late, never early.
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    // SAFETY: `fds[..n]` are initialised pollfd structs that live across the call; poll
    // writes only their `revents`.
    unsafe {
        libc::poll(fds.as_mut_ptr(), n as libc::nfds_t, ms);
    }
}
