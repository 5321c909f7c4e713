//! Scenarios: the media and the clock between lockstep nodes are authenticated by default,
//! with each session's own keys; a follower refuses a leader that does not protect them
//! unless it is configured to accept that, and then its status says so.
//!
//! The attacks themselves (forged and replayed RTP and PTP, sniffed on `lo`) are in
//! `node_attack.rs`, which needs root.

#[path = "common/node.rs"]
mod node;

use std::time::Duration;

use lockstep::control::{Protection, Role};
use lockstep::core::CoreError;
use lockstep::node::{Follower, Leader, LeaderConfig, NodeError, TestSource};
use lockstep::time::Nanos;
use node::*;

fn leader_with(protection: Protection) -> Leader {
    let mut c = LeaderConfig::new("Test", key(), "127.0.0.1:0".parse().expect("address"));
    c.latency = Nanos::from_millis(100);
    c.protection = protection;
    Leader::start(c, Box::new(TestSource::noise(2, 48_000))).expect("leader starts")
}

#[test]
fn a_joined_follower_plays_authenticated_media_on_an_authenticated_clock() {
    let leader = leader();
    let f = follower(follower_config(&leader, Role::Full, 25.0));
    assert!(
        wait_until(Duration::from_secs(3), || f.status().playing).is_some(),
        "{:?}",
        f.status()
    );
    let before = f.status().packets_received;
    std::thread::sleep(Duration::from_millis(500));
    let st = f.status();
    assert!(
        st.packets_received > before + 50,
        "protected packets pass: {st}"
    );
    assert!(st.media_authenticated, "{st}");
    assert!(st.clock_authenticated, "{st}");
    assert_eq!(st.media_rejected.total(), 0, "{st}");
    assert_eq!(st.clock_rejected.total(), 0, "{st}");
    assert!(!st.to_string().contains("UNAUTHENTICATED"), "{st}");
    // The leader's master checked every Delay_Req under the session's key.
    let ptp = leader.stats().ptp;
    assert_eq!(ptp.auth.total(), 0, "{ptp:?}");
    assert!(ptp.received > 10, "{ptp:?}");
    f.stop().expect("stops");
}

#[test]
fn a_follower_refuses_a_leader_that_does_not_authenticate_unless_told_to_accept_it() {
    for (protection, what) in [
        (Protection::NONE, "media and clock"),
        (
            Protection {
                media: None,
                clock: true,
            },
            "media",
        ),
        (
            Protection {
                clock: false,
                ..Protection::default()
            },
            "clock",
        ),
    ] {
        let leader = leader_with(protection);
        match Follower::start(follower_config(&leader, Role::Full, 0.0)) {
            Err(NodeError::Stream(e @ CoreError::Unauthenticated { what: w })) => {
                assert_eq!(w, what);
                let text = e.to_string();
                assert!(text.contains("not authenticated"), "{text}");
            }
            other => panic!("expected a refusal of the unauthenticated {what}, got {other:?}"),
        }

        // Told to accept it, the follower plays, and says what is not authenticated.
        let mut c = follower_config(&leader, Role::Full, 0.0);
        c.accept_unauthenticated = true;
        let f = follower(c);
        assert!(
            wait_until(Duration::from_secs(3), || f.status().playing).is_some(),
            "{:?}",
            f.status()
        );
        let st = f.status();
        assert_eq!(st.media_authenticated, protection.media.is_some(), "{st}");
        assert_eq!(st.clock_authenticated, protection.clock, "{st}");
        let line = st.to_string();
        assert!(line.contains(&format!("UNAUTHENTICATED {what}")), "{line}");
        f.stop().expect("stops");
    }
}
