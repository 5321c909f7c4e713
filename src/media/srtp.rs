//! SRTP (RFC 3711): RTP packets encrypted and authenticated, with a replay window.
//!
//! An [`SrtpContext`] holds the session keys of one RTP stream (one SSRC, one direction) and
//! the state that goes with them: the rollover counter, the highest packet index seen and the
//! replay window. The leader's context turns each RTP packet into an SRTP packet
//! ([`protect`](SrtpContext::protect)); a follower's context checks and decrypts it
//! ([`unprotect`](SrtpContext::unprotect)) before the packet reaches the
//! [`RtpReceiver`](crate::media::RtpReceiver). Like the rest of the media path it is sans-IO:
//! bytes in, bytes out, no clocks, no sockets, and no allocation per packet.
//!
//! # Profiles
//!
//! - [`SrtpProfile::AesCm128HmacSha1_80`] (the default): AES-128 in counter mode encrypts the
//!   payload (RFC 3711 §4.1.1), HMAC-SHA1 over the header, the encrypted payload and the
//!   rollover counter, cut to 80 bits, authenticates the packet (§4.2.1). Master key 16
//!   bytes, master salt 14, tag 10.
//! - [`SrtpProfile::AeadAes128Gcm`]: AES-128-GCM (RFC 7714 §8–§9), the header as associated
//!   data, a 16-byte tag. Master key 16 bytes, master salt 12.
//!
//! Both derive their session keys from the master key and salt with RFC 3711's AES-CM PRF
//! (§4.3.1 and §4.3.3, key derivation rate 0, so the session keys never change). For GCM the
//! 12-byte master salt is padded with zeros to the PRF's 14 bytes (RFC 7714 §11). The
//! ciphers, counter mode, HMAC and SHA-1 are RustCrypto's `aes`, `ctr`, `hmac`, `sha1` and
//! `aes-gcm` crates; this module only lays out their inputs as the RFCs say. It is checked
//! against RFC 3711 Appendix B.2 (the AES-CM keystream) and B.3 (key derivation) and RFC 7714
//! §16.1 (an AES-128-GCM packet) in `tests/media_srtp.rs`.
//!
//! # Packet index and rollover
//!
//! The 48-bit packet index is the 32-bit rollover counter (ROC) times 2¹⁶ plus the 16-bit RTP
//! sequence number. Neither end sends the ROC: each estimates it from the highest index it has
//! seen, as RFC 3711 §3.3.1 says (a sequence number more than 2¹⁵ below the highest one seen
//! belongs to the next ROC, one more than 2¹⁵ above it to the previous one). Before its first
//! packet a context assumes the ROC it was given
//! ([`with_rollover_counter`](SrtpContext::with_rollover_counter), 0 by default). So a
//! receiver that starts listening to a stream that has already wrapped its sequence number
//! must be told the sender's current ROC
//! ([`rollover_counter`](SrtpContext::rollover_counter) on the sender); otherwise every packet
//! fails authentication. Contexts created together at session start need nothing.
//!
//! # Replay
//!
//! A receiving context remembers the highest index it accepted and which of the
//! [`REPLAY_WINDOW`] indices below it it accepted (RFC 3711 §3.3.2). A packet whose tag is
//! good but whose index it has already accepted, or which lies below the window, is a replay:
//! [`SrtpError::Replay`]. The tag is checked first, so a forged packet is always counted as a
//! bad tag and never as a replay, and the replay count is the count of genuine packets that
//! came twice or too late.
//!
//! A sending context refuses to protect an index that is not above every index it protected
//! before ([`SrtpError::IndexNotAdvancing`]): counter mode and GCM must never use one index
//! twice under one key.
//!
//! # Streams and keys
//!
//! A context serves one SSRC. It is either told it
//! ([`with_ssrc`](SrtpContext::with_ssrc)) or binds to the SSRC of the first packet it
//! protects or accepts; a packet of any other SSRC is [`SrtpError::UnknownSsrc`]. The
//! session keys are zeroed when the context is dropped (the AES key schedules through the
//! `aes` crate's `zeroize` feature, the HMAC key and the salts through the `zeroize` crate);
//! copies that the ciphers leave on the stack while processing a packet are not (best
//! effort). `Debug` never prints keys.
//!
//! # Cost
//!
//! `benches/srtp.rs` times protect plus unprotect of one 5 ms L24 stereo packet at 48 kHz
//! (1468 bytes); docs/media.md has the figures and sets them beside the follower's
//! per-block cost.

use core::fmt;

use aes::Aes128;
use aes::cipher::{InnerIvInit, KeyInit, KeyIvInit, StreamCipher};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use thiserror::Error;
use zeroize::Zeroizing;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;
type HmacSha1 = Hmac<Sha1>;

/// How many packet indices below the highest one a receiving context remembers. A packet
/// further back than this is a replay, whatever its tag.
pub const REPLAY_WINDOW: u64 = 128;

/// The longest authentication tag of any profile, in bytes: what a buffer must have spare
/// beyond the RTP packet to be protected in place under any profile.
pub const MAX_TAG_LEN: usize = 16;

/// The longest payload protected or accepted, in bytes: 2¹⁶ AES blocks. Counter mode's
/// per-packet counter is the low 16 bits of its IV, so a longer payload would run into the
/// keystream of the next packet index (RFC 3711 §4.1.1).
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;

/// Length of the fixed RTP header (RFC 3550 §5.1).
const RTP_FIXED_HEADER: usize = 12;

/// Length of the HMAC-SHA1 session authentication key (RFC 3711 §8.2, n_a = 160 bits).
const AUTH_KEY_LEN: usize = 20;

/// The longest session salt of any profile (AES-CM's 112 bits).
const MAX_SALT_LEN: usize = 14;

/// RFC 3711 §4.3.2 labels for the SRTP (not SRTCP) session keys.
const LABEL_ENCRYPTION: u8 = 0x00;
const LABEL_AUTHENTICATION: u8 = 0x01;
const LABEL_SALT: u8 = 0x02;

/// An SRTP protection profile: which cipher and which authentication, with their key, salt
/// and tag lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SrtpProfile {
    /// `AES_CM_128_HMAC_SHA1_80` (RFC 3711, RFC 5764 §4.1.2): AES-128 counter mode and an
    /// 80-bit HMAC-SHA1 tag. The default.
    #[default]
    AesCm128HmacSha1_80,
    /// `AEAD_AES_128_GCM` (RFC 7714): AES-128-GCM with a 128-bit tag.
    AeadAes128Gcm,
}

impl SrtpProfile {
    /// Every profile, for tests and benches that sweep them.
    pub const ALL: [SrtpProfile; 2] =
        [SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AeadAes128Gcm];

    /// The profile's registered name, as DTLS-SRTP and SDP `a=crypto` spell it.
    pub fn name(self) -> &'static str {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpProfile::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// Length of the master key (and of the session encryption key) in bytes: 16.
    pub fn master_key_len(self) -> usize {
        16
    }

    /// Length of the master salt (and of the session salt) in bytes: 14 for AES-CM, 12 for
    /// GCM.
    pub fn master_salt_len(self) -> usize {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => 14,
            SrtpProfile::AeadAes128Gcm => 12,
        }
    }

    /// Bytes that protection adds to a packet: the tag, 10 for AES-CM with HMAC-SHA1-80, 16
    /// for GCM.
    pub fn tag_len(self) -> usize {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => 10,
            SrtpProfile::AeadAes128Gcm => 16,
        }
    }
}

impl fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a packet was not protected or not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// A key or salt handed to a constructor has the wrong length for the profile.
    #[error("the {what} must be {expected} bytes for this profile, got {got}")]
    KeyLength {
        /// Which input: `"master key"`, `"master salt"`, `"session key"` and so on.
        what: &'static str,
        /// The length the profile needs.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The packet is shorter than its own header (and, when unprotecting, its tag) says it
    /// must be.
    #[error("packet too short: needs at least {needed} bytes, got {got}")]
    TooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The packet is not RTP version 2.
    #[error("not an RTP version 2 packet (version {version})")]
    BadVersion {
        /// The version found in the first two bits.
        version: u8,
    },
    /// The payload is longer than [`MAX_PAYLOAD_LEN`].
    #[error("payload too long: at most {max} bytes, got {got}")]
    TooLong {
        /// The longest payload allowed.
        max: usize,
        /// The payload's length.
        got: usize,
    },
    /// The output buffer cannot hold the result.
    #[error("output buffer too small: needs {needed} bytes, got {got}")]
    OutputTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// The packet belongs to a stream this context does not hold keys for.
    #[error("SSRC {got:#010x} is not this context's stream {expected:#010x}")]
    UnknownSsrc {
        /// The SSRC the context serves.
        expected: u32,
        /// The SSRC in the packet.
        got: u32,
    },
    /// The authentication tag is wrong: the packet was forged, corrupted, or protected under
    /// another key or another rollover counter.
    #[error("authentication failed")]
    BadTag,
    /// The tag is good but the packet's index was accepted before, or is older than the
    /// replay window.
    #[error("replayed or stale packet (index {index})")]
    Replay {
        /// The packet index (ROC · 2¹⁶ + sequence number); negative for a packet from before
        /// the stream's first rollover counter.
        index: i64,
    },
    /// The sender was asked to protect an index at or below one it already protected, which
    /// would reuse keystream.
    #[error("packet index {index} does not advance past {highest}")]
    IndexNotAdvancing {
        /// The index of the packet given.
        index: i64,
        /// The highest index protected so far.
        highest: i64,
    },
}

/// What a context has done, counted. Rejections are counted by reason; a packet counts once,
/// under the first reason that stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SrtpStats {
    /// Packets protected.
    pub protected: u64,
    /// Packets unprotected and accepted.
    pub accepted: u64,
    /// Packets rejected because their tag was wrong ([`SrtpError::BadTag`]).
    pub bad_tag: u64,
    /// Packets rejected as replays ([`SrtpError::Replay`]).
    pub replay: u64,
    /// Packets rejected for an SSRC the context has no keys for ([`SrtpError::UnknownSsrc`]).
    pub unknown_ssrc: u64,
    /// Packets rejected as too short, too long or not RTP ([`SrtpError::TooShort`],
    /// [`SrtpError::TooLong`], [`SrtpError::BadVersion`]).
    pub malformed: u64,
}

impl SrtpStats {
    /// All rejected packets, whatever the reason.
    pub fn rejected(&self) -> u64 {
        self.bad_tag + self.replay + self.unknown_ssrc + self.malformed
    }
}

/// The session keys of one profile.
enum Keys {
    /// AES-CM with HMAC-SHA1: the encryption key schedule, HMAC already keyed with the
    /// authentication key (each packet's MAC starts from a copy, rather than hashing the key
    /// again), and the 14-byte salt.
    Cm {
        cipher: Aes128,
        mac: HmacSha1,
        salt: Zeroizing<[u8; 14]>,
    },
    /// AES-GCM: the AEAD and the 12-byte salt.
    Gcm {
        aead: Aes128Gcm,
        salt: Zeroizing<[u8; 12]>,
    },
}

/// The highest index seen and the replay bitmap below it.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// The highest packet index accepted (or protected), if any.
    highest: Option<i64>,
    /// Bit `k` set: index `highest - k` was accepted.
    seen: u128,
}

impl Window {
    /// Records `index` as accepted.
    fn accept(&mut self, index: i64) {
        match self.highest {
            Some(h) if index <= h => {
                let back = (h - index) as u64;
                if back < REPLAY_WINDOW {
                    self.seen |= 1 << back;
                }
            }
            Some(h) => {
                let ahead = (index - h) as u64;
                self.seen = if ahead >= REPLAY_WINDOW {
                    0
                } else {
                    self.seen << ahead
                };
                self.seen |= 1;
                self.highest = Some(index);
            }
            None => {
                self.seen = 1;
                self.highest = Some(index);
            }
        }
    }

    /// Whether `index` is new: above the highest, or inside the window and not yet seen.
    fn is_new(&self, index: i64) -> bool {
        if index < 0 {
            return false;
        }
        match self.highest {
            None => true,
            Some(h) if index > h => true,
            Some(h) => {
                let back = (h - index) as u64;
                back < REPLAY_WINDOW && self.seen & (1 << back) == 0
            }
        }
    }
}

/// The parts of an RTP header that SRTP needs.
struct Header {
    /// Header length in bytes (fixed header, CSRCs and the extension block): the payload
    /// starts here.
    len: usize,
    sequence: u16,
    ssrc: u32,
}

/// Reads the header of an RTP packet of `packet_len` bytes held in `packet` (which may be
/// longer), checking that it fits.
fn parse_header(packet: &[u8], packet_len: usize) -> Result<Header, SrtpError> {
    let bytes = &packet[..packet_len.min(packet.len())];
    if bytes.len() < RTP_FIXED_HEADER {
        return Err(SrtpError::TooShort {
            needed: RTP_FIXED_HEADER,
            got: bytes.len(),
        });
    }
    let version = bytes[0] >> 6;
    if version != 2 {
        return Err(SrtpError::BadVersion { version });
    }
    let csrcs = usize::from(bytes[0] & 0x0f);
    let mut len = RTP_FIXED_HEADER + 4 * csrcs;
    if bytes[0] & 0x10 != 0 {
        if bytes.len() < len + 4 {
            return Err(SrtpError::TooShort {
                needed: len + 4,
                got: bytes.len(),
            });
        }
        let words = usize::from(u16::from_be_bytes([bytes[len + 2], bytes[len + 3]]));
        len += 4 + 4 * words;
    }
    if bytes.len() < len {
        return Err(SrtpError::TooShort {
            needed: len,
            got: bytes.len(),
        });
    }
    if bytes.len() - len > MAX_PAYLOAD_LEN {
        return Err(SrtpError::TooLong {
            max: MAX_PAYLOAD_LEN,
            got: bytes.len() - len,
        });
    }
    Ok(Header {
        len,
        sequence: u16::from_be_bytes([bytes[2], bytes[3]]),
        ssrc: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
    })
}

/// The RFC 3711 §4.3.3 AES-CM PRF with key derivation rate 0: fills `out` with the keystream
/// of AES-CTR under the master key from the IV `(master_salt XOR label << 48) · 2¹⁶`. The
/// salt sits at the front of the IV, so a 12-byte GCM salt is padded with zeros at its end.
fn derive(master_key: &[u8; 16], master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut iv = Zeroizing::new([0u8; 16]);
    iv[..master_salt.len()].copy_from_slice(master_salt);
    // key_id = label || (index DIV kdr), 7 bytes, right-aligned against the 14-byte salt.
    iv[7] ^= label;
    out.fill(0);
    let mut prf = Aes128Ctr::new(master_key.into(), (&*iv).into());
    prf.apply_keystream(out);
}

/// The SRTP session keys that RFC 3711 §4.3 derives from a master key and salt (key
/// derivation rate 0), zeroed on drop. [`SrtpContext::new`] derives them itself; this type
/// is for checking the derivation and for callers that keep session keys.
pub struct SrtpSessionKeys {
    profile: SrtpProfile,
    encryption: Zeroizing<[u8; 16]>,
    salt: Zeroizing<[u8; MAX_SALT_LEN]>,
    auth: Zeroizing<[u8; AUTH_KEY_LEN]>,
}

impl fmt::Debug for SrtpSessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpSessionKeys")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl SrtpSessionKeys {
    /// Derives the session encryption key (label 0), authentication key (label 1, AES-CM
    /// only) and salt (label 2) of `profile` from `master_key` and `master_salt`. Fails if
    /// either has the wrong length for the profile.
    pub fn derive(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<SrtpSessionKeys, SrtpError> {
        check_len("master key", master_key, profile.master_key_len())?;
        check_len("master salt", master_salt, profile.master_salt_len())?;
        let mut key = Zeroizing::new([0u8; 16]);
        key.copy_from_slice(master_key);
        let mut keys = SrtpSessionKeys {
            profile,
            encryption: Zeroizing::new([0; 16]),
            salt: Zeroizing::new([0; MAX_SALT_LEN]),
            auth: Zeroizing::new([0; AUTH_KEY_LEN]),
        };
        derive(
            &key,
            master_salt,
            LABEL_ENCRYPTION,
            &mut keys.encryption[..],
        );
        let salt_len = profile.master_salt_len();
        derive(&key, master_salt, LABEL_SALT, &mut keys.salt[..salt_len]);
        if profile == SrtpProfile::AesCm128HmacSha1_80 {
            derive(&key, master_salt, LABEL_AUTHENTICATION, &mut keys.auth[..]);
        }
        Ok(keys)
    }

    /// The session encryption key, 16 bytes.
    pub fn encryption_key(&self) -> &[u8] {
        &self.encryption[..]
    }

    /// The session salt: 14 bytes for AES-CM, 12 for GCM.
    pub fn salt(&self) -> &[u8] {
        &self.salt[..self.profile.master_salt_len()]
    }

    /// The session authentication key: 20 bytes for HMAC-SHA1, empty for GCM.
    pub fn auth_key(&self) -> &[u8] {
        match self.profile {
            SrtpProfile::AesCm128HmacSha1_80 => &self.auth[..],
            SrtpProfile::AeadAes128Gcm => &[],
        }
    }
}

fn check_len(what: &'static str, bytes: &[u8], expected: usize) -> Result<(), SrtpError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(SrtpError::KeyLength {
            what,
            expected,
            got: bytes.len(),
        })
    }
}

/// The SRTP state of one RTP stream in one direction: session keys, rollover counter, replay
/// window and counters.
///
/// # Use
///
/// Make one with [`SrtpContext::new`] from the profile, master key and master salt that both
/// ends share; optionally fix its SSRC ([`with_ssrc`](Self::with_ssrc)) and starting rollover
/// counter ([`with_rollover_counter`](Self::with_rollover_counter)). A sender then calls
/// [`protect`](Self::protect) (or [`protect_in_place`](Self::protect_in_place)) on each RTP
/// packet in sending order; a receiver calls [`unprotect`](Self::unprotect) (or
/// [`unprotect_in_place`](Self::unprotect_in_place)) on each datagram as it arrives, and hands
/// the RTP packet it gets to the RTP receiver. A context is for one direction: do not protect
/// and unprotect with the same one.
///
/// Buffers: protection writes the packet with [`SrtpProfile::tag_len`] more bytes;
/// unprotection writes that many fewer. On an error the output buffer's contents are
/// unspecified (the in-place forms may leave the packet decrypted but rejected); the
/// context's state is unchanged apart from its counters.
///
/// Nothing here allocates once the context exists, and no input makes it panic.
pub struct SrtpContext {
    profile: SrtpProfile,
    keys: Keys,
    /// The SSRC served, once fixed or bound.
    ssrc: Option<u32>,
    /// The rollover counter assumed before the first packet.
    initial_roc: u32,
    window: Window,
    stats: SrtpStats,
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("ssrc", &self.ssrc)
            .field("rollover_counter", &self.rollover_counter())
            .field("highest_index", &self.window.highest)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// A context for `profile` whose session keys are derived from `master_key` and
    /// `master_salt` (RFC 3711 §4.3, key derivation rate 0). Fails if either has the wrong
    /// length for the profile ([`SrtpProfile::master_key_len`],
    /// [`SrtpProfile::master_salt_len`]).
    pub fn new(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<SrtpContext, SrtpError> {
        let keys = SrtpSessionKeys::derive(profile, master_key, master_salt)?;
        SrtpContext::from_session_keys(profile, keys.encryption_key(), keys.salt(), keys.auth_key())
    }

    /// A context for `profile` from session keys derived elsewhere, skipping the key
    /// derivation: the encryption key (16 bytes), the session salt (14 bytes for AES-CM, 12
    /// for GCM) and the authentication key (20 bytes for HMAC-SHA1; ignored for GCM, which
    /// has none). This is how the RFCs' packet-level test vectors are given.
    pub fn from_session_keys(
        profile: SrtpProfile,
        encryption_key: &[u8],
        salt: &[u8],
        auth_key: &[u8],
    ) -> Result<SrtpContext, SrtpError> {
        check_len("session key", encryption_key, profile.master_key_len())?;
        check_len("session salt", salt, profile.master_salt_len())?;
        let keys = match profile {
            SrtpProfile::AesCm128HmacSha1_80 => {
                check_len("session authentication key", auth_key, AUTH_KEY_LEN)?;
                // HMAC takes keys of any length: 20 bytes cannot fail.
                let mac = <HmacSha1 as Mac>::new_from_slice(auth_key).map_err(|_| {
                    SrtpError::KeyLength {
                        what: "session authentication key",
                        expected: AUTH_KEY_LEN,
                        got: auth_key.len(),
                    }
                })?;
                let mut s = Zeroizing::new([0u8; 14]);
                s.copy_from_slice(salt);
                Keys::Cm {
                    cipher: Aes128::new(encryption_key.into()),
                    mac,
                    salt: s,
                }
            }
            SrtpProfile::AeadAes128Gcm => {
                let mut s = Zeroizing::new([0u8; 12]);
                s.copy_from_slice(salt);
                Keys::Gcm {
                    aead: Aes128Gcm::new(encryption_key.into()),
                    salt: s,
                }
            }
        };
        Ok(SrtpContext {
            profile,
            keys,
            ssrc: None,
            initial_roc: 0,
            window: Window {
                highest: None,
                seen: 0,
            },
            stats: SrtpStats::default(),
        })
    }

    /// Fixes the SSRC this context serves; packets of any other SSRC are refused with
    /// [`SrtpError::UnknownSsrc`]. Without it, the context binds to the SSRC of the first
    /// packet it protects or accepts.
    pub fn with_ssrc(mut self, ssrc: u32) -> SrtpContext {
        self.ssrc = Some(ssrc);
        self
    }

    /// Sets the rollover counter assumed for the first packet (default 0): for a receiver
    /// that joins a stream whose sequence number has already wrapped, the sender's
    /// [`rollover_counter`](Self::rollover_counter) at the time. Has no effect once a packet
    /// has been protected or accepted.
    pub fn with_rollover_counter(mut self, roc: u32) -> SrtpContext {
        self.initial_roc = roc;
        self
    }

    /// The profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// The SSRC served, if fixed or bound yet.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// The current rollover counter: that of the highest index protected or accepted, or the
    /// starting one before any packet.
    pub fn rollover_counter(&self) -> u32 {
        match self.window.highest {
            Some(h) => (h >> 16) as u32,
            None => self.initial_roc,
        }
    }

    /// The highest packet index protected or accepted so far.
    pub fn highest_index(&self) -> Option<u64> {
        self.window.highest.map(|h| h as u64)
    }

    /// What the context has done, counted.
    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    /// Bytes protection adds to each packet (the profile's tag length).
    pub fn overhead(&self) -> usize {
        self.profile.tag_len()
    }

    /// Protects the RTP packet `packet`, writing the SRTP packet to the front of `out` and
    /// returning its length (`packet.len()` plus [`overhead`](Self::overhead)).
    pub fn protect(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        let needed = packet.len() + self.overhead();
        if out.len() < needed {
            return Err(SrtpError::OutputTooSmall {
                needed,
                got: out.len(),
            });
        }
        out[..packet.len()].copy_from_slice(packet);
        self.protect_in_place(out, packet.len())
    }

    /// Protects in place the RTP packet held in the first `len` bytes of `buf`, appending the
    /// tag; `buf` must have [`overhead`](Self::overhead) bytes to spare after the packet.
    /// Returns the SRTP packet's length.
    pub fn protect_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.overhead();
        if len > buf.len() {
            return Err(SrtpError::TooShort {
                needed: len,
                got: buf.len(),
            });
        }
        if buf.len() - len < tag_len {
            return Err(SrtpError::OutputTooSmall {
                needed: len + tag_len,
                got: buf.len(),
            });
        }
        let header = parse_header(buf, len)?;
        self.check_ssrc(header.ssrc)?;
        let (roc, index) = self.estimate(header.sequence);
        if let Some(highest) = self.window.highest
            && index <= highest
        {
            return Err(SrtpError::IndexNotAdvancing { index, highest });
        }
        if index < 0 {
            return Err(SrtpError::IndexNotAdvancing { index, highest: 0 });
        }
        let (packet, rest) = buf.split_at_mut(len);
        let tag = &mut rest[..tag_len];
        match &self.keys {
            Keys::Cm { cipher, mac, salt } => {
                let iv = cm_iv(salt, header.ssrc, index as u64);
                let mut ctr = cm_keystream(cipher, &iv);
                ctr.apply_keystream(&mut packet[header.len..]);
                let mac = cm_mac(mac, packet, roc);
                tag.copy_from_slice(&mac.finalize().into_bytes()[..tag_len]);
            }
            Keys::Gcm { aead, salt } => {
                let iv = gcm_iv(salt, header.ssrc, roc, header.sequence);
                let (aad, payload) = packet.split_at_mut(header.len);
                // Encryption fails only past GCM's 2³⁶-byte limit, far above MAX_PAYLOAD_LEN.
                let t = aead
                    .encrypt_in_place_detached(Nonce::from_slice(&iv), aad, payload)
                    .map_err(|_| SrtpError::TooLong {
                        max: MAX_PAYLOAD_LEN,
                        got: len - header.len,
                    })?;
                tag.copy_from_slice(&t);
            }
        }
        self.ssrc = Some(header.ssrc);
        self.window.accept(index);
        self.stats.protected += 1;
        Ok(len + tag_len)
    }

    /// Checks and decrypts the SRTP packet `packet`, writing the RTP packet to the front of
    /// `out` and returning its length (`packet.len()` less [`overhead`](Self::overhead)).
    /// Rejections are counted in [`stats`](Self::stats) by reason.
    pub fn unprotect(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        let needed = packet.len().saturating_sub(self.overhead());
        if out.len() < packet.len() {
            // The tag is checked in `out` too, so the whole packet must fit.
            return Err(SrtpError::OutputTooSmall {
                needed: needed.max(packet.len()),
                got: out.len(),
            });
        }
        out[..packet.len()].copy_from_slice(packet);
        self.unprotect_in_place(&mut out[..packet.len()])
    }

    /// Checks and decrypts in place the SRTP packet that fills `buf`, returning the length of
    /// the RTP packet now at its front (the tag's bytes after it are left as they were).
    /// Rejections are counted in [`stats`](Self::stats) by reason.
    pub fn unprotect_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let result = self.unprotect_inner(buf);
        match &result {
            Ok(_) => self.stats.accepted += 1,
            Err(SrtpError::BadTag) => self.stats.bad_tag += 1,
            Err(SrtpError::Replay { .. }) => self.stats.replay += 1,
            Err(SrtpError::UnknownSsrc { .. }) => self.stats.unknown_ssrc += 1,
            Err(_) => self.stats.malformed += 1,
        }
        result
    }

    fn unprotect_inner(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.overhead();
        let Some(len) = buf.len().checked_sub(tag_len) else {
            return Err(SrtpError::TooShort {
                needed: RTP_FIXED_HEADER + tag_len,
                got: buf.len(),
            });
        };
        let header = parse_header(buf, len).map_err(|e| match e {
            SrtpError::TooShort { needed, got } => SrtpError::TooShort {
                needed: needed + tag_len,
                got: got + tag_len,
            },
            other => other,
        })?;
        self.check_ssrc(header.ssrc)?;
        let (roc, index) = self.estimate(header.sequence);
        let (packet, tag) = buf.split_at_mut(len);
        match &self.keys {
            Keys::Cm { cipher, mac, salt } => {
                let mac = cm_mac(mac, packet, roc);
                if mac.verify_truncated_left(tag).is_err() {
                    return Err(SrtpError::BadTag);
                }
                if !self.window.is_new(index) {
                    return Err(SrtpError::Replay { index });
                }
                let iv = cm_iv(salt, header.ssrc, index as u64);
                let mut ctr = cm_keystream(cipher, &iv);
                ctr.apply_keystream(&mut packet[header.len..]);
            }
            Keys::Gcm { aead, salt } => {
                let iv = gcm_iv(salt, header.ssrc, roc, header.sequence);
                let (aad, payload) = packet.split_at_mut(header.len);
                aead.decrypt_in_place_detached(
                    Nonce::from_slice(&iv),
                    aad,
                    payload,
                    Tag::from_slice(tag),
                )
                .map_err(|_| SrtpError::BadTag)?;
                if !self.window.is_new(index) {
                    return Err(SrtpError::Replay { index });
                }
            }
        }
        self.ssrc = Some(header.ssrc);
        self.window.accept(index);
        Ok(len)
    }

    fn check_ssrc(&self, got: u32) -> Result<(), SrtpError> {
        match self.ssrc {
            Some(expected) if expected != got => Err(SrtpError::UnknownSsrc { expected, got }),
            _ => Ok(()),
        }
    }

    /// RFC 3711 §3.3.1: the rollover counter `v` a packet with sequence number `seq` most
    /// likely had, and its index `v · 2¹⁶ + seq`. `v` may come out as −1 (a packet from
    /// before the first rollover counter); the ROC used for authentication is then taken
    /// modulo 2³², which no real packet matches, and the negative index is never accepted.
    fn estimate(&self, seq: u16) -> (u32, i64) {
        let seq = i64::from(seq);
        let v = match self.window.highest {
            None => i64::from(self.initial_roc),
            Some(h) => {
                let roc = h >> 16;
                let s_l = h & 0xffff;
                if s_l < 32_768 {
                    if seq - s_l > 32_768 { roc - 1 } else { roc }
                } else if s_l - 32_768 > seq {
                    roc + 1
                } else {
                    roc
                }
            }
        };
        (v as u32, (v << 16) + seq)
    }
}

/// RFC 3711 §4.1.1: IV = (k_s · 2¹⁶) XOR (SSRC · 2⁶⁴) XOR (i · 2¹⁶).
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= s;
    }
    iv
}

/// The AES-CTR keystream of one packet: AES under the session key, counting up from `iv`.
fn cm_keystream(cipher: &Aes128, iv: &[u8; 16]) -> Aes128Ctr {
    Aes128Ctr::from_core(ctr::CtrCore::inner_iv_init(cipher.clone(), iv.into()))
}

/// RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt, 12 bytes.
fn gcm_iv(salt: &[u8; 12], ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    for (b, s) in iv.iter_mut().zip(salt.iter()) {
        *b ^= s;
    }
    iv
}

/// RFC 3711 §4.2: HMAC-SHA1 over the authenticated portion (header and encrypted payload)
/// followed by the rollover counter.
fn cm_mac(keyed: &HmacSha1, authenticated: &[u8], roc: u32) -> HmacSha1 {
    let mut mac = keyed.clone();
    mac.update(authenticated);
    mac.update(&roc.to_be_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_accepts_each_index_once_and_nothing_below_it() {
        let mut w = Window {
            highest: None,
            seen: 0,
        };
        assert!(w.is_new(1000));
        w.accept(1000);
        assert!(!w.is_new(1000));
        assert!(w.is_new(999));
        w.accept(1010);
        assert!(w.is_new(999));
        assert!(!w.is_new(1000));
        assert!(w.is_new(1010 - 127));
        assert!(!w.is_new(1010 - 128));
        w.accept(1010 + 500);
        assert!(!w.is_new(1010));
        assert!(!w.is_new(-1));
    }

    #[test]
    fn the_index_estimate_follows_rfc_3711_across_a_wrap() {
        let mut ctx =
            SrtpContext::new(SrtpProfile::default(), &[1; 16], &[2; 14]).expect("context");
        ctx.window.accept(65_530);
        assert_eq!(ctx.estimate(65_535), (0, 65_535));
        assert_eq!(ctx.estimate(3), (1, 65_536 + 3));
        ctx.window.accept(65_536 + 3);
        assert_eq!(ctx.estimate(65_534), (0, 65_534));
        assert_eq!(ctx.estimate(40_000), (0, 40_000));
        assert_eq!(ctx.estimate(30_000), (1, 65_536 + 30_000));
        let fresh = SrtpContext::new(SrtpProfile::default(), &[1; 16], &[2; 14])
            .expect("context")
            .with_rollover_counter(7);
        assert_eq!(fresh.estimate(9), (7, 7 * 65_536 + 9));
    }
}
