//! Opus through the `Codec` trait: a stereo tone survives encode and decode, a lost packet
//! comes back from in-band FEC, concealment fills the requested span, garbage never panics,
//! bad settings are refused by name, and nothing allocates once the codec is built.

#![cfg(feature = "opus")]

mod common;

use std::f64::consts::TAU;
use std::time::Instant;

use lockstep::media::opus::{MAX_PACKET_BYTES, OPUS_RATE, Opus, OpusConfig};
use lockstep::media::{AudioFormat, Codec, CodecError, CodecKind, new_codec};

use common::alloc::watch;

const RATE: usize = OPUS_RATE as usize;

fn stereo() -> AudioFormat {
    AudioFormat::new(OPUS_RATE, 2).unwrap()
}

fn config(frame_ms: u32) -> OpusConfig {
    with(OpusConfig::default(), |c| {
        c.frame_ms = frame_ms;
    })
}

/// `base` with the changes `f` makes.
fn with(base: OpusConfig, f: impl FnOnce(&mut OpusConfig)) -> OpusConfig {
    let mut c = base;
    f(&mut c);
    c
}

/// `seconds` of a 1 kHz tone in stereo: left at -6 dBFS, right at -12 dBFS and a quarter
/// cycle later, so a channel swap would show as a large error.
fn stereo_tone(seconds: f64) -> Vec<f32> {
    (0..(seconds * RATE as f64) as usize)
        .flat_map(|n| {
            let phase = TAU * 1_000.0 * n as f64 / RATE as f64;
            [
                (0.5 * phase.sin()) as f32,
                (0.25 * (phase + TAU / 4.0).sin()) as f32,
            ]
        })
        .collect()
}

/// A simple linear congruential generator (Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    /// Uniform in [-1, 1).
    fn sample(&mut self) -> f32 {
        (self.next() as f64 / (1u64 << 30) as f64 - 1.0) as f32
    }
}

/// Encodes `pcm` packet by packet and returns the packets.
fn encode_all(codec: &mut Opus, pcm: &[f32]) -> Vec<Vec<u8>> {
    let samples = codec.frames_per_packet() * codec.format().channels() as usize;
    let mut buf = vec![0u8; codec.payload_len(codec.frames_per_packet())];
    pcm.chunks_exact(samples)
        .map(|frame| {
            let len = codec.encode(frame, &mut buf).unwrap();
            assert!(len > 0 && len <= MAX_PACKET_BYTES);
            buf[..len].to_vec()
        })
        .collect()
}

/// Decodes `packets` in order; `None` marks a lost packet, concealed with the next one's FEC
/// (`fec`) or with PLC.
fn decode_all(codec: &mut Opus, packets: &[Option<Vec<u8>>], fec: bool) -> Vec<f32> {
    let ch = codec.format().channels() as usize;
    let mut out = Vec::new();
    let mut buf = vec![0f32; 5_760 * ch];
    for (i, packet) in packets.iter().enumerate() {
        let n = match packet {
            Some(p) => {
                let frames = codec.frames_of(p).unwrap();
                let n = codec.decode(p, &mut buf).unwrap();
                assert_eq!(n, frames * ch);
                n
            }
            None => {
                let frames = codec.frames_per_packet();
                let next = packets.get(i + 1).and_then(|p| p.as_deref());
                let next = if fec { next } else { None };
                let n = codec.conceal(next, frames, &mut buf).unwrap();
                assert_eq!(n, frames * ch);
                n
            }
        };
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// The delay, in frames, that best lines `got` up with `want` (channel 0 of interleaved
/// stereo), searching `0..max_lag` by cross-correlation.
fn delay_by_xcorr(want: &[f32], got: &[f32], max_lag: usize) -> usize {
    let frames = want.len() / 2 - max_lag;
    (0..max_lag)
        .max_by(|&a, &b| {
            let corr = |lag: usize| -> f64 {
                (0..frames)
                    .map(|n| want[2 * n] as f64 * got[2 * (n + lag)] as f64)
                    .sum()
            };
            corr(a).total_cmp(&corr(b))
        })
        .unwrap()
}

/// SNR in dB of `got` against `want` on one channel of interleaved stereo, over input frames
/// `range`, with the output `delay` frames late.
fn snr_db(
    want: &[f32],
    got: &[f32],
    channel: usize,
    delay: usize,
    range: std::ops::Range<usize>,
) -> f64 {
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for n in range {
        let w = want[2 * n + channel] as f64;
        let g = got[2 * (n + delay) + channel] as f64;
        signal += w * w;
        noise += (w - g) * (w - g);
    }
    10.0 * (signal / noise).log10()
}

#[test]
fn the_codec_delay_is_the_encoder_lookahead() {
    // Broadband noise has one sharp correlation peak, unlike a tone.
    let mut codec = Opus::new(stereo(), OpusConfig::default()).unwrap();
    let mut rng = Lcg(1);
    let noise: Vec<f32> = (0..RATE / 2 * 2).map(|_| 0.3 * rng.sample()).collect();
    let packets: Vec<_> = encode_all(&mut codec, &noise)
        .into_iter()
        .map(Some)
        .collect();
    let out = decode_all(&mut codec, &packets, false);
    let delay = delay_by_xcorr(&noise, &out, 2_000);
    println!(
        "delay by cross-correlation {delay}, lookahead {}",
        codec.lookahead()
    );
    assert_eq!(delay, codec.lookahead());
    assert_eq!(codec.lookahead(), 312);
}

/// What came out of sending 2 s of the stereo tone through Opus.
struct ToneRun {
    /// SNR per channel over the whole run (less the first 20 ms), with the output taken
    /// [`Opus::lookahead`] frames late.
    whole: [f64; 2],
    /// Each packet's SNR, both channels together, after the first 100 ms (the encoder
    /// settling) and but the last, each packet lined up on its own by cross-correlation
    /// within a few frames of the lookahead.
    packets: Vec<f64>,
    /// The delays the packets lined up at, lowest and highest.
    delays: (usize, usize),
}

impl ToneRun {
    fn worst_packet(&self) -> f64 {
        self.packets.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn median_packet(&self) -> f64 {
        let mut sorted = self.packets.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }
}

/// Sends 2 s of the tone through an Opus codec set up with `cfg`.
fn tone_run(cfg: OpusConfig) -> ToneRun {
    let mut codec = Opus::new(stereo(), cfg).unwrap();
    let tone = stereo_tone(2.0);
    let packets = encode_all(&mut codec, &tone);
    assert_eq!(packets.len(), 2_000 / cfg.frame_ms as usize);
    let bytes: usize = packets.iter().map(Vec::len).sum();
    let packets: Vec<_> = packets.into_iter().map(Some).collect();
    let out = decode_all(&mut codec, &packets, false);
    assert_eq!(out.len(), tone.len());

    let lookahead = codec.lookahead();
    let frames = tone.len() / 2 - lookahead;
    let whole = [0, 1].map(|ch| snr_db(&tone, &out, ch, lookahead, 960..frames));

    // Packet by packet: the hybrid mode comes out a few frames earlier than CELT, so each
    // packet is lined up on its own, within ±6 frames (a 1 kHz period is 48).
    let per_packet = codec.frames_per_packet();
    let mut snrs = Vec::new();
    let mut delays = (usize::MAX, 0);
    for k in 100 / cfg.frame_ms as usize..packets.len() - 1 {
        let range = k * per_packet - lookahead..(k + 1) * per_packet - lookahead;
        let corr = |d: usize| -> f64 {
            range
                .clone()
                .map(|n| {
                    (0..2)
                        .map(|ch| tone[2 * n + ch] as f64 * out[2 * (n + d) + ch] as f64)
                        .sum::<f64>()
                })
                .sum()
        };
        let d = (lookahead - 6..=lookahead + 6)
            .max_by(|&a, &b| corr(a).total_cmp(&corr(b)))
            .unwrap();
        delays = (delays.0.min(d), delays.1.max(d));
        let noise_to_signal = [0, 1]
            .map(|ch| 10f64.powf(-snr_db(&tone, &out, ch, d, range.clone()) / 10.0))
            .iter()
            .sum::<f64>()
            / 2.0;
        snrs.push(-10.0 * noise_to_signal.log10());
    }
    let run = ToneRun {
        whole,
        packets: snrs,
        delays,
    };
    println!(
        "{cfg:?}: {:.0} kbit/s actual; whole run at the lookahead ({lookahead}): SNR left \
         {:.1} dB, right {:.1} dB; packets lined up on their own: worst {:.1} dB, median \
         {:.1} dB, delays {}..={}",
        bytes as f64 * 8.0 / 2.0 / 1_000.0,
        run.whole[0],
        run.whole[1],
        run.worst_packet(),
        run.median_packet(),
        run.delays.0,
        run.delays.1,
    );
    run
}

/// Without FEC the encoder stays in CELT mode for a tone, at one fixed delay, and the whole
/// run matches the tone.
fn assert_celt_run(frame_ms: u32) {
    let run = tone_run(with(config(frame_ms), |c| {
        c.fec = false;
    }));
    for (ch, snr) in run.whole.into_iter().enumerate() {
        assert!(snr > 20.0, "{frame_ms} ms, channel {ch}: SNR {snr:.1} dB");
    }
    assert!(run.worst_packet() > 20.0, "{:.1} dB", run.worst_packet());
    assert_eq!(run.delays, (312, 312));
}

/// With the default FEC settings the encoder starts in hybrid mode (which carries FEC), whose
/// output is about 2.5 frames earlier than CELT's, and moves to CELT once its analysis calls
/// the tone music; one delay cannot fit the whole run, but each packet lined up on its own
/// matches the tone, except briefly at the switch.
fn assert_default_run(frame_ms: u32) {
    let run = tone_run(config(frame_ms));
    assert!(run.median_packet() > 20.0, "{:.1} dB", run.median_packet());
    assert!(run.worst_packet() > 15.0, "{:.1} dB", run.worst_packet());
}

#[test]
fn a_stereo_tone_survives_20_ms_packets_at_128_kbit() {
    assert_celt_run(20);
    assert_default_run(20);
}

#[test]
fn a_stereo_tone_survives_10_ms_packets() {
    assert_celt_run(10);
    assert_default_run(10);
}

/// Two seconds of a voiced, speech-like sound: a 180 Hz buzz with twelve harmonics, swelling
/// and fading three times a second. SILK's voice activity detector must call a frame active
/// before the encoder spends FEC on it, which a steady tone never is.
fn voiced(seconds: f64) -> Vec<f32> {
    (0..(seconds * RATE as f64) as usize)
        .flat_map(|n| {
            let t = n as f64 / RATE as f64;
            let envelope = 0.5 * (1.0 - (TAU * 3.0 * t).cos());
            let buzz: f64 = (1..=12)
                .map(|h| (TAU * 180.0 * h as f64 * t).sin() / h as f64)
                .sum();
            let x = 0.3 * envelope * buzz;
            [x as f32, (0.7 * x) as f32]
        })
        .collect()
}

/// SNR in dB, both channels, of 20 ms packet `lost` after losing it and concealing it with
/// the next packet's FEC (`fec`) or with PLC; the delay is found by cross-correlation.
fn concealed_snr(lost: usize, fec: bool) -> f64 {
    let cfg = with(OpusConfig::default(), |c| {
        c.expected_loss_percent = 10;
    });
    let mut codec = Opus::new(stereo(), cfg).unwrap();
    let sound = voiced(2.0);
    let mut packets: Vec<_> = encode_all(&mut codec, &sound)
        .into_iter()
        .map(Some)
        .collect();
    packets[lost] = None;
    let out = decode_all(&mut codec, &packets, fec);
    assert_eq!(out.len(), sound.len());
    let delay = delay_by_xcorr(&sound, &out, 400);
    // Output frames [lost·960, (lost+1)·960) are the concealed ones.
    let range = lost * 960 - delay..(lost + 1) * 960 - delay;
    let noise_to_signal: f64 = [0, 1]
        .map(|ch| 10f64.powf(-snr_db(&sound, &out, ch, delay, range.clone()) / 10.0))
        .iter()
        .sum::<f64>()
        / 2.0;
    -10.0 * noise_to_signal.log10()
}

#[test]
fn a_lost_packet_comes_back_from_in_band_fec() {
    for lost in [40, 60, 70] {
        let fec = concealed_snr(lost, true);
        let plc = concealed_snr(lost, false);
        println!(
            "lost 20 ms packet {lost}: FEC {fec:.1} dB, PLC alone {plc:.1} dB (silence: 0 dB)"
        );
        assert!(fec > 6.0, "packet {lost}: FEC SNR {fec:.1} dB");
        assert!(
            fec > plc + 6.0,
            "packet {lost}: FEC {fec:.1} dB is not clearly better than PLC {plc:.1} dB"
        );
    }
}

#[test]
fn plc_fills_exactly_the_requested_frames() {
    let mut codec = Opus::new(stereo(), OpusConfig::default()).unwrap();
    let tone = stereo_tone(0.2);
    let packets = encode_all(&mut codec, &tone);
    let mut buf = vec![f32::NAN; 2 * 4_000];
    for p in &packets {
        codec.decode(p, &mut buf).unwrap();
    }
    // Whole packets, a part of one, more than one, an odd length, and nothing.
    for frames in [960, 480, 2_400, 1_000, 7, 0] {
        buf.fill(f32::NAN);
        assert_eq!(codec.conceal(None, frames, &mut buf), Ok(2 * frames));
        assert!(
            buf[..2 * frames].iter().all(|x| x.is_finite()),
            "{frames} frames"
        );
        assert!(
            buf[2 * frames..].iter().all(|x| x.is_nan()),
            "{frames} frames"
        );
    }
    // Concealing right after a tone gives sound, not silence.
    codec.decode(&packets[3], &mut buf).unwrap();
    codec.conceal(None, 960, &mut buf).unwrap();
    assert!(buf[..1_920].iter().any(|&x| x.abs() > 0.01));
    // A short buffer is refused.
    assert_eq!(
        codec.conceal(None, 960, &mut buf[..1_919]),
        Err(CodecError::BufferTooSmall {
            need: 1_920,
            have: 1_919
        })
    );
    // A `next` that does not parse falls back to PLC.
    assert_eq!(codec.conceal(Some(&[0xFF]), 960, &mut buf), Ok(1_920));
    assert!(buf[..1_920].iter().all(|x| x.is_finite()));
    // A gap longer than one frame: PLC, then FEC for the last frame.
    assert_eq!(codec.conceal(Some(&packets[5]), 1_920, &mut buf), Ok(3_840));
    assert!(buf[..3_840].iter().all(|x| x.is_finite()));
}

#[test]
fn frames_of_reads_the_table_of_contents() {
    let tone = stereo_tone(0.1);
    for (frame_ms, frames) in [(20, 960), (10, 480)] {
        let mut codec = Opus::new(stereo(), config(frame_ms)).unwrap();
        assert_eq!(codec.frames_per_packet(), frames);
        for packet in encode_all(&mut codec, &tone) {
            assert_eq!(codec.frames_of(&packet), Some(frames));
            assert_eq!(codec.frames_in(packet.len()), None);
        }
        assert_eq!(codec.frames_of(&[]), None);
    }
    let codec = new_codec(CodecKind::Opus, stereo()).unwrap();
    assert_eq!(codec.frames_of(&[]), None);
    // Code 3 (TOC 0x?3) needs a frame-count byte; zero frames is malformed.
    assert_eq!(codec.frames_of(&[0xFB]), None);
    assert_eq!(codec.frames_of(&[0xFB, 0x00]), None);
    // CELT fullband 20 ms (config 31), code 3 with 3 frames: 60 ms.
    assert_eq!(codec.frames_of(&[0xFB, 0x03]), Some(2_880));
    // Code 1: two equal frames.
    assert_eq!(codec.frames_of(&[0xF9, 0x00]), Some(1_920));
}

#[test]
fn new_codec_builds_opus_with_the_default_config() {
    let mut codec = new_codec(CodecKind::Opus, stereo()).unwrap();
    assert_eq!(codec.kind(), CodecKind::Opus);
    assert_eq!(codec.encoding_name(), "opus");
    assert_eq!(codec.rtp_clock_rate(), 48_000);
    assert_eq!(codec.format(), stereo());
    assert_eq!(codec.payload_len(960), MAX_PACKET_BYTES);
    assert_eq!(codec.payload_len(480), MAX_PACKET_BYTES);
    assert_eq!(codec.payload_len(2_880), 3 * MAX_PACKET_BYTES);
    assert_eq!(codec.payload_len(usize::MAX), usize::MAX);
    assert_eq!(codec.frames_in(100), None);
    let tone = stereo_tone(0.02);
    let mut packet = [0u8; MAX_PACKET_BYTES];
    let len = codec.encode(&tone, &mut packet).unwrap();
    assert_eq!(codec.frames_of(&packet[..len]), Some(960));
    // Mono works too.
    let mut mono = new_codec(CodecKind::Opus, AudioFormat::new(48_000, 1).unwrap()).unwrap();
    let len = mono.encode(&[0.1; 960], &mut packet).unwrap();
    assert_eq!(mono.decode(&packet[..len], &mut [0.0; 960]), Ok(960));
    assert_eq!(OpusConfig::default(), config(20));
    assert_eq!(
        OpusConfig::default(),
        with(OpusConfig::default(), |c| {
            c.frame_ms = 20;
            c.bitrate = 128_000;
            c.fec = true;
            c.expected_loss_percent = 5;
        })
    );
}

#[test]
fn encode_takes_exactly_one_packet_and_a_full_size_buffer() {
    let mut codec = Opus::new(stereo(), OpusConfig::default()).unwrap();
    let pcm = stereo_tone(0.05);
    let mut out = [0u8; MAX_PACKET_BYTES];
    assert_eq!(
        codec.encode(&pcm[..1_918], &mut out),
        Err(CodecError::FrameCount {
            frames: 959,
            expected: 960
        })
    );
    assert_eq!(
        codec.encode(&pcm[..1_922], &mut out),
        Err(CodecError::FrameCount {
            frames: 961,
            expected: 960
        })
    );
    assert_eq!(
        codec.encode(&pcm[..1_921], &mut out),
        Err(CodecError::RaggedInput {
            samples: 1_921,
            channels: 2
        })
    );
    assert_eq!(
        codec.encode(&pcm[..1_920], &mut out[..100]),
        Err(CodecError::BufferTooSmall {
            need: MAX_PACKET_BYTES,
            have: 100
        })
    );
    // Out-of-range samples and NaN are clamped and silenced, not passed to libopus.
    let wild: Vec<f32> = (0..1_920)
        .map(|i| match i % 4 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => -7.0,
            _ => 0.5,
        })
        .collect();
    let len = codec.encode(&wild, &mut out).unwrap();
    let mut pcm_out = [0f32; 1_920];
    assert_eq!(codec.decode(&out[..len], &mut pcm_out), Ok(1_920));
    assert!(pcm_out.iter().all(|x| x.is_finite()));
    // The decoder needs room for the whole packet.
    let len = codec.encode(&pcm[..1_920], &mut out).unwrap();
    assert_eq!(
        codec.decode(&out[..len], &mut pcm_out[..1_000]),
        Err(CodecError::BufferTooSmall {
            need: 1_920,
            have: 1_000
        })
    );
}

#[test]
fn the_loudest_packets_fit_the_buffer() {
    // White noise at the highest bitrate asks for the most bytes.
    let cfg = with(OpusConfig::default(), |c| {
        c.bitrate = 510_000;
    });
    let mut codec = Opus::new(stereo(), cfg).unwrap();
    let mut rng = Lcg(99);
    let noise: Vec<f32> = (0..RATE * 2).map(|_| rng.sample()).collect();
    let longest = encode_all(&mut codec, &noise)
        .iter()
        .map(Vec::len)
        .max()
        .unwrap();
    println!("longest packet at 510 kbit/s: {longest} bytes");
    assert!(longest <= MAX_PACKET_BYTES);
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut codec = Opus::new(stereo(), OpusConfig::default()).unwrap();
    let mut rng = Lcg(0x5EED);
    let mut payload = vec![0u8; 1_500];
    let mut out = vec![0f32; 2 * 5_760];
    let (mut decoded, mut refused) = (0, 0);
    for round in 0..20_000 {
        let len = rng.next() as usize % 1_500;
        for b in payload[..len].iter_mut() {
            *b = rng.next() as u8;
        }
        // Some rounds keep a plausible TOC so the decoder gets past the first byte.
        if len > 0 && round % 3 == 0 {
            payload[0] = (payload[0] & 0xF8) | (round as u8 & 0x03);
        }
        let p = &payload[..len];
        let frames = codec.frames_of(p);
        match codec.decode(p, &mut out) {
            Ok(n) => {
                decoded += 1;
                assert_eq!(Some(n / 2), frames, "round {round}");
                assert!(out[..n].iter().all(|x| x.is_finite()), "round {round}");
            }
            Err(e) => {
                refused += 1;
                assert!(
                    matches!(
                        e,
                        CodecError::Opus { .. } | CodecError::BufferTooSmall { .. }
                    ),
                    "round {round}: {e:?}"
                );
            }
        }
        if round % 10 == 0 {
            let n = codec.conceal(Some(p), 960, &mut out).unwrap();
            assert_eq!(n, 1_920);
            assert!(out[..n].iter().all(|x| x.is_finite()), "round {round}");
        }
    }
    println!("{decoded} random payloads decoded, {refused} refused");
    assert!(decoded > 0 && refused > 0);
    let err = codec.decode(&[], &mut out).unwrap_err();
    assert!(matches!(err, CodecError::Opus { .. }), "{err:?}");
    println!("empty payload: {err}");
}

#[test]
fn bad_settings_are_refused_by_name() {
    let err = Opus::new(AudioFormat::new(44_100, 2).unwrap(), OpusConfig::default()).unwrap_err();
    assert_eq!(err, CodecError::UnsupportedSampleRate { rate: 44_100 });
    assert!(err.to_string().contains("sample rate"), "{err}");
    assert!(err.to_string().contains("44100"), "{err}");
    assert_eq!(
        new_codec(CodecKind::Opus, AudioFormat::new(96_000, 2).unwrap()).err(),
        Some(CodecError::UnsupportedSampleRate { rate: 96_000 })
    );

    let err = Opus::new(AudioFormat::new(48_000, 3).unwrap(), OpusConfig::default()).unwrap_err();
    assert_eq!(err, CodecError::UnsupportedChannels { channels: 3 });
    assert!(err.to_string().contains("channel"), "{err}");
    assert_eq!(
        new_codec(CodecKind::Opus, AudioFormat::new(48_000, 8).unwrap()).err(),
        Some(CodecError::UnsupportedChannels { channels: 8 })
    );

    for (cfg, field) in [
        (config(15), "frame_ms"),
        (config(0), "frame_ms"),
        (config(40), "frame_ms"),
        (
            with(OpusConfig::default(), |c| {
                c.bitrate = 1_000;
            }),
            "bitrate",
        ),
        (
            with(OpusConfig::default(), |c| {
                c.bitrate = 600_000;
            }),
            "bitrate",
        ),
        (
            with(OpusConfig::default(), |c| {
                c.expected_loss_percent = 101;
            }),
            "expected_loss_percent",
        ),
    ] {
        let err = Opus::new(stereo(), cfg).unwrap_err();
        assert!(
            matches!(err, CodecError::InvalidConfig { field: f, .. } if f == field),
            "{cfg:?}: {err:?}"
        );
        assert!(err.to_string().contains(field), "{err}");
        assert_eq!(cfg.validate(), Err(err));
        println!("{err}");
    }
    // The edges are fine.
    for bitrate in [6_000, 510_000] {
        let cfg = with(config(10), |c| {
            c.bitrate = bitrate;
            c.fec = false;
            c.expected_loss_percent = 0;
        });
        assert!(Opus::new(stereo(), cfg).is_ok());
    }
}

#[test]
fn encoding_decoding_and_concealing_allocate_nothing() {
    let mut codec: Box<dyn Codec> = new_codec(CodecKind::Opus, stereo()).unwrap();
    let tone = stereo_tone(1.0);
    let mut payload = vec![0u8; codec.payload_len(960)];
    let mut next = vec![0u8; codec.payload_len(960)];
    let mut decoded = vec![0f32; 2 * 5_760];
    let garbage: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
    // Warm up outside the watch.
    let len = codec.encode(&tone[..1_920], &mut payload).unwrap();
    codec.decode(&payload[..len], &mut decoded).unwrap();
    let mut samples = 0usize;

    let ((), allocs, _) = watch(|| {
        let mut packets = tone.chunks_exact(1_920);
        while let (Some(a), Some(b)) = (packets.next(), packets.next()) {
            let len = codec.encode(a, &mut payload).unwrap();
            let next_len = codec.encode(b, &mut next).unwrap();
            samples += codec.decode(&payload[..len], &mut decoded).unwrap();
            // As if a packet before `b` was lost: FEC from `b`, then PLC alone.
            samples += codec
                .conceal(Some(&next[..next_len]), 960, &mut decoded)
                .unwrap();
            samples += codec.conceal(None, 1_000, &mut decoded).unwrap();
            let _ = codec.frames_of(&next[..next_len]);
        }
        // Errors are values too: refusing must not allocate either.
        assert!(codec.encode(&tone[..4], &mut payload).is_err());
        assert!(codec.encode(&tone[..1_920], &mut payload[..5]).is_err());
        let _ = codec.decode(&garbage, &mut decoded);
        assert!(codec.decode(&[], &mut decoded).is_err());
    });

    assert_eq!(samples, 25 * (1_920 + 1_920 + 2_000));
    assert_eq!(allocs, 0, "allocations while encoding and decoding");
}

#[test]
fn encode_and_decode_run_much_faster_than_real_time() {
    // The tone runs mostly in CELT mode, the voiced sound in hybrid mode.
    for (name, sound) in [("1 kHz tone", stereo_tone(10.0)), ("voiced", voiced(10.0))] {
        let mut codec = Opus::new(stereo(), OpusConfig::default()).unwrap();
        let mut payload = vec![0u8; MAX_PACKET_BYTES];
        let mut decoded = vec![0f32; 1_920];
        let start = Instant::now();
        for frame in sound.chunks_exact(1_920) {
            let len = codec.encode(frame, &mut payload).unwrap();
            codec.decode(&payload[..len], &mut decoded).unwrap();
        }
        let elapsed = start.elapsed().as_secs_f64();
        let rtf = elapsed / 10.0;
        println!(
            "{name}, 48 kHz stereo, 20 ms, 128 kbit/s: encode+decode of 10 s took {:.1} ms, \
             real-time factor {rtf:.4} ({:.0}x real time)",
            elapsed * 1e3,
            1.0 / rtf
        );
        assert!(rtf < 1.0, "{name}: real-time factor {rtf}");
    }
}

/// The codec must move to a media thread.
#[test]
fn opus_is_send() {
    fn is_send<T: Send>() {}
    is_send::<Opus>();
}
