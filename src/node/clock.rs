//! The clock a node reads: the machine's monotonic or realtime clock, or a simulated crystal
//! derived from the monotonic clock.
//!
//! The nodes are the only part of lockstep that reads a real clock, and they read it only
//! through [`NodeClock`]. A drifting clock lets many followers on one machine each run on
//! their own "crystal", so that the clock estimator and the drift corrector have real work
//! to do: its reading is `offset + m + (m − m₀) × drift`, where `m` is the monotonic clock
//! and `m₀` its reading when the clock was made. The follower's virtual DAC uses the same
//! clock, so its samples leave at the drifted rate in real (monotonic) time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::net;
use crate::playout::dac::Crystal;
use crate::time::{LocalInstant, Nanos, TrueInstant};

/// A clock of the caller's own for a node to read: a speaker's audio clock, a hardware
/// timer. It is told and tells its readings against the machine's monotonic clock, which
/// is what the node sleeps on and what kernel timestamps convert through.
///
/// The node does not trust it blindly: a reading of [`NodeClock::now`] earlier than the
/// one before is not used (the earlier one is, again) and is counted (beyond a few ms: two
/// threads reading at once may land that much out of order), and a sleep until a
/// reading more than [`MAX_SLEEP`] away is cut short and counted
/// ([`NodeClock::rejected`]), so a clock that goes backwards or jumps to the far future
/// costs a wrong reading, never a panic or a hang.
pub trait Clock: Send + Sync + 'static {
    /// Its reading, ns, when the machine's monotonic clock read `mono_ns`.
    fn reading_at(&self, mono_ns: i64) -> i64;
    /// The monotonic reading, ns, at which it reads `local_ns`.
    fn monotonic_at(&self, local_ns: i64) -> i64;
    /// How many ppm faster than the monotonic clock it runs, if it knows (a virtual DAC
    /// on it then says its true rate). Default 0.
    fn drift_ppm(&self) -> f64 {
        0.0
    }
}

/// A [`Clock`] of the caller's own, shared.
#[derive(Clone)]
pub struct CustomClock(pub Arc<dyn Clock>);

impl std::fmt::Debug for CustomClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomClock")
    }
}

impl PartialEq for CustomClock {
    fn eq(&self, other: &CustomClock) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Which clock a node reads.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LocalClock {
    /// `CLOCK_MONOTONIC`: never steps; the default.
    Monotonic,
    /// `CLOCK_REALTIME`: what linuxptp's software timestamps use, for interop tests.
    Realtime,
    /// A simulated crystal `drift_ppm` fast (negative: slow) against the monotonic clock,
    /// reading `offset` ahead of it at the start.
    Drifting {
        /// How fast it runs, in parts per million.
        drift_ppm: f64,
        /// Its reading minus the monotonic clock's, when the clock is made.
        offset: Nanos,
    },
    /// A clock of the caller's own.
    Custom(CustomClock),
}

/// The longest a node sleeps in one go on its clock's word (a clock whose readings jump to
/// the far future would otherwise hang it).
pub const MAX_SLEEP: Nanos = Nanos::from_secs(1);

/// How far back a reading of a project's clock may land behind another thread's without
/// counting as the clock's fault (a thread preempted between its monotonic reading and the
/// check).
const RACE_TOLERANCE: Nanos = Nanos::from_millis(5);

/// What a node keeps of a clock that is not its own to trust.
#[derive(Debug, Default)]
struct Guard {
    /// The latest reading `now` gave.
    last: AtomicI64,
    /// Readings refused, and sleeps cut short.
    rejected: AtomicU64,
}

/// A [`LocalClock`] made ready to read: cheap to clone, shared by a node's threads.
#[derive(Debug, Clone)]
pub struct NodeClock {
    kind: LocalClock,
    /// Monotonic reading when the clock was made (the drift's pivot).
    base: i64,
    guard: Arc<Guard>,
}

impl PartialEq for NodeClock {
    fn eq(&self, other: &NodeClock) -> bool {
        self.kind == other.kind && self.base == other.base
    }
}

impl NodeClock {
    /// Starts `kind` now.
    pub fn new(kind: LocalClock) -> NodeClock {
        NodeClock {
            kind,
            base: net::monotonic_ns(),
            guard: Arc::new(Guard {
                last: AtomicI64::new(i64::MIN),
                rejected: AtomicU64::new(0),
            }),
        }
    }

    /// What it is.
    pub fn kind(&self) -> &LocalClock {
        &self.kind
    }

    /// How many ppm faster than the monotonic clock it runs (0 for the machine's clocks).
    pub fn drift_ppm(&self) -> f64 {
        match &self.kind {
            LocalClock::Drifting { drift_ppm, .. } => *drift_ppm,
            LocalClock::Custom(c) => {
                let d = c.0.drift_ppm();
                if d.is_finite() { d } else { 0.0 }
            }
            _ => 0.0,
        }
    }

    /// Readings of a clock of the caller's own that went backwards, and sleeps on it cut
    /// short at [`MAX_SLEEP`].
    pub fn rejected(&self) -> u64 {
        self.guard.rejected.load(Ordering::Relaxed)
    }

    /// Its reading now. A clock of the caller's own never reads earlier than it did before:
    /// such a reading is counted and the one before is given again.
    pub fn now(&self) -> LocalInstant {
        match &self.kind {
            LocalClock::Realtime => LocalInstant::from_nanos(net::realtime_ns()),
            LocalClock::Custom(_) => {
                let t = self.from_monotonic(net::monotonic_ns()).as_nanos();
                let last = self.guard.last.fetch_max(t, Ordering::AcqRel);
                if t < last {
                    // (Two threads reading at once may land a little out of order; only a
                    // step back beyond that is the clock's fault.)
                    if last - t > RACE_TOLERANCE.as_nanos() {
                        self.guard.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    return LocalInstant::from_nanos(last);
                }
                LocalInstant::from_nanos(t)
            }
            _ => self.from_monotonic(net::monotonic_ns()),
        }
    }

    /// Its reading when the monotonic clock read `mono_ns`.
    pub fn from_monotonic(&self, mono_ns: i64) -> LocalInstant {
        LocalInstant::from_nanos(match &self.kind {
            LocalClock::Monotonic => mono_ns,
            LocalClock::Realtime => {
                mono_ns.saturating_add(net::realtime_ns().saturating_sub(net::monotonic_ns()))
            }
            LocalClock::Drifting { drift_ppm, offset } => {
                let span = mono_ns.saturating_sub(self.base) as f64;
                mono_ns
                    .saturating_add(offset.as_nanos())
                    .saturating_add((span * drift_ppm * 1e-6).round() as i64)
            }
            LocalClock::Custom(c) => c.0.reading_at(mono_ns),
        })
    }

    /// Its reading when the realtime clock read `rt_ns` (a kernel timestamp).
    pub fn from_realtime(&self, rt_ns: i64) -> LocalInstant {
        match self.kind {
            LocalClock::Realtime => LocalInstant::from_nanos(rt_ns),
            _ => self.from_monotonic(net::realtime_to_monotonic(rt_ns)),
        }
    }

    /// The monotonic reading at which this clock reads `local` (to sleep until it).
    pub fn to_monotonic(&self, local: LocalInstant) -> i64 {
        let t = local.as_nanos();
        match &self.kind {
            LocalClock::Monotonic => t,
            LocalClock::Realtime => {
                t.saturating_sub(net::realtime_ns().saturating_sub(net::monotonic_ns()))
            }
            LocalClock::Drifting { drift_ppm, offset } => {
                // local − offset − base = (m − base)(1 + d)
                let span = t
                    .saturating_sub(offset.as_nanos())
                    .saturating_sub(self.base) as f64
                    / (1.0 + drift_ppm * 1e-6);
                self.base.saturating_add(span.round() as i64)
            }
            LocalClock::Custom(c) => c.0.monotonic_at(t),
        }
    }

    /// Sleeps until this clock reads `local` (at once if it already has), [`MAX_SLEEP`] at
    /// most: a longer wait is cut short and counted in [`rejected`](Self::rejected).
    pub fn sleep_until(&self, local: LocalInstant) {
        let wait = self.to_monotonic(local).saturating_sub(net::monotonic_ns());
        if wait > MAX_SLEEP.as_nanos() {
            self.guard.rejected.fetch_add(1, Ordering::Relaxed);
        }
        if wait > 0 {
            let wait = wait.min(MAX_SLEEP.as_nanos());
            std::thread::sleep(std::time::Duration::from_nanos(wait as u64));
        }
    }
}

/// Monotonic time is the "true" time of a node's virtual DAC: its emissions are reported
/// on the machine's undrifted monotonic clock.
impl Crystal for NodeClock {
    fn local_at(&mut self, at: TrueInstant) -> LocalInstant {
        self.from_monotonic(at.as_nanos())
    }

    fn true_at(&mut self, local: LocalInstant) -> TrueInstant {
        TrueInstant::from_nanos(self.to_monotonic(local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drifting_clock_runs_fast_by_its_drift_and_inverts() {
        let c = NodeClock::new(LocalClock::Drifting {
            drift_ppm: 150.0,
            offset: Nanos::from_secs(5),
        });
        let m0 = c.base;
        let a = c.from_monotonic(m0);
        let b = c.from_monotonic(m0 + 1_000_000_000);
        assert_eq!(a.as_nanos(), m0 + 5_000_000_000);
        assert_eq!((b - a).as_nanos(), 1_000_150_000);
        for m in [m0 - 3_000_000_000, m0, m0 + 7_777_777_777] {
            assert!((c.to_monotonic(c.from_monotonic(m)) - m).abs() <= 1);
        }
    }

    #[test]
    fn monotonic_and_realtime_clocks_read_the_machine() {
        let mono = NodeClock::new(LocalClock::Monotonic);
        assert!((mono.now().as_nanos() - net::monotonic_ns()).abs() < 1_000_000);
        let rt = NodeClock::new(LocalClock::Realtime);
        assert!((rt.now().as_nanos() - net::realtime_ns()).abs() < 1_000_000);
        let r = net::realtime_ns();
        assert!((rt.from_realtime(r).as_nanos() - r).abs() == 0);
        let m = mono.from_realtime(r).as_nanos();
        assert!((m - net::monotonic_ns()).abs() < 1_000_000);
    }
}
