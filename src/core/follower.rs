//! A whole follower, sans-IO: the clock, the stream, the role's stages and the playout.

use std::collections::VecDeque;
use std::sync::Arc;

use thiserror::Error;

use super::clock::{ClockCore, EstimatorFactory, default_estimator};
use crate::clock::ClockEstimate;
use crate::control::{
    Command, End, FollowerEvent, FollowerSession, FollowerStatus, Hello, HouseholdKey, Nonce,
    Rejections, Role, SessionError, StreamParams, Welcome,
};
use crate::control::{SEALED_GROUP_KEY_LEN, SessionKeys};
use crate::media::AudioFormat;
use crate::media::receiver::{ReceiverConfig, ReceiverStats, RtpReceiver};
use crate::media::srtp::{SrtpContext, SrtpError, SrtpProfile, SrtpStats};
use crate::playout::controller::BlockReport;
use crate::playout::corrector::CorrectorKind;
use crate::playout::pipeline::{Playout, PlayoutConfig, PlayoutError};
use crate::playout::stage::{Chain, ChainError, Stage};
use crate::playout::stages::{
    ChannelSplit, Crossover, CrossoverKind, Gain, GainControl, SplitMode,
};
use crate::ptp::{PtpError, PtpStats, SlaveConfig, Transmit, TxTag};
use crate::time::{LocalInstant, Nanos};

/// Makes a follower's extra stages for a stream of `channels` channels (what the role's
/// chain gives) at `rate` Hz: a room EQ, say. They run after the role's stages and before
/// the volume.
pub type StageFactory =
    Arc<dyn Fn(usize, u32) -> Result<Vec<Box<dyn Stage>>, ChainError> + Send + Sync>;

/// How a [`FollowerCore`] is set up. [`FollowerCoreConfig::new`] gives the defaults.
#[derive(Clone)]
#[non_exhaustive]
pub struct FollowerCoreConfig {
    /// The PTP slave's settings (its port identity among them).
    pub slave: SlaveConfig,
    /// Makes the clock estimator. Default: lockstep's own.
    pub estimator: EstimatorFactory,
    /// Frames per rendered block. Default 480.
    pub block_frames: usize,
    /// The drift corrector. Default [`CorrectorKind::Sinc`].
    pub corrector: CorrectorKind,
    /// Delay from the DAC to the ear (an amplifier's, a speaker's DSP): the audio leaves
    /// this much early. Default 0.
    pub output_latency: Nanos,
    /// Extra stages after the role's (`None`: none).
    pub stages: Option<StageFactory>,
    /// Whether a leader's stream whose media or clock is not protected
    /// ([`Protection`](crate::control::Protection)) is played. Default `false`: such a
    /// stream is refused with [`CoreError::Unauthenticated`], since anyone on the network
    /// could then play on this speaker or pull its clock.
    pub accept_unauthenticated: bool,
}

impl std::fmt::Debug for FollowerCoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowerCoreConfig")
            .field("slave", &self.slave)
            .field("block_frames", &self.block_frames)
            .field("corrector", &self.corrector)
            .field("output_latency", &self.output_latency)
            .field("stages", &self.stages.is_some())
            .field("accept_unauthenticated", &self.accept_unauthenticated)
            .finish_non_exhaustive()
    }
}

impl FollowerCoreConfig {
    /// The defaults, with the slave's settings `slave`.
    pub fn new(slave: SlaveConfig) -> FollowerCoreConfig {
        FollowerCoreConfig {
            slave,
            estimator: default_estimator(),
            block_frames: 480,
            corrector: CorrectorKind::Sinc,
            output_latency: Nanos::ZERO,
            stages: None,
            accept_unauthenticated: false,
        }
    }
}

/// Why a stream could not be played.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The stream's codec is not built into this build (Opus without the `opus` feature).
    #[error("the stream's codec {0:?} is not built in")]
    Codec(crate::control::CodecId),
    /// The stream's format or receiver settings are refused.
    #[error("the stream cannot be received: {0}")]
    Media(String),
    /// The role's stages, or the extra ones, refuse the stream.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The playout refuses its settings.
    #[error(transparent)]
    Playout(#[from] PlayoutError),
    /// The leader's stream is not authenticated, and the follower is not configured to
    /// accept that ([`FollowerCoreConfig::accept_unauthenticated`]).
    #[error(
        "the leader's {what} is not authenticated (a follower accepts that only when \
         configured to)"
    )]
    Unauthenticated {
        /// What is not: "media", "clock", or "media and clock".
        what: &'static str,
    },
    /// The stream's keys could not be set up.
    #[error("the stream's keys: {0}")]
    Keys(String),
}

/// What a [`FollowerCore`] tells its driver, from the control session.
#[derive(Debug)]
#[non_exhaustive]
pub enum CoreEvent {
    /// The leader welcomed the follower, and its stream is being played: follow the
    /// leader's clock now, and take its stream's datagrams (from its RTP port, or from the
    /// multicast group the stream names).
    Joined(Welcome),
    /// The leader switched the stream (a new source): take its datagrams from now on.
    Stream(StreamParams),
    /// The leader gave the follower another role; it plays it already.
    Role(Role),
    /// The leader asks for the follower's status: answer with
    /// [`FollowerCore::send_status`].
    StatusQuery(u32),
    /// The leader's stream cannot be played here. If its codec is not built in, say, the
    /// session stays and the follower is silent; if it is not authenticated and the config
    /// does not accept that ([`CoreError::Unauthenticated`]), the follower leaves the
    /// session (nothing of it is played).
    Unplayable(CoreError),
    /// The control session failed (refused, a leader without the key, a broken stream of
    /// frames). Close the connection; a new one needs [`FollowerCore::connect`].
    Failed(SessionError),
}

/// What one [`FollowerCore::render`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rendered {
    /// The playout's report for the block; `None` when there was nothing to render from
    /// (no stream yet) or the group is paused: the block is silent.
    pub report: Option<BlockReport>,
    /// Frames the receiver holds after the block.
    pub buffered_frames: usize,
    /// Channels in the block (the role's chain's output).
    pub channels: usize,
}

/// The stage chain of `role` for a stream of `channels` channels at `rate` Hz, then the
/// `extra` stages, then the gain the volume and mute steer. The one place a role becomes
/// stages.
pub fn role_chain(
    role: Role,
    channels: usize,
    rate: u32,
    extra: Option<&StageFactory>,
) -> Result<(Chain, GainControl), ChainError> {
    let mut stages: Vec<Box<dyn Stage>> = match role {
        Role::Full => Vec::new(),
        Role::Left => vec![Box::new(ChannelSplit::new(SplitMode::Left, channels)?)],
        Role::Right => vec![Box::new(ChannelSplit::new(SplitMode::Right, channels)?)],
        Role::Mono => vec![Box::new(ChannelSplit::new(
            SplitMode::MonoDownmix,
            channels,
        )?)],
        Role::Sub => vec![
            Box::new(ChannelSplit::new(SplitMode::MonoDownmix, channels)?),
            Box::new(Crossover::new(CrossoverKind::LowPass, 80.0, rate, 1)?),
        ],
    };
    let mut out = if role == Role::Full { channels } else { 1 };
    if let Some(make) = extra {
        let more = make(out, rate)?;
        if let Some(last) = more.last() {
            out = last.channels_out();
        }
        stages.extend(more);
    }
    let (gain, control) = Gain::new(out, rate, 0.0)?;
    stages.push(Box::new(gain));
    Ok((Chain::new(channels, stages)?, control))
}

/// How a follower receives `stream`: only its SSRC, concealing a gap only when the output
/// is about to need it.
pub fn receiver_config(stream: &StreamParams) -> Result<ReceiverConfig, CoreError> {
    let codec = stream
        .codec
        .to_kind()
        .ok_or(CoreError::Codec(stream.codec))?;
    let format = AudioFormat::new(stream.sample_rate, u16::from(stream.channels))
        .map_err(|e| CoreError::Media(e.to_string()))?;
    let mut rc = ReceiverConfig::new(codec, format, stream.payload_type);
    rc.ssrc = Some(stream.ssrc);
    // With a short target latency the default 20 ms lead would conceal packets that are
    // merely on their way.
    rc.conceal_lead = Nanos(stream.target_latency.as_nanos() / 2).min(Nanos::from_millis(20));
    rc.fifo_frames = (stream.sample_rate as usize).max(format.sample_rate() as usize / 2);
    Ok(rc)
}

struct Path {
    playout: Playout,
    gain: GainControl,
}

/// A follower, sans-IO: the PTP slave and its clock estimator ([`ClockCore`]), the
/// receiver of the stream, the role's stages plus any extra ones, and the playout that
/// steers the drift corrector. It never reads a clock or touches a socket: the
/// [`Follower`](crate::node::Follower) node drives one over real sockets, the simulator
/// drives one in virtual time, and a speaker project can drive one from its own loop and
/// its audio callback.
///
/// `A` names the leader's PTP address (a socket address on a node).
///
/// Call order:
/// - the clock, as on [`ClockCore`]: [`handle_ptp`](Self::handle_ptp) and
///   [`handle_ptp_transmitted`](Self::handle_ptp_transmitted) as datagrams and stamps come,
///   [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout), and
///   after any of them [`poll_transmit`](Self::poll_transmit) until `None` (the drain rule:
///   the estimate is updated when it returns `None`);
/// - the stream: [`set_stream`](Self::set_stream) once the leader says what it plays, then
///   [`handle_rtp`](Self::handle_rtp) for every datagram from it, with its arrival time;
/// - the audio: [`render`](Self::render) once per block, ahead of the block's DAC time.
///   It allocates nothing;
/// - the control session, if the core runs one: [`connect`](Self::connect), then
///   [`handle_control`](Self::handle_control) with the bytes from the leader's control
///   connection, and after either [`poll_control_transmit`](Self::poll_control_transmit)
///   and [`poll_event`](Self::poll_event) until `None`. The core obeys the leader's
///   commands itself (stream, role, volume, mute, trim, pause); the events say what its
///   driver must do besides.
pub struct FollowerCore<A> {
    config: FollowerCoreConfig,
    clock: ClockCore<A>,
    stream: Option<StreamParams>,
    role: Role,
    rx: Option<RtpReceiver>,
    path: Option<Path>,
    volume: f32,
    muted: bool,
    trim: Nanos,
    paused: bool,
    was_paused: bool,
    /// Datagrams that came before there was an estimate to place them by.
    unplaced: u64,
    session: Option<FollowerSession>,
    /// The joined session's id.
    session_id: Option<u64>,
    events: VecDeque<CoreEvent>,
    /// The SRTP context of a protected stream.
    srtp: Option<SrtpContext>,
    /// Where a protected datagram is decrypted (allocated once).
    srtp_buf: Vec<u8>,
    /// Rejections counted by SRTP contexts before the current one.
    media_rejected_before: Rejections,
    /// The keys of a protected multicast stream, when the stream is one.
    group: Option<GroupKeys>,
}

/// A protected multicast stream's keys: the epoch in use, the next one handed out ahead of
/// the leader's switch, and the one before (to tell its late packets, replays now, from
/// forgeries).
struct GroupKeys {
    profile: SrtpProfile,
    ssrc: u32,
    current: Option<(u32, SrtpContext)>,
    next: Option<(u32, SrtpContext)>,
    previous: Option<(u32, SrtpContext)>,
    /// Every packet dropped, counted once under the reason that stopped it.
    rejected: Rejections,
    /// Group keys that did not open under the session's keys.
    bad_keys: u64,
}

impl GroupKeys {
    /// Takes the sealed key of `epoch`; a key not newer than the newest held is ignored.
    fn add(&mut self, keys: &SessionKeys, epoch: u32, sealed: &[u8; SEALED_GROUP_KEY_LEN]) {
        let newest = self
            .next
            .as_ref()
            .or(self.current.as_ref())
            .map(|(e, _)| *e);
        if newest.is_some_and(|n| epoch <= n) {
            return;
        }
        let Ok(key) = keys.open_group_key(epoch, sealed) else {
            self.bad_keys += 1;
            return;
        };
        let Ok(context) = key.srtp(self.profile, self.ssrc) else {
            return;
        };
        if self.current.is_none() {
            self.current = Some((epoch, context));
        } else {
            self.next = Some((epoch, context));
        }
    }

    /// Unprotects `bytes` into `out`: under the current epoch's key, else the next one's
    /// (the leader has switched: it becomes current). Returns the length, or `None` with
    /// the packet counted.
    fn unprotect(&mut self, bytes: &[u8], out: &mut [u8]) -> Option<usize> {
        let Some((_, current)) = self.current.as_mut() else {
            self.rejected.unknown_key += 1;
            return None;
        };
        let first = match current.unprotect(bytes, out) {
            Ok(n) => return Some(n),
            Err(e) => e,
        };
        if first == SrtpError::BadTag {
            if let Some((_, next)) = self.next.as_mut()
                && let Ok(n) = next.unprotect(bytes, out)
            {
                self.previous = self.current.take();
                self.current = self.next.take();
                return Some(n);
            }
            if let Some((_, previous)) = self.previous.as_mut()
                && matches!(
                    previous.unprotect(bytes, out),
                    Ok(_) | Err(SrtpError::Replay { .. })
                )
            {
                // Genuine, but of an epoch the leader has left: a replay now.
                self.rejected.replay += 1;
                return None;
            }
        }
        let r = &mut self.rejected;
        match first {
            SrtpError::BadTag => r.bad_tag += 1,
            SrtpError::Replay { .. } => r.replay += 1,
            SrtpError::UnknownSsrc { .. } => r.unknown_key += 1,
            _ => r.malformed += 1,
        }
        None
    }
}

/// The largest datagram the SRTP buffer takes; a longer one is dropped.
const MAX_DATAGRAM: usize = 4096;

fn rejections(s: &SrtpStats) -> Rejections {
    Rejections {
        bad_tag: s.bad_tag,
        replay: s.replay,
        unknown_key: s.unknown_ssrc,
        malformed: s.malformed,
    }
}

impl<A> std::fmt::Debug for FollowerCore<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowerCore")
            .field("clock", &self.clock)
            .field("stream", &self.stream)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl<A: Copy + Eq> FollowerCore<A> {
    /// A follower with `config`, with no stream yet, playing `role` once it has one.
    pub fn new(config: FollowerCoreConfig, role: Role) -> FollowerCore<A> {
        let clock = ClockCore::new(config.slave, (config.estimator)());
        FollowerCore {
            config,
            clock,
            stream: None,
            role,
            rx: None,
            path: None,
            volume: 1.0,
            muted: false,
            trim: Nanos::ZERO,
            paused: false,
            was_paused: false,
            unplaced: 0,
            session: None,
            session_id: None,
            events: VecDeque::new(),
            srtp: None,
            srtp_buf: vec![0; MAX_DATAGRAM],
            media_rejected_before: Rejections::default(),
            group: None,
        }
    }

    // ----- the clock -----

    /// A PTP datagram from the leader, received at `at`.
    pub fn handle_ptp(&mut self, from: A, at: LocalInstant, bytes: &[u8]) -> Result<(), PtpError> {
        self.clock.handle_ptp(from, at, bytes)
    }

    /// The transmit stamp of a PTP datagram sent earlier.
    pub fn handle_ptp_transmitted(&mut self, tag: TxTag, at: LocalInstant) {
        self.clock.handle_transmitted(tag, at);
    }

    /// Runs the timers due by `now`.
    pub fn handle_timeout(&mut self, now: LocalInstant) {
        self.clock.handle_timeout(now);
    }

    /// The next PTP datagram to send, stamped as leaving at `now`. Drain it after every
    /// `handle_*`, and send each at once.
    #[must_use]
    pub fn poll_transmit(&mut self, now: LocalInstant) -> Option<Transmit<A>> {
        self.clock.poll_transmit(now)
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<LocalInstant> {
        self.clock.poll_timeout()
    }

    /// The estimate of the leader's clock.
    pub fn estimate(&self) -> Option<ClockEstimate> {
        self.clock.estimate()
    }

    /// The PTP slave's counters.
    pub fn ptp_stats(&self) -> &PtpStats {
        self.clock.stats()
    }

    /// The clock side.
    pub fn clock(&self) -> &ClockCore<A> {
        &self.clock
    }

    /// The clock side, for a driver that runs it on its own (a node's PTP thread).
    pub fn clock_mut(&mut self) -> &mut ClockCore<A> {
        &mut self.clock
    }

    /// Starts the clock afresh (a restart, another leader): no master, no estimate. The
    /// stream stays.
    pub fn reset_clock(&mut self) {
        self.clock.reset();
    }

    // ----- the stream -----

    /// Plays `stream` from now on, as `role`: a new receiver and a new path (this
    /// allocates; it happens once per session or role change, not per block). Nothing
    /// changes when it fails. The stream is taken as plain RTP: a control session sets up
    /// its protection itself.
    pub fn set_stream(&mut self, stream: &StreamParams, role: Role) -> Result<(), CoreError> {
        let rx = RtpReceiver::new(receiver_config(stream)?)
            .map_err(|e| CoreError::Media(e.to_string()))?;
        let path = self.build_path(stream, role)?;
        self.set_srtp(None);
        self.rx = Some(rx);
        self.path = Some(path);
        self.stream = Some(stream.clone());
        self.role = role;
        Ok(())
    }

    /// Plays another part of the stream: a new path on the same receiver.
    pub fn set_role(&mut self, role: Role) -> Result<(), CoreError> {
        if let Some(stream) = self.stream.clone() {
            self.path = Some(self.build_path(&stream, role)?);
        }
        self.role = role;
        Ok(())
    }

    /// Forgets the stream (the leader went away): silence until the next
    /// [`set_stream`](Self::set_stream).
    pub fn clear_stream(&mut self) {
        self.set_srtp(None);
        self.rx = None;
        self.path = None;
        self.stream = None;
    }

    fn build_path(&self, stream: &StreamParams, role: Role) -> Result<Path, CoreError> {
        let rate = stream.sample_rate;
        let (chain, gain) = role_chain(
            role,
            usize::from(stream.channels),
            rate,
            self.config.stages.as_ref(),
        )?;
        let mut pc = PlayoutConfig::new(rate);
        pc.corrector = self.config.corrector;
        pc.block_frames = self.config.block_frames;
        Ok(Path {
            playout: Playout::new(pc, chain)?,
            gain,
        })
    }

    /// The stream being played.
    pub fn stream(&self) -> Option<&StreamParams> {
        self.stream.as_ref()
    }

    /// The role being played.
    pub fn role(&self) -> Role {
        self.role
    }

    fn set_srtp(&mut self, srtp: Option<SrtpContext>) {
        if let Some(old) = std::mem::replace(&mut self.srtp, srtp) {
            self.media_rejected_before = self.media_rejected_before.add(&rejections(&old.stats()));
        }
        if let Some(old) = self.group.take() {
            self.media_rejected_before = self.media_rejected_before.add(&old.rejected);
        }
    }

    /// Sets up the protection `stream` asks for, with the session's keys; refuses a stream
    /// less protected than the config accepts.
    fn protect(&mut self, stream: &StreamParams, new_session: bool) -> Result<(), CoreError> {
        let p = stream.protection;
        if !p.is_full() && !self.config.accept_unauthenticated {
            return Err(CoreError::Unauthenticated {
                what: match (p.media.is_none(), !p.clock) {
                    (true, true) => "media and clock",
                    (true, false) => "media",
                    _ => "clock",
                },
            });
        }
        let keys = self.session.as_ref().and_then(FollowerSession::keys);
        let (Some(keys), Some(session)) = (keys, self.session_id) else {
            return Err(CoreError::Keys("no joined session".into()));
        };
        let srtp = match p.media {
            Some(profile) if stream.multicast.is_none() => Some(
                keys.srtp(profile, stream.ssrc)
                    .map_err(|e| CoreError::Keys(e.to_string()))?,
            ),
            _ => None,
        };
        let clock = p.clock.then(|| keys.ptp(session, End::Follower));
        self.set_srtp(srtp);
        if let (Some(profile), Some(_)) = (p.media, stream.multicast) {
            // A multicast stream's keys come from the leader, one epoch at a time.
            self.group = Some(GroupKeys {
                profile,
                ssrc: stream.ssrc,
                current: None,
                next: None,
                previous: None,
                rejected: Rejections::default(),
                bad_keys: 0,
            });
        }
        if new_session || p.clock != self.clock.is_authenticated() {
            self.clock.set_auth(clock);
        }
        Ok(())
    }

    /// Whether the stream's media is authenticated (SRTP, under the session's key or a
    /// multicast stream's group key).
    pub fn media_authenticated(&self) -> bool {
        self.srtp.is_some() || self.group.is_some()
    }

    /// RTP datagrams dropped for failing SRTP, by reason, since the core was made.
    pub fn media_rejections(&self) -> Rejections {
        let unicast = self.srtp.as_ref().map(|c| rejections(&c.stats()));
        let group = self.group.as_ref().map(|g| g.rejected);
        self.media_rejected_before
            .add(&unicast.unwrap_or_default())
            .add(&group.unwrap_or_default())
    }

    /// The epoch of the multicast stream's group key in use, if the stream is a protected
    /// multicast one and a key has come.
    pub fn group_epoch(&self) -> Option<u32> {
        self.group
            .as_ref()
            .and_then(|g| g.current.as_ref().map(|(e, _)| *e))
    }

    /// An RTP datagram from the leader, received at `at`. A protected stream's datagram is
    /// checked and decrypted first, and dropped (counted in
    /// [`media_rejections`](Self::media_rejections)) if it fails. Dropped (and counted in
    /// [`unplaced`](Self::unplaced)) while there is no estimate to place it by; ignored
    /// without a stream.
    pub fn handle_rtp(&mut self, at: LocalInstant, bytes: &[u8]) {
        let Some(rx) = self.rx.as_mut() else { return };
        let bytes = match (self.srtp.as_mut(), self.group.as_mut()) {
            (Some(srtp), _) => match srtp.unprotect(bytes, &mut self.srtp_buf) {
                Ok(n) => &self.srtp_buf[..n],
                Err(_) => return,
            },
            (None, Some(group)) => match group.unprotect(bytes, &mut self.srtp_buf) {
                Some(n) => &self.srtp_buf[..n],
                None => return,
            },
            (None, None) => bytes,
        };
        match self.clock.estimate() {
            Some(est) => {
                rx.handle_rtp(bytes, est.to_leader(at));
            }
            None => self.unplaced += 1,
        }
    }

    /// RTP datagrams dropped because no estimate could place them yet.
    pub fn unplaced(&self) -> u64 {
        self.unplaced
    }

    /// The receiver's counters, while there is a stream.
    pub fn receiver_stats(&self) -> Option<ReceiverStats> {
        self.rx.as_ref().map(RtpReceiver::stats)
    }

    /// The playout's latest report, while there is a stream.
    pub fn playout_report(&self) -> Option<BlockReport> {
        self.path.as_ref().map(|p| p.playout.controller().report())
    }

    /// Frames per rendered block (the `out` of [`render`](Self::render) holds this many
    /// frames).
    pub fn block_frames(&self) -> usize {
        self.config.block_frames
    }

    /// Channels a rendered block has (0 without a stream).
    pub fn channels_out(&self) -> usize {
        self.path.as_ref().map_or(0, |p| p.playout.channels_out())
    }

    // ----- steering -----

    /// Sets the volume, 0 to 1 (NaN is 0).
    pub fn set_volume(&mut self, volume: f32) {
        self.volume = if volume.is_nan() {
            0.0
        } else {
            volume.clamp(0.0, 1.0)
        };
    }

    /// Mutes or unmutes.
    pub fn set_mute(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Sets the delay trim: positive plays later.
    pub fn set_trim(&mut self, trim: Nanos) {
        self.trim = trim;
    }

    /// Pauses (silence, the playout reset) or resumes.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// The volume, mute, trim and pause in force.
    pub fn steering(&self) -> (f32, bool, Nanos, bool) {
        (self.volume, self.muted, self.trim, self.paused)
    }

    // ----- the control session -----

    /// Starts a control session with a leader: says `hello`, proves `key` with `nonce`
    /// (fresh: see [`new_nonce`](crate::control::new_nonce)). The Hello is queued for
    /// [`poll_control_transmit`](Self::poll_control_transmit). A session before it is
    /// dropped.
    pub fn connect(
        &mut self,
        hello: Hello,
        key: HouseholdKey,
        nonce: Nonce,
    ) -> Result<(), SessionError> {
        self.session = Some(FollowerSession::new(hello, key, nonce)?);
        Ok(())
    }

    /// Bytes from the leader's control connection.
    pub fn handle_control(&mut self, bytes: &[u8]) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        session.handle_input(bytes);
        while let Some(e) = self.session.as_mut().and_then(FollowerSession::poll_event) {
            if let Some(out) = self.obey(e) {
                self.events.push_back(out);
            }
        }
        if self
            .session
            .as_ref()
            .is_some_and(FollowerSession::is_closed)
        {
            self.session = None;
        }
    }

    /// Does what the leader says; returns what the driver must hear of it.
    fn obey(&mut self, event: FollowerEvent) -> Option<CoreEvent> {
        let command = match event {
            FollowerEvent::Joined(w) => {
                self.session_id = Some(w.session);
                let played = self
                    .set_stream(&w.stream, w.role)
                    .and_then(|()| self.protect(&w.stream, true));
                if let Err(e @ CoreError::Unauthenticated { .. }) = played {
                    // Not a session to keep: leave it, and play nothing of it.
                    self.clear_stream();
                    if let Some(s) = self.session.as_mut() {
                        let _ = s.leave();
                    }
                    return Some(CoreEvent::Unplayable(e));
                }
                self.set_volume(w.volume);
                self.set_mute(w.muted);
                self.set_trim(w.trim);
                self.set_paused(false);
                self.events.push_back(CoreEvent::Joined(w));
                return played.err().map(|e| {
                    self.clear_stream();
                    CoreEvent::Unplayable(e)
                });
            }
            FollowerEvent::Failed(e) => return Some(CoreEvent::Failed(e)),
            FollowerEvent::Command(c) => c,
        };
        match command {
            Command::SetVolume(v) => self.set_volume(v),
            Command::SetMute(m) => self.set_mute(m),
            Command::SetTrim(t) => self.set_trim(t),
            Command::Pause => self.set_paused(true),
            Command::Resume => self.set_paused(false),
            Command::SetRole(r) => {
                return Some(match self.set_role(r) {
                    Ok(()) => CoreEvent::Role(r),
                    Err(e) => CoreEvent::Unplayable(e),
                });
            }
            Command::Stream(st) => {
                let played = self
                    .set_stream(&st, self.role)
                    .and_then(|()| self.protect(&st, false));
                return Some(match played {
                    Ok(()) => CoreEvent::Stream(st),
                    Err(e) => {
                        self.clear_stream();
                        CoreEvent::Unplayable(e)
                    }
                });
            }
            Command::StatusQuery(id) => return Some(CoreEvent::StatusQuery(id)),
            Command::GroupKey { epoch, sealed } => {
                let keys = self.session.as_ref().and_then(FollowerSession::keys);
                if let (Some(group), Some(keys)) = (self.group.as_mut(), keys) {
                    group.add(keys, epoch, &sealed);
                }
            }
        }
        None
    }

    /// Answers [`CoreEvent::StatusQuery`] `id`.
    pub fn send_status(&mut self, id: u32, status: FollowerStatus) -> Result<(), SessionError> {
        self.session
            .as_mut()
            .ok_or(SessionError::NotJoined)?
            .send_status(id, status)
    }

    /// Leaves the group: a Leave is queued, and the session is over once it is sent.
    pub fn leave(&mut self) -> Result<(), SessionError> {
        self.session
            .as_mut()
            .ok_or(SessionError::NotJoined)?
            .leave()
    }

    /// Whether a control session is joined.
    pub fn is_joined(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(FollowerSession::is_joined)
    }

    /// The next bytes for the leader's control connection.
    #[must_use]
    pub fn poll_control_transmit(&mut self) -> Option<Vec<u8>> {
        self.session.as_mut()?.poll_transmit()
    }

    /// The next event for the driver.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    // ----- the audio -----

    /// Renders the block whose first frame leaves the DAC at `dac_time` (the DAC having
    /// emitted `dac_frames` frames before it) into `out`, at `now`. `out` must hold
    /// `block_frames × channels_out` samples; a block with nothing to play is silent.
    /// Allocates nothing.
    pub fn render(
        &mut self,
        now: LocalInstant,
        dac_time: LocalInstant,
        dac_frames: u64,
        out: &mut [f32],
    ) -> Rendered {
        let est = self.clock.estimate();
        let paused = self.paused;
        let was_paused = std::mem::replace(&mut self.was_paused, paused);
        let (Some(path), Some(rx)) = (self.path.as_mut(), self.rx.as_mut()) else {
            out.fill(0.0);
            return Rendered {
                report: None,
                buffered_frames: 0,
                channels: 0,
            };
        };
        path.gain.set_volume_db(if self.volume <= 0.0 {
            f32::NEG_INFINITY
        } else {
            20.0 * self.volume.log10()
        });
        path.gain.set_mute(self.muted);
        path.playout
            .controller_mut()
            .set_trim(self.trim - self.config.output_latency);
        let channels = path.playout.channels_out();
        if paused {
            out.fill(0.0);
            if !was_paused {
                path.playout.controller_mut().reset();
            }
            return Rendered {
                report: None,
                buffered_frames: rx.buffered_frames(),
                channels,
            };
        }
        if let Some(e) = est.as_ref() {
            rx.handle_timeout(e.to_leader(now));
        }
        let report = path
            .playout
            .render(rx, est.as_ref(), dac_time, dac_frames, out);
        Rendered {
            report: Some(report),
            buffered_frames: rx.buffered_frames(),
            channels,
        }
    }
}
