//! The 64-bit NTP timestamp format (RFC 5905), as carried by RTCP sender reports and the
//! RFC 6051 header extension.
//!
//! An [`NtpTimestamp`] is 32 bits of whole seconds since 1900-01-01 00:00:00 UTC followed by a
//! 32-bit binary fraction of a second (one unit is `2^-32` s, about 233 ps).
//! [`LeaderInstant`] counts nanoseconds from the Unix epoch (1970-01-01), which is
//! [`NTP_UNIX_OFFSET_SECS`] seconds after the NTP epoch.
//!
//! # Eras
//!
//! The 32-bit seconds field wraps every `2^32` s (about 136 years); the first wrap is on
//! 2036-02-07 06:28:16 UTC. Like NTP itself:
//!
//! - [`NtpTimestamp::from_instant`] wraps the seconds modulo `2^32`: any instant converts, and
//!   instants before 1900 or from 2036 on land in the era-0 field range.
//! - [`NtpTimestamp::to_instant`] resolves the era with the RFC 4330 rule: if the top bit of
//!   the seconds is set the time is in 1968–2036 (era 0), otherwise in 2036–2104 (era 1).
//!
//! So the round trip instant → NTP → instant is exact for every instant from 1968-01-20
//! 03:14:08 UTC up to (not including) 2104-02-26 09:42:24 UTC, which covers 1970–2036.

use crate::time::LeaderInstant;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01): 2 208 988 800.
pub const NTP_UNIX_OFFSET_SECS: i64 = 2_208_988_800;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// A 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, a binary fraction of a
/// second in the low 32 bits.
///
/// See the [module docs](self) for how eras are handled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// A timestamp from its seconds and fraction fields.
    pub const fn new(seconds: u32, fraction: u32) -> NtpTimestamp {
        NtpTimestamp(((seconds as u64) << 32) | fraction as u64)
    }

    /// Converts a leader instant (nanoseconds since the Unix epoch) to NTP format.
    ///
    /// The fraction is rounded to the nearest `2^-32` s (ties up), carrying into the seconds
    /// if needed; the seconds wrap modulo `2^32`. Never panics.
    pub fn from_instant(instant: LeaderInstant) -> NtpTimestamp {
        let ns_since_1900 =
            i128::from(instant.as_nanos()) + i128::from(NTP_UNIX_OFFSET_SECS) * NANOS_PER_SEC;
        // Fixed point with 32 fraction bits, rounded to nearest. `div_euclid` floors, so the
        // rounding is also right for instants before 1900.
        let units = ((ns_since_1900 << 32) + NANOS_PER_SEC / 2).div_euclid(NANOS_PER_SEC);
        // Truncating to 64 bits wraps the seconds modulo 2^32.
        NtpTimestamp(units as u64)
    }

    /// Converts back to a leader instant (nanoseconds since the Unix epoch), rounding the
    /// fraction to the nearest nanosecond (ties up).
    ///
    /// The era is chosen by the RFC 4330 rule: seconds with the top bit set are in 1968–2036,
    /// others in 2036–2104.
    pub fn to_instant(self) -> LeaderInstant {
        let mut secs = i64::from(self.seconds());
        if secs < 1 << 31 {
            secs += 1 << 32;
        }
        let frac_ns = (u64::from(self.fraction()) * 1_000_000_000 + (1 << 31)) >> 32;
        // Both terms are small (|secs| < 2^33), so this cannot overflow.
        let ns = (secs - NTP_UNIX_OFFSET_SECS) * 1_000_000_000 + frac_ns as i64;
        LeaderInstant::from_nanos(ns)
    }

    /// The 8 bytes in network (big-endian) order, as they appear on the wire.
    pub const fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// A timestamp from 8 bytes in network (big-endian) order.
    pub const fn from_be_bytes(bytes: [u8; 8]) -> NtpTimestamp {
        NtpTimestamp(u64::from_be_bytes(bytes))
    }

    /// The whole seconds since the start of the era (the high 32 bits).
    pub const fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The binary fraction of a second, in units of `2^-32` s (the low 32 bits).
    pub const fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// The middle 32 bits (low 16 bits of the seconds, high 16 of the fraction): the compact
    /// form RTCP uses for LSR and DLSR, in units of `2^-16` s.
    pub const fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i64 = 1_000_000_000;
    /// First instant of NTP era 1 (2036-02-07 06:28:16 UTC), in Unix nanoseconds.
    const ERA1_NS: i64 = ((1i64 << 32) - NTP_UNIX_OFFSET_SECS) * NS;

    fn ntp(ns: i64) -> NtpTimestamp {
        NtpTimestamp::from_instant(LeaderInstant::from_nanos(ns))
    }

    #[test]
    fn unix_epoch_is_0x83aa7e80() {
        let t = ntp(0);
        assert_eq!(t.seconds(), 0x83AA_7E80);
        assert_eq!(t.fraction(), 0);
        assert_eq!(t.0, 0x83AA_7E80_0000_0000);
        assert_eq!(
            t.to_be_bytes(),
            [0x83, 0xAA, 0x7E, 0x80, 0x00, 0x00, 0x00, 0x00]
        );
        assert_eq!(t.middle32(), 0x7E80_0000);
        assert_eq!(t.to_instant().as_nanos(), 0);
    }

    #[test]
    fn half_second_and_one_nanosecond() {
        let t = ntp(NS / 2);
        assert_eq!(t.seconds(), 0x83AA_7E80);
        assert_eq!(t.fraction(), 0x8000_0000);
        assert_eq!(t.middle32(), 0x7E80_8000);
        assert_eq!(
            t.to_be_bytes(),
            [0x83, 0xAA, 0x7E, 0x80, 0x80, 0x00, 0x00, 0x00]
        );
        // 1e-9 * 2^32 = 4.29 -> 4.
        let t = ntp(1);
        assert_eq!(t.fraction(), 4);
        assert_eq!(t.to_instant().as_nanos(), 1);
        // 0.25 s, 0.75 s.
        assert_eq!(ntp(NS / 4).fraction(), 0x4000_0000);
        assert_eq!(ntp(3 * NS / 4).fraction(), 0xC000_0000);
        // 1 s after the epoch.
        assert_eq!(ntp(NS).0, 0x83AA_7E81_0000_0000);
    }

    #[test]
    fn fraction_edge_near_one_second() {
        // 0.999999999 s * 2^32 = 4294967291.7 -> 0xFFFFFFFC, no carry.
        let t = ntp(NS - 1);
        assert_eq!(t.seconds(), 0x83AA_7E80);
        assert_eq!(t.fraction(), 0xFFFF_FFFC);
        assert_eq!(t.to_instant().as_nanos(), NS - 1);
        // The largest fractions are within half a nanosecond of 1 s and round up to it.
        let t = NtpTimestamp::new(0x83AA_7E80, 0xFFFF_FFFF);
        assert_eq!(t.to_instant().as_nanos(), NS);
        let t = NtpTimestamp::new(0x83AA_7E80, 0xFFFF_FFFD);
        assert_eq!(t.to_instant().as_nanos(), NS - 1);
    }

    #[test]
    fn bytes_round_trip() {
        let t = NtpTimestamp::new(0x0102_0304, 0x0506_0708);
        let b = t.to_be_bytes();
        assert_eq!(b, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(NtpTimestamp::from_be_bytes(b), t);
        assert_eq!(t.seconds(), 0x0102_0304);
        assert_eq!(t.fraction(), 0x0506_0708);
        assert_eq!(t.middle32(), 0x0304_0506);
    }

    #[test]
    fn round_trip_1970_to_2036() {
        let check = |ns: i64| {
            let back = ntp(ns).to_instant().as_nanos();
            assert!((back - ns).abs() <= 1, "ns {ns} came back as {back}");
        };
        // Pseudo-random instants over the whole range.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            check(((x >> 1) % ERA1_NS as u64) as i64);
        }
        // Every sub-second offset near the fraction edges, at several seconds.
        for s in [0, 1, 1_700_000_000, ERA1_NS / NS - 1] {
            for f in (0..2_000).chain(NS - 2_000..NS) {
                check(s * NS + f);
            }
        }
        // Stepping through one second in coarse strides.
        for f in (0..NS).step_by(999_983) {
            check(1_234_567_890 * NS + f);
        }
        check(ERA1_NS - 1);
    }

    #[test]
    fn era_wrap() {
        // Just before the 2036 wrap: seconds 0xFFFFFFFF.
        let t = ntp(ERA1_NS - 1);
        assert_eq!(t.seconds(), 0xFFFF_FFFF);
        // At the wrap the seconds go back to 0 (modulo 2^32) and resolve into era 1.
        let t = ntp(ERA1_NS);
        assert_eq!(t.0, 0);
        assert_eq!(t.to_instant().as_nanos(), ERA1_NS);
        let t = ntp(ERA1_NS + 10 * NS + 7);
        assert_eq!(t.seconds(), 10);
        assert_eq!(t.to_instant().as_nanos(), ERA1_NS + 10 * NS + 7);
        // 1900 itself is era 0 with seconds 0, which the RFC 4330 rule reads as 2036.
        let t = ntp(-NTP_UNIX_OFFSET_SECS * NS);
        assert_eq!(t.0, 0);
        // Before 1900 wraps modulo 2^32 s.
        let t = ntp(-NTP_UNIX_OFFSET_SECS * NS - NS);
        assert_eq!(t.seconds(), 0xFFFF_FFFF);
        assert_eq!(t.fraction(), 0);
        // Extreme instants never panic.
        let _ = ntp(i64::MIN);
        let _ = ntp(i64::MAX);
        let _ = NtpTimestamp(u64::MAX).to_instant();
        let _ = NtpTimestamp(0).to_instant();
    }
}
