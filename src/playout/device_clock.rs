//! When a sound card's frames leave it, on the node's local clock.
//!
//! A [`VirtualDac`](crate::playout::dac::VirtualDac) emits frame `k` exactly when the local
//! clock says; a real sound card runs on its own crystal and only tells, now and then, where
//! it is. Each audio callback brings a [`DeviceTiming`]: the device position of the buffer's
//! first frame, the local clock read in the callback, and the device API's own timestamps
//! of the callback and of the buffer's playback, on the API's clock (for ALSA through cpal:
//! the time since the stream was made, from the kernel's DMA timestamps where the driver has
//! them).
//!
//! [`DeviceClock`] turns those into a smooth map from position to local time:
//!
//! - **The API's clock onto the local clock.** A callback runs after the instant its
//!   timestamp names, never before, so `local − api` is the offset plus a wake-up delay
//!   that is never negative. The offset is the lower envelope of those samples: the minimum
//!   of each window of [`DeviceClockConfig::offset_window_secs`], extended between minima by
//!   the least-squares trend of the last 16 minima (the two clocks may differ in rate:
//!   `CLOCK_MONOTONIC_RAW` against a drifting local clock). A sample half a millisecond
//!   below the line is a step of a clock: the envelope starts over from it.
//! - **Positions onto time.** A least-squares line through the (position, playback time)
//!   pairs on the API's own clock, where the timestamps are consistent, with older pairs
//!   forgotten exponentially ([`DeviceClockConfig::memory_secs`]). The line is not moved by
//!   one late timestamp, converges from the first few callbacks (no loop transient) and
//!   follows a device whose reports move within seconds. The envelope maps it onto the
//!   local clock when a time is asked for.
//!
//! Pure arithmetic: no allocation, no system calls; the tests feed it synthetic devices.

use crate::time::LocalInstant;

const NANOS_PER_SEC: f64 = 1e9;

/// One audio callback's account of where the device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTiming {
    /// Device frames handed over before this buffer: the position of its first frame.
    pub position: u64,
    /// The local clock, read in the callback.
    pub local_now: LocalInstant,
    /// The device API's timestamp of the callback, on its own clock (ns).
    pub api_callback_ns: i64,
    /// The device API's prediction of when the buffer's first frame plays, same clock (ns).
    pub api_playback_ns: i64,
}

/// How a [`DeviceClock`] filters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceClockConfig {
    /// The time constant, in seconds, with which older callbacks' weight in the line
    /// decays.
    pub memory_secs: f64,
    /// The window over which the lowest API-to-local offset sample is taken, in seconds.
    pub offset_window_secs: f64,
    /// How far a device's rate may be from nominal, in ppm; beyond it the estimate is held
    /// at the limit (a device that runs faster is broken, or is no clock at all).
    pub max_rate_error_ppm: f64,
    /// A phase error beyond this (ns) means the device jumped (an xrun, a suspend): the
    /// line starts afresh from there.
    pub relock_ns: f64,
}

impl Default for DeviceClockConfig {
    /// 3 s of memory; 1 s offset windows; 5000 ppm of rate error (a software device's
    /// reports may move that fast for seconds); re-lock beyond 5 ms.
    fn default() -> DeviceClockConfig {
        DeviceClockConfig {
            memory_secs: 3.0,
            offset_window_secs: 1.0,
            max_rate_error_ppm: 5000.0,
            relock_ns: 5e6,
        }
    }
}

/// The map from a sound card's frame positions to local time. See the module docs.
#[derive(Debug, Clone)]
pub struct DeviceClock {
    config: DeviceClockConfig,
    nominal_ns_per_frame: f64,
    /// The lower envelope of local minus API clock; its value and slope at the latest
    /// callback, and that callback's local time.
    offset: OffsetEnvelope,
    offset_now: f64,
    offset_slope: f64,
    last_local: f64,
    /// The line, on the API's clock: position `n0` plays at `t0` (ns), `per` ns per frame.
    n0: u64,
    t0: f64,
    per: f64,
    /// The weighted sums of the pairs, with the latest pair (position `n0`, observed at
    /// `origin_t`) at the origin.
    sums: Sums,
    origin_t: f64,
    locked: bool,
    observations: u64,
    relocks: u64,
    /// The latest `playback − callback` the API reported (ns).
    latency_ns: i64,
}

/// Exponentially weighted sums for a least-squares line, `x` in frames and `y` in ns,
/// both relative to the latest pair.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    s0: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

impl Sums {
    /// The least-squares slope, once three pairs span some `x`.
    fn slope(&self) -> Option<f64> {
        let var = self.sxx - self.sx * self.sx / self.s0;
        (self.s0 >= 3.0 && var > 0.0).then(|| (self.sxy - self.sx * self.sy / self.s0) / var)
    }

    /// Where the line of slope `k` through the weighted centroid crosses `x = 0`.
    fn at_origin(&self, k: f64) -> f64 {
        (self.sy - k * self.sx) / self.s0
    }

    /// Moves the origin by `dx`, `dy` and scales every weight by `decay`.
    fn shift(&mut self, dx: f64, dy: f64, decay: f64) {
        let Sums {
            s0,
            sx,
            sy,
            sxx,
            sxy,
        } = *self;
        *self = Sums {
            s0: s0 * decay,
            sx: (sx - dx * s0) * decay,
            sy: (sy - dy * s0) * decay,
            sxx: (sxx - 2.0 * dx * sx + dx * dx * s0) * decay,
            sxy: (sxy - dx * sy - dy * sx + dx * dy * s0) * decay,
        };
    }
}

impl DeviceClock {
    /// A clock for a device of `nominal_rate` frames per second.
    pub fn new(nominal_rate: u32, config: DeviceClockConfig) -> DeviceClock {
        let per = NANOS_PER_SEC / f64::from(nominal_rate.max(1));
        DeviceClock {
            config,
            nominal_ns_per_frame: per,
            offset: OffsetEnvelope::new((config.offset_window_secs * NANOS_PER_SEC) as i64),
            offset_now: 0.0,
            offset_slope: 0.0,
            last_local: 0.0,
            n0: 0,
            t0: 0.0,
            per,
            sums: Sums::default(),
            origin_t: 0.0,
            locked: false,
            observations: 0,
            relocks: 0,
            latency_ns: 0,
        }
    }

    /// Takes one callback's timing.
    pub fn observe(&mut self, timing: DeviceTiming) {
        let local = timing.local_now.as_nanos();
        self.offset_now = self
            .offset
            .observe(local, (local - timing.api_callback_ns) as f64);
        self.offset_slope = self.offset.slope;
        self.last_local = local as f64;
        self.latency_ns = timing.api_playback_ns - timing.api_callback_ns;
        // The line is fitted on the API's own clock, where its timestamps are consistent;
        // the envelope maps it onto the local clock only when a time is asked for.
        let observed = timing.api_playback_ns as f64;
        self.observations += 1;

        if self.locked {
            let error = observed - self.predict(timing.position);
            if error.abs() > self.config.relock_ns || timing.position < self.n0 {
                // A jump: the line starts afresh, at the rate it had.
                self.relocks += 1;
                self.locked = false;
            }
        }
        if !self.locked {
            self.locked = true;
            self.sums = Sums::default();
            self.n0 = timing.position;
            self.t0 = observed;
            self.origin_t = observed;
        }
        // Move the sums' origin to this pair (the old origin is the line's anchor, `n0`
        // played at the local time the sums' origin stands for), forget a little, add it.
        let dx = (timing.position - self.n0) as f64;
        let secs = dx * self.per / NANOS_PER_SEC;
        let decay = (-secs / self.config.memory_secs.max(1e-3)).exp();
        let dy = observed - self.origin_t;
        self.sums.shift(dx, dy, decay);
        self.sums.s0 += 1.0;
        self.origin_t = observed;
        self.n0 = timing.position;

        let limit = self.nominal_ns_per_frame * self.config.max_rate_error_ppm * 1e-6;
        if let Some(per) = self.sums.slope() {
            self.per = per.clamp(
                self.nominal_ns_per_frame - limit,
                self.nominal_ns_per_frame + limit,
            );
        }
        self.t0 = observed + self.sums.at_origin(self.per);
    }

    /// When `position` plays, on the API's clock.
    fn predict(&self, position: u64) -> f64 {
        let frames = position as f64 - self.n0 as f64;
        self.t0 + frames * self.per
    }

    /// An API time on the local clock.
    fn to_local(&self, api: f64) -> f64 {
        let local = api + self.offset_now;
        local + self.offset_slope * (local - self.last_local)
    }

    /// A local time on the API's clock.
    fn to_api(&self, local: f64) -> f64 {
        local - self.offset_now - self.offset_slope * (local - self.last_local)
    }

    /// When device frame `position` plays, on the local clock; `None` before the first
    /// observation.
    pub fn time_of(&self, position: u64) -> Option<LocalInstant> {
        if !self.locked {
            return None;
        }
        Some(LocalInstant::from_nanos(
            self.to_local(self.predict(position)).round() as i64,
        ))
    }

    /// The position that plays at local time `at` (the first at or after it), or `None`
    /// before the first observation.
    pub fn position_at(&self, at: LocalInstant) -> Option<u64> {
        if !self.locked {
            return None;
        }
        let frames = (self.to_api(at.as_nanos() as f64) - self.t0) / self.per;
        Some((self.n0 as f64 + frames.ceil()).max(0.0) as u64)
    }

    /// The device's rate in frames per local second, as the line has it.
    pub fn rate_hz(&self) -> f64 {
        NANOS_PER_SEC / (self.per * (1.0 + self.offset_slope))
    }

    /// The API's latest `playback − callback` (ns): how far ahead of playing the device
    /// asks for audio.
    pub fn api_latency_ns(&self) -> i64 {
        self.latency_ns
    }

    /// Callbacks observed.
    pub fn observations(&self) -> u64 {
        self.observations
    }

    /// Times the line started afresh after a jump.
    pub fn relocks(&self) -> u64 {
        self.relocks
    }
}

/// A drop of the offset this large (ns) below the envelope is a step of one of the clocks.
const STEP_NS: f64 = 500e3;

/// Windows kept for the offset's trend.
const TREND_WINDOWS: usize = 16;

/// The lower envelope of `local − api` samples: window minima and their trend.
#[derive(Debug, Clone)]
struct OffsetEnvelope {
    window_ns: i64,
    /// The current window: its start, and its lowest sample after the trend is taken out
    /// (local time, value).
    window_start: Option<i64>,
    window_min: Option<(i64, f64)>,
    /// The minima of closed windows, oldest first (a ring of `len` from `head`).
    minima: [(i64, f64); TREND_WINDOWS],
    head: usize,
    len: usize,
    /// The line: `value + slope·(t − at)`.
    at: i64,
    value: f64,
    slope: f64,
    started: bool,
}

impl OffsetEnvelope {
    fn new(window_ns: i64) -> OffsetEnvelope {
        OffsetEnvelope {
            window_ns: window_ns.max(1),
            window_start: None,
            window_min: None,
            minima: [(0, 0.0); TREND_WINDOWS],
            head: 0,
            len: 0,
            at: 0,
            value: 0.0,
            slope: 0.0,
            started: false,
        }
    }

    fn line(&self, t: i64) -> f64 {
        self.value + self.slope * (t - self.at) as f64
    }

    /// Takes a sample at local time `t`; returns the envelope there.
    fn observe(&mut self, t: i64, sample: f64) -> f64 {
        if !self.started || sample < self.line(t) - STEP_NS {
            // The first sample, or the clocks stepped: start over from here.
            self.started = true;
            self.len = 0;
            self.window_min = None;
            self.window_start = None;
            self.at = t;
            self.value = sample;
        }
        // The window's lowest sample after the trend is taken out.
        let slope = self.slope;
        let detrended = |(at, v): (i64, f64)| v - slope * at as f64;
        if self
            .window_min
            .is_none_or(|m| detrended((t, sample)) < detrended(m))
        {
            self.window_min = Some((t, sample));
        }
        if self.len == 0
            && let Some((at, v)) = self.window_min
        {
            // No window has closed yet: the lowest sample so far.
            self.at = at;
            self.value = v;
        }
        let start = *self.window_start.get_or_insert(t);
        if t - start >= self.window_ns
            && let Some(min) = self.window_min.take()
        {
            self.window_start = Some(t);
            self.push_minimum(min);
        }
        self.line(t)
    }

    /// Closes a window: the line is the least-squares fit through the kept minima (each a
    /// few µs above the true offset, the same few for all), at the newest one's time.
    fn push_minimum(&mut self, min: (i64, f64)) {
        if self.len == TREND_WINDOWS {
            self.head = (self.head + 1) % TREND_WINDOWS;
            self.len -= 1;
        }
        self.minima[(self.head + self.len) % TREND_WINDOWS] = min;
        self.len += 1;
        let points = (0..self.len).map(|i| self.minima[(self.head + i) % TREND_WINDOWS]);
        let n = self.len as f64;
        let (mt, mv) = points.clone().fold((0.0, 0.0), |(a, b), (t, v)| {
            (a + (t - min.0) as f64 / n, b + v / n)
        });
        if self.len >= 2 {
            let (num, den) = points.fold((0.0, 0.0), |(num, den), (t, v)| {
                let dt = (t - min.0) as f64 - mt;
                (num + dt * (v - mv), den + dt * dt)
            });
            if den > 0.0 {
                self.slope = num / den;
            }
        }
        self.at = min.0;
        self.value = mv - self.slope * mt;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated device: `rate_ppm` off nominal, `period` frames per callback, an API clock
    /// `api_offset` behind the local clock and `rel_ppm` slower, wake-ups late by up to
    /// `wake_jitter` ns, and timestamps jittered by up to `ts_jitter` ns.
    struct SimDevice {
        rate: f64,
        period: u64,
        api_offset: f64,
        rel_ppm: f64,
        wake_jitter: f64,
        ts_jitter: f64,
        latency_frames: u64,
        rng: u64,
        position: u64,
        /// Added to every frame's play time (an xrun pushes the rest later).
        shift: f64,
    }

    impl SimDevice {
        fn uniform(&mut self) -> f64 {
            // xorshift64*
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }

        /// The true local time at which `position` plays.
        fn true_time(&self, position: u64) -> f64 {
            1e9 * position as f64 / self.rate + self.shift
        }

        fn api(&self, local: f64) -> f64 {
            (local - self.api_offset) * (1.0 - self.rel_ppm * 1e-6)
        }

        fn next(&mut self) -> DeviceTiming {
            let position = self.position;
            // The callback for a buffer comes `latency_frames` before it plays.
            let play = self.true_time(position);
            let interrupt = play - 1e9 * self.latency_frames as f64 / self.rate;
            let ts = interrupt + self.ts_jitter * (self.uniform() - 0.5);
            let wake = interrupt + self.wake_jitter * self.uniform();
            self.position += self.period;
            DeviceTiming {
                position,
                local_now: LocalInstant::from_nanos(wake.round() as i64),
                api_callback_ns: self.api(ts).round() as i64,
                api_playback_ns: self.api(ts + (play - interrupt)).round() as i64,
            }
        }
    }

    fn device(rate_ppm: f64, seed: u64) -> SimDevice {
        SimDevice {
            rate: 48_000.0 * (1.0 + rate_ppm * 1e-6),
            period: 480,
            api_offset: 3.7e9,
            rel_ppm: 40.0,
            wake_jitter: 300e3,
            ts_jitter: 5e3,
            latency_frames: 960,
            rng: 0x9E37_79B9_7F4A_7C15 ^ seed,
            position: 1_000,
            shift: 0.0,
        }
    }

    /// Runs `secs` of callbacks; returns the worst |error| (ns) of `time_of` over the last
    /// half, and the clock.
    fn run(dev: &mut SimDevice, secs: f64) -> (f64, DeviceClock) {
        let mut clock = DeviceClock::new(48_000, DeviceClockConfig::default());
        let callbacks = (secs * dev.rate / dev.period as f64) as usize;
        let mut worst: f64 = 0.0;
        for i in 0..callbacks {
            clock.observe(dev.next());
            if i > callbacks / 2 {
                // A frame a little ahead, as the render thread asks.
                let p = dev.position + 2 * dev.period;
                let got = clock.time_of(p).unwrap().as_nanos() as f64;
                worst = worst.max((got - dev.true_time(p)).abs());
            }
        }
        (worst, clock)
    }

    #[test]
    fn tracks_a_jittery_device_to_microseconds() {
        for (ppm, seed) in [(0.0, 1), (120.0, 2), (-150.0, 3)] {
            let mut dev = device(ppm, seed);
            let (worst, clock) = run(&mut dev, 30.0);
            // Up to 300 µs of wake-up delay and 5 µs of timestamp jitter: after 15 s the
            // map is within 10 µs (the lowest of a window's 100 wake-ups is a few µs late).
            eprintln!("{ppm:+} ppm: worst {:.1} µs", worst / 1e3);
            assert!(worst < 10e3, "{ppm} ppm: worst error {worst} ns");
            let rate_err = clock.rate_hz() / dev.rate - 1.0;
            assert!(rate_err.abs() < 3e-6, "{ppm} ppm: rate error {rate_err}");
            assert_eq!(clock.relocks(), 0);
        }
    }

    #[test]
    fn a_constant_wake_up_delay_is_removed() {
        // The same device, but the wake-up delay is a constant 2 ms: the offset envelope
        // must remove it entirely (the API timestamps carry the truth).
        let mut dev = device(50.0, 4);
        dev.wake_jitter = 0.0;
        dev.api_offset += 2e6;
        let (worst, _) = run(&mut dev, 20.0);
        assert!(worst < 15e3, "worst error {worst} ns");
    }

    #[test]
    fn relocks_after_a_jump_and_holds_an_absurd_rate_at_the_limit() {
        let mut dev = device(0.0, 5);
        let mut clock = DeviceClock::new(48_000, DeviceClockConfig::default());
        for _ in 0..500 {
            clock.observe(dev.next());
        }
        // An xrun: the device stops for 100 ms; the frames handed over since play later.
        dev.shift += 100e6;
        for _ in 0..500 {
            clock.observe(dev.next());
        }
        assert_eq!(clock.relocks(), 1);
        let p = dev.position;
        let err = clock.time_of(p).unwrap().as_nanos() as f64 - dev.true_time(p);
        assert!(err.abs() < 50e3, "after the jump: {err} ns");

        // A "device" that takes frames 100 times faster than real time (ALSA's null PCM).
        let mut fast = device(0.0, 6);
        fast.rate *= 100.0;
        let (_, clock) = run(&mut fast, 0.5);
        // Held at the limit: frames ahead are paced in (nearly) real time, not at its pace.
        let p = fast.position;
        let second =
            clock.time_of(p + 48_000).unwrap().as_nanos() - clock.time_of(p).unwrap().as_nanos();
        assert!(
            (second - 1_000_000_000).abs() <= 500_001,
            "48000 frames in {second} ns"
        );
    }

    #[test]
    fn position_at_inverts_time_of() {
        let mut dev = device(80.0, 7);
        let (_, clock) = run(&mut dev, 5.0);
        for p in [dev.position, dev.position + 12_345] {
            let t = clock.time_of(p).unwrap();
            let q = clock.position_at(t).unwrap();
            assert!(q.abs_diff(p) <= 1, "{p} -> {t:?} -> {q}");
        }
        assert!(
            DeviceClock::new(48_000, DeviceClockConfig::default())
                .time_of(0)
                .is_none()
        );
    }
}
