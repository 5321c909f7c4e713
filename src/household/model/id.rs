//! Identifiers: a speaker's stable id, the stamp of a write, and a group's id.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A speaker's stable identity: 128 random bits, drawn once when the speaker first starts
/// and kept in its state directory for good. Shown as 32 lower-case hex digits.
///
/// Ids order as their bytes do; on a tie between two concurrent writes the higher writer's
/// id wins (see [`Stamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpeakerId(pub [u8; 16]);

impl SpeakerId {
    /// The all-zero id: the writer of the household's initial records, never a speaker's
    /// (a random 128-bit id is zero with probability 2^-128; [`Edit`](super::Edit) refuses it).
    pub const NIL: SpeakerId = SpeakerId([0; 16]);

    /// The id with these bytes (from [`new_nonce`](crate::control::new_nonce), say).
    pub const fn from_bytes(bytes: [u8; 16]) -> SpeakerId {
        SpeakerId(bytes)
    }

    /// The id's bytes.
    pub const fn bytes(self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Display for SpeakerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A string that is not a speaker id (32 hex digits) or a group id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{got:?} is not {expected}")]
pub struct BadId {
    /// The string that came (at most its first 80 characters).
    pub got: String,
    /// What an id of this kind looks like.
    pub expected: &'static str,
}

impl BadId {
    fn new(got: &str, expected: &'static str) -> BadId {
        BadId {
            got: got.chars().take(80).collect(),
            expected,
        }
    }
}

impl FromStr for SpeakerId {
    type Err = BadId;

    /// Parses 32 hex digits, either case.
    fn from_str(s: &str) -> Result<SpeakerId, BadId> {
        let bad = || BadId::new(s, "a speaker id (32 hex digits)");
        let digits = s.as_bytes();
        if digits.len() != 32 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let hi = hex_digit(pair[0]).ok_or_else(bad)?;
            let lo = hex_digit(pair[1]).ok_or_else(bad)?;
            *byte = hi << 4 | lo;
        }
        Ok(SpeakerId(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Serialize for SpeakerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SpeakerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SpeakerId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The stamp of one write: a Lamport counter and the speaker that wrote.
///
/// A writer's counter is one more than any counter it has seen, so a write made after
/// seeing another has the higher counter. Stamps order by counter, then by writer id: the
/// order that picks the same winner between two concurrent writes on every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    /// The Lamport counter.
    pub counter: u64,
    /// Who wrote.
    pub writer: SpeakerId,
}

/// A group's id: the stamp of the write that created it, so two speakers creating groups
/// at once never pick the same id. Shown as `<counter>-<writer id>`.
///
/// Groups are named by their id or by their name; names can change, ids cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub Stamp);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0.counter, self.0.writer)
    }
}

impl FromStr for GroupId {
    type Err = BadId;

    /// Parses `<counter>-<writer id>` as [`GroupId`]'s `Display` writes it.
    fn from_str(s: &str) -> Result<GroupId, BadId> {
        let bad = || BadId::new(s, "a group id (<counter>-<32 hex digits>)");
        let (counter, writer) = s.split_once('-').ok_or_else(bad)?;
        if counter.is_empty() || !counter.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(GroupId(Stamp {
            counter: counter.parse().map_err(|_| bad())?,
            writer: writer.parse().map_err(|_| bad())?,
        }))
    }
}

impl Serialize for GroupId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GroupId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaker_ids_print_as_hex_and_parse_back() {
        let id = SpeakerId([0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff]);
        let text = id.to_string();
        assert_eq!(text, "ab0102030405060708090a0b0c0d0eff");
        assert_eq!(text.parse::<SpeakerId>(), Ok(id));
        assert_eq!(text.to_uppercase().parse::<SpeakerId>(), Ok(id));
        for bad in [
            "",
            "ab",
            &text[1..],
            &format!("{text}0"),
            "zz0102030405060708090a0b0c0d0eff",
        ] {
            assert!(bad.parse::<SpeakerId>().is_err(), "{bad:?} parsed");
        }
        // Multi-byte characters of the right byte length are refused, not split.
        assert!("é".repeat(16).parse::<SpeakerId>().is_err());
    }

    #[test]
    fn group_ids_print_and_parse_back() {
        let id = GroupId(Stamp {
            counter: 42,
            writer: SpeakerId([7; 16]),
        });
        assert_eq!(id.to_string(), format!("42-{}", SpeakerId([7; 16])));
        assert_eq!(id.to_string().parse::<GroupId>(), Ok(id));
        for bad in [
            "42",
            "-0707",
            "x-07070707070707070707070707070707",
            "+4-07070707070707070707070707070707",
        ] {
            assert!(bad.parse::<GroupId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn stamps_order_by_counter_then_writer() {
        let a = SpeakerId([1; 16]);
        let b = SpeakerId([2; 16]);
        let s = |counter, writer| Stamp { counter, writer };
        assert!(s(2, a) > s(1, b));
        assert!(s(1, b) > s(1, a));
    }
}
