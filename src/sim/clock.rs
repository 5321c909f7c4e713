//! Simulated clocks: what a node's crystal reads at each true time.
//!
//! A [`ClockModel`] describes a clock: its reading when the simulation starts, a constant
//! frequency error (drift), a random walk of the frequency (wander) and any steps (someone
//! set the clock). A [`SimClock`] runs a model with its own [`SimRng`] and answers two
//! questions for a driver: what does the clock read at true time `t`
//! ([`SimClock::reading`]), and at what true time will it first read `r`
//! ([`SimClock::time_of`]), so a node that sets a timer in its own time can be woken at the
//! right true time.
//!
//! # How the wander is modelled
//!
//! The frequency is constant over fixed true-time segments of [`WANDER_STEP`] (100 ms) and
//! changes at each boundary by a normal increment with standard deviation
//! `wander · √0.1 s` ppm, so after `T` seconds it has wandered by about `wander · √T` ppm.
//! Increments are drawn from the clock's generator in segment order, so the sequence depends
//! only on the seed, never on when or in which order the clock is queried.
//!
//! Segments are made lazily as queries reach them, and those that end before the latest
//! [`SimClock::reading`] or [`SimClock::freq_ppm`] query are dropped: memory stays at a few
//! segments over hours of simulated time, plus whatever [`SimClock::time_of`] has looked
//! ahead (at most [`MAX_LOOKAHEAD`] of it). Each segment keeps the reading at its start as
//! integer nanoseconds plus a fraction, so the phase keeps sub-nanosecond precision however
//! long the run.

use std::collections::VecDeque;

use super::math::{exp, sin};
use super::{SimConfigError, SimRng, SimTime};
use crate::playout::dac::Crystal;
use crate::time::{LocalInstant, Nanos, TrueInstant};

/// The true-time length over which a clock's frequency stays constant between wander steps.
pub const WANDER_STEP: Nanos = Nanos::from_millis(100);

/// How far past the latest query [`SimClock::time_of`] simulates the clock exactly; beyond
/// it, the answer is extrapolated at the last simulated frequency.
pub const MAX_LOOKAHEAD: Nanos = Nanos::from_secs(3600);

/// The fork of a clock's generator that [`FrequencyChange::Walk`] draws from.
const EXTRA_WALK_STREAM: u64 = 0x77a1_4b00;

/// [`WANDER_STEP`] in nanoseconds, for index arithmetic.
const SEGMENT_NS: i64 = WANDER_STEP.as_nanos();

/// The lowest frequency error a clock can wander to, in ppm: the clock then runs at a
/// thousandth of true speed. Only an absurd wander reaches it, but a clock that stopped or
/// ran backwards would make [`SimClock::time_of`] meaningless.
const MIN_FREQ_PPM: f64 = -999_000.0;

/// A description of a simulated clock.
#[derive(Clone, Debug, PartialEq)]
pub struct ClockModel {
    /// What the clock reads at [`SimTime::ZERO`].
    pub offset: Nanos,
    /// Constant frequency error in parts per million: +50 gains 50 µs every true second.
    pub drift_ppm: f64,
    /// Random-walk frequency noise: the frequency wanders by about this many ppm times the
    /// square root of the elapsed seconds. Typical crystals: around 0.01.
    pub wander_ppm_per_sqrt_s: f64,
    /// Steps of the reading: at each true time the reading jumps by the amount (negative
    /// steps go back). Any order; steps at the same time add up.
    pub steps: Vec<(SimTime, Nanos)>,
    /// Changes of the frequency over time on top of the drift and wander: a crystal warming
    /// up, a thermal cycle. They add up.
    pub frequency: Vec<FrequencyChange>,
}

/// A change of a clock's frequency over time, added to its drift and wander.
///
/// Like the wander, it is applied per [`WANDER_STEP`] segment: the frequency over a segment
/// is the change's value at the segment's start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FrequencyChange {
    /// From `at` on, the frequency moves towards `by_ppm` more exponentially with time
    /// constant `tau`: a crystal warming up after power-on.
    Warmup {
        /// When the warm-up starts.
        at: SimTime,
        /// How far the frequency moves in the end, ppm.
        by_ppm: f64,
        /// Time constant.
        tau: Nanos,
    },
    /// From `at` on, the frequency moves by `by_ppm` linearly over `over`, then stays.
    Ramp {
        /// When the ramp starts.
        at: SimTime,
        /// How far the frequency moves in all, ppm.
        by_ppm: f64,
        /// How long the ramp takes (zero: a frequency step).
        over: Nanos,
    },
    /// From `at` on, a sinusoid of `amplitude_ppm` with `period`: a thermal cycle.
    Sine {
        /// When the cycle starts (at phase zero, rising).
        at: SimTime,
        /// Peak deviation, ppm.
        amplitude_ppm: f64,
        /// Period.
        period: Nanos,
    },
    /// From `at` on, an extra random walk of the frequency of `ppm_per_sqrt_s` (drawn from a
    /// generator of its own, so the clock's own wander stays as it was).
    Walk {
        /// When the extra wander starts.
        at: SimTime,
        /// Its intensity, ppm per square root of a second.
        ppm_per_sqrt_s: f64,
    },
}

impl FrequencyChange {
    /// When the change starts.
    pub fn at(&self) -> SimTime {
        match *self {
            FrequencyChange::Warmup { at, .. }
            | FrequencyChange::Ramp { at, .. }
            | FrequencyChange::Sine { at, .. }
            | FrequencyChange::Walk { at, .. } => at,
        }
    }

    /// The deterministic part of the change at true time `t`, ppm (0 for a walk).
    fn value_ppm(&self, t: i64) -> f64 {
        let since = t - self.at().as_nanos();
        if since < 0 {
            return 0.0;
        }
        let since = since as f64;
        match *self {
            FrequencyChange::Warmup { by_ppm, tau, .. } => {
                by_ppm * (1.0 - exp(-since / tau.as_nanos() as f64))
            }
            FrequencyChange::Ramp { by_ppm, over, .. } => {
                let over = over.as_nanos() as f64;
                if since >= over {
                    by_ppm
                } else {
                    by_ppm * since / over
                }
            }
            FrequencyChange::Sine {
                amplitude_ppm,
                period,
                ..
            } => {
                let turns = since / period.as_nanos() as f64;
                amplitude_ppm * sin(core::f64::consts::TAU * turns)
            }
            FrequencyChange::Walk { .. } => 0.0,
        }
    }

    /// Checks the change: finite values, positive time constant and period, a ramp that does
    /// not take negative time, a walk that is not negative.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        let finite = |field: &'static str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(SimConfigError::NotFinite { field, got: v })
            }
        };
        let positive = |field: &'static str, v: Nanos| {
            if v.as_nanos() > 0 {
                Ok(())
            } else {
                Err(SimConfigError::NotPositive {
                    field,
                    got: v.as_nanos() as f64,
                })
            }
        };
        match *self {
            FrequencyChange::Warmup { by_ppm, tau, .. } => {
                finite("warmup.by_ppm", by_ppm)?;
                positive("warmup.tau", tau)
            }
            FrequencyChange::Ramp { by_ppm, over, .. } => {
                finite("ramp.by_ppm", by_ppm)?;
                if over.as_nanos() < 0 {
                    return Err(SimConfigError::NegativeDelay {
                        field: "ramp.over",
                        got: over,
                    });
                }
                Ok(())
            }
            FrequencyChange::Sine {
                amplitude_ppm,
                period,
                ..
            } => {
                finite("sine.amplitude_ppm", amplitude_ppm)?;
                positive("sine.period", period)
            }
            FrequencyChange::Walk { ppm_per_sqrt_s, .. } => {
                finite("walk.ppm_per_sqrt_s", ppm_per_sqrt_s)?;
                if ppm_per_sqrt_s < 0.0 {
                    return Err(SimConfigError::NegativeWander {
                        got: ppm_per_sqrt_s,
                    });
                }
                Ok(())
            }
        }
    }
}

impl ClockModel {
    /// A perfect clock: reads true time exactly.
    pub fn ideal() -> Self {
        ClockModel {
            offset: Nanos::ZERO,
            drift_ppm: 0.0,
            wander_ppm_per_sqrt_s: 0.0,
            steps: Vec::new(),
            frequency: Vec::new(),
        }
    }

    /// A typical speaker's crystal: drift uniform in ±100 ppm, wander 0.01 ppm/√s and an
    /// offset uniform in ±1 s, drawn from `rng` (drift first, then offset).
    pub fn random_follower(rng: &mut SimRng) -> Self {
        let drift_ppm = rng.uniform(-100.0, 100.0);
        let offset = Nanos::from_secs_f64(rng.uniform(-1.0, 1.0));
        ClockModel {
            offset,
            drift_ppm,
            wander_ppm_per_sqrt_s: 0.01,
            steps: Vec::new(),
            frequency: Vec::new(),
        }
    }

    /// Checks that the model describes a clock that runs forwards: drift finite and above
    /// −1 000 000 ppm, wander finite and not negative.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if !self.drift_ppm.is_finite() {
            return Err(SimConfigError::NotFinite {
                field: "drift_ppm",
                got: self.drift_ppm,
            });
        }
        if self.drift_ppm <= -1e6 {
            return Err(SimConfigError::Backwards {
                got: self.drift_ppm,
            });
        }
        let wander = self.wander_ppm_per_sqrt_s;
        if !wander.is_finite() {
            return Err(SimConfigError::NotFinite {
                field: "wander_ppm_per_sqrt_s",
                got: wander,
            });
        }
        if wander < 0.0 {
            return Err(SimConfigError::NegativeWander { got: wander });
        }
        for change in &self.frequency {
            change.validate()?;
        }
        Ok(())
    }
}

/// One stretch of [`WANDER_STEP`] true time over which the frequency is constant.
#[derive(Clone, Copy, Debug)]
struct Segment {
    /// True time at which the segment starts, ns.
    start: i64,
    /// Frequency error over the segment, ppm.
    freq_ppm: f64,
    /// The reading (without steps) at `start`: whole nanoseconds...
    phase_ns: i64,
    /// ...and the fraction of a nanosecond on top, in `[0, 1)`.
    phase_frac: f64,
}

impl Segment {
    fn end(&self) -> i64 {
        self.start.saturating_add(SEGMENT_NS)
    }

    /// The reading (without steps) `dt` ns of true time after the start. A clock is a
    /// counter, so this is the floor of the exact phase. `dt` may be negative to extrapolate
    /// backwards.
    fn reading_at(&self, dt: i64) -> i64 {
        // Same expression as in `next`, so a segment's end and its successor's start agree.
        let frac = self.phase_frac + dt as f64 * self.freq_ppm / 1e6;
        self.phase_ns
            .saturating_add(dt)
            .saturating_add(frac.floor() as i64)
    }

    /// The following segment, running at `freq_ppm`.
    fn next(&self, freq_ppm: f64) -> Segment {
        let frac = self.phase_frac + SEGMENT_NS as f64 * self.freq_ppm / 1e6;
        // Exact: a float minus its floor is representable.
        let whole = frac.floor();
        Segment {
            start: self.end(),
            freq_ppm,
            phase_ns: self
                .phase_ns
                .saturating_add(SEGMENT_NS)
                .saturating_add(whole as i64),
            phase_frac: frac - whole,
        }
    }
}

/// A running simulated clock.
///
/// # Call order
///
/// [`reading`](SimClock::reading) and [`freq_ppm`](SimClock::freq_ppm) are "now" queries:
/// call them at non-decreasing true times, as a driver's loop naturally does. The latest
/// time passed to them (or [`SimTime::ZERO`] before the first) is the clock's *low-water
/// mark*; history before it is forgotten. [`time_of`](SimClock::time_of) looks ahead from
/// the low-water mark and may be called at any point in between.
///
/// A "now" query earlier than the low-water mark is still answered, exactly if it falls in
/// the segment that holds the mark and otherwise by extrapolating that segment's frequency
/// backwards (steps are always applied exactly).
///
/// Answers never depend on how queries are interleaved: the wander is a function of the
/// generator alone.
#[derive(Clone, Debug)]
pub struct SimClock {
    model: ClockModel,
    rng: SimRng,
    /// Standard deviation of one wander increment, ppm.
    increment_std_ppm: f64,
    /// The random-walk part of the newest segment's frequency, ppm (unclamped).
    walk_ppm: f64,
    /// The extra walks of [`FrequencyChange::Walk`], from a generator of their own.
    extra_rng: SimRng,
    extra_walk_ppm: f64,
    /// Contiguous segments from the one holding the low-water mark onwards; never empty.
    segments: VecDeque<Segment>,
    /// Step times in ascending order...
    step_times: Vec<i64>,
    /// ...and the sum of all step amounts up to and including each.
    step_totals: Vec<i64>,
    /// The low-water mark, ns of true time.
    low_water: i64,
}

impl SimClock {
    /// A clock running `model`, drawing its wander from `rng`.
    ///
    /// Fails if the model does not pass [`ClockModel::validate`].
    pub fn new(model: ClockModel, rng: SimRng) -> Result<SimClock, SimConfigError> {
        model.validate()?;
        let mut steps = model.steps.clone();
        // Stable, so simultaneous steps keep their order (they add up either way).
        steps.sort_by_key(|&(at, _)| at);
        let step_times = steps.iter().map(|&(at, _)| at.as_nanos()).collect();
        let step_totals = steps
            .iter()
            .scan(0i64, |total, &(_, by)| {
                *total = total.saturating_add(by.as_nanos());
                Some(*total)
            })
            .collect();
        let first = Segment {
            start: 0,
            freq_ppm: (model.drift_ppm
                + model.frequency.iter().map(|c| c.value_ppm(0)).sum::<f64>())
            .max(MIN_FREQ_PPM),
            phase_ns: model.offset.as_nanos(),
            phase_frac: 0.0,
        };
        Ok(SimClock {
            increment_std_ppm: model.wander_ppm_per_sqrt_s * WANDER_STEP.as_secs_f64().sqrt(),
            model,
            extra_rng: rng.fork(EXTRA_WALK_STREAM),
            rng,
            walk_ppm: 0.0,
            extra_walk_ppm: 0.0,
            segments: VecDeque::from([first]),
            step_times,
            step_totals,
            low_water: 0,
        })
    }

    /// The model this clock runs (steps in the order they were given).
    pub fn model(&self) -> &ClockModel {
        &self.model
    }

    /// What the clock reads at true time `t`, in ns, including every step at or before `t`.
    ///
    /// Moves the low-water mark to `t` if `t` is later. The wander between the previous mark
    /// and `t` is simulated on the way (one draw per [`WANDER_STEP`]), so a jump of days costs
    /// time, though no memory.
    pub fn reading(&mut self, t: SimTime) -> i64 {
        let t = t.as_nanos();
        self.advance(t);
        let seg = self.segment_at(t);
        seg.reading_at(t.saturating_sub(seg.start))
            .saturating_add(self.steps_through(t))
    }

    /// The clock's fractional frequency error at true time `t` in ppm: drift plus the wander
    /// so far (positive: the clock runs fast). Never below −999 000 ppm.
    ///
    /// Moves the low-water mark to `t` if `t` is later.
    pub fn freq_ppm(&mut self, t: SimTime) -> f64 {
        let t = t.as_nanos();
        self.advance(t);
        self.segment_at(t).freq_ppm
    }

    /// The earliest true time, not before the low-water mark, at which the clock reads
    /// `reading` or more: when to wake a node that set a timer for that reading.
    ///
    /// If the clock already reads that much at the low-water mark, returns the mark. The
    /// answer is exact (reading at it is at least `reading`, one nanosecond earlier it is
    /// less) up to [`MAX_LOOKAHEAD`] past the mark. Further out it is an estimate at the
    /// frequency the clock has then, ignoring later wander and steps: ask again when closer.
    ///
    /// Does not move the low-water mark. Cost grows with the look-ahead (one step per
    /// [`WANDER_STEP`]), and segments it simulates are kept until "now" queries pass them.
    pub fn time_of(&mut self, reading: i64) -> SimTime {
        let horizon = self.low_water.saturating_add(MAX_LOOKAHEAD.as_nanos());
        let mut t = self.low_water;
        while t < horizon {
            let seg = self.segment_at(t);
            let steps = self.steps_through(t);
            // The reading is non-decreasing until the segment ends or the next step.
            let next_step = self.step_times.partition_point(|&s| s <= t);
            let mut end = seg.end().min(horizon);
            if let Some(&s) = self.step_times.get(next_step) {
                end = end.min(s);
            }
            let read = |x: i64| seg.reading_at(x - seg.start).saturating_add(steps);
            if read(end - 1) >= reading {
                // Binary search for the first nanosecond that reaches it.
                let (mut lo, mut hi) = (t, end - 1);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if read(mid) >= reading {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                return SimTime(lo);
            }
            t = end;
        }
        // Past the horizon: extrapolate from the last simulated segment.
        let seg = self.segment_at(horizon - 1);
        let at_horizon = seg
            .reading_at(horizon - seg.start)
            .saturating_add(self.steps_through(horizon));
        let rate = 1.0 + seg.freq_ppm / 1e6;
        let wait = (reading.saturating_sub(at_horizon) as f64 / rate).ceil();
        SimTime(horizon.saturating_add(wait.max(0.0) as i64))
    }

    /// Moves the low-water mark to `t` (if later) and forgets segments that end by then.
    fn advance(&mut self, t: i64) {
        if t <= self.low_water {
            return;
        }
        self.low_water = t;
        // Generate and drop one at a time, so a long jump forward needs no memory.
        while self.segments[0].end() <= t {
            if self.segments.len() == 1 {
                self.push_segment();
            }
            self.segments.pop_front();
        }
    }

    /// The segment holding `t`, simulating ahead as far as needed. Times before the oldest
    /// retained segment map to it.
    fn segment_at(&mut self, t: i64) -> Segment {
        let first = self.segments[0].start;
        if t < first {
            return self.segments[0];
        }
        let index = ((t - first) / SEGMENT_NS) as usize;
        while self.segments.len() <= index {
            self.push_segment();
        }
        self.segments[index]
    }

    /// Appends the next segment, drawing its wander increment.
    fn push_segment(&mut self) {
        if self.increment_std_ppm > 0.0 {
            self.walk_ppm += self.rng.normal(0.0, self.increment_std_ppm);
        }
        let last = self.segments[self.segments.len() - 1];
        let start = last.end();
        let mut changes = 0.0;
        for change in &self.model.frequency {
            changes += change.value_ppm(start);
            if let FrequencyChange::Walk { at, ppm_per_sqrt_s } = *change
                && start > at.as_nanos()
            {
                let std = ppm_per_sqrt_s * WANDER_STEP.as_secs_f64().sqrt();
                self.extra_walk_ppm += self.extra_rng.normal(0.0, std);
            }
        }
        let freq = self.model.drift_ppm + self.walk_ppm + self.extra_walk_ppm + changes;
        self.segments.push_back(last.next(freq.max(MIN_FREQ_PPM)));
    }

    /// The sum of the steps at or before `t`.
    fn steps_through(&self, t: i64) -> i64 {
        match self.step_times.partition_point(|&s| s <= t) {
            0 => 0,
            n => self.step_totals[n - 1],
        }
    }
}

/// A simulated clock is a follower's crystal: its local clock and its DAC's frame clock.
impl Crystal for SimClock {
    fn local_at(&mut self, at: TrueInstant) -> LocalInstant {
        LocalInstant::from_nanos(self.reading(SimTime::from(at)))
    }

    fn true_at(&mut self, local: LocalInstant) -> TrueInstant {
        self.time_of(local.as_nanos()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> SimTime {
        SimTime::from_secs_f64(s)
    }

    fn clock(model: ClockModel, seed: u64) -> SimClock {
        SimClock::new(model, SimRng::new(seed)).unwrap()
    }

    fn drifting(drift_ppm: f64) -> ClockModel {
        ClockModel {
            drift_ppm,
            ..ClockModel::ideal()
        }
    }

    #[test]
    fn a_clock_fast_by_50_ppm_gains_5_ms_in_100_s() {
        let mut c = clock(
            ClockModel {
                offset: Nanos::from_secs(-7),
                ..drifting(50.0)
            },
            1,
        );
        assert_eq!(c.reading(SimTime::ZERO), -7_000_000_000);
        let gained = c.reading(secs(100.0)) - 100_000_000_000 + 7_000_000_000;
        assert!((gained - 5_000_000).abs() <= 1, "gained {gained} ns");
        assert_eq!(c.freq_ppm(secs(100.0)), 50.0);
        // Mid-segment readings interpolate at the same rate.
        assert_eq!(c.reading(secs(100.05)) - c.reading(secs(100.0)), 50_002_500);
    }

    #[test]
    fn steps_jump_the_reading_at_their_time() {
        let model = ClockModel {
            steps: vec![
                (secs(5.0), Nanos::from_millis(1)),
                (secs(2.0), Nanos::from_millis(-3)),
            ],
            ..ClockModel::ideal()
        };
        // Look-ahead across a backward step: the earliest time is before the step.
        let mut c = clock(model.clone(), 1);
        assert_eq!(c.time_of(1_998_000_000), secs(1.998));
        // Across a forward step: 5 s is first read 2 ms after it, as the clock is then 2 ms
        // behind.
        assert_eq!(c.time_of(5_000_000_000), secs(5.002));
        assert_eq!(c.reading(secs(2.0) - Nanos(1)), 1_999_999_999);
        assert_eq!(c.reading(secs(2.0)), 1_997_000_000);
        assert_eq!(c.reading(secs(5.0) - Nanos(1)), 4_996_999_999);
        assert_eq!(c.reading(secs(5.0)), 4_998_000_000);
        // The model is reported as given.
        assert_eq!(c.model(), &model);
    }

    #[test]
    fn time_of_inverts_reading_to_the_nanosecond() {
        let mut rng = SimRng::new(3);
        let model = ClockModel {
            drift_ppm: -80.0,
            // Far more wander than a crystal has, so segments differ visibly.
            wander_ppm_per_sqrt_s: 2.0,
            offset: Nanos::from_millis(400),
            steps: vec![(secs(7.25), Nanos::from_micros(-300))],
            frequency: vec![
                FrequencyChange::Warmup {
                    at: secs(3.0),
                    by_ppm: 30.0,
                    tau: Nanos::from_secs(2),
                },
                FrequencyChange::Sine {
                    at: secs(1.0),
                    amplitude_ppm: 5.0,
                    period: Nanos::from_secs(4),
                },
            ],
        };
        let mut c = clock(model, 4);
        let mut now = SimTime::ZERO;
        for _ in 0..500 {
            now += Nanos::from_secs_f64(rng.uniform(0.0, 0.05));
            let r = c.reading(now) + rng.uniform(-1e6, 3e8) as i64;
            let t = c.time_of(r);
            assert!(t >= now);
            if t == now {
                // Already reached: the answer is the low-water mark.
                assert!(c.reading(t) >= r);
            } else {
                assert!(c.reading(t - Nanos(1)) < r);
                let at = c.reading(t);
                assert!(at >= r && at - r <= 1, "read {at} for {r}");
            }
            now = t;
        }
    }

    #[test]
    fn answers_do_not_depend_on_how_queries_interleave() {
        let model = ClockModel {
            wander_ppm_per_sqrt_s: 0.5,
            ..drifting(20.0)
        };
        let mut plain = clock(model.clone(), 11);
        let mut busy = clock(model, 11);
        for i in 0..400 {
            let t = SimTime(i * 37_000_000);
            if i % 7 == 0 {
                // Look ahead, sometimes far.
                let r = busy.reading(t) + (i % 5) * 2_000_000_000;
                busy.time_of(r);
            }
            assert_eq!(busy.reading(t), plain.reading(t));
            assert_eq!(busy.freq_ppm(t), plain.freq_ppm(t));
        }
    }

    #[test]
    fn ten_hours_of_queries_keep_memory_small() {
        let mut c = clock(ClockModel::random_follower(&mut SimRng::new(5)), 6);
        let mut longest = 0;
        let mut last = i64::MIN;
        let step = Nanos::from_millis(10);
        let mut t = SimTime::ZERO;
        while t < secs(36_000.0) {
            let r = c.reading(t);
            assert!(r > last, "the clock runs forwards");
            last = r;
            if t.as_nanos() % 1_000_000_000 == 0 {
                c.time_of(r + 2_000_000_000);
            }
            longest = longest.max(c.segments.len());
            t += step;
        }
        assert!(longest <= 25, "kept {longest} segments");
        // After 10 h the phase still interpolates to the nanosecond within a segment.
        let f = c.freq_ppm(t);
        let dt = 50_000_000;
        let want = dt as f64 * (1.0 + f / 1e6);
        let got = (c.reading(t + Nanos(dt)) - c.reading(t)) as f64;
        assert!((got - want).abs() <= 1.0);
    }

    #[test]
    fn wander_spreads_the_frequency_like_a_random_walk() {
        let w = 0.01;
        let after = 100.0;
        let model = ClockModel {
            wander_ppm_per_sqrt_s: w,
            ..drifting(30.0)
        };
        let n = 300;
        let walks: Vec<f64> = (0..n)
            .map(|seed| clock(model.clone(), seed).freq_ppm(secs(after)) - 30.0)
            .collect();
        let mean = walks.iter().sum::<f64>() / n as f64;
        let std = (walks.iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
        let want = w * after.sqrt();
        assert!((std / want - 1.0).abs() < 0.2, "std {std}, want {want}");
        assert!(mean.abs() < 4.0 * want / (n as f64).sqrt(), "mean {mean}");
    }

    #[test]
    fn queries_before_the_retained_history_extrapolate() {
        let mut c = clock(drifting(100.0), 1);
        c.reading(secs(10.0));
        assert_eq!(c.reading(secs(1.0)), 1_000_100_000);
        assert_eq!(c.reading(secs(-1.0)), -1_000_100_000);
        // The low-water mark stayed at 10 s.
        assert_eq!(c.time_of(0), secs(10.0));
    }

    #[test]
    fn same_seed_same_clock() {
        let mut models = SimRng::new(8);
        let model = ClockModel::random_follower(&mut models);
        assert!(model.drift_ppm.abs() <= 100.0 && model.offset.abs() <= Nanos::from_secs(1));
        let mut a = clock(model.clone(), 9);
        let mut b = clock(model.clone(), 9);
        let mut other = clock(model, 10);
        let t = secs(600.0);
        assert_eq!(a.reading(t), b.reading(t));
        assert_ne!(a.reading(t), other.reading(t));
    }

    #[test]
    fn impossible_clocks_are_refused() {
        let bad = |m: ClockModel| SimClock::new(m, SimRng::new(0)).unwrap_err();
        assert_eq!(bad(drifting(-1e6)), SimConfigError::Backwards { got: -1e6 });
        assert!(matches!(
            bad(drifting(f64::NAN)),
            SimConfigError::NotFinite {
                field: "drift_ppm",
                ..
            }
        ));
        let m = ClockModel {
            wander_ppm_per_sqrt_s: -0.1,
            ..ClockModel::ideal()
        };
        assert_eq!(bad(m), SimConfigError::NegativeWander { got: -0.1 });
    }

    #[test]
    fn frequency_changes_follow_their_shapes_and_add_up() {
        let model = ClockModel {
            drift_ppm: 50.0,
            frequency: vec![
                FrequencyChange::Warmup {
                    at: secs(10.0),
                    by_ppm: 8.0,
                    tau: Nanos::from_secs(120),
                },
                FrequencyChange::Ramp {
                    at: secs(100.0),
                    by_ppm: -4.0,
                    over: Nanos::from_secs(40),
                },
                FrequencyChange::Sine {
                    at: secs(0.0),
                    amplitude_ppm: 2.0,
                    period: Nanos::from_secs(1200),
                },
            ],
            ..ClockModel::ideal()
        };
        let mut c = clock(model, 1);
        let expect = |t: f64| {
            let warm = if t >= 10.0 {
                8.0 * (1.0 - (-(t - 10.0) / 120.0).exp())
            } else {
                0.0
            };
            let ramp = -4.0 * ((t - 100.0) / 40.0).clamp(0.0, 1.0);
            50.0 + warm + ramp + 2.0 * (core::f64::consts::TAU * t / 1200.0).sin()
        };
        for t in [0.05f64, 5.0, 10.05, 130.0, 300.0, 900.0] {
            // The frequency holds over each 100 ms segment from its start.
            let start = (t / 0.1).floor() * 0.1;
            let f = c.freq_ppm(secs(t));
            assert!((f - expect(start)).abs() < 1e-9, "at {t} s: {f} ppm");
        }
        // An extra walk only starts at its time, and only adds wander.
        let walk = |ppm| ClockModel {
            frequency: vec![FrequencyChange::Walk {
                at: secs(50.0),
                ppm_per_sqrt_s: ppm,
            }],
            ..ClockModel::ideal()
        };
        let (mut a, mut b) = (clock(walk(0.0), 7), clock(walk(1.0), 7));
        assert_eq!(a.freq_ppm(secs(49.0)), b.freq_ppm(secs(49.0)));
        let moved = (b.freq_ppm(secs(150.0)) - a.freq_ppm(secs(150.0))).abs();
        assert!(moved > 0.5 && moved < 50.0, "walked {moved} ppm in 100 s");
        let bad = ClockModel {
            frequency: vec![FrequencyChange::Warmup {
                at: secs(0.0),
                by_ppm: 1.0,
                tau: Nanos::ZERO,
            }],
            ..ClockModel::ideal()
        };
        assert!(matches!(
            bad.validate(),
            Err(SimConfigError::NotPositive {
                field: "warmup.tau",
                ..
            })
        ));
    }
}
