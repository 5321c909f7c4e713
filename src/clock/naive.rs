//! Baseline: every exchange's offset taken as it is.

use super::{ClockEstimate, ClockEstimator, Exchange};

/// The simplest estimator: the IEEE 1588 offset of the latest exchange, no filtering and no
/// rate. Kept as a baseline: its error is the raw delay noise of the path.
#[derive(Clone, Debug, Default)]
pub struct NaiveEstimator {
    last: Option<ClockEstimate>,
}

impl NaiveEstimator {
    /// A new baseline.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A rate-less estimate that says `leader = local + offset` from `ex` on.
pub(crate) fn constant_offset(
    ex: &Exchange,
    offset: crate::time::Nanos,
    uncertainty: crate::time::Nanos,
    epoch: u32,
) -> ClockEstimate {
    let at = ex.local_time();
    ClockEstimate {
        anchor_local: at,
        anchor_leader: crate::time::LeaderInstant::from_nanos(at.as_nanos()) + offset,
        rate_ppm: 0.0,
        uncertainty: uncertainty.abs(),
        leader: ex.leader,
        epoch,
        reason: super::EpochReason::Start,
        settled: true,
    }
}

impl ClockEstimator for NaiveEstimator {
    fn name(&self) -> &'static str {
        "naive"
    }

    fn reset(&mut self) {
        *self = Self::new();
    }

    fn handle_exchange(&mut self, ex: &Exchange) {
        let half_rtt = crate::time::Nanos(ex.round_trip().as_nanos() / 2);
        self.last = Some(constant_offset(ex, ex.offset(), half_rtt, 0));
    }

    fn estimate(&self) -> Option<ClockEstimate> {
        self.last
    }
}
