//! lockstep's clock estimator: min-delay envelopes per direction, fitted as lines.
//!
//! Each exchange gives two one-way samples of `leader - local`: the Sync's (`t1 - t2`, the
//! offset minus the outbound delay) and the Delay_Req's (`t4 - t3`, the offset plus the
//! return delay). Queuing only ever adds delay, so the samples with the least delay carry the
//! clock relation; the rest are noise to be discarded, not averaged. Per direction the
//! estimator keeps, for every block of a few exchanges, the sample nearest the envelope, and
//! builds the lower convex hull of the kept samples of the window (see [`super::hull`]). Each
//! direction's line runs through the hull's values at two instants well inside the window (a
//! long baseline for the rate; the hull's ends are pinned to single noisy samples) and is
//! extrapolated to now. The two lines give the offset (their midpoint) and the rate (their
//! mean slope). Working per direction matters on Wi-Fi: a sample whose *own* direction was
//! quick is common, one where both were quick is rare. The window adapts to the path's noise:
//! 30 s on a quiet LAN (the crystal's wander dominates), up to 120 s on Wi-Fi.
//!
//! Costs are fixed: the window is a pair of fixed rings, a refit walks them a few times once
//! a second in steady state (every block while the window is young), and nothing allocates
//! after construction.
//!
//! A leader clock step shows as samples on the impossible side of an envelope (a delay
//! shorter than the path's base delay); a few of those in a short run start a new epoch.
//! A different leader port starts a new epoch at once.

use super::hull::{Line, Point, lower_hull, support_at};
use super::ring::Ring;
use super::{ClockEstimate, ClockEstimator, Exchange};
use crate::ptp::PortIdentity;
use crate::time::{LeaderInstant, LocalInstant, Nanos};

/// Tuning of [`EnvelopeEstimator`]. The defaults are what the sync report measures.
#[derive(Clone, Copy, Debug, PartialEq)]
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
    /// Where the envelope is read, as a fraction of the window's span in from each end. The
    /// envelope is pinned to single (noisy) samples at its ends, so each line is drawn
    /// through the envelope's values at two points inside the window — a long baseline for
    /// the rate — and extrapolated to the newest sample.
    pub fit_margin: f64,
    /// ...and each envelope point has at least this many kept samples beyond it, so it never
    /// sits where samples are still sparse (just after a burst ends).
    pub fit_support: usize,
    /// Refit after this many exchanges...
    pub refit_every: u32,
    /// ...except while the window holds fewer samples than this: then every block refits,
    /// as the first seconds need every sample.
    pub warm_samples: usize,
    /// Smallest envelope violation that can count towards a leader clock step.
    pub step_threshold: Nanos,
    /// Violations (same sign) among the last [`STEP_HISTORY`] exchanges that confirm a step.
    pub step_confirm: u32,
}

/// How many recent exchanges the step detector looks at.
pub const STEP_HISTORY: u32 = 6;
/// How long a new epoch leans on the rate carried over a leader clock step.
pub const PRIOR_RATE_SPAN: Nanos = Nanos::from_secs(20);
/// Kept samples per direction before steps are looked for.
const STEP_MIN_SAMPLES: usize = 32;

impl Default for EnvelopeConfig {
    fn default() -> Self {
        EnvelopeConfig {
            window: Nanos::from_secs(120),
            min_window: Nanos::from_secs(30),
            quiet_residual: Nanos::from_micros(50),
            block_samples: 4,
            block_span: Nanos::from_millis(500),
            max_blocks: 1024,
            fit_margin: 0.35,
            fit_support: 16,
            refit_every: 16,
            warm_samples: 128,
            step_threshold: Nanos::from_micros(20),
            step_confirm: 3,
        }
    }
}

/// Scales the mean envelope residual into an uncertainty; calibrated in the simulator so the
/// reported span covers the true error about 95% of the time (see tests/estimator_scenarios.rs).
const UNCERTAINTY_GAIN: f64 = 4.0;
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
    uncertainty: f64,
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
    /// Scratch: the window's samples in time order, and their hull.
    sorted: Vec<Point>,
    hull: Vec<Point>,
    /// Bit i set: exchange i back violated the envelope upwards / downwards.
    step_up: u32,
    step_down: u32,
    /// Exchanges since the last refit.
    since_refit: u32,
    /// The window in use, in ns (adapted to the path's noise at each refit).
    window: i64,
    /// The rate carried over a leader clock step, used until the new window spans
    /// [`PRIOR_RATE_SPAN`].
    prior_rate: Option<f64>,
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
            hull: Vec::with_capacity(cap + 1),
            step_up: 0,
            step_down: 0,
            since_refit: 0,
            window: config.window.as_nanos(),
            prior_rate: None,
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
    /// `keep_rate`: a leader clock step moves the offset, not the crystals' rates, so the
    /// rate learnt so far carries the new epoch until its own window is long enough.
    fn restart(&mut self, keep_rate: bool) {
        self.prior_rate = if keep_rate {
            self.fit.map(|f| f.rate())
        } else {
            None
        };
        self.epoch = self.epoch.wrapping_add(1);
        self.origin = None;
        self.fwd.clear();
        self.rev.clear();
        self.block = Block::default();
        self.fit = None;
        self.window = self.config.window.as_nanos();
        self.step_up = 0;
        self.step_down = 0;
    }

    /// Records whether this exchange's samples fall on the impossible side of the fitted
    /// envelopes; returns true when enough recent ones did to call it a leader clock step.
    fn step_detected(&mut self, fwd: Point, rev: Point) -> bool {
        let Some(fit) = self.fit else {
            return false;
        };
        if self.fwd.len() < STEP_MIN_SAMPLES {
            // A young fit extrapolates a rough rate: its misses are not steps.
            return false;
        }
        let mask = (1u32 << STEP_HISTORY) - 1;
        let tol = (self.config.step_threshold.as_nanos() as f64).max(4.0 * fit.uncertainty);
        // A sample below a lower envelope means a delay shorter than the base delay: the
        // offset moved. Forward below: the leader jumped ahead; reverse below: back.
        let up = fit.fwd.eval(fwd.t) - fwd.y as f64 > tol;
        let down = fit.rev.eval(rev.t) - rev.y as f64 > tol;
        self.step_up = ((self.step_up << 1) | up as u32) & mask;
        self.step_down = ((self.step_down << 1) | down as u32) & mask;
        self.step_up.count_ones() >= self.config.step_confirm
            || self.step_down.count_ones() >= self.config.step_confirm
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
        if let Some(p) = self.block.fwd.take() {
            self.fwd.push(p);
        }
        if let Some(p) = self.block.rev.take() {
            self.rev.push(p);
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
        let extra_f = if provisional { self.block.fwd } else { None };
        let extra_r = if provisional { self.block.rev } else { None };
        let Some(last) = self.fwd.iter().chain(extra_f).map(|p| p.t).max() else {
            return;
        };
        let (margin, support) = (self.config.fit_margin, self.config.fit_support);
        let rate = self.fit.map_or(0.0, |f| f.rate());
        let fixed = self.prior_rate.filter(|_| {
            let first = self.fwd.iter().chain(extra_f).map(|p| p.t).min();
            first.is_none_or(|f| last - f < PRIOR_RATE_SPAN.as_nanos())
        });
        let (rate, margin) = match fixed {
            // A slope known from before the step: no chord, just the highest line of that
            // slope under the samples (margin 0 puts both chord points on the newest).
            Some(r) => (r, -1.0),
            None => (rate, margin),
        };

        let Some((fwd, res_f, n_f)) = fit_direction(
            &self.fwd,
            extra_f,
            (margin, support),
            -rate,
            &mut self.sorted,
            &mut self.hull,
        ) else {
            return;
        };
        let Some((rev, res_r, n_r)) = fit_direction(
            &self.rev,
            extra_r,
            (margin, support),
            rate,
            &mut self.sorted,
            &mut self.hull,
        ) else {
            return;
        };
        let at = last;
        let uncertainty = if n_f < 2 || n_r < 2 {
            // One sample per direction: all we know is that the offset lies within half the
            // round trip of the midpoint.
            ((fwd.eval(at) + rev.eval(at)) * 0.5).abs()
        } else {
            let n = (n_f.min(n_r)) as f64;
            UNCERTAINTY_GAIN * (res_f * res_f + res_r * res_r).sqrt() / n
        };
        self.since_refit = 0;
        if n_f >= 2 && n_r >= 2 {
            // Quiet paths gain little from a long window and lose to wander; noisy ones need it.
            let noise = 0.5 * (res_f + res_r) / self.config.quiet_residual.as_nanos().max(1) as f64;
            let min = self.config.min_window.as_nanos() as f64;
            self.window =
                (min * noise.max(1.0).sqrt()).min(self.config.window.as_nanos() as f64) as i64;
        }
        self.fit = Some(Fit {
            at,
            fwd,
            rev,
            uncertainty: uncertainty.max(UNCERTAINTY_FLOOR_NS),
        });
        self.stats.refits += 1;
    }
}

/// Fits one direction's envelope: the line through the envelope's values at two instants
/// `margin` (a fraction of the span) in from either end, each with at least `support`
/// samples beyond it so that neither lands where samples are still sparse. Returns the
/// line, the mean residual of the kept samples above it and their count.
fn fit_direction(
    ring: &Ring<Point>,
    extra: Option<Point>,
    (margin, support): (f64, usize),
    fallback_slope: f64,
    sorted: &mut Vec<Point>,
    hull: &mut Vec<Point>,
) -> Option<(Line, f64, usize)> {
    // Exchanges complete in the order their replies arrive, which is not quite the order of
    // their timestamps: sort (insertion sort, linear on nearly sorted input).
    sorted.clear();
    sorted.extend(ring.iter().chain(extra));
    for i in 1..sorted.len() {
        let mut j = i;
        while j > 0 && sorted[j - 1].t > sorted[j].t {
            sorted.swap(j - 1, j);
            j -= 1;
        }
    }
    let n = sorted.len();
    let (first, last) = (sorted.first()?.t, sorted[n - 1].t);
    if margin < 0.0 {
        // Slope given: the highest line of that slope lying under every sample.
        let value = sorted
            .iter()
            .map(|p| p.y as f64 - fallback_slope * (p.t - last) as f64)
            .fold(f64::INFINITY, f64::min);
        let line = Line {
            at: last,
            value,
            slope: fallback_slope,
        };
        let sum: f64 = sorted.iter().map(|p| p.y as f64 - line.eval(p.t)).sum();
        return Some((line, sum / n as f64, n));
    }
    let edge = ((last - first) as f64 * margin) as i64;
    let k = support.min(n.saturating_sub(1) / 2);
    let mut t_a = (first + edge).max(sorted[k].t);
    let mut t_b = (last - edge).min(sorted[n - 1 - k].t);
    if t_a >= t_b {
        // Too few samples for both rules: fall back to counting alone.
        let k = ((n as f64 * margin) as usize).min(n.saturating_sub(1) / 2);
        (t_a, t_b) = (sorted[k].t, sorted[n - 1 - k].t);
    }
    lower_hull(sorted.iter().copied(), hull);
    let at_b = support_at(hull, t_b, fallback_slope)?;
    let line = if t_b > t_a && hull.len() > 1 {
        let a = support_at(hull, t_a, fallback_slope)?.eval(t_a);
        let b = at_b.eval(t_b);
        Line {
            at: t_b,
            value: b,
            slope: (b - a) / (t_b - t_a) as f64,
        }
    } else {
        at_b
    };
    let mut sum = 0.0;
    let mut n = 0usize;
    for p in ring.iter().chain(extra) {
        sum += p.y as f64 - line.eval(p.t);
        n += 1;
    }
    Some((line, sum / n.max(1) as f64, n))
}

impl ClockEstimator for EnvelopeEstimator {
    fn name(&self) -> &'static str {
        "lockstep"
    }

    fn handle_exchange(&mut self, ex: &Exchange) {
        self.stats.exchanges += 1;
        match self.leader {
            Some(l) if l == ex.leader => {}
            Some(_) => {
                self.stats.leader_changes += 1;
                self.leader = Some(ex.leader);
                self.restart(false);
            }
            None => self.leader = Some(ex.leader),
        }
        let (t0, z0) = *self
            .origin
            .get_or_insert((ex.local_time().as_nanos(), ex.offset().as_nanos()));
        let mut fwd = Point {
            t: ex.t2.as_nanos().saturating_sub(t0),
            y: z0.saturating_sub(ex.forward().as_nanos()),
        };
        let mut rev = Point {
            t: ex.t3.as_nanos().saturating_sub(t0),
            y: ex.reverse().as_nanos().saturating_sub(z0),
        };
        if self.step_detected(fwd, rev) {
            self.stats.steps += 1;
            self.restart(true);
            let (t0, z0) = (ex.local_time().as_nanos(), ex.offset().as_nanos());
            self.origin = Some((t0, z0));
            fwd = Point {
                t: ex.t2.as_nanos().saturating_sub(t0),
                y: z0.saturating_sub(ex.forward().as_nanos()),
            };
            rev = Point {
                t: ex.t3.as_nanos().saturating_sub(t0),
                y: ex.reverse().as_nanos().saturating_sub(z0),
            };
        }

        let rate = self.fit.map_or(0.0, |f| f.rate());
        if self.block.n == 0 {
            self.block.start = fwd.t;
        }
        Self::keep_best(&mut self.block.fwd, fwd, -rate);
        Self::keep_best(&mut self.block.rev, rev, rate);
        self.block.n += 1;
        self.since_refit += 1;
        let full = self.block.n >= self.config.block_samples
            || fwd.t.saturating_sub(self.block.start) >= self.config.block_span.as_nanos();
        if full {
            self.close_block();
            if self.fwd.len() < self.config.warm_samples
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
        Some(ClockEstimate {
            anchor_local,
            anchor_leader: LeaderInstant::from_nanos(anchor_local.as_nanos()) + offset,
            rate_ppm: fit.rate() * 1e6,
            uncertainty: Nanos(fit.uncertainty.round() as i64),
            leader: self.leader?,
            epoch: self.epoch,
        })
    }
}
