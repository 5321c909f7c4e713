//! The control messages and their payload encodings (the frame header is in `wire`).

use super::error::ControlError;
use super::field::{
    MAX_DETAIL_LEN, MAX_GROUP_LEN, MAX_NAME_LEN, Reader, put_bool, put_nanos, put_opt_f64,
    put_opt_nanos, put_str, put_volume,
};
use super::role::Role;
use crate::clock::EpochReason;
use crate::media::CodecKind;
use crate::media::srtp::SrtpProfile;
use crate::time::Nanos;

/// A fresh random value that makes each handshake's proofs unique.
pub type Nonce = [u8; 16];

/// An HMAC-SHA256 tag.
pub type Mac = [u8; 32];

/// What a follower can play, sent in its Hello.
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    /// Hardware model (at most 64 bytes); both halves of a stereo pair must match.
    pub model: String,
    /// Human-readable device name (at most 64 bytes).
    pub name: String,
    /// Output channels the device has.
    pub channels: u8,
    /// Highest sample rate it plays, in Hz.
    pub max_rate: u32,
    /// Delay from handing a sample to the output until it is heard.
    pub output_latency: Nanos,
}

/// The codec of a stream, as named on the wire. Unlike [`CodecKind`] it is fixed by the
/// protocol, so its codes do not depend on which features a build has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecId {
    /// 16-bit linear PCM.
    L16,
    /// 24-bit linear PCM.
    L24,
    /// Opus.
    Opus,
}

impl CodecId {
    /// The media-path codec for this id. Always `Some` today; `None` is kept for a wire codec
    /// this build has no [`CodecKind`] for.
    pub fn to_kind(self) -> Option<CodecKind> {
        Some(match self {
            CodecId::L16 => CodecKind::L16,
            CodecId::L24 => CodecKind::L24,
            CodecId::Opus => CodecKind::Opus,
        })
    }

    /// The wire id for a media-path codec.
    pub fn from_kind(kind: CodecKind) -> CodecId {
        match kind {
            CodecKind::L16 => CodecId::L16,
            CodecKind::L24 => CodecId::L24,
            CodecKind::Opus => CodecId::Opus,
        }
    }

    fn code(self) -> u8 {
        match self {
            CodecId::L16 => 0,
            CodecId::L24 => 1,
            CodecId::Opus => 2,
        }
    }

    fn from_code(code: u8) -> Option<CodecId> {
        [CodecId::L16, CodecId::L24, CodecId::Opus]
            .into_iter()
            .find(|c| c.code() == code)
    }
}

/// Where and how a follower receives the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamParams {
    /// The codec of the RTP payload.
    pub codec: CodecId,
    /// Sample rate, in Hz.
    pub sample_rate: u32,
    /// Channels in the stream (before the follower picks its [`Role`]'s part).
    pub channels: u8,
    /// RTP payload type.
    pub payload_type: u8,
    /// RTP synchronisation source of the stream; a new one marks a new source.
    pub ssrc: u32,
    /// UDP port the leader sends the RTP stream from (datagrams from any other port are
    /// not the leader's).
    pub rtp_port: u16,
    /// The IPv4 multicast group and port the stream is sent to, if it is multicast (then
    /// the follower joins it); `None`: unicast to the port the follower named in its Hello.
    pub multicast: Option<std::net::SocketAddrV4>,
    /// UDP port of the leader's PTP event messages.
    pub ptp_event_port: u16,
    /// UDP port of the leader's PTP general messages.
    pub ptp_general_port: u16,
    /// Delay from a packet's leader timestamp to its playout.
    pub target_latency: Nanos,
    /// Audio duration in one RTP packet.
    pub ptime: Nanos,
    /// How the stream and the clock are protected.
    pub protection: Protection,
}

/// How a stream's media and clock are protected between a leader and the followers it
/// admits. The keys come from the session ([`SessionKeys`](super::SessionKeys)); this says
/// only which protection is on. [`Protection::default`] is everything on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Protection {
    /// The SRTP profile the RTP stream is protected with (`None`: plain RTP, which anyone
    /// on the network can forge).
    pub media: Option<SrtpProfile>,
    /// Whether every PTP message carries an AUTHENTICATION TLV under the session's clock
    /// keys (`false`: plain PTP, which anyone on the network can forge).
    pub clock: bool,
}

impl Protection {
    /// Nothing protected: for a group that must interoperate with what cannot protect.
    pub const NONE: Protection = Protection {
        media: None,
        clock: false,
    };

    /// Whether both the media and the clock are protected.
    pub fn is_full(&self) -> bool {
        self.media.is_some() && self.clock
    }

    fn code(profile: Option<SrtpProfile>) -> u8 {
        match profile {
            None => 0,
            Some(SrtpProfile::AesCm128HmacSha1_80) => 1,
            Some(SrtpProfile::AeadAes128Gcm) => 2,
        }
    }
}

impl Default for Protection {
    /// SRTP with [`SrtpProfile::AesCm128HmacSha1_80`], and an authenticated clock.
    fn default() -> Protection {
        Protection {
            media: Some(SrtpProfile::default()),
            clock: true,
        }
    }
}

/// Packets a follower dropped because they failed authentication, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rejections {
    /// A tag that does not match (a forged or altered packet), or none where one is due.
    pub bad_tag: u64,
    /// A good tag on a packet accepted before, or one too old: a replay.
    pub replay: u64,
    /// A key the follower does not hold (an SRTP stream of another SSRC, a PTP keyID or
    /// security association it does not know).
    pub unknown_key: u64,
    /// Too short, too long or otherwise unreadable as a protected packet.
    pub malformed: u64,
}

impl Rejections {
    /// Every packet dropped, whatever the reason.
    pub fn total(&self) -> u64 {
        self.bad_tag + self.replay + self.unknown_key + self.malformed
    }

    /// The sums of both.
    pub fn add(&self, other: &Rejections) -> Rejections {
        Rejections {
            bad_tag: self.bad_tag + other.bad_tag,
            replay: self.replay + other.replay,
            unknown_key: self.unknown_key + other.unknown_key,
            malformed: self.malformed + other.malformed,
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        for c in [self.bad_tag, self.replay, self.unknown_key, self.malformed] {
            out.extend_from_slice(&c.to_be_bytes());
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Rejections, ControlError> {
        Ok(Rejections {
            bad_tag: r.u64()?,
            replay: r.u64()?,
            unknown_key: r.u64()?,
            malformed: r.u64()?,
        })
    }
}

impl std::fmt::Display for Rejections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bad tag {} replay {} unknown key {} malformed {}",
            self.bad_tag, self.replay, self.unknown_key, self.malformed
        )
    }
}

/// Which receive timestamps a follower uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampKind {
    /// Taken by the kernel when the packet arrived (SO_TIMESTAMPNS): less jitter.
    Kernel,
    /// Taken in user space after the read returned.
    User,
}

impl TimestampKind {
    fn code(self) -> u8 {
        match self {
            TimestampKind::Kernel => 0,
            TimestampKind::User => 1,
        }
    }
}

/// A follower's health, answered to a StatusQuery.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowerStatus {
    /// Estimated offset of the leader clock from the local clock, once there is one.
    pub clock_offset: Option<Nanos>,
    /// Estimated rate of the leader clock against the local one, in ppm (finite).
    pub clock_rate_ppm: Option<f64>,
    /// Uncertainty of the offset estimate.
    pub uncertainty: Option<Nanos>,
    /// Whether the clock estimate can be played on ([`ClockEstimate::settled`]): false while
    /// it converges or works out a change of the path or of the leader's clock.
    ///
    /// [`ClockEstimate::settled`]: crate::clock::ClockEstimate::settled
    pub clock_settled: bool,
    /// Why the clock estimate's current epoch began, once there is an estimate.
    pub clock_reason: Option<EpochReason>,
    /// Audio buffered ahead of the output.
    pub buffer_level: Nanos,
    /// RTP packets received.
    pub packets_received: u64,
    /// RTP packets never received.
    pub packets_lost: u64,
    /// RTP packets that came after their playout time.
    pub packets_late: u64,
    /// Packets from an unexpected source (wrong SSRC or address).
    pub unknown_source: u64,
    /// Times the output ran dry.
    pub underruns: u64,
    /// Estimated error of the output against the leader's schedule.
    pub skew_estimate: Option<Nanos>,
    /// Whether audio is playing.
    pub playing: bool,
    /// Volume in 0.0..=1.0.
    pub volume: f32,
    /// Whether output is muted.
    pub muted: bool,
    /// Per-speaker delay trim.
    pub trim: Nanos,
    /// Which receive timestamps the follower uses.
    pub timestamping: TimestampKind,
    /// Whether the media it plays is authenticated (SRTP under the session's keys).
    pub media_authenticated: bool,
    /// Whether the clock it follows is authenticated (PTP with the AUTHENTICATION TLV
    /// under the session's keys).
    pub clock_authenticated: bool,
    /// RTP packets dropped for failing authentication.
    pub media_rejected: Rejections,
    /// PTP messages dropped for failing authentication.
    pub clock_rejected: Rejections,
}

/// One status line: the clock estimate and how sure it is, the buffer, the packets, the
/// output. What the examples print once a second.
impl std::fmt::Display for FollowerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us =
            |n: Option<Nanos>| n.map_or("-".into(), |n| format!("{:.1} µs", n.as_micros_f64()));
        write!(f, "offset {}  rate ", us(self.clock_offset))?;
        match self.clock_rate_ppm {
            Some(r) => write!(f, "{r:+.2} ppm")?,
            None => f.write_str("-")?,
        }
        write!(f, "  ±{} (", us(self.uncertainty))?;
        match (self.clock_settled, self.clock_reason) {
            (_, None) => f.write_str("no clock")?,
            (true, Some(reason)) => write!(f, "settled, since {reason}")?,
            (false, Some(reason)) => write!(f, "settling, since {reason}")?,
        }
        write!(
            f,
            ")  buffer {:.1} ms  received {} lost {} late {}  underruns {}  error {}  {}  \
             timestamps {}",
            self.buffer_level.as_nanos() as f64 / 1e6,
            self.packets_received,
            self.packets_lost,
            self.packets_late,
            self.underruns,
            us(self.skew_estimate),
            if self.playing { "playing" } else { "waiting" },
            match self.timestamping {
                TimestampKind::Kernel => "kernel",
                TimestampKind::User => "user",
            },
        )?;
        if self.muted {
            f.write_str("  muted")?;
        }
        match (self.media_authenticated, self.clock_authenticated) {
            (true, true) => {}
            (false, true) => f.write_str("  UNAUTHENTICATED media")?,
            (true, false) => f.write_str("  UNAUTHENTICATED clock")?,
            (false, false) => f.write_str("  UNAUTHENTICATED media and clock")?,
        }
        let rejected = self.media_rejected.add(&self.clock_rejected);
        if rejected.total() > 0 {
            write!(
                f,
                "  rejected: media {} / clock {}",
                self.media_rejected.total(),
                self.clock_rejected.total()
            )?;
        }
        Ok(())
    }
}

/// Why the leader refuses a follower; travels in [`Message::Refused`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Refusal {
    /// The follower's HMAC proof did not verify: it does not hold the household key.
    WrongKey,
    /// The follower's nonce was seen before: a replayed handshake.
    Replay,
    /// The follower speaks a protocol version the leader does not.
    UnsupportedVersion {
        /// The version the follower sent.
        got: u8,
        /// The version the leader speaks.
        supported: u8,
    },
    /// The follower would make a stereo pair with a speaker of another model.
    ModelMismatch {
        /// The follower's model.
        model: String,
        /// The model of the speaker already holding the other half.
        partner_model: String,
    },
    /// Another follower already holds this role (a second Left, say).
    RoleTaken {
        /// The role asked for.
        role: Role,
    },
    /// The follower asked for a group this leader does not lead.
    WrongGroup {
        /// The group asked for.
        requested: String,
        /// The group this leader leads.
        group: String,
    },
    /// The follower's capabilities cannot play the stream (channels, rate).
    Unsupported {
        /// What is missing, for the logs (at most 256 bytes).
        what: String,
    },
    /// A frame from the follower did not decode.
    Malformed,
    /// The leader has as many sessions as it takes.
    Busy,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::WrongKey => f.write_str("wrong household key"),
            Refusal::Replay => f.write_str("replayed handshake (a nonce seen before)"),
            Refusal::UnsupportedVersion { got, supported } => write!(
                f,
                "control protocol version {got} is not supported (the leader speaks {supported})"
            ),
            Refusal::ModelMismatch {
                model,
                partner_model,
            } => write!(
                f,
                "a stereo pair needs two speakers of the same model: this one is {model:?}, \
                 its partner is {partner_model:?}"
            ),
            Refusal::RoleTaken { role } => write!(f, "another speaker already plays {role}"),
            Refusal::WrongGroup { requested, group } => {
                write!(
                    f,
                    "asked for group {requested:?}, the leader leads {group:?}"
                )
            }
            Refusal::Unsupported { what } => write!(f, "cannot play the stream: {what}"),
            Refusal::Malformed => f.write_str("malformed control frame"),
            Refusal::Busy => f.write_str("the leader has no free session"),
        }
    }
}

/// The follower's UDP ports, sent in its Hello: the leader sends the stream and its PTP
/// messages there, to the address the control connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerPorts {
    /// Where RTP arrives.
    pub rtp: u16,
    /// The follower's PTP event port (Sync arrives, Delay_Req leaves).
    pub ptp_event: u16,
    /// The follower's PTP general port (Follow_Up, Delay_Resp, Announce arrive).
    pub ptp_general: u16,
}

/// One control message; [`Message::encode`](Message::encode) and
/// [`decode_frame`](super::decode_frame) frame it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// Follower → leader, the first frame: who it is and what it asks for.
    Hello {
        /// What the follower can play.
        caps: Capabilities,
        /// The role it asks for.
        role: Role,
        /// The group it asks to join (at most 64 bytes).
        group: String,
        /// The follower's fresh nonce.
        nonce: Nonce,
        /// Where the follower receives the stream and the clock messages.
        ports: PeerPorts,
    },
    /// Leader → follower: the leader's fresh nonce to prove the key against.
    Challenge {
        /// The leader's fresh nonce.
        nonce: Nonce,
    },
    /// Follower → leader: the follower's proof that it holds the household key.
    Auth {
        /// [`HouseholdKey::follower_proof`](super::HouseholdKey::follower_proof).
        mac: Mac,
    },
    /// Leader → follower: admitted, with everything needed to start playing.
    Welcome {
        /// Identifier of this session, bound into the leader's proof.
        session: u64,
        /// The group joined (at most 64 bytes).
        group: String,
        /// The role granted (may differ from the one asked for).
        role: Role,
        /// The stream to receive.
        stream: StreamParams,
        /// Initial volume, 0.0..=1.0.
        volume: f32,
        /// Initial mute state.
        muted: bool,
        /// Initial delay trim.
        trim: Nanos,
        /// [`HouseholdKey::leader_proof`](super::HouseholdKey::leader_proof): the leader
        /// holds the key too.
        mac: Mac,
    },
    /// Leader → follower: not admitted; the leader closes after sending it.
    Refused {
        /// Why.
        refusal: Refusal,
    },
    /// Set the output volume.
    SetVolume {
        /// 0.0..=1.0.
        volume: f32,
    },
    /// Mute or unmute the output.
    SetMute {
        /// Whether to mute.
        muted: bool,
    },
    /// Set the per-speaker delay trim.
    SetTrim {
        /// The trim.
        trim: Nanos,
    },
    /// Play another part of the stream.
    SetRole {
        /// The new role.
        role: Role,
    },
    /// New stream parameters (a source switch comes with a new SSRC).
    Stream {
        /// The new parameters.
        stream: StreamParams,
    },
    /// Stop playing, keep the session.
    Pause,
    /// Play again after a Pause.
    Resume,
    /// Either side: the session ends; the sender closes after it.
    Leave,
    /// Leader → follower: the key of a multicast stream's `epoch`, sealed for this session
    /// ([`SessionKeys::seal_group_key`](super::SessionKeys::seal_group_key)). Sent when
    /// the follower joins and, with the next epoch, when a member leaves; the leader
    /// switches the stream to a new epoch shortly after.
    GroupKey {
        /// The key's epoch: each new key's is higher.
        epoch: u32,
        /// The key, sealed.
        sealed: [u8; super::keys::SEALED_GROUP_KEY_LEN],
    },
    /// Leader → follower: send a Status.
    StatusQuery {
        /// Echoed in the Status, to match answers to queries.
        id: u32,
    },
    /// Follower → leader: the answer to a StatusQuery.
    Status {
        /// The id of the query.
        id: u32,
        /// The follower's status.
        status: FollowerStatus,
    },
    /// Either side: liveness check.
    Ping {
        /// Echoed in the Pong.
        id: u64,
    },
    /// The answer to a Ping.
    Pong {
        /// The id of the Ping.
        id: u64,
    },
}

/// The message type codes of the frame header (the table is in the `wire` docs).
pub(crate) mod code {
    /// [`Message::Hello`](super::Message::Hello).
    pub(crate) const HELLO: u8 = 0x01;
    /// [`Message::Challenge`](super::Message::Challenge).
    pub(crate) const CHALLENGE: u8 = 0x02;
    /// [`Message::Auth`](super::Message::Auth).
    pub(crate) const AUTH: u8 = 0x03;
    /// [`Message::Welcome`](super::Message::Welcome).
    pub(crate) const WELCOME: u8 = 0x04;
    /// [`Message::Refused`](super::Message::Refused).
    pub(crate) const REFUSED: u8 = 0x05;
    /// [`Message::SetVolume`](super::Message::SetVolume).
    pub(crate) const SET_VOLUME: u8 = 0x10;
    /// [`Message::SetMute`](super::Message::SetMute).
    pub(crate) const SET_MUTE: u8 = 0x11;
    /// [`Message::SetTrim`](super::Message::SetTrim).
    pub(crate) const SET_TRIM: u8 = 0x12;
    /// [`Message::SetRole`](super::Message::SetRole).
    pub(crate) const SET_ROLE: u8 = 0x13;
    /// [`Message::Stream`](super::Message::Stream).
    pub(crate) const STREAM: u8 = 0x14;
    /// [`Message::Pause`](super::Message::Pause).
    pub(crate) const PAUSE: u8 = 0x15;
    /// [`Message::Resume`](super::Message::Resume).
    pub(crate) const RESUME: u8 = 0x16;
    /// [`Message::Leave`](super::Message::Leave).
    pub(crate) const LEAVE: u8 = 0x17;
    /// [`Message::GroupKey`](super::Message::GroupKey).
    pub(crate) const GROUP_KEY: u8 = 0x18;
    /// [`Message::StatusQuery`](super::Message::StatusQuery).
    pub(crate) const STATUS_QUERY: u8 = 0x20;
    /// [`Message::Status`](super::Message::Status).
    pub(crate) const STATUS: u8 = 0x21;
    /// [`Message::Ping`](super::Message::Ping).
    pub(crate) const PING: u8 = 0x22;
    /// [`Message::Pong`](super::Message::Pong).
    pub(crate) const PONG: u8 = 0x23;

    /// Every code, so that a header can be checked before its payload is read.
    pub(crate) const ALL: [u8; 18] = [
        HELLO,
        CHALLENGE,
        AUTH,
        WELCOME,
        REFUSED,
        SET_VOLUME,
        SET_MUTE,
        SET_TRIM,
        SET_ROLE,
        STREAM,
        PAUSE,
        RESUME,
        LEAVE,
        GROUP_KEY,
        STATUS_QUERY,
        STATUS,
        PING,
        PONG,
    ];
}

/// Codes of the [`Refusal`] variants inside a Refused payload.
mod refusal_code {
    pub(super) const WRONG_KEY: u8 = 0;
    pub(super) const REPLAY: u8 = 1;
    pub(super) const UNSUPPORTED_VERSION: u8 = 2;
    pub(super) const MODEL_MISMATCH: u8 = 3;
    pub(super) const ROLE_TAKEN: u8 = 4;
    pub(super) const WRONG_GROUP: u8 = 5;
    pub(super) const UNSUPPORTED: u8 = 6;
    pub(super) const MALFORMED: u8 = 7;
    pub(super) const BUSY: u8 = 8;
}

impl Message {
    /// The message's name, for logs ("Hello", "SetVolume", ...).
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Challenge { .. } => "Challenge",
            Message::Auth { .. } => "Auth",
            Message::Welcome { .. } => "Welcome",
            Message::Refused { .. } => "Refused",
            Message::SetVolume { .. } => "SetVolume",
            Message::SetMute { .. } => "SetMute",
            Message::SetTrim { .. } => "SetTrim",
            Message::SetRole { .. } => "SetRole",
            Message::Stream { .. } => "Stream",
            Message::Pause => "Pause",
            Message::Resume => "Resume",
            Message::Leave => "Leave",
            Message::GroupKey { .. } => "GroupKey",
            Message::StatusQuery { .. } => "StatusQuery",
            Message::Status { .. } => "Status",
            Message::Ping { .. } => "Ping",
            Message::Pong { .. } => "Pong",
        }
    }

    /// The message's type code in the frame header.
    pub fn type_code(&self) -> u8 {
        match self {
            Message::Hello { .. } => code::HELLO,
            Message::Challenge { .. } => code::CHALLENGE,
            Message::Auth { .. } => code::AUTH,
            Message::Welcome { .. } => code::WELCOME,
            Message::Refused { .. } => code::REFUSED,
            Message::SetVolume { .. } => code::SET_VOLUME,
            Message::SetMute { .. } => code::SET_MUTE,
            Message::SetTrim { .. } => code::SET_TRIM,
            Message::SetRole { .. } => code::SET_ROLE,
            Message::Stream { .. } => code::STREAM,
            Message::Pause => code::PAUSE,
            Message::Resume => code::RESUME,
            Message::Leave => code::LEAVE,
            Message::GroupKey { .. } => code::GROUP_KEY,
            Message::StatusQuery { .. } => code::STATUS_QUERY,
            Message::Status { .. } => code::STATUS,
            Message::Ping { .. } => code::PING,
            Message::Pong { .. } => code::PONG,
        }
    }

    /// Appends the payload (no header).
    pub(crate) fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), ControlError> {
        match self {
            Message::Hello {
                caps,
                role,
                group,
                nonce,
                ports,
            } => {
                put_caps(out, caps)?;
                out.push(role.code());
                put_str(out, "group", group, MAX_GROUP_LEN)?;
                out.extend_from_slice(nonce);
                for p in [ports.rtp, ports.ptp_event, ports.ptp_general] {
                    out.extend_from_slice(&p.to_be_bytes());
                }
            }
            Message::Challenge { nonce } => out.extend_from_slice(nonce),
            Message::Auth { mac } => out.extend_from_slice(mac),
            Message::Welcome {
                session,
                group,
                role,
                stream,
                volume,
                muted,
                trim,
                mac,
            } => {
                out.extend_from_slice(&session.to_be_bytes());
                put_str(out, "group", group, MAX_GROUP_LEN)?;
                out.push(role.code());
                put_stream(out, stream);
                put_volume(out, *volume)?;
                put_bool(out, *muted);
                put_nanos(out, *trim);
                out.extend_from_slice(mac);
            }
            Message::Refused { refusal } => put_refusal(out, refusal)?,
            Message::SetVolume { volume } => put_volume(out, *volume)?,
            Message::SetMute { muted } => put_bool(out, *muted),
            Message::SetTrim { trim } => put_nanos(out, *trim),
            Message::SetRole { role } => out.push(role.code()),
            Message::Stream { stream } => put_stream(out, stream),
            Message::Pause | Message::Resume | Message::Leave => {}
            Message::GroupKey { epoch, sealed } => {
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(sealed);
            }
            Message::StatusQuery { id } => out.extend_from_slice(&id.to_be_bytes()),
            Message::Status { id, status } => {
                out.extend_from_slice(&id.to_be_bytes());
                put_status(out, status)?;
            }
            Message::Ping { id } | Message::Pong { id } => out.extend_from_slice(&id.to_be_bytes()),
        }
        Ok(())
    }

    /// Decodes the payload of a frame whose header carried `type_code`. The whole payload
    /// must be used: trailing bytes are malformed.
    pub(crate) fn decode_payload(type_code: u8, payload: &[u8]) -> Result<Message, ControlError> {
        let mut r = Reader::new(payload);
        let msg = match type_code {
            code::HELLO => Message::Hello {
                caps: read_caps(&mut r)?,
                role: read_role(&mut r)?,
                group: r.string("group", MAX_GROUP_LEN)?,
                nonce: r.array()?,
                ports: PeerPorts {
                    rtp: r.u16()?,
                    ptp_event: r.u16()?,
                    ptp_general: r.u16()?,
                },
            },
            code::CHALLENGE => Message::Challenge { nonce: r.array()? },
            code::AUTH => Message::Auth { mac: r.array()? },
            code::WELCOME => Message::Welcome {
                session: r.u64()?,
                group: r.string("group", MAX_GROUP_LEN)?,
                role: read_role(&mut r)?,
                stream: read_stream(&mut r)?,
                volume: r.volume()?,
                muted: r.bool("muted flag not 0 or 1")?,
                trim: r.nanos()?,
                mac: r.array()?,
            },
            code::REFUSED => Message::Refused {
                refusal: read_refusal(&mut r)?,
            },
            code::SET_VOLUME => Message::SetVolume {
                volume: r.volume()?,
            },
            code::SET_MUTE => Message::SetMute {
                muted: r.bool("muted flag not 0 or 1")?,
            },
            code::SET_TRIM => Message::SetTrim { trim: r.nanos()? },
            code::SET_ROLE => Message::SetRole {
                role: read_role(&mut r)?,
            },
            code::STREAM => Message::Stream {
                stream: read_stream(&mut r)?,
            },
            code::PAUSE => Message::Pause,
            code::RESUME => Message::Resume,
            code::LEAVE => Message::Leave,
            code::GROUP_KEY => Message::GroupKey {
                epoch: r.u32()?,
                sealed: r.array()?,
            },
            code::STATUS_QUERY => Message::StatusQuery { id: r.u32()? },
            code::STATUS => Message::Status {
                id: r.u32()?,
                status: read_status(&mut r)?,
            },
            code::PING => Message::Ping { id: r.u64()? },
            code::PONG => Message::Pong { id: r.u64()? },
            code => return Err(ControlError::UnknownType { code }),
        };
        r.finish()?;
        Ok(msg)
    }
}

fn put_caps(out: &mut Vec<u8>, caps: &Capabilities) -> Result<(), ControlError> {
    put_str(out, "model", &caps.model, MAX_NAME_LEN)?;
    put_str(out, "name", &caps.name, MAX_NAME_LEN)?;
    out.push(caps.channels);
    out.extend_from_slice(&caps.max_rate.to_be_bytes());
    put_nanos(out, caps.output_latency);
    Ok(())
}

fn read_caps(r: &mut Reader<'_>) -> Result<Capabilities, ControlError> {
    Ok(Capabilities {
        model: r.string("model", MAX_NAME_LEN)?,
        name: r.string("name", MAX_NAME_LEN)?,
        channels: r.u8()?,
        max_rate: r.u32()?,
        output_latency: r.nanos()?,
    })
}

fn read_role(r: &mut Reader<'_>) -> Result<Role, ControlError> {
    Role::from_code(r.u8()?).ok_or(ControlError::Malformed {
        what: "unknown role code",
    })
}

fn put_stream(out: &mut Vec<u8>, s: &StreamParams) {
    out.push(s.codec.code());
    out.extend_from_slice(&s.sample_rate.to_be_bytes());
    out.push(s.channels);
    out.push(s.payload_type);
    out.extend_from_slice(&s.ssrc.to_be_bytes());
    out.extend_from_slice(&s.rtp_port.to_be_bytes());
    match s.multicast {
        Some(group) => {
            out.push(1);
            out.extend_from_slice(&group.ip().octets());
            out.extend_from_slice(&group.port().to_be_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&s.ptp_event_port.to_be_bytes());
    out.extend_from_slice(&s.ptp_general_port.to_be_bytes());
    put_nanos(out, s.target_latency);
    put_nanos(out, s.ptime);
    out.push(Protection::code(s.protection.media));
    put_bool(out, s.protection.clock);
}

fn read_stream(r: &mut Reader<'_>) -> Result<StreamParams, ControlError> {
    Ok(StreamParams {
        codec: CodecId::from_code(r.u8()?).ok_or(ControlError::Malformed {
            what: "unknown codec code",
        })?,
        sample_rate: r.u32()?,
        channels: r.u8()?,
        payload_type: r.u8()?,
        ssrc: r.u32()?,
        rtp_port: r.u16()?,
        multicast: if r.bool("multicast flag not 0 or 1")? {
            let ip: [u8; 4] = r.array()?;
            let group = std::net::Ipv4Addr::from(ip);
            if !group.is_multicast() {
                return Err(ControlError::Malformed {
                    what: "multicast group not a multicast address",
                });
            }
            Some(std::net::SocketAddrV4::new(group, r.u16()?))
        } else {
            None
        },
        ptp_event_port: r.u16()?,
        ptp_general_port: r.u16()?,
        target_latency: r.nanos()?,
        ptime: r.nanos()?,
        protection: Protection {
            media: match r.u8()? {
                0 => None,
                1 => Some(SrtpProfile::AesCm128HmacSha1_80),
                2 => Some(SrtpProfile::AeadAes128Gcm),
                _ => {
                    return Err(ControlError::Malformed {
                        what: "unknown media protection code",
                    });
                }
            },
            clock: r.bool("clock protection flag not 0 or 1")?,
        },
    })
}

fn put_status(out: &mut Vec<u8>, s: &FollowerStatus) -> Result<(), ControlError> {
    put_opt_nanos(out, s.clock_offset);
    put_opt_f64(out, "clock rate not finite", s.clock_rate_ppm)?;
    put_opt_nanos(out, s.uncertainty);
    put_bool(out, s.clock_settled);
    out.push(match s.clock_reason {
        None => 0,
        Some(EpochReason::Start) => 1,
        Some(EpochReason::LeaderStep) => 2,
        Some(EpochReason::NewLeader) => 3,
        Some(EpochReason::PathChange) => 4,
    });
    put_nanos(out, s.buffer_level);
    for counter in [
        s.packets_received,
        s.packets_lost,
        s.packets_late,
        s.unknown_source,
        s.underruns,
    ] {
        out.extend_from_slice(&counter.to_be_bytes());
    }
    put_opt_nanos(out, s.skew_estimate);
    put_bool(out, s.playing);
    put_volume(out, s.volume)?;
    put_bool(out, s.muted);
    put_nanos(out, s.trim);
    out.push(s.timestamping.code());
    put_bool(out, s.media_authenticated);
    put_bool(out, s.clock_authenticated);
    s.media_rejected.put(out);
    s.clock_rejected.put(out);
    Ok(())
}

fn read_status(r: &mut Reader<'_>) -> Result<FollowerStatus, ControlError> {
    Ok(FollowerStatus {
        clock_offset: r.opt_nanos("clock offset presence not 0 or 1")?,
        clock_rate_ppm: r.opt_f64("clock rate presence not 0 or 1, or rate not finite")?,
        uncertainty: r.opt_nanos("uncertainty presence not 0 or 1")?,
        clock_settled: r.bool("clock settled flag not 0 or 1")?,
        clock_reason: match r.u8()? {
            0 => None,
            1 => Some(EpochReason::Start),
            2 => Some(EpochReason::LeaderStep),
            3 => Some(EpochReason::NewLeader),
            4 => Some(EpochReason::PathChange),
            _ => {
                return Err(ControlError::Malformed {
                    what: "unknown epoch reason",
                });
            }
        },
        buffer_level: r.nanos()?,
        packets_received: r.u64()?,
        packets_lost: r.u64()?,
        packets_late: r.u64()?,
        unknown_source: r.u64()?,
        underruns: r.u64()?,
        skew_estimate: r.opt_nanos("skew presence not 0 or 1")?,
        playing: r.bool("playing flag not 0 or 1")?,
        volume: r.volume()?,
        muted: r.bool("muted flag not 0 or 1")?,
        trim: r.nanos()?,
        timestamping: match r.u8()? {
            0 => TimestampKind::Kernel,
            1 => TimestampKind::User,
            _ => {
                return Err(ControlError::Malformed {
                    what: "unknown timestamp kind",
                });
            }
        },
        media_authenticated: r.bool("media authenticated flag not 0 or 1")?,
        clock_authenticated: r.bool("clock authenticated flag not 0 or 1")?,
        media_rejected: Rejections::read(r)?,
        clock_rejected: Rejections::read(r)?,
    })
}

fn put_refusal(out: &mut Vec<u8>, refusal: &Refusal) -> Result<(), ControlError> {
    match refusal {
        Refusal::WrongKey => out.push(refusal_code::WRONG_KEY),
        Refusal::Replay => out.push(refusal_code::REPLAY),
        Refusal::UnsupportedVersion { got, supported } => {
            out.extend_from_slice(&[refusal_code::UNSUPPORTED_VERSION, *got, *supported]);
        }
        Refusal::ModelMismatch {
            model,
            partner_model,
        } => {
            out.push(refusal_code::MODEL_MISMATCH);
            put_str(out, "model", model, MAX_NAME_LEN)?;
            put_str(out, "partner_model", partner_model, MAX_NAME_LEN)?;
        }
        Refusal::RoleTaken { role } => {
            out.extend_from_slice(&[refusal_code::ROLE_TAKEN, role.code()])
        }
        Refusal::WrongGroup { requested, group } => {
            out.push(refusal_code::WRONG_GROUP);
            put_str(out, "requested", requested, MAX_GROUP_LEN)?;
            put_str(out, "group", group, MAX_GROUP_LEN)?;
        }
        Refusal::Unsupported { what } => {
            out.push(refusal_code::UNSUPPORTED);
            put_str(out, "what", what, MAX_DETAIL_LEN)?;
        }
        Refusal::Malformed => out.push(refusal_code::MALFORMED),
        Refusal::Busy => out.push(refusal_code::BUSY),
    }
    Ok(())
}

fn read_refusal(r: &mut Reader<'_>) -> Result<Refusal, ControlError> {
    Ok(match r.u8()? {
        refusal_code::WRONG_KEY => Refusal::WrongKey,
        refusal_code::REPLAY => Refusal::Replay,
        refusal_code::UNSUPPORTED_VERSION => Refusal::UnsupportedVersion {
            got: r.u8()?,
            supported: r.u8()?,
        },
        refusal_code::MODEL_MISMATCH => Refusal::ModelMismatch {
            model: r.string("model", MAX_NAME_LEN)?,
            partner_model: r.string("partner_model", MAX_NAME_LEN)?,
        },
        refusal_code::ROLE_TAKEN => Refusal::RoleTaken {
            role: read_role(r)?,
        },
        refusal_code::WRONG_GROUP => Refusal::WrongGroup {
            requested: r.string("requested", MAX_GROUP_LEN)?,
            group: r.string("group", MAX_GROUP_LEN)?,
        },
        refusal_code::UNSUPPORTED => Refusal::Unsupported {
            what: r.string("what", MAX_DETAIL_LEN)?,
        },
        refusal_code::MALFORMED => Refusal::Malformed,
        refusal_code::BUSY => Refusal::Busy,
        _ => {
            return Err(ControlError::Malformed {
                what: "unknown refusal code",
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_id_converts_both_ways() {
        for id in [CodecId::L16, CodecId::L24, CodecId::Opus] {
            let kind = id.to_kind().expect("every wire codec has a kind");
            assert_eq!(CodecId::from_kind(kind), id);
            assert_eq!(CodecId::from_code(id.code()), Some(id));
        }
        assert_eq!(CodecId::L24.to_kind(), Some(CodecKind::L24));
        assert_eq!(CodecId::from_code(3), None);
    }

    #[test]
    fn a_status_reads_as_one_line() {
        let mut st = FollowerStatus {
            clock_offset: Some(Nanos(1_250)),
            clock_rate_ppm: Some(-12.345),
            uncertainty: Some(Nanos(300)),
            clock_settled: true,
            clock_reason: Some(EpochReason::PathChange),
            buffer_level: Nanos::from_millis(90),
            packets_received: 200,
            packets_lost: 1,
            packets_late: 2,
            unknown_source: 0,
            underruns: 3,
            skew_estimate: Some(Nanos(-40)),
            playing: true,
            volume: 1.0,
            muted: false,
            trim: Nanos::ZERO,
            timestamping: TimestampKind::Kernel,
            media_authenticated: true,
            clock_authenticated: true,
            media_rejected: Rejections::default(),
            clock_rejected: Rejections::default(),
        };
        assert_eq!(
            st.to_string(),
            "offset 1.2 µs  rate -12.35 ppm  ±0.3 µs (settled, since path change)  buffer 90.0 ms  \
             received 200 lost 1 late 2  underruns 3  error -0.0 µs  playing  timestamps kernel"
        );
        st.clock_offset = None;
        st.clock_rate_ppm = None;
        st.clock_reason = None;
        st.playing = false;
        st.muted = true;
        let line = st.to_string();
        assert!(
            line.starts_with("offset -  rate -  ±0.3 µs (no clock)"),
            "{line}"
        );
        assert!(
            line.ends_with("waiting  timestamps kernel  muted"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        st.clock_authenticated = false;
        st.media_rejected.replay = 4;
        st.clock_rejected.bad_tag = 5;
        let line = st.to_string();
        assert!(
            line.ends_with("muted  UNAUTHENTICATED clock  rejected: media 4 / clock 5"),
            "{line}"
        );
    }

    #[test]
    fn type_codes_are_distinct() {
        let mut codes = code::ALL.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), code::ALL.len());
    }

    #[test]
    fn payload_decode_rejects_unknown_enum_codes() {
        // SetRole with role code 9.
        assert!(matches!(
            Message::decode_payload(code::SET_ROLE, &[9]),
            Err(ControlError::Malformed { .. })
        ));
        // Refused with refusal code 200.
        assert!(matches!(
            Message::decode_payload(code::REFUSED, &[200]),
            Err(ControlError::Malformed { .. })
        ));
    }
}
