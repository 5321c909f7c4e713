//! The household key and the proofs built on it.
//!
//! Every speaker of a household holds the same secret key. During the handshake each side
//! proves it holds the key with an HMAC-SHA256 over both sides' fresh nonces; neither the key
//! nor anything from which it can be computed crosses the network.
//!
//! The two proofs start with different labels (`lockstep/1 follower`, `lockstep/1 leader`),
//! so a follower's proof can never be replayed as a leader's proof or the other way round.
//! The follower's proof also covers the exact Hello frame it sent, so the model, role and
//! group it asked for cannot be changed in transit; the leader's covers the session id.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::message::{Mac, Nonce, Refusal};

/// The shortest household key accepted, in bytes (128 bits).
pub const MIN_KEY_LEN: usize = 16;

/// The longest household key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The most bytes [`HouseholdKey::from_file`] reads; a longer file is not a key file (and
/// reading stops there, so pointing it at `/dev/zero` by mistake does not hang).
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// Label that starts every follower proof.
const FOLLOWER_LABEL: &[u8] = b"lockstep/1 follower";

/// Label that starts every leader proof.
const LEADER_LABEL: &[u8] = b"lockstep/1 leader";

/// Label that starts a session's key material (see [`super::keys`]).
pub(crate) const SESSION_KEYS_LABEL: &[u8] = b"lockstep/1 session keys";

type HmacSha256 = Hmac<Sha256>;

/// Why a household key could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read household key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The key is too short to be safe or too long to be a key.
    #[error("household key is {len} bytes long, expected {min} to {max}")]
    Length {
        /// Its length in bytes (after trimming, for a file; a file over 64 KiB reports the
        /// 64 KiB + 1 bytes read).
        len: usize,
        /// [`MIN_KEY_LEN`].
        min: usize,
        /// [`MAX_KEY_LEN`].
        max: usize,
    },
}

/// The secret every speaker of a household shares.
///
/// It keeps the key only as HMAC state ready for use; its `Debug` prints `HouseholdKey(..)`
/// so that the key cannot end up in a log.
#[derive(Clone)]
pub struct HouseholdKey {
    keyed: HmacSha256,
}

impl fmt::Debug for HouseholdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HouseholdKey(..)")
    }
}

impl HouseholdKey {
    /// A key from its bytes: [`MIN_KEY_LEN`] to [`MAX_KEY_LEN`] of them.
    pub fn new(bytes: &[u8]) -> Result<HouseholdKey, KeyError> {
        let length_error = KeyError::Length {
            len: bytes.len(),
            min: MIN_KEY_LEN,
            max: MAX_KEY_LEN,
        };
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
            return Err(length_error);
        }
        // HMAC takes keys of any length, so this cannot fail; it is mapped rather than
        // unwrapped all the same.
        let keyed = HmacSha256::new_from_slice(bytes).map_err(|_| length_error)?;
        Ok(HouseholdKey { keyed })
    }

    /// A key from a file, with trailing ASCII whitespace trimmed so that a key written with
    /// `echo secret > key` is the secret without its newline.
    pub fn from_file(path: impl AsRef<Path>) -> Result<HouseholdKey, KeyError> {
        let path = path.as_ref();
        let read_error = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|f| f.take(MAX_KEY_FILE_LEN + 1).read_to_end(&mut bytes))
            .map_err(read_error)?;
        let key = HouseholdKey::new(bytes.trim_ascii_end());
        // Best effort: do not leave the secret in freed memory.
        bytes.fill(0);
        key
    }

    /// The follower's proof: HMAC over `"lockstep/1 follower" || leader_nonce ||
    /// follower_nonce || hello`, where `hello` is the exact Hello frame the follower sent.
    pub fn follower_proof(
        &self,
        leader_nonce: &Nonce,
        follower_nonce: &Nonce,
        hello: &[u8],
    ) -> Mac {
        self.follower_hmac(leader_nonce, follower_nonce, hello)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `mac` is the follower's proof for these nonces and Hello frame (compared in
    /// constant time).
    pub fn verify_follower(
        &self,
        leader_nonce: &Nonce,
        follower_nonce: &Nonce,
        hello: &[u8],
        mac: &Mac,
    ) -> bool {
        self.follower_hmac(leader_nonce, follower_nonce, hello)
            .verify_slice(mac)
            .is_ok()
    }

    /// The leader's proof: HMAC over `"lockstep/1 leader" || leader_nonce || follower_nonce
    /// || session` (u64 BE).
    pub fn leader_proof(&self, leader_nonce: &Nonce, follower_nonce: &Nonce, session: u64) -> Mac {
        self.leader_hmac(leader_nonce, follower_nonce, session)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `mac` is the leader's proof for these nonces and session (compared in
    /// constant time).
    pub fn verify_leader(
        &self,
        leader_nonce: &Nonce,
        follower_nonce: &Nonce,
        session: u64,
        mac: &Mac,
    ) -> bool {
        self.leader_hmac(leader_nonce, follower_nonce, session)
            .verify_slice(mac)
            .is_ok()
    }

    /// The pseudorandom key of one session: HMAC-SHA256 over
    /// `"lockstep/1 session keys" || leader_nonce || follower_nonce || session` (the id as 8
    /// big-endian bytes), keyed with the household key. Its label differs from both proofs',
    /// so no proof that crossed the network is key material, nor the other way round.
    pub(crate) fn session_prk(&self, leader: &Nonce, follower: &Nonce, session: u64) -> [u8; 32] {
        let mut h = self.keyed.clone();
        for part in [SESSION_KEYS_LABEL, leader, follower, &session.to_be_bytes()] {
            h.update(part);
        }
        h.finalize().into_bytes().into()
    }

    /// HMAC-SHA256 under the household key over `parts`, one after another. Each caller
    /// starts `parts` with a label of its own, so no two uses can stand for each other.
    pub(crate) fn mac_of(&self, parts: &[&[u8]]) -> Mac {
        let mut h = self.keyed.clone();
        for part in parts {
            h.update(part);
        }
        h.finalize().into_bytes().into()
    }

    /// Whether `tag` is [`mac_of`](Self::mac_of)`(parts)`, compared in constant time.
    pub(crate) fn verify_mac_of(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut h = self.keyed.clone();
        for part in parts {
            h.update(part);
        }
        h.verify_slice(tag).is_ok()
    }

    fn follower_hmac(&self, leader: &Nonce, follower: &Nonce, hello: &[u8]) -> HmacSha256 {
        let mut h = self.keyed.clone();
        for part in [FOLLOWER_LABEL, leader, follower, hello] {
            h.update(part);
        }
        h
    }

    fn leader_hmac(&self, leader: &Nonce, follower: &Nonce, session: u64) -> HmacSha256 {
        let mut h = self.keyed.clone();
        for part in [LEADER_LABEL, leader, follower, &session.to_be_bytes()] {
            h.update(part);
        }
        h
    }
}

/// A fresh nonce from the operating system's random source.
///
/// Uses `getrandom(2)` where there is one and falls back to reading `/dev/urandom`; fails
/// only if both fail.
pub fn new_nonce() -> Result<Nonce, io::Error> {
    let mut nonce = [0u8; 16];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if getrandom(&mut nonce).is_ok() {
        return Ok(nonce);
    }
    File::open("/dev/urandom")?.read_exact(&mut nonce)?;
    Ok(nonce)
}

/// Fills `buf` with `getrandom(2)`, retrying on EINTR and on short reads.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes for the whole call, and
        // the kernel writes at most that many.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            // A nonempty request never yields 0; treat it as failure rather than spin.
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// Remembers recent nonces to refuse a replayed handshake.
///
/// Keeps the last `capacity` nonces in arrival order (a FIFO) with a set for lookup; when
/// full, the oldest is forgotten. Memory is bounded by `capacity` nonces in each of the two,
/// about 64 bytes per nonce with the set's overhead, whatever peers send.
#[derive(Debug)]
pub struct ReplayGuard {
    order: VecDeque<Nonce>,
    seen: HashSet<Nonce>,
    capacity: usize,
}

impl ReplayGuard {
    /// A guard that remembers the last `capacity` nonces (at least 1).
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            order: VecDeque::new(),
            seen: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// Refuses a nonce seen before ([`Refusal::Replay`]); otherwise records it.
    pub fn check(&mut self, nonce: &Nonce) -> Result<(), Refusal> {
        if self.seen.contains(nonce) {
            return Err(Refusal::Replay);
        }
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.order.push_back(*nonce);
        self.seen.insert(*nonce);
        Ok(())
    }

    /// How many nonces it remembers now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether it remembers none yet.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The most nonces it remembers.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"correct horse battery staple";

    fn key() -> HouseholdKey {
        HouseholdKey::new(SECRET).unwrap()
    }

    const LEADER: Nonce = [1; 16];
    const FOLLOWER: Nonce = [2; 16];
    const HELLO: &[u8] = b"LS\x01\x01\0\0\0\x03abc";

    #[test]
    fn follower_proof_verifies_with_the_same_inputs_only() {
        let mac = key().follower_proof(&LEADER, &FOLLOWER, HELLO);
        assert!(key().verify_follower(&LEADER, &FOLLOWER, HELLO, &mac));

        let other = HouseholdKey::new(b"another household key").unwrap();
        assert!(!other.verify_follower(&LEADER, &FOLLOWER, HELLO, &mac));
        assert_ne!(other.follower_proof(&LEADER, &FOLLOWER, HELLO), mac);

        let mut leader = LEADER;
        leader[15] ^= 1;
        assert!(!key().verify_follower(&leader, &FOLLOWER, HELLO, &mac));
        let mut follower = FOLLOWER;
        follower[0] ^= 0x80;
        assert!(!key().verify_follower(&LEADER, &follower, HELLO, &mac));
        // Swapping the nonces is a different proof too.
        assert!(!key().verify_follower(&FOLLOWER, &LEADER, HELLO, &mac));

        for i in 0..HELLO.len() {
            let mut hello = HELLO.to_vec();
            hello[i] ^= 1;
            assert!(
                !key().verify_follower(&LEADER, &FOLLOWER, &hello, &mac),
                "byte {i}"
            );
        }
        assert!(!key().verify_follower(&LEADER, &FOLLOWER, &HELLO[1..], &mac));

        let mut bad = mac;
        bad[31] ^= 1;
        assert!(!key().verify_follower(&LEADER, &FOLLOWER, HELLO, &bad));
    }

    #[test]
    fn leader_proof_verifies_with_the_same_inputs_only() {
        let mac = key().leader_proof(&LEADER, &FOLLOWER, 7);
        assert!(key().verify_leader(&LEADER, &FOLLOWER, 7, &mac));
        assert!(!key().verify_leader(&LEADER, &FOLLOWER, 8, &mac));
        assert!(!key().verify_leader(&FOLLOWER, &LEADER, 7, &mac));
        let other = HouseholdKey::new(&[0x55; 16]).unwrap();
        assert!(!other.verify_leader(&LEADER, &FOLLOWER, 7, &mac));
    }

    #[test]
    fn proofs_of_one_side_do_not_pass_as_the_other() {
        // A Hello of exactly the 8 bytes of a session id: the inputs line up apart from
        // the label, so only domain separation keeps the proofs apart.
        let session = 0x0102_0304_0506_0708u64;
        let hello = session.to_be_bytes();
        let follower = key().follower_proof(&LEADER, &FOLLOWER, &hello);
        assert!(!key().verify_leader(&LEADER, &FOLLOWER, session, &follower));
        let leader = key().leader_proof(&LEADER, &FOLLOWER, session);
        assert!(!key().verify_follower(&LEADER, &FOLLOWER, &hello, &leader));
    }

    #[test]
    fn proof_is_hmac_sha256_over_the_documented_bytes() {
        // Computed independently of the helpers, so a change in field order fails here.
        let mut h = HmacSha256::new_from_slice(SECRET).unwrap();
        h.update(b"lockstep/1 leader");
        h.update(&LEADER);
        h.update(&FOLLOWER);
        h.update(&9u64.to_be_bytes());
        let expected: Mac = h.finalize().into_bytes().into();
        assert_eq!(key().leader_proof(&LEADER, &FOLLOWER, 9), expected);
    }

    #[test]
    fn key_length_is_bounded() {
        for len in [0, 1, MIN_KEY_LEN - 1, MAX_KEY_LEN + 1] {
            assert!(matches!(
                HouseholdKey::new(&vec![7; len]),
                Err(KeyError::Length { len: l, min: 16, max: 1024 }) if l == len
            ));
        }
        for len in [MIN_KEY_LEN, MAX_KEY_LEN] {
            assert!(HouseholdKey::new(&vec![7; len]).is_ok());
        }
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let secret = b"SUPERSECRETKEY-0123456789";
        let shown = format!("{:?}", HouseholdKey::new(secret).unwrap());
        assert_eq!(shown, "HouseholdKey(..)");
        assert!(!shown.contains("SUPERSECRET"));
    }

    /// A path under the temp dir no other test or process uses.
    fn temp_path(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!("lockstep-key-{tag}-{}-{nanos}", std::process::id()))
    }

    #[test]
    fn from_file_trims_trailing_whitespace() {
        let path = temp_path("trim");
        std::fs::write(&path, b"0123456789abcdef \t\r\n").unwrap();
        let from_file = HouseholdKey::from_file(&path);
        std::fs::remove_file(&path).unwrap();
        let from_file = from_file.unwrap();
        let direct = HouseholdKey::new(b"0123456789abcdef").unwrap();
        let mac = direct.leader_proof(&LEADER, &FOLLOWER, 1);
        assert!(from_file.verify_leader(&LEADER, &FOLLOWER, 1, &mac));
    }

    #[test]
    fn from_file_reports_length_and_missing_files() {
        let path = temp_path("short");
        // 15 bytes once the newline is trimmed.
        std::fs::write(&path, b"0123456789abcde\n").unwrap();
        let short = HouseholdKey::from_file(&path);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(short, Err(KeyError::Length { len: 15, .. })));

        let missing = temp_path("missing");
        match HouseholdKey::from_file(&missing) {
            Err(KeyError::Read { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn nonces_differ() {
        let a = new_nonce().unwrap();
        let b = new_nonce().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
    }

    #[test]
    fn replay_guard_refuses_repeats() {
        let mut guard = ReplayGuard::new(4);
        assert!(guard.is_empty());
        assert_eq!(guard.check(&[1; 16]), Ok(()));
        assert_eq!(guard.check(&[2; 16]), Ok(()));
        assert_eq!(guard.check(&[1; 16]), Err(Refusal::Replay));
        assert_eq!(guard.len(), 2, "a refused nonce is not recorded twice");
    }

    #[test]
    fn replay_guard_memory_stays_bounded() {
        let capacity = 8;
        let mut guard = ReplayGuard::new(capacity);
        let nonce = |i: u16| {
            let mut n = [0u8; 16];
            n[..2].copy_from_slice(&i.to_be_bytes());
            n
        };
        for i in 0..(capacity as u16 + 100) {
            assert_eq!(guard.check(&nonce(i)), Ok(()));
            assert!(guard.len() <= capacity);
            assert!(guard.seen.len() <= capacity);
        }
        assert_eq!(guard.len(), capacity);
        // The newest are still refused, the oldest were forgotten.
        let newest = capacity as u16 + 99;
        assert_eq!(guard.check(&nonce(newest)), Err(Refusal::Replay));
        assert_eq!(guard.check(&nonce(0)), Ok(()));
        assert_eq!(guard.capacity(), capacity);
        assert_eq!(ReplayGuard::new(0).capacity(), 1);
    }
}
