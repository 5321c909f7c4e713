//! The RTP sender and RTCP sender reports, checked against packets parsed by hand here (not
//! with the `rtp` crate the sender writes them with), so the wire format is checked
//! independently.

mod common;

use lockstep::media::rtcp::{
    MAX_COMPOUND_LEN, PT_BYE, PT_RR, PT_SDES, RtcpError, SR_LEN, SenderReport, compound_len,
};
use lockstep::media::sender::{
    HEADER_LEN, NTP_OFFSET, RtpSender, SenderConfig, SenderError, SenderStats,
};
use lockstep::media::{AudioFormat, Codec, CodecError, CodecKind, NtpTimestamp, new_codec};
use lockstep::time::LeaderInstant;

use common::alloc::watch;

// ---------------------------------------------------------------------------------------
// Helpers.

const NS: i64 = 1_000_000_000;
/// A leader time in 2023, with a sub-second part that is not a whole number of samples.
const T0: i64 = 1_700_000_000 * NS + 123_456_789;

fn format(rate: u32, channels: u16) -> AudioFormat {
    AudioFormat::new(rate, channels).unwrap()
}

fn at(ns: i64) -> LeaderInstant {
    LeaderInstant::from_nanos(ns)
}

/// Leader time of frame `n` of a stream starting at `start`, rounded to the nearest ns.
fn frame_time(start: i64, n: u64, rate: u32) -> i64 {
    let num = i128::from(n) * 2 * i128::from(NS) + i128::from(rate);
    start + (num / (2 * i128::from(rate))) as i64
}

/// `offset + floor(ns * rate / 1e9)` modulo 2^32, worked out independently of the sender.
fn media_clock(offset: u32, ns: i64, rate: u32) -> u32 {
    let ticks = (i128::from(ns) * i128::from(rate)).div_euclid(i128::from(NS));
    offset.wrapping_add((ticks.rem_euclid(1 << 32)) as u32)
}

/// A simple linear congruential generator (Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 16
    }
}

/// `frames` frames of PCM whose samples are exact L24 codes, so encoding is lossless.
fn l24_exact_pcm(frames: usize, channels: usize, seed: u64) -> Vec<f32> {
    let mut rng = Lcg(seed);
    (0..frames * channels)
        .map(|_| {
            let code = (rng.next() % (1 << 24)) as i32 - (1 << 23);
            code as f32 / 8_388_608.0
        })
        .collect()
}

/// One RTP packet, parsed by hand.
#[derive(Debug, Clone, PartialEq)]
struct Parsed {
    version: u8,
    padding: bool,
    extension: bool,
    csrc_count: u8,
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    profile: u16,
    ext_words: u16,
    ext_id: u8,
    ext_len: u8,
    ntp: u64,
    ext_pad: [u8; 3],
    payload: Vec<u8>,
}

fn parse(p: &[u8]) -> Parsed {
    assert!(p.len() >= 28, "packet of {} bytes", p.len());
    let u16_at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    Parsed {
        version: p[0] >> 6,
        padding: p[0] & 0x20 != 0,
        extension: p[0] & 0x10 != 0,
        csrc_count: p[0] & 0x0F,
        marker: p[1] & 0x80 != 0,
        payload_type: p[1] & 0x7F,
        sequence: u16_at(2),
        timestamp: u32_at(4),
        ssrc: u32_at(8),
        profile: u16_at(12),
        ext_words: u16_at(14),
        ext_id: p[16] >> 4,
        ext_len: (p[16] & 0x0F) + 1,
        ntp: u64::from_be_bytes(p[17..25].try_into().unwrap()),
        ext_pad: [p[25], p[26], p[27]],
        payload: p[28..].to_vec(),
    }
}

/// Decodes an L24 payload by hand.
fn l24_decode(payload: &[u8]) -> Vec<f32> {
    assert_eq!(payload.len() % 3, 0);
    payload
        .chunks_exact(3)
        .map(|b| (i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8) as f32 / 8_388_608.0)
        .collect()
}

/// Every packet queued in `sender`, oldest first, leaving the queue empty.
fn drain(sender: &mut RtpSender) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(p) = sender.poll_transmit() {
        out.push(p.to_vec());
    }
    assert_eq!(sender.queued_packets(), 0);
    assert_eq!(
        sender.poll_transmit(),
        None,
        "a poll after draining gives nothing"
    );
    out
}

/// Gives `pcm` in chunks of `chunk` frames, each stamped with its exact (rounded) time and
/// drained after it, and returns every packet made.
fn push_chunked(
    sender: &mut RtpSender,
    pcm: &[f32],
    start: i64,
    chunk: usize,
    rate: u32,
) -> Vec<Vec<u8>> {
    let channels = sender.config().format.channels() as usize;
    let mut out = Vec::new();
    for (i, piece) in pcm.chunks(chunk * channels).enumerate() {
        let when = frame_time(start, (i * chunk) as u64, rate);
        let n = sender.handle_pcm(piece, at(when)).unwrap();
        assert!(n <= piece.len() / channels / sender.frames_per_packet() + 1);
        assert_eq!(sender.queued_packets(), n);
        let packets = drain(sender);
        assert_eq!(packets.len(), n, "every packet queued is polled once");
        out.extend(packets);
    }
    out
}

fn flush_all(sender: &mut RtpSender) -> Vec<Vec<u8>> {
    let n = sender.handle_flush().unwrap();
    let out = drain(sender);
    assert_eq!(out.len(), n);
    out
}

fn ntp_ns(ntp: u64) -> i64 {
    NtpTimestamp(ntp).to_instant().as_nanos()
}

// ---------------------------------------------------------------------------------------
// Packets.

#[test]
fn packets_carry_the_documented_header_extension_and_payload() {
    let mut config = SenderConfig::new(CodecKind::L24, format(48_000, 2), 0xCAFE_F00D);
    config.payload_type = 111;
    config.initial_sequence = 65_500;
    config.media_clock_offset = 0x9ABC_DEF0;
    config.ntp_extension_id = 5;
    let mut sender = RtpSender::new(config).unwrap();
    assert_eq!(sender.ptime_ms(), 5);
    assert_eq!(sender.frames_per_packet(), 240);
    assert_eq!(sender.ssrc(), 0xCAFE_F00D);
    assert_eq!(sender.payload_type(), 111);
    assert_eq!(sender.max_packet_len(), 28 + 240 * 6);
    assert_eq!((HEADER_LEN, NTP_OFFSET), (28, 17));

    let pcm = l24_exact_pcm(48_000, 2, 1);
    let packets = push_chunked(&mut sender, &pcm, T0, 48_000, 48_000);
    assert_eq!(packets.len(), 200);
    assert_eq!(sender.buffered_frames(), 0);

    let first_ts = media_clock(0x9ABC_DEF0, T0, 48_000);
    let mut decoded = Vec::new();
    for (i, bytes) in packets.iter().enumerate() {
        assert_eq!(bytes.len(), sender.max_packet_len());
        let p = parse(bytes);
        assert_eq!(p.version, 2);
        assert!(!p.padding);
        assert!(p.extension, "X bit");
        assert_eq!(p.csrc_count, 0);
        assert_eq!(p.marker, i == 0, "marker on packet {i}");
        assert_eq!(p.payload_type, 111);
        assert_eq!(p.sequence, 65_500u16.wrapping_add(i as u16));
        assert_eq!(p.timestamp, first_ts.wrapping_add(240 * i as u32));
        assert_eq!(p.ssrc, 0xCAFE_F00D);
        assert_eq!(p.profile, 0xBEDE);
        assert_eq!(p.ext_words, 3);
        assert_eq!((p.ext_id, p.ext_len), (5, 8));
        assert_eq!(p.ext_pad, [0, 0, 0]);
        let want_ns = frame_time(T0, 240 * i as u64, 48_000);
        assert_eq!(want_ns, T0 + 5_000_000 * i as i64);
        assert!(
            (ntp_ns(p.ntp) - want_ns).abs() <= 1,
            "packet {i}: NTP says {} ns, want {want_ns}",
            ntp_ns(p.ntp)
        );
        assert_eq!(p.ntp, NtpTimestamp::from_instant(at(want_ns)).0);
        decoded.extend(l24_decode(&p.payload));
    }
    // The sequence number wrapped past 65535 along the way.
    assert_eq!(parse(&packets[35]).sequence, 65_535);
    assert_eq!(parse(&packets[36]).sequence, 0);
    assert_eq!(decoded, pcm, "payloads decode back to the input");
    assert_eq!(
        sender.stats(),
        SenderStats {
            packets: 200,
            octets: 200 * 240 * 6,
            resyncs: 0
        }
    );
    assert_eq!(sender.next_sequence(), 65_500u16.wrapping_add(200));
}

#[test]
fn the_first_timestamp_follows_the_media_clock_formula() {
    for (rate, offset, t) in [
        (48_000, 0, 0),
        (48_000, 0, 1),
        (48_000, 7, 20_833),             // just under one tick
        (48_000, 7, 20_834),             // just over one tick
        (44_100, 0xFFFF_FFFF, T0),       // the offset wraps
        (96_000, 12_345, -3 * NS - 1),   // before the epoch: floor, not truncation
        (44_100, 1 << 31, i64::MAX / 2), // far future: the product needs 128 bits
    ] {
        let mut config = SenderConfig::new(CodecKind::L16, format(rate, 1), 1);
        config.media_clock_offset = offset;
        let mut sender = RtpSender::new(config).unwrap();
        let fpp = sender.frames_per_packet();
        assert_eq!(sender.handle_pcm(&vec![0.0; fpp], at(t)).unwrap(), 1);
        let packets = drain(&mut sender);
        assert_eq!(packets.len(), 1);
        assert_eq!(
            parse(&packets[0]).timestamp,
            media_clock(offset, t, rate),
            "rate {rate} offset {offset} t {t}"
        );
    }
}

#[test]
fn ptime_defaults_and_frames_per_packet() {
    for kind in [CodecKind::L16, CodecKind::L24] {
        let config = SenderConfig::new(kind, format(48_000, 2), 1);
        assert_eq!(config.ptime_ms, None);
        assert_eq!(config.effective_ptime_ms(), 5);
        let sender = RtpSender::new(config).unwrap();
        assert_eq!((sender.ptime_ms(), sender.frames_per_packet()), (5, 240));
    }
    assert_eq!(
        SenderConfig::new(CodecKind::Opus, format(48_000, 2), 1).effective_ptime_ms(),
        20
    );
    for (rate, want) in [
        (48_000, [48, 96, 240, 480, 960]),
        (44_100, [44, 88, 220, 441, 882]),
        (96_000, [96, 192, 480, 960, 1920]),
    ] {
        for (ptime, frames) in [1, 2, 5, 10, 20].into_iter().zip(want) {
            let mut config = SenderConfig::new(CodecKind::L24, format(rate, 2), 1);
            config.ptime_ms = Some(ptime);
            let mut sender = RtpSender::new(config).unwrap();
            assert_eq!(sender.ptime_ms(), ptime);
            assert_eq!(sender.frames_per_packet(), frames, "{rate} Hz, {ptime} ms");
            assert_eq!(sender.max_packet_len(), 28 + frames * 6);
            // One packet's worth of frames makes exactly one packet of that many frames.
            let n = sender.handle_pcm(&vec![0.25; frames * 2], at(T0)).unwrap();
            let lens: Vec<usize> = drain(&mut sender).iter().map(Vec::len).collect();
            assert_eq!((n, lens), (1, vec![28 + frames * 6]));
        }
    }
}

#[test]
fn at_44_1_khz_timestamps_count_frames_and_times_stay_exact() {
    let mut config = SenderConfig::new(CodecKind::L24, format(44_100, 2), 9);
    config.ptime_ms = Some(1);
    let mut sender = RtpSender::new(config).unwrap();
    assert_eq!(sender.frames_per_packet(), 44);
    let pcm = l24_exact_pcm(44_100, 2, 2);
    let mut packets = push_chunked(&mut sender, &pcm, T0, 441, 44_100);
    assert_eq!(packets.len(), 44_100 / 44);
    assert_eq!(sender.buffered_frames(), 44_100 % 44);
    packets.extend(flush_all(&mut sender));
    let first_ts = media_clock(0, T0, 44_100);
    let mut decoded = Vec::new();
    for (i, bytes) in packets.iter().enumerate() {
        let p = parse(bytes);
        assert_eq!(p.timestamp, first_ts.wrapping_add(44 * i as u32));
        let want_ns = frame_time(T0, 44 * i as u64, 44_100);
        assert!((ntp_ns(p.ntp) - want_ns).abs() <= 1, "packet {i}");
        decoded.extend(l24_decode(&p.payload));
    }
    // The last packet is the flushed remainder: 44 100 % 44 = 12 frames.
    assert_eq!(packets.last().unwrap().len(), 28 + 12 * 6);
    assert_eq!(decoded, pcm);
    // After a whole second the presentation time has not drifted: the next frame is due at
    // exactly T0 + 1 s, so a push there follows on.
    assert_eq!(sender.handle_pcm(&[0.0; 88], at(T0 + NS)).unwrap(), 1);
    assert_eq!(sender.stats().resyncs, 0);
    assert_eq!(drain(&mut sender).len(), 1);
}

#[test]
fn odd_sized_pushes_make_the_same_packets_as_one_big_push() {
    for (kind, rate, ptime) in [
        (CodecKind::L24, 48_000, None),
        (CodecKind::L16, 44_100, Some(2)),
        (CodecKind::L24, 96_000, Some(1)),
    ] {
        let make = || {
            let mut config = SenderConfig::new(kind, format(rate, 2), 77);
            config.ptime_ms = ptime;
            RtpSender::new(config).unwrap()
        };
        let pcm = l24_exact_pcm(rate as usize / 2, 2, 3);
        let mut whole = make();
        let mut a = push_chunked(&mut whole, &pcm, T0, pcm.len(), rate);
        a.extend(flush_all(&mut whole));
        for chunk in [1, 37, 241, 1000] {
            let mut pieces = make();
            let mut b = push_chunked(&mut pieces, &pcm, T0, chunk, rate);
            b.extend(flush_all(&mut pieces));
            assert_eq!(a, b, "{kind:?} {rate} Hz in chunks of {chunk}");
            assert_eq!(pieces.stats(), whole.stats());
            assert_eq!(pieces.stats().resyncs, 0);
        }
    }
}

#[test]
fn jitter_under_half_a_sample_is_contiguous_and_a_gap_resyncs() {
    let config = SenderConfig::new(CodecKind::L24, format(48_000, 1), 5);
    let mut sender = RtpSender::new(config).unwrap();
    let mut packets = Vec::new();

    // 1000 frames: four 240-frame packets and 40 frames buffered.
    assert_eq!(sender.handle_pcm(&[0.1; 1000], at(T0)).unwrap(), 4);
    packets.extend(drain(&mut sender));
    // Half a sample period at 48 kHz is 10 416.67 ns: 10 µs early or late still follows on.
    let next = frame_time(T0, 1000, 48_000);
    assert_eq!(sender.handle_pcm(&[0.1; 10], at(next + 10_000)).unwrap(), 0);
    let next = frame_time(T0, 1010, 48_000);
    assert_eq!(sender.handle_pcm(&[0.1; 10], at(next - 10_000)).unwrap(), 0);
    assert_eq!(sender.poll_transmit(), None);
    assert_eq!(sender.stats().resyncs, 0);
    assert_eq!(sender.buffered_frames(), 60);

    // 11 µs late is more than half a sample: a discontinuity. The 60 buffered frames go out
    // first as a short packet, then the new run starts with the marker and a fresh timestamp.
    let gap_at = frame_time(T0, 1020, 48_000) + 11_000;
    let n = sender.handle_pcm(&[0.2; 480], at(gap_at)).unwrap();
    assert_eq!(n, 3, "short packet plus two full ones");
    assert_eq!(sender.stats().resyncs, 1);
    packets.extend(drain(&mut sender));

    // A jump backwards is a discontinuity too.
    let back_at = T0 - NS;
    let n = sender.handle_pcm(&[0.3; 240], at(back_at)).unwrap();
    assert_eq!(n, 1);
    assert_eq!(sender.stats().resyncs, 2);
    packets.extend(drain(&mut sender));

    let parsed: Vec<Parsed> = packets.iter().map(|p| parse(p)).collect();
    assert_eq!(parsed.len(), 8);
    let first_ts = media_clock(0, T0, 48_000);
    let markers: Vec<bool> = parsed.iter().map(|p| p.marker).collect();
    assert_eq!(
        markers,
        [true, false, false, false, false, true, false, true]
    );
    for (i, p) in parsed.iter().enumerate() {
        assert_eq!(p.sequence, i as u16, "sequence numbers run on through gaps");
    }
    // The short packet: 60 frames at the next timestamp and time of the old run.
    assert_eq!(parsed[4].payload.len(), 60 * 3);
    assert_eq!(parsed[4].timestamp, first_ts.wrapping_add(960));
    assert!((ntp_ns(parsed[4].ntp) - frame_time(T0, 960, 48_000)).abs() <= 1);
    // The new run: timestamp from the formula at the new time, then +240.
    assert_eq!(parsed[5].timestamp, media_clock(0, gap_at, 48_000));
    assert!((ntp_ns(parsed[5].ntp) - gap_at).abs() <= 1);
    assert_eq!(
        parsed[6].timestamp,
        media_clock(0, gap_at, 48_000).wrapping_add(240)
    );
    assert!((ntp_ns(parsed[6].ntp) - (gap_at + 5_000_000)).abs() <= 1);
    assert_eq!(parsed[7].timestamp, media_clock(0, back_at, 48_000));
    assert!((ntp_ns(parsed[7].ntp) - back_at).abs() <= 1);
    assert_eq!(sender.stats().packets, 8);
    assert_eq!(sender.stats().octets, (7 * 240 + 60) * 3);
}

#[test]
fn flush_sends_the_remainder_and_the_stream_carries_on() {
    let config = SenderConfig::new(CodecKind::L16, format(48_000, 2), 5);
    let mut sender = RtpSender::new(config).unwrap();
    let mut packets = Vec::new();
    assert_eq!(sender.handle_flush().unwrap(), 0, "nothing to flush");
    assert_eq!(sender.poll_transmit(), None);
    assert_eq!(sender.handle_pcm(&[0.5; 2 * 100], at(T0)).unwrap(), 0);
    assert_eq!(sender.poll_transmit(), None);
    assert_eq!(sender.handle_flush().unwrap(), 1);
    assert_eq!(
        sender.handle_flush().unwrap(),
        0,
        "flushing twice sends once"
    );
    packets.extend(drain(&mut sender));
    assert_eq!(packets.len(), 1);
    // Input that follows on from the flushed frames continues the run: no marker, and the
    // timestamp moves on by the 100 frames of the short packet.
    let next = frame_time(T0, 100, 48_000);
    assert_eq!(sender.handle_pcm(&[0.5; 2 * 240], at(next)).unwrap(), 1);
    packets.extend(drain(&mut sender));
    let p: Vec<Parsed> = packets.iter().map(|p| parse(p)).collect();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].payload.len(), 100 * 4);
    assert!(p[0].marker && !p[1].marker);
    assert_eq!(p[1].timestamp, p[0].timestamp.wrapping_add(100));
    assert!((ntp_ns(p[1].ntp) - next).abs() <= 1);
    assert_eq!(
        sender.stats(),
        SenderStats {
            packets: 2,
            octets: 340 * 4,
            resyncs: 0
        }
    );
}

#[test]
fn ragged_pcm_is_refused_and_consumes_nothing() {
    let config = SenderConfig::new(CodecKind::L24, format(48_000, 2), 5);
    let mut sender = RtpSender::new(config).unwrap();
    let err = sender.handle_pcm(&[0.0; 3], at(T0)).unwrap_err();
    assert_eq!(
        err,
        SenderError::RaggedInput {
            samples: 3,
            channels: 2
        }
    );
    assert!(err.to_string().contains('3'), "{err}");
    assert_eq!(sender.buffered_frames(), 0);
    assert_eq!(sender.queued_packets(), 0);
    assert_eq!(sender.poll_transmit(), None, "nothing queued");
    // An empty input is not an error and starts nothing.
    assert_eq!(sender.handle_pcm(&[], at(T0)).unwrap(), 0);
    assert_eq!(sender.poll_transmit(), None);
    assert_eq!(sender.stats(), SenderStats::default());

    // With packets queued and frames buffered, ragged input touches neither, even when its
    // time would be a discontinuity: the queue is what a sender that never saw it holds.
    let pcm = l24_exact_pcm(600, 2, 8);
    let mut clean = RtpSender::new(sender.config().clone()).unwrap();
    assert_eq!(sender.handle_pcm(&pcm, at(T0)).unwrap(), 2);
    assert_eq!(clean.handle_pcm(&pcm, at(T0)).unwrap(), 2);
    for bad in [&pcm[..1], &pcm[..599], &pcm[..1001]] {
        let err = sender.handle_pcm(bad, at(T0 + NS)).unwrap_err();
        assert!(
            matches!(err, SenderError::RaggedInput { samples, channels: 2 } if samples == bad.len()),
            "{err:?}"
        );
    }
    assert_eq!(
        (sender.queued_packets(), sender.buffered_frames()),
        (2, 120)
    );
    assert_eq!(sender.stats(), clean.stats());
    let next = frame_time(T0, 600, 48_000);
    let more = l24_exact_pcm(240, 2, 9);
    assert_eq!(sender.handle_pcm(&more, at(next)).unwrap(), 1);
    assert_eq!(clean.handle_pcm(&more, at(next)).unwrap(), 1);
    assert_eq!(drain(&mut sender), drain(&mut clean));
    assert_eq!(sender.stats().resyncs, 0);
}

#[test]
fn non_finite_samples_are_encoded_not_refused() {
    // NaN is silence and infinities clamp to full scale (the codec's rule): garbage samples
    // are not an error and the packet is well formed.
    let config = SenderConfig::new(CodecKind::L24, format(48_000, 1), 5);
    let mut sender = RtpSender::new(config).unwrap();
    let mut pcm = vec![f32::NAN; 240];
    pcm[1] = f32::INFINITY;
    pcm[2] = f32::NEG_INFINITY;
    pcm[3] = 7.5;
    assert_eq!(sender.handle_pcm(&pcm, at(T0)).unwrap(), 1);
    let packets = drain(&mut sender);
    assert_eq!(packets.len(), 1);
    let samples = l24_decode(&parse(&packets[0]).payload);
    assert_eq!(samples.len(), 240);
    assert_eq!(samples[0], 0.0);
    assert_eq!(samples[1], 8_388_607.0 / 8_388_608.0);
    assert_eq!(samples[2], -1.0);
    assert_eq!(samples[3], 8_388_607.0 / 8_388_608.0);
    assert!(samples[4..].iter().all(|&x| x == 0.0));
}

#[test]
fn packets_not_drained_stay_queued_in_order() {
    // The same input through two senders: one drained after every call, one drained only
    // at the end. The second gives the same packets in the same order.
    let config = SenderConfig::new(CodecKind::L16, format(48_000, 2), 0x0D0D);
    let mut eager = RtpSender::new(config.clone()).unwrap();
    let mut lazy = RtpSender::new(config).unwrap();
    let pcm = l24_exact_pcm(2_000, 2, 10);
    let mut eager_packets = Vec::new();
    let mut queued = 0;
    // Contiguous pieces, a discontinuity (its short packet goes first), a flush, and more.
    let steps: [(usize, usize, i64); 5] = [
        (0, 700, T0),
        (700, 1000, frame_time(T0, 700, 48_000)),
        (1000, 1300, T0 + NS),
        (1300, 1500, frame_time(T0 + NS, 300, 48_000)),
        (1500, 2000, T0 + 2 * NS),
    ];
    for (k, &(from, to, when)) in steps.iter().enumerate() {
        let piece = &pcm[2 * from..2 * to];
        let n = eager.handle_pcm(piece, at(when)).unwrap();
        assert_eq!(lazy.handle_pcm(piece, at(when)).unwrap(), n);
        queued += n;
        if k == 3 {
            let n = eager.handle_flush().unwrap();
            assert_eq!(lazy.handle_flush().unwrap(), n);
            queued += n;
        }
        eager_packets.extend(drain(&mut eager));
        assert_eq!(lazy.queued_packets(), queued);
    }
    assert_eq!(queued, 10);
    assert_eq!(lazy.stats(), eager.stats());
    assert_eq!(lazy.stats().resyncs, 2);
    let lazy_packets = drain(&mut lazy);
    assert_eq!(lazy_packets, eager_packets);
    let sequences: Vec<u16> = lazy_packets.iter().map(|p| parse(p).sequence).collect();
    assert_eq!(sequences, (0..10).collect::<Vec<u16>>());
    // Drained, the queue stays empty until the next packet is made.
    assert_eq!(lazy.poll_transmit(), None);
    assert_eq!(lazy.poll_transmit(), None);
}

#[test]
fn the_queue_holds_one_second_and_refuses_more_without_consuming() {
    for (rate, ptime, want) in [(48_000, 5, 201), (44_100, 1, 1_004), (96_000, 20, 51)] {
        let mut config = SenderConfig::new(CodecKind::L24, format(rate, 2), 1);
        config.ptime_ms = Some(ptime);
        let sender = RtpSender::new(config).unwrap();
        assert_eq!(sender.queue_capacity(), want, "{rate} Hz, {ptime} ms");
    }

    let config = SenderConfig::new(CodecKind::L24, format(48_000, 2), 0xF00);
    let mut sender = RtpSender::new(config.clone()).unwrap();
    let mut reference = RtpSender::new(config).unwrap();
    let second = l24_exact_pcm(48_000, 2, 11);
    let tail = l24_exact_pcm(600, 2, 12);
    // One second given to a drained sender fits, undrained: 200 packets of 201.
    assert_eq!(sender.handle_pcm(&second, at(T0)).unwrap(), 200);
    assert_eq!(reference.handle_pcm(&second, at(T0)).unwrap(), 200);
    let mut want = drain(&mut reference);
    assert_eq!(sender.queued_packets(), 200);
    // 600 more frames would make two packets: refused, and nothing taken.
    let after = frame_time(T0, 48_000, 48_000);
    let err = sender.handle_pcm(&tail, at(after)).unwrap_err();
    assert_eq!(
        err,
        SenderError::QueueFull {
            queued: 200,
            needed: 2,
            capacity: 201
        }
    );
    assert!(err.to_string().contains("201"), "{err}");
    assert_eq!(
        (sender.queued_packets(), sender.buffered_frames()),
        (200, 0)
    );
    assert_eq!(sender.stats(), reference.stats());
    assert_eq!(sender.next_sequence(), reference.next_sequence());
    // A discontinuity's short packet counts too: with 200 packets queued and 120 frames
    // buffered, 240 frames at another time need the short packet and one more; at the
    // expected time they need only one.
    let mut other = RtpSender::new(sender.config().clone()).unwrap();
    let long = l24_exact_pcm(48_120, 2, 14);
    assert_eq!(other.handle_pcm(&long, at(T0)).unwrap(), 200);
    assert_eq!(other.buffered_frames(), 120);
    assert_eq!(
        other.handle_pcm(&tail[..2 * 240], at(T0 + 5 * NS)),
        Err(SenderError::QueueFull {
            queued: 200,
            needed: 2,
            capacity: 201
        })
    );
    assert_eq!((other.buffered_frames(), other.stats().resyncs), (120, 0));
    let next = frame_time(T0, 48_120, 48_000);
    assert_eq!(other.handle_pcm(&tail[..2 * 240], at(next)).unwrap(), 1);
    assert_eq!((other.buffered_frames(), other.stats().resyncs), (120, 0));

    // What fits goes in: 300 frames make one packet, the 201st.
    assert_eq!(sender.handle_pcm(&tail[..600], at(after)).unwrap(), 1);
    assert_eq!(reference.handle_pcm(&tail[..600], at(after)).unwrap(), 1);
    want.extend(drain(&mut reference));
    assert_eq!(sender.buffered_frames(), 60);
    // Full: a flush is refused and keeps its frames; more input is refused too.
    assert_eq!(
        sender.handle_flush().unwrap_err(),
        SenderError::QueueFull {
            queued: 201,
            needed: 1,
            capacity: 201
        }
    );
    assert_eq!(sender.buffered_frames(), 60);
    let later = frame_time(T0, 48_300, 48_000);
    assert!(matches!(
        sender.handle_pcm(&tail[600..], at(later)),
        Err(SenderError::QueueFull { needed: 1, .. })
    ));
    // Input that completes no packet still fits in a full queue.
    assert_eq!(sender.handle_pcm(&tail[600..700], at(later)).unwrap(), 0);
    assert_eq!(reference.handle_pcm(&tail[600..700], at(later)).unwrap(), 0);
    // Drained, the rest goes in and the stream is as if nothing had been refused.
    let mut got = drain(&mut sender);
    let later = frame_time(T0, 48_350, 48_000);
    for s in [&mut sender, &mut reference] {
        assert_eq!(s.handle_pcm(&tail[700..], at(later)).unwrap(), 1);
        assert_eq!(s.handle_flush().unwrap(), 1);
    }
    got.extend(drain(&mut sender));
    want.extend(drain(&mut reference));
    assert_eq!(got, want);
    assert_eq!(sender.stats(), reference.stats());
    assert_eq!(sender.stats().resyncs, 0);

    // More than a second at once never fits.
    let mut fresh = RtpSender::new(sender.config().clone()).unwrap();
    let too_much = l24_exact_pcm(48_480, 2, 13);
    assert!(matches!(
        fresh.handle_pcm(&too_much, at(T0)),
        Err(SenderError::QueueFull {
            queued: 0,
            needed: 202,
            capacity: 201
        })
    ));
    assert_eq!(fresh.stats(), SenderStats::default());
    assert_eq!(
        fresh.handle_pcm(&too_much[..2 * 48_240], at(T0)).unwrap(),
        201
    );
}

// ---------------------------------------------------------------------------------------
// Configuration.

/// `base` with the changes `f` makes.
fn with(base: &SenderConfig, f: impl FnOnce(&mut SenderConfig)) -> SenderConfig {
    let mut c = base.clone();
    f(&mut c);
    c
}

#[test]
fn config_errors_name_the_field() {
    let base = SenderConfig::new(CodecKind::L24, format(48_000, 2), 1);
    let cases: Vec<(&str, SenderConfig)> = vec![
        (
            "payload_type",
            with(&base, |c| {
                c.payload_type = 95;
            }),
        ),
        (
            "payload_type",
            with(&base, |c| {
                c.payload_type = 128;
            }),
        ),
        (
            "payload_type",
            with(&base, |c| {
                c.payload_type = 0;
            }),
        ),
        (
            "ptime_ms",
            with(&base, |c| {
                c.ptime_ms = Some(0);
            }),
        ),
        (
            "ptime_ms",
            with(&base, |c| {
                c.ptime_ms = Some(3);
            }),
        ),
        (
            "ptime_ms",
            with(&base, |c| {
                c.ptime_ms = Some(40);
            }),
        ),
        (
            "ptime_ms",
            with(&base, |c| {
                c.codec = CodecKind::Opus;
                c.ptime_ms = Some(5);
            }),
        ),
        (
            "ntp_extension_id",
            with(&base, |c| {
                c.ntp_extension_id = 0;
            }),
        ),
        (
            "ntp_extension_id",
            with(&base, |c| {
                c.ntp_extension_id = 15;
            }),
        ),
        (
            "cname",
            with(&base, |c| {
                c.cname = String::new();
            }),
        ),
        (
            "cname",
            with(&base, |c| {
                c.cname = "é".repeat(128);
            }),
        ),
    ];
    for (field, config) in cases {
        let err = RtpSender::new(config.clone()).unwrap_err();
        match err {
            SenderError::InvalidConfig { field: got, .. } => {
                assert_eq!(got, field, "{config:?}")
            }
            other => panic!("{config:?}: {other:?}"),
        }
        assert!(err.to_string().contains(field), "{err}");
    }
    // The edges of each range are fine.
    for config in [
        with(&base, |c| {
            c.payload_type = 96;
        }),
        with(&base, |c| {
            c.payload_type = 127;
        }),
        with(&base, |c| {
            c.ntp_extension_id = 1;
        }),
        with(&base, |c| {
            c.ntp_extension_id = 14;
        }),
        with(&base, |c| {
            c.cname = "x".into();
        }),
        with(&base, |c| {
            c.cname = "x".repeat(255);
        }),
    ] {
        let sender = RtpSender::new(config.clone()).unwrap();
        assert_eq!(sender.config(), &config);
    }
}

#[test]
fn with_codec_checks_the_codec_matches() {
    let f = format(48_000, 2);
    let config = SenderConfig::new(CodecKind::L24, f, 1);
    let l16 = new_codec(CodecKind::L16, f).unwrap();
    let err = RtpSender::with_codec(config.clone(), l16).unwrap_err();
    assert!(
        matches!(err, SenderError::InvalidConfig { field: "codec", .. }),
        "{err:?}"
    );
    let mono = new_codec(CodecKind::L24, format(48_000, 1)).unwrap();
    let err = RtpSender::with_codec(config.clone(), mono).unwrap_err();
    assert!(
        matches!(
            err,
            SenderError::InvalidConfig {
                field: "format",
                ..
            }
        ),
        "{err:?}"
    );
    let right = new_codec(CodecKind::L24, f).unwrap();
    assert!(RtpSender::with_codec(config, right).is_ok());
}

/// Stands in for Opus: its payload is the frame count and the count of non-zero samples,
/// both as big-endian u16.
struct FakeOpus(AudioFormat);

impl Codec for FakeOpus {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }
    fn format(&self) -> AudioFormat {
        self.0
    }
    fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize, CodecError> {
        let frames = (pcm.len() / self.0.channels() as usize) as u16;
        let loud = pcm.iter().filter(|&&x| x != 0.0).count() as u16;
        out[..2].copy_from_slice(&frames.to_be_bytes());
        out[2..4].copy_from_slice(&loud.to_be_bytes());
        Ok(4)
    }
    fn decode(&mut self, _: &[u8], _: &mut [f32]) -> Result<usize, CodecError> {
        Ok(0)
    }
    fn payload_len(&self, _: usize) -> usize {
        4
    }
    fn frames_in(&self, _: usize) -> Option<usize> {
        None
    }
    fn rtp_clock_rate(&self) -> u32 {
        48_000
    }
    fn encoding_name(&self) -> &'static str {
        "opus"
    }
}

#[test]
fn opus_packets_are_whole_frames_and_flush_pads_with_silence() {
    let f = format(48_000, 2);
    let mut config = SenderConfig::new(CodecKind::Opus, f, 8);
    let sender = RtpSender::with_codec(config.clone(), Box::new(FakeOpus(f))).unwrap();
    assert_eq!((sender.ptime_ms(), sender.frames_per_packet()), (20, 960));
    config.ptime_ms = Some(10);
    let mut sender = RtpSender::with_codec(config, Box::new(FakeOpus(f))).unwrap();
    assert_eq!((sender.ptime_ms(), sender.frames_per_packet()), (10, 480));
    assert_eq!(sender.max_packet_len(), 28 + 4);

    assert_eq!(sender.handle_pcm(&[0.5; 2 * 500], at(T0)).unwrap(), 1);
    assert_eq!(sender.handle_flush().unwrap(), 1);
    // The padded frame moved the timeline on by a whole packet, so input that follows on
    // from the 500 real frames is a step backwards: a resync.
    let after = frame_time(T0, 500, 48_000);
    assert_eq!(sender.handle_pcm(&[0.5; 2 * 480], at(after)).unwrap(), 1);
    let packets: Vec<Parsed> = drain(&mut sender).iter().map(|p| parse(p)).collect();
    assert_eq!(packets.len(), 3);
    // Frames, then non-zero samples: 20 real frames and 460 of silence in the flushed one.
    assert_eq!(packets[0].payload, [0x01, 0xE0, 0x03, 0xC0]);
    assert_eq!(packets[1].payload, [0x01, 0xE0, 0x00, 40]);
    assert_eq!(packets[1].timestamp, packets[0].timestamp.wrapping_add(480));
    assert!(!packets[1].marker && packets[2].marker);
    assert_eq!(packets[2].timestamp, media_clock(0, after, 48_000));
    assert_eq!(sender.stats().resyncs, 1);
    assert_eq!(sender.stats().octets, 12);
}

/// L16 that fails the encode calls whose numbers (from 1) are in `.1`.
struct Failing(Box<dyn Codec>, &'static [u32], u32);

impl Codec for Failing {
    fn kind(&self) -> CodecKind {
        self.0.kind()
    }
    fn format(&self) -> AudioFormat {
        self.0.format()
    }
    fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize, CodecError> {
        self.2 += 1;
        if self.1.contains(&self.2) {
            return Err(CodecError::BufferTooSmall { need: 1, have: 0 });
        }
        self.0.encode(pcm, out)
    }
    fn decode(&mut self, payload: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        self.0.decode(payload, out)
    }
    fn payload_len(&self, frames: usize) -> usize {
        self.0.payload_len(frames)
    }
    fn frames_in(&self, bytes: usize) -> Option<usize> {
        self.0.frames_in(bytes)
    }
    fn rtp_clock_rate(&self) -> u32 {
        self.0.rtp_clock_rate()
    }
    fn encoding_name(&self) -> &'static str {
        self.0.encoding_name()
    }
}

#[test]
fn a_codec_error_drops_its_frames_keeps_what_was_queued_and_is_returned() {
    let f = format(48_000, 1);
    let config = SenderConfig::new(CodecKind::L16, f, 0xE);
    let l16 = new_codec(CodecKind::L16, f).unwrap();
    // The 2nd encode (the second packet of the first input) and the 4th (a flush) fail.
    let mut sender = RtpSender::with_codec(config, Box::new(Failing(l16, &[2, 4], 0))).unwrap();
    let pcm = l24_exact_pcm(1_000, 1, 6);

    // 1000 frames: the first packet is queued, the second fails, and the rest of the input
    // (the 520 frames after it) is dropped with it.
    let err = sender.handle_pcm(&pcm, at(T0)).unwrap_err();
    assert!(
        matches!(err, SenderError::Codec(CodecError::BufferTooSmall { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("codec"), "{err}");
    assert_eq!((sender.queued_packets(), sender.buffered_frames()), (1, 0));
    assert_eq!(
        sender.stats(),
        SenderStats {
            packets: 1,
            octets: 480,
            resyncs: 0
        }
    );
    let first = drain(&mut sender);
    assert_eq!(first.len(), 1);
    assert_eq!(parse(&first[0]).payload.len(), 480);

    // The timeline moved on past the failed packet's frames only: input at frame 480 follows
    // on, with the failed packet's sequence number (none was used up) and its timestamp
    // moved on by the dropped 240 frames.
    let t480 = frame_time(T0, 480, 48_000);
    assert_eq!(sender.handle_pcm(&pcm[480..720], at(t480)).unwrap(), 1);
    let p = parse(&drain(&mut sender)[0]);
    let p0 = parse(&first[0]);
    assert_eq!(p.sequence, p0.sequence.wrapping_add(1));
    assert_eq!(p.timestamp, p0.timestamp.wrapping_add(480));
    assert!(!p.marker);
    assert!((ntp_ns(p.ntp) - t480).abs() <= 1);
    assert_eq!(sender.stats().resyncs, 0);

    // A flush whose encode fails drops its frames and queues nothing; the next input after
    // them follows on.
    let t720 = frame_time(T0, 720, 48_000);
    assert_eq!(sender.handle_pcm(&pcm[720..820], at(t720)).unwrap(), 0);
    assert_eq!(
        sender
            .handle_pcm(&pcm[820..900], at(frame_time(T0, 820, 48_000)))
            .unwrap(),
        0
    );
    assert_eq!(sender.buffered_frames(), 180);
    assert!(matches!(sender.handle_flush(), Err(SenderError::Codec(_))));
    assert_eq!((sender.queued_packets(), sender.buffered_frames()), (0, 0));
    assert_eq!(sender.poll_transmit(), None);
    assert_eq!(sender.handle_flush().unwrap(), 0);
    let t900 = frame_time(T0, 900, 48_000);
    assert_eq!(sender.handle_pcm(&pcm[..240], at(t900)).unwrap(), 1);
    let p = parse(&drain(&mut sender)[0]);
    assert_eq!(p.sequence, p0.sequence.wrapping_add(2));
    assert_eq!(p.timestamp, p0.timestamp.wrapping_add(900));
    assert_eq!(sender.stats().resyncs, 0);
    assert_eq!(sender.stats().packets, 3);

    // Input that follows on from the dropped end of the first input is a discontinuity.
    let err_end = frame_time(T0, 1_000, 48_000);
    assert_eq!(sender.handle_pcm(&pcm[..240], at(err_end)).unwrap(), 1);
    assert_eq!(sender.stats().resyncs, 1);
    assert!(parse(&drain(&mut sender)[0]).marker);
}

#[cfg(not(feature = "opus"))]
#[test]
fn opus_without_the_feature_is_a_codec_error() {
    let config = SenderConfig::new(CodecKind::Opus, format(48_000, 2), 1);
    assert!(matches!(RtpSender::new(config), Err(SenderError::Codec(_))));
}

// ---------------------------------------------------------------------------------------
// RTCP.

/// Reads an SR + SDES compound by hand.
fn parse_sr_by_hand(b: &[u8]) -> (SenderReport, String) {
    let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    assert_eq!(b[0], 0x80);
    assert_eq!(b[1], 200);
    assert_eq!(u16::from_be_bytes([b[2], b[3]]), 6);
    let sr = SenderReport {
        ssrc: u32_at(4),
        ntp: NtpTimestamp(u64::from_be_bytes(b[8..16].try_into().unwrap())),
        rtp_timestamp: u32_at(16),
        packet_count: u32_at(20),
        octet_count: u32_at(24),
    };
    let s = &b[28..];
    assert_eq!(s[0], 0x81);
    assert_eq!(s[1], 202);
    let words = u16::from_be_bytes([s[2], s[3]]) as usize + 1;
    assert_eq!(s.len(), words * 4);
    assert_eq!(u32_at(32), sr.ssrc);
    assert_eq!(s[8], 1, "CNAME item");
    let len = s[9] as usize;
    let cname = String::from_utf8(s[10..10 + len].to_vec()).unwrap();
    assert!(s[10 + len..].iter().all(|&z| z == 0));
    assert!(!s[10 + len..].is_empty());
    (sr, cname)
}

#[test]
fn sender_reports_are_due_at_start_then_every_second_and_match_the_packets() {
    let mut config = SenderConfig::new(CodecKind::L24, format(48_000, 2), 0x5151_5151);
    config.media_clock_offset = 0x7000_0000;
    config.cname = "leader@lockstep".into();
    let mut sender = RtpSender::new(config).unwrap();
    let mut out = [0u8; MAX_COMPOUND_LEN];

    // Before any packet the report follows the media clock formula.
    let n = sender.poll_rtcp(at(T0 - NS), &mut out).unwrap();
    let (sr, cname) = parse_sr_by_hand(&out[..n]);
    assert_eq!(cname, "leader@lockstep");
    assert_eq!(n, compound_len("leader@lockstep"));
    assert_eq!(sr.rtp_timestamp, media_clock(0x7000_0000, T0 - NS, 48_000));
    assert_eq!(sr.ntp, NtpTimestamp::from_instant(at(T0 - NS)));
    assert_eq!((sr.packet_count, sr.octet_count), (0, 0));
    assert_eq!(sender.poll_rtcp(at(T0 - NS / 2), &mut out), None);

    // Stream 3.5 s in 5 ms pushes, polling at each push: reports at T0, T0+1 s, +2 s, +3 s.
    let mut packets: Vec<(u32, i64)> = Vec::new(); // (timestamp, presentation ns)
    let mut payload_bytes = 0u64;
    let mut reports = Vec::new();
    for i in 0..700i64 {
        let now = T0 + i * 5_000_000;
        if let Some(n) = sender.poll_rtcp(at(now), &mut out) {
            assert_eq!(
                SenderReport::parse_compound(&out[..n]).unwrap(),
                parse_sr_by_hand(&out[..n]).0
            );
            reports.push((
                now,
                parse_sr_by_hand(&out[..n]).0,
                packets.len(),
                payload_bytes,
            ));
        }
        sender.handle_pcm(&[0.0; 480], at(now)).unwrap();
        while let Some(p) = sender.poll_transmit() {
            let p = parse(p);
            payload_bytes += p.payload.len() as u64;
            packets.push((p.timestamp, ntp_ns(p.ntp)));
        }
    }
    let times: Vec<i64> = reports.iter().map(|r| (r.0 - T0) / 5_000_000).collect();
    assert_eq!(times, [0, 200, 400, 600]);
    for (now, sr, sent, bytes) in &reports {
        assert_eq!(sr.ssrc, 0x5151_5151);
        assert_eq!(sr.ntp, NtpTimestamp::from_instant(at(*now)));
        assert_eq!(sr.packet_count as usize, *sent);
        assert_eq!(u64::from(sr.octet_count), *bytes);
        // The report's RTP/NTP mapping predicts every packet's timestamp within one tick.
        let sr_ns = ntp_ns(sr.ntp.0);
        for &(ts, pres) in &packets {
            let predicted = i128::from(sr.rtp_timestamp)
                + (i128::from(pres - sr_ns) * 48_000).div_euclid(i128::from(NS));
            let diff = ts.wrapping_sub(predicted as u32) as i32;
            assert!(
                diff.abs() <= 1,
                "report at {now}: packet ts {ts} vs {predicted}"
            );
        }
    }
    // Late polling does not burst: a poll 5 s late sends one report, then the next is due
    // 1 s after it.
    let late = T0 + 9 * NS;
    assert!(sender.poll_rtcp(at(late), &mut out).is_some());
    assert!(sender.poll_rtcp(at(late + 1), &mut out).is_none());
    assert!(sender.poll_rtcp(at(late + NS - 1), &mut out).is_none());
    assert!(sender.poll_rtcp(at(late + NS), &mut out).is_some());
    // A buffer too small gives None and the report stays due.
    assert!(
        sender
            .poll_rtcp(at(late + 2 * NS), &mut out[..40])
            .is_none()
    );
    assert!(sender.poll_rtcp(at(late + 2 * NS), &mut out).is_some());
}

#[test]
fn compound_round_trips() {
    let mut rng = Lcg(99);
    let mut out = [0u8; MAX_COMPOUND_LEN];
    let long = "n".repeat(255);
    for i in 0..2_000 {
        let x = SenderReport {
            ssrc: rng.next() as u32,
            ntp: NtpTimestamp(rng.next() << 16 ^ rng.next()),
            rtp_timestamp: rng.next() as u32,
            packet_count: rng.next() as u32,
            octet_count: rng.next() as u32,
        };
        let cname = &long[..i % 256];
        let n = x.write_compound(cname, &mut out).unwrap();
        assert_eq!(n, compound_len(cname));
        assert_eq!(SenderReport::parse_compound(&out[..n]), Ok(x));
        let (by_hand, name) = parse_sr_by_hand(&out[..n]);
        assert_eq!((by_hand, name.as_str()), (x, cname));
    }
}

/// Appends an RTCP packet of type `pt` with `body` (a whole number of words) and `pad`
/// padding bytes.
fn append_packet(buf: &mut Vec<u8>, count: u8, pt: u8, body: &[u8], pad: u8) {
    let len = 4 + body.len() + pad as usize;
    assert_eq!(len % 4, 0);
    buf.push(0x80 | if pad > 0 { 0x20 } else { 0 } | count);
    buf.push(pt);
    buf.extend_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    buf.extend_from_slice(body);
    if pad > 0 {
        buf.extend(std::iter::repeat_n(0, pad as usize - 1));
        buf.push(pad);
    }
}

#[test]
fn parse_skips_other_packets_and_validates() {
    let x = SenderReport {
        ssrc: 1,
        ntp: NtpTimestamp(2),
        rtp_timestamp: 3,
        packet_count: 4,
        octet_count: 5,
    };
    let mut sr = [0u8; MAX_COMPOUND_LEN];
    let n = x.write_compound("c", &mut sr).unwrap();
    let sr_only = &sr[..SR_LEN];

    // RR with one report block, then the SR+SDES, then a BYE with padding.
    let mut d = Vec::new();
    append_packet(&mut d, 1, PT_RR, &[7; 28], 0);
    d.extend_from_slice(&sr[..n]);
    append_packet(&mut d, 1, PT_BYE, &[9; 4], 4);
    assert_eq!(SenderReport::parse_compound(&d), Ok(x));

    // An SR with a report block and padding.
    let mut d = Vec::new();
    let mut body = sr_only[4..].to_vec();
    body.extend_from_slice(&[0xAB; 24]);
    append_packet(&mut d, 1, 200, &body, 8);
    assert_eq!(SenderReport::parse_compound(&d), Ok(x));

    // Unknown types are skipped; no SR at all is its own error.
    let mut d = Vec::new();
    append_packet(&mut d, 0, 204, &[1; 8], 0);
    append_packet(&mut d, 1, PT_SDES, &[0; 8], 0);
    assert_eq!(
        SenderReport::parse_compound(&d),
        Err(RtcpError::NoSenderReport)
    );

    // Errors.
    assert_eq!(
        SenderReport::parse_compound(&[]),
        Err(RtcpError::Truncated { need: 4, have: 0 })
    );
    assert_eq!(
        SenderReport::parse_compound(&sr[..n + 2]),
        Err(RtcpError::Truncated { need: 4, have: 2 })
    );
    assert_eq!(
        SenderReport::parse_compound(&sr[..n - 4]),
        Err(RtcpError::Truncated { need: 12, have: 8 })
    );
    let mut v1 = sr;
    v1[0] = 0x40;
    assert_eq!(
        SenderReport::parse_compound(&v1[..n]),
        Err(RtcpError::BadVersion(1))
    );
    // A version error in a later packet is still an error.
    let mut v3 = sr;
    v3[SR_LEN] = 0xC1;
    assert_eq!(
        SenderReport::parse_compound(&v3[..n]),
        Err(RtcpError::BadVersion(3))
    );
    // An SR that claims a report block it does not have.
    let mut rc = sr;
    rc[0] = 0x81;
    assert_eq!(
        SenderReport::parse_compound(&rc[..n]),
        Err(RtcpError::BadLength { len: 28, blocks: 1 })
    );
    // An SR too short for its sender information.
    let mut d = Vec::new();
    append_packet(&mut d, 0, 200, &[0; 20], 0);
    assert_eq!(
        SenderReport::parse_compound(&d),
        Err(RtcpError::BadLength { len: 24, blocks: 0 })
    );
    // Padding of zero, or longer than the body.
    let mut d = Vec::new();
    append_packet(&mut d, 0, 200, &sr_only[4..], 4);
    let last = d.len() - 1;
    d[last] = 0;
    assert_eq!(
        SenderReport::parse_compound(&d),
        Err(RtcpError::BadPadding { count: 0, len: 32 })
    );
    d[last] = 29;
    assert_eq!(
        SenderReport::parse_compound(&d),
        Err(RtcpError::BadPadding { count: 29, len: 32 })
    );
    // Padding that eats into the sender information.
    d[last] = 8;
    assert_eq!(
        SenderReport::parse_compound(&d),
        Err(RtcpError::BadLength { len: 24, blocks: 0 })
    );

    // Writing: buffer too small, CNAME too long.
    let mut small = [0u8; 43];
    assert_eq!(
        x.write_compound("ab", &mut small),
        Err(RtcpError::BufferTooSmall { need: 44, have: 43 })
    );
    assert_eq!(
        x.write_compound(&"y".repeat(256), &mut sr),
        Err(RtcpError::CnameTooLong { len: 256 })
    );
    for e in [
        RtcpError::BadVersion(1),
        RtcpError::NoSenderReport,
        RtcpError::CnameTooLong { len: 256 },
    ] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn arbitrary_datagrams_never_panic() {
    let mut rng = Lcg(0x5EED);
    let x = SenderReport {
        ssrc: 0xAABB_CCDD,
        ntp: NtpTimestamp(0x0102_0304_0506_0708),
        rtp_timestamp: 42,
        packet_count: 1,
        octet_count: 2,
    };
    let mut valid = [0u8; MAX_COMPOUND_LEN];
    let n = x.write_compound("fuzz", &mut valid).unwrap();
    let mut buf = [0u8; 600];
    let mut oks = 0;
    for round in 0..200_000 {
        let len = (rng.next() % 600) as usize;
        if round % 2 == 0 {
            // Noise shaped like RTCP: headers with version 2, common packet types and short
            // lengths, chained so the parser walks several packets, filled with random bytes.
            for b in buf[..len].iter_mut() {
                *b = rng.next() as u8;
            }
            let mut i = 0;
            while i + 4 <= len && !rng.next().is_multiple_of(8) {
                let words = (rng.next() % 12) as u8;
                buf[i] = 0x80 | (rng.next() as u8 & 0x3F);
                buf[i + 1] = [200, 200, 201, 202, 203, rng.next() as u8][(rng.next() % 6) as usize];
                buf[i + 2] = 0;
                buf[i + 3] = words;
                i += 4 * (usize::from(words) + 1);
            }
        } else {
            // A valid compound, repeated, with a few bytes changed and a random length.
            for (i, b) in buf.iter_mut().enumerate() {
                *b = valid[i % n];
            }
            for _ in 0..(rng.next() % 4) {
                let i = (rng.next() % 600) as usize;
                buf[i] = rng.next() as u8;
            }
        }
        if let Ok(sr) = SenderReport::parse_compound(&buf[..len]) {
            oks += 1;
            let mut again = [0u8; MAX_COMPOUND_LEN];
            let m = sr.write_compound("x", &mut again).unwrap();
            assert_eq!(SenderReport::parse_compound(&again[..m]), Ok(sr));
        }
    }
    assert!(
        oks > 100,
        "only {oks} datagrams parsed; the fuzzing is too shallow"
    );
}

// ---------------------------------------------------------------------------------------
// Allocation and speed.

#[test]
fn steady_state_allocates_nothing() {
    let mut sender =
        RtpSender::new(SenderConfig::new(CodecKind::L24, format(48_000, 2), 3)).unwrap();
    let pcm = l24_exact_pcm(4_800, 2, 4);
    let mut out = [0u8; MAX_COMPOUND_LEN];
    let mut checksum = 0u64;
    let mut packets = 0usize;
    let mut reports = 0usize;

    let ((), allocs, _) = watch(|| {
        let mut frame = 0u64;
        for round in 0..100 {
            for piece in pcm.chunks(2 * 37) {
                let now = frame_time(T0, frame, 48_000);
                packets += sender.handle_pcm(piece, at(now)).unwrap();
                frame += (piece.len() / 2) as u64;
                while let Some(p) = sender.poll_transmit() {
                    checksum = checksum.wrapping_add(p.len() as u64 + u64::from(p[31]));
                }
                if sender.poll_rtcp(at(now), &mut out).is_some() {
                    reports += 1;
                }
            }
            if round % 10 == 9 {
                // A discontinuity with its flush, then an explicit flush.
                frame += 1_000;
                packets += sender.handle_flush().unwrap();
                while let Some(p) = sender.poll_transmit() {
                    checksum = checksum.wrapping_add(p.len() as u64);
                }
            }
        }
        // Errors are values too.
        assert!(sender.handle_pcm(&pcm[..3], at(T0)).is_err());
    });

    assert_eq!(allocs, 0, "allocations while sending");
    assert_eq!(sender.stats().packets as usize, packets);
    assert!(
        packets > 1_000 && reports >= 10 && checksum > 0,
        "{packets} {reports}"
    );
    assert_eq!(sender.stats().resyncs, 9);
}

#[test]
fn the_queue_grows_once_then_reuses_its_buffers() {
    // A caller that leaves a whole second queued before draining: the first second grows
    // the queue; after that, the same pattern (discontinuities and flushes included)
    // allocates nothing.
    let mut sender =
        RtpSender::new(SenderConfig::new(CodecKind::L16, format(48_000, 2), 4)).unwrap();
    let pcm = l24_exact_pcm(48_000, 2, 5);
    let mut second = 0i64;
    let mut run = |sender: &mut RtpSender| {
        let start = T0 + second * 2 * NS;
        second += 1;
        let mut n = 0;
        for (i, piece) in pcm.chunks(2 * 1_000).enumerate() {
            n += sender
                .handle_pcm(piece, at(frame_time(start, 1_000 * i as u64, 48_000)))
                .unwrap();
        }
        n += sender.handle_flush().unwrap();
        let mut bytes = 0usize;
        let mut polled = 0;
        while let Some(p) = sender.poll_transmit() {
            bytes += p.len();
            polled += 1;
        }
        assert_eq!(polled, n);
        (n, bytes)
    };
    let (first, allocs_first, _) = watch(|| run(&mut sender));
    assert_eq!(first.0, 200);
    assert!(
        allocs_first > 0,
        "the first second grows the queue (and the counter sees it)"
    );
    for _ in 0..3 {
        let (again, allocs, _) = watch(|| run(&mut sender));
        assert_eq!(again, first);
        assert_eq!(allocs, 0, "allocations once the queue has grown");
    }
    assert_eq!(sender.stats().resyncs, 3);
}
