//! Playout: from decoded, time-stamped samples to a DAC that emits each one at its
//! leader-clock instant.
//!
//! A follower's samples pass through its [`Chain`] of
//! [`Stage`]s (stereo-pair split, crossover, gain, delay trim),
//! then a drift-correcting resampler steered by the playout controller, into a sink.
//! Everything here runs per audio block; measuring how well it played is
//! [`crate::measure`]'s.

pub mod controller;
pub mod corrector;
pub mod dac;
pub mod device_clock;
pub mod pipeline;
pub mod sink;
pub mod stage;
pub mod stages;

pub use controller::{PlayoutController, State};
pub use corrector::{CorrectorKind, DriftCorrector};
pub use dac::{Crystal, Emission, LinearCrystal, VirtualDac};
pub use device_clock::{DeviceClock, DeviceTiming};
pub use pipeline::{Playout, PlayoutConfig, PlayoutError};
pub use sink::{AudioSink, Block, SharedSink, SinkError};
pub use stage::{Chain, Stage};
