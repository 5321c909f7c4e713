//! The media path: how audio travels from the leader's source to each follower's output.
//!
//! On the leader, an [`RtpSender`] takes interleaved `f32`
//! PCM with the leader-clock instant its first frame is to be played
//! ([`handle_pcm`](RtpSender::handle_pcm)), encodes it with a
//! [`Codec`] and queues RTP packets that carry that instant in an
//! RFC 6051 header extension ([`poll_transmit`](RtpSender::poll_transmit) hands them out),
//! plus RTCP sender reports; a
//! [`SessionDescription`] describes the stream in
//! SDP, so that ffmpeg, GStreamer or VLC can play it. On each follower, an
//! [`RtpReceiver`] validates datagrams, orders them in
//! a [`JitterBuffer`](jitter::JitterBuffer), decodes them, conceals losses and
//! hands out samples with their presentation time.
//!
//! Codecs: [`L16`] and [`L24`] (linear PCM, RFC 3551,
//! RFC 3190/AES67) are always built; Opus (RFC 7587) needs the `opus` feature. Like the rest
//! of the core, all of it is sans-IO (bytes in through `handle_*`, bytes out through
//! `poll_*`, no sockets and no clocks) and allocates nothing per packet once warm.

pub mod codec;
pub mod extend;
pub mod jitter;
pub mod ntp;
#[cfg(feature = "opus")]
pub mod opus;
pub mod receiver;
pub mod rtcp;
pub mod sdp;
pub mod sender;
pub mod srtp;

pub use codec::{
    AudioFormat, Codec, CodecError, CodecKind, L16, L24, MAX_CHANNELS, SUPPORTED_SAMPLE_RATES,
    new_codec,
};
pub use extend::{EXTENDED_BASE, SequenceExtender, TimestampExtender};
pub use ntp::{NTP_UNIX_OFFSET_SECS, NtpTimestamp};
#[cfg(feature = "opus")]
pub use opus::{Opus, OpusConfig};
pub use receiver::{ReceiverConfig, ReceiverStats, RtpReceiver};
pub use sdp::SessionDescription;
pub use sender::{RtpSender, SenderConfig};
pub use srtp::{SrtpContext, SrtpError, SrtpProfile, SrtpSessionKeys, SrtpStats};
