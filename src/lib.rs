//! lockstep: keeps many speakers playing one stream in step.
#![warn(missing_docs)]

pub mod time;
