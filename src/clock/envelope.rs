//! lockstep's clock estimator: min-delay envelopes per direction, fitted as lines.
//!
//! Each exchange gives two one-way samples of `leader - local`: the Sync's (`t1 - t2`, the
//! offset minus the outbound delay) and the Delay_Req's (`t4 - t3`, the offset plus the
//! return delay). Queuing only ever adds delay, so the samples with the least delay carry the
//! clock relation; the rest are noise to be discarded, not averaged. Per direction the
//! estimator keeps, for every block of a few exchanges, the sample nearest the envelope, and
//! fits the straight line that lies under all kept samples of the last minute and is highest
//! at a point inside the window (a lower-hull edge, see [`super::hull`]). The two lines give
//! the offset (their midpoint) and the rate (their mean slope). Working per direction matters
//! on Wi-Fi: a sample whose *own* direction was quick is common, one where both were quick
//! is rare.
//!
//! Costs are fixed: the window is a pair of fixed rings, a refit walks them once per block
//! (every 8 exchanges in steady state), and nothing allocates after construction.
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
    /// How far back samples are kept. Longer averages more delay noise away; shorter follows
    /// the crystal's frequency wander more closely.
    pub window: Nanos,
    /// A block closes after this many exchanges...
    pub block_samples: u32,
    /// ...or once it spans this long, whichever comes first.
    pub block_span: Nanos,
    /// Most blocks kept (bounds memory when exchanges come fast).
    pub max_blocks: usize,
    /// Where in the window the envelope lines are fitted, as a fraction of the window's span
    /// back from its newest sample. The envelope is pinned by noisy single samples at its
    /// ends, so the fit is taken inside and extrapolated with the fitted rate.
    pub eval_lag: f64,
    /// Smallest envelope violation that can count towards a leader clock step.
    pub step_threshold: Nanos,
    /// Violations (same sign) among the last [`STEP_HISTORY`] exchanges that confirm a step.
    pub step_confirm: u32,
}

/// How many recent exchanges the step detector looks at.
pub const STEP_HISTORY: u32 = 6;

impl Default for EnvelopeConfig {
    fn default() -> Self {
        EnvelopeConfig {
            window: Nanos::from_secs(60),
            block_samples: 8,
            block_span: Nanos::from_millis(500),
            max_blocks: 512,
            eval_lag: 0.35,
            step_threshold: Nanos::from_micros(20),
            step_confirm: 3,
        }
    }
}

/// Scales the mean envelope residual into an uncertainty; calibrated in the simulator so the
/// reported span covers the true error about 95% of the time (see tests/estimator_scenarios.rs).
const UNCERTAINTY_GAIN: f64 = 2.0;
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
    hull: Vec<Point>,
    /// Bit i set: exchange i back violated the envelope upwards / downwards.
    step_up: u32,
    step_down: u32,
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
            hull: Vec::with_capacity(cap + 1),
            step_up: 0,
            step_down: 0,
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
        self.step_up = 0;
        self.step_down = 0;
    }

    /// Records whether this exchange's samples fall on the impossible side of the fitted
    /// envelopes; returns true when enough recent ones did to call it a leader clock step.
    fn step_detected(&mut self, fwd: Point, rev: Point) -> bool {
        let Some(fit) = self.fit else {
            return false;
        };
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
        let horizon = newest.saturating_sub(self.config.window.as_nanos());
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
        let first = self.fwd.front().or(extra_f).map(|p| p.t);
        let last = extra_f.or(self.fwd.back()).map(|p| p.t);
        let (Some(first), Some(last)) = (first, last) else {
            return;
        };
        let t_eval = last - ((last - first) as f64 * self.config.eval_lag) as i64;
        let rate = self.fit.map_or(0.0, |f| f.rate());

        let Some((fwd, res_f, n_f)) =
            fit_direction(&self.fwd, extra_f, t_eval, -rate, &mut self.hull)
        else {
            return;
        };
        let Some((rev, res_r, n_r)) =
            fit_direction(&self.rev, extra_r, t_eval, rate, &mut self.hull)
        else {
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
        self.fit = Some(Fit {
            at,
            fwd,
            rev,
            uncertainty: uncertainty.max(UNCERTAINTY_FLOOR_NS),
        });
        self.stats.refits += 1;
    }
}

/// Fits one direction's envelope at `t_eval`; returns the line, the mean residual of the
/// kept samples above it and their count.
fn fit_direction(
    ring: &Ring<Point>,
    extra: Option<Point>,
    t_eval: i64,
    fallback_slope: f64,
    hull: &mut Vec<Point>,
) -> Option<(Line, f64, usize)> {
    lower_hull(ring.iter().chain(extra), hull);
    let line = support_at(hull, t_eval, fallback_slope)?;
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
                self.restart();
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
            self.restart();
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
        let full = self.block.n >= self.config.block_samples
            || fwd.t.saturating_sub(self.block.start) >= self.config.block_span.as_nanos();
        if full {
            self.close_block();
            self.refit(false);
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
