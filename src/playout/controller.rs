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
//! what the estimate does not explain: `ratio = ratio_ff·(1 − u)`, `u = Kp·e + Ki·∫e`.
//!
//! # Smooth by construction
//!
//! The error is measured through the clock estimate, which moves in small steps whenever the
//! estimator refits (a microsecond or so on Wi-Fi). A servo that passed those steps straight
//! to the resampler would change its ratio in steps, and a ratio step is a kink in the
//! output's phase: at 15 kHz a 0.05 ppm step already reads about −90 dB THD+N. So the
//! commanded ratio goes through a critically damped two-pole low-pass before it reaches the
//! corrector; what the corrector sees is a ratio whose first derivative is continuous, and
//! it follows a smooth path through even that (a quadratic B-spline through the ratios of
//! successive blocks, see [`DriftCorrector::set_ratio`](super::corrector::DriftCorrector::set_ratio)).
//!
//! In steady state the loop crosses over at [`ControllerConfig::bandwidth_hz`] (0.05 Hz,
//! `Kp` = 0.31 per second), with the PI zero nine times lower (`Ki = Kp² / (2ζ)²`, ζ =
//! [`ControllerConfig::damping`] = 1.5) and the smoothing poles at
//! [`ControllerConfig::smoothing`] (0.7 s), which leaves about 59° of phase margin. Such a
//! loop removes an offset it is handed with an overshoot of about 13% and settles within 1%
//! in about 70 s, and a 1 µs step in the estimate changes the ratio by at most about
//! 6·10⁻⁹ from one block to the next.
//!
//! That is too slow for the first seconds after a start, when the clock estimate is young
//! and still moving by tens of microseconds as it converges: a slow loop would lag it for a
//! minute. So each start begins at [`ControllerConfig::start_bandwidth_hz`] (0.5 Hz, with
//! the smoothing ten times shorter) and glides geometrically to the steady bandwidth over
//! [`ControllerConfig::glide`] (30 s). The integral sums `Ki·e·dt`, so the changing gains
//! never make the output jump.
//!
//! A loop that slow would take seconds to remove what a start leaves: a start can only
//! drop or prepend whole frames, so it leaves up to half a frame (10 µs at 48 kHz). The
//! first block after a start measures that remainder and removes it at once, spread over
//! [`SLEW_BLOCKS`] blocks (under the fade-in, at most a few hundred ppm for 40 ms), outside
//! the filter; the servo is told the part still being slewed, so it does not correct it
//! twice.
//!
//! Hard re-alignment (skip input, or start later by prepending silence) happens only at
//! start, after an underrun or gap, or when the error exceeds
//! [`ControllerConfig::realign_threshold`] (on an estimate that is not settled, by more than
//! the estimate may still move: see [`PlayoutController::plan_hold`]); the caller fades out
//! before and in after, so a re-align never clicks.

use thiserror::Error;

use crate::playout::corrector::path_mean;
use crate::time::{LeaderInstant, NANOS_PER_SEC, Nanos};

/// How the controller is set up. [`ControllerConfig::new`] gives the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
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
    /// The servo's steady crossover frequency in Hz (`Kp = 2π·bandwidth_hz` per second).
    /// Default 0.05 Hz.
    pub bandwidth_hz: f64,
    /// The crossover frequency right after a start, in Hz; it glides to
    /// [`bandwidth_hz`](Self::bandwidth_hz) over [`glide`](Self::glide). Default 0.5 Hz.
    pub start_bandwidth_hz: f64,
    /// How long the glide from the start bandwidth to the steady one takes. Default 30 s.
    pub glide: Nanos,
    /// The servo's damping ζ: the PI zero sits at `Kp / (2ζ)²`. Default 1.5.
    pub damping: f64,
    /// Time constant of each of the two poles that smooth the commanded ratio, at the
    /// steady bandwidth (it scales inversely with the bandwidth during the glide). Default
    /// 0.7 s; zero turns the smoothing off.
    pub smoothing: Nanos,
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
            bandwidth_hz: 0.05,
            start_bandwidth_hz: 0.5,
            glide: Nanos::from_secs(30),
            damping: 1.5,
            smoothing: Nanos::from_millis(700),
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
        if !(self.start_bandwidth_hz >= self.bandwidth_hz && self.start_bandwidth_hz <= 10.0) {
            return bad(
                "start_bandwidth_hz",
                "must be at least bandwidth_hz and at most 10 Hz",
            );
        }
        if self.glide < Nanos::ZERO || self.glide > Nanos::from_secs(3600) {
            return bad("glide", "must be 0 to 3600 s");
        }
        if self.smoothing < Nanos::ZERO || self.smoothing > Nanos::from_secs(10) {
            return bad("smoothing", "must be 0 to 10 s");
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
#[non_exhaustive]
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

impl Default for BlockReport {
    /// What an idle controller that never played reports: no error, the nominal ratio.
    fn default() -> Self {
        BlockReport {
            error_ns: 0.0,
            ratio: 1.0,
            state: State::Idle,
            underruns: 0,
            realigns: 0,
        }
    }
}

/// Blocks over which the first block after a start removes the fraction of a frame the
/// start could not.
pub const SLEW_BLOCKS: u32 = 4;

/// The playout servo. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct PlayoutController {
    config: ControllerConfig,
    state: State,
    /// The PI's integral term, `∑ Ki·e·dt` (a fraction of the ratio).
    integral: f64,
    /// Seconds played since the last start.
    since_start: f64,
    in_lock: u32,
    last: BlockReport,
    /// The two smoothing poles' states (ratios).
    smooth: [f64; 2],
    /// The next play block is the first after a start.
    fresh: bool,
    /// Error (s) still being slewed away, the slew's rate (a fraction of the ratio) while
    /// it runs, its rates in the last two blocks (oldest first), and blocks left.
    slew_left: f64,
    slew_rate: f64,
    slew_history: [f64; 2],
    slew_blocks: u32,
}

impl PlayoutController {
    /// A controller for `config`.
    pub fn new(config: ControllerConfig) -> Result<PlayoutController, ControllerError> {
        config.validate()?;
        Ok(PlayoutController {
            config,
            state: State::Idle,
            integral: 0.0,
            since_start: 0.0,
            in_lock: 0,
            last: BlockReport {
                error_ns: 0.0,
                ratio: 1.0,
                state: State::Idle,
                underruns: 0,
                realigns: 0,
            },
            smooth: [1.0; 2],
            fresh: false,
            slew_left: 0.0,
            slew_rate: 0.0,
            slew_history: [0.0; 2],
            slew_blocks: 0,
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
        self.since_start = 0.0;
        self.in_lock = 0;
        self.last.realigns += 1;
        self.smooth = [ratio_ff; 2];
        self.fresh = true;
        self.slew_left = 0.0;
        self.slew_history = [0.0; 2];
        self.slew_blocks = 0;
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

    /// `(Kp, Ki, smoothing time constant in s)` at the current point of the glide.
    fn gains(&self) -> (f64, f64, f64) {
        let c = &self.config;
        let glide = c.glide.as_secs_f64();
        let left = if glide > 0.0 {
            (1.0 - self.since_start / glide).max(0.0)
        } else {
            0.0
        };
        let bw = c.bandwidth_hz * (c.start_bandwidth_hz / c.bandwidth_hz).powf(left);
        let kp = 2.0 * std::f64::consts::PI * bw;
        let zero = kp / (2.0 * c.damping).powi(2);
        let smoothing = c.smoothing.as_secs_f64() * c.bandwidth_hz / bw;
        (kp, kp * zero, smoothing)
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
        let threshold = self.config.realign_threshold;
        self.plan(emit, content, ratio_ff, block_frames, threshold)
    }

    /// As [`plan_play`](Self::plan_play), for a clock estimate that is not settled and may
    /// still move by up to `uncertainty`: it re-aligns only when the error is beyond the
    /// threshold by more than that. An error the estimate's next move could bring back
    /// within the threshold is followed by the servo (within its bound) rather than cut, for
    /// a re-align would land the audio on a timeline that may move again; the next settled
    /// block re-aligns if it is still beyond. An error no such move explains (the DAC
    /// stalled for seconds, and the audio at hand is that much late) re-aligns at once, so
    /// that stale audio is not played.
    pub fn plan_hold(
        &mut self,
        emit: LeaderInstant,
        content: LeaderInstant,
        ratio_ff: f64,
        block_frames: usize,
        uncertainty: Nanos,
    ) -> Plan {
        let beyond = self.config.realign_threshold + uncertainty.max(Nanos::ZERO);
        self.plan(emit, content, ratio_ff, block_frames, beyond)
    }

    /// Plans a playing block; an error beyond `realign_beyond` fades out for a re-align.
    fn plan(
        &mut self,
        emit: LeaderInstant,
        content: LeaderInstant,
        ratio_ff: f64,
        block_frames: usize,
        realign_beyond: Nanos,
    ) -> Plan {
        let error = emit.since(content) - self.config.trim;
        let e = error.as_nanos() as f64 / NANOS_PER_SEC as f64;
        self.last.error_ns = error.as_nanos() as f64;
        if error.abs() > realign_beyond {
            self.state = State::Idle;
            self.last.state = State::Idle;
            self.last.ratio = ratio_ff;
            return Plan::FadeOut { ratio: ratio_ff };
        }
        let dt = self.block_time(block_frames);
        if self.fresh {
            // What the start left (a fraction of a frame, plus estimate noise): slew it
            // away now rather than through the slow loop.
            self.fresh = false;
            self.slew_left = e;
            self.slew_rate = e / (f64::from(SLEW_BLOCKS) * dt);
            self.slew_blocks = SLEW_BLOCKS;
        }
        // The servo sees only what is not already being slewed away.
        let e_servo = e - self.slew_left;
        let (kp, ki, smoothing) = self.gains();
        let max = self.config.max_correction_ppm * 1e-6;
        // The integral accumulates `Ki·e·dt`, so a change of `Ki` during the glide does not
        // rescale what is already there; the glide changes `Kp` by under 0.1% a block,
        // which the smoothing absorbs. Anti-windup: no integration while the output is
        // pinned at its bound.
        let step = ki * e_servo * dt;
        if (kp * e_servo + self.integral + step).abs() < max {
            self.integral += step;
        }
        let u = (kp * e_servo + self.integral).clamp(-max, max);
        self.since_start += dt;
        let commanded = ratio_ff * (1.0 - u);
        let a = if smoothing > 0.0 {
            1.0 - (-dt / smoothing).exp()
        } else {
            1.0
        };
        self.smooth[0] += (commanded - self.smooth[0]) * a;
        self.smooth[1] += (self.smooth[0] - self.smooth[1]) * a;
        let mut ratio = self.smooth[1];
        if self.slew_blocks > 0 || self.slew_history != [0.0; 2] {
            let rate = if self.slew_blocks > 0 {
                self.slew_blocks -= 1;
                self.slew_rate
            } else {
                0.0
            };
            // The corrector follows a smooth path through the ratios it is given, one
            // block behind, so this block removes that path's mean of the rates.
            self.slew_left -= dt * path_mean(self.slew_history, rate, block_frames);
            self.slew_history = [self.slew_history[1], rate];
            if self.slew_blocks == 0 && rate == 0.0 && self.slew_history == [0.0; 2] {
                self.slew_left = 0.0;
            }
            ratio *= 1.0 - rate;
        }
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

    /// The start [`plan_start`](Self::plan_start) just planned could not be carried out
    /// (the input held fewer late frames than it had to skip, so it would have started
    /// late): back to idle, and the start is not counted as a re-align.
    pub fn cancel_start(&mut self) {
        self.last.realigns = self.last.realigns.saturating_sub(1);
        self.reset();
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

    /// A closed loop: the content clock advances by the input consumed (the ratio ramped
    /// across each block, as the corrector does), the DAC by its blocks,
    /// `unexplained_ppm` faster than the feed-forward says. The error the controller is told
    /// is the true one plus `noise(block)`. Returns the true error and the ratio of every
    /// block.
    fn closed_loop(
        c: &mut PlayoutController,
        start_error: f64,
        unexplained_ppm: f64,
        blocks: usize,
        noise: impl Fn(usize) -> f64,
    ) -> (Vec<f64>, Vec<f64>) {
        let block = 480usize;
        let dt = 0.01;
        let (mut emit, mut content): (f64, f64) = (0.0, -start_error);
        let (mut errors, mut ratios) = (Vec::new(), Vec::new());
        let mut old = 1.0;
        for k in 0..blocks {
            let told = content - noise(k);
            let plan = c.plan_play(
                at((emit * 1e9).round() as i64),
                at((told * 1e9).round() as i64),
                1.0,
                block,
            );
            let Plan::Play { ratio } = plan else {
                panic!("{plan:?}")
            };
            errors.push(emit - content);
            ratios.push(ratio);
            emit += dt * (1.0 - unexplained_ppm * 1e-6);
            let (a, b) = (1.0 / old, 1.0 / ratio);
            content += (block as f64 * 0.5 * (a + b) + 0.5 * (b - a)) / 48_000.0;
            old = ratio;
        }
        (errors, ratios)
    }

    /// The default settings without the glide: the steady loop from the start.
    fn steady() -> ControllerConfig {
        let mut config = ControllerConfig::new(48_000);
        config.start_bandwidth_hz = config.bandwidth_hz;
        config
    }

    fn playing(config: ControllerConfig) -> PlayoutController {
        let mut c = PlayoutController::new(config).unwrap();
        // Put it in the playing state as a start does, then let the first block's slew
        // see no error, so the servo alone acts on what follows.
        assert!(matches!(
            c.plan_start(at(0), Some(at(0)), 0.0, 1.0, 480),
            Plan::Start { .. }
        ));
        assert!(matches!(
            c.plan_play(at(0), at(0), 1.0, 480),
            Plan::Play { .. }
        ));
        c
    }

    #[test]
    fn servo_removes_an_offset_it_is_handed() {
        for start in [10e-6, -10e-6, 5e-3] {
            let mut c = playing(steady());
            let (errors, _) = closed_loop(&mut c, start, 0.0, 12_000, |_| 0.0);
            let last = errors.last().unwrap().abs();
            assert!(last < 2e-3 * start.abs(), "start {start}: residual {last}");
            // The crossing to the other side stays within 15% of the start.
            let beyond = errors
                .iter()
                .map(|e| -e * start.signum())
                .fold(0.0f64, f64::max);
            assert!(
                beyond <= 0.15 * start.abs(),
                "start {start}: overshoot {beyond}"
            );
            assert_eq!(c.state(), State::Locked);
        }
    }

    #[test]
    fn after_a_start_the_servo_is_fast_then_glides_to_slow() {
        // An offset right after a start (the young estimate moved) is within 3% in 8 s,
        // and stays there through the glide; the steady loop takes far longer.
        let time_to_3pct = |config| {
            let mut c = playing(config);
            let (errors, _) = closed_loop(&mut c, 20e-6, 0.0, 12_000, |_| 0.0);
            errors
                .iter()
                .rposition(|e| e.abs() > 0.6e-6)
                .map_or(0.0, |k| (k + 1) as f64 * 0.01)
        };
        let fast = time_to_3pct(ControllerConfig::new(48_000));
        let slow = time_to_3pct(steady());
        assert!(fast < 8.0, "with the glide: {fast} s");
        assert!(slow > 3.0 * fast, "steady {slow} s vs glide {fast} s");
    }

    #[test]
    fn a_start_slews_away_the_fraction_of_a_frame_at_once() {
        // The start leaves 7 µs (a third of a frame): gone within the slew, without the
        // slow loop's help.
        let mut c = PlayoutController::new(ControllerConfig::new(48_000)).unwrap();
        assert!(matches!(
            c.plan_start(at(0), Some(at(0)), 0.0, 1.0, 480),
            Plan::Start { .. }
        ));
        let (errors, ratios) = closed_loop(&mut c, 7e-6, 0.0, 300, |_| 0.0);
        let after = errors[SLEW_BLOCKS as usize + 2..]
            .iter()
            .fold(0.0f64, |m, e| m.max(e.abs()));
        assert!(after < 0.1e-6, "left after the slew: {after}");
        // 7 µs over 40 ms is 175 ppm; nothing more.
        let worst = ratios.iter().fold(0.0f64, |m, r| m.max((r - 1.0).abs()));
        assert!(worst < 200e-6, "ratio {worst}");
    }

    #[test]
    fn servo_absorbs_a_rate_the_feed_forward_misses() {
        let mut c = playing(steady());
        let (errors, _) = closed_loop(&mut c, 0.0, 20.0, 20_000, |_| 0.0);
        let peak = errors.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        assert!(peak < 70e-6, "peak {peak}");
        let worst_late = errors[17_000..].iter().fold(0.0f64, |m, e| m.max(e.abs()));
        assert!(worst_late < 0.2e-6, "residual {worst_late}");
        assert_eq!(c.state(), State::Locked);
    }

    #[test]
    fn steps_in_the_estimate_reach_the_ratio_only_smoothly() {
        // The estimate jumps by up to ±2 µs once a second, as a refit on Wi-Fi can.
        let noise = |k: usize| {
            let s = (k / 100) as u64;
            let x = s.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (x as f64 / (1u64 << 24) as f64 - 0.5) * 4e-6
        };
        let mut c = playing(ControllerConfig::new(48_000));
        let (errors, ratios) = closed_loop(&mut c, 0.0, 0.0, 30_000, noise);
        // Once the glide is over (30 s): no block-to-block ratio step above 0.02 ppm (the
        // PI alone would step by Kp × 2 µs = 0.6 ppm), and the slope changes gently too.
        let ratios = &ratios[3_000..];
        let d1 = ratios
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0f64, f64::max);
        let d2 = ratios
            .windows(3)
            .map(|w| (w[2] - 2.0 * w[1] + w[0]).abs())
            .fold(0.0f64, f64::max);
        assert!(d1 < 0.02e-6, "ratio step {d1}");
        assert!(d2 < 1e-9, "ratio slope change {d2}");
        // The true error follows the estimate's slow error, no more than it.
        let worst = errors[1_000..].iter().fold(0.0f64, |m, e| m.max(e.abs()));
        assert!(worst < 2.5e-6, "error {worst}");
    }

    #[test]
    fn a_large_error_fades_out_for_a_realign() {
        let mut c = PlayoutController::new(ControllerConfig::new(48_000)).unwrap();
        let p = c.plan_play(at(20_000_000), at(0), 1.0, 480);
        assert!(matches!(p, Plan::FadeOut { .. }));
        assert_eq!(c.state(), State::Idle);
    }

    #[test]
    fn an_unsettled_estimate_holds_an_error_it_may_explain_but_not_seconds_of_it() {
        // 15 ms late on an estimate that may still move by 10 ms: followed, not cut.
        let mut c = playing(ControllerConfig::new(48_000));
        let p = c.plan_hold(at(15_000_000), at(0), 1.0, 480, Nanos::from_millis(10));
        assert!(matches!(p, Plan::Play { .. }), "{p:?}");
        assert_ne!(c.state(), State::Idle);
        // 5 s late (the DAC stalled) on an estimate sure to a microsecond: the audio at
        // hand is stale whatever the estimate does next, so it fades out for a re-align.
        let mut c = playing(ControllerConfig::new(48_000));
        let p = c.plan_hold(at(5_000_000_000), at(0), 1.0, 480, Nanos::from_micros(1));
        assert!(matches!(p, Plan::FadeOut { .. }), "{p:?}");
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
