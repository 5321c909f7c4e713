//! Clock estimation: what the leader's clock reads, seen from a follower.
//!
//! Sans-IO. An estimator is fed completed [`Exchange`]s (the four timestamps of one
//! Sync/Delay_Req round, as the PTP slave in [`crate::ptp`] assembles them) through
//! [`ClockEstimator::handle_exchange`] and answers with a [`ClockEstimate`]: an offset and a
//! rate that map local time to leader time and back, plus how sure it is. Nothing here reads
//! a clock or steps one; a follower keeps its own clock and maps.
//!
//! [`EnvelopeEstimator`] is lockstep's own estimator. [`NaiveEstimator`], [`NtpEstimator`]
//! and [`SnapcastEstimator`] are baselines kept behind the same trait so that every report
//! compares them on the same trace.

mod change;
mod envelope;
mod hull;
mod naive;
mod ntp;
mod ring;
mod snapcast;

pub use envelope::{EnvelopeConfig, EnvelopeEstimator, EnvelopeStats};
pub use naive::NaiveEstimator;
pub use ntp::NtpEstimator;
pub use snapcast::SnapcastEstimator;

use crate::ptp::PortIdentity;
use crate::time::{LeaderInstant, LocalInstant, Nanos};

/// One completed clock exchange: a Sync from the leader and the Delay_Req that answered it.
///
/// `t1` and `t4` are leader-clock readings, `t2` and `t3` local ones. The corrections are the
/// PTP correctionFields (residence times of transparent clocks on the path) in nanoseconds:
/// `sync_correction` sums Sync and Follow_Up, `delay_correction` is the Delay_Resp's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The leader port that sent the Sync and answered the Delay_Req.
    pub leader: PortIdentity,
    /// Sequence id of the Sync.
    pub sync_sequence: u16,
    /// When the leader sent the Sync (leader clock).
    pub t1: LeaderInstant,
    /// When the Sync arrived here (local clock).
    pub t2: LocalInstant,
    /// When the Delay_Req left here (local clock).
    pub t3: LocalInstant,
    /// When the Delay_Req arrived at the leader (leader clock).
    pub t4: LeaderInstant,
    /// Path correction of the Sync (and its Follow_Up).
    pub sync_correction: Nanos,
    /// Path correction of the Delay_Req, as the Delay_Resp reports it.
    pub delay_correction: Nanos,
}

impl Exchange {
    /// `leader - local` as seen by the Sync alone: the true offset minus the leader→follower
    /// delay. Its upper envelope over many exchanges is the offset minus the path's base delay.
    pub fn forward(&self) -> Nanos {
        Nanos(self.t1.as_nanos().saturating_sub(self.t2.as_nanos())) + self.sync_correction
    }

    /// `leader - local` as seen by the Delay_Req alone: the true offset plus the
    /// follower→leader delay. Its lower envelope is the offset plus the base delay.
    pub fn reverse(&self) -> Nanos {
        Nanos(self.t4.as_nanos().saturating_sub(self.t3.as_nanos())) - self.delay_correction
    }

    /// The IEEE 1588 offset `leader - local` of this exchange alone:
    /// `((t1 - t2 + corr) + (t4 - t3 - corr)) / 2`, exact when the path is symmetric.
    pub fn offset(&self) -> Nanos {
        Nanos(midpoint(self.forward().0, self.reverse().0))
    }

    /// The round-trip path delay: `(t2 - t1) + (t4 - t3)` less corrections.
    pub fn round_trip(&self) -> Nanos {
        self.reverse() - self.forward()
    }

    /// The local instant this exchange is best attributed to (the midpoint of t2 and t3).
    pub fn local_time(&self) -> LocalInstant {
        LocalInstant::from_nanos(midpoint(self.t2.as_nanos(), self.t3.as_nanos()))
    }

    /// When the exchange was complete enough to use: the later of t2 and t3.
    pub fn completed_at(&self) -> LocalInstant {
        self.t2.max(self.t3)
    }
}

fn midpoint(a: i64, b: i64) -> i64 {
    ((a as i128 + b as i128).div_euclid(2)) as i64
}

/// What an estimator believes: leader time as a linear function of local time.
///
/// `leader(t) = anchor_leader + (t - anchor_local) × (1 + rate_ppm·10⁻⁶)`.
/// The anchor is kept in integers; only the small span from it meets the float rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockEstimate {
    /// A local instant at which the mapping is pinned.
    pub anchor_local: LocalInstant,
    /// The leader instant that `anchor_local` maps to.
    pub anchor_leader: LeaderInstant,
    /// How much faster the leader's clock runs than the local one, in parts per million
    /// (leader seconds per local second, minus one).
    pub rate_ppm: f64,
    /// About two standard deviations of the offset error at the anchor: the estimator
    /// expects the truth within this span about 95% of the time.
    pub uncertainty: Nanos,
    /// The leader port this estimate is about.
    pub leader: PortIdentity,
    /// Counts jumps of the timeline: it changes exactly when the mapping moved by more than
    /// its uncertainty in one go (a leader clock step, a new leader, a path change that moved
    /// the two-way offset). A consumer that sees it change knows the timeline jumped and
    /// [`reason`](Self::reason) says why.
    pub epoch: u32,
    /// Why the current epoch began.
    pub reason: EpochReason,
    /// Whether the estimate can be played on: false while the estimator is still converging,
    /// or has seen something change and is still working out what. A playout does not start
    /// on an estimate that is not settled (unless one of its epoch has settled before and
    /// its uncertainty is within the playout's lock threshold), nor re-align on one for an
    /// error its uncertainty could explain; [`uncertainty`](Self::uncertainty) covers the
    /// truth either way.
    pub settled: bool,
}

/// Why a [`ClockEstimate`]'s epoch began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EpochReason {
    /// The first estimate of this leader.
    #[default]
    Start,
    /// The leader's clock stepped: its reading jumped, the path stayed.
    LeaderStep,
    /// Another leader (another clock identity or port) took over.
    NewLeader,
    /// One direction of the path changed, moving the two-way offset by half of it: the
    /// estimator cannot tell which side was right, and its uncertainty says so.
    PathChange,
}

impl core::fmt::Display for EpochReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EpochReason::Start => "start",
            EpochReason::LeaderStep => "leader clock step",
            EpochReason::NewLeader => "new leader",
            EpochReason::PathChange => "path change",
        })
    }
}

impl ClockEstimate {
    /// The leader time at local instant `t`.
    pub fn to_leader(&self, t: LocalInstant) -> LeaderInstant {
        let dt = t - self.anchor_local;
        self.anchor_leader + dt + dt.mul_f64(self.rate_ppm * 1e-6)
    }

    /// The local instant at which the leader clock reads `t`.
    pub fn to_local(&self, t: LeaderInstant) -> LocalInstant {
        let dt = t - self.anchor_leader;
        let local_dt = dt.mul_f64(1.0 / (1.0 + self.rate_ppm * 1e-6));
        self.anchor_local + local_dt
    }

    /// `leader - local` at local instant `t`.
    pub fn offset_at(&self, t: LocalInstant) -> Nanos {
        crate::time::offset_between(self.to_leader(t), t)
    }
}

/// A clock-offset estimator fed by PTP exchanges.
///
/// Call [`handle_exchange`](Self::handle_exchange) for every exchange the slave completes,
/// in the order it completes them, and [`estimate`](Self::estimate) whenever a mapping is
/// needed. An estimator whose method asks for exchanges at its own cadence says so through
/// [`wants`](Self::wants); the caller then offers it only those.
pub trait ClockEstimator: Send {
    /// A short name for reports (`lockstep`, `naive`, `ntp`, `snapcast`).
    fn name(&self) -> &'static str;

    /// Whether this estimator takes an exchange that completed at `at`. Estimators that use
    /// every exchange keep the default.
    fn wants(&self, at: LocalInstant) -> bool {
        let _ = at;
        true
    }

    /// Takes one completed exchange.
    fn handle_exchange(&mut self, exchange: &Exchange);

    /// Forgets everything, as a freshly built estimator of the same configuration: what a
    /// follower that restarts does.
    fn reset(&mut self);

    /// The current mapping, or `None` before the first usable exchange.
    fn estimate(&self) -> Option<ClockEstimate>;

    /// Whether the estimator asks for a burst of faster exchanges: it saw the path or the
    /// leader's clock change and wants to re-converge quickly. Returns `true` once per
    /// request; the caller (the node or the simulator) then asks the leader for a burst
    /// through its PTP slave. Call after each [`handle_exchange`](Self::handle_exchange).
    /// Estimators that never ask keep the default.
    #[must_use]
    fn poll_burst_request(&mut self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ptp::{ClockIdentity, PortIdentity};

    fn port() -> PortIdentity {
        PortIdentity {
            clock_identity: ClockIdentity([1, 2, 3, 4, 5, 6, 7, 8]),
            port_number: 1,
        }
    }

    #[test]
    fn offset_follows_the_1588_formula() {
        // Leader is 1 ms ahead; 100 µs each way; 16 ns of correction on the Sync path.
        let ex = Exchange {
            leader: port(),
            sync_sequence: 7,
            t1: LeaderInstant::from_nanos(10_000_000),
            t2: LocalInstant::from_nanos(9_100_000 + 16),
            t3: LocalInstant::from_nanos(9_200_000),
            t4: LeaderInstant::from_nanos(10_300_000),
            sync_correction: Nanos(16),
            delay_correction: Nanos(0),
        };
        assert_eq!(ex.offset(), Nanos(1_000_000));
        assert_eq!(ex.round_trip(), Nanos(200_000));
        assert_eq!(ex.forward(), Nanos(900_000));
        assert_eq!(ex.reverse(), Nanos(1_100_000));
    }

    #[test]
    fn estimate_maps_both_ways() {
        let est = ClockEstimate {
            anchor_local: LocalInstant::from_nanos(1_000_000_000),
            anchor_leader: LeaderInstant::from_nanos(5_000_000_000),
            rate_ppm: 50.0,
            uncertainty: Nanos(1_000),
            leader: port(),
            epoch: 0,
            reason: EpochReason::Start,
            settled: true,
        };
        let t = LocalInstant::from_nanos(11_000_000_000);
        let l = est.to_leader(t);
        assert_eq!(l.as_nanos(), 15_000_000_000 + 500_000);
        assert!((est.to_local(l) - t).abs() <= Nanos(1));
        assert_eq!(est.offset_at(t), Nanos(4_000_500_000));
    }
}
