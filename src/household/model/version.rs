//! The version every household record carries, and how two versions of one record compare.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::id::{SpeakerId, Stamp};

/// The version of one household record (a speaker, a group, the pairs and subwoofers).
///
/// - [`stamp`](Version::stamp): the last write's Lamport stamp. Between two concurrent
///   versions, the higher stamp wins, on every replica.
/// - [`history`](Version::history): for each speaker that ever wrote the record, the
///   counter of its newest write that this version includes (a version vector). It tells a
///   newer version of the same line of edits (`a` ≤ `b` for every writer) from a concurrent
///   one (neither includes the other), which is a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// The last write's stamp.
    pub stamp: Stamp,
    /// Writer → counter of its newest write included.
    pub history: BTreeMap<SpeakerId, u64>,
}

/// How two versions of one record relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// The same version.
    Same,
    /// The first includes every write of the second, and more.
    Newer,
    /// The second includes every write of the first, and more.
    Older,
    /// Neither includes the other: two lines of edits.
    Concurrent,
}

impl Version {
    /// The version of a record nobody has written: included in every other.
    pub fn origin() -> Version {
        Version {
            stamp: Stamp {
                counter: 0,
                writer: SpeakerId::NIL,
            },
            history: BTreeMap::new(),
        }
    }

    /// Whether every write this version includes is included in `other`.
    pub fn included_in(&self, other: &Version) -> bool {
        self.history
            .iter()
            .all(|(w, c)| other.history.get(w).is_some_and(|o| o >= c))
    }

    /// How `self` relates to `other`.
    pub(crate) fn order(&self, other: &Version) -> Order {
        match (self.included_in(other), other.included_in(self)) {
            (true, true) if self.stamp == other.stamp => Order::Same,
            // Equal histories under different stamps: only a corrupt replica makes these.
            // Treat them as concurrent so that the stamp decides, the same way everywhere.
            (true, true) => Order::Concurrent,
            (false, true) => Order::Newer,
            (true, false) => Order::Older,
            (false, false) => Order::Concurrent,
        }
    }

    /// The version after a write stamped `stamp` on top of this one.
    pub(crate) fn after_write(&self, stamp: Stamp) -> Version {
        let mut history = self.history.clone();
        history.insert(stamp.writer, stamp.counter);
        Version { stamp, history }
    }

    /// This version with `other`'s writes marked as included too (a resolved conflict:
    /// the winner's content, now known to supersede both lines).
    pub(crate) fn joined(&self, other: &Version) -> Version {
        let mut history = self.history.clone();
        for (w, c) in &other.history {
            let e = history.entry(*w).or_insert(0);
            *e = (*e).max(*c);
        }
        Version {
            stamp: self.stamp,
            history,
        }
    }

    /// The highest counter this version mentions.
    pub(crate) fn max_counter(&self) -> u64 {
        self.history
            .values()
            .copied()
            .chain([self.stamp.counter])
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> SpeakerId {
        SpeakerId([b; 16])
    }

    #[test]
    fn a_write_on_top_is_newer_and_two_writes_on_one_base_are_concurrent() {
        let base = Version::origin().after_write(Stamp {
            counter: 1,
            writer: id(1),
        });
        let a = base.after_write(Stamp {
            counter: 2,
            writer: id(1),
        });
        let b = base.after_write(Stamp {
            counter: 2,
            writer: id(2),
        });
        assert_eq!(a.order(&base), Order::Newer);
        assert_eq!(base.order(&a), Order::Older);
        assert_eq!(a.order(&a.clone()), Order::Same);
        assert_eq!(a.order(&b), Order::Concurrent);
        let j = b.joined(&a);
        assert_eq!(j.order(&a), Order::Newer);
        assert_eq!(j.order(&b), Order::Newer);
        assert_eq!(j.stamp, b.stamp);
        assert_eq!(j.max_counter(), 2);
        assert_eq!(Version::origin().order(&base), Order::Older);
    }
}
