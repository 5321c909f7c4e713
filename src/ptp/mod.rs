//! PTPv2 (IEEE 1588-2008): how a follower learns the leader's clock.
//!
//! - [`wire`]: the message format, parse and emit (a checked view over bytes and an owned
//!   [`Message`]).
//! - [`auth`]: the AUTHENTICATION TLV of IEEE 1588-2019 §16.14 ([`PtpAuth`], HMAC-SHA256-128
//!   over the whole message) and the sequence check against replay ([`ReplayGuard`]). Off
//!   unless [`SlaveConfig::auth`] / [`MasterConfig::auth`] is set; then every message sent is
//!   signed, and every one received without a valid tag, or replayed, is dropped and counted
//!   in [`PtpStats::auth`].
//! - [`PtpMaster`]: the leader's side. It sends Sync + Follow_Up (two-step) and Announce to
//!   each follower on a schedule, answers Delay_Req, and grants a follower's request for a
//!   short burst of faster Syncs (a re-burst).
//! - [`PtpSlave`]: the follower's side. It answers each Sync with a Delay_Req, matches the
//!   replies by sequence id and hands out completed [`Exchange`](crate::clock::Exchange)s
//!   for a [`ClockEstimator`](crate::clock::ClockEstimator). When the estimator asks for a
//!   burst, [`PtpSlave::request_burst`] sends the master a request.
//!
//! A re-burst is asked for the standard way, with unicast negotiation (IEEE 1588 §16.1): a
//! Signaling message carrying REQUEST_UNICAST_TRANSMISSION for Sync, answered by one
//! carrying GRANT_UNICAST_TRANSMISSION with what the master grants (duration 0: refused).
//! A master that ignores the request, as linuxptp without unicast negotiation does, only
//! means no burst.
//!
//! Both are sans-IO: every input carries the time it happened on its own clock (leader time
//! for the master, local time for the slave), every output is a [`Transmit`] to send or a
//! deadline to wake at. They are generic over the address type `A` so that the same code
//! runs over UDP sockets and over the simulator. Event messages (Sync, Delay_Req) go to the
//! event port, the others (Signaling included) to the general port ([`wire::EVENT_PORT`], [`wire::GENERAL_PORT`]
//! for interop with linuxptp and AES67 devices).

pub mod auth;
mod master;
mod slave;
pub mod wire;

pub use auth::{
    AUTH_TLV_LEN, AuthRejection, AuthStats, ICV_LEN, PtpAuth, PtpKeys, ReplayGuard, SignError,
    TLV_AUTHENTICATION,
};

pub use master::{MasterConfig, PtpMaster};
pub use slave::{PtpSlave, SlaveConfig};
pub use wire::{
    AnnounceBody, Body, ClockIdentity, ClockQuality, Correction, EVENT_PORT, Flags, GENERAL_PORT,
    HEADER_LEN, Header, MAX_MESSAGE_LEN, MAX_SIGNALING_TLVS, MAX_TLVS, Message, MessageType,
    PORT_IDENTITY_LEN, PTP_VERSION, Packet, PortIdentity, PtpTimestamp, RejectReason,
    SignalingBody, SignalingTlv, TIMESTAMP_LEN, TLV_GRANT_UNICAST_TRANSMISSION, TLV_HEADER_LEN,
    TLV_REQUEST_UNICAST_TRANSMISSION, Tlv, Tlvs, UnicastGrant, UnicastRequest, WireError,
};

/// Why a received datagram was not used. Every one is also counted in [`PtpStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PtpError {
    /// The bytes are not a PTP message we understand.
    #[error("malformed PTP message: {0}")]
    Malformed(#[from] WireError),
    /// The message belongs to another PTP domain.
    #[error("PTP domain {got}, expected {expected}")]
    WrongDomain {
        /// Our domain.
        expected: u8,
        /// The message's.
        got: u8,
    },
    /// A valid message that this side of the protocol does not take (a Sync sent to a
    /// master, a Delay_Req to a slave).
    #[error("unexpected {message_type:?} message")]
    Unexpected {
        /// What came.
        message_type: MessageType,
    },
    /// From a master other than the one this slave follows.
    #[error("message from master {from:?}, following another")]
    ForeignMaster {
        /// Who sent it.
        from: PortIdentity,
    },
    /// A Delay_Resp meant for another port.
    #[error("Delay_Resp for port {requesting:?}, not ours")]
    NotForUs {
        /// The port it answers.
        requesting: PortIdentity,
    },
    /// A Signaling whose targetPortIdentity is another port (and not the wildcard).
    #[error("Signaling for port {target:?}, not ours")]
    WrongTarget {
        /// The port it is addressed to.
        target: PortIdentity,
    },
    /// A Signaling request from an address the master does not serve: not answered, so that
    /// the master cannot be made to send to anyone who asks.
    #[error("Signaling from {from:?} at an address not served")]
    NotServed {
        /// The sourcePortIdentity of the request.
        from: PortIdentity,
    },
    /// A Follow_Up or Delay_Resp whose sequence id matches nothing outstanding (late,
    /// duplicated, or forged).
    #[error("{message_type:?} with unknown sequence id {sequence_id}")]
    UnknownSequence {
        /// What came.
        message_type: MessageType,
        /// Its sequence id.
        sequence_id: u16,
    },
    /// Authentication is on ([`SlaveConfig::auth`], [`MasterConfig::auth`]) and the message
    /// has no valid AUTHENTICATION TLV, or repeats an old sequence id.
    #[error("unauthenticated PTP message: {0}")]
    Unauthenticated(#[from] AuthRejection),
}

/// Counters of a master's or slave's traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PtpStats {
    /// Datagrams handed to [`PtpMaster::handle_receive`] / [`PtpSlave::handle_receive`].
    pub received: u64,
    /// Datagrams handed out by `poll_transmit`.
    pub sent: u64,
    /// Malformed datagrams, by [`RejectReason::index`].
    pub malformed: [u64; RejectReason::COUNT],
    /// Messages of another domain.
    pub wrong_domain: u64,
    /// Messages this side does not take.
    pub unexpected: u64,
    /// Messages from a master other than the followed one.
    pub foreign_master: u64,
    /// Delay_Resps and Signaling messages for another port.
    pub not_for_us: u64,
    /// On a master, Signaling requests from addresses it does not serve (not answered).
    pub not_served: u64,
    /// On a master, requests for a Sync burst from served followers; on a slave, such
    /// requests sent.
    pub burst_requests: u64,
    /// On a master, re-bursts granted; on a slave, grants for Sync received with a
    /// non-zero duration.
    pub bursts_granted: u64,
    /// On a master, requests answered with a grant of duration 0 (inside the spacing, for
    /// a message type other than Sync, or for no time); on a slave, such grants received.
    pub bursts_refused: u64,
    /// Follow_Ups and Delay_Resps matching nothing outstanding.
    pub unknown_sequence: u64,
    /// Syncs whose Follow_Up never came, and Delay_Reqs never answered, in time.
    pub incomplete: u64,
    /// Exchanges completed: on a slave, exchanges handed to the estimator; on a master,
    /// Delay_Reqs answered.
    pub exchanges: u64,
    /// Messages dropped because the outgoing queue was full.
    pub dropped_queue_full: u64,
    /// With authentication on: messages dropped for want of it, by reason.
    pub auth: AuthStats,
}

impl PtpStats {
    /// Counts `e` and returns it.
    fn reject(&mut self, e: PtpError) -> PtpError {
        match e {
            PtpError::Malformed(w) => self.malformed[w.reason().index()] += 1,
            PtpError::WrongDomain { .. } => self.wrong_domain += 1,
            PtpError::Unexpected { .. } => self.unexpected += 1,
            PtpError::ForeignMaster { .. } => self.foreign_master += 1,
            PtpError::NotForUs { .. } | PtpError::WrongTarget { .. } => self.not_for_us += 1,
            PtpError::NotServed { .. } => self.not_served += 1,
            PtpError::UnknownSequence { .. } => self.unknown_sequence += 1,
            PtpError::Unauthenticated(a) => self.auth.count(a),
        }
        e
    }

    /// All malformed datagrams, whatever the reason.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}

/// Which UDP port a datagram goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PtpPort {
    /// Timestamped messages (Sync, Delay_Req): UDP 319 by default.
    Event,
    /// The rest (Follow_Up, Delay_Resp, Announce, Signaling): UDP 320 by default.
    General,
}

/// Identifies an event datagram whose real transmit time the driver should report back
/// (`handle_transmitted`), when it has kernel transmit timestamps.
///
/// The driver hands back the tag it was given, unchanged. A sequence id alone does not name
/// a datagram: a master keeps one Sync sequence per follower, so two followers' Syncs can
/// carry the same id, and a stamp lost for one must not complete the other's exchange.
/// `serial` tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxTag {
    /// Sync or Delay_Req.
    pub message_type: MessageType,
    /// The message's sequence id.
    pub sequence_id: u16,
    /// Which of its sender's tagged datagrams this is: counts up by one per datagram, so
    /// it is unique among those still waiting for a stamp.
    pub serial: u32,
}

/// A datagram to send: no allocation, the bytes are inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Destination.
    pub to: A,
    /// Event or general port.
    pub port: PtpPort,
    /// For event messages: the tag to report the transmit timestamp with.
    pub tag: Option<TxTag>,
    data: [u8; MAX_SIGNED_LEN],
    len: usize,
}

/// Length of the largest datagram a master or slave sends: the largest message with an
/// AUTHENTICATION TLV.
pub const MAX_SIGNED_LEN: usize = wire::MAX_MESSAGE_LEN + AUTH_TLV_LEN;

impl<A> Transmit<A> {
    /// The datagram carrying `msg`, signed with `auth` if given.
    pub(crate) fn new(to: A, msg: &Message, auth: Option<&PtpAuth>) -> Self {
        let mut data = [0u8; MAX_SIGNED_LEN];
        // Every message we build fits MAX_MESSAGE_LEN, and MAX_SIGNED_LEN leaves room for
        // the TLV, so neither emit nor sign can fail here.
        let mut len = msg.emit(&mut data).unwrap_or(0);
        if let Some(auth) = auth {
            len = auth.sign(&mut data, len).unwrap_or(0);
        }
        let kind = msg.body.message_type();
        let event = kind.is_event();
        Transmit {
            to,
            port: if event {
                PtpPort::Event
            } else {
                PtpPort::General
            },
            tag: event.then_some(TxTag {
                message_type: kind,
                sequence_id: msg.header.sequence_id,
                serial: 0,
            }),
            data,
            len,
        }
    }

    /// The datagram's bytes.
    pub fn payload(&self) -> &[u8] {
        &self.data[..self.len]
    }
}
