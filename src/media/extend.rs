//! Wrap-around extension of RTP sequence numbers and timestamps.
//!
//! RTP carries a 16-bit sequence number and a 32-bit timestamp, both of which wrap. A receiver
//! wants monotonic 64-bit values it can subtract and compare. [`SequenceExtender`] and
//! [`TimestampExtender`] turn the wire values into such extended values.
//!
//! Each wire value is interpreted as the extended value *nearest* to the highest one seen so
//! far: a difference is read as a signed number of the wire width (forward up to `2^(w-1) - 1`,
//! backward up to `2^(w-1)`). Reordered or late packets from before a wrap therefore map below
//! the wrap, and packets after it map above.
//!
//! The first value fed sets the base: it maps to [`EXTENDED_BASE`]` + value`, i.e. `2^32`
//! plus the wire value. Because the extended value is only ever at most half a wire cycle
//! below the highest one, and the highest one never decreases, an extended value can never
//! underflow. Since `2^32` is a multiple of both wire cycles, the low 16 (or 32) bits of an
//! extended value always equal the wire value.
//!
//! Everything is O(1), allocation-free and panic-free.

/// The offset added to the first wire value fed to an extender (`2^32`).
///
/// Starting here keeps every extended value positive even for packets that arrive reordered
/// from before the first one, and keeps the low bits of an extended value equal to the wire
/// value.
pub const EXTENDED_BASE: u64 = 1 << 32;

/// Extends a `bits`-wide wire value against the highest extended value seen so far.
#[inline]
fn extend_bits(highest: &mut Option<u64>, value: u64, bits: u32) -> u64 {
    let cycle = 1u64 << bits;
    let mask = cycle - 1;
    let value = value & mask;
    match *highest {
        None => {
            let ext = EXTENDED_BASE + value;
            *highest = Some(ext);
            ext
        }
        Some(h) => {
            let d = value.wrapping_sub(h) & mask;
            let diff = if d >= cycle / 2 {
                d as i64 - cycle as i64
            } else {
                d as i64
            };
            let ext = h.wrapping_add_signed(diff);
            if diff > 0 {
                *highest = Some(ext);
            }
            ext
        }
    }
}

/// Extends 16-bit RTP sequence numbers to monotonic 64-bit values.
///
/// See the [module docs](self) for how values are interpreted: the first sequence number `s`
/// maps to `2^32 + s`, and each later one to the value nearest the highest seen so far
/// (forward up to 32767, backward up to 32768).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceExtender {
    highest: Option<u64>,
}

impl SequenceExtender {
    /// A new extender that has seen no packet yet.
    pub const fn new() -> SequenceExtender {
        SequenceExtender { highest: None }
    }

    /// Extends `seq` and returns its 64-bit extended sequence number.
    ///
    /// The highest extended value is updated if `seq` lies ahead of it.
    pub fn extend(&mut self, seq: u16) -> u64 {
        extend_bits(&mut self.highest, u64::from(seq), 16)
    }

    /// The highest extended sequence number seen so far, or `None` before the first packet.
    pub const fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Forgets all history; the next packet sets a new base.
    pub fn reset(&mut self) {
        self.highest = None;
    }
}

/// Extends 32-bit RTP timestamps to monotonic 64-bit values.
///
/// See the [module docs](self) for how values are interpreted: the first timestamp `t` maps to
/// `2^32 + t`, and each later one to the value nearest the highest seen so far (forward up to
/// `2^31 - 1`, backward up to `2^31`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimestampExtender {
    highest: Option<u64>,
}

impl TimestampExtender {
    /// A new extender that has seen no timestamp yet.
    pub const fn new() -> TimestampExtender {
        TimestampExtender { highest: None }
    }

    /// Extends `ts` and returns its 64-bit extended timestamp.
    ///
    /// The highest extended value is updated if `ts` lies ahead of it.
    pub fn extend(&mut self, ts: u32) -> u64 {
        extend_bits(&mut self.highest, u64::from(ts), 32)
    }

    /// The highest extended timestamp seen so far, or `None` before the first timestamp.
    pub const fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Forgets all history; the next timestamp sets a new base.
    pub fn reset(&mut self) {
        self.highest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sets_base_and_low_bits_match() {
        let mut e = SequenceExtender::new();
        assert_eq!(e.highest(), None);
        assert_eq!(e.extend(1234), EXTENDED_BASE + 1234);
        assert_eq!(e.highest(), Some(EXTENDED_BASE + 1234));
        let mut t = TimestampExtender::new();
        assert_eq!(t.extend(0xDEAD_BEEF), EXTENDED_BASE + 0xDEAD_BEEF);
    }

    #[test]
    fn sequence_crossing_wrap_several_times_is_strictly_increasing() {
        let mut e = SequenceExtender::new();
        let mut seq: u16 = 65_000;
        let mut prev = e.extend(seq);
        for _ in 0..(4 * 65_536 + 1_000) {
            seq = seq.wrapping_add(1);
            let x = e.extend(seq);
            assert_eq!(x, prev + 1);
            assert_eq!(x as u16, seq);
            prev = x;
        }
        // Crossed 65535 -> 0 five times.
        assert!(prev > EXTENDED_BASE + 4 * 65_536);
        assert_eq!(e.highest(), Some(prev));
    }

    #[test]
    fn sequence_with_gaps_across_wrap() {
        let mut e = SequenceExtender::new();
        let mut seq: u16 = 60_000;
        let mut prev = e.extend(seq);
        for _ in 0..100 {
            seq = seq.wrapping_add(7_001);
            let x = e.extend(seq);
            assert_eq!(x, prev + 7_001);
            prev = x;
        }
    }

    #[test]
    fn reordered_across_wrap() {
        let mut e = SequenceExtender::new();
        let a = e.extend(65_534);
        let c = e.extend(0);
        let b = e.extend(65_535);
        let d = e.extend(1);
        assert_eq!(b, a + 1);
        assert_eq!(c, a + 2);
        assert_eq!(d, a + 3);
        assert!(a < b && b < c && c < d);
        assert_eq!(e.highest(), Some(d));
    }

    #[test]
    fn late_packet_from_before_wrap() {
        let mut e = SequenceExtender::new();
        let mut seq: u16 = 65_500;
        let first = e.extend(seq);
        for _ in 0..100 {
            seq = seq.wrapping_add(1);
            e.extend(seq);
        }
        let top = e.highest().unwrap();
        assert_eq!(top, first + 100);
        // A late straggler from before the wrap still maps before it.
        let late = e.extend(65_510);
        assert_eq!(late, first + 10);
        assert!(late < top);
        // Late packets do not move the highest value.
        assert_eq!(e.highest(), Some(top));
        // Maximum backward distance: 32768 behind the highest.
        let far = e.extend((top as u16).wrapping_sub(32_768));
        assert_eq!(far, top - 32_768);
    }

    #[test]
    fn reordered_before_first_does_not_underflow() {
        let mut e = SequenceExtender::new();
        let first = e.extend(0);
        assert_eq!(e.extend(65_535), first - 1);
        assert_eq!(e.extend(32_768), first - 32_768);
        let mut t = TimestampExtender::new();
        let first = t.extend(0);
        assert_eq!(t.extend(u32::MAX), first - 1);
        assert_eq!(t.extend(0x8000_0000), first - 0x8000_0000);
    }

    #[test]
    fn start_near_wrap() {
        let mut e = SequenceExtender::new();
        let a = e.extend(65_535);
        assert_eq!(e.extend(0), a + 1);
        assert_eq!(e.extend(65_533), a - 2);
        let mut t = TimestampExtender::new();
        let a = t.extend(u32::MAX - 100);
        assert_eq!(t.extend(200), a + 301);
        assert_eq!(t.extend(u32::MAX - 150), a - 50);
    }

    #[test]
    fn big_forward_jump() {
        let mut e = SequenceExtender::new();
        let a = e.extend(10);
        // Largest forward step: 32767.
        let b = e.extend(10 + 32_767);
        assert_eq!(b, a + 32_767);
        assert_eq!(e.highest(), Some(b));
        // Another 32767 forward crosses the wrap.
        let c = e.extend((10u16 + 32_767).wrapping_add(32_767));
        assert_eq!(c, b + 32_767);
        // A step of exactly 32768 is read as backward.
        let d = e.extend((c as u16).wrapping_add(32_768));
        assert_eq!(d, c - 32_768);
        assert_eq!(e.highest(), Some(c));

        let mut t = TimestampExtender::new();
        let a = t.extend(5);
        let b = t.extend(5 + 0x7FFF_FFFF);
        assert_eq!(b, a + 0x7FFF_FFFF);
    }

    #[test]
    fn timestamp_across_2_pow_32_at_48k() {
        let mut t = TimestampExtender::new();
        let mut ts: u32 = u32::MAX - 240 * 1_000 + 17;
        let mut prev = t.extend(ts);
        let start = prev;
        for i in 1..=3_000u64 {
            ts = ts.wrapping_add(240);
            let x = t.extend(ts);
            assert_eq!(x, prev + 240);
            assert_eq!(x, start + 240 * i);
            assert_eq!(x as u32, ts);
            prev = x;
        }
        assert!(prev >= 2 * EXTENDED_BASE);
        // A late timestamp from before the wrap.
        let late = t.extend(u32::MAX - 240 * 10 + 17);
        assert_eq!(late, start + 240 * 990);
    }

    #[test]
    fn reset_forgets() {
        let mut e = SequenceExtender::new();
        e.extend(100);
        e.extend(200);
        e.reset();
        assert_eq!(e.highest(), None);
        assert_eq!(e.extend(7), EXTENDED_BASE + 7);
        let mut t = TimestampExtender::new();
        t.extend(100);
        t.reset();
        assert_eq!(t.highest(), None);
        assert_eq!(t.extend(9), EXTENDED_BASE + 9);
    }
}
