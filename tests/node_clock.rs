//! Scenarios: a follower on a clock of the project's own. A well-behaved one (a crystal 50
//! ppm fast, written by the project) plays in step with a follower on lockstep's own
//! simulated crystal. A hostile one that jumps back a second and ahead an hour, and whose
//! sleeps lead a day away, costs wrong readings, counted, and never a panic or a hang.

#[path = "common/node.rs"]
mod node;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lockstep::control::Role;
use lockstep::measure::{Recording, measure_recordings};
use lockstep::node::{Clock, CustomClock, Follower, LocalClock, Output};
use node::*;

/// The project's crystal: `ppm` fast against the machine's monotonic clock.
struct Crystal {
    ppm: f64,
}

impl Clock for Crystal {
    fn reading_at(&self, mono_ns: i64) -> i64 {
        mono_ns + (mono_ns as f64 * self.ppm * 1e-6).round() as i64
    }
    fn monotonic_at(&self, local_ns: i64) -> i64 {
        (local_ns as f64 / (1.0 + self.ppm * 1e-6)).round() as i64
    }
    fn drift_ppm(&self) -> f64 {
        self.ppm
    }
}

#[test]
fn a_follower_on_the_projects_own_clock_plays_in_step() {
    let leader = leader();
    let dir = temp_dir("own-clock");
    let mut own = follower_config(&leader, Role::Full, 0.0);
    own.clock = LocalClock::Custom(CustomClock(Arc::new(Crystal { ppm: 50.0 })));
    own.output = Output::Wav(dir.join("own.wav"));
    let mut usual = follower_config(&leader, Role::Full, -30.0);
    usual.output = Output::Wav(dir.join("usual.wav"));
    let a = follower(own);
    let b = follower(usual);
    std::thread::sleep(Duration::from_secs(6));
    let from = a.clock().to_monotonic(a.clock().now()) - 2_000_000_000;
    assert_eq!(a.clock().rejected(), 0, "a sane clock has nothing refused");
    let ra = a.stop().expect("stops");
    let rb = b.stop().expect("stops");
    // The project's crystal paced its DAC: 50 ppm fast against the monotonic clock.
    assert!(
        (ra.rate_hz / 48_000.0 - 1.0 - 50e-6).abs() < 1e-6,
        "rate {}",
        ra.rate_hz
    );
    let skew = measure_recordings(
        &[
            Recording {
                name: "own".into(),
                wav: ra.wav.expect("wav"),
            },
            Recording {
                name: "usual".into(),
                wav: rb.wav.expect("wav"),
            },
        ],
        lockstep::time::TrueInstant::from_nanos(from),
        None,
    )
    .expect("measured");
    assert!(skew.p99_us < 20.0, "skew p99 {} µs", skew.p99_us);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A clock that lies: every 7th reading a second back, every 11th an hour ahead, and every
/// 5th sleep a day away.
struct Liar {
    calls: AtomicU64,
}

impl Clock for Liar {
    fn reading_at(&self, mono_ns: i64) -> i64 {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        match (n % 7, n % 11) {
            (0, _) => mono_ns - 1_000_000_000,
            (_, 0) => mono_ns + 3_600_000_000_000,
            _ => mono_ns,
        }
    }
    fn monotonic_at(&self, local_ns: i64) -> i64 {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(5) {
            local_ns + 86_400_000_000_000
        } else {
            local_ns
        }
    }
}

#[test]
fn a_clock_that_lies_is_counted_and_never_panics_or_hangs() {
    let leader = leader();
    let mut c = follower_config(&leader, Role::Full, 0.0);
    c.clock = LocalClock::Custom(CustomClock(Arc::new(Liar {
        calls: AtomicU64::new(1),
    })));
    let f: Follower = follower(c);
    std::thread::sleep(Duration::from_secs(3));
    let clock = f.clock();
    assert!(clock.rejected() > 0, "the lies were noticed");
    // Its readings never go backwards.
    let mut last = clock.now();
    for _ in 0..1000 {
        let t = clock.now();
        assert!(t >= last, "{t:?} after {last:?}");
        last = t;
    }
    let began = Instant::now();
    let _ = f.stop();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        began.elapsed()
    );
}
