//! Codecs: interleaved `f32` frames in, RTP payload bytes out, and back.
//!
//! A [`Codec`] works on caller-provided buffers and allocates nothing while it encodes or
//! decodes. PCM enters [`Codec::encode`] as interleaved `f32` samples (frame after frame,
//! one sample per channel in each frame) and leaves as the payload of one RTP packet;
//! [`Codec::decode`] does the reverse. [`new_codec`] builds one as `Box<dyn Codec>` from a
//! [`CodecKind`] and an [`AudioFormat`].
//!
//! # Linear PCM (L16, L24)
//!
//! [`L16`] (RFC 3551 §4.5.11) and [`L24`] (RFC 3190 §4, the AES67 format) carry each sample
//! as a big-endian two's complement integer of 2 or 3 bytes, frames in order, channels
//! interleaved within a frame.
//!
//! The conversion uses one power-of-two scale both ways, `S` = 2¹⁵ (L16) or 2²³ (L24):
//!
//! - encode: clamp `x` to [-1, 1] (NaN becomes 0), take `round(x · S)` (halves away from
//!   zero) and saturate to the integer range `[-S, S - 1]`; so -1.0 is the most negative
//!   code and +1.0 saturates one step below +S;
//! - decode: `code / S`, which is exact in `f32`.
//!
//! Because decoding is exact and encoding rounds, every one of the 2¹⁶ or 2²⁴ codes
//! survives decode → encode unchanged: a payload decoded and re-encoded gives the same
//! bytes, and encode → decode → encode is stable.

use thiserror::Error;

/// Sample rates the media path supports, in Hz.
pub const SUPPORTED_SAMPLE_RATES: [u32; 3] = [44_100, 48_000, 96_000];

/// The largest channel count lockstep carries, from the wire through the stages and the
/// drift corrector to the DAC: the one limit every layer checks against.
pub const MAX_CHANNELS: usize = 8;

/// Why a format could not be made or a buffer could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The sample rate is not one of [`SUPPORTED_SAMPLE_RATES`], or the codec does not run at
    /// it (Opus runs at 48 kHz only).
    #[error("unsupported sample rate {rate} Hz (supported: 44100, 48000, 96000; Opus: 48000 only)")]
    UnsupportedSampleRate {
        /// The rate asked for, in Hz.
        rate: u32,
    },
    /// The channel count is outside `1..=`[`MAX_CHANNELS`], or more than the codec takes
    /// (Opus takes 1 or 2).
    #[error("unsupported channel count {channels} (supported: 1 to 8; Opus: 1 or 2)")]
    UnsupportedChannels {
        /// The channel count asked for.
        channels: u16,
    },
    /// The output buffer cannot hold the result: bytes for [`Codec::encode`], samples for
    /// [`Codec::decode`].
    #[error("output buffer too small: need {need}, have {have}")]
    BufferTooSmall {
        /// How many bytes (encode) or samples (decode) the result takes.
        need: usize,
        /// How many the buffer has.
        have: usize,
    },
    /// The PCM to encode is not a whole number of frames.
    #[error("{samples} interleaved samples is not a whole number of {channels}-channel frames")]
    RaggedInput {
        /// Samples given.
        samples: usize,
        /// Channels per frame.
        channels: u16,
    },
    /// The payload to decode is not a whole number of frames.
    #[error("payload of {len} bytes is not a whole number of {frame_bytes}-byte frames")]
    RaggedPayload {
        /// Payload length in bytes.
        len: usize,
        /// Bytes per frame for this codec and format.
        frame_bytes: usize,
    },
    /// The PCM to encode is a whole number of frames but not the number the codec takes in
    /// one packet (Opus encodes exactly one frame of its configured duration per packet).
    #[error("{frames} frames given, but one packet takes exactly {expected} frames")]
    FrameCount {
        /// Frames given.
        frames: usize,
        /// Frames one packet takes.
        expected: usize,
    },
    /// A codec setting is out of range; `field` names it (for Opus, a field of
    /// `OpusConfig`: `frame_ms`, `bitrate` or `expected_loss_percent`).
    #[error("invalid codec setting `{field}`: {reason}")]
    InvalidConfig {
        /// The setting that is out of range.
        field: &'static str,
        /// What it must be.
        reason: &'static str,
    },
    /// libopus refused: a malformed payload to decode, or an internal failure. `code` is the
    /// libopus error code (`OPUS_INVALID_PACKET` = -4 for a corrupt packet, `OPUS_BAD_ARG` =
    /// -1, `OPUS_BUFFER_TOO_SMALL` = -2, `OPUS_INTERNAL_ERROR` = -3, ...), `function` the
    /// libopus call that returned it.
    #[error("libopus error {code} ({}) in {function}", opus_error_text(*code))]
    Opus {
        /// The libopus function that failed.
        function: &'static str,
        /// The libopus error code (negative).
        code: i32,
    },
    /// The codec is not available in this build.
    #[error("the {codec} codec is unavailable: {hint}")]
    Unavailable {
        /// The codec asked for.
        codec: &'static str,
        /// What to do about it.
        hint: &'static str,
    },
}

/// What a libopus error code means, as libopus's `opus_strerror` says it.
fn opus_error_text(code: i32) -> &'static str {
    match code {
        -1 => "invalid argument",
        -2 => "buffer too small",
        -3 => "internal error",
        -4 => "corrupted stream",
        -5 => "request not implemented",
        -6 => "invalid state",
        -7 => "memory allocation failed",
        _ => "unknown error",
    }
}

/// Which codec a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecKind {
    /// 16-bit linear PCM, big-endian (RFC 3551 §4.5.11).
    L16,
    /// 24-bit linear PCM, big-endian (RFC 3190; AES67).
    L24,
    /// Opus (RFC 7587): 48 kHz, mono or stereo, 10 or 20 ms packets. Needs the `opus`
    /// feature; the codec is `media::opus::Opus`.
    Opus,
}

/// The shape of a PCM stream: sample rate and channel count, checked on construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioFormat {
    sample_rate: u32,
    channels: u16,
}

impl AudioFormat {
    /// A format of `sample_rate` Hz (one of [`SUPPORTED_SAMPLE_RATES`]) and `channels`
    /// channels (`1..=`[`MAX_CHANNELS`]).
    pub fn new(sample_rate: u32, channels: u16) -> Result<AudioFormat, CodecError> {
        if !SUPPORTED_SAMPLE_RATES.contains(&sample_rate) {
            return Err(CodecError::UnsupportedSampleRate { rate: sample_rate });
        }
        if channels == 0 || usize::from(channels) > MAX_CHANNELS {
            return Err(CodecError::UnsupportedChannels { channels });
        }
        Ok(AudioFormat {
            sample_rate,
            channels,
        })
    }

    /// Frames per second.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Samples per frame.
    pub fn channels(&self) -> u16 {
        self.channels
    }
}

/// Turns interleaved `f32` frames into an RTP payload and back.
///
/// Object-safe and `Send`, so a node can hold a `Box<dyn Codec>` on its media thread.
/// Neither [`encode`](Codec::encode) nor [`decode`](Codec::decode) allocates; both write
/// into buffers the caller owns, sized with [`payload_len`](Codec::payload_len) and
/// [`frames_in`](Codec::frames_in).
pub trait Codec: Send {
    /// Which codec this is.
    fn kind(&self) -> CodecKind;

    /// The PCM format it encodes and decodes.
    fn format(&self) -> AudioFormat;

    /// Encodes interleaved `pcm` (a whole number of frames) into `out` and returns the
    /// payload length in bytes. Samples are clamped to [-1, 1]; NaN encodes as silence.
    fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize, CodecError>;

    /// Decodes `payload` into interleaved samples in `out` and returns how many samples it
    /// wrote. Any bytes are safe to pass: a malformed payload is an error, never a panic.
    fn decode(&mut self, payload: &[u8], out: &mut [f32]) -> Result<usize, CodecError>;

    /// The payload length in bytes of `frames` frames (saturating at `usize::MAX`).
    fn payload_len(&self, frames: usize) -> usize;

    /// How many frames a payload of `payload_len` bytes holds, or `None` if that is not a
    /// whole number of frames.
    fn frames_in(&self, payload_len: usize) -> Option<usize>;

    /// The RTP timestamp clock rate, in Hz (for L16 and L24, the sample rate).
    fn rtp_clock_rate(&self) -> u32;

    /// The encoding name for SDP's `a=rtpmap` ("L16", "L24", "opus").
    fn encoding_name(&self) -> &'static str;

    /// How many frames `payload` decodes to, read from its bytes (its length for PCM, the
    /// table-of-contents byte for Opus), or `None` if the payload is malformed.
    fn frames_of(&self, payload: &[u8]) -> Option<usize> {
        self.frames_in(payload.len())
    }

    /// Rebuilds `frames` frames of audio that were lost just before the packet whose payload
    /// is `next` (`None` when it has not arrived), writing interleaved samples to `out`, and
    /// returns how many samples it wrote.
    ///
    /// A codec that can rebuild lost audio (Opus: in-band FEC from `next`, then its
    /// packet-loss concealment) writes `frames` frames. A codec that cannot (L16, L24)
    /// returns `Ok(0)` and leaves the concealment to the caller, which fades out and back
    /// in. Allocates nothing.
    fn conceal(
        &mut self,
        next: Option<&[u8]>,
        frames: usize,
        out: &mut [f32],
    ) -> Result<usize, CodecError> {
        let _ = (next, frames, out);
        Ok(0)
    }
}

/// Builds the codec `kind` for `format`.
///
/// Opus needs the `opus` feature; without it, [`CodecKind::Opus`] is refused with
/// [`CodecError::Unavailable`]. With it, Opus is built with the default `OpusConfig`
/// (20 ms packets, 128 kbit/s, in-band FEC for 5 % expected loss) and refuses formats it
/// cannot run: any rate but 48 kHz ([`CodecError::UnsupportedSampleRate`]) and more than two
/// channels ([`CodecError::UnsupportedChannels`]).
pub fn new_codec(kind: CodecKind, format: AudioFormat) -> Result<Box<dyn Codec>, CodecError> {
    match kind {
        CodecKind::L16 => Ok(Box::new(L16::new(format))),
        CodecKind::L24 => Ok(Box::new(L24::new(format))),
        #[cfg(not(feature = "opus"))]
        CodecKind::Opus => Err(CodecError::Unavailable {
            codec: "Opus",
            hint: "this build lacks it; build with `--features opus`",
        }),
        #[cfg(feature = "opus")]
        CodecKind::Opus => Ok(Box::new(crate::media::opus::Opus::new(
            format,
            crate::media::opus::OpusConfig::default(),
        )?)),
    }
}

/// 16-bit linear PCM, big-endian two's complement (RFC 3551 §4.5.11). Scale 2¹⁵; see the
/// [module docs](self) for the conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L16 {
    format: AudioFormat,
}

impl L16 {
    /// An L16 codec for `format`.
    pub fn new(format: AudioFormat) -> L16 {
        L16 { format }
    }
}

/// 24-bit linear PCM, big-endian two's complement, 3 bytes a sample (RFC 3190; AES67).
/// Scale 2²³; see the [module docs](self) for the conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L24 {
    format: AudioFormat,
}

impl L24 {
    /// An L24 codec for `format`.
    pub fn new(format: AudioFormat) -> L24 {
        L24 { format }
    }
}

/// One linear PCM sample width: its size, scale and byte order.
trait Linear {
    /// Bytes per sample.
    const BYTES: usize;
    /// 2^(bits - 1): the magnitude of the most negative code.
    const SCALE: f32;
    /// Writes `code` big-endian into `dst` (`BYTES` long).
    fn put(code: i32, dst: &mut [u8]);
    /// Reads a big-endian code from `src` (`BYTES` long).
    fn get(src: &[u8]) -> i32;
}

impl Linear for L16 {
    const BYTES: usize = 2;
    const SCALE: f32 = 32_768.0;
    fn put(code: i32, dst: &mut [u8]) {
        dst.copy_from_slice(&(code as i16).to_be_bytes());
    }
    fn get(src: &[u8]) -> i32 {
        i16::from_be_bytes([src[0], src[1]]) as i32
    }
}

impl Linear for L24 {
    const BYTES: usize = 3;
    const SCALE: f32 = 8_388_608.0;
    fn put(code: i32, dst: &mut [u8]) {
        dst.copy_from_slice(&code.to_be_bytes()[1..]);
    }
    fn get(src: &[u8]) -> i32 {
        // Load into the top three bytes, then shift back to sign-extend.
        i32::from_be_bytes([src[0], src[1], src[2], 0]) >> 8
    }
}

/// `x` as a code of scale `S::SCALE`: clamped, rounded half away from zero, saturated.
fn quantize<S: Linear>(x: f32) -> i32 {
    if x.is_nan() {
        return 0;
    }
    // Scaling by a power of two is exact, so `round` is the only rounding step.
    let v = (x.clamp(-1.0, 1.0) * S::SCALE).round() as i32;
    v.min(S::SCALE as i32 - 1)
}

fn encode_linear<S: Linear>(
    format: AudioFormat,
    pcm: &[f32],
    out: &mut [u8],
) -> Result<usize, CodecError> {
    let channels = format.channels;
    if !pcm.len().is_multiple_of(channels as usize) {
        return Err(CodecError::RaggedInput {
            samples: pcm.len(),
            channels,
        });
    }
    let need = pcm.len().saturating_mul(S::BYTES);
    if out.len() < need {
        return Err(CodecError::BufferTooSmall {
            need,
            have: out.len(),
        });
    }
    for (&x, dst) in pcm.iter().zip(out.chunks_exact_mut(S::BYTES)) {
        S::put(quantize::<S>(x), dst);
    }
    Ok(need)
}

fn decode_linear<S: Linear>(
    format: AudioFormat,
    payload: &[u8],
    out: &mut [f32],
) -> Result<usize, CodecError> {
    let frame_bytes = S::BYTES * format.channels as usize;
    if !payload.len().is_multiple_of(frame_bytes) {
        return Err(CodecError::RaggedPayload {
            len: payload.len(),
            frame_bytes,
        });
    }
    let need = payload.len() / S::BYTES;
    if out.len() < need {
        return Err(CodecError::BufferTooSmall {
            need,
            have: out.len(),
        });
    }
    let inv = 1.0 / S::SCALE;
    for (src, y) in payload.chunks_exact(S::BYTES).zip(out.iter_mut()) {
        *y = S::get(src) as f32 * inv;
    }
    Ok(need)
}

fn frames_in_linear<S: Linear>(format: AudioFormat, payload_len: usize) -> Option<usize> {
    let frame_bytes = S::BYTES * format.channels as usize;
    payload_len
        .is_multiple_of(frame_bytes)
        .then_some(payload_len / frame_bytes)
}

/// Implements [`Codec`] for a linear PCM type through the generic helpers above.
macro_rules! linear_codec {
    ($ty:ident, $name:literal) => {
        impl Codec for $ty {
            fn kind(&self) -> CodecKind {
                CodecKind::$ty
            }
            fn format(&self) -> AudioFormat {
                self.format
            }
            fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize, CodecError> {
                encode_linear::<$ty>(self.format, pcm, out)
            }
            fn decode(&mut self, payload: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
                decode_linear::<$ty>(self.format, payload, out)
            }
            fn payload_len(&self, frames: usize) -> usize {
                frames.saturating_mul(<$ty as Linear>::BYTES * self.format.channels as usize)
            }
            fn frames_in(&self, payload_len: usize) -> Option<usize> {
                frames_in_linear::<$ty>(self.format, payload_len)
            }
            fn rtp_clock_rate(&self) -> u32 {
                self.format.sample_rate
            }
            fn encoding_name(&self) -> &'static str {
                $name
            }
        }
    };
}

linear_codec!(L16, "L16");
linear_codec!(L24, "L24");

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(channels: u16) -> AudioFormat {
        AudioFormat::new(48_000, channels).unwrap()
    }

    fn enc(codec: &mut dyn Codec, pcm: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; codec.payload_len(pcm.len() / codec.format().channels() as usize)];
        let n = codec.encode(pcm, &mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    fn dec(codec: &mut dyn Codec, payload: &[u8]) -> Vec<f32> {
        let mut out = vec![f32::NAN; payload.len()];
        let n = codec.decode(payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn l16_encodes_hand_computed_vectors() {
        let mut c = L16::new(fmt(1));
        let cases: [(f32, [u8; 2]); 9] = [
            (0.0, [0x00, 0x00]),
            (-0.0, [0x00, 0x00]),
            (0.5, [0x40, 0x00]),  // 16384
            (-0.5, [0xC0, 0x00]), // -16384
            (1.0, [0x7F, 0xFF]),  // 32768 saturates to 32767
            (-1.0, [0x80, 0x00]), // -32768
            (0.25, [0x20, 0x00]), // 8192
            (1.0 / 32768.0, [0x00, 0x01]),
            (-1.0 / 32768.0, [0xFF, 0xFF]),
        ];
        for (x, bytes) in cases {
            assert_eq!(enc(&mut c, &[x]), bytes, "L16 of {x}");
        }
        // Half a step rounds away from zero.
        assert_eq!(enc(&mut c, &[1.5 / 32768.0]), [0x00, 0x02]);
        assert_eq!(enc(&mut c, &[-1.5 / 32768.0]), [0xFF, 0xFE]);
        // Just under half a step rounds to zero.
        assert_eq!(enc(&mut c, &[0.49 / 32768.0]), [0x00, 0x00]);
    }

    #[test]
    fn l16_decodes_hand_computed_vectors() {
        let mut c = L16::new(fmt(1));
        assert_eq!(dec(&mut c, &[0x80, 0x00]), [-1.0]);
        assert_eq!(dec(&mut c, &[0x7F, 0xFF]), [32_767.0 / 32_768.0]);
        assert_eq!(dec(&mut c, &[0x40, 0x00]), [0.5]);
        assert_eq!(dec(&mut c, &[0xFF, 0xFF]), [-1.0 / 32_768.0]);
        assert_eq!(dec(&mut c, &[0x00, 0x00]), [0.0]);
    }

    #[test]
    fn l24_encodes_and_decodes_hand_computed_vectors() {
        let mut c = L24::new(fmt(1));
        let cases: [(f32, [u8; 3]); 7] = [
            (0.0, [0x00, 0x00, 0x00]),
            (1.0, [0x7F, 0xFF, 0xFF]),  // 8388608 saturates to 8388607
            (-1.0, [0x80, 0x00, 0x00]), // -8388608
            (0.5, [0x40, 0x00, 0x00]),
            (-0.5, [0xC0, 0x00, 0x00]),
            (1.0 / 8_388_608.0, [0x00, 0x00, 0x01]),
            (-1.0 / 8_388_608.0, [0xFF, 0xFF, 0xFF]),
        ];
        for (x, bytes) in cases {
            assert_eq!(enc(&mut c, &[x]), bytes, "L24 of {x}");
        }
        assert_eq!(dec(&mut c, &[0xFF, 0xFF, 0xFF]), [-1.0 / 8_388_608.0]);
        assert_eq!(dec(&mut c, &[0x80, 0x00, 0x00]), [-1.0]);
        assert_eq!(
            dec(&mut c, &[0x7F, 0xFF, 0xFF]),
            [8_388_607.0 / 8_388_608.0]
        );
        assert_eq!(dec(&mut c, &[0x00, 0x01, 0x00]), [256.0 / 8_388_608.0]);
    }

    #[test]
    fn interleaved_frames_keep_channel_order() {
        let mut c = L16::new(fmt(2));
        let bytes = enc(&mut c, &[0.5, -0.5, 0.25, 0.0]);
        assert_eq!(bytes, [0x40, 0x00, 0xC0, 0x00, 0x20, 0x00, 0x00, 0x00]);
        assert_eq!(dec(&mut c, &bytes), [0.5, -0.5, 0.25, 0.0]);
        let mut c = L24::new(fmt(2));
        let bytes = enc(&mut c, &[-0.5, 0.5]);
        assert_eq!(bytes, [0xC0, 0x00, 0x00, 0x40, 0x00, 0x00]);
    }

    #[test]
    fn out_of_range_samples_clamp_and_nan_is_silence() {
        let mut l16 = L16::new(fmt(1));
        let mut l24 = L24::new(fmt(1));
        for (x, want16, want24) in [
            (2.0, [0x7F, 0xFF], [0x7F, 0xFF, 0xFF]),
            (f32::INFINITY, [0x7F, 0xFF], [0x7F, 0xFF, 0xFF]),
            (f32::MAX, [0x7F, 0xFF], [0x7F, 0xFF, 0xFF]),
            (-7.5, [0x80, 0x00], [0x80, 0x00, 0x00]),
            (f32::NEG_INFINITY, [0x80, 0x00], [0x80, 0x00, 0x00]),
            (f32::NAN, [0x00, 0x00], [0x00, 0x00, 0x00]),
            (-f32::NAN, [0x00, 0x00], [0x00, 0x00, 0x00]),
        ] {
            assert_eq!(enc(&mut l16, &[x]), want16, "L16 of {x}");
            assert_eq!(enc(&mut l24, &[x]), want24, "L24 of {x}");
        }
    }

    #[test]
    fn every_l16_code_survives_decode_then_encode() {
        let mut c = L16::new(fmt(1));
        let payload: Vec<u8> = (i16::MIN..=i16::MAX).flat_map(i16::to_be_bytes).collect();
        assert_eq!(payload.len(), 2 * 65_536);
        let pcm = dec(&mut c, &payload);
        for (code, &x) in (i16::MIN..=i16::MAX).zip(&pcm) {
            assert_eq!(x, code as f32 / 32_768.0);
        }
        assert_eq!(enc(&mut c, &pcm), payload);
    }

    #[test]
    fn every_l24_code_survives_decode_then_encode() {
        let mut c = L24::new(fmt(1));
        let mut payload = vec![0u8; 3 * 4096];
        let mut pcm = vec![0f32; 4096];
        let mut again = vec![0u8; 3 * 4096];
        let mut code = -8_388_608i32;
        while code < 8_388_608 {
            for (i, dst) in payload.chunks_exact_mut(3).enumerate() {
                dst.copy_from_slice(&(code + i as i32).to_be_bytes()[1..]);
            }
            assert_eq!(c.decode(&payload, &mut pcm), Ok(4096));
            assert_eq!(pcm[0], code as f32 / 8_388_608.0);
            assert_eq!(c.encode(&pcm, &mut again), Ok(3 * 4096));
            assert_eq!(again, payload, "codes from {code}");
            code += 4096;
        }
    }

    #[test]
    fn encode_decode_encode_is_stable() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let pcm: Vec<f32> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 23) as f32 - 1.05
            })
            .collect();
        for kind in [CodecKind::L16, CodecKind::L24] {
            let mut c = new_codec(kind, fmt(2)).unwrap();
            let first = enc(c.as_mut(), &pcm);
            let decoded = dec(c.as_mut(), &first);
            assert_eq!(enc(c.as_mut(), &decoded), first, "{kind:?}");
        }
    }

    #[test]
    fn stereo_l24_decodes_every_payload_length_or_says_why() {
        let mut c = L24::new(fmt(2));
        let bytes: Vec<u8> = (0..16u8).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
        let mut out = [0f32; 16];
        for len in 0..16 {
            let got = c.decode(&bytes[..len], &mut out);
            if len % 6 == 0 {
                assert_eq!(got, Ok(len / 3), "length {len}");
                assert_eq!(c.frames_in(len), Some(len / 6));
            } else {
                assert_eq!(
                    got,
                    Err(CodecError::RaggedPayload {
                        len,
                        frame_bytes: 6
                    }),
                    "length {len}"
                );
                assert_eq!(c.frames_in(len), None);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 7u64;
        let mut bytes = [0u8; 64];
        let mut out = [0f32; 40];
        for round in 0..2_000 {
            for b in bytes.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let len = (x >> 32) as usize % 65;
            let channels = 1 + (round % 8) as u16;
            for kind in [CodecKind::L16, CodecKind::L24] {
                let mut c = new_codec(kind, fmt(channels)).unwrap();
                if let Ok(n) = c.decode(&bytes[..len], &mut out) {
                    assert!(out[..n].iter().all(|y| (-1.0..1.0).contains(y)));
                    let mut again = [0u8; 64];
                    assert_eq!(c.encode(&out[..n], &mut again), Ok(len));
                    assert_eq!(again[..len], bytes[..len]);
                }
            }
        }
    }

    #[test]
    fn small_buffers_and_ragged_input_are_errors() {
        let mut c = L24::new(fmt(2));
        let mut out = [0u8; 11];
        assert_eq!(
            c.encode(&[0.1, 0.2, 0.3, 0.4], &mut out),
            Err(CodecError::BufferTooSmall { need: 12, have: 11 })
        );
        assert_eq!(
            c.encode(&[0.1, 0.2, 0.3], &mut [0u8; 64]),
            Err(CodecError::RaggedInput {
                samples: 3,
                channels: 2
            })
        );
        assert_eq!(
            c.decode(&[0u8; 12], &mut [0f32; 3]),
            Err(CodecError::BufferTooSmall { need: 4, have: 3 })
        );
        let mut c = L16::new(fmt(3));
        assert_eq!(
            c.encode(&[0.0; 6], &mut [0u8; 10]),
            Err(CodecError::BufferTooSmall { need: 12, have: 10 })
        );
        assert_eq!(
            c.decode(&[0u8; 8], &mut [0f32; 64]),
            Err(CodecError::RaggedPayload {
                len: 8,
                frame_bytes: 6
            })
        );
        // Empty input is zero frames, not an error.
        assert_eq!(c.encode(&[], &mut []), Ok(0));
        assert_eq!(c.decode(&[], &mut []), Ok(0));
    }

    #[test]
    fn formats_outside_the_supported_set_are_refused() {
        for rate in SUPPORTED_SAMPLE_RATES {
            for channels in 1..=MAX_CHANNELS as u16 {
                let f = AudioFormat::new(rate, channels).unwrap();
                assert_eq!((f.sample_rate(), f.channels()), (rate, channels));
            }
        }
        for rate in [0, 8_000, 22_050, 32_000, 88_200, 192_000] {
            assert_eq!(
                AudioFormat::new(rate, 2),
                Err(CodecError::UnsupportedSampleRate { rate })
            );
        }
        for channels in [0, 9, u16::MAX] {
            assert_eq!(
                AudioFormat::new(48_000, channels),
                Err(CodecError::UnsupportedChannels { channels })
            );
        }
        let msg = AudioFormat::new(22_050, 2).unwrap_err().to_string();
        assert!(msg.contains("22050"), "{msg}");
    }

    #[test]
    fn sizes_names_and_clock_rates() {
        let f = AudioFormat::new(96_000, 6).unwrap();
        let l16 = new_codec(CodecKind::L16, f).unwrap();
        let l24 = new_codec(CodecKind::L24, f).unwrap();
        assert_eq!((l16.kind(), l24.kind()), (CodecKind::L16, CodecKind::L24));
        assert_eq!((l16.encoding_name(), l24.encoding_name()), ("L16", "L24"));
        assert_eq!(
            (l16.rtp_clock_rate(), l24.rtp_clock_rate()),
            (96_000, 96_000)
        );
        assert_eq!((l16.format(), l24.format()), (f, f));
        assert_eq!(l16.payload_len(48), 48 * 12);
        assert_eq!(l24.payload_len(48), 48 * 18);
        assert_eq!(l24.frames_in(48 * 18), Some(48));
        assert_eq!(l16.payload_len(usize::MAX), usize::MAX);
    }

    #[cfg(not(feature = "opus"))]
    #[test]
    fn opus_without_the_feature_says_how_to_get_it() {
        let err = new_codec(CodecKind::Opus, fmt(2)).err().unwrap();
        assert!(matches!(err, CodecError::Unavailable { codec: "Opus", .. }));
        assert!(err.to_string().contains("--features opus"), "{err}");
    }
}
