//! The sans-IO master and slave talking to each other, driven by hand in virtual time.

use lockstep::ptp::{
    Body, ClockIdentity, Header, MasterConfig, Message, MessageType, PortIdentity, PtpError,
    PtpMaster, PtpPort, PtpSlave, PtpStats, PtpTimestamp, RejectReason, SlaveConfig, Transmit,
    WireError,
};
use lockstep::time::{LeaderInstant, LocalInstant, Nanos};

const LEADER_ADDR: u8 = 0;
const FOLLOWER_ADDR: u8 = 1;

fn master_id() -> ClockIdentity {
    ClockIdentity([0, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1])
}

fn slave_port() -> PortIdentity {
    PortIdentity {
        clock_identity: ClockIdentity([2, 0, 0, 0xff, 0xfe, 0, 0, 2]),
        port_number: 1,
    }
}

/// The follower's clock reads the leader's minus 2.5 ms; each way takes 300 µs.
const OFFSET: i64 = 2_500_000;
const DELAY: i64 = 300_000;

fn local(leader_ns: i64) -> LocalInstant {
    LocalInstant::from_nanos(leader_ns - OFFSET)
}

fn drain<A: Copy>(out: &mut Vec<Transmit<A>>, mut f: impl FnMut() -> Option<Transmit<A>>) {
    while let Some(t) = f() {
        out.push(t);
    }
}

/// What a run produced.
struct Run {
    slave: PtpSlave<u8>,
    master: PtpStats,
    exchanges: Vec<lockstep::clock::Exchange>,
    /// Every datagram the master sent, with its leader send time.
    sent: Vec<(i64, Transmit<u8>)>,
}

/// Leader time at which every run starts.
const START: i64 = 1_700_000_000_000_000_000;

/// Runs master and slave over a perfect, symmetric link for `secs`, returning what the slave
/// completed and every datagram the master sent with its leader send time.
fn run_ideal(secs: i64) -> Run {
    run_link(MasterConfig::new(master_id()), secs, true, |_, _| {})
}

/// [`run_ideal`] with the master configured by `config`, `step(leader ns, slave)` called at
/// every step before the slave is polled, and the slave's Signaling dropped on the way to the
/// master unless `answer_requests` (a master that ignores them, as linuxptp may).
fn run_link(
    config: MasterConfig,
    secs: i64,
    answer_requests: bool,
    mut step: impl FnMut(i64, &mut PtpSlave<u8>),
) -> Run {
    let mut master = PtpMaster::new(config);
    let mut slave = PtpSlave::new(SlaveConfig::new(slave_port()));
    let start = START;
    master.add_slave(FOLLOWER_ADDR, LeaderInstant::from_nanos(start));
    let mut in_flight: Vec<(i64, bool, Transmit<u8>)> = Vec::new(); // (arrival, to_leader, pkt)
    let mut exchanges = Vec::new();
    let mut sent = Vec::new();
    let end = start + secs * 1_000_000_000;
    let mut now = start;
    while now < end {
        // Deliver everything due.
        in_flight.sort_by_key(|p| p.0);
        while in_flight.first().is_some_and(|p| p.0 <= now) {
            let (at, to_leader, pkt) = in_flight.remove(0);
            let signaling = pkt.port == PtpPort::General;
            if to_leader && signaling && !answer_requests {
                continue;
            }
            if to_leader {
                master
                    .handle_receive(FOLLOWER_ADDR, LeaderInstant::from_nanos(at), pkt.payload())
                    .expect("master takes Delay_Req and burst requests");
            } else {
                slave
                    .handle_receive(LEADER_ADDR, local(at), pkt.payload())
                    .expect("slave takes master traffic");
            }
        }
        master.handle_timeout(LeaderInstant::from_nanos(now));
        slave.handle_timeout(local(now));
        let mut out = Vec::new();
        drain(&mut out, || {
            master.poll_transmit(LeaderInstant::from_nanos(now))
        });
        for t in out {
            assert_eq!(t.to, FOLLOWER_ADDR);
            sent.push((now, t));
            in_flight.push((now + DELAY, false, t));
        }
        step(now, &mut slave);
        let mut out = Vec::new();
        drain(&mut out, || slave.poll_transmit(local(now)));
        for t in out {
            assert_eq!(t.to, LEADER_ADDR);
            let kind = Message::parse(t.payload()).unwrap().body.message_type();
            let expected = match kind {
                MessageType::DelayReq => PtpPort::Event,
                MessageType::Signaling => PtpPort::General,
                other => panic!("a slave sent {other}"),
            };
            assert_eq!(t.port, expected);
            in_flight.push((now + DELAY, true, t));
        }
        while let Some(ex) = slave.poll_exchange() {
            exchanges.push(ex);
        }
        // Next step: the earliest of the master's deadline, a delivery, or 1 ms.
        let mut next = now + 1_000_000;
        if let Some(t) = master.poll_timeout() {
            next = next.min(t.as_nanos().max(now + 1));
        }
        if let Some(p) = in_flight.iter().map(|p| p.0).min() {
            next = next.min(p.max(now + 1));
        }
        now = next;
    }
    Run {
        slave,
        master: *master.stats(),
        exchanges,
        sent,
    }
}

/// Exchanges completed in each whole second of a run.
fn exchanges_per_second(exchanges: &[lockstep::clock::Exchange], secs: i64) -> Vec<usize> {
    let mut counts = vec![0; secs as usize];
    for ex in exchanges {
        // t1 is on the leader's clock, which the run starts at START.
        let s = (ex.t1.as_nanos() - START) / 1_000_000_000;
        if let Some(c) = counts.get_mut(s as usize) {
            *c += 1;
        }
    }
    counts
}

/// A master with no start burst: steady 16 Syncs a second from the first.
fn steady_master() -> MasterConfig {
    let mut config = MasterConfig::new(master_id());
    config.burst_count = 0;
    config
}

#[test]
fn a_first_request_bursts_for_two_seconds_then_tapers_and_a_later_one_bursts_for_two() {
    // The follower asks at 5 s (its estimator's first request: 10 s), and at 16 s, 17 s
    // and 18 s (2 s each): the second of those is the one in hand, the third is refused.
    let mut asked = [false; 4];
    let run = run_link(steady_master(), 22, true, |now, slave| {
        for (i, at) in [
            5_000_000_000,
            16_000_000_000,
            17_000_000_000,
            18_000_000_000,
        ]
        .into_iter()
        .enumerate()
        {
            if !asked[i] && now >= START + at {
                asked[i] = slave.request_burst(local(now));
            }
        }
    });
    assert_eq!(asked, [true, true, true, true]);
    let per_second = exchanges_per_second(&run.exchanges, 22);
    let near = |s: usize, n: usize| {
        assert!(
            per_second[s].abs_diff(n) <= n / 100 + 2,
            "second {s}: {} exchanges, not {n}: {per_second:?}",
            per_second[s]
        );
    };
    for s in [1, 2, 3, 4, 15, 20, 21] {
        near(s, 16);
    }
    // The master's fastest rate, 384 a second, for 2 s; then half as fast every 2 s...
    for (s, n) in [(5, 384), (6, 384), (7, 192), (8, 192), (9, 96), (10, 96)] {
        near(s, n);
    }
    for s in [11, 12] {
        assert!((40..=50).contains(&per_second[s]), "{per_second:?}");
    }
    // ...and the later requests, 2 s at the fastest rate from 16 s, then from 17 s (the
    // refusal at 18 s changed nothing).
    near(16, 384);
    near(17, 384);
    near(18, 384);

    let slave = *run.slave.stats();
    assert_eq!(
        (
            slave.burst_requests,
            slave.bursts_granted,
            slave.bursts_refused
        ),
        (4, 3, 1)
    );
    assert_eq!(
        (
            run.master.burst_requests,
            run.master.bursts_granted,
            run.master.bursts_refused
        ),
        (4, 3, 1)
    );
    assert_eq!(slave.unexpected + run.master.unexpected, 0);
}

#[test]
fn a_master_that_ignores_burst_requests_breaks_nothing() {
    let mut asked = 0;
    let run = run_link(steady_master(), 8, false, |now, slave| {
        // Asking every second, as a confused estimator might.
        if now >= START + (asked + 1) * 1_000_000_000 && slave.request_burst(local(now)) {
            asked += 1;
        }
    });
    assert!(asked >= 6, "only {asked} requests queued");
    let per_second = exchanges_per_second(&run.exchanges, 8);
    for (s, &n) in per_second.iter().enumerate().skip(1) {
        assert!((15..=17).contains(&n), "second {s}: {n} exchanges");
    }
    let slave = *run.slave.stats();
    assert_eq!(slave.burst_requests, asked as u64);
    assert_eq!((slave.bursts_granted, slave.bursts_refused), (0, 0));
    assert_eq!(slave.incomplete, 0);
    assert_eq!(run.master.burst_requests, 0);
}

#[test]
fn a_perfect_link_gives_exact_exchanges() {
    let Run {
        slave, exchanges, ..
    } = run_ideal(3);
    assert!(exchanges_per_second(&exchanges, 3)[1].abs_diff(384) <= 1);
    assert!(exchanges.len() > 250, "only {} exchanges", exchanges.len());
    for ex in &exchanges {
        assert_eq!(ex.offset(), Nanos(OFFSET));
        assert_eq!(ex.round_trip(), Nanos(2 * DELAY));
        assert_eq!(ex.leader.clock_identity, master_id());
        assert!(ex.t3 >= ex.t2);
    }
    assert_eq!(slave.stats().malformed_total(), 0);
    assert_eq!(slave.master().map(|p| p.clock_identity), Some(master_id()));
}

#[test]
fn master_bursts_at_start_then_keeps_to_sixteen_syncs_a_second() {
    let Run { sent, .. } = run_ideal(90);
    let start = sent[0].0;
    let syncs_in = |from_s: i64, to_s: i64| {
        sent.iter()
            .filter(|(at, t)| {
                t.port == PtpPort::Event
                    && *at >= start + from_s * 1_000_000_000
                    && *at < start + to_s * 1_000_000_000
            })
            .count()
    };
    // The burst tapers: 1024 Syncs each at 384, 192, 96, 48 and 24 a second (ending at
    // 2.7, 8, 18.7, 40 and 82.7 s), then the steady 16.
    let stages = [(0, 384), (1, 384), (3, 192), (7, 192), (9, 96), (17, 96)];
    let stages = stages
        .into_iter()
        .chain([(19, 48), (39, 48), (41, 24), (81, 24)]);
    for (second, expected) in stages {
        let n = syncs_in(second, second + 1);
        assert!(n.abs_diff(expected) <= 1, "second {second}: {n} Syncs");
    }
    for s in 84..89 {
        let n = syncs_in(s, s + 1);
        assert!((15..=16).contains(&n), "second {s}: {n} Syncs");
    }
    // Every Sync is followed by a Follow_Up with the same sequence id, and Announces flow.
    let follow_ups = sent
        .iter()
        .filter(|(_, t)| {
            matches!(
                Message::parse(t.payload()).unwrap().body,
                Body::FollowUp { .. }
            )
        })
        .count();
    assert_eq!(follow_ups, syncs_in(0, 90));
    let announces = sent
        .iter()
        .filter(|(_, t)| matches!(Message::parse(t.payload()).unwrap().body, Body::Announce(_)))
        .count();
    assert!(
        (89..=91).contains(&announces),
        "{announces} Announces in 90 s"
    );
}

fn sync_pair(seq: u16, t1: i64) -> (Message, Message) {
    let port = PortIdentity {
        clock_identity: master_id(),
        port_number: 1,
    };
    let ts = PtpTimestamp::from_instant(LeaderInstant::from_nanos(t1)).unwrap();
    (
        Message::sync(Header::new(port, 0, seq), PtpTimestamp::default(), true),
        Message::follow_up(Header::new(port, 0, seq), ts),
    )
}

fn bytes(m: &Message) -> Vec<u8> {
    let mut b = vec![0u8; m.buffer_len()];
    m.emit(&mut b).unwrap();
    b
}

#[test]
fn a_follow_up_that_overtakes_its_sync_still_completes_the_exchange() {
    let mut slave = PtpSlave::<u8>::new(SlaveConfig::new(slave_port()));
    let t1 = 5_000_000_000i64;
    let (sync, fu) = sync_pair(9, t1);
    // Sync 9 arrives (its Follow_Up below); then Sync 10's Follow_Up overtakes Sync 10.
    slave
        .handle_receive(0, LocalInstant::from_nanos(1), &bytes(&sync))
        .unwrap();
    let (sync2, fu2) = sync_pair(10, t1 + 62_500_000);
    slave
        .handle_receive(0, LocalInstant::from_nanos(2), &bytes(&fu))
        .unwrap();
    let req = slave
        .poll_transmit(LocalInstant::from_nanos(3))
        .expect("Delay_Req");
    assert_eq!(req.port, PtpPort::Event);
    slave
        .handle_receive(0, LocalInstant::from_nanos(62_500_001), &bytes(&fu2))
        .unwrap();
    slave
        .handle_receive(0, LocalInstant::from_nanos(62_500_002), &bytes(&sync2))
        .unwrap();
    let req2 = slave
        .poll_transmit(LocalInstant::from_nanos(62_500_003))
        .expect("Delay_Req");
    let seq2 = Message::parse(req2.payload()).unwrap().header.sequence_id;
    let resp = Message::delay_resp(
        Header::new(
            PortIdentity {
                clock_identity: master_id(),
                port_number: 1,
            },
            0,
            seq2,
        ),
        PtpTimestamp::from_instant(LeaderInstant::from_nanos(t1 + 70_000_000)).unwrap(),
        slave_port(),
    );
    slave
        .handle_receive(0, LocalInstant::from_nanos(70_000_000), &bytes(&resp))
        .unwrap();
    let ex = slave.poll_exchange().expect("exchange");
    assert_eq!(ex.sync_sequence, 10);
    assert_eq!(ex.t1.as_nanos(), t1 + 62_500_000);
    assert_eq!(ex.t2.as_nanos(), 62_500_002);
    assert_eq!(ex.t3.as_nanos(), 62_500_003);
    assert!(slave.poll_exchange().is_none());
}

#[test]
fn delay_resps_for_unknown_sequences_other_domains_or_other_ports_are_ignored() {
    let mut slave = PtpSlave::<u8>::new(SlaveConfig::new(slave_port()));
    let (sync, fu) = sync_pair(1, 9_000_000_000);
    slave
        .handle_receive(0, LocalInstant::from_nanos(10), &bytes(&sync))
        .unwrap();
    slave
        .handle_receive(0, LocalInstant::from_nanos(11), &bytes(&fu))
        .unwrap();
    let req = slave.poll_transmit(LocalInstant::from_nanos(12)).unwrap();
    let seq = Message::parse(req.payload()).unwrap().header.sequence_id;
    let mport = PortIdentity {
        clock_identity: master_id(),
        port_number: 1,
    };
    let t4 = PtpTimestamp::from_instant(LeaderInstant::from_nanos(9_000_500_000)).unwrap();

    let unknown = Message::delay_resp(Header::new(mport, 0, seq.wrapping_add(5)), t4, slave_port());
    assert!(matches!(
        slave.handle_receive(0, LocalInstant::from_nanos(20), &bytes(&unknown)),
        Err(PtpError::UnknownSequence { .. })
    ));
    let other_domain = Message::delay_resp(Header::new(mport, 7, seq), t4, slave_port());
    assert_eq!(
        slave.handle_receive(0, LocalInstant::from_nanos(21), &bytes(&other_domain)),
        Err(PtpError::WrongDomain {
            expected: 0,
            got: 7
        })
    );
    let mut other = slave_port();
    other.port_number = 2;
    let other_port = Message::delay_resp(Header::new(mport, 0, seq), t4, other);
    assert!(matches!(
        slave.handle_receive(0, LocalInstant::from_nanos(22), &bytes(&other_port)),
        Err(PtpError::NotForUs { .. })
    ));
    assert!(
        slave.poll_exchange().is_none(),
        "nothing completed from ignored replies"
    );
    let s = *slave.stats();
    assert_eq!(
        (s.unknown_sequence, s.wrong_domain, s.not_for_us),
        (1, 1, 1)
    );

    // The real answer still completes the exchange afterwards.
    let good = Message::delay_resp(Header::new(mport, 0, seq), t4, slave_port());
    slave
        .handle_receive(0, LocalInstant::from_nanos(23), &bytes(&good))
        .unwrap();
    assert!(slave.poll_exchange().is_some());
}

#[test]
fn malformed_datagrams_get_typed_errors_and_are_counted_by_reason() {
    let mut slave = PtpSlave::<u8>::new(SlaveConfig::new(slave_port()));
    let mut master = PtpMaster::<u8>::new(MasterConfig::new(master_id()));
    let (sync, _) = sync_pair(1, 1_000);
    let good = bytes(&sync);

    let short = &good[..20];
    let mut bad_version = good.clone();
    bad_version[1] = 0x01;
    let mut long_claim = good.clone();
    long_claim[2..4].copy_from_slice(&100u16.to_be_bytes());
    let mut pdelay = good.clone();
    pdelay[0] = 0x02;
    let cases: [(&[u8], RejectReason); 4] = [
        (short, RejectReason::TooShort),
        (&bad_version, RejectReason::BadVersion),
        (&long_claim, RejectReason::TooShort),
        (&pdelay, RejectReason::UnsupportedType),
    ];
    for (data, reason) in cases {
        for r in [
            slave.handle_receive(0, LocalInstant::from_nanos(5), data),
            master.handle_receive(1, LeaderInstant::from_nanos(5), data),
        ] {
            match r {
                Err(PtpError::Malformed(e)) => assert_eq!(e.reason(), reason, "{e}"),
                other => panic!("expected a malformed error, got {other:?}"),
            }
        }
    }
    assert_eq!(slave.stats().malformed_total(), 4);
    assert_eq!(slave.stats().malformed[RejectReason::TooShort.index()], 2);
    assert_eq!(master.stats().malformed_total(), 4);
    assert!(matches!(
        Message::parse(&bad_version),
        Err(WireError::BadVersion { got: 1 })
    ));
    // A master does not take a Sync; a slave does not take a Delay_Req.
    assert!(matches!(
        master.handle_receive(1, LeaderInstant::from_nanos(6), &good),
        Err(PtpError::Unexpected { .. })
    ));
    let req = Message::delay_req(Header::new(slave_port(), 0, 1), PtpTimestamp::default());
    assert!(matches!(
        slave.handle_receive(0, LocalInstant::from_nanos(6), &bytes(&req)),
        Err(PtpError::Unexpected { .. })
    ));
}

#[test]
fn master_answers_delay_req_with_the_requesters_port_and_correction() {
    let mut master = PtpMaster::<u8>::new(MasterConfig::new(master_id()));
    let mut h = Header::new(slave_port(), 0, 4242);
    h.correction = lockstep::ptp::Correction::from_nanos(Nanos(77));
    let req = Message::delay_req(h, PtpTimestamp::default());
    let at = LeaderInstant::from_nanos(1_700_000_000_123_456_789);
    master
        .handle_receive(FOLLOWER_ADDR, at, &bytes(&req))
        .unwrap();
    let resp = master.poll_transmit(at).expect("Delay_Resp");
    assert_eq!(resp.to, FOLLOWER_ADDR);
    assert_eq!(resp.port, PtpPort::General);
    let m = Message::parse(resp.payload()).unwrap();
    assert_eq!(m.header.sequence_id, 4242);
    assert_eq!(m.header.correction.to_nanos(), Nanos(77));
    match m.body {
        Body::DelayResp {
            receive_timestamp,
            requesting_port,
        } => {
            assert_eq!(receive_timestamp.to_instant().unwrap(), at);
            assert_eq!(requesting_port, slave_port());
        }
        other => panic!("expected Delay_Resp, got {other:?}"),
    }
    // Another domain's request is not answered.
    let other = Message::delay_req(Header::new(slave_port(), 3, 1), PtpTimestamp::default());
    assert!(
        master
            .handle_receive(FOLLOWER_ADDR, at, &bytes(&other))
            .is_err()
    );
    assert!(master.poll_transmit(at).is_none());
}

#[test]
fn with_transmit_timestamps_the_follow_up_carries_the_reported_time() {
    let mut cfg = MasterConfig::new(master_id());
    cfg.tx_timestamps = true;
    let mut master = PtpMaster::<u8>::new(cfg);
    let t0 = LeaderInstant::from_nanos(1_000_000_000_000);
    master.add_slave(FOLLOWER_ADDR, t0);
    master.handle_timeout(t0);
    let mut syncs = Vec::new();
    while let Some(t) = master.poll_transmit(t0) {
        if t.tag.is_some() {
            syncs.push(t);
        }
    }
    assert_eq!(syncs.len(), 1);
    let tag = syncs[0].tag.unwrap();
    let real = t0 + Nanos(12_345);
    master.handle_transmitted(tag, real);
    let fu = master
        .poll_transmit(real)
        .expect("Follow_Up after the timestamp");
    match Message::parse(fu.payload()).unwrap().body {
        Body::FollowUp {
            precise_origin_timestamp,
        } => assert_eq!(precise_origin_timestamp.to_instant().unwrap(), real),
        other => panic!("expected Follow_Up, got {other:?}"),
    }
}

/// Two followers' Syncs carry the same sequence id (a master keeps one sequence per
/// follower). The kernel's stamp for the first is lost (its error queue was full); the stamp
/// for the second must not complete the first's exchange. When it did, a flooded leader sent
/// one follower the other's send time, 1.4 ms late, and that follower's clock went 0.7 ms
/// wrong while claiming a fraction of a microsecond.
#[test]
fn a_lost_stamp_is_not_replaced_by_another_followers_with_the_same_sequence_id() {
    const OTHER: u8 = 2;
    let mut cfg = MasterConfig::new(master_id());
    cfg.tx_timestamps = true;
    let mut master = PtpMaster::<u8>::new(cfg);
    let t0 = LeaderInstant::from_nanos(1_000_000_000_000);
    master.add_slave(FOLLOWER_ADDR, t0);
    master.add_slave(OTHER, t0);
    master.handle_timeout(t0);
    let mut syncs = Vec::new();
    while let Some(t) = master.poll_transmit(t0) {
        if t.tag.is_some() {
            syncs.push(t);
        }
    }
    assert_eq!(syncs.len(), 2);
    let (first, second) = (syncs[0], syncs[1]);
    let (tag_first, tag_second) = (first.tag.unwrap(), second.tag.unwrap());
    assert_eq!(
        tag_first.sequence_id, tag_second.sequence_id,
        "the case under test: one sequence id for both"
    );
    assert_ne!(tag_first, tag_second, "the tags tell the datagrams apart");
    // Only the second's stamp comes back, 1.4 ms after both were polled.
    let late = t0 + Nanos(1_400_000);
    master.handle_transmitted(tag_second, late);
    // Past the stamp timeout, the first's Follow_Up falls back to its own poll time.
    let after = t0 + Nanos::from_millis(50);
    master.handle_timeout(after);
    let mut follow_ups = Vec::new();
    while let Some(t) = master.poll_transmit(after) {
        if let Body::FollowUp {
            precise_origin_timestamp,
        } = Message::parse(t.payload()).unwrap().body
        {
            follow_ups.push((t.to, precise_origin_timestamp.to_instant().unwrap()));
        }
    }
    follow_ups.sort_by_key(|(to, _)| *to);
    assert_eq!(
        follow_ups,
        vec![(first.to, t0), (second.to, late)],
        "each follower gets its own Sync's send time"
    );
}

#[test]
fn a_sync_whose_follow_up_never_comes_is_dropped_as_stale() {
    let mut slave = PtpSlave::<u8>::new(SlaveConfig::new(slave_port()));
    let (sync, _) = sync_pair(3, 1_000_000);
    slave
        .handle_receive(0, LocalInstant::from_nanos(0), &bytes(&sync))
        .unwrap();
    let deadline = slave
        .poll_timeout()
        .expect("a deadline for the pending Sync");
    slave.handle_timeout(deadline);
    assert_eq!(slave.stats().incomplete, 1);
    assert!(slave.poll_timeout().is_none());
    assert!(slave.poll_transmit(deadline).is_none());
}

#[test]
fn slave_keeps_its_master_until_it_falls_silent() {
    let mut slave = PtpSlave::<u8>::new(SlaveConfig::new(slave_port()));
    let (sync, _) = sync_pair(1, 1_000);
    slave
        .handle_receive(0, LocalInstant::from_nanos(0), &bytes(&sync))
        .unwrap();
    let other = PortIdentity {
        clock_identity: ClockIdentity([9; 8]),
        port_number: 1,
    };
    let foreign = Message::sync(Header::new(other, 0, 1), PtpTimestamp::default(), true);
    assert!(matches!(
        slave.handle_receive(5, LocalInstant::from_nanos(1_000_000_000), &bytes(&foreign)),
        Err(PtpError::ForeignMaster { .. })
    ));
    assert_eq!(slave.master().unwrap().clock_identity, master_id());
    // Four seconds of silence from the first master: the other one takes over.
    slave
        .handle_receive(5, LocalInstant::from_nanos(4_000_000_000), &bytes(&foreign))
        .unwrap();
    assert_eq!(slave.master(), Some(other));
}
