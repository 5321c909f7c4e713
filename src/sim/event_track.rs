//! Per-event figures of the sync experiment: how an estimator rode each event out.
//!
//! Every clock event of a scenario opens a window that lasts until the next one (or the end
//! of the run). Within it the tracker records, from the ground truth, the worst error, the
//! worst in the first 5 s, when the error settled on the level it ends the window at, and
//! whether and when the estimate's epoch changed and why. It also checks the estimator's
//! honesty over the whole run: the longest stretch with the error beyond four times the
//! stated uncertainty, epochs that changed although the timeline did not move, and moves of
//! the timeline beyond the uncertainty that kept the epoch.

use std::collections::VecDeque;

use crate::clock::EpochReason;

/// How long after an event its settling is looked for.
const HEAD_S: f64 = 60.0;
/// The level an event window ends at: the median error over its last seconds.
const TAIL_S: f64 = 10.0;
/// "Settled": within this of the window's final level, µs.
const SETTLE_US: f64 = 20.0;

/// How an estimator rode out one event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventResult {
    /// The event, as [`crate::sim::events::Event::label`] describes it.
    pub label: String,
    /// When it happened, s.
    pub at_s: f64,
    /// When its window ended (the next event, or the end of the run), s.
    pub until_s: f64,
    /// Largest |offset error| in the window, µs.
    pub max_err_us: f64,
    /// Largest |offset error| in the first 5 s of the window, µs.
    pub max_err_5s_us: f64,
    /// Largest |rate error| in the window from 10 s after the event on, ppm (NaN if the
    /// window ends sooner): how well the rate carried across the event.
    pub max_rate_err_ppm: f64,
    /// The error the window ends at (median of its last 10 s), µs: zero for events that do
    /// not move the truth away from what a two-way method sees, half the change for a
    /// one-way path change.
    pub final_level_us: f64,
    /// Seconds after the event from which the error stays within ±20 µs of
    /// `final_level_us`; `None` if it does not within 60 s (or before the window ends).
    pub settle_s: Option<f64>,
    /// Epoch changes in the window.
    pub epoch_changes: u32,
    /// Seconds from the event to the first epoch change, if any.
    pub first_epoch_s: Option<f64>,
    /// The reason the estimate gave for its last epoch change in the window.
    pub reason: Option<EpochReason>,
}

struct Window {
    result: EventResult,
    head: Vec<(f32, f32)>,
    tail: VecDeque<(f64, f64)>,
}

/// One sample as the tracker sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub t: f64,
    pub err_ns: f64,
    pub uncertainty_ns: f64,
    pub epoch: u32,
    pub reason: EpochReason,
    /// The jump of the mapping since the previous sample, evaluated at this sample's local
    /// time (new estimate minus previous one), ns.
    pub jump_ns: f64,
    /// The previous sample's uncertainty, ns.
    pub prev_uncertainty_ns: f64,
    /// Whether the estimate said it was settled.
    pub settled: bool,
    /// The estimate's rate minus the true rate, ppm.
    pub rate_err_ppm: f64,
}

/// Honesty of an estimator over a whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Honesty {
    /// Longest stretch with |error| beyond four times the stated uncertainty, s.
    pub beyond_4x_max_s: f64,
    /// Epoch changes whose jump of the timeline was within the uncertainty of the last
    /// settled estimate before it.
    pub needless_epochs: u32,
    /// Jumps of the timeline beyond the uncertainty between two samples, with the epoch
    /// unchanged.
    pub silent_jumps: u32,
    /// Epoch changes in all.
    pub epoch_changes: u32,
}

pub(crate) struct EventTracker {
    /// Pending windows (start, end, label), in time order.
    pending: VecDeque<(f64, f64, String)>,
    open: Option<Window>,
    done: Vec<EventResult>,
    last_epoch: Option<u32>,
    beyond_since: Option<f64>,
    /// The uncertainty of the last settled estimate, ns.
    settled_uncertainty_ns: f64,
    honesty: Honesty,
}

impl EventTracker {
    /// A tracker for event windows `(start, end, label)` in time order.
    pub(super) fn new(windows: Vec<(f64, f64, String)>) -> Self {
        EventTracker {
            pending: windows.into(),
            open: None,
            done: Vec::new(),
            last_epoch: None,
            beyond_since: None,
            settled_uncertainty_ns: f64::INFINITY,
            honesty: Honesty::default(),
        }
    }

    /// Whether `t` lies within `secs` after the start of any event window.
    pub(super) fn near_event(windows: &[(f64, f64, String)], t: f64, secs: f64) -> bool {
        windows.iter().any(|(a, _, _)| t >= *a && t < a + secs)
    }

    /// A time without an estimate.
    pub(super) fn none(&mut self, t: f64) {
        self.roll(t);
    }

    pub(super) fn sample(&mut self, s: Sample) {
        self.roll(s.t);
        let a = s.err_ns.abs();
        // Honesty.
        if a > 4.0 * s.uncertainty_ns {
            self.beyond_since.get_or_insert(s.t);
        } else if let Some(from) = self.beyond_since.take() {
            self.honesty.beyond_4x_max_s = self.honesty.beyond_4x_max_s.max(s.t - from);
        }
        let bound = s.uncertainty_ns.max(s.prev_uncertainty_ns);
        let changed = self.last_epoch.is_some_and(|e| e != s.epoch);
        if changed {
            self.honesty.epoch_changes += 1;
            if s.jump_ns.abs() <= self.settled_uncertainty_ns {
                self.honesty.needless_epochs += 1;
            }
        } else if self.last_epoch.is_some() && s.jump_ns.abs() > bound {
            self.honesty.silent_jumps += 1;
        }
        self.last_epoch = Some(s.epoch);
        if s.settled {
            self.settled_uncertainty_ns = s.uncertainty_ns;
        }
        // The open window.
        if let Some(w) = &mut self.open {
            let r = &mut w.result;
            let since = s.t - r.at_s;
            r.max_err_us = r.max_err_us.max(a / 1e3);
            if since < 5.0 {
                r.max_err_5s_us = r.max_err_5s_us.max(a / 1e3);
            }
            if since >= 10.0 {
                r.max_rate_err_ppm = r.max_rate_err_ppm.max(s.rate_err_ppm.abs());
            }
            if changed {
                r.epoch_changes += 1;
                r.first_epoch_s.get_or_insert(since);
                r.reason = Some(s.reason);
            }
            if since < HEAD_S {
                w.head.push((since as f32, (s.err_ns / 1e3) as f32));
            }
            w.tail.push_back((s.t, s.err_ns / 1e3));
            while w.tail.front().is_some_and(|(t, _)| s.t - t > TAIL_S) {
                w.tail.pop_front();
            }
        }
    }

    /// Closes windows that ended by `t` and opens the one that started.
    fn roll(&mut self, t: f64) {
        if self.open.as_ref().is_some_and(|w| t >= w.result.until_s) {
            self.close();
        }
        while self.pending.front().is_some_and(|(a, _, _)| t >= *a) {
            self.close();
            let Some((at_s, until_s, label)) = self.pending.pop_front() else {
                break;
            };
            self.open = Some(Window {
                result: EventResult {
                    label,
                    at_s,
                    until_s,
                    max_err_us: 0.0,
                    max_err_5s_us: 0.0,
                    max_rate_err_ppm: f64::NAN,
                    final_level_us: f64::NAN,
                    settle_s: None,
                    epoch_changes: 0,
                    first_epoch_s: None,
                    reason: None,
                },
                head: Vec::new(),
                tail: VecDeque::new(),
            });
        }
    }

    fn close(&mut self) {
        let Some(mut w) = self.open.take() else {
            return;
        };
        let mut tail: Vec<f64> = w.tail.iter().map(|&(_, e)| e).collect();
        tail.sort_by(f64::total_cmp);
        let level = if tail.is_empty() {
            f64::NAN
        } else {
            tail[tail.len() / 2]
        };
        w.result.final_level_us = level;
        let span = (w.result.until_s - w.result.at_s).min(HEAD_S);
        let last_out = w
            .head
            .iter()
            .rev()
            .find(|&&(_, e)| (e as f64 - level).abs() > SETTLE_US)
            .map(|&(t, _)| t as f64);
        let step = if w.head.len() >= 2 {
            (w.head[1].0 - w.head[0].0) as f64
        } else {
            0.0
        };
        w.result.settle_s = match last_out {
            None => Some(0.0),
            Some(t) if t + step < span - TAIL_S.min(span * 0.5) => Some(t + step),
            Some(_) => None,
        };
        if level.is_nan() {
            w.result.settle_s = None;
        }
        self.done.push(w.result);
    }

    pub(super) fn finish(mut self, end: f64) -> (Vec<EventResult>, Honesty) {
        self.roll(end);
        self.close();
        if let Some(from) = self.beyond_since {
            self.honesty.beyond_4x_max_s = self.honesty.beyond_4x_max_s.max(end - from);
        }
        (self.done, self.honesty)
    }
}
