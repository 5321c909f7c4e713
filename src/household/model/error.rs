//! What the household operations and its JSON refuse.

use super::id::{GroupId, SpeakerId};

/// Why a household operation was refused, or a household record could not be read.
///
/// Speakers are named in these errors by their name as the household knows it (or by the
/// string the caller gave, when it names no speaker), groups likewise.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HouseholdError {
    /// No speaker has this name or id.
    #[error("no speaker is named {speaker:?} or has that id")]
    NoSuchSpeaker {
        /// The name or id asked for.
        speaker: String,
    },
    /// More than one speaker answers to this name (or one by name and another by id).
    #[error(
        "{speaker:?} names more than one speaker ({}): name one by its id",
        list(ids)
    )]
    AmbiguousSpeaker {
        /// The name asked for.
        speaker: String,
        /// The ids of the speakers it names.
        ids: Vec<SpeakerId>,
    },
    /// No live group has this name or id.
    #[error("no group is named {group:?} or has that id")]
    NoSuchGroup {
        /// The name or id asked for.
        group: String,
    },
    /// More than one group has this name (two replicas created it at once).
    #[error(
        "{group:?} names more than one group ({}): name one by its id",
        list(ids)
    )]
    AmbiguousGroup {
        /// The name asked for.
        group: String,
        /// The ids of the groups it names.
        ids: Vec<GroupId>,
    },
    /// A group with this name exists already.
    #[error("a group named {group:?} exists already")]
    GroupExists {
        /// The name.
        group: String,
    },
    /// A speaker with this id is in the household already.
    #[error("speaker {id} is in the household already, as {name:?}")]
    SpeakerExists {
        /// The id.
        id: SpeakerId,
        /// The name it has.
        name: String,
    },
    /// A name is empty, too long, or has control characters or surrounding spaces.
    #[error("{what} name {got:?} is refused: {why}")]
    InvalidName {
        /// What the name is for ("speaker", "room", "model", "group").
        what: &'static str,
        /// The name (at most its first 80 characters).
        got: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A setting is outside its range.
    #[error("{what} {got} is out of range ({range})")]
    OutOfRange {
        /// The setting ("volume", "trim", "output latency").
        what: &'static str,
        /// The value that came, as text.
        got: String,
        /// The allowed range, as text.
        range: &'static str,
    },
    /// A stereo pair of two models: the speakers and their models.
    #[error(
        "a stereo pair needs two speakers of the same model: {left:?} is {left_model:?}, \
         {right:?} is {right_model:?}"
    )]
    ModelMismatch {
        /// The speaker asked to play left.
        left: String,
        /// Its model.
        left_model: String,
        /// The speaker asked to play right.
        right: String,
        /// Its model.
        right_model: String,
    },
    /// A stereo pair across two rooms (or a paired speaker moved to another room).
    #[error(
        "a stereo pair's speakers are in one room: {left:?} is in {left_room:?}, \
         {right:?} in {right_room:?}"
    )]
    RoomMismatch {
        /// The pair's (or would-be pair's) left speaker.
        left: String,
        /// Its room.
        left_room: String,
        /// The right speaker.
        right: String,
        /// Its room.
        right_room: String,
    },
    /// The speaker is one half of a stereo pair already.
    #[error("{speaker:?} is paired already, with {partner:?}")]
    AlreadyPaired {
        /// The speaker.
        speaker: String,
        /// Its partner.
        partner: String,
    },
    /// The speaker is in no stereo pair.
    #[error("{speaker:?} is not in a stereo pair")]
    NotPaired {
        /// The speaker.
        speaker: String,
    },
    /// One speaker named twice where two are needed (a pair with itself, its own sub).
    #[error("{speaker:?} cannot be paired with, or be the subwoofer of, itself")]
    SameSpeaker {
        /// The speaker.
        speaker: String,
    },
    /// The speaker is a subwoofer: it plays with its host and cannot be paired, lead, or
    /// be a member of a group on its own.
    #[error("{speaker:?} is the subwoofer of {host:?}")]
    IsSub {
        /// The subwoofer.
        speaker: String,
        /// The speaker (or the left of the pair) it is attached to.
        host: String,
    },
    /// The speaker has a subwoofer attached, so it cannot become one.
    #[error("{speaker:?} has a subwoofer of its own ({sub:?})")]
    HostsSub {
        /// The speaker.
        speaker: String,
        /// Its subwoofer.
        sub: String,
    },
    /// Both would-be halves of a pair have a subwoofer; a pair takes one.
    #[error("{left:?} and {right:?} both have a subwoofer; clear one first")]
    TwoSubs {
        /// The left speaker.
        left: String,
        /// The right speaker.
        right: String,
    },
    /// The speaker (or pair, or host) has no subwoofer.
    #[error("{host:?} has no subwoofer")]
    NoSub {
        /// The speaker.
        host: String,
    },
    /// The two would-be halves of a pair are members of two groups.
    #[error("{left:?} is in group {left_group:?} and {right:?} in group {right_group:?}")]
    PairAcrossGroups {
        /// The left speaker.
        left: String,
        /// Its group.
        left_group: String,
        /// The right speaker.
        right: String,
        /// Its group.
        right_group: String,
    },
    /// The speaker is a member of this group already.
    #[error("{speaker:?} is in group {group:?} already")]
    AlreadyMember {
        /// The speaker.
        speaker: String,
        /// The group.
        group: String,
    },
    /// The speaker is a member of another group: move it instead.
    #[error("{speaker:?} is in group {group:?}: move it from there instead")]
    InOtherGroup {
        /// The speaker.
        speaker: String,
        /// The group it is in.
        group: String,
    },
    /// The speaker is not a member of this group.
    #[error("{speaker:?} is not in group {group:?}")]
    NotMember {
        /// The speaker.
        speaker: String,
        /// The group.
        group: String,
    },
    /// The all-zero id cannot write: it marks the household's initial records.
    #[error("the all-zero speaker id cannot write to a household")]
    NilWriter,
    /// A household record in a format this build does not read.
    #[error("household format {got} is not supported (this build reads format {supported})")]
    UnsupportedFormat {
        /// The format in the record.
        got: u64,
        /// The format this build reads and writes.
        supported: u32,
    },
    /// A household record that is not valid JSON of the expected shape.
    #[error("malformed household record: {reason}")]
    Malformed {
        /// serde_json's description.
        reason: String,
    },
    /// A household record of the right shape whose contents do not hold together
    /// (a duplicate id, a member that is no speaker, a speaker in two pairs, ...).
    #[error("inconsistent household record: {reason}")]
    Inconsistent {
        /// What does not hold.
        reason: String,
    },
}

fn list<T: std::fmt::Display>(ids: &[T]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
