//! The demo's group (a stereo pair, a subwoofer and a full-range speaker, each on a
//! crystal of its own) on real sockets and threads, through the impairment relay: every
//! follower's PTP and RTP cross a simulated network path. Skew is measured from outside,
//! by cross-correlating the recordings with the sync meter.

#[path = "common/node.rs"]
mod node;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lockstep::control::Role;
use lockstep::measure::{GroupSkew, measure_recordings, recording};
use lockstep::node::FollowerReport;
use lockstep::relay::{Relay, RelayConfig, RelayStats};
use lockstep::sim::PathConfig;
use lockstep::time::TrueInstant;
use node::*;

/// The demo's speakers: role, file, crystal (ppm).
const SPEAKERS: [(Role, &str, f64); 4] = [
    (Role::Left, "left.wav", 120.0),
    (Role::Right, "right.wav", -80.0),
    (Role::Sub, "sub.wav", 40.0),
    (Role::Full, "kitchen.wav", -150.0),
];

struct Run {
    skew: GroupSkew,
    reports: Vec<FollowerReport>,
    relay: RelayStats,
    /// The addresses the leader saw its followers at.
    seen_at: Vec<IpAddr>,
}

/// Plays the demo's group through a relay on `path` for `seconds`, and measures the skew
/// between the speakers that play the full band (not the subwoofer) from `measure_from_s`
/// after the first sample on.
fn group_through_relay(name: &str, path: PathConfig, seconds: u64, measure_from_s: f64) -> Run {
    let dir = temp_dir(name);
    let leader = leader();
    let relay = Relay::start(RelayConfig::new(leader.control_addr(), path, 1)).expect("relay");
    let followers: Vec<_> = SPEAKERS
        .iter()
        .map(|&(role, file, ppm)| {
            let mut c = follower_config(&leader, role, ppm);
            c.leader = relay.control_addr();
            // Where the follower's control connection comes from, as the relay expects.
            c.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
            c.output = wav(&dir, file);
            follower(c)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    let seen_at = leader.followers().iter().map(|f| f.addr.ip()).collect();
    let reports: Vec<FollowerReport> = followers
        .into_iter()
        .map(|f| f.stop().expect("follower stops"))
        .collect();
    leader.shutdown();
    let relay = relay.stop();
    let first = reports
        .iter()
        .filter_map(|r| r.first_sample_ns)
        .min()
        .expect("a speaker played");
    let full: Vec<_> = SPEAKERS
        .iter()
        .filter(|s| s.0 != Role::Sub)
        .map(|s| recording(s.1, &dir.join(s.1)))
        .collect();
    let skew = measure_recordings(
        &full,
        TrueInstant::from_nanos(first + (measure_from_s * 1e9) as i64),
        None,
    )
    .expect("the recordings overlap");
    std::fs::remove_dir_all(&dir).ok();
    Run {
        skew,
        reports,
        relay,
        seen_at,
    }
}

fn print(label: &str, run: &Run) {
    let s = &run.skew;
    println!(
        "{label}: skew p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs (target p99 ≤ 20 µs)",
        s.p50_us, s.p99_us, s.max_us
    );
    for p in &s.pairs {
        println!(
            "  {} vs {}: p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs, {} windows",
            p.a, p.b, p.p50_us, p.p99_us, p.max_us, p.windows
        );
    }
    for r in &run.reports {
        println!("  {}", r.status);
    }
    println!("  relay: {:?}", run.relay.to_follower);
    println!("  relay: {:?}", run.relay.to_leader);
}

/// What holds whatever the network: every speaker played, through its own path, and the
/// relay carried (and impaired) both directions.
fn assert_played_through_the_relay(run: &Run, seconds: u64) {
    assert_eq!(run.relay.paths.len(), SPEAKERS.len(), "{:?}", run.relay);
    assert_eq!(run.relay.unknown_source, 0, "{:?}", run.relay);
    let faces: HashSet<_> = run.seen_at.iter().collect();
    assert_eq!(
        faces.len(),
        SPEAKERS.len(),
        "the leader saw {:?}",
        run.seen_at
    );
    assert!(
        run.seen_at
            .iter()
            .all(|ip| *ip != IpAddr::V4(Ipv4Addr::LOCALHOST))
    );
    for (r, s) in run.reports.iter().zip(&SPEAKERS) {
        assert!(r.status.playing, "{:?} stopped: {}", s.0, r.status);
        // At least most of the run's audio left the DAC.
        let want = (seconds as f64 - 3.0) * 48_000.0;
        assert!(
            r.frames as f64 >= want,
            "{:?} played {} frames",
            s.0,
            r.frames
        );
    }
    for (d, name) in [
        (&run.relay.to_follower, "to followers"),
        (&run.relay.to_leader, "to the leader"),
    ] {
        assert!(
            d.forwarded > 0 && d.overflow == 0 && d.send_errors == 0,
            "{name}: {d:?}"
        );
    }
}

/// A short run on a LAN, in every `cargo test`: the relay carries a real group.
#[test]
fn the_demo_group_plays_in_step_through_the_relay_on_a_lan() {
    let seconds = 10;
    let run = group_through_relay("relay-lan", PathConfig::lan(), seconds, 5.0);
    print("lan, 10 s", &run);
    assert_played_through_the_relay(&run, seconds);
    assert!(
        run.skew.pairs.iter().all(|p| p.windows >= 5),
        "{:?}",
        run.skew.pairs
    );
    // The LAN preset's 0.1 % loss hits some of the ~8000 media datagrams.
    assert!(
        run.relay.to_follower.dropped > 0,
        "{:?}",
        run.relay.to_follower
    );
    assert!(
        run.skew.p99_us <= 1000.0,
        "skew p99 {:.2} µs, max {:.2} µs",
        run.skew.p99_us,
        run.skew.max_us
    );
}

/// The run: 60 s on the `wifi` preset. The target is the simulator's figure, p99
/// ≤ 20 µs; the test asserts only a generous bound and prints what it measured.
#[test]
#[ignore = "60 s of real time on the wifi preset; .ci/run runs it"]
fn the_demo_group_plays_in_step_through_the_relay_on_wifi_for_60_s() {
    let seconds = 60;
    let run = group_through_relay("relay-wifi", PathConfig::wifi(), seconds, 10.0);
    print("wifi, 60 s", &run);
    assert_played_through_the_relay(&run, seconds);
    // wifi loses 1 % and spikes 3 % of the datagrams each way.
    let down = &run.relay.to_follower;
    assert!(
        down.dropped * 200 > down.received && down.dropped * 50 < down.received,
        "{down:?}"
    );
    assert!(
        run.skew.pairs.iter().all(|p| p.windows >= 50),
        "{:?}",
        run.skew.pairs
    );
    assert!(
        run.skew.p99_us <= 1000.0,
        "skew p99 {:.2} µs, max {:.2} µs",
        run.skew.p99_us,
        run.skew.max_us
    );
}
