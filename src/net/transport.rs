//! The one small trait the nodes' clock loops move datagrams through, so that the same
//! loop runs over a real [`UdpSocket`] or over an in-process network (the tests drive the
//! leader's and follower's clock threads over the simulator's links this way).

use std::net::SocketAddr;
use std::time::Duration;

use super::{Datagram, NetError, TimestampSource, UdpSocket};

/// A datagram socket as a node's loop sees it.
pub(crate) trait Transport: Send + Sync + 'static {
    /// The bound address.
    fn local_addr(&self) -> SocketAddr;
    /// Which receive timestamps it delivers.
    fn rx_source(&self) -> TimestampSource;
    /// Which transmit timestamps it reports.
    fn tx_source(&self) -> TimestampSource;
    /// Sends one datagram; returns the id its transmit timestamp will be reported under.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> Result<Option<u32>, NetError>;
    /// One datagram, waiting up to `timeout` (`None`: not at all).
    fn recv(&self, buf: &mut [u8], timeout: Option<Duration>)
    -> Result<Option<Datagram>, NetError>;
    /// Hands over the transmit timestamps that have come in: `f(id, CLOCK_REALTIME ns)`.
    fn drain_tx_timestamps(&self, f: &mut dyn FnMut(u32, i64)) -> Result<usize, NetError>;
    /// Waits until any of `sockets` has something to read or `timeout` passes.
    fn wait_any(sockets: &[&Self], timeout: Duration)
    where
        Self: Sized;
}

impl Transport for UdpSocket {
    fn local_addr(&self) -> SocketAddr {
        UdpSocket::local_addr(self)
    }

    fn rx_source(&self) -> TimestampSource {
        UdpSocket::rx_source(self)
    }

    fn tx_source(&self) -> TimestampSource {
        UdpSocket::tx_source(self)
    }

    fn send_to(&self, buf: &[u8], to: SocketAddr) -> Result<Option<u32>, NetError> {
        UdpSocket::send_to(self, buf, to)
    }

    fn recv(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<Option<Datagram>, NetError> {
        UdpSocket::recv(self, buf, timeout)
    }

    fn drain_tx_timestamps(&self, f: &mut dyn FnMut(u32, i64)) -> Result<usize, NetError> {
        UdpSocket::drain_tx_timestamps(self, f)
    }

    fn wait_any(sockets: &[&Self], timeout: Duration) {
        super::wait_readable(sockets, timeout);
    }
}
