//! Folding another replica into this one, record by record, and the conflicts it finds.

use core::fmt;

use super::version::Order;
use super::{
    Group, GroupId, GroupRecord, Household, Layout, LayoutRecord, Speaker, SpeakerId,
    SpeakerRecord, Version,
};

/// Which record a conflict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordRef {
    /// A speaker's record.
    Speaker(SpeakerId),
    /// A group's record.
    Group(GroupId),
    /// The pairs and subwoofers.
    Layout,
}

/// The content that lost a conflict, for the caller to show (or to apply again).
#[derive(Debug, Clone, PartialEq)]
pub enum Lost {
    /// A speaker's record.
    Speaker(Speaker),
    /// A group's record (`None`: the group's deletion lost).
    Group(Option<Group>),
    /// The pairs and subwoofers.
    Layout(Layout),
}

/// What a merge found that a person may want to know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Conflict {
    /// Two concurrent versions of one record with different contents: `kept` won (the
    /// higher stamp), `lost` and its content did not. The same winner on every replica.
    Concurrent {
        /// The record.
        record: RecordRef,
        /// The winning version (as it was before the merge).
        kept: Version,
        /// The losing version.
        lost: Version,
        /// The losing content.
        lost_content: Lost,
    },
    /// Two live groups have one name (two replicas created or renamed groups at once);
    /// both stay, and the name is ambiguous until one is renamed.
    GroupName {
        /// The name.
        name: String,
        /// The groups that have it, in id order.
        groups: Vec<GroupId>,
    },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::Concurrent {
                record, kept, lost, ..
            } => {
                let what = match record {
                    RecordRef::Speaker(id) => format!("speaker {id}"),
                    RecordRef::Group(id) => format!("group {id}"),
                    RecordRef::Layout => "the pairs and subwoofers".to_owned(),
                };
                write!(
                    f,
                    "{what} was changed at once by {} (kept, write {}) and {} (lost, write {})",
                    kept.stamp.writer, kept.stamp.counter, lost.stamp.writer, lost.stamp.counter
                )
            }
            Conflict::GroupName { name, groups } => {
                write!(f, "{} groups are named {name:?}:", groups.len())?;
                for g in groups {
                    write!(f, " {g}")?;
                }
                Ok(())
            }
        }
    }
}

/// What [`Household::merge`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeReport {
    /// Whether this replica changed.
    pub changed: bool,
    /// The conflicts found, speakers first (in id order), then groups, then the layout,
    /// then group names.
    pub conflicts: Vec<Conflict>,
}

/// The outcome of merging one record.
enum Pick {
    /// Keep the local record as it is.
    Local,
    /// Take the remote record as it is.
    Remote,
    /// Take the winner's content with both histories (`remote_wins`), and report `lost`
    /// if the contents differ.
    Join { remote_wins: bool, differ: bool },
}

fn pick<T: PartialEq + serde::Serialize>(lv: &Version, l: &T, rv: &Version, r: &T) -> Pick {
    match lv.order(rv) {
        Order::Same if l == r => Pick::Local,
        Order::Newer => Pick::Local,
        Order::Older => Pick::Remote,
        Order::Same | Order::Concurrent => {
            let remote_wins = match rv.stamp.cmp(&lv.stamp) {
                core::cmp::Ordering::Greater => true,
                core::cmp::Ordering::Less => false,
                // One stamp, two contents: a corrupt replica. Pick by the contents' JSON so
                // that every replica picks the same.
                core::cmp::Ordering::Equal => {
                    let text = |v: &T| serde_json::to_string(v).unwrap_or_default();
                    text(r) > text(l)
                }
            };
            Pick::Join {
                remote_wins,
                differ: l != r,
            }
        }
    }
}

/// Merges one record; returns whether the local one changed and the conflict, if any.
fn merge_one<T: Clone + PartialEq + serde::Serialize>(
    lv: &mut Version,
    l: &mut T,
    rv: &Version,
    r: &T,
    record: RecordRef,
    lost: impl Fn(T) -> Lost,
) -> (bool, Option<Conflict>) {
    match pick(lv, l, rv, r) {
        Pick::Local => (false, None),
        Pick::Remote => {
            *lv = rv.clone();
            *l = r.clone();
            (true, None)
        }
        Pick::Join {
            remote_wins,
            differ,
        } => {
            let (kept, lost_v, lost_content) = if remote_wins {
                (rv.clone(), lv.clone(), l.clone())
            } else {
                (lv.clone(), rv.clone(), r.clone())
            };
            let joined = kept.joined(&lost_v);
            let changed = joined != *lv || (remote_wins && differ);
            *lv = joined;
            if remote_wins {
                *l = r.clone();
            }
            let conflict = differ.then(|| Conflict::Concurrent {
                record,
                kept,
                lost: lost_v,
                lost_content: lost(lost_content),
            });
            (changed, conflict)
        }
    }
}

impl Household {
    /// Folds `remote` (another speaker's replica) into this one; see the module docs. The
    /// result depends only on the two replicas' records, not on which is local, so every
    /// replica that merges the same records holds the same household.
    pub fn merge(&mut self, remote: &Household) -> MergeReport {
        let mut report = MergeReport::default();
        let mut note = |(changed, conflict): (bool, Option<Conflict>)| {
            report.changed |= changed;
            report.conflicts.extend(conflict);
        };
        for r in &remote.speakers {
            match self.speaker_index(r.speaker.id) {
                Ok(i) => {
                    let SpeakerRecord { version, speaker } = &mut self.speakers[i];
                    note(merge_one(
                        version,
                        speaker,
                        &r.version,
                        &r.speaker,
                        RecordRef::Speaker(r.speaker.id),
                        Lost::Speaker,
                    ));
                }
                Err(i) => {
                    self.speakers.insert(i, r.clone());
                    note((true, None));
                }
            }
        }
        for r in &remote.groups {
            match self.groups.binary_search_by(|g| g.id.cmp(&r.id)) {
                Ok(i) => {
                    let GroupRecord { version, group, .. } = &mut self.groups[i];
                    note(merge_one(
                        version,
                        group,
                        &r.version,
                        &r.group,
                        RecordRef::Group(r.id),
                        Lost::Group,
                    ));
                }
                Err(i) => {
                    self.groups.insert(i, r.clone());
                    note((true, None));
                }
            }
        }
        let LayoutRecord { version, layout } = &mut self.layout;
        note(merge_one(
            version,
            layout,
            &remote.layout.version,
            &remote.layout.layout,
            RecordRef::Layout,
            Lost::Layout,
        ));
        // Group names that two live groups share.
        let mut names: Vec<(&str, GroupId)> =
            self.groups().map(|(id, g)| (g.name.as_str(), id)).collect();
        names.sort();
        for run in names
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|run| run.len() > 1)
        {
            report.conflicts.push(Conflict::GroupName {
                name: run[0].0.to_owned(),
                groups: run.iter().map(|(_, id)| *id).collect(),
            });
        }
        report
    }
}

/// `local` with `remote` folded in, and what the merge found: [`Household::merge`] on a
/// copy.
pub fn merge(local: &Household, remote: &Household) -> (Household, MergeReport) {
    let mut out = local.clone();
    let report = out.merge(remote);
    (out, report)
}
