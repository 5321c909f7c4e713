//! The driver's error type.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use thiserror::Error;

/// Why a socket could not be set up or a send or receive failed. A node reports it as
/// [`NodeError::Network`](crate::node::NodeError::Network).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetError {
    /// Another socket already holds the address (and neither asked for address reuse).
    #[error("address {addr} is already in use (is another leader or follower running?)")]
    AddrInUse {
        /// The address that was asked for.
        addr: SocketAddr,
    },
    /// Binding failed for a reason other than the address being taken.
    #[error("cannot bind to {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// A socket option could not be set.
    #[error("cannot set socket option {option}: {source}")]
    Option {
        /// The option, e.g. `"IP_TOS"`.
        option: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
    /// Joining or leaving a multicast group failed.
    #[error("multicast group {group} on interface {interface}: {source}")]
    Multicast {
        /// The group.
        group: Ipv4Addr,
        /// The local interface address the membership was for.
        interface: Ipv4Addr,
        /// What the kernel said.
        source: io::Error,
    },
    /// IPv4 multicast was asked for on a socket bound to an IPv6 address.
    #[error("IPv4 multicast needs an IPv4 socket, but the bind address is {bind}")]
    MulticastNeedsIpv4 {
        /// The bind address given.
        bind: SocketAddr,
    },
    /// A send to a multicast address from a socket that names no multicast interface;
    /// refused so that multicast never leaves on an interface nobody chose.
    #[error("refusing to send to multicast address {to}: the socket names no multicast interface")]
    MulticastWithoutInterface {
        /// The destination.
        to: SocketAddr,
    },
    /// A datagram did not fit the receive buffer and was dropped; the socket stays usable.
    #[error("dropped a {len}-byte datagram from {from}: the buffer holds {capacity} bytes")]
    Truncated {
        /// Who sent it.
        from: SocketAddr,
        /// Its full length.
        len: usize,
        /// The length of the buffer it was read into.
        capacity: usize,
    },
    /// Any other failure of a system call.
    #[error(transparent)]
    Io(#[from] io::Error),
}
