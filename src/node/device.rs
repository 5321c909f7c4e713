//! A sound card as a follower's DAC, through cpal (the `cpal` feature).
//!
//! The output thread renders blocks as before; they go into a lock-free ring that the
//! device's callback drains. The callback does three things, none of which allocates or
//! locks:
//!
//! - it sends a [`DeviceTiming`] (its position, the local clock, cpal's callback and
//!   playback timestamps) to the output thread, which feeds them to a [`DeviceClock`];
//! - it plays silence until the device position the output thread chose as the start, then
//!   the ring's frames, one device frame each;
//! - when the ring runs dry it plays silence and counts the frames: every frame rendered
//!   after that plays that much later, so ring frame `n` plays at device position
//!   `start + n + underrun frames`.
//!
//! The output thread asks the [`DeviceClock`] when that position plays and renders the block
//! for it `lead` before, plus however far ahead the device asks for audio. The playout
//! controller sees the device's true rate through those times and steers the resampler to
//! it, as it does for the virtual DAC.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use ringbuf::HeapRb;
use ringbuf::traits::{Consumer, Observer, Producer, Split};

use crate::node::NodeError;
use crate::node::clock::NodeClock;
use crate::node::ptp::lock;
use crate::playout::device_clock::{DeviceClock, DeviceClockConfig, DeviceTiming};
use crate::time::{LocalInstant, Nanos};

/// How much audio the ring between the output thread and the callback holds.
const RING_SECS: f64 = 0.5;
/// Timing reports the callback may queue before the output thread reads them.
const TIMING_QUEUE: usize = 256;
/// How long a device may take to run its first callback.
const START_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the device's pace is watched before the start is placed.
const PACE_CHECK: Nanos = Nanos::from_millis(100);
/// The pace a device must keep, against real time, to be taken for a clock: a PCM that
/// takes audio as fast as it is given (ALSA's `null`) is not one.
const PACE_RANGE: std::ops::RangeInclusive<f64> = 0.5..=2.0;
/// Margin for the callback's own scheduling, on top of the device's request-ahead.
const SCHEDULING_MARGIN: Nanos = Nanos::from_millis(5);
const NOT_STARTED: u64 = u64::MAX;
/// The most a device may take audio ahead of playing it that is planned for.
const MAX_PULL_AHEAD: Nanos = Nanos::from_millis(300);

/// What the callback and the output thread share.
struct Shared {
    /// The device position at which ring frame 0 plays; `NOT_STARTED` before the output
    /// thread has chosen it.
    start_at: AtomicU64,
    /// Device frames played as silence, after the start, because the ring was empty.
    underrun_frames: AtomicU64,
    /// Callbacks that found the ring short, after the start.
    underrun_events: AtomicU64,
    /// The error that stopped the device, from cpal's error callback or the pace check.
    error: Mutex<Option<String>>,
    /// Errors the stream went on after.
    transient_errors: AtomicU64,
}

type Ring<T> = <HeapRb<T> as Split>::Prod;
type RingRx<T> = <HeapRb<T> as Split>::Cons;

/// An open sound card, playing.
pub(crate) struct DeviceDac {
    _stream: cpal::Stream,
    samples: Ring<f32>,
    timings: RingRx<DeviceTiming>,
    shared: Arc<Shared>,
    clock: NodeClock,
    device_clock: DeviceClock,
    channels: usize,
    rate: u32,
    /// Ring frames pushed.
    frames: u64,
    start_at: Option<u64>,
    /// The furthest ahead of its playing the device has taken a frame (its buffer, which
    /// may fill and drain in bursts, plus a callback's block).
    pull_ahead: Nanos,
    /// The lead asked for.
    lead: Nanos,
    /// The latest callback's size in frames, and the position it started at.
    period: u64,
    last_position: Option<u64>,
    /// When the first callback came, and the position and time of the first one a
    /// `PACE_CHECK` later (the device has filled its buffer by then), for the pace check.
    first_seen: Option<LocalInstant>,
    first: Option<(u64, LocalInstant)>,
    opened: Instant,
    name: String,
}

/// The device `name` (an ALSA PCM name such as `default`, `pulse` or `hw:0,0`, or a
/// device's description), or the host's default output.
fn find_device(host: &cpal::Host, name: Option<&str>) -> Result<cpal::Device, NodeError> {
    let fail = |reason: String| NodeError::Device { reason };
    let Some(name) = name else {
        return host
            .default_output_device()
            .ok_or_else(|| fail("this machine has no default output device".into()));
    };
    let devices = host
        .output_devices()
        .map_err(|e| fail(format!("cannot list output devices: {e}")))?;
    let mut seen = Vec::new();
    for device in devices {
        let id = device
            .id()
            .map(|id| id.id().to_string())
            .unwrap_or_default();
        let description = device.to_string();
        if id == name || description == name {
            return Ok(device);
        }
        seen.push(id);
    }
    // Not every PCM an ALSA configuration defines is listed; try the name as an id.
    let id = cpal::DeviceId::new(host.id(), name);
    if let Some(device) = host.device_by_id(&id) {
        return Ok(device);
    }
    Err(fail(format!(
        "no output device named '{name}'; the host lists: {}",
        if seen.is_empty() {
            "none".to_string()
        } else {
            seen.join(", ")
        }
    )))
}

/// The configuration to open: `rate`, at least `channels` channels (the fewest such), the
/// best sample format the device takes.
fn pick_config(
    device: &cpal::Device,
    label: &str,
    rate: u32,
    channels: usize,
    period_frames: Option<u32>,
) -> Result<(cpal::StreamConfig, SampleFormat), NodeError> {
    let fail = |reason: String| NodeError::Device {
        reason: format!("{label}: {reason}"),
    };
    let ranges = device
        .supported_output_configs()
        .map_err(|e| fail(format!("cannot read the device's configurations: {e}")))?;
    let rank = |f: SampleFormat| match f {
        SampleFormat::F32 => Some(0),
        SampleFormat::I32 => Some(1),
        SampleFormat::I16 => Some(2),
        _ => None,
    };
    let mut best: Option<(usize, u8, SampleFormat)> = None;
    let mut offered = Vec::new();
    for r in ranges {
        offered.push(format!(
            "{} ch {}–{} Hz {:?}",
            r.channels(),
            r.min_sample_rate(),
            r.max_sample_rate(),
            r.sample_format()
        ));
        let ch = usize::from(r.channels());
        let Some(score) = rank(r.sample_format()) else {
            continue;
        };
        if ch < channels || rate < r.min_sample_rate() || rate > r.max_sample_rate() {
            continue;
        }
        if best.is_none_or(|(bc, bs, _)| (ch, score) < (bc, bs)) {
            best = Some((ch, score, r.sample_format()));
        }
    }
    let Some((ch, _, format)) = best else {
        return Err(fail(format!(
            "the device takes no {channels}-channel {rate} Hz stream in f32, i32 or i16; it \
             offers: {}",
            offered.join("; ")
        )));
    };
    let config = cpal::StreamConfig {
        channels: ch as u16,
        sample_rate: rate,
        buffer_size: match period_frames {
            Some(n) => cpal::BufferSize::Fixed(n),
            None => cpal::BufferSize::Default,
        },
    };
    Ok((config, format))
}

impl DeviceDac {
    /// Opens `name` (or the default output) at `rate` with at least `channels` channels and
    /// callbacks of `period_frames` (or the device's default), and starts it playing
    /// silence.
    pub(crate) fn open(
        name: Option<&str>,
        rate: u32,
        channels: usize,
        period_frames: Option<u32>,
        clock: NodeClock,
    ) -> Result<DeviceDac, NodeError> {
        let host = cpal::default_host();
        let device = find_device(&host, name)?;
        let label = match name {
            Some(name) => format!("device '{name}'"),
            None => "the default output device".to_string(),
        };
        let (config, format) = pick_config(&device, &label, rate, channels, period_frames)?;
        let device_channels = usize::from(config.channels);
        let capacity = ((f64::from(rate) * RING_SECS) as usize).max(1024) * device_channels;
        let (samples, ring_rx) = HeapRb::<f32>::new(capacity).split();
        let (timing_tx, timings) = HeapRb::<DeviceTiming>::new(TIMING_QUEUE).split();
        let shared = Arc::new(Shared {
            start_at: AtomicU64::new(NOT_STARTED),
            underrun_frames: AtomicU64::new(0),
            underrun_events: AtomicU64::new(0),
            error: Mutex::new(None),
            transient_errors: AtomicU64::new(0),
        });
        let callback = Callback {
            ring: ring_rx,
            timings: timing_tx,
            shared: Arc::clone(&shared),
            clock: clock.clone(),
            channels: device_channels,
            position: 0,
            scratch: [0.0; 512],
        };
        let stream = match format {
            SampleFormat::F32 => build::<f32>(&device, config, callback, &shared),
            SampleFormat::I32 => build::<i32>(&device, config, callback, &shared),
            _ => build::<i16>(&device, config, callback, &shared),
        }?;
        stream.play().map_err(|e| NodeError::Device {
            reason: format!("cannot start the device: {e}"),
        })?;
        Ok(DeviceDac {
            _stream: stream,
            samples,
            timings,
            shared,
            clock,
            device_clock: DeviceClock::new(rate, DeviceClockConfig::default()),
            channels: device_channels,
            rate,
            frames: 0,
            start_at: None,
            pull_ahead: Nanos::ZERO,
            lead: Nanos::ZERO,
            period: 0,
            last_position: None,
            first_seen: None,
            first: None,
            opened: Instant::now(),
            name: match device.id() {
                Ok(id) => format!("'{}'", id.id()),
                Err(_) => format!("'{device}'"),
            },
        })
    }

    /// The device's channels (at least the ones asked for).
    pub(crate) fn channels(&self) -> usize {
        self.channels
    }

    /// Its rate.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// Its frames per local second, as measured.
    pub(crate) fn rate_hz(&self) -> f64 {
        self.device_clock.rate_hz()
    }

    /// Device frames played as silence because the output thread was late.
    pub(crate) fn underrun_frames(&self) -> u64 {
        self.shared.underrun_frames.load(Ordering::Relaxed)
    }

    /// Callbacks that found nothing to play, after the start.
    pub(crate) fn underruns(&self) -> u64 {
        self.shared.underrun_events.load(Ordering::Relaxed)
    }

    /// The error that stopped the device, if one did.
    pub(crate) fn error(&self) -> Option<String> {
        lock(&self.shared.error).clone()
    }

    fn drain_timings(&mut self) {
        while let Some(t) = self.timings.try_pop() {
            if let Some(prev) = self.last_position {
                self.period = t.position.saturating_sub(prev).max(1);
            }
            self.last_position = Some(t.position);
            let seen = *self.first_seen.get_or_insert(t.local_now);
            if t.local_now - seen >= PACE_CHECK {
                self.first.get_or_insert((t.position, t.local_now));
            }
            let relocks = self.device_clock.relocks();
            self.device_clock.observe(t);
            if self.device_clock.relocks() != relocks {
                // A jump: the line starts at this one callback, which says nothing yet
                // about how far ahead the device pulls.
                continue;
            }
            // The callback took frames up to `position + period` now: each must have been
            // in the ring that long before it plays, whatever the device's buffer did.
            if let Some(last) = self.device_clock.time_of(t.position + self.period) {
                let pulled = (last - t.local_now).clamp(Nanos::ZERO, MAX_PULL_AHEAD);
                if pulled > self.pull_ahead {
                    self.pull_ahead = pulled;
                }
            }
        }
    }

    /// Waits until the next block (`frames` frames) is due, `lead` before it plays; returns
    /// when it plays (local clock) and its device position. `None` when `shutdown` is set
    /// first, or the device never started (its error says why).
    ///
    /// `latency` is the group's target latency and `packet` its packet duration: a block is
    /// rendered from packets that arrive `latency` before it plays, so a card that takes
    /// audio earlier than `latency − packet − 5 ms` cannot play in step. That is an error
    /// that names both figures.
    pub(crate) fn wait_next(
        &mut self,
        frames: usize,
        lead: Nanos,
        latency: Nanos,
        packet: Nanos,
        shutdown: &AtomicBool,
    ) -> Option<(LocalInstant, u64)> {
        let needed = frames * self.channels;
        let budget = latency - packet - SCHEDULING_MARGIN;
        while !shutdown.load(Ordering::Acquire) {
            self.drain_timings();
            if self.start_at.is_some() && self.ahead() > budget {
                let ms = |n: Nanos| n.as_nanos() as f64 / 1e6;
                lock(&self.shared.error).get_or_insert_with(|| {
                    format!(
                        "device {} takes audio {:.0} ms before it plays, more than the group's \
                         {:.0} ms latency allows ({:.0} ms); raise the leader's latency or give \
                         the card a smaller buffer",
                        self.name,
                        ms(self.ahead()),
                        ms(latency),
                        ms(budget)
                    )
                });
                return None;
            }
            let now = self.clock.now();
            let Some(start) = self.start_at else {
                match self.pace() {
                    Some(pace) if PACE_RANGE.contains(&pace) => self.place_start(now, lead),
                    Some(pace) => {
                        lock(&self.shared.error).get_or_insert_with(|| {
                            format!(
                                "device {} takes audio at {pace:.1} times real time: it is not \
                                 paced by a clock (ALSA's null PCM is not)",
                                self.name
                            )
                        });
                        return None;
                    }
                    None if self.opened.elapsed() > START_TIMEOUT => {
                        lock(&self.shared.error).get_or_insert_with(|| {
                            format!("device {} ran no callback in {START_TIMEOUT:?}", self.name)
                        });
                        return None;
                    }
                    None => std::thread::sleep(Duration::from_millis(2)),
                }
                continue;
            };
            let position = start + self.frames + self.underrun_frames();
            let at = self.device_clock.time_of(position)?;
            if self.samples.vacant_len() < needed {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            self.lead = lead;
            let due = at - self.ahead();
            if now >= due {
                return Some((at, position));
            }
            // Short naps: the device's timing arrives meanwhile.
            let nap = Nanos::from_millis(10);
            let wake = if due - now > nap { now + nap } else { due };
            self.clock.sleep_until(wake);
        }
        None
    }

    /// Device seconds per local second over a `PACE_CHECK`, after the first one (which
    /// the device spends filling its buffer).
    fn pace(&self) -> Option<f64> {
        let (p0, t0) = self.first?;
        let p1 = self.last_position?;
        let span = self.clock.now() - t0;
        if span < PACE_CHECK {
            return None;
        }
        Some((p1 - p0) as f64 / f64::from(self.rate.max(1)) / span.as_secs_f64())
    }

    /// How long before a frame plays it is rendered: the lead asked for, plus the furthest
    /// ahead the device has taken audio so far, plus a margin for scheduling.
    fn ahead(&self) -> Nanos {
        self.lead + self.pull_ahead + SCHEDULING_MARGIN
    }

    /// Chooses the device position ring frame 0 plays at: the first one far enough ahead.
    fn place_start(&mut self, now: LocalInstant, lead: Nanos) {
        self.lead = lead;
        let Some(start) = self.device_clock.position_at(now + self.ahead()) else {
            return;
        };
        self.shared.start_at.store(start, Ordering::Release);
        self.start_at = Some(start);
    }

    /// Queues one block (interleaved, the device's channels) for the device.
    pub(crate) fn emit(&mut self, block: &[f32]) {
        let pushed = self.samples.push_slice(block);
        debug_assert_eq!(pushed, block.len(), "wait_next checked the room");
        self.frames += (pushed / self.channels) as u64;
    }
}

/// What the device's callback owns.
struct Callback {
    ring: RingRx<f32>,
    timings: Ring<DeviceTiming>,
    shared: Arc<Shared>,
    clock: NodeClock,
    channels: usize,
    /// Device frames handed over so far.
    position: u64,
    scratch: [f32; 512],
}

impl Callback {
    fn fill<T: SizedSample + FromSample<f32>>(
        &mut self,
        data: &mut [T],
        info: &cpal::OutputCallbackInfo,
    ) {
        let ts = info.timestamp();
        let frames = data.len() / self.channels;
        // A full queue drops the report: the clock has plenty.
        let _ = self.timings.try_push(DeviceTiming {
            position: self.position,
            local_now: self.clock.now(),
            api_callback_ns: ts.callback.as_nanos() as i64,
            api_playback_ns: ts.playback.as_nanos() as i64,
        });
        let start = self.shared.start_at.load(Ordering::Acquire);
        let lead_in = if start == NOT_STARTED {
            frames
        } else {
            start.saturating_sub(self.position).min(frames as u64) as usize
        };
        let silence = T::from_sample(0.0f32);
        let (quiet, rest) = data.split_at_mut(lead_in * self.channels);
        quiet.fill(silence);
        let mut filled = 0;
        while filled < rest.len() {
            let want = (rest.len() - filled).min(self.scratch.len());
            let got = self.ring.pop_slice(&mut self.scratch[..want]);
            if got == 0 {
                break;
            }
            for (d, s) in rest[filled..filled + got]
                .iter_mut()
                .zip(&self.scratch[..got])
            {
                *d = T::from_sample(*s);
            }
            filled += got;
        }
        rest[filled..].fill(silence);
        let missing = (rest.len() - filled) / self.channels;
        if missing > 0 {
            self.shared
                .underrun_frames
                .fetch_add(missing as u64, Ordering::Relaxed);
            self.shared.underrun_events.fetch_add(1, Ordering::Relaxed);
        }
        self.position += frames as u64;
    }
}

fn build<T: SizedSample + FromSample<f32>>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut callback: Callback,
    shared: &Arc<Shared>,
) -> Result<cpal::Stream, NodeError> {
    let errors = Arc::clone(shared);
    device
        .build_output_stream(
            config,
            move |data: &mut [T], info: &cpal::OutputCallbackInfo| callback.fill(data, info),
            move |e: cpal::Error| {
                use cpal::ErrorKind as K;
                match e.kind() {
                    // The stream is gone: the output has stopped.
                    K::DeviceNotAvailable
                    | K::HostUnavailable
                    | K::PermissionDenied
                    | K::StreamInvalidated => {
                        lock(&errors.error).get_or_insert_with(|| format!("device failed: {e}"));
                    }
                    // An xrun, a backend's passing complaint (the ALSA pulse plugin's delay
                    // query fails until the server has timing): the stream goes on, and the
                    // device clock sees any jump.
                    _ => {
                        errors.transient_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
            None,
        )
        .map_err(|e| NodeError::Device {
            reason: format!("cannot open the device: {e}"),
        })
}
