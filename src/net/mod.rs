//! The UDP network driver: sockets with kernel timestamps, DSCP marking and multicast.
//!
//! - [`UdpSocket`]: one UDP socket configured by a [`UdpConfig`]. Receives come with the
//!   kernel's receive time and sends can be matched with the kernel's transmit time, which is
//!   what PTP needs to take scheduling jitter out of its exchanges.
//! - [`clock`]: reading `CLOCK_MONOTONIC` and `CLOCK_REALTIME` and moving a kernel timestamp
//!   (always `CLOCK_REALTIME`) onto the monotonic clock the rest of the crate counts in.
//! - [`NetNs`]: a throwaway network namespace, so that tests (and tools) can send multicast
//!   without it ever reaching the machine's real interfaces.
//!
//! Everything here is Linux-only (`SO_TIMESTAMPING`, `setns`) and crate-private: `socket2`
//! must not show in the public API.
// used by the nodes (issue 5); nothing calls the driver yet.
#![allow(dead_code)]

pub(crate) mod clock;
mod error;
mod netns;
mod timestamp;
mod udp;

// The re-exports are unused until the nodes are (issue 5), like the rest.
#[allow(unused_imports)]
pub(crate) use error::NetError;
#[allow(unused_imports)]
pub(crate) use netns::NetNs;
#[allow(unused_imports)]
pub(crate) use timestamp::TimestampSource;
#[allow(unused_imports)]
pub(crate) use udp::{Datagram, Dscp, Multicast, UdpConfig, UdpSocket};
