//! The RTP receiver: datagrams in, decoded frames with leader-clock presentation times out.
//!
//! [`RtpReceiver`] is sans-IO. The caller hands it each datagram with the instant it arrived,
//! already mapped to the leader's clock, and reads decoded samples back with the leader
//! instant at which the first of them is to be played. In between:
//!
//! 1. **Validation.** The header is parsed in place, without allocating. A datagram that is
//!    not RTP version 2, carries another payload type, has a header, CSRC list, header
//!    extension or padding that overruns the datagram, or a payload the codec cannot take, is
//!    rejected and counted by [`RejectReason`].
//! 2. **Stream lock.** The receiver follows one SSRC. Packets from another SSRC are rejected
//!    until that SSRC has sent [`ReceiverConfig::relock_packets`] packets in sequence, or the
//!    current one has been silent for [`ReceiverConfig::relock_silence`]; then the receiver
//!    re-locks onto it and starts afresh. With [`ReceiverConfig::ssrc`] set, only that SSRC
//!    is ever accepted.
//! 3. **Timing.** Sequence numbers and timestamps are extended to 64 bits
//!    ([`SequenceExtender`], [`TimestampExtender`]), so wrap-around is invisible. A packet's
//!    presentation time comes from its RFC 6051 NTP header extension when it has one (every
//!    lockstep packet does); otherwise from the RTP timestamp, through the last extension, an
//!    RTCP sender report ([`RtpReceiver::handle_rtcp`]) or an RFC 7273 media clock offset;
//!    and for a stream with none of these (a plain ffmpeg or GStreamer sender), from the
//!    first packet's arrival plus [`ReceiverConfig::latency`].
//! 4. **Jitter buffer.** Packets wait in a [`JitterBuffer`] in sequence order. Duplicates and
//!    packets whose turn has passed are dropped; a packet that arrives after its
//!    presentation time is dropped as late. When the buffer is full the oldest goes.
//! 5. **Decoding and concealment.** Packets are decoded in order into a sample FIFO (a
//!    `ringbuf` ring) as soon as there is room. A gap is concealed once its presentation time
//!    is within [`ReceiverConfig::conceal_lead`] of now: Opus rebuilds it (in-band FEC from
//!    the next packet, then the decoder's concealment); for L16 and L24 the last packet is
//!    played backwards under a raised-cosine fade to zero, silence fills the rest, and the
//!    audio after the gap fades back in. Either way there is no click and no DC step. When
//!    the buffer runs dry in mid-stream (every packet of a stretch delayed or lost) the
//!    receiver conceals on the same schedule, for at most [`ReceiverConfig::max_conceal`];
//!    packets that arrive for a stretch already concealed are dropped as late.
//! 6. **Output.** [`RtpReceiver::poll_audio`] pops interleaved samples with their presentation
//!    time; [`RtpReceiver::stats`] counts what happened.
//!
//! Every buffer is allocated in [`RtpReceiver::new`]. Receiving, concealing and reading
//! allocate nothing, and no datagram, however malformed, can panic the receiver or grow its
//! memory.

use std::fmt;

use ringbuf::HeapRb;
use ringbuf::traits::{Consumer, Observer, Producer};
use thiserror::Error;

use crate::media::codec::{AudioFormat, Codec, CodecError, CodecKind, new_codec};
use crate::media::extend::{SequenceExtender, TimestampExtender};
use crate::media::jitter::{Front, Inserted, JitterBuffer, PacketMeta};
use crate::media::ntp::NtpTimestamp;
use crate::media::rtcp::SenderReport;
use crate::time::{LeaderInstant, NANOS_PER_SEC, Nanos};

/// The RFC 8285 one-byte header extension profile.
const PROFILE_ONE_BYTE: u16 = 0xBEDE;
/// The largest Opus packet duration (120 ms) in 48 kHz frames.
const OPUS_MAX_FRAMES: usize = 5_760;

/// How a receiver is set up. [`ReceiverConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverConfig {
    /// The codec of the stream.
    pub codec: CodecKind,
    /// Its PCM format.
    pub format: AudioFormat,
    /// The RTP payload type to accept (0–127).
    pub payload_type: u8,
    /// Accept only this SSRC; `None` locks onto the first one heard and re-locks as the
    /// module docs describe.
    pub ssrc: Option<u32>,
    /// The RFC 8285 extension id that carries the RFC 6051 NTP presentation time (1–14);
    /// `None` ignores extensions. Default 1, as the lockstep sender uses.
    pub ntp_extension_id: Option<u8>,
    /// The RFC 7273 `a=mediaclk:direct=` offset, if the stream's RTP timestamps follow the
    /// leader clock; used when a packet has no NTP extension. Default `None`.
    pub media_clock_offset: Option<u32>,
    /// For a stream with no timing of its own: how long after its first packet arrives that
    /// packet is played. Default 100 ms.
    pub latency: Nanos,
    /// The jitter buffer's depth in packets. Default 256.
    pub max_depth: usize,
    /// The largest payload accepted, in bytes. Default 1500.
    pub max_payload: usize,
    /// The decoded-sample FIFO's size in frames. Default half a second.
    pub fifo_frames: usize,
    /// How long before its presentation time a gap is concealed. Default 20 ms.
    pub conceal_lead: Nanos,
    /// The length of the PCM concealment fades. Default 2 ms.
    pub fade: Nanos,
    /// The longest gap that is concealed; after a longer one the stream restarts at the
    /// next packet once the FIFO has drained. Default 1 s.
    pub max_conceal: Nanos,
    /// In-sequence packets from a new SSRC that make the receiver re-lock. Default 4.
    pub relock_packets: u32,
    /// Silence from the current SSRC after which any new SSRC is taken at once. Default
    /// 250 ms.
    pub relock_silence: Nanos,
}

impl ReceiverConfig {
    /// The defaults for a stream of `codec` in `format` with payload type `payload_type`.
    pub fn new(codec: CodecKind, format: AudioFormat, payload_type: u8) -> ReceiverConfig {
        ReceiverConfig {
            codec,
            format,
            payload_type,
            ssrc: None,
            ntp_extension_id: Some(1),
            media_clock_offset: None,
            latency: Nanos::from_millis(100),
            max_depth: 256,
            max_payload: 1500,
            fifo_frames: format.sample_rate() as usize / 2,
            conceal_lead: Nanos::from_millis(20),
            fade: Nanos::from_millis(2),
            max_conceal: Nanos::from_secs(1),
            relock_packets: 4,
            relock_silence: Nanos::from_millis(250),
        }
    }

    fn validate(&self) -> Result<(), ReceiverError> {
        let bad = |field, reason| Err(ReceiverError::InvalidConfig { field, reason });
        if self.payload_type > 127 {
            return bad("payload_type", "must be 0 to 127");
        }
        if let Some(id) = self.ntp_extension_id
            && !(1..=14).contains(&id)
        {
            return bad(
                "ntp_extension_id",
                "must be 1 to 14 (RFC 8285 one-byte form)",
            );
        }
        if self.max_depth == 0 || self.max_depth > 65_536 {
            return bad("max_depth", "must be 1 to 65536 packets");
        }
        if self.max_payload == 0 || self.max_payload > 65_535 {
            return bad("max_payload", "must be 1 to 65535 bytes");
        }
        let rate = self.format.sample_rate() as usize;
        if self.fifo_frames == 0 || self.fifo_frames > rate * 60 {
            return bad("fifo_frames", "must be 1 frame to 60 seconds");
        }
        for (field, value) in [
            ("latency", self.latency),
            ("conceal_lead", self.conceal_lead),
            ("fade", self.fade),
            ("max_conceal", self.max_conceal),
            ("relock_silence", self.relock_silence),
        ] {
            if value < Nanos::ZERO || value > Nanos::from_secs(60) {
                return bad(field, "must be 0 to 60 s");
            }
        }
        if self.relock_packets == 0 {
            return bad("relock_packets", "must be at least 1");
        }
        Ok(())
    }
}

/// Why a receiver could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReceiverError {
    /// A configuration field is out of range.
    #[error("invalid receiver config: {field} {reason}")]
    InvalidConfig {
        /// The field, as named in [`ReceiverConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The codec could not be built for the format.
    #[error("receiver codec: {0}")]
    Codec(#[from] CodecError),
}

/// Why a datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Shorter than the 12-byte fixed header.
    TooShort,
    /// RTP version other than 2.
    BadVersion,
    /// A payload type other than the configured one.
    WrongPayloadType,
    /// An SSRC other than the stream's.
    WrongSsrc,
    /// The CSRC list runs past the end of the datagram.
    CsrcOverrun,
    /// The header extension, or an element in it, runs past its end.
    ExtensionOverrun,
    /// The padding count is zero or longer than the payload.
    BadPadding,
    /// No payload.
    EmptyPayload,
    /// A payload longer than [`ReceiverConfig::max_payload`] or than the decode buffer.
    TooLarge,
    /// A payload the codec cannot decode.
    MalformedPayload,
}

impl RejectReason {
    /// Every reason, in the order [`RejectCounts`] keeps them.
    pub const ALL: [RejectReason; 10] = [
        RejectReason::TooShort,
        RejectReason::BadVersion,
        RejectReason::WrongPayloadType,
        RejectReason::WrongSsrc,
        RejectReason::CsrcOverrun,
        RejectReason::ExtensionOverrun,
        RejectReason::BadPadding,
        RejectReason::EmptyPayload,
        RejectReason::TooLarge,
        RejectReason::MalformedPayload,
    ];

    /// A short name, for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::TooShort => "too_short",
            RejectReason::BadVersion => "bad_version",
            RejectReason::WrongPayloadType => "wrong_payload_type",
            RejectReason::WrongSsrc => "wrong_ssrc",
            RejectReason::CsrcOverrun => "csrc_overrun",
            RejectReason::ExtensionOverrun => "extension_overrun",
            RejectReason::BadPadding => "bad_padding",
            RejectReason::EmptyPayload => "empty_payload",
            RejectReason::TooLarge => "too_large",
            RejectReason::MalformedPayload => "malformed_payload",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Rejected datagrams, counted by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectCounts([u64; 10]);

impl RejectCounts {
    /// How many were rejected for `reason`.
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.0[reason.index()]
    }

    /// How many were rejected in all.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn add(&mut self, reason: RejectReason) {
        self.0[reason.index()] += 1;
    }
}

/// What a receiver has seen, counted since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Valid packets of the locked stream (including duplicates and late ones).
    pub received: u64,
    /// Packets decoded into the FIFO.
    pub decoded: u64,
    /// Packets that never arrived in time and were concealed or skipped.
    pub lost: u64,
    /// Frames produced by concealment of a gap between packets (lost ones).
    pub concealed_frames: u64,
    /// Frames produced by concealment while nothing was buffered: the stream ran dry,
    /// because a stretch of packets was late or because the sender stopped.
    pub dry_frames: u64,
    /// Packets dropped because they arrived after their presentation time or after their
    /// place had been concealed.
    pub late: u64,
    /// Packets dropped as duplicates.
    pub duplicate: u64,
    /// Packets that arrived after a later one (and were still in time).
    pub reordered: u64,
    /// Packets dropped from a full jitter buffer, oldest first.
    pub overflow: u64,
    /// Times the receiver re-locked onto a new SSRC.
    pub relocks: u64,
    /// Times the stream restarted after a gap too long to conceal.
    pub restarts: u64,
    /// Datagrams rejected, by reason.
    pub rejected: RejectCounts,
}

/// What [`RtpReceiver::handle_rtp`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored in the jitter buffer.
    Stored,
    /// Stored, and the receiver re-locked onto this packet's SSRC first.
    Relocked,
    /// A duplicate: dropped.
    Duplicate,
    /// Too late to be played: dropped.
    Late,
    /// Not accepted, for this reason.
    Rejected(RejectReason),
}

/// A block of samples handed out by [`RtpReceiver::poll_audio`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Leader-clock instant at which the block's first frame is to be played.
    pub presentation: LeaderInstant,
    /// Frames written to the output (samples = frames × channels).
    pub frames: usize,
}

/// A parsed RTP packet, borrowing its payload from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView<'a> {
    /// The marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// 16-bit sequence number.
    pub sequence: u16,
    /// 32-bit RTP timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// The RFC 6051 NTP timestamp, if the extension with the asked-for id was present.
    pub ntp: Option<NtpTimestamp>,
    /// The payload, padding removed.
    pub payload: &'a [u8],
}

/// Parses an RTP packet in place (RFC 3550 §5.1, RFC 8285), reading the 8-byte RFC 6051
/// NTP element with id `ntp_id` from a one- or two-byte header extension. Allocates
/// nothing and never panics.
pub fn parse_rtp(data: &[u8], ntp_id: Option<u8>) -> Result<RtpView<'_>, RejectReason> {
    if data.len() < 12 {
        return Err(RejectReason::TooShort);
    }
    let b0 = data[0];
    if b0 >> 6 != 2 {
        return Err(RejectReason::BadVersion);
    }
    let padding = b0 & 0x20 != 0;
    let extension = b0 & 0x10 != 0;
    let csrc_count = usize::from(b0 & 0x0f);
    let mut offset = 12 + 4 * csrc_count;
    if offset > data.len() {
        return Err(RejectReason::CsrcOverrun);
    }
    let mut ntp = None;
    if extension {
        if offset + 4 > data.len() {
            return Err(RejectReason::ExtensionOverrun);
        }
        let profile = u16::from_be_bytes([data[offset], data[offset + 1]]);
        let words = usize::from(u16::from_be_bytes([data[offset + 2], data[offset + 3]]));
        let start = offset + 4;
        let end = start + 4 * words;
        if end > data.len() {
            return Err(RejectReason::ExtensionOverrun);
        }
        let block = &data[start..end];
        if profile == PROFILE_ONE_BYTE {
            ntp = one_byte_elements(block, ntp_id)?;
        } else if profile & 0xfff0 == 0x1000 {
            ntp = two_byte_elements(block, ntp_id)?;
        }
        offset = end;
    }
    let mut end = data.len();
    if padding {
        let pad = usize::from(data[data.len() - 1]);
        if pad == 0 || pad > data.len() - offset {
            return Err(RejectReason::BadPadding);
        }
        end -= pad;
    }
    Ok(RtpView {
        marker: data[1] & 0x80 != 0,
        payload_type: data[1] & 0x7f,
        sequence: u16::from_be_bytes([data[2], data[3]]),
        timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        ntp,
        payload: &data[offset..end],
    })
}

fn ntp_element(id: u8, value: &[u8], want: Option<u8>) -> Option<NtpTimestamp> {
    if Some(id) == want && value.len() == 8 {
        let mut b = [0u8; 8];
        b.copy_from_slice(value);
        Some(NtpTimestamp::from_be_bytes(b))
    } else {
        None
    }
}

fn one_byte_elements(block: &[u8], want: Option<u8>) -> Result<Option<NtpTimestamp>, RejectReason> {
    let mut found = None;
    let mut i = 0;
    while i < block.len() {
        let b = block[i];
        if b == 0 {
            i += 1; // padding between elements
            continue;
        }
        let id = b >> 4;
        if id == 15 {
            break; // reserved: stop parsing (RFC 8285 §4.2)
        }
        let len = usize::from(b & 0x0f) + 1;
        let value = block
            .get(i + 1..i + 1 + len)
            .ok_or(RejectReason::ExtensionOverrun)?;
        found = found.or(ntp_element(id, value, want));
        i += 1 + len;
    }
    Ok(found)
}

fn two_byte_elements(block: &[u8], want: Option<u8>) -> Result<Option<NtpTimestamp>, RejectReason> {
    let mut found = None;
    let mut i = 0;
    while i < block.len() {
        let id = block[i];
        if id == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(*block.get(i + 1).ok_or(RejectReason::ExtensionOverrun)?);
        let value = block
            .get(i + 2..i + 2 + len)
            .ok_or(RejectReason::ExtensionOverrun)?;
        found = found.or(ntp_element(id, value, want));
        i += 2 + len;
    }
    Ok(found)
}

/// Maps extended RTP timestamps to leader instants: `at` is when timestamp `ts` plays.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ts: u64,
    at: LeaderInstant,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    ssrc: u32,
    count: u32,
    last_seq: u16,
}

/// The RTP receiver. See the [module docs](self).
pub struct RtpReceiver {
    config: ReceiverConfig,
    codec: Box<dyn Codec>,
    channels: usize,
    clock_rate: u32,
    jitter: JitterBuffer,
    fifo: HeapRb<f32>,
    seq_ext: SequenceExtender,
    ts_ext: TimestampExtender,
    ssrc: Option<u32>,
    candidate: Option<Candidate>,
    /// The SSRC given up at the last re-lock.
    abandoned: Option<u32>,
    last_arrival: Option<LeaderInstant>,
    anchor: Option<Anchor>,
    /// RTP timestamp of the next sample written into the FIFO.
    write_ts: Option<u64>,
    scratch: Box<[f32]>,
    max_frames: usize,
    /// The last decoded packet (interleaved), the source of a PCM fade-out.
    last: Box<[f32]>,
    last_frames: usize,
    /// Frames of the current gap already concealed.
    gap_pos: usize,
    fade_frames: usize,
    fade_in_left: usize,
    stats: ReceiverStats,
}

impl fmt::Debug for RtpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtpReceiver")
            .field("config", &self.config)
            .field("ssrc", &self.ssrc)
            .field("buffered_packets", &self.jitter.len())
            .field("buffered_frames", &self.buffered_frames())
            .field("stats", &self.stats)
            .finish()
    }
}

impl RtpReceiver {
    /// A receiver for `config`, with every buffer allocated now.
    pub fn new(config: ReceiverConfig) -> Result<RtpReceiver, ReceiverError> {
        config.validate()?;
        let codec = new_codec(config.codec, config.format)?;
        RtpReceiver::with_codec(config, codec)
    }

    /// A receiver that decodes with `codec` (for codec settings [`new_codec`] does not
    /// offer). The codec's format must be the config's.
    pub fn with_codec(
        config: ReceiverConfig,
        codec: Box<dyn Codec>,
    ) -> Result<RtpReceiver, ReceiverError> {
        config.validate()?;
        if codec.format() != config.format || codec.kind() != config.codec {
            return Err(ReceiverError::InvalidConfig {
                field: "codec",
                reason: "differs from the config's codec or format",
            });
        }
        let channels = usize::from(config.format.channels());
        let max_frames = match config.codec {
            CodecKind::Opus => OPUS_MAX_FRAMES,
            _ => (config.max_payload / codec.payload_len(1).max(1)).max(1),
        };
        let rate = config.format.sample_rate();
        let fade_frames = frames_for(config.fade, rate);
        Ok(RtpReceiver {
            clock_rate: codec.rtp_clock_rate(),
            jitter: JitterBuffer::new(config.max_depth, config.max_payload),
            fifo: HeapRb::new(config.fifo_frames * channels),
            seq_ext: SequenceExtender::new(),
            ts_ext: TimestampExtender::new(),
            ssrc: None,
            candidate: None,
            abandoned: None,
            last_arrival: None,
            anchor: None,
            write_ts: None,
            scratch: vec![0.0; max_frames * channels].into_boxed_slice(),
            max_frames,
            last: vec![0.0; max_frames * channels].into_boxed_slice(),
            last_frames: 0,
            gap_pos: 0,
            fade_frames,
            fade_in_left: 0,
            stats: ReceiverStats::default(),
            codec,
            channels,
            config,
        })
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// The SSRC it is locked onto.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Counters of what it has seen.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// Packets waiting in the jitter buffer.
    pub fn buffered_packets(&self) -> usize {
        self.jitter.len()
    }

    /// Decoded frames waiting in the FIFO.
    pub fn buffered_frames(&self) -> usize {
        self.fifo.occupied_len() / self.channels
    }

    /// Bytes of heap held by the receiver's own buffers (jitter buffer, FIFO, decode
    /// buffers), fixed at construction. The codec's state is not included.
    pub fn heap_bytes(&self) -> usize {
        self.jitter.heap_bytes()
            + self.fifo.capacity().get() * size_of::<f32>()
            + (self.scratch.len() + self.last.len()) * size_of::<f32>()
    }

    /// The leader instant at which RTP timestamp `ts` (extended) is to be played, once
    /// the stream's timing is known.
    fn presentation_of(&self, ts: u64) -> Option<LeaderInstant> {
        let a = self.anchor?;
        let dt = (i128::from(ts) - i128::from(a.ts)) * i128::from(NANOS_PER_SEC)
            / i128::from(self.clock_rate);
        Some(a.at + Nanos::from_nanos(dt.clamp(-(i64::MAX as i128), i64::MAX as i128) as i64))
    }

    /// When the next frame [`poll_audio`](Self::poll_audio) returns is to be played.
    pub fn head_presentation(&self) -> Option<LeaderInstant> {
        let write_ts = self.write_ts?;
        let head = write_ts.checked_sub(self.buffered_frames() as u64)?;
        self.presentation_of(head)
    }

    /// Takes one datagram that arrived at leader time `now`.
    pub fn handle_rtp(&mut self, datagram: &[u8], now: LeaderInstant) -> Outcome {
        let outcome = self.accept(datagram, now);
        if let Outcome::Rejected(reason) = outcome {
            self.stats.rejected.add(reason);
        }
        self.drain(now);
        outcome
    }

    fn accept(&mut self, datagram: &[u8], now: LeaderInstant) -> Outcome {
        let p = match parse_rtp(datagram, self.config.ntp_extension_id) {
            Ok(p) => p,
            Err(reason) => return Outcome::Rejected(reason),
        };
        if p.payload_type != self.config.payload_type {
            return Outcome::Rejected(RejectReason::WrongPayloadType);
        }
        if p.payload.is_empty() {
            return Outcome::Rejected(RejectReason::EmptyPayload);
        }
        if p.payload.len() > self.config.max_payload {
            return Outcome::Rejected(RejectReason::TooLarge);
        }
        match self.codec.frames_of(p.payload) {
            None | Some(0) => return Outcome::Rejected(RejectReason::MalformedPayload),
            Some(f) if f > self.max_frames => return Outcome::Rejected(RejectReason::TooLarge),
            Some(_) => {}
        }
        let mut relocked = false;
        if let Some(only) = self.config.ssrc
            && p.ssrc != only
        {
            return Outcome::Rejected(RejectReason::WrongSsrc);
        }
        match self.ssrc {
            None => self.ssrc = Some(p.ssrc),
            Some(current) if current == p.ssrc => {}
            Some(_) => {
                let silent = self
                    .last_arrival
                    .is_none_or(|t| now.since(t) >= self.config.relock_silence);
                if !silent && self.abandoned == Some(p.ssrc) {
                    // Two live senders: stay with the newer one rather than flip-flop.
                    return Outcome::Rejected(RejectReason::WrongSsrc);
                }
                let count = match self.candidate {
                    Some(c) if c.ssrc == p.ssrc && p.sequence == c.last_seq.wrapping_add(1) => {
                        c.count + 1
                    }
                    _ => 1,
                };
                self.candidate = Some(Candidate {
                    ssrc: p.ssrc,
                    count,
                    last_seq: p.sequence,
                });
                if !silent && count < self.config.relock_packets {
                    return Outcome::Rejected(RejectReason::WrongSsrc);
                }
                self.relock(p.ssrc);
                relocked = true;
            }
        }
        self.last_arrival = Some(now);
        self.stats.received += 1;
        let seq = self.seq_ext.extend(p.sequence);
        let ts = self.ts_ext.extend(p.timestamp);
        let presentation = self.timing(ts, p.ntp, now);
        if presentation < now {
            self.stats.late += 1;
            return Outcome::Late;
        }
        let meta = PacketMeta {
            seq,
            timestamp: ts,
            presentation: Some(presentation),
            marker: p.marker,
        };
        match self.jitter.insert(meta, p.payload) {
            Inserted::Stored {
                reordered,
                evicted,
                skipped,
            } => {
                self.stats.reordered += u64::from(reordered);
                self.stats.overflow += evicted as u64;
                self.stats.lost += skipped;
                if evicted > 0 || skipped > 0 {
                    // The FIFO's continuation point moved with the window.
                    self.gap_pos = 0;
                }
                if relocked {
                    Outcome::Relocked
                } else {
                    Outcome::Stored
                }
            }
            Inserted::Duplicate => {
                self.stats.duplicate += 1;
                Outcome::Duplicate
            }
            Inserted::Late => {
                self.stats.late += 1;
                Outcome::Late
            }
            Inserted::TooLarge => Outcome::Rejected(RejectReason::TooLarge),
        }
    }

    /// The presentation time of extended timestamp `ts`, learning the stream's timing from
    /// the packet's NTP extension, or failing that from what is known.
    fn timing(&mut self, ts: u64, ntp: Option<NtpTimestamp>, now: LeaderInstant) -> LeaderInstant {
        if let Some(ntp) = ntp {
            let at = ntp.to_instant();
            self.anchor = Some(Anchor { ts, at });
            return at;
        }
        if let Some(at) = self.presentation_of(ts) {
            return at;
        }
        let at = match self.config.media_clock_offset {
            Some(offset) => self.media_clock_time(ts, offset, now),
            None => now + self.config.latency,
        };
        self.anchor = Some(Anchor { ts, at });
        at
    }

    /// RFC 7273 direct media clock: RTP timestamp = offset + leader time × rate, modulo 2³².
    /// Of the instants that fit, the one nearest `now + latency`.
    fn media_clock_time(&self, ts: u64, offset: u32, now: LeaderInstant) -> LeaderInstant {
        let rate = i128::from(self.clock_rate);
        let ticks = i128::from((ts as u32).wrapping_sub(offset));
        let period = 1i128 << 32;
        let target =
            i128::from((now + self.config.latency).as_nanos()) * rate / i128::from(NANOS_PER_SEC);
        let k = (target - ticks + period / 2).div_euclid(period);
        let t = ticks + k * period;
        LeaderInstant::from_nanos((t * i128::from(NANOS_PER_SEC) / rate) as i64)
    }

    /// Takes an RTCP datagram (a compound packet with a sender report). For a stream
    /// without NTP header extensions, the report's NTP ↔ RTP pair becomes the timing anchor;
    /// this is right when the sender's NTP clock is the leader clock, as it is for a
    /// lockstep leader. Returns whether the report was used.
    pub fn handle_rtcp(&mut self, datagram: &[u8]) -> bool {
        let Ok(sr) = SenderReport::parse_compound(datagram) else {
            return false;
        };
        if self.ssrc != Some(sr.ssrc) {
            return false;
        }
        let Some(highest) = self.ts_ext.highest() else {
            return false;
        };
        let delta = i64::from(sr.rtp_timestamp.wrapping_sub(highest as u32) as i32);
        let Some(ts) = highest.checked_add_signed(delta) else {
            return false;
        };
        self.anchor = Some(Anchor {
            ts,
            at: sr.ntp.to_instant(),
        });
        true
    }

    fn relock(&mut self, ssrc: u32) {
        self.abandoned = self.ssrc;
        self.ssrc = Some(ssrc);
        self.candidate = None;
        self.jitter.clear();
        self.seq_ext.reset();
        self.ts_ext.reset();
        self.anchor = None;
        self.write_ts = None;
        self.fifo.clear();
        self.last_frames = 0;
        self.gap_pos = 0;
        self.fade_in_left = 0;
        self.stats.relocks += 1;
    }

    /// Decodes what is in order and conceals gaps that are due at `now`. [`handle_rtp`]
    /// calls it; call it yourself when time passes without packets.
    ///
    /// [`handle_rtp`]: Self::handle_rtp
    pub fn handle_timeout(&mut self, now: LeaderInstant) {
        self.drain(now);
    }

    fn drain(&mut self, now: LeaderInstant) {
        let max_conceal = frames_for(self.config.max_conceal, self.clock_rate) as u64;
        // Each turn pops a packet, conceals at least one frame, or stops; the bound is a
        // guard against a logic error, never reached in practice.
        for _ in 0..4 * self.jitter.capacity() + 1024 {
            let vacant = self.fifo.vacant_len() / self.channels;
            let (meta, gap_seq) = match self.jitter.front() {
                Front::Empty => {
                    self.conceal_tail(now, max_conceal);
                    return;
                }
                Front::Ready(meta, _) => (meta, None),
                Front::Gap { seq, next, .. } => (next, Some(seq)),
            };
            let Some(write_ts) = self.write_ts else {
                // The first packet of a stream: start when it is due, so that packets sent
                // before it but overtaken by it still make it in.
                let due = meta
                    .presentation
                    .is_none_or(|at| at <= now + self.config.conceal_lead);
                if !due || !self.fifo.is_empty() {
                    return;
                }
                if gap_seq.is_some() {
                    self.skip_to(meta.seq);
                }
                self.write_ts = Some(meta.timestamp);
                continue;
            };
            if meta.timestamp > write_ts {
                // Missing audio before `meta`: a lost packet or a timestamp jump.
                let missing = meta.timestamp - write_ts;
                if missing > max_conceal {
                    if !self.fifo.is_empty() {
                        return; // let the output drain, then restart
                    }
                    self.stats.restarts += 1;
                    if gap_seq.is_some() {
                        self.skip_to(meta.seq);
                    }
                    self.write_ts = Some(meta.timestamp);
                    self.gap_pos = 0;
                    self.last_frames = 0;
                    self.fade_in_left = self.fade_frames;
                    continue;
                }
                let due = self
                    .presentation_of(write_ts)
                    .is_none_or(|at| at <= now + self.config.conceal_lead);
                if !due || vacant == 0 {
                    return;
                }
                let wrote = self.conceal(missing as usize, vacant);
                self.write_ts = Some(write_ts + wrote as u64);
                if wrote as u64 == missing && gap_seq.is_some() {
                    self.skip_to(meta.seq);
                }
                continue;
            }
            if gap_seq.is_some() {
                // The packets after the gap overlap audio already written: the missing
                // ones would have too.
                self.skip_to(meta.seq);
                continue;
            }
            if !self.decode_front(write_ts, vacant) {
                return;
            }
        }
    }

    /// Nothing is buffered but the stream is running: conceal what falls due before the
    /// next packet can arrive, up to `max_conceal` frames in all. A packet that turns up
    /// later for that stretch is dropped as late.
    fn conceal_tail(&mut self, now: LeaderInstant, max_conceal: u64) {
        let (Some(mut write_ts), Some(a)) = (self.write_ts, self.anchor) else {
            return;
        };
        // The first timestamp not yet due.
        let horizon = now + self.config.conceal_lead;
        let ahead = i128::from(horizon.since(a.at).as_nanos()) * i128::from(self.clock_rate);
        let due_end = i128::from(a.ts) + ahead.div_euclid(i128::from(NANOS_PER_SEC)) + 1;
        let due_end = due_end.clamp(0, i128::from(u64::MAX)) as u64;
        while write_ts < due_end && (self.gap_pos as u64) < max_conceal {
            let vacant = self.fifo.vacant_len() / self.channels;
            let missing = (due_end - write_ts).min(max_conceal - self.gap_pos as u64);
            let wrote = self.conceal(missing as usize, vacant);
            if wrote == 0 {
                break;
            }
            // `conceal` counts a gap between packets; this is the stream running dry.
            self.stats.concealed_frames -= wrote as u64;
            self.stats.dry_frames += wrote as u64;
            write_ts += wrote as u64;
        }
        self.write_ts = Some(write_ts);
    }

    fn skip_to(&mut self, seq: u64) {
        let (evicted, skipped) = self.jitter.skip_to(seq);
        self.stats.overflow += evicted as u64;
        self.stats.lost += skipped;
        self.gap_pos = 0;
    }

    /// Decodes the packet at the front into the FIFO. Returns false if it must wait for
    /// room.
    fn decode_front(&mut self, write_ts: u64, vacant: usize) -> bool {
        let Front::Ready(meta, payload) = self.jitter.front() else {
            return false;
        };
        let Some(frames) = self.codec.frames_of(payload) else {
            self.jitter.pop();
            self.stats.rejected.add(RejectReason::MalformedPayload);
            return true;
        };
        let skip = (write_ts - meta.timestamp) as usize;
        if skip >= frames {
            // Entirely overlapped by audio already written.
            self.jitter.pop();
            self.stats.late += 1;
            return true;
        }
        if frames - skip > vacant {
            return false;
        }
        let samples = match self.codec.decode(payload, &mut self.scratch) {
            Ok(n) => n,
            Err(_) => {
                self.jitter.pop();
                self.stats.rejected.add(RejectReason::MalformedPayload);
                return true;
            }
        };
        self.jitter.pop();
        let got = (samples / self.channels).min(frames);
        let ch = self.channels;
        let block = &mut self.scratch[skip * ch..got * ch];
        if self.fade_in_left > 0 {
            let total = self.fade_frames;
            for frame in block.chunks_exact_mut(ch) {
                if self.fade_in_left == 0 {
                    break;
                }
                let g = fade_gain(total - self.fade_in_left, total);
                frame.iter_mut().for_each(|s| *s *= g);
                self.fade_in_left -= 1;
            }
        }
        self.fifo.push_slice(block);
        self.last[..got * ch].copy_from_slice(&self.scratch[..got * ch]);
        self.last_frames = got;
        self.gap_pos = 0;
        self.stats.decoded += 1;
        self.write_ts = Some(write_ts + (got - skip) as u64);
        true
    }

    /// Conceals up to `missing` frames before packet `next` (no more than `vacant`).
    /// Returns frames written to the FIFO.
    fn conceal(&mut self, missing: usize, vacant: usize) -> usize {
        let ch = self.channels;
        let next_frames = match self.jitter.front() {
            Front::Ready(_, p) | Front::Gap { payload: p, .. } => {
                self.codec.frames_of(p).unwrap_or(0)
            }
            Front::Empty => 0,
        };
        // Opus: PLC up to the last packet's worth, then FEC from the next packet.
        let (n, use_fec) = if missing <= next_frames {
            (missing, true)
        } else {
            ((missing - next_frames).min(self.max_frames), false)
        };
        let n = n.min(self.max_frames).min(vacant);
        if n == 0 {
            return 0;
        }
        let next_payload = match self.jitter.front() {
            Front::Ready(_, p) | Front::Gap { payload: p, .. } if use_fec && n == missing => {
                Some(p)
            }
            _ => None,
        };
        let out = &mut self.scratch[..n * ch];
        let rebuilt = self.codec.conceal(next_payload, n, out).unwrap_or(0);
        if rebuilt < n * ch {
            // PCM (or a codec that failed): play the last packet backwards under a fade to
            // zero, then silence, and fade the audio after the gap back in.
            out.fill(0.0);
            let fade = self.fade_frames.min(self.last_frames);
            for i in 0..n {
                let k = self.gap_pos + i;
                if k >= fade {
                    break;
                }
                let src = self.last_frames - 1 - k;
                let g = 1.0 - fade_gain(k, fade);
                for c in 0..ch {
                    out[i * ch + c] = self.last[src * ch + c] * g;
                }
            }
            self.fade_in_left = self.fade_frames;
        }
        self.fifo.push_slice(out);
        self.gap_pos += n;
        self.stats.concealed_frames += n as u64;
        n
    }

    /// Pops up to `out.len() / channels` frames of interleaved samples into `out`. Returns
    /// the block's presentation time and length, or `None` if nothing is buffered.
    #[must_use]
    pub fn poll_audio(&mut self, out: &mut [f32]) -> Option<Block> {
        let presentation = self.head_presentation()?;
        let want = out.len() / self.channels * self.channels;
        let got = self.fifo.pop_slice(&mut out[..want]);
        if got == 0 {
            return None;
        }
        Some(Block {
            presentation,
            frames: got / self.channels,
        })
    }

    /// Drops up to `frames` frames from the head of the FIFO; returns how many it dropped.
    pub fn discard(&mut self, frames: usize) -> usize {
        self.fifo.skip(frames * self.channels) / self.channels
    }
}

/// Frames of `span` at `rate` Hz, rounded down.
fn frames_for(span: Nanos, rate: u32) -> usize {
    (i128::from(span.as_nanos().max(0)) * i128::from(rate) / i128::from(NANOS_PER_SEC)) as usize
}

/// Raised-cosine ramp from 0 (k = 0) towards 1 (k = len): the fraction of a fade done
/// after `k` of `len` frames.
fn fade_gain(k: usize, len: usize) -> f32 {
    if len == 0 {
        return 1.0;
    }
    let x = (k + 1) as f32 / (len + 1) as f32;
    0.5 - 0.5 * (std::f32::consts::PI * x).cos()
}
