//! Sinks: the virtual DAC, which knows the true instant each frame leaves, and a WAV sink.
//!
//! A real speaker's DAC pulls frames at its crystal's rate; so does a [`VirtualDac`]. Frame
//! `k` leaves when the follower's local clock reads `start + k / rate`: the DAC and the
//! local clock tick from one [`Crystal`], as they do in a real speaker, so a crystal that
//! runs fast makes both fast together. The crystal also maps local readings to true time,
//! which is how the DAC knows the true emission time of every block: the ground truth the
//! sync meter is fed with. The crystal can be simulated (the simulator's drifting and
//! wandering clocks implement [`Crystal`]), a straight line ([`LinearCrystal`]), or a
//! node's clock against the machine's monotonic clock.
//!
//! The WAV sink that records a speaker's output is measurement's:
//! [`crate::measure::WavSink`].

use crate::time::{LocalInstant, MediaTime, Nanos, TrueInstant};

/// A follower's crystal: the source of its local clock and of its DAC's frame clock.
pub trait Crystal {
    /// The local clock's reading at true time `at`.
    fn local_at(&mut self, at: TrueInstant) -> LocalInstant;
    /// The true time at which the local clock reads `local`.
    fn true_at(&mut self, local: LocalInstant) -> TrueInstant;
}

/// A crystal `drift_ppm` fast, offset from true time: `local = offset + true × (1 + drift)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearCrystal {
    /// How fast it runs, in parts per million (positive: fast).
    pub drift_ppm: f64,
    /// Its reading at true time zero.
    pub offset: LocalInstant,
}

impl Crystal for LinearCrystal {
    fn local_at(&mut self, at: TrueInstant) -> LocalInstant {
        let scaled = at.as_nanos() as f64 * self.drift_ppm * 1e-6;
        self.offset + Nanos(at.as_nanos()) + Nanos(scaled.round() as i64)
    }

    fn true_at(&mut self, local: LocalInstant) -> TrueInstant {
        let span = local.since(self.offset).as_nanos() as f64;
        TrueInstant::from_nanos((span / (1.0 + self.drift_ppm * 1e-6)).round() as i64)
    }
}

/// Where and when a block left the DAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emission {
    /// Index of the block's first frame since the DAC started.
    pub first_frame: u64,
    /// Local clock reading when that frame left.
    pub local: LocalInstant,
    /// True time when it left (from the crystal).
    pub true_time: TrueInstant,
    /// Frames in the block.
    pub frames: usize,
}

/// A DAC that consumes frames at its nominal rate on the local clock, that is at nominal ×
/// (1 + drift) in true time. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct VirtualDac {
    rate: u32,
    channels: usize,
    start_local: Option<LocalInstant>,
    frames: u64,
}

impl VirtualDac {
    /// A DAC of `channels` channels at `rate` frames per local second, not yet started.
    pub fn new(rate: u32, channels: usize) -> VirtualDac {
        VirtualDac {
            rate: rate.max(1),
            channels: channels.max(1),
            start_local: None,
            frames: 0,
        }
    }

    /// Its nominal rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Its channel count.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Starts it: frame 0 leaves when the local clock reads `local`.
    pub fn start(&mut self, local: LocalInstant) {
        self.start_local = Some(local);
        self.frames = 0;
    }

    /// Whether it has started.
    pub fn started(&self) -> bool {
        self.start_local.is_some()
    }

    /// Frames emitted so far.
    pub fn frames_emitted(&self) -> u64 {
        self.frames
    }

    /// The local reading at which frame `k` leaves (rounded down to a whole nanosecond).
    fn local_of(&self, k: u64) -> Option<LocalInstant> {
        let start = self.start_local?;
        let k = i64::try_from(k).unwrap_or(i64::MAX);
        Some(start + MediaTime::new(k, self.rate).to_nanos_floor())
    }

    /// When the next frame leaves, on the local clock; `None` before [`start`](Self::start).
    pub fn next_local(&self) -> Option<LocalInstant> {
        self.local_of(self.frames)
    }

    /// Stalls it for `duration` from now: the next frame, and every one after it, leaves that
    /// much later (on the local clock). Nothing happens before [`start`](Self::start).
    pub fn stall(&mut self, duration: Nanos) {
        if let Some(start) = &mut self.start_local {
            *start += duration.max(Nanos::ZERO);
        }
    }

    /// Skips `frames` frames: they leave as silence nobody wrote (a card that ran dry),
    /// and the next frame is the one after them. Nothing happens before
    /// [`start`](Self::start).
    pub fn skip(&mut self, frames: u64) {
        if self.start_local.is_some() {
            self.frames = self.frames.saturating_add(frames);
        }
    }

    /// Emits `block` (interleaved, a whole number of frames); returns when it left.
    /// Returns `None` before [`start`](Self::start).
    pub fn emit(&mut self, block: &[f32], crystal: &mut dyn Crystal) -> Option<Emission> {
        let local = self.local_of(self.frames)?;
        let frames = block.len() / self.channels;
        let emission = Emission {
            first_frame: self.frames,
            local,
            true_time: crystal.true_at(local),
            frames,
        };
        self.frames += frames as u64;
        Some(emission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_leave_at_nominal_rate_on_the_local_clock_and_drift_in_true_time() {
        let mut crystal = LinearCrystal {
            drift_ppm: 100.0,
            offset: LocalInstant::from_nanos(5_000_000_000),
        };
        let mut dac = VirtualDac::new(48_000, 2);
        assert!(dac.next_local().is_none());
        let start = crystal.local_at(TrueInstant::from_nanos(1_000_000_000));
        dac.start(start);
        let block = [0f32; 960];
        let mut last = None;
        for _ in 0..100 {
            last = dac.emit(&block, &mut crystal);
        }
        // 99 blocks of 480 frames = 0.99 s of local time.
        let e = last.unwrap();
        assert_eq!(e.first_frame, 99 * 480);
        assert_eq!(e.local - start, Nanos::from_millis(990));
        // In true time that is 0.99 s / (1 + 100 ppm).
        let true_span = e.true_time.as_nanos() - 1_000_000_000;
        assert!((true_span - 989_901_010).abs() <= 1, "{true_span}");
    }

    #[test]
    fn a_skip_moves_the_next_frame_on_and_does_nothing_before_the_start() {
        let mut dac = VirtualDac::new(48_000, 2);
        dac.skip(480);
        assert_eq!(dac.frames_emitted(), 0);
        dac.start(LocalInstant::from_nanos(0));
        dac.skip(4_800);
        assert_eq!(dac.frames_emitted(), 4_800);
        assert_eq!(
            dac.next_local(),
            Some(LocalInstant::from_nanos(100_000_000))
        );
        dac.skip(u64::MAX);
        assert_eq!(dac.frames_emitted(), u64::MAX);
        let _ = dac.next_local();
    }

    #[test]
    fn linear_crystal_round_trips() {
        let mut c = LinearCrystal {
            drift_ppm: -150.0,
            offset: LocalInstant::from_nanos(-7),
        };
        for t in [0i64, 1, 123_456_789, 3_600_000_000_000] {
            let t = TrueInstant::from_nanos(t);
            let local = c.local_at(t);
            assert!((c.true_at(local) - t).abs() <= Nanos(1));
        }
    }
}
