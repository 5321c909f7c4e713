//! Discovery over real mDNS, inside network namespaces the tests make and remove.
//!
//! Three namespaces: `a` holds the speakers, joined by one veth pair to `b` (the browser)
//! and by another to `c`, whose interface discovery is not given. `c` only listens on the
//! mDNS port of its veth: nothing may arrive there. Addresses are in 10.99.0.0/24, and each
//! namespace routes multicast out of its veth. Ignored by default (root and iproute2); run
//! by `.ci/run` with `--ignored`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::*;
use crate::net::NetNs;

/// The speakers' side of the link to the browser.
const A_TO_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The browser's address.
const B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// The speakers' side of the link that discovery is not given.
const A_TO_C: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 65);
/// The listener's address on that link.
const C: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 66);
/// The mDNS group and port.
const MDNS_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const MDNS_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
const MDNS_PORT: u16 = 5353;

/// The three namespaces and the names of `c`'s veth.
struct Lab {
    a: NetNs,
    b: NetNs,
    c: NetNs,
    c_dev: String,
}

fn lab() -> Lab {
    let pid = std::process::id();
    let a = NetNs::create("lockstep-disc").expect("create namespace a");
    let b = NetNs::create("lockstep-disc").expect("create namespace b");
    let c = NetNs::create("lockstep-disc").expect("create namespace c");
    // Names unique to this process and this lab (interface names: at most 15 bytes).
    let tag = a.name().rsplit('-').next().unwrap_or("0").to_owned();
    let (ab, ba) = (format!("ld{pid}{tag}ab"), format!("ld{pid}{tag}ba"));
    let (ac, ca) = (format!("ld{pid}{tag}ac"), format!("ld{pid}{tag}ca"));
    a.veth_to(&b, (&ab, "10.99.0.1/26"), (&ba, "10.99.0.2/26"))
        .expect("veth a-b");
    a.veth_to(&c, (&ac, "10.99.0.65/26"), (&ca, "10.99.0.66/26"))
        .expect("veth a-c");
    a.route_multicast(&ab).expect("route in a");
    b.route_multicast(&ba).expect("route in b");
    c.route_multicast(&ca).expect("route in c");
    Lab { a, b, c, c_dev: ca }
}

/// Sockets in `c` on the mDNS port, joined to both mDNS groups on its veth.
fn listen_in_c(lab: &Lab) -> (Socket, Socket) {
    let dev = lab.c_dev.clone();
    lab.c
        .enter_thread(move || {
            let v4 = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("v4");
            v4.set_reuse_address(true).expect("reuse");
            v4.bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, MDNS_PORT)).into())
                .expect("bind v4");
            v4.join_multicast_v4(&MDNS_V4, &C).expect("join v4");
            v4.set_nonblocking(true).expect("nonblocking");
            let v6 = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).expect("v6");
            v6.set_only_v6(true).expect("v6only");
            v6.set_reuse_address(true).expect("reuse");
            v6.bind(
                &SocketAddr::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, MDNS_PORT, 0, 0)).into(),
            )
            .expect("bind v6");
            let name = std::ffi::CString::new(dev).expect("name");
            // SAFETY: `name` is a valid NUL-terminated string for the call.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert_ne!(index, 0, "no index for c's veth");
            v6.join_multicast_v6(&MDNS_V6, index).expect("join v6");
            v6.set_nonblocking(true).expect("nonblocking");
            (v4, v6)
        })
        .expect("enter c")
}

/// How many datagrams wait on `socks`; drains them.
fn drain(socks: &(Socket, Socket)) -> usize {
    let mut n = 0;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 9000];
    for s in [&socks.0, &socks.1] {
        // Bounded: a socket's receive queue is finite, and so is this loop.
        for _ in 0..10_000 {
            match s.recv(&mut buf) {
                Ok(_) => n += 1,
                Err(_) => break,
            }
        }
    }
    n
}

/// Waits up to `limit` for an event that `want` accepts, skipping others; returns it and
/// the time from `since`.
fn wait_for(
    browser: &mut Browser,
    since: Instant,
    limit: Duration,
    mut want: impl FnMut(&DiscoveryEvent) -> bool,
) -> Option<(DiscoveryEvent, Duration)> {
    let deadline = since + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        if let Some(event) = browser.next_event(left)
            && want(&event)
        {
            return Some((event, since.elapsed()));
        }
    }
}

#[test]
#[ignore = "needs root and iproute2: run by .ci/run with --ignored"]
fn a_speaker_is_listed_within_2_s_follows_its_state_and_is_lost_on_its_goodbye() {
    let lab = lab();
    let heard_in_c = listen_in_c(&lab);
    let mut browser = lab
        .b
        .enter_thread(|| Browser::start(&[B]))
        .expect("enter b")
        .expect("start the browser");

    // A browser next to the speaker, as a speaker looking for its group has: its queries
    // go out on the speaker's side of both links unless the binding holds.
    let neighbour = lab
        .a
        .enter_thread(|| Browser::start(&[A_TO_B]))
        .expect("enter a")
        .expect("start a browser in a");

    let record = SpeakerRecord::new("spk-a", "Kitchen", "Kitchen", "LS-1").unwrap();
    let started = Instant::now();
    let mut speaker = lab
        .a
        .enter_thread(|| Advertiser::start(record, 7800, &[A_TO_B]))
        .expect("enter a")
        .expect("start the advertiser");
    let (event, listed) = wait_for(&mut browser, started, Duration::from_secs(2), |e| {
        matches!(e, DiscoveryEvent::Discovered(_))
    })
    .expect("the speaker was not listed within 2 s of its start");
    println!("discovery: listed {listed:?} after the advertiser's start (target <= 2 s)");
    let DiscoveryEvent::Discovered(info) = event else {
        unreachable!()
    };
    assert_eq!(info.id(), "spk-a");
    assert_eq!(info.record.name, "Kitchen");
    assert_eq!(info.record.model, "LS-1");
    assert_eq!(info.record.state, PlayState::Idle);
    assert_eq!(info.record.group, None);
    assert_eq!(info.port, 7800);
    assert_eq!(info.addresses, [A_TO_B], "only the address it was given");
    assert_eq!(browser.speakers().len(), 1);
    assert!(browser.groups().is_empty());

    let changed = Instant::now();
    speaker
        .set_state(PlayState::Leading, Some("Downstairs"))
        .expect("lead");
    let (event, seen) = wait_for(
        &mut browser,
        changed,
        Duration::from_secs(2),
        |e| matches!(e, DiscoveryEvent::Updated(i) if i.record.state == PlayState::Leading),
    )
    .expect("the state change was not seen within 2 s");
    println!("discovery: idle -> leading seen after {seen:?}");
    let DiscoveryEvent::Updated(info) = event else {
        unreachable!()
    };
    assert_eq!(info.record.group.as_deref(), Some("Downstairs"));
    let groups = browser.groups();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0].name, "Downstairs");
    assert_eq!(groups[0].leaders, ["spk-a"]);
    assert_eq!(groups[0].members, ["spk-a"]);
    // An advertiser keeps its speaker: another id is refused and nothing changes.
    let stranger = SpeakerRecord::new("spk-b", "Hall", "", "LS-1").unwrap();
    let err = speaker.update(stranger).unwrap_err();
    assert!(matches!(err, DiscoveryError::OtherSpeaker { .. }), "{err}");
    assert_eq!(speaker.record().state, PlayState::Leading);
    let err = speaker.set_state(PlayState::Following, None).unwrap_err();
    assert!(
        matches!(err, DiscoveryError::Record(TxtError::NoGroup { .. })),
        "{err}"
    );
    assert_eq!(speaker.record().group.as_deref(), Some("Downstairs"));

    // A browser that starts later (`household ls`) finds the speaker by its query. The
    // speaker multicast its records just now (the update), and a responder multicasts a
    // record at most once a second (RFC 6762, section 6), so the answer waits for the
    // querier's second query, a second after its first: the worst case. Once the speaker
    // has been quiet for a second, the first query is answered.
    for (case, quiet) in [
        ("just after an announcement", false),
        ("quiet speaker", true),
    ] {
        if quiet {
            std::thread::sleep(Duration::from_millis(1200));
        }
        let asked = Instant::now();
        let mut late = lab
            .b
            .enter_thread(|| Browser::start(&[B]))
            .expect("enter b")
            .expect("start a later browser");
        let (event, answered) = wait_for(&mut late, asked, Duration::from_secs(2), |e| {
            matches!(e, DiscoveryEvent::Discovered(_))
        })
        .expect("a browser started later did not list the speaker within 2 s");
        println!("discovery: a browser started later listed it after {answered:?} ({case})");
        let DiscoveryEvent::Discovered(info) = event else {
            unreachable!()
        };
        assert_eq!(info.record.state, PlayState::Leading);
        assert_eq!(late.groups(), groups);
        late.stop().expect("stop the later browser");
    }

    let stopping = Instant::now();
    speaker.stop().expect("stop the advertiser");
    let (event, lost) = wait_for(&mut browser, stopping, Duration::from_secs(3), |e| {
        matches!(e, DiscoveryEvent::Lost(_))
    })
    .expect("the speaker was not lost within 3 s of its goodbye");
    println!("discovery: lost {lost:?} after the goodbye");
    assert_eq!(event, DiscoveryEvent::Lost("spk-a".to_owned()));
    assert!(browser.speakers().is_empty());
    assert!(browser.groups().is_empty());
    assert_eq!(browser.counters(), DiscoveryCounters::default());

    // A speaker that restarts and at once announces its new state is listed again (with a
    // uniqueness probe, its own new record looked like a rival's: it renamed itself and
    // vanished).
    let record = SpeakerRecord::new("spk-a", "Kitchen", "Kitchen", "LS-1").unwrap();
    let first = lab
        .a
        .enter_thread(|| Advertiser::start(record.clone(), 7800, &[A_TO_B]))
        .expect("enter a")
        .expect("start the advertiser again");
    wait_for(&mut browser, Instant::now(), Duration::from_secs(3), |e| {
        matches!(e, DiscoveryEvent::Discovered(_))
    })
    .expect("listed again after its first return");
    // Restarts that take 0 to 300 ms: the new announcement (after its probes) lands on
    // either side of the goodbye's expiry.
    let mut current = first;
    for pause_ms in [0u64, 100, 200, 300] {
        let restarted = Instant::now();
        current.stop().expect("stop it");
        std::thread::sleep(Duration::from_millis(pause_ms));
        let r = record.clone();
        current = lab
            .a
            .enter_thread(|| Advertiser::start(r, 7800, &[A_TO_B]))
            .expect("enter a")
            .expect("restart the advertiser");
        // As a speaker node does: it follows its group again at once.
        current
            .set_state(PlayState::Following, Some("Downstairs"))
            .expect("follow again");
        // Whatever comes meanwhile (its loss), it is listed 4 s on.
        while restarted.elapsed() < Duration::from_secs(4) {
            browser.next_event(Duration::from_millis(100));
        }
        assert!(
            browser.speaker("spk-a").is_some(),
            "a speaker restarted after {pause_ms} ms is not listed 4 s on: {:?}",
            browser.speakers()
        );
    }
    println!("discovery: a speaker restarted after 0 to 300 ms is listed 4 s on");
    current.stop().expect("stop the restarted advertiser");

    // Nothing went out on the link discovery was not given...
    neighbour.stop().expect("stop the browser in a");
    assert_eq!(drain(&heard_in_c), 0, "mDNS on an interface not given");
    // ...though the listener there hears mDNS when it is sent there: a speaker given that
    // link is heard within 2 s.
    let record = SpeakerRecord::new("spk-c", "Hall", "", "LS-1").unwrap();
    let other = lab
        .a
        .enter_thread(|| Advertiser::start(record, 7801, &[A_TO_C]))
        .expect("enter a")
        .expect("start the control advertiser");
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut heard = 0;
    while heard == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        heard += drain(&heard_in_c);
    }
    assert!(
        heard > 0,
        "the listener in c hears nothing even when spoken to"
    );
    other.stop().expect("stop the control advertiser");
    browser.stop().expect("stop the browser");
}

/// Registers `instance` of `service_type` with `txt` on a daemon bound to `A_TO_B`.
fn register_raw(daemon: &ServiceDaemon, service_type: &str, instance: &str, txt: &[(&str, &str)]) {
    let mut info = ServiceInfo::new(
        service_type,
        instance,
        &format!("{instance}.local."),
        IpAddr::V4(A_TO_B),
        7900,
        txt,
    )
    .expect("service info");
    info.set_requires_probe(false);
    daemon.register(info).expect("register");
}

#[test]
#[ignore = "needs root and iproute2: run by .ci/run with --ignored"]
fn foreign_and_malformed_advertisements_are_ignored_and_counted() {
    let lab = lab();
    let mut browser = lab
        .b
        .enter_thread(|| Browser::start(&[B]))
        .expect("enter b")
        .expect("start the browser");
    let daemon = lab
        .a
        .enter_thread(|| start_daemon(interface_kinds(&[A_TO_B])?))
        .expect("enter a")
        .expect("start a raw daemon");
    let v = crate::control::PROTOCOL_VERSION.to_string();
    let next = (crate::control::PROTOCOL_VERSION + 1).to_string();
    let long = "n".repeat(100);
    let good = [
        ("lv", v.as_str()),
        ("id", "good"),
        ("name", "Good"),
        ("room", ""),
        ("model", "m"),
        ("state", "idle"),
    ];
    // Another service type: the daemon never hands it to the browser.
    register_raw(&daemon, "_http._tcp.local.", "printer", &[("path", "/")]);
    // Another program's instance of our type: foreign.
    register_raw(&daemon, SERVICE_TYPE, "other", &[("path", "/")]);
    // An unknown state and a lying instance name: malformed.
    let mut bad_state = good;
    bad_state[1].1 = "bad";
    bad_state[5].1 = "playing";
    register_raw(&daemon, SERVICE_TYPE, "bad", &bad_state);
    let mut liar = good;
    liar[1].1 = "someone-else";
    register_raw(&daemon, SERVICE_TYPE, "liar", &liar);
    // A name over its cap: oversized.
    let mut big = good;
    big[1].1 = "big";
    big[2].1 = long.as_str();
    register_raw(&daemon, SERVICE_TYPE, "big", &big);
    // Another protocol version: incompatible.
    let mut newer = good;
    newer[0].1 = next.as_str();
    newer[1].1 = "newer";
    register_raw(&daemon, SERVICE_TYPE, "newer", &newer);
    register_raw(&daemon, SERVICE_TYPE, "good", &good);

    let want = DiscoveryCounters {
        foreign: 1,
        malformed: 2,
        oversized: 1,
        incompatible: 1,
        over_limit: 0,
        resubscribed: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut events = Vec::new();
    while Instant::now() < deadline && (browser.counters() != want || browser.speakers().is_empty())
    {
        if let Some(e) = browser.next_event(Duration::from_millis(100)) {
            events.push(e);
        }
    }
    // Anything more that was on its way.
    while let Some(e) = browser.next_event(Duration::from_millis(500)) {
        events.push(e);
    }
    println!("discovery: counters {:?}", browser.counters());
    assert_eq!(browser.counters(), want, "events: {events:?}");
    let ids: Vec<&str> = browser.speakers().iter().map(|s| s.id()).collect();
    assert_eq!(ids, ["good"], "events: {events:?}");
    assert!(
        events
            .iter()
            .all(|e| matches!(e, DiscoveryEvent::Discovered(i) if i.id() == "good")),
        "{events:?}"
    );
    shutdown(&daemon).expect("stop the raw daemon");
    browser.stop().expect("stop the browser");
}
