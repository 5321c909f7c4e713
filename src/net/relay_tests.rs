//! The relay on its own: a "leader" and a "follower" that are plain loopback sockets, and
//! every figure measured from outside, on the test's clock.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::*;
use crate::sim::{LinkConfig, Loss};
use crate::time::Nanos;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A relay between two plain sockets: (relay, leader socket, follower socket, where the
/// follower sends to reach the leader, where the leader sends to reach the follower).
fn pair(path: PathConfig, seed: u64) -> (Relay, UdpSocket, UdpSocket, SocketAddr, SocketAddr) {
    let leader = UdpSocket::bind((LOCAL, 0)).unwrap();
    let follower = UdpSocket::bind((LOCAL, 0)).unwrap();
    let (lp, fp) = (
        leader.local_addr().unwrap().port(),
        follower.local_addr().unwrap().port(),
    );
    let relay = Relay::start(RelayConfig::new(SocketAddr::new(LOCAL, 9), path, seed)).unwrap();
    relay.add_leader_ports(&[lp]).unwrap();
    let (i, face) = relay.add_follower(LOCAL, &[fp]).unwrap();
    assert_eq!(i, 0);
    for s in [&leader, &follower] {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
    }
    let to_leader = SocketAddr::new(relay.leader_face(), lp);
    let to_follower = SocketAddr::new(face, fp);
    (relay, leader, follower, to_leader, to_follower)
}

/// Sends `n` numbered datagrams `every` apart from `tx` to `to`, and returns the number of
/// each that `rx` received, in arrival order, with its delay, and the source they came from.
fn run(
    tx: &UdpSocket,
    to: SocketAddr,
    rx: &UdpSocket,
    n: u32,
    every: Duration,
) -> (Vec<(u32, Duration)>, Vec<SocketAddr>) {
    let start = Instant::now();
    let sent_at = |k: u32| start + every * k;
    let rx = rx.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut got, mut from) = (Vec::new(), Vec::new());
        let mut buf = [0u8; 64];
        // Ends when nothing arrives for the read timeout.
        while let Ok((len, src)) = rx.recv_from(&mut buf) {
            if len == 4 {
                let k = u32::from_be_bytes(buf[..4].try_into().unwrap());
                got.push((k, Instant::now()));
                if !from.contains(&src) {
                    from.push(src);
                }
            }
        }
        (got, from)
    });
    for k in 0..n {
        let at = sent_at(k);
        while Instant::now() < at {
            std::thread::sleep(at - Instant::now());
        }
        tx.send_to(&k.to_be_bytes(), to).unwrap();
    }
    let (got, from) = reader.join().unwrap();
    let got = got
        .into_iter()
        .map(|(k, t)| (k, t.saturating_duration_since(sent_at(k))))
        .collect();
    (got, from)
}

#[test]
fn a_datagram_takes_the_links_delay_each_way_and_keeps_its_addresses() {
    let mut path = PathConfig::symmetric(LinkConfig::ideal(Nanos::from_millis(5)));
    path.to_leader.base_delay = Nanos::from_millis(8);
    let (relay, leader, follower, to_leader, to_follower) = pair(path, 1);
    let (up, from) = run(&follower, to_leader, &leader, 100, Duration::from_millis(2));
    assert_eq!(up.len(), 100);
    assert_eq!(
        from,
        vec![to_follower],
        "the leader sees the follower's face"
    );
    let (down, from) = run(
        &leader,
        to_follower,
        &follower,
        100,
        Duration::from_millis(2),
    );
    assert_eq!(down.len(), 100);
    assert_eq!(from, vec![to_leader], "the follower sees the leader's face");
    for (got, want) in [(&up, 8.0), (&down, 5.0)] {
        let mut d: Vec<f64> = got.iter().map(|(_, d)| d.as_secs_f64() * 1e3).collect();
        d.sort_by(f64::total_cmp);
        // Never early; late by the scheduler's wake-up only (a loaded machine's tail
        // aside).
        assert!(
            d[0] >= want - 0.05,
            "earliest {:.3} ms, want {want} ms",
            d[0]
        );
        let median = d[d.len() / 2];
        assert!(
            (want..want + 0.5).contains(&median),
            "median {median:.3} ms, want {want} ms"
        );
    }
    let stats = relay.stop();
    assert_eq!(stats.to_leader.forwarded, 100);
    assert_eq!(stats.to_follower.forwarded, 100);
    assert_eq!(stats.to_follower.dropped, 0);
}

#[test]
fn loss_is_within_the_binomial_bounds_of_its_rate() {
    let path = PathConfig::symmetric(LinkConfig {
        loss: Loss::Random { p: 0.2 },
        ..LinkConfig::ideal(Nanos::from_micros(500))
    });
    let (relay, leader, follower, to_leader, _) = pair(path, 2);
    let n = 2000;
    let (got, _) = run(&follower, to_leader, &leader, n, Duration::from_micros(250));
    // Mean 1600, standard deviation 17.9: five of them either side.
    let received = got.len() as f64;
    assert!(
        (1510.0..=1690.0).contains(&received),
        "{received} of {n} arrived at 20 % loss"
    );
    let stats = relay.stop();
    assert_eq!(stats.to_leader.received, u64::from(n));
    assert_eq!(
        stats.to_leader.dropped + stats.to_leader.forwarded,
        u64::from(n)
    );
    assert_eq!(stats.to_leader.forwarded, got.len() as u64);
}

/// How many times each numbered datagram arrived, through a lossy, duplicating, reordering
/// link seeded with `seed`.
fn decisions(seed: u64) -> (BTreeMap<u32, u32>, RelayStats) {
    let path = PathConfig::symmetric(LinkConfig {
        loss: Loss::Random { p: 0.1 },
        duplicate: 0.1,
        reorder: 0.1,
        reorder_hold: Nanos::from_millis(3),
        ..LinkConfig::ideal(Nanos::from_millis(1))
    });
    let (relay, leader, follower, _, to_follower) = pair(path, seed);
    let (got, _) = run(
        &leader,
        to_follower,
        &follower,
        500,
        Duration::from_millis(1),
    );
    let mut count = BTreeMap::new();
    for (k, _) in got {
        *count.entry(k).or_insert(0) += 1;
    }
    (count, relay.stop())
}

#[test]
fn the_same_seed_makes_the_same_decisions() {
    let (a, sa) = decisions(7);
    let (b, sb) = decisions(7);
    let (c, _) = decisions(8);
    assert_eq!(a, b, "the same seed lost or doubled other datagrams");
    assert_ne!(a, c, "another seed made the same decisions");
    assert!(
        sa.to_follower.dropped > 20 && sa.to_follower.duplicated > 20,
        "{sa:?}"
    );
    assert_eq!(sa.to_follower.dropped, sb.to_follower.dropped);
    assert_eq!(sa.to_follower.duplicated, sb.to_follower.duplicated);
    // Held datagrams are overtaken by the next ones, 1 ms apart.
    assert!(sa.to_follower.reordered > 20, "{sa:?}");
}

#[test]
fn an_outage_drops_everything_in_its_window_and_nothing_outside() {
    let path = PathConfig::symmetric(LinkConfig::ideal(Nanos::from_millis(1)));
    let (relay, leader, follower, _, to_follower) = pair(path, 3);
    // The reader ends after a read timeout's silence: longer than the outage's 300 ms.
    follower
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    // 150 ms to 450 ms from now on the relay's clock; the test's clock reads its own
    // times from the same instant.
    let (relay_now, here) = (relay.now(), Instant::now());
    let window = (Duration::from_millis(150), Duration::from_millis(450));
    relay
        .schedule(
            0,
            Direction::ToFollower,
            LinkChange::Outage {
                at: relay_now + Nanos::from_millis(150),
                until: relay_now + Nanos::from_millis(450),
            },
        )
        .unwrap();
    assert!(matches!(
        relay.schedule(
            1,
            Direction::ToFollower,
            LinkChange::Outage {
                at: relay_now,
                until: relay_now
            }
        ),
        Err(RelayError::UnknownPath(1))
    ));
    let every = Duration::from_millis(2);
    let start = Instant::now();
    let (got, _) = run(&leader, to_follower, &follower, 300, every);
    let offset = start - here;
    let arrived: std::collections::BTreeSet<u32> = got.iter().map(|(k, _)| *k).collect();
    // Each datagram's send time on the relay's clock is known within the sender's few
    // tens of microseconds; a margin of 5 ms either side of each edge covers them.
    let margin = Duration::from_millis(5);
    let (mut inside, mut outside) = (0, 0);
    for k in 0..300u32 {
        let t = offset + every * k;
        if t > window.0 + margin && t + margin < window.1 {
            assert!(!arrived.contains(&k), "datagram {k} got through the outage");
            inside += 1;
        } else if t + margin < window.0 || t > window.1 + margin {
            assert!(
                arrived.contains(&k),
                "datagram {k} was lost outside the outage"
            );
            outside += 1;
        }
    }
    assert!(
        inside > 100 && outside > 100,
        "{inside} inside, {outside} outside"
    );
    let stats = relay.stop();
    assert!(stats.to_follower.dropped >= inside, "{stats:?}");
}

#[test]
fn strangers_are_counted_and_not_forwarded() {
    let path = PathConfig::symmetric(LinkConfig::ideal(Nanos::from_micros(100)));
    let (relay, leader, _follower, to_leader, to_follower) = pair(path, 4);
    let stranger = UdpSocket::bind((LOCAL, 0)).unwrap();
    // To the leader's face from an unknown port, and to the follower's face not from the
    // leader's address.
    stranger.send_to(b"junk", to_leader).unwrap();
    stranger.send_to(b"junk", to_follower).unwrap();
    leader
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(leader.recv_from(&mut buf).is_err(), "the leader got junk");
    let stats = relay.stop();
    // The follower's face only takes the leader's address: the stranger's one is unknown.
    assert_eq!(stats.unknown_source, 2, "{stats:?}");
    assert_eq!(stats.to_leader.received + stats.to_follower.received, 0);
}

#[test]
fn a_leader_off_loopback_is_refused() {
    let config = RelayConfig::new("192.0.2.1:7700".parse().unwrap(), PathConfig::wifi(), 1);
    assert!(matches!(
        Relay::start(config),
        Err(RelayError::NotLoopback { .. })
    ));
}

#[test]
fn a_change_on_a_whole_path_moves_both_directions_and_the_face_names_the_path() {
    let path = PathConfig::symmetric(LinkConfig::ideal(Nanos::from_millis(1)));
    let (relay, leader, follower, to_leader, to_follower) = pair(path, 5);
    assert_eq!(relay.path_at(to_follower.ip()), Some(0));
    assert_eq!(relay.path_at(relay.leader_face()), None);
    let now = relay.now();
    // One that does not validate adds nothing, and an unknown path is refused.
    let backwards = LinkChange::Outage {
        at: now + Nanos::from_millis(10),
        until: now,
    };
    assert!(matches!(
        relay.schedule_path(0, backwards),
        Err(RelayError::Path(_))
    ));
    let step = LinkChange::BaseDelay {
        at: now,
        by: Nanos::from_millis(4),
    };
    assert!(matches!(
        relay.schedule_path(1, step),
        Err(RelayError::UnknownPath(1))
    ));
    relay.schedule_path(0, step).unwrap();
    let every = Duration::from_millis(2);
    let (up, _) = run(&follower, to_leader, &leader, 50, every);
    let (down, _) = run(&leader, to_follower, &follower, 50, every);
    for (got, name) in [(&up, "to the leader"), (&down, "to the follower")] {
        assert_eq!(got.len(), 50, "{name}");
        let mut d: Vec<f64> = got.iter().map(|(_, d)| d.as_secs_f64() * 1e3).collect();
        d.sort_by(f64::total_cmp);
        // 1 ms of link and 4 ms of step: never early, and the earliest late only by the
        // scheduler (the rest may be held up by a busy machine's, or this test's, threads).
        assert!(
            (4.95..5.5).contains(&d[0]),
            "{name}: earliest {:.3} ms, want 5 ms",
            d[0]
        );
    }
    // An outage on the whole path: nothing either way while it lasts.
    let now = relay.now();
    relay
        .schedule_path(
            0,
            LinkChange::Outage {
                at: now,
                until: now + Nanos::from_secs(10),
            },
        )
        .unwrap();
    let (up, _) = run(&follower, to_leader, &leader, 20, every);
    let (down, _) = run(&leader, to_follower, &follower, 20, every);
    assert!(up.is_empty() && down.is_empty(), "{up:?} {down:?}");
    let stats = relay.stop();
    assert_eq!(stats.to_leader.dropped, 20);
    assert_eq!(stats.to_follower.dropped, 20);
}

#[test]
fn a_datagrams_delay_counts_from_its_arrival_not_from_when_the_relay_read_it() {
    let path = PathConfig::symmetric(LinkConfig::ideal(Nanos::from_millis(20)));
    let (relay, leader, follower, _, to_follower) = pair(path, 6);
    follower
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    // The poll thread stalls on the table with a first datagram while a second one waits
    // in the socket for 10 ms.
    let table = lock(&relay.shared.table);
    leader.send_to(b"first", to_follower).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let sent = Instant::now();
    leader.send_to(b"second", to_follower).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    drop(table);
    let mut took = None;
    for _ in 0..2 {
        let (len, _) = follower.recv_from(&mut buf).expect("both arrive");
        if &buf[..len] == b"second" {
            took = Some(sent.elapsed());
        }
    }
    let took = took.expect("the second arrived");
    // 20 ms from its arrival, not from when it was read 10 ms later (a loaded machine's
    // wake-up aside).
    assert!(
        took >= Duration::from_micros(19_950) && took < Duration::from_millis(29),
        "took {took:?}"
    );
    let stats = relay.stop();
    assert_eq!(stats.user_stamps, 0, "{stats:?}");
    assert_eq!(stats.to_follower.forwarded, 2);
}

#[test]
fn datagrams_leave_on_time_and_the_late_ones_are_counted() {
    let path = PathConfig::symmetric(LinkConfig::ideal(Nanos::from_millis(2)));
    let (relay, leader, follower, _, to_follower) = pair(path, 7);
    let (got, _) = run(
        &leader,
        to_follower,
        &follower,
        300,
        Duration::from_millis(1),
    );
    assert_eq!(got.len(), 300);
    let stats = relay.stop();
    // Watching the clock for the last 100 µs, most leave within 20 µs of their time; a
    // sleep's wake-up alone is later than that for most of them on a busy machine. (A
    // preempted thread is late either way.)
    assert!(
        stats.to_follower.late * 2 < stats.to_follower.forwarded,
        "{:?}",
        stats.to_follower
    );
}
