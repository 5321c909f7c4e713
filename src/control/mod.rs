//! The TCP control channel: how a leader admits followers and steers them.
//!
//! Clock sync (PTP) and audio (RTP) run over UDP and carry no authority. The control channel
//! is the one place where a follower is admitted into a household, is told which stream to
//! play and on which ports, and is then steered (volume, mute, trim, role, pause) and
//! polled for its status. Because whoever speaks on it can make a speaker play anything, both
//! ends prove they hold the household key before anything else is accepted.
//!
//! The module is sans-IO: [`Message::encode`] and [`decode_frame`] work on byte buffers, and
//! [`read_message`] / [`write_message`] are thin blocking helpers over any
//! [`std::io::Read`] / [`std::io::Write`]. Sockets, threads and timeouts belong to the caller.
//!
//! - [`wire`]: framing and messages.
//! - [`auth`]: the household key, the HMAC proofs both sides exchange, and a replay guard.
//! - [`session`]: the handshake and the session of each end as a state machine
//!   ([`LeaderSession`], [`FollowerSession`]): bytes and nonces in, frames and events out.
//!   The nodes only move bytes between these and their sockets.
//! - [`admission`]: the rules a leader admits by (group, key, replay, what the speaker can
//!   play, one holder per half of a stereo pair, a pair of one model), written once and
//!   kept by an [`Admission`] that every session of a leader shares.
//!
//! # Session sequence
//!
//! 1. The follower connects and sends [`Message::Hello`]: its capabilities, the [`Role`] and
//!    group it wants, and a fresh follower nonce ([`new_nonce`]). It keeps the exact bytes of
//!    the Hello frame it sent.
//! 2. The leader checks the protocol version (in the frame header) and the group, and replies
//!    [`Message::Challenge`] with a fresh leader nonce.
//! 3. The follower sends [`Message::Auth`] with
//!    [`HouseholdKey::follower_proof`]`(leader_nonce, follower_nonce, hello_frame)`. Binding
//!    the Hello bytes means a man in the middle cannot swap the model, role or group.
//! 4. The leader verifies the proof; on failure it sends [`Refusal::WrongKey`] and closes.
//!    It then checks the follower nonce against its [`ReplayGuard`], applies the role and
//!    stereo-pair rules, and sends [`Message::Welcome`] with
//!    [`HouseholdKey::leader_proof`]`(leader_nonce, follower_nonce, session)`. Any refusal
//!    travels as [`Message::Refused`], after which the leader closes the connection.
//! 5. The follower verifies the leader's proof and closes if it fails, so a fake leader that
//!    does not hold the key cannot inject control messages.
//!
//! After the Welcome either side may send the control messages: the leader sends
//! `SetVolume`, `SetMute`, `SetTrim`, `SetRole`, `Stream`, `Pause`, `Resume` and
//! `StatusQuery`; the follower answers `StatusQuery` with `Status`; both may send `Ping`
//! (answered with `Pong` carrying the same id) and `Leave`. Each of these frames is sealed
//! with a tag under the session's control key for its direction ([`seal`]), so that nobody
//! who can inject bytes into the connection, but does not hold the household key, can steer
//! a speaker after the handshake.
//!
//! # Framing
//!
//! Every message is one frame: an 8-byte header, then the payload.
//!
//! | offset | field                                          |
//! |--------|------------------------------------------------|
//! | 0..2   | magic `b"LS"`                                  |
//! | 2      | protocol version ([`PROTOCOL_VERSION`])        |
//! | 3      | message type code (table in [`wire`])          |
//! | 4..8   | payload length, u32 big-endian                 |
//!
//! A header announcing more than [`MAX_PAYLOAD_LEN`] bytes is refused before any payload
//! byte is read, so a hostile peer cannot make a receiver allocate. Field encodings are
//! described in [`wire`].

pub mod admission;
pub mod auth;
mod error;
mod field;
pub mod keys;
mod message;
mod role;
pub mod seal;
pub mod session;
pub mod wire;

pub use admission::{Admission, AdmissionError, Member, check_roles};
pub use auth::{HouseholdKey, KeyError, ReplayGuard, new_nonce};
pub use error::ControlError;
pub use keys::{
    End, GROUP_KEY_LEN, GroupKey, GroupKeyError, GroupSecret, KeyLengthError, KeyPurpose,
    SEALED_GROUP_KEY_LEN, SessionKeys,
};
pub use message::{
    Capabilities, CodecId, FollowerStatus, Mac, Message, Nonce, PeerPorts, Protection, Refusal,
    Rejections, StreamParams, TimestampKind,
};
pub use role::{Role, UnknownRole};
pub use seal::FRAME_TAG_LEN;
pub use session::{
    Command, FollowerEvent, FollowerSession, Hello, LeaderEvent, LeaderSession, SessionError,
    Welcome,
};
pub use wire::{
    HEADER_LEN, MAX_PAYLOAD_LEN, PROTOCOL_VERSION, decode_frame, read_message, write_message,
};
