//! lockstep keeps many speakers playing one stream in step: whole-home multi-room music,
//! stereo pairs, a subwoofer, over an ordinary LAN or Wi-Fi.
//!
//! A leader timestamps audio against its clock and sends it over RTP. Each follower learns
//! the leader's clock with a PTPv2 exchange (offset and rate), runs the audio through its
//! role's stages and a drift corrector, and plays every sample at the leader-clock instant
//! it was meant for.
//!
//! # Layers
//!
//! From the wire up: a layer builds on the ones listed before it (`ptp` and `clock` share
//! the exchange and port types), and [`node`] and [`sim`] are the two drivers of the cores.
//!
//! | layer | what it holds | does I/O |
//! |---|---|---|
//! | [`time`] | local and leader instants, signed spans, media time; integer nanoseconds | no |
//! | [`ptp`] | PTPv2 wire format, a two-step master and slave | no |
//! | [`clock`] | estimators of the leader's clock behind [`clock::ClockEstimator`] | no |
//! | [`media`] | codecs, the RTP sender and receiver, jitter buffer, SDP, RTCP | no |
//! | [`playout`] | what runs per block: stages, the drift corrector, its servo, the DAC timeline, sinks | no |
//! | [`control`] | the control channel's messages and its handshake and admission as sessions | no |
//! | [`core`] | [`core::FollowerCore`] and [`core::LeaderCore`]: a whole follower and a whole leader, sans-IO; [`core::PullOutput`] for an audio callback | no |
//! | [`node`] | [`node::Leader`] and [`node::Follower`]: threads that drive the cores over sockets | yes |
//! | [`measure`] | measurement from outside: the sync meter, capture files, pairwise skew, THD+N, plots | reads and writes files |
//! | [`sim`] | a seeded simulator of clocks, links and events that drives the same cores in virtual time | no (virtual time) |
//! | [`net`] | [`net::NetNs`]: throwaway network namespaces, bridges and veth pairs for tests and demos (root and iproute2) | yes |
//! | [`relay`] | a seeded UDP relay that puts [`sim`]'s links between real nodes on loopback | yes |
//! | [`household`] | what a home's speakers share: the household model and its merge, a speaker's state directory, discovery over mDNS, the JSON-RPC control API, the speaker node | the model and the API's sessions: no; the state directory, discovery, the API's listener and the speaker node: yes |
//!
//! # The sans-IO promise
//!
//! Nothing below [`node`] reads a clock, sleeps, spawns a thread or touches a socket. Every
//! input carries the time it happened (`handle_*`), and every output is asked for
//! (`poll_*`: a datagram to send, the next deadline, audio to play). So the simulator runs
//! the code that ships, deterministically, and a speaker project can drive a follower from
//! its own event loop and its own audio callback. After any `handle_*` call, drain every
//! `poll_*` until it returns `None`.
//!
//! # A follower with a sink of your own
//!
//! A [`node::Follower`] joins a leader over the network and hands each block to an
//! [`playout::sink::AudioSink`] when it leaves the virtual DAC:
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//!
//! use lockstep::control::{HouseholdKey, Role};
//! use lockstep::node::{Follower, FollowerConfig, Output, SharedSink};
//! use lockstep::playout::sink::{AudioSink, Block, SinkError};
//!
//! /// Hands the left channel to the project's own driver.
//! struct MyDriver {
//!     frames: u64,
//! }
//!
//! impl AudioSink for MyDriver {
//!     fn write(&mut self, block: &Block<'_>) -> Result<(), SinkError> {
//!         for frame in block.samples.chunks_exact(block.channels) {
//!             let _left = frame[0]; // to the I2S FIFO, say
//!             self.frames += 1;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = HouseholdKey::new(&std::fs::read("household.key")?)?;
//! let driver = Arc::new(Mutex::new(MyDriver { frames: 0 }));
//! let mut config = FollowerConfig::new("192.168.1.10:7700".parse()?, key, Role::Left);
//! config.output = Output::Custom(SharedSink::new(Arc::clone(&driver)));
//! let follower = Follower::start(config)?;
//! std::thread::sleep(std::time::Duration::from_secs(60));
//! let report = follower.stop()?; // a sink's error comes back here, typed
//! println!("played {} frames", report.frames);
//! # Ok(())
//! # }
//! ```
//!
//! # A follower core driven from a host's audio callback
//!
//! A speaker project with its own event loop and its own audio driver drives a
//! [`core::FollowerCore`] itself: its network code hands datagrams in with their arrival
//! times and sends what the core asks, and its audio callback pulls each buffer through a
//! [`core::PullOutput`], saying when the buffer's first frame will play. Nothing in the core
//! reads a clock or blocks: the host's clock is the only one.
//!
//! ```no_run
//! use std::net::{SocketAddr, UdpSocket};
//! use std::sync::{Arc, Mutex};
//!
//! use lockstep::control::Role;
//! use lockstep::core::{CallbackTiming, FollowerCore, FollowerCoreConfig, PullConfig, PullOutput};
//! use lockstep::ptp::{ClockIdentity, PortIdentity, SlaveConfig};
//! use lockstep::time::{LocalInstant, Nanos};
//!
//! /// The host's clock: whatever its audio driver's timestamps are on (here, the time since
//! /// the program started on the machine's monotonic clock).
//! fn host_now() -> LocalInstant {
//!     static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
//!     let start = *START.get_or_init(std::time::Instant::now);
//!     LocalInstant::from_nanos(start.elapsed().as_nanos() as i64)
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let port = PortIdentity { clock_identity: ClockIdentity([7; 8]), port_number: 1 };
//! let core = FollowerCore::<SocketAddr>::new(
//!     FollowerCoreConfig::new(SlaveConfig::new(port)),
//!     Role::Left,
//! );
//! let core = Arc::new(Mutex::new(core));
//!
//! // The audio callback's side: it keeps the pull handle.
//! let mut output = PullOutput::new(Arc::clone(&core), PullConfig::new(48_000, 2))?;
//! let mut audio_callback = move |buffer: &mut [f32], driver_latency: Nanos| {
//!     let timing = CallbackTiming::from_latency(host_now(), driver_latency);
//!     output.fill(timing, buffer); // silence until the stream is there and settled
//! };
//!
//! // The network side: datagrams in with their arrival times, what the core asks out.
//! let ptp = UdpSocket::bind("0.0.0.0:0")?;
//! let mut buf = [0u8; 1500];
//! loop {
//!     let (n, from) = ptp.recv_from(&mut buf)?;
//!     let mut core = core.lock().unwrap();
//!     let now = host_now();
//!     let _ = core.handle_ptp(from, now, &buf[..n]); // a bad datagram is counted, not fatal
//!     if core.poll_timeout().is_some_and(|t| t <= now) {
//!         core.handle_timeout(now);
//!     }
//!     // The drain rule: after any handle_*, every poll_* until it gives None.
//!     while let Some(tx) = core.poll_transmit(now) {
//!         ptp.send_to(tx.payload(), tx.to)?;
//!     }
//!     # drop(core);
//!     # audio_callback(&mut [0.0; 512], Nanos::from_millis(8));
//!     # break;
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod clock;
pub mod control;
pub mod core;
pub mod household;
pub mod measure;
pub mod media;
// The UDP driver, crate-private but for the namespaces of tests and demos, its error and
// the relay, so that socket2 stays out of the public API; Linux-only.
#[cfg(target_os = "linux")]
pub mod net;
#[cfg(target_os = "linux")]
pub mod node;
#[cfg(target_os = "linux")]
pub use net::relay;
pub mod playout;
pub mod ptp;
pub mod sim;
pub mod time;
