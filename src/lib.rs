//! lockstep: keeps many speakers playing one stream in step.
#![warn(missing_docs)]

pub mod clock;
/// The media path: codecs that turn PCM frames into RTP payloads and back.
pub mod media;
pub mod ptp;
pub mod sim;
pub mod time;
