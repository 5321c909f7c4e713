//! Scenarios: the control handshake and the admission rules, without a socket. A leader's
//! and a follower's session are wired back to back by a test that moves their bytes; the
//! nonces are chosen by the test, so every handshake is deterministic.

use lockstep::control::{
    Admission, AdmissionError, Capabilities, CodecId, Command, FRAME_TAG_LEN, FollowerEvent,
    FollowerSession, FollowerStatus, Hello, HouseholdKey, KeyPurpose, LeaderEvent, LeaderSession,
    Message, PROTOCOL_VERSION, PeerPorts, Refusal, Role, SessionError, SessionKeys, StreamParams,
    TimestampKind, Welcome,
};
use lockstep::time::Nanos;

fn key() -> HouseholdKey {
    HouseholdKey::new(b"the household key of the test!").expect("key")
}

fn other_key() -> HouseholdKey {
    HouseholdKey::new(b"a key of another household").expect("key")
}

fn stream() -> StreamParams {
    StreamParams {
        codec: CodecId::L16,
        sample_rate: 48_000,
        channels: 2,
        payload_type: 96,
        ssrc: 0x1234_5678,
        rtp_port: 5004,
        multicast: None,
        ptp_event_port: 319,
        ptp_general_port: 320,
        target_latency: Nanos::from_millis(100),
        ptime: Nanos::from_millis(5),
        protection: lockstep::control::Protection::default(),
    }
}

fn admission() -> Admission {
    Admission::new("kitchen", key(), stream())
}

fn hello(model: &str, role: Role) -> Hello {
    Hello {
        caps: Capabilities {
            model: model.into(),
            name: format!("{model} {role}"),
            channels: 2,
            max_rate: 96_000,
            output_latency: Nanos::from_millis(2),
        },
        role,
        group: "kitchen".into(),
        ports: PeerPorts {
            rtp: 40_000,
            ptp_event: 40_001,
            ptp_general: 40_002,
        },
    }
}

/// Everything both sides said and reported, in order.
#[derive(Default)]
struct Trace {
    to_leader: Vec<u8>,
    to_follower: Vec<u8>,
    leader: Vec<LeaderEvent>,
    follower: Vec<FollowerEvent>,
}

/// Moves bytes both ways, `chunk` bytes at a time, until neither side has anything to say.
fn run(l: &mut LeaderSession, f: &mut FollowerSession, adm: &mut Admission, chunk: usize) -> Trace {
    let mut t = Trace::default();
    for _ in 0..100 {
        let mut moved = false;
        while let Some(bytes) = f.poll_transmit() {
            t.to_leader.extend_from_slice(&bytes);
            for piece in bytes.chunks(chunk) {
                l.handle_input(piece, adm);
            }
            moved = true;
        }
        while let Some(bytes) = l.poll_transmit() {
            t.to_follower.extend_from_slice(&bytes);
            for piece in bytes.chunks(chunk) {
                f.handle_input(piece);
            }
            moved = true;
        }
        while let Some(e) = l.poll_event() {
            t.leader.push(e);
        }
        while let Some(e) = f.poll_event() {
            t.follower.push(e);
        }
        if !moved {
            return t;
        }
    }
    panic!("the sessions never went quiet");
}

fn join(
    adm: &mut Admission,
    h: Hello,
    key: HouseholdKey,
    nonces: (u8, u8),
) -> (LeaderSession, FollowerSession, Trace) {
    let mut l = LeaderSession::new([nonces.0; 16]);
    let mut f = FollowerSession::new(h, key, [nonces.1; 16]).expect("hello encodes");
    let t = run(&mut l, &mut f, adm, usize::MAX);
    (l, f, t)
}

fn refusal_of(t: &Trace) -> (Refusal, Refusal) {
    let at_leader = match t.leader.as_slice() {
        [LeaderEvent::Refused(r)] => r.clone(),
        other => panic!("expected one refusal at the leader, got {other:?}"),
    };
    let at_follower = match t.follower.as_slice() {
        [FollowerEvent::Failed(SessionError::Refused(r))] => r.clone(),
        other => panic!("expected the follower to be refused, got {other:?}"),
    };
    (at_leader, at_follower)
}

#[test]
fn a_follower_with_the_key_joins_and_the_same_nonces_give_the_same_bytes() {
    let mut adm = admission();
    let (l, f, t) = join(&mut adm, hello("one", Role::Full), key(), (1, 2));
    assert_eq!(l.id(), Some(1));
    assert!(f.is_joined());
    match t.leader.as_slice() {
        [
            LeaderEvent::Joined {
                id: 1,
                caps,
                role: Role::Full,
                ports,
            },
        ] => {
            assert_eq!(caps.model, "one");
            assert_eq!(ports.rtp, 40_000);
        }
        other => panic!("expected the follower to join, got {other:?}"),
    }
    match t.follower.as_slice() {
        [
            FollowerEvent::Joined(Welcome {
                session: 1,
                group,
                role: Role::Full,
                stream: s,
                ..
            }),
        ] => {
            assert_eq!(group, "kitchen");
            assert_eq!(*s, stream());
        }
        other => panic!("expected a welcome, got {other:?}"),
    }
    assert_eq!(adm.members().len(), 1);

    // Deterministic: the same nonces into another leader give byte-identical frames.
    let mut again = admission();
    let (_, _, t2) = join(&mut again, hello("one", Role::Full), key(), (1, 2));
    assert_eq!(t.to_leader, t2.to_leader);
    assert_eq!(t.to_follower, t2.to_follower);
    // Other nonces, other proofs.
    let (_, _, t3) = join(&mut again, hello("one", Role::Full), key(), (3, 4));
    assert_ne!(t.to_follower, t3.to_follower);
}

#[test]
fn frames_split_into_single_bytes_join_alike() {
    let mut adm = admission();
    let mut l = LeaderSession::new([7; 16]);
    let mut f = FollowerSession::new(hello("one", Role::Left), key(), [8; 16]).expect("hello");
    let t = run(&mut l, &mut f, &mut adm, 1);
    assert!(f.is_joined(), "{:?}", t.follower);
    assert_eq!(l.id(), Some(1));
}

/// The session keys as the module docs define them, computed here from the raw key with
/// HMAC and HKDF directly: the library's derivation must match its own description.
fn keys_by_the_docs(
    raw: &[u8],
    leader: [u8; 16],
    follower: [u8; 16],
    id: u64,
    label: &str,
) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut h = Hmac::<sha2::Sha256>::new_from_slice(raw).expect("any length");
    h.update(b"lockstep/1 session keys");
    h.update(&leader);
    h.update(&follower);
    h.update(&id.to_be_bytes());
    let prk = h.finalize().into_bytes();
    let hk = hkdf::Hkdf::<sha2::Sha256>::from_prk(&prk).expect("32 bytes");
    let mut out = [0u8; 32];
    hk.expand(format!("lockstep/1 {label}").as_bytes(), &mut out)
        .expect("32 bytes");
    out
}

#[test]
fn both_ends_derive_the_same_session_keys_and_each_purpose_and_session_its_own() {
    let mut adm = admission();
    let (l, f, _) = join(&mut adm, hello("one", Role::Full), key(), (1, 2));
    let (lk, fk) = (
        l.keys().expect("leader's keys"),
        f.keys().expect("follower's keys"),
    );
    let id = l.id().expect("joined");
    let mut seen = Vec::new();
    for p in KeyPurpose::ALL {
        assert_eq!(lk.key32(p), fk.key32(p), "{p:?}");
        assert_eq!(
            lk.key32(p),
            keys_by_the_docs(
                b"the household key of the test!",
                [1; 16],
                [2; 16],
                id,
                p.label()
            ),
            "{p:?} as documented"
        );
        assert!(
            !seen.contains(&lk.key32(p)),
            "{p:?} repeats another purpose's key"
        );
        seen.push(lk.key32(p));
    }
    // SRTP's 30 bytes of master key and salt: the start of the 32-byte key.
    let mut media = [0u8; 30];
    fk.expand(KeyPurpose::MediaLeaderToFollower, &mut media)
        .expect("30 bytes");
    assert_eq!(media, fk.key32(KeyPurpose::MediaLeaderToFollower)[..30]);
    assert!(
        fk.expand(KeyPurpose::GroupKeyWrap, &mut vec![0; 255 * 32 + 1])
            .is_err()
    );
    assert_eq!(format!("{lk:?}"), "SessionKeys(..)");

    // Another handshake between the same two, with fresh nonces: other keys.
    let (l2, f2, _) = join(&mut adm, hello("two", Role::Full), key(), (3, 4));
    let k2 = l2.keys().expect("joined");
    assert_eq!(
        k2.key32(KeyPurpose::ClockLeaderToFollower),
        f2.keys()
            .expect("joined")
            .key32(KeyPurpose::ClockLeaderToFollower)
    );
    for p in KeyPurpose::ALL {
        assert_ne!(k2.key32(p), lk.key32(p), "{p:?} repeats across sessions");
    }
    // And a derivation by hand under another household key differs too.
    let other = SessionKeys::derive(&other_key(), &[1; 16], &[2; 16], id);
    assert_ne!(
        other.key32(KeyPurpose::MediaLeaderToFollower),
        lk.key32(KeyPurpose::MediaLeaderToFollower)
    );
}

#[test]
fn a_wrong_key_is_refused_and_admits_nothing() {
    let mut adm = admission();
    let (l, f, t) = join(&mut adm, hello("one", Role::Full), other_key(), (1, 2));
    assert_eq!(refusal_of(&t), (Refusal::WrongKey, Refusal::WrongKey));
    assert!(l.is_closed() && f.is_closed());
    assert!(adm.members().is_empty());
    assert!(
        l.keys().is_none() && f.keys().is_none(),
        "a refused follower gets no keys"
    );
}

#[test]
fn another_group_is_refused_before_any_proof() {
    let mut adm = admission();
    let mut h = hello("one", Role::Full);
    h.group = "garden".into();
    let (_, _, t) = join(&mut adm, h, key(), (1, 2));
    let want = Refusal::WrongGroup {
        requested: "garden".into(),
        group: "kitchen".into(),
    };
    assert_eq!(refusal_of(&t), (want.clone(), want));
    // No challenge was sent: the refusal is all the follower got.
    let (msg, len) = lockstep::control::decode_frame(&t.to_follower)
        .expect("decodes")
        .expect("whole");
    assert_eq!(len, t.to_follower.len());
    assert!(matches!(msg, Message::Refused { .. }));
    // An empty group joins whatever the leader leads.
    let mut h = hello("one", Role::Full);
    h.group.clear();
    let (_, f, _) = join(&mut adm, h, key(), (3, 4));
    assert!(f.is_joined());
}

#[test]
fn a_replayed_handshake_is_refused_even_under_the_same_leader_nonce() {
    let mut adm = admission();
    let (_, _, t) = join(&mut adm, hello("one", Role::Full), key(), (1, 2));
    // An eavesdropper replays the follower's bytes. Against a fresh leader nonce the old
    // proof fails; against the same one (a leader whose random source repeated) the replay
    // guard catches the follower nonce.
    let mut fresh = LeaderSession::new([9; 16]);
    fresh.handle_input(&t.to_leader, &mut adm);
    assert!(matches!(
        fresh.poll_event(),
        Some(LeaderEvent::Refused(Refusal::WrongKey))
    ));
    let mut same = LeaderSession::new([1; 16]);
    same.handle_input(&t.to_leader, &mut adm);
    assert!(matches!(
        same.poll_event(),
        Some(LeaderEvent::Refused(Refusal::Replay))
    ));
    assert_eq!(adm.members().len(), 1);
}

#[test]
fn a_stereo_pair_needs_one_model_and_one_speaker_per_half() {
    let mut adm = admission();
    let (_, left, _) = join(&mut adm, hello("one", Role::Left), key(), (1, 2));
    assert!(left.is_joined());
    let (_, _, t) = join(&mut adm, hello("mini", Role::Right), key(), (3, 4));
    let want = Refusal::ModelMismatch {
        model: "mini".into(),
        partner_model: "one".into(),
    };
    assert_eq!(refusal_of(&t), (want.clone(), want));
    let (_, _, t) = join(&mut adm, hello("one", Role::Left), key(), (5, 6));
    let want = Refusal::RoleTaken { role: Role::Left };
    assert_eq!(refusal_of(&t), (want.clone(), want));
    let (_, right, _) = join(&mut adm, hello("one", Role::Right), key(), (7, 8));
    assert!(right.is_joined());
    // Any number of full speakers and subwoofers, of any model.
    for (i, role) in [Role::Full, Role::Sub, Role::Sub].into_iter().enumerate() {
        let n = 10 + 2 * i as u8;
        let (_, f, _) = join(&mut adm, hello("mini", role), key(), (n, n + 1));
        assert!(f.is_joined(), "{role}");
    }
    // A half that leaves frees its role.
    let left_id = adm.members()[0].id;
    assert_eq!(adm.remove(left_id).map(|m| m.role), Some(Role::Left));
    let (_, f, _) = join(&mut adm, hello("one", Role::Left), key(), (20, 21));
    assert!(f.is_joined());
}

#[test]
fn a_speaker_that_cannot_play_the_stream_is_refused() {
    let mut adm = admission();
    let mut h = hello("tiny", Role::Full);
    h.caps.max_rate = 44_100;
    let (_, _, t) = join(&mut adm, h, key(), (1, 2));
    assert!(matches!(refusal_of(&t).0, Refusal::Unsupported { .. }));
    let mut h = hello("mute", Role::Full);
    h.caps.channels = 0;
    let (_, _, t) = join(&mut adm, h, key(), (3, 4));
    assert!(matches!(refusal_of(&t).0, Refusal::Unsupported { .. }));
}

#[test]
fn pairing_members_keeps_the_rules_and_changes_nothing_when_refused() {
    let mut adm = admission();
    for (i, model) in ["one", "mini", "one", "one"].into_iter().enumerate() {
        let n = 2 * i as u8;
        let (_, f, _) = join(&mut adm, hello(model, Role::Full), key(), (n, n + 1));
        assert!(f.is_joined());
    }
    let roles = |adm: &Admission| adm.members().iter().map(|m| m.role).collect::<Vec<_>>();
    assert_eq!(
        adm.pair(1, 2),
        Err(AdmissionError::Refused(Refusal::ModelMismatch {
            model: "one".into(),
            partner_model: "mini".into()
        }))
    );
    assert_eq!(roles(&adm), [Role::Full; 4]);
    assert_eq!(
        adm.pair(1, 99),
        Err(AdmissionError::UnknownMember { id: 99 })
    );
    adm.pair(1, 3).expect("same model");
    assert_eq!(
        roles(&adm),
        [Role::Left, Role::Full, Role::Right, Role::Full]
    );
    // A third speaker cannot take a half while the pair holds it...
    assert_eq!(
        adm.pair(4, 2),
        Err(AdmissionError::Refused(Refusal::RoleTaken {
            role: Role::Left
        }))
    );
    assert_eq!(
        roles(&adm),
        [Role::Left, Role::Full, Role::Right, Role::Full]
    );
    // ...and re-pairing the same two the other way round is allowed.
    adm.pair(3, 1).expect("swap");
    assert_eq!(
        roles(&adm),
        [Role::Right, Role::Full, Role::Left, Role::Full]
    );
}

#[test]
fn a_fake_leader_without_the_key_is_not_believed() {
    let mut f = FollowerSession::new(hello("one", Role::Full), key(), [2; 16]).expect("hello");
    let _ = f.poll_transmit();
    let mut frames = Vec::new();
    Message::Challenge { nonce: [1; 16] }
        .encode(&mut frames)
        .expect("encodes");
    f.handle_input(&frames);
    assert!(f.poll_transmit().is_some(), "the follower proves the key");
    frames.clear();
    Message::Welcome {
        session: 1,
        group: "kitchen".into(),
        role: Role::Full,
        stream: stream(),
        volume: 1.0,
        muted: false,
        trim: Nanos::ZERO,
        mac: other_key().leader_proof(&[1; 16], &[2; 16], 1),
    }
    .encode(&mut frames)
    .expect("encodes");
    f.handle_input(&frames);
    assert!(matches!(
        f.poll_event(),
        Some(FollowerEvent::Failed(SessionError::LeaderNotAuthenticated))
    ));
    assert!(f.is_closed() && !f.is_joined());
}

#[test]
fn garbage_and_hostile_headers_are_refused_at_once() {
    let mut adm = admission();
    let mut l = LeaderSession::new([1; 16]);
    l.handle_input(b"GET / HTTP/1.1\r\n\r\n", &mut adm);
    assert!(matches!(
        l.poll_event(),
        Some(LeaderEvent::Refused(Refusal::Malformed))
    ));
    assert!(l.is_closed());
    // A header announcing 4 GiB is refused on its 8 bytes, before any payload.
    let mut l = LeaderSession::new([1; 16]);
    l.handle_input(
        &[b'L', b'S', PROTOCOL_VERSION, 0x01, 0xff, 0xff, 0xff, 0xff],
        &mut adm,
    );
    assert!(matches!(
        l.poll_event(),
        Some(LeaderEvent::Refused(Refusal::Malformed))
    ));
    // Another protocol version is told which one the leader speaks.
    let mut l = LeaderSession::new([1; 16]);
    l.handle_input(&[b'L', b'S', 9, 0x01, 0, 0, 0, 0], &mut adm);
    assert!(matches!(
        l.poll_event(),
        Some(LeaderEvent::Refused(Refusal::UnsupportedVersion {
            got: 9,
            supported: PROTOCOL_VERSION
        }))
    ));
    // An Auth before any Hello is out of turn.
    let mut l = LeaderSession::new([1; 16]);
    let mut frame = Vec::new();
    Message::Auth { mac: [0; 32] }
        .encode(&mut frame)
        .expect("encodes");
    l.handle_input(&frame, &mut adm);
    assert!(matches!(
        l.poll_event(),
        Some(LeaderEvent::Refused(Refusal::Malformed))
    ));
    // Input after the end is ignored.
    l.handle_input(&frame, &mut adm);
    assert!(l.poll_event().is_none());
    assert!(adm.members().is_empty());
}

#[test]
fn a_joined_session_carries_commands_status_pings_and_the_leave() {
    let mut adm = admission();
    let (mut l, mut f, _) = join(&mut adm, hello("one", Role::Full), key(), (1, 2));
    for msg in [
        Message::SetVolume { volume: 0.25 },
        Message::SetMute { muted: true },
        Message::SetRole { role: Role::Mono },
        Message::Pause,
        Message::StatusQuery { id: 42 },
        Message::Ping { id: 5 },
    ] {
        l.send(&msg).expect("joined");
    }
    let t = run(&mut l, &mut f, &mut adm, 3);
    let commands: Vec<_> = t
        .follower
        .iter()
        .map(|e| match e {
            FollowerEvent::Command(c) => c.clone(),
            other => panic!("expected commands only, got {other:?}"),
        })
        .collect();
    assert_eq!(
        commands,
        [
            Command::SetVolume(0.25),
            Command::SetMute(true),
            Command::SetRole(Role::Mono),
            Command::Pause,
            Command::StatusQuery(42),
        ]
    );
    // The ping was answered by the session itself.
    // (A NaN volume cannot even be encoded.)
    assert!(l.send(&Message::SetVolume { volume: f32::NAN }).is_err());
    // It went sealed: a Pong's 8-byte payload and the tag, which a plain decode refuses.
    let mut plain = Vec::new();
    Message::Pong { id: 5 }.encode(&mut plain).expect("encodes");
    assert_eq!(t.to_leader.len(), plain.len() + FRAME_TAG_LEN);
    assert_eq!(t.to_leader[..4], plain[..4], "the Pong's header");
    assert!(lockstep::control::decode_frame(&t.to_leader).is_err());

    let status = FollowerStatus {
        clock_offset: Some(Nanos(12)),
        clock_rate_ppm: Some(1.5),
        uncertainty: Some(Nanos(300)),
        clock_settled: true,
        clock_reason: None,
        buffer_level: Nanos::from_millis(90),
        packets_received: 100,
        packets_lost: 1,
        packets_late: 0,
        unknown_source: 0,
        underruns: 0,
        skew_estimate: None,
        playing: true,
        volume: 0.25,
        muted: true,
        trim: Nanos::ZERO,
        timestamping: TimestampKind::User,
        media_authenticated: true,
        clock_authenticated: true,
        media_rejected: lockstep::control::Rejections::default(),
        clock_rejected: lockstep::control::Rejections::default(),
    };
    f.send_status(42, status.clone()).expect("joined");
    f.leave().expect("joined");
    let t = run(&mut l, &mut f, &mut adm, 5);
    assert_eq!(
        t.leader,
        [LeaderEvent::Status { id: 42, status }, LeaderEvent::Left]
    );
    assert!(l.is_closed() && f.is_closed());
    assert!(matches!(
        l.send(&Message::Pause),
        Err(SessionError::NotJoined)
    ));
    assert!(matches!(
        f.send_status(1, t_status()),
        Err(SessionError::NotJoined)
    ));
}

fn t_status() -> FollowerStatus {
    FollowerStatus {
        clock_offset: None,
        clock_rate_ppm: None,
        uncertainty: None,
        clock_settled: false,
        clock_reason: None,
        buffer_level: Nanos::ZERO,
        packets_received: 0,
        packets_lost: 0,
        packets_late: 0,
        unknown_source: 0,
        underruns: 0,
        skew_estimate: None,
        playing: false,
        volume: 1.0,
        muted: false,
        trim: Nanos::ZERO,
        timestamping: TimestampKind::User,
        media_authenticated: true,
        clock_authenticated: true,
        media_rejected: lockstep::control::Rejections::default(),
        clock_rejected: lockstep::control::Rejections::default(),
    }
}

/// What an attacker on the path can put into a joined session's byte stream without the
/// household key: a plain frame, a frame sealed under another household's session, a copy of
/// a frame the leader sent before.
#[test]
fn frames_injected_into_a_joined_session_are_refused_and_end_it() {
    let injected = |bytes: &dyn Fn(&[u8]) -> Vec<u8>| {
        let mut adm = admission();
        let (mut l, mut f, _) = join(&mut adm, hello("one", Role::Full), key(), (1, 2));
        // A genuine command first, which the attacker sees go by.
        l.send(&Message::SetVolume { volume: 0.25 })
            .expect("joined");
        let genuine = l.poll_transmit().expect("a frame");
        f.handle_input(&genuine);
        assert!(matches!(
            f.poll_event(),
            Some(FollowerEvent::Command(Command::SetVolume(v))) if v == 0.25
        ));
        f.handle_input(&bytes(&genuine));
        let event = f.poll_event();
        assert!(f.is_closed(), "the session goes on after {event:?}");
        match event {
            Some(FollowerEvent::Failed(SessionError::Frame(e))) => e.to_string(),
            other => panic!("expected a failed session, got {other:?}"),
        }
    };
    // A plain SetVolume to full scale: too short to hold a tag.
    let plain = injected(&|_| {
        let mut b = Vec::new();
        Message::SetVolume { volume: 1.0 }.encode(&mut b).unwrap();
        b
    });
    assert!(plain.contains("truncated"), "{plain}");
    // The same, with a tag's worth of bytes to look sealed.
    let zeros = injected(&|_| {
        let mut b = Vec::new();
        Message::SetVolume { volume: 1.0 }.encode(&mut b).unwrap();
        b[7] += FRAME_TAG_LEN as u8;
        b.extend_from_slice(&[0; FRAME_TAG_LEN]);
        b
    });
    assert!(zeros.contains("bad tag"), "{zeros}");
    // The genuine frame replayed.
    let replay = injected(&|genuine| genuine.to_vec());
    assert!(replay.contains("bad tag"), "{replay}");
    // Sealed by a leader of another household, in a session with the same nonces and id.
    let forged = injected(&|_| {
        let mut adm = Admission::new("kitchen", other_key(), stream());
        let (mut l, _, _) = join(&mut adm, hello("one", Role::Full), other_key(), (1, 2));
        l.send(&Message::SetVolume { volume: 1.0 }).unwrap();
        l.poll_transmit().unwrap()
    });
    assert!(forged.contains("bad tag"), "{forged}");

    // The leader's end likewise: a Leave injected toward it does not end the follower's
    // membership quietly, it ends the session as broken.
    let mut adm = admission();
    let (mut l, _, _) = join(&mut adm, hello("one", Role::Full), key(), (1, 2));
    let mut leave = Vec::new();
    Message::Leave.encode(&mut leave).unwrap();
    leave[7] += FRAME_TAG_LEN as u8;
    leave.extend_from_slice(&[0; FRAME_TAG_LEN]);
    l.handle_input(&leave, &mut adm);
    assert!(matches!(
        l.poll_event(),
        Some(LeaderEvent::Refused(Refusal::Malformed))
    ));
    assert!(l.is_closed());
}
