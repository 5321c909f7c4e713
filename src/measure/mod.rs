//! Measurement, apart from the real-time path: how well a group played, judged from
//! outside.
//!
//! Nothing here runs per audio block except the [`WavSink`] that records a speaker. The
//! rest reads what was recorded and reports on it:
//!
//! - [`meter`]: the sync meter, the skew between two speakers from their emitted audio and
//!   emission timelines alone;
//! - [`skew`]: [`PairwiseSkew`], the one aggregator of a group's pairwise skew windows into
//!   per-pair and group figures, and [`measure_recordings`] for a real run's WAV files;
//! - [`capture`]: a recording's WAV file and the sidecar with its emission timeline;
//! - [`thdn`]: THD+N of a recorded tone, window by window;
//! - [`stats`]: the nearest-rank [`percentile`] every report uses;
//! - [`plot`]: self-contained SVG plots of skew and error over time.

pub mod capture;
pub mod meter;
pub mod plot;
pub mod skew;
pub mod stats;
pub mod thdn;

pub use capture::{OwnedCapture, WavSink, load_capture_wav, sidecar_path, write_capture_wav};
pub use meter::{Capture, MIN_PEAK, MeterConfig, MeterError, SkewReport, SkewWindow, measure_skew};
pub use plot::{Series, log_plot_svg};
pub use skew::{
    GroupSkew, PairSkew, PairwiseSkew, Recording, SkewError, measure_recordings, recording,
};
pub use stats::{percentile, sorted_abs};
pub use thdn::{thdn_db, thdn_windows};
