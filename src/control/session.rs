//! The two ends of a control session as state machines: bytes in, frames and events out.
//!
//! A [`LeaderSession`] and a [`FollowerSession`] run the handshake of the module docs and
//! then carry the session's messages. Neither touches a socket, a thread or a clock, and
//! neither draws a random number: the nonces are inputs, so a handshake is deterministic in
//! a test. The caller moves bytes:
//!
//! 1. feed whatever arrived on the connection, in order and in pieces of any size, to
//!    `handle_input`;
//! 2. send what [`poll_transmit`](LeaderSession::poll_transmit) returns, until it returns
//!    `None`;
//! 3. act on what [`poll_event`](LeaderSession::poll_event) returns, until it returns
//!    `None`;
//! 4. close the connection once `is_closed` says so (after sending what was left: a
//!    refusal travels before the close).
//!
//! Messages the caller sends on a joined session (`send`) are queued for `poll_transmit`
//! the same way. A session never buffers more than one frame of input beyond what the
//! caller hands it at once.

use std::collections::VecDeque;

use super::admission::Admission;
use super::auth::HouseholdKey;
use super::error::ControlError;
use super::keys::End;
use super::keys::SessionKeys;
use super::message::{
    Capabilities, FollowerStatus, Message, Nonce, PeerPorts, Refusal, StreamParams,
};
use super::role::Role;
use super::seal::FrameSeal;
use super::wire::decode_frame;
use crate::time::Nanos;

/// What a [`LeaderSession`] tells the leader.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LeaderEvent {
    /// The follower proved the key and the rules admitted it: start sending it the stream
    /// and the clock. Its Welcome is queued.
    Joined {
        /// The session id the [`Admission`] gave it.
        id: u64,
        /// What it can play.
        caps: Capabilities,
        /// Its role.
        role: Role,
        /// Where it receives the stream and the clock.
        ports: PeerPorts,
    },
    /// The follower was refused, or sent what does not decode after joining. The refusal
    /// is queued; send it, then close.
    Refused(Refusal),
    /// The follower answered a status query.
    Status {
        /// The query's id.
        id: u32,
        /// Its status.
        status: FollowerStatus,
    },
    /// The follower left. Close.
    Left,
}

#[derive(Debug)]
enum LeaderState {
    AwaitHello,
    AwaitAuth {
        hello: Vec<u8>,
        caps: Capabilities,
        role: Role,
        nonce: Nonce,
        ports: PeerPorts,
    },
    Joined {
        id: u64,
    },
    Closed,
}

/// The leader's end of one control connection. See the module docs for the call order.
///
/// The [`Admission`] passed to [`handle_input`](Self::handle_input) decides the group, the
/// key and who is admitted; a leader shares one among all its sessions.
#[derive(Debug)]
pub struct LeaderSession {
    nonce: Nonce,
    state: LeaderState,
    keys: Option<SessionKeys>,
    /// Seals and opens every frame after the Welcome.
    seal: Option<FrameSeal>,
    input: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<LeaderEvent>,
}

impl LeaderSession {
    /// A session waiting for a follower's Hello; `nonce` is the leader's fresh nonce for
    /// this connection (see [`new_nonce`](super::new_nonce)).
    pub fn new(nonce: Nonce) -> LeaderSession {
        LeaderSession {
            nonce,
            state: LeaderState::AwaitHello,
            keys: None,
            seal: None,
            input: Vec::new(),
            output: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// The follower's session id once it has joined.
    pub fn id(&self) -> Option<u64> {
        match self.state {
            LeaderState::Joined { id } => Some(id),
            _ => None,
        }
    }

    /// Whether the session is over: refused, left, or broken. Input is then ignored.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, LeaderState::Closed)
    }

    /// The session's keys, once the follower has joined (the same as the follower's
    /// [`FollowerSession::keys`]); they stay after the session closes.
    pub fn keys(&self) -> Option<&SessionKeys> {
        self.keys.as_ref()
    }

    /// Takes bytes received from the follower, and runs every whole frame among them.
    pub fn handle_input(&mut self, bytes: &[u8], admission: &mut Admission) {
        if self.is_closed() {
            return;
        }
        self.input.extend_from_slice(bytes);
        let mut used = 0;
        while !self.is_closed() {
            let next = match self.seal.as_mut() {
                Some(seal) => seal.open(&self.input[used..]),
                None => decode_frame(&self.input[used..]),
            };
            match next {
                Ok(None) => break,
                Ok(Some((msg, len))) => {
                    // (A Hello's bytes are what the follower's proof covers.)
                    let hello = matches!(msg, Message::Hello { .. })
                        .then(|| self.input[used..used + len].to_vec());
                    used += len;
                    self.handle_frame(msg, hello, admission);
                }
                Err(e) => {
                    // Nothing after a frame that does not decode can be framed again.
                    self.refuse(e.refusal().unwrap_or(Refusal::Malformed));
                }
            }
        }
        if self.is_closed() {
            self.input = Vec::new();
        } else {
            self.input.drain(..used);
        }
    }

    /// Queues `msg` for a joined follower (volume, role, stream, queries...).
    pub fn send(&mut self, msg: &Message) -> Result<(), SessionError> {
        match self.state {
            LeaderState::Joined { .. } => Ok(self.encode(msg)?),
            _ => Err(SessionError::NotJoined),
        }
    }

    /// The bytes to send to the follower next, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    /// The next thing the leader must act on, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<LeaderEvent> {
        self.events.pop_front()
    }

    /// Queues `msg`: sealed once the follower is welcomed, plain before.
    fn encode(&mut self, msg: &Message) -> Result<(), ControlError> {
        match self.seal.as_mut() {
            Some(seal) => seal.seal(msg, &mut self.output),
            None => msg.encode(&mut self.output),
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        let _ = self.encode(&Message::Refused {
            refusal: refusal.clone(),
        });
        self.events.push_back(LeaderEvent::Refused(refusal));
        self.state = LeaderState::Closed;
    }

    fn handle_frame(&mut self, msg: Message, hello: Option<Vec<u8>>, admission: &mut Admission) {
        let state = std::mem::replace(&mut self.state, LeaderState::Closed);
        self.state = match (state, msg) {
            (
                LeaderState::AwaitHello,
                Message::Hello {
                    caps,
                    role,
                    group,
                    nonce,
                    ports,
                },
            ) => {
                if let Err(r) = admission.check_group(&group) {
                    return self.refuse(r);
                }
                let _ = Message::Challenge { nonce: self.nonce }.encode(&mut self.output);
                LeaderState::AwaitAuth {
                    hello: hello.unwrap_or_default(),
                    caps,
                    role,
                    nonce,
                    ports,
                }
            }
            (
                LeaderState::AwaitAuth {
                    hello,
                    caps,
                    role,
                    nonce,
                    ports,
                },
                Message::Auth { mac },
            ) => {
                let key = admission.key();
                if !key.verify_follower(&self.nonce, &nonce, &hello, &mac) {
                    return self.refuse(Refusal::WrongKey);
                }
                let id = match admission.admit(&nonce, &caps, role) {
                    Ok(id) => id,
                    Err(r) => return self.refuse(r),
                };
                let welcome = Message::Welcome {
                    session: id,
                    group: admission.group().to_owned(),
                    role,
                    stream: admission.stream().clone(),
                    volume: 1.0,
                    muted: false,
                    trim: Nanos::ZERO,
                    mac: admission.key().leader_proof(&self.nonce, &nonce, id),
                };
                if welcome.encode(&mut self.output).is_err() {
                    admission.remove(id);
                    return self.refuse(Refusal::Malformed);
                }
                let keys = SessionKeys::derive(admission.key(), &self.nonce, &nonce, id);
                // The Welcome went plain; everything after it is sealed.
                self.seal = Some(FrameSeal::new(&keys, End::Leader));
                self.keys = Some(keys);
                self.events.push_back(LeaderEvent::Joined {
                    id,
                    caps,
                    role,
                    ports,
                });
                LeaderState::Joined { id }
            }
            (LeaderState::Joined { id }, msg) => match msg {
                Message::Status { id: query, status } => {
                    self.events
                        .push_back(LeaderEvent::Status { id: query, status });
                    LeaderState::Joined { id }
                }
                Message::Ping { id: ping } => {
                    let _ = self.encode(&Message::Pong { id: ping });
                    LeaderState::Joined { id }
                }
                Message::Leave => {
                    self.events.push_back(LeaderEvent::Left);
                    LeaderState::Closed
                }
                // Anything else from a follower has no meaning to a leader; it is ignored so
                // that a newer follower's messages do not end the session.
                _ => LeaderState::Joined { id },
            },
            // A handshake message out of turn.
            (_, _) => return self.refuse(Refusal::Malformed),
        };
    }
}

/// Why a [`FollowerSession`] failed, or a message could not be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The leader refused the follower.
    #[error("the leader refused: {0}")]
    Refused(Refusal),
    /// The leader's Welcome did not carry a valid proof of the household key: not our
    /// leader, or a man in the middle.
    #[error("the leader did not prove the household key")]
    LeaderNotAuthenticated,
    /// A message came that the handshake does not expect at that point.
    #[error("unexpected {what} during the handshake")]
    Unexpected {
        /// Which message.
        what: &'static str,
    },
    /// A frame did not decode, or a message could not be encoded.
    #[error(transparent)]
    Frame(#[from] ControlError),
    /// The session has not joined yet, or is over: nothing can be sent on it.
    #[error("the session is not joined")]
    NotJoined,
}

/// What the leader tells a joined follower to do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Set the output volume (already clamped to 0..=1).
    SetVolume(f32),
    /// Mute or unmute.
    SetMute(bool),
    /// Set the delay trim.
    SetTrim(Nanos),
    /// Play another part of the stream.
    SetRole(Role),
    /// Receive another stream.
    Stream(StreamParams),
    /// Stop playing; keep the session.
    Pause,
    /// Play again.
    Resume,
    /// Answer with [`FollowerSession::send_status`] and this id.
    StatusQuery(u32),
    /// The multicast stream's key for `epoch`, sealed for this session: open it with the
    /// session's [`SessionKeys::open_group_key`](super::SessionKeys::open_group_key).
    GroupKey {
        /// Its epoch.
        epoch: u32,
        /// The key, sealed.
        sealed: [u8; super::keys::SEALED_GROUP_KEY_LEN],
    },
}

/// The session a leader welcomed a follower into.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    /// The session id.
    pub session: u64,
    /// The group joined.
    pub group: String,
    /// The role granted.
    pub role: Role,
    /// The stream to receive.
    pub stream: StreamParams,
    /// Initial volume.
    pub volume: f32,
    /// Initial mute state.
    pub muted: bool,
    /// Initial delay trim.
    pub trim: Nanos,
}

/// What a [`FollowerSession`] tells the follower.
#[derive(Debug)]
#[non_exhaustive]
pub enum FollowerEvent {
    /// Admitted by a leader that proved the key.
    Joined(Welcome),
    /// A command from the leader.
    Command(Command),
    /// The session failed (refused, an unauthenticated leader, a broken stream). Close.
    Failed(SessionError),
}

#[derive(Debug)]
enum FollowerState {
    AwaitChallenge,
    AwaitWelcome { leader_nonce: Nonce },
    Joined,
    Closed,
}

/// What a follower says about itself in its Hello.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// What it can play.
    pub caps: Capabilities,
    /// The role it asks for.
    pub role: Role,
    /// The group it asks to join (empty: whatever the leader leads).
    pub group: String,
    /// Where it receives the stream and the clock.
    pub ports: PeerPorts,
}

/// The follower's end of one control connection. See the module docs for the call order.
/// Its Hello is queued at construction.
#[derive(Debug)]
pub struct FollowerSession {
    key: HouseholdKey,
    nonce: Nonce,
    keys: Option<SessionKeys>,
    /// Seals and opens every frame after the Welcome.
    seal: Option<FrameSeal>,
    hello: Vec<u8>,
    state: FollowerState,
    input: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<FollowerEvent>,
}

impl FollowerSession {
    /// A session that says `hello`, proves `key`, and uses `nonce` (fresh, see
    /// [`new_nonce`](super::new_nonce)). Fails only if the Hello does not encode (a name or
    /// group longer than its cap).
    pub fn new(
        hello: Hello,
        key: HouseholdKey,
        nonce: Nonce,
    ) -> Result<FollowerSession, SessionError> {
        let mut frame = Vec::new();
        Message::Hello {
            caps: hello.caps,
            role: hello.role,
            group: hello.group,
            nonce,
            ports: hello.ports,
        }
        .encode(&mut frame)?;
        Ok(FollowerSession {
            key,
            nonce,
            keys: None,
            seal: None,
            output: frame.clone(),
            hello: frame,
            state: FollowerState::AwaitChallenge,
            input: Vec::new(),
            events: VecDeque::new(),
        })
    }

    /// Whether the leader welcomed it (and the session has not failed since).
    pub fn is_joined(&self) -> bool {
        matches!(self.state, FollowerState::Joined)
    }

    /// Whether the session is over. Input is then ignored.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, FollowerState::Closed)
    }

    /// The session's keys, once the leader has welcomed it and proved the household key
    /// (the same as the leader's [`LeaderSession::keys`]); they stay after the session
    /// closes.
    pub fn keys(&self) -> Option<&SessionKeys> {
        self.keys.as_ref()
    }

    /// Takes bytes received from the leader, and runs every whole frame among them.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.input.extend_from_slice(bytes);
        let mut used = 0;
        while !self.is_closed() {
            let next = match self.seal.as_mut() {
                Some(seal) => seal.open(&self.input[used..]),
                None => decode_frame(&self.input[used..]),
            };
            match next {
                Ok(None) => break,
                Ok(Some((msg, len))) => {
                    used += len;
                    self.handle_message(msg);
                }
                Err(e) => self.fail(SessionError::Frame(e)),
            }
        }
        if self.is_closed() {
            self.input = Vec::new();
        } else {
            self.input.drain(..used);
        }
    }

    /// Queues the answer to [`Command::StatusQuery`] `id`.
    pub fn send_status(&mut self, id: u32, status: FollowerStatus) -> Result<(), SessionError> {
        self.send(&Message::Status { id, status })
    }

    /// Queues a Leave; the session is over once it is sent.
    pub fn leave(&mut self) -> Result<(), SessionError> {
        self.send(&Message::Leave)?;
        self.state = FollowerState::Closed;
        Ok(())
    }

    fn send(&mut self, msg: &Message) -> Result<(), SessionError> {
        match self.state {
            FollowerState::Joined => match self.seal.as_mut() {
                Some(seal) => Ok(seal.seal(msg, &mut self.output)?),
                None => Err(SessionError::NotJoined),
            },
            _ => Err(SessionError::NotJoined),
        }
    }

    /// The bytes to send to the leader next, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    /// The next thing the follower must act on, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<FollowerEvent> {
        self.events.pop_front()
    }

    fn fail(&mut self, e: SessionError) {
        self.events.push_back(FollowerEvent::Failed(e));
        self.state = FollowerState::Closed;
    }

    fn handle_message(&mut self, msg: Message) {
        let state = std::mem::replace(&mut self.state, FollowerState::Closed);
        self.state = match (state, msg) {
            (_, Message::Refused { refusal }) => return self.fail(SessionError::Refused(refusal)),
            (FollowerState::AwaitChallenge, Message::Challenge { nonce }) => {
                let mac = self.key.follower_proof(&nonce, &self.nonce, &self.hello);
                let _ = Message::Auth { mac }.encode(&mut self.output);
                FollowerState::AwaitWelcome {
                    leader_nonce: nonce,
                }
            }
            (
                FollowerState::AwaitWelcome { leader_nonce },
                Message::Welcome {
                    session,
                    group,
                    role,
                    stream,
                    volume,
                    muted,
                    trim,
                    mac,
                },
            ) => {
                if !self
                    .key
                    .verify_leader(&leader_nonce, &self.nonce, session, &mac)
                {
                    return self.fail(SessionError::LeaderNotAuthenticated);
                }
                let keys = SessionKeys::derive(&self.key, &leader_nonce, &self.nonce, session);
                // Everything after the Welcome is sealed, both ways.
                self.seal = Some(FrameSeal::new(&keys, End::Follower));
                self.keys = Some(keys);
                self.events.push_back(FollowerEvent::Joined(Welcome {
                    session,
                    group,
                    role,
                    stream,
                    volume,
                    muted,
                    trim,
                }));
                FollowerState::Joined
            }
            (FollowerState::Joined, msg) => {
                let command = match msg {
                    Message::SetVolume { volume } => Some(Command::SetVolume(if volume.is_nan() {
                        0.0
                    } else {
                        volume.clamp(0.0, 1.0)
                    })),
                    Message::SetMute { muted } => Some(Command::SetMute(muted)),
                    Message::SetTrim { trim } => Some(Command::SetTrim(trim)),
                    Message::SetRole { role } => Some(Command::SetRole(role)),
                    Message::Stream { stream } => Some(Command::Stream(stream)),
                    Message::Pause => Some(Command::Pause),
                    Message::Resume => Some(Command::Resume),
                    Message::StatusQuery { id } => Some(Command::StatusQuery(id)),
                    Message::GroupKey { epoch, sealed } => {
                        Some(Command::GroupKey { epoch, sealed })
                    }
                    Message::Ping { id } => {
                        if let Some(seal) = self.seal.as_mut() {
                            let _ = seal.seal(&Message::Pong { id }, &mut self.output);
                        }
                        None
                    }
                    // The connection's end is what ends a session: a Leave from the leader,
                    // and handshake messages out of turn, are ignored.
                    _ => None,
                };
                if let Some(c) = command {
                    self.events.push_back(FollowerEvent::Command(c));
                }
                FollowerState::Joined
            }
            (FollowerState::AwaitWelcome { .. }, Message::Challenge { .. })
            | (FollowerState::AwaitChallenge, Message::Welcome { .. }) => {
                return self.fail(SessionError::Unexpected {
                    what: "a Welcome or Challenge out of turn",
                });
            }
            (_, _) => {
                return self.fail(SessionError::Unexpected { what: "message" });
            }
        };
    }
}
