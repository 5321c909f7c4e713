//! Sealed control frames: every frame after the Welcome carries a tag that only the two ends
//! of the session can make.
//!
//! The handshake proves the household key once, at the start of a connection. Without more,
//! whoever can inject bytes into the TCP stream after that (anyone on the path who sees its
//! sequence numbers) could set a speaker's volume, pause it or move it to another stream.
//! So once a follower is welcomed, each frame in either direction is sealed:
//!
//! - the frame is the usual header and payload, with the header's length counting
//!   [`FRAME_TAG_LEN`] more bytes;
//! - those bytes follow the payload: the first 16 bytes of HMAC-SHA256, under the session's
//!   control key for that direction ([`KeyPurpose::ControlLeaderToFollower`],
//!   [`KeyPurpose::ControlFollowerToLeader`]), over `"lockstep/1 control" || n || frame`,
//!   where `n` is the frame's number in its direction since the Welcome (8 bytes, big-endian,
//!   from 0) and `frame` the header (with the longer length) and the payload.
//!
//! TCP delivers in order, so the number needs no room on the wire: a frame that is
//! injected, dropped, replayed or moved fails its tag, and so does every frame after it in
//! that direction. A session that meets a bad tag is over (the stream cannot be framed
//! again).

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::error::ControlError;
use super::keys::{End, KeyPurpose, SessionKeys};
use super::message::Message;
use super::wire::{HEADER_LEN, MAX_PAYLOAD_LEN, parse_header};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of tag after each sealed frame's payload.
pub const FRAME_TAG_LEN: usize = 16;

/// The label every frame tag starts with.
const LABEL: &[u8] = b"lockstep/1 control";

/// One direction's key and frame count.
struct Direction {
    keyed: HmacSha256,
    frames: u64,
}

impl Direction {
    fn new(key: &[u8; 32]) -> Direction {
        Direction {
            // HMAC takes a key of any length; 32 bytes cannot fail.
            keyed: HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!()),
            frames: 0,
        }
    }

    /// The MAC over the label, this direction's next frame number and `frame`.
    fn mac(&self, frame: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(LABEL);
        mac.update(&self.frames.to_be_bytes());
        mac.update(frame);
        mac
    }
}

/// Seals the frames one end of a joined session sends and opens those it receives.
pub(crate) struct FrameSeal {
    send: Direction,
    receive: Direction,
}

impl std::fmt::Debug for FrameSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameSeal")
            .field("sent", &self.send.frames)
            .field("received", &self.receive.frames)
            .finish_non_exhaustive()
    }
}

impl FrameSeal {
    /// The seal of `end` of the session whose keys are `keys`.
    pub(crate) fn new(keys: &SessionKeys, end: End) -> FrameSeal {
        let to_follower = keys.key32(KeyPurpose::ControlLeaderToFollower);
        let to_leader = keys.key32(KeyPurpose::ControlFollowerToLeader);
        let (send, receive) = match end {
            End::Leader => (to_follower, to_leader),
            End::Follower => (to_leader, to_follower),
        };
        FrameSeal {
            send: Direction::new(&send),
            receive: Direction::new(&receive),
        }
    }

    /// Appends `msg` to `out` as one sealed frame. On failure `out` is left as it was.
    pub(crate) fn seal(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ControlError> {
        let start = out.len();
        msg.encode(out)?;
        let len = out.len() - start - HEADER_LEN + FRAME_TAG_LEN;
        if len > MAX_PAYLOAD_LEN {
            out.truncate(start);
            return Err(ControlError::TooLarge {
                len,
                max: MAX_PAYLOAD_LEN,
            });
        }
        // `len` is at most MAX_PAYLOAD_LEN, so it fits the u32 field.
        out[start + 4..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
        let tag = self.send.mac(&out[start..]).finalize().into_bytes();
        out.extend_from_slice(&tag[..FRAME_TAG_LEN]);
        self.send.frames += 1;
        Ok(())
    }

    /// Opens the sealed frame at the front of `buf`: `Ok(None)` while it is not all there,
    /// else the message and the bytes it took. A wrong tag is [`ControlError::BadTag`].
    pub(crate) fn open(&mut self, buf: &[u8]) -> Result<Option<(Message, usize)>, ControlError> {
        let Some((type_code, payload, tag, used)) = split_sealed(buf)? else {
            return Ok(None);
        };
        let frame = &buf[..used - FRAME_TAG_LEN];
        self.receive
            .mac(frame)
            .verify_truncated_left(tag)
            .map_err(|_| ControlError::BadTag {
                frame: self.receive.frames,
            })?;
        self.receive.frames += 1;
        Ok(Some((Message::decode_payload(type_code, payload)?, used)))
    }
}

/// A sealed frame taken apart: type code, payload, tag and the bytes it takes.
type Parts<'a> = (u8, &'a [u8], &'a [u8], usize);

/// The sealed frame at the front of `buf`, taken apart; `None` while it is not all there.
fn split_sealed(buf: &[u8]) -> Result<Option<Parts<'_>>, ControlError> {
    let Some((header, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let (type_code, len) = parse_header(header)?;
    if len < FRAME_TAG_LEN {
        return Err(ControlError::Truncated {
            needed: FRAME_TAG_LEN,
            got: len,
        });
    }
    let Some(body) = rest.get(..len) else {
        return Ok(None);
    };
    let (payload, tag) = body.split_at(len - FRAME_TAG_LEN);
    Ok(Some((type_code, payload, tag, HEADER_LEN + len)))
}

/// Decodes the sealed frame at the front of `buf` without checking its tag: for a tool on
/// the path that must read what it forwards (the test relay), never for a node.
pub(crate) fn peek_sealed(buf: &[u8]) -> Result<Option<(Message, usize)>, ControlError> {
    let Some((type_code, payload, _, used)) = split_sealed(buf)? else {
        return Ok(None);
    };
    Ok(Some((Message::decode_payload(type_code, payload)?, used)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::HouseholdKey;
    use crate::control::wire::decode_frame;

    fn seals() -> (FrameSeal, FrameSeal) {
        let key = HouseholdKey::new(b"a household key for the seal test").unwrap();
        let keys = SessionKeys::derive(&key, &[1; 16], &[2; 16], 7);
        (
            FrameSeal::new(&keys, End::Leader),
            FrameSeal::new(&keys, End::Follower),
        )
    }

    #[test]
    fn sealed_frames_open_in_order_at_the_other_end_only() {
        let (mut leader, mut follower) = seals();
        let mut wire = Vec::new();
        leader
            .seal(&Message::SetVolume { volume: 0.5 }, &mut wire)
            .unwrap();
        leader.seal(&Message::Pause, &mut wire).unwrap();
        // Not a plain frame any more: the tag makes the payload too long.
        assert!(decode_frame(&wire).is_err());
        // The leader cannot open its own frames: the directions have their own keys.
        let (mut l2, _) = seals();
        assert!(matches!(l2.open(&wire), Err(ControlError::BadTag { .. })));
        // Partial input waits.
        assert!(follower.open(&wire[..10]).unwrap().is_none());
        let (msg, used) = follower.open(&wire).unwrap().unwrap();
        assert_eq!(msg, Message::SetVolume { volume: 0.5 });
        let (msg, rest) = follower.open(&wire[used..]).unwrap().unwrap();
        assert_eq!((msg, used + rest), (Message::Pause, wire.len()));
        // And back the other way.
        let mut back = Vec::new();
        follower.seal(&Message::Leave, &mut back).unwrap();
        assert_eq!(leader.open(&back).unwrap().unwrap().0, Message::Leave);
    }

    #[test]
    fn a_frame_injected_replayed_dropped_or_changed_fails_its_tag() {
        let (mut leader, _) = seals();
        let mut frames = Vec::new();
        for volume in [0.1, 0.2, 0.3] {
            let mut f = Vec::new();
            leader.seal(&Message::SetVolume { volume }, &mut f).unwrap();
            frames.push(f);
        }
        let open = |order: &[&[u8]]| {
            let (_, mut follower) = seals();
            order
                .iter()
                .map(|f| follower.open(f).map(|m| m.map(|(m, _)| m)))
                .collect::<Vec<_>>()
        };
        let bad = |r: &Result<Option<Message>, ControlError>| {
            matches!(r, Err(ControlError::BadTag { .. }))
        };
        // In order: all three open.
        assert!(
            open(&[&frames[0], &frames[1], &frames[2]])
                .iter()
                .all(Result::is_ok)
        );
        // Replayed, or one dropped: the frame out of place fails.
        assert!(bad(&open(&[&frames[0], &frames[0]])[1]));
        assert!(bad(&open(&[&frames[0], &frames[2]])[1]));
        // A plain frame in its place, or a frame sealed by someone else.
        let mut plain = Vec::new();
        Message::SetVolume { volume: 1.0 }
            .encode(&mut plain)
            .unwrap();
        plain.extend_from_slice(&[0; FRAME_TAG_LEN]);
        plain[7] += FRAME_TAG_LEN as u8;
        assert!(bad(&open(&[&plain])[0]));
        let other = HouseholdKey::new(b"another household's key, not ours").unwrap();
        let mut forger = FrameSeal::new(
            &SessionKeys::derive(&other, &[1; 16], &[2; 16], 7),
            End::Leader,
        );
        let mut forged = Vec::new();
        forger
            .seal(&Message::SetVolume { volume: 1.0 }, &mut forged)
            .unwrap();
        assert!(bad(&open(&[&forged])[0]));
        // Any bit changed (a longer length leaves the frame waiting for more bytes).
        for i in 0..frames[0].len() {
            let mut f = frames[0].clone();
            f[i] ^= 0x01;
            assert!(
                !matches!(open(&[&f])[0], Ok(Some(_))),
                "byte {i} changed and still opened"
            );
        }
        // A sealed frame too short to hold a tag.
        let mut short = Vec::new();
        Message::Pause.encode(&mut short).unwrap();
        assert!(matches!(
            open(&[&short])[0],
            Err(ControlError::Truncated { .. })
        ));
    }

    #[test]
    fn peek_reads_a_sealed_frame_without_its_key() {
        let (mut leader, _) = seals();
        let mut wire = Vec::new();
        leader.seal(&Message::Resume, &mut wire).unwrap();
        assert_eq!(
            peek_sealed(&wire).unwrap(),
            Some((Message::Resume, wire.len()))
        );
    }
}
