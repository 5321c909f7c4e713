//! Opus (RFC 6716) as an RTP payload (RFC 7587), through libopus.
//!
//! [`Opus`] is a [`Codec`]: each call to [`encode`] takes exactly one packet's worth of
//! interleaved `f32` PCM ([`OpusConfig::frame_ms`], 10 or 20 ms) and writes one Opus packet,
//! which is the whole RTP payload (RFC 7587 §4.2). [`decode`] turns a payload back into
//! interleaved `f32`, however long the packet is (2.5 to 120 ms).
//!
//! Here Opus runs at 48 kHz only, mono or stereo, so no resampling ever happens and the RTP
//! clock is the sample clock: [`rtp_clock_rate`] is 48 000, as RFC 7587 §4.1 requires for
//! every Opus stream. (SDP still says `opus/48000/2` for a mono stream, RFC 7587 §7; that is
//! the SDP writer's business.)
//!
//! # Loss
//!
//! With [`OpusConfig::fec`] on, the encoder hides a low-bitrate copy of each frame in the next
//! packet (in-band FEC, SILK's LBRR). [`conceal`] rebuilds lost audio: from that copy when the
//! packet after the gap is at hand, and from libopus's packet-loss concealment (PLC)
//! otherwise. FEC only exists in the SILK and hybrid modes, and only for frames SILK's voice
//! activity detector calls active: when the encoder chose its CELT-only mode (typical for
//! music at high bitrates and low expected loss) or the sound is steady (a pure tone),
//! libopus falls back to PLC on its own. Raising [`OpusConfig::expected_loss_percent`] makes
//! the encoder prefer the modes that carry FEC.
//!
//! # Delay
//!
//! The encoder delays the signal by [`Opus::lookahead`] frames (312 at 48 kHz in the audio
//! application: 2.5 ms of MDCT overlap plus 4 ms of look-ahead): in CELT mode, decoded frame
//! `n` is input frame `n - lookahead`. The SILK and hybrid modes come out about 2.5 frames
//! (50 µs) earlier, so a mode switch shifts the decoded audio by that much; every receiver
//! decoding the same packets shifts alike.
//!
//! # Allocation
//!
//! All state (libopus encoder and decoder, scratch buffers) is allocated in [`Opus::new`].
//! Encoding, decoding and concealment only write to the caller's buffers and the codec's own
//! fixed scratch; the bundled libopus is built with variable-length stack arrays, so it does
//! not touch the heap either.
//!
//! [`Opus`]: crate::media::opus::Opus
//! [`Opus::new`]: crate::media::opus::Opus::new
//! [`Opus::lookahead`]: crate::media::opus::Opus::lookahead
//! [`OpusConfig::frame_ms`]: crate::media::opus::OpusConfig::frame_ms
//! [`OpusConfig::fec`]: crate::media::opus::OpusConfig::fec
//! [`OpusConfig::expected_loss_percent`]: crate::media::opus::OpusConfig::expected_loss_percent
//! [`Codec`]: crate::media::Codec
//! [`encode`]: crate::media::Codec::encode
//! [`decode`]: crate::media::Codec::decode
//! [`conceal`]: crate::media::Codec::conceal
//! [`rtp_clock_rate`]: crate::media::Codec::rtp_clock_rate

use std::fmt;

use ::opus::{Application, Bitrate, Channels, Decoder, Encoder, Signal};

use crate::media::codec::{AudioFormat, Codec, CodecError, CodecKind};

/// The only sample rate, and the RTP clock rate, of Opus here (RFC 7587 §4.1), in Hz.
pub const OPUS_RATE: u32 = 48_000;

/// The bitrates [`OpusConfig::bitrate`] may take, in bit/s: Opus's working range (RFC 6716
/// gives 6 kbit/s to 510 kbit/s).
pub const OPUS_BITRATES: std::ops::RangeInclusive<u32> = 6_000..=510_000;

/// The largest packet the encoder writes for one frame of up to 20 ms: a table-of-contents
/// byte and a frame of at most 1275 bytes (RFC 6716 §3.2.1).
pub const MAX_PACKET_BYTES: usize = 1_276;

/// Frames in 20 ms at 48 kHz: the longest frame [`Opus`] encodes, and the longest piece PLC is
/// asked for at once.
const MAX_FRAME: usize = 960;

/// Frames in 2.5 ms at 48 kHz: libopus conceals in whole multiples of this.
const GRANULE: usize = 120;

/// libopus's `OPUS_BAD_ARG`.
const OPUS_BAD_ARG: i32 = -1;

/// libopus's `OPUS_INTERNAL_ERROR`.
const OPUS_INTERNAL_ERROR: i32 = -3;

/// How to run the Opus encoder. The decoder needs no settings: it follows the packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OpusConfig {
    /// Packet duration in milliseconds: 10 or 20 (default 20). Each
    /// [`encode`](Codec::encode) takes exactly this much audio.
    pub frame_ms: u32,
    /// Target bitrate in bit/s, `6_000..=510_000` (default 128 000). The encoder runs in
    /// variable-bitrate mode around it.
    pub bitrate: u32,
    /// In-band forward error correction (default on): each packet carries a low-bitrate copy
    /// of the previous frame, which [`conceal`](Codec::conceal) uses when that frame is lost.
    /// Only the SILK and hybrid modes carry it, and only for frames with voice-like activity;
    /// see the [module docs](self#loss).
    pub fec: bool,
    /// The packet loss the encoder should expect, in percent, `0..=100` (default 5). Higher
    /// values spend more bits on FEC and push the encoder towards the modes that carry it.
    pub expected_loss_percent: u8,
}

impl Default for OpusConfig {
    fn default() -> OpusConfig {
        OpusConfig {
            frame_ms: 20,
            bitrate: 128_000,
            fec: true,
            expected_loss_percent: 5,
        }
    }
}

impl OpusConfig {
    /// Checks every field, naming the first one out of range in
    /// [`CodecError::InvalidConfig`].
    pub fn validate(&self) -> Result<(), CodecError> {
        if self.frame_ms != 10 && self.frame_ms != 20 {
            return Err(CodecError::InvalidConfig {
                field: "frame_ms",
                reason: "must be 10 or 20",
            });
        }
        if !OPUS_BITRATES.contains(&self.bitrate) {
            return Err(CodecError::InvalidConfig {
                field: "bitrate",
                reason: "must be 6000 to 510000 bit/s",
            });
        }
        if self.expected_loss_percent > 100 {
            return Err(CodecError::InvalidConfig {
                field: "expected_loss_percent",
                reason: "must be 0 to 100",
            });
        }
        Ok(())
    }

    /// Frames in one packet at 48 kHz (480 for 10 ms, 960 for 20 ms).
    fn frames_per_packet(&self) -> usize {
        self.frame_ms as usize * (OPUS_RATE as usize / 1_000)
    }
}

/// The Opus codec (RFC 7587): a libopus encoder and decoder for one 48 kHz mono or stereo
/// stream. See the [module docs](self).
pub struct Opus {
    format: AudioFormat,
    config: OpusConfig,
    /// Channels per frame, 1 or 2.
    channels: usize,
    /// Frames one [`Codec::encode`] takes.
    frames_per_packet: usize,
    /// The encoder's delay in frames.
    lookahead: usize,
    encoder: Encoder,
    decoder: Decoder,
    /// The PCM being encoded, clamped and with NaN replaced by silence.
    input: [f32; 2 * MAX_FRAME],
    /// 2.5 ms of concealment, for a request that does not end on a 2.5 ms boundary.
    granule: [f32; 2 * GRANULE],
}

impl fmt::Debug for Opus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opus")
            .field("format", &self.format)
            .field("config", &self.config)
            .field("lookahead", &self.lookahead)
            .finish_non_exhaustive()
    }
}

/// A libopus error as a [`CodecError`].
fn from_opus(e: ::opus::Error) -> CodecError {
    CodecError::Opus {
        function: e.function(),
        code: e.code() as i32,
    }
}

/// Whether libopus can take a buffer of `len` elements (it counts in `i32`; the `opus` crate
/// panics on anything longer).
fn fits_libopus(len: usize) -> bool {
    i32::try_from(len).is_ok()
}

impl Opus {
    /// An Opus codec for `format`, encoding as `config` says.
    ///
    /// Refuses any sample rate but 48 kHz with [`CodecError::UnsupportedSampleRate`], more
    /// than two channels with [`CodecError::UnsupportedChannels`], a setting out of range
    /// with [`CodecError::InvalidConfig`] naming it, and a libopus failure with
    /// [`CodecError::Opus`].
    pub fn new(format: AudioFormat, config: OpusConfig) -> Result<Opus, CodecError> {
        if format.sample_rate() != OPUS_RATE {
            return Err(CodecError::UnsupportedSampleRate {
                rate: format.sample_rate(),
            });
        }
        let channels = match format.channels() {
            1 => Channels::Mono,
            2 => Channels::Stereo,
            channels => return Err(CodecError::UnsupportedChannels { channels }),
        };
        config.validate()?;

        let mut encoder =
            Encoder::new(OPUS_RATE, channels, Application::Audio).map_err(from_opus)?;
        // Both fit an i32: validate() bounded them.
        encoder
            .set_bitrate(Bitrate::Bits(config.bitrate as i32))
            .map_err(from_opus)?;
        encoder.set_inband_fec(config.fec).map_err(from_opus)?;
        // Music is what lockstep carries: tell the encoder, so that it settles on its music
        // mode from the first frame instead of switching over after half a second (a switch
        // that moves the decoded audio by a couple of samples).
        encoder.set_signal(Signal::Music).map_err(from_opus)?;
        encoder
            .set_packet_loss_perc(i32::from(config.expected_loss_percent))
            .map_err(from_opus)?;
        let lookahead = encoder.get_lookahead().map_err(from_opus)?;
        let decoder = Decoder::new(OPUS_RATE, channels).map_err(from_opus)?;

        Ok(Opus {
            format,
            config,
            channels: channels as usize,
            frames_per_packet: config.frames_per_packet(),
            lookahead: usize::try_from(lookahead).unwrap_or(0),
            encoder,
            decoder,
            input: [0.0; 2 * MAX_FRAME],
            granule: [0.0; 2 * GRANULE],
        })
    }

    /// The settings it encodes with.
    pub fn config(&self) -> OpusConfig {
        self.config
    }

    /// Frames one [`encode`](Codec::encode) takes: 480 for 10 ms packets, 960 for 20 ms.
    pub fn frames_per_packet(&self) -> usize {
        self.frames_per_packet
    }

    /// The delay the codec adds, in frames at 48 kHz: decoded frame `n` is input frame
    /// `n - lookahead`.
    pub fn lookahead(&self) -> usize {
        self.lookahead
    }

    /// Writes `out.len() / channels` frames of packet-loss concealment into `out`, in pieces
    /// of at most 20 ms, rounding a last piece that is not a multiple of 2.5 ms up inside the
    /// decoder and dropping the surplus.
    fn plc(&mut self, out: &mut [f32]) -> Result<(), CodecError> {
        let ch = self.channels;
        let total = out.len() / ch;
        let mut done = 0;
        while done < total {
            let left = total - done;
            if left >= GRANULE {
                let chunk = left.min(MAX_FRAME) / GRANULE * GRANULE;
                let n = self
                    .decoder
                    .decode_float(&[], &mut out[done * ch..(done + chunk) * ch], false)
                    .map_err(from_opus)?;
                if n == 0 || n > chunk {
                    return Err(CodecError::Opus {
                        function: "opus_decode_float",
                        code: OPUS_INTERNAL_ERROR,
                    });
                }
                done += n;
            } else {
                let granule = &mut self.granule[..GRANULE * ch];
                self.decoder
                    .decode_float(&[], granule, false)
                    .map_err(from_opus)?;
                out[done * ch..].copy_from_slice(&granule[..left * ch]);
                done = total;
            }
        }
        Ok(())
    }
}

impl Codec for Opus {
    fn kind(&self) -> CodecKind {
        CodecKind::Opus
    }

    fn format(&self) -> AudioFormat {
        self.format
    }

    /// Encodes exactly [`Opus::frames_per_packet`] frames into one Opus packet.
    ///
    /// `out` must hold [`MAX_PACKET_BYTES`] ([`payload_len`](Codec::payload_len) of one
    /// packet), whatever the bitrate, so that the buffer never limits the encoder. Other
    /// frame counts are refused with [`CodecError::FrameCount`].
    fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize, CodecError> {
        let ch = self.channels;
        if !pcm.len().is_multiple_of(ch) {
            return Err(CodecError::RaggedInput {
                samples: pcm.len(),
                channels: self.format.channels(),
            });
        }
        let frames = pcm.len() / ch;
        if frames != self.frames_per_packet {
            return Err(CodecError::FrameCount {
                frames,
                expected: self.frames_per_packet,
            });
        }
        let need = MAX_PACKET_BYTES;
        if out.len() < need {
            return Err(CodecError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        let input = &mut self.input[..pcm.len()];
        for (dst, &x) in input.iter_mut().zip(pcm) {
            *dst = if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) };
        }
        self.encoder
            .encode_float(input, &mut out[..need])
            .map_err(from_opus)
    }

    /// Decodes one Opus packet of any duration (2.5 to 120 ms); `out` must hold all of it
    /// ([`frames_of`](Codec::frames_of) times the channel count). An empty or malformed
    /// payload is [`CodecError::Opus`].
    fn decode(&mut self, payload: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        if !fits_libopus(payload.len()) {
            return Err(CodecError::Opus {
                function: "opus_decode_float",
                code: OPUS_BAD_ARG,
            });
        }
        // Reads only the table of contents; the decoder checks the rest.
        let frames = ::opus::packet::get_nb_samples(payload, OPUS_RATE).map_err(from_opus)?;
        let need = frames * self.channels;
        if out.len() < need {
            return Err(CodecError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        let n = self
            .decoder
            .decode_float(payload, &mut out[..need], false)
            .map_err(from_opus)?;
        Ok(n * self.channels)
    }

    /// An upper bound on the packet length for `frames` frames: [`MAX_PACKET_BYTES`] for
    /// each 20 ms or part of it, at least one packet's worth (saturating at `usize::MAX`).
    fn payload_len(&self, frames: usize) -> usize {
        frames
            .div_ceil(MAX_FRAME)
            .max(1)
            .saturating_mul(MAX_PACKET_BYTES)
    }

    /// Always `None`: an Opus packet's length says nothing about its duration; use
    /// [`frames_of`](Codec::frames_of).
    fn frames_in(&self, payload_len: usize) -> Option<usize> {
        let _ = payload_len;
        None
    }

    fn rtp_clock_rate(&self) -> u32 {
        OPUS_RATE
    }

    fn encoding_name(&self) -> &'static str {
        "opus"
    }

    /// The frames at 48 kHz `payload` decodes to, from its table-of-contents byte (and frame
    /// count byte for code 3), or `None` for an empty payload, a zero-frame one, or one over
    /// 120 ms.
    fn frames_of(&self, payload: &[u8]) -> Option<usize> {
        if !fits_libopus(payload.len()) {
            return None;
        }
        ::opus::packet::get_nb_samples(payload, OPUS_RATE)
            .ok()
            .filter(|&frames| frames > 0)
    }

    /// Rebuilds `frames` lost frames that came just before the packet `next`, writes
    /// `frames` frames to `out` and returns the sample count (`frames` times channels).
    ///
    /// When `next` is at hand and `frames` covers at least one of its frames, the last frame
    /// of the gap comes from `next`'s in-band FEC and anything before it from PLC; otherwise
    /// (no `next`, a shorter gap, or a `next` that does not parse) it is all PLC, in pieces of
    /// at most 20 ms. Gaps that are not a multiple of 2.5 ms (120 frames) are concealed a
    /// little long inside the decoder and the surplus dropped.
    fn conceal(
        &mut self,
        next: Option<&[u8]>,
        frames: usize,
        out: &mut [f32],
    ) -> Result<usize, CodecError> {
        let ch = self.channels;
        let need = frames.saturating_mul(ch);
        if out.len() < need {
            return Err(CodecError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        if frames == 0 {
            return Ok(0);
        }
        let out = &mut out[..need];

        // The FEC in `next` stands for one frame of `next`'s own duration.
        let fec = next.and_then(|packet| {
            if packet.is_empty() || !fits_libopus(packet.len()) {
                return None;
            }
            let per_frame = ::opus::packet::get_samples_per_frame(packet, OPUS_RATE).ok()?;
            (per_frame > 0 && per_frame <= frames && fits_libopus(per_frame * ch))
                .then_some((packet, per_frame))
        });
        let Some((packet, fec_frames)) = fec else {
            self.plc(out)?;
            return Ok(need);
        };

        let plc_frames = frames - fec_frames;
        let (before, last) = out.split_at_mut(plc_frames * ch);
        self.plc(before)?;
        match self.decoder.decode_float(packet, last, true) {
            Ok(n) if n == fec_frames => {}
            // `next` does not parse (libopus checks it before touching its state): conceal.
            _ => self.plc(last)?,
        }
        Ok(need)
    }
}
