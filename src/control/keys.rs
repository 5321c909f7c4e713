//! Keys for one session's media and clock, derived from the household key and the
//! handshake that opened the session.
//!
//! When a follower has joined, both ends know the household key, both nonces and the
//! session id, and nobody else can know all of them. [`SessionKeys`] turns them into keys
//! with HKDF-SHA256 (RFC 5869):
//!
//! - **Extract:** the pseudorandom key is HMAC-SHA256, keyed with the household key, over
//!   `"lockstep/1 session keys" || leader nonce || follower nonce || session id` (the id as 8
//!   big-endian bytes). The label differs from the two proofs' (`lockstep/1 follower`,
//!   `lockstep/1 leader`), so no proof that crossed the network is ever key material.
//! - **Expand:** each key is HKDF-Expand of that key with the info
//!   `"lockstep/1 " || label`, one label per direction and purpose ([`KeyPurpose`]), so a
//!   key for one never works for another: the leader's media key cannot authenticate a
//!   follower's clock message, nor one session's key another session's packets.
//!
//! Fresh nonces on both sides make every session's keys new, even between the same two
//! speakers. The keys are zeroed when dropped (as far as the compiler lets a program do
//! that), and `Debug` never prints them.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;

use super::auth::HouseholdKey;
use super::message::Nonce;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};

use crate::media::srtp::{SrtpContext, SrtpError, SrtpProfile};
use crate::ptp::{PtpAuth, PtpKeys};

/// Which end of a session a node is: says which of the session's keys it sends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// The leader.
    Leader,
    /// The follower.
    Follower,
}

/// What a key is for: one direction and one purpose each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyPurpose {
    /// The RTP stream the leader sends to this follower (SRTP master key and salt).
    MediaLeaderToFollower,
    /// The leader's clock messages to this follower (Sync, Follow_Up, Delay_Resp).
    ClockLeaderToFollower,
    /// The follower's clock messages to the leader (Delay_Req).
    ClockFollowerToLeader,
    /// Wraps a group key the leader hands this follower for a multicast stream.
    GroupKeyWrap,
    /// Seals the leader's control frames to this follower after the Welcome.
    ControlLeaderToFollower,
    /// Seals the follower's control frames to the leader after the Welcome.
    ControlFollowerToLeader,
}

impl KeyPurpose {
    /// Every purpose.
    pub const ALL: [KeyPurpose; 6] = [
        KeyPurpose::MediaLeaderToFollower,
        KeyPurpose::ClockLeaderToFollower,
        KeyPurpose::ClockFollowerToLeader,
        KeyPurpose::GroupKeyWrap,
        KeyPurpose::ControlLeaderToFollower,
        KeyPurpose::ControlFollowerToLeader,
    ];

    /// The label that goes into the key's HKDF info, after `"lockstep/1 "`.
    pub fn label(self) -> &'static str {
        match self {
            KeyPurpose::MediaLeaderToFollower => "media leader to follower",
            KeyPurpose::ClockLeaderToFollower => "clock leader to follower",
            KeyPurpose::ClockFollowerToLeader => "clock follower to leader",
            KeyPurpose::GroupKeyWrap => "group key wrap",
            KeyPurpose::ControlLeaderToFollower => "control leader to follower",
            KeyPurpose::ControlFollowerToLeader => "control follower to leader",
        }
    }
}

/// Asked for more key bytes than HKDF-SHA256 gives (255 × 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{asked} bytes of key asked for; HKDF-SHA256 gives at most {max}")]
pub struct KeyLengthError {
    /// The bytes asked for.
    pub asked: usize,
    /// The most there are.
    pub max: usize,
}

/// The most bytes one key can have.
pub const MAX_KEY_BYTES: usize = 255 * 32;

/// One session's secret, from which each of its keys is expanded. See the module docs.
#[derive(Clone)]
pub struct SessionKeys {
    prk: [u8; 32],
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        wipe(&mut self.prk);
    }
}

impl SessionKeys {
    /// The keys of the session `session` that the handshake with these nonces opened,
    /// under the household key `key`. Both ends compute the same.
    pub fn derive(
        key: &HouseholdKey,
        leader_nonce: &Nonce,
        follower_nonce: &Nonce,
        session: u64,
    ) -> SessionKeys {
        SessionKeys {
            prk: key.session_prk(leader_nonce, follower_nonce, session),
        }
    }

    /// Fills `out` with the key for `purpose`, of any length up to [`MAX_KEY_BYTES`]. (As
    /// with any HKDF, a shorter key of one purpose is the start of a longer one: give each
    /// use its own purpose.)
    pub fn expand(&self, purpose: KeyPurpose, out: &mut [u8]) -> Result<(), KeyLengthError> {
        let too_long = KeyLengthError {
            asked: out.len(),
            max: MAX_KEY_BYTES,
        };
        if out.len() > MAX_KEY_BYTES {
            return Err(too_long);
        }
        // A 32-byte pseudorandom key is always long enough for `from_prk`.
        let hk = Hkdf::<Sha256>::from_prk(&self.prk).map_err(|_| too_long)?;
        let label = purpose.label().as_bytes();
        hk.expand_multi_info(&[b"lockstep/1 ", label], out)
            .map_err(|_| too_long)
    }

    /// The 32-byte key for `purpose`.
    pub fn key32(&self, purpose: KeyPurpose) -> [u8; 32] {
        let mut out = [0u8; 32];
        // 32 bytes are always within HKDF-SHA256's reach.
        let _ = self.expand(purpose, &mut out);
        out
    }

    /// The SRTP context of the session's RTP stream (leader to follower) for `profile`:
    /// master key and salt are the first bytes of the
    /// [`MediaLeaderToFollower`](KeyPurpose::MediaLeaderToFollower) key. Both ends make the
    /// same; the leader protects with its own, the follower unprotects with its own. Bound
    /// to `ssrc`.
    pub fn srtp(&self, profile: SrtpProfile, ssrc: u32) -> Result<SrtpContext, SrtpError> {
        let mut material = [0u8; GROUP_KEY_LEN];
        // 30 bytes: always within HKDF-SHA256's reach.
        let _ = self.expand(KeyPurpose::MediaLeaderToFollower, &mut material);
        let context = srtp_from(&material, profile, ssrc);
        wipe(&mut material);
        context
    }

    /// The AES-256-GCM key that wraps group keys for this session.
    fn wrap_cipher(&self) -> Aes256Gcm {
        let mut key = self.key32(KeyPurpose::GroupKeyWrap);
        let cipher = Aes256Gcm::new(&key.into());
        wipe(&mut key);
        cipher
    }

    /// `group`'s key for `epoch`, sealed for this session's follower: AES-256-GCM under the
    /// session's [`GroupKeyWrap`](KeyPurpose::GroupKeyWrap) key, the epoch (big-endian, in
    /// the last 4 of 12 bytes) as nonce, and `"lockstep/1 group key" || epoch` as
    /// associated data. A leader seals each epoch at most once per session, so no nonce
    /// repeats under a key.
    pub fn seal_group_key(&self, epoch: u32, group: &GroupKey) -> [u8; SEALED_GROUP_KEY_LEN] {
        let mut out = [0u8; SEALED_GROUP_KEY_LEN];
        out[..GROUP_KEY_LEN].copy_from_slice(&group.material);
        let (text, tag_out) = out.split_at_mut(GROUP_KEY_LEN);
        // Encryption fails only for plaintexts longer than GCM allows; 30 bytes is not.
        if let Ok(tag) = self.wrap_cipher().encrypt_in_place_detached(
            &group_nonce(epoch),
            &group_aad(epoch),
            text,
        ) {
            tag_out.copy_from_slice(&tag);
        }
        out
    }

    /// Opens a group key [`seal_group_key`](Self::seal_group_key) sealed for `epoch`.
    /// Fails if it was sealed under another session's keys (another household key, a
    /// follower it was not meant for), for another epoch, or changed on the way.
    pub fn open_group_key(
        &self,
        epoch: u32,
        sealed: &[u8; SEALED_GROUP_KEY_LEN],
    ) -> Result<GroupKey, GroupKeyError> {
        let mut text = [0u8; GROUP_KEY_LEN];
        text.copy_from_slice(&sealed[..GROUP_KEY_LEN]);
        let tag = aes_gcm::Tag::from_slice(&sealed[GROUP_KEY_LEN..]);
        let opened = self.wrap_cipher().decrypt_in_place_detached(
            &group_nonce(epoch),
            &group_aad(epoch),
            &mut text,
            tag,
        );
        let key = opened.map(|()| GroupKey { material: text });
        wipe(&mut text);
        key.map_err(|_| GroupKeyError)
    }

    /// The PTP keys of session `session` for the end `end`: it signs with its own
    /// direction's key and checks with the other's
    /// ([`ClockLeaderToFollower`](KeyPurpose::ClockLeaderToFollower),
    /// [`ClockFollowerToLeader`](KeyPurpose::ClockFollowerToLeader)). The keyID is the
    /// session id's low 32 bits.
    pub fn ptp(&self, session: u64, end: End) -> PtpKeys {
        let key_id = session as u32;
        let down = PtpAuth::new(&self.key32(KeyPurpose::ClockLeaderToFollower), key_id);
        let up = PtpAuth::new(&self.key32(KeyPurpose::ClockFollowerToLeader), key_id);
        match end {
            End::Leader => PtpKeys::new(down, up),
            End::Follower => PtpKeys::new(up, down),
        }
    }
}

/// Bytes of a group key (and of a session's media key material): an SRTP master key and
/// salt of any profile (16 + 14 at most).
pub const GROUP_KEY_LEN: usize = 30;

/// Bytes of a sealed group key: the key, then a 16-byte GCM tag.
pub const SEALED_GROUP_KEY_LEN: usize = GROUP_KEY_LEN + 16;

/// A group key did not open: sealed under other keys, for another epoch, or altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the group key does not open under this session's keys")]
pub struct GroupKeyError;

/// The leader's secret from which every epoch's group key is derived. Random, never sent:
/// a speaker that has left a group knows the keys of the epochs it was given, and no
/// others. `Debug` never prints it; it is zeroed when dropped.
#[derive(Clone)]
pub struct GroupSecret([u8; 32]);

impl GroupSecret {
    /// The secret `bytes` (32 uniformly random bytes: see
    /// [`new_nonce`](super::new_nonce) for a source).
    pub fn new(bytes: [u8; 32]) -> GroupSecret {
        GroupSecret(bytes)
    }

    /// The group key of `epoch`: HKDF-Expand of the secret with the info
    /// `"lockstep/1 group key" || epoch` (big-endian).
    pub fn key(&self, epoch: u32) -> GroupKey {
        let mut material = [0u8; GROUP_KEY_LEN];
        if let Ok(hk) = Hkdf::<Sha256>::from_prk(&self.0) {
            // 30 bytes: always within HKDF-SHA256's reach.
            let _ = hk.expand_multi_info(
                &[b"lockstep/1 group key", &epoch.to_be_bytes()],
                &mut material,
            );
        }
        GroupKey { material }
    }
}

impl fmt::Debug for GroupSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupSecret(..)")
    }
}

impl Drop for GroupSecret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// One epoch's key of a multicast stream: the SRTP master key and salt every member
/// shares. `Debug` never prints it; it is zeroed when dropped.
#[derive(Clone)]
pub struct GroupKey {
    material: [u8; GROUP_KEY_LEN],
}

impl GroupKey {
    /// The SRTP context of the group's stream under this key, for `profile`, bound to
    /// `ssrc`.
    pub fn srtp(&self, profile: SrtpProfile, ssrc: u32) -> Result<SrtpContext, SrtpError> {
        srtp_from(&self.material, profile, ssrc)
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKey(..)")
    }
}

impl Drop for GroupKey {
    fn drop(&mut self) {
        wipe(&mut self.material);
    }
}

fn srtp_from(
    material: &[u8; GROUP_KEY_LEN],
    profile: SrtpProfile,
    ssrc: u32,
) -> Result<SrtpContext, SrtpError> {
    let key_len = profile.master_key_len();
    let salt_len = profile.master_salt_len();
    let context = SrtpContext::new(
        profile,
        &material[..key_len],
        &material[key_len..key_len + salt_len],
    )?;
    Ok(context.with_ssrc(ssrc))
}

fn group_nonce(epoch: u32) -> aes_gcm::Nonce<aes_gcm::aead::consts::U12> {
    let mut nonce = [0u8; 12];
    nonce[8..].copy_from_slice(&epoch.to_be_bytes());
    nonce.into()
}

fn group_aad(epoch: u32) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..20].copy_from_slice(b"lockstep/1 group key");
    aad[20..].copy_from_slice(&epoch.to_be_bytes());
    aad
}

/// Zeroes `bytes` in a way the compiler does not remove as a dead store.
fn wipe(bytes: &mut [u8]) {
    for b in bytes {
        // SAFETY: `b` is a valid, aligned byte; a volatile write is not optimized away.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}
