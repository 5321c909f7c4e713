//! Who may join a leader's group, and in what role: the admission rules, written once.
//!
//! An [`Admission`] is the leader's side of the rules that the handshake enforces and that
//! later role changes must keep: the group's name, the household key, the stream the group
//! plays (a speaker must be able to play it), a [`ReplayGuard`] over follower nonces, and
//! the members with their roles. Each [`LeaderSession`](super::LeaderSession) asks it once
//! its follower has proved the key; [`Admission::pair`] asks it when a running group makes
//! a stereo pair. It holds no socket and reads no clock.
//!
//! The role rules, in [`check_roles`]:
//! - at most one speaker plays each half of a stereo pair ([`Role::Left`], [`Role::Right`]);
//! - the two halves of a pair are the same model. A different model is refused with
//!   [`Refusal::ModelMismatch`], which names both.
//!
//! Other roles (full, mono, sub) may be held by any number of speakers.

use super::auth::{HouseholdKey, ReplayGuard};
use super::message::{Capabilities, Nonce, Refusal, StreamParams};
use super::role::Role;

/// How many follower nonces a leader remembers against replayed handshakes.
pub const REPLAY_MEMORY: usize = 4096;

/// A member of a leader's group, as the admission rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The session id the leader gave it (never 0, never reused by one [`Admission`]).
    pub id: u64,
    /// Its device name.
    pub name: String,
    /// Its model id (a stereo pair needs two of the same).
    pub model: String,
    /// The part of the stream it plays.
    pub role: Role,
}

/// A change to the group that the rules do not allow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// No member has this session id.
    #[error("no follower has session id {id}")]
    UnknownMember {
        /// The id asked for.
        id: u64,
    },
    /// The change breaks a role rule: the refusal says which.
    #[error("{0}")]
    Refused(Refusal),
}

/// The admission rules of one leader's group, and its members. See the module docs.
#[derive(Debug)]
pub struct Admission {
    group: String,
    key: HouseholdKey,
    stream: StreamParams,
    replay: ReplayGuard,
    members: Vec<Member>,
    next_id: u64,
}

impl Admission {
    /// The rules for group `group` (a follower asking for another group is refused; one
    /// asking for none, the empty string, joins this one), whose members prove `key` and
    /// play `stream`.
    pub fn new(group: impl Into<String>, key: HouseholdKey, stream: StreamParams) -> Admission {
        Admission {
            group: group.into(),
            key,
            stream,
            replay: ReplayGuard::new(REPLAY_MEMORY),
            members: Vec::new(),
            next_id: 1,
        }
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The household key the members prove.
    pub fn key(&self) -> &HouseholdKey {
        &self.key
    }

    /// The stream a new member is welcomed with.
    pub fn stream(&self) -> &StreamParams {
        &self.stream
    }

    /// Changes the stream new members are welcomed with (a source switch).
    pub fn set_stream(&mut self, stream: StreamParams) {
        self.stream = stream;
    }

    /// The members, in the order they joined.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with session id `id`.
    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Removes member `id` (it left, or its connection failed), freeing its role.
    pub fn remove(&mut self, id: u64) -> Option<Member> {
        let at = self.members.iter().position(|m| m.id == id)?;
        Some(self.members.remove(at))
    }

    /// Refuses a follower asking for another group.
    pub(super) fn check_group(&self, requested: &str) -> Result<(), Refusal> {
        if requested.is_empty() || requested == self.group {
            Ok(())
        } else {
            Err(Refusal::WrongGroup {
                requested: requested.to_owned(),
                group: self.group.clone(),
            })
        }
    }

    /// Admits a follower that has proved the key: refuses a nonce seen before, a speaker
    /// that cannot play the stream, and a role the rules do not allow; otherwise makes it
    /// a member and returns its session id.
    pub(super) fn admit(
        &mut self,
        nonce: &Nonce,
        caps: &Capabilities,
        role: Role,
    ) -> Result<u64, Refusal> {
        self.replay.check(nonce)?;
        if caps.max_rate < self.stream.sample_rate || caps.channels == 0 {
            return Err(Refusal::Unsupported {
                what: format!(
                    "the stream is {} Hz; the speaker plays up to {} Hz on {} channels",
                    self.stream.sample_rate, caps.max_rate, caps.channels
                ),
            });
        }
        check_roles(
            self.members.iter().map(|m| (m.role, m.model.as_str())),
            (role, &caps.model),
        )?;
        let id = self.next_id;
        self.next_id += 1;
        self.members.push(Member {
            id,
            name: caps.name.clone(),
            model: caps.model.clone(),
            role,
        });
        Ok(id)
    }

    /// Makes members `left` and `right` a stereo pair. Nothing changes when the rules
    /// refuse it: two models ([`Refusal::ModelMismatch`], naming the left's model first),
    /// or a third member already playing a half ([`Refusal::RoleTaken`]).
    pub fn pair(&mut self, left: u64, right: u64) -> Result<(), AdmissionError> {
        for id in [left, right] {
            if self.member(id).is_none() {
                return Err(AdmissionError::UnknownMember { id });
            }
        }
        if left == right {
            return Err(AdmissionError::Refused(Refusal::RoleTaken {
                role: Role::Right,
            }));
        }
        let role_after = |m: &Member| match m.id {
            id if id == left => Role::Left,
            id if id == right => Role::Right,
            _ => m.role,
        };
        let subject = self.member(left).map(|m| m.model.as_str()).unwrap_or("");
        check_roles(
            self.members
                .iter()
                .filter(|m| m.id != left)
                .map(|m| (role_after(m), m.model.as_str())),
            (Role::Left, subject),
        )
        .map_err(AdmissionError::Refused)?;
        for m in &mut self.members {
            m.role = role_after(m);
        }
        Ok(())
    }
}

/// The role rules, over a group of `others` plus the `subject` whose role is being decided:
/// at most one holder of each half of a stereo pair, and the two halves the same model.
/// A refusal speaks from the subject's side: [`Refusal::RoleTaken`] names the half that
/// has two holders (the subject's, if it is one of them), and
/// [`Refusal::ModelMismatch`] gives the subject's model first when the subject is a half.
pub fn check_roles<'a>(
    others: impl IntoIterator<Item = (Role, &'a str)>,
    subject: (Role, &str),
) -> Result<(), Refusal> {
    let mut left: Option<&str> = None;
    let mut right: Option<&str> = None;
    let mut twice: Option<Role> = None;
    let (subject_role, subject_model) = subject;
    for (role, model) in others {
        let half = match role {
            Role::Left => &mut left,
            Role::Right => &mut right,
            _ => continue,
        };
        if half.is_some() && twice.is_none() {
            twice = Some(role);
        }
        *half = Some(model);
    }
    let (taken, partner) = match subject_role {
        Role::Left => (left.is_some(), right),
        Role::Right => (right.is_some(), left),
        _ => {
            return match (twice, left, right) {
                (Some(role), _, _) => Err(Refusal::RoleTaken { role }),
                (None, Some(l), Some(r)) if l != r => Err(Refusal::ModelMismatch {
                    model: l.to_owned(),
                    partner_model: r.to_owned(),
                }),
                _ => Ok(()),
            };
        }
    };
    if taken {
        return Err(Refusal::RoleTaken { role: subject_role });
    }
    if let Some(role) = twice {
        return Err(Refusal::RoleTaken { role });
    }
    match partner {
        Some(p) if p != subject_model => Err(Refusal::ModelMismatch {
            model: subject_model.to_owned(),
            partner_model: p.to_owned(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_has_one_holder_and_a_pair_one_model() {
        let group = [(Role::Full, "a"), (Role::Left, "one"), (Role::Sub, "b")];
        assert_eq!(check_roles(group, (Role::Right, "one")), Ok(()));
        assert_eq!(check_roles(group, (Role::Full, "x")), Ok(()));
        assert_eq!(
            check_roles(group, (Role::Left, "one")),
            Err(Refusal::RoleTaken { role: Role::Left })
        );
        assert_eq!(
            check_roles(group, (Role::Right, "two")),
            Err(Refusal::ModelMismatch {
                model: "two".into(),
                partner_model: "one".into()
            })
        );
        // Any number of full, mono and sub speakers.
        let many = [(Role::Sub, "a"), (Role::Sub, "b"), (Role::Mono, "c")];
        assert_eq!(check_roles(many, (Role::Sub, "d")), Ok(()));
        // A group already broken is reported whoever asks.
        let broken = [(Role::Right, "a"), (Role::Right, "b")];
        assert_eq!(
            check_roles(broken, (Role::Full, "c")),
            Err(Refusal::RoleTaken { role: Role::Right })
        );
    }
}
