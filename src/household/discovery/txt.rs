//! The TXT record of a speaker's advertisement: [`SpeakerRecord`], its keys, and the pure
//! parser that turns what the network sent into one or a [`TxtError`].
//!
//! Nothing here touches the network. The browser hands every TXT record it resolves to
//! [`SpeakerRecord::parse_txt`]; whatever fails there is ignored and counted by its
//! [`TxtError::kind`].
//!
//! # Keys
//!
//! | key | value |
//! |---|---|
//! | `lv` | the control protocol version, decimal ([`PROTOCOL_VERSION`]) |
//! | `id` | the speaker's stable id: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-` or `_` |
//! | `name` | its name, UTF-8, 1 to [`MAX_FIELD_LEN`] bytes |
//! | `room` | its room, UTF-8, 0 to [`MAX_FIELD_LEN`] bytes |
//! | `model` | its model, UTF-8, 1 to [`MAX_FIELD_LEN`] bytes |
//! | `state` | `idle`, `leading` or `following` |
//! | `group` | the group it is in, UTF-8, 1 to [`MAX_FIELD_LEN`] bytes; absent when in none |
//!
//! Keys are matched without regard to case (RFC 6763, section 6.4); unknown keys are
//! skipped, so that a later version can add some. A leading or following speaker must name
//! its group.

use std::fmt;

use thiserror::Error;

use crate::control::PROTOCOL_VERSION;

/// The most bytes of one TXT entry (`key=value`): its length travels in one byte.
pub const MAX_TXT_ENTRY_LEN: usize = 255;

/// The most bytes of a whole TXT record (every entry with its length byte).
///
/// RFC 6763 (section 6.2) advises keeping a TXT record within 1300 bytes so that the
/// response fits one Ethernet frame; a lockstep record is far smaller (under 400 bytes
/// with every field at its cap below), so anything bigger is not ours.
pub const MAX_TXT_TOTAL_LEN: usize = 1300;

/// The most bytes of a name, room, model or group: as many as the household model allows
/// in a name.
pub const MAX_FIELD_LEN: usize = 64;

/// The most bytes of a speaker id. The id is also the mDNS instance name, a DNS label.
pub const MAX_ID_LEN: usize = 63;

/// What a speaker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PlayState {
    /// In no playing group.
    Idle,
    /// Leading its group: it holds the source and streams it.
    Leading,
    /// Following its group's leader.
    Following,
}

impl PlayState {
    /// The TXT value: `idle`, `leading` or `following`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayState::Idle => "idle",
            PlayState::Leading => "leading",
            PlayState::Following => "following",
        }
    }

    /// Parses a TXT value; `None` for anything but the three names (exact, lower case).
    pub fn parse(value: &str) -> Option<PlayState> {
        match value {
            "idle" => Some(PlayState::Idle),
            "leading" => Some(PlayState::Leading),
            "following" => Some(PlayState::Following),
            _ => None,
        }
    }
}

impl fmt::Display for PlayState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Into which counter an ignored advertisement goes (see [`TxtError::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IgnoredKind {
    /// Not a lockstep speaker: no `lv` key, or an instance of another service.
    Foreign,
    /// A lockstep record with a missing, malformed or contradictory field.
    Malformed,
    /// An entry or the whole record over its size cap, or a field over its length cap.
    Oversized,
    /// A lockstep record of another protocol version.
    Incompatible,
}

/// Why a TXT record (or an advertisement) is not a lockstep speaker this build can list.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TxtError {
    /// There is no `lv` key: the record belongs to some other program.
    #[error("no `lv` key: not a lockstep advertisement")]
    NotLockstep,
    /// The advertisement is of another service type than lockstep's.
    #[error("service type {service_type:?} is not lockstep's")]
    OtherService {
        /// The service type it came with.
        service_type: String,
    },
    /// A `lv` value that is no version this build speaks.
    #[error("protocol version {got:?}, this build speaks {supported}")]
    Version {
        /// The value as sent (lossily decoded).
        got: String,
        /// [`PROTOCOL_VERSION`].
        supported: u8,
    },
    /// One entry is longer than [`MAX_TXT_ENTRY_LEN`].
    #[error("TXT entry {key:?} is {len} bytes, over the {max}-byte cap")]
    EntryTooLong {
        /// The entry's key.
        key: String,
        /// Its length, `key=value`.
        len: usize,
        /// [`MAX_TXT_ENTRY_LEN`].
        max: usize,
    },
    /// The record is longer than [`MAX_TXT_TOTAL_LEN`].
    #[error("TXT record is {len} bytes, over the {max}-byte cap")]
    TooLarge {
        /// Its length with every entry's length byte.
        len: usize,
        /// [`MAX_TXT_TOTAL_LEN`].
        max: usize,
    },
    /// A field longer than its cap.
    #[error("{key} is {len} bytes, over the {max}-byte cap")]
    FieldTooLong {
        /// The key.
        key: &'static str,
        /// Its value's length.
        len: usize,
        /// The cap ([`MAX_FIELD_LEN`] or [`MAX_ID_LEN`]).
        max: usize,
    },
    /// A required key is absent.
    #[error("missing {key}")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A key with no value or an empty one where a value is required.
    #[error("{key} is empty")]
    Empty {
        /// The key.
        key: &'static str,
    },
    /// A value that is not UTF-8, or holds control characters.
    #[error("{key} is not printable UTF-8")]
    NotText {
        /// The key.
        key: &'static str,
    },
    /// An id with a character other than ASCII letters, digits, `-` and `_`.
    #[error("id {got:?} has characters other than ASCII letters, digits, '-' and '_'")]
    BadId {
        /// The id as sent (lossily decoded).
        got: String,
    },
    /// A `state` that is none of `idle`, `leading`, `following`.
    #[error("unknown state {got:?} (idle, leading or following)")]
    UnknownState {
        /// The value as sent (lossily decoded).
        got: String,
    },
    /// A leading or following speaker that names no group.
    #[error("a {state} speaker must name its group")]
    NoGroup {
        /// Its state.
        state: PlayState,
    },
    /// The mDNS instance name is not the speaker's id.
    #[error("instance {instance:?} does not carry the id {id:?}")]
    InstanceMismatch {
        /// The full instance name.
        instance: String,
        /// The id in the TXT record.
        id: String,
    },
}

impl TxtError {
    /// Which counter this goes into when a browser ignores the advertisement.
    pub fn kind(&self) -> IgnoredKind {
        match self {
            TxtError::NotLockstep | TxtError::OtherService { .. } => IgnoredKind::Foreign,
            TxtError::Version { .. } => IgnoredKind::Incompatible,
            TxtError::EntryTooLong { .. }
            | TxtError::TooLarge { .. }
            | TxtError::FieldTooLong { .. } => IgnoredKind::Oversized,
            TxtError::Missing { .. }
            | TxtError::Empty { .. }
            | TxtError::NotText { .. }
            | TxtError::BadId { .. }
            | TxtError::UnknownState { .. }
            | TxtError::NoGroup { .. }
            | TxtError::InstanceMismatch { .. } => IgnoredKind::Malformed,
        }
    }
}

/// What a speaker advertises about itself: the content of its TXT record.
///
/// Built with [`SpeakerRecord::new`] (idle, in no group) and changed with
/// [`SpeakerRecord::set_state`]; both check every field against the caps above, so a record
/// that exists always encodes to a TXT record that [`SpeakerRecord::parse_txt`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpeakerRecord {
    /// The stable id; also the mDNS instance name.
    pub id: String,
    /// The name people call it by ("Kitchen").
    pub name: String,
    /// The room it stands in (may be empty).
    pub room: String,
    /// Its model; a stereo pair needs two of one model.
    pub model: String,
    /// Idle, leading or following.
    pub state: PlayState,
    /// The group it is in, if any; always set when leading or following.
    pub group: Option<String>,
}

impl SpeakerRecord {
    /// An idle speaker in no group; fails with the first field that breaks its rule.
    pub fn new(id: &str, name: &str, room: &str, model: &str) -> Result<SpeakerRecord, TxtError> {
        let record = SpeakerRecord {
            id: id.to_owned(),
            name: name.to_owned(),
            room: room.to_owned(),
            model: model.to_owned(),
            state: PlayState::Idle,
            group: None,
        };
        record.check()?;
        Ok(record)
    }

    /// Sets the state and group; a leading or following speaker must name a group. On an
    /// error the record is unchanged.
    pub fn set_state(&mut self, state: PlayState, group: Option<&str>) -> Result<(), TxtError> {
        let mut next = self.clone();
        next.state = state;
        next.group = group.map(str::to_owned);
        next.check()?;
        *self = next;
        Ok(())
    }

    /// Checks every field as [`SpeakerRecord::parse_txt`] would.
    fn check(&self) -> Result<(), TxtError> {
        check_id(self.id.as_bytes())?;
        check_text("name", self.name.as_bytes(), false)?;
        check_text("room", self.room.as_bytes(), true)?;
        check_text("model", self.model.as_bytes(), false)?;
        if let Some(group) = &self.group {
            check_text("group", group.as_bytes(), false)?;
        }
        if self.group.is_none() && self.state != PlayState::Idle {
            return Err(TxtError::NoGroup { state: self.state });
        }
        Ok(())
    }

    /// The TXT entries, in a fixed order: `lv`, `id`, `name`, `room`, `model`, `state`, and
    /// `group` when there is one.
    pub fn to_txt(&self) -> Vec<(&'static str, String)> {
        let mut txt = vec![
            ("lv", PROTOCOL_VERSION.to_string()),
            ("id", self.id.clone()),
            ("name", self.name.clone()),
            ("room", self.room.clone()),
            ("model", self.model.clone()),
            ("state", self.state.as_str().to_owned()),
        ];
        if let Some(group) = &self.group {
            txt.push(("group", group.clone()));
        }
        txt
    }

    /// Parses a TXT record given as its entries: each a key and its value (`None` for a key
    /// without `=`), as an mDNS library decodes them. Pure; never panics.
    ///
    /// Sizes are checked first (an entry over [`MAX_TXT_ENTRY_LEN`], the record over
    /// [`MAX_TXT_TOTAL_LEN`]), then the version (a record without `lv` is
    /// [`TxtError::NotLockstep`]), then the fields. Of a key given twice the first counts,
    /// as RFC 6763 says; unknown keys are skipped.
    pub fn parse_txt<'a, I>(entries: I) -> Result<SpeakerRecord, TxtError>
    where
        I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    {
        let mut fields: [Option<Option<&[u8]>>; 7] = [None; 7];
        let mut total = 0usize;
        for (key, value) in entries {
            let len = key.len() + value.map_or(0, |v| v.len() + 1);
            if len > MAX_TXT_ENTRY_LEN {
                return Err(TxtError::EntryTooLong {
                    key: key.chars().take(MAX_FIELD_LEN).collect(),
                    len,
                    max: MAX_TXT_ENTRY_LEN,
                });
            }
            total += 1 + len;
            if total > MAX_TXT_TOTAL_LEN {
                return Err(TxtError::TooLarge {
                    len: total,
                    max: MAX_TXT_TOTAL_LEN,
                });
            }
            if let Some(i) = KEYS.iter().position(|k| k.eq_ignore_ascii_case(key)) {
                fields[i].get_or_insert(value);
            }
        }
        let [lv, id, name, room, model, state, group] = fields;
        let lv = lv.ok_or(TxtError::NotLockstep)?;
        let lv_bytes = lv.unwrap_or_default();
        if std::str::from_utf8(lv_bytes).ok() != Some(PROTOCOL_VERSION.to_string().as_str()) {
            return Err(TxtError::Version {
                got: String::from_utf8_lossy(lv_bytes).into_owned(),
                supported: PROTOCOL_VERSION,
            });
        }
        let id = required("id", id)?;
        check_id(id)?;
        let name = required("name", name)?;
        let room = required("room", room)?;
        let model = required("model", model)?;
        let state_bytes = required("state", state)?;
        let group = match group {
            None => None,
            Some(v) => Some(required("group", Some(v))?),
        };
        let record = SpeakerRecord {
            // check_id accepted ASCII only.
            id: String::from_utf8_lossy(id).into_owned(),
            name: check_text("name", name, false)?.to_owned(),
            room: check_text("room", room, true)?.to_owned(),
            model: check_text("model", model, false)?.to_owned(),
            state: std::str::from_utf8(state_bytes)
                .ok()
                .and_then(PlayState::parse)
                .ok_or_else(|| TxtError::UnknownState {
                    got: String::from_utf8_lossy(state_bytes)
                        .chars()
                        .take(MAX_FIELD_LEN)
                        .collect(),
                })?,
            group: match group {
                Some(g) => Some(check_text("group", g, false)?.to_owned()),
                None => None,
            },
        };
        if record.group.is_none() && record.state != PlayState::Idle {
            return Err(TxtError::NoGroup {
                state: record.state,
            });
        }
        Ok(record)
    }
}

/// The keys [`SpeakerRecord::parse_txt`] reads, in the order of its field table.
const KEYS: [&str; 7] = ["lv", "id", "name", "room", "model", "state", "group"];

/// A key's value, which must be present (a key without a value counts as empty; `room`
/// may be empty, so emptiness is checked by the caller's rule).
fn required<'a>(key: &'static str, value: Option<Option<&'a [u8]>>) -> Result<&'a [u8], TxtError> {
    match value {
        None => Err(TxtError::Missing { key }),
        Some(v) => Ok(v.unwrap_or_default()),
    }
}

/// Checks an id: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-` or `_`.
fn check_id(id: &[u8]) -> Result<(), TxtError> {
    if id.is_empty() {
        return Err(TxtError::Empty { key: "id" });
    }
    if id.len() > MAX_ID_LEN {
        return Err(TxtError::FieldTooLong {
            key: "id",
            len: id.len(),
            max: MAX_ID_LEN,
        });
    }
    if !id
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return Err(TxtError::BadId {
            got: String::from_utf8_lossy(id).into_owned(),
        });
    }
    Ok(())
}

/// Checks a text field: UTF-8 without control characters, at most [`MAX_FIELD_LEN`]
/// bytes, and not empty unless `may_be_empty`.
fn check_text<'a>(
    key: &'static str,
    value: &'a [u8],
    may_be_empty: bool,
) -> Result<&'a str, TxtError> {
    if value.is_empty() && !may_be_empty {
        return Err(TxtError::Empty { key });
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(TxtError::FieldTooLong {
            key,
            len: value.len(),
            max: MAX_FIELD_LEN,
        });
    }
    let text = std::str::from_utf8(value).map_err(|_| TxtError::NotText { key })?;
    if text.chars().any(char::is_control) {
        return Err(TxtError::NotText { key });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid leading speaker's entries, as owned pairs to edit.
    fn leading() -> Vec<(String, Option<Vec<u8>>)> {
        let mut r = SpeakerRecord::new("k1", "Kitchen", "Kitchen", "LS-1").unwrap();
        r.set_state(PlayState::Leading, Some("Downstairs")).unwrap();
        r.to_txt()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Some(v.into_bytes())))
            .collect()
    }

    fn parse(entries: &[(String, Option<Vec<u8>>)]) -> Result<SpeakerRecord, TxtError> {
        SpeakerRecord::parse_txt(entries.iter().map(|(k, v)| (k.as_str(), v.as_deref())))
    }

    fn set(entries: &mut Vec<(String, Option<Vec<u8>>)>, key: &str, value: Option<&[u8]>) {
        entries.retain(|(k, _)| k != key);
        entries.push((key.to_owned(), value.map(<[u8]>::to_vec)));
    }

    #[test]
    fn a_record_round_trips_through_its_txt() {
        let got = parse(&leading()).unwrap();
        assert_eq!(got.id, "k1");
        assert_eq!(got.name, "Kitchen");
        assert_eq!(got.model, "LS-1");
        assert_eq!(got.state, PlayState::Leading);
        assert_eq!(got.group.as_deref(), Some("Downstairs"));
        let idle = SpeakerRecord::new("b-2", "Bath", "", "LS-1").unwrap();
        let txt = idle.to_txt();
        assert!(txt.iter().all(|(k, _)| *k != "group"));
        let back = SpeakerRecord::parse_txt(txt.iter().map(|(k, v)| (*k, Some(v.as_bytes()))));
        assert_eq!(back, Ok(idle));
    }

    #[test]
    fn keys_match_without_case_the_first_of_two_counts_and_unknown_ones_are_skipped() {
        let mut e = leading();
        for (k, _) in &mut e {
            if k == "name" {
                *k = "NAME".to_owned();
            }
        }
        e.push(("name".to_owned(), Some(b"Second".to_vec())));
        e.push(("future".to_owned(), Some(b"x".to_vec())));
        e.push(("flag".to_owned(), None));
        assert_eq!(parse(&e).unwrap().name, "Kitchen");
    }

    #[test]
    fn a_record_without_lv_is_foreign() {
        let e = vec![("path".to_owned(), Some(b"/".to_vec()))];
        let err = parse(&e).unwrap_err();
        assert_eq!(err, TxtError::NotLockstep);
        assert_eq!(err.kind(), IgnoredKind::Foreign);
        assert_eq!(parse(&[]).unwrap_err(), TxtError::NotLockstep);
    }

    #[test]
    fn another_version_is_incompatible() {
        for bad in [
            (PROTOCOL_VERSION + 1).to_string().into_bytes(),
            b"".to_vec(),
            b"2x".to_vec(),
            vec![0xff],
        ] {
            let mut e = leading();
            set(&mut e, "lv", Some(&bad));
            let err = parse(&e).unwrap_err();
            assert!(
                matches!(err, TxtError::Version { supported, .. } if supported == PROTOCOL_VERSION),
                "{err}"
            );
            assert_eq!(err.kind(), IgnoredKind::Incompatible);
        }
        let mut e = leading();
        set(&mut e, "lv", None);
        assert_eq!(parse(&e).unwrap_err().kind(), IgnoredKind::Incompatible);
    }

    #[test]
    fn an_unknown_state_is_malformed() {
        for bad in [&b"playing"[..], b"LEADING", b"", &[0xc3, 0x28]] {
            let mut e = leading();
            set(&mut e, "state", Some(bad));
            let err = parse(&e).unwrap_err();
            assert!(matches!(err, TxtError::UnknownState { .. }), "{err}");
            assert_eq!(err.kind(), IgnoredKind::Malformed);
        }
    }

    #[test]
    fn missing_empty_or_broken_fields_are_malformed() {
        for key in ["id", "name", "room", "model", "state"] {
            let mut e = leading();
            e.retain(|(k, _)| k != key);
            let err = parse(&e).unwrap_err();
            assert!(
                matches!(err, TxtError::Missing { key: k } if k == key),
                "{key}: {err}"
            );
            assert_eq!(err.kind(), IgnoredKind::Malformed);
        }
        let mut e = leading();
        set(&mut e, "name", None);
        assert_eq!(parse(&e).unwrap_err(), TxtError::Empty { key: "name" });
        let mut e = leading();
        set(&mut e, "id", Some(b"a.b"));
        assert!(matches!(parse(&e).unwrap_err(), TxtError::BadId { .. }));
        let mut e = leading();
        set(&mut e, "model", Some(&[0xff, 0xfe]));
        assert_eq!(parse(&e).unwrap_err(), TxtError::NotText { key: "model" });
        let mut e = leading();
        set(&mut e, "name", Some(b"a\nb"));
        assert_eq!(parse(&e).unwrap_err(), TxtError::NotText { key: "name" });
        let mut e = leading();
        e.retain(|(k, _)| k != "group");
        assert_eq!(
            parse(&e).unwrap_err(),
            TxtError::NoGroup {
                state: PlayState::Leading
            }
        );
        // The room alone may be empty.
        let mut e = leading();
        set(&mut e, "room", Some(b""));
        assert_eq!(parse(&e).unwrap().room, "");
    }

    #[test]
    fn oversized_entries_records_and_fields_are_counted_as_oversized() {
        let mut e = leading();
        set(&mut e, "name", Some(&[b'n'; 300]));
        let err = parse(&e).unwrap_err();
        assert!(
            matches!(
                err,
                TxtError::EntryTooLong {
                    len: 305,
                    max: 255,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.kind(), IgnoredKind::Oversized);

        let mut e = leading();
        for i in 0..10 {
            e.push((format!("pad{i}"), Some(vec![b'p'; 200])));
        }
        let err = parse(&e).unwrap_err();
        assert!(
            matches!(
                err,
                TxtError::TooLarge {
                    max: MAX_TXT_TOTAL_LEN,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.kind(), IgnoredKind::Oversized);

        let mut e = leading();
        set(&mut e, "group", Some(&[b'g'; MAX_FIELD_LEN + 1]));
        let err = parse(&e).unwrap_err();
        assert_eq!(
            err,
            TxtError::FieldTooLong {
                key: "group",
                len: MAX_FIELD_LEN + 1,
                max: MAX_FIELD_LEN
            }
        );
        assert_eq!(err.kind(), IgnoredKind::Oversized);
        // Exactly at the cap is fine.
        let mut e = leading();
        set(&mut e, "group", Some(&[b'g'; MAX_FIELD_LEN]));
        assert_eq!(parse(&e).unwrap().group.unwrap().len(), MAX_FIELD_LEN);
    }

    #[test]
    fn building_a_record_checks_the_same_rules() {
        assert_eq!(
            SpeakerRecord::new("", "a", "", "m").unwrap_err(),
            TxtError::Empty { key: "id" }
        );
        assert!(matches!(
            SpeakerRecord::new("x y", "a", "", "m").unwrap_err(),
            TxtError::BadId { .. }
        ));
        let long = "n".repeat(MAX_FIELD_LEN + 1);
        assert!(matches!(
            SpeakerRecord::new("x", &long, "", "m").unwrap_err(),
            TxtError::FieldTooLong { key: "name", .. }
        ));
        let mut r = SpeakerRecord::new("x", "a", "", "m").unwrap();
        assert_eq!(
            r.set_state(PlayState::Following, None).unwrap_err(),
            TxtError::NoGroup {
                state: PlayState::Following
            }
        );
        assert_eq!(
            r.state,
            PlayState::Idle,
            "a refused change leaves the record"
        );
    }
}
