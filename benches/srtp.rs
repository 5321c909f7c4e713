//! SRTP costs: protecting and unprotecting the packets the media path sends.
//!
//! ```text
//! cargo bench --bench srtp
//! ```
//!
//! The packet is one the [`RtpSender`] makes from 5 ms of 48 kHz stereo L24: a 28-byte header
//! (with the RFC 6051 presentation time) and 1440 bytes of payload. Each iteration protects
//! one packet with the leader's context and unprotects it with a follower's (the sequence
//! number advances every time, so the replay window does real work), for each profile;
//! `protect` and `unprotect` time the halves. A follower's 10 ms output block (the unit of
//! `benches/playout.rs`) carries two such packets; docs/media.md sets the two side by side.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockstep::media::sender::{RtpSender, SenderConfig};
use lockstep::media::{AudioFormat, CodecKind, SrtpContext, SrtpProfile};
use lockstep::time::LeaderInstant;

/// One 5 ms L24 stereo packet as the sender makes it.
fn packet() -> Vec<u8> {
    let format = AudioFormat::new(48_000, 2).expect("48 kHz stereo");
    let mut sender =
        RtpSender::new(SenderConfig::new(CodecKind::L24, format, 0x4c4f_434b)).expect("sender");
    let pcm: Vec<f32> = (0..480)
        .map(|i| 0.4 * (std::f32::consts::TAU * 440.0 * (i / 2) as f32 / 48_000.0).sin())
        .collect();
    sender
        .handle_pcm(&pcm, LeaderInstant::from_nanos(1_700_000_000_000_000_000))
        .expect("pcm");
    sender.poll_transmit().expect("a packet").to_vec()
}

fn contexts(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let key: Vec<u8> = (0..profile.master_key_len() as u8).collect();
    let salt: Vec<u8> = (0..profile.master_salt_len() as u8)
        .map(|i| 0xf0 + i)
        .collect();
    (
        SrtpContext::new(profile, &key, &salt).expect("context"),
        SrtpContext::new(profile, &key, &salt).expect("context"),
    )
}

fn srtp(c: &mut Criterion) {
    let mut packet = packet();
    assert_eq!(packet.len(), 28 + 1440);
    let mut group = c.benchmark_group("srtp/l24_stereo_5ms");
    group.throughput(Throughput::Bytes(packet.len() as u64));
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = contexts(profile);
        let mut wire = vec![0u8; packet.len() + 16];
        let mut plain = vec![0u8; packet.len() + 16];
        let mut seq = 0u16;
        group.bench_function(format!("protect+unprotect/{}", profile.name()), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                let n = tx.protect(&packet, &mut wire).expect("protect");
                let m = rx.unprotect(&wire[..n], &mut plain).expect("unprotect");
                black_box(plain[m - 1])
            })
        });
        let (mut tx, _) = contexts(profile);
        group.bench_function(format!("protect/{}", profile.name()), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                black_box(tx.protect(&packet, &mut wire).expect("protect"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, srtp);
criterion_main!(benches);
