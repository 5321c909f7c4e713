//! Media-path costs: encode and packetize, receive and decode, and the jitter buffer.
//!
//! ```text
//! cargo bench --bench rtp                    # L16 and L24
//! cargo bench --bench rtp --features opus    # and Opus
//! ```
//!
//! The codec benches process one second of 48 kHz stereo audio per iteration, so the
//! real-time factor is one second divided by the time criterion reports (and its throughput
//! line, in frames per second, divided by 48 000). The jitter buffer benches time one
//! packet per iteration.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockstep::media::jitter::{Front, JitterBuffer, PacketMeta};
use lockstep::media::receiver::{ReceiverConfig, RtpReceiver};
use lockstep::media::sender::{RtpSender, SenderConfig};
use lockstep::media::{AudioFormat, CodecKind};
use lockstep::time::{LeaderInstant, Nanos};

const RATE: u32 = 48_000;

fn format() -> AudioFormat {
    AudioFormat::new(RATE, 2).expect("48 kHz stereo")
}

/// One second of a two-tone stereo signal.
fn second() -> Vec<f32> {
    (0..RATE as usize)
        .flat_map(|i| {
            let t = i as f32 / RATE as f32;
            let x = 0.4 * (std::f32::consts::TAU * 440.0 * t).sin()
                + 0.2 * (std::f32::consts::TAU * 3_150.0 * t).sin();
            [x, -x]
        })
        .collect()
}

/// Sender alone, and sender into receiver into the output, one second of audio per
/// iteration, for `codec` with its default packet time.
fn media_path(c: &mut Criterion, codec: CodecKind, name: &str) {
    let pcm = second();
    let mut group = c.benchmark_group(format!("rtp/{name}"));
    group.throughput(Throughput::Elements(u64::from(RATE)));

    let mut sender = RtpSender::new(SenderConfig::new(codec, format(), 0x5EED)).expect("sender");
    let mut at = LeaderInstant::from_nanos(1_700_000_000_000_000_000);
    group.bench_function("send_1s", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            sender.handle_pcm(black_box(&pcm), at).expect("handle_pcm");
            while let Some(p) = sender.poll_transmit() {
                bytes += p.len();
            }
            at += Nanos::from_secs(1);
            black_box(bytes)
        })
    });

    let config = SenderConfig::new(codec, format(), 0x5EED);
    let ptime = Nanos::from_millis(i64::from(config.effective_ptime_ms()));
    let mut sender = RtpSender::new(config).expect("sender");
    let receiver_config = ReceiverConfig::new(codec, format(), 96);
    // Each packet arrives this long before it is to be played: beyond the lead at which the
    // receiver gives up on a packet and conceals it, as on a healthy network.
    let ahead = receiver_config.conceal_lead + Nanos::from_millis(10);
    let mut receiver = RtpReceiver::new(receiver_config).expect("receiver");
    let mut out = vec![0f32; 2 * 480];
    let mut at = LeaderInstant::from_nanos(1_700_000_000_000_000_000);
    let mut packet = 0i64;
    let start = at;
    group.bench_function("send_receive_1s", |b| {
        b.iter(|| {
            let mut frames = 0usize;
            sender.handle_pcm(black_box(&pcm), at).expect("handle_pcm");
            while let Some(p) = sender.poll_transmit() {
                let now = start + ptime.mul_f64(packet as f64) - ahead;
                packet += 1;
                receiver.handle_rtp(p, now);
                while let Some(block) = receiver.poll_audio(&mut out) {
                    frames += block.frames;
                }
            }
            at += Nanos::from_secs(1);
            black_box(frames)
        })
    });
    group.finish();
    // (When a filter skips the bench, nothing was sent.)
    let stats = receiver.stats();
    assert!(
        packet == 0
            || stats.decoded > 0
                && stats.lost == 0
                && stats.late == 0
                && stats.overflow == 0
                && stats.rejected.total() == 0,
        "the bench stream must be clean and decoded: {stats:?}"
    );
}

fn pcm(c: &mut Criterion) {
    media_path(c, CodecKind::L16, "l16_48k_stereo_5ms");
    media_path(c, CodecKind::L24, "l24_48k_stereo_5ms");
}

#[cfg(feature = "opus")]
fn opus(c: &mut Criterion) {
    use lockstep::media::Codec;
    use lockstep::media::opus::{Opus, OpusConfig};

    media_path(c, CodecKind::Opus, "opus_48k_stereo_20ms_128k");
    // The codec alone: encode then decode, 20 ms frames at 128 kbit/s.
    let pcm = second();
    let mut codec = Opus::new(format(), OpusConfig::default()).expect("opus");
    let mut packet = vec![0u8; 4_000];
    let mut decoded = vec![0f32; 2 * 960];
    let mut group = c.benchmark_group("rtp/opus_codec_20ms_128k");
    group.throughput(Throughput::Elements(u64::from(RATE)));
    group.bench_function("encode_decode_1s", |b| {
        b.iter(|| {
            let mut n = 0;
            for frame in pcm.chunks_exact(2 * 960) {
                let len = codec.encode(frame, &mut packet).expect("encode");
                n += codec.decode(&packet[..len], &mut decoded).expect("decode");
            }
            black_box(n)
        })
    });
    group.finish();
}

#[cfg(not(feature = "opus"))]
fn opus(_: &mut Criterion) {}

/// One 5 ms L24 stereo packet (1440 bytes) per iteration.
fn jitter(c: &mut Criterion) {
    let payload = vec![0x5Au8; 1_440];
    let meta = |seq: u64| PacketMeta {
        seq,
        timestamp: seq * 240,
        presentation: None,
        marker: false,
    };
    let mut group = c.benchmark_group("jitter");

    // Steady state: the buffer holds 20 packets; each iteration inserts one and pops one.
    let mut jb = JitterBuffer::new(256, 1_500);
    let mut seq = 0u64;
    for _ in 0..20 {
        jb.insert(meta(seq), &payload);
        seq += 1;
    }
    group.bench_function("insert_then_pop", |b| {
        b.iter(|| {
            jb.insert(meta(seq), black_box(&payload));
            seq += 1;
            let len = match jb.front() {
                Front::Ready(_, p) => p.len(),
                _ => 0,
            };
            jb.pop();
            black_box(len)
        })
    });

    // Insert alone, pop alone: batches of 100 packets, swapped pairs (reordering).
    let mut jb = JitterBuffer::new(256, 1_500);
    let mut seq = 0u64;
    group.bench_function("insert_reordered_x100", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                jb.clear();
                seq += 200;
                let t = std::time::Instant::now();
                for k in 0..50 {
                    jb.insert(meta(seq + 2 * k + 1), black_box(&payload));
                    jb.insert(meta(seq + 2 * k), black_box(&payload));
                }
                total += t.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, pcm, opus, jitter);
criterion_main!(benches);
