//! The RTP receiver from the outside: packets built by hand (so the test does not share the
//! sender's code), fed with arrival times, and the decoded audio and counters checked.

mod common;

use lockstep::media::receiver::{Outcome, ReceiverConfig, RejectReason, RtpReceiver};
use lockstep::media::{AudioFormat, Codec, CodecKind, L24, NtpTimestamp};
use lockstep::time::{LeaderInstant, Nanos};

use common::alloc::watch;

const RATE: u32 = 48_000;
const FRAMES: usize = 240; // 5 ms
const PT: u8 = 97;
const SSRC: u32 = 0x1234_5678;

fn fmt() -> AudioFormat {
    AudioFormat::new(RATE, 2).unwrap()
}

fn config() -> ReceiverConfig {
    ReceiverConfig::new(CodecKind::L24, fmt(), PT)
}

/// RTP packet with an optional RFC 8285 one-byte extension carrying the 64-bit NTP time.
fn rtp(seq: u16, ts: u32, ssrc: u32, ntp: Option<LeaderInstant>, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80 | if ntp.is_some() { 0x10 } else { 0 }, PT];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(at) = ntp {
        p.extend_from_slice(&[0xBE, 0xDE, 0, 3, 0x17]);
        p.extend_from_slice(&NtpTimestamp::from_instant(at).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0]);
    }
    p.extend_from_slice(payload);
    p
}

/// A 997 Hz stereo sine at half scale, quantised to L24 so it round-trips exactly.
fn sine(frames: usize) -> Vec<f32> {
    let mut codec = L24::new(fmt());
    let raw: Vec<f32> = (0..frames)
        .flat_map(|i| {
            let x = 0.5 * (2.0 * std::f64::consts::PI * 997.0 * i as f64 / RATE as f64).sin();
            [x as f32, -x as f32]
        })
        .collect();
    let mut bytes = vec![0u8; codec.payload_len(frames)];
    codec.encode(&raw, &mut bytes).unwrap();
    let mut out = vec![0f32; raw.len()];
    codec.decode(&bytes, &mut out).unwrap();
    out
}

struct Stream {
    packets: Vec<(Vec<u8>, LeaderInstant)>,
    source: Vec<f32>,
    base: LeaderInstant,
}

/// `n` packets of 5 ms L24 stereo, sequence from `seq0`, timestamp from `ts0`, each to be
/// played 5 ms after the previous from `base`; arrival time is 50 ms before presentation.
fn stream(n: usize, seq0: u16, ts0: u32, ssrc: u32, with_ntp: bool) -> Stream {
    let base = LeaderInstant::from_nanos(1_700_000_000_000_000_000);
    let source = sine(n * FRAMES);
    let mut codec = L24::new(fmt());
    let packets = (0..n)
        .map(|k| {
            let pcm = &source[k * FRAMES * 2..(k + 1) * FRAMES * 2];
            let mut payload = vec![0u8; codec.payload_len(FRAMES)];
            codec.encode(pcm, &mut payload).unwrap();
            let at = base + Nanos::from_micros(5_000 * k as i64);
            let p = rtp(
                seq0.wrapping_add(k as u16),
                ts0.wrapping_add((k * FRAMES) as u32),
                ssrc,
                with_ntp.then_some(at),
                &payload,
            );
            (p, at - Nanos::from_millis(50))
        })
        .collect();
    Stream {
        packets,
        source,
        base,
    }
}

/// Asserts two sample vectors are equal without printing them whole.
fn assert_same(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("first difference at sample {i}: {} vs {}", got[i], want[i]);
    }
}

/// Output: samples and the presentation time of each block's first frame.
struct Played {
    samples: Vec<f32>,
    blocks: Vec<(LeaderInstant, usize)>,
}

fn read_all(rx: &mut RtpReceiver, played: &mut Played) {
    let mut buf = [0f32; 2 * 128];
    while let Some(b) = rx.poll_audio(&mut buf) {
        played.samples.extend_from_slice(&buf[..b.frames * 2]);
        played.blocks.push((b.presentation, b.frames));
    }
}

fn play(rx: &mut RtpReceiver, packets: &[(Vec<u8>, LeaderInstant)]) -> Played {
    let mut played = Played {
        samples: Vec::new(),
        blocks: Vec::new(),
    };
    for (p, now) in packets {
        rx.handle_rtp(p, *now);
        read_all(rx, &mut played);
    }
    // Time passes until just before the last packet plays (packets arrive 30 or 50 ms
    // ahead; gaps are concealed 20 ms ahead): every gap before it is due, and the stream
    // has not yet run dry, which would start concealing after its end.
    let end = packets.last().unwrap().1 + Nanos::from_millis(10);
    rx.handle_timeout(end);
    read_all(rx, &mut played);
    played
}

/// Every block's presentation time follows from the first one and the frames before it.
fn assert_timeline(played: &Played, first: LeaderInstant) {
    let mut frames = 0i64;
    for &(at, n) in &played.blocks {
        let expect = first + Nanos::from_nanos(frames * 1_000_000_000 / RATE as i64);
        assert!(
            (at - expect).abs() <= Nanos::from_nanos(1),
            "block at {at} expected {expect}"
        );
        frames += n as i64;
    }
}

#[test]
fn in_order_stream_comes_out_exactly_with_its_times() {
    let s = stream(200, 100, 5_000, SSRC, true);
    let mut rx = RtpReceiver::new(config()).unwrap();
    let played = play(&mut rx, &s.packets);
    assert_same(&played.samples, &s.source);
    assert_timeline(&played, s.base);
    let st = rx.stats();
    assert_eq!(st.received, 200);
    assert_eq!(st.decoded, 200);
    assert_eq!((st.lost, st.late, st.duplicate, st.reordered), (0, 0, 0, 0));
    assert_eq!(st.rejected.total(), 0);
}

#[test]
fn reordered_and_duplicated_packets_come_out_once_in_order() {
    let s = stream(200, 7, 0, SSRC, true);
    let mut packets = Vec::new();
    for pair in s.packets.chunks(2) {
        // Swap each pair, deliver the first of each pair twice; arrival times stay sorted.
        let t = pair[0].1;
        if pair.len() == 2 {
            packets.push((pair[1].0.clone(), t));
        }
        packets.push((pair[0].0.clone(), t));
        packets.push((pair[0].0.clone(), t));
    }
    let mut rx = RtpReceiver::new(config()).unwrap();
    let played = play(&mut rx, &packets);
    assert_same(&played.samples, &s.source);
    let st = rx.stats();
    assert_eq!(st.duplicate, 100);
    assert_eq!(st.reordered, 100);
    assert_eq!(st.lost, 0);
}

#[test]
fn sequence_and_timestamp_wrap_is_invisible() {
    let s = stream(300, 65_500, u32::MAX - 10_000, SSRC, true);
    let mut rx = RtpReceiver::new(config()).unwrap();
    let played = play(&mut rx, &s.packets);
    assert_same(&played.samples, &s.source);
    assert_timeline(&played, s.base);
}

/// Largest step between consecutive samples of channel 0.
fn max_step(x: &[f32]) -> f32 {
    x.chunks(2)
        .zip(x.chunks(2).skip(1))
        .map(|(a, b)| (b[0] - a[0]).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_lost_pcm_packet_is_faded_without_a_click() {
    let s = stream(200, 0, 0, SSRC, true);
    let mut packets = s.packets.clone();
    packets.remove(100);
    let mut rx = RtpReceiver::new(config()).unwrap();
    let played = play(&mut rx, &packets);
    // The timeline is whole: the gap is filled, not skipped.
    assert_eq!(played.samples.len(), s.source.len());
    assert_timeline(&played, s.base);
    let st = rx.stats();
    assert_eq!(st.lost, 1);
    assert_eq!(st.concealed_frames, FRAMES as u64);
    // Outside the concealed packet and the fade-in after it, the audio is the source.
    let gap = 100 * FRAMES * 2..101 * FRAMES * 2;
    let fade = 96 * 2; // 2 ms at 48 kHz
    assert_same(&played.samples[..gap.start], &s.source[..gap.start]);
    assert_same(
        &played.samples[gap.end + fade..],
        &s.source[gap.end + fade..],
    );
    // No click: no step larger than the sine's own largest step (plus a little for the
    // fades' slope), and the concealed stretch settles at zero (no DC).
    let natural = max_step(&s.source);
    let around = &played.samples[gap.start - 200..gap.end + fade + 200];
    assert!(
        max_step(around) <= 1.5 * natural,
        "step {} vs natural {natural}",
        max_step(around)
    );
    let middle = &played.samples[gap.start + fade..gap.end];
    assert!(middle.iter().all(|&x| x == 0.0));
}

#[test]
fn a_burst_of_losses_is_concealed_and_counted() {
    let s = stream(300, 0, 0, SSRC, true);
    let packets: Vec<_> = s
        .packets
        .iter()
        .enumerate()
        .filter(|(k, _)| !(50..55).contains(k) && k % 37 != 5)
        .map(|(_, p)| p.clone())
        .collect();
    let dropped = 300 - packets.len();
    let mut rx = RtpReceiver::new(config()).unwrap();
    let played = play(&mut rx, &packets);
    assert_eq!(played.samples.len(), s.source.len());
    assert_timeline(&played, s.base);
    assert_eq!(rx.stats().lost, dropped as u64);
    assert_eq!(rx.stats().concealed_frames, (dropped * FRAMES) as u64);
}

#[test]
fn late_packets_are_dropped_and_counted() {
    let s = stream(100, 0, 0, SSRC, true);
    let mut packets = s.packets.clone();
    // Packet 40 arrives after its presentation time.
    packets[40].1 = s.base + Nanos::from_micros(40 * 5_000 + 1_000);
    let late = packets.remove(40);
    packets.insert(60, late);
    let mut rx = RtpReceiver::new(config()).unwrap();
    let played = play(&mut rx, &packets);
    assert_eq!(rx.stats().late, 1);
    assert_eq!(rx.stats().lost, 1);
    assert_eq!(played.samples.len(), s.source.len());
    // A packet whose slot was already concealed is late too, even if its own time is not.
    let mut rx = RtpReceiver::new(config()).unwrap();
    let mut packets = s.packets.clone();
    let p = packets.remove(10);
    packets.push((p.0, packets.last().unwrap().1));
    play(&mut rx, &packets);
    assert_eq!(rx.stats().late, 1);
}

#[test]
fn a_full_jitter_buffer_drops_the_oldest() {
    let mut cfg = config();
    cfg.max_depth = 8;
    cfg.fifo_frames = FRAMES; // room for one packet: the rest must wait in the buffer
    let s = stream(40, 0, 0, SSRC, true);
    let mut rx = RtpReceiver::new(cfg).unwrap();
    for (p, now) in &s.packets {
        rx.handle_rtp(p, *now);
        assert!(rx.buffered_packets() <= 8);
    }
    let st = rx.stats();
    assert!(st.overflow > 0, "{st:?}");
    assert_eq!(st.overflow + rx.buffered_packets() as u64 + st.decoded, 40);
}

#[test]
fn a_new_ssrc_relocks_and_junk_ssrcs_do_not() {
    let a = stream(100, 0, 0, SSRC, true);
    let mut b = stream(100, 5_000, 77_777, 0xB0B, true);
    // Stream B starts right where A stops.
    let shift = Nanos::from_secs(1);
    for p in &mut b.packets {
        p.1 += shift;
        // Rebuild with shifted NTP times.
    }
    let mut b_packets = Vec::new();
    for (k, (p, now)) in b.packets.iter().enumerate() {
        let at = b.base + shift + Nanos::from_micros(5_000 * k as i64);
        let mut q = rtp(
            u16::from_be_bytes([p[2], p[3]]),
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            0xB0B,
            Some(at),
            &p[28..],
        );
        q.truncate(p.len());
        b_packets.push((q, *now));
    }
    let mut rx = RtpReceiver::new(config()).unwrap();
    let mut played = Played {
        samples: Vec::new(),
        blocks: Vec::new(),
    };
    for (k, (p, now)) in a.packets.iter().enumerate() {
        rx.handle_rtp(p, *now);
        // Junk SSRCs with random sequence numbers interleaved: rejected, no relock.
        let junk = rtp((k * 7919) as u16, 0, 0xDEAD_0000 + k as u32, None, &p[28..]);
        assert_eq!(
            rx.handle_rtp(&junk, *now),
            Outcome::Rejected(RejectReason::WrongSsrc)
        );
        read_all(&mut rx, &mut played);
    }
    assert_eq!(rx.stats().relocks, 0);
    let mut outcomes = Vec::new();
    for (p, now) in &b_packets {
        outcomes.push(rx.handle_rtp(p, *now));
        read_all(&mut rx, &mut played);
    }
    assert_eq!(rx.stats().relocks, 1);
    assert_eq!(rx.ssrc(), Some(0xB0B));
    // A fell silent 505 ms before B's first packet: the relock is immediate.
    assert_eq!(outcomes[0], Outcome::Relocked);
    assert_eq!(played.samples.len(), a.source.len() + b.source.len());
    assert_same(&played.samples[a.source.len()..], &b.source);
}

#[test]
fn a_new_ssrc_during_a_live_stream_takes_over_after_a_few_packets() {
    let a = stream(50, 0, 0, SSRC, true);
    let b = stream(50, 900, 123, 0xB0B, true);
    let mut rx = RtpReceiver::new(config()).unwrap();
    for (k, ((pa, now), (pb, _))) in a.packets.iter().zip(&b.packets).enumerate() {
        rx.handle_rtp(pa, *now);
        if k >= 10 {
            rx.handle_rtp(pb, *now);
        }
    }
    assert_eq!(rx.stats().relocks, 1);
    assert_eq!(rx.ssrc(), Some(0xB0B));
    // B's first three packets wait; from B's fourth on, A's packets are the strangers.
    assert_eq!(rx.stats().rejected.get(RejectReason::WrongSsrc), 3 + 36);
}

#[test]
fn a_stream_without_timing_plays_at_arrival_plus_latency() {
    let s = stream(50, 0, 0, SSRC, false);
    let mut rx = RtpReceiver::new(config()).unwrap();
    let played = play(&mut rx, &s.packets);
    assert_same(&played.samples, &s.source);
    let first_arrival = s.packets[0].1;
    assert_timeline(&played, first_arrival + Nanos::from_millis(100));
}

#[test]
fn malformed_datagrams_are_rejected_by_reason() {
    let good = stream(1, 0, 0, SSRC, true).packets[0].0.clone();
    let mut rx = RtpReceiver::new(config()).unwrap();
    let now = LeaderInstant::from_nanos(1_700_000_000_000_000_000 - 50_000_000);
    let mut cases: Vec<(Vec<u8>, RejectReason)> = Vec::new();
    cases.push((good[..11].to_vec(), RejectReason::TooShort));
    let mut v = good.clone();
    v[0] = (v[0] & 0x3f) | 0x40;
    cases.push((v, RejectReason::BadVersion));
    let mut v = good.clone();
    v[1] = 0;
    cases.push((v, RejectReason::WrongPayloadType));
    let mut v = good[..24].to_vec();
    v[0] |= 0x0f; // 15 CSRCs claimed
    cases.push((v, RejectReason::CsrcOverrun));
    let mut v = good.clone();
    v[14] = 0xff; // extension length in words overruns
    cases.push((v, RejectReason::ExtensionOverrun));
    let mut v = good[..30].to_vec();
    v[16] = 0x1F; // element of 16 bytes inside a 12-byte block
    cases.push((v, RejectReason::ExtensionOverrun));
    let mut v = good.clone();
    v[0] |= 0x20;
    *v.last_mut().unwrap() = 0; // padding count zero
    cases.push((v, RejectReason::BadPadding));
    let mut v = good[..34].to_vec();
    v[0] |= 0x20;
    *v.last_mut().unwrap() = 7; // longer than the 6-byte payload
    cases.push((v, RejectReason::BadPadding));
    cases.push((good[..28].to_vec(), RejectReason::EmptyPayload));
    let mut v = good.clone();
    v.extend_from_slice(&[0; 2000]);
    cases.push((v, RejectReason::TooLarge));
    let mut v = good.clone();
    v.push(0); // not a whole number of 6-byte frames
    cases.push((v, RejectReason::MalformedPayload));
    for (datagram, reason) in &cases {
        assert_eq!(
            rx.handle_rtp(datagram, now),
            Outcome::Rejected(*reason),
            "{reason}"
        );
    }
    for reason in RejectReason::ALL {
        let expect = cases.iter().filter(|(_, r)| *r == reason).count() as u64;
        assert_eq!(rx.stats().rejected.get(reason), expect, "{reason}");
    }
    assert_eq!(rx.stats().received, 0);
}

#[test]
fn bad_configs_name_the_field() {
    let mut c = config();
    c.payload_type = 128;
    let e = RtpReceiver::new(c).unwrap_err().to_string();
    assert!(e.contains("payload_type"), "{e}");
    let mut c = config();
    c.ntp_extension_id = Some(15);
    let e = RtpReceiver::new(c).unwrap_err().to_string();
    assert!(e.contains("ntp_extension_id"), "{e}");
    let mut c = config();
    c.max_depth = 0;
    let e = RtpReceiver::new(c).unwrap_err().to_string();
    assert!(e.contains("max_depth"), "{e}");
}

#[test]
fn steady_state_receive_and_read_allocate_nothing() {
    let s = stream(400, 0, 0, SSRC, true);
    let mut packets = s.packets.clone();
    packets.remove(200); // a loss, concealed, is part of steady state
    packets.swap(300, 301);
    let mut rx = RtpReceiver::new(config()).unwrap();
    let mut buf = vec![0f32; 2 * 128];
    for (p, now) in &packets[..100] {
        rx.handle_rtp(p, *now);
        while rx.poll_audio(&mut buf).is_some() {}
    }
    let ((), allocs, _) = watch(|| {
        for (p, now) in &packets[100..] {
            rx.handle_rtp(p, *now);
            rx.handle_rtp(p, *now); // duplicate
            rx.handle_rtp(&p[..20], *now); // junk
            while rx.poll_audio(&mut buf).is_some() {}
        }
    });
    assert_eq!(allocs, 0, "allocations on the receive path");
    assert_eq!(rx.stats().lost, 1);
}

#[test]
fn memory_at_defaults_is_under_a_mebibyte_and_flat_under_junk() {
    let (rx, _, live) = watch(|| RtpReceiver::new(config()).unwrap());
    println!(
        "receiver at defaults: {live} bytes allocated, {} in its own buffers",
        rx.heap_bytes()
    );
    assert!(live > 0 && live <= 1 << 20, "{live} bytes");
    let mut rx = rx;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut datagram = [0u8; 1600];
    let ((), allocs, grew) = watch(|| {
        for i in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 1600) as usize;
            for (j, b) in datagram[..len].iter_mut().enumerate() {
                *b = (x >> (j % 8 * 8)) as u8 ^ j as u8;
            }
            // Some look like RTP of our type and SSRC, to reach deeper checks.
            if i % 3 == 0 && len >= 12 {
                datagram[0] = 0x80 | (datagram[0] & 0x3f);
                datagram[1] = PT | (datagram[1] & 0x80);
                datagram[8..12].copy_from_slice(&SSRC.to_be_bytes());
            }
            let now = LeaderInstant::from_nanos((x >> 8) as i64);
            rx.handle_rtp(&datagram[..len], now);
            let mut out = [0f32; 64];
            let _ = rx.poll_audio(&mut out);
        }
    });
    assert_eq!(allocs, 0);
    assert_eq!(grew, 0);
    assert!(rx.buffered_packets() <= 256);
}

#[test]
fn a_stream_that_runs_dry_is_concealed_on_time_then_stops_after_max_conceal() {
    let s = stream(200, 0, 0, SSRC, true);
    // Packets 100..110 are held up until 10 ms after the last of them should have played:
    // nothing is buffered behind them, so no later packet shows the gap.
    let held_until = s.base + Nanos::from_millis(110 * 5 + 10);
    let mut events: Vec<(LeaderInstant, &[u8])> = s
        .packets
        .iter()
        .enumerate()
        .map(|(k, (p, at))| {
            let at = if (100..110).contains(&k) {
                held_until
            } else {
                *at
            };
            (at, p.as_slice())
        })
        .collect();
    events.sort_by_key(|e| e.0);
    let mut rx = RtpReceiver::new(config()).unwrap();
    let mut played = Played {
        samples: Vec::new(),
        blocks: Vec::new(),
    };
    // A driver that polls every millisecond, as a playout loop would, for 2 s after the
    // last packet.
    let mut next = 0;
    let mut now = events[0].0;
    let end = events.last().unwrap().0 + Nanos::from_secs(2);
    while now <= end {
        while next < events.len() && events[next].0 <= now {
            rx.handle_rtp(events[next].1, now);
            next += 1;
        }
        rx.handle_timeout(now);
        read_all(&mut rx, &mut played);
        now += Nanos::from_millis(1);
    }
    let st = rx.stats();
    assert_eq!(st.late, 10, "the held-up packets come too late: {st:?}");
    assert_eq!(st.decoded, 190);
    // Concealed: the ten held-up packets, then one second (max_conceal) after the end.
    // The first held-up packet falls due before the packet after them arrives, so its
    // stretch starts dry; once that packet is in, the rest is a gap between packets.
    assert_eq!(
        st.dry_frames + st.concealed_frames,
        (10 * FRAMES + 48_000) as u64
    );
    assert!(st.dry_frames > (FRAMES + 48_000) as u64, "{st:?}");
    assert!(st.concealed_frames > 0, "{st:?}");
    assert_eq!(played.samples.len(), s.source.len() + 48_000 * 2);
    assert_timeline(&played, s.base);
    // The audio around the dry stretch is the source's, apart from the fade-in after it.
    let (gap_start, gap_end) = (100 * FRAMES * 2, 110 * FRAMES * 2);
    let fade = 96 * 2;
    assert_same(&played.samples[..gap_start], &s.source[..gap_start]);
    assert_same(
        &played.samples[gap_end + fade..s.source.len()],
        &s.source[gap_end + fade..],
    );
    assert!(
        played.samples[gap_start + fade..gap_end]
            .iter()
            .all(|&x| x == 0.0)
    );
    // After the stream ends: a fade, then silence, and nothing once max_conceal is spent.
    assert!(
        played.samples[s.source.len() + fade..]
            .iter()
            .all(|&x| x == 0.0)
    );
    rx.handle_timeout(end + Nanos::from_secs(5));
    assert_eq!(rx.buffered_frames(), 0);
}

// ------------------------------------------------------------ with the real sender

use lockstep::media::rtcp::SenderReport;
use lockstep::media::sender::{RtpSender, SenderConfig};

/// Packets from our sender for `source`, with arrival 30 ms before presentation.
fn send(
    codec: CodecKind,
    source: &[f32],
    base: LeaderInstant,
    tweak: impl Fn(&mut SenderConfig),
) -> Vec<(Vec<u8>, LeaderInstant)> {
    let mut config = SenderConfig::new(codec, fmt(), 0xC0DE);
    config.payload_type = PT;
    tweak(&mut config);
    let mut tx = RtpSender::new(config).unwrap();
    let fpp = tx.frames_per_packet();
    let mut packets = Vec::new();
    for (k, chunk) in source.chunks(2 * fpp).enumerate() {
        let at = base + Nanos::from_nanos((k * fpp) as i64 * 1_000_000_000 / i64::from(RATE));
        tx.handle_pcm(chunk, at).unwrap();
        while let Some(p) = tx.poll_transmit() {
            packets.push((p.to_vec(), at - Nanos::from_millis(30)));
        }
    }
    packets
}

#[test]
fn our_sender_to_our_receiver_across_wraps() {
    let source = sine(48_000 * 3);
    let base = LeaderInstant::from_nanos(1_700_000_000_000_000_000);
    let packets = send(CodecKind::L24, &source, base, |c| {
        c.initial_sequence = 65_000;
        c.media_clock_offset = u32::MAX - 50_000;
    });
    let mut rx = RtpReceiver::new(config()).unwrap();
    let played = play(&mut rx, &packets);
    assert_same(&played.samples, &source);
    assert_timeline(&played, base);
    assert_eq!(rx.stats().decoded, 600);
}

#[test]
fn without_extensions_an_rtcp_sender_report_gives_the_timing() {
    let source = sine(48_000);
    let base = LeaderInstant::from_nanos(1_700_000_000_000_000_000);
    let mut packets = send(CodecKind::L24, &source, base, |_| {});
    let mut cfg = config();
    cfg.ntp_extension_id = None; // ignore the extension: timing must come from the SR
    let mut rx = RtpReceiver::new(cfg).unwrap();
    // The first packet arrives and is anchored at arrival + latency, then an SR says when
    // its timestamp really plays.
    let (first, arrival) = packets.remove(0);
    rx.handle_rtp(&first, arrival);
    let ts0 = u32::from_be_bytes([first[4], first[5], first[6], first[7]]);
    let sr = SenderReport {
        ssrc: 0xC0DE,
        ntp: NtpTimestamp::from_instant(base),
        rtp_timestamp: ts0,
        packet_count: 1,
        octet_count: 1440,
    };
    let mut buf = [0u8; 128];
    let n = sr.write_compound("test", &mut buf).unwrap();
    assert!(rx.handle_rtcp(&buf[..n]));
    let mut played = Played {
        samples: Vec::new(),
        blocks: Vec::new(),
    };
    for (p, now) in &packets {
        rx.handle_rtp(p, *now);
        read_all(&mut rx, &mut played);
    }
    // Just before the last packet plays: nothing left to conceal, the stream not yet dry.
    rx.handle_timeout(packets.last().unwrap().1 + Nanos::from_millis(10));
    read_all(&mut rx, &mut played);
    assert_same(&played.samples, &source);
    assert_timeline(&played, base);
    // An SR from another source, or garbage, changes nothing.
    let other = SenderReport { ssrc: 1, ..sr };
    let n = other.write_compound("x", &mut buf).unwrap();
    assert!(!rx.handle_rtcp(&buf[..n]));
    assert!(!rx.handle_rtcp(&[0x80, 200, 0, 1]));
}

#[cfg(feature = "opus")]
#[test]
fn opus_losses_are_rebuilt_by_the_decoder() {
    // A 440 Hz tone through Opus at 20 ms; drop two single packets and a pair.
    let source: Vec<f32> = (0..48_000 * 2)
        .flat_map(|i| {
            let x = 0.4 * (std::f32::consts::TAU * 440.0 * i as f32 / RATE as f32).sin();
            [x, x]
        })
        .collect();
    let base = LeaderInstant::from_nanos(1_700_000_000_000_000_000);
    let mut packets = send(CodecKind::Opus, &source, base, |_| {});
    assert_eq!(packets.len(), 100);
    for k in [70, 61, 60, 30] {
        packets.remove(k);
    }
    let cfg = ReceiverConfig::new(CodecKind::Opus, fmt(), PT);
    let mut rx = RtpReceiver::new(cfg).unwrap();
    let played = play(&mut rx, &packets);
    assert_eq!(played.samples.len(), source.len(), "the timeline is whole");
    assert_timeline(&played, base);
    let st = rx.stats();
    assert_eq!(st.lost, 4);
    assert_eq!(st.concealed_frames, 4 * 960);
    // Where packets were lost the decoder's concealment keeps the tone going: the
    // concealed stretches are not silent, and their level is near the tone's.
    for k in [30usize, 60, 61, 70] {
        let seg = &played.samples[k * 960 * 2..(k + 1) * 960 * 2];
        let rms = (seg.iter().map(|x| x * x).sum::<f32>() / seg.len() as f32).sqrt();
        assert!(rms > 0.1, "packet {k}: concealed rms {rms}");
    }
}
