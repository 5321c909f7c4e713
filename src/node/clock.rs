//! The clock a node reads: the machine's monotonic or realtime clock, or a simulated crystal
//! derived from the monotonic clock.
//!
//! The nodes are the only part of lockstep that reads a real clock, and they read it only
//! through [`NodeClock`]. A drifting clock lets many followers on one machine each run on
//! their own "crystal", so that the clock estimator and the drift corrector have real work
//! to do: its reading is `offset + m + (m − m₀) × drift`, where `m` is the monotonic clock
//! and `m₀` its reading when the clock was made. The follower's virtual DAC uses the same
//! clock, so its samples leave at the drifted rate in real (monotonic) time.

use crate::net;
use crate::playout::dac::Crystal;
use crate::time::{LocalInstant, Nanos};

/// Which clock a node reads.
#[derive(Debug, Clone, Copy, PartialEq)]
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
}

/// A [`LocalClock`] made ready to read: cheap to copy, shared by a node's threads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeClock {
    kind: LocalClock,
    /// Monotonic reading when the clock was made (the drift's pivot).
    base: i64,
}

impl NodeClock {
    /// Starts `kind` now.
    pub fn new(kind: LocalClock) -> NodeClock {
        NodeClock {
            kind,
            base: net::monotonic_ns(),
        }
    }

    /// What it simulates.
    pub fn kind(&self) -> LocalClock {
        self.kind
    }

    /// Its reading now.
    pub fn now(&self) -> LocalInstant {
        match self.kind {
            LocalClock::Realtime => LocalInstant::from_nanos(net::realtime_ns()),
            _ => self.from_monotonic(net::monotonic_ns()),
        }
    }

    /// Its reading when the monotonic clock read `mono_ns`.
    pub fn from_monotonic(&self, mono_ns: i64) -> LocalInstant {
        LocalInstant::from_nanos(match self.kind {
            LocalClock::Monotonic => mono_ns,
            LocalClock::Realtime => mono_ns + (net::realtime_ns() - net::monotonic_ns()),
            LocalClock::Drifting { drift_ppm, offset } => {
                let span = (mono_ns - self.base) as f64;
                mono_ns + offset.as_nanos() + (span * drift_ppm * 1e-6).round() as i64
            }
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
        match self.kind {
            LocalClock::Monotonic => t,
            LocalClock::Realtime => t - (net::realtime_ns() - net::monotonic_ns()),
            LocalClock::Drifting { drift_ppm, offset } => {
                // local − offset − base = (m − base)(1 + d)
                let span = (t - offset.as_nanos() - self.base) as f64 / (1.0 + drift_ppm * 1e-6);
                self.base + span.round() as i64
            }
        }
    }

    /// Sleeps until this clock reads `local` (at once if it already has).
    pub fn sleep_until(&self, local: LocalInstant) {
        let wait = self.to_monotonic(local) - net::monotonic_ns();
        if wait > 0 {
            std::thread::sleep(std::time::Duration::from_nanos(wait as u64));
        }
    }
}

/// Monotonic time is the "true" time of a node's virtual DAC: its emissions are reported
/// on the machine's undrifted monotonic clock.
impl Crystal for NodeClock {
    fn local_at(&mut self, true_ns: i64) -> i64 {
        self.from_monotonic(true_ns).as_nanos()
    }

    fn true_at(&mut self, local_ns: i64) -> i64 {
        self.to_monotonic(LocalInstant::from_nanos(local_ns))
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
