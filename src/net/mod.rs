//! The UDP network driver: sockets with kernel timestamps, DSCP marking and multicast.
//!
//! - `UdpSocket`: one UDP socket configured by a `UdpConfig`. Receives come with the
//!   kernel's receive time and sends can be matched with the kernel's transmit time, which is
//!   what PTP needs to take scheduling jitter out of its exchanges.
//! - `clock`: reading `CLOCK_MONOTONIC` and `CLOCK_REALTIME` and moving a kernel timestamp
//!   (always `CLOCK_REALTIME`) onto the monotonic clock the rest of the crate counts in.
//! - [`NetNs`]: a throwaway network namespace, so that tests and demos can send multicast
//!   without it ever reaching the machine's real interfaces.
//! - [`relay`]: a seeded UDP impairment relay that puts the simulator's links between real
//!   nodes on loopback; also public as [`crate::relay`].
//!
//! Everything here is Linux-only (`SO_TIMESTAMPING`, `setns`). Only [`NetNs`], [`NetError`]
//! and the relay are public: `socket2` must not show in the public API.

pub(crate) mod clock;
mod error;
mod netns;
pub mod relay;
mod tcp;
mod timestamp;
mod transport;
mod udp;

#[cfg(test)]
pub(crate) use clock::monotonic_to_realtime;
pub(crate) use clock::{monotonic_ns, realtime_ns, realtime_to_monotonic};
pub use error::NetError;
pub use netns::NetNs;
pub(crate) use tcp::tune_control;
pub(crate) use timestamp::TimestampSource;
pub(crate) use transport::Transport;
pub(crate) use udp::{Datagram, Dscp, Multicast, UdpConfig, UdpSocket, wait_readable};
