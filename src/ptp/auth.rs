//! The AUTHENTICATION TLV of IEEE 1588-2019 §16.14: a keyed tag on every PTP message
//! between lockstep nodes, and a sequence check against replay.
//!
//! Without it, anyone who can send on the home network can forge a leader's Follow_Up and
//! pull a follower's clock off (the attack of issue 14: a Follow_Up for the *next* Sync,
//! moved by 2 ms and sent early). With it, a forged message fails the tag, and a captured
//! one sent again fails the sequence check.
//!
//! - [`PtpAuth`] holds the 32-byte key, its keyID and the security parameters pointer (SPP).
//!   [`PtpAuth::sign`] appends the TLV to an emitted message in place;
//!   [`PtpAuth::verify`] checks a received one. Both are stateless and allocate nothing.
//! - [`ReplayGuard`] remembers the last sequenceId accepted per source port identity and
//!   message type, in a table of fixed size.
//!
//! [`PtpMaster`](super::PtpMaster) and [`PtpSlave`](super::PtpSlave) use both when their
//! config's `auth` is set: every message they send is signed, and every message they
//! receive without a valid TLV, or with a stale sequenceId, is dropped and counted in
//! [`PtpStats::auth`](super::PtpStats::auth) by reason. Where the key comes from is the
//! caller's business (lockstep derives it from the household handshake).
//!
//! ## Layout
//!
//! The TLV is appended after the message's body (and after any other TLV: it must be the
//! last), and messageLength in the header grows by its 26 bytes. All fields big-endian;
//! offsets from the start of the TLV:
//!
//! | offset | length | field                                                           |
//! |--------|--------|-----------------------------------------------------------------|
//! | 0      | 2      | tlvType: AUTHENTICATION, 0x8009                                 |
//! | 2      | 2      | lengthField: 22, the bytes that follow                          |
//! | 4      | 1      | securityParameterIndex (SPP), [`PtpAuth::spp`]                  |
//! | 5      | 1      | secParamIndicator: 0 (no disclosedKey, sequenceNo or RES field) |
//! | 6      | 4      | keyID, [`PtpAuth::key_id`]                                      |
//! | 10     | 16     | ICV                                                             |
//!
//! The ICV is HMAC-SHA256 with the 32-byte key, truncated to its first 16 bytes
//! (HMAC-SHA256-128), over every byte of the message from the start of the header to the
//! start of the ICV: the header as sent (messageLength counting the TLV, correctionField
//! included, since lockstep has no transparent clocks to change it), the body, any TLVs
//! before this one, and the first 10 bytes of this TLV. The optional fields of §16.14.3
//! (disclosedKey for delayed processing, sequenceNo, RES) are not used: a TLV whose
//! secParamIndicator sets any bit, or whose lengthField is not 22, is refused as malformed.
//!
//! ## Replay
//!
//! A tag proves who made a message, not that it is new. [`ReplayGuard`] keeps, per source
//! port identity and message type, the highest sequenceId accepted and which of the 63 before
//! it were accepted (a 64-message window, as SRTP and IPsec keep). A message is accepted if
//! its sequenceId is ahead of the highest by 1 to 32767 (modulo 2^16, so the sequence
//! wraps), or lies in the window and has not been accepted yet (it was overtaken on the way:
//! Wi-Fi reorders Syncs sent 2.6 ms apart in a burst). Anything else is a replay: a message
//! sent again, or one more than 63 behind. The state is per [`PtpAuth`] key: a sender whose
//! sequence starts again from 0 (a restarted process with the same port identity) needs a
//! new key, or it is refused until its sequence passes the old one. A gap of more than 32767
//! messages from one source (half an hour at the steady Sync rate) reads as old, for the same
//! reason.
//!
//! ## Interop
//!
//! The layout follows the standard and linuxptp 4.x's implementation of it (an SA with
//! HMAC-SHA256-128, no sequenceNo or RES, immediate processing). No interop test exists: the
//! ptp4l on this machine (3.1.1) has no authentication.

use core::fmt;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::wire::{HEADER_LEN, MessageType, Packet, PortIdentity};

type HmacSha256 = Hmac<Sha256>;

/// tlvType of the AUTHENTICATION TLV (§14.1, Table 52).
pub const TLV_AUTHENTICATION: u16 = 0x8009;
/// Bytes of the ICV: HMAC-SHA256 truncated to 128 bits.
pub const ICV_LEN: usize = 16;
/// Bytes the AUTHENTICATION TLV adds to a message: header, SPP, secParamIndicator, keyID and
/// ICV.
pub const AUTH_TLV_LEN: usize = 4 + 1 + 1 + 4 + ICV_LEN;
/// The TLV's lengthField: what follows its tlvType and lengthField.
const AUTH_VALUE_LEN: usize = AUTH_TLV_LEN - 4;
/// Bytes of the TLV that come before the ICV, and so are covered by it.
const AUTH_COVERED_LEN: usize = AUTH_TLV_LEN - ICV_LEN;

/// The key and security association a node signs and checks PTP messages with.
///
/// `Copy`, so that it can sit in the plain-data [`SlaveConfig`](super::SlaveConfig) and
/// [`MasterConfig`](super::MasterConfig); its `Debug` shows the keyID and SPP, never the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PtpAuth {
    key: [u8; 32],
    key_id: u32,
    spp: u8,
}

impl fmt::Debug for PtpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PtpAuth")
            .field("key_id", &self.key_id)
            .field("spp", &self.spp)
            .finish_non_exhaustive()
    }
}

/// The keys of one clock relation: one signs what this side sends, the other checks what
/// it receives. Between lockstep nodes each direction of each session has its own key
/// ([`KeyPurpose`](crate::control::KeyPurpose)); [`PtpKeys::shared`] uses one key both ways.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PtpKeys {
    /// Signs every message this side sends.
    pub send: PtpAuth,
    /// Checks every message this side receives.
    pub receive: PtpAuth,
}

impl PtpKeys {
    /// `send` for what this side sends, `receive` for what it takes.
    pub fn new(send: PtpAuth, receive: PtpAuth) -> PtpKeys {
        PtpKeys { send, receive }
    }

    /// One key both ways: every node that holds it trusts every other.
    pub fn shared(auth: PtpAuth) -> PtpKeys {
        PtpKeys {
            send: auth,
            receive: auth,
        }
    }
}

/// Why a received message was not accepted as authentic. Counted per reason in
/// [`AuthStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// The message's last TLV is not an AUTHENTICATION TLV (or it has no TLV at all).
    #[error("no AUTHENTICATION TLV")]
    Missing,
    /// The message or its AUTHENTICATION TLV does not parse: a TLV that runs past
    /// messageLength, a lengthField other than 22, or optional fields this side does not
    /// use.
    #[error("malformed AUTHENTICATION TLV")]
    Malformed,
    /// The TLV names a security association (SPP) or key this side does not have.
    #[error("unknown key: SPP {spp}, keyID {key_id}")]
    UnknownKey {
        /// The SPP that came.
        spp: u8,
        /// The keyID that came.
        key_id: u32,
    },
    /// The ICV does not match the message: forged, or changed on the way.
    #[error("bad ICV")]
    BadTag,
    /// A valid tag, but a sequenceId not ahead of the last accepted from the same source
    /// and of the same type: a message sent again, or a stale one.
    #[error("replayed sequence id {sequence_id} (last accepted {last})")]
    Replay {
        /// The message's sequenceId.
        sequence_id: u16,
        /// The last sequenceId accepted from its source for its type.
        last: u16,
    },
}

/// Messages dropped for want of authentication, by reason (see [`AuthRejection`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// No AUTHENTICATION TLV.
    pub missing: u64,
    /// A TLV that does not parse.
    pub malformed: u64,
    /// An SPP or keyID this side does not have.
    pub unknown_key: u64,
    /// An ICV that does not match.
    pub bad_tag: u64,
    /// A good tag on a stale or repeated sequenceId.
    pub replay: u64,
}

impl AuthStats {
    /// Counts `rejection`.
    pub(crate) fn count(&mut self, rejection: AuthRejection) {
        let counter = match rejection {
            AuthRejection::Missing => &mut self.missing,
            AuthRejection::Malformed => &mut self.malformed,
            AuthRejection::UnknownKey { .. } => &mut self.unknown_key,
            AuthRejection::BadTag => &mut self.bad_tag,
            AuthRejection::Replay { .. } => &mut self.replay,
        };
        *counter += 1;
    }

    /// Every message dropped, whatever the reason.
    pub fn total(&self) -> u64 {
        self.missing + self.malformed + self.unknown_key + self.bad_tag + self.replay
    }
}

/// Why [`PtpAuth::sign`] could not sign a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// `len` is shorter than a PTP header, or longer than the buffer.
    #[error("not a PTP message: {len} bytes in a buffer of {buffer}")]
    NotAMessage {
        /// The length given.
        len: usize,
        /// The buffer's length.
        buffer: usize,
    },
    /// The buffer has no room for the TLV, or the signed message would not fit
    /// messageLength's 16 bits.
    #[error("no room to sign: needed {needed} bytes, got {got}")]
    BufferTooSmall {
        /// Bytes the signed message needs.
        needed: usize,
        /// Bytes the buffer has (or 65535, the most messageLength can say).
        got: usize,
    },
}

impl PtpAuth {
    /// A key with its keyID, in the security association `spp` 0. The key is the caller's:
    /// 32 uniformly random bytes, shared by the nodes that are to trust each other.
    pub fn new(key: &[u8; 32], key_id: u32) -> PtpAuth {
        PtpAuth {
            key: *key,
            key_id,
            spp: 0,
        }
    }

    /// The same key in the security association `spp`.
    pub fn with_spp(self, spp: u8) -> PtpAuth {
        PtpAuth { spp, ..self }
    }

    /// The keyID sent in, and expected of, every TLV.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The securityParameterIndex (SPP) sent in, and expected of, every TLV.
    pub fn spp(&self) -> u8 {
        self.spp
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC pads a key shorter than SHA-256's 64-byte block with zeros; padding it here
        // gives the same MAC through the infallible constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.key);
        <HmacSha256 as KeyInit>::new(&block.into())
    }

    /// Appends the AUTHENTICATION TLV to the message in `buf[..len]` (as [`Message::emit`]
    /// wrote it) and returns the signed message's length, `len +` [`AUTH_TLV_LEN`].
    /// messageLength is set to that length before the ICV is computed. Fails, writing
    /// nothing, if `len` is not a message's length or the buffer has no room.
    ///
    /// [`Message::emit`]: super::Message::emit
    pub fn sign(&self, buf: &mut [u8], len: usize) -> Result<usize, SignError> {
        if len < HEADER_LEN || len > buf.len() {
            return Err(SignError::NotAMessage {
                len,
                buffer: buf.len(),
            });
        }
        let needed = len + AUTH_TLV_LEN;
        let Ok(length_field) = u16::try_from(needed) else {
            return Err(SignError::BufferTooSmall {
                needed,
                got: usize::from(u16::MAX),
            });
        };
        let got = buf.len();
        let Some(out) = buf.get_mut(..needed) else {
            return Err(SignError::BufferTooSmall { needed, got });
        };
        Packet::new_unchecked(&mut *out).set_message_length(length_field);
        let tlv = &mut out[len..];
        tlv[0..2].copy_from_slice(&TLV_AUTHENTICATION.to_be_bytes());
        // AUTH_VALUE_LEN is 22: the cast is lossless.
        tlv[2..4].copy_from_slice(&(AUTH_VALUE_LEN as u16).to_be_bytes());
        tlv[4] = self.spp;
        tlv[5] = 0;
        tlv[6..10].copy_from_slice(&self.key_id.to_be_bytes());
        let covered = len + AUTH_COVERED_LEN;
        let mut mac = self.mac();
        mac.update(&out[..covered]);
        let tag = mac.finalize().into_bytes();
        out[covered..needed].copy_from_slice(&tag[..ICV_LEN]);
        Ok(needed)
    }

    /// Checks that the datagram `buf` is a PTP message whose last TLV is an AUTHENTICATION
    /// TLV with this SPP and keyID and an ICV that matches. Bytes beyond messageLength are
    /// ignored, as by [`Message::parse`]. Never panics, whatever the bytes; the ICV is
    /// compared in constant time. Replay is not checked here (see [`ReplayGuard`]).
    ///
    /// [`Message::parse`]: super::Message::parse
    pub fn verify(&self, buf: &[u8]) -> Result<(), AuthRejection> {
        let packet = Packet::new_checked(buf).map_err(|_| AuthRejection::Malformed)?;
        let mut last = None;
        for tlv in packet.tlvs() {
            last = Some(tlv.map_err(|_| AuthRejection::Malformed)?);
        }
        let Some(tlv) = last.filter(|t| t.tlv_type == TLV_AUTHENTICATION) else {
            return Err(AuthRejection::Missing);
        };
        let Ok(value) = <&[u8; AUTH_VALUE_LEN]>::try_from(tlv.value) else {
            return Err(AuthRejection::Malformed);
        };
        let [spp, indicator, k0, k1, k2, k3, icv @ ..] = value;
        if *indicator != 0 {
            return Err(AuthRejection::Malformed);
        }
        let key_id = u32::from_be_bytes([*k0, *k1, *k2, *k3]);
        if *spp != self.spp || key_id != self.key_id {
            return Err(AuthRejection::UnknownKey { spp: *spp, key_id });
        }
        // The TLV is the last, so its ICV ends at messageLength, which the checked view
        // has shown to lie within the buffer.
        let end = usize::from(packet.message_length());
        let covered = buf.get(..end - ICV_LEN).ok_or(AuthRejection::Malformed)?;
        let mut mac = self.mac();
        mac.update(covered);
        mac.verify_truncated_left(icv)
            .map_err(|_| AuthRejection::BadTag)
    }
}

/// How far behind the highest sequenceId accepted a message may be and still be taken, if
/// it has not been: a message overtaken on the way.
const WINDOW: u16 = 64;
/// How far ahead of the highest sequenceId accepted a message may be; further reads as old.
const MAX_AHEAD: u16 = 0x7FFF;

/// One source's sequenceIds accepted for one message type.
#[derive(Clone, Copy, Debug)]
struct ReplayEntry {
    source: PortIdentity,
    message_type: MessageType,
    /// The highest sequenceId accepted (modulo 2^16).
    last: u16,
    /// Which of the [`WINDOW`] sequenceIds up to `last` were accepted: bit `i` is
    /// `last - i`.
    seen: u64,
    /// When it was last used, in checks: the least recent is replaced when the table is full.
    used: u64,
}

/// The sequence check against replay: the sequenceIds accepted per source port identity and
/// message type (the highest, and which of the 63 before it), in a table of fixed capacity
/// (see the module docs for the rule).
///
/// Feed it only messages whose tag [`PtpAuth::verify`] has accepted, so that only key
/// holders take places in it. When it is full, the source used least recently is forgotten;
/// its next message is then accepted whatever its sequenceId.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    entries: Vec<ReplayEntry>,
    capacity: usize,
    checks: u64,
}

impl ReplayGuard {
    /// A guard remembering up to `capacity` (source, type) pairs (at least 1). The table is
    /// allocated here, once.
    pub fn new(capacity: usize) -> ReplayGuard {
        let capacity = capacity.max(1);
        ReplayGuard {
            entries: Vec::with_capacity(capacity),
            capacity,
            checks: 0,
        }
    }

    /// Accepts `sequence_id` from `source` for `message_type` and remembers it if the pair
    /// is new, if it is ahead of the highest accepted by 1 to 32767 (modulo 2^16), or if it is
    /// one of the 63 before the highest and has not been accepted yet; refuses it as
    /// [`AuthRejection::Replay`] otherwise, remembering nothing.
    pub fn check(
        &mut self,
        source: PortIdentity,
        message_type: MessageType,
        sequence_id: u16,
    ) -> Result<(), AuthRejection> {
        self.checks += 1;
        let used = self.checks;
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.source == source && e.message_type == message_type)
        {
            let ahead = sequence_id.wrapping_sub(e.last);
            if (1..=MAX_AHEAD).contains(&ahead) {
                e.seen = e.seen.checked_shl(u32::from(ahead)).unwrap_or(0) | 1;
                e.last = sequence_id;
            } else {
                let behind = e.last.wrapping_sub(sequence_id);
                let bit = if behind < WINDOW { 1u64 << behind } else { 0 };
                if bit == 0 || e.seen & bit != 0 {
                    return Err(AuthRejection::Replay {
                        sequence_id,
                        last: e.last,
                    });
                }
                e.seen |= bit;
            }
            e.used = used;
            return Ok(());
        }
        let entry = ReplayEntry {
            source,
            message_type,
            last: sequence_id,
            seen: 1,
            used,
        };
        if self.entries.len() < self.capacity {
            self.entries.push(entry);
        } else if let Some(oldest) = self.entries.iter_mut().min_by_key(|e| e.used) {
            *oldest = entry;
        }
        Ok(())
    }

    /// Forgets every source.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// How many (source, type) pairs are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no pair is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ptp::wire::{ClockIdentity, Header, Message, PtpTimestamp};

    fn port(n: u8) -> PortIdentity {
        PortIdentity {
            clock_identity: ClockIdentity([n; 8]),
            port_number: 1,
        }
    }

    #[test]
    fn the_tlv_lies_as_the_module_docs_say() {
        let auth = PtpAuth::new(&[7; 32], 0x0102_0304).with_spp(9);
        let msg = Message::follow_up(Header::new(port(1), 0, 5), PtpTimestamp::default());
        let mut buf = [0u8; 128];
        let len = msg.emit(&mut buf).unwrap();
        let signed = auth.sign(&mut buf, len).unwrap();
        assert_eq!(signed, len + 26);
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]) as usize, signed);
        let tlv = &buf[len..signed];
        assert_eq!(&tlv[..10], &[0x80, 0x09, 0, 22, 9, 0, 1, 2, 3, 4]);
        // The ICV is HMAC-SHA256 over everything before it, cut to 16 bytes.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&[7; 32]).unwrap();
        mac.update(&buf[..len + 10]);
        assert_eq!(&tlv[10..], &mac.finalize().into_bytes()[..16]);
        assert_eq!(auth.verify(&buf[..signed]), Ok(()));
    }

    #[test]
    fn the_guard_takes_sequences_ahead_through_the_wrap_and_refuses_the_rest() {
        let mut g = ReplayGuard::new(2);
        let (a, sync) = (port(1), MessageType::Sync);
        assert_eq!(g.check(a, sync, 65534), Ok(()));
        assert_eq!(g.check(a, sync, 65535), Ok(()));
        assert_eq!(g.check(a, sync, 1), Ok(()), "across the wrap");
        assert!(matches!(
            g.check(a, sync, 1),
            Err(AuthRejection::Replay { last: 1, .. })
        ));
        assert!(g.check(a, sync, 65535).is_err(), "seen, across the wrap");
        assert_eq!(g.check(a, sync, 0), Ok(()), "overtaken, not seen yet");
        assert!(g.check(a, sync, 0).is_err(), "seen now");
        assert!(
            g.check(a, sync, 1u16.wrapping_sub(64)).is_err(),
            "out of the window"
        );
        assert!(
            g.check(a, sync, 1 + 0x8000).is_err(),
            "too far ahead reads as old"
        );
        assert_eq!(g.check(a, sync, 1 + 0x7FFF), Ok(()));
        // Types and sources are separate sequences; the least recent is forgotten when full.
        assert_eq!(g.check(a, MessageType::FollowUp, 1), Ok(()));
        assert_eq!(g.check(port(2), sync, 1), Ok(()));
        assert_eq!(g.len(), 2);
        assert_eq!(g.check(a, MessageType::FollowUp, 2), Ok(()));
        assert_eq!(g.check(a, sync, 3), Ok(()), "forgotten: taken as new");
    }
}
