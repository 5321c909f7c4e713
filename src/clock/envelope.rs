//! lockstep's clock estimator: min-delay envelopes per direction, fitted as lines.
//!
//! Each exchange gives two one-way samples of `leader - local`: the Sync's (`t1 - t2`, the
//! offset minus the outbound delay) and the Delay_Req's (`t4 - t3`, the offset plus the
//! return delay). Queuing only ever adds delay, so the samples with the least delay carry the
//! clock relation; the rest are noise to be discarded, not averaged. Per direction the
//! estimator keeps, for every block of a few exchanges, the sample nearest the envelope, and
//! builds the lower convex hull of the kept samples of the window (see [`super::hull`]).
//! Working per direction matters on Wi-Fi: a sample whose *own* direction was quick is
//! common, one where both were quick is rare.
//!
//! The two envelopes are lines sharing one rate (with opposite signs). With exponential
//! queuing the likelihood of a rate and offset is explicit, and the best single line is the
//! linear programme of Moon, Skelly and Towsley; but that optimum rests on two hull vertices
//! and jumps as the hull changes, leaving a rate error that grows into an offset error
//! between jumps. The estimator instead takes the posterior mean of rate and offset over
//! every line the data allow (see [`posterior`]), which is exact and cheap because the
//! likelihood is piecewise exponential between the hulls' edge slopes. Its spread, plus an
//! allowance for crystal wander, is the reported uncertainty. The window adapts to the
//! path's noise: 30 s on a quiet LAN (the crystal's wander dominates), up to 240 s (about
//! 150 s on the wifi preset) on noisy paths.
//!
//! Costs are fixed: the window is a pair of fixed rings, a refit walks them a few times once
//! a second in steady state (every block while the window is young), and nothing allocates
//! after construction. A sample that stands for more exchanges than a block's (the
//! survivor of a full window's merge) weighs as many.
//!
//! A noisy path gives too few samples at the steady rate to tell a moving frequency from
//! queuing, so while the fit's own uncertainty is above [`EnvelopeConfig::burst_above`]
//! (20 µs) the estimator asks the leader for a burst every 10 s, as a young window does.
//!
//! The world changes under the window. A path that changes (a roam, a one-way re-route) or
//! a leader clock that steps moves one or both envelopes for good. The change watch of
//! [`super::change`] tells that from queuing noise and explains it. The samples from before
//! the change are then moved onto the levels after it, so the window and its rate carry on.
//! The epoch changes only when the timeline moved by more than the uncertainty (a step; a
//! one-way change, which moves the two-way offset by half of it), and `reason` says why.
//! A different leader port starts a new epoch at once.
//!
//! A crystal whose frequency moves bends the clock relation away from a line. Three things
//! answer that:
//! - Every few seconds the rates of the window's older and newer halves, fitted apart,
//!   measure the bend. When it stands clear of its noise it is taken out of the samples
//!   (`curve·(t - newest)²`) before the lines are fitted, so the fit follows a warming
//!   crystal instead of lagging it, and its rate is the rate at the newest sample.
//! - A fit over the window's newest quarter is compared with the whole window's. When they
//!   still disagree by four of their spreads (each counted as at least 100 ns, what a real
//!   path's floor moves by), the window halves; by more than one, their distance widens the
//!   uncertainty.
//! - What may be left of the bend (the drift seen in recent fits' rates beyond the curve
//!   taken out, and the curve's own spread) widens the uncertainty.
//!
//! Queuing never makes a sample quicker than the path, so a sample far below a trusted
//! envelope is a change or a false measurement (a transmit stamp that belongs to another
//! datagram). It is watched but kept out of the window, unless a change is then confirmed
//! and examined.
//!
//! The uncertainty is honest about what the estimator cannot know. It widens while a
//! change is examined or its new levels are young (the estimate is then not `settled`). It
//! keeps half of every one-way change, since no two-way method can tell which side of it
//! was right.

use super::change::{Examination, Explanation, Trigger, Watch};
use super::hull::{Line, Point, lower_hull};
use super::ring::Ring;
use super::{ClockEstimate, ClockEstimator, EpochReason, Exchange};
use crate::ptp::PortIdentity;
use crate::time::{LeaderInstant, LocalInstant, Nanos};

/// Tuning of [`EnvelopeEstimator`]. The defaults are what the sync report measures.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct EnvelopeConfig {
    /// How far back samples are kept at most. Longer averages more delay noise away; shorter
    /// follows the crystal's frequency wander more closely. The window in use shrinks
    /// towards `min_window` on quiet paths (see `quiet_residual`).
    pub window: Nanos,
    /// The shortest window used.
    pub min_window: Nanos,
    /// The mean envelope residual (the typical queuing delay of kept samples) at which the
    /// window is `min_window`; it grows with the square root of the residual above that.
    pub quiet_residual: Nanos,
    /// A block closes after this many exchanges (its best sample per direction is kept)...
    pub block_samples: u32,
    /// ...or once it spans this long, whichever comes first.
    pub block_span: Nanos,
    /// Most blocks kept (bounds memory when exchanges come fast).
    pub max_blocks: usize,
    /// Refit after this many exchanges...
    pub refit_every: u32,
    /// ...except while the window holds fewer samples than this: then every block refits,
    /// as the first seconds need every sample.
    pub warm_samples: usize,
    /// The crystals' frequency wander, in ppm per square root of a second (a random walk):
    /// it bends the clock relation away from a straight line over the window, which the
    /// reported uncertainty allows for. 0.01 suits ordinary crystal oscillators.
    pub wander_ppm: f64,
    /// Smallest departure from an envelope that can count towards a change of the path or of
    /// the leader's clock (the fit's own uncertainty, times four, if larger).
    pub step_threshold: Nanos,
    /// How long after a change the levels on either side of it are still refined from new
    /// samples, before the window takes them as one.
    pub refine_span: Nanos,
    /// While the fit's own uncertainty (the posterior's spread, the crystal's wander and
    /// what may be left of a bend; not an asymmetry, which no number of samples can tell)
    /// is above this, the estimator asks for a burst of exchanges every 10 s, as a young
    /// window does (20 µs by default, the skew between speakers lockstep aims for).
    /// `Nanos::MAX` never asks.
    ///
    /// At the steady 16 exchanges a second a noisy path gives too few samples to tell a
    /// moving frequency from queuing: a window long enough to average `wifi`'s queuing
    /// away lags a warming crystal by tens of µs. Each granted burst adds 768 exchanges
    /// in 2 s. On a quiet LAN the uncertainty stays far below the bound and nothing is
    /// asked; on the simulator's `wifi` preset a burst comes about every 27 s, and the
    /// clock's traffic is about 3.7 times the steady rate's (the leader grants one every
    /// 10 s at most, on average).
    pub burst_above: Nanos,
}

/// Kept samples per direction before changes are looked for, and before the estimate counts
/// as settled.
const STEP_MIN_SAMPLES: usize = 32;
/// Rates of recent fits kept, at most one per [`DRIFT_STEP`]...
const DRIFT_HISTORY: usize = 256;
const DRIFT_STEP: Nanos = Nanos::from_millis(500);
/// ...of which those of the last this long give the drift...
const DRIFT_SPAN: Nanos = Nanos::from_secs(60);
/// ...once there are this many, from fits spanning at least [`DRIFT_MIN_SPAN`].
const DRIFT_MIN_POINTS: usize = 30;
const DRIFT_MIN_SPAN: Nanos = Nanos::from_secs(30);
/// The largest drift a fit takes out, rate per ns: 1 ppm/s, more than ten times what a
/// crystal warming from a cold start shows.
const CURVE_BOUND: f64 = 1e-6 / 1e9;
/// The spread of the difference of the two halves' rates is taken as this many times what
/// their posteriors say (which leave out that delays are not quite exponential).
const CURVE_NOISE: f64 = 2.0;
/// A bend is taken out only beyond this many of its standard deviations, and the less of
/// it the nearer it is to that (see `refit`). On the steady presets the measured bends
/// spread by 0.66 of their standard deviation, but slowly: an excursion lasts about a
/// window, and one taken out for real bends the fit for that long. 1.5 keeps those out.
const CURVE_SIGNIFICANCE: f64 = 1.5;
/// Kept samples per direction before the window's parts are compared (its newest quarter
/// has a quarter of them; a LAN's 30 s window holds about 110).
const STRUCTURE_MIN_SAMPLES: usize = 2 * STEP_MIN_SAMPLES;
/// Refits between two comparisons of the window's newest quarter with the whole...
const STRUCTURE_EVERY: u32 = 4;
/// ...which disagree when their offsets are this many of their combined spreads apart...
/// (At 3, a steady crystal on `wifi` had its window cut about ten times an hour, 8 times in
/// 20 seeds' 60–200 s: the posterior's spread knows only exponential queuing, and the
/// quarter's heavier tails than that crossed it. Each cut halves the window and doubles its
/// noise for a while: 51 µs on one seed. At 4, once in the same runs. A random-walk wander
/// is followed a little later for it: p99 35.5 → 38.9 µs at worst over seeds 1–20.)
const STRUCTURE_SIGMA: f64 = 4.0;
/// ...where the spread is taken as at least this, in ns, when a cut is judged: the queuing
/// scale below which [`WEIGHT_FLOOR_NS`] stops weighing, for the same reason. On a path as
/// quiet as a loopback the posterior pins each floor to a few ns, as if the floor held
/// still; a real one moves by tens of ns from second to second (interrupts, scheduling,
/// timestamping), and its parts disagree by that much with no bend behind it. (Without the
/// floor, a follower on loopback under load saw 50–150 ns disagreements against 5–30 ns
/// spreads; its window was called too long in 15–35% of the checks, never settled in 5 s in
/// one CI run, and never started playing. Bends that matter lag far more: a LAN's warm-up
/// reaches µs. On the simulator's presets not one figure moved for it, seeds 1–10.) The
/// uncertainty's share of the disagreement is judged on the spread itself.
const STRUCTURE_FLOOR_NS: f64 = WEIGHT_FLOOR_NS;
/// ...and while they agree, the window may grow back by this factor per comparison...
const STRUCTURE_GROWTH: f64 = 1.1;
/// ...and beyond this many spreads, short of cutting the window, their distance joins the
/// uncertainty.
const STRUCTURE_HINT: f64 = 1.0;
/// How many times the bend `d·W²/12` the uncertainty allows for (a fit of envelopes lags a
/// bend more than a least-squares line does).
const DRIFT_ALLOWANCE: f64 = 2.0;
/// A window spanning less than this (or than the window it is kept to, if shorter) is young:
/// it asks for a burst every [`YOUNG_BURST_EVERY`] (a leader grants one every 10 s at most by
/// default).
const YOUNG_SPAN: Nanos = Nanos::from_secs(60);
const YOUNG_BURST_EVERY: Nanos = Nanos::from_secs(10);
/// A window spanning less than this refits at every block. (Not every young one: the
/// window checks and the bend's measurement count refits, and a window cut short by a
/// check would be checked ever faster.)
const FRESH_SPAN: Nanos = Nanos::from_secs(10);
/// Kept samples after a change before its levels are refined from them.
const REFINE_MIN_SAMPLES: usize = 16;

impl Default for EnvelopeConfig {
    fn default() -> Self {
        EnvelopeConfig {
            window: Nanos::from_secs(240),
            min_window: Nanos::from_secs(30),
            quiet_residual: Nanos::from_micros(20),
            block_samples: 4,
            block_span: Nanos::from_millis(500),
            max_blocks: 1024,
            refit_every: 16,
            warm_samples: 128,
            wander_ppm: 0.01,
            step_threshold: Nanos::from_micros(20),
            refine_span: Nanos::from_secs(60),
            burst_above: Nanos::from_micros(20),
        }
    }
}

/// The reported uncertainty in standard deviations of the offset: the posterior's, which
/// knows only exponential queuing and a straight clock line, and the crystal wander's (see
/// [`WANDER_SHAPE`]). Real delays have heavier tails than the posterior assumes, so the span
/// is wide: over 600 s in the simulator it covers the true error 85–100% of the time (about
/// 96% typically) on every preset (see tests/estimator_scenarios.rs). Before the posterior
/// exists, it scales the mean envelope residual per kept sample.
const UNCERTAINTY_GAIN: f64 = 4.0;
/// Standard deviation of a line fitted over a window of `W` seconds, at its newest end, from
/// a clock whose frequency random-walks by `σ` per √s, as a multiple of `σ·W^1.5`
/// (calibrated in the simulator).
const WANDER_SHAPE: f64 = 0.05;
/// The reported uncertainty never goes below this: the crystal wanders between refits.
const UNCERTAINTY_FLOOR_NS: f64 = 50.0;

/// Counters of what the estimator did, for status displays and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvelopeStats {
    /// Exchanges taken.
    pub exchanges: u64,
    /// Envelope refits.
    pub refits: u64,
    /// Leader clock steps detected.
    pub steps: u32,
    /// Leader changes seen.
    pub leader_changes: u32,
    /// Path changes detected: both directions alike, or one.
    pub path_changes: u32,
    /// Departures from the envelopes that were examined and found to be noise.
    pub false_alarms: u32,
    /// Bursts of faster exchanges asked for.
    pub burst_requests: u32,
    /// Samples kept out of the window because they lay below a trusted envelope by more
    /// than queuing allows, and no change followed: false measurements.
    pub rejected: u64,
}

/// A change whose two sides the estimator has joined: samples before `since` (per
/// direction) are moved by `shift` onto the levels after it (a little below them while
/// those are young: see [`below_new_levels`]), refined until `until`.
#[derive(Clone, Copy, Debug)]
struct Junction {
    since: [i64; 2],
    /// When the change was raised: samples from then on are surely after it, and the level
    /// after it is measured on them alone.
    raised: i64,
    shift: [f64; 2],
    /// Standard deviation of each shift, ns.
    sd: [f64; 2],
    explanation: Explanation,
    until: i64,
}

/// The best exchange of the block being filled, per direction.
#[derive(Clone, Copy, Debug, Default)]
struct Block {
    n: u32,
    start: i64,
    fwd: Option<Point>,
    rev: Option<Point>,
}

#[derive(Clone, Copy, Debug)]
struct Fit {
    /// Relative local time the fit is anchored at (the newest sample).
    at: i64,
    /// Lower envelope of `origin_offset - forward`: `-(offset) + outbound delay`.
    fwd: Line,
    /// Lower envelope of `reverse - origin_offset`: `offset + return delay`.
    rev: Line,
    /// Mean residuals of the samples above each envelope (typical queuing delays), ns.
    res_f: f64,
    res_r: f64,
    uncertainty: f64,
    /// Standard deviation of the rate (0 before the posterior exists).
    rate_sd: f64,
    /// What a moving frequency may bend the line by (see `track_drift`), ns: part of the
    /// reported uncertainty, not of the tolerance changes are looked for with (a bend is
    /// smooth, a change is not).
    bend: f64,
}

impl Fit {
    /// Offset relative to the origin's, at relative local time `t`.
    fn offset(&self, t: i64) -> f64 {
        (self.rev.eval(t) - self.fwd.eval(t)) * 0.5
    }

    /// d(offset)/d(local time): the rate, dimensionless.
    fn rate(&self) -> f64 {
        (self.rev.slope - self.fwd.slope) * 0.5
    }
}

/// lockstep's estimator: per-direction minimum-delay envelopes fitted as lines over a
/// sliding window. See the module docs for how and why.
#[derive(Clone, Debug)]
pub struct EnvelopeEstimator {
    config: EnvelopeConfig,
    leader: Option<PortIdentity>,
    epoch: u32,
    /// Local time and offset of the epoch's first exchange; samples are stored relative to
    /// them so that all the window's numbers are small.
    origin: Option<(i64, i64)>,
    fwd: Ring<Point>,
    rev: Ring<Point>,
    block: Block,
    fit: Option<Fit>,
    /// Scratch: the window's samples in time order (forward, reverse), and their hulls.
    sorted: Vec<Point>,
    sorted_r: Vec<Point>,
    hull_f: Vec<Point>,
    hull_r: Vec<Point>,
    /// Watches over each direction's residuals (forward, reverse).
    watch: [Watch; 2],
    /// A change being examined.
    exam: Option<Examination>,
    /// The latest change, joined and being refined.
    junction: Option<Junction>,
    /// Net offset moves of one-way path changes since the leader was first heard: the
    /// asymmetry that may have come with them, which no two-way method can see, and the
    /// sum of those moves' standard deviations.
    asymmetry: f64,
    asymmetry_sd: f64,
    /// Per direction, the oldest sample since the last check that lay below the trusted
    /// envelope by more than queuing allows, while the watch waits to see whether a change
    /// follows (see `watch`).
    false_since: [Option<i64>; 2],
    /// A burst of faster exchanges is wanted.
    burst_wanted: bool,
    /// When a young window last asked for one (relative local time).
    last_burst: Option<i64>,
    /// Scratch hulls of the window's newest quarter.
    hull_qf: Vec<Point>,
    hull_qr: Vec<Point>,
    /// The longest window the clock's own steadiness allows (see `refit`), refits since it
    /// was last checked, whether that check found the window too long, and how far the
    /// newest quarter's offset was from the whole window's when it last stood clear of
    /// their spread (ns; part of the uncertainty).
    window_cap: i64,
    structure_refits: u32,
    too_long: bool,
    /// Window checks so far (the bend is measured at every other one).
    bend_checks: u32,
    structure: f64,
    /// The rates of recent fits at their samples' centroids, and how fast they move (the
    /// frequency's drift: its magnitude plus its spread, rate per ns).
    rates: Ring<RatePoint>,
    drift: f64,
    /// The frequency's drift the fits take out (rate per ns, signed: see `refit`), and
    /// what may be left of the bend once it is taken out (the part held back plus the
    /// measurement's standard deviation).
    curve: f64,
    curve_sd: f64,
    /// The last three measurements of the bend and their standard deviations.
    bends: [(f64, f64); 3],
    /// Exchanges since the last refit.
    since_refit: u32,
    /// The window in use, in ns (adapted to the path's noise at each refit, and cut to
    /// `window_cap`), and the window the path's noise alone asks for.
    window: i64,
    noise_window: i64,
    /// Why the current epoch began.
    reason: EpochReason,
    stats: EnvelopeStats,
}

impl Default for EnvelopeEstimator {
    fn default() -> Self {
        EnvelopeEstimator::new(EnvelopeConfig::default())
    }
}

impl EnvelopeEstimator {
    /// A new estimator with `config`. This is the only allocation it makes.
    pub fn new(config: EnvelopeConfig) -> Self {
        let cap = config.max_blocks.max(2);
        EnvelopeEstimator {
            config,
            leader: None,
            epoch: 0,
            origin: None,
            fwd: Ring::new(cap),
            rev: Ring::new(cap),
            block: Block::default(),
            fit: None,
            sorted: Vec::with_capacity(cap + 1),
            sorted_r: Vec::with_capacity(cap + 1),
            hull_f: Vec::with_capacity(cap + 1),
            hull_r: Vec::with_capacity(cap + 1),
            watch: [Watch::new(), Watch::new()],
            exam: None,
            junction: None,
            asymmetry: 0.0,
            asymmetry_sd: 0.0,
            false_since: [None; 2],
            burst_wanted: false,
            last_burst: None,
            hull_qf: Vec::with_capacity(cap + 1),
            hull_qr: Vec::with_capacity(cap + 1),
            window_cap: config.window.as_nanos(),
            structure_refits: 0,
            bend_checks: 0,
            structure: 0.0,
            too_long: false,
            rates: Ring::new(DRIFT_HISTORY),
            drift: 0.0,
            curve: 0.0,
            curve_sd: 0.0,
            bends: [(0.0, 0.0); 3],
            since_refit: 0,
            window: config.window.as_nanos(),
            noise_window: config.window.as_nanos(),
            reason: EpochReason::Start,
            stats: EnvelopeStats::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &EnvelopeConfig {
        &self.config
    }

    /// What the estimator has done so far.
    pub fn stats(&self) -> EnvelopeStats {
        self.stats
    }

    /// Forgets the timeline (keeps the leader) and starts a new epoch.
    fn restart(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.origin = None;
        self.fwd.clear();
        self.rev.clear();
        self.block = Block::default();
        self.fit = None;
        self.window = self.config.window.as_nanos();
        self.noise_window = self.config.window.as_nanos();
        for w in &mut self.watch {
            w.clear();
        }
        self.exam = None;
        self.junction = None;
        self.false_since = [None; 2];
        self.asymmetry = 0.0;
        self.asymmetry_sd = 0.0;
        self.last_burst = None;
        self.rates.clear();
        self.drift = 0.0;
        self.curve = 0.0;
        self.curve_sd = 0.0;
        self.bends = [(0.0, 0.0); 3];
        self.window_cap = self.config.window.as_nanos();
        self.structure_refits = 0;
        self.structure = 0.0;
        self.too_long = false;
    }

    /// Records a fit's rate at its samples' centroid `at` (a line fitted to a bending
    /// relation has the slope of its middle), and takes the drift the uncertainty allows for
    /// from the slope of a least-squares line through the rates of the last [`DRIFT_SPAN`]:
    /// what of it the `curve` does not take out, plus its standard deviation and the curve's
    /// own, so that a steady crystal's noisy rates count for little and a moving one's for
    /// what may be left of them.
    fn track_drift(&mut self, at: i64, rate: f64) {
        if self
            .rates
            .back()
            .is_some_and(|r| at - r.t < DRIFT_STEP.as_nanos())
        {
            return;
        }
        self.rates.push(RatePoint { t: at, rate });
        self.drift = match self.rate_slope(at - DRIFT_SPAN.as_nanos(), at) {
            Some((slope, sd)) => (slope - self.curve).abs() + sd + self.curve_sd,
            None => 0.0,
        };
    }

    /// The slope of a least-squares line through the recorded rates from `from` to `to`, and
    /// its standard deviation; `None` with fewer than [`DRIFT_MIN_POINTS`] of them.
    fn rate_slope(&self, from: i64, to: i64) -> Option<(f64, f64)> {
        let points = || self.rates.iter().filter(move |p| p.t >= from && p.t <= to);
        let n = points().count() as f64;
        if n < DRIFT_MIN_POINTS as f64 {
            return None;
        }
        let mt = points().map(|p| (p.t - to) as f64).sum::<f64>() / n;
        let mr = points().map(|p| p.rate).sum::<f64>() / n;
        let (mut stt, mut str_) = (0.0, 0.0);
        for p in points() {
            let dt = (p.t - to) as f64 - mt;
            stt += dt * dt;
            str_ += dt * (p.rate - mr);
        }
        if stt <= 0.0 {
            return None;
        }
        let slope = str_ / stt;
        let sse: f64 = points()
            .map(|p| {
                let e = p.rate - mr - slope * ((p.t - to) as f64 - mt);
                e * e
            })
            .sum();
        Some((slope, (sse / (n - 2.0).max(1.0) / stt).sqrt()))
    }

    /// The typical residual of one exchange per direction: a kept sample is the best of a
    /// block, so its mean residual times the block's size.
    fn exchange_noise(fit: &Fit, block: u32) -> [f64; 2] {
        let k = block.max(1) as f64;
        [
            (fit.res_f * k).max(WEIGHT_FLOOR_NS),
            (fit.res_r * k).max(WEIGHT_FLOOR_NS),
        ]
    }

    /// How far below the trusted envelope a sample at `t` may lie before queuing cannot
    /// explain it: the step threshold or four times the fit's uncertainty, plus what a young
    /// fit's rough rate may have carried its envelopes away by since it was made.
    fn below_limit(config: &EnvelopeConfig, fit: &Fit, t: i64) -> f64 {
        let tol = (config.step_threshold.as_nanos() as f64).max(4.0 * fit.uncertainty);
        tol + UNCERTAINTY_GAIN * fit.rate_sd * (t - fit.at).max(0) as f64
    }

    /// Watches this exchange's samples against the trusted envelopes, and examines a change
    /// once one is seen.
    ///
    /// Queuing only adds delay, so a sample far below a trusted envelope is either the
    /// first sign of a change or a false measurement: a transmit stamp that belongs to
    /// another datagram, a clock read late. One such sample, kept, would carry the envelope
    /// and the offset with it while the fit claimed its usual precision. The fits leave it
    /// out while the watch waits to see whether a change follows (`suspect_since`). If
    /// one does, the examination takes over. If none does, the sample was false: it is
    /// dropped from the window (`purge_false`).
    fn watch(&mut self, fwd: Point, rev: Point) {
        let Some(fit) = self.fit else {
            return;
        };
        if self.fwd.len() < STEP_MIN_SAMPLES || self.rev.len() < STEP_MIN_SAMPLES {
            // A young fit extrapolates a rough rate: its misses are not changes.
            return;
        }
        let e_f = fwd.y as f64 - fit.fwd.eval(fwd.t);
        let e_r = rev.y as f64 - fit.rev.eval(rev.t);
        if let Some(j) = self.junction {
            // A direction that rose can still deliver its old level after the change was
            // joined: a message the leader stamped before a step that queued for a while
            // (Wi-Fi holds a few percent of packets for tens of milliseconds). Such a
            // straggler lies about the whole rise below the new level, and no queuing puts
            // a sample there: it goes before it becomes an envelope point.
            let straggler = |d: usize, e: f64, l: f64| {
                let rise = j.shift[d];
                rise > 0.0 && e < -(l + fit.bend) && e < -0.5 * rise
            };
            let lim = |t: i64| Self::below_limit(&self.config, &fit, t);
            let gone = [straggler(0, e_f, lim(fwd.t)), straggler(1, e_r, lim(rev.t))];
            if gone[0] || gone[1] {
                let torn =
                    self.retain_samples(|d, p| !(gone[d] && *p == if d == 0 { fwd } else { rev }));
                self.stats.rejected += torn;
                // (Nor is it a sign of another change.)
                return;
            }
        }
        if self.exam.is_none() && self.junction_is_young() {
            // The levels after the last change are still being learnt: the envelopes move
            // under the new samples, and that is not another change.
            self.false_since = [None; 2];
            return;
        }
        if let Some(x) = &mut self.exam {
            x.take(0, e_f);
            x.take(1, e_r);
            if let Some(explanation) = x.decide() {
                self.conclude(explanation);
            }
            return;
        }
        let noise = Self::exchange_noise(&fit, self.config.block_samples);
        let lim = |t: i64| Self::below_limit(&self.config, &fit, t);
        let (lim_f, lim_r) = (lim(fwd.t), lim(rev.t));
        // (A moving frequency bends the clock relation away from the fitted line, smoothly:
        // that is no change to watch for, but a sample it puts below the line is true.)
        for (d, p, e, l) in [(0, fwd, e_f, lim_f), (1, rev, e_r, lim_r)] {
            if e < -(l + fit.bend) {
                self.false_since[d] = Some(self.false_since[d].map_or(p.t, |t| t.min(p.t)));
            }
        }
        let tf = self.watch[0].observe(fwd.t, e_f, noise[0], lim_f);
        let tr = self.watch[1].observe(rev.t, e_r, noise[1], lim_r);
        let trigger = match (tf, tr) {
            (Some(a), Some(b)) => Trigger {
                since: a.since.min(b.since),
                size: a.size.max(b.size),
            },
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => {
                // Below-envelope samples that passed out of the watch's reach without
                // confirming a change were false. (The fits leave out those still within
                // it: see `suspect_since`.)
                for d in 0..2 {
                    if let (Some(t), Some(horizon)) =
                        (self.false_since[d], self.watch[d].confirm_horizon())
                        && t < horizon
                    {
                        let (mut since, mut until) = ([i64::MAX; 2], [i64::MIN; 2]);
                        (since[d], until[d]) = (t, horizon);
                        self.purge_false(since, until);
                        // (Any later one is still within the watch's reach.)
                        self.false_since[d] = self.watch[d].below_since();
                    }
                }
                return;
            }
        };
        // A new change: the one before it is joined for good. (What lay below the envelope
        // is the examination's to judge now.)
        let below = self.false_since;
        self.false_since = [None; 2];
        self.bake();
        let mut x = Examination::new(
            trigger,
            fwd.t,
            noise,
            self.config.block_samples,
            fit.uncertainty / UNCERTAINTY_GAIN,
        );
        // One direction may raise the alarm while the other already lies below the envelope
        // from earlier on (a leader step moves the directions a round trip apart, and a
        // queued reply dates a sample well before it arrives): the change began for that
        // direction no later than its first such sample, and the trusted fit leaves it out.
        for (since, below) in x.since.iter_mut().zip(below) {
            *since = below.map_or(*since, |t| t.min(*since));
        }
        self.exam = Some(x);
        self.want_burst();
    }

    /// Drops the samples taken from `since` to before `until` (per direction) that lie below
    /// the trusted envelopes by more than queuing allows: no change followed them (the watch
    /// saw none, or an examination found nothing), so they were false.
    fn purge_false(&mut self, since: [i64; 2], until: [i64; 2]) {
        let Some(fit) = self.fit else {
            return;
        };
        let config = self.config;
        let limit = |p: &Point| Self::below_limit(&config, &fit, p.t);
        let fits = |d: usize, p: &Point| {
            let line = if d == 0 { fit.fwd } else { fit.rev };
            p.t < since[d]
                || p.t >= until[d]
                || p.y as f64 - line.eval(p.t) >= -(limit(p) + fit.bend)
        };
        self.stats.rejected += self.retain_samples(fits);
    }

    /// Drops each direction's samples from `.0` to before `.1` (the open block's too).
    fn drop_between(&mut self, span: [(i64, i64); 2]) {
        self.retain_samples(|d, p| p.t < span[d].0 || p.t >= span[d].1);
    }

    /// Keeps only the samples `keep` accepts (direction 0 forward, 1 reverse), the open
    /// block's best ones included; returns how many went.
    fn retain_samples(&mut self, keep: impl Fn(usize, &Point) -> bool) -> u64 {
        let mut gone = self.fwd.retain(|p| keep(0, p)) + self.rev.retain(|p| keep(1, p));
        for (d, best) in [&mut self.block.fwd, &mut self.block.rev]
            .into_iter()
            .enumerate()
        {
            if best.is_some_and(|p| !keep(d, &p)) {
                *best = None;
                gone += 1;
            }
        }
        gone as u64
    }

    /// Acts on an examination's explanation: joins the samples on either side of the change
    /// and starts a new epoch if the timeline moved by more than it was sure of.
    fn conclude(&mut self, explanation: Explanation) {
        let Some(mut x) = self.exam.take() else {
            return;
        };
        let dated = x.since;
        if let Some(fit) = self.fit {
            // Date each direction's shift on its own now that its sign is known, to the safe
            // side: a rise at the alarm (samples after the change counted as before it then
            // sit above the new level), a drop early (see `Watch::drop_point`).
            let noise = Self::exchange_noise(&fit, self.config.block_samples);
            let tol = (self.config.step_threshold.as_nanos() as f64).max(4.0 * fit.uncertainty);
            let (f, r) = explanation.shifts();
            for (d, shift) in [f, r].into_iter().enumerate() {
                if shift > 0.0 {
                    x.since[d] = x.since[d].max(x.raised);
                } else if shift < 0.0
                    && let Some(t) = self.watch[d].drop_point(shift, noise[d], tol)
                {
                    x.since[d] = t;
                }
            }
        }
        for w in &mut self.watch {
            w.clear();
        }
        let before = self.estimate();
        match explanation {
            Explanation::Nothing if x.busy() => {
                // An episode of heavy queuing waited out: its samples lie far above the
                // envelope, and in the window they would swell the mean residual every
                // sample is weighed by. (Kept, a minute of 20 ms queuing and 30 % loss
                // left the fit's uncertainty at 1–2 ms; the bursts it then asked for
                // pushed the quiet samples from before the episode out of the window,
                // and the rest held the rate 3.6 ppm off: 38 µs, p99 31 µs on seed 1.)
                self.stats.false_alarms += 1;
                self.drop_between([(x.since[0], i64::MAX), (x.since[1], i64::MAX)]);
            }
            Explanation::Nothing => {
                self.stats.false_alarms += 1;
                self.purge_false(x.since, [i64::MAX; 2]);
            }
            Explanation::Step(_) => self.stats.steps += 1,
            Explanation::Path(_) | Explanation::Apart(..) => self.stats.path_changes += 1,
        }
        if explanation != Explanation::Nothing {
            let (f, r) = explanation.shifts();
            // Between the change's earliest possible start and the alarm, samples of a
            // direction that moved may lie on either level. Left in, one that is after the
            // change but dated before it is moved once more with the old samples and sits
            // the whole shift above the envelope: harmless to the envelope, but it swells
            // the mean residual the levels are refined with and the directions weighed by
            // (a 1 s leader step on a LAN put 17 µs of error in the refined level, and the
            // rate ran off). They are few, and no fit needs them: they go.
            let mut gone = [(i64::MAX, i64::MIN); 2];
            for (d, shift) in [f, r].into_iter().enumerate() {
                if shift != 0.0 {
                    gone[d] = (dated[d].min(x.since[d]), x.raised);
                }
            }
            self.drop_between(gone);
            // A direction that rose is dated at the alarm, which the other direction may
            // have raised. A leader step tears the exchanges in flight: the leader stamps
            // one of an exchange's messages before it and the other after, so a direction
            // may show its old level up to a round trip after the other showed its new one.
            // Such a sample, counted after the change, lies the whole rise below the new
            // level, where no queuing puts one, and the fits bend to reach it (a step in a
            // young window's burst sent the rate to the bound, ±2000 ppm). They go.
            if let Some(fit) = self.fit {
                let config = self.config;
                let lines = [fit.fwd, fit.rev];
                let keep = |d: usize, p: &Point| {
                    let rise = if d == 0 { f } else { r };
                    rise <= 0.0
                        || p.t < x.since[d]
                        || p.y as f64 - lines[d].eval(p.t)
                            >= rise - (Self::below_limit(&config, &fit, p.t) + fit.bend)
                };
                let torn = self.retain_samples(keep);
                self.stats.rejected += torn;
            }
            let newest = self.fwd.back().map_or(x.raised, |p| p.t);
            let sd = [0, 1].map(|d| x.level(d).map_or(0.0, |(_, sd)| sd));
            self.junction = Some(Junction {
                since: x.since,
                raised: x.raised,
                shift: [f, r],
                sd,
                explanation,
                until: newest.saturating_add(self.config.refine_span.as_nanos()),
            });
        }
        self.refit(false);
        let moved = explanation.offset_move().abs();
        let sure = before.map_or(0.0, |e| e.uncertainty.as_nanos() as f64);
        if moved > sure {
            self.epoch = self.epoch.wrapping_add(1);
            self.reason = match explanation {
                Explanation::Step(_) => EpochReason::LeaderStep,
                _ => EpochReason::PathChange,
            };
        }
    }

    /// Whether the latest change has fewer than [`STEP_MIN_SAMPLES`] kept samples after it in
    /// either direction.
    fn junction_is_young(&self) -> bool {
        let Some(j) = self.junction else {
            return false;
        };
        let after = |ring: &Ring<Point>, since: i64| {
            (0..STEP_MIN_SAMPLES).all(|i| ring.newest(i).is_some_and(|p| p.t >= since))
        };
        !(after(&self.fwd, j.since[0]) && after(&self.rev, j.since[1]))
    }

    /// The offset move of the latest change if it was one-way: the asymmetry it may have
    /// brought (see `asymmetry`), and the standard deviation of that move as measured.
    fn live_asymmetry(&self) -> (f64, f64) {
        match self.junction {
            Some(Junction {
                explanation: Explanation::Apart(..),
                shift: [f, r],
                sd,
                ..
            }) => ((r - f) * 0.5, (sd[0] + sd[1]) * 0.5),
            _ => (0.0, 0.0),
        }
    }

    /// Moves the samples before the current junction onto the levels after it for good.
    fn bake(&mut self) {
        let (moved, sd) = self.live_asymmetry();
        self.asymmetry += moved;
        self.asymmetry_sd += sd;
        let Some(j) = self.junction.take() else {
            return;
        };
        for (d, ring) in [&mut self.fwd, &mut self.rev].into_iter().enumerate() {
            let (since, shift) = (j.since[d], j.shift[d].round() as i64);
            ring.update(|p| {
                if p.t < since {
                    p.y = p.y.saturating_add(shift);
                }
            });
        }
    }

    /// Refines the junction's shifts from the samples on either side of it at the fitted
    /// rate: each side's level is its least residual less the expected excess of the least
    /// of that many. The explanation's constraint is kept (a path change moves both levels
    /// alike, a step moves them oppositely).
    fn refine(&mut self, rate: f64, res: [f64; 2]) {
        let Some(mut j) = self.junction else {
            return;
        };
        let unit = self.unit();
        let newest = self.fwd.back().map_or(i64::MIN, |p| p.t);
        if newest >= j.until {
            self.bake();
            return;
        }
        // A one-way change leaves the other direction as it was, and its envelope's own rate
        // knows nothing of the junction: the moved direction's levels are compared at that
        // rate. (At the fits' rate they fed back: a level a little off tilts the rate the
        // next fit bridges the junction with, and the next level is compared at that rate.
        // On a LAN a 1 ms move was measured 999.5 µs at first and 996.5 µs a minute later,
        // claiming 0.1 µs, and the asymmetry it brought was covered 88% of the time.)
        let own = match j.explanation {
            Explanation::Apart(f0, r0) if (f0 == 0.0) != (r0 == 0.0) => {
                let still = usize::from(f0 != 0.0);
                let ring = if still == 0 { &self.fwd } else { &self.rev };
                let adjust = Adjust {
                    curve: if still == 0 { 0.5 } else { -0.5 } * self.curve,
                    ..Adjust::NONE
                };
                Side::build(
                    ring,
                    None,
                    newest,
                    adjust,
                    unit,
                    &mut self.sorted,
                    &mut self.hull_qf,
                )
                .and_then(|side| side.own_slope())
                .map(|s| if still == 0 { -s } else { s })
                // (As the fits' rates are bounded: odd samples give no wild rate.)
                .filter(|r| r.abs() <= RATE_BOUND)
            }
            _ => None,
        };
        let rate = own.unwrap_or(rate);
        let mut delta = [0.0f64; 2];
        let mut sd = j.sd;
        for (d, ring) in [&self.fwd, &self.rev].into_iter().enumerate() {
            let slope = if d == 0 { -rate } else { rate };
            // (With the bend taken out, as the fits do.)
            let curve = if d == 0 { 0.5 } else { -0.5 } * self.curve;
            let (mut pre, mut post) = ((f64::INFINITY, 0u32), (f64::INFINITY, 0u32));
            for p in ring.iter() {
                let dt = (p.t - newest) as f64;
                let v = p.y as f64 + curve * dt * dt - slope * p.t as f64;
                // Samples between the dated beginning and the alarm may lie on either side.
                let side = if p.t < j.since[d] {
                    &mut pre
                } else if p.t >= j.raised {
                    &mut post
                } else {
                    continue;
                };
                side.0 = side.0.min(v);
                side.1 += 1;
            }
            if (pre.1 as usize) < REFINE_MIN_SAMPLES || (post.1 as usize) < REFINE_MIN_SAMPLES {
                // Until enough blocks have closed after it, the examination's own levels,
                // measured on every exchange, are the better ones. And a level measured on
                // a few samples is noise that, moving the old samples, moves the rate the
                // next refinement is measured at: the shifts are kept as they are.
                return;
            }
            let excess = |n: u32| res[d].max(WEIGHT_FLOOR_NS) / n as f64;
            delta[d] = (post.0 - excess(post.1)) - (pre.0 - excess(pre.1));
            sd[d] = excess(post.1) + excess(pre.1);
        }
        let [f, r] = delta;
        j.sd = sd;
        j.shift = match j.explanation {
            Explanation::Nothing => return,
            Explanation::Path(_) => [(f + r) * 0.5; 2],
            Explanation::Step(_) => {
                let s = (r - f) * 0.5;
                [-s, s]
            }
            Explanation::Apart(f0, r0) => [
                if f0 == 0.0 { 0.0 } else { f },
                if r0 == 0.0 { 0.0 } else { r },
            ],
        };
        self.junction = Some(j);
    }

    /// What one exchange weighs in a fit: a full block's best sample weighs one.
    fn unit(&self) -> f64 {
        1.0 / f64::from(self.config.block_samples.max(1))
    }

    fn want_burst(&mut self) {
        if !self.burst_wanted {
            self.burst_wanted = true;
            self.stats.burst_requests += 1;
        }
    }

    /// Keeps `p` if it is nearer the envelope than the block's best so far. "Nearer" is
    /// judged along the current fitted slope so that a drifting clock does not favour one end
    /// of the block.
    fn keep_best(best: &mut Option<Point>, p: Point, slope: f64) {
        let score = |q: Point| q.y as f64 - slope * q.t as f64;
        match best {
            Some(b) if score(*b) <= score(p) => {}
            _ => *best = Some(p),
        }
    }

    fn close_block(&mut self) {
        // A full window gives up detail, not span: bursts of fast exchanges (a young window
        // asks for one every 10 s) fill it in seconds, and dropping its oldest samples then
        // cut the samples before a change being joined down to a few seconds' worth, which
        // no longer held the rate across it (a +1 s leader step at 11.5 s, seed 2 on wifi:
        // the rate went 6 ppm off over 40 s, claiming 0.05 ppm). Instead the older half's
        // neighbours merge into the one nearer the envelope, as a block's samples do, but
        // never across a change's beginning: the samples on either side sit on different
        // levels until it is joined. The merged sample counts the exchanges of both, so the
        // fit weighs it as the best of all of them: a side thinned by merging keeps its
        // weight against the other. (Counted as one, a merge that thinned the samples
        // before a −1 s leader step at 21.5 s, seed 2 on wifi with bursts every 10 s, tilted
        // the rate bridging the step by 0.7 ppm; the step's levels, refined at that rate,
        // tilted it further, 3.9 ppm off and 99 µs for 24 s, claiming 12–27 µs.)
        let mut bounds = None;
        if let Some(j) = self.junction {
            bounds = Some(j.since);
        }
        if let Some(x) = self.exam {
            bounds = Some([0, 1].map(|d| bounds.map_or(x.since[d], |b| b[d].min(x.since[d]))));
        }
        for (d, ring) in [&mut self.fwd, &mut self.rev].into_iter().enumerate() {
            if let Some(bounds) = bounds
                && ring.is_full()
            {
                let rate = self.fit.map_or(0.0, |f| f.rate());
                let slope = if d == 0 { -rate } else { rate };
                let score = |q: Point| q.y as f64 - slope * q.t as f64;
                let bound = bounds[d];
                let half = ring.len() / 2;
                ring.merge_pairs(half, |a, b| {
                    ((a.t < bound) == (b.t < bound)).then(|| {
                        let best = if score(b) < score(a) { b } else { a };
                        Point {
                            n: a.n.max(1).saturating_add(b.n.max(1)),
                            ..best
                        }
                    })
                });
            }
        }
        let n = self.block.n.max(1);
        if let Some(p) = self.block.fwd.take() {
            self.fwd.push(Point { n, ..p });
        }
        if let Some(p) = self.block.rev.take() {
            self.rev.push(Point { n, ..p });
        }
        self.block.n = 0;
        let newest = self.fwd.back().map_or(i64::MIN, |p| p.t);
        let horizon = newest.saturating_sub(self.window);
        for ring in [&mut self.fwd, &mut self.rev] {
            while ring.len() > 2 && ring.front().is_some_and(|p| p.t < horizon) {
                ring.pop_front();
            }
        }
    }

    /// Fits both envelopes over the window (plus the open block's best samples when
    /// `provisional`, so that the first exchanges of an epoch already give an estimate).
    fn refit(&mut self, provisional: bool) {
        if let Some(f) = self.fit {
            self.refine(f.rate(), [f.res_f, f.res_r]);
        }
        // While a change is examined only the samples before it are trusted; after one is
        // joined, the samples before it move onto the levels after it.
        let adjust = |d: usize| {
            let mut a = Adjust::NONE;
            if let Some(j) = self.junction {
                a.before = j.since[d];
                a.shift = below_new_levels(j.shift, j.sd)[d].round() as i64;
            }
            if let Some(x) = self.exam {
                a.cutoff = x.since[d];
            } else if let Some(t) = self.watch[d].suspect_since() {
                a.cutoff = t;
            }
            // The forward samples hold minus the offset, the reverse ones plus it.
            a.curve = if d == 0 { 0.5 } else { -0.5 } * self.curve;
            a
        };
        let (adj_f, adj_r) = (adjust(0), adjust(1));
        let changing = self.exam.is_some() || self.junction.is_some();
        let unit = self.unit();
        // (The open block's best so far stands for the exchanges the block has had.)
        let open = |p: Option<Point>| {
            p.filter(|_| provisional).map(|p| Point {
                n: self.block.n.max(1),
                ..p
            })
        };
        let (extra_f, extra_r) = (open(self.block.fwd), open(self.block.rev));
        let Some(last) = self
            .fwd
            .iter()
            .chain(extra_f)
            .filter(|p| p.t < adj_f.cutoff)
            .map(|p| p.t)
            .max()
        else {
            return;
        };
        let previous = self.fit.map(|f| (f.rate(), f.res_f, f.res_r));
        let Some(fwd) = Side::build(
            &self.fwd,
            extra_f,
            last,
            adj_f,
            unit,
            &mut self.sorted,
            &mut self.hull_f,
        ) else {
            return;
        };
        let Some(rev) = Side::build(
            &self.rev,
            extra_r,
            last,
            adj_r,
            unit,
            &mut self.sorted_r,
            &mut self.hull_r,
        ) else {
            return;
        };
        // Each direction's samples weigh by the inverse of its typical queuing delay: that
        // is the maximum-likelihood fit when queuing is exponential.
        let (fallback, wf, wr) = match previous {
            Some((rate, res_f, res_r)) => (
                rate,
                1.0 / res_f.max(WEIGHT_FLOOR_NS),
                1.0 / res_r.max(WEIGHT_FLOOR_NS),
            ),
            None => (0.0, 1.0, 1.0),
        };
        let post = posterior(&fwd, wf, &rev, wr);
        let rate = post.as_ref().map_or(fallback, |p| p.rate);
        // Each direction's envelope: the highest line of the rate under its samples...
        let (mut fwd_line, res_f) = fwd.line(-rate);
        let (mut rev_line, res_r) = rev.line(rate);
        let sd = post.map(|p| {
            // ...shifted apart so that their midpoint is the posterior offset.
            let mid = (rev_line.eval(last) - fwd_line.eval(last)) * 0.5;
            let shift = p.offset - mid;
            fwd_line.value -= shift;
            rev_line.value += shift;
            p.offset_sd
        });
        let (n_f, n_r) = (fwd.count, rev.count);
        let at = last;
        let span_s = (last - fwd.hull[0].t.min(rev.hull[0].t)) as f64 * 1e-9;
        // (A window the path keeps shorter than that, 30 s on a quiet LAN, counts once it
        // spans what it may: its oldest sample goes when it is older than the window, so it
        // spans up to a block less. Otherwise a LAN never measured a bend or a drift, and
        // its sub-microsecond uncertainty covered a warm-up's 5 µs of lag 22–60 % of the
        // time.)
        let grown = (self.noise_window - self.config.block_span.as_nanos()) as f64 * 1e-9;
        let drift_span = DRIFT_MIN_SPAN.as_secs_f64().min(grown);
        // Does the window's newest quarter tell the same story? A fit over it alone is
        // noisier but follows a bending clock relation (a warming crystal) that the whole
        // window's line lags behind; when the two disagree beyond their spreads the window
        // is too long for the clock, and it shrinks.
        self.structure_refits += 1;
        // (Not across a change being examined: the samples after it are held out. Across
        // a path change being joined the bend is still measured, for a moving frequency
        // goes on moving meanwhile and a curve kept from before the change goes stale, but
        // the window is not judged: its two sides' levels are still being learnt, and that
        // is not a bend.)
        if !provisional
            && self.exam.is_none()
            && self.structure_refits >= STRUCTURE_EVERY
            && n_f >= STRUCTURE_MIN_SAMPLES
            && n_r >= STRUCTURE_MIN_SAMPLES
            && let Some(full) = post
        {
            self.structure_refits = 0;
            // (The parts of the window are slices of the samples the whole was fitted on,
            // sorted and adjusted alike.)
            let (all_f, all_r) = (&self.sorted[..], &self.sorted_r[..]);
            let from = |all: &[Point], t: i64| all.partition_point(|p| p.t < t);
            let (hull_qf, hull_qr) = (&mut self.hull_qf, &mut self.hull_qr);
            let mut part = |f: &[Point], r: &[Point]| {
                let f = Side::of(f, last, hull_qf, unit)?;
                let r = Side::of(r, last, hull_qr, unit)?;
                let centroid = 0.5 * (f.sum_t / f.n + r.sum_t / r.n);
                posterior(&f, wf, &r, wr).map(|p| (p, centroid))
            };
            let quarter = last - (span_s * 1e9 * 0.25) as i64;
            let (qf, qr) = (from(all_f, quarter), from(all_r, quarter));
            let q = if self.junction.is_none() {
                part(&all_f[qf..], &all_r[qr..]).map(|(q, _)| q)
            } else {
                None
            };
            if let Some(q) = q {
                let apart = (q.offset - full.offset).abs();
                let spread = (q.offset_sd * q.offset_sd + full.offset_sd * full.offset_sd).sqrt();
                let min = self.config.min_window.as_nanos();
                // (A cut needs a disagreement beyond what a real path's floor wanders by,
                // whatever the posterior's spread: see [`STRUCTURE_FLOOR_NS`].)
                self.too_long = apart > STRUCTURE_SIGMA * spread.max(STRUCTURE_FLOOR_NS);
                if self.too_long {
                    self.window_cap = ((span_s * 1e9 * 0.5) as i64).max(min);
                } else {
                    let max = self.config.window.as_nanos();
                    self.window_cap = (self.window_cap as f64 * STRUCTURE_GROWTH) as i64;
                    self.window_cap = self.window_cap.clamp(min, max);
                }
                // A disagreement short of cutting the window may still be the start of a
                // bend that the whole window's line lags: the uncertainty owns up to it once
                // it stands clear of the spread (on a steady clock the two fits are about a
                // spread apart anyway), and lets go of it only as the two come together,
                // not because one check's spread grew. (Left out, a crystal warming from
                // power-on drifted a LAN's estimate 0.3–0.9 µs off over 3 s while it
                // claimed 0.1 µs.)
                self.structure = if apart > STRUCTURE_HINT * spread {
                    apart
                } else {
                    self.structure.min(apart)
                };
            }
            // Is a bend left once the curve is taken out? The rates of the window's older
            // and newer halves, fitted apart, tell (their samples, so their noise, are
            // apart too): the curve plus what they show is the bend. The next fits take it
            // out when it stands clear of its spread σ, shrunk towards zero
            // (`b·(1 - (kσ/b)²)` beyond `kσ`, see [`CURVE_SIGNIFICANCE`]), so that noise
            // bends them not at all and a real bend nearly all the way.
            let mid = last - (span_s * 1e9 * 0.5) as i64;
            let (mf, mr) = (from(all_f, mid), from(all_r, mid));
            // (Halves of a young window are too short to tell a bend from noise.)
            // (Every other check: the two fits cost as much as the rest of a check.)
            self.bend_checks = self.bend_checks.wrapping_add(1);
            // (Across a path change only: both directions moved alike there, and the
            // offset carried over. Across a leader step or a one-way change the old
            // samples moved by a measured jump of the offset itself, whose error the
            // halves took for a bend: a −1 s leader step put 24 µs between speakers.)
            let across_other = self
                .junction
                .is_some_and(|j| !matches!(j.explanation, Explanation::Path(_)));
            if span_s < drift_span || self.bend_checks % 2 == 1 || across_other {
                // Nothing to measure.
            } else if let (Some((a, ca)), Some((b, cb))) = (
                part(&all_f[..mf], &all_r[..mr]),
                part(&all_f[mf..], &all_r[mr..]),
            ) {
                let gap = cb - ca;
                if gap > 0.0 {
                    // (The median of the last three measurements: one odd pair of halves
                    // does not bend the next fits.)
                    self.bends.rotate_right(1);
                    self.bends[0] = (
                        self.curve + (b.rate - a.rate) / gap,
                        CURVE_NOISE * a.rate_sd.hypot(b.rate_sd) / gap,
                    );
                    let (bend, sd) = (
                        median3(self.bends.map(|b| b.0)),
                        median3(self.bends.map(|b| b.1)),
                    );
                    let least = CURVE_SIGNIFICANCE * sd;
                    let kept = if bend.abs() > least {
                        bend * (1.0 - (least / bend).powi(2))
                    } else {
                        0.0
                    };
                    self.curve = kept.clamp(-CURVE_BOUND, CURVE_BOUND);
                    self.curve_sd = (bend - self.curve).abs() + sd;
                }
            }
        }
        let wander = WANDER_SHAPE * self.config.wander_ppm * 1e3 * span_s.powf(1.5);
        // A frequency that moves bends the clock relation away from a line, by about d·W²/12
        // at its newest end for a drift d over a window W. The bend measured on the window's
        // halves is taken out of the next fits (`curve`); what may be left of it, judged
        // from the drift of recent fits' rates and from the bend's own spread, widens the
        // uncertainty.
        // (Young windows' rates scatter too much to tell a drift, and so do the rates of
        // fits across a change being examined or joined.)
        if sd.is_some()
            && !changing
            && n_f >= STEP_MIN_SAMPLES
            && n_r >= STEP_MIN_SAMPLES
            && span_s >= drift_span
        {
            // (A fit with the curve taken out has the rate of its newest end; the rate of its
            // middle is what the drift is measured on.)
            let centroid = 0.5 * (fwd.sum_t / fwd.n + rev.sum_t / rev.n);
            self.track_drift(last + centroid as i64, rate + self.curve * centroid);
        }
        let span_ns = span_s * 1e9;
        let bend = DRIFT_ALLOWANCE * self.drift.max(self.curve_sd) * span_ns * span_ns / 12.0;
        let uncertainty = if let Some(sd) = sd {
            UNCERTAINTY_GAIN * (sd * sd + wander * wander).sqrt()
        } else if n_f < 2 || n_r < 2 {
            // One sample per direction: all we know is that the offset lies within half the
            // round trip of the midpoint.
            ((fwd_line.eval(at) + rev_line.eval(at)) * 0.5).abs()
        } else {
            let n = (n_f.min(n_r)) as f64;
            UNCERTAINTY_GAIN * (res_f * res_f + res_r * res_r).sqrt() / n
        };
        self.since_refit = 0;
        if n_f >= 2 && n_r >= 2 {
            // Quiet paths gain little from a long window and lose to wander; noisy ones need it.
            let noise = 0.5 * (res_f + res_r) / self.config.quiet_residual.as_nanos().max(1) as f64;
            let min = self.config.min_window.as_nanos() as f64;
            self.noise_window =
                (min * noise.max(1.0).sqrt()).min(self.config.window.as_nanos() as f64) as i64;
            self.window = self.noise_window.min(self.window_cap);
            if let Some(j) = self.junction {
                // A change being joined keeps the samples from before it: they carry the
                // rate across it, and its levels are refined on them. (Whatever the path's
                // noise asks for: a quiet LAN's 30 s window once dropped them while the
                // levels were still refined from what was left, one sample, and the
                // refinement ran away with the rate, tens of milliseconds off.)
                let keep = last - j.since[0].min(j.since[1]) + min as i64;
                self.window = self.window.max(keep.min(self.config.window.as_nanos()));
            }
        }
        self.fit = Some(Fit {
            at,
            fwd: fwd_line,
            rev: rev_line,
            res_f,
            res_r,
            uncertainty: uncertainty.max(UNCERTAINTY_FLOOR_NS),
            rate_sd: post.map_or(0.0, |p| p.rate_sd),
            bend,
        });
        self.stats.refits += 1;
    }
}

/// The posterior means of the rate and of the offset at the newest sample, given the
/// window, when each direction's queuing delay is exponential with mean `1/w` and the prior
/// is flat.
///
/// For a rate `r` the forward envelope has slope `-r` and the reverse `r`; each is the
/// highest line of its slope under its samples, and the true one lies below it by an
/// exponential of mean `1/(w·n)`. Integrating those out leaves the rate's posterior
/// `exp(-G(r))`, where `G` is the weighted total residual of all samples above the two
/// envelopes. `G`'s minimum is the linear-programming fit of Moon, Skelly and Towsley with
/// the two directions sharing one rate (the maximum-likelihood estimate), but that optimum
/// sits on one hull edge and jumps from edge to edge as samples come in; its mean over the
/// rates the data allow is steadier and more accurate. `G` is linear between the hulls'
/// edge slopes, so the integrals are exact sums over those pieces. `None` when the
/// posterior is not proper (one sample a direction).
fn posterior(fwd: &Side, wf: f64, rev: &Side, wr: f64) -> Option<Posterior> {
    if fwd.hull.len() < 2 && rev.hull.len() < 2 {
        return None;
    }
    // On one piece both contacts are fixed: G(r) = c + b·r and offset(r) = o0 + o1·r.
    let piece = |cf: Point, cr: Point| {
        let (tf, tr) = ((cf.t - fwd.last) as f64, (cr.t - rev.last) as f64);
        let c = -wf * fwd.n * cf.y as f64 - wr * rev.n * cr.y as f64;
        let b = wf * (fwd.sum_t - fwd.n * tf) - wr * (rev.sum_t - rev.n * tr);
        let o0 = (cr.y - cf.y) as f64 * 0.5;
        let o1 = -(tr + tf) * 0.5;
        (c, b, o0, o1)
    };
    // Piece boundaries: the forward hull's edge slopes negated (descending as the edges
    // ascend) and the reverse hull's, merged in ascending order. Between two boundaries
    // the contacts are the vertices the walk stands on.
    let (hf, hr) = (fwd.hull, rev.hull);
    let edge = |h: &[Point], i: usize| (h[i + 1].y - h[i].y) as f64 / (h[i + 1].t - h[i].t) as f64;
    let walk = |visit: &mut dyn FnMut(f64, f64, Point, Point)| {
        let (mut i, mut j) = (hf.len() - 1, 0usize);
        let mut a = -RATE_BOUND;
        loop {
            let next_f = if i > 0 {
                -edge(hf, i - 1)
            } else {
                f64::INFINITY
            };
            let next_r = if j + 1 < hr.len() {
                edge(hr, j)
            } else {
                f64::INFINITY
            };
            let b = next_f.min(next_r).min(RATE_BOUND);
            if b > a {
                visit(a, b, hf[i], hr[j]);
                a = b;
            }
            if b >= RATE_BOUND {
                break;
            }
            if next_f <= next_r {
                i -= 1;
            } else {
                j += 1;
            }
        }
    };
    // The peak (the linear programme's optimum) and the offset there, which the moments
    // are taken about so that they stay small.
    let (mut g_min, mut o_ref) = (f64::INFINITY, 0.0);
    walk(&mut |a, b, cf, cr| {
        let (c, s, o0, o1) = piece(cf, cr);
        for r in [a, b] {
            if c + s * r < g_min {
                g_min = c + s * r;
                o_ref = o0 + o1 * r;
            }
        }
    });
    // Each piece is integrated from its end where the density is higher (so exponents stay
    // negative): r = from + step·u for u in 0..1, density e^-(g0 + x·u), and there
    // offset(r) - o_ref = p + q·u.
    let (mut mass, mut m_rate, mut m_rate2, mut m_off, mut m_off2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    walk(&mut |a, b, cf, cr| {
        let (c, s, o0, o1) = piece(cf, cr);
        let (ga, gb) = (c + s * a - g_min, c + s * b - g_min);
        let (from, step, g0) = if ga <= gb {
            (a, b - a, ga)
        } else {
            (b, a - b, gb)
        };
        if g0 > NEGLIGIBLE {
            return;
        }
        let x = (ga - gb).abs();
        let scale = (-g0).exp() * (b - a);
        let (f1, f2, f3) = (phi1(x), phi2(x), phi3(x));
        let (p, q) = (o0 + o1 * from - o_ref, o1 * step);
        mass += scale * f1;
        m_rate += scale * (from * f1 + step * f2);
        m_off += scale * (p * f1 + q * f2);
        m_off2 += scale * (p * p * f1 + 2.0 * p * q * f2 + q * q * f3);
        m_rate2 += scale * (from * from * f1 + 2.0 * from * step * f2 + step * step * f3);
    });
    if mass.is_nan() || mass <= 0.0 {
        return None;
    }
    let mean = m_off / mass;
    let var = (m_off2 / mass - mean * mean).max(0.0);
    // Each highest line sits above its envelope by an exponential of mean 1/(w·n).
    let (ef, er) = (1.0 / (wf * fwd.n), 1.0 / (wr * rev.n));
    let rate = m_rate / mass;
    Some(Posterior {
        rate,
        rate_sd: (m_rate2 / mass - rate * rate).max(0.0).sqrt(),
        offset: o_ref + mean + 0.5 * (ef - er),
        offset_sd: (var + 0.25 * (ef * ef + er * er)).sqrt(),
    })
}

/// What [`posterior`] finds: means of the rate and of the offset at the newest sample, and
/// the offset's standard deviation.
#[derive(Clone, Copy)]
struct Posterior {
    rate: f64,
    rate_sd: f64,
    offset: f64,
    offset_sd: f64,
}

/// Where the posterior density is below `e^-NEGLIGIBLE` of its peak it is left out.
const NEGLIGIBLE: f64 = 40.0;

/// `∫₀¹ e^(-x·u) du`.
fn phi1(x: f64) -> f64 {
    if x < 1e-4 {
        1.0 - x * 0.5 + x * x / 6.0
    } else {
        -(-x).exp_m1() / x
    }
}

/// `∫₀¹ u²·e^(-x·u) du`.
fn phi3(x: f64) -> f64 {
    if x < 1e-2 {
        1.0 / 3.0 - x / 4.0 + x * x / 10.0 - x * x * x / 36.0
    } else {
        (2.0 - (x * x + 2.0 * x + 2.0) * (-x).exp()) / (x * x * x)
    }
}

/// `∫₀¹ u·e^(-x·u) du`.
fn phi2(x: f64) -> f64 {
    if x < 1e-3 {
        0.5 - x / 3.0 + x * x / 8.0
    } else {
        (1.0 - (1.0 + x) * (-x).exp()) / (x * x)
    }
}

/// The middle one of three.
fn median3([a, b, c]: [f64; 3]) -> f64 {
    a.max(b).min(a.min(b).max(c))
}

/// A direction's typical queuing delay is taken as at least this when weighing it.
const WEIGHT_FLOOR_NS: f64 = 100.0;
/// Rates considered, as a fraction: ±2000 ppm is far beyond any crystal.
const RATE_BOUND: f64 = 2e-3;

/// Shifts for the samples before a change that leave them a little below the levels after
/// it (by twice the larger standard deviation of the two levels), both directions alike.
///
/// Lowering both directions' old samples by the same amount moves no offset (the offset is
/// half the difference of the two envelopes), and it keeps the many old samples, not the
/// few new ones, on the envelopes until the new levels are known: a new level guessed too
/// high would otherwise leave the few new samples alone at the envelopes' newest end, and
/// tilt them.
fn below_new_levels(shift: [f64; 2], sd: [f64; 2]) -> [f64; 2] {
    let margin = 2.0 * sd[0].max(sd[1]);
    [shift[0] - margin, shift[1] - margin]
}

/// Which of a direction's samples a fit takes, and how: those before `cutoff` (the trusted
/// ones while a change is examined), those before `before` moved up by `shift` (onto the
/// level after a joined change).
#[derive(Clone, Copy, Debug)]
struct Adjust {
    before: i64,
    shift: i64,
    cutoff: i64,
    /// Samples before this are left out.
    since: i64,
    /// Every sample moves by `curve·(t - last)²`: the bend of a moving frequency, taken out
    /// so that a line fits (see `EnvelopeEstimator::curve`).
    curve: f64,
}

impl Adjust {
    const NONE: Adjust = Adjust {
        before: i64::MIN,
        shift: 0,
        cutoff: i64::MAX,
        since: i64::MIN,
        curve: 0.0,
    };
}

/// A fit's rate at its samples' centroid.
#[derive(Clone, Copy, Debug, Default)]
struct RatePoint {
    t: i64,
    rate: f64,
}

/// One direction's window, summarised for the fit: its lower hull and the sums the
/// objective needs. Times are relative to the newest sample, so the sums stay small.
struct Side<'a> {
    hull: &'a [Point],
    last: i64,
    /// How many samples.
    count: usize,
    /// Their total weight, in full blocks: a sample that is the best of `k` exchanges
    /// weighs `k / block_samples` (see [`Point::n`]).
    n: f64,
    /// Weighted sum of the samples' times.
    sum_t: f64,
    /// Weighted sum of their values.
    sum_y: f64,
}

impl<'a> Side<'a> {
    /// Sorts the ring's samples (plus `extra`), adjusted by `adjust`, into `sorted` and
    /// builds their hull in `hull`.
    fn build(
        ring: &Ring<Point>,
        extra: Option<Point>,
        last: i64,
        adjust: Adjust,
        unit: f64,
        sorted: &mut Vec<Point>,
        hull: &'a mut Vec<Point>,
    ) -> Option<Side<'a>> {
        // Exchanges complete in the order their replies arrive, which is not quite the order
        // of their timestamps: sort (insertion sort, linear on nearly sorted input).
        sorted.clear();
        // The ring's own iterator knows its length, so this copy is a plain one; the
        // adjustments, rarely needed, go over the copy after.
        sorted.extend(ring.iter().chain(extra));
        if adjust.cutoff != i64::MAX || adjust.since != i64::MIN {
            sorted.retain(|p| p.t < adjust.cutoff && p.t >= adjust.since);
        }
        if adjust.shift != 0 {
            for p in sorted.iter_mut().filter(|p| p.t < adjust.before) {
                p.y = p.y.saturating_add(adjust.shift);
            }
        }
        if adjust.curve != 0.0 {
            for p in sorted.iter_mut() {
                let dt = (p.t - last) as f64;
                p.y = p.y.saturating_add((adjust.curve * dt * dt).round() as i64);
            }
        }
        for i in 1..sorted.len() {
            let mut j = i;
            while j > 0 && sorted[j - 1].t > sorted[j].t {
                sorted.swap(j - 1, j);
                j -= 1;
            }
        }
        Side::of(sorted, last, hull, unit)
    }

    /// The side of `points`, sorted by time, with times relative to `last`; its hull is
    /// built in `hull`. Each sample weighs its exchanges times `unit` (one over the
    /// exchanges in a full block). `None` if there are none.
    fn of(points: &[Point], last: i64, hull: &'a mut Vec<Point>, unit: f64) -> Option<Side<'a>> {
        if points.is_empty() {
            return None;
        }
        let (mut n, mut sum_t, mut sum_y) = (0.0, 0.0, 0.0);
        for p in points {
            let w = f64::from(p.n.max(1)) * unit;
            n += w;
            sum_t += w * (p.t - last) as f64;
            sum_y += w * p.y as f64;
        }
        lower_hull(points.iter().copied(), hull);
        Some(Side {
            hull,
            last,
            count: points.len(),
            n,
            sum_t,
            sum_y,
        })
    }

    /// The slope of this side alone: the hull's edge over the samples' mean time, where
    /// the likelihood of exponential delays above a line peaks. `None` for fewer than two
    /// hull vertices.
    fn own_slope(&self) -> Option<f64> {
        let h = self.hull;
        if h.len() < 2 {
            return None;
        }
        let mean = self.last as f64 + self.sum_t / self.n;
        let k = h
            .partition_point(|p| (p.t as f64) <= mean)
            .clamp(1, h.len() - 1);
        let (a, b) = (h[k - 1], h[k]);
        Some((b.y - a.y) as f64 / (b.t - a.t) as f64)
    }

    /// The hull vertex where the lowest line of `slope` under the samples touches them.
    fn contact(&self, slope: f64) -> Point {
        let h = self.hull;
        // Edge slopes rise left to right; the contact is the first vertex whose right edge
        // is at least as steep as `slope`.
        let (mut lo, mut hi) = (0usize, h.len() - 1);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (a, b) = (h[mid], h[mid + 1]);
            let edge = (b.y - a.y) as f64 / (b.t - a.t) as f64;
            if edge < slope {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        h[lo]
    }

    /// The highest line of `slope` under the samples, and the mean residual above it of a
    /// full block's best sample (a sample that is the best of more exchanges lies nearer
    /// the line by as much: each residual counts times its weight).
    fn line(&self, slope: f64) -> (Line, f64) {
        let c = self.contact(slope);
        let line = Line {
            at: c.t,
            value: c.y as f64,
            slope,
        };
        let offset = (c.t - self.last) as f64;
        let residual = self.sum_y - self.n * line.value - slope * (self.sum_t - self.n * offset);
        (line, (residual / self.count as f64).max(0.0))
    }
}

impl ClockEstimator for EnvelopeEstimator {
    fn name(&self) -> &'static str {
        "lockstep"
    }

    fn reset(&mut self) {
        *self = EnvelopeEstimator::new(self.config);
    }

    fn poll_burst_request(&mut self) -> bool {
        core::mem::take(&mut self.burst_wanted)
    }

    fn handle_exchange(&mut self, ex: &Exchange) {
        self.stats.exchanges += 1;

        match self.leader {
            Some(l) if l == ex.leader => {}
            Some(_) => {
                self.stats.leader_changes += 1;
                self.leader = Some(ex.leader);
                self.restart();
                self.reason = EpochReason::NewLeader;
            }
            None => self.leader = Some(ex.leader),
        }
        let (t0, z0) = *self
            .origin
            .get_or_insert((ex.local_time().as_nanos(), ex.offset().as_nanos()));
        let fwd = Point {
            t: ex.t2.as_nanos().saturating_sub(t0),
            y: z0.saturating_sub(ex.forward().as_nanos()),
            n: 1,
        };
        let rev = Point {
            t: ex.t3.as_nanos().saturating_sub(t0),
            y: ex.reverse().as_nanos().saturating_sub(z0),
            n: 1,
        };
        // (A window kept short by a quiet path, 30 s on a LAN, is not young once it spans
        // that: more samples would gain it nothing. One kept short by a moving frequency on
        // a noisy path stays young, and its bursts make up for the samples it drops.)
        let young = self.fwd.front().is_none_or(|p| {
            let grown = self.noise_window - self.config.block_span.as_nanos();
            fwd.t - p.t < YOUNG_SPAN.as_nanos().min(grown)
        });
        // (Not the asymmetry a one-way change may have brought, nor a change being
        // examined or joined: more samples do not tell those, and a change asks for its own
        // burst.)
        let short = self.fit.is_some_and(|f| {
            f.uncertainty + f.bend + self.structure > self.config.burst_above.as_nanos() as f64
        });
        let due = self
            .last_burst
            .is_none_or(|t| fwd.t - t >= YOUNG_BURST_EVERY.as_nanos());
        if (young || short) && due {
            // A young window converges fast whatever the leader's schedule: its first
            // exchange asks for a burst, and so does it again while the window is young (the
            // leader grants one so often on average), or while its estimate is short of what
            // lockstep aims for.
            self.last_burst = Some(fwd.t);
            self.want_burst();
        }
        let rate = self.fit.map_or(0.0, |f| f.rate());
        if self.block.n == 0 {
            self.block.start = fwd.t;
        }
        Self::keep_best(&mut self.block.fwd, fwd, -rate);
        Self::keep_best(&mut self.block.rev, rev, rate);
        // (After the sample is in its block: if the watch finds it false, it goes from
        // there too.)
        self.watch(fwd, rev);
        self.block.n += 1;
        self.since_refit += 1;
        let full = self.block.n >= self.config.block_samples
            || fwd.t.saturating_sub(self.block.start) >= self.config.block_span.as_nanos();
        if full {
            self.close_block();
            // A fresh window refits at every block: by count (the first seconds need every
            // sample) and by span (a burst fills the window in a second or two, and the rate
            // of so short a span is rough: carried forward between sparse refits it would
            // drift the offset away).
            let fresh = self
                .fwd
                .front()
                .is_none_or(|p| fwd.t - p.t < FRESH_SPAN.as_nanos());
            if self.fwd.len() < self.config.warm_samples
                || fresh
                || self.since_refit >= self.config.refit_every
            {
                self.refit(false);
            }
        } else if self.fwd.len() < 3 {
            self.refit(true);
        }
    }

    fn estimate(&self) -> Option<ClockEstimate> {
        let fit = self.fit?;
        let (t0, z0) = self.origin?;
        let anchor_local = LocalInstant::from_nanos(t0.saturating_add(fit.at));
        let offset = Nanos(z0) + Nanos(fit.offset(fit.at).round() as i64);
        // Honest about what it cannot know: while a change is examined the offset may have
        // moved by what the samples since suggest, and a one-way path change may have
        // brought an asymmetry that moved the two-way offset away from the truth.
        let examined = self.exam.map_or(0.0, |x| x.possible_move());
        // A change just joined: its levels are still being learnt, and their error tilts the
        // envelopes.
        let joining = match self.junction {
            Some(j) if self.junction_is_young() => j.sd[0] + j.sd[1],
            _ => 0.0,
        };
        // (The asymmetry as far as the one-way moves were measured, and their error: on a
        // LAN a 1 ms move measured 999 µs left the 500 µs it brought covered half the time.)
        let (live, live_sd) = self.live_asymmetry();
        let asymmetry = (self.asymmetry + live).abs() + self.asymmetry_sd + live_sd;
        let uncertainty =
            fit.uncertainty + fit.bend + self.structure + examined + joining + asymmetry;
        // (Nor while the window is too long for a bending clock relation.)
        let settled = self.exam.is_none()
            && !self.junction_is_young()
            && !self.too_long
            && self.fwd.len() >= STEP_MIN_SAMPLES
            && self.rev.len() >= STEP_MIN_SAMPLES;
        Some(ClockEstimate {
            anchor_local,
            anchor_leader: LeaderInstant::from_nanos(anchor_local.as_nanos()) + offset,
            rate_ppm: fit.rate() * 1e6,
            uncertainty: Nanos(uncertainty.round() as i64),
            leader: self.leader?,
            epoch: self.epoch,
            reason: self.reason,
            settled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples of `y = a + slope·t` plus exponential delay of mean `mean` (xorshift noise),
    /// `n` of them 10 ms apart; every 50th has no delay at all.
    fn ring(a: f64, slope: f64, mean: f64, n: usize, seed: u64) -> Ring<Point> {
        let mut r = Ring::new(n);
        let mut x = seed;
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let delay = if i % 50 == 0 { 0.0 } else { -mean * u.ln() };
            let t = i as i64 * 10_000_000;
            r.push(Point {
                t,
                y: (a + slope * t as f64 + delay).round() as i64,
                n: 4,
            });
        }
        r
    }

    fn sides<'a>(
        f: &Ring<Point>,
        r: &Ring<Point>,
        scratch: &mut Vec<Point>,
        hf: &'a mut Vec<Point>,
        hr: &'a mut Vec<Point>,
    ) -> (Side<'a>, Side<'a>) {
        let last = f.back().unwrap().t;
        let fwd = Side::build(f, None, last, Adjust::NONE, 0.25, scratch, hf).unwrap();
        let rev = Side::build(r, None, last, Adjust::NONE, 0.25, scratch, hr).unwrap();
        (fwd, rev)
    }

    #[test]
    fn both_directions_share_one_rate_and_give_the_offset() {
        // Offset 40 µs rising at 50 ppm; 1.5 ms base delay each way, 2 ms mean queuing.
        let rate = 50e-6;
        let (offset, base) = (40_000.0, 1_500_000.0);
        let f = ring(base - offset, -rate, 2e6, 1000, 1);
        let r = ring(base + offset, rate, 2e6, 1000, 2);
        let (mut s, mut hf, mut hr) = (Vec::new(), Vec::new(), Vec::new());
        let (fwd, rev) = sides(&f, &r, &mut s, &mut hf, &mut hr);
        let w = 1.0 / 2e6;
        let post = posterior(&fwd, w, &rev, w).unwrap();
        let (post_rate, post_offset) = (post.rate, post.offset);
        assert!(
            (post_rate - rate).abs() < 2e-6,
            "posterior rate {post_rate}"
        );
        let last = f.back().unwrap().t as f64;
        let truth = offset + rate * last;
        assert!(
            (post_offset - truth).abs() < 10_000.0,
            "offset {post_offset} vs {truth}"
        );
        // Noise-free, the highest lines are the true ones and the offset is exact.
        let f = ring(base - offset, -rate, 0.0, 200, 3);
        let r = ring(base + offset, rate, 0.0, 200, 4);
        let (fwd, rev) = sides(&f, &r, &mut s, &mut hf, &mut hr);
        // (A tiny mean residual makes the posterior as narrow as the data.)
        let post = posterior(&fwd, 1.0, &rev, 1.0).unwrap();
        assert!((post.rate - rate).abs() < 1e-8, "exact rate {}", post.rate);
        let truth = offset + rate * f.back().unwrap().t as f64;
        assert!(
            (post.offset - truth).abs() < 2.0,
            "exact offset {}",
            post.offset
        );
        assert!(post.offset_sd < 2.0, "sd {}", post.offset_sd);
    }

    #[test]
    fn one_sample_a_direction_has_no_posterior() {
        let f = ring(0.0, 0.0, 0.0, 1, 5);
        let r = ring(10.0, 0.0, 0.0, 1, 6);
        let (mut s, mut hf, mut hr) = (Vec::new(), Vec::new(), Vec::new());
        let (fwd, rev) = sides(&f, &r, &mut s, &mut hf, &mut hr);
        assert!(posterior(&fwd, 1.0, &rev, 1.0).is_none());
    }

    #[test]
    fn exponential_moments_match_their_integrals() {
        for x in [0.0, 1e-5, 1e-3, 0.5, 3.0, 40.0] {
            // Midpoint rule with many steps.
            let steps = 20_000;
            let (mut m0, mut m1, mut m2) = (0.0, 0.0, 0.0);
            for i in 0..steps {
                let u = (i as f64 + 0.5) / steps as f64;
                m0 += (-x * u).exp() / steps as f64;
                m1 += u * (-x * u).exp() / steps as f64;
                m2 += u * u * (-x * u).exp() / steps as f64;
            }
            assert!((phi1(x) - m0).abs() < 1e-6, "phi1({x})");
            assert!((phi2(x) - m1).abs() < 1e-6, "phi2({x})");
            assert!((phi3(x) - m2).abs() < 1e-6, "phi3({x})");
        }
    }
}
