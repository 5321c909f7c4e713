//! Control-channel framing: an 8-byte header, then the payload of one [`Message`].
//!
//! # Header
//!
//! `[b'L', b'S', version, type code, payload length (u32 BE)]`. The magic, the version
//! ([`PROTOCOL_VERSION`]), the type code and the length cap ([`MAX_PAYLOAD_LEN`]) are all
//! checked on the header alone, before any payload byte is read or buffered.
//!
//! # Type codes
//!
//! | code | message     | direction          | payload                                                           |
//! |------|-------------|--------------------|-------------------------------------------------------------------|
//! | 0x01 | Hello       | follower → leader  | caps, role, group, nonce, ports                                   |
//! | 0x02 | Challenge   | leader → follower  | nonce                                                             |
//! | 0x03 | Auth        | follower → leader  | mac                                                               |
//! | 0x04 | Welcome     | leader → follower  | session u64, group, role, stream, volume, muted, trim, mac        |
//! | 0x05 | Refused     | leader → follower  | refusal                                                           |
//! | 0x10 | SetVolume   | leader → follower  | volume                                                            |
//! | 0x11 | SetMute     | leader → follower  | bool                                                              |
//! | 0x12 | SetTrim     | leader → follower  | nanos                                                             |
//! | 0x13 | SetRole     | leader → follower  | role                                                              |
//! | 0x14 | Stream      | leader → follower  | stream                                                            |
//! | 0x15 | Pause       | leader → follower  | (empty)                                                           |
//! | 0x16 | Resume      | leader → follower  | (empty)                                                           |
//! | 0x17 | Leave       | either             | (empty)                                                           |
//! | 0x20 | StatusQuery | leader → follower  | id u32                                                            |
//! | 0x21 | Status      | follower → leader  | id u32, status                                                    |
//! | 0x22 | Ping        | either             | id u64                                                            |
//! | 0x23 | Pong        | either             | id u64                                                            |
//!
//! # Fields
//!
//! All integers are big-endian. Fields follow each other with no padding, in the order the
//! Rust structs declare them.
//!
//! - string: u16 length, then UTF-8 (invalid UTF-8 is malformed). Caps: model and name 64
//!   bytes, group 64, detail text 256.
//! - nanos: i64 nanoseconds. bool: one byte, 0 or 1. Option: a bool presence byte, then the
//!   value when present.
//! - volume: f32 bits, finite and within 0.0..=1.0. A clock rate (f64 bits) must be finite.
//! - nonce: 16 bytes; mac: 32 bytes.
//! - role: u8, full 0, left 1, right 2, sub 3, mono 4. codec: u8, L16 0, L24 1, Opus 2.
//!   timestamp kind: u8, kernel 0, user 1.
//! - caps: model, name, channels u8, max_rate u32, output_latency nanos.
//! - stream: codec, sample_rate u32, channels u8, payload_type u8, ssrc u32, rtp_port u16,
//!   multicast (a bool, then if true a multicast IPv4 address, 4 bytes, and a port u16),
//!   ptp_event_port u16, ptp_general_port u16, target_latency nanos, ptime nanos.
//! - hello ports: rtp u16, ptp_event u16, ptp_general u16.
//! - status: clock_offset option of nanos, clock_rate_ppm option of f64, uncertainty
//!   option of nanos, clock_settled bool, clock_reason u8 (none 0, start 1, leader step 2,
//!   new leader 3, path change 4), buffer_level nanos, five u64 counters (received, lost, late, unknown
//!   source, underruns), skew_estimate option of nanos, playing bool, volume, muted bool,
//!   trim nanos, timestamp kind.
//! - refusal: u8 code, then its fields: wrong key 0, replay 1, unsupported version 2 (got
//!   u8, supported u8), model mismatch 3 (model, partner model: strings of 64), role taken 4
//!   (role), wrong group 5 (requested, group: strings of 64), unsupported 6 (detail text),
//!   malformed 7, busy 8.
//!
//! Decoding is strict: bytes left after a payload's last field are malformed, so each
//! message has exactly one encoding.
//!
//! # Sealed frames
//!
//! Every frame after the Welcome, in either direction, is sealed: its length counts a
//! 16-byte tag that follows the payload (see the [`seal`](super::seal) module). Hello,
//! Challenge, Auth, Welcome and a refusal before the Welcome travel plain, as above.

use std::io::{self, Read, Write};

use super::error::ControlError;
use super::message::{Message, code};

/// The protocol version this build speaks, carried in every frame header.
pub const PROTOCOL_VERSION: u8 = 3;

/// Length of the frame header, in bytes.
pub const HEADER_LEN: usize = 8;

/// The largest payload a frame may carry, in bytes. The largest message the field caps allow
/// is far below it; the cap is what bounds a receiver's buffer.
pub const MAX_PAYLOAD_LEN: usize = 4096;

/// The first two bytes of every frame.
const MAGIC: [u8; 2] = *b"LS";

/// Checks a frame header and returns the type code and the payload length.
pub(crate) fn parse_header(header: &[u8; HEADER_LEN]) -> Result<(u8, usize), ControlError> {
    let [m0, m1, version, type_code, l0, l1, l2, l3] = *header;
    if [m0, m1] != MAGIC {
        return Err(ControlError::BadMagic { got: [m0, m1] });
    }
    if version != PROTOCOL_VERSION {
        return Err(ControlError::UnsupportedVersion {
            got: version,
            supported: PROTOCOL_VERSION,
        });
    }
    if !code::ALL.contains(&type_code) {
        return Err(ControlError::UnknownType { code: type_code });
    }
    // A length that does not fit usize is certainly over the cap.
    let len = usize::try_from(u32::from_be_bytes([l0, l1, l2, l3])).unwrap_or(usize::MAX);
    if len > MAX_PAYLOAD_LEN {
        return Err(ControlError::TooLarge {
            len,
            max: MAX_PAYLOAD_LEN,
        });
    }
    Ok((type_code, len))
}

impl Message {
    /// Appends one whole frame (header and payload) to `out`.
    ///
    /// Fails when a string is over its cap, a volume is outside 0.0..=1.0 or a clock rate is
    /// not finite (the receiver would refuse the frame), or the payload would exceed
    /// [`MAX_PAYLOAD_LEN`]. On failure `out` is left as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ControlError> {
        let start = out.len();
        let result = self.encode_at(out, start);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_at(&self, out: &mut Vec<u8>, start: usize) -> Result<(), ControlError> {
        let [m0, m1] = MAGIC;
        // The length is patched in once the payload is written.
        out.extend_from_slice(&[m0, m1, PROTOCOL_VERSION, self.type_code(), 0, 0, 0, 0]);
        self.encode_payload(out)?;
        let len = out.len() - start - HEADER_LEN;
        let len_field = u32::try_from(len)
            .ok()
            .filter(|_| len <= MAX_PAYLOAD_LEN)
            .ok_or(ControlError::TooLarge {
                len,
                max: MAX_PAYLOAD_LEN,
            })?;
        if let Some(slot) = out.get_mut(start + 4..start + HEADER_LEN) {
            slot.copy_from_slice(&len_field.to_be_bytes());
        }
        Ok(())
    }
}

/// Decodes the frame at the front of `buf`.
///
/// Returns `Ok(None)` while `buf` holds less than a whole frame, and the message with the
/// number of bytes it took otherwise. A bad header is an error as soon as its 8 bytes are
/// there, whatever follows.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Message, usize)>, ControlError> {
    let Some((header, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let (type_code, len) = parse_header(header)?;
    let Some(payload) = rest.get(..len) else {
        return Ok(None);
    };
    let msg = Message::decode_payload(type_code, payload)?;
    Ok(Some((msg, HEADER_LEN + len)))
}

/// Reads exactly one frame from `r`, blocking, and decodes it.
///
/// The header is read and checked first, then exactly the payload it announces, so nothing
/// past the frame is consumed and a hostile length costs no allocation: `scratch` never
/// grows past [`HEADER_LEN`] + [`MAX_PAYLOAD_LEN`]. On success `scratch` holds the frame's
/// bytes, header included (what [`HouseholdKey::follower_proof`] binds for a Hello).
///
/// End of stream before the first header byte is [`ControlError::Closed`]; inside a frame it
/// is [`ControlError::Truncated`].
///
/// [`HouseholdKey::follower_proof`]: super::HouseholdKey::follower_proof
pub fn read_message<R: Read>(r: &mut R, scratch: &mut Vec<u8>) -> Result<Message, ControlError> {
    scratch.clear();
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Err(ControlError::Closed);
    }
    if got < HEADER_LEN {
        return Err(ControlError::Truncated {
            needed: HEADER_LEN,
            got,
        });
    }
    let (type_code, len) = parse_header(&header)?;
    scratch.extend_from_slice(&header);
    scratch.resize(HEADER_LEN + len, 0);
    let (_, payload) = scratch.split_at_mut(HEADER_LEN);
    let got = read_full(r, payload)?;
    if got < len {
        return Err(ControlError::Truncated { needed: len, got });
    }
    Message::decode_payload(type_code, payload)
}

/// Encodes `msg` into `scratch` and writes the frame with one `write_all`. On success
/// `scratch` holds the frame's bytes (a follower keeps its Hello's for the proof).
pub fn write_message<W: Write>(
    w: &mut W,
    msg: &Message,
    scratch: &mut Vec<u8>,
) -> Result<(), ControlError> {
    scratch.clear();
    msg.encode(scratch)?;
    w.write_all(scratch)?;
    Ok(())
}

/// Reads until `buf` is full or the stream ends; returns how many bytes came. Interrupted
/// reads are retried, as `read_exact` does, but a short count is reported rather than lost.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::super::message::{
        Capabilities, CodecId, FollowerStatus, PeerPorts, Refusal, StreamParams, TimestampKind,
    };
    use super::super::role::Role;
    use super::*;
    use crate::time::Nanos;
    use std::io::Cursor;

    fn caps() -> Capabilities {
        Capabilities {
            model: "LS-One".into(),
            name: "Kitchen ☕".into(),
            channels: 2,
            max_rate: 96_000,
            output_latency: Nanos::from_millis(12),
        }
    }

    fn stream() -> StreamParams {
        StreamParams {
            codec: CodecId::L24,
            sample_rate: 48_000,
            channels: 2,
            payload_type: 97,
            ssrc: 0xdead_beef,
            rtp_port: 5004,
            multicast: None,
            ptp_event_port: 319,
            ptp_general_port: 320,
            target_latency: Nanos::from_millis(150),
            ptime: Nanos::from_millis(1),
            protection: crate::control::Protection::default(),
        }
    }

    fn status(full: bool) -> FollowerStatus {
        FollowerStatus {
            clock_offset: full.then_some(Nanos(-1_234_567)),
            clock_rate_ppm: full.then_some(-3.25),
            uncertainty: full.then_some(Nanos::from_micros(40)),
            clock_settled: full,
            clock_reason: full.then_some(crate::clock::EpochReason::PathChange),
            buffer_level: Nanos::from_millis(80),
            packets_received: u64::MAX,
            packets_lost: 3,
            packets_late: 2,
            unknown_source: 1,
            underruns: 0,
            skew_estimate: full.then_some(Nanos(17)),
            playing: full,
            volume: 0.75,
            muted: !full,
            trim: Nanos(-5_000),
            timestamping: if full {
                TimestampKind::Kernel
            } else {
                TimestampKind::User
            },
            media_authenticated: full,
            clock_authenticated: !full,
            media_rejected: crate::control::Rejections {
                bad_tag: 1,
                replay: 2,
                unknown_key: 3,
                malformed: u64::MAX,
            },
            clock_rejected: crate::control::Rejections::default(),
        }
    }

    /// At least one of every message, every refusal and both states of every option.
    pub(super) fn samples() -> Vec<Message> {
        let refusals = [
            Refusal::WrongKey,
            Refusal::Replay,
            Refusal::UnsupportedVersion {
                got: 2,
                supported: 1,
            },
            Refusal::ModelMismatch {
                model: "LS-One".into(),
                partner_model: "LS-Two".into(),
            },
            Refusal::RoleTaken { role: Role::Left },
            Refusal::WrongGroup {
                requested: "upstairs".into(),
                group: "".into(),
            },
            Refusal::Unsupported {
                what: "8 channels at 192 kHz".into(),
            },
            Refusal::Malformed,
            Refusal::Busy,
        ];
        let mut all = vec![
            Message::Hello {
                caps: caps(),
                role: Role::Right,
                group: "living room".into(),
                nonce: [7; 16],
                ports: PeerPorts {
                    rtp: 5004,
                    ptp_event: 319,
                    ptp_general: 320,
                },
            },
            Message::Challenge { nonce: [0xa5; 16] },
            Message::Auth { mac: [0x3c; 32] },
            Message::Welcome {
                session: u64::MAX - 1,
                group: "living room".into(),
                role: Role::Sub,
                stream: stream(),
                volume: 1.0,
                muted: true,
                trim: Nanos(i64::MIN),
                mac: [1; 32],
            },
            Message::SetVolume { volume: 0.0 },
            Message::SetMute { muted: false },
            Message::SetTrim {
                trim: Nanos(i64::MAX),
            },
            Message::SetRole { role: Role::Mono },
            Message::Stream {
                stream: StreamParams {
                    codec: CodecId::Opus,
                    multicast: Some("239.69.1.2:5004".parse().unwrap()),
                    protection: crate::control::Protection::NONE,
                    ..stream()
                },
            },
            Message::Stream {
                stream: StreamParams {
                    protection: crate::control::Protection {
                        media: Some(crate::media::srtp::SrtpProfile::AeadAes128Gcm),
                        clock: false,
                    },
                    ..stream()
                },
            },
            Message::Pause,
            Message::Resume,
            Message::Leave,
            Message::GroupKey {
                epoch: 7,
                sealed: [0x5a; crate::control::SEALED_GROUP_KEY_LEN],
            },
            Message::StatusQuery { id: 42 },
            Message::Status {
                id: 42,
                status: status(true),
            },
            Message::Status {
                id: 0,
                status: status(false),
            },
            Message::Ping { id: 1 },
            Message::Pong { id: u64::MAX },
        ];
        all.extend(
            refusals
                .into_iter()
                .map(|refusal| Message::Refused { refusal }),
        );
        all
    }

    pub(super) fn frame(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        msg.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn samples_cover_every_type_code() {
        let mut seen: Vec<u8> = samples().iter().map(Message::type_code).collect();
        seen.sort_unstable();
        seen.dedup();
        let mut all = code::ALL.to_vec();
        all.sort_unstable();
        assert_eq!(seen, all);
    }

    #[test]
    fn every_message_round_trips_through_decode_frame() {
        for msg in samples() {
            let bytes = frame(&msg);
            assert_eq!(
                bytes.get(..4),
                Some(&[b'L', b'S', PROTOCOL_VERSION, msg.type_code()][..])
            );
            let len = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
            assert_eq!(len + HEADER_LEN, bytes.len(), "{}", msg.name());
            let (back, used) = decode_frame(&bytes).unwrap().unwrap();
            assert_eq!(back, msg);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn decode_frame_takes_one_frame_off_a_longer_buffer() {
        let mut bytes = frame(&Message::Ping { id: 9 });
        let first = bytes.len();
        Message::Pause.encode(&mut bytes).unwrap();
        let (msg, used) = decode_frame(&bytes).unwrap().unwrap();
        assert_eq!((msg, used), (Message::Ping { id: 9 }, first));
        let (msg, used) = decode_frame(&bytes[first..]).unwrap().unwrap();
        assert_eq!((msg, used), (Message::Pause, HEADER_LEN));
    }

    #[test]
    fn every_message_round_trips_through_read_and_write() {
        let mut wire = Vec::new();
        let mut scratch = Vec::new();
        for msg in samples() {
            write_message(&mut wire, &msg, &mut scratch).unwrap();
            assert_eq!(scratch, frame(&msg), "scratch holds the frame written");
        }
        let mut r = Cursor::new(wire);
        for msg in samples() {
            let back = read_message(&mut r, &mut scratch).unwrap();
            assert_eq!(back, msg);
            assert_eq!(scratch, frame(&msg), "scratch holds the frame read");
        }
        assert!(matches!(
            read_message(&mut r, &mut scratch),
            Err(ControlError::Closed)
        ));
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        for msg in samples() {
            let bytes = frame(&msg);
            for cut in 0..bytes.len() {
                assert!(
                    matches!(decode_frame(&bytes[..cut]), Ok(None)),
                    "{} cut at {cut}",
                    msg.name()
                );
            }
        }
    }

    #[test]
    fn read_message_reports_where_the_stream_ended() {
        let bytes = frame(&Message::Hello {
            caps: caps(),
            role: Role::Left,
            group: "g".into(),
            nonce: [0; 16],
            ports: PeerPorts {
                rtp: 5004,
                ptp_event: 319,
                ptp_general: 320,
            },
        });
        let payload_len = bytes.len() - HEADER_LEN;
        let mut scratch = Vec::new();
        for cut in 0..bytes.len() {
            let err = read_message(&mut Cursor::new(&bytes[..cut]), &mut scratch).unwrap_err();
            match (cut, err) {
                (0, ControlError::Closed) => {}
                (c, ControlError::Truncated { needed, got }) if c < HEADER_LEN => {
                    assert_eq!((needed, got), (HEADER_LEN, c));
                }
                (c, ControlError::Truncated { needed, got }) => {
                    assert_eq!((needed, got), (payload_len, c - HEADER_LEN));
                }
                (c, e) => panic!("cut at {c}: unexpected {e:?}"),
            }
        }
    }

    /// Yields a header announcing a 4 GiB payload, then zeros forever, counting bytes read.
    struct Hostile {
        read: usize,
    }

    impl Read for Hostile {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let header = [
                b'L',
                b'S',
                PROTOCOL_VERSION,
                code::PING,
                0xff,
                0xff,
                0xff,
                0xff,
            ];
            for b in buf.iter_mut() {
                *b = header.get(self.read).copied().unwrap_or(0);
                self.read += 1;
            }
            Ok(buf.len())
        }
    }

    #[test]
    fn oversized_length_is_refused_after_the_header_alone() {
        let mut r = Hostile { read: 0 };
        let mut scratch = Vec::new();
        let err = read_message(&mut r, &mut scratch).unwrap_err();
        assert!(matches!(
            err,
            ControlError::TooLarge {
                len: 0xffff_ffff,
                max: MAX_PAYLOAD_LEN
            }
        ));
        assert_eq!(r.read, HEADER_LEN, "only the header is read");
        assert!(scratch.capacity() <= HEADER_LEN + MAX_PAYLOAD_LEN);

        let mut header = [0u8; HEADER_LEN];
        Hostile { read: 0 }.read_exact(&mut header).unwrap();
        assert!(matches!(
            decode_frame(&header),
            Err(ControlError::TooLarge { .. })
        ));
    }

    #[test]
    fn length_at_the_cap_passes_the_header_check() {
        let mut bytes = vec![b'L', b'S', PROTOCOL_VERSION, code::PING];
        bytes.extend_from_slice(&(MAX_PAYLOAD_LEN as u32).to_be_bytes());
        // Header accepted, payload awaited.
        assert!(matches!(decode_frame(&bytes), Ok(None)));
        bytes[7] += 1;
        assert!(matches!(
            decode_frame(&bytes),
            Err(ControlError::TooLarge { len, .. }) if len == MAX_PAYLOAD_LEN + 1
        ));
    }

    #[test]
    fn bad_headers_fail_as_soon_as_the_header_is_there() {
        let good = frame(&Message::Ping { id: 5 });
        let with = |i: usize, b: u8| {
            let mut h = good[..HEADER_LEN].to_vec();
            h[i] = b;
            decode_frame(&h)
        };
        assert!(matches!(
            with(0, b'X'),
            Err(ControlError::BadMagic { got: [b'X', b'S'] })
        ));
        for version in [0, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1] {
            assert!(matches!(
                with(2, version),
                Err(ControlError::UnsupportedVersion { got, supported })
                    if got == version && supported == PROTOCOL_VERSION
            ));
        }
        for code in [0x00, 0x06, 0x24, 0xff] {
            assert!(matches!(
                with(3, code),
                Err(ControlError::UnknownType { code: c }) if c == code
            ));
        }
        // The same through read_message, with the error's refusal.
        let mut bad = good.clone();
        bad[2] = PROTOCOL_VERSION + 1;
        let err = read_message(&mut Cursor::new(bad), &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.refusal(),
            Some(Refusal::UnsupportedVersion {
                got: PROTOCOL_VERSION + 1,
                supported: PROTOCOL_VERSION
            })
        );
    }

    /// A frame with `payload` under the header of type `type_code`.
    fn raw(type_code: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b'L', b'S', PROTOCOL_VERSION, type_code];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn malformed(bytes: &[u8]) -> bool {
        matches!(decode_frame(bytes), Err(ControlError::Malformed { .. }))
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        for msg in samples() {
            let mut bytes = frame(&msg);
            bytes.push(0);
            let len = (bytes.len() - HEADER_LEN) as u32;
            bytes[4..8].copy_from_slice(&len.to_be_bytes());
            assert!(malformed(&bytes), "{}", msg.name());
        }
    }

    #[test]
    fn a_payload_shorter_than_its_fields_is_truncated() {
        // A Ping announcing 4 payload bytes: the frame is whole, the u64 inside is not.
        assert!(matches!(
            decode_frame(&raw(code::PING, &[0; 4])),
            Err(ControlError::Truncated { needed: 8, got: 4 })
        ));
    }

    #[test]
    fn invalid_field_values_are_malformed() {
        assert!(malformed(&raw(code::SET_MUTE, &[2])));
        for v in [f32::NAN, 1.5, -1.0, f32::INFINITY] {
            assert!(malformed(&raw(
                code::SET_VOLUME,
                &v.to_bits().to_be_bytes()
            )));
        }
        assert!(!malformed(&raw(
            code::SET_VOLUME,
            &1.0f32.to_bits().to_be_bytes()
        )));
        // A Refused(Unsupported) whose text is not UTF-8.
        assert!(malformed(&raw(code::REFUSED, &[6, 0, 2, 0xc3, 0x28])));
        // A Status whose clock rate is NaN: find the byte after the first presence flag.
        let mut bytes = frame(&Message::Status {
            id: 1,
            status: status(true),
        });
        let rate_at = HEADER_LEN + 4 + 1 + 8 + 1;
        bytes[rate_at..rate_at + 8].copy_from_slice(&f64::NAN.to_bits().to_be_bytes());
        assert!(malformed(&bytes));
        // A Status whose epoch reason is no known one (after the uncertainty and the
        // settled flag).
        let mut bytes = frame(&Message::Status {
            id: 1,
            status: status(true),
        });
        let reason_at = rate_at + 8 + 1 + 8 + 1;
        assert_eq!(bytes[reason_at], 4, "path change where the layout says");
        bytes[reason_at] = 9;
        assert!(malformed(&bytes));
    }

    #[test]
    fn over_cap_strings_fail_to_encode_and_leave_the_buffer_alone() {
        let mut out = vec![9, 9];
        let mut caps = caps();
        caps.model = "m".repeat(65);
        let hello = Message::Hello {
            caps,
            role: Role::Full,
            group: "g".into(),
            nonce: [0; 16],
            ports: PeerPorts {
                rtp: 1,
                ptp_event: 2,
                ptp_general: 3,
            },
        };
        assert!(matches!(
            hello.encode(&mut out),
            Err(ControlError::FieldTooLong {
                field: "model",
                len: 65,
                max: 64
            })
        ));
        assert_eq!(out, [9, 9]);
        let refused = Message::Refused {
            refusal: Refusal::Unsupported {
                what: "w".repeat(257),
            },
        };
        assert!(matches!(
            refused.encode(&mut out),
            Err(ControlError::FieldTooLong { max: 256, .. })
        ));
        assert!(matches!(
            Message::SetVolume { volume: 1.5 }.encode(&mut out),
            Err(ControlError::Malformed { .. })
        ));
        assert_eq!(out, [9, 9]);
    }

    #[test]
    fn the_largest_messages_fit_the_cap() {
        let name = "n".repeat(64);
        let hello = Message::Hello {
            caps: Capabilities {
                model: name.clone(),
                name: name.clone(),
                ..caps()
            },
            role: Role::Full,
            group: name.clone(),
            nonce: [0; 16],
            ports: PeerPorts {
                rtp: 1,
                ptp_event: 2,
                ptp_general: 3,
            },
        };
        let refused = Message::Refused {
            refusal: Refusal::Unsupported {
                what: "w".repeat(256),
            },
        };
        for msg in [hello, refused] {
            let bytes = frame(&msg);
            assert!(bytes.len() - HEADER_LEN <= MAX_PAYLOAD_LEN);
            assert_eq!(decode_frame(&bytes).unwrap().unwrap().0, msg);
        }
    }

    /// Returns `Interrupted` before every real read, as a signal-heavy process might see.
    struct Interrupting<R> {
        inner: R,
        flip: bool,
    }

    impl<R: Read> Read for Interrupting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.flip = !self.flip;
            if self.flip {
                return Err(io::ErrorKind::Interrupted.into());
            }
            // One byte at a time, to exercise the short-read loop too.
            let one = buf.len().min(1);
            self.inner.read(&mut buf[..one])
        }
    }

    #[test]
    fn interrupted_and_short_reads_are_retried() {
        let msg = Message::Status {
            id: 3,
            status: status(true),
        };
        let mut r = Interrupting {
            inner: Cursor::new(frame(&msg)),
            flip: false,
        };
        assert_eq!(read_message(&mut r, &mut Vec::new()).unwrap(), msg);
    }

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<&str> = samples().iter().map(Message::name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), code::ALL.len());
    }
}
#[cfg(test)]
mod fuzz_seeds {
    /// The fuzz target starts from `fuzz/seeds/control_message` (one frame per message
    /// type; without them the fuzzer rarely gets past the magic). They must stay valid
    /// frames as the format evolves, or the fuzzer would start from nothing again.
    #[test]
    fn the_fuzz_seeds_are_valid_frames_of_every_type() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/control_message");
        if std::env::var_os("LOCKSTEP_WRITE_SEEDS").is_some() {
            // The format changed: write the samples as the new seeds, then check them.
            for entry in std::fs::read_dir(&dir).expect("seed directory") {
                std::fs::remove_file(entry.expect("entry").path()).expect("old seed");
            }
            for (i, m) in super::tests::samples().iter().enumerate() {
                let path = dir.join(format!("{i:02}-{}", m.name()));
                std::fs::write(path, super::tests::frame(m)).expect("seed written");
            }
        }
        let mut codes = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).expect("seed directory") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("seed");
            let (m, used) = super::decode_frame(&bytes)
                .expect("a seed decodes")
                .expect("a seed is a whole frame");
            assert_eq!(used, bytes.len());
            codes.insert(m.type_code());
        }
        let all: std::collections::BTreeSet<u8> =
            super::super::message::code::ALL.into_iter().collect();
        assert_eq!(codes, all, "a seed for every message type");
    }
}
