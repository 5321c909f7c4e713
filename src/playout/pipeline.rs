//! One follower's playout path: receiver FIFO → stage chain → drift corrector → DAC block,
//! steered by the [`PlayoutController`].
//!
//! [`Playout::render`] fills one DAC block. It needs the follower's clock estimate (to map
//! the DAC's local emission time to the leader's clock) and the DAC's report of when the
//! block's first frame will leave. It keeps an exact account of which input frame the next
//! output frame is made of: the input is numbered from the start of the current segment,
//! and after each block the corrector says where in its input the next output frame is
//! (its fractional read position, mirrored from the resampler's own arithmetic). So the
//! presentation time of what is about to leave the DAC is known to a fraction of a sample,
//! without measuring the audio.
//!
//! A segment starts when the controller says so: the head of the FIFO is dropped (late
//! audio) or silence is fed ahead of it (early audio) so that the first frame leaves on
//! time to the nearest frame, and the output fades in. A re-align fades out first. If the
//! FIFO cannot supply a block, that block is silent and counted as an underrun.

use thiserror::Error;

use crate::clock::ClockEstimate;
use crate::media::receiver::RtpReceiver;
use crate::playout::controller::{
    BlockReport, ControllerConfig, ControllerError, Plan, PlayoutController, State,
};
use crate::playout::corrector::{CorrectorConfig, CorrectorError, CorrectorKind, DriftCorrector};
use crate::playout::stage::{Chain, MAX_BLOCK_FRAMES};
use crate::ptp::PortIdentity;
use crate::time::{LeaderInstant, LocalInstant, MediaTime, NANOS_PER_SEC, Nanos};

/// How a follower's playout is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PlayoutConfig {
    /// Sample rate of the stream and of the DAC, in Hz.
    pub sample_rate: u32,
    /// DAC block size in frames. Default 480 (10 ms at 48 kHz).
    pub block_frames: usize,
    /// The drift corrector. Default [`CorrectorKind::Sinc`].
    pub corrector: CorrectorKind,
    /// The servo and re-align settings.
    pub controller: ControllerConfig,
    /// Length of the fades at a start and before a re-align. Default 5 ms.
    pub fade: Nanos,
}

impl PlayoutConfig {
    /// The defaults at `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> PlayoutConfig {
        PlayoutConfig {
            sample_rate,
            block_frames: 480,
            corrector: CorrectorKind::Sinc,
            controller: ControllerConfig::new(sample_rate),
            fade: Nanos::from_millis(5),
        }
    }
}

/// Why a playout path could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PlayoutError {
    /// A configuration field is out of range.
    #[error("invalid playout config: {field} {reason}")]
    InvalidConfig {
        /// The field, as named in [`PlayoutConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The controller refused its settings.
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// The corrector refused its settings.
    #[error(transparent)]
    Corrector(#[from] CorrectorError),
}

/// A follower's playout path. See the [module docs](self).
pub struct Playout {
    config: PlayoutConfig,
    chain: Chain,
    corrector: DriftCorrector,
    controller: PlayoutController,
    channels_in: usize,
    channels_out: usize,
    input: Box<[f32]>,
    staged: Box<[f32]>,
    /// Presentation time of segment frame 0.
    seg_start: LeaderInstant,
    /// Input frames fed into the chain in this segment (prepended silence included).
    seg_fed: u64,
    /// Silence still to feed ahead of the FIFO.
    prepend_left: usize,
    /// Segment index (in chain-input frames) of the content of the next output frame.
    position: f64,
    fade_frames: usize,
    fade_in_left: usize,
    dac_base: Option<(LocalInstant, u64)>,
    /// The DAC's last report, to notice its timeline jump.
    dac_last: Option<(LocalInstant, u64)>,
    /// The leader and epoch of the last settled estimate seen.
    settled_on: Option<(PortIdentity, u32)>,
}

impl std::fmt::Debug for Playout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playout")
            .field("config", &self.config)
            .field("state", &self.controller.state())
            .field("position", &self.position)
            .finish()
    }
}

impl Playout {
    /// A playout path through `chain` (fed with the receiver's channels), with every buffer
    /// allocated now.
    pub fn new(config: PlayoutConfig, chain: Chain) -> Result<Playout, PlayoutError> {
        if config.block_frames == 0 || config.block_frames > MAX_BLOCK_FRAMES {
            return Err(PlayoutError::InvalidConfig {
                field: "block_frames",
                reason: "must be 1 to 8192",
            });
        }
        if config.fade < Nanos::ZERO || config.fade > Nanos::from_millis(100) {
            return Err(PlayoutError::InvalidConfig {
                field: "fade",
                reason: "must be 0 to 100 ms",
            });
        }
        let controller = PlayoutController::new(config.controller)?;
        let channels_in = chain.channels_in();
        let channels_out = chain.channels_out();
        let corrector = DriftCorrector::new(CorrectorConfig {
            kind: config.corrector,
            channels: channels_out,
            sample_rate: config.sample_rate,
            block_frames: config.block_frames,
            max_deviation_ppm: 1_000.0,
        })?;
        // The corrector never asks for more than a block plus its slack; twice a block is
        // a safe bound at ratios within ±1000 ppm.
        let max_in = 2 * config.block_frames + 64;
        // (The corrector has checked the rate; the fade is 0 to 100 ms.)
        let fade_frames =
            MediaTime::from_nanos_floor(config.fade, config.sample_rate).ticks() as usize;
        Ok(Playout {
            input: vec![0.0; max_in * channels_in].into_boxed_slice(),
            staged: vec![0.0; max_in * channels_out].into_boxed_slice(),
            controller,
            chain,
            corrector,
            channels_in,
            channels_out,
            seg_start: LeaderInstant::from_nanos(0),
            seg_fed: 0,
            prepend_left: 0,
            position: 0.0,
            fade_frames,
            fade_in_left: 0,
            dac_base: None,
            dac_last: None,
            settled_on: None,
            config,
        })
    }

    /// Output channels (what the DAC takes).
    pub fn channels_out(&self) -> usize {
        self.channels_out
    }

    /// The controller, for its state and settings (latency trim).
    pub fn controller(&self) -> &PlayoutController {
        &self.controller
    }

    /// The controller, to change its latency trim.
    pub fn controller_mut(&mut self) -> &mut PlayoutController {
        &mut self.controller
    }

    /// The corrector, for its counters.
    pub fn corrector(&self) -> &DriftCorrector {
        &self.corrector
    }

    /// The chain, for its counters.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    fn rate(&self) -> f64 {
        f64::from(self.config.sample_rate)
    }

    fn at_index(&self, index: f64) -> LeaderInstant {
        self.seg_start + Nanos::from_secs_f64(index / self.rate())
    }

    /// The DAC's frames per leader second over the nominal rate, from the estimate and the
    /// DAC's own reports (its rate on the local clock, measured over a long baseline).
    fn feed_forward(
        &mut self,
        est: &ClockEstimate,
        dac_next: LocalInstant,
        dac_frames: u64,
    ) -> f64 {
        // A DAC that stalled (or was restarted) moves its timeline: measure its rate afresh
        // from there, or the stall would read as a slow DAC for as long as the baseline.
        if let Some((at, frames)) = self.dac_last {
            let expect = at + Nanos::from_secs_f64((dac_frames - frames) as f64 / self.rate());
            if dac_frames < frames || dac_next.since(expect).abs() > Nanos::from_millis(1) {
                self.dac_base = None;
            }
        }
        self.dac_last = Some((dac_next, dac_frames));
        let base = *self.dac_base.get_or_insert((dac_next, dac_frames));
        let span = dac_next.since(base.0).as_nanos();
        let local_rate = if span >= NANOS_PER_SEC {
            (dac_frames - base.1) as f64 * NANOS_PER_SEC as f64 / span as f64
        } else {
            self.rate()
        };
        local_rate / self.rate() / (1.0 + est.rate_ppm * 1e-6)
    }

    /// Fills `out` (one block: `block_frames × channels_out` samples) with what the DAC
    /// should emit next. `dac_next` is when the block's first frame will leave (local
    /// clock); `dac_frames` how many frames the DAC has emitted so far. Without an
    /// estimate, or idle with less than two blocks of audio, the block is silent. So it is
    /// while idle on an estimate that is not [settled](ClockEstimate::settled), unless one
    /// of the same timeline (leader and epoch) has settled before and this one's
    /// uncertainty is within the controller's lock threshold. A playing path follows an
    /// unsettled estimate, and re-aligns on it only for an error beyond the re-align
    /// threshold by more than its uncertainty (the DAC stalled: see
    /// [`PlayoutController::plan_hold`]); a gap in the stream fades out either way. Returns
    /// the controller's report for the block. Allocates nothing.
    ///
    /// # Panics
    ///
    /// If `out` holds fewer than `block_frames × channels_out` samples.
    pub fn render(
        &mut self,
        rx: &mut RtpReceiver,
        estimate: Option<&ClockEstimate>,
        dac_next: LocalInstant,
        dac_frames: u64,
        out: &mut [f32],
    ) -> BlockReport {
        let block = self.config.block_frames;
        let out = &mut out[..block * self.channels_out];
        let Some(est) = estimate else {
            out.fill(0.0);
            self.controller.reset();
            self.settled_on = None;
            return self.controller.report();
        };
        let emit = est.to_leader(dac_next);
        let ratio_ff = self.feed_forward(est, dac_next, dac_frames);

        if est.settled {
            self.settled_on = Some((est.leader, est.epoch));
        }
        // An estimate of this timeline that has settled before, and whose next move could
        // not take a start out of lock: the estimator is only being careful (a window it is
        // checking, a bend it is measuring), and a re-anchor after a stall need not wait.
        let steady = self.settled_on == Some((est.leader, est.epoch))
            && est.uncertainty <= self.controller.config().lock_threshold;
        let mut plan = if self.controller.state() == State::Idle && !est.settled && !steady {
            // Starting on an estimate still converging, or still working out a change it
            // saw, would land the audio on a timeline that may move again.
            out.fill(0.0);
            self.controller.reset();
            return self.controller.report();
        } else if self.controller.state() == State::Idle && rx.buffered_frames() < block {
            // Less than two blocks to play (an outage has drained the FIFO, or the first
            // packets are still coming): a start now would underrun at once, and again at
            // every block until the stream is back. What is left of the old stream is
            // already late, a start would skip it; dropping it lets the receiver take up
            // the stream afresh.
            if rx.head_presentation().is_some_and(|head| head < emit) {
                rx.discard(rx.buffered_frames());
            }
            out.fill(0.0);
            self.controller.reset();
            return self.controller.report();
        } else if self.controller.state() == State::Idle {
            // A start resets the corrector; plan with the delay it will have then.
            if self.corrector.frames_out() > 0 {
                self.corrector.reset();
            }
            let delay = self.chain.delay_frames() + self.corrector.delay_frames();
            self.controller
                .plan_start(emit, rx.head_presentation(), delay, ratio_ff, block)
        } else {
            let content = self.at_index(self.position);
            if est.settled {
                self.controller.plan_play(emit, content, ratio_ff, block)
            } else {
                self.controller
                    .plan_hold(emit, content, ratio_ff, block, est.uncertainty)
            }
        };
        if let Plan::Start {
            skip,
            prepend,
            ratio,
        } = plan
        {
            let Some(head) = rx.head_presentation() else {
                out.fill(0.0);
                return self.controller.report();
            };
            let skipped = rx.discard(skip);
            if skipped < skip {
                // All that was buffered was late, and more of it may still be on its way
                // (or a new stream after it, as when the leader's clock steps forward).
                // Starting now would start late by what could not be skipped; the next
                // block plans afresh on what the receiver holds then.
                out.fill(0.0);
                self.controller.cancel_start();
                return self.controller.report();
            }
            self.corrector.reset();
            self.chain.reset();
            self.seg_start =
                head + Nanos::from_secs_f64((skipped as f64 - prepend as f64) / self.rate());
            self.seg_fed = 0;
            self.prepend_left = prepend;
            self.position = -(self.chain.delay_frames() + self.corrector.delay_frames());
            self.fade_in_left = self.fade_frames;
            // The ratio is set in `finish_block`; a reset corrector runs its first block
            // at it throughout.
            plan = Plan::Play { ratio };
        }
        let (ratio, fade_out) = match plan {
            Plan::Silence => {
                out.fill(0.0);
                return self.controller.report();
            }
            Plan::Play { ratio } => (ratio, false),
            Plan::FadeOut { ratio } => (ratio, true),
            Plan::Start { .. } => unreachable!("handled above"),
        };
        // The stream under us must still be the one the segment started on.
        if self.prepend_left == 0
            && let Some(head) = rx.head_presentation()
        {
            // The FIFO's head is the segment's next unfed frame.
            let expect = self.at_index(self.seg_fed as f64);
            if head.since(expect).abs() > Nanos::from_millis(1) {
                // A gap or a new stream: fade out on what we have, start afresh.
                return self.finish_block(rx, ratio, true, out);
            }
        }
        self.finish_block(rx, ratio, fade_out, out)
    }

    fn finish_block(
        &mut self,
        rx: &mut RtpReceiver,
        ratio: f64,
        fade_out: bool,
        out: &mut [f32],
    ) -> BlockReport {
        let block = self.config.block_frames;
        self.corrector.set_ratio(ratio);
        let need = self.corrector.input_frames_next();
        let from_silence = need.min(self.prepend_left);
        let from_fifo = need - from_silence;
        if rx.buffered_frames() < from_fifo {
            // A lost packet is concealed only when it falls due; the chain and the
            // corrector read further ahead than the receiver's concealment lead, so let it
            // conceal up to the end of what this block needs.
            rx.handle_timeout(self.at_index((self.seg_fed + need as u64) as f64));
        }
        if rx.buffered_frames() < from_fifo || need * self.channels_in > self.input.len() {
            out.fill(0.0);
            self.controller.underrun();
            return self.controller.report();
        }
        let ci = self.channels_in;
        self.input[..from_silence * ci].fill(0.0);
        let mut got = from_silence;
        while got < need {
            match rx.poll_audio(&mut self.input[got * ci..need * ci]) {
                Some(b) => got += b.frames,
                None => break,
            }
        }
        if got < need {
            self.input[got * ci..need * ci].fill(0.0);
        }
        self.prepend_left -= from_silence;
        self.seg_fed += need as u64;
        let staged = &mut self.staged[..need * self.channels_out];
        self.chain.process(&self.input[..need * ci], staged);
        if self.corrector.process(staged, out).is_err() {
            out.fill(0.0);
        }
        // Where the corrector is now, as it accounts for itself: its read position,
        // fraction included, for the resamplers; for slip and drop/dup the frame a slip
        // has or has not yet happened at, which their own accounting of the ratio would
        // miss by up to a frame (a slip waits for a whole frame of error: half a frame of
        // bias on average).
        self.position = self.seg_fed as f64
            - self.corrector.delay_frames() / self.corrector.ratio()
            - self.chain.delay_frames();

        let co = self.channels_out;
        if self.fade_in_left > 0 {
            let total = self.fade_frames.max(1);
            for frame in out.chunks_exact_mut(co) {
                if self.fade_in_left == 0 {
                    break;
                }
                let g = ramp(total - self.fade_in_left, total);
                frame.iter_mut().for_each(|s| *s *= g);
                self.fade_in_left -= 1;
            }
        }
        if fade_out {
            let len = self.fade_frames.clamp(1, block);
            for (i, frame) in out.chunks_exact_mut(co).enumerate() {
                let g = if i < len { 1.0 - ramp(i, len) } else { 0.0 };
                frame.iter_mut().for_each(|s| *s *= g);
            }
            self.controller.reset();
        }
        self.controller.report()
    }
}

/// Raised-cosine ramp from 0 towards 1 over `len` steps: the gain after step `k`.
fn ramp(k: usize, len: usize) -> f32 {
    let x = (k + 1) as f32 / (len + 1) as f32;
    0.5 - 0.5 * (std::f32::consts::PI * x).cos()
}
