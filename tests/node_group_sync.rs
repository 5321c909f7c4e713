//! Scenario: a leader and two followers on loopback, each follower on its own drifting
//! crystal, play for 10 s; the second joins the running stream 2 s after the first. Their
//! recordings, cross-correlated by the sync meter, must agree within a few microseconds,
//! from one second after the late joiner arrived.

#[path = "common/node.rs"]
mod node;

use std::time::Duration;

use lockstep::control::Role;
use lockstep::measure::{measure_recordings, recording};
use node::*;

#[test]
fn two_followers_play_in_step_and_a_late_joiner_is_in_sync_within_a_second() {
    let dir = temp_dir("group-sync");
    let leader = leader();
    let mut a = follower_config(&leader, Role::Full, 120.0);
    a.output = wav(&dir, "a.wav");
    let a = follower(a);
    std::thread::sleep(Duration::from_secs(2));
    let mut b = follower_config(&leader, Role::Full, -150.0);
    b.output = wav(&dir, "b.wav");
    let b = follower(b);
    std::thread::sleep(Duration::from_secs(8));
    let ra = a.stop().expect("a stops");
    let rb = b.stop().expect("b stops");
    leader.shutdown();

    assert_eq!(ra.status.underruns, 0, "{:?}", ra.status);
    assert_eq!(rb.status.underruns, 0, "{:?}", rb.status);
    // The late joiner's recording starts when it joined; from 1 s after that on, every
    // window counts.
    let b_first = rb.first_sample_ns.expect("b emitted");
    let skew = measure_recordings(
        &[
            recording("a", &dir.join("a.wav")),
            recording("b", &dir.join("b.wav")),
        ],
        lockstep::time::TrueInstant::from_nanos(b_first + 1_000_000_000),
        None,
    )
    .expect("the recordings overlap");
    let pair = &skew.pairs[0];
    assert!(pair.windows >= 10, "only {} windows measured", pair.windows);
    // The target is 20 µs (one sample at 48 kHz); on loopback with kernel timestamps it is
    // far smaller. Bound the test at the target so a busy machine does not fail it.
    assert!(
        skew.max_us <= 20.0,
        "skew p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs",
        skew.p50_us,
        skew.p99_us,
        skew.max_us
    );
    std::fs::remove_dir_all(&dir).ok();
}
