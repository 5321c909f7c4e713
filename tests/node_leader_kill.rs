//! Scenario: the leader's process is killed with SIGKILL (no goodbye, its sockets closed by
//! the kernel) and started again on the same control port, with a new clock and stream.
//! Two followers, each on its own drifting crystal, notice, rejoin by themselves, play again
//! within 2 s of the new leader's start, and are in step with each other within 3 s,
//! measured from their recordings by the sync meter.

#[path = "common/bin.rs"]
mod bin;
#[path = "common/node.rs"]
mod node;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lockstep::control::Role;
use lockstep::measure::{measure_recordings, recording};
use lockstep::node::{FollowerConfig, LocalClock};
use lockstep::time::{Nanos, TrueInstant};
use node::*;

/// A child killed and reaped when dropped, even when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn leader_process(key: &std::path::Path, control: SocketAddr) -> Killed {
    Killed(
        bin::example("leader")
            .args(["--input", "tone", "--group", "Test", "--latency", "100"])
            .args(["--key", key.to_str().expect("utf-8 path")])
            .args(["--control", &control.to_string(), "--seconds", "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the leader starts"),
    )
}

#[test]
fn a_leader_killed_and_restarted_has_its_followers_playing_in_2_s_and_in_step_in_3() {
    bin::build(&["leader"]).expect("the leader example builds");
    let dir = temp_dir("leader-kill");
    let key_file = dir.join("household.key");
    std::fs::write(&key_file, b"lockstep test household key 0001").expect("key file");
    let control = {
        let probe = TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("its address")
    };
    let mut first = leader_process(&key_file, control);
    // The followers keep trying until the leader listens.
    let mut followers = Vec::new();
    for (name, ppm) in [("a", 70.0), ("b", -90.0)] {
        let mut c = FollowerConfig::new(control, key(), Role::Full);
        c.model = "m1".into();
        c.clock = LocalClock::Drifting {
            drift_ppm: ppm,
            offset: Nanos::from_millis((ppm * 7.0) as i64),
        };
        c.output = wav(&dir, &format!("{name}.wav"));
        let mut joined = None;
        let started = Instant::now();
        while joined.is_none() && started.elapsed() < Duration::from_secs(10) {
            match lockstep::node::Follower::start(c.clone()) {
                Ok(f) => joined = Some(f),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        followers.push(joined.expect("a follower joins the leader process"));
    }
    for f in &followers {
        assert!(
            wait_until(Duration::from_secs(5), || f.status().playing).is_some(),
            "plays before the kill: {:?}",
            f.status()
        );
    }
    let ssrc_before = followers[0].session().expect("joined").stream.ssrc;
    std::thread::sleep(Duration::from_secs(1));

    first.0.kill().expect("SIGKILL");
    let _ = first.0.wait();
    let second = leader_process(&key_file, control);
    let restarted = Instant::now();
    let restarted_ns = monotonic_ns();
    let mut back = Vec::new();
    for f in &followers {
        let took = wait_until(Duration::from_secs(5), || {
            f.session().is_some_and(|s| s.stream.ssrc != ssrc_before) && f.status().playing
        });
        back.push(took.map(|_| restarted.elapsed()));
    }
    eprintln!("playing again after the restart: {back:?}");
    for (f, took) in followers.iter().zip(&back) {
        let took = took.unwrap_or_else(|| panic!("not playing 5 s after: {:?}", f.status()));
        assert!(
            took <= Duration::from_secs(2),
            "played again after {took:?}"
        );
    }
    std::thread::sleep(Duration::from_secs(6).saturating_sub(restarted.elapsed()));
    let to = TrueInstant::from_nanos(monotonic_ns());
    let reports: Vec<_> = followers
        .into_iter()
        .map(|f| f.stop().expect("stops"))
        .collect();
    drop(second);
    for r in &reports {
        assert_eq!(r.sessions, 2, "{r:?}");
    }
    let skew = measure_recordings(
        &[
            recording("a", &dir.join("a.wav")),
            recording("b", &dir.join("b.wav")),
        ],
        TrueInstant::from_nanos(restarted_ns + 3_000_000_000),
        Some(to),
    )
    .expect("the recordings overlap after the restart");
    eprintln!(
        "from 3 s after the restart: p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs ({} windows)",
        skew.p50_us, skew.p99_us, skew.max_us, skew.pairs[0].windows
    );
    assert!(
        skew.pairs[0].windows >= 4,
        "{} windows",
        skew.pairs[0].windows
    );
    assert!(skew.max_us <= 20.0, "skew max {:.2} µs", skew.max_us);
    std::fs::remove_dir_all(&dir).ok();
}
