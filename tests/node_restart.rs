//! Scenario: the leader restarts on the same control port (a power cut, an update). The
//! follower notices, reconnects by itself, learns the new leader's clock and stream, and
//! plays again within 2 s of the new leader starting.

#[path = "common/node.rs"]
mod node;

use std::time::{Duration, Instant};

use lockstep::control::Role;
use lockstep::node::TestSource;
use node::*;

#[test]
fn after_a_leader_restart_the_follower_plays_again_within_two_seconds() {
    let first = leader();
    let control = first.control_addr();
    let f = follower(follower_config(&first, Role::Full, -60.0));
    assert!(
        wait_until(Duration::from_secs(3), || f.status().playing).is_some(),
        "plays before the restart: {:?}",
        f.status()
    );
    let ssrc_before = f.session().expect("session").stream.ssrc;
    first.shutdown();
    assert!(
        wait_until(Duration::from_secs(2), || f.session().is_none()).is_some(),
        "the follower notices the leader is gone"
    );

    let second = leader_on(&control.to_string(), Box::new(TestSource::noise(2, 48_000)));
    let started = Instant::now();
    let back = wait_until(Duration::from_secs(5), || {
        f.session().is_some_and(|s| s.stream.ssrc != ssrc_before) && f.status().playing
    });
    assert!(
        back.is_some(),
        "not playing 5 s after the restart: {:?}",
        f.status()
    );
    let took = started.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "played again after {took:?}"
    );
    assert_eq!(f.sessions(), 2);
    // And it really plays the new stream: packets keep coming.
    let before = f.status().packets_received;
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        f.status().packets_received > before + 50,
        "{:?}",
        f.status()
    );
    f.stop().expect("stops");
    second.shutdown();
}
