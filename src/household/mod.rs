//! The household: the speakers of one home, the named groups they play in, their stereo
//! pairs and subwoofers, as data; the state directory where each speaker keeps its share of
//! it across restarts; and the control API's transport.
//!
//! - [`model`]: the household as versioned, replicable data with the operations a control
//!   API offers (groups, members, pairs, subwoofers, volumes) and their typed errors; a
//!   deterministic merge of two replicas; the choice of a group's leader. Sans-IO.
//! - [`state`]: a speaker's state directory (`--state DIR`): its identity, settings and
//!   household record in one JSON file, written atomically and read back after any crash.
//! - [`discovery`]: speakers advertise themselves with mDNS/DNS-SD ([`Advertiser`]) and
//!   list each other as they come and go ([`Browser`]), on the interfaces they are given
//!   and no other.
//! - [`rpc`]: the control API's transport, JSON-RPC 2.0 over lines of a TCP connection,
//!   authenticated by the household key before anything else.
//! - [`rpc_tcp`]: the same on real sockets: a speaker's listener, an app's blocking
//!   connection.
//! - [`speaker`]: [`SpeakerNode`], one speaker as a long-running node: idle, leading or
//!   following as the household says, with its state directory, its control API's methods,
//!   discovery and its peers.
//!
//! `docs/household.md` describes discovery, the model, the state directory and the speaker
//! node for users; `docs/control-api.md` the control API.

pub mod discovery;
pub mod model;
pub mod rpc;
pub mod rpc_tcp;
pub mod speaker;
pub mod state;

pub use discovery::{
    Advertiser, Browser, DiscoveryCounters, DiscoveryError, DiscoveryEvent, GroupInfo, IgnoredKind,
    PlayState, SERVICE_TYPE, SpeakerInfo, SpeakerRecord, TxtError,
};
pub use model::{
    BadId, Conflict, Edit, FORMAT, Group, GroupId, Household, HouseholdError, Layout, LeaderClaim,
    LeaderObservation, LeaderTracker, Lost, Member, MergeReport, Pair, RecordRef, Settings,
    Speaker, SpeakerId, Stamp, SubLink, Unit, Version, Volume, merge,
};
pub use rpc::{ClientEvent, RpcClient, RpcError, RpcHandler, RpcServer, RpcStats};
pub use rpc_tcp::{RpcCallError, RpcConnection, RpcListener, SharedHandler};
pub use speaker::{SpeakerConfig, SpeakerError, SpeakerNode};
pub use state::{Opened, SpeakerState, StateDir, StateError};
