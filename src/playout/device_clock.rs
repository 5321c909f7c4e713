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
//!   one late timestamp and converges from the first few callbacks (no loop transient).
//!   The envelope maps it onto the local clock when a time is asked for.
//! - **The card's long-term pace.** A card's reports can go astray for seconds while it
//!   keeps its pace: PulseAudio's, when it resizes its buffer, imply rates hundreds of ppm
//!   off what its sink consumes. What a card cannot fake is how many frames it takes: a
//!   second least-squares line through (position, local time of the callback), over a
//!   long memory ([`DeviceClockConfig::pull_memory_secs`]), is its long-term pull rate.
//!   Its standard error bounds the reports' slope: early on, when the pull line knows
//!   little, the reports decide; as it learns, the rate is held within a few ppm of it.
//!   A report further than [`DeviceClockConfig::relock_ns`] from the line is a jump only
//!   if the callbacks moved with it (an xrun moves both); otherwise it is an outlier,
//!   counted and left out, unless the reports stay off for
//!   [`DeviceClockConfig::outlier_hold_secs`].
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

/// How a [`DeviceClock`] filters. [`DeviceClockConfig::default`] gives the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
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
    /// The time constant, in seconds, of the pull line's memory (the card's long-term
    /// rate).
    pub pull_memory_secs: f64,
    /// How long reports may stay further than `relock_ns` from the line, without the
    /// callbacks moving, before the line starts afresh from them anyway.
    pub outlier_hold_secs: f64,
}

impl Default for DeviceClockConfig {
    /// 30 s of memory for the reports, 60 s for the pull line; 1 s offset windows; 5000
    /// ppm of rate error (a software device's reports may move that fast for seconds);
    /// re-lock beyond 5 ms, or after 2 s of reports off the line.
    fn default() -> DeviceClockConfig {
        DeviceClockConfig {
            memory_secs: 30.0,
            offset_window_secs: 1.0,
            max_rate_error_ppm: 5000.0,
            relock_ns: 5e6,
            pull_memory_secs: 60.0,
            outlier_hold_secs: 2.0,
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
    /// The pull line: weighted sums of (position − `pull_n0`, local time − `pull_t0`).
    pull: Sums,
    pull_n0: u64,
    pull_t0: f64,
    /// The slow mean of the callbacks' residuals from the pull line (ns).
    pull_level: f64,
    /// Reports left out as outliers, and since when (local ns) they have been off.
    outliers: u64,
    off_since: Option<f64>,
    /// The pull line's bound on the rate before the latest jump.
    prior: Option<(f64, f64)>,
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
    syy: f64,
}

impl Sums {
    /// The least-squares slope, once three pairs span some `x`.
    fn slope(&self) -> Option<f64> {
        let var = self.sxx - self.sx * self.sx / self.s0;
        (self.s0 >= 3.0 && var > 0.0).then(|| (self.sxy - self.sx * self.sy / self.s0) / var)
    }

    /// The slope's standard error, from the scatter about the line (`None` before five
    /// pairs).
    fn slope_error(&self) -> Option<f64> {
        let var = self.sxx - self.sx * self.sx / self.s0;
        if self.s0 < 5.0 || var <= 0.0 {
            return None;
        }
        let k = (self.sxy - self.sx * self.sy / self.s0) / var;
        let yy = self.syy - self.sy * self.sy / self.s0;
        let resid = (yy - k * k * var).max(0.0) / (self.s0 - 2.0);
        Some((resid / var).sqrt())
    }

    /// The line's value at `x`.
    fn at(&self, x: f64) -> Option<f64> {
        let k = self.slope()?;
        Some(self.at_origin(k) + k * x)
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
            syy,
        } = *self;
        *self = Sums {
            s0: s0 * decay,
            sx: (sx - dx * s0) * decay,
            sy: (sy - dy * s0) * decay,
            sxx: (sxx - 2.0 * dx * sx + dx * dx * s0) * decay,
            sxy: (sxy - dx * sy - dy * sx + dx * dy * s0) * decay,
            syy: (syy - 2.0 * dy * sy + dy * dy * s0) * decay,
        };
    }

    /// Adds the pair at the origin.
    fn add_origin(&mut self) {
        self.s0 += 1.0;
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
            pull: Sums::default(),
            pull_n0: 0,
            pull_t0: 0.0,
            pull_level: 0.0,
            outliers: 0,
            off_since: None,
            prior: None,
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

        // The callback on the pull line, before this pair joins it.
        let pull_residual = self.pull_residual(timing.position, local as f64);
        if self.locked {
            let error = observed - self.predict(timing.position);
            if timing.position < self.n0 {
                self.relock();
            } else if error.abs() > self.config.relock_ns {
                // A jump moves the callbacks with the reports (an xrun, a suspend); reports
                // that move alone are astray, unless they stay so.
                let moved =
                    pull_residual.is_none_or(|r| r * error.signum() > 0.5 * self.config.relock_ns);
                let since = *self.off_since.get_or_insert(local as f64);
                let held = (local as f64 - since) / NANOS_PER_SEC;
                if moved || held >= self.config.outlier_hold_secs {
                    self.relock();
                } else {
                    self.outliers += 1;
                    self.add_pull(timing.position, local as f64, pull_residual);
                    return;
                }
            } else {
                self.off_since = None;
            }
        }
        if !self.locked {
            self.locked = true;
            self.off_since = None;
            self.sums = Sums::default();
            self.n0 = timing.position;
            self.t0 = observed;
            self.origin_t = observed;
        }
        self.add_pull(timing.position, local as f64, pull_residual);
        // Move the sums' origin to this pair (the old origin is the line's anchor, `n0`
        // played at the local time the sums' origin stands for), forget a little, add it.
        let dx = (timing.position - self.n0) as f64;
        let secs = dx * self.per / NANOS_PER_SEC;
        let decay = (-secs / self.config.memory_secs.max(1e-3)).exp();
        let dy = observed - self.origin_t;
        self.sums.shift(dx, dy, decay);
        self.sums.add_origin();
        self.origin_t = observed;
        self.n0 = timing.position;

        let limit = self.nominal_ns_per_frame * self.config.max_rate_error_ppm * 1e-6;
        let mut per = self.sums.slope().unwrap_or(self.per);
        if let Some((pull, band)) = self.pull_bound() {
            per = per.clamp(pull - band, pull + band);
        }
        self.per = per.clamp(
            self.nominal_ns_per_frame - limit,
            self.nominal_ns_per_frame + limit,
        );
        self.t0 = observed + self.sums.at_origin(self.per);
    }

    /// Starts the line afresh (its rate stays until the new pairs say otherwise), and the
    /// pull line with it: the callbacks moved.
    fn relock(&mut self) {
        // A jump moves the timeline, not the card's pace: what the pull line knew of it
        // bounds the new line until the new pull line knows better.
        self.prior = self.pull_bound().or(self.prior);
        self.relocks += 1;
        self.locked = false;
        self.pull = Sums::default();
    }

    /// The pull line's rate (ns per frame on the API's clock) and how far the reports may
    /// take the rate from it: three standard errors, never under 1 ppm; or what was known
    /// before the latest jump, if that was tighter.
    fn pull_bound(&self) -> Option<(f64, f64)> {
        let floor = self.nominal_ns_per_frame * 1e-6;
        let now = match (self.pull.slope(), self.pull.slope_error()) {
            (Some(pull), Some(se)) => {
                Some((pull / (1.0 + self.offset_slope), (3.0 * se).max(floor)))
            }
            _ => None,
        };
        match (now, self.prior) {
            (Some(n), Some(p)) if p.1 < n.1 => Some(p),
            (Some(n), _) => Some(n),
            (None, p) => p,
        }
    }

    /// How late the callback at local time `local` for `position` is against the pull
    /// line, beyond the line's usual scatter; `None` while the line knows too little.
    fn pull_residual(&self, position: u64, local: f64) -> Option<f64> {
        if self.pull.s0 < 20.0 {
            return None;
        }
        let x = position as f64 - self.pull_n0 as f64;
        let expected = self.pull.at(x)? + self.pull_t0;
        Some(local - expected - self.pull_level)
    }

    /// Adds a callback to the pull line.
    fn add_pull(&mut self, position: u64, local: f64, residual: Option<f64>) {
        if self.pull.s0 == 0.0 {
            self.pull_n0 = position;
            self.pull_t0 = local;
            self.pull_level = 0.0;
        }
        let dx = position as f64 - self.pull_n0 as f64;
        let dy = local - self.pull_t0;
        let decay = (-dx * self.nominal_ns_per_frame
            / NANOS_PER_SEC
            / self.config.pull_memory_secs.max(1e-3))
        .exp();
        self.pull.shift(dx, dy, decay);
        self.pull.add_origin();
        self.pull_n0 = position;
        self.pull_t0 = local;
        if let Some(r) = residual {
            // A slow mean: a residual that stays is the line's own bias, not a jump.
            self.pull_level += 0.02 * r.clamp(-self.config.relock_ns, self.config.relock_ns);
        }
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

    /// Reports left out because they strayed from the line while the callbacks did not.
    pub fn outliers(&self) -> u64 {
        self.outliers
    }

    /// The card's long-term pull rate, frames per local second, once the pull line has
    /// enough callbacks.
    pub fn pull_rate_hz(&self) -> Option<f64> {
        self.pull.slope().map(|per| NANOS_PER_SEC / per)
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
    fn reports_that_go_astray_do_not_move_the_rate_off_the_cards_pace() {
        // The card keeps its pace (+60 ppm) and hands over frames on time; its reported
        // playback times stray at 1000 ppm for 4 s from second 20, then come back over
        // 4 s (a software device resizing its buffer). Its callbacks wake 3 ms apart in
        // bursts, as PulseAudio's do.
        let mut dev = device(60.0, 8);
        dev.wake_jitter = 3e6;
        let mut clock = DeviceClock::new(48_000, DeviceClockConfig::default());
        let mut worst_rate: f64 = 0.0;
        let mut worst_time: f64 = 0.0;
        for _ in 0..(60.0 * dev.rate / dev.period as f64) as usize {
            let mut t = dev.next();
            let secs = t.local_now.as_nanos() as f64 / 1e9;
            let astray = 1e-3 * ((secs - 20.0).clamp(0.0, 4.0) - (secs - 24.0).clamp(0.0, 4.0));
            t.api_playback_ns += (astray * 1e9).round() as i64;
            clock.observe(t);
            if secs > 15.0 {
                let rate_err = (clock.rate_hz() / dev.rate - 1.0) * 1e6;
                worst_rate = worst_rate.max(rate_err.abs());
                let p = dev.position;
                let err = clock.time_of(p).unwrap().as_nanos() as f64 - dev.true_time(p);
                worst_time = worst_time.max(err.abs());
            }
        }
        eprintln!(
            "astray reports: worst rate {worst_rate:.1} ppm, worst time {:.0} µs",
            worst_time / 1e3
        );
        // The reports alone would say 1000 ppm and 4 ms.
        assert!(worst_rate < 50.0, "rate off by {worst_rate} ppm");
        assert!(worst_time < 1.5e6, "time off by {worst_time} ns");
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
