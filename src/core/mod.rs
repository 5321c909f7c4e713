//! The cores a follower and a leader are made of: sans-IO, driven by whoever owns the
//! sockets, the threads and the clock.
//!
//! A core takes every input with the time it happened (`handle_*`), and gives its outputs
//! when asked (`poll_*`): datagrams to send, the next time it must be woken, and audio to
//! play. It never reads a clock, sleeps or touches a socket. The [`node`](crate::node)
//! threads drive these over real sockets; the [`sim`](crate::sim) drives the very same
//! types in virtual time; a speaker project can drive them from its own event loop and
//! audio callback.
//!
//! - [`ClockCore`]: a PTP slave and a clock estimator, chosen through an
//!   [`EstimatorFactory`]: learns the leader's clock.
//! - [`FollowerCore`]: a whole follower. The clock, the receiver of the stream, the
//!   role's stages plus any extra ones ([`StageFactory`]), and the playout that steers
//!   the drift corrector; [`FollowerCore::render`] gives the audio of each DAC block.
//! - [`MasterCore`]: a PTP master and the peers it serves: the clock side of a leader.
//! - [`LeaderCore`]: a whole leader. The master, the RTP sender and the pacing of its
//!   media, the control sessions and the group they admit.
//! - [`PullRenderer`] and [`PullOutput`]: the audio for a host's audio callback, which
//!   asks for frames and says when they play (an I2S, ALSA or CoreAudio driver).

mod clock;
mod follower;
mod leader;
mod pull;

pub use clock::{ClockCore, EstimatorFactory, default_estimator};
pub use follower::{
    CoreError, CoreEvent, FollowerCore, FollowerCoreConfig, Rendered, StageFactory,
    receiver_config, role_chain,
};
pub use leader::{
    Channel, ConnId, Endpoint, GROUP_KEY_SWITCH, LeaderCore, LeaderCoreConfig, LeaderCoreEvent,
    LeaderCoreStats, LeaderError, LeaderMember, LeaderTransmit, MAX_MEDIA_BEHIND, MAX_TRIM,
    MasterCore, MediaChunk, PtpPeer, check_latency,
};
pub use pull::{
    CallbackTiming, Filled, PullConfig, PullError, PullMonitor, PullOutput, PullRenderer,
    PullStats, Rejection,
};
