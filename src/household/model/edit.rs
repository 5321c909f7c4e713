//! The operations that change a household: each checks everything first, then writes.

use crate::control::{Refusal, Role, check_roles};
use crate::time::Nanos;

use super::{
    Group, GroupId, GroupRecord, Household, HouseholdError, Layout, LeaderClaim, Pair, Speaker,
    SpeakerId, SpeakerRecord, Stamp, SubLink, Unit, Version, Volume, check_name,
    check_output_latency, check_trim,
};

/// A change to a [`Household`] written by one speaker: [`Household::edit`] makes one.
///
/// Each method is one operation. It names speakers and groups by name or id (see
/// [`Household::resolve_speaker`], [`Household::resolve_group`]), checks every rule before
/// it writes, and on success stamps every record it changed with one new [`Stamp`] (the
/// household's clock plus one, and the writer). A refused operation changes nothing.
#[derive(Debug)]
pub struct Edit<'a> {
    h: &'a mut Household,
    writer: SpeakerId,
}

impl<'a> Edit<'a> {
    pub(super) fn new(h: &'a mut Household, writer: SpeakerId) -> Edit<'a> {
        Edit { h, writer }
    }

    /// The stamp of this operation's writes.
    fn stamp(&self) -> Result<Stamp, HouseholdError> {
        if self.writer == SpeakerId::NIL {
            return Err(HouseholdError::NilWriter);
        }
        Ok(Stamp {
            counter: self.h.clock().saturating_add(1),
            writer: self.writer,
        })
    }

    fn write_speaker(&mut self, stamp: Stamp, speaker: Speaker) {
        match self.h.speaker_index(speaker.id) {
            Ok(i) => {
                let r = &mut self.h.speakers[i];
                r.version = r.version.after_write(stamp);
                r.speaker = speaker;
            }
            Err(i) => self.h.speakers.insert(
                i,
                SpeakerRecord {
                    version: Version::origin().after_write(stamp),
                    speaker,
                },
            ),
        }
    }

    fn write_group(&mut self, stamp: Stamp, id: GroupId, group: Option<Group>) {
        match self.h.groups.binary_search_by(|r| r.id.cmp(&id)) {
            Ok(i) => {
                let r = &mut self.h.groups[i];
                r.version = r.version.after_write(stamp);
                r.group = group;
            }
            Err(i) => self.h.groups.insert(
                i,
                GroupRecord {
                    id,
                    version: Version::origin().after_write(stamp),
                    group,
                },
            ),
        }
    }

    fn write_layout(&mut self, stamp: Stamp, layout: Layout) {
        let r = &mut self.h.layout;
        r.version = r.version.after_write(stamp);
        r.layout = layout;
    }

    fn speaker(&self, name_or_id: &str) -> Result<Speaker, HouseholdError> {
        let id = self.h.resolve_speaker(name_or_id)?;
        self.h
            .speaker(id)
            .cloned()
            .ok_or_else(|| HouseholdError::NoSuchSpeaker {
                speaker: name_or_id.to_owned(),
            })
    }

    fn group(&self, name_or_id: &str) -> Result<(GroupId, Group), HouseholdError> {
        let id = self.h.resolve_group(name_or_id)?;
        let g = self
            .h
            .group(id)
            .cloned()
            .ok_or_else(|| HouseholdError::NoSuchGroup {
                group: name_or_id.to_owned(),
            })?;
        Ok((id, g))
    }

    /// Refuses a subwoofer where a speaker that plays on its own is needed.
    fn not_sub(&self, id: SpeakerId) -> Result<(), HouseholdError> {
        match self.h.layout().host_of(id) {
            Some(host) => Err(HouseholdError::IsSub {
                speaker: self.h.label(id),
                host: self.h.label(host),
            }),
            None => Ok(()),
        }
    }

    fn check_group_name_free(
        &self,
        name: &str,
        except: Option<GroupId>,
    ) -> Result<(), HouseholdError> {
        check_name("group", name)?;
        if self
            .h
            .groups()
            .any(|(id, g)| g.name == name && Some(id) != except)
        {
            return Err(HouseholdError::GroupExists {
                group: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Every live group whose list holds a speaker of `unit`, with the list without them.
    fn without_unit(&self, unit: Unit, except: Option<GroupId>) -> Vec<(GroupId, Group)> {
        self.h
            .groups()
            .filter(|(id, g)| Some(*id) != except && g.members.iter().any(|m| unit.contains(*m)))
            .map(|(id, g)| {
                let mut g = g.clone();
                g.members.retain(|m| !unit.contains(*m));
                if g.leader.is_some_and(|l| unit.contains(l)) {
                    g.leader = None;
                }
                (id, g)
            })
            .collect()
    }

    // --- speakers ------------------------------------------------------------------------

    /// Adds a speaker to the household (one discovered, or the writer itself). Refuses an
    /// id already known ([`HouseholdError::SpeakerExists`]) and invalid names or settings.
    pub fn add_speaker(mut self, speaker: Speaker) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        speaker.check()?;
        if speaker.id == SpeakerId::NIL {
            return Err(HouseholdError::NilWriter);
        }
        if let Some(s) = self.h.speaker(speaker.id) {
            return Err(HouseholdError::SpeakerExists {
                id: s.id,
                name: s.name.clone(),
            });
        }
        self.write_speaker(stamp, speaker);
        Ok(())
    }

    fn update_speaker(
        mut self,
        name_or_id: &str,
        change: impl FnOnce(&Household, &mut Speaker) -> Result<(), HouseholdError>,
    ) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let mut s = self.speaker(name_or_id)?;
        change(self.h, &mut s)?;
        self.write_speaker(stamp, s);
        Ok(())
    }

    /// Renames a speaker.
    pub fn rename_speaker(self, speaker: &str, name: &str) -> Result<(), HouseholdError> {
        check_name("speaker", name)?;
        self.update_speaker(speaker, |_, s| {
            s.name = name.to_owned();
            Ok(())
        })
    }

    /// Moves a speaker to another room. A paired speaker cannot leave its partner's room
    /// ([`HouseholdError::RoomMismatch`]): delete the pair first.
    pub fn set_room(self, speaker: &str, room: &str) -> Result<(), HouseholdError> {
        check_name("room", room)?;
        self.update_speaker(speaker, |h, s| {
            if let Some(p) = h.layout().pair_of(s.id) {
                let partner = if p.left == s.id { p.right } else { p.left };
                let partner_room = h.speaker(partner).map_or("", |o| o.room.as_str());
                if partner_room != room {
                    let (l, r) = if p.left == s.id {
                        ((s.name.clone(), room), (h.label(partner), partner_room))
                    } else {
                        ((h.label(partner), partner_room), (s.name.clone(), room))
                    };
                    return Err(HouseholdError::RoomMismatch {
                        left: l.0,
                        left_room: l.1.to_owned(),
                        right: r.0,
                        right_room: r.1.to_owned(),
                    });
                }
            }
            s.room = room.to_owned();
            Ok(())
        })
    }

    /// Sets a speaker's own volume (`0.0..=1.0`).
    pub fn set_volume(self, speaker: &str, volume: f32) -> Result<(), HouseholdError> {
        let v = Volume::new(volume)?;
        self.update_speaker(speaker, |_, s| {
            s.settings.volume = v;
            Ok(())
        })
    }

    /// Mutes or unmutes a speaker (its volume is kept).
    pub fn set_mute(self, speaker: &str, muted: bool) -> Result<(), HouseholdError> {
        self.update_speaker(speaker, |_, s| {
            s.settings.muted = muted;
            Ok(())
        })
    }

    /// Sets a speaker's latency trim (within ±[`MAX_TRIM`](super::MAX_TRIM)).
    pub fn set_trim(self, speaker: &str, trim: Nanos) -> Result<(), HouseholdError> {
        check_trim(trim)?;
        self.update_speaker(speaker, |_, s| {
            s.settings.trim_ns = trim.as_nanos();
            Ok(())
        })
    }

    /// Sets a speaker's output latency (within
    /// `0..=`[`MAX_OUTPUT_LATENCY`](super::MAX_OUTPUT_LATENCY)).
    pub fn set_output_latency(self, speaker: &str, latency: Nanos) -> Result<(), HouseholdError> {
        check_output_latency(latency)?;
        self.update_speaker(speaker, |_, s| {
            s.settings.output_latency_ns = latency.as_nanos();
            Ok(())
        })
    }

    // --- groups --------------------------------------------------------------------------

    /// Creates group `name` with `members` (in order; may be empty) at full group volume
    /// and returns its id. Refuses a name in use ([`HouseholdError::GroupExists`]), a
    /// subwoofer ([`HouseholdError::IsSub`]), and a speaker in another group
    /// ([`HouseholdError::InOtherGroup`]: move it instead). Naming both halves of a pair,
    /// or one speaker twice, adds it once.
    pub fn create_group(mut self, name: &str, members: &[&str]) -> Result<GroupId, HouseholdError> {
        let stamp = self.stamp()?;
        self.check_group_name_free(name, None)?;
        let mut ids: Vec<SpeakerId> = Vec::new();
        for m in members {
            let id = self.h.resolve_speaker(m)?;
            self.not_sub(id)?;
            if let Some(g) = self.h.group_of(id) {
                return Err(HouseholdError::InOtherGroup {
                    speaker: self.h.label(id),
                    group: self.h.group_label(g),
                });
            }
            let unit = self.h.layout().unit_of(id);
            if !ids.iter().any(|i| unit.contains(*i)) {
                ids.push(id);
            }
        }
        let id = GroupId(stamp);
        let group = Group {
            name: name.to_owned(),
            members: ids,
            volume: Volume::FULL,
            leader: None,
        };
        self.write_group(stamp, id, Some(group));
        Ok(id)
    }

    /// Deletes a group (its members become idle; it stays as a tombstone so that replicas
    /// that missed this do not bring it back).
    pub fn delete_group(mut self, group: &str) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let (id, _) = self.group(group)?;
        self.write_group(stamp, id, None);
        Ok(())
    }

    /// Renames a group; refuses a name another group has.
    pub fn rename_group(mut self, group: &str, name: &str) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let (id, mut g) = self.group(group)?;
        self.check_group_name_free(name, Some(id))?;
        g.name = name.to_owned();
        self.write_group(stamp, id, Some(g));
        Ok(())
    }

    /// Adds a speaker (with its pair and subwoofer) to the end of a group. Refuses a
    /// subwoofer, a speaker in this group already ([`HouseholdError::AlreadyMember`]) and
    /// one in another group ([`HouseholdError::InOtherGroup`]).
    pub fn add_member(mut self, group: &str, speaker: &str) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let (id, mut g) = self.group(group)?;
        let s = self.h.resolve_speaker(speaker)?;
        self.not_sub(s)?;
        match self.h.group_of(s) {
            Some(in_g) if in_g == id => {
                return Err(HouseholdError::AlreadyMember {
                    speaker: self.h.label(s),
                    group: g.name,
                });
            }
            Some(other) => {
                return Err(HouseholdError::InOtherGroup {
                    speaker: self.h.label(s),
                    group: self.h.group_label(other),
                });
            }
            None => {}
        }
        g.members.push(s);
        self.write_group(stamp, id, Some(g));
        Ok(())
    }

    /// Removes a speaker (with its pair and subwoofer) from a group; if it led the group,
    /// the group has no leader. Refuses one not in it ([`HouseholdError::NotMember`]) and
    /// a subwoofer ([`HouseholdError::IsSub`]: it leaves with its host, or by
    /// [`clear_sub`](Edit::clear_sub)).
    pub fn remove_member(mut self, group: &str, speaker: &str) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let (id, g) = self.group(group)?;
        let s = self.h.resolve_speaker(speaker)?;
        self.not_sub(s)?;
        if self.h.group_of(s) != Some(id) {
            return Err(HouseholdError::NotMember {
                speaker: self.h.label(s),
                group: g.name,
            });
        }
        let unit = self.h.layout().unit_of(s);
        for (gid, g) in self.without_unit(unit, None) {
            self.write_group(stamp, gid, Some(g));
        }
        Ok(())
    }

    /// Moves a speaker (with its pair and subwoofer) to the end of group `to`, out of every
    /// other group, in one operation. A speaker in no group is simply added. Refuses a
    /// subwoofer and a speaker already in `to`.
    pub fn move_speaker(mut self, speaker: &str, to: &str) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let (id, mut g) = self.group(to)?;
        let s = self.h.resolve_speaker(speaker)?;
        self.not_sub(s)?;
        if self.h.group_of(s) == Some(id) {
            return Err(HouseholdError::AlreadyMember {
                speaker: self.h.label(s),
                group: g.name,
            });
        }
        let unit = self.h.layout().unit_of(s);
        let emptied = self.without_unit(unit, Some(id));
        g.members.retain(|m| !unit.contains(*m));
        g.members.push(s);
        for (gid, other) in emptied {
            self.write_group(stamp, gid, Some(other));
        }
        self.write_group(stamp, id, Some(g));
        Ok(())
    }

    /// Sets a group's volume (`0.0..=1.0`), which scales its members' own volumes.
    pub fn set_group_volume(mut self, group: &str, volume: f32) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let v = Volume::new(volume)?;
        let (id, mut g) = self.group(group)?;
        g.volume = v;
        self.write_group(stamp, id, Some(g));
        Ok(())
    }

    /// Names the group's leader (`None`: it stops) and returns the claim that leader makes
    /// from now on, whose term is this write's stamp. The leader must play in the group as
    /// a speaker or a pair's half ([`HouseholdError::NotMember`] otherwise).
    pub fn set_leader(
        mut self,
        group: &str,
        leader: Option<&str>,
    ) -> Result<Option<LeaderClaim>, HouseholdError> {
        let stamp = self.stamp()?;
        let (id, mut g) = self.group(group)?;
        let leader = match leader {
            None => None,
            Some(l) => {
                let l = self.h.resolve_speaker(l)?;
                self.not_sub(l)?;
                if self.h.group_of(l) != Some(id) {
                    return Err(HouseholdError::NotMember {
                        speaker: self.h.label(l),
                        group: g.name,
                    });
                }
                Some(l)
            }
        };
        g.leader = leader;
        self.write_group(stamp, id, Some(g));
        Ok(leader.map(|leader| LeaderClaim {
            group: id,
            leader,
            term: stamp,
        }))
    }

    // --- pairs and subwoofers ------------------------------------------------------------

    /// Makes `left` and `right` a stereo pair. Refuses one speaker twice
    /// ([`HouseholdError::SameSpeaker`]), a subwoofer, a speaker paired already
    /// ([`HouseholdError::AlreadyPaired`], naming it and its partner), two models
    /// ([`HouseholdError::ModelMismatch`], naming both speakers and both models), two rooms
    /// ([`HouseholdError::RoomMismatch`]), two groups ([`HouseholdError::PairAcrossGroups`])
    /// and two subwoofers ([`HouseholdError::TwoSubs`]). A subwoofer of the right moves to
    /// the pair. The pair plays in the group either half was in.
    pub fn create_pair(mut self, left: &str, right: &str) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let l = self.speaker(left)?;
        let r = self.speaker(right)?;
        if l.id == r.id {
            return Err(HouseholdError::SameSpeaker { speaker: l.name });
        }
        let layout = self.h.layout();
        for s in [&l, &r] {
            self.not_sub(s.id)?;
            if let Some(p) = layout.pair_of(s.id) {
                let partner = if p.left == s.id { p.right } else { p.left };
                return Err(HouseholdError::AlreadyPaired {
                    speaker: s.name.clone(),
                    partner: self.h.label(partner),
                });
            }
        }
        // The control channel's stereo-pair rule, with the left as the other half and the
        // right as the one being decided.
        if let Err(Refusal::ModelMismatch { .. }) =
            check_roles([(Role::Left, l.model.as_str())], (Role::Right, &r.model))
        {
            return Err(HouseholdError::ModelMismatch {
                left: l.name,
                left_model: l.model,
                right: r.name,
                right_model: r.model,
            });
        }
        if l.room != r.room {
            return Err(HouseholdError::RoomMismatch {
                left: l.name,
                left_room: l.room,
                right: r.name,
                right_room: r.room,
            });
        }
        if let (Some(lg), Some(rg)) = (self.h.group_of(l.id), self.h.group_of(r.id))
            && lg != rg
        {
            return Err(HouseholdError::PairAcrossGroups {
                left: l.name,
                left_group: self.h.group_label(lg),
                right: r.name,
                right_group: self.h.group_label(rg),
            });
        }
        if let (Some(_), Some(_)) = (
            layout.sub_of(Unit::Speaker(l.id)),
            layout.sub_of(Unit::Speaker(r.id)),
        ) {
            return Err(HouseholdError::TwoSubs {
                left: l.name,
                right: r.name,
            });
        }
        let mut layout = layout.clone();
        for s in &mut layout.subs {
            if s.host == r.id {
                s.host = l.id;
            }
        }
        layout.pairs.push(Pair {
            left: l.id,
            right: r.id,
        });
        self.write_layout(stamp, layout);
        Ok(())
    }

    /// Ends the stereo pair `speaker` is half of. Both halves stay in the pair's group as
    /// speakers of their own, where the pair was; a subwoofer stays with the left.
    /// Refuses a speaker in no pair ([`HouseholdError::NotPaired`]).
    pub fn delete_pair(mut self, speaker: &str) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let s = self.h.resolve_speaker(speaker)?;
        let Some(pair) = self.h.layout().pair_of(s) else {
            return Err(HouseholdError::NotPaired {
                speaker: self.h.label(s),
            });
        };
        let group = self
            .h
            .group_of(pair.left)
            .and_then(|id| Some((id, self.h.group(id)?.clone())));
        let mut layout = self.h.layout().clone();
        layout.pairs.retain(|p| *p != pair);
        for sub in &mut layout.subs {
            if sub.host == pair.right {
                sub.host = pair.left;
            }
        }
        if let Some((id, mut g)) = group {
            // Both halves, where the pair's first entry was.
            let at = g
                .members
                .iter()
                .position(|m| pair.contains(*m))
                .unwrap_or(g.members.len());
            g.members.retain(|m| !pair.contains(*m));
            let at = at.min(g.members.len());
            g.members.splice(at..at, [pair.left, pair.right]);
            self.write_group(stamp, id, Some(g));
        }
        self.write_layout(stamp, layout);
        Ok(())
    }

    /// Attaches subwoofer `sub` to `host` (a speaker, or either half of a pair: then the
    /// pair). A host's previous subwoofer is detached; a subwoofer attached elsewhere
    /// moves; a `sub` that was a member of a group on its own leaves it (it now plays with
    /// its host). Refuses one speaker twice, a paired `sub` ([`HouseholdError::AlreadyPaired`]),
    /// a `sub` that hosts a subwoofer ([`HouseholdError::HostsSub`]) and a host that is a
    /// subwoofer ([`HouseholdError::IsSub`]).
    pub fn set_sub(mut self, host: &str, sub: &str) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let h = self.h.resolve_speaker(host)?;
        let s = self.h.resolve_speaker(sub)?;
        let layout = self.h.layout();
        let unit = layout.unit_of(h);
        if unit.contains(s) {
            return Err(HouseholdError::SameSpeaker {
                speaker: self.h.label(s),
            });
        }
        self.not_sub(h)?;
        if let Some(p) = layout.pair_of(s) {
            let partner = if p.left == s { p.right } else { p.left };
            return Err(HouseholdError::AlreadyPaired {
                speaker: self.h.label(s),
                partner: self.h.label(partner),
            });
        }
        if let Some(its) = layout.sub_of(Unit::Speaker(s)) {
            return Err(HouseholdError::HostsSub {
                speaker: self.h.label(s),
                sub: self.h.label(its),
            });
        }
        let host_key = match unit {
            Unit::Speaker(id) => id,
            Unit::Pair(p) => p.left,
        };
        let mut layout = layout.clone();
        layout.subs.retain(|l| l.sub != s && !unit.contains(l.host));
        layout.subs.push(SubLink {
            sub: s,
            host: host_key,
        });
        for (gid, g) in self.without_unit(Unit::Speaker(s), None) {
            self.write_group(stamp, gid, Some(g));
        }
        self.write_layout(stamp, layout);
        Ok(())
    }

    /// Detaches the subwoofer of `host` (a speaker or either half of a pair). The
    /// subwoofer becomes a speaker of its own, in no group. Refuses a host without one
    /// ([`HouseholdError::NoSub`]).
    pub fn clear_sub(mut self, host: &str) -> Result<(), HouseholdError> {
        let stamp = self.stamp()?;
        let h = self.h.resolve_speaker(host)?;
        let unit = self.h.layout().unit_of(h);
        if self.h.layout().sub_of(unit).is_none() {
            return Err(HouseholdError::NoSub {
                host: self.h.label(h),
            });
        }
        let mut layout = self.h.layout().clone();
        layout.subs.retain(|l| !unit.contains(l.host));
        self.write_layout(stamp, layout);
        Ok(())
    }
}
