//! The [`Stage`] trait and the [`Chain`] that runs a list of stages, assembled at run time.
//!
//! Audio is interleaved `f32`: frame after frame, one sample per channel in each frame. A
//! stage takes frames of [`Stage::channels_in`] channels and gives the same number of frames
//! of [`Stage::channels_out`] channels; a [`Chain`] checks when it is built that each stage
//! is fed the channel count it takes, so a mistake in a speaker's configuration (a stereo
//! split fed mono, say) is a typed [`ChainError`] at set-up rather than garbage at play time.
//!
//! Nothing here allocates once built: the chain owns two ping-pong scratch buffers sized
//! for [`MAX_BLOCK_FRAMES`] frames of the widest point of the chain, and cuts longer input
//! into pieces of that size.
//!
//! The stages themselves are in [`stages`](crate::playout::stages).

use std::fmt;

use thiserror::Error;

use crate::media::MAX_CHANNELS;

/// The largest block a [`Stage`] is ever handed, in frames. [`Chain::process`] cuts longer
/// input into pieces of at most this many frames.
pub const MAX_BLOCK_FRAMES: usize = 8192;

/// One step of a speaker's signal path: takes interleaved frames of
/// [`channels_in`](Self::channels_in) channels, gives as many frames of
/// [`channels_out`](Self::channels_out) channels.
///
/// `Send`, so a chain can be built on one thread and run on the audio thread.
pub trait Stage: Send {
    /// A short, fixed name for messages ("split", "crossover", …).
    fn name(&self) -> &'static str;

    /// Channels per input frame.
    fn channels_in(&self) -> usize;

    /// Channels per output frame.
    fn channels_out(&self) -> usize;

    /// Delay this stage adds, in frames (fractional allowed); 0 for memoryless stages.
    fn delay_frames(&self) -> f64;

    /// Processes `input` (a whole number of `channels_in` frames, 0..=[`MAX_BLOCK_FRAMES`]
    /// of them) into `output` (at least frames × `channels_out` samples); returns frames.
    /// Allocates nothing.
    ///
    /// The stages of this crate also accept longer blocks, and when `output` holds fewer
    /// frames than `input` they process only as many frames as fit (the return value says
    /// how many).
    fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize;

    /// Clears internal state (filter memories, delay lines) as after construction.
    fn reset(&mut self);
}

/// Why a chain or a stage could not be made.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A stage is fed a different number of channels than it takes.
    #[error("stage {index} ({stage}) takes {expected} channels but is fed {got}")]
    ChannelMismatch {
        /// Position of the stage in the chain, from 0.
        index: usize,
        /// The stage's [`Stage::name`].
        stage: &'static str,
        /// Channels the stage takes.
        expected: usize,
        /// Channels the stage would be fed: the chain's input or the previous stage's
        /// output.
        got: usize,
    },
    /// A stage's constructor was given a value out of range.
    #[error("invalid {stage} config: {field} {reason}")]
    InvalidConfig {
        /// The stage's [`Stage::name`].
        stage: &'static str,
        /// The constructor argument at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// More than [`MAX_CHANNELS`] channels somewhere in the chain.
    #[error("{channels} channels is more than the {MAX_CHANNELS} a chain carries")]
    TooManyChannels {
        /// The channel count asked for.
        channels: usize,
    },
}

/// Checks a channel count for a stage's constructor: 1..=[`MAX_CHANNELS`].
pub(crate) fn check_channels(
    stage: &'static str,
    field: &'static str,
    channels: usize,
) -> Result<(), ChainError> {
    if channels == 0 {
        return Err(ChainError::InvalidConfig {
            stage,
            field,
            reason: "must be at least 1".into(),
        });
    }
    if channels > MAX_CHANNELS {
        return Err(ChainError::TooManyChannels { channels });
    }
    Ok(())
}

/// Checks a sample rate for a stage's constructor: 8 kHz to 384 kHz.
pub(crate) fn check_sample_rate(stage: &'static str, sample_rate: u32) -> Result<(), ChainError> {
    if !(8_000..=384_000).contains(&sample_rate) {
        return Err(ChainError::InvalidConfig {
            stage,
            field: "sample_rate",
            reason: format!("must be 8000 to 384000 Hz, got {sample_rate}"),
        });
    }
    Ok(())
}

/// A list of [`Stage`]s run one after the other, assembled at run time.
///
/// Built with [`Chain::new`], which checks that the channel counts line up. Processing
/// allocates nothing: the chain owns two scratch buffers of [`MAX_BLOCK_FRAMES`] × the
/// largest channel count in the chain, and stages ping-pong between them, the last one
/// writing straight into the caller's output.
pub struct Chain {
    channels_in: usize,
    channels_out: usize,
    stages: Vec<Box<dyn Stage>>,
    /// (channels_in, channels_out) of each stage, read once at construction.
    shapes: Vec<(usize, usize)>,
    scratch_a: Box<[f32]>,
    scratch_b: Box<[f32]>,
    non_finite: u64,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&'static str> = self.stages.iter().map(|s| s.name()).collect();
        f.debug_struct("Chain")
            .field("channels_in", &self.channels_in)
            .field("channels_out", &self.channels_out)
            .field("stages", &names)
            .field("non_finite_replaced", &self.non_finite)
            .finish()
    }
}

impl Chain {
    /// A chain fed with `channels_in` channels running `stages` in order.
    ///
    /// Each stage's [`channels_in`](Stage::channels_in) must equal the previous stage's
    /// [`channels_out`](Stage::channels_out) (the first stage's, `channels_in`), else
    /// [`ChainError::ChannelMismatch`] naming the stage's index. No point of the chain may
    /// carry more than [`MAX_CHANNELS`] channels ([`ChainError::TooManyChannels`]), nor
    /// none ([`ChainError::InvalidConfig`]). An empty list is a pass-through of
    /// `channels_in` channels.
    pub fn new(channels_in: usize, stages: Vec<Box<dyn Stage>>) -> Result<Chain, ChainError> {
        check_channels("chain", "channels_in", channels_in)?;
        let mut shapes = Vec::with_capacity(stages.len());
        let mut width = channels_in;
        let mut widest = channels_in;
        for (index, stage) in stages.iter().enumerate() {
            let (ci, co) = (stage.channels_in(), stage.channels_out());
            if ci != width {
                return Err(ChainError::ChannelMismatch {
                    index,
                    stage: stage.name(),
                    expected: ci,
                    got: width,
                });
            }
            check_channels(stage.name(), "channels_out", co)?;
            shapes.push((ci, co));
            width = co;
            widest = widest.max(co);
        }
        let scratch_len = if stages.is_empty() {
            0
        } else {
            MAX_BLOCK_FRAMES * widest
        };
        Ok(Chain {
            channels_in,
            channels_out: width,
            stages,
            shapes,
            scratch_a: vec![0.0; scratch_len].into_boxed_slice(),
            scratch_b: vec![0.0; scratch_len].into_boxed_slice(),
            non_finite: 0,
        })
    }

    /// Channels per input frame.
    pub fn channels_in(&self) -> usize {
        self.channels_in
    }

    /// Channels per output frame.
    pub fn channels_out(&self) -> usize {
        self.channels_out
    }

    /// Delay of the whole chain in frames: the sum of its stages'
    /// [`delay_frames`](Stage::delay_frames).
    pub fn delay_frames(&self) -> f64 {
        self.stages.iter().map(|s| s.delay_frames()).sum()
    }

    /// Number of stages.
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// Whether the chain has no stages (a pass-through).
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// The stages' names, in order.
    pub fn stage_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.stages.iter().map(|s| s.name())
    }

    /// Replaces NaN and ±inf in the input with 0 (counted in
    /// [`non_finite_replaced`](Self::non_finite_replaced)), processes the block through
    /// every stage into `output`; returns frames.
    ///
    /// Input longer than [`MAX_BLOCK_FRAMES`] is processed in pieces; the result does not
    /// depend on how a signal is cut into blocks. Ragged input (not a whole number of
    /// frames) processes the whole frames only, and if `output` holds fewer than
    /// frames × [`channels_out`](Self::channels_out) samples only as many frames as fit are
    /// processed. Allocates nothing.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        let (ci, co) = (self.channels_in, self.channels_out);
        let frames = (input.len() / ci).min(output.len() / co);
        let mut done = 0;
        while done < frames {
            let n = (frames - done).min(MAX_BLOCK_FRAMES);
            let src = &input[done * ci..(done + n) * ci];
            let dst = &mut output[done * co..(done + n) * co];
            self.process_piece(src, dst, n);
            done += n;
        }
        frames
    }

    /// One piece of at most [`MAX_BLOCK_FRAMES`] frames; `input` and `output` are exactly
    /// `frames` frames long.
    fn process_piece(&mut self, input: &[f32], output: &mut [f32], frames: usize) {
        let last = match self.stages.len() {
            0 => {
                self.non_finite += sanitize(input, output);
                return;
            }
            n => n - 1,
        };
        self.non_finite += sanitize(input, &mut self.scratch_a[..input.len()]);
        let (mut src, mut dst) = (&mut self.scratch_a, &mut self.scratch_b);
        for (i, (stage, &(si, so))) in self.stages.iter_mut().zip(&self.shapes).enumerate() {
            let from = &src[..frames * si];
            let got = if i == last {
                stage.process(from, output)
            } else {
                stage.process(from, &mut dst[..frames * so])
            };
            debug_assert_eq!(got, frames, "stage {i} ({}) dropped frames", stage.name());
            std::mem::swap(&mut src, &mut dst);
        }
    }

    /// How many NaN or infinite input samples have been replaced with 0 so far.
    pub fn non_finite_replaced(&self) -> u64 {
        self.non_finite
    }

    /// Clears every stage's state as after construction (the non-finite count stays).
    pub fn reset(&mut self) {
        for stage in &mut self.stages {
            stage.reset();
        }
    }
}

/// Copies `input` into `output` (same length), replacing non-finite samples with 0;
/// returns how many were replaced.
fn sanitize(input: &[f32], output: &mut [f32]) -> u64 {
    let mut bad = 0u64;
    for (o, &x) in output.iter_mut().zip(input) {
        let ok = x.is_finite();
        bad += u64::from(!ok);
        *o = if ok { x } else { 0.0 };
    }
    bad
}
