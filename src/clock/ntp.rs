//! Baseline: the RFC 5905 (NTPv4) clock filter.

use super::naive::constant_offset;
use super::{ClockEstimate, ClockEstimator, Exchange};
use crate::time::{LocalInstant, Nanos};

/// Stages of the clock filter's shift register (RFC 5905 `NSTAGE`).
const NSTAGE: usize = 8;
/// Frequency tolerance, 15 ppm (RFC 5905 `PHI`): how fast a sample's dispersion grows.
const PHI: f64 = 15e-6;

#[derive(Clone, Copy, Debug, Default)]
struct Stage {
    offset: Nanos,
    delay: Nanos,
    /// Dispersion in ns, aged by PHI per nanosecond of local time.
    disp: f64,
    t: LocalInstant,
    valid: bool,
}

/// The NTPv4 clock filter (RFC 5905 §10 and appendix A.5.2) used as a baseline: an
/// eight-stage shift register of (offset, delay, dispersion) from which the sample with the
/// least delay is chosen, and used only if it is newer than the last one used ("use a sample
/// only once and never an older one"). No rate is estimated: NTP's clock discipline, which
/// would steer a clock's frequency, is not part of the filter.
#[derive(Clone, Debug, Default)]
pub struct NtpEstimator {
    stages: [Stage; NSTAGE],
    last_used: Option<LocalInstant>,
    current: Option<ClockEstimate>,
}

impl NtpEstimator {
    /// A new baseline with an empty register.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ClockEstimator for NtpEstimator {
    fn name(&self) -> &'static str {
        "ntp"
    }

    fn reset(&mut self) {
        *self = Self::new();
    }

    fn handle_exchange(&mut self, ex: &Exchange) {
        let now = ex.local_time();
        let age = (now - self.stages[0].t).as_nanos().max(0) as f64;
        for i in (1..NSTAGE).rev() {
            self.stages[i] = self.stages[i - 1];
            self.stages[i].disp += PHI * age;
        }
        self.stages[0] = Stage {
            offset: ex.offset(),
            delay: ex.round_trip().abs(),
            disp: 0.0,
            t: now,
            valid: true,
        };
        let best = self
            .stages
            .iter()
            .filter(|s| s.valid)
            .min_by_key(|s| s.delay)
            .copied()
            .unwrap_or(self.stages[0]);
        if self.last_used.is_some_and(|t| best.t <= t) {
            return;
        }
        self.last_used = Some(best.t);
        // The root distance of the chosen sample: half its delay plus its dispersion.
        let distance = Nanos(best.delay.as_nanos() / 2) + Nanos(best.disp as i64);
        let mut est = constant_offset(ex, best.offset, distance, 0);
        est.anchor_local = best.t;
        est.anchor_leader = crate::time::LeaderInstant::from_nanos(best.t.as_nanos()) + best.offset;
        self.current = Some(est);
    }

    fn estimate(&self) -> Option<ClockEstimate> {
        self.current
    }
}
