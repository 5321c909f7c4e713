//! The simulator's one error type: a clock or link description that cannot be simulated.
//!
//! Errors arise only when a component is built ([`crate::sim::SimClock::new`],
//! [`crate::sim::Link::new`]) or when a description is checked on its own
//! ([`crate::sim::ClockModel::validate`], [`crate::sim::LinkConfig::validate`]); once built, a
//! component never fails.

use thiserror::Error;

use crate::time::Nanos;

/// Why a clock model or link configuration was refused. Each variant names the field.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum SimConfigError {
    /// A probability or fraction outside `[0, 1]`, or NaN.
    #[error("{field} must be a probability in [0, 1], got {got}")]
    Probability {
        /// The field, e.g. `"spike_fraction"` or `"loss.p"`.
        field: &'static str,
        /// The value given.
        got: f64,
    },
    /// A delay or jitter parameter below zero: a packet cannot arrive before it was sent.
    #[error("{field} must not be negative, got {got}")]
    NegativeDelay {
        /// The field, e.g. `"base_delay"` or `"jitter.mean"`.
        field: &'static str,
        /// The value given.
        got: Nanos,
    },
    /// The spike range is upside down.
    #[error("spike_min ({min}) must not exceed spike_max ({max})")]
    SpikeRange {
        /// `spike_min` as given.
        min: Nanos,
        /// `spike_max` as given.
        max: Nanos,
    },
    /// A parameter that must be a positive finite number is not.
    #[error("{field} must be positive and finite, got {got}")]
    NotPositive {
        /// The field, e.g. `"jitter.shape"`.
        field: &'static str,
        /// The value given.
        got: f64,
    },
    /// A Gilbert-Elliott mean burst shorter than one packet (the bad state always loses the
    /// packet it is in, so a burst is at least one packet long).
    #[error("loss.mean_burst must be at least 1 packet, got {got}")]
    MeanBurst {
        /// The value given.
        got: f64,
    },
    /// A Gilbert-Elliott loss rate that bursts of the given mean length cannot produce: with
    /// bursts of mean length `b` the good state must last at least one packet between them,
    /// so the rate is at most `b / (b + 1)` (and always below 1).
    #[error("loss.rate {rate} is unreachable with mean_burst {mean_burst}: at most {max}")]
    LossRate {
        /// The rate given.
        rate: f64,
        /// The mean burst length given.
        mean_burst: f64,
        /// The highest rate reachable with that burst length.
        max: f64,
    },
    /// A clock parameter that is NaN or infinite.
    #[error("{field} must be finite, got {got}")]
    NotFinite {
        /// The field, e.g. `"drift_ppm"`.
        field: &'static str,
        /// The value given.
        got: f64,
    },
    /// A drift so negative that the clock would stand still or run backwards.
    #[error("drift_ppm must be above -1000000 (a clock that runs forwards), got {got}")]
    Backwards {
        /// The drift given, in ppm.
        got: f64,
    },
    /// A negative wander: wander is the scale of a random walk and has no sign.
    #[error("wander_ppm_per_sqrt_s must not be negative, got {got}")]
    NegativeWander {
        /// The value given.
        got: f64,
    },
    /// A timed change whose end comes before its start.
    #[error("a change that starts at {at} cannot end at {until}, before it")]
    EndsBeforeStart {
        /// The start given.
        at: crate::sim::SimTime,
        /// The end given.
        until: crate::sim::SimTime,
    },
    /// Path steps that, added up, take a link's base delay below zero: a step down by more
    /// than the path's delay (−1 ms on a LAN of 150 µs) is not a path this link can have.
    #[error("the path step at {at} takes the base delay to {delay}, below zero")]
    PathBelowZero {
        /// When the step that goes below zero comes.
        at: crate::sim::SimTime,
        /// The base delay it would leave.
        delay: Nanos,
    },
}
