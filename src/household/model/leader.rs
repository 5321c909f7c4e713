//! Which of two leaders claiming one group is authoritative, decided the same way by every
//! follower.

use super::id::{GroupId, SpeakerId, Stamp};

/// A speaker's claim to lead a group: the stamp of the group record that names it leader
/// is its term ([`Household::leader_claim`](super::Household::leader_claim)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaderClaim {
    /// The group.
    pub group: GroupId,
    /// The speaker that claims to lead it.
    pub leader: SpeakerId,
    /// The stamp of a group record that names this leader: the write that made it
    /// leader, or a later write to the group that kept it.
    pub term: Stamp,
}

impl LeaderClaim {
    /// Whether this claim outranks `other`: the higher term, on a tie the higher leader id.
    /// A total order, so any set of claims has one authoritative claim whatever the order
    /// they arrive in.
    pub fn outranks(&self, other: &LeaderClaim) -> bool {
        (self.term, self.leader) > (other.term, other.leader)
    }
}

/// What a [`LeaderTracker`] made of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderObservation {
    /// The first claim seen, or one with a newer term than the current: the follower
    /// follows it now. A newer term is a hand-over as far as a follower can tell (a
    /// concurrent claim looks the same); from then on, claims of the leader it left are
    /// reported as [`LeaderObservation::Conflict`] until one comes with a newer term still.
    Adopted(LeaderClaim),
    /// The claim the follower follows already (the same leader and term).
    Unchanged,
    /// The claim names another leader than the authoritative one: two leaders claim the
    /// group. The follower follows `authoritative` (which is `other` only if `other`
    /// outranks the current claim with the same term, at most once per pair of claims).
    Conflict {
        /// The claim the follower follows.
        authoritative: LeaderClaim,
        /// The other claim.
        other: LeaderClaim,
    },
    /// The same leader under an older term than the current: ignored.
    Stale,
}

/// A follower's view of who leads one group: it adopts a claim only when it outranks the
/// one it follows, so followers that have seen the same claims follow the same leader,
/// and seeing them again, in any order, never makes one flip back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderTracker {
    group: GroupId,
    current: Option<LeaderClaim>,
}

impl LeaderTracker {
    /// A tracker for `group` that has seen no claim.
    pub fn new(group: GroupId) -> LeaderTracker {
        LeaderTracker {
            group,
            current: None,
        }
    }

    /// The claim followed, if any.
    pub fn current(&self) -> Option<LeaderClaim> {
        self.current
    }

    /// Takes in a claim heard (a leader's announcement, a merged group record). A claim
    /// for another group is [`LeaderObservation::Stale`] and changes nothing.
    pub fn observe(&mut self, claim: LeaderClaim) -> LeaderObservation {
        if claim.group != self.group {
            return LeaderObservation::Stale;
        }
        let Some(current) = self.current else {
            self.current = Some(claim);
            return LeaderObservation::Adopted(claim);
        };
        if claim == current {
            return LeaderObservation::Unchanged;
        }
        let same_leader = claim.leader == current.leader;
        if claim.term > current.term {
            // A newer write named this leader: a hand-over (or the same leader's newer
            // record), not a conflict.
            self.current = Some(claim);
            return LeaderObservation::Adopted(claim);
        }
        if same_leader {
            return LeaderObservation::Stale;
        }
        // Another leader under an older or the same term.
        if claim.outranks(&current) {
            self.current = Some(claim);
        }
        let authoritative = self.current.unwrap_or(current);
        let other = if authoritative == claim {
            current
        } else {
            claim
        };
        LeaderObservation::Conflict {
            authoritative,
            other,
        }
    }
}
