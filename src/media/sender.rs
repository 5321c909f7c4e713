//! The RTP sender: interleaved PCM stamped with leader presentation times goes in, RTP packets
//! and RTCP sender reports come out.
//!
//! [`RtpSender`] is sans-IO and follows the crate's `handle_*`/`poll_*` rule.
//! [`RtpSender::handle_pcm`] takes PCM together with the leader instant at which its first
//! frame is to be played, cuts it into packets of
//! [`frames_per_packet`](RtpSender::frames_per_packet) frames and encodes each packet it
//! completes into a queue; [`RtpSender::poll_transmit`] hands the queued packets out, oldest
//! first, as byte slices, and the caller puts each on a socket.
//! [`RtpSender::handle_flush`] sends the partial packet still buffered (at the end of the
//! input, say). [`RtpSender::poll_rtcp`] says when an RTCP sender report is due and writes
//! it. The call order and the drain rule are on the [type](RtpSender).
//!
//! The queue is a ring of packet buffers that are reused: it starts with room for two
//! packets and grows only when more packets are waiting at once than ever before, up to
//! [`queue_capacity`](RtpSender::queue_capacity) (one second of audio and one short packet).
//! So once warm, handling, flushing and polling allocate nothing.
//!
//! # Packets
//!
//! Each packet is a 12-byte RTP header (RFC 3550 §5.1), one RFC 8285 one-byte header
//! extension block carrying the packet's presentation time as a 64-bit NTP timestamp
//! (RFC 6051 §3.3), then the codec payload. The header is always [`HEADER_LEN`] bytes:
//!
//! ```text
//! offset  +--------+--------+--------+--------+
//!      0  |  0x90  |  M|PT  |   sequence no.  |  V=2, P=0, X=1, CC=0; marker, payload type
//!      4  |          RTP timestamp            |
//!      8  |              SSRC                 |
//!     12  |  0xBE  |  0xDE  |  0x00  |  0x03  |  one-byte profile; 3 words of elements
//!     16  |  id|7  |  NTP seconds ...         |  element id, length 8 (coded as 7)
//!     20  |  ...   |  NTP fraction ...        |
//!     24  |  ...   |  0x00  |  0x00  |  0x00  |  padding to a word boundary
//!     28  |  payload (L16/L24 samples or one Opus packet) ...
//!         +--------+--------+--------+--------+
//! ```
//!
//! The NTP value sits at [`NTP_OFFSET`] and the payload at [`HEADER_LEN`]. The header is
//! written by the `rtp` crate's `Header::marshal_to` from one `Header` kept in the sender whose
//! extension holds an 8-byte placeholder; the real time is then written over the placeholder,
//! so no packet allocates.
//!
//! # Time
//!
//! The RTP timestamp follows the RFC 7273 `mediaclk:direct` rule: the media clock is the
//! leader clock counted in RTP ticks plus a fixed offset,
//! `media_clock_offset + floor(t_ns · clock_rate / 10⁹)` modulo 2³². The first packet's
//! timestamp comes from that formula applied to its presentation time; after that, while the
//! input stays contiguous, each packet's timestamp is the previous one plus the ticks of the
//! previous packet's frames, and its presentation time is the instant of the input that began
//! the run plus the frames sent since, converted to nanoseconds in one step (so rounding
//! never accumulates).
//!
//! Input is contiguous when its instant is within half a sample period of where the previous
//! input ended. Otherwise it is a discontinuity: the partial packet still buffered is queued
//! first, the timestamp is computed afresh from the formula, the next packet carries the
//! marker bit (as the very first one does), and [`SenderStats::resyncs`] counts it.
//!
//! # Packet size
//!
//! A packet holds `sample_rate · ptime_ms / 1000` frames, rounded down. At 48 kHz and 96 kHz
//! that is exact; at 44.1 kHz a "1 ms" packet holds 44 frames, a 5 ms one 220 and a 20 ms
//! one 882. Timestamps and presentation times follow the frame count, so they stay exact
//! whatever the packet duration works out to.

use core::fmt;

use rtp::header::{EXTENSION_PROFILE_ONE_BYTE, Extension, Header};
use thiserror::Error;
use webrtc_util::Marshal;

use crate::media::codec::{AudioFormat, Codec, CodecError, CodecKind, new_codec};
use crate::media::ntp::NtpTimestamp;
use crate::media::rtcp::{MAX_CNAME_LEN, SenderReport};
use crate::time::{LeaderInstant, NANOS_PER_SEC, Nanos};

/// Length in bytes of every packet's header: the 12-byte RTP header, the 4-byte extension
/// header and 12 bytes of extension elements. The payload starts here.
pub const HEADER_LEN: usize = 28;

/// Offset in bytes of the 8-byte NTP presentation time in every packet.
pub const NTP_OFFSET: usize = 17;

/// Packet durations in milliseconds allowed for L16 and L24.
pub const PCM_PTIMES_MS: [u32; 5] = [1, 2, 5, 10, 20];

/// Packet durations in milliseconds allowed for Opus.
pub const OPUS_PTIMES_MS: [u32; 2] = [10, 20];

/// How often [`RtpSender::poll_rtcp`] produces a sender report.
pub const RTCP_INTERVAL: Nanos = Nanos::from_secs(1);

/// Packet buffers the queue holds from the start: enough for one packet per input plus the
/// short packet of a discontinuity, the steady state of a caller that drains after each
/// input.
const INITIAL_QUEUE_SLOTS: usize = 2;

/// What the extension element carries before the real time is written over it. Its bytes
/// are what [`RtpSender::new`] searches for to find the element's offset.
static NTP_PLACEHOLDER: [u8; 8] = *b"ntp\x00time";

/// How an [`RtpSender`] packs and stamps a stream. [`SenderConfig::new`] fills in defaults;
/// change fields before passing it to [`RtpSender::new`], which checks them.
///
/// RFC 3550 asks for a random SSRC, initial sequence number and timestamp offset; this crate
/// has no random source of its own, so the caller picks them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderConfig {
    /// The codec.
    pub codec: CodecKind,
    /// The PCM format pushed in.
    pub format: AudioFormat,
    /// RTP payload type, a dynamic one (96 to 127). Default 96.
    pub payload_type: u8,
    /// Packet duration in milliseconds: 1, 2, 5, 10 or 20 for L16 and L24, 10 or 20 for
    /// Opus. `None` (the default) means 5 for L16 and L24 and 20 for Opus.
    pub ptime_ms: Option<u32>,
    /// The synchronization source identifier.
    pub ssrc: u32,
    /// The sequence number of the first packet. Default 0.
    pub initial_sequence: u16,
    /// The RTP timestamp of leader time zero: timestamps are this plus the leader time in
    /// RTP clock ticks (RFC 7273 `mediaclk:direct`). Default 0.
    pub media_clock_offset: u32,
    /// The RFC 8285 one-byte extension id (1 to 14) of the RFC 6051 NTP presentation time.
    /// Default 1.
    pub ntp_extension_id: u8,
    /// The RTCP SDES canonical name, 1 to 255 bytes. Default `"lockstep"`.
    pub cname: String,
}

impl SenderConfig {
    /// A configuration for `codec` over `format` with source `ssrc` and the defaults for the
    /// rest: payload type 96, the codec's default packet duration, sequence and media clock
    /// offset 0, extension id 1, CNAME `"lockstep"`.
    pub fn new(codec: CodecKind, format: AudioFormat, ssrc: u32) -> SenderConfig {
        SenderConfig {
            codec,
            format,
            payload_type: 96,
            ptime_ms: None,
            ssrc,
            initial_sequence: 0,
            media_clock_offset: 0,
            ntp_extension_id: 1,
            cname: String::from("lockstep"),
        }
    }

    /// The packet duration this configuration gives: [`ptime_ms`](Self::ptime_ms) if set,
    /// otherwise the codec's default (5 ms for L16 and L24, 20 ms for Opus).
    pub fn effective_ptime_ms(&self) -> u32 {
        self.ptime_ms.unwrap_or(match self.codec {
            CodecKind::Opus => 20,
            CodecKind::L16 | CodecKind::L24 => 5,
        })
    }

    /// Checks every field, naming the first one that is wrong.
    fn validate(&self) -> Result<(), SenderError> {
        let ptime = self.effective_ptime_ms();
        match self.codec {
            CodecKind::Opus if !OPUS_PTIMES_MS.contains(&ptime) => {
                return Err(invalid("ptime_ms", "Opus packets must be 10 or 20 ms"));
            }
            CodecKind::L16 | CodecKind::L24 if !PCM_PTIMES_MS.contains(&ptime) => {
                return Err(invalid(
                    "ptime_ms",
                    "L16/L24 packets must be 1, 2, 5, 10 or 20 ms",
                ));
            }
            _ => {}
        }
        if !(96..=127).contains(&self.payload_type) {
            return Err(invalid(
                "payload_type",
                "must be a dynamic payload type, 96 to 127",
            ));
        }
        if !(1..=14).contains(&self.ntp_extension_id) {
            return Err(invalid(
                "ntp_extension_id",
                "an RFC 8285 one-byte extension id must be 1 to 14",
            ));
        }
        if self.cname.is_empty() {
            return Err(invalid("cname", "must not be empty"));
        }
        if self.cname.len() > MAX_CNAME_LEN {
            return Err(invalid("cname", "must be at most 255 bytes"));
        }
        Ok(())
    }
}

fn invalid(field: &'static str, reason: &'static str) -> SenderError {
    SenderError::InvalidConfig { field, reason }
}

/// Why a sender could not be made or could not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SenderError {
    /// A [`SenderConfig`] field (or, for [`RtpSender::with_codec`], the codec given) is not
    /// acceptable.
    #[error("invalid sender config field `{field}`: {reason}")]
    InvalidConfig {
        /// The field's name, as spelt in [`SenderConfig`] (`"codec"` or `"format"` when the
        /// codec passed to [`RtpSender::with_codec`] does not match the configuration).
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The codec could not be built or failed to encode.
    #[error("codec error: {0}")]
    Codec(#[from] CodecError),
    /// The PCM given is not a whole number of frames.
    #[error("{samples} interleaved samples is not a whole number of {channels}-channel frames")]
    RaggedInput {
        /// Samples given.
        samples: usize,
        /// Channels per frame.
        channels: u16,
    },
    /// The packet queue has no room for the packets this input would complete: drain
    /// [`RtpSender::poll_transmit`] first, and give at most one second of audio at a time.
    #[error(
        "the sender's packet queue holds {queued} of {capacity} packets; \
         this input would add {needed}"
    )]
    QueueFull {
        /// Packets queued and not yet polled.
        queued: usize,
        /// Packets the input would complete (a discontinuity's short packet included).
        needed: usize,
        /// The most packets the queue holds ([`RtpSender::queue_capacity`]).
        capacity: usize,
    },
    /// The `rtp` crate did not marshal the header as this module expects (at construction)
    /// or refused to marshal it. Not expected to happen with the pinned `rtp` version.
    #[error("the rtp crate did not marshal the RTP header as expected")]
    HeaderMarshal,
}

/// Running totals of what an [`RtpSender`] has sent. A packet counts as sent once it is
/// encoded and queued for [`RtpSender::poll_transmit`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SenderStats {
    /// RTP packets sent.
    pub packets: u64,
    /// Payload bytes sent, headers excluded, as RFC 3550 counts octets for sender reports.
    pub octets: u64,
    /// Discontinuities seen: inputs whose time did not follow on from the previous input.
    pub resyncs: u64,
}

/// Turns PCM with leader presentation times into RTP packets and RTCP sender reports.
///
/// See the [module docs](self) for the packet layout and the timing rules.
///
/// # Call order
///
/// - Give the audio to [`handle_pcm`](Self::handle_pcm), in order, each piece with the
///   leader instant of its first frame; at the end of the input (or before a pause the
///   receivers should hear up to its last frame), call [`handle_flush`](Self::handle_flush).
/// - After each of them, call [`poll_transmit`](Self::poll_transmit) until `None` and send
///   each packet it gives, in that order.
/// - Call [`poll_rtcp`](Self::poll_rtcp) now and then (at least once a second) and send
///   what it writes to the RTCP port.
///
/// # The drain rule
///
/// Packets not polled before the next `handle_*` stay queued, in order, behind the earlier
/// ones; nothing is dropped or overwritten. The queue holds at most
/// [`queue_capacity`](Self::queue_capacity) packets: one second of full packets plus one
/// short one, so one second of audio given to a drained sender always fits. An input that
/// would complete more packets than there is room for fails with
/// [`SenderError::QueueFull`] and consumes nothing. The packet buffers therefore take at
/// most `queue_capacity() × max_packet_len()` bytes, and only as many are allocated as the
/// most packets ever queued at once (two from the start).
pub struct RtpSender {
    config: SenderConfig,
    codec: Box<dyn Codec>,
    channels: usize,
    sample_rate: u32,
    clock_rate: u32,
    ptime_ms: u32,
    frames_per_packet: usize,
    /// Pads a partial packet with silence on flush instead of sending it short.
    pad_on_flush: bool,
    /// The header template: sequence, timestamp and marker change per packet.
    header: Header,
    /// [`HEADER_LEN`] plus the largest payload.
    max_packet_len: usize,
    /// Packets encoded and not yet polled.
    queue: PacketQueue,
    /// One packet's worth of interleaved samples.
    pcm: Vec<f32>,
    /// Frames in `pcm` not yet sent.
    filled: usize,
    next_sequence: u16,
    marker_pending: bool,
    /// Whether a segment of contiguous input has begun (false until the first push).
    started: bool,
    /// Leader time of the current segment's first frame, in ns.
    seg_start_ns: i64,
    /// RTP timestamp of the current segment's first frame.
    seg_timestamp: u32,
    /// Frames of the current segment already sent in packets.
    seg_sent: u64,
    next_sr: Option<LeaderInstant>,
    stats: SenderStats,
}

impl fmt::Debug for RtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtpSender")
            .field("config", &self.config)
            .field("frames_per_packet", &self.frames_per_packet)
            .field("buffered_frames", &self.filled)
            .field("queued_packets", &self.queue.len)
            .field("next_sequence", &self.next_sequence)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl RtpSender {
    /// A sender for `config`, building its codec with [`new_codec`]. Fails if a field is out
    /// of range ([`SenderError::InvalidConfig`] names it) or the codec is unavailable.
    pub fn new(config: SenderConfig) -> Result<RtpSender, SenderError> {
        config.validate()?;
        let codec = new_codec(config.codec, config.format)?;
        RtpSender::with_codec(config, codec)
    }

    /// A sender for `config` that encodes with `codec`, for codec settings [`new_codec`] does
    /// not offer (an Opus bitrate, say). The codec must be of kind `config.codec` and work on
    /// `config.format`; otherwise the error names `"codec"` or `"format"`.
    pub fn with_codec(
        config: SenderConfig,
        codec: Box<dyn Codec>,
    ) -> Result<RtpSender, SenderError> {
        config.validate()?;
        if codec.kind() != config.codec {
            return Err(invalid(
                "codec",
                "the codec given is not of the configured kind",
            ));
        }
        if codec.format() != config.format {
            return Err(invalid(
                "format",
                "the codec given works on another format than the configured one",
            ));
        }
        let clock_rate = codec.rtp_clock_rate();
        if clock_rate == 0 {
            return Err(invalid("codec", "the codec's RTP clock rate is zero"));
        }
        let sample_rate = config.format.sample_rate();
        let channels = usize::from(config.format.channels());
        let ptime_ms = config.effective_ptime_ms();
        // Supported rates and durations make this at least 44 frames.
        let frames_per_packet = (u64::from(sample_rate) * u64::from(ptime_ms) / 1000) as usize;

        let header = Header {
            version: 2,
            padding: false,
            extension: true,
            marker: false,
            payload_type: config.payload_type,
            sequence_number: config.initial_sequence,
            timestamp: 0,
            ssrc: config.ssrc,
            csrc: Vec::new(),
            extension_profile: EXTENSION_PROFILE_ONE_BYTE,
            extensions: vec![Extension {
                id: config.ntp_extension_id,
                payload: (&NTP_PLACEHOLDER[..]).into(),
            }],
            extensions_padding: 0,
        };
        let max_payload = codec.payload_len(frames_per_packet);
        let max_packet_len = HEADER_LEN.saturating_add(max_payload);
        let mut queue = PacketQueue::new(
            (sample_rate as usize).div_ceil(frames_per_packet) + 1,
            max_packet_len,
        );
        check_header_layout(&header, config.ntp_extension_id, queue.next_slot())?;

        Ok(RtpSender {
            next_sequence: config.initial_sequence,
            pad_on_flush: config.codec == CodecKind::Opus,
            config,
            codec,
            channels,
            sample_rate,
            clock_rate,
            ptime_ms,
            frames_per_packet,
            header,
            max_packet_len,
            queue,
            pcm: vec![0.0; frames_per_packet * channels],
            filled: 0,
            marker_pending: true,
            started: false,
            seg_start_ns: 0,
            seg_timestamp: 0,
            seg_sent: 0,
            next_sr: None,
            stats: SenderStats::default(),
        })
    }

    /// Takes interleaved PCM (a whole number of frames) whose first frame is to be played at
    /// leader time `at`, and queues every packet it completes for
    /// [`poll_transmit`](Self::poll_transmit). Returns how many packets it queued.
    ///
    /// If `at` is not within half a sample period of where the previous input ended, the
    /// input is a discontinuity: the partial packet still buffered is queued first (as
    /// [`handle_flush`](Self::handle_flush) does, and counted in the return value), and the
    /// stream restarts at `at` with a timestamp from the media clock and the marker bit set.
    /// Frames that do not fill a packet stay buffered for the next input. An empty input does
    /// nothing.
    ///
    /// Fails, consuming and queuing nothing, if `pcm` is not a whole number of frames
    /// ([`SenderError::RaggedInput`]) or the queue has no room for the packets it would
    /// complete ([`SenderError::QueueFull`]). If the codec fails, that packet's frames and
    /// the rest of `pcm` are dropped (the timeline moves on past the packet's frames, so the
    /// next input, if it follows on from the end of `pcm`, is a discontinuity), the packets
    /// completed before it stay queued, and the error is returned. Allocates nothing unless
    /// the queue must grow (see the [drain rule](Self#the-drain-rule)).
    pub fn handle_pcm(&mut self, pcm: &[f32], at: LeaderInstant) -> Result<usize, SenderError> {
        if !pcm.len().is_multiple_of(self.channels) {
            return Err(SenderError::RaggedInput {
                samples: pcm.len(),
                channels: self.config.format.channels(),
            });
        }
        if pcm.is_empty() {
            return Ok(0);
        }
        let discontinuity = self.started && !self.follows_on(at);
        let frames = pcm.len() / self.channels;
        let needed = if discontinuity {
            usize::from(self.filled > 0) + frames / self.frames_per_packet
        } else {
            (self.filled + frames) / self.frames_per_packet
        };
        if needed > self.queue.room() {
            return Err(SenderError::QueueFull {
                queued: self.queue.len,
                needed,
                capacity: self.queue.capacity,
            });
        }
        let mut queued = 0;
        if !self.started {
            self.start_segment(at);
        } else if discontinuity {
            queued += self.flush_partial()?;
            self.start_segment(at);
            self.stats.resyncs += 1;
        }
        let mut rest = pcm;
        while !rest.is_empty() {
            let from = self.filled * self.channels;
            let take = (self.pcm.len() - from).min(rest.len());
            self.pcm[from..from + take].copy_from_slice(&rest[..take]);
            self.filled += take / self.channels;
            rest = &rest[take..];
            if self.filled == self.frames_per_packet {
                self.send()?;
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Queues the partial packet still buffered, if any, and returns how many packets it
    /// queued (0 or 1). L16 and L24 send a shorter packet; Opus pads the frame out with
    /// silence, so the stream's timeline moves on by a whole packet and input that follows
    /// on from the unpadded end counts as a discontinuity. The stream otherwise continues:
    /// the next input at the expected time carries on the timestamps.
    ///
    /// Fails with [`SenderError::QueueFull`], keeping the frames buffered, if the queue is
    /// full; if the codec fails, the frames are dropped and the error returned. Allocates
    /// nothing unless the queue must grow.
    pub fn handle_flush(&mut self) -> Result<usize, SenderError> {
        if self.filled > 0 && self.queue.room() == 0 {
            return Err(SenderError::QueueFull {
                queued: self.queue.len,
                needed: 1,
                capacity: self.queue.capacity,
            });
        }
        self.flush_partial()
    }

    /// The oldest packet queued and not yet polled, or `None` when the queue is empty. Call
    /// after every `handle_*` until `None` and send each packet as it comes. The slice is
    /// valid until the next call on the sender. Allocates nothing.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<&[u8]> {
        self.queue.pop()
    }

    /// If a sender report is due at leader time `now`, writes the compound RTCP packet (sender
    /// report and SDES CNAME) into `out` and returns its length; otherwise returns `None`.
    ///
    /// The first call always produces one; after that one is due every [`RTCP_INTERVAL`],
    /// on a fixed grid from the first (if polling falls more than an interval behind, the
    /// grid restarts at `now` rather than sending a burst). The report maps `now` to
    /// [`rtp_timestamp_at`](Self::rtp_timestamp_at)`(now)` and carries the packet and
    /// payload byte counts so far. `out` should hold
    /// [`MAX_COMPOUND_LEN`](crate::media::rtcp::MAX_COMPOUND_LEN) bytes; if it is too small for
    /// this CNAME, nothing is written, `None` is returned and the report stays due.
    /// Allocates nothing.
    #[must_use]
    pub fn poll_rtcp(&mut self, now: LeaderInstant, out: &mut [u8]) -> Option<usize> {
        if self.next_sr.is_some_and(|due| now < due) {
            return None;
        }
        let report = SenderReport {
            ssrc: self.config.ssrc,
            ntp: NtpTimestamp::from_instant(now),
            rtp_timestamp: self.rtp_timestamp_at(now),
            packet_count: self.stats.packets as u32,
            octet_count: self.stats.octets as u32,
        };
        let len = report.write_compound(&self.config.cname, out).ok()?;
        let next = match self.next_sr {
            Some(due) if due + RTCP_INTERVAL > now => due + RTCP_INTERVAL,
            _ => now + RTCP_INTERVAL,
        };
        self.next_sr = Some(next);
        Some(len)
    }

    /// The RTP timestamp that corresponds to leader time `now`: extrapolated at the clock
    /// rate, rounded to the nearest tick, from the timestamp and presentation time of the
    /// current run of contiguous input (the mapping the packets carry); before any input,
    /// the media clock formula `media_clock_offset + floor(now · clock_rate / 10⁹)`.
    pub fn rtp_timestamp_at(&self, now: LeaderInstant) -> u32 {
        if !self.started {
            return self.media_clock(now.as_nanos());
        }
        let span = i128::from(now.as_nanos()) - i128::from(self.seg_start_ns);
        let nanos = i128::from(NANOS_PER_SEC);
        let ticks = (2 * span * i128::from(self.clock_rate) + nanos).div_euclid(2 * nanos);
        // Truncation is the modulo 2^32 of RTP timestamps.
        self.seg_timestamp.wrapping_add(ticks as u32)
    }

    /// The packet duration in milliseconds (nominal; see [`frames_per_packet`](Self::frames_per_packet)).
    pub fn ptime_ms(&self) -> u32 {
        self.ptime_ms
    }

    /// Frames in each full packet: `sample_rate · ptime_ms / 1000`, rounded down.
    pub fn frames_per_packet(&self) -> usize {
        self.frames_per_packet
    }

    /// The synchronization source identifier.
    pub fn ssrc(&self) -> u32 {
        self.config.ssrc
    }

    /// The RTP payload type.
    pub fn payload_type(&self) -> u8 {
        self.config.payload_type
    }

    /// The RTP clock rate in Hz.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// Frames buffered towards the next packet.
    pub fn buffered_frames(&self) -> usize {
        self.filled
    }

    /// Packets queued and not yet polled with [`poll_transmit`](Self::poll_transmit).
    pub fn queued_packets(&self) -> usize {
        self.queue.len
    }

    /// The most packets the queue holds: the full packets of one second of audio, rounded
    /// up, plus one for the short packet of a discontinuity.
    pub fn queue_capacity(&self) -> usize {
        self.queue.capacity
    }

    /// The configuration the sender was made with.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// Totals sent so far.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// The longest packet this sender produces, in bytes: [`HEADER_LEN`] plus the payload
    /// of a full packet.
    pub fn max_packet_len(&self) -> usize {
        self.max_packet_len
    }

    /// `media_clock_offset + floor(ns · clock_rate / 10⁹)`, modulo 2³².
    fn media_clock(&self, ns: i64) -> u32 {
        let ticks = (i128::from(ns) * i128::from(self.clock_rate)).div_euclid(1_000_000_000);
        // Truncating the i128 to u32 takes it modulo 2^32, negative values included.
        (i128::from(self.config.media_clock_offset) + ticks) as u32
    }

    /// Starts a run of contiguous input whose first frame plays at `at`.
    fn start_segment(&mut self, at: LeaderInstant) {
        self.started = true;
        self.seg_start_ns = at.as_nanos();
        self.seg_timestamp = self.media_clock(at.as_nanos());
        self.seg_sent = 0;
        self.marker_pending = true;
    }

    /// Whether input starting at `at` follows on from the frames already taken, to within
    /// half a sample period.
    fn follows_on(&self, at: LeaderInstant) -> bool {
        let frames = i128::from(self.seg_sent) + self.filled as i128;
        let rate = i128::from(self.sample_rate);
        let span = i128::from(at.as_nanos()) - i128::from(self.seg_start_ns);
        // |span - frames · 10⁹ / rate| ≤ 10⁹ / (2 · rate), scaled by 2 · rate to stay exact.
        (2 * rate * span - 2 * frames * i128::from(NANOS_PER_SEC)).abs()
            <= i128::from(NANOS_PER_SEC)
    }

    /// Leader time, in ns, of the frame `frames` frames into the current segment.
    fn segment_time_ns(&self, frames: u64) -> i64 {
        let rate = i128::from(self.sample_rate);
        let offset =
            (i128::from(frames) * 2 * i128::from(NANOS_PER_SEC) + rate).div_euclid(2 * rate);
        let ns = i128::from(self.seg_start_ns) + offset;
        ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Queues the partial packet still buffered, if any (the caller made sure there is room),
    /// padded to a whole packet for Opus. Returns how many packets it queued.
    fn flush_partial(&mut self) -> Result<usize, SenderError> {
        if self.filled == 0 {
            return Ok(0);
        }
        if self.pad_on_flush {
            self.pcm[self.filled * self.channels..].fill(0.0);
            self.filled = self.frames_per_packet;
        }
        self.send()?;
        Ok(1)
    }

    /// Encodes the buffered frames as one packet at the tail of the queue (the caller made
    /// sure there is room).
    fn send(&mut self) -> Result<(), SenderError> {
        let frames = self.filled;
        let ticks =
            u128::from(self.seg_sent) * u128::from(self.clock_rate) / u128::from(self.sample_rate);
        let timestamp = self.seg_timestamp.wrapping_add(ticks as u32);
        let presentation = LeaderInstant::from_nanos(self.segment_time_ns(self.seg_sent));
        // These frames are used up whatever happens below.
        self.seg_sent += frames as u64;
        self.filled = 0;

        self.header.sequence_number = self.next_sequence;
        self.header.timestamp = timestamp;
        self.header.marker = self.marker_pending;
        let packet = self.queue.next_slot();
        let written = self
            .header
            .marshal_to(packet)
            .map_err(|_| SenderError::HeaderMarshal)?;
        if written != HEADER_LEN {
            return Err(SenderError::HeaderMarshal);
        }
        packet[NTP_OFFSET..NTP_OFFSET + 8]
            .copy_from_slice(&NtpTimestamp::from_instant(presentation).to_be_bytes());
        let payload = self.codec.encode(
            &self.pcm[..frames * self.channels],
            &mut packet[HEADER_LEN..],
        )?;
        self.queue.commit(HEADER_LEN + payload);

        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.marker_pending = false;
        self.stats.packets += 1;
        self.stats.octets += payload as u64;
        Ok(())
    }
}

/// The packets encoded and not yet polled, oldest first: a ring of reusable buffers, each
/// as long as the longest packet, that grows (never shrinks) up to `capacity` buffers.
struct PacketQueue {
    /// The buffers and the length of the packet each holds. The queued packets are
    /// `slots[head]`, `slots[head + 1]`, ..., `len` of them, wrapping round at the end.
    slots: Vec<(Box<[u8]>, usize)>,
    head: usize,
    len: usize,
    capacity: usize,
    slot_len: usize,
}

impl PacketQueue {
    /// An empty queue of at most `capacity` packets of up to `slot_len` bytes, with
    /// [`INITIAL_QUEUE_SLOTS`] buffers allocated.
    fn new(capacity: usize, slot_len: usize) -> PacketQueue {
        let mut slots = Vec::with_capacity(capacity);
        for _ in 0..INITIAL_QUEUE_SLOTS.min(capacity) {
            slots.push((vec![0u8; slot_len].into_boxed_slice(), 0));
        }
        PacketQueue {
            slots,
            head: 0,
            len: 0,
            capacity,
            slot_len,
        }
    }

    /// How many more packets fit.
    fn room(&self) -> usize {
        self.capacity - self.len
    }

    /// The buffer the next packet goes into, after the last one queued; a new buffer if
    /// every one holds a queued packet. It joins the queue on [`commit`](Self::commit).
    fn next_slot(&mut self) -> &mut [u8] {
        if self.len == self.slots.len() {
            // Every buffer is queued, so the tail is just before `head`: the new buffer goes
            // there and the queue's order is kept. `slots` was reserved for `capacity` in
            // `new`, so only the buffer itself is allocated.
            let fresh = (vec![0u8; self.slot_len].into_boxed_slice(), 0);
            self.slots.insert(self.head, fresh);
            if self.len > 0 {
                self.head += 1;
            }
        }
        let tail = (self.head + self.len) % self.slots.len();
        &mut self.slots[tail].0
    }

    /// Queues the packet written into [`next_slot`](Self::next_slot), `len` bytes long.
    fn commit(&mut self, len: usize) {
        let tail = (self.head + self.len) % self.slots.len();
        self.slots[tail].1 = len;
        self.len += 1;
    }

    /// Takes the oldest packet off the queue.
    fn pop(&mut self) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let i = self.head;
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        let (bytes, len) = &self.slots[i];
        bytes.get(..*len)
    }
}

/// Marshals `header` once into `buf` and checks the layout the sender relies on: a
/// [`HEADER_LEN`]-byte header whose extension block is the one-byte profile with three words,
/// one element of id `id` and length 8 whose value sits at [`NTP_OFFSET`], then zero padding.
fn check_header_layout(header: &Header, id: u8, buf: &mut [u8]) -> Result<(), SenderError> {
    let written = header
        .marshal_to(buf)
        .map_err(|_| SenderError::HeaderMarshal)?;
    let found = buf[..written.min(buf.len())]
        .windows(NTP_PLACEHOLDER.len())
        .position(|w| w == NTP_PLACEHOLDER);
    let layout_ok = written == HEADER_LEN
        && found == Some(NTP_OFFSET)
        && buf[12..16] == [0xBE, 0xDE, 0x00, 0x03]
        && buf[16] == (id << 4) | 7
        && buf[NTP_OFFSET + 8..HEADER_LEN] == [0, 0, 0];
    if layout_ok {
        Ok(())
    } else {
        Err(SenderError::HeaderMarshal)
    }
}
