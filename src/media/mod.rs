//! The media path: how audio travels from the leader's source to each follower's output.
//!
//! For now this is the [`codec`](crate::media::codec) layer: a
//! [`Codec`](crate::media::Codec) turns interleaved `f32` PCM frames into the payload of one
//! RTP packet and back, into buffers the caller owns, allocating nothing.
//! [`L16`](crate::media::L16) and [`L24`](crate::media::L24) are linear PCM (RFC 3551,
//! RFC 3190/AES67); Opus is named in [`CodecKind`](crate::media::CodecKind) and arrives later
//! behind the `opus` feature. Like the rest of the core it is sans-IO: bytes in, bytes out,
//! no sockets and no clocks.

pub mod codec;
/// Wrap-around extension of RTP sequence numbers and timestamps to monotonic 64-bit values.
pub mod extend;
/// The 64-bit NTP timestamp format (RFC 5905) used by RTCP sender reports and RFC 6051.
pub mod ntp;

pub use codec::{
    AudioFormat, Codec, CodecError, CodecKind, L16, L24, MAX_CHANNELS, SUPPORTED_SAMPLE_RATES,
    new_codec,
};
pub use extend::{EXTENDED_BASE, SequenceExtender, TimestampExtender};
pub use ntp::{NTP_UNIX_OFFSET_SECS, NtpTimestamp};
