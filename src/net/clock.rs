//! The two clocks the driver deals in.
//!
//! The kernel stamps packets with `CLOCK_REALTIME`, which an administrator or NTP may step;
//! the rest of lockstep counts in `CLOCK_MONOTONIC`, which never steps. [`realtime_to_monotonic`]
//! moves a kernel timestamp from the first to the second.

use crate::time::NANOS_PER_SEC;

/// Reads `clock` in nanoseconds.
fn read(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    // clock_gettime cannot fail for the two clocks used here (both always exist on Linux), so
    // its return value carries no information.
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    timespec_ns(&ts)
}

/// A timespec in nanoseconds, saturating (kernel values are trusted, but cheaply).
// The conversions are identities on 64-bit Linux but widen time_t and c_long on 32-bit.
#[allow(clippy::useless_conversion)]
pub(crate) fn timespec_ns(ts: &libc::timespec) -> i64 {
    i64::from(ts.tv_sec)
        .saturating_mul(NANOS_PER_SEC)
        .saturating_add(i64::from(ts.tv_nsec))
}

/// Now on `CLOCK_MONOTONIC`, in nanoseconds since an arbitrary point (boot, on Linux).
pub(crate) fn monotonic_ns() -> i64 {
    read(libc::CLOCK_MONOTONIC)
}

/// Now on `CLOCK_REALTIME`, in nanoseconds since the Unix epoch.
pub(crate) fn realtime_ns() -> i64 {
    read(libc::CLOCK_REALTIME)
}

/// Moves a `CLOCK_REALTIME` reading (a kernel packet timestamp) onto `CLOCK_MONOTONIC`.
///
/// It reads the real-time clock between two monotonic readings and takes their midpoint as
/// the monotonic time of the real-time reading. The error is at most half the gap between
/// the two monotonic reads: well under a microsecond, unless the thread is preempted in
/// between, when it can be tens of microseconds, a bias that a PTP exchange would take for
/// path delay. So it tries up to [`MAX_TRIES`] times and keeps the reading with the
/// smallest gap, stopping early at one under [`GOOD_GAP_NS`].
///
/// It assumes the two clocks ran at the same rate between `rt_ns` and this call. They do:
/// NTP slews both alike; only a step of the real-time clock (settimeofday, `chronyc
/// makestep`) in between makes the result wrong, by the size of the step. So convert soon
/// after receipt.
pub(crate) fn realtime_to_monotonic(rt_ns: i64) -> i64 {
    rt_ns.saturating_sub(realtime_offset())
}

/// Moves a `CLOCK_MONOTONIC` reading onto `CLOCK_REALTIME`, with the same care as
/// [`realtime_to_monotonic`] (the in-process test network stamps its datagrams this way, as
/// a kernel would).
#[cfg(test)]
pub(crate) fn monotonic_to_realtime(mono_ns: i64) -> i64 {
    mono_ns.saturating_add(realtime_offset())
}

/// `CLOCK_REALTIME − CLOCK_MONOTONIC` now, from the reading with the smallest gap between
/// its two monotonic reads (see [`realtime_to_monotonic`]).
fn realtime_offset() -> i64 {
    let mut best: Option<(i64, i64)> = None;
    for _ in 0..MAX_TRIES {
        let before = monotonic_ns();
        let rt_now = realtime_ns();
        let after = monotonic_ns();
        let gap = after - before;
        // realtime − monotonic at the instant of the real-time read.
        let offset = rt_now - (before + gap / 2);
        if best.is_none_or(|(g, _)| gap < g) {
            best = Some((gap, offset));
        }
        if gap < GOOD_GAP_NS {
            break;
        }
    }
    best.map_or(0, |(_, o)| o)
}

/// Readings of the two clocks tried at most, per conversion.
const MAX_TRIES: usize = 8;
/// A gap between the monotonic reads below which a reading is taken at once.
const GOOD_GAP_NS: i64 = 1_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_now_converts_to_monotonic_now() {
        let converted = realtime_to_monotonic(realtime_ns());
        let mono = monotonic_ns();
        assert!(
            (mono - converted).abs() < 1_000_000,
            "converted {converted}, monotonic {mono}"
        );
    }

    #[test]
    fn a_past_realtime_stays_as_far_in_the_past() {
        let rt = realtime_ns();
        let a = realtime_to_monotonic(rt);
        let b = realtime_to_monotonic(rt - 5 * NANOS_PER_SEC);
        assert!((a - b - 5 * NANOS_PER_SEC).abs() < 1_000_000, "{}", a - b);
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        realtime_to_monotonic(i64::MIN);
        realtime_to_monotonic(i64::MAX);
    }
}
