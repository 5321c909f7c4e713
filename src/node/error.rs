//! The nodes' error type: what a leader or follower reports to the program that runs it.

use std::net::SocketAddr;

use crate::control::{ControlError, Refusal};
use crate::core::{CoreError, LeaderError};
use crate::media::CodecError;
use crate::media::sender::SenderError;
use crate::net::NetError;
use crate::node::source::SourceError;
use crate::playout::sink::SinkError;

/// Why a node could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A port the node needs is taken.
    #[error("address {addr} is already in use (is another leader or follower running?)")]
    AddrInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// A UDP socket could not be set up or used.
    #[error("network: {0}")]
    Network(#[source] NetError),
    /// A socket outside the UDP driver (the control port, the RTCP socket) could not be
    /// set up.
    #[error("{what}: {source}")]
    Socket {
        /// Which socket, and what was being done with it.
        what: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The system's random source (for nonces, SSRCs and clock identities) failed.
    #[error("the system's random source failed: {0}")]
    Random(#[source] std::io::Error),
    /// The leader's control port did not answer.
    #[error("leader {addr} unreachable: {source}")]
    Unreachable {
        /// The control address tried.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The leader refused to let this follower join.
    #[error("the leader refused to let us join: {0}")]
    Refused(Refusal),
    /// The leader did not prove it holds the household key; nothing it says is trusted.
    #[error("the leader at {addr} could not prove the household key")]
    LeaderNotAuthenticated {
        /// The control address.
        addr: SocketAddr,
    },
    /// Two speakers of different models cannot form a stereo pair.
    #[error("a stereo pair needs two speakers of the same model: {model} and {partner_model}")]
    ModelMismatch {
        /// One speaker's model.
        model: String,
        /// The other's.
        partner_model: String,
    },
    /// No joined follower has this id.
    #[error("no follower with id {id}")]
    UnknownFollower {
        /// The id asked for.
        id: u64,
    },
    /// The control connection failed or carried something wrong.
    #[error("control connection: {0}")]
    Control(#[from] ControlError),
    /// The leader's input could not be opened.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The follower's output could not be written.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The sound card could not be found, opened or started.
    #[error("sound card: {reason}")]
    Device {
        /// What went wrong, with what the device offers where that helps.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid {field}: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The stream's format is not one the media path carries.
    #[error("stream format: {0}")]
    Format(#[from] CodecError),
    /// The RTP sender refused its settings or could not encode.
    #[error("RTP sender: {0}")]
    Sender(#[from] SenderError),
    /// The leader's core refused an operation (a control message it could not send, a
    /// datagram it could not take).
    #[error("leader: {0}")]
    Leader(#[source] LeaderError),
    /// The stream the leader announced cannot be played here.
    #[error("the leader's stream: {0}")]
    Stream(#[from] CoreError),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl NodeError {
    pub(crate) fn from_net(e: NetError) -> NodeError {
        match e {
            NetError::AddrInUse { addr } => NodeError::AddrInUse { addr },
            other => NodeError::Network(other),
        }
    }
}
