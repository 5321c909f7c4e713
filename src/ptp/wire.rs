//! The PTPv2 (IEEE 1588-2008) wire format: the six messages lockstep exchanges.
//!
//! Two layers, in the manner of smoltcp:
//!
//! - [`Packet`] is a checked view over a byte buffer. [`Packet::new_checked`] validates the
//!   header once; after that its accessors read fields in place, and its setters write them.
//!   A receive path can look at the type, domain and sequence id of a datagram without
//!   decoding the rest, and walk the TLVs after the fixed part with [`Packet::tlvs`].
//! - [`Message`] is the owned representation (a [`Header`] plus a typed [`Body`]).
//!   [`Message::parse`] decodes bytes into one, [`Message::emit`] writes one into a
//!   caller-provided buffer. Neither allocates.
//!
//! Everything that comes off the network is untrusted: parsing never panics, whatever the
//! bytes, and a rejected datagram yields a [`WireError`] whose [`RejectReason`] can index a
//! per-reason counter.
//!
//! The representation is faithful: for any bytes `x` that parse to `m`, emitting `m` gives
//! back `x` truncated to messageLength, except for what the receiver is told to ignore:
//!
//! - on the five timed messages, trailing TLVs (emit writes the fixed length and sets
//!   messageLength to it) and the reserved byte of an Announce body (written as 0);
//! - on a Signaling, TLVs of types other than the two below (skipped, as §14.1 has a
//!   receiver do), and the reserved bits inside those two (written as 0).
//!
//! The fuzz target checks exactly this.
//!
//! ## Signaling and unicast negotiation
//!
//! A Signaling message (§13.12) is the header, a 10-byte targetPortIdentity
//! ([`PortIdentity::WILDCARD`] addresses every port) and a list of TLVs, each a 2-byte
//! tlvType, a 2-byte lengthField counting the value's bytes, and the value. lockstep reads
//! the two TLVs of unicast negotiation (§16.1), with which a slave asks a master for a
//! message rate for a while and the master says what it grants:
//!
//! | TLV                          | tlvType | lengthField | value                             |
//! |------------------------------|---------|-------------|-----------------------------------|
//! | REQUEST_UNICAST_TRANSMISSION | 0x0004  | 6           | messageType (high nibble), logInterMessagePeriod, durationField (u32 s) |
//! | GRANT_UNICAST_TRANSMISSION   | 0x0005  | 8           | the same, a reserved byte, flags (bit 0: R, renewal invited) |
//!
//! A known TLV with another lengthField, a TLV that runs past messageLength, more than
//! [`MAX_SIGNALING_TLVS`] negotiation TLVs or more than [`MAX_TLVS`] TLVs in all are refused
//! with a typed error. A grant with durationField 0 is the standard's refusal.
//!
//! All fields are big-endian. The header is 34 bytes:
//!
//! | offset | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0      | majorSdoId (high nibble) \| messageType (low nibble)         |
//! | 1      | minorVersionPTP (high nibble) \| versionPTP (low nibble, 2)  |
//! | 2..4   | messageLength                                                |
//! | 4      | domainNumber                                                 |
//! | 5      | minorSdoId (reserved in 2008)                                |
//! | 6..8   | flagField                                                    |
//! | 8..16  | correctionField (ns × 2^16)                                  |
//! | 16..20 | messageTypeSpecific (reserved in 2008)                       |
//! | 20..30 | sourcePortIdentity                                           |
//! | 30..32 | sequenceId                                                   |
//! | 32     | controlField                                                 |
//! | 33     | logMessageInterval                                           |

use core::fmt;
use core::ops::{BitOr, BitOrAssign};

use crate::time::{LeaderInstant, NANOS_PER_SEC, Nanos};

/// Length of the common PTP header.
pub const HEADER_LEN: usize = 34;
/// The versionPTP this module speaks (IEEE 1588-2008; 1588-2019 messages also carry 2).
pub const PTP_VERSION: u8 = 2;
/// UDP port for event messages (Sync, Delay_Req), the ones that are timestamped.
pub const EVENT_PORT: u16 = 319;
/// UDP port for general messages (Follow_Up, Delay_Resp, Announce, Signaling).
pub const GENERAL_PORT: u16 = 320;
/// Length of the largest message this module emits (a Signaling with [`MAX_SIGNALING_TLVS`]
/// grants); a buffer this long fits any.
pub const MAX_MESSAGE_LEN: usize = 44 + MAX_SIGNALING_TLVS * (TLV_HEADER_LEN + GRANT_LEN);
/// Length of a TLV's tlvType and lengthField, before its value.
pub const TLV_HEADER_LEN: usize = 4;
/// The most unicast-negotiation TLVs a [`SignalingBody`] holds. Fixed, so that a message
/// stays `Copy` and fits an inline buffer; a slave asks for a few message types at most.
pub const MAX_SIGNALING_TLVS: usize = 4;
/// The most TLVs of any type a message may carry before parsing refuses it: the bound on
/// the work an unknown-TLV flood can cause.
pub const MAX_TLVS: usize = 16;
/// tlvType of REQUEST_UNICAST_TRANSMISSION (§16.1.4.1).
pub const TLV_REQUEST_UNICAST_TRANSMISSION: u16 = 0x0004;
/// tlvType of GRANT_UNICAST_TRANSMISSION (§16.1.4.2).
pub const TLV_GRANT_UNICAST_TRANSMISSION: u16 = 0x0005;
/// lengthField of a REQUEST_UNICAST_TRANSMISSION TLV.
const REQUEST_LEN: usize = 6;
/// lengthField of a GRANT_UNICAST_TRANSMISSION TLV.
const GRANT_LEN: usize = 8;
/// Length of a PTP timestamp on the wire.
pub const TIMESTAMP_LEN: usize = 10;
/// Length of a portIdentity on the wire.
pub const PORT_IDENTITY_LEN: usize = 10;

/// Byte offsets of every field, from the start of the message.
mod field {
    use core::ops::Range;

    pub(super) const TYPE: usize = 0;
    pub(super) const VERSION: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const DOMAIN: usize = 4;
    pub(super) const MINOR_SDO_ID: usize = 5;
    pub(super) const FLAGS: Range<usize> = 6..8;
    pub(super) const CORRECTION: Range<usize> = 8..16;
    pub(super) const TYPE_SPECIFIC: Range<usize> = 16..20;
    pub(super) const SOURCE_PORT: Range<usize> = 20..30;
    pub(super) const SEQUENCE_ID: Range<usize> = 30..32;
    pub(super) const CONTROL: usize = 32;
    pub(super) const LOG_INTERVAL: usize = 33;

    // Every timed message starts its body with a timestamp.
    pub(super) const TIMESTAMP: Range<usize> = 34..44;

    // Signaling: the target, then TLVs.
    pub(super) const TARGET_PORT: Range<usize> = 34..44;

    // Delay_Resp.
    pub(super) const REQUESTING_PORT: Range<usize> = 44..54;

    // Announce.
    pub(super) const UTC_OFFSET: Range<usize> = 44..46;
    pub(super) const ANNOUNCE_RESERVED: usize = 46;
    pub(super) const PRIORITY1: usize = 47;
    pub(super) const CLOCK_CLASS: usize = 48;
    pub(super) const CLOCK_ACCURACY: usize = 49;
    pub(super) const LOG_VARIANCE: Range<usize> = 50..52;
    pub(super) const PRIORITY2: usize = 52;
    pub(super) const GM_IDENTITY: Range<usize> = 53..61;
    pub(super) const STEPS_REMOVED: Range<usize> = 61..63;
    pub(super) const TIME_SOURCE: usize = 63;
}

/// Why a datagram could not be parsed or a message could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer is shorter than the header, or than the length the message declares.
    #[error("PTP message too short: needed {needed} bytes, got {got}")]
    TooShort {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes that came.
        got: usize,
    },
    /// The versionPTP nibble is not [`PTP_VERSION`].
    #[error("unsupported versionPTP {got}, expected {PTP_VERSION}")]
    BadVersion {
        /// The versionPTP that came.
        got: u8,
    },
    /// The messageLength field is below the fixed length of the message's type.
    #[error("{message_type} declares messageLength {declared}, below its fixed length {minimum}")]
    LengthMismatch {
        /// The type of the message.
        message_type: MessageType,
        /// The messageLength field.
        declared: usize,
        /// The fixed length of that type.
        minimum: usize,
    },
    /// A message type lockstep does not handle (peer delay, management, reserved).
    #[error("unsupported PTP message type {code:#x}")]
    UnsupportedType {
        /// The messageType that came.
        code: u8,
    },
    /// A timestamp's nanoseconds field is not below 10^9.
    #[error("invalid PTP timestamp: nanoseconds {nanoseconds} not below 1000000000")]
    InvalidTimestamp {
        /// The nanoseconds field that came.
        nanoseconds: u32,
    },
    /// A time does not fit the other representation: a negative instant as a PTP timestamp,
    /// a timestamp beyond `i64` nanoseconds as an instant, or seconds beyond 48 bits.
    #[error("time out of range for the conversion between PTP timestamp and instant")]
    TimestampOutOfRange,
    /// A TLV runs past messageLength: its header, or the value its lengthField declares,
    /// does not fit in what is left.
    #[error("PTP TLV at byte {offset} truncated: needed {needed} bytes, {got} left")]
    TlvTruncated {
        /// Where the TLV starts, from the start of the message.
        offset: usize,
        /// Bytes the TLV needs (its header, or header and declared value).
        needed: usize,
        /// Bytes left before messageLength.
        got: usize,
    },
    /// A TLV of a known type whose lengthField is not the one the standard gives it.
    #[error("PTP TLV {tlv_type:#06x} declares length {declared}, expected {expected}")]
    TlvLengthMismatch {
        /// The tlvType.
        tlv_type: u16,
        /// The lengthField that came.
        declared: usize,
        /// The lengthField of that type.
        expected: usize,
    },
    /// More TLVs than the parser takes: over [`MAX_TLVS`] in all, or over
    /// [`MAX_SIGNALING_TLVS`] negotiation TLVs in a Signaling.
    #[error("too many PTP TLVs: at most {limit}")]
    TooManyTlvs {
        /// The limit that was passed.
        limit: usize,
    },
    /// The buffer given to emit is shorter than the message.
    #[error("buffer too small to emit PTP message: needed {needed} bytes, got {got}")]
    BufferTooSmall {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes the buffer has.
        got: usize,
    },
}

impl WireError {
    /// The kind of rejection, for counting rejected datagrams by reason.
    pub fn reason(&self) -> RejectReason {
        match self {
            WireError::TooShort { .. } => RejectReason::TooShort,
            WireError::BadVersion { .. } => RejectReason::BadVersion,
            WireError::LengthMismatch { .. } => RejectReason::LengthMismatch,
            WireError::UnsupportedType { .. } => RejectReason::UnsupportedType,
            WireError::InvalidTimestamp { .. } => RejectReason::InvalidTimestamp,
            WireError::TlvTruncated { .. }
            | WireError::TlvLengthMismatch { .. }
            | WireError::TooManyTlvs { .. } => RejectReason::BadTlv,
            WireError::TimestampOutOfRange | WireError::BufferTooSmall { .. } => {
                RejectReason::Other
            }
        }
    }
}

/// A fieldless summary of a [`WireError`], usable as an array index for per-reason counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RejectReason {
    /// [`WireError::TooShort`].
    TooShort,
    /// [`WireError::BadVersion`].
    BadVersion,
    /// [`WireError::LengthMismatch`].
    LengthMismatch,
    /// [`WireError::UnsupportedType`].
    UnsupportedType,
    /// [`WireError::InvalidTimestamp`].
    InvalidTimestamp,
    /// [`WireError::TlvTruncated`], [`WireError::TlvLengthMismatch`] and
    /// [`WireError::TooManyTlvs`].
    BadTlv,
    /// Anything else (conversion range errors, emit errors): not expected on a receive path.
    Other,
}

impl RejectReason {
    /// The number of reasons: the length of a counter array indexed by [`RejectReason::index`].
    pub const COUNT: usize = 7;

    /// Every reason, in index order.
    pub const ALL: [RejectReason; RejectReason::COUNT] = [
        RejectReason::TooShort,
        RejectReason::BadVersion,
        RejectReason::LengthMismatch,
        RejectReason::UnsupportedType,
        RejectReason::InvalidTimestamp,
        RejectReason::BadTlv,
        RejectReason::Other,
    ];

    /// A dense index in `0..COUNT`.
    pub fn index(self) -> usize {
        match self {
            RejectReason::TooShort => 0,
            RejectReason::BadVersion => 1,
            RejectReason::LengthMismatch => 2,
            RejectReason::UnsupportedType => 3,
            RejectReason::InvalidTimestamp => 4,
            RejectReason::BadTlv => 5,
            RejectReason::Other => 6,
        }
    }

    /// A short snake_case name, for metrics and reports.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::TooShort => "too_short",
            RejectReason::BadVersion => "bad_version",
            RejectReason::LengthMismatch => "length_mismatch",
            RejectReason::UnsupportedType => "unsupported_type",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::BadTlv => "bad_tlv",
            RejectReason::Other => "other",
        }
    }
}

/// An 8-byte clockIdentity (usually an EUI-64 derived from a MAC address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ClockIdentity(pub [u8; 8]);

impl fmt::Display for ClockIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

/// A portIdentity: which port of which clock sent a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PortIdentity {
    /// The clock.
    pub clock_identity: ClockIdentity,
    /// The port on that clock, counted from 1.
    pub port_number: u16,
}

impl PortIdentity {
    /// All ones: the targetPortIdentity that addresses every port (§7.5.2.4).
    pub const WILDCARD: PortIdentity = PortIdentity {
        clock_identity: ClockIdentity([0xFF; 8]),
        port_number: 0xFFFF,
    };

    /// Whether a message targeted at `self` is for `port`: the same port, or the wildcard.
    pub fn addresses(self, port: PortIdentity) -> bool {
        self == port || self == PortIdentity::WILDCARD
    }

    fn read(bytes: [u8; PORT_IDENTITY_LEN]) -> PortIdentity {
        let [c0, c1, c2, c3, c4, c5, c6, c7, p0, p1] = bytes;
        PortIdentity {
            clock_identity: ClockIdentity([c0, c1, c2, c3, c4, c5, c6, c7]),
            port_number: u16::from_be_bytes([p0, p1]),
        }
    }

    fn write(self) -> [u8; PORT_IDENTITY_LEN] {
        let [c0, c1, c2, c3, c4, c5, c6, c7] = self.clock_identity.0;
        let [p0, p1] = self.port_number.to_be_bytes();
        [c0, c1, c2, c3, c4, c5, c6, c7, p0, p1]
    }
}

impl fmt::Display for PortIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.clock_identity, self.port_number)
    }
}

/// A PTP timestamp: seconds (48 bits on the wire) and nanoseconds since the PTP epoch.
///
/// The fields are public, so a value may be out of range; [`Message::emit`] refuses to write
/// one rather than put a timestamp on the wire that no receiver could parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PtpTimestamp {
    /// Whole seconds; only the low 48 bits exist on the wire.
    pub seconds: u64,
    /// Nanoseconds within the second, below 10^9.
    pub nanoseconds: u32,
}

impl PtpTimestamp {
    /// The largest seconds value a 48-bit field holds.
    pub const MAX_SECONDS: u64 = (1 << 48) - 1;

    /// The timestamp of a leader instant. Fails for instants before the epoch, which PTP
    /// cannot express.
    pub fn from_instant(t: LeaderInstant) -> Result<Self, WireError> {
        let ns = t.as_nanos();
        if ns < 0 {
            return Err(WireError::TimestampOutOfRange);
        }
        // Non-negative, so plain division is exact and the remainder fits in u32. i64::MAX
        // nanoseconds is about 9.2e9 seconds, far inside 48 bits.
        Ok(PtpTimestamp {
            seconds: (ns / NANOS_PER_SEC) as u64,
            nanoseconds: (ns % NANOS_PER_SEC) as u32,
        })
    }

    /// The leader instant of this timestamp. Fails if nanoseconds are not below 10^9, or if
    /// the time is beyond what `i64` nanoseconds hold (about year 2262 of the PTP epoch).
    pub fn to_instant(self) -> Result<LeaderInstant, WireError> {
        self.validate_nanos()?;
        let secs = i64::try_from(self.seconds).map_err(|_| WireError::TimestampOutOfRange)?;
        secs.checked_mul(NANOS_PER_SEC)
            .and_then(|ns| ns.checked_add(i64::from(self.nanoseconds)))
            .map(LeaderInstant::from_nanos)
            .ok_or(WireError::TimestampOutOfRange)
    }

    /// Checks that the timestamp can be written: nanoseconds below 10^9 and seconds within
    /// 48 bits.
    pub fn validate(self) -> Result<(), WireError> {
        self.validate_nanos()?;
        if self.seconds > Self::MAX_SECONDS {
            return Err(WireError::TimestampOutOfRange);
        }
        Ok(())
    }

    fn validate_nanos(self) -> Result<(), WireError> {
        if i64::from(self.nanoseconds) >= NANOS_PER_SEC {
            return Err(WireError::InvalidTimestamp {
                nanoseconds: self.nanoseconds,
            });
        }
        Ok(())
    }

    /// Decodes a timestamp field, rejecting nanoseconds of 10^9 or more.
    fn read(bytes: [u8; TIMESTAMP_LEN]) -> Result<PtpTimestamp, WireError> {
        let [s0, s1, s2, s3, s4, s5, n0, n1, n2, n3] = bytes;
        let ts = PtpTimestamp {
            seconds: u64::from_be_bytes([0, 0, s0, s1, s2, s3, s4, s5]),
            nanoseconds: u32::from_be_bytes([n0, n1, n2, n3]),
        };
        ts.validate_nanos()?;
        Ok(ts)
    }

    /// Encodes a timestamp field; the caller has validated it, so no bits are lost.
    fn write(self) -> [u8; TIMESTAMP_LEN] {
        let [_, _, s0, s1, s2, s3, s4, s5] = self.seconds.to_be_bytes();
        let [n0, n1, n2, n3] = self.nanoseconds.to_be_bytes();
        [s0, s1, s2, s3, s4, s5, n0, n1, n2, n3]
    }
}

/// A correctionField: nanoseconds scaled by 2^16, so it carries fractions of a nanosecond.
///
/// IEEE 1588 uses `i64::MAX` to mean "too large to represent"; such a value converts to a
/// huge span, which a sane filter rejects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Correction(pub i64);

impl Correction {
    /// No correction.
    pub const ZERO: Correction = Correction(0);

    /// The correction of a whole-nanosecond span (saturating).
    pub fn from_nanos(ns: Nanos) -> Self {
        Correction(ns.as_nanos().saturating_mul(1 << 16))
    }

    /// The correction in nanoseconds, rounded to the nearest; halves round away from zero,
    /// so that negating a correction negates its value.
    pub fn to_nanos(self) -> Nanos {
        // |i64::MIN| + 2^15 fits in u64, and after the shift the magnitude is below 2^48, so
        // neither the addition nor the conversion back can overflow.
        let magnitude = ((self.0.unsigned_abs() + (1 << 15)) >> 16) as i64;
        Nanos(if self.0 < 0 { -magnitude } else { magnitude })
    }
}

/// The message types lockstep handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Sync (0x0), event: the leader's clock reading, or its approximation when two-step.
    Sync,
    /// Delay_Req (0x1), event: a follower asks when its request arrived.
    DelayReq,
    /// Follow_Up (0x8), general: the precise send time of the preceding two-step Sync.
    FollowUp,
    /// Delay_Resp (0x9), general: when the leader received a Delay_Req.
    DelayResp,
    /// Announce (0xB), general: the leader's credentials for the best-master choice.
    Announce,
    /// Signaling (0xC), general: TLVs between ports, here a slave's request for a faster
    /// Sync rate and the master's grant.
    Signaling,
}

impl MessageType {
    /// The messageType code on the wire.
    pub fn code(self) -> u8 {
        match self {
            MessageType::Sync => 0x0,
            MessageType::DelayReq => 0x1,
            MessageType::FollowUp => 0x8,
            MessageType::DelayResp => 0x9,
            MessageType::Announce => 0xB,
            MessageType::Signaling => 0xC,
        }
    }

    /// The length of the message without TLVs: what [`Message::emit`] writes for the timed
    /// messages and the least a messageLength field may declare.
    pub fn fixed_len(self) -> usize {
        match self {
            MessageType::Sync
            | MessageType::DelayReq
            | MessageType::FollowUp
            | MessageType::Signaling => 44,
            MessageType::DelayResp => 54,
            MessageType::Announce => 64,
        }
    }

    /// The controlField value IEEE 1588-2008 assigns this type (kept for PTPv1 hardware).
    pub fn control_field(self) -> u8 {
        match self {
            MessageType::Sync => 0,
            MessageType::DelayReq => 1,
            MessageType::FollowUp => 2,
            MessageType::DelayResp => 3,
            MessageType::Announce | MessageType::Signaling => 5,
        }
    }

    /// Whether this is an event message: timestamped on send and receive, and sent to
    /// [`EVENT_PORT`] rather than [`GENERAL_PORT`].
    pub fn is_event(self) -> bool {
        matches!(self, MessageType::Sync | MessageType::DelayReq)
    }
}

impl TryFrom<u8> for MessageType {
    type Error = WireError;

    /// Decodes a messageType code (the low nibble of the first byte).
    fn try_from(code: u8) -> Result<Self, WireError> {
        match code {
            0x0 => Ok(MessageType::Sync),
            0x1 => Ok(MessageType::DelayReq),
            0x8 => Ok(MessageType::FollowUp),
            0x9 => Ok(MessageType::DelayResp),
            0xB => Ok(MessageType::Announce),
            0xC => Ok(MessageType::Signaling),
            _ => Err(WireError::UnsupportedType { code }),
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The standard's spelling, as packet captures show it.
        f.write_str(match self {
            MessageType::Sync => "Sync",
            MessageType::DelayReq => "Delay_Req",
            MessageType::FollowUp => "Follow_Up",
            MessageType::DelayResp => "Delay_Resp",
            MessageType::Announce => "Announce",
            MessageType::Signaling => "Signaling",
        })
    }
}

/// The flagField, as the 16-bit big-endian value of header bytes 6 and 7.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// No flags set.
    pub const EMPTY: Flags = Flags(0);
    /// alternateMasterFlag: sent by a port that is not the best master.
    pub const ALTERNATE_MASTER: Flags = Flags(0x0100);
    /// twoStepFlag: the precise send time of this Sync follows in a Follow_Up.
    pub const TWO_STEP: Flags = Flags(0x0200);
    /// unicastFlag: the message was sent unicast.
    pub const UNICAST: Flags = Flags(0x0400);
    /// PTP profile specific 1.
    pub const PROFILE_SPECIFIC_1: Flags = Flags(0x2000);
    /// PTP profile specific 2.
    pub const PROFILE_SPECIFIC_2: Flags = Flags(0x4000);
    /// Reserved for PTP security (Annex K).
    pub const SECURITY: Flags = Flags(0x8000);
    /// leap61: the last minute of the current UTC day has 61 seconds.
    pub const LEAP_61: Flags = Flags(0x0001);
    /// leap59: the last minute of the current UTC day has 59 seconds.
    pub const LEAP_59: Flags = Flags(0x0002);
    /// currentUtcOffsetValid: the Announce's currentUtcOffset is known to be right.
    pub const CURRENT_UTC_OFFSET_VALID: Flags = Flags(0x0004);
    /// ptpTimescale: the grandmaster's timescale is PTP (TAI-based), not arbitrary.
    pub const PTP_TIMESCALE: Flags = Flags(0x0008);
    /// timeTraceable: the time is traceable to a primary reference.
    pub const TIME_TRACEABLE: Flags = Flags(0x0010);
    /// frequencyTraceable: the frequency is traceable to a primary reference.
    pub const FREQUENCY_TRACEABLE: Flags = Flags(0x0020);

    /// Whether every flag set in `other` is also set here.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the twoStepFlag is set.
    pub fn two_step(self) -> bool {
        self.contains(Flags::TWO_STEP)
    }

    /// Whether the unicastFlag is set.
    pub fn unicast(self) -> bool {
        self.contains(Flags::UNICAST)
    }

    /// These flags with those of `other` set.
    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// These flags with those of `other` cleared.
    pub fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.with(rhs)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        *self = self.with(rhs);
    }
}

/// A checked view of a PTP message in a byte buffer.
///
/// Build it with [`Packet::new_checked`] on received bytes; every accessor is then safe to
/// call. [`Packet::new_unchecked`] skips the checks, for writing into a buffer known to be
/// long enough; on such a view the accessors panic if the buffer is shorter than the header
/// (or, for [`Packet::timestamp`], than 44 bytes), as slicing would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking anything.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check`] accepted it.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks, in this order: the buffer holds a header; versionPTP is 2; the buffer holds
    /// messageLength bytes; the type is one lockstep handles; messageLength covers the
    /// type's fixed part. Bytes beyond messageLength are allowed and ignored. Timestamps are
    /// not checked here but by [`Message::parse`].
    pub fn check(&self) -> Result<(), WireError> {
        self.check_header_len()?;
        let version = self.version();
        if version != PTP_VERSION {
            return Err(WireError::BadVersion { got: version });
        }
        self.check_len()
    }

    /// Checks only lengths: that the buffer holds the header and messageLength bytes, and
    /// that messageLength covers the fixed part of the type. The fixed length of an unknown
    /// type is unknown, so an unsupported type is rejected here too.
    pub fn check_len(&self) -> Result<(), WireError> {
        self.check_header_len()?;
        let got = self.buffer.as_ref().len();
        let declared = usize::from(self.message_length());
        if declared > got {
            return Err(WireError::TooShort {
                needed: declared,
                got,
            });
        }
        let message_type = self.message_type()?;
        let minimum = message_type.fixed_len();
        if declared < minimum {
            return Err(WireError::LengthMismatch {
                message_type,
                declared,
                minimum,
            });
        }
        Ok(())
    }

    fn check_header_len(&self) -> Result<(), WireError> {
        let got = self.buffer.as_ref().len();
        if got < HEADER_LEN {
            return Err(WireError::TooShort {
                needed: HEADER_LEN,
                got,
            });
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref()[at]
    }

    fn array<const N: usize>(&self, at: core::ops::Range<usize>) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.buffer.as_ref()[at]);
        out
    }

    /// The messageType code (low nibble of byte 0), whether supported or not.
    pub fn message_type_code(&self) -> u8 {
        self.byte(field::TYPE) & 0x0F
    }

    /// The message type; an error for types lockstep does not handle (which
    /// [`Packet::new_checked`] has already rejected).
    pub fn message_type(&self) -> Result<MessageType, WireError> {
        MessageType::try_from(self.message_type_code())
    }

    /// majorSdoId (transportSpecific in 2008): the high nibble of byte 0.
    pub fn sdo_id(&self) -> u8 {
        self.byte(field::TYPE) >> 4
    }

    /// versionPTP: the low nibble of byte 1.
    pub fn version(&self) -> u8 {
        self.byte(field::VERSION) & 0x0F
    }

    /// minorVersionPTP: the high nibble of byte 1 (0 for 1588-2008, 1 for 1588-2019).
    pub fn minor_version(&self) -> u8 {
        self.byte(field::VERSION) >> 4
    }

    /// messageLength: the length of the message including TLVs.
    pub fn message_length(&self) -> u16 {
        u16::from_be_bytes(self.array(field::LENGTH))
    }

    /// domainNumber.
    pub fn domain(&self) -> u8 {
        self.byte(field::DOMAIN)
    }

    /// minorSdoId (reserved in 2008).
    pub fn minor_sdo_id(&self) -> u8 {
        self.byte(field::MINOR_SDO_ID)
    }

    /// flagField.
    pub fn flags(&self) -> Flags {
        Flags(u16::from_be_bytes(self.array(field::FLAGS)))
    }

    /// correctionField.
    pub fn correction(&self) -> Correction {
        Correction(i64::from_be_bytes(self.array(field::CORRECTION)))
    }

    /// messageTypeSpecific (reserved in 2008).
    pub fn message_type_specific(&self) -> u32 {
        u32::from_be_bytes(self.array(field::TYPE_SPECIFIC))
    }

    /// sourcePortIdentity.
    pub fn source_port(&self) -> PortIdentity {
        PortIdentity::read(self.array(field::SOURCE_PORT))
    }

    /// sequenceId.
    pub fn sequence_id(&self) -> u16 {
        u16::from_be_bytes(self.array(field::SEQUENCE_ID))
    }

    /// controlField.
    pub fn control_field(&self) -> u8 {
        self.byte(field::CONTROL)
    }

    /// logMessageInterval (0x7F when not meaningful).
    pub fn log_message_interval(&self) -> i8 {
        self.byte(field::LOG_INTERVAL) as i8
    }

    /// The timestamp every timed message starts its body with (originTimestamp,
    /// preciseOriginTimestamp or receiveTimestamp); an error if its nanoseconds are out of
    /// range. On a Signaling these bytes are the targetPortIdentity instead.
    pub fn timestamp(&self) -> Result<PtpTimestamp, WireError> {
        PtpTimestamp::read(self.array(field::TIMESTAMP))
    }

    /// The bytes after the header up to messageLength: the body and any TLVs.
    pub fn payload(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        // `get` rather than slicing, so that an unchecked view with a lying messageLength
        // gets a shorter (or empty) payload instead of a panic.
        let end = usize::from(self.message_length()).min(buf.len());
        buf.get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// The TLVs between the fixed part of the message and messageLength, in order. Empty
    /// for an unsupported type (its fixed part is unknown). Never panics, even on an
    /// unchecked view: a lying messageLength shortens the walk, and a TLV that does not fit
    /// is an error item, after which the walk stops.
    pub fn tlvs(&self) -> Tlvs<'_> {
        let buf = self.buffer.as_ref();
        let start = self
            .message_type()
            .map_or(usize::MAX, MessageType::fixed_len);
        let end = usize::from(self.message_length()).min(buf.len());
        Tlvs {
            rest: buf.get(start..end).unwrap_or(&[]),
            offset: start,
            count: 0,
        }
    }

    // Body fields of Delay_Resp, Announce and Signaling. Private: they are only in bounds
    // once the type is known, and Message::parse is the way to read them.

    fn target_port(&self) -> PortIdentity {
        PortIdentity::read(self.array(field::TARGET_PORT))
    }

    fn requesting_port(&self) -> PortIdentity {
        PortIdentity::read(self.array(field::REQUESTING_PORT))
    }

    fn announce_body(&self) -> Result<AnnounceBody, WireError> {
        Ok(AnnounceBody {
            origin_timestamp: self.timestamp()?,
            current_utc_offset: i16::from_be_bytes(self.array(field::UTC_OFFSET)),
            grandmaster_priority1: self.byte(field::PRIORITY1),
            grandmaster_clock_quality: ClockQuality {
                clock_class: self.byte(field::CLOCK_CLASS),
                clock_accuracy: self.byte(field::CLOCK_ACCURACY),
                offset_scaled_log_variance: u16::from_be_bytes(self.array(field::LOG_VARIANCE)),
            },
            grandmaster_priority2: self.byte(field::PRIORITY2),
            grandmaster_identity: ClockIdentity(self.array(field::GM_IDENTITY)),
            steps_removed: u16::from_be_bytes(self.array(field::STEPS_REMOVED)),
            time_source: self.byte(field::TIME_SOURCE),
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_byte(&mut self, at: usize, value: u8) {
        self.buffer.as_mut()[at] = value;
    }

    fn set_bytes(&mut self, at: core::ops::Range<usize>, value: &[u8]) {
        self.buffer.as_mut()[at].copy_from_slice(value);
    }

    /// Sets the messageType, keeping majorSdoId.
    pub fn set_message_type(&mut self, message_type: MessageType) {
        let sdo = self.byte(field::TYPE) & 0xF0;
        self.set_byte(field::TYPE, sdo | message_type.code());
    }

    /// Sets majorSdoId from the low nibble of `sdo_id`, keeping the messageType.
    pub fn set_sdo_id(&mut self, sdo_id: u8) {
        let code = self.byte(field::TYPE) & 0x0F;
        self.set_byte(field::TYPE, (sdo_id << 4) | code);
    }

    /// Sets versionPTP from the low nibble of `version`, keeping minorVersionPTP.
    pub fn set_version(&mut self, version: u8) {
        let minor = self.byte(field::VERSION) & 0xF0;
        self.set_byte(field::VERSION, minor | (version & 0x0F));
    }

    /// Sets minorVersionPTP from the low nibble of `minor_version`, keeping versionPTP.
    pub fn set_minor_version(&mut self, minor_version: u8) {
        let version = self.byte(field::VERSION) & 0x0F;
        self.set_byte(field::VERSION, (minor_version << 4) | version);
    }

    /// Sets messageLength.
    pub fn set_message_length(&mut self, length: u16) {
        self.set_bytes(field::LENGTH, &length.to_be_bytes());
    }

    /// Sets domainNumber.
    pub fn set_domain(&mut self, domain: u8) {
        self.set_byte(field::DOMAIN, domain);
    }

    /// Sets minorSdoId.
    pub fn set_minor_sdo_id(&mut self, minor_sdo_id: u8) {
        self.set_byte(field::MINOR_SDO_ID, minor_sdo_id);
    }

    /// Sets flagField.
    pub fn set_flags(&mut self, flags: Flags) {
        self.set_bytes(field::FLAGS, &flags.0.to_be_bytes());
    }

    /// Sets correctionField.
    pub fn set_correction(&mut self, correction: Correction) {
        self.set_bytes(field::CORRECTION, &correction.0.to_be_bytes());
    }

    /// Sets messageTypeSpecific.
    pub fn set_message_type_specific(&mut self, value: u32) {
        self.set_bytes(field::TYPE_SPECIFIC, &value.to_be_bytes());
    }

    /// Sets sourcePortIdentity.
    pub fn set_source_port(&mut self, port: PortIdentity) {
        self.set_bytes(field::SOURCE_PORT, &port.write());
    }

    /// Sets sequenceId.
    pub fn set_sequence_id(&mut self, sequence_id: u16) {
        self.set_bytes(field::SEQUENCE_ID, &sequence_id.to_be_bytes());
    }

    /// Sets controlField.
    pub fn set_control_field(&mut self, control: u8) {
        self.set_byte(field::CONTROL, control);
    }

    /// Sets logMessageInterval.
    pub fn set_log_message_interval(&mut self, interval: i8) {
        self.set_byte(field::LOG_INTERVAL, interval as u8);
    }

    /// Sets the timestamp that starts the body. Fails, writing nothing, if the timestamp does
    /// not fit the field (see [`PtpTimestamp::validate`]).
    pub fn set_timestamp(&mut self, timestamp: PtpTimestamp) -> Result<(), WireError> {
        timestamp.validate()?;
        self.set_bytes(field::TIMESTAMP, &timestamp.write());
        Ok(())
    }

    fn set_requesting_port(&mut self, port: PortIdentity) {
        self.set_bytes(field::REQUESTING_PORT, &port.write());
    }

    /// Writes a Signaling body into a buffer of its [`Message::buffer_len`].
    fn set_signaling_body(&mut self, body: &SignalingBody) {
        self.set_bytes(field::TARGET_PORT, &body.target_port.write());
        let mut at = MessageType::Signaling.fixed_len();
        for tlv in body.tlvs() {
            let end = at + TLV_HEADER_LEN + tlv.value_len();
            tlv.write(&mut self.buffer.as_mut()[at..end]);
            at = end;
        }
    }

    /// Writes an Announce body whose timestamp the caller has validated.
    fn set_announce_body(&mut self, body: &AnnounceBody) {
        let quality = body.grandmaster_clock_quality;
        self.set_bytes(field::TIMESTAMP, &body.origin_timestamp.write());
        self.set_bytes(field::UTC_OFFSET, &body.current_utc_offset.to_be_bytes());
        self.set_byte(field::ANNOUNCE_RESERVED, 0);
        self.set_byte(field::PRIORITY1, body.grandmaster_priority1);
        self.set_byte(field::CLOCK_CLASS, quality.clock_class);
        self.set_byte(field::CLOCK_ACCURACY, quality.clock_accuracy);
        self.set_bytes(
            field::LOG_VARIANCE,
            &quality.offset_scaled_log_variance.to_be_bytes(),
        );
        self.set_byte(field::PRIORITY2, body.grandmaster_priority2);
        self.set_bytes(field::GM_IDENTITY, &body.grandmaster_identity.0);
        self.set_bytes(field::STEPS_REMOVED, &body.steps_removed.to_be_bytes());
        self.set_byte(field::TIME_SOURCE, body.time_source);
    }
}

/// The common header, minus what the rest of the message determines: messageType comes
/// from the [`Body`], versionPTP is always 2, messageLength is computed on emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// majorSdoId (transportSpecific in 2008), the high nibble of byte 0; only 4 bits are
    /// sent.
    pub sdo_id: u8,
    /// minorVersionPTP; only 4 bits are sent.
    pub minor_version: u8,
    /// domainNumber: clocks in different domains ignore each other.
    pub domain: u8,
    /// minorSdoId (reserved in 2008).
    pub minor_sdo_id: u8,
    /// flagField.
    pub flags: Flags,
    /// correctionField: residence and path corrections accumulated by transparent clocks.
    pub correction: Correction,
    /// messageTypeSpecific (reserved in 2008).
    pub message_type_specific: u32,
    /// The port that sent the message.
    pub source_port: PortIdentity,
    /// sequenceId: pairs a Follow_Up with its Sync and a Delay_Resp with its Delay_Req.
    pub sequence_id: u16,
    /// controlField (obsolete, but expected by PTPv1 hardware).
    pub control_field: u8,
    /// logMessageInterval: log2 of the sender's interval for this type, 0x7F if none.
    pub log_message_interval: i8,
}

impl Header {
    /// A header from `source_port` in `domain`, with every other field zero and
    /// logMessageInterval 0x7F ("not meaningful").
    pub fn new(source_port: PortIdentity, domain: u8, sequence_id: u16) -> Header {
        Header {
            sdo_id: 0,
            minor_version: 0,
            domain,
            minor_sdo_id: 0,
            flags: Flags::EMPTY,
            correction: Correction::ZERO,
            message_type_specific: 0,
            source_port,
            sequence_id,
            control_field: 0,
            log_message_interval: 0x7F,
        }
    }
}

/// grandmasterClockQuality of an Announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockQuality {
    /// clockClass: 6 for a clock locked to a primary reference, 248 for a default clock.
    pub clock_class: u8,
    /// clockAccuracy, an enumeration (0x20 is within 25 ns, 0xFE unknown).
    pub clock_accuracy: u8,
    /// offsetScaledLogVariance: the clock's stability, 0xFFFF when unknown.
    pub offset_scaled_log_variance: u16,
}

/// The body of an Announce: what the best-master choice compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceBody {
    /// originTimestamp (coarse; only informative).
    pub origin_timestamp: PtpTimestamp,
    /// currentUtcOffset: TAI − UTC in seconds.
    pub current_utc_offset: i16,
    /// grandmasterPriority1: lower wins, compared first.
    pub grandmaster_priority1: u8,
    /// grandmasterClockQuality.
    pub grandmaster_clock_quality: ClockQuality,
    /// grandmasterPriority2: lower wins, compared after the quality.
    pub grandmaster_priority2: u8,
    /// grandmasterIdentity: the final tie-breaker.
    pub grandmaster_identity: ClockIdentity,
    /// stepsRemoved: boundary clocks between the grandmaster and the sender.
    pub steps_removed: u16,
    /// timeSource, an enumeration (0x20 GPS, 0xA0 internal oscillator).
    pub time_source: u8,
}

/// One TLV as it lies in a message: its type and the bytes of its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// tlvType.
    pub tlv_type: u16,
    /// The value: lengthField bytes after the TLV's header.
    pub value: &'a [u8],
}

/// The TLVs of a message, from [`Packet::tlvs`]: each item a [`Tlv`] or the error that
/// ended the walk. At most [`MAX_TLVS`] are given; one more is [`WireError::TooManyTlvs`].
#[derive(Clone, Debug)]
pub struct Tlvs<'a> {
    /// What is left to walk, up to messageLength.
    rest: &'a [u8],
    /// Where `rest` starts in the message, for error reports.
    offset: usize,
    /// TLVs given so far.
    count: usize,
}

impl<'a> Tlvs<'a> {
    /// Ends the walk with `e`: an error is the last item.
    fn fail(&mut self, e: WireError) -> Option<Result<Tlv<'a>, WireError>> {
        self.rest = &[];
        Some(Err(e))
    }
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Result<Tlv<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.count == MAX_TLVS {
            return self.fail(WireError::TooManyTlvs { limit: MAX_TLVS });
        }
        let got = self.rest.len();
        let Some((head, tail)) = self.rest.split_first_chunk::<TLV_HEADER_LEN>() else {
            return self.fail(WireError::TlvTruncated {
                offset: self.offset,
                needed: TLV_HEADER_LEN,
                got,
            });
        };
        let [t0, t1, l0, l1] = *head;
        let length = usize::from(u16::from_be_bytes([l0, l1]));
        let (Some(value), Some(rest)) = (tail.get(..length), tail.get(length..)) else {
            return self.fail(WireError::TlvTruncated {
                offset: self.offset,
                needed: TLV_HEADER_LEN + length,
                got,
            });
        };
        self.rest = rest;
        self.offset += TLV_HEADER_LEN + length;
        self.count += 1;
        Some(Ok(Tlv {
            tlv_type: u16::from_be_bytes([t0, t1]),
            value,
        }))
    }
}

/// The value of a REQUEST_UNICAST_TRANSMISSION TLV (§16.1.4.1): a slave asks a master to
/// send it one type of message at a rate for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnicastRequest {
    /// The messageType code asked for (Sync 0x0, Announce 0xB, Delay_Resp 0x9, ...): a code
    /// rather than a [`MessageType`], since a peer may ask for types lockstep does not
    /// speak. Only the low 4 bits are sent.
    pub message_type: u8,
    /// logInterMessagePeriod: log2 of the mean interval asked for, in seconds (-4 is 16 a
    /// second).
    pub log_inter_message_period: i8,
    /// durationField: for how many seconds.
    pub duration_secs: u32,
}

/// The value of a GRANT_UNICAST_TRANSMISSION TLV (§16.1.4.2): what a master grants in
/// answer to a [`UnicastRequest`]. A `duration_secs` of 0 refuses the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnicastGrant {
    /// The messageType code granted (that of the request); only the low 4 bits are sent.
    pub message_type: u8,
    /// logInterMessagePeriod: log2 of the mean interval granted, in seconds.
    pub log_inter_message_period: i8,
    /// durationField: for how many seconds; 0 means refused.
    pub duration_secs: u32,
    /// The R flag: the grantor invites the slave to renew before the grant runs out.
    pub renewal_invited: bool,
}

/// A TLV of a Signaling message that lockstep reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalingTlv {
    /// REQUEST_UNICAST_TRANSMISSION.
    Request(UnicastRequest),
    /// GRANT_UNICAST_TRANSMISSION.
    Grant(UnicastGrant),
}

impl SignalingTlv {
    /// Its tlvType.
    pub fn tlv_type(&self) -> u16 {
        match self {
            SignalingTlv::Request(_) => TLV_REQUEST_UNICAST_TRANSMISSION,
            SignalingTlv::Grant(_) => TLV_GRANT_UNICAST_TRANSMISSION,
        }
    }

    /// Its lengthField: the bytes of its value.
    pub fn value_len(&self) -> usize {
        match self {
            SignalingTlv::Request(_) => REQUEST_LEN,
            SignalingTlv::Grant(_) => GRANT_LEN,
        }
    }

    /// Decodes the value of a TLV of a known type; `None` for other types.
    fn parse(tlv: Tlv<'_>) -> Option<Result<SignalingTlv, WireError>> {
        let expected = match tlv.tlv_type {
            TLV_REQUEST_UNICAST_TRANSMISSION => REQUEST_LEN,
            TLV_GRANT_UNICAST_TRANSMISSION => GRANT_LEN,
            _ => return None,
        };
        if tlv.value.len() != expected {
            return Some(Err(WireError::TlvLengthMismatch {
                tlv_type: tlv.tlv_type,
                declared: tlv.value.len(),
                expected,
            }));
        }
        // The length is checked, so the value holds the six bytes both TLVs start with. The
        // low nibble of the first is reserved and ignored.
        let v = tlv.value;
        let message_type = v[0] >> 4;
        let log_inter_message_period = v[1] as i8;
        let duration_secs = u32::from_be_bytes([v[2], v[3], v[4], v[5]]);
        Some(Ok(if tlv.tlv_type == TLV_REQUEST_UNICAST_TRANSMISSION {
            SignalingTlv::Request(UnicastRequest {
                message_type,
                log_inter_message_period,
                duration_secs,
            })
        } else {
            // v[6] is reserved; of v[7] only bit 0 (R) is defined.
            SignalingTlv::Grant(UnicastGrant {
                message_type,
                log_inter_message_period,
                duration_secs,
                renewal_invited: v[7] & 1 == 1,
            })
        }))
    }

    /// Writes the whole TLV, header and value, into `out`, which is
    /// `TLV_HEADER_LEN + value_len()` long.
    fn write(&self, out: &mut [u8]) {
        let (message_type, log, duration, flags) = match *self {
            SignalingTlv::Request(r) => (
                r.message_type,
                r.log_inter_message_period,
                r.duration_secs,
                None,
            ),
            SignalingTlv::Grant(g) => (
                g.message_type,
                g.log_inter_message_period,
                g.duration_secs,
                Some(u8::from(g.renewal_invited)),
            ),
        };
        // value_len is at most GRANT_LEN, so the cast is lossless.
        let length = self.value_len() as u16;
        out[0..2].copy_from_slice(&self.tlv_type().to_be_bytes());
        out[2..4].copy_from_slice(&length.to_be_bytes());
        out[4] = (message_type & 0x0F) << 4;
        out[5] = log as u8;
        out[6..10].copy_from_slice(&duration.to_be_bytes());
        if let Some(flags) = flags {
            out[10] = 0;
            out[11] = flags;
        }
    }
}

/// Fills the unused slots of a [`SignalingBody`], so that two bodies with the same TLVs
/// compare equal.
const NO_TLV: SignalingTlv = SignalingTlv::Request(UnicastRequest {
    message_type: 0,
    log_inter_message_period: 0,
    duration_secs: 0,
});

/// The body of a Signaling message: whom it is for and up to [`MAX_SIGNALING_TLVS`]
/// negotiation TLVs, kept inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalingBody {
    /// targetPortIdentity: the port the message is for, or [`PortIdentity::WILDCARD`].
    pub target_port: PortIdentity,
    /// The TLVs in order; the slots from `len` on hold [`NO_TLV`].
    tlvs: [SignalingTlv; MAX_SIGNALING_TLVS],
    len: usize,
}

impl SignalingBody {
    /// A body for `target_port` with no TLVs yet.
    pub fn new(target_port: PortIdentity) -> SignalingBody {
        SignalingBody {
            target_port,
            tlvs: [NO_TLV; MAX_SIGNALING_TLVS],
            len: 0,
        }
    }

    /// A body for `target_port` carrying `tlv`.
    pub fn with_tlv(target_port: PortIdentity, tlv: SignalingTlv) -> SignalingBody {
        let mut body = SignalingBody::new(target_port);
        body.tlvs[0] = tlv;
        body.len = 1;
        body
    }

    /// Appends `tlv`; fails with [`WireError::TooManyTlvs`] when the body is full.
    pub fn push(&mut self, tlv: SignalingTlv) -> Result<(), WireError> {
        let slot = self.tlvs.get_mut(self.len).ok_or(WireError::TooManyTlvs {
            limit: MAX_SIGNALING_TLVS,
        })?;
        *slot = tlv;
        self.len += 1;
        Ok(())
    }

    /// The TLVs, in the order they are sent.
    pub fn tlvs(&self) -> &[SignalingTlv] {
        &self.tlvs[..self.len]
    }

    /// The bytes the TLVs take on the wire.
    fn tlvs_len(&self) -> usize {
        self.tlvs()
            .iter()
            .map(|t| TLV_HEADER_LEN + t.value_len())
            .sum()
    }
}

/// The body of a message, which also says its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// A Sync.
    Sync {
        /// When the Sync left the leader (approximate if the header has the two-step flag).
        origin_timestamp: PtpTimestamp,
    },
    /// A Delay_Req.
    DelayReq {
        /// When the Delay_Req left (approximate; receivers use their own send timestamp).
        origin_timestamp: PtpTimestamp,
    },
    /// A Follow_Up.
    FollowUp {
        /// When the Sync with the same sequenceId left the leader.
        precise_origin_timestamp: PtpTimestamp,
    },
    /// A Delay_Resp.
    DelayResp {
        /// When the Delay_Req arrived at the leader.
        receive_timestamp: PtpTimestamp,
        /// The port that sent the Delay_Req.
        requesting_port: PortIdentity,
    },
    /// An Announce.
    Announce(AnnounceBody),
    /// A Signaling.
    Signaling(SignalingBody),
}

impl Body {
    /// The type of message this body belongs to.
    pub fn message_type(&self) -> MessageType {
        match self {
            Body::Sync { .. } => MessageType::Sync,
            Body::DelayReq { .. } => MessageType::DelayReq,
            Body::FollowUp { .. } => MessageType::FollowUp,
            Body::DelayResp { .. } => MessageType::DelayResp,
            Body::Announce(_) => MessageType::Announce,
            Body::Signaling(_) => MessageType::Signaling,
        }
    }

    /// The timestamp the body starts with; a Signaling has none.
    fn timestamp(&self) -> Option<PtpTimestamp> {
        match *self {
            Body::Sync { origin_timestamp } | Body::DelayReq { origin_timestamp } => {
                Some(origin_timestamp)
            }
            Body::FollowUp {
                precise_origin_timestamp,
            } => Some(precise_origin_timestamp),
            Body::DelayResp {
                receive_timestamp, ..
            } => Some(receive_timestamp),
            Body::Announce(announce) => Some(announce.origin_timestamp),
            Body::Signaling(_) => None,
        }
    }
}

/// A PTP message, owned and decoded: the representation the master and slave work with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The common header.
    pub header: Header,
    /// The type-specific body.
    pub body: Body,
}

impl Message {
    /// Decodes a datagram. Bytes beyond messageLength are ignored, and so are TLVs between
    /// the fixed part and messageLength of a timed message. See [`Packet::check`] for the
    /// order of the checks; after them, a timestamp with nanoseconds of 10^9 or more is
    /// rejected, and a Signaling's TLVs are walked: negotiation TLVs are kept, others
    /// skipped, and one that does not fit is an error (see the module docs).
    pub fn parse(bytes: &[u8]) -> Result<Message, WireError> {
        Message::parse_packet(&Packet::new_unchecked(bytes))
    }

    /// Decodes the message in a packet view, checked or not (it is checked again here).
    pub fn parse_packet<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Message, WireError> {
        packet.check()?;
        let header = Header {
            sdo_id: packet.sdo_id(),
            minor_version: packet.minor_version(),
            domain: packet.domain(),
            minor_sdo_id: packet.minor_sdo_id(),
            flags: packet.flags(),
            correction: packet.correction(),
            message_type_specific: packet.message_type_specific(),
            source_port: packet.source_port(),
            sequence_id: packet.sequence_id(),
            control_field: packet.control_field(),
            log_message_interval: packet.log_message_interval(),
        };
        // check() accepted the type and that the buffer covers its fixed length, so the body
        // accessors below are in bounds.
        let body = match packet.message_type()? {
            MessageType::Sync => Body::Sync {
                origin_timestamp: packet.timestamp()?,
            },
            MessageType::DelayReq => Body::DelayReq {
                origin_timestamp: packet.timestamp()?,
            },
            MessageType::FollowUp => Body::FollowUp {
                precise_origin_timestamp: packet.timestamp()?,
            },
            MessageType::DelayResp => Body::DelayResp {
                receive_timestamp: packet.timestamp()?,
                requesting_port: packet.requesting_port(),
            },
            MessageType::Announce => Body::Announce(packet.announce_body()?),
            MessageType::Signaling => {
                let mut body = SignalingBody::new(packet.target_port());
                for tlv in packet.tlvs() {
                    // Unknown TLVs are skipped, as §14.1 has a receiver do; Tlvs bounds
                    // how many there can be.
                    if let Some(known) = SignalingTlv::parse(tlv?) {
                        body.push(known?)?;
                    }
                }
                Body::Signaling(body)
            }
        };
        Ok(Message { header, body })
    }

    /// The length [`Message::emit`] writes: the fixed length of the type, plus a Signaling's
    /// TLVs. At most [`MAX_MESSAGE_LEN`].
    pub fn buffer_len(&self) -> usize {
        let tlvs = match &self.body {
            Body::Signaling(s) => s.tlvs_len(),
            _ => 0,
        };
        self.body.message_type().fixed_len() + tlvs
    }

    /// Writes the message into the start of `buf` and returns its length,
    /// [`Message::buffer_len`]. messageLength is set to that length and versionPTP to 2.
    ///
    /// Fails, writing nothing, with [`WireError::BufferTooSmall`] if `buf` is short, or with
    /// [`WireError::InvalidTimestamp`] or [`WireError::TimestampOutOfRange`] if the body's
    /// timestamp does not fit the wire format.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        let got = buf.len();
        let Some(buf) = buf.get_mut(..len) else {
            return Err(WireError::BufferTooSmall { needed: len, got });
        };
        if let Some(timestamp) = self.body.timestamp() {
            timestamp.validate()?;
        }

        let header = &self.header;
        let mut packet = Packet::new_unchecked(buf);
        packet.set_sdo_id(header.sdo_id);
        packet.set_message_type(self.body.message_type());
        packet.set_minor_version(header.minor_version);
        packet.set_version(PTP_VERSION);
        // Lengths are at most MAX_MESSAGE_LEN, so the cast is lossless.
        packet.set_message_length(len as u16);
        packet.set_domain(header.domain);
        packet.set_minor_sdo_id(header.minor_sdo_id);
        packet.set_flags(header.flags);
        packet.set_correction(header.correction);
        packet.set_message_type_specific(header.message_type_specific);
        packet.set_source_port(header.source_port);
        packet.set_sequence_id(header.sequence_id);
        packet.set_control_field(header.control_field);
        packet.set_log_message_interval(header.log_message_interval);
        match &self.body {
            Body::Sync { origin_timestamp } | Body::DelayReq { origin_timestamp } => {
                packet.set_timestamp(*origin_timestamp)?;
            }
            Body::FollowUp {
                precise_origin_timestamp,
            } => packet.set_timestamp(*precise_origin_timestamp)?,
            Body::DelayResp {
                receive_timestamp,
                requesting_port,
            } => {
                packet.set_timestamp(*receive_timestamp)?;
                packet.set_requesting_port(*requesting_port);
            }
            Body::Announce(announce) => packet.set_announce_body(announce),
            Body::Signaling(signaling) => packet.set_signaling_body(signaling),
        }
        Ok(len)
    }

    fn with_control(mut header: Header, body: Body) -> Message {
        header.control_field = body.message_type().control_field();
        Message { header, body }
    }

    /// A Sync with controlField 0. The twoStepFlag is set if `two_step` and cleared
    /// otherwise, whatever `header` had.
    pub fn sync(mut header: Header, origin_timestamp: PtpTimestamp, two_step: bool) -> Message {
        header.flags = if two_step {
            header.flags.with(Flags::TWO_STEP)
        } else {
            header.flags.without(Flags::TWO_STEP)
        };
        Message::with_control(header, Body::Sync { origin_timestamp })
    }

    /// A Follow_Up with controlField 2.
    pub fn follow_up(header: Header, precise_origin_timestamp: PtpTimestamp) -> Message {
        Message::with_control(
            header,
            Body::FollowUp {
                precise_origin_timestamp,
            },
        )
    }

    /// A Delay_Req with controlField 1.
    pub fn delay_req(header: Header, origin_timestamp: PtpTimestamp) -> Message {
        Message::with_control(header, Body::DelayReq { origin_timestamp })
    }

    /// A Delay_Resp with controlField 3.
    pub fn delay_resp(
        header: Header,
        receive_timestamp: PtpTimestamp,
        requesting_port: PortIdentity,
    ) -> Message {
        Message::with_control(
            header,
            Body::DelayResp {
                receive_timestamp,
                requesting_port,
            },
        )
    }

    /// An Announce with controlField 5.
    pub fn announce(header: Header, body: AnnounceBody) -> Message {
        Message::with_control(header, Body::Announce(body))
    }

    /// A Signaling with controlField 5. Its logMessageInterval should be 0x7F, as
    /// [`Header::new`] leaves it.
    pub fn signaling(header: Header, body: SignalingBody) -> Message {
        Message::with_control(header, Body::Signaling(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_offsets_tile_each_message() {
        // The offsets are hand-written; check they abut so a typo cannot leave a gap.
        assert_eq!(field::SOURCE_PORT.len(), PORT_IDENTITY_LEN);
        assert_eq!(field::TIMESTAMP.start, HEADER_LEN);
        assert_eq!(field::TIMESTAMP.len(), TIMESTAMP_LEN);
        assert_eq!(field::TIMESTAMP.end, MessageType::Sync.fixed_len());
        assert_eq!(
            field::REQUESTING_PORT.end,
            MessageType::DelayResp.fixed_len()
        );
        assert_eq!(field::TIME_SOURCE + 1, MessageType::Announce.fixed_len());
        assert_eq!(field::TARGET_PORT.len(), PORT_IDENTITY_LEN);
        assert_eq!(field::TARGET_PORT.end, MessageType::Signaling.fixed_len());
        assert!(MessageType::Announce.fixed_len() <= MAX_MESSAGE_LEN);
    }

    #[test]
    fn reject_reasons_index_densely() {
        for (i, reason) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }

    #[test]
    fn payload_never_panics_on_unchecked_views() {
        let mut bytes = [0u8; 40];
        bytes[2..4].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(Packet::new_unchecked(&bytes[..]).payload().len(), 6);
        bytes[2..4].copy_from_slice(&3u16.to_be_bytes());
        assert!(Packet::new_unchecked(&bytes[..]).payload().is_empty());
    }
}
