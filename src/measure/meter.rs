//! The sync meter: how far apart two speakers play, measured from their emitted audio.
//!
//! Each speaker's output is a [`Capture`]: its samples plus its emission timeline, sample
//! `k` having left the DAC at true time `first + k × 10⁹ / rate_hz`, where `rate_hz` is
//! the DAC's *true* rate (a crystal 120 ppm fast at nominal 48 kHz emits 48 005.76 frames
//! per true second). [`measure_skew`] compares one channel of capture A with one channel of
//! capture B, window by window, and reports for each window the *skew*: B's emission time
//! minus A's emission time for the same content (positive: B plays later).
//!
//! True time is the reference clock emission is judged on from outside, the timescale of
//! [`TrueInstant`] (the simulator's true time, or the monotonic
//! clock of the machine that hosts the followers); the meter takes it as integer ns.
//!
//! # Method
//!
//! For each window of A (`window_s` long, every `hop_s`, in A's true time):
//!
//! 1. B is resampled onto A's sample instants, extended by the search margin on both
//!    sides, using B's own timeline. The interpolator is a 96-tap Kaiser-windowed sinc
//!    (cutoff 0.92 × B's Nyquist frequency, β = 12), so B may run at any true rate and
//!    start at any instant.
//! 2. The Pearson correlation of A's window with the resampled B is computed at every
//!    integer lag in ±`max_skew_us` (plus one sample, to recognise a peak at the edge of the
//!    range). Every window searches the whole range; nothing is carried over between
//!    windows, so a jump in skew is measured, not tracked.
//! 3. Around the best integer lag the correlation is recomputed in `f64` and interpolated
//!    at fractional lags with the same band-limited kernel: the correlation of a
//!    band-limited signal with another is itself band-limited, so this gives the
//!    correlation at any fractional lag. (A parabola through the three best integer lags
//!    instead is off by up to 0.9 µs on the tests' signals.) Its maximum is found on a 1/16-sample grid
//!    over ±1 sample, then by golden-section search to 10⁻⁷ sample.
//! 4. The peak's value is evaluated once more directly, B interpolated from its own
//!    samples at A's instants shifted by the skew found.
//!
//! Windows where either capture is quieter than `min_rms` are skipped and counted, as are
//! windows whose correlation peak is below [`MIN_PEAK`] (no common content) or sits at the
//! edge of the search range (the skew may lie outside it). Such windows never contribute a
//! skew.
//!
//! # Accuracy and limits
//!
//! The tests in `tests/playout_meter.rs` make captures from an analytic signal (many sines
//! up to 16 or 20 kHz, evaluated at each DAC's own emission instants), so the true skew is
//! known exactly, fractional delays and different true rates included. The meter recovers
//! it to within about 1 ns in every 0.5 s window (the tests assert 0.5 µs). Content with
//! energy up to the Nyquist frequency (white or filtered noise sampled at 48 kHz) gave
//! errors of up to about 10 ns per window over 600 s, because the interpolator passes only
//! up to about 20 kHz faithfully (its cutoff is 0.92 × Nyquist). The meter needs:
//!
//! - the same content on both captures (one channel of each is compared);
//! - broadband content: a pure tone or strongly periodic signal has many equal correlation
//!   peaks, one period apart, and the meter cannot tell them apart;
//! - the same polarity: an inverted speaker gives a negative correlation, which is not
//!   searched for;
//! - correct timelines: an error in `rate_hz` shows up as a skew that grows over time, an
//!   error in `first` as a constant skew. The meter measures emission as the timelines
//!   describe it; it cannot correct a wrong timeline.
//!
//! Skew that changes within a window (a rate error) is measured as its average over the
//! window, and decorrelates the window. With the tests' content (up to 16 kHz), a change
//! across a 0.5 s window of 10 µs lowers the peak to about 0.99, of 50 µs to about 0.76,
//! and of 100 µs below [`MIN_PEAK`], so that the window is skipped.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::stats::percentile;
use crate::time::{Nanos, TrueInstant};

/// A window whose normalized correlation peak is below this is not measured: the two
/// captures do not carry the same content there.
pub const MIN_PEAK: f64 = 0.5;

/// Half the interpolator's length: it uses this many input samples on each side.
const HALF_TAPS: usize = 48;
/// Taps of the interpolator.
const TAPS: usize = 2 * HALF_TAPS;
/// Tabulated kernel phases per sample (linear interpolation between them).
const PHASES: usize = 2048;
/// Interpolator cutoff, as a fraction of the input's Nyquist frequency.
const CUTOFF: f64 = 0.92;
/// Kaiser window shape.
const KAISER_BETA: f64 = 12.0;
/// Shortest window accepted, in A's samples.
const MIN_WINDOW_SAMPLES: usize = 256;

/// One speaker's captured output and its emission timeline.
#[derive(Clone, Copy)]
pub struct Capture<'a> {
    /// Interleaved samples.
    pub samples: &'a [f32],
    /// Channels per frame.
    pub channels: usize,
    /// Which channel to compare (0-based).
    pub channel: usize,
    /// True time at which frame 0 left the DAC.
    pub first: TrueInstant,
    /// True rate at which frames left, frames per true second.
    pub rate_hz: f64,
}

impl std::fmt::Debug for Capture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("samples", &format_args!("[{} samples]", self.samples.len()))
            .field("channels", &self.channels)
            .field("channel", &self.channel)
            .field("first", &self.first)
            .field("rate_hz", &self.rate_hz)
            .finish()
    }
}

impl Capture<'_> {
    /// Whole frames in the capture.
    pub fn frames(&self) -> usize {
        self.samples.len().checked_div(self.channels).unwrap_or(0)
    }
}

/// How [`measure_skew`] windows and searches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterConfig {
    /// Window length, s of true time (default 0.5).
    pub window_s: f64,
    /// Distance between window starts, s of true time (default 0.5).
    pub hop_s: f64,
    /// The skew is searched in ±this, µs (default 5000). A peak at the first integer lag
    /// beyond it skips the window ([`SkewReport::skipped_edge`]); a skew found within one
    /// sample beyond it is still reported.
    pub max_skew_us: f64,
    /// Windows starting before this true time are ignored (default: none).
    pub start: Option<TrueInstant>,
    /// Windows where either capture's RMS is below this are skipped (default 1e-3,
    /// −60 dBFS).
    pub min_rms: f32,
}

impl Default for MeterConfig {
    fn default() -> MeterConfig {
        MeterConfig {
            window_s: 0.5,
            hop_s: 0.5,
            max_skew_us: 5000.0,
            start: None,
            min_rms: 1e-3,
        }
    }
}

/// The skew measured in one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkewWindow {
    /// True time at which the window's first sample of A left A's DAC.
    pub t: TrueInstant,
    /// B's emission time minus A's for the same content, µs: positive = B plays later.
    pub skew_us: f64,
    /// Normalized (Pearson) correlation at the peak, at most 1.
    pub peak: f64,
}

/// What [`measure_skew`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct SkewReport {
    /// Every measured window, in time order.
    pub windows: Vec<SkewWindow>,
    /// Median |skew|, µs (nearest rank).
    pub p50_us: f64,
    /// 99th percentile |skew|, µs (nearest rank).
    pub p99_us: f64,
    /// Largest |skew|, µs.
    pub max_us: f64,
    /// Mean skew, signed, µs: positive = B plays later on average.
    pub mean_us: f64,
    /// Windows skipped because A or B was quieter than [`MeterConfig::min_rms`].
    pub skipped_quiet: usize,
    /// Windows skipped because the correlation peak was below [`MIN_PEAK`].
    pub skipped_weak: usize,
    /// Windows skipped because the best lag was at the edge of the search range (the skew
    /// may be outside ±[`MeterConfig::max_skew_us`]).
    pub skipped_edge: usize,
}

/// Why the meter could not measure, or a capture file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// A capture is unusable.
    #[error("capture {capture}: `{field}` {reason}")]
    BadCapture {
        /// Which capture: `"a"` or `"b"`, or `"capture"` for a file being written.
        capture: &'static str,
        /// The field, as named in [`Capture`] (or the argument of [`write_capture_wav`](super::capture::write_capture_wav)).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration field is out of range.
    #[error("meter config: `{field}` {reason}")]
    BadConfig {
        /// The field, as named in [`MeterConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The two captures do not share any instant of true time.
    #[error(
        "captures do not overlap in time: A covers {}..{} ns, B covers {}..{} ns",
        a_start.as_nanos(),
        a_end.as_nanos(),
        b_start.as_nanos(),
        b_end.as_nanos()
    )]
    NoOverlap {
        /// First emission of A.
        a_start: TrueInstant,
        /// End of A's last frame.
        a_end: TrueInstant,
        /// First emission of B.
        b_start: TrueInstant,
        /// End of B's last frame.
        b_end: TrueInstant,
    },
    /// The captures overlap (after `start`), but not for one window plus the search
    /// margin on both sides.
    #[error("captures overlap for {overlap_s:.3} s, one window needs {need_s:.3} s")]
    TooShort {
        /// Usable overlap, s.
        overlap_s: f64,
        /// What one window needs, s (window plus twice the search margin and the
        /// interpolator's reach).
        need_s: f64,
    },
    /// Every window was quieter than [`MeterConfig::min_rms`] in A or B.
    #[error("all {windows} windows are quieter than min_rms")]
    NoSignal {
        /// Windows looked at.
        windows: usize,
    },
    /// No window was measured, and in some the correlation peak was below [`MIN_PEAK`]: the
    /// captures do not carry the same content (the other windows, if any, were quiet or
    /// peaked at the edge of the search range).
    #[error(
        "no window correlates (best peak {best_peak:.3}, need {MIN_PEAK}) in {windows} windows"
    )]
    NoCorrelation {
        /// Highest normalized correlation peak seen in any window.
        best_peak: f64,
        /// Windows with signal looked at.
        windows: usize,
    },
    /// Every correlating window peaked at the edge of the search range: the skew is
    /// probably larger than [`MeterConfig::max_skew_us`].
    #[error("the skew is outside the search range ±{max_skew_us} µs in all {windows} windows")]
    OutOfRange {
        /// The search range, µs.
        max_skew_us: f64,
        /// Windows that peaked at the edge.
        windows: usize,
    },
    /// A WAV file could not be read or written.
    #[error("WAV file {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What hound said.
        source: hound::Error,
    },
    /// A WAV file was read but its format is not supported.
    #[error("WAV file {path}: {reason}")]
    WavFormat {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// A sidecar file could not be read or written.
    #[error("sidecar file {path}: {source}")]
    SidecarIo {
        /// The sidecar file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A sidecar file was read but is not what [`write_capture_wav`](super::capture::write_capture_wav) writes.
    #[error("sidecar file {path}: {reason}")]
    SidecarFormat {
        /// The sidecar file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

pub(super) fn bad_capture(
    capture: &'static str,
    field: &'static str,
    reason: impl Into<String>,
) -> MeterError {
    MeterError::BadCapture {
        capture,
        field,
        reason: reason.into(),
    }
}

fn bad_config(field: &'static str, reason: impl Into<String>) -> MeterError {
    MeterError::BadConfig {
        field,
        reason: reason.into(),
    }
}

/// Checks a capture and returns its frame count.
fn validate(c: &Capture, name: &'static str) -> Result<usize, MeterError> {
    if c.channels == 0 {
        return Err(bad_capture(name, "channels", "must be at least 1"));
    }
    if c.channel >= c.channels {
        return Err(bad_capture(
            name,
            "channel",
            format!("is {}, but there are {} channels", c.channel, c.channels),
        ));
    }
    if !(c.rate_hz.is_finite() && c.rate_hz > 0.0) {
        return Err(bad_capture(
            name,
            "rate_hz",
            format!("must be finite and positive, is {}", c.rate_hz),
        ));
    }
    if c.samples.is_empty() {
        return Err(bad_capture(name, "samples", "is empty"));
    }
    if !c.samples.len().is_multiple_of(c.channels) {
        return Err(bad_capture(
            name,
            "samples",
            format!(
                "holds {} samples, not a whole number of {}-channel frames",
                c.samples.len(),
                c.channels
            ),
        ));
    }
    if let Some(k) = c
        .samples
        .iter()
        .skip(c.channel)
        .step_by(c.channels)
        .position(|s| !s.is_finite())
    {
        return Err(bad_capture(
            name,
            "samples",
            format!("frame {k} of the compared channel is not finite"),
        ));
    }
    Ok(c.samples.len() / c.channels)
}

fn validate_config(config: &MeterConfig) -> Result<(), MeterError> {
    if !(config.window_s.is_finite() && config.window_s > 0.0) {
        return Err(bad_config("window_s", "must be finite and positive"));
    }
    if !(config.hop_s.is_finite() && config.hop_s > 0.0) {
        return Err(bad_config("hop_s", "must be finite and positive"));
    }
    if !(config.max_skew_us.is_finite() && config.max_skew_us >= 0.0) {
        return Err(bad_config("max_skew_us", "must be finite and not negative"));
    }
    if config.max_skew_us > 1e6 {
        return Err(bad_config("max_skew_us", "must be at most 1 s (1e6 µs)"));
    }
    if !(config.min_rms.is_finite() && config.min_rms >= 0.0) {
        return Err(bad_config("min_rms", "must be finite and not negative"));
    }
    Ok(())
}

/// The zeroth-order modified Bessel function of the first kind (power series).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut k = 1.0;
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// The interpolation kernel, tabulated: row `p` holds the taps for fractional position
/// `p / PHASES`, each row normalized to unit DC gain.
struct Kernel {
    table: Vec<f64>,
}

impl Kernel {
    fn get() -> &'static Kernel {
        static KERNEL: OnceLock<Kernel> = OnceLock::new();
        KERNEL.get_or_init(Kernel::build)
    }

    /// The continuous kernel at `t` samples from its centre.
    fn eval(t: f64) -> f64 {
        let half = HALF_TAPS as f64;
        if t.abs() >= half {
            return 0.0;
        }
        let x = CUTOFF * t;
        let sinc = if x.abs() < 1e-12 {
            1.0
        } else {
            (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
        };
        let r = t / half;
        let window = bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / bessel_i0(KAISER_BETA);
        CUTOFF * sinc * window
    }

    fn build() -> Kernel {
        let mut table = vec![0.0; (PHASES + 1) * TAPS];
        for (p, row) in table.chunks_exact_mut(TAPS).enumerate() {
            let mu = p as f64 / PHASES as f64;
            for (tap, v) in row.iter_mut().enumerate() {
                // Tap `tap` weighs input `floor + tap - HALF_TAPS + 1`.
                let k = tap as f64 - HALF_TAPS as f64 + 1.0;
                *v = Kernel::eval(k - mu);
            }
            let sum: f64 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= sum);
        }
        Kernel { table }
    }

    /// The taps for fractional position `mu` in [0, 1].
    fn taps(&self, mu: f64, out: &mut [f64; TAPS]) {
        let p = mu * PHASES as f64;
        let i = (p.floor() as usize).min(PHASES - 1);
        let f = p - i as f64;
        let r0 = &self.table[i * TAPS..(i + 1) * TAPS];
        let r1 = &self.table[(i + 1) * TAPS..(i + 2) * TAPS];
        for ((o, a), b) in out.iter_mut().zip(r0).zip(r1) {
            *o = a + f * (b - a);
        }
    }

    /// The taps for fractional position `mu` in [0, 1], computed exactly rather than read
    /// from the table. The table's rows are interpolated linearly, which makes any curve
    /// built from them piecewise linear at the scale of 1/`PHASES` sample (10 ns at
    /// 48 kHz), flat enough near a correlation peak to move its maximum by a whole cell;
    /// the fine search therefore uses these.
    fn exact_taps(mu: f64, out: &mut [f64; TAPS]) {
        for (tap, o) in out.iter_mut().enumerate() {
            let k = tap as f64 - HALF_TAPS as f64 + 1.0;
            *o = Kernel::eval(k - mu);
        }
        let sum: f64 = out.iter().sum();
        out.iter_mut().for_each(|v| *v /= sum);
    }

    /// `s` interpolated at fractional index `j` with exact taps (see
    /// [`exact_taps`](Self::exact_taps)); same reach as [`interpolate`](Self::interpolate).
    fn interpolate_exact(s: &[f64], j: f64) -> f64 {
        let mut taps = [0.0; TAPS];
        let fl = j.floor();
        Kernel::exact_taps(j - fl, &mut taps);
        let start = fl as usize + 1 - HALF_TAPS;
        s[start..start + TAPS]
            .iter()
            .zip(taps.iter())
            .map(|(a, b)| a * b)
            .sum()
    }

    /// `s` interpolated at fractional index `j`; needs `HALF_TAPS - 1` samples before
    /// `floor(j)` and `HALF_TAPS` after it.
    fn interpolate(&self, s: &[f64], j: f64, taps: &mut [f64; TAPS]) -> f64 {
        let fl = j.floor();
        self.taps(j - fl, taps);
        let start = fl as usize + 1 - HALF_TAPS;
        s[start..start + TAPS]
            .iter()
            .zip(taps.iter())
            .map(|(a, b)| a * b)
            .sum()
    }
}

/// Dot product in `LANES` independent sums, written so that it vectorizes.
fn dot<T, const LANES: usize>(a: &[T], b: &[T]) -> T
where
    T: Copy + Default + std::ops::AddAssign + std::ops::Mul<Output = T> + std::iter::Sum,
{
    let mut acc = [T::default(); LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let tail: T = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, &p), &q) in acc.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    let mut total: T = acc.into_iter().sum();
    total += tail;
    total
}

/// Dot product in f32.
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot::<f32, 16>(a, b)
}

/// Dot product in f64.
fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    dot::<f64, 8>(a, b)
}

/// What became of one window.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Measured(SkewWindow),
    Quiet,
    Weak(f64),
    Edge(f64),
}

/// Per-window working buffers, reused.
struct Work {
    x: Vec<f64>,
    x32: Vec<f32>,
    seg: Vec<f64>,
    y: Vec<f64>,
    y32: Vec<f32>,
    sum1: Vec<f64>,
    sum2: Vec<f64>,
    fine: Vec<f64>,
}

/// Everything fixed for one measurement.
struct Plan<'a> {
    a: &'a Capture<'a>,
    b: &'a Capture<'a>,
    frames_b: usize,
    /// Window length in A's samples.
    n: usize,
    /// Coarse search reaches ±(m + 1) lags; |lag| = m + 1 is the edge.
    m: usize,
    /// Padding of the resampled B on each side of the window.
    pad: usize,
    /// B's samples per A sample.
    ratio: f64,
    /// B's fractional index of A's sample 0.
    b_index_of_a0: f64,
}

impl Plan<'_> {
    /// B's fractional index of A's (fractional) sample `i`.
    fn b_index(&self, i: f64) -> f64 {
        self.b_index_of_a0 + i * self.ratio
    }

    /// The range of B's frames that window `i0` needs, or `Err(true)` if it needs frames
    /// before B's first, `Err(false)` if after its last.
    fn b_range(&self, i0: usize) -> Result<(usize, usize), bool> {
        let first = self.b_index(i0 as f64 - self.pad as f64).floor();
        let last = self.b_index((i0 + self.n + self.pad - 1) as f64).floor();
        // The interpolator reaches HALF_TAPS - 1 frames back and HALF_TAPS forward; one
        // more on each side keeps it inside if rounding moves a position across a frame.
        let lo = first - HALF_TAPS as f64;
        let hi = last + HALF_TAPS as f64 + 1.0;
        if lo < 0.0 {
            return Err(true);
        }
        if hi > self.frames_b as f64 - 1.0 {
            return Err(false);
        }
        Ok((lo as usize, hi as usize))
    }

    fn measure(&self, i0: usize, (lo, hi): (usize, usize), min_rms: f32, w: &mut Work) -> Outcome {
        let kernel = Kernel::get();
        let (n, pad) = (self.n, self.pad);
        let (a, b) = (self.a, self.b);
        let mut taps = [0.0; TAPS];

        // A's window.
        w.x.clear();
        w.x.extend(
            a.samples[i0 * a.channels + a.channel..]
                .iter()
                .step_by(a.channels)
                .take(n)
                .map(|&s| f64::from(s)),
        );
        // B's samples around it, and B resampled at A's instants, lag-0 sample at `pad`.
        w.seg.clear();
        w.seg.extend(
            b.samples[lo * b.channels + b.channel..]
                .iter()
                .step_by(b.channels)
                .take(hi - lo + 1)
                .map(|&s| f64::from(s)),
        );
        w.y.clear();
        let base = self.b_index(i0 as f64 - pad as f64) - lo as f64;
        for k in 0..n + 2 * pad {
            let j = base + k as f64 * self.ratio;
            w.y.push(kernel.interpolate(&w.seg, j, &mut taps));
        }

        let rms = |v: &[f64]| (v.iter().map(|s| s * s).sum::<f64>() / v.len() as f64).sqrt();
        let min_rms = f64::from(min_rms);
        if rms(&w.x) < min_rms || rms(&w.y[pad..pad + n]) < min_rms {
            return Outcome::Quiet;
        }

        // Pearson correlation: A's window without its mean against B's lagged segment,
        // normalized by both energies about their means.
        let mean = w.x.iter().sum::<f64>() / n as f64;
        w.x.iter_mut().for_each(|s| *s -= mean);
        let ex: f64 = w.x.iter().map(|s| s * s).sum();
        w.sum1.clear();
        w.sum2.clear();
        w.sum1.push(0.0);
        w.sum2.push(0.0);
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in &w.y {
            s1 += v;
            s2 += v * v;
            w.sum1.push(s1);
            w.sum2.push(s2);
        }
        // Energy of B's lag-`lag` segment (about its mean), at integer lags.
        let ey = |lag: i64| -> f64 {
            let s = (pad as i64 + lag) as usize;
            let m1 = w.sum1[s + n] - w.sum1[s];
            let m2 = w.sum2[s + n] - w.sum2[s];
            (m2 - m1 * m1 / n as f64).max(0.0)
        };
        let rho = |c: f64, e: f64| {
            if ex > 0.0 && e > 0.0 {
                c / (ex * e).sqrt()
            } else {
                0.0
            }
        };

        // Coarse search over every integer lag.
        w.x32.clear();
        w.x32.extend(w.x.iter().map(|&s| s as f32));
        w.y32.clear();
        w.y32.extend(w.y.iter().map(|&s| s as f32));
        let edge = self.m as i64 + 1;
        let mut best = (0i64, f64::NEG_INFINITY);
        for lag in -edge..=edge {
            let s = (pad as i64 + lag) as usize;
            let c = f64::from(dot_f32(&w.x32, &w.y32[s..s + n]));
            let r = rho(c, ey(lag));
            if r > best.1 {
                best = (lag, r);
            }
        }
        let (l0, coarse_peak) = best;
        if l0.abs() == edge {
            return if coarse_peak < MIN_PEAK {
                Outcome::Weak(coarse_peak)
            } else {
                Outcome::Edge(coarse_peak)
            };
        }

        // Fine: correlation in f64 at lags l0 - HALF_TAPS - 1 ..= l0 + HALF_TAPS + 2,
        // interpolated with the band-limited kernel.
        let fine_lo = l0 - HALF_TAPS as i64 - 1;
        w.fine.clear();
        for lag in fine_lo..=l0 + HALF_TAPS as i64 + 2 {
            let s = (pad as i64 + lag) as usize;
            w.fine.push(dot_f64(&w.x, &w.y[s..s + n]));
        }
        let fine = &w.fine;
        let rho_at = |tau: f64| -> f64 {
            let c = Kernel::interpolate_exact(fine, tau - fine_lo as f64);
            let fl = tau.floor();
            let f = tau - fl;
            let e = ey(fl as i64) * (1.0 - f) + ey(fl as i64 + 1) * f;
            rho(c, e)
        };
        let l0f = l0 as f64;
        let mut tau_best = l0f;
        let mut rho_best = rho_at(l0f);
        for k in -16..=16 {
            let tau = l0f + f64::from(k) / 16.0;
            let r = rho_at(tau);
            if r > rho_best {
                (tau_best, rho_best) = (tau, r);
            }
        }
        let (tau, peak) = golden_max(
            &rho_at,
            (tau_best - 1.0 / 16.0).max(l0f - 1.0),
            (tau_best + 1.0 / 16.0).min(l0f + 1.0),
            1e-7,
        );
        let tau = if peak >= rho_best { tau } else { tau_best };
        // The peak's value, evaluated directly: B interpolated from its own samples at A's
        // instants shifted by `tau`, against A's window (a check on the fine curve, whose
        // energy term is interpolated linearly between lags).
        let shift = (pad as f64 + tau) * self.ratio;
        let mut taps = [0.0; TAPS];
        let (mut c, mut s1, mut s2) = (0.0, 0.0, 0.0);
        for (k, &xv) in w.x.iter().enumerate() {
            let v = kernel.interpolate(&w.seg, base + shift + k as f64 * self.ratio, &mut taps);
            c += xv * v;
            s1 += v;
            s2 += v * v;
        }
        let peak = rho(c, (s2 - s1 * s1 / n as f64).max(0.0));
        if peak < MIN_PEAK {
            return Outcome::Weak(peak);
        }
        let t_rel_ns = i0 as f64 * 1e9 / a.rate_hz;
        Outcome::Measured(SkewWindow {
            t: a.first + Nanos(t_rel_ns.round() as i64),
            skew_us: tau / a.rate_hz * 1e6,
            peak,
        })
    }
}

/// The maximum of `f` in [lo, hi] by golden-section search, to `tol`.
fn golden_max(f: &dyn Fn(f64) -> f64, mut lo: f64, mut hi: f64, tol: f64) -> (f64, f64) {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = hi - g * (hi - lo);
    let mut x2 = lo + g * (hi - lo);
    let mut f1 = f(x1);
    let mut f2 = f(x2);
    while hi - lo > tol {
        if f1 >= f2 {
            hi = x2;
            (x2, f2) = (x1, f1);
            x1 = hi - g * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            (x1, f1) = (x2, f2);
            x2 = lo + g * (hi - lo);
            f2 = f(x2);
        }
    }
    let x = (lo + hi) / 2.0;
    (x, f(x))
}

/// Measures, window by window, how much later B emits the same content than A. See the
/// [module docs](self) for the method and its limits.
///
/// The first window starts at [`MeterConfig::start`] or at the first of A's samples for
/// which B covers the window and the search margin, whichever is later; the others follow
/// every [`MeterConfig::hop_s`] while both captures cover them.
///
/// Fails if a capture or the config is invalid, if the captures do not overlap in time
/// ([`MeterError::NoOverlap`]) or not for one whole window ([`MeterError::TooShort`]), or
/// if no window could be measured ([`MeterError::NoSignal`],
/// [`MeterError::NoCorrelation`], [`MeterError::OutOfRange`]).
pub fn measure_skew(
    a: &Capture,
    b: &Capture,
    config: &MeterConfig,
) -> Result<SkewReport, MeterError> {
    let frames_a = validate(a, "a")?;
    let frames_b = validate(b, "b")?;
    validate_config(config)?;

    // Time relative to A's first sample, in f64 ns: absolute times (up to ~1.7e18 ns for
    // PTP time) would lose precision in f64, differences do not.
    let d0 = (i128::from(b.first.as_nanos()) - i128::from(a.first.as_nanos())) as f64;
    let a_end = frames_a as f64 * 1e9 / a.rate_hz;
    let b_end = d0 + frames_b as f64 * 1e9 / b.rate_hz;
    if b_end <= 0.0 || d0 >= a_end {
        let end = |first: TrueInstant, frames: usize, rate: f64| {
            first + Nanos((frames as f64 * 1e9 / rate).round() as i64)
        };
        return Err(MeterError::NoOverlap {
            a_start: a.first,
            a_end: end(a.first, frames_a, a.rate_hz),
            b_start: b.first,
            b_end: end(b.first, frames_b, b.rate_hz),
        });
    }

    let n = (config.window_s * a.rate_hz).round() as usize;
    if n < MIN_WINDOW_SAMPLES {
        return Err(bad_config(
            "window_s",
            format!("gives {n} samples of A, need at least {MIN_WINDOW_SAMPLES}"),
        ));
    }
    let hop = ((config.hop_s * a.rate_hz).round() as usize).max(1);
    let m = (config.max_skew_us * 1e-6 * a.rate_hz).ceil() as usize;
    let pad = m + HALF_TAPS + 4;
    let ratio = b.rate_hz / a.rate_hz;
    let plan = Plan {
        a,
        b,
        frames_b,
        n,
        m,
        pad,
        ratio,
        b_index_of_a0: -d0 * b.rate_hz / 1e9,
    };

    let rel_start = config
        .start
        .map(|s| (i128::from(s.as_nanos()) - i128::from(a.first.as_nanos())) as f64)
        .unwrap_or(0.0)
        .max(0.0);
    // The first window starts at `start`, or where B first covers it with the search
    // margin, whichever is later; the others follow every hop.
    let i_start = (rel_start * a.rate_hz / 1e9).ceil();
    let i_cover = (pad as f64 + (HALF_TAPS as f64 - plan.b_index_of_a0) / ratio).ceil();
    let mut i0 = i_start.max(i_cover).clamp(0.0, frames_a as f64) as usize;
    while i0 + n <= frames_a && plan.b_range(i0) == Err(true) {
        i0 += 1;
    }

    let mut work = Work {
        x: Vec::with_capacity(n),
        x32: Vec::with_capacity(n),
        seg: Vec::new(),
        y: Vec::with_capacity(n + 2 * pad),
        y32: Vec::with_capacity(n + 2 * pad),
        sum1: Vec::with_capacity(n + 2 * pad + 1),
        sum2: Vec::with_capacity(n + 2 * pad + 1),
        fine: Vec::with_capacity(TAPS + 4),
    };
    let mut windows = Vec::new();
    let (mut looked, mut quiet, mut weak, mut edge) = (0usize, 0usize, 0usize, 0usize);
    let mut best_peak = f64::NEG_INFINITY;
    while i0 + n <= frames_a {
        match plan.b_range(i0) {
            Err(true) => {
                i0 += hop;
                continue;
            }
            Err(false) => break,
            Ok(range) => {
                looked += 1;
                match plan.measure(i0, range, config.min_rms, &mut work) {
                    Outcome::Measured(w) => {
                        best_peak = best_peak.max(w.peak);
                        windows.push(w);
                    }
                    Outcome::Quiet => quiet += 1,
                    Outcome::Weak(p) => {
                        best_peak = best_peak.max(p);
                        weak += 1;
                    }
                    Outcome::Edge(p) => {
                        best_peak = best_peak.max(p);
                        edge += 1;
                    }
                }
            }
        }
        i0 += hop;
    }

    if looked == 0 {
        let reach = (pad + HALF_TAPS + 1) as f64 / a.rate_hz;
        let start = rel_start.max(d0).max(0.0);
        let end = a_end.min(b_end);
        return Err(MeterError::TooShort {
            overlap_s: ((end - start) / 1e9).max(0.0),
            need_s: n as f64 / a.rate_hz + 2.0 * reach,
        });
    }
    if windows.is_empty() {
        return Err(if quiet == looked {
            MeterError::NoSignal { windows: looked }
        } else if weak == 0 {
            MeterError::OutOfRange {
                max_skew_us: config.max_skew_us,
                windows: edge,
            }
        } else {
            MeterError::NoCorrelation {
                best_peak,
                windows: looked - quiet,
            }
        });
    }

    let mut abs: Vec<f64> = windows.iter().map(|w| w.skew_us.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let mean_us = windows.iter().map(|w| w.skew_us).sum::<f64>() / windows.len() as f64;
    Ok(SkewReport {
        p50_us: percentile(&abs, 0.50),
        p99_us: percentile(&abs, 0.99),
        max_us: abs.last().copied().unwrap_or(f64::NAN),
        mean_us,
        windows,
        skipped_quiet: quiet,
        skipped_weak: weak,
        skipped_edge: edge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_rows_are_normalized_and_interpolate_a_tone() {
        let k = Kernel::get();
        let mut taps = [0.0; TAPS];
        for mu in [0.0, 0.25, 0.5, 0.9999] {
            k.taps(mu, &mut taps);
            assert!((taps.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        // A 15 kHz tone at 48 kHz, interpolated between samples.
        let f = 15_000.0 / 48_000.0;
        let s: Vec<f64> = (0..200)
            .map(|i| (2.0 * std::f64::consts::PI * f * i as f64 + 0.3).sin())
            .collect();
        for j in [50.0, 77.3, 100.5, 123.987] {
            let want = (2.0 * std::f64::consts::PI * f * j + 0.3).sin();
            let got = k.interpolate(&s, j, &mut taps);
            assert!((got - want).abs() < 1e-4, "{j}: {got} vs {want}");
        }
    }

    #[test]
    fn golden_section_finds_a_maximum() {
        let (x, y) = golden_max(&|x| -(x - 0.3).powi(2), 0.0, 1.0, 1e-9);
        assert!((x - 0.3).abs() < 1e-8 && y.abs() < 1e-15);
    }
}
