//! Scenarios: a `LeaderCore` driven by hand, with no socket, no thread and no clock. A
//! `FollowerCore` from the same crate is the other end; the nonces are chosen here, so the
//! handshake is deterministic, and time is whatever the test says it is.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lockstep::control::{
    Capabilities, CodecId, GroupSecret, Hello, HouseholdKey, PeerPorts, Refusal, Role,
    SessionError, StreamParams,
};
use lockstep::core::{
    Channel, ConnId, CoreEvent, FollowerCore, FollowerCoreConfig, GROUP_KEY_SWITCH, LeaderCore,
    LeaderCoreConfig, LeaderCoreEvent, LeaderError, PtpPeer,
};
use lockstep::media::ntp::NtpTimestamp;
use lockstep::media::sender::{HEADER_LEN, NTP_OFFSET, SenderConfig};
use lockstep::media::{AudioFormat, CodecKind};
use lockstep::ptp::wire::{Body, Message};
use lockstep::ptp::{ClockIdentity, MasterConfig, PortIdentity, PtpPort, SlaveConfig};
use lockstep::time::{LeaderInstant, LocalInstant, Nanos};

const RATE: u32 = 48_000;
const LATENCY: Nanos = Nanos::from_millis(60);
const FOLLOWER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const LEADER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 319);
const PORTS: PeerPorts = PeerPorts {
    rtp: 40_000,
    ptp_event: 40_001,
    ptp_general: 40_002,
};
const CONN: ConnId = ConnId(7);

fn key() -> HouseholdKey {
    HouseholdKey::new(b"the household key of the test!").expect("key")
}

fn stream() -> StreamParams {
    StreamParams {
        codec: CodecId::L24,
        sample_rate: RATE,
        channels: 2,
        payload_type: 96,
        ssrc: 0x1234_5678,
        rtp_port: 5004,
        multicast: None,
        ptp_event_port: 319,
        ptp_general_port: 320,
        target_latency: LATENCY,
        ptime: Nanos::from_millis(5),
        protection: lockstep::control::Protection::default(),
    }
}

/// The test leader's config, telling followers `stream`.
fn leader_config(stream: StreamParams) -> LeaderCoreConfig<SocketAddr> {
    let format = AudioFormat::new(RATE, 2).expect("format");
    let mut sc = SenderConfig::new(CodecKind::L24, format, 0x1234_5678);
    sc.ptime_ms = Some(5);
    let master = MasterConfig::new(ClockIdentity([0, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1]));
    LeaderCoreConfig::new("kitchen", key(), stream, sc, master)
}

fn leader(now: LocalInstant) -> LeaderCore<SocketAddr> {
    LeaderCore::new(leader_config(stream()), now).expect("a leader")
}

fn follower(key: HouseholdKey) -> FollowerCore<SocketAddr> {
    follower_as(key, 9, "Kitchen", [2; 16])
}

/// A follower core of clock identity ending `id`, named `name`, that says Hello with
/// `nonce`.
fn follower_as(key: HouseholdKey, id: u8, name: &str, nonce: [u8; 16]) -> FollowerCore<SocketAddr> {
    let port = PortIdentity {
        clock_identity: ClockIdentity([2, 0, 0, 0xff, 0xfe, 0, 0, id]),
        port_number: 1,
    };
    let mut f = FollowerCore::new(FollowerCoreConfig::new(SlaveConfig::new(port)), Role::Full);
    let hello = Hello {
        caps: Capabilities {
            model: "bookshelf".into(),
            name: name.into(),
            channels: 2,
            max_rate: 96_000,
            output_latency: Nanos::ZERO,
        },
        role: Role::Full,
        group: "kitchen".into(),
        ports: PORTS,
    };
    f.connect(hello, key, nonce).expect("a Hello");
    f
}

fn control_addr() -> SocketAddr {
    SocketAddr::new(FOLLOWER_IP, 50_000)
}

/// Moves control bytes both ways until neither side has any; returns the leader's events.
fn shuttle(
    l: &mut LeaderCore<SocketAddr>,
    f: &mut FollowerCore<SocketAddr>,
    now: LocalInstant,
) -> Vec<LeaderCoreEvent> {
    shuttle_on(l, f, CONN, now)
}

/// Moves control bytes both ways between `l`'s connection `conn` and `f` until neither has
/// any; returns the leader's events.
fn shuttle_on(
    l: &mut LeaderCore<SocketAddr>,
    f: &mut FollowerCore<SocketAddr>,
    conn: ConnId,
    now: LocalInstant,
) -> Vec<LeaderCoreEvent> {
    let mut events = Vec::new();
    for _ in 0..20 {
        let mut moved = false;
        while let Some(bytes) = f.poll_control_transmit() {
            let _ = l.handle_control(conn, now, &bytes);
            moved = true;
        }
        while let Some(bytes) = l.poll_control_transmit(conn) {
            f.handle_control(&bytes);
            moved = true;
        }
        while let Some(e) = l.poll_event() {
            events.push(e);
        }
        if !moved {
            break;
        }
    }
    events
}

/// A leader with one joined follower, at `now`.
fn joined(now: LocalInstant) -> (LeaderCore<SocketAddr>, FollowerCore<SocketAddr>) {
    let mut l = leader(now);
    let mut f = follower(key());
    l.handle_connect(CONN, now, control_addr(), [1; 16])
        .expect("a free slot");
    let events = shuttle(&mut l, &mut f, now);
    assert_eq!(events, vec![LeaderCoreEvent::Joined { conn: CONN, id: 1 }]);
    assert!(
        matches!(f.poll_event(), Some(CoreEvent::Joined(w)) if w.session == 1 && w.stream == stream())
    );
    (l, f)
}

/// The RTP datagrams of one drain, with their destinations.
fn drain_rtp(l: &mut LeaderCore<SocketAddr>, now: LocalInstant) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut rtp = Vec::new();
    while let Some(tx) = l.poll_transmit(now) {
        if tx.channel == Channel::Rtp {
            rtp.push((tx.to, tx.payload.to_vec()));
        }
    }
    rtp
}

fn at_ms(ms: i64) -> LocalInstant {
    LocalInstant::from_nanos(1_000_000_000 + ms * 1_000_000)
}

#[test]
fn a_follower_joins_and_gets_the_clock_and_the_stream_stamped_with_the_leader_time() {
    let t0 = at_ms(0);
    let (mut l, _f) = joined(t0);
    let rtp_dest = SocketAddr::new(FOLLOWER_IP, PORTS.rtp);
    let peer = PtpPeer {
        event: SocketAddr::new(FOLLOWER_IP, PORTS.ptp_event),
        general: SocketAddr::new(FOLLOWER_IP, PORTS.ptp_general),
    };
    assert_eq!(l.media_dests(), &[rtp_dest]);
    assert_eq!(l.clock().peers(), &[peer]);
    let members = l.members();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].name.as_str(), members[0].addr),
        ("Kitchen", control_addr())
    );

    // The clock: at 3 ms past the start the new peer's burst begins, stamped then.
    let now = at_ms(3);
    l.handle_timeout(now);
    let mut sync = None;
    let mut follow_up = None;
    while let Some(tx) = l.poll_transmit(now) {
        let msg = Message::parse(tx.payload).expect("a PTP message");
        match (msg.body, tx.channel) {
            (Body::Sync { origin_timestamp }, Channel::Ptp { port, tag }) => {
                assert_eq!((tx.to, port), (peer.event, PtpPort::Event));
                assert!(tag.is_some(), "an event message carries a tag");
                sync = Some(origin_timestamp.to_instant().expect("a time"));
            }
            (
                Body::FollowUp {
                    precise_origin_timestamp,
                },
                Channel::Ptp { port, .. },
            ) => {
                assert_eq!((tx.to, port), (peer.general, PtpPort::General));
                follow_up = Some(precise_origin_timestamp.to_instant().expect("a time"));
            }
            (_, Channel::Ptp { .. }) => {}
            (_, other) => panic!("only PTP is due at 3 ms, got {other:?}"),
        }
    }
    let leader_now = LeaderInstant::from_nanos(now.as_nanos());
    assert_eq!(sync, Some(leader_now), "the Sync is stamped when polled");
    assert_eq!(
        follow_up,
        Some(leader_now),
        "its Follow_Up carries that time"
    );

    // The media: the first chunk is captured during [t0, t0 + 5 ms) and due at its end.
    assert_eq!(l.poll_media_timeout(), at_ms(5));
    assert!(
        l.poll_media(at_ms(4)).is_none(),
        "nothing is due before 5 ms"
    );
    for k in 0..3i64 {
        let now = at_ms(5 * (k + 1));
        let chunk = l.poll_media(now).expect("a chunk is due");
        assert_eq!(chunk.captured, at_ms(5 * k));
        let play_at = LeaderInstant::from_nanos((at_ms(5 * k) + LATENCY).as_nanos());
        assert_eq!(chunk.play_at, play_at);
        assert_eq!((chunk.frames, chunk.channels), (240, 2));
        let pcm = vec![0.25f32; chunk.frames * chunk.channels];
        assert_eq!(l.handle_media(now, &chunk, &pcm).expect("sent"), 1);
        let rtp = drain_rtp(&mut l, now);
        assert_eq!(rtp.len(), 1, "one packet to the one follower");
        let (to, p) = &rtp[0];
        assert_eq!(*to, rtp_dest);
        // SRTP: the header in clear, the payload encrypted, a 10-byte tag after it.
        assert_eq!(p.len(), HEADER_LEN + 240 * 2 * 3 + 10);
        let payload = &p[HEADER_LEN..HEADER_LEN + 240 * 2 * 3];
        assert!(
            payload.chunks(3).filter(|s| *s == [0x20, 0, 0]).count() < 10,
            "the samples (0.25 each, 0x200000 in L24) do not travel in clear"
        );
        let ntp = u64::from_be_bytes(p[NTP_OFFSET..NTP_OFFSET + 8].try_into().expect("8"));
        assert_eq!(ntp, NtpTimestamp::from_instant(play_at).0);
        // The media clock: the leader clock in RTP ticks (offset 0).
        let ts = u32::from_be_bytes(p[4..8].try_into().expect("4"));
        assert_eq!(
            ts,
            (i128::from(play_at.as_nanos()) * i128::from(RATE) / 1_000_000_000) as u32
        );
        assert!(l.poll_media(now).is_none(), "one chunk per 5 ms");
    }
}

#[test]
fn a_follower_with_the_wrong_key_is_refused_and_gets_nothing() {
    let now = at_ms(0);
    let mut l = leader(now);
    let mut f = follower(HouseholdKey::new(b"a key of another household").expect("key"));
    l.handle_connect(CONN, now, control_addr(), [1; 16])
        .expect("a free slot");
    let hello = f.poll_control_transmit().expect("a Hello");
    l.handle_control(CONN, now, &hello).expect("a Challenge");
    f.handle_control(&l.poll_control_transmit(CONN).expect("a Challenge"));
    let auth = f.poll_control_transmit().expect("an Auth");
    let refused = l.handle_control(CONN, now, &auth);
    assert!(
        matches!(refused, Err(LeaderError::Refused(Refusal::WrongKey))),
        "{refused:?}"
    );
    assert!(l.is_closed(CONN), "the connection is to be closed");
    assert_eq!(
        l.poll_event(),
        Some(LeaderCoreEvent::Refused {
            conn: CONN,
            refusal: Refusal::WrongKey
        })
    );
    // The refusal travels before the close.
    f.handle_control(&l.poll_control_transmit(CONN).expect("a refusal"));
    assert!(matches!(
        f.poll_event(),
        Some(CoreEvent::Failed(SessionError::Refused(Refusal::WrongKey)))
    ));
    assert_eq!(l.stats().refused_wrong_key, 1);
    assert!(l.members().is_empty() && l.media_dests().is_empty() && l.clock().peers().is_empty());
    let chunk = l.poll_media(at_ms(5)).expect("the stream runs");
    l.handle_media(at_ms(5), &chunk, &[0.0; 480])
        .expect("pushed");
    assert!(drain_rtp(&mut l, at_ms(5)).is_empty(), "nobody to send to");
    l.handle_disconnect(CONN);
    assert!(l.connections().next().is_none());
}

#[test]
fn a_follower_that_leaves_is_no_destination_and_no_peer() {
    let (mut l, mut f) = joined(at_ms(0));
    f.leave().expect("joined");
    let events = shuttle(&mut l, &mut f, at_ms(2));
    assert_eq!(events, vec![LeaderCoreEvent::Left { conn: CONN, id: 1 }]);
    assert!(l.is_closed(CONN));
    assert!(l.media_dests().is_empty() && l.clock().peers().is_empty());
    assert!(l.members().is_empty());
    // No more clock or stream for it.
    for ms in [5, 10, 15] {
        let now = at_ms(ms);
        l.handle_timeout(now);
        if let Some(chunk) = l.poll_media(now) {
            l.handle_media(now, &chunk, &[0.1; 480]).expect("pushed");
        }
        assert!(l.poll_transmit(now).is_none(), "nothing is sent at {ms} ms");
    }
    assert!(matches!(
        l.set_volume(1, 0.5),
        Err(LeaderError::UnknownFollower { id: 1 })
    ));
}

#[test]
fn pause_stops_the_stream_and_resume_carries_on_from_the_current_time() {
    let (mut l, mut f) = joined(at_ms(0));
    let chunk = l.poll_media(at_ms(5)).expect("due");
    l.handle_media(at_ms(5), &chunk, &[0.1; 480])
        .expect("pushed");
    assert_eq!(drain_rtp(&mut l, at_ms(5)).len(), 1);
    l.pause();
    assert!(l.is_paused());
    shuttle(&mut l, &mut f, at_ms(6));
    assert!(f.steering().3, "the follower was told to pause");
    for ms in (10..=100).step_by(5) {
        assert!(l.poll_media(at_ms(ms)).is_none(), "no media at {ms} ms");
    }
    assert!(drain_rtp(&mut l, at_ms(100)).is_empty());
    l.resume();
    shuttle(&mut l, &mut f, at_ms(101));
    assert!(!f.steering().3, "the follower was told to resume");
    let chunk = l.poll_media(at_ms(105)).expect("media again");
    // The chunks of the pause passed unsent; the grid is the same.
    assert_eq!(chunk.captured, at_ms(100));
    l.handle_media(at_ms(105), &chunk, &[0.1; 480])
        .expect("pushed");
    let rtp = drain_rtp(&mut l, at_ms(105));
    assert_eq!(rtp.len(), 1);
    assert_eq!(
        rtp[0].1[1] & 0x80,
        0x80,
        "the marker bit flags the discontinuity"
    );
    assert_eq!(l.sender().stats().resyncs, 1);
}

#[test]
fn commands_reach_the_follower_and_are_checked() {
    let (mut l, mut f) = joined(at_ms(0));
    assert_eq!(l.set_volume(1, 0.5).expect("set"), CONN);
    l.set_mute(1, true).expect("set");
    l.set_trim(1, Nanos::from_millis(3)).expect("set");
    shuttle(&mut l, &mut f, at_ms(1));
    assert_eq!(f.steering(), (0.5, true, Nanos::from_millis(3), false));
    let m = &l.members()[0];
    assert_eq!(
        (m.volume, m.muted, m.trim),
        (0.5, true, Nanos::from_millis(3))
    );
    assert!(matches!(
        l.set_volume(1, 1.5),
        Err(LeaderError::OutOfRange {
            field: "volume",
            ..
        })
    ));
    assert!(matches!(
        l.set_trim(1, Nanos::from_millis(101)),
        Err(LeaderError::OutOfRange { field: "trim", .. })
    ));
    assert!(matches!(
        l.pair(1, 2),
        Err(LeaderError::UnknownFollower { id: 2 })
    ));
}

/// A datagram on its way, in leader time.
struct Flight {
    arrives: i64,
    to_follower: bool,
    from: SocketAddr,
    bytes: Vec<u8>,
}

#[test]
fn the_leader_core_and_a_follower_core_agree_on_the_time_over_a_fixed_delay() {
    // The follower's crystal is 3.2 s behind the leader's and runs 50 ppm fast; each way the
    // network takes 400 µs.
    let follower_clock =
        |leader_ns: i64| LocalInstant::from_nanos(leader_ns - 3_200_000_000 + leader_ns / 20_000);
    let delay = 400_000i64;
    let start = 1_000_000_000i64;
    let (mut l, mut f) = joined(LocalInstant::from_nanos(start));
    let peer_event = SocketAddr::new(FOLLOWER_IP, PORTS.ptp_event);
    let peer_general = SocketAddr::new(FOLLOWER_IP, PORTS.ptp_general);
    let mut flights: Vec<Flight> = Vec::new();
    let step = 250_000i64;
    let mut worst_late = 0i64;
    for i in 0..(30_000_000_000 / step) {
        let t = start + i * step;
        // Deliver what has arrived, at its own arrival time.
        flights.sort_by_key(|f| f.arrives);
        while flights.first().is_some_and(|f| f.arrives <= t) {
            let d = flights.remove(0);
            if d.to_follower {
                let _ = f.handle_ptp(LEADER, follower_clock(d.arrives), &d.bytes);
            } else {
                l.handle_ptp(d.from, LocalInstant::from_nanos(d.arrives), &d.bytes)
                    .expect("the leader takes its peer's datagram");
            }
        }
        let now = LocalInstant::from_nanos(t);
        l.handle_timeout(now);
        while let Some(tx) = l.poll_transmit(now) {
            assert!(matches!(tx.channel, Channel::Ptp { .. }), "no media polled");
            flights.push(Flight {
                arrives: t + delay,
                to_follower: true,
                from: LEADER,
                bytes: tx.payload.to_vec(),
            });
        }
        let local = follower_clock(t);
        f.handle_timeout(local);
        while let Some(tx) = f.poll_transmit(local) {
            let from = if tx.port == PtpPort::Event {
                peer_event
            } else {
                peer_general
            };
            flights.push(Flight {
                arrives: t + delay,
                to_follower: false,
                from,
                bytes: tx.payload().to_vec(),
            });
        }
        if t > start + 20_000_000_000
            && let Some(est) = f.estimate()
        {
            let err = est.to_leader(local).as_nanos() - t;
            worst_late = worst_late.max(err.abs());
        }
    }
    let est = f.estimate().expect("the follower has an estimate");
    assert!(
        l.ptp_stats().exchanges > 100,
        "the leader answered the follower's Delay_Reqs"
    );
    assert!(
        worst_late < 2_000,
        "the follower's idea of the leader's time is within 2 µs over the last 10 s, worst {worst_late} ns"
    );
    assert!(
        (est.rate_ppm + 50.0).abs() < 0.5,
        "the rate is the crystal's -50 ppm as the leader sees it, got {}",
        est.rate_ppm
    );
}

#[test]
fn garbage_gives_typed_errors_never_a_panic() {
    let now = at_ms(0);
    let mut l = leader(now);
    // Control bytes that do not frame: a typed refusal, and the connection is to close.
    l.handle_connect(CONN, now, control_addr(), [1; 16])
        .expect("a free slot");
    let r = l.handle_control(CONN, now, &[0xff; 64]);
    assert!(matches!(r, Err(LeaderError::Refused(_))), "{r:?}");
    assert!(l.is_closed(CONN));
    assert!(
        l.poll_control_transmit(CONN).is_some(),
        "the refusal is queued"
    );
    assert!(matches!(
        l.handle_control(ConnId(99), now, b"hello"),
        Err(LeaderError::UnknownConnection { conn: ConnId(99) })
    ));
    assert!(matches!(
        l.handle_connect(CONN, now, control_addr(), [3; 16]),
        Err(LeaderError::DuplicateConnection { .. })
    ));
    // A stream of pseudo-random inputs on fresh connections: each is either taken (a frame
    // not whole yet) or refused with a type, never a panic.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut refused = 0;
    for n in 0..300u64 {
        let conn = ConnId(1_000 + n);
        l.handle_disconnect(ConnId(999 + n));
        l.handle_connect(conn, now, control_addr(), [4; 16])
            .expect("a free slot");
        let len = (n % 97) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        match l.handle_control(conn, now, &bytes) {
            Ok(()) => {}
            Err(LeaderError::Refused(_)) => refused += 1,
            Err(e) => panic!("an unexpected error: {e}"),
        }
    }
    assert!(
        refused > 200,
        "most garbage is refused at once, got {refused}"
    );
    assert!(l.members().is_empty());
    // PTP garbage: from a stranger, and (a joined peer's) bytes that do not parse.
    assert!(matches!(
        l.handle_ptp(LEADER, now, &[0; 10]),
        Err(LeaderError::UnknownPeer)
    ));
    let (mut l, _f) = joined(now);
    let peer = SocketAddr::new(FOLLOWER_IP, PORTS.ptp_event);
    assert!(matches!(
        l.handle_ptp(peer, now, &[0xff; 3]),
        Err(LeaderError::Ptp(_))
    ));
    // PCM that is not whole frames.
    let chunk = l.poll_media(at_ms(5)).expect("due");
    assert!(matches!(
        l.handle_media(at_ms(5), &chunk, &[0.0; 3]),
        Err(LeaderError::Media(_))
    ));
}

#[test]
fn a_multicast_stream_goes_once_to_the_group_and_to_each_static_destination_with_reports() {
    let now = at_ms(0);
    let mut config = leader_config(stream());
    let group: SocketAddr = "239.69.0.1:5004".parse().expect("an address");
    let player: SocketAddr = "10.0.0.9:6000".parse().expect("an address");
    config.multicast = Some(group);
    config.dests = vec![player];
    config.rtcp = true;
    // A protected multicast stream needs the secret its group keys come from.
    assert!(matches!(
        LeaderCore::new(config.clone(), now),
        Err(LeaderError::OutOfRange {
            field: "group_secret",
            ..
        })
    ));
    config.group_secret = Some(GroupSecret::new([9; 32]));
    let mut l = LeaderCore::new(config, now).expect("a leader");
    let mut f = follower(key());
    l.handle_connect(CONN, now, control_addr(), [1; 16])
        .expect("a free slot");
    shuttle(&mut l, &mut f, now);
    assert_eq!(l.members().len(), 1);
    // A joined follower takes the stream from the group, not a copy of its own.
    assert_eq!(l.media_dests(), &[group, player]);
    let chunk = l.poll_media(at_ms(5)).expect("due");
    l.handle_media(at_ms(5), &chunk, &[0.0; 480])
        .expect("pushed");
    let mut sent = Vec::new();
    while let Some(tx) = l.poll_media_transmit() {
        sent.push((tx.channel, tx.to));
    }
    let report_to: SocketAddr = "10.0.0.9:6001".parse().expect("an address");
    assert_eq!(
        sent,
        vec![
            (Channel::Rtp, group),
            (Channel::Rtp, player),
            (Channel::Rtcp, report_to)
        ]
    );
    // The next report is a second later.
    let chunk = l.poll_media(at_ms(10)).expect("due");
    l.handle_media(at_ms(10), &chunk, &[0.0; 480])
        .expect("pushed");
    let mut channels = Vec::new();
    while let Some(tx) = l.poll_media_transmit() {
        channels.push(tx.channel);
    }
    assert_eq!(channels, vec![Channel::Rtp, Channel::Rtp]);
}

/// Every slot taken by handshakes that never finish: a new connection is refused while they
/// are young, and takes the oldest one's slot once it has waited `evict_after`; a joined
/// follower's slot is never taken.
#[test]
fn idle_handshakes_give_their_slots_up_but_joined_followers_keep_theirs() {
    let now = at_ms(0);
    let (mut l, _f) = joined(now);
    let max = 64;
    // The joined follower holds one slot; idle connections take the rest, 1 ms apart.
    for n in 1..max as u64 {
        let r = l.handle_connect(ConnId(100 + n), at_ms(n as i64), control_addr(), [5; 16]);
        assert_eq!(r.expect("a free slot"), None);
    }
    // Full, and every handshake younger than 500 ms: refused, counted.
    let r = l.handle_connect(ConnId(500), at_ms(300), control_addr(), [6; 16]);
    assert!(matches!(r, Err(LeaderError::Busy { max: 64 })), "{r:?}");
    assert_eq!(l.stats().refused_busy, 1);
    // Later, each new connection takes the oldest idle handshake's slot, in order.
    for n in 1..=3u64 {
        let r = l.handle_connect(ConnId(600 + n), at_ms(1_000), control_addr(), [7; 16]);
        assert_eq!(r.expect("a slot given up"), Some(ConnId(100 + n)));
        assert!(l.is_closed(ConnId(100 + n)));
    }
    assert_eq!(l.stats().evicted, 3);
    assert!(l.is_joined(CONN), "the joined follower keeps its slot");
    assert_eq!(l.connections().count(), max);
    // A connection given up may still send (its thread had not seen the close): unknown.
    assert!(matches!(
        l.handle_control(ConnId(101), at_ms(1_001), b"late"),
        Err(LeaderError::UnknownConnection { .. })
    ));
    // With only joined followers and fresh handshakes left, nothing can be given up.
    let mut n = 0;
    while l
        .handle_connect(ConnId(700 + n), at_ms(1_000), control_addr(), [8; 16])
        .is_ok()
    {
        n += 1;
        assert!(n < 100, "slots without end");
    }
    assert!(l.is_joined(CONN));
}

/// Chunk `k` of media (5 ms each, from 5 ms on): the datagrams to the multicast group.
fn group_packets(l: &mut LeaderCore<SocketAddr>, k: i64) -> Vec<Vec<u8>> {
    let now = at_ms(5 * k);
    let mut out = Vec::new();
    while let Some(chunk) = l.poll_media(now) {
        l.handle_media(now, &chunk, &[0.25; 480]).expect("pushed");
        while let Some(tx) = l.poll_media_transmit() {
            if tx.channel == Channel::Rtp {
                out.push(tx.payload.to_vec());
            }
        }
    }
    out
}

/// A protected multicast stream: every member gets the group key over its session; when a
/// member leaves, the others get the next epoch's key and the stream switches to it, without
/// a packet lost; the member that left cannot read the stream after the switch, a packet of
/// the old epoch sent again is a replay, and an altered one a bad tag.
#[test]
fn a_protected_multicast_stream_changes_its_key_when_a_member_leaves() {
    let now = at_ms(0);
    let mut s = stream();
    s.multicast = Some("239.69.0.1:5004".parse().expect("a group"));
    let mut config = leader_config(s);
    config.multicast = Some("239.69.0.1:5004".parse().expect("a group"));
    config.group_secret = Some(GroupSecret::new([0x42; 32]));
    let mut l = LeaderCore::new(config, now).expect("a leader");
    assert_eq!(l.group_epoch(), Some(1));

    let member = |n: u8| follower_as(key(), n, &format!("Speaker {n}"), [n; 16]);
    let (stay, leave) = (ConnId(1), ConnId(2));
    let mut a = member(3);
    let mut b = member(4);
    for (conn, f, port) in [(stay, &mut a, 50_001), (leave, &mut b, 50_002)] {
        l.handle_connect(
            conn,
            now,
            SocketAddr::new(FOLLOWER_IP, port),
            [conn.0 as u8; 16],
        )
        .expect("a free slot");
        shuttle_on(&mut l, f, conn, now);
        assert!(f.is_joined());
        assert!(f.media_authenticated());
        assert_eq!(f.group_epoch(), Some(1), "the key came with the welcome");
    }
    let mut k = 1;
    let mut sent = 0;
    for _ in 0..20 {
        for p in group_packets(&mut l, k) {
            a.handle_rtp(at_ms(5 * k), &p);
            b.handle_rtp(at_ms(5 * k), &p);
            sent += 1;
        }
        k += 1;
    }
    assert_eq!(sent, 20);
    assert_eq!(a.media_rejections().total(), 0);
    assert_eq!(b.media_rejections().total(), 0);
    let an_old_packet = group_packets(&mut l, k).remove(0);
    a.handle_rtp(at_ms(5 * k), &an_old_packet);
    k += 1;

    // One member leaves: the other gets epoch 2's key at once.
    b.leave().expect("joined");
    shuttle_on(&mut l, &mut b, leave, at_ms(5 * k));
    assert_eq!(l.members().len(), 1);
    assert_eq!(l.stats().group_key_rotations, 1);
    shuttle_on(&mut l, &mut a, stay, at_ms(5 * k));
    assert_eq!(l.group_epoch(), Some(1), "not switched yet");

    let mut after_switch = 0;
    for _ in 0..(GROUP_KEY_SWITCH.as_nanos() / 5_000_000 + 20) {
        for p in group_packets(&mut l, k) {
            a.handle_rtp(at_ms(5 * k), &p);
            let before = b.media_rejections().total();
            b.handle_rtp(at_ms(5 * k), &p);
            if l.group_epoch() == Some(2) {
                after_switch += 1;
                assert_eq!(
                    b.media_rejections().total(),
                    before + 1,
                    "the member that left cannot read epoch 2"
                );
            }
        }
        k += 1;
    }
    assert_eq!(l.group_epoch(), Some(2));
    assert!(after_switch >= 19, "{after_switch} packets under epoch 2");
    assert_eq!(
        a.group_epoch(),
        Some(2),
        "the member that stayed switched too"
    );
    assert_eq!(
        a.media_rejections().total(),
        0,
        "not one packet lost at the switch: {}",
        a.media_rejections()
    );

    // Epoch 1's packet again: a replay. A packet of epoch 2 altered: a bad tag.
    a.handle_rtp(at_ms(5 * k), &an_old_packet);
    assert_eq!(a.media_rejections().replay, 1, "{}", a.media_rejections());
    let mut altered = group_packets(&mut l, k).remove(0);
    altered[HEADER_LEN + 20] ^= 1;
    a.handle_rtp(at_ms(5 * k), &altered);
    assert_eq!(a.media_rejections().bad_tag, 1, "{}", a.media_rejections());
}
