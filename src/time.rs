//! Time types.
//!
//! Three clocks meet in lockstep and each gets its own type so they cannot be mixed up:
//!
//! - [`LocalInstant`]: a reading of this device's own clock (the follower's crystal). It is
//!   what a driver stamps packets with and what a sound card's output timeline is in.
//! - [`LeaderInstant`]: a reading of the leader's clock, the timescale that every
//!   presentation time is written in. On the wire it is a PTP timestamp.
//! - [`MediaTime`]: a position in a stream counted in samples of a stated rate, as RTP counts.
//!   It is the one place frames and nanoseconds convert.
//!
//! A fourth, [`TrueInstant`], is for measuring from outside: the reference (true) time a
//! DAC's emissions are reported on, never read by the code that plays.
//!
//! Durations between readings of the same clock are [`Nanos`]. All absolute times are integer
//! nanoseconds; floating point is used only for small relative quantities such as a rate.
//!
//! Arithmetic saturates instead of overflowing: a timestamp that came off the network can be
//! anything, and a bogus value must give a bogus (and rejected) result, never a panic.

use core::fmt;
use core::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A signed span of time in integer nanoseconds (about ±292 years).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub i64);

impl Nanos {
    /// No time at all.
    pub const ZERO: Nanos = Nanos(0);
    /// The largest representable span.
    pub const MAX: Nanos = Nanos(i64::MAX);

    /// A span of `ns` nanoseconds.
    pub const fn from_nanos(ns: i64) -> Nanos {
        Nanos(ns)
    }

    /// A span of `us` microseconds (saturating).
    pub const fn from_micros(us: i64) -> Nanos {
        Nanos(us.saturating_mul(1_000))
    }

    /// A span of `ms` milliseconds (saturating).
    pub const fn from_millis(ms: i64) -> Nanos {
        Nanos(ms.saturating_mul(1_000_000))
    }

    /// A span of `s` seconds (saturating).
    pub const fn from_secs(s: i64) -> Nanos {
        Nanos(s.saturating_mul(NANOS_PER_SEC))
    }

    /// A span from floating-point seconds, rounded to the nearest nanosecond (saturating).
    pub fn from_secs_f64(s: f64) -> Nanos {
        Nanos((s * 1e9).round() as i64)
    }

    /// The span in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// The span in seconds as a float, for reports and for relative arithmetic.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }

    /// The span in microseconds as a float.
    pub fn as_micros_f64(self) -> f64 {
        self.0 as f64 * 1e-3
    }

    /// The absolute value (saturating at `i64::MAX`).
    pub const fn abs(self) -> Nanos {
        Nanos(self.0.saturating_abs())
    }

    /// Multiplies by a float factor, rounding to the nearest nanosecond (saturating).
    pub fn mul_f64(self, factor: f64) -> Nanos {
        Nanos((self.0 as f64 * factor).round() as i64)
    }
}

impl Add for Nanos {
    type Output = Nanos;
    fn add(self, rhs: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Nanos {
    type Output = Nanos;
    fn sub(self, rhs: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(rhs.0))
    }
}

impl AddAssign for Nanos {
    fn add_assign(&mut self, rhs: Nanos) {
        *self = *self + rhs;
    }
}

impl SubAssign for Nanos {
    fn sub_assign(&mut self, rhs: Nanos) {
        *self = *self - rhs;
    }
}

impl Neg for Nanos {
    type Output = Nanos;
    fn neg(self) -> Nanos {
        Nanos(self.0.saturating_neg())
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let a = ns.unsigned_abs();
        if a >= 1_000_000_000 {
            write!(f, "{:.6} s", ns as f64 * 1e-9)
        } else if a >= 1_000_000 {
            write!(f, "{:.3} ms", ns as f64 * 1e-6)
        } else if a >= 1_000 {
            write!(f, "{:.3} µs", ns as f64 * 1e-3)
        } else {
            write!(f, "{ns} ns")
        }
    }
}

macro_rules! instant_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(i64);

        impl $name {
            /// The instant `ns` nanoseconds after this clock's epoch.
            pub const fn from_nanos(ns: i64) -> Self {
                Self(ns)
            }

            /// Nanoseconds since this clock's epoch.
            pub const fn as_nanos(self) -> i64 {
                self.0
            }

            /// The span from `earlier` to `self` (negative if `earlier` is later).
            pub const fn since(self, earlier: Self) -> Nanos {
                Nanos(self.0.saturating_sub(earlier.0))
            }
        }

        impl Add<Nanos> for $name {
            type Output = $name;
            fn add(self, rhs: Nanos) -> $name {
                $name(self.0.saturating_add(rhs.0))
            }
        }

        impl Sub<Nanos> for $name {
            type Output = $name;
            fn sub(self, rhs: Nanos) -> $name {
                $name(self.0.saturating_sub(rhs.0))
            }
        }

        impl Sub for $name {
            type Output = Nanos;
            fn sub(self, rhs: $name) -> Nanos {
                self.since(rhs)
            }
        }

        impl AddAssign<Nanos> for $name {
            fn add_assign(&mut self, rhs: Nanos) {
                *self = *self + rhs;
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let s = self.0.div_euclid(NANOS_PER_SEC);
                let ns = self.0.rem_euclid(NANOS_PER_SEC);
                write!(f, "{s}.{ns:09}")
            }
        }
    };
}

instant_type!(
    /// A reading of this device's own clock, in nanoseconds since an arbitrary epoch (for a
    /// real node, the monotonic clock; in the simulator, a drifting simulated crystal).
    LocalInstant
);

instant_type!(
    /// A reading of the leader's clock, in nanoseconds since the PTP epoch (or whatever epoch
    /// the leader uses). Presentation times are leader instants.
    LeaderInstant
);

instant_type!(
    /// A reading of the reference clock that emission is judged on from outside, in
    /// nanoseconds since its epoch: the simulator's true time, or the monotonic clock of
    /// the machine that hosts a group of followers. No follower plays by it; a DAC reports
    /// when each block left on it, so that the recordings of different speakers line up.
    TrueInstant
);

/// The signed difference `leader - local` between a leader reading and a local reading of
/// the same moment: what a follower adds to its own clock to get the leader's.
pub fn offset_between(leader: LeaderInstant, local: LocalInstant) -> Nanos {
    Nanos(leader.as_nanos().saturating_sub(local.as_nanos()))
}

/// A position in a media stream, counted in ticks of a stated rate (an RTP clock: 48 000
/// ticks a second for 48 kHz audio and for Opus).
///
/// Ticks are 64-bit: the 32-bit RTP timestamp is extended by the receiver, so its wrap is
/// invisible here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MediaTime {
    ticks: i64,
    rate: u32,
}

impl MediaTime {
    /// `ticks` ticks of a clock running at `rate` Hz.
    ///
    /// # Panics
    /// If `rate` is zero: a media clock always has a rate, and the rate comes from
    /// configuration, never from a packet.
    pub const fn new(ticks: i64, rate: u32) -> MediaTime {
        assert!(rate > 0, "a media clock rate must be positive");
        MediaTime { ticks, rate }
    }

    /// The tick count.
    pub const fn ticks(self) -> i64 {
        self.ticks
    }

    /// The clock rate in Hz.
    pub const fn rate(self) -> u32 {
        self.rate
    }

    /// The span from tick 0 to this position, rounded to the nearest nanosecond.
    pub fn to_nanos(self) -> Nanos {
        let num = self.ticks as i128 * NANOS_PER_SEC as i128;
        Nanos(clamp_i128(div_round(num, self.rate as i128)))
    }

    /// The position at `span` after tick 0 on a clock of `rate` Hz, rounded to the nearest tick.
    pub fn from_nanos(span: Nanos, rate: u32) -> MediaTime {
        let num = span.0 as i128 * rate as i128;
        MediaTime::new(clamp_i128(div_round(num, NANOS_PER_SEC as i128)), rate)
    }

    /// The same position counted at another rate, rounded to the nearest tick.
    pub fn rebase(self, rate: u32) -> MediaTime {
        let num = self.ticks as i128 * rate as i128;
        MediaTime::new(clamp_i128(div_round(num, self.rate as i128)), rate)
    }

    /// The span from tick 0 to this position, rounded down to a whole nanosecond: the
    /// instant a frame starts is never reported later than it is.
    pub fn to_nanos_floor(self) -> Nanos {
        let num = self.ticks as i128 * NANOS_PER_SEC as i128;
        Nanos(clamp_i128(num.div_euclid(self.rate as i128)))
    }

    /// The position at `span` after tick 0 on a clock of `rate` Hz, rounded down to a whole
    /// tick: the tick in progress at that instant.
    ///
    /// # Panics
    /// If `rate` is zero (see [`MediaTime::new`]).
    pub fn from_nanos_floor(span: Nanos, rate: u32) -> MediaTime {
        let num = span.0 as i128 * rate as i128;
        MediaTime::new(clamp_i128(num.div_euclid(NANOS_PER_SEC as i128)), rate)
    }

    /// This position moved by `ticks` ticks of its own rate (saturating).
    pub const fn add_ticks(self, ticks: i64) -> MediaTime {
        MediaTime {
            ticks: self.ticks.saturating_add(ticks),
            rate: self.rate,
        }
    }

    /// The span from `earlier` to `self`; `earlier` is first rebased to this rate.
    pub fn since(self, earlier: MediaTime) -> Nanos {
        let e = if earlier.rate == self.rate {
            earlier
        } else {
            earlier.rebase(self.rate)
        };
        MediaTime::new(self.ticks.saturating_sub(e.ticks), self.rate).to_nanos()
    }
}

fn div_round(num: i128, den: i128) -> i128 {
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    if 2 * r >= den { q + 1 } else { q }
}

fn clamp_i128(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_subtract_to_signed_spans() {
        let a = LocalInstant::from_nanos(1_000);
        let b = a + Nanos::from_micros(3);
        assert_eq!(b - a, Nanos(3_000));
        assert_eq!(a - b, Nanos(-3_000));
        assert_eq!(b - Nanos(3_000), a);
    }

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let far = LeaderInstant::from_nanos(i64::MAX);
        assert_eq!((far + Nanos(5)).as_nanos(), i64::MAX);
        let neg = LeaderInstant::from_nanos(i64::MIN);
        assert_eq!(far - neg, Nanos::MAX);
        assert_eq!(Nanos(i64::MIN).abs(), Nanos::MAX);
    }

    #[test]
    fn media_time_converts_with_its_rate() {
        let t = MediaTime::new(48_000, 48_000);
        assert_eq!(t.to_nanos(), Nanos::from_secs(1));
        assert_eq!(MediaTime::new(1, 44_100).to_nanos(), Nanos(22_676));
        assert_eq!(t.rebase(44_100).ticks(), 44_100);
        assert_eq!(
            MediaTime::from_nanos(Nanos::from_millis(5), 48_000).ticks(),
            240
        );
        let third = MediaTime::new(1, 3);
        assert_eq!(third.to_nanos(), Nanos(333_333_333));
        assert_eq!(MediaTime::new(2, 3).to_nanos(), Nanos(666_666_667));
        assert_eq!(MediaTime::new(2, 3).to_nanos_floor(), Nanos(666_666_666));
        assert_eq!(MediaTime::new(-1, 3).to_nanos_floor(), Nanos(-333_333_334));
        assert_eq!(
            MediaTime::from_nanos_floor(Nanos(666_666_666), 3).ticks(),
            1
        );
        assert_eq!(
            MediaTime::from_nanos_floor(Nanos(666_666_667), 3).ticks(),
            2
        );
        let later = MediaTime::new(96_000 + 960, 96_000);
        assert_eq!(later.since(t), Nanos::from_millis(10));
    }

    #[test]
    fn displays_are_readable() {
        assert_eq!(Nanos(1_500).to_string(), "1.500 µs");
        assert_eq!(LocalInstant::from_nanos(-1).to_string(), "-1.999999999");
    }
}
