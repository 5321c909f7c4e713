//! The stages a speaker's [`Chain`](crate::playout::stage::Chain) is made of: a stereo-pair
//! [`ChannelSplit`], a Linkwitz–Riley [`Crossover`], a click-free [`Gain`] controlled from
//! any thread through a [`GainControl`], and a fractional-sample [`Delay`] trim.
//!
//! All of them allocate only in their constructors, accept blocks of any length, and never
//! turn finite input into NaN or infinity.

use crate::media::MAX_CHANNELS;
use std::f64::consts::PI;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::playout::stage::{
    ChainError, MAX_BLOCK_FRAMES, Stage, check_channels, check_sample_rate,
};

/// Frames `input` and `output` have room for, given their channel counts.
fn block_frames(input: &[f32], ci: usize, output: &[f32], co: usize) -> usize {
    (input.len() / ci).min(output.len() / co)
}

// ---------------------------------------------------------------------------------------
// Channel split
// ---------------------------------------------------------------------------------------

/// What a [`ChannelSplit`] does with its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SplitMode {
    /// Stereo in, the left channel out (mono).
    Left,
    /// Stereo in, the right channel out (mono).
    Right,
    /// Stereo in, `(L + R) / 2` out (mono).
    MonoDownmix,
    /// Stereo in, stereo out with left and right exchanged.
    Swap,
    /// Any number of channels in, the same out, unchanged.
    PassThrough,
}

/// Picks, mixes or swaps the channels of a stereo pair; see [`SplitMode`]. Memoryless.
#[derive(Debug, Clone)]
pub struct ChannelSplit {
    mode: SplitMode,
    channels_in: usize,
}

impl ChannelSplit {
    /// A split in `mode` fed with `channels_in` channels.
    ///
    /// [`Left`](SplitMode::Left), [`Right`](SplitMode::Right),
    /// [`MonoDownmix`](SplitMode::MonoDownmix) and [`Swap`](SplitMode::Swap) take exactly 2
    /// channels; anything else is [`ChainError::InvalidConfig`] naming `channels_in`.
    /// [`PassThrough`](SplitMode::PassThrough) takes 1 to
    /// [`MAX_CHANNELS`].
    pub fn new(mode: SplitMode, channels_in: usize) -> Result<ChannelSplit, ChainError> {
        check_channels("split", "channels_in", channels_in)?;
        if mode != SplitMode::PassThrough && channels_in != 2 {
            return Err(ChainError::InvalidConfig {
                stage: "split",
                field: "channels_in",
                reason: format!("{mode:?} takes 2 channels, got {channels_in}"),
            });
        }
        Ok(ChannelSplit { mode, channels_in })
    }

    /// The mode.
    pub fn mode(&self) -> SplitMode {
        self.mode
    }
}

impl Stage for ChannelSplit {
    fn name(&self) -> &'static str {
        "split"
    }

    fn channels_in(&self) -> usize {
        self.channels_in
    }

    fn channels_out(&self) -> usize {
        match self.mode {
            SplitMode::Left | SplitMode::Right | SplitMode::MonoDownmix => 1,
            SplitMode::Swap => 2,
            SplitMode::PassThrough => self.channels_in,
        }
    }

    fn delay_frames(&self) -> f64 {
        0.0
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        let (ci, co) = (self.channels_in, self.channels_out());
        let frames = block_frames(input, ci, output, co);
        let input = &input[..frames * ci];
        let output = &mut output[..frames * co];
        match self.mode {
            SplitMode::Left => {
                for (o, f) in output.iter_mut().zip(input.chunks_exact(2)) {
                    *o = f[0];
                }
            }
            SplitMode::Right => {
                for (o, f) in output.iter_mut().zip(input.chunks_exact(2)) {
                    *o = f[1];
                }
            }
            SplitMode::MonoDownmix => {
                // Halve first so two full-scale samples cannot overflow to infinity.
                for (o, f) in output.iter_mut().zip(input.chunks_exact(2)) {
                    *o = 0.5 * f[0] + 0.5 * f[1];
                }
            }
            SplitMode::Swap => {
                for (o, f) in output.chunks_exact_mut(2).zip(input.chunks_exact(2)) {
                    o[0] = f[1];
                    o[1] = f[0];
                }
            }
            SplitMode::PassThrough => output.copy_from_slice(input),
        }
        frames
    }

    fn reset(&mut self) {}
}

// ---------------------------------------------------------------------------------------
// Crossover
// ---------------------------------------------------------------------------------------

/// The usual crossover frequency between a subwoofer and its satellites, in Hz.
pub const DEFAULT_CROSSOVER_HZ: f64 = 80.0;

/// Which side of a [`Crossover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrossoverKind {
    /// Keeps what is below the crossover frequency (for a subwoofer).
    LowPass,
    /// Keeps what is above the crossover frequency (for satellites).
    HighPass,
}

/// States below this are flushed to 0 so a decaying filter never reaches denormals.
const FLUSH_BELOW: f64 = 1e-30;

/// A second-order section, normalised (a0 = 1), run in transposed direct form II.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
}

impl Biquad {
    /// One sample through the section, direct form I, with state `s` = `[x₋₁, x₋₂, y₋₁,
    /// y₋₂]`. The sum is ordered so that only `− a1·y₋₁` waits for the previous output:
    /// a recursion of one multiply and one add per sample, which is what bounds an IIR
    /// filter's speed.
    #[inline(always)]
    fn run(&self, s: &mut [f64; 4], x: f64) -> f64 {
        let y = (self.b0 * x + self.b1 * s[0] + self.b2 * s[1] - self.a2 * s[3]) - self.a1 * s[2];
        *s = [x, s[0], y, s[2]];
        y
    }
}

/// Frames a [`Crossover`] runs between flushes of tiny states to zero. A state decays by
/// at most the section's pole radius a frame (above 0.8 for any allowed frequency), so in
/// this many frames it cannot fall from [`FLUSH_BELOW`] to the subnormal range.
const FLUSH_EVERY: usize = 256;

/// A Linkwitz–Riley 4th-order (24 dB/octave) crossover filter: two cascaded 2nd-order
/// Butterworth sections (Q = 1/√2) per channel, designed by the bilinear transform
/// prewarped at the crossover frequency.
///
/// At the crossover frequency both sides are at −6.02 dB, and the low-pass and high-pass
/// of the same frequency are **in phase** at every frequency: their sum is an all-pass with
/// flat magnitude, so a subwoofer and its satellites add up without a dip or a bump. That
/// shared phase is what matters between speakers, and an IIR filter has no single delay
/// (its group delay depends on frequency), so [`delay_frames`](Stage::delay_frames) is 0.
///
/// Computes in `f64`; filter states smaller than 1e-30 are flushed to 0, so silence in
/// gives exact zeros out after a while and the filter never slows down on denormals.
#[derive(Debug, Clone)]
pub struct Crossover {
    kind: CrossoverKind,
    frequency_hz: f64,
    channels: usize,
    section: Biquad,
    /// Per channel: state of the first and of the second section.
    state: [[[f64; 4]; 2]; MAX_CHANNELS],
}

impl Crossover {
    /// A `kind` filter at `frequency_hz` for `channels` channels at `sample_rate` Hz.
    ///
    /// `frequency_hz` must be finite, above 0 and below 0.45 × `sample_rate`, else
    /// [`ChainError::InvalidConfig`] naming `frequency_hz`.
    pub fn new(
        kind: CrossoverKind,
        frequency_hz: f64,
        sample_rate: u32,
        channels: usize,
    ) -> Result<Crossover, ChainError> {
        check_channels("crossover", "channels", channels)?;
        check_sample_rate("crossover", sample_rate)?;
        let rate = f64::from(sample_rate);
        if !(frequency_hz.is_finite() && frequency_hz > 0.0 && frequency_hz < 0.45 * rate) {
            return Err(ChainError::InvalidConfig {
                stage: "crossover",
                field: "frequency_hz",
                reason: format!(
                    "must be above 0 and below {} Hz (0.45 × the sample rate), got {frequency_hz}",
                    0.45 * rate
                ),
            });
        }
        // RBJ cookbook, Q = 1/√2; 1 − cos w0 written as 2 sin²(w0/2) to keep its precision
        // at low frequencies.
        let w0 = 2.0 * PI * frequency_hz / rate;
        let (sin_w0, cos_w0) = w0.sin_cos();
        let alpha = sin_w0 / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
        let one_minus_cos = 2.0 * (0.5 * w0).sin().powi(2);
        let one_plus_cos = 2.0 - one_minus_cos;
        let a0 = 1.0 + alpha;
        let (b0, b1) = match kind {
            CrossoverKind::LowPass => (0.5 * one_minus_cos, one_minus_cos),
            CrossoverKind::HighPass => (0.5 * one_plus_cos, -one_plus_cos),
        };
        let section = Biquad {
            b0: b0 / a0,
            b1: b1 / a0,
            b2: b0 / a0,
            a1: -2.0 * cos_w0 / a0,
            a2: (1.0 - alpha) / a0,
        };
        Ok(Crossover {
            kind,
            frequency_hz,
            channels,
            section,
            state: [[[0.0; 4]; 2]; MAX_CHANNELS],
        })
    }

    /// Low-pass or high-pass.
    pub fn kind(&self) -> CrossoverKind {
        self.kind
    }

    /// The crossover frequency in Hz.
    pub fn frequency_hz(&self) -> f64 {
        self.frequency_hz
    }

    /// Whether every filter state is exactly 0, so that silence in gives exact silence
    /// out: true after construction, [`reset`](Stage::reset), or a while of silence.
    pub fn is_settled(&self) -> bool {
        self.state.iter().flatten().flatten().all(|&s| s == 0.0)
    }
}

impl Crossover {
    /// Runs `N`-channel frames (`N` = the stage's channel count) through both sections.
    fn run<const N: usize>(&mut self, input: &[f32], output: &mut [f32]) {
        let sec = self.section;
        let mut state: [[[f64; 4]; 2]; N] = std::array::from_fn(|c| self.state[c]);
        for (out, inp) in output
            .chunks_mut(FLUSH_EVERY * N)
            .zip(input.chunks(FLUSH_EVERY * N))
        {
            for (o, x) in out
                .as_chunks_mut::<N>()
                .0
                .iter_mut()
                .zip(inp.as_chunks::<N>().0)
            {
                for c in 0..N {
                    let y = sec.run(&mut state[c][0], f64::from(x[c]));
                    o[c] = sec.run(&mut state[c][1], y) as f32;
                }
            }
            for s in state.iter_mut().flatten().flatten() {
                if s.abs() < FLUSH_BELOW {
                    *s = 0.0;
                }
            }
        }
        self.state[..N].copy_from_slice(&state);
    }
}

impl Stage for Crossover {
    fn name(&self) -> &'static str {
        "crossover"
    }

    fn channels_in(&self) -> usize {
        self.channels
    }

    fn channels_out(&self) -> usize {
        self.channels
    }

    /// 0: an IIR filter has no single delay; see the type's documentation.
    fn delay_frames(&self) -> f64 {
        0.0
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        let ch = self.channels;
        let frames = block_frames(input, ch, output, ch);
        let (input, output) = (&input[..frames * ch], &mut output[..frames * ch]);
        // One copy of the loop per channel count, so the states live in registers.
        match ch {
            1 => self.run::<1>(input, output),
            2 => self.run::<2>(input, output),
            3 => self.run::<3>(input, output),
            4 => self.run::<4>(input, output),
            5 => self.run::<5>(input, output),
            6 => self.run::<6>(input, output),
            7 => self.run::<7>(input, output),
            _ => self.run::<8>(input, output),
        }
        frames
    }

    fn reset(&mut self) {
        self.state = [[[0.0; 4]; 2]; MAX_CHANNELS];
    }
}

// ---------------------------------------------------------------------------------------
// Gain
// ---------------------------------------------------------------------------------------

/// How long a [`Gain`] takes to move to a new volume, by default, in ms.
pub const DEFAULT_RAMP_MS: f64 = 10.0;

/// The loudest volume a [`Gain`] accepts, in dB.
pub const MAX_GAIN_DB: f32 = 24.0;

/// Volumes below this (in dB) are silence: a gain of exactly 0.
pub const SILENCE_BELOW_DB: f32 = -120.0;

/// Linear gain for `db`; below [`SILENCE_BELOW_DB`] (−∞ included) exactly 0.
fn db_to_linear(db: f32) -> f64 {
    if db < SILENCE_BELOW_DB {
        0.0
    } else {
        10f64.powf(f64::from(db) / 20.0)
    }
}

#[derive(Debug)]
struct GainShared {
    /// Target volume in dB, as `f32` bits.
    volume_db: AtomicU32,
    muted: AtomicBool,
}

/// Sets a [`Gain`]'s volume and mute from any thread, without locks.
///
/// Cheap to clone; every clone controls the same gain. The stage reads the settings once
/// per block and ramps to them, so a change takes effect at the next block.
#[derive(Debug, Clone)]
pub struct GainControl {
    shared: Arc<GainShared>,
}

impl GainControl {
    /// Sets the volume in dB.
    ///
    /// Values above [`MAX_GAIN_DB`] (+∞ included) are clamped to it; values below
    /// [`SILENCE_BELOW_DB`] (−∞ included) mean silence; NaN is ignored (the volume stays
    /// as it was).
    pub fn set_volume_db(&self, db: f32) {
        if db.is_nan() {
            return;
        }
        let db = db.min(MAX_GAIN_DB);
        self.shared.volume_db.store(db.to_bits(), Ordering::Relaxed);
    }

    /// Mutes (ramping down to exact silence) or unmutes (ramping back to the volume).
    pub fn set_mute(&self, mute: bool) {
        self.shared.muted.store(mute, Ordering::Relaxed);
    }

    /// The volume last set, in dB (as clamped).
    pub fn volume_db(&self) -> f32 {
        f32::from_bits(self.shared.volume_db.load(Ordering::Relaxed))
    }

    /// Whether muted.
    pub fn muted(&self) -> bool {
        self.shared.muted.load(Ordering::Relaxed)
    }
}

/// Volume and mute, without zipper noise: on a change the linear gain moves in a straight
/// line to its new value over the ramp time (10 ms by default), sample by sample, the same
/// for every channel. Muting ramps to exactly 0. Controlled through its [`GainControl`].
///
/// Volumes below [`SILENCE_BELOW_DB`] are silence (gain exactly 0). Memoryless apart from
/// the ramp, so [`delay_frames`](Stage::delay_frames) is 0.
#[derive(Debug)]
pub struct Gain {
    channels: usize,
    shared: Arc<GainShared>,
    ramp_frames: u32,
    /// Linear gain applied to the last frame.
    current: f64,
    /// Linear gain being ramped to.
    target: f64,
    /// Change of `current` per frame while ramping.
    step: f64,
    /// Frames left in the ramp.
    ramp_left: u32,
    /// The gain at construction, for `reset`.
    initial: f64,
}

impl Gain {
    /// A gain for `channels` channels at `sample_rate` Hz starting at `initial_db` (no ramp
    /// to it), with the default ramp of [`DEFAULT_RAMP_MS`]; and its control.
    ///
    /// `initial_db` must be at most [`MAX_GAIN_DB`] and not NaN (−∞ is allowed: silence),
    /// else [`ChainError::InvalidConfig`] naming `initial_db`.
    pub fn new(
        channels: usize,
        sample_rate: u32,
        initial_db: f32,
    ) -> Result<(Gain, GainControl), ChainError> {
        Gain::with_ramp(channels, sample_rate, initial_db, DEFAULT_RAMP_MS)
    }

    /// As [`Gain::new`] with a ramp of `ramp_ms` milliseconds: 0 (changes jump) to 1000,
    /// else [`ChainError::InvalidConfig`] naming `ramp_ms`.
    pub fn with_ramp(
        channels: usize,
        sample_rate: u32,
        initial_db: f32,
        ramp_ms: f64,
    ) -> Result<(Gain, GainControl), ChainError> {
        check_channels("gain", "channels", channels)?;
        check_sample_rate("gain", sample_rate)?;
        if initial_db.is_nan() || initial_db > MAX_GAIN_DB {
            return Err(ChainError::InvalidConfig {
                stage: "gain",
                field: "initial_db",
                reason: format!("must be at most {MAX_GAIN_DB} dB, got {initial_db}"),
            });
        }
        if !(0.0..=1000.0).contains(&ramp_ms) {
            return Err(ChainError::InvalidConfig {
                stage: "gain",
                field: "ramp_ms",
                reason: format!("must be 0 to 1000 ms, got {ramp_ms}"),
            });
        }
        let shared = Arc::new(GainShared {
            volume_db: AtomicU32::new(initial_db.to_bits()),
            muted: AtomicBool::new(false),
        });
        let ramp_frames = (ramp_ms * f64::from(sample_rate) / 1000.0).round() as u32;
        let initial = db_to_linear(initial_db);
        let gain = Gain {
            channels,
            shared: Arc::clone(&shared),
            ramp_frames,
            current: initial,
            target: initial,
            step: 0.0,
            ramp_left: 0,
            initial,
        };
        Ok((gain, GainControl { shared }))
    }

    /// A control for this gain (the same as the one [`Gain::new`] returned).
    pub fn control(&self) -> GainControl {
        GainControl {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Frames a ramp from one volume to another takes.
    pub fn ramp_frames(&self) -> u32 {
        self.ramp_frames
    }

    /// The linear gain applied to the last frame processed.
    pub fn current_gain(&self) -> f64 {
        self.current
    }

    /// Reads the control and, if the target moved, starts a ramp to it.
    fn update_target(&mut self) {
        let muted = self.shared.muted.load(Ordering::Relaxed);
        let db = f32::from_bits(self.shared.volume_db.load(Ordering::Relaxed));
        let target = if muted { 0.0 } else { db_to_linear(db) };
        if target == self.target {
            return;
        }
        self.target = target;
        if self.ramp_frames == 0 {
            self.current = target;
            self.ramp_left = 0;
        } else {
            self.step = (target - self.current) / f64::from(self.ramp_frames);
            self.ramp_left = self.ramp_frames;
        }
    }
}

impl Stage for Gain {
    fn name(&self) -> &'static str {
        "gain"
    }

    fn channels_in(&self) -> usize {
        self.channels
    }

    fn channels_out(&self) -> usize {
        self.channels
    }

    fn delay_frames(&self) -> f64 {
        0.0
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        let ch = self.channels;
        let frames = block_frames(input, ch, output, ch);
        self.update_target();
        let mut output = &mut output[..frames * ch];
        let mut input = &input[..frames * ch];
        // Ramp part: the gain moves each frame.
        while self.ramp_left > 0 && !input.is_empty() {
            self.ramp_left -= 1;
            self.current = if self.ramp_left == 0 {
                self.target
            } else {
                self.current + self.step
            };
            let g = self.current as f32;
            for (o, &x) in output[..ch].iter_mut().zip(&input[..ch]) {
                *o = x * g;
            }
            input = &input[ch..];
            output = &mut output[ch..];
        }
        // Steady part.
        let g = self.current as f32;
        if g == 1.0 {
            output.copy_from_slice(input);
        } else {
            for (o, &x) in output.iter_mut().zip(input) {
                *o = x * g;
            }
        }
        frames
    }

    /// Back to the gain at construction, no ramp in progress. The control is left alone:
    /// if it has changed since, the next block ramps to it.
    fn reset(&mut self) {
        self.current = self.initial;
        self.target = self.initial;
        self.step = 0.0;
        self.ramp_left = 0;
    }
}

// ---------------------------------------------------------------------------------------
// Delay
// ---------------------------------------------------------------------------------------

/// Taps of the fractional-delay interpolator.
pub const DELAY_TAPS: usize = 32;

/// Latency the interpolator adds on top of the requested delay, in frames: the centre of
/// its taps. See [`Delay`].
pub const DELAY_FIR_LATENCY: usize = DELAY_TAPS / 2 - 1;

/// Kaiser window shape for the interpolator: about 60 dB of stopband, flat to well above
/// 0.4 × the sample rate.
const KAISER_BETA: f64 = 6.0;

/// The longest delay a [`Delay`] accepts, in µs.
pub const MAX_DELAY_US: f64 = 1_000_000.0;

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let q = 0.25 * x * x;
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > 1e-17 * sum {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// A per-speaker delay trim with sub-sample resolution.
///
/// The requested delay `D` = `delay_us` × rate / 10⁶ frames is split into whole frames,
/// taken from a ring buffer, and a fraction, applied by a 32-tap windowed-sinc (Kaiser,
/// β = 6) interpolator computed once at construction. The interpolator needs a centre:
/// it adds [`DELAY_FIR_LATENCY`] (15) frames of its own, so the stage delays by
/// `D + 15` frames, which is what [`delay_frames`](Stage::delay_frames) reports — not
/// `delay_us` × rate. For a whole number of frames (including 0) the interpolator is a
/// single tap and the stage is an exact delay of `D + 15` frames; fractions within 10⁻⁹
/// of a whole frame are rounded to it.
///
/// The interpolator is flat within 0.02 dB and its delay right within 0.001 frame up to
/// 0.4 × the sample rate (19.2 kHz at 48 kHz).
///
/// Its ring holds the delay plus a block of [`MAX_BLOCK_FRAMES`] per channel, allocated at
/// construction (at most about 1.6 MB per channel: 1 s at 384 kHz).
#[derive(Clone)]
pub struct Delay {
    channels: usize,
    delay_us: f64,
    /// Whole frames of the requested delay.
    whole: usize,
    /// Fraction of a frame of the requested delay, in [0, 1).
    frac: f64,
    /// Interpolator taps, reversed (oldest sample first); `None` for a whole-frame delay.
    taps: Option<[f32; DELAY_TAPS]>,
    /// Ring length per channel, in frames.
    cap: usize,
    /// Per channel, `cap + DELAY_TAPS − 1` samples: the ring, then a copy of its first
    /// `DELAY_TAPS − 1` samples so every interpolator window is contiguous.
    buf: Box<[f32]>,
    /// Where the next frame goes in the ring.
    write: usize,
}

impl std::fmt::Debug for Delay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delay")
            .field("channels", &self.channels)
            .field("delay_us", &self.delay_us)
            .field("delay_frames", &self.delay_frames())
            .finish_non_exhaustive()
    }
}

impl Delay {
    /// A delay of `delay_us` µs for `channels` channels at `sample_rate` Hz.
    ///
    /// `delay_us` must be from 0 to 10⁶ (1 s), else [`ChainError::InvalidConfig`] naming
    /// `delay_us`.
    pub fn new(channels: usize, sample_rate: u32, delay_us: f64) -> Result<Delay, ChainError> {
        check_channels("delay", "channels", channels)?;
        check_sample_rate("delay", sample_rate)?;
        if !(0.0..=MAX_DELAY_US).contains(&delay_us) {
            return Err(ChainError::InvalidConfig {
                stage: "delay",
                field: "delay_us",
                reason: format!("must be 0 to {MAX_DELAY_US} µs, got {delay_us}"),
            });
        }
        let d = delay_us * f64::from(sample_rate) / 1e6;
        let mut whole = d.floor();
        let mut frac = d - whole;
        if frac < 1e-9 {
            frac = 0.0;
        } else if frac > 1.0 - 1e-9 {
            whole += 1.0;
            frac = 0.0;
        }
        let whole = whole as usize;
        let taps = (frac != 0.0).then(|| interpolator(frac));
        // Room for the delay, the interpolator's window and a whole piece written at once.
        let cap = whole + DELAY_TAPS + MAX_BLOCK_FRAMES;
        let buf = vec![0.0; channels * (cap + DELAY_TAPS - 1)].into_boxed_slice();
        Ok(Delay {
            channels,
            delay_us,
            whole,
            frac,
            taps,
            cap,
            buf,
            write: 0,
        })
    }

    /// The delay asked for, in µs.
    pub fn delay_us(&self) -> f64 {
        self.delay_us
    }

    /// At most [`MAX_BLOCK_FRAMES`] frames, `input` and `output` the same length: the
    /// whole piece goes into the ring first, then the output is read from it, one channel
    /// at a time (reading right after writing the same place would stall the CPU).
    fn process_piece(&mut self, input: &[f32], output: &mut [f32]) {
        let (ch, cap) = (self.channels, self.cap);
        let stride = cap + DELAY_TAPS - 1;
        let w0 = self.write;
        // How far behind the newest frame the output (or the interpolator window) starts.
        let back = match self.taps {
            Some(_) => self.whole + DELAY_TAPS - 1,
            None => self.whole + DELAY_FIR_LATENCY,
        };
        for (c, ring) in self.buf.chunks_exact_mut(stride).enumerate() {
            let mut w = w0;
            for &x in input[c..].iter().step_by(ch) {
                ring[w] = x;
                if w < DELAY_TAPS - 1 {
                    ring[cap + w] = x;
                }
                w = if w + 1 == cap { 0 } else { w + 1 };
            }
            let mut r = if w0 >= back {
                w0 - back
            } else {
                w0 + cap - back
            };
            let outs = output[c..].iter_mut().step_by(ch);
            match &self.taps {
                Some(taps) => {
                    for o in outs {
                        let window = ring[r..r + DELAY_TAPS].try_into();
                        *o = dot(taps, window.expect("the window is DELAY_TAPS long"));
                        r = if r + 1 == cap { 0 } else { r + 1 };
                    }
                }
                None => {
                    for o in outs {
                        *o = ring[r];
                        r = if r + 1 == cap { 0 } else { r + 1 };
                    }
                }
            }
        }
        let n = input.len() / ch;
        self.write = (w0 + n) % cap;
    }
}

/// Taps of the interpolator for a delay of `DELAY_FIR_LATENCY + frac` frames, reversed
/// (tap for the oldest sample first), normalised to a DC gain of 1.
fn interpolator(frac: f64) -> [f32; DELAY_TAPS] {
    let centre = DELAY_FIR_LATENCY as f64 + frac;
    let half = DELAY_TAPS as f64 / 2.0;
    let i0_beta = bessel_i0(KAISER_BETA);
    let mut h = [0f64; DELAY_TAPS];
    for (k, h) in h.iter_mut().enumerate() {
        let t = k as f64 - centre;
        let sinc = if t == 0.0 {
            1.0
        } else {
            (PI * t).sin() / (PI * t)
        };
        let r = t / half;
        let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
        *h = sinc * window;
    }
    let sum: f64 = h.iter().sum();
    let mut taps = [0f32; DELAY_TAPS];
    for (t, h) in taps.iter_mut().zip(h.iter().rev()) {
        *t = (h / sum) as f32;
    }
    taps
}

/// Dot product in eight lanes (for speed; always the same order, so the same result).
#[inline(always)]
fn dot(a: &[f32; DELAY_TAPS], b: &[f32; DELAY_TAPS]) -> f32 {
    let mut acc = [0f32; 8];
    for (ca, cb) in a.as_chunks::<8>().0.iter().zip(b.as_chunks::<8>().0) {
        acc = std::array::from_fn(|i| acc[i] + ca[i] * cb[i]);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

impl Stage for Delay {
    fn name(&self) -> &'static str {
        "delay"
    }

    fn channels_in(&self) -> usize {
        self.channels
    }

    fn channels_out(&self) -> usize {
        self.channels
    }

    /// The delay really applied: whole frames + fraction + the interpolator's
    /// [`DELAY_FIR_LATENCY`].
    fn delay_frames(&self) -> f64 {
        (self.whole + DELAY_FIR_LATENCY) as f64 + self.frac
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        let ch = self.channels;
        let frames = block_frames(input, ch, output, ch);
        let mut done = 0;
        while done < frames {
            let n = (frames - done).min(MAX_BLOCK_FRAMES);
            let span = done * ch..(done + n) * ch;
            self.process_piece(&input[span.clone()], &mut output[span]);
            done += n;
        }
        frames
    }

    fn reset(&mut self) {
        self.buf.fill(0.0);
        self.write = 0;
    }
}
