//! A follower's audio for callback-driven hardware: the host's audio callback pulls.
//!
//! A sound card that runs on its own crystal asks for audio when it wants it: an I2S
//! driver's DMA interrupt, an ALSA period, a CoreAudio render callback. Each time it asks
//! for `N` frames it can say when the first of them will play, on its own clock (the
//! callback's timestamp plus the driver's reported latency). [`PullRenderer`] turns that
//! into audio:
//!
//! - the callback's [`CallbackTiming`] is checked (a timestamp that goes backwards, a
//!   negative or absurd latency, a jump of one clock against the other is a counted
//!   [`Rejection`], never a panic) and fed to a [`DeviceClock`], which gives a smooth map
//!   from the device's frame positions to local time, at the card's long-term pace;
//! - once the map has had [`PullConfig::settle`] to converge, the core renders whole
//!   blocks ([`FollowerCore::render`]), each for the local time its first device frame
//!   plays, into a buffer made once; the callback takes frames from it, one device frame
//!   each, mapping the core's channels onto the device's;
//! - nothing on the renderer's path allocates, sleeps or blocks (the one wait is
//!   [`PullOutput`]'s bounded try for a shared lock, below).
//!
//! [`PullOutput`] is the same with the core behind a mutex that other threads (network
//! input, control) also lock: the callback only tries the lock, spinning briefly and then
//! napping 100 µs at a time, for at most [`PullConfig::lock_wait`]; a callback that cannot
//! get it plays silence and counts it.
//! A project that owns its core on the callback's thread, or hands it over its own way,
//! calls [`PullRenderer::fill`] with the core directly. The `cpal` sound-card output of a
//! [`Follower`](crate::node::Follower) is one user of [`PullOutput`]; a follower made with
//! [`Output::Callback`](crate::node::Output::Callback) hands one to the host.
//!
//! What it did is published in lock-free counters that any thread reads through a
//! [`PullMonitor`] ([`PullStats`]).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use lockstep::control::Role;
//! use lockstep::core::{CallbackTiming, FollowerCore, FollowerCoreConfig, PullConfig, PullOutput};
//! use lockstep::ptp::{ClockIdentity, PortIdentity, SlaveConfig};
//! use lockstep::time::{LocalInstant, Nanos};
//!
//! let port = PortIdentity { clock_identity: ClockIdentity([1; 8]), port_number: 1 };
//! let core = FollowerCore::<std::net::SocketAddr>::new(
//!     FollowerCoreConfig::new(SlaveConfig::new(port)),
//!     Role::Full,
//! );
//! // The network threads share the core; the audio callback keeps the handle.
//! let core = Arc::new(Mutex::new(core));
//! let mut output = PullOutput::new(Arc::clone(&core), PullConfig::new(48_000, 2))?;
//! let monitor = output.monitor();
//!
//! // In the host's audio callback: its buffer, the local clock now, and the driver's
//! // latency (or its own callback and playback timestamps).
//! let mut buffer = [0.0f32; 2 * 256];
//! let timing = CallbackTiming::from_latency(LocalInstant::from_nanos(0), Nanos::from_millis(8));
//! let filled = output.fill(timing, &mut buffer);
//! assert_eq!(filled.frames, 256);
//! assert!(!filled.from_core); // no stream yet: silence
//! assert_eq!(monitor.stats().callbacks, 1);
//! # Ok::<(), lockstep::core::PullError>(())
//! ```

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use super::follower::FollowerCore;
use crate::media::MAX_CHANNELS;
use crate::playout::controller::State;
use crate::playout::device_clock::{DeviceClock, DeviceClockConfig, DeviceTiming};
use crate::time::{LocalInstant, Nanos};

/// One audio callback's account of when its buffer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackTiming {
    /// The node's local clock (the one the core's estimate is against), read in the
    /// callback.
    pub now: LocalInstant,
    /// The host API's timestamp of the callback, on the API's own clock (ns).
    pub api_callback_ns: i64,
    /// When the host API says the buffer's first frame plays, on the same clock (ns).
    pub api_playback_ns: i64,
}

impl CallbackTiming {
    /// For a host that only knows its output latency: the API's clock is the local clock,
    /// and the first frame plays `latency` after `now`.
    pub fn from_latency(now: LocalInstant, latency: Nanos) -> CallbackTiming {
        CallbackTiming {
            now,
            api_callback_ns: now.as_nanos(),
            api_playback_ns: now.as_nanos().saturating_add(latency.as_nanos()),
        }
    }
}

/// Why a callback's timing was not used (the buffer still plays, by the map made so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The local clock or the API's clock read earlier than at the callback before.
    Backwards,
    /// The playback time is before the callback, or further after it than
    /// [`PullConfig::max_latency`].
    Latency,
    /// The API's clock moved more than [`PullConfig::max_step`] further or less far than
    /// the local clock since the callback before (a far-future or garbage timestamp).
    Jump,
}

/// How a [`PullRenderer`] is set up. [`PullConfig::new`] gives the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PullConfig {
    /// The device's nominal rate, frames per second. A stream at another rate is not
    /// played (silence, counted in [`PullStats::mismatched_callbacks`]).
    pub rate: u32,
    /// The device's channels, interleaved in the callback's buffer. The core's channels
    /// are mapped onto them; a device channel beyond the core's repeats its last.
    pub channels: usize,
    /// How the device's timestamps are filtered.
    pub device_clock: DeviceClockConfig,
    /// How long a [`PullOutput`] callback tries the core's lock before it gives up and
    /// plays silence. Default 300 µs.
    pub lock_wait: Nanos,
    /// The longest `playback − callback` taken as a latency. Default 2 s.
    pub max_latency: Nanos,
    /// How far the API's clock may move against the local clock between two callbacks.
    /// Default 250 ms.
    pub max_step: Nanos,
    /// How long the map of the device's frames onto time is fed before the core's audio
    /// plays (silence meanwhile). The playout measures the device's rate from the times
    /// it is given since its start, so a start on a map still converging would leave it
    /// a bias to work off for a long time. Default 2 s.
    pub settle: Nanos,
}

impl PullConfig {
    /// The defaults for a device of `rate` Hz with `channels` channels.
    pub fn new(rate: u32, channels: usize) -> PullConfig {
        PullConfig {
            rate,
            channels,
            device_clock: DeviceClockConfig::default(),
            lock_wait: Nanos::from_micros(300),
            max_latency: Nanos::from_secs(2),
            max_step: Nanos::from_millis(250),
            settle: Nanos::from_secs(2),
        }
    }
}

/// Why a [`PullRenderer`] cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The rate is 0.
    #[error("a device rate of 0 Hz")]
    Rate,
    /// The device's channel count is 0 or more than lockstep handles.
    #[error("{got} device channels; 1 to {max} are supported")]
    Channels {
        /// The most supported.
        max: usize,
        /// What was asked for.
        got: usize,
    },
    /// The core's blocks are empty or too long.
    #[error("blocks of {got} frames; 1 to {max} are supported")]
    Block {
        /// The most supported.
        max: usize,
        /// What the core has.
        got: usize,
    },
}

/// How long a [`PullOutput`] spins on the core's lock before it naps between tries.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);
/// The nap between tries after that.
const NAP: std::time::Duration = std::time::Duration::from_micros(100);

/// The longest core block a [`PullRenderer`] takes.
const MAX_BLOCK: usize = 8192;

/// What one callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filled {
    /// Frames handed to the device.
    pub frames: usize,
    /// Whether the core's audio went out (`false`: the whole buffer is silence because
    /// there was no map yet, no stream, another rate, or the core was busy).
    pub from_core: bool,
    /// Why the timing was not used, if it was not.
    pub rejected: Option<Rejection>,
}

/// The counters a [`PullRenderer`] publishes.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PullStats {
    /// Callbacks run.
    pub callbacks: u64,
    /// Device frames handed over (the position of the next buffer's first frame).
    pub frames: u64,
    /// Callbacks that played silence because the core's lock was not had in time.
    pub missed_callbacks: u64,
    /// Callbacks that played silence because the stream's rate or shape does not fit
    /// the device.
    pub mismatched_callbacks: u64,
    /// Timings rejected (see [`Rejection`]).
    pub rejected_timings: u64,
    /// Blocks the core rendered.
    pub blocks: u64,
    /// The furthest ahead of its play time a frame was rendered (how early the device asks
    /// for audio).
    pub max_ahead: Nanos,
    /// The device's rate in frames per local second, as the map has it (0 before).
    pub rate_hz: f64,
    /// Times the map started afresh after a jump of the device.
    pub relocks: u64,
    /// Whether the playout is playing (its state at the latest block).
    pub playing: bool,
    /// The playout's underruns, at the latest block.
    pub underruns: u64,
    /// The playout's error at the latest block, ns.
    pub error_ns: i64,
    /// Frames the receiver held after the latest block.
    pub buffered_frames: u64,
    /// When the first frame of the core's audio played, local clock.
    pub first_play: Option<LocalInstant>,
    /// The longest a [`PullOutput::fill`] took, lock wait included (0 for a bare
    /// [`PullRenderer`], which reads no clock).
    pub slowest_callback: Nanos,
}

/// The counters, shared.
#[derive(Debug, Default)]
struct Shared {
    callbacks: AtomicU64,
    frames: AtomicU64,
    missed: AtomicU64,
    mismatched: AtomicU64,
    rejected: AtomicU64,
    blocks: AtomicU64,
    max_ahead: AtomicI64,
    rate_bits: AtomicU64,
    relocks: AtomicU64,
    playing: AtomicBool,
    underruns: AtomicU64,
    error_ns: AtomicI64,
    buffered: AtomicU64,
    first_play: AtomicI64,
    has_first: AtomicBool,
    slowest: AtomicI64,
}

/// Reads a [`PullRenderer`]'s counters from any thread.
#[derive(Debug, Clone)]
pub struct PullMonitor(Arc<Shared>);

impl PullMonitor {
    /// The counters now.
    pub fn stats(&self) -> PullStats {
        let s = &self.0;
        let r = Ordering::Relaxed;
        PullStats {
            callbacks: s.callbacks.load(r),
            frames: s.frames.load(r),
            missed_callbacks: s.missed.load(r),
            mismatched_callbacks: s.mismatched.load(r),
            rejected_timings: s.rejected.load(r),
            blocks: s.blocks.load(r),
            max_ahead: Nanos(s.max_ahead.load(r)),
            rate_hz: f64::from_bits(s.rate_bits.load(r)),
            relocks: s.relocks.load(r),
            playing: s.playing.load(r),
            underruns: s.underruns.load(r),
            error_ns: s.error_ns.load(r),
            buffered_frames: s.buffered.load(r),
            first_play: s
                .has_first
                .load(Ordering::Acquire)
                .then(|| LocalInstant::from_nanos(s.first_play.load(r))),
            slowest_callback: Nanos(s.slowest.load(r)),
        }
    }
}

/// Fills a callback's buffer from a [`FollowerCore`]. See the module docs.
///
/// Call order: once per audio callback, [`fill`](Self::fill) (or
/// [`fill_with`](Self::fill_with)) with the callback's timing and its buffer, in the
/// order the device plays them. Nothing else is needed; [`monitor`](Self::monitor) gives
/// the counters to another thread.
#[derive(Debug)]
pub struct PullRenderer {
    config: PullConfig,
    clock: DeviceClock,
    /// The core's rendered block, and how much of it is still to be handed over.
    block: Box<[f32]>,
    block_channels: usize,
    carry_from: usize,
    carry_len: usize,
    /// Device frames handed over before the next buffer.
    position: u64,
    /// The callback before, for the checks.
    last: Option<CallbackTiming>,
    /// When the map took its first timing.
    locked_at: Option<LocalInstant>,
    max_ahead: Nanos,
    shared: Arc<Shared>,
}

impl PullRenderer {
    /// A renderer for a device as `config` says, from a core whose blocks have
    /// `block_frames` frames ([`FollowerCore::block_frames`]). This allocates its block
    /// buffer, once: make it before the callbacks start.
    pub fn new(config: PullConfig, block_frames: usize) -> Result<PullRenderer, PullError> {
        if config.rate == 0 {
            return Err(PullError::Rate);
        }
        if config.channels == 0 || config.channels > MAX_CHANNELS {
            return Err(PullError::Channels {
                max: MAX_CHANNELS,
                got: config.channels,
            });
        }
        if block_frames == 0 || block_frames > MAX_BLOCK {
            return Err(PullError::Block {
                max: MAX_BLOCK,
                got: block_frames,
            });
        }
        Ok(PullRenderer {
            config,
            clock: DeviceClock::new(config.rate, config.device_clock),
            block: vec![0.0; block_frames * MAX_CHANNELS].into_boxed_slice(),
            block_channels: 0,
            carry_from: 0,
            carry_len: 0,
            position: 0,
            last: None,
            locked_at: None,
            max_ahead: Nanos::ZERO,
            shared: Arc::new(Shared::default()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &PullConfig {
        &self.config
    }

    /// The map from device frames to local time.
    pub fn device_clock(&self) -> &DeviceClock {
        &self.clock
    }

    /// A reader of the counters, for another thread.
    pub fn monitor(&self) -> PullMonitor {
        PullMonitor(Arc::clone(&self.shared))
    }

    /// Checks a timing against the one before.
    fn check(&self, t: &CallbackTiming) -> Result<(), Rejection> {
        let latency = t
            .api_playback_ns
            .checked_sub(t.api_callback_ns)
            .ok_or(Rejection::Latency)?;
        if !(0..=self.config.max_latency.as_nanos()).contains(&latency) {
            return Err(Rejection::Latency);
        }
        let Some(last) = self.last else {
            return Ok(());
        };
        let d_local = t
            .now
            .as_nanos()
            .checked_sub(last.now.as_nanos())
            .ok_or(Rejection::Jump)?;
        let d_api = t
            .api_callback_ns
            .checked_sub(last.api_callback_ns)
            .ok_or(Rejection::Jump)?;
        if d_local < 0 || d_api < 0 {
            return Err(Rejection::Backwards);
        }
        if d_api.abs_diff(d_local) > self.config.max_step.as_nanos().unsigned_abs() {
            return Err(Rejection::Jump);
        }
        Ok(())
    }

    /// Fills `out` (interleaved, the device's channels) from `core` for a callback timed
    /// `timing`. `core` is `None` when the caller could not get it: the buffer is silent
    /// and the callback counted as missed. Allocates nothing.
    pub fn fill<A: Copy + Eq>(
        &mut self,
        core: Option<&mut FollowerCore<A>>,
        timing: CallbackTiming,
        out: &mut [f32],
    ) -> Filled {
        self.fill_with(core, timing, out, |x| x)
    }

    /// As [`fill`](Self::fill), into samples of the device's own type, each made by
    /// `convert` from a float sample at full scale ±1.
    pub fn fill_with<A: Copy + Eq, T: Copy>(
        &mut self,
        core: Option<&mut FollowerCore<A>>,
        timing: CallbackTiming,
        out: &mut [T],
        mut convert: impl FnMut(f32) -> T,
    ) -> Filled {
        let ch = self.config.channels;
        let frames = out.len() / ch;
        let r = Ordering::Relaxed;
        self.shared.callbacks.fetch_add(1, r);
        let rejected = self.check(&timing).err();
        let relocks = self.clock.relocks();
        match rejected {
            Some(_) => {
                self.shared.rejected.fetch_add(1, r);
            }
            None => {
                self.clock.observe(DeviceTiming {
                    position: self.position,
                    local_now: timing.now,
                    api_callback_ns: timing.api_callback_ns,
                    api_playback_ns: timing.api_playback_ns,
                });
                self.locked_at.get_or_insert(timing.now);
            }
        }
        // A step of a clock counts once; the next timing is checked against this one.
        self.last = Some(timing);
        let relocked = self.clock.relocks() != relocks;

        let silence = convert(0.0);
        let played = match core {
            None => {
                self.shared.missed.fetch_add(1, r);
                false
            }
            Some(core) => self.render(core, timing.now, out, &mut convert, relocked),
        };
        if !played {
            out.fill(silence);
            // What was rendered ahead was for frames that now play as silence.
            self.carry_len = 0;
        } else {
            // A buffer that is not a whole number of frames: the rest is silent.
            out[frames * ch..].fill(silence);
        }
        self.position += frames as u64;
        self.shared.frames.store(self.position, r);
        self.shared
            .rate_bits
            .store(self.clock.rate_hz().to_bits(), r);
        self.shared.relocks.store(self.clock.relocks(), r);
        Filled {
            frames,
            from_core: played,
            rejected,
        }
    }

    /// Renders the core's blocks into `out`; false when the buffer must be silent.
    fn render<A: Copy + Eq, T: Copy>(
        &mut self,
        core: &mut FollowerCore<A>,
        now: LocalInstant,
        out: &mut [T],
        convert: &mut impl FnMut(f32) -> T,
        relocked: bool,
    ) -> bool {
        let r = Ordering::Relaxed;
        let dev_ch = self.config.channels;
        let frames = out.len() / dev_ch;
        let block = core.block_frames();
        let core_ch = core.channels_out();
        let Some(stream_rate) = core.stream().map(|s| s.sample_rate) else {
            // No stream yet: silence, nothing wrong.
            return false;
        };
        if stream_rate != self.config.rate
            || core_ch == 0
            || core_ch > MAX_CHANNELS
            || block * MAX_CHANNELS != self.block.len()
        {
            self.shared.mismatched.fetch_add(1, r);
            return false;
        }
        let settled = self
            .locked_at
            .is_some_and(|t| now - t >= self.config.settle);
        if !settled || self.clock.time_of(self.position).is_none() {
            return false;
        }
        if core_ch != self.block_channels {
            // A role change: what is left of the old block has the old shape.
            self.carry_len = 0;
            self.block_channels = core_ch;
        }
        let mut done = 0;
        let mut rendered_to = None;
        while done < frames {
            if self.carry_len == 0 {
                let first = self.position + done as u64;
                let Some(at) = self.clock.time_of(first) else {
                    return false;
                };
                let buf = &mut self.block[..block * core_ch];
                let rendered = core.render(now, at, first, buf);
                self.shared.blocks.fetch_add(1, r);
                if let Some(report) = rendered.report {
                    self.shared.playing.store(report.state != State::Idle, r);
                    self.shared.underruns.store(report.underruns, r);
                    self.shared
                        .error_ns
                        .store(report.error_ns.round() as i64, r);
                    if report.state != State::Idle && !self.shared.has_first.load(Ordering::Relaxed)
                    {
                        self.shared.first_play.store(at.as_nanos(), r);
                        self.shared.has_first.store(true, Ordering::Release);
                    }
                } else {
                    self.shared.playing.store(false, r);
                }
                self.shared
                    .buffered
                    .store(rendered.buffered_frames as u64, r);
                self.carry_from = 0;
                self.carry_len = block;
                rendered_to = Some(first + block as u64);
            }
            let take = self.carry_len.min(frames - done);
            let src = &self.block[self.carry_from * core_ch..(self.carry_from + take) * core_ch];
            let dst = &mut out[done * dev_ch..(done + take) * dev_ch];
            for (d, s) in dst.chunks_exact_mut(dev_ch).zip(src.chunks_exact(core_ch)) {
                for (c, x) in d.iter_mut().enumerate() {
                    *x = convert(s[c.min(core_ch - 1)]);
                }
            }
            self.carry_from += take;
            self.carry_len -= take;
            done += take;
        }
        // How early the device asks: the last frame rendered now, against when it plays
        // (not at a jump, which says nothing of it, nor while the map is young).
        if let (Some(end), false) = (rendered_to, relocked)
            && let Some(plays) = self.clock.time_of(end)
        {
            let ahead = (plays - now).max(Nanos::ZERO);
            if ahead > self.max_ahead {
                self.max_ahead = ahead;
                self.shared.max_ahead.store(ahead.as_nanos(), r);
            }
        }
        true
    }
}

/// A [`PullRenderer`] over a core that other threads share: the handle a host's audio
/// callback keeps. See the module docs.
///
/// Call order: [`fill`](Self::fill) once per callback. It tries the core's lock for at
/// most [`PullConfig::lock_wait`]; without it the buffer is silent and counted in
/// [`PullStats::missed_callbacks`].
pub struct PullOutput<A> {
    renderer: PullRenderer,
    core: Arc<Mutex<FollowerCore<A>>>,
}

impl<A> std::fmt::Debug for PullOutput<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOutput")
            .field("renderer", &self.renderer)
            .finish_non_exhaustive()
    }
}

impl<A: Copy + Eq> PullOutput<A> {
    /// A handle that renders from `core` for a device as `config` says (this allocates
    /// its block buffer, once).
    pub fn new(
        core: Arc<Mutex<FollowerCore<A>>>,
        config: PullConfig,
    ) -> Result<PullOutput<A>, PullError> {
        let block = core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .block_frames();
        let renderer = PullRenderer::new(config, block)?;
        Ok(PullOutput { renderer, core })
    }

    /// A reader of the counters, for another thread.
    pub fn monitor(&self) -> PullMonitor {
        self.renderer.monitor()
    }

    /// The renderer (its device clock, its settings).
    pub fn renderer(&self) -> &PullRenderer {
        &self.renderer
    }

    /// Fills `out` (interleaved float samples, the device's channels) for a callback timed
    /// `timing`. Allocates nothing; waits at most [`PullConfig::lock_wait`].
    pub fn fill(&mut self, timing: CallbackTiming, out: &mut [f32]) -> Filled {
        self.fill_with(timing, out, |x| x)
    }

    /// As [`fill`](Self::fill), into samples of the device's own type made by `convert`.
    pub fn fill_with<T: Copy>(
        &mut self,
        timing: CallbackTiming,
        out: &mut [T],
        convert: impl FnMut(f32) -> T,
    ) -> Filled {
        let began = std::time::Instant::now();
        let wait = self.renderer.config.lock_wait;
        let mut guard = try_lock_for(&self.core, wait);
        let core = guard.as_deref_mut();
        let filled = self.renderer.fill_with(core, timing, out, convert);
        drop(guard);
        let took = i64::try_from(began.elapsed().as_nanos()).unwrap_or(i64::MAX);
        self.renderer
            .shared
            .slowest
            .fetch_max(took, Ordering::Relaxed);
        filled
    }
}

/// The lock of `core`, if it can be had within `wait`: a spin at first, then short naps
/// (the holder may have been preempted on this very core: let it run).
fn try_lock_for<T>(core: &Mutex<T>, wait: Nanos) -> Option<MutexGuard<'_, T>> {
    let wait = std::time::Duration::from_nanos(wait.as_nanos().max(0).unsigned_abs());
    let started = std::time::Instant::now();
    loop {
        match core.try_lock() {
            Ok(guard) => return Some(guard),
            // A thread that panicked holding it left plain data behind.
            Err(TryLockError::Poisoned(e)) => return Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => {
                let waited = started.elapsed();
                if waited >= wait {
                    return None;
                }
                if waited < SPIN {
                    std::hint::spin_loop();
                } else {
                    std::thread::sleep(NAP.min(wait - waited));
                }
            }
        }
    }
}
