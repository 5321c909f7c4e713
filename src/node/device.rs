//! A sound card as a follower's DAC, through cpal (the `cpal` feature).
//!
//! The card's callback is a host audio callback like any other: it hands its buffer and
//! cpal's timestamps (the callback's instant and when the buffer's first frame plays) to
//! a [`PullOutput`], which feeds the timestamps to its
//! [`DeviceClock`](crate::playout::device_clock::DeviceClock) and fills the buffer from the
//! follower's core, without allocating and without waiting for the core's lock longer than
//! its `lock_wait`. The output thread only watches: that the card keeps a clock's pace,
//! that it does not ask for audio earlier than the group's latency allows, that cpal
//! reports no error.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use crate::core::{CallbackTiming, FollowerCore, PullConfig, PullMonitor, PullOutput, PullStats};
use crate::node::NodeError;
use crate::node::clock::NodeClock;
use crate::node::ptp::lock;
use crate::time::{LocalInstant, Nanos};

/// How long a device may take to run its first callback.
const START_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the device's pace is watched, after its first callbacks, before it is judged.
const PACE_CHECK: Nanos = Nanos::from_millis(100);
/// The pace a device must keep, against real time, to be taken for a clock: a PCM that
/// takes audio as fast as it is given (ALSA's `null`) is not one.
const PACE_RANGE: std::ops::RangeInclusive<f64> = 0.5..=2.0;
/// How long the callback waits for the core's lock before it plays silence.
const LOCK_WAIT: Nanos = Nanos::from_millis(4);
/// Margin for the callback's own scheduling.
const SCHEDULING_MARGIN: Nanos = Nanos::from_millis(5);

/// What the callback and the output thread share besides the pull counters.
struct Shared {
    /// The error that stopped the device, from cpal's error callback or the checks.
    error: Mutex<Option<String>>,
    /// Errors the stream went on after.
    transient_errors: AtomicU64,
}

/// An open sound card, playing from the follower's core.
pub(crate) struct DeviceDac {
    _stream: cpal::Stream,
    monitor: PullMonitor,
    shared: Arc<Shared>,
    clock: NodeClock,
    channels: usize,
    rate: u32,
    /// When the device had run its first callbacks, and the frames it had taken then.
    first: Option<(u64, LocalInstant)>,
    paced: bool,
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
    /// callbacks of `period_frames` (or the device's default), playing from `core`.
    pub(crate) fn open(
        name: Option<&str>,
        rate: u32,
        channels: usize,
        period_frames: Option<u32>,
        clock: NodeClock,
        core: Arc<Mutex<FollowerCore<SocketAddr>>>,
    ) -> Result<DeviceDac, NodeError> {
        let host = cpal::default_host();
        let device = find_device(&host, name)?;
        let label = match name {
            Some(name) => format!("device '{name}'"),
            None => "the default output device".to_string(),
        };
        let (config, format) = pick_config(&device, &label, rate, channels, period_frames)?;
        let device_channels = usize::from(config.channels);
        let mut pull = PullConfig::new(rate, device_channels);
        // A card's callback runs well ahead of its buffer's playing (tens of ms through
        // ALSA): it can wait out a network thread preempted while it holds the core.
        pull.lock_wait = LOCK_WAIT;
        let output = PullOutput::new(core, pull).map_err(|e| NodeError::Device {
            reason: format!("{label}: {e}"),
        })?;
        let monitor = output.monitor();
        let shared = Arc::new(Shared {
            error: Mutex::new(None),
            transient_errors: AtomicU64::new(0),
        });
        let callback = Callback {
            output,
            clock: clock.clone(),
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
            monitor,
            shared,
            clock,
            channels: device_channels,
            rate,
            first: None,
            paced: false,
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

    /// What the callback did so far.
    pub(crate) fn stats(&self) -> PullStats {
        self.monitor.stats()
    }

    /// The error that stopped the device, if one did.
    pub(crate) fn error(&self) -> Option<String> {
        lock(&self.shared.error).clone()
    }

    /// Checks the device: that it ran, at a clock's pace, and asks for audio no earlier
    /// than the group allows. `latency` is the group's target latency and `packet` its
    /// packet duration: a frame is rendered from packets that arrive `latency` before it
    /// plays, so a card that takes audio earlier than `latency − packet − 5 ms` cannot
    /// play in step. Returns the error that stops it, once; `None` while it is fine.
    pub(crate) fn check(&mut self, latency: Nanos, packet: Nanos) -> Option<String> {
        if let Some(e) = self.error() {
            return Some(e);
        }
        let stats = self.monitor.stats();
        let now = self.clock.now();
        let error = if stats.callbacks == 0 {
            (self.opened.elapsed() > START_TIMEOUT)
                .then(|| format!("device {} ran no callback in {START_TIMEOUT:?}", self.name))
        } else if !self.paced {
            // The device's pace over a `PACE_CHECK` after its first ones (which it spends
            // filling its buffer).
            let (p0, t0) = *self.first.get_or_insert((stats.frames, now));
            let span = now - t0;
            if span >= PACE_CHECK {
                let pace =
                    (stats.frames - p0) as f64 / f64::from(self.rate.max(1)) / span.as_secs_f64();
                if PACE_RANGE.contains(&pace) {
                    self.paced = true;
                    None
                } else {
                    Some(format!(
                        "device {} takes audio at {pace:.1} times real time: it is not paced \
                         by a clock (ALSA's null PCM is not)",
                        self.name
                    ))
                }
            } else {
                None
            }
        } else {
            let budget = latency - packet - SCHEDULING_MARGIN;
            let ahead = stats.max_ahead + SCHEDULING_MARGIN;
            let ms = |n: Nanos| n.as_nanos() as f64 / 1e6;
            (ahead > budget).then(|| {
                format!(
                    "device {} takes audio {:.0} ms before it plays, more than the group's {:.0} \
                     ms latency allows ({:.0} ms); raise the leader's latency or give the card a \
                     smaller buffer",
                    self.name,
                    ms(ahead),
                    ms(latency),
                    ms(budget)
                )
            })
        };
        if let Some(e) = &error {
            lock(&self.shared.error).get_or_insert_with(|| e.clone());
        }
        error
    }
}

/// What the device's callback owns.
struct Callback {
    output: PullOutput<SocketAddr>,
    clock: NodeClock,
}

impl Callback {
    fn fill<T: SizedSample + FromSample<f32>>(
        &mut self,
        data: &mut [T],
        info: &cpal::OutputCallbackInfo,
    ) {
        let ts = info.timestamp();
        let timing = CallbackTiming {
            now: self.clock.now(),
            api_callback_ns: i64::try_from(ts.callback.as_nanos()).unwrap_or(i64::MAX),
            api_playback_ns: i64::try_from(ts.playback.as_nanos()).unwrap_or(i64::MAX),
        };
        let _ = self.output.fill_with(timing, data, T::from_sample);
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
