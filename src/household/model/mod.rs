//! The household as data: speakers, named groups, stereo pairs and subwoofers, versioned so
//! that every speaker can keep a replica and all replicas converge. Sans-IO and
//! deterministic: nothing here reads a clock, a file or a random source.
//!
//! # Records
//!
//! A [`Household`] is a set of records, each with its own [`Version`]:
//! - one per speaker ([`Speaker`]): id, name, room, model and [`Settings`] (volume, mute,
//!   latency trim, output latency);
//! - one per group ([`Group`], keyed by [`GroupId`]): its name, its members in order, its
//!   volume and its leader. A deleted group stays as a tombstone, so that a replica that
//!   missed the deletion does not bring it back;
//! - one [`Layout`] for the whole household: the stereo pairs and the subwoofers. Pairs and
//!   subwoofers span speakers, so they change together, in one record.
//!
//! Speakers are never removed (an id that was seen stays known).
//!
//! # Members, pairs and subwoofers
//!
//! A group's record lists speaker ids. What plays is derived from that list and the layout
//! ([`Household::members`]): a speaker that is half of a [`Pair`] brings the pair (the pair
//! is one [`Member`]), and a subwoofer plays with the speaker or pair it is attached to
//! ([`SubLink`]), never on its own. A speaker (with its pair and subwoofer) belongs to at
//! most one group: [`Edit`]'s operations keep it so; after a merge of two replicas that
//! each put it in another group, it belongs to the group whose record has the higher
//! stamp ([`Household::group_of`]), the same answer on every replica.
//!
//! The stereo-pair rule (two halves of one model) is the one the control channel's
//! admission applies, [`check_roles`](crate::control::check_roles); a pair is also in one
//! room.
//!
//! # Volume
//!
//! [`Volume`] is a linear amplitude factor in `0.0..=1.0`, as the control channel's
//! `SetVolume` takes it (the follower applies `20·log10(volume)` dB). A group has a volume
//! too; a member plays at `speaker volume × group volume` ([`Household::effective_volume`]),
//! so turning a group down scales every member in proportion and keeps each member's own
//! volume as it was: turning the group back up restores the balance between rooms.
//!
//! # Changes, versions and merges
//!
//! Every change goes through [`Household::edit`], which names the writer (the speaker that
//! makes the change) and stamps each record it changes with one new [`Stamp`]: a Lamport
//! counter one more than any counter the household has seen, and the writer's id. An
//! operation that is refused changes nothing.
//!
//! [`Household::merge`] folds a replica received from another speaker into this one,
//! record by record: a version that includes the other's writes wins; two concurrent
//! versions (neither includes the other) with different contents are a [`Conflict`], won
//! by the higher stamp (counter, then writer id) and reported in the [`MergeReport`] with
//! the losing content, for the caller to show. Merging is commutative, associative and
//! idempotent, so replicas that have exchanged the same records hold the same household.
//!
//! # Leaders
//!
//! "Play S in G" makes one member the group's leader: [`Household::choose_leader`] picks
//! the first member that holds the source, else the first member. The group record names
//! the leader, and a [`LeaderClaim`] carries that record's stamp as its term. Two leaders
//! claiming one group are a conflict that a [`LeaderTracker`] resolves the same way on
//! every follower (the higher term; on a tie, the higher leader id), so followers never
//! flip between them.
//!
//! # Example
//!
//! ```
//! use lockstep::household::{Household, Speaker, SpeakerId};
//!
//! # fn main() -> Result<(), lockstep::household::HouseholdError> {
//! let kitchen = SpeakerId([1; 16]);
//! let den = SpeakerId([2; 16]);
//! let mut mine = Household::founded_by(Speaker::new(kitchen, "Kitchen", "Kitchen", "One")?)?;
//! mine.edit(kitchen).add_speaker(Speaker::new(den, "Den", "Den", "One")?)?;
//! let downstairs = mine.edit(kitchen).create_group("Downstairs", &["Kitchen", "Den"])?;
//!
//! // The den's replica turns the group down while the kitchen's renames it.
//! let mut dens = mine.clone();
//! dens.edit(den).set_group_volume("Downstairs", 0.5)?;
//! mine.edit(kitchen).rename_group("Downstairs", "Ground floor")?;
//!
//! // Both merge: one winner (the den's, on the tie of counters), and the conflict is reported.
//! let report = mine.merge(&dens);
//! dens.merge(&mine);
//! assert_eq!(mine, dens);
//! assert_eq!(report.conflicts.len(), 1);
//! assert_eq!(mine.effective_volume(den), Some(0.5));
//! assert_eq!(mine.group(downstairs).map(|g| g.name.as_str()), Some("Downstairs"));
//! # Ok(())
//! # }
//! ```
//!
//! # JSON
//!
//! [`Household::to_json`] and [`Household::from_json`] write and read the household with a
//! `"format"` field ([`FORMAT`]). A record in another format, malformed JSON, or contents
//! that do not hold together are refused with a [`HouseholdError`]; nothing in the input
//! can make reading panic.

mod edit;
mod error;
mod id;
mod json;
mod leader;
mod merge;
mod version;

use serde::{Deserialize, Serialize};

use crate::control::Role;
use crate::time::Nanos;

pub use edit::Edit;
pub use error::HouseholdError;
pub use id::{BadId, GroupId, SpeakerId, Stamp};
pub use json::FORMAT;
pub(crate) use json::check_format;
pub use leader::{LeaderClaim, LeaderObservation, LeaderTracker};
pub use merge::{Conflict, Lost, MergeReport, RecordRef, merge};
pub use version::Version;

/// The longest name (speaker, room, model, group), in bytes: it fits a control Hello's
/// group field and a DNS-SD TXT record.
pub const MAX_NAME_LEN: usize = 64;

/// The largest latency trim either way: ±500 ms.
pub const MAX_TRIM: Nanos = Nanos::from_millis(500);

/// The largest output latency a speaker declares: 2 s.
pub const MAX_OUTPUT_LATENCY: Nanos = Nanos::from_secs(2);

/// A volume: a linear amplitude factor from 0.0 (silent) to 1.0 (the source as it is).
/// Never NaN.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct Volume(f32);

impl Volume {
    /// Silence.
    pub const SILENT: Volume = Volume(0.0);
    /// The source as it is (unity gain).
    pub const FULL: Volume = Volume(1.0);

    /// `v` as a volume; outside `0.0..=1.0` or NaN is [`HouseholdError::OutOfRange`].
    pub fn new(v: f32) -> Result<Volume, HouseholdError> {
        if (0.0..=1.0).contains(&v) {
            Ok(Volume(v))
        } else {
            Err(HouseholdError::OutOfRange {
                what: "volume",
                got: v.to_string(),
                range: "0.0..=1.0",
            })
        }
    }

    /// The factor.
    pub fn get(self) -> f32 {
        self.0
    }
}

impl TryFrom<f32> for Volume {
    type Error = HouseholdError;

    fn try_from(v: f32) -> Result<Volume, HouseholdError> {
        Volume::new(v)
    }
}

impl From<Volume> for f32 {
    fn from(v: Volume) -> f32 {
        v.0
    }
}

/// A speaker's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Its own volume (see [`Volume`]; the group's volume scales it).
    pub volume: Volume,
    /// Whether it is muted (it keeps its volume).
    pub muted: bool,
    /// Latency trim, ns: added to when it plays (positive = later), within ±[`MAX_TRIM`].
    pub trim_ns: i64,
    /// The delay from its DAC timeline to its driver's output, ns, within
    /// `0..=`[`MAX_OUTPUT_LATENCY`].
    pub output_latency_ns: i64,
}

impl Default for Settings {
    /// Full volume, not muted, no trim, no output latency.
    fn default() -> Settings {
        Settings {
            volume: Volume::FULL,
            muted: false,
            trim_ns: 0,
            output_latency_ns: 0,
        }
    }
}

impl Settings {
    /// The trim as a span.
    pub fn trim(&self) -> Nanos {
        Nanos::from_nanos(self.trim_ns)
    }

    /// The output latency as a span.
    pub fn output_latency(&self) -> Nanos {
        Nanos::from_nanos(self.output_latency_ns)
    }

    /// Refuses a trim or an output latency out of range.
    pub(crate) fn check(&self) -> Result<(), HouseholdError> {
        check_trim(self.trim())?;
        check_output_latency(self.output_latency())
    }
}

pub(crate) fn check_trim(trim: Nanos) -> Result<(), HouseholdError> {
    let max = MAX_TRIM.as_nanos();
    if (-max..=max).contains(&trim.as_nanos()) {
        Ok(())
    } else {
        Err(HouseholdError::OutOfRange {
            what: "trim",
            got: format!("{} ns", trim.as_nanos()),
            range: "-500 ms..=500 ms",
        })
    }
}

pub(crate) fn check_output_latency(latency: Nanos) -> Result<(), HouseholdError> {
    if (0..=MAX_OUTPUT_LATENCY.as_nanos()).contains(&latency.as_nanos()) {
        Ok(())
    } else {
        Err(HouseholdError::OutOfRange {
            what: "output latency",
            got: format!("{} ns", latency.as_nanos()),
            range: "0..=2 s",
        })
    }
}

/// Refuses a name that is empty, longer than [`MAX_NAME_LEN`] bytes, has control
/// characters, or starts or ends with white space. `what` says what the name is for.
pub fn check_name(what: &'static str, name: &str) -> Result<(), HouseholdError> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 64 bytes")
    } else if name.chars().any(char::is_control) {
        Some("it has control characters")
    } else if name.trim() != name {
        Some("it starts or ends with white space")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(HouseholdError::InvalidName {
            what,
            got: name.chars().take(80).collect(),
            why,
        }),
    }
}

/// One speaker of the household.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Speaker {
    /// Its stable id.
    pub id: SpeakerId,
    /// Its name ("Kitchen"); names need not be unique, ids are.
    pub name: String,
    /// The room it stands in.
    pub room: String,
    /// Its model id (a stereo pair needs two of one model).
    pub model: String,
    /// Its own settings.
    pub settings: Settings,
}

impl Speaker {
    /// A speaker with default [`Settings`]; refuses an invalid name, room or model.
    pub fn new(
        id: SpeakerId,
        name: &str,
        room: &str,
        model: &str,
    ) -> Result<Speaker, HouseholdError> {
        check_name("speaker", name)?;
        check_name("room", room)?;
        check_name("model", model)?;
        Ok(Speaker {
            id,
            name: name.to_owned(),
            room: room.to_owned(),
            model: model.to_owned(),
            settings: Settings::default(),
        })
    }

    /// Refuses invalid names or settings (a record read from outside).
    pub(crate) fn check(&self) -> Result<(), HouseholdError> {
        check_name("speaker", &self.name)?;
        check_name("room", &self.room)?;
        check_name("model", &self.model)?;
        self.settings.check()
    }
}

/// A named group, as its record holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Its name ("Downstairs").
    pub name: String,
    /// The speakers added, in order. [`Household::members`] derives what plays from it.
    pub members: Vec<SpeakerId>,
    /// The group's volume, scaling every member's ([`Household::effective_volume`]).
    pub volume: Volume,
    /// The member that leads it while it plays, if any.
    pub leader: Option<SpeakerId>,
}

/// A stereo pair: two speakers of one model in one room, playing left and right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    /// The speaker that plays the left channel.
    pub left: SpeakerId,
    /// The speaker that plays the right channel.
    pub right: SpeakerId,
}

impl Pair {
    /// Whether `id` is one of its halves.
    pub fn contains(&self, id: SpeakerId) -> bool {
        self.left == id || self.right == id
    }
}

/// A subwoofer attached to a speaker, or to a pair (then `host` is the pair's left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubLink {
    /// The subwoofer.
    pub sub: SpeakerId,
    /// The speaker it plays with (for a pair, the left).
    pub host: SpeakerId,
}

/// The household's stereo pairs and subwoofers: one record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// The stereo pairs.
    pub pairs: Vec<Pair>,
    /// The subwoofers.
    pub subs: Vec<SubLink>,
}

impl Layout {
    /// The pair `id` is half of.
    pub fn pair_of(&self, id: SpeakerId) -> Option<Pair> {
        self.pairs.iter().copied().find(|p| p.contains(id))
    }

    /// The host (speaker, or a pair's left) that `sub` is the subwoofer of.
    pub fn host_of(&self, sub: SpeakerId) -> Option<SpeakerId> {
        self.subs.iter().find(|s| s.sub == sub).map(|s| s.host)
    }

    /// The unit `id` plays in: its pair, or itself.
    pub fn unit_of(&self, id: SpeakerId) -> Unit {
        self.pair_of(id).map_or(Unit::Speaker(id), Unit::Pair)
    }

    /// The subwoofer attached to `unit` (to any of its speakers).
    pub fn sub_of(&self, unit: Unit) -> Option<SpeakerId> {
        self.subs
            .iter()
            .find(|s| unit.contains(s.host))
            .map(|s| s.sub)
    }
}

/// What plays as one member of a group: a speaker, or a stereo pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// A speaker on its own (it plays every channel).
    Speaker(SpeakerId),
    /// A stereo pair.
    Pair(Pair),
}

impl Unit {
    /// Whether `id` plays in this unit (not counting a subwoofer).
    pub fn contains(&self, id: SpeakerId) -> bool {
        match self {
            Unit::Speaker(s) => *s == id,
            Unit::Pair(p) => p.contains(id),
        }
    }

    /// Its speakers with their roles: [`Role::Full`], or [`Role::Left`] then
    /// [`Role::Right`].
    pub fn roles(&self) -> Vec<(SpeakerId, Role)> {
        match *self {
            Unit::Speaker(s) => vec![(s, Role::Full)],
            Unit::Pair(p) => vec![(p.left, Role::Left), (p.right, Role::Right)],
        }
    }
}

/// One member of a group as it plays: a unit and its subwoofer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member {
    /// The speaker or pair.
    pub unit: Unit,
    /// Its subwoofer, if one is attached.
    pub sub: Option<SpeakerId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpeakerRecord {
    version: Version,
    speaker: Speaker,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupRecord {
    id: GroupId,
    version: Version,
    /// `None`: deleted (a tombstone).
    group: Option<Group>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutRecord {
    version: Version,
    layout: Layout,
}

/// A household replica: see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Household {
    /// Sorted by speaker id, one per id.
    speakers: Vec<SpeakerRecord>,
    /// Sorted by group id, one per id; deleted groups stay as tombstones.
    groups: Vec<GroupRecord>,
    layout: LayoutRecord,
}

impl Default for Household {
    fn default() -> Household {
        Household::new()
    }
}

impl Household {
    /// A household with no speakers.
    pub fn new() -> Household {
        Household {
            speakers: Vec::new(),
            groups: Vec::new(),
            layout: LayoutRecord {
                version: Version::origin(),
                layout: Layout::default(),
            },
        }
    }

    /// A household with one speaker, `me`, written by `me` (a speaker's first start).
    pub fn founded_by(me: Speaker) -> Result<Household, HouseholdError> {
        let mut h = Household::new();
        let id = me.id;
        h.edit(id).add_speaker(me)?;
        Ok(h)
    }

    /// Starts a change written by speaker `writer`: see [`Edit`].
    pub fn edit(&mut self, writer: SpeakerId) -> Edit<'_> {
        Edit::new(self, writer)
    }

    /// The highest Lamport counter any record mentions; the next write is stamped one more.
    pub fn clock(&self) -> u64 {
        let s = self.speakers.iter().map(|r| r.version.max_counter());
        let g = self.groups.iter().map(|r| r.version.max_counter());
        s.chain(g)
            .chain([self.layout.version.max_counter()])
            .max()
            .unwrap_or(0)
    }

    /// Every speaker, in id order.
    pub fn speakers(&self) -> impl Iterator<Item = &Speaker> {
        self.speakers.iter().map(|r| &r.speaker)
    }

    /// The speaker with id `id`.
    pub fn speaker(&self, id: SpeakerId) -> Option<&Speaker> {
        self.speaker_index(id)
            .ok()
            .map(|i| &self.speakers[i].speaker)
    }

    /// The version of speaker `id`'s record.
    pub fn speaker_version(&self, id: SpeakerId) -> Option<&Version> {
        self.speaker_index(id)
            .ok()
            .map(|i| &self.speakers[i].version)
    }

    fn speaker_index(&self, id: SpeakerId) -> Result<usize, usize> {
        self.speakers.binary_search_by(|r| r.speaker.id.cmp(&id))
    }

    /// The name of speaker `id`, or its id as text if the household does not know it.
    pub fn label(&self, id: SpeakerId) -> String {
        self.speaker(id)
            .map_or_else(|| id.to_string(), |s| s.name.clone())
    }

    /// The speaker that `name_or_id` names: by id (32 hex digits) or by name. Refuses a
    /// string that names none ([`HouseholdError::NoSuchSpeaker`]) or several, by name or
    /// one by name and another by id ([`HouseholdError::AmbiguousSpeaker`]).
    pub fn resolve_speaker(&self, name_or_id: &str) -> Result<SpeakerId, HouseholdError> {
        let by_id = name_or_id
            .parse::<SpeakerId>()
            .ok()
            .filter(|id| self.speaker(*id).is_some());
        let mut ids: Vec<SpeakerId> = by_id.into_iter().collect();
        for s in self.speakers() {
            if s.name == name_or_id && !ids.contains(&s.id) {
                ids.push(s.id);
            }
        }
        match ids.as_slice() {
            [] => Err(HouseholdError::NoSuchSpeaker {
                speaker: name_or_id.to_owned(),
            }),
            [id] => Ok(*id),
            _ => Err(HouseholdError::AmbiguousSpeaker {
                speaker: name_or_id.to_owned(),
                ids,
            }),
        }
    }

    /// The live (not deleted) groups, in id order.
    pub fn groups(&self) -> impl Iterator<Item = (GroupId, &Group)> {
        self.groups
            .iter()
            .filter_map(|r| r.group.as_ref().map(|g| (r.id, g)))
    }

    /// The live group with id `id`.
    pub fn group(&self, id: GroupId) -> Option<&Group> {
        self.group_record(id).and_then(|r| r.group.as_ref())
    }

    /// The version of group `id`'s record (a deleted group's too).
    pub fn group_version(&self, id: GroupId) -> Option<&Version> {
        self.group_record(id).map(|r| &r.version)
    }

    fn group_record(&self, id: GroupId) -> Option<&GroupRecord> {
        let i = self.groups.binary_search_by(|r| r.id.cmp(&id)).ok()?;
        Some(&self.groups[i])
    }

    /// The name of group `id`, or its id as text.
    pub fn group_label(&self, id: GroupId) -> String {
        self.group(id)
            .map_or_else(|| id.to_string(), |g| g.name.clone())
    }

    /// The live group that `name_or_id` names, by id or by name; refuses none
    /// ([`HouseholdError::NoSuchGroup`]) and several ([`HouseholdError::AmbiguousGroup`]).
    pub fn resolve_group(&self, name_or_id: &str) -> Result<GroupId, HouseholdError> {
        let by_id = name_or_id
            .parse::<GroupId>()
            .ok()
            .filter(|id| self.group(*id).is_some());
        let mut ids: Vec<GroupId> = by_id.into_iter().collect();
        for (id, g) in self.groups() {
            if g.name == name_or_id && !ids.contains(&id) {
                ids.push(id);
            }
        }
        match ids.as_slice() {
            [] => Err(HouseholdError::NoSuchGroup {
                group: name_or_id.to_owned(),
            }),
            [id] => Ok(*id),
            _ => Err(HouseholdError::AmbiguousGroup {
                group: name_or_id.to_owned(),
                ids,
            }),
        }
    }

    /// The stereo pairs and subwoofers.
    pub fn layout(&self) -> &Layout {
        &self.layout.layout
    }

    /// The version of the layout record.
    pub fn layout_version(&self) -> &Version {
        &self.layout.version
    }

    /// The live group speaker `id` plays in: its host's, for a subwoofer; otherwise the
    /// live group whose list holds it or its pair partner, the one with the highest stamp
    /// if (after a merge) several do.
    pub fn group_of(&self, id: SpeakerId) -> Option<GroupId> {
        let layout = self.layout();
        let id = layout.host_of(id).unwrap_or(id);
        let unit = layout.unit_of(id);
        self.groups
            .iter()
            .filter(|r| {
                r.group
                    .as_ref()
                    .is_some_and(|g| g.members.iter().any(|m| unit.contains(*m)))
            })
            .max_by_key(|r| r.version.stamp)
            .map(|r| r.id)
    }

    /// What plays in group `id`, in the order of its list: each speaker or pair once, with
    /// its subwoofer. Leaves out speakers the household does not know, subwoofers listed on
    /// their own, and units that [`group_of`](Household::group_of) puts in another group.
    pub fn members(&self, id: GroupId) -> Vec<Member> {
        let Some(group) = self.group(id) else {
            return Vec::new();
        };
        let layout = self.layout();
        let mut out: Vec<Member> = Vec::new();
        for &s in &group.members {
            if self.speaker(s).is_none() || layout.host_of(s).is_some() {
                continue;
            }
            let unit = layout.unit_of(s);
            if out.iter().any(|m| m.unit == unit) || self.group_of(s) != Some(id) {
                continue;
            }
            out.push(Member {
                unit,
                sub: layout.sub_of(unit),
            });
        }
        out
    }

    /// Every speaker that plays in group `id` with its role: a single speaker
    /// [`Role::Full`], a pair's halves [`Role::Left`] and [`Role::Right`], a subwoofer
    /// [`Role::Sub`]; in member order.
    pub fn roles(&self, id: GroupId) -> Vec<(SpeakerId, Role)> {
        let mut out = Vec::new();
        for m in self.members(id) {
            out.extend(m.unit.roles());
            out.extend(m.sub.map(|s| (s, Role::Sub)));
        }
        out
    }

    /// The volume speaker `id` plays at: its own volume times its group's (its host's
    /// group's, for a subwoofer), or 0 when muted. `None` for an unknown speaker.
    pub fn effective_volume(&self, id: SpeakerId) -> Option<f32> {
        let s = self.speaker(id)?;
        if s.settings.muted {
            return Some(0.0);
        }
        let group = self
            .group_of(id)
            .and_then(|g| self.group(g))
            .map_or(1.0, |g| g.volume.get());
        Some(s.settings.volume.get() * group)
    }

    /// "Play S in G": the speaker that leads group `id` for a source, the first member (in
    /// order; a pair's left before its right) for which `holds_source` is true, else the
    /// first member's first speaker. Subwoofers do not lead. `None` for an empty or
    /// unknown group.
    pub fn choose_leader(
        &self,
        id: GroupId,
        holds_source: impl Fn(SpeakerId) -> bool,
    ) -> Option<SpeakerId> {
        let speakers: Vec<SpeakerId> = self
            .members(id)
            .iter()
            .flat_map(|m| m.unit.roles())
            .map(|(s, _)| s)
            .collect();
        speakers
            .iter()
            .copied()
            .find(|s| holds_source(*s))
            .or_else(|| speakers.first().copied())
    }

    /// The claim of group `id`'s recorded leader: the leader with the group record's stamp
    /// as its term. `None` if the group has no leader or does not exist.
    pub fn leader_claim(&self, id: GroupId) -> Option<LeaderClaim> {
        let r = self.group_record(id)?;
        let leader = r.group.as_ref()?.leader?;
        Some(LeaderClaim {
            group: id,
            leader,
            term: r.version.stamp,
        })
    }
}
