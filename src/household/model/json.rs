//! The household as JSON: a `"format"` field, the records, and the checks a record read
//! from outside must pass.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    GroupRecord, Household, HouseholdError, LayoutRecord, SpeakerId, SpeakerRecord, Version,
};

/// The household JSON format this build reads and writes. A record with another `"format"`
/// is refused ([`HouseholdError::UnsupportedFormat`]): a later build that changes the
/// records changes the number.
pub const FORMAT: u32 = 1;

/// The highest Lamport counter a record read from outside may carry (2^62): far beyond
/// any real count of writes, and far enough below `u64::MAX` that counting on never
/// overflows.
const MAX_COUNTER: u64 = 1 << 62;

#[derive(Serialize)]
struct WireOut<'a> {
    format: u32,
    speakers: &'a [SpeakerRecord],
    groups: &'a [GroupRecord],
    layout: &'a LayoutRecord,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn {
    format: u64,
    speakers: Vec<SpeakerRecord>,
    groups: Vec<GroupRecord>,
    layout: LayoutRecord,
}

/// Only the format, whatever else the object holds.
#[derive(Deserialize)]
struct Peek {
    format: u64,
}

fn malformed(e: serde_json::Error) -> HouseholdError {
    HouseholdError::Malformed {
        reason: e.to_string(),
    }
}

fn inconsistent(reason: String) -> HouseholdError {
    HouseholdError::Inconsistent { reason }
}

/// Refuses a `format` other than [`FORMAT`].
pub(crate) fn check_format(format: u64) -> Result<(), HouseholdError> {
    if format == u64::from(FORMAT) {
        Ok(())
    } else {
        Err(HouseholdError::UnsupportedFormat {
            got: format,
            supported: FORMAT,
        })
    }
}

impl Household {
    /// The household as one JSON object, with `"format"`: [`FORMAT`].
    pub fn to_json(&self) -> String {
        // Serializing plain structs, strings and numbers into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a household that [`to_json`](Household::to_json) wrote (here or on another
    /// speaker). Refuses another format ([`HouseholdError::UnsupportedFormat`], checked
    /// before anything else), JSON of another shape ([`HouseholdError::Malformed`]) and
    /// records that do not hold together ([`HouseholdError::Inconsistent`]).
    pub fn from_json(text: &str) -> Result<Household, HouseholdError> {
        let peek: Peek = serde_json::from_str(text).map_err(malformed)?;
        check_format(peek.format)?;
        let wire: WireIn = serde_json::from_str(text).map_err(malformed)?;
        Household::from_wire(wire)
    }

    fn from_wire(wire: WireIn) -> Result<Household, HouseholdError> {
        check_format(wire.format)?;
        let mut h = Household {
            speakers: wire.speakers,
            groups: wire.groups,
            layout: wire.layout,
        };
        h.speakers.sort_by_key(|a| a.speaker.id);
        h.groups.sort_by_key(|a| a.id);
        h.check()?;
        Ok(h)
    }

    /// The checks a record read from outside must pass. The stereo-pair rules that depend
    /// on two records (one model, one room) are the operations'; two replicas' concurrent
    /// changes can legitimately break the room rule, so it is not checked here.
    fn check(&self) -> Result<(), HouseholdError> {
        let check_version = |v: &Version, what: &dyn Fn() -> String| {
            if v.max_counter() > MAX_COUNTER {
                return Err(inconsistent(format!("{} has a counter above 2^62", what())));
            }
            Ok(())
        };
        let mut known = BTreeSet::new();
        for r in &self.speakers {
            let id = r.speaker.id;
            if id == SpeakerId::NIL {
                return Err(inconsistent("a speaker has the all-zero id".into()));
            }
            if !known.insert(id) {
                return Err(inconsistent(format!("speaker {id} is listed twice")));
            }
            check_version(&r.version, &|| format!("speaker {id}"))?;
            r.speaker.check()?;
        }
        let need = |id: &SpeakerId, what: &dyn Fn() -> String| {
            if known.contains(id) {
                Ok(())
            } else {
                Err(inconsistent(format!(
                    "{} names unknown speaker {id}",
                    what()
                )))
            }
        };
        let mut groups = BTreeSet::new();
        for r in &self.groups {
            let gid = r.id;
            if !groups.insert(gid) {
                return Err(inconsistent(format!("group {gid} is listed twice")));
            }
            check_version(&r.version, &|| format!("group {gid}"))?;
            let Some(g) = &r.group else { continue };
            super::check_name("group", &g.name)?;
            let mut seen = BTreeSet::new();
            for m in &g.members {
                need(m, &|| format!("group {gid}"))?;
                if !seen.insert(*m) {
                    return Err(inconsistent(format!("group {gid} lists speaker {m} twice")));
                }
            }
            if let Some(l) = &g.leader {
                need(l, &|| format!("group {gid}'s leader"))?;
            }
        }
        check_version(&self.layout.version, &|| "the layout".into())?;
        let layout = &self.layout.layout;
        let mut paired = BTreeSet::new();
        for p in &layout.pairs {
            for s in [p.left, p.right] {
                need(&s, &|| "a pair".into())?;
                if !paired.insert(s) {
                    return Err(inconsistent(format!(
                        "speaker {s} is in two pairs, or twice in one"
                    )));
                }
            }
        }
        let mut subs = BTreeSet::new();
        let mut hosts = BTreeSet::new();
        for l in &layout.subs {
            need(&l.sub, &|| "a subwoofer link".into())?;
            need(&l.host, &|| "a subwoofer link".into())?;
            if paired.contains(&l.sub) {
                return Err(inconsistent(format!("subwoofer {} is in a pair", l.sub)));
            }
            // One subwoofer per host unit (a pair counts as its left).
            let host = layout.pair_of(l.host).map_or(l.host, |p| p.left);
            if l.sub == l.host || !subs.insert(l.sub) || !hosts.insert(host) {
                return Err(inconsistent(format!(
                    "subwoofer {} on host {}: a speaker is its own subwoofer, a subwoofer \
                     has two hosts, or a host two subwoofers",
                    l.sub, l.host
                )));
            }
        }
        if let Some(s) = subs.intersection(&hosts).next() {
            return Err(inconsistent(format!(
                "subwoofer {s} has a subwoofer of its own"
            )));
        }
        Ok(())
    }
}

impl Serialize for Household {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOut {
            format: FORMAT,
            speakers: &self.speakers,
            groups: &self.groups,
            layout: &self.layout,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Household {
    /// Reads and checks a household as [`Household::from_json`] does; its typed error
    /// arrives as the deserializer's message.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Household, D::Error> {
        let wire = WireIn::deserialize(d)?;
        Household::from_wire(wire).map_err(serde::de::Error::custom)
    }
}
