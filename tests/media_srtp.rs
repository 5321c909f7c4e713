//! SRTP: the RFCs' own test vectors, then the stream a follower sees — genuine packets across
//! a sequence wrap, forged, replayed, late, truncated and random ones — and the rule that
//! protecting and unprotecting allocate nothing.

mod common;

use lockstep::media::sender::{HEADER_LEN, RtpSender, SenderConfig};
use lockstep::media::srtp::{MAX_TAG_LEN, REPLAY_WINDOW};
use lockstep::media::{
    AudioFormat, CodecKind, SrtpContext, SrtpError, SrtpProfile, SrtpSessionKeys, SrtpStats,
};
use lockstep::time::LeaderInstant;

use common::alloc::watch;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

const SSRC: u32 = 0x1234_5678;

/// A plain RTP packet: V=2, payload type 96, the given sequence number, and `payload_len`
/// bytes of payload that depend on the sequence number.
fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 240).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..payload_len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seq as u8)));
    p
}

fn master(profile: SrtpProfile) -> (Vec<u8>, Vec<u8>) {
    let key: Vec<u8> = (0..profile.master_key_len() as u8)
        .map(|i| i * 7 + 1)
        .collect();
    let salt: Vec<u8> = (0..profile.master_salt_len() as u8)
        .map(|i| 0xa0 ^ i)
        .collect();
    (key, salt)
}

/// A sender and a receiver context over the same master key.
fn pair(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let (key, salt) = master(profile);
    (
        SrtpContext::new(profile, &key, &salt).unwrap(),
        SrtpContext::new(profile, &key, &salt).unwrap(),
    )
}

fn protect(tx: &mut SrtpContext, packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; packet.len() + MAX_TAG_LEN];
    let n = tx.protect(packet, &mut out).unwrap();
    out.truncate(n);
    out
}

fn unprotect(rx: &mut SrtpContext, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut out = vec![0u8; packet.len()];
    let n = rx.unprotect(packet, &mut out)?;
    out.truncate(n);
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The RFCs' vectors.

/// RFC 3711 Appendix B.3: the session keys of one master key and salt, key derivation rate
/// 0, packet index 0.
#[test]
fn key_derivation_gives_rfc_3711_appendix_b3() {
    let keys = SrtpSessionKeys::derive(
        SrtpProfile::AesCm128HmacSha1_80,
        &hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
        &hex("0EC675AD498AFEEBB6960B3AABE6"),
    )
    .unwrap();
    assert_eq!(
        keys.encryption_key(),
        hex("C61E7A93744F39EE10734AFE3FF7A087")
    );
    assert_eq!(keys.salt(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    assert_eq!(
        keys.auth_key(),
        hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    );
}

/// RFC 3711 Appendix B.2: the AES-CM keystream for session key 2B7E…, salt F0F1…FCFD, SSRC 0,
/// ROC 0 and sequence number 0, over the whole 1 044 512-byte segment (65 282 blocks). An
/// all-zero payload encrypts to the keystream itself.
#[test]
fn the_aes_cm_keystream_is_rfc_3711_appendix_b2() {
    let mut ctx = SrtpContext::from_session_keys(
        SrtpProfile::AesCm128HmacSha1_80,
        &hex("2B7E151628AED2A6ABF7158809CF4F3C"),
        &hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
        &[0u8; 20],
    )
    .unwrap();
    let segment = 1_044_512;
    let mut packet = vec![0u8; 12 + segment];
    packet[0] = 0x80;
    let mut out = vec![0u8; packet.len() + 10];
    let n = ctx.protect(&packet, &mut out).unwrap();
    assert_eq!(n, packet.len() + 10);
    assert_eq!(&out[..12], &packet[..12], "the header stays in the clear");
    let ks = &out[12..12 + segment];
    let expected_head = hex("E03EAD0935C95E80E166B16DD92B4EB4
         D23513162B02D0F72A43A2FE4A5F97AB
         41E95B3BB0A2E8DD477901E4FCA894C0");
    let expected_tail = hex("EC8CDF7398607CB0F2D21675EA9EA1E4
         362B7C3C6773516318A077D7FC5073AE
         6A2CC3787889374FBEB4C81B17BA6C44");
    assert_eq!(&ks[..48], &expected_head[..]);
    // Blocks 0xFEFF, 0xFF00 and 0xFF01 of the counter.
    assert_eq!(&ks[0xFEFF * 16..0xFF02 * 16], &expected_tail[..]);
}

/// RFC 7714 §16.1: AEAD_AES_128_GCM protects the RFC's packet (SSRC 0x5501a0b2, sequence
/// 0xf17b, ROC 0) to its ciphertext and tag, and the result unprotects back.
#[test]
fn aes_gcm_protects_rfc_7714_section_16_1() {
    let key = hex("000102030405060708090a0b0c0d0e0f");
    let salt = hex("517569642070726f2071756f");
    let plain = hex(
        "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
         20646976 69736120 696e2070 61727465 73207472 6573",
    );
    let expected = hex("8040f17b 8041f8d3 5501a0b2
         f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f 42a5f47a
         51c7d19b 36de3adf 8833
         899d7f27 beb16a91 52cf765e e4390cce");
    let mut tx =
        SrtpContext::from_session_keys(SrtpProfile::AeadAes128Gcm, &key, &salt, &[]).unwrap();
    assert_eq!(protect(&mut tx, &plain), expected);
    let mut rx =
        SrtpContext::from_session_keys(SrtpProfile::AeadAes128Gcm, &key, &salt, &[]).unwrap();
    assert_eq!(unprotect(&mut rx, &expected).unwrap(), plain);
    let mut tampered = expected.clone();
    tampered[20] ^= 0x01;
    let mut rx =
        SrtpContext::from_session_keys(SrtpProfile::AeadAes128Gcm, &key, &salt, &[]).unwrap();
    assert_eq!(unprotect(&mut rx, &tampered), Err(SrtpError::BadTag));
}

/// Key and salt lengths are checked, by name.
#[test]
fn keys_of_the_wrong_length_are_refused() {
    for profile in SrtpProfile::ALL {
        let (key, salt) = master(profile);
        assert!(matches!(
            SrtpContext::new(profile, &key[..15], &salt),
            Err(SrtpError::KeyLength {
                what: "master key",
                expected: 16,
                got: 15
            })
        ));
        let long_salt = [salt.clone(), vec![0]].concat();
        assert!(matches!(
            SrtpContext::new(profile, &key, &long_salt),
            Err(SrtpError::KeyLength {
                what: "master salt",
                ..
            })
        ));
    }
    assert!(matches!(
        SrtpContext::from_session_keys(
            SrtpProfile::AesCm128HmacSha1_80,
            &[0; 16],
            &[0; 14],
            &[0; 19]
        ),
        Err(SrtpError::KeyLength {
            expected: 20,
            got: 19,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------
// A stream, as a follower sees it.

/// The leader's own packets (5 ms of L24 stereo, with the RFC 6051 header extension) pass
/// through both profiles unchanged, with the header readable on the wire and the payload not.
#[test]
fn the_senders_packets_round_trip_with_the_header_in_the_clear() {
    let format = AudioFormat::new(48_000, 2).unwrap();
    let mut sender = RtpSender::new(SenderConfig::new(CodecKind::L24, format, SSRC)).unwrap();
    let pcm: Vec<f32> = (0..480).map(|i| ((i as f32) * 0.01).sin() * 0.5).collect();
    sender
        .handle_pcm(&pcm, LeaderInstant::from_nanos(1_700_000_000_000_000_000))
        .unwrap();
    let packet = sender.poll_transmit().expect("one packet").to_vec();
    assert_eq!(packet.len(), HEADER_LEN + 240 * 2 * 3);
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let wire = protect(&mut tx, &packet);
        assert_eq!(wire.len(), packet.len() + profile.tag_len());
        assert_eq!(&wire[..HEADER_LEN], &packet[..HEADER_LEN]);
        let same = wire[HEADER_LEN..packet.len()]
            .iter()
            .zip(&packet[HEADER_LEN..])
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            same < 40,
            "{profile}: {same} payload bytes left unencrypted"
        );
        assert_eq!(unprotect(&mut rx, &wire).unwrap(), packet);
        assert_eq!(rx.ssrc(), Some(SSRC));
    }
}

/// 300 packets from sequence 65 400 cross the wrap: the sender's and the receiver's
/// rollover counters both step to 1, and every packet is accepted, some of them late.
#[test]
fn a_stream_across_the_sequence_wrap_is_accepted_with_reordering() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let wire: Vec<Vec<u8>> = (0..300u16)
            .map(|k| protect(&mut tx, &rtp(65_400u16.wrapping_add(k), SSRC, 160)))
            .collect();
        assert_eq!(tx.rollover_counter(), 1);
        // Deliver in pairs swapped, and one packet 40 places late.
        let mut order: Vec<usize> = (0..300).collect();
        for pair in order.chunks_mut(2) {
            pair.swap(0, 1);
        }
        let late = order.remove(130);
        order.insert(170, late);
        for &k in &order {
            let plain = unprotect(&mut rx, &wire[k]).unwrap_or_else(|e| panic!("{k}: {e}"));
            assert_eq!(plain, rtp(65_400u16.wrapping_add(k as u16), SSRC, 160));
        }
        assert_eq!(rx.rollover_counter(), 1);
        assert_eq!(rx.highest_index(), Some(65_536 + (65_400 + 299 - 65_536)));
        assert_eq!(rx.stats().accepted, 300);
        assert_eq!(rx.stats().rejected(), 0);
    }
}

/// The attack of issue 14: packets forged with the next sequence numbers, the right SSRC
/// and a plausible tag, and the same with a flipped bit anywhere in a genuine packet. All
/// are bad tags; none disturbs the genuine stream.
#[test]
fn forged_and_corrupted_packets_fail_authentication() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let first = protect(&mut tx, &rtp(100, SSRC, 200));
        unprotect(&mut rx, &first).unwrap();
        let genuine = protect(&mut tx, &rtp(101, SSRC, 200));
        let mut rng = Rng(7);
        let mut bad = 0;
        // Forged: a plain RTP packet with a random "tag".
        for seq in 101..111u16 {
            let mut forged = rtp(seq, SSRC, 200);
            let mut tag = vec![0u8; profile.tag_len()];
            rng.fill(&mut tag);
            forged.extend_from_slice(&tag);
            assert_eq!(unprotect(&mut rx, &forged), Err(SrtpError::BadTag));
            bad += 1;
        }
        // Corrupted: one bit flipped in the header, the payload or the tag.
        for byte in [1, 2, 5, 7, 12, 100, genuine.len() - 1] {
            let mut c = genuine.clone();
            c[byte] ^= 0x10;
            assert_eq!(
                unprotect(&mut rx, &c),
                Err(SrtpError::BadTag),
                "{profile} byte {byte}"
            );
            bad += 1;
        }
        // Packets protected under another master key.
        let (mut stranger, _) = {
            let mut key = master(profile).0;
            key[0] ^= 1;
            let salt = master(profile).1;
            (SrtpContext::new(profile, &key, &salt).unwrap(), ())
        };
        let other = protect(&mut stranger, &rtp(101, SSRC, 200));
        assert_eq!(unprotect(&mut rx, &other), Err(SrtpError::BadTag));
        bad += 1;
        assert_eq!(rx.stats().bad_tag, bad);
        assert_eq!(
            rx.stats().replay,
            0,
            "a forgery is never counted as a replay"
        );
        assert_eq!(unprotect(&mut rx, &genuine).unwrap(), rtp(101, SSRC, 200));
        assert_eq!(rx.stats().accepted, 2);
    }
}

/// A genuine packet that comes again, or later than the replay window, is a replay: its tag
/// is good, and it is dropped and counted.
#[test]
fn repeated_and_stale_packets_are_replays() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let n = REPLAY_WINDOW as u16 + 50;
        let wire: Vec<Vec<u8>> = (0..n)
            .map(|s| protect(&mut tx, &rtp(s, SSRC, 64)))
            .collect();
        // Skip packet 10 at first, accept the rest.
        for (k, w) in wire.iter().enumerate() {
            if k != 10 && k != 60 {
                unprotect(&mut rx, w).unwrap();
            }
        }
        // Repeats of accepted packets, recent and old.
        let last = usize::from(n) - 1;
        assert_eq!(
            unprotect(&mut rx, &wire[last]),
            Err(SrtpError::Replay { index: last as i64 })
        );
        assert_eq!(
            unprotect(&mut rx, &wire[100]),
            Err(SrtpError::Replay { index: 100 })
        );
        // Packet 60 is late but inside the window: accepted once, then a replay.
        assert!(last - 60 < REPLAY_WINDOW as usize);
        unprotect(&mut rx, &wire[60]).unwrap();
        assert!(matches!(
            unprotect(&mut rx, &wire[60]),
            Err(SrtpError::Replay { .. })
        ));
        // Packet 10 is older than the window: a replay although never seen.
        assert!(last - 10 >= REPLAY_WINDOW as usize);
        assert_eq!(
            unprotect(&mut rx, &wire[10]),
            Err(SrtpError::Replay { index: 10 })
        );
        let stats = rx.stats();
        assert_eq!(stats.replay, 4);
        assert_eq!(stats.bad_tag, 0);
        assert_eq!(stats.accepted, u64::from(n) - 1);
    }
}

/// A context serves one SSRC: a fixed one, or the first one it accepts.
#[test]
fn packets_of_another_ssrc_are_unknown() {
    let profile = SrtpProfile::default();
    let (key, salt) = master(profile);
    let mut tx = SrtpContext::new(profile, &key, &salt).unwrap();
    let mut other_tx = SrtpContext::new(profile, &key, &salt).unwrap();
    let mut rx = SrtpContext::new(profile, &key, &salt)
        .unwrap()
        .with_ssrc(SSRC);
    let foreign = protect(&mut other_tx, &rtp(5, 0xdead_beef, 32));
    assert_eq!(
        unprotect(&mut rx, &foreign),
        Err(SrtpError::UnknownSsrc {
            expected: SSRC,
            got: 0xdead_beef
        })
    );
    unprotect(&mut rx, &protect(&mut tx, &rtp(5, SSRC, 32))).unwrap();
    // An unbound receiver binds to the first stream it accepts.
    let mut open = SrtpContext::new(profile, &key, &salt).unwrap();
    assert_eq!(open.ssrc(), None);
    let mut tx2 = SrtpContext::new(profile, &key, &salt).unwrap();
    unprotect(&mut open, &protect(&mut tx2, &rtp(9, SSRC, 32))).unwrap();
    let foreign2 = protect(&mut other_tx, &rtp(6, 0xdead_beef, 32));
    assert!(matches!(
        unprotect(&mut open, &foreign2),
        Err(SrtpError::UnknownSsrc { .. })
    ));
    assert_eq!(rx.stats().unknown_ssrc, 1);
    assert_eq!(open.stats().unknown_ssrc, 1);
    // And a sender refuses to switch streams.
    assert!(matches!(
        tx.protect(&rtp(6, 0xdead_beef, 32), &mut [0u8; 64]),
        Err(SrtpError::UnknownSsrc { .. })
    ));
}

/// A receiver that joins after the sender's sequence number has wrapped needs the sender's
/// rollover counter: without it every packet fails, with it every packet passes.
#[test]
fn a_late_joiner_needs_the_senders_rollover_counter() {
    let profile = SrtpProfile::default();
    let (key, salt) = master(profile);
    let mut tx = SrtpContext::new(profile, &key, &salt).unwrap();
    let mut wire = Vec::new();
    for k in 0..70_000u32 {
        let w = protect(&mut tx, &rtp(k as u16, SSRC, 8));
        if k >= 69_990 {
            wire.push(w);
        }
    }
    assert_eq!(tx.rollover_counter(), 1);
    let mut naive = SrtpContext::new(profile, &key, &salt).unwrap();
    let mut told = SrtpContext::new(profile, &key, &salt)
        .unwrap()
        .with_rollover_counter(tx.rollover_counter());
    for w in &wire {
        assert_eq!(unprotect(&mut naive, w), Err(SrtpError::BadTag));
        unprotect(&mut told, w).unwrap();
    }
}

/// A sender never protects one index twice (that would reuse keystream).
#[test]
fn the_sender_refuses_an_index_that_does_not_advance() {
    for profile in SrtpProfile::ALL {
        let (mut tx, _) = pair(profile);
        protect(&mut tx, &rtp(10, SSRC, 16));
        let mut out = [0u8; 64];
        assert_eq!(
            tx.protect(&rtp(10, SSRC, 16), &mut out),
            Err(SrtpError::IndexNotAdvancing {
                index: 10,
                highest: 10
            })
        );
        assert!(matches!(
            tx.protect(&rtp(9, SSRC, 16), &mut out),
            Err(SrtpError::IndexNotAdvancing { .. })
        ));
        protect(&mut tx, &rtp(11, SSRC, 16));
        assert_eq!(tx.stats().protected, 2);
    }
}

/// Buffers that are too small and packets that are not RTP get typed errors.
#[test]
fn short_buffers_and_non_rtp_get_typed_errors() {
    let (mut tx, mut rx) = pair(SrtpProfile::default());
    let p = rtp(1, SSRC, 20);
    assert_eq!(
        tx.protect(&p, &mut [0u8; 35]),
        Err(SrtpError::OutputTooSmall {
            needed: 42,
            got: 35
        })
    );
    let mut v1 = p.clone();
    v1[0] = 0x40;
    assert_eq!(
        tx.protect(&v1, &mut [0u8; 64]),
        Err(SrtpError::BadVersion { version: 1 })
    );
    // Extension header claiming more words than there are.
    let mut ext = p.clone();
    ext[0] |= 0x10;
    ext[14] = 0;
    ext[15] = 200;
    assert!(matches!(
        tx.protect(&ext, &mut [0u8; 64]),
        Err(SrtpError::TooShort { .. })
    ));
    assert!(matches!(
        rx.unprotect(&[0x80; 15], &mut [0u8; 64]),
        Err(SrtpError::TooShort { .. })
    ));
    assert_eq!(rx.stats().malformed, 1);
    // In place, with room for the tag.
    let mut buf = [0u8; 64];
    buf[..p.len()].copy_from_slice(&p);
    let n = tx.protect_in_place(&mut buf, p.len()).unwrap();
    let m = rx.unprotect_in_place(&mut buf[..n]).unwrap();
    assert_eq!(&buf[..m], &p[..]);
}

/// Every truncation of a genuine packet, random bytes, and random mutations: nothing
/// panics, everything is rejected and counted, and the next genuine packet still passes.
#[test]
fn truncated_random_and_mutated_input_is_rejected_without_panic() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let mut rng = Rng(0x5eed ^ profile.tag_len() as u64);
        let mut expected_rejects = 0u64;
        let mut out = vec![0u8; 2048];
        let mut seq = 0u16;
        for round in 0..20 {
            let genuine = protect(&mut tx, &rtp(seq, SSRC, 300 + round));
            for cut in 0..genuine.len() {
                assert!(rx.unprotect(&genuine[..cut], &mut out).is_err());
                expected_rejects += 1;
            }
            for _ in 0..50 {
                let len = (rng.next() % 1600) as usize;
                let mut junk = vec![0u8; len];
                rng.fill(&mut junk);
                if rng.next().is_multiple_of(2) && len >= 12 {
                    // Make it look like RTP of the right stream.
                    junk[0] = 0x80 | (junk[0] & 0x3f);
                    junk[8..12].copy_from_slice(&SSRC.to_be_bytes());
                }
                assert!(rx.unprotect(&junk, &mut out).is_err());
                expected_rejects += 1;
                let mut mutated = genuine.clone();
                let at = (rng.next() as usize) % mutated.len();
                mutated[at] ^= 1 << (rng.next() % 8);
                assert!(rx.unprotect(&mutated, &mut out).is_err());
                expected_rejects += 1;
            }
            let n = rx.unprotect(&genuine, &mut out).unwrap();
            assert_eq!(&out[..n], &rtp(seq, SSRC, 300 + round)[..]);
            seq = seq.wrapping_add(1 + (rng.next() % 3) as u16);
        }
        let stats: SrtpStats = rx.stats();
        assert_eq!(stats.rejected(), expected_rejects);
        assert_eq!(stats.accepted, 20);
    }
}

/// Protecting and unprotecting 1000 packets of 5 ms L24 stereo allocates nothing.
#[test]
fn protect_and_unprotect_allocate_nothing() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let mut packet = rtp(0, SSRC, 1440);
        let mut wire = vec![0u8; 1500];
        let mut plain = vec![0u8; 1500];
        let mut forged = vec![0u8; 1500];
        let ((), allocs, live) = watch(|| {
            for seq in 0..1000u16 {
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                let n = tx.protect(&packet, &mut wire).unwrap();
                forged[..n].copy_from_slice(&wire[..n]);
                forged[n - 1] ^= 1;
                assert!(rx.unprotect(&forged[..n], &mut plain).is_err());
                let m = rx.unprotect(&wire[..n], &mut plain).unwrap();
                assert_eq!(m, packet.len());
                assert!(rx.unprotect(&wire[..n], &mut plain).is_err());
            }
        });
        assert_eq!((allocs, live), (0, 0), "{profile}");
        assert_eq!(rx.stats().accepted, 1000);
        assert_eq!(rx.stats().bad_tag, 1000);
        assert_eq!(rx.stats().replay, 1000);
    }
}

/// `Debug` shows the state, never the keys.
#[test]
fn debug_output_holds_no_key_material() {
    let key = [0xab; 16];
    let salt = [0xcd; 14];
    let ctx = SrtpContext::new(SrtpProfile::default(), &key, &salt).unwrap();
    let keys = SrtpSessionKeys::derive(SrtpProfile::default(), &key, &salt).unwrap();
    let secrets = [
        &key[..],
        &salt[..],
        keys.encryption_key(),
        keys.salt(),
        keys.auth_key(),
    ];
    for text in [format!("{ctx:?}"), format!("{keys:?}")] {
        assert!(text.contains("AesCm128HmacSha1_80"), "{text}");
        for secret in secrets {
            // Neither as a list of numbers nor as hex digits.
            let list = format!("{:?}", &secret[..3]);
            let list = &list[1..list.len() - 1];
            let digits: String = secret[..3].iter().map(|b| format!("{b:02x}")).collect();
            assert!(!text.contains(list), "{text}");
            assert!(!text.to_lowercase().contains(&digits), "{text}");
        }
    }
}
