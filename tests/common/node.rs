//! Helpers for the tests that run real leaders and followers on loopback. Included with
//! `#[path = "common/node.rs"] mod node;`.

#![allow(dead_code)] // each test file uses some of them

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lockstep::control::{HouseholdKey, Role};
use lockstep::node::{
    AudioSource, Follower, FollowerConfig, Leader, LeaderConfig, LocalClock, Output, TestSource,
};
use lockstep::time::Nanos;

/// The household key of these tests.
pub fn key() -> HouseholdKey {
    HouseholdKey::new(b"lockstep test household key 0001").expect("key")
}

/// Another household's key.
pub fn other_key() -> HouseholdKey {
    HouseholdKey::new(b"the neighbours' key, not ours 02").expect("key")
}

/// A leader of group "Test" on 127.0.0.1 (any free port) playing test noise.
pub fn leader() -> Leader {
    leader_on("127.0.0.1:0", Box::new(TestSource::noise(2, 48_000)))
}

/// A leader on `control` playing `source`.
pub fn leader_on(control: &str, source: Box<dyn AudioSource>) -> Leader {
    let mut c = LeaderConfig::new("Test", key(), control.parse().expect("address"));
    c.latency = Nanos::from_millis(100);
    Leader::start(c, source).expect("leader starts")
}

/// A follower config for `leader` with role `role`, model "m1", on a crystal `ppm` fast.
pub fn follower_config(leader: &Leader, role: Role, ppm: f64) -> FollowerConfig {
    let mut c = FollowerConfig::new(leader.control_addr(), key(), role);
    c.model = "m1".into();
    c.clock = LocalClock::Drifting {
        drift_ppm: ppm,
        offset: Nanos::from_millis((ppm * 7.0) as i64),
    };
    c
}

/// Starts a follower, panicking with the error if it cannot join.
pub fn follower(c: FollowerConfig) -> Follower {
    Follower::start(c).unwrap_or_else(|e| panic!("follower joins: {e}"))
}

/// A fresh directory for a test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lockstep-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Waits (at most `limit`) until `f` holds; returns how long it took, or `None`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// A WAV output in `dir`.
pub fn wav(dir: &std::path::Path, name: &str) -> Output {
    Output::Wav(dir.join(name))
}

/// The machine's monotonic clock now, in ns: the clock a real node's recordings and
/// sidecars are on.
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}
