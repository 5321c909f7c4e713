//! A leader encodes a stereo tone packet by packet; a follower decodes it. The tone comes
//! back within the codec's quantisation noise, and nothing allocates on the way.

mod common;

use std::f64::consts::TAU;

use lockstep::media::{AudioFormat, Codec, CodecKind, new_codec};

use common::alloc::watch;

const RATE: u32 = 48_000;
/// 1 ms packets, as AES67 sends them.
const PACKET_FRAMES: usize = 48;

/// One second of a 1 kHz tone in stereo: left at -1 dBFS, right at -6 dBFS and a quarter
/// cycle later, so a channel swap or a frame slip would show as a large error.
fn stereo_tone() -> Vec<f32> {
    (0..RATE as usize)
        .flat_map(|n| {
            let phase = TAU * 1_000.0 * n as f64 / RATE as f64;
            [
                (0.891 * phase.sin()) as f32,
                (0.501 * (phase + TAU / 4.0).sin()) as f32,
            ]
        })
        .collect()
}

/// Sends `pcm` through `codec` one packet at a time and returns what came out.
fn through(codec: &mut dyn Codec, pcm: &[f32]) -> Vec<f32> {
    let channels = codec.format().channels() as usize;
    let mut payload = vec![0u8; codec.payload_len(PACKET_FRAMES)];
    let mut decoded = vec![0f32; pcm.len()];
    for (src, dst) in pcm
        .chunks(PACKET_FRAMES * channels)
        .zip(decoded.chunks_mut(PACKET_FRAMES * channels))
    {
        let len = codec.encode(src, &mut payload).unwrap();
        assert_eq!(codec.frames_in(len), Some(src.len() / channels));
        let n = codec.decode(&payload[..len], dst).unwrap();
        assert_eq!(n, src.len());
    }
    decoded
}

/// Signal-to-noise ratio in dB of `got` against `want`, one channel of an interleaved pair.
fn snr_db(want: &[f32], got: &[f32], channel: usize) -> f64 {
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for (w, g) in want.chunks(2).zip(got.chunks(2)) {
        let (w, g) = (w[channel] as f64, g[channel] as f64);
        signal += w * w;
        noise += (w - g) * (w - g);
    }
    10.0 * (signal / noise).log10()
}

#[test]
fn a_stereo_tone_survives_l16_and_l24_within_quantisation_noise() {
    let format = AudioFormat::new(RATE, 2).unwrap();
    let tone = stereo_tone();
    for (kind, floor_db) in [(CodecKind::L16, 90.0), (CodecKind::L24, 130.0)] {
        let mut codec: Box<dyn Codec> = new_codec(kind, format).unwrap();
        assert_eq!(codec.rtp_clock_rate(), RATE);
        let out = through(codec.as_mut(), &tone);
        for channel in 0..2 {
            let snr = snr_db(&tone, &out, channel);
            println!("{kind:?} channel {channel}: SNR {snr:.1} dB");
            assert!(
                snr > floor_db,
                "{kind:?} channel {channel}: SNR {snr:.1} dB, want > {floor_db} dB"
            );
        }
    }
}

#[test]
fn encoding_and_decoding_allocate_nothing() {
    let format = AudioFormat::new(RATE, 2).unwrap();
    let tone = stereo_tone();
    let mut codecs: Vec<Box<dyn Codec>> = vec![
        new_codec(CodecKind::L16, format).unwrap(),
        new_codec(CodecKind::L24, format).unwrap(),
    ];
    let mut payload = vec![0u8; codecs[1].payload_len(PACKET_FRAMES)];
    let mut decoded = vec![0f32; PACKET_FRAMES * 2];
    let mut samples = 0usize;

    let ((), allocs, _) = watch(|| {
        for codec in codecs.iter_mut() {
            for packet in tone.chunks_exact(PACKET_FRAMES * 2) {
                let len = codec.encode(packet, &mut payload).unwrap();
                samples += codec.decode(&payload[..len], &mut decoded).unwrap();
            }
            // Errors are values too: refusing a short buffer must not allocate either.
            assert!(codec.encode(&tone[..4], &mut payload[..1]).is_err());
            assert!(codec.decode(&payload[..5], &mut decoded).is_err());
        }
    });

    assert_eq!(samples, 2 * tone.len());
    assert_eq!(allocs, 0, "allocations while encoding and decoding");
}
