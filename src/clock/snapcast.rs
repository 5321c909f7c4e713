//! Baseline: Snapcast's clock filter, the best-known open multi-room player's.

use super::naive::constant_offset;
use super::{ClockEstimate, ClockEstimator, Exchange};
use crate::time::{LocalInstant, Nanos};

/// Offsets the median is taken over.
pub(super) const WINDOW: usize = 200;
/// Exchanges taken back to back at start.
pub(super) const FAST_START: u32 = 50;
/// Cadence after the fast start.
pub(super) const INTERVAL: Nanos = Nanos::from_secs(1);
/// The window is forgotten after this long without an exchange.
pub(super) const STALE_AFTER: Nanos = Nanos::from_secs(60);

/// Snapcast's method as a baseline: the median of the last 200 per-exchange offsets, with 50
/// exchanges back to back at start and one a second afterwards, and no rate estimate, so a
/// drifting crystal is followed only as fast as the median moves.
#[derive(Clone, Debug)]
pub struct SnapcastEstimator {
    offsets: super::ring::Ring<i64>,
    scratch: Vec<i64>,
    taken: u32,
    last: Option<LocalInstant>,
    current: Option<ClockEstimate>,
}

impl Default for SnapcastEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapcastEstimator {
    /// A new baseline with an empty window.
    pub fn new() -> Self {
        SnapcastEstimator {
            offsets: super::ring::Ring::new(WINDOW),
            scratch: Vec::with_capacity(WINDOW),
            taken: 0,
            last: None,
            current: None,
        }
    }
}

impl ClockEstimator for SnapcastEstimator {
    fn name(&self) -> &'static str {
        "snapcast"
    }

    fn reset(&mut self) {
        *self = Self::new();
    }

    fn wants(&self, at: LocalInstant) -> bool {
        match self.last {
            _ if self.taken < FAST_START => true,
            Some(last) => at - last >= INTERVAL,
            None => true,
        }
    }

    fn handle_exchange(&mut self, ex: &Exchange) {
        let now = ex.completed_at();
        if self.last.is_some_and(|t| now - t > STALE_AFTER) {
            self.offsets.clear();
        }
        self.last = Some(now);
        self.taken = self.taken.saturating_add(1);
        self.offsets.push(ex.offset().as_nanos());
        self.scratch.clear();
        self.scratch.extend(self.offsets.iter());
        let mid = self.scratch.len() / 2;
        let (_, median, _) = self.scratch.select_nth_unstable(mid);
        let median = Nanos(*median);
        let spread = Nanos(ex.round_trip().as_nanos() / 2);
        self.current = Some(constant_offset(ex, median, spread, 0));
    }

    fn estimate(&self) -> Option<ClockEstimate> {
        self.current
    }
}
