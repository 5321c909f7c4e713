//! Nodes: the [`Leader`] and [`Follower`] a speaker project embeds, assembled from the
//! sans-IO core on real UDP sockets, TCP control connections and threads.
//!
//! A leader serves its clock over PTP ([`ClockLeader`]), streams its [`AudioSource`] over
//! RTP to every joined follower and to static destinations, and accepts followers on a TCP
//! control port after they prove the household key ([`crate::control`]). A follower joins
//! with a role and its capabilities, learns the leader's clock ([`ClockFollower`]), receives
//! the stream, and plays it through its role's stage chain and the drift corrector into its
//! [`Output`], emitting each sample at the leader-clock instant it was meant for.
//!
//! Threads per node:
//! - leader: the PTP master, the media pacer, the control acceptor, one per control session;
//! - follower: the PTP slave, the media receiver, the audio output, the control session
//!   (which reconnects by itself when the leader goes away).
//!
//! Every node reads time through one [`NodeClock`]; [`LocalClock::Drifting`] gives each
//! follower on one machine a crystal of its own for tests and the demo.

mod clock;
#[cfg(feature = "cpal")]
mod device;
mod error;
mod file_source;
mod follower;
mod follower_io;
mod leader;
mod leader_media;
#[cfg(test)]
mod multicast_test;
mod ptp;
#[cfg(test)]
mod ptp_interop;
#[cfg(test)]
mod simnet;
mod source;

pub use crate::net::NetError;
pub use crate::playout::sink::SharedSink;
pub use clock::{Clock, CustomClock, LocalClock, MAX_SLEEP, NodeClock};
pub use error::NodeError;
pub use file_source::{
    FLAC_BLOCK_FRAMES, FileDecoder, FileEnd, FileError, FileMonitor, FileSource, FlacWriteError,
    FlacWriter,
};
pub use follower::{Follower, FollowerConfig, FollowerReport, Output, SessionInfo};
pub use leader::{
    DEFAULT_LATENCY, FollowerInfo, Leader, LeaderConfig, LeaderStats, MulticastStream,
};
pub use ptp::{
    ClockFollower, ClockFollowerConfig, ClockLeader, ClockLeaderConfig, PTP_MULTICAST, PtpPeer,
    PtpSocketConfig,
};
pub use source::{
    AudioSource, PushHandle, PushSource, RawS16Source, SourceError, TestSource, WavSource,
};

/// Starts a named node thread; a failure to start is [`NodeError::Thread`].
pub(crate) fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, NodeError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(NodeError::Thread)
}
