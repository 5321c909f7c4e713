//! Scenario: the leader streams to an IPv4 multicast group (AES67 style) instead of to each
//! follower, and two followers that join the group on a named interface play in step. The
//! stream is SRTP under a group key each member gets over its session; a third member
//! joins and leaves, and the others switch to the next key without losing a packet.
//! Runs in a network namespace the test creates (its loopback made multicast-capable), so
//! the multicast never reaches a real interface; ignored by default (needs root and
//! iproute2), run by `.ci/run` with `--ignored`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use crate::control::{HouseholdKey, Role};
use crate::measure::{measure_recordings, recording};
use crate::net::NetNs;
use crate::node::{
    Follower, FollowerConfig, Leader, LeaderConfig, LocalClock, MulticastStream, Output, TestSource,
};
use crate::time::{Nanos, TrueInstant};

#[test]
#[ignore = "needs root and iproute2: run by .ci/run with --ignored"]
fn two_followers_play_a_multicast_stream_in_step() {
    let ns = NetNs::create("lsmcast").expect("a namespace (root and iproute2 needed)");
    let dir = std::env::temp_dir().join(format!("lockstep-mcast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = HouseholdKey::new(b"multicast test household key 123").unwrap();
    let group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 80, 1), 5004);
    let seconds = 6;

    let (leader_stats, reports, stream, rotations) = ns
        .enter_thread(|| {
            let mut lc =
                LeaderConfig::new("Multicast", key.clone(), "127.0.0.1:0".parse().unwrap());
            lc.multicast = Some(MulticastStream {
                group,
                interface: Ipv4Addr::LOCALHOST,
                ttl: 1,
            });
            let leader = Leader::start(lc, Box::new(TestSource::noise(2, 48_000))).expect("leader");
            let followers: Vec<Follower> = [("a.wav", 90.0), ("b.wav", -110.0)]
                .into_iter()
                .map(|(file, ppm)| {
                    let mut c = FollowerConfig::new(leader.control_addr(), key.clone(), Role::Full);
                    c.output = Output::Wav(dir.join(file));
                    c.clock = LocalClock::Drifting {
                        drift_ppm: ppm,
                        offset: Nanos::from_millis(333),
                    };
                    Follower::start(c).expect("follower joins")
                })
                .collect();
            let stream = followers[0].session().expect("session").stream;
            // A third member, which leaves after a second: the others get a new group key.
            let mut c = FollowerConfig::new(leader.control_addr(), key.clone(), Role::Full);
            c.output = Output::Null;
            let third = Follower::start(c).expect("follower joins");
            let sent_before = leader.stats().rtp_packets;
            std::thread::sleep(Duration::from_secs(1));
            let third = third.stop().expect("stops");
            assert!(third.status.media_authenticated, "{}", third.status);
            std::thread::sleep(Duration::from_secs(seconds - 1));
            let sent = leader.stats().rtp_packets - sent_before;
            let rotations = leader.stats().group_key_rotations;
            let reports: Vec<_> = followers
                .into_iter()
                .map(|f| f.stop().expect("stops"))
                .collect();
            leader.shutdown();
            (sent, reports, stream, rotations)
        })
        .expect("ran in the namespace");

    assert_eq!(
        stream.multicast,
        Some(group),
        "the followers were told the group"
    );
    // One datagram per 5 ms packet for the whole group, not one per follower.
    let per_second = leader_stats as f64 / seconds as f64;
    assert!(
        (180.0..=220.0).contains(&per_second),
        "{per_second} datagrams/s for two followers"
    );
    assert_eq!(rotations, 1, "one member left: one new group key");
    for r in &reports {
        assert!(r.status.packets_received > 150 * seconds, "{:?}", r.status);
        assert_eq!(r.status.underruns, 0, "{:?}", r.status);
        // The stream is SRTP under the group key, and the switch lost nothing.
        assert!(r.status.media_authenticated, "{}", r.status);
        assert!(r.status.clock_authenticated, "{}", r.status);
        assert_eq!(r.status.media_rejected.total(), 0, "{}", r.status);
    }
    let from = reports
        .iter()
        .filter_map(|r| r.first_sample_ns)
        .max()
        .expect("both played")
        + 2_000_000_000;
    let skew = measure_recordings(
        &[
            recording("a", &dir.join("a.wav")),
            recording("b", &dir.join("b.wav")),
        ],
        TrueInstant::from_nanos(from),
        None,
    )
    .expect("the recordings overlap");
    assert!(skew.pairs[0].windows >= 5, "{:?}", skew.pairs);
    assert!(skew.max_us <= 20.0, "skew max {:.2} µs", skew.max_us);
    std::fs::remove_dir_all(&dir).ok();
}
