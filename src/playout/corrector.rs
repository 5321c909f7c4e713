//! The drift corrector: resamples the stream by a ratio close to 1 so that each sample
//! leaves the follower's DAC at the right time.
//!
//! A follower's DAC runs at its own crystal's rate. The playout controller measures how far
//! off that is and asks the corrector for a ratio (output frames per input frame) close to
//! 1, typically within ±1000 ppm, which it updates every block. The corrector works in a
//! pull model: the DAC wants [`CorrectorConfig::block_frames`] output frames; the corrector
//! says how many input frames it needs for them ([`DriftCorrector::input_frames_next`]),
//! takes exactly those and writes exactly one block ([`DriftCorrector::process`]).
//!
//! Four methods are available ([`CorrectorKind`]):
//!
//! - [`Sinc`](CorrectorKind::Sinc) (default): rubato's asynchronous sinc resampler, computed
//!   in f64, with a 128-tap Blackman–Harris² filter (flat within 0.04 dB to 20 kHz at
//!   48 kHz; cut off at 0.89 × Nyquist) oversampled 2048 times, with linear interpolation between
//!   the oversampled points. Transparent: THD+N of a tone below −145 dB at 1 kHz and
//!   15 kHz while the ratio moves. (256 taps measure the same and cost twice as much;
//!   cubic interpolation over 256 phases measures the same and costs half again as much.)
//! - [`Poly`](CorrectorKind::Poly): rubato's asynchronous polynomial (cubic, 4-point)
//!   interpolation, in f32. Cheap (a sixth of the sinc's cost), no anti-aliasing filter;
//!   clean at low frequencies (about −113 dB THD+N at 1 kHz), but distorting near the top
//!   of the band (about −20 dB at 15 kHz). Quintic measures −145 dB at 1 kHz and −25 dB at
//!   15 kHz for 40% more time.
//! - [`Slip`](CorrectorKind::Slip): rubato's `Slip`: passes samples through and drops or
//!   inserts a whole frame when the timing error reaches one, hidden by a 128-frame
//!   crossfade. Almost free, no filtering, but each slip is a small local distortion.
//! - [`DropDup`](CorrectorKind::DropDup): the baseline (Snapcast's method): drops or repeats
//!   a whole frame, no smoothing at all. Each correction is a click on sustained tones.
//!
//! A ratio change is never applied as a step. The asynchronous kinds follow a smooth path
//! through the requested ratios (see [`DriftCorrector::set_ratio`]): a uniform quadratic
//! B-spline, one block behind the requests, so that both the ratio and its rate of change
//! are continuous. rubato ramps linearly between the points it is given, so each block is
//! cut into pieces of at most [`SUB_BLOCK_FRAMES`] frames, each ramped to the path's value
//! at its end. A plain linear ramp per block would leave a kink in the ratio's slope at
//! every block boundary: a phase modulation at the block rate, which read −107 dB THD+N at
//! 15 kHz while the servo's fast start moved the ratio (`drift_quality -- --skip 1`). For
//! `Slip` and `DropDup` the ratio only sets how often a frame is slipped, so there is
//! nothing to ramp.
//!
//! Everything the corrector needs is allocated in [`DriftCorrector::new`];
//! [`DriftCorrector::process`] allocates nothing, so it can run in an audio callback.

use std::fmt;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Adjustable, Async, FixedAsync, PolynomialDegree, ResampleError, Resampler,
    ResamplerConstructionError, Resizable, SincInterpolationParameters, SincInterpolationType,
    Slip, WindowFunction,
};
use thiserror::Error;

use crate::media::MAX_CHANNELS;

/// Most output frames per block.
pub const MAX_BLOCK_FRAMES: usize = 8192;
/// Largest allowed [`CorrectorConfig::max_deviation_ppm`].
pub const MAX_DEVIATION_LIMIT_PPM: f64 = 100_000.0;

/// Sinc filter length in taps (input frames).
const SINC_LEN: usize = 128;
/// Sinc oversampling: filters precomputed per 1/2048 of a frame (a 2 MiB f64 table).
const SINC_OVERSAMPLING: usize = 2048;
/// Longest piece of a block over which an asynchronous engine ramps its ratio linearly:
/// 1.25 ms at 48 kHz (eight pieces in a 10 ms block). The kinks left between pieces are
/// the path's curvature over a piece: an eighth of a block's slope change per kink, over
/// an eighth of the time, so their phase error is about 8³ times smaller than a linear
/// ramp per block leaves.
pub const SUB_BLOCK_FRAMES: usize = 60;

/// How many pieces a block of `block` frames is ramped in.
fn sub_blocks(block: usize) -> usize {
    block.div_ceil(SUB_BLOCK_FRAMES).max(1)
}

/// Output frames from the start of a block of `block` frames in `pieces` pieces to the end
/// of piece `j`.
fn sub_end(block: usize, pieces: usize, j: usize) -> usize {
    (j + 1) * block / pieces
}

/// The ratio path at `u` ∈ [0, 1] through a block whose requests were `p[0]` two blocks
/// ago, `p[1]` one block ago and `now` for this block: the uniform quadratic B-spline
/// segment. It starts at the midpoint of `p[0]` and `p[1]` and ends at the midpoint of
/// `p[1]` and `now`, with the slope it had at the end of the block before.
pub(crate) fn ratio_path(p: [f64; 2], now: f64, u: f64) -> f64 {
    0.5 * (1.0 - u) * (1.0 - u) * p[0] + (0.5 + u - u * u) * p[1] + 0.5 * u * u * now
}

/// The mean over a block of `block` frames of the path an asynchronous engine follows
/// (piecewise linear through [`ratio_path`] at the ends of its pieces). Feeding it the
/// history of any quantity that enters the ratio linearly gives what the block applied of
/// it.
pub(crate) fn path_mean(p: [f64; 2], now: f64, block: usize) -> f64 {
    let pieces = sub_blocks(block);
    let mut sum = 0.0;
    let mut start = 0usize;
    let mut r0 = ratio_path(p, now, 0.0);
    for j in 0..pieces {
        let end = sub_end(block, pieces, j);
        let r1 = ratio_path(p, now, end as f64 / block as f64);
        sum += (end - start) as f64 * 0.5 * (r0 + r1);
        (start, r0) = (end, r1);
    }
    sum / block as f64
}
/// Polynomial degree of [`CorrectorKind::Poly`].
const POLY_DEGREE: PolynomialDegree = PolynomialDegree::Cubic;

/// The resampling method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CorrectorKind {
    /// rubato's asynchronous sinc resampler in f64: high quality (the default).
    #[default]
    Sinc,
    /// rubato's asynchronous polynomial (cubic) interpolator in f32: cheap.
    Poly,
    /// rubato's `Slip`: drops or inserts a frame, hidden by a crossfade.
    Slip,
    /// Drops or duplicates a whole frame, no smoothing: the baseline (Snapcast's method).
    DropDup,
}

impl CorrectorKind {
    /// Every kind, best quality first.
    pub const ALL: [CorrectorKind; 4] = [
        CorrectorKind::Sinc,
        CorrectorKind::Poly,
        CorrectorKind::Slip,
        CorrectorKind::DropDup,
    ];

    /// The kind's name: `"sinc"`, `"poly"`, `"slip"` or `"drop_dup"`.
    pub fn name(self) -> &'static str {
        match self {
            CorrectorKind::Sinc => "sinc",
            CorrectorKind::Poly => "poly",
            CorrectorKind::Slip => "slip",
            CorrectorKind::DropDup => "drop_dup",
        }
    }

    /// The kind named `s` (as given by [`name`](Self::name); ASCII case and `-` for `_`
    /// are accepted), or `None`.
    pub fn parse(s: &str) -> Option<CorrectorKind> {
        let s = s.trim();
        CorrectorKind::ALL.into_iter().find(|k| {
            let name = k.name();
            name.len() == s.len()
                && name
                    .bytes()
                    .zip(s.bytes())
                    .all(|(a, b)| a == b.to_ascii_lowercase() || (a == b'_' && b == b'-'))
        })
    }
}

impl fmt::Display for CorrectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a corrector is set up. [`CorrectorConfig::new`] gives the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CorrectorConfig {
    /// The resampling method. Default [`CorrectorKind::Sinc`].
    pub kind: CorrectorKind,
    /// Interleaved channels, 1 to 8.
    pub channels: usize,
    /// Nominal sample rate in Hz (the same on both sides), 8000 to 384000.
    pub sample_rate: u32,
    /// Output frames per [`DriftCorrector::process`] call, 1 to 8192 (`Slip` needs at
    /// least 4). Default 10 ms of audio (480 at 48 kHz).
    pub block_frames: usize,
    /// The ratio is clamped to `1 ± max_deviation_ppm·10⁻⁶`; above 0 and at most 100000.
    /// Default 1000.
    pub max_deviation_ppm: f64,
}

impl CorrectorConfig {
    /// The defaults for `channels` channels at `sample_rate` Hz: sinc, 10 ms blocks,
    /// ±1000 ppm.
    pub fn new(channels: usize, sample_rate: u32) -> CorrectorConfig {
        CorrectorConfig {
            kind: CorrectorKind::Sinc,
            channels,
            sample_rate,
            block_frames: (sample_rate as usize / 100).clamp(1, MAX_BLOCK_FRAMES),
            max_deviation_ppm: 1000.0,
        }
    }

    fn validate(&self) -> Result<(), CorrectorError> {
        let bad = |field, reason| Err(CorrectorError::InvalidConfig { field, reason });
        if self.channels == 0 || self.channels > MAX_CHANNELS {
            return bad("channels", "must be 1 to 8");
        }
        if !(8_000..=384_000).contains(&self.sample_rate) {
            return bad("sample_rate", "must be 8000 to 384000 Hz");
        }
        if self.block_frames == 0 || self.block_frames > MAX_BLOCK_FRAMES {
            return bad("block_frames", "must be 1 to 8192");
        }
        if self.kind == CorrectorKind::Slip && self.block_frames < 4 {
            return bad("block_frames", "must be at least 4 for slip");
        }
        if !(self.max_deviation_ppm > 0.0 && self.max_deviation_ppm <= MAX_DEVIATION_LIMIT_PPM) {
            return bad("max_deviation_ppm", "must be above 0 and at most 100000");
        }
        Ok(())
    }
}

/// What went wrong in a corrector.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
#[non_exhaustive]
pub enum CorrectorError {
    /// A configuration field is out of range.
    #[error("invalid drift corrector config: {field} {reason}")]
    InvalidConfig {
        /// The field, as named in [`CorrectorConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// rubato refused to build the resampler.
    #[error("rubato could not build the {kind} resampler: {source}")]
    Construction {
        /// The kind being built.
        kind: CorrectorKind,
        /// rubato's error.
        source: ResamplerConstructionError,
    },
    /// The input slice holds fewer samples than the block needs.
    #[error("input too short: the block needs {need} interleaved samples, got {have}")]
    InputTooShort {
        /// Samples needed: `input_frames_next() × channels`.
        need: usize,
        /// Samples given.
        have: usize,
    },
    /// The output slice holds fewer samples than one block.
    #[error("output too short: a block is {need} interleaved samples, got {have}")]
    OutputTooShort {
        /// Samples needed: `block_frames × channels`.
        need: usize,
        /// Samples given.
        have: usize,
    },
    /// rubato failed while processing (a bug in the corrector if it ever happens).
    #[error("rubato failed to process a block: {0}")]
    Process(ResampleError),
}

/// Where the content of rubato's output index `idx` sits relative to the current chunk's
/// first input frame, for each asynchronous interpolator.
#[derive(Debug, Clone, Copy)]
struct AsyncGeometry {
    /// rubato's index before the first block.
    init_last_index: f64,
    /// Input position of the output at index `idx` is `chunk_start + idx + offset`.
    offset: f64,
    /// Input frames the interpolator reads around an index (rubato's `nbr_points`).
    points: usize,
}

/// The sample type an asynchronous engine computes in.
trait Real: rubato::Sample + Into<f64> {}
impl Real for f32 {}
impl Real for f64 {}

struct AsyncEngine<T: Real> {
    resampler: Async<T>,
    /// Copy of the block's input in `T`, `input_frames_max × channels`.
    input: Vec<T>,
    /// Output block in `T`, `block_frames × channels`.
    output: Vec<T>,
    geometry: AsyncGeometry,
    /// Mirror of rubato's fractional read index (same arithmetic, see `process`).
    last_index: f64,
    /// Mirror of rubato's current ratio (the start of the next ramp).
    current_ratio: f64,
    /// The ratios requested for the last two blocks, oldest first: with this block's they
    /// define its path ([`ratio_path`]).
    history: [f64; 2],
    /// Whether a block has run since construction or the last reset. The first block
    /// runs at its request from its first frame: there is no path yet to join.
    started: bool,
    /// Output frames per block.
    block: usize,
}

/// What the corrector asks of an asynchronous engine, whatever it computes in.
trait AsyncOps: Send {
    fn input_frames_next(&self, target: f64) -> usize;
    fn process(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        ch: usize,
        block: usize,
        target: f64,
    ) -> Result<usize, CorrectorError>;
    fn next_position(&self, target: f64) -> f64;
    fn reset(&mut self);
}

struct DropDupEngine {
    /// Timing error in input frames: how far the ideal read position is ahead of the
    /// actual one. Kept within [−½, ½) by dropping (≥ ½) or repeating (< −½) frames.
    phase: f64,
    /// The last frame written, for a repeat at the start of a block.
    last: [f32; MAX_CHANNELS],
}

enum Engine {
    Async(Box<dyn AsyncOps>),
    Slip(Box<Slip<f32>>),
    DropDup(DropDupEngine),
}

/// Resamples an interleaved f32 stream by a slowly varying ratio close to 1.
///
/// See the [module docs](self).
pub struct DriftCorrector {
    config: CorrectorConfig,
    engine: Engine,
    ratio: f64,
    clamped: u64,
    frames_in: u64,
    frames_out: u64,
}

impl fmt::Debug for DriftCorrector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriftCorrector")
            .field("config", &self.config)
            .field("ratio", &self.ratio)
            .field("clamped", &self.clamped)
            .field("frames_in", &self.frames_in)
            .field("frames_out", &self.frames_out)
            .finish_non_exhaustive()
    }
}

impl DriftCorrector {
    /// Builds a corrector, allocating everything it will need. Errors name the offending
    /// field of `config`, or carry rubato's construction error.
    pub fn new(config: CorrectorConfig) -> Result<DriftCorrector, CorrectorError> {
        config.validate()?;
        let channels = config.channels;
        let block = config.block_frames;
        let dev = config.max_deviation_ppm * 1e-6;
        // rubato bounds the ratio to [1/max, max]; leave a little room beyond 1 ± dev.
        let max_relative = (1.0 / (1.0 - dev)).max(1.0 + dev) * (1.0 + 1e-6);
        let construction = |source| CorrectorError::Construction {
            kind: config.kind,
            source,
        };
        let engine = match config.kind {
            CorrectorKind::Sinc | CorrectorKind::Poly => {
                // Sinc computes in f64 (in f32 its rounding shows at −135 dB, and it is no
                // faster); the cheap polynomial in f32.
                let engine = if config.kind == CorrectorKind::Sinc {
                    AsyncEngine::<f64>::boxed(&config, max_relative)
                } else {
                    AsyncEngine::<f32>::boxed(&config, max_relative)
                };
                Engine::Async(engine.map_err(construction)?)
            }
            CorrectorKind::Slip => {
                let mut slip =
                    Slip::<f32>::new(block, channels, FixedAsync::Output).map_err(construction)?;
                // Slip can only sustain as many slips per block as its crossfades fit.
                let fits = slip.set_resample_ratio(1.0 + dev, false).is_ok()
                    && slip.set_resample_ratio(1.0 - dev, false).is_ok();
                if !fits {
                    return Err(CorrectorError::InvalidConfig {
                        field: "max_deviation_ppm",
                        reason: "is more than slip can sustain with this block_frames",
                    });
                }
                slip.reset();
                Engine::Slip(Box::new(slip))
            }
            CorrectorKind::DropDup => Engine::DropDup(DropDupEngine {
                phase: 0.0,
                last: [0.0; MAX_CHANNELS],
            }),
        };
        Ok(DriftCorrector {
            config,
            engine,
            ratio: 1.0,
            clamped: 0,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Sets the ratio output/input (1.0 = no correction; > 1 produces more output frames
    /// per input frame, i.e. plays slower) for the next block. Requests outside
    /// `1 ± max_deviation` are clamped and counted in [`clamped`](Self::clamped); a NaN
    /// request is counted and ignored.
    ///
    /// The asynchronous kinds never step: they follow the quadratic B-spline whose control
    /// points are the requests, one per block. The next block runs from the midpoint of
    /// the two requests before this one to the midpoint of the last and this one, so a
    /// request takes full effect one block later, and the mean ratio a block applies is
    /// about `(r₋₂ + 4·r₋₁ + r₀) / 6` of the last three requests. The ratio and its slope
    /// are continuous across blocks. The first block after construction or a
    /// [`reset`](Self::reset) runs at its request throughout.
    pub fn set_ratio(&mut self, ratio: f64) {
        if ratio.is_nan() {
            self.clamped += 1;
            return;
        }
        let dev = self.config.max_deviation_ppm * 1e-6;
        let (lo, hi) = (1.0 - dev, 1.0 + dev);
        let r = ratio.clamp(lo, hi);
        if r != ratio {
            self.clamped += 1;
        }
        self.ratio = r;
        match &mut self.engine {
            // The path through the requests is followed in `process`.
            Engine::Async(_) => {}
            Engine::Slip(s) => {
                let ok = s.set_resample_ratio(r, false);
                debug_assert!(ok.is_ok(), "ratio {r} rejected by slip: {ok:?}");
            }
            Engine::DropDup(_) => {}
        }
    }

    /// The ratio last set (after clamping); 1.0 initially.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// How many [`set_ratio`](Self::set_ratio) requests were clamped (or NaN).
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// Input frames the next [`process`](Self::process) call will consume.
    pub fn input_frames_next(&self) -> usize {
        match &self.engine {
            Engine::Async(e) => e.input_frames_next(self.ratio),
            Engine::Slip(s) => s.input_frames_next(),
            Engine::DropDup(d) => {
                drop_dup_input_frames(d.phase, self.ratio, self.config.block_frames)
            }
        }
    }

    /// Consumes exactly [`input_frames_next`](Self::input_frames_next) frames of
    /// interleaved input (the first `input_frames_next() × channels` samples of `input`;
    /// an error if it is shorter) and writes one block, `block_frames × channels` samples,
    /// to the start of `output`. Returns the number of output frames written, always
    /// `block_frames`. Allocates nothing. On error nothing is consumed or written.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<usize, CorrectorError> {
        let ch = self.config.channels;
        let block = self.config.block_frames;
        let n_in = self.input_frames_next();
        if input.len() < n_in * ch {
            return Err(CorrectorError::InputTooShort {
                need: n_in * ch,
                have: input.len(),
            });
        }
        if output.len() < block * ch {
            return Err(CorrectorError::OutputTooShort {
                need: block * ch,
                have: output.len(),
            });
        }
        let input = &input[..n_in * ch];
        let output = &mut output[..block * ch];
        let consumed = match &mut self.engine {
            Engine::Async(e) => e.process(input, output, ch, block, self.ratio)?,
            Engine::Slip(s) => {
                let inp =
                    InterleavedSlice::new(input, ch, n_in).expect("input length checked above");
                let mut out = InterleavedSlice::new_mut(output, ch, block)
                    .expect("output length checked above");
                let (i, o) = s
                    .process_into_buffer(&inp, &mut out, None)
                    .map_err(CorrectorError::Process)?;
                debug_assert_eq!((i, o), (n_in, block));
                i
            }
            Engine::DropDup(d) => d.process(input, output, ch, block, self.ratio),
        };
        debug_assert_eq!(consumed, n_in);
        self.frames_in += consumed as u64;
        self.frames_out += block as u64;
        Ok(block)
    }

    /// The corrector's delay, in output frames at the current [`ratio`](Self::ratio): the
    /// input frames consumed but not yet played out, `frames_in() − p`, times the ratio,
    /// where `p` (fractional, counted in input frames since construction) is the input
    /// position whose content the first output frame of the next block carries.
    ///
    /// A controller finds the input position of the next output frame as
    /// `frames_in() − delay_frames() / ratio()`. It includes the fractional read
    /// position, so it moves by up to a frame from block to block: for `Sinc` it is 63
    /// before the first block and 64 to 65 frames after (half the filter plus the frames
    /// rubato reads ahead), for `Poly` 1 and then 3 to 4; exact to about 10⁻⁴ frame (f64
    /// sinc) or 10⁻³ frame (f32 poly). For
    /// `Slip` and `DropDup` it is 0: the next output frame is the next input frame; their
    /// timing error of up to about one frame (the drift not yet slipped) is not included.
    pub fn delay_frames(&self) -> f64 {
        match &self.engine {
            Engine::Async(e) => -e.next_position(self.ratio) * self.ratio,
            Engine::Slip(_) | Engine::DropDup(_) => 0.0,
        }
    }

    /// Input frames consumed since construction (or the last [`reset`](Self::reset)).
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Output frames produced since construction (or the last [`reset`](Self::reset)).
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    /// Returns to the state just after construction: history cleared, ratio 1.0, frame
    /// and clamp counters zero. Allocates nothing.
    pub fn reset(&mut self) {
        match &mut self.engine {
            Engine::Async(e) => e.reset(),
            Engine::Slip(s) => s.reset(),
            Engine::DropDup(d) => {
                d.phase = 0.0;
                d.last = [0.0; MAX_CHANNELS];
            }
        }
        self.ratio = 1.0;
        self.clamped = 0;
        self.frames_in = 0;
        self.frames_out = 0;
    }

    /// The resampling method.
    pub fn kind(&self) -> CorrectorKind {
        self.config.kind
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &CorrectorConfig {
        &self.config
    }
}

impl<T: Real> AsyncEngine<T> {
    /// The engine for `config` (Sinc or Poly), with every buffer allocated.
    fn boxed(
        config: &CorrectorConfig,
        max_relative: f64,
    ) -> Result<Box<dyn AsyncOps>, ResamplerConstructionError>
    where
        AsyncEngine<T>: AsyncOps,
    {
        let (channels, block) = (config.channels, config.block_frames);
        let (resampler, geometry) = if config.kind == CorrectorKind::Sinc {
            let params = SincInterpolationParameters {
                sinc_len: SINC_LEN,
                f_cutoff: None,
                oversampling_factor: SINC_OVERSAMPLING,
                interpolation: SincInterpolationType::Linear,
                window: WindowFunction::BlackmanHarris2,
            };
            let r = Async::<T>::new_sinc(
                1.0,
                max_relative,
                &params,
                block,
                channels,
                FixedAsync::Output,
            )?;
            // The filter for index idx is centred on buffer position
            // idx + len/2 − 1 + 1/oversampling (rubato's sinc table layout).
            let len = SINC_LEN.next_multiple_of(8) as f64;
            let geometry = AsyncGeometry {
                init_last_index: -(len - 1.0),
                offset: len / 2.0 - 1.0 + 1.0 / SINC_OVERSAMPLING as f64,
                points: SINC_LEN.next_multiple_of(8),
            };
            (r, geometry)
        } else {
            let r = Async::<T>::new_poly(
                1.0,
                max_relative,
                POLY_DEGREE,
                block,
                channels,
                FixedAsync::Output,
            )?;
            let geometry = AsyncGeometry {
                init_last_index: -(POLY_DEGREE.nbr_points() as f64 / 2.0),
                offset: 0.0,
                points: POLY_DEGREE.nbr_points(),
            };
            (r, geometry)
        };
        let zero = T::coerce(0.0f64);
        Ok(Box::new(AsyncEngine {
            input: vec![zero; resampler.input_frames_max() * channels],
            output: vec![zero; block * channels],
            resampler,
            geometry,
            last_index: geometry.init_last_index,
            current_ratio: 1.0,
            history: [1.0; 2],
            started: false,
            block,
        }))
    }
}

impl<T: Real> AsyncEngine<T> {
    /// The ratio at the end of piece `j` of the next block, when it is requested at
    /// `target`.
    fn piece_ratio(&self, target: f64, pieces: usize, j: usize) -> f64 {
        let u = sub_end(self.block, pieces, j) as f64 / self.block as f64;
        ratio_path(self.history(target), target, u)
    }

    /// The requests the next block's path runs through, when it is requested at `target`.
    fn history(&self, target: f64) -> [f64; 2] {
        if self.started {
            self.history
        } else {
            [target; 2]
        }
    }

    /// The ratio in effect at the start of the next block.
    fn start_ratio(&self, target: f64) -> f64 {
        if self.started {
            self.current_ratio
        } else {
            target
        }
    }
}

/// rubato's arithmetic for one ramped chunk of `n` output frames from `from` to `to`,
/// starting at index `idx`: the input frames it needs (`calculate_input_size` in
/// asynchro.rs, operation for operation) and the index after the chunk, before those
/// frames are taken off (`t += inc; idx += t` per frame).
fn chunk_arithmetic(idx: f64, from: f64, to: f64, n: usize, points: usize) -> (usize, f64) {
    let avg = 0.5 * (1.0 / from + 1.0 / to);
    let overshoot = 0.5 * (1.0 / to - 1.0 / from);
    let need = (idx + n as f64 * avg + overshoot + points as f64).ceil();
    let mut t = 1.0 / from;
    let inc = (1.0 / to - 1.0 / from) / n as f64;
    let mut end = idx;
    for _ in 0..n {
        t += inc;
        end += t;
    }
    (need.max(0.0) as usize, end)
}

impl<T: Real> AsyncOps for AsyncEngine<T> {
    fn input_frames_next(&self, target: f64) -> usize {
        let pieces = sub_blocks(self.block);
        let (mut idx, mut from, mut total, mut start) =
            (self.last_index, self.start_ratio(target), 0, 0);
        for j in 0..pieces {
            let end = sub_end(self.block, pieces, j);
            let to = self.piece_ratio(target, pieces, j);
            let (need, after) = chunk_arithmetic(idx, from, to, end - start, self.geometry.points);
            total += need;
            idx = after - need as f64;
            (from, start) = (to, end);
        }
        total
    }

    fn process(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        ch: usize,
        block: usize,
        target: f64,
    ) -> Result<usize, CorrectorError> {
        let n_in = input.len() / ch;
        // rubato never asks for more than input_frames_max() per piece, and the pieces
        // together take what `input_frames_next` said; the buffer holds a whole block's.
        let Some(buf) = self.input.get_mut(..input.len()) else {
            return Err(CorrectorError::Process(
                ResampleError::InsufficientInputBufferSize {
                    expected: n_in,
                    actual: self.input.len() / ch,
                },
            ));
        };
        for (d, &s) in buf.iter_mut().zip(input) {
            *d = T::coerce(s);
        }
        if !self.started {
            self.resampler
                .set_resample_ratio_relative(target, false)
                .map_err(CorrectorError::Process)?;
            self.current_ratio = target;
            self.history = [target; 2];
            self.started = true;
        }
        let pieces = sub_blocks(block);
        let (mut consumed, mut start) = (0usize, 0usize);
        for j in 0..pieces {
            let end = sub_end(block, pieces, j);
            let n = end - start;
            let to = self.piece_ratio(target, pieces, j);
            self.resampler
                .set_chunk_size(n)
                .and_then(|()| self.resampler.set_resample_ratio_relative(to, true))
                .map_err(CorrectorError::Process)?;
            let need = self.resampler.input_frames_next();
            let Some(piece) = self.input.get(consumed * ch..(consumed + need) * ch) else {
                return Err(CorrectorError::Process(
                    ResampleError::InsufficientInputBufferSize {
                        expected: consumed + need,
                        actual: n_in,
                    },
                ));
            };
            let inp = InterleavedSlice::new(piece, ch, need).expect("length taken above");
            let mut out = InterleavedSlice::new_mut(&mut self.output[start * ch..end * ch], ch, n)
                .expect("sized in new");
            let (used, produced) = self
                .resampler
                .process_into_buffer(&inp, &mut out, None)
                .map_err(CorrectorError::Process)?;
            debug_assert_eq!((used, produced), (need, n));
            // Mirror rubato's index arithmetic, so the fractional read position is known
            // exactly.
            let (_, after) = chunk_arithmetic(
                self.last_index,
                self.current_ratio,
                to,
                n,
                self.geometry.points,
            );
            self.last_index = after - used as f64;
            self.current_ratio = to;
            consumed += used;
            start = end;
        }
        debug_assert_eq!(consumed, n_in, "input_frames_next mirrors rubato's sizes");
        for (d, &s) in output.iter_mut().zip(&self.output) {
            *d = s.into() as f32;
        }
        self.history = [self.history[1], target];
        Ok(consumed)
    }

    /// Input position of the next block's first output frame, relative to the next input
    /// frame to be consumed, when the block is requested at `target`.
    fn next_position(&self, target: f64) -> f64 {
        let pieces = sub_blocks(self.block);
        let n = sub_end(self.block, pieces, 0);
        let to = self.piece_ratio(target, pieces, 0);
        let from = self.start_ratio(target);
        let t = 1.0 / from;
        let inc = (1.0 / to - 1.0 / from) / n as f64;
        self.last_index + (t + inc) + self.geometry.offset
    }

    fn reset(&mut self) {
        self.resampler.reset();
        self.last_index = self.geometry.init_last_index;
        self.current_ratio = 1.0;
        self.history = [1.0; 2];
        self.started = false;
    }
}

/// Input frames a DropDup block of `block` output frames from `phase` at `ratio` will
/// take: the same loop as [`DropDupEngine::process`], counting only.
fn drop_dup_input_frames(mut phase: f64, ratio: f64, block: usize) -> usize {
    let step = 1.0 / ratio - 1.0;
    let mut input_frames = 0usize;
    for _ in 0..block {
        phase += step;
        if phase >= 0.5 {
            phase -= 1.0;
            input_frames += 2;
        } else if phase < -0.5 {
            phase += 1.0;
        } else {
            input_frames += 1;
        }
    }
    input_frames
}

impl DropDupEngine {
    /// Writes `block` frames from `input`, advancing one input frame per output frame,
    /// skipping one more when the timing error reaches +½ frame (drop) and repeating the
    /// previous frame when it reaches −½ (duplicate). Returns the input frames consumed.
    fn process(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        ch: usize,
        block: usize,
        ratio: f64,
    ) -> usize {
        let step = 1.0 / ratio - 1.0;
        let mut pos = 0usize;
        for frame in output.chunks_exact_mut(ch).take(block) {
            self.phase += step;
            if self.phase >= 0.5 {
                self.phase -= 1.0;
                pos += 1; // drop one input frame
            } else if self.phase < -0.5 {
                self.phase += 1.0;
                frame.copy_from_slice(&self.last[..ch]); // repeat the previous frame
                continue;
            }
            let src = &input[pos * ch..(pos + 1) * ch];
            frame.copy_from_slice(src);
            self.last[..ch].copy_from_slice(src);
            pos += 1;
        }
        pos
    }
}
