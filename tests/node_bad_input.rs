//! Scenarios: hostile or broken input reaches a running group. Malformed, oversized,
//! unknown and old-version control frames each get a typed refusal and a closed
//! connection; a replayed handshake is refused; a flood of connections does not stop the
//! stream; RTP from an unknown source is ignored and counted. Through all of it the joined
//! follower plays on without an underrun.

#[path = "common/node.rs"]
mod node;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use lockstep::control::{
    Capabilities, Message, PROTOCOL_VERSION, PeerPorts, Refusal, Role, read_message, write_message,
};
use lockstep::node::Follower;
use lockstep::time::Nanos;
use node::*;

fn connect(leader: &lockstep::node::Leader) -> TcpStream {
    let s = TcpStream::connect(leader.control_addr()).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads the leader's answer: a refusal, then the connection closes.
fn refusal_then_close(mut s: TcpStream) -> Refusal {
    let mut scratch = Vec::new();
    let refusal = match read_message(&mut s, &mut scratch) {
        Ok(Message::Refused { refusal }) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut rest = [0u8; 16];
    match s.read(&mut rest) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    refusal
}

fn playing_follower(leader: &lockstep::node::Leader) -> Follower {
    let f = follower(follower_config(leader, Role::Full, 75.0));
    assert!(
        wait_until(Duration::from_secs(3), || f.status().playing).is_some(),
        "{:?}",
        f.status()
    );
    f
}

#[test]
fn bad_control_frames_get_typed_refusals_and_closed_connections() {
    let leader = leader();
    let f = playing_follower(&leader);

    let mut s = connect(&leader);
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(refusal_then_close(s), Refusal::Malformed, "bad magic");

    let mut s = connect(&leader);
    let mut oversized = vec![b'L', b'S', PROTOCOL_VERSION, 0x01];
    oversized.extend_from_slice(&1_000_000u32.to_be_bytes());
    s.write_all(&oversized).unwrap();
    assert_eq!(refusal_then_close(s), Refusal::Malformed, "oversized frame");

    let mut s = connect(&leader);
    s.write_all(&[b'L', b'S', PROTOCOL_VERSION, 0x7f, 0, 0, 0, 0])
        .unwrap();
    assert_eq!(refusal_then_close(s), Refusal::Malformed, "unknown type");

    let mut s = connect(&leader);
    s.write_all(&[b'L', b'S', 0, 0x01, 0, 0, 0, 0]).unwrap();
    assert_eq!(
        refusal_then_close(s),
        Refusal::UnsupportedVersion {
            got: 0,
            supported: PROTOCOL_VERSION
        },
        "old version"
    );

    // A Hello whose payload lies about its fields.
    let mut s = connect(&leader);
    s.write_all(&[
        b'L',
        b'S',
        PROTOCOL_VERSION,
        0x01,
        0,
        0,
        0,
        3,
        0xff,
        0xff,
        0xff,
    ])
    .unwrap();
    assert_eq!(
        refusal_then_close(s),
        Refusal::Malformed,
        "truncated fields"
    );

    // The follower never noticed.
    let st = f.status();
    assert!(st.playing && st.underruns == 0, "{st:?}");
    f.stop().expect("stops");
}

/// Runs a handshake with `nonce` as the follower's nonce; returns the leader's last answer.
fn handshake_with(leader: &lockstep::node::Leader, nonce: [u8; 16]) -> Message {
    let mut s = connect(leader);
    let hello = Message::Hello {
        caps: Capabilities {
            model: "m1".into(),
            name: "replayer".into(),
            channels: 2,
            max_rate: 48_000,
            output_latency: Nanos::ZERO,
        },
        role: Role::Full,
        group: String::new(),
        nonce,
        ports: PeerPorts {
            rtp: 9,
            ptp_event: 9,
            ptp_general: 9,
        },
    };
    let mut bytes = Vec::new();
    hello.encode(&mut bytes).unwrap();
    s.write_all(&bytes).unwrap();
    let mut scratch = Vec::new();
    let leader_nonce = match read_message(&mut s, &mut scratch).expect("challenge") {
        Message::Challenge { nonce } => nonce,
        other => panic!("expected a challenge, got {other:?}"),
    };
    let mac = key().follower_proof(&leader_nonce, &nonce, &bytes);
    write_message(&mut s, &Message::Auth { mac }, &mut scratch).unwrap();
    read_message(&mut s, &mut scratch).expect("answer")
}

#[test]
fn a_replayed_follower_nonce_is_refused() {
    let leader = leader();
    let nonce = [0x5a; 16];
    assert!(matches!(
        handshake_with(&leader, nonce),
        Message::Welcome { .. }
    ));
    assert_eq!(
        handshake_with(&leader, nonce),
        Message::Refused {
            refusal: Refusal::Replay
        }
    );
}

#[test]
fn a_flood_of_connections_does_not_stop_the_stream() {
    let leader = leader();
    let f = playing_follower(&leader);
    let before = f.status();
    // Hold many connections open without a word, and open and drop many more.
    let mut held = Vec::new();
    for i in 0..400 {
        match TcpStream::connect(leader.control_addr()) {
            Ok(s) if i % 2 == 0 => held.push(s),
            Ok(s) => drop(s),
            Err(_) => {}
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let during = f.status();
    assert!(
        during.packets_received >= before.packets_received + 150,
        "the stream stalled: {} then {}",
        before.packets_received,
        during.packets_received
    );
    assert_eq!(during.underruns, 0, "{during:?}");
    assert!(leader.stats().refused_busy > 0, "{:?}", leader.stats());
    drop(held);
    // Once the flood is gone (slots free within the handshake timeout), a speaker joins.
    let mut late = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            late = Follower::start(follower_config(&leader, Role::Full, -20.0)).ok();
            late.is_some()
        })
        .is_some(),
        "no one could join after the flood"
    );
    late.expect("joined").stop().expect("stops");
    f.stop().expect("stops");
}

#[test]
fn rtp_from_an_unknown_source_is_ignored_and_counted() {
    let leader = leader();
    let f = playing_follower(&leader);
    let ssrc = f.session().expect("session").stream.ssrc;
    let forger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = ("127.0.0.1", f.ports().rtp);
    // A plausible RTP packet (version 2, payload type 96, the group's own SSRC) of loud
    // samples from the wrong socket.
    let mut pkt = vec![0x80, 96, 0, 1, 0, 0, 0, 0];
    pkt.extend_from_slice(&ssrc.to_be_bytes());
    pkt.extend(std::iter::repeat_n(0x7f, 1440));
    for _ in 0..100 {
        forger.send_to(&pkt, to).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(2), || f.status().unknown_source >= 100).is_some(),
        "{:?}",
        f.status()
    );
    let st = f.status();
    assert!(st.playing && st.underruns == 0, "{st:?}");
    f.stop().expect("stops");
}

/// Without the `cpal` feature a sound card is refused at the start, with a typed error that
/// says what is missing; with it, a device that does not exist is refused with a clear one.
#[test]
fn a_sound_card_that_cannot_be_opened_is_refused_at_the_start() {
    let leader = leader();
    let mut c = follower_config(&leader, Role::Full, 0.0);
    c.output = lockstep::node::Output::Device(Some("lockstep-no-such-device".into()));
    let err = Follower::start(c).expect_err("no such sound card");
    let text = err.to_string();
    if cfg!(feature = "cpal") {
        assert!(
            matches!(err, lockstep::node::NodeError::Device { .. }),
            "{err:?}"
        );
        assert!(text.contains("lockstep-no-such-device"), "{text}");
    } else {
        assert!(
            matches!(
                err,
                lockstep::node::NodeError::Config {
                    field: "output",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(text.contains("cpal"), "{text}");
    }
    // The leader still serves others.
    let f = playing_follower(&leader);
    assert!(f.status().playing);
    leader.shutdown();
}

/// A thousand connections held open without a word, and a client that trickles a Hello at
/// one byte a second: another speaker still joins within a second, and the stream plays on.
#[test]
fn a_thousand_idle_connections_and_a_trickling_client_do_not_keep_a_speaker_out() {
    let leader = leader();
    let f = playing_follower(&leader);
    let mut held = Vec::new();
    for _ in 0..1000 {
        if let Ok(s) = TcpStream::connect(leader.control_addr()) {
            held.push(s);
        }
    }
    assert!(held.len() >= 900, "only {} connections opened", held.len());
    // The trickler: a Hello's first bytes, one a second, from its own thread.
    let control = leader.control_addr();
    let trickler = std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect(control) else {
            return 0;
        };
        let mut frame = Vec::new();
        let hello = Message::Hello {
            caps: Capabilities {
                model: "slow".into(),
                name: "slow".into(),
                channels: 2,
                max_rate: 48_000,
                output_latency: Nanos::ZERO,
            },
            role: Role::Full,
            group: String::new(),
            nonce: [9; 16],
            ports: PeerPorts {
                rtp: 1,
                ptp_event: 2,
                ptp_general: 3,
            },
        };
        write_message(&mut frame, &hello, &mut Vec::new()).expect("encodes");
        let mut sent = 0;
        for b in frame.iter().take(4) {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
        sent
    });
    // Let every idle handshake grow old enough to give its slot up.
    std::thread::sleep(Duration::from_millis(700));
    let before = f.status();
    let start = std::time::Instant::now();
    let late = Follower::start(follower_config(&leader, Role::Full, -20.0))
        .expect("a speaker joins past the idle connections");
    let took = start.elapsed();
    assert!(took <= Duration::from_secs(1), "joining took {took:?}");
    let stats = leader.stats();
    assert!(stats.evicted > 0 || stats.refused_busy > 0, "{stats:?}");
    std::thread::sleep(Duration::from_millis(500));
    let during = f.status();
    assert!(
        during.packets_received >= before.packets_received + 50,
        "the stream stalled: {} then {}",
        before.packets_received,
        during.packets_received
    );
    assert_eq!(during.underruns, 0, "{during:?}");
    eprintln!(
        "{} idle connections and a trickler: a speaker joined in {took:?}; {} handshakes \
         given up, {} connections refused busy",
        held.len(),
        stats.evicted,
        stats.refused_busy
    );
    drop(held);
    assert!(trickler.join().expect("trickler") >= 1);
    late.stop().expect("stops");
    f.stop().expect("stops");
}
