//! lockstep: keeps many speakers playing one stream in step.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod clock;
pub mod control;
pub mod core;
pub mod media;
// The UDP driver: crate-private so that socket2 stays out of the public API; Linux-only.
#[cfg(target_os = "linux")]
mod net;
#[cfg(target_os = "linux")]
pub mod node;
pub mod playout;
pub mod ptp;
pub mod sim;
pub mod time;
