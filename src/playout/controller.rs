//! The playout controller: steers the drift corrector so that every sample leaves the DAC
//! at its leader-clock instant.
//!
//! Sans-IO. Once per output block the caller tells it two leader instants:
//!
//! - **emit**: when the next output frame will leave the DAC, i.e. the DAC's report of that
//!   moment on the local clock, mapped to the leader's clock through the follower's clock
//!   estimate;
//! - **content**: when the audio in that frame was meant to be played, i.e. the presentation
//!   time of the input it is made from, net of the delay inside the chain and the corrector.
//!
//! The presentation error is `emit − content − trim` (positive: late). A PI servo turns it
//! into a resampling ratio around a feed-forward ratio (the DAC's frames per leader second
//! over the nominal rate, which the clock estimate gives), so the servo only has to remove
//! what the estimate does not explain. It is a PI servo, `u = Kp·e + Ki·∫e`, with
//! `Kp = 2ζω` and `Ki = ω²` for natural frequency ω ([`ControllerConfig::bandwidth_hz`]) and
//! damping ζ ([`ControllerConfig::damping`]). A PI servo that starts from an offset always
//! crosses zero once; heavy damping (ζ = 3 by default) keeps that to about 3% of the
//! offset, and a start re-aligns to within half a frame, so the crossing is a fraction of a
//! microsecond. The integral absorbs whatever rate the feed-forward gets wrong; the output
//! is bounded by [`ControllerConfig::max_correction_ppm`], with anti-windup.
//!
//! Hard re-alignment (skip input, or start later by prepending silence) happens only at
//! start, after an underrun or gap, or when the error exceeds
//! [`ControllerConfig::realign_threshold`]; the caller fades out before and in after, so
//! a re-align never clicks. A start aligns to the nearest whole input frame; the servo
//! takes care of the fraction.

use thiserror::Error;

use crate::time::{LeaderInstant, NANOS_PER_SEC, Nanos};

/// How the controller is set up. [`ControllerConfig::new`] gives the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerConfig {
    /// Nominal sample rate of the stream, in Hz.
    pub sample_rate: u32,
    /// An error beyond this forces a re-align. Default 10 ms.
    pub realign_threshold: Nanos,
    /// The controller reports [`State::Locked`] once the error has stayed within this for
    /// [`lock_blocks`](Self::lock_blocks) blocks in a row. Default 20 µs.
    pub lock_threshold: Nanos,
    /// See [`lock_threshold`](Self::lock_threshold). Default 50.
    pub lock_blocks: u32,
    /// The servo's natural frequency in Hz. Default 0.1 Hz.
    pub bandwidth_hz: f64,
    /// The servo's damping ratio ζ (1 = critical). Default 3.
    pub damping: f64,
    /// Bound on the servo's correction around the feed-forward ratio, in ppm. Default 500.
    pub max_correction_ppm: f64,
    /// Latency trim: positive plays this much later than the presentation time.
    pub trim: Nanos,
}

impl ControllerConfig {
    /// The defaults for a stream at `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> ControllerConfig {
        ControllerConfig {
            sample_rate,
            realign_threshold: Nanos::from_millis(10),
            lock_threshold: Nanos::from_micros(20),
            lock_blocks: 50,
            bandwidth_hz: 0.1,
            damping: 3.0,
            max_correction_ppm: 500.0,
            trim: Nanos::ZERO,
        }
    }

    fn validate(&self) -> Result<(), ControllerError> {
        let bad = |field, reason| Err(ControllerError::InvalidConfig { field, reason });
        if !(8_000..=384_000).contains(&self.sample_rate) {
            return bad("sample_rate", "must be 8000 to 384000 Hz");
        }
        if self.realign_threshold <= Nanos::ZERO || self.realign_threshold > Nanos::from_secs(10) {
            return bad("realign_threshold", "must be above 0 and at most 10 s");
        }
        if self.lock_threshold <= Nanos::ZERO {
            return bad("lock_threshold", "must be above 0");
        }
        if !(self.bandwidth_hz > 0.0 && self.bandwidth_hz <= 10.0) {
            return bad("bandwidth_hz", "must be above 0 and at most 10 Hz");
        }
        if !(self.damping >= 0.5 && self.damping <= 20.0) {
            return bad("damping", "must be 0.5 to 20");
        }
        if !(self.max_correction_ppm > 0.0 && self.max_correction_ppm <= 10_000.0) {
            return bad("max_correction_ppm", "must be above 0 and at most 10000");
        }
        if self.trim.abs() > Nanos::from_secs(10) {
            return bad("trim", "must be within ±10 s");
        }
        Ok(())
    }
}

/// Why a controller could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ControllerError {
    /// A configuration field is out of range.
    #[error("invalid playout controller config: {field} {reason}")]
    InvalidConfig {
        /// The field, as named in [`ControllerConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Where the controller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not playing: waiting for audio and a clock estimate, or after an underrun.
    Idle,
    /// Playing, error not yet settled.
    Locking,
    /// Playing, error within the lock threshold.
    Locked,
}

/// What the caller should do for the next block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    /// Output silence: nothing to play yet (no audio, no estimate, or audio not due yet).
    Silence,
    /// Start a new segment: drop `skip` input frames, or feed `prepend` frames of silence
    /// ahead of the input, then play with `ratio`, fading in.
    Start {
        /// Input frames to drop from the head of the buffer.
        skip: usize,
        /// Frames of silence to feed ahead of the input.
        prepend: usize,
        /// The ratio to start with (output frames per input frame).
        ratio: f64,
    },
    /// Play the block with this ratio.
    Play {
        /// Output frames per input frame.
        ratio: f64,
    },
    /// Play this block fading out; the next block starts afresh.
    FadeOut {
        /// Output frames per input frame.
        ratio: f64,
    },
}

/// What the controller reports for a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockReport {
    /// The presentation error `emit − content − trim` in ns (positive: late); 0 when idle.
    pub error_ns: f64,
    /// The ratio asked of the corrector.
    pub ratio: f64,
    /// The state after this block's plan.
    pub state: State,
    /// Underruns so far.
    pub underruns: u64,
    /// Re-alignments so far, the first start included.
    pub realigns: u64,
}

/// The playout servo. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct PlayoutController {
    config: ControllerConfig,
    state: State,
    integral: f64,
    in_lock: u32,
    last: BlockReport,
    kp: f64,
    ki: f64,
}

impl PlayoutController {
    /// A controller for `config`.
    pub fn new(config: ControllerConfig) -> Result<PlayoutController, ControllerError> {
        config.validate()?;
        let w = 2.0 * std::f64::consts::PI * config.bandwidth_hz;
        Ok(PlayoutController {
            config,
            state: State::Idle,
            integral: 0.0,
            in_lock: 0,
            last: BlockReport {
                error_ns: 0.0,
                ratio: 1.0,
                state: State::Idle,
                underruns: 0,
                realigns: 0,
            },
            kp: 2.0 * config.damping * w,
            ki: w * w,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The last block's report.
    pub fn report(&self) -> BlockReport {
        self.last
    }

    /// Sets the latency trim (positive: play later). Takes effect through the servo, or
    /// by a re-align if it moves the target by more than the re-align threshold.
    pub fn set_trim(&mut self, trim: Nanos) {
        self.config.trim = trim.clamp(Nanos::from_secs(-10), Nanos::from_secs(10));
    }

    fn block_time(&self, frames: usize) -> f64 {
        frames as f64 / f64::from(self.config.sample_rate)
    }

    /// Plans a block while idle: when the next output frame leaves at `emit` and the input
    /// buffer's first frame is to be played at `head`, with `pipeline_delay` input frames
    /// between a frame entering the chain and leaving the corrector. `ratio_ff` is the
    /// feed-forward ratio (DAC frames per leader second over the nominal rate).
    pub fn plan_start(
        &mut self,
        emit: LeaderInstant,
        head: Option<LeaderInstant>,
        pipeline_delay: f64,
        ratio_ff: f64,
        block_frames: usize,
    ) -> Plan {
        self.state = State::Idle;
        let Some(head) = head else {
            return self.idle();
        };
        let rate = f64::from(self.config.sample_rate);
        // The first frame fed should be played at `emit - trim + pipeline delay`.
        let first = emit - self.config.trim + Nanos::from_secs_f64(pipeline_delay / rate);
        let lead_s = head.since(first).as_secs_f64(); // > 0: the buffer starts later
        if lead_s > self.block_time(block_frames) + pipeline_delay / rate {
            // Not due within this block: wait.
            return self.idle();
        }
        let frames = (lead_s.abs() * rate).round() as usize;
        let (skip, prepend) = if lead_s < 0.0 {
            (frames, 0)
        } else {
            (0, frames)
        };
        self.state = State::Locking;
        self.integral = 0.0;
        self.in_lock = 0;
        self.last.realigns += 1;
        let ratio = ratio_ff;
        self.last.error_ns = 0.0;
        self.last.ratio = ratio;
        self.last.state = self.state;
        Plan::Start {
            skip,
            prepend,
            ratio,
        }
    }

    fn idle(&mut self) -> Plan {
        self.last.error_ns = 0.0;
        self.last.state = State::Idle;
        Plan::Silence
    }

    /// Plans a block while playing: the next output frame leaves at `emit`, and its content
    /// is to be played at `content`. `ratio_ff` as for [`plan_start`](Self::plan_start).
    pub fn plan_play(
        &mut self,
        emit: LeaderInstant,
        content: LeaderInstant,
        ratio_ff: f64,
        block_frames: usize,
    ) -> Plan {
        let error = emit.since(content) - self.config.trim;
        let e = error.as_nanos() as f64 / NANOS_PER_SEC as f64;
        self.last.error_ns = error.as_nanos() as f64;
        if error.abs() > self.config.realign_threshold {
            self.state = State::Idle;
            self.last.state = State::Idle;
            self.last.ratio = ratio_ff;
            return Plan::FadeOut { ratio: ratio_ff };
        }
        let dt = self.block_time(block_frames);
        let max = self.config.max_correction_ppm * 1e-6;
        // Anti-windup: integrate only while the output is not pinned at its bound.
        let trial = self.kp * e + self.ki * (self.integral + e * dt);
        if trial.abs() < max {
            self.integral += e * dt;
        }
        let u = (self.kp * e + self.ki * self.integral).clamp(-max, max);
        let ratio = ratio_ff * (1.0 - u);
        if error.abs() <= self.config.lock_threshold {
            self.in_lock = self.in_lock.saturating_add(1);
        } else if error.abs().as_nanos() > 4 * self.config.lock_threshold.as_nanos() {
            self.in_lock = 0;
        }
        self.state = if self.in_lock >= self.config.lock_blocks {
            State::Locked
        } else {
            State::Locking
        };
        self.last.ratio = ratio;
        self.last.state = self.state;
        Plan::Play { ratio }
    }

    /// The block could not be filled: count an underrun and go idle (the next block
    /// re-aligns).
    pub fn underrun(&mut self) {
        self.last.underruns += 1;
        self.state = State::Idle;
        self.last.state = State::Idle;
    }

    /// Goes idle without counting anything (the stream stopped or jumped).
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.last.state = State::Idle;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ns: i64) -> LeaderInstant {
        LeaderInstant::from_nanos(ns)
    }

    #[test]
    fn start_skips_late_input_and_prepends_for_early_input() {
        let mut c = PlayoutController::new(ControllerConfig::new(48_000)).unwrap();
        // Head is 1 ms late: skip 48 frames.
        let p = c.plan_start(at(1_000_000_000), Some(at(999_000_000)), 0.0, 1.0, 480);
        assert_eq!(
            p,
            Plan::Start {
                skip: 48,
                prepend: 0,
                ratio: 1.0
            }
        );
        // Head 2.5 ms early with a 10-frame pipeline: prepend 120 - 10 = 110 frames.
        let mut c = PlayoutController::new(ControllerConfig::new(48_000)).unwrap();
        let p = c.plan_start(at(1_000_000_000), Some(at(1_002_500_000)), 10.0, 1.0, 480);
        assert_eq!(
            p,
            Plan::Start {
                skip: 0,
                prepend: 110,
                ratio: 1.0
            }
        );
        // Head 1 s early: wait.
        let mut c = PlayoutController::new(ControllerConfig::new(48_000)).unwrap();
        assert_eq!(
            c.plan_start(at(0), Some(at(1_000_000_000)), 0.0, 1.0, 480),
            Plan::Silence
        );
        assert_eq!(c.state(), State::Idle);
    }

    /// A closed loop: the content clock advances by the input consumed, the DAC by its
    /// blocks, `unexplained_ppm` faster than the feed-forward says. Returns the error after
    /// every block.
    fn closed_loop(start_error: f64, unexplained_ppm: f64, blocks: usize) -> (Vec<f64>, State) {
        let mut c = PlayoutController::new(ControllerConfig::new(48_000)).unwrap();
        let block = 480usize;
        let dt = 0.01;
        let (mut emit, mut content): (f64, f64) = (0.0, -start_error);
        let mut errors = Vec::new();
        for _ in 0..blocks {
            let plan = c.plan_play(
                at((emit * 1e9).round() as i64),
                at((content * 1e9).round() as i64),
                1.0,
                block,
            );
            let Plan::Play { ratio } = plan else {
                panic!("{plan:?}")
            };
            errors.push(emit - content);
            emit += dt * (1.0 - unexplained_ppm * 1e-6);
            content += block as f64 / ratio / 48_000.0;
        }
        (errors, c.state())
    }

    #[test]
    fn servo_removes_an_offset_with_hardly_any_overshoot() {
        for start in [10e-6, -10e-6, 5e-3] {
            let (errors, state) = closed_loop(start, 0.0, 9_000);
            let last = errors.last().unwrap().abs();
            assert!(last < 20e-9, "start {start}: residual {last}");
            // The crossing to the other side stays within 3% of the start.
            let beyond = errors
                .iter()
                .map(|e| -e * start.signum())
                .fold(0.0f64, f64::max);
            assert!(
                beyond <= 0.03 * start.abs(),
                "start {start}: overshoot {beyond}"
            );
            assert_eq!(state, State::Locked);
        }
    }

    #[test]
    fn servo_absorbs_a_rate_the_feed_forward_misses() {
        let (errors, state) = closed_loop(0.0, 20.0, 12_000);
        let worst_late = errors[9_000..].iter().fold(0.0f64, |m, e| m.max(e.abs()));
        assert!(worst_late < 50e-9, "residual {worst_late}");
        assert_eq!(state, State::Locked);
    }

    #[test]
    fn a_large_error_fades_out_for_a_realign() {
        let mut c = PlayoutController::new(ControllerConfig::new(48_000)).unwrap();
        let p = c.plan_play(at(20_000_000), at(0), 1.0, 480);
        assert!(matches!(p, Plan::FadeOut { .. }));
        assert_eq!(c.state(), State::Idle);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let mut cfg = ControllerConfig::new(48_000);
        cfg.bandwidth_hz = f64::NAN;
        let e = PlayoutController::new(cfg).unwrap_err().to_string();
        assert!(e.contains("bandwidth_hz"), "{e}");
    }
}
