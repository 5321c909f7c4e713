//! lockstep: keeps many speakers playing one stream in step.
#![warn(missing_docs)]

pub mod clock;
pub mod control;
pub mod media;
pub mod playout;
pub mod ptp;
pub mod sim;
pub mod time;
