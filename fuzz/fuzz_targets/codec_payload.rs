//! Arbitrary payloads into each codec's decoder (L16 and L24 at several formats, and Opus
//! with the `opus` feature): nothing panics, a decode never claims more samples than the
//! output holds or a ragged frame, and every sample it writes is finite.
//!
//! Input layout: byte 0 picks the codec and format; the rest is the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::media::{AudioFormat, CodecKind, new_codec};

fuzz_target!(|input: &[u8]| {
    let Some((&pick, payload)) = input.split_first() else {
        return;
    };
    let (kind, rate, channels) = match pick % 6 {
        0 => (CodecKind::L16, 48_000, 2),
        1 => (CodecKind::L24, 48_000, 2),
        2 => (CodecKind::L16, 44_100, 1),
        3 => (CodecKind::L24, 96_000, 8),
        4 => (CodecKind::Opus, 48_000, 2),
        _ => (CodecKind::Opus, 48_000, 1),
    };
    let Ok(format) = AudioFormat::new(rate, channels) else {
        return;
    };
    // (Without the `opus` feature the Opus codec is unavailable: a typed error.)
    let Ok(mut codec) = new_codec(kind, format) else {
        return;
    };
    // Room for 120 ms, Opus's longest packet, and also a short buffer now and then.
    let frames = if pick & 0x80 == 0 { 5_760 } else { 64 };
    let mut out = vec![f32::NAN; frames * usize::from(channels)];
    if let Ok(n) = codec.decode(payload, &mut out) {
        assert!(n <= out.len(), "{n} samples decoded into room for {}", out.len());
        assert_eq!(n % usize::from(channels), 0, "{n} samples are not whole frames");
        assert!(
            out[..n].iter().all(|x| x.is_finite()),
            "a decoded sample is not finite"
        );
    }
    let _ = codec.frames_of(payload);
});
