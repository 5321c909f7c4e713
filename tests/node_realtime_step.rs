//! Scenario: the machine's wall clock steps while a group plays. An administrator or NTP
//! sets `CLOCK_REALTIME` back by a second, and later forward again; lockstep counts in
//! `CLOCK_MONOTONIC`, which does not step, and the kernel's packet timestamps (which are on
//! `CLOCK_REALTIME`) are moved onto it as they arrive. Measured from the audio, the two
//! followers stay within the group's target (20 µs) of each other across both steps, with
//! no underrun.
//!
//! It sets the clock of the whole machine (for about 4 s, then puts it back to within a
//! few microseconds of where it would have been), so it needs root and is ignored by
//! default; `.ci/run` runs it.

#[path = "common/node.rs"]
mod node;

use std::time::Duration;

use lockstep::control::Role;
use lockstep::measure::{measure_recordings, recording};
use lockstep::time::TrueInstant;
use node::*;

fn read(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn set_realtime(ns: i64) -> std::io::Result<()> {
    let ts = libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000),
    };
    // SAFETY: `ts` is a valid timespec.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Puts the wall clock back where it would be without the test's steps, however the test
/// ends: its reading at the start, plus the monotonic time since.
struct WallClock {
    realtime: i64,
    monotonic: i64,
}

impl WallClock {
    fn save() -> WallClock {
        let monotonic = read(libc::CLOCK_MONOTONIC);
        WallClock {
            realtime: read(libc::CLOCK_REALTIME),
            monotonic,
        }
    }

    /// Sets the wall clock `by` ns away from where it should be.
    fn step_to(&self, by: i64) {
        let now = self.realtime + (read(libc::CLOCK_MONOTONIC) - self.monotonic);
        set_realtime(now + by).expect("CLOCK_REALTIME set (needs root)");
    }
}

impl Drop for WallClock {
    fn drop(&mut self) {
        self.step_to(0);
    }
}

#[test]
#[ignore = "sets the machine's wall clock: needs root; .ci/run runs it"]
fn a_step_of_the_wall_clock_goes_unnoticed() {
    let dir = temp_dir("realtime-step");
    let leader = leader();
    let mut a = follower_config(&leader, Role::Full, 90.0);
    a.output = wav(&dir, "a.wav");
    let a = follower(a);
    let mut b = follower_config(&leader, Role::Full, -110.0);
    b.output = wav(&dir, "b.wav");
    let b = follower(b);
    for f in [&a, &b] {
        assert!(
            wait_until(Duration::from_secs(5), || f.status().playing).is_some(),
            "plays: {:?}",
            f.status()
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let from = TrueInstant::from_nanos(read(libc::CLOCK_MONOTONIC));
    let wall = WallClock::save();
    std::thread::sleep(Duration::from_secs(1));
    // Back by a second...
    wall.step_to(-1_000_000_000);
    let stepped = read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC);
    std::thread::sleep(Duration::from_secs(3));
    // ...and forward again.
    drop(wall);
    let restored = read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC);
    assert!(
        (restored - stepped - 1_000_000_000).abs() < 50_000_000,
        "the wall clock did not step: {stepped} then {restored}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let to = TrueInstant::from_nanos(read(libc::CLOCK_MONOTONIC));
    let ra = a.stop().expect("a stops");
    let rb = b.stop().expect("b stops");
    leader.shutdown();

    assert_eq!(ra.status.underruns, 0, "{:?}", ra.status);
    assert_eq!(rb.status.underruns, 0, "{:?}", rb.status);
    let skew = measure_recordings(
        &[
            recording("a", &dir.join("a.wav")),
            recording("b", &dir.join("b.wav")),
        ],
        from,
        Some(to),
    )
    .expect("the recordings overlap");
    eprintln!(
        "across a wall-clock step back by 1 s and forward again: p50 {:.2} µs, p99 {:.2} µs, \
         max {:.2} µs ({} windows)",
        skew.p50_us, skew.p99_us, skew.max_us, skew.pairs[0].windows
    );
    assert!(
        skew.pairs[0].windows >= 10,
        "{} windows",
        skew.pairs[0].windows
    );
    assert!(skew.max_us <= 20.0, "skew max {:.2} µs", skew.max_us);
    std::fs::remove_dir_all(&dir).ok();
}
