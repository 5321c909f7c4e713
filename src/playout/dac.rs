//! Sinks: the virtual DAC, which knows the true instant each frame leaves, and a WAV sink.
//!
//! A real speaker's DAC pulls frames at its crystal's rate; so does a [`VirtualDac`]. Frame
//! `k` leaves when the follower's local clock reads `start + k / rate`: the DAC and the
//! local clock tick from one [`Crystal`], as they do in a real speaker, so a crystal that
//! runs fast makes both fast together. The crystal also maps local readings to true time,
//! which is how the DAC knows the true emission time of every block: the ground truth the
//! sync meter is fed with. The crystal can be simulated ([`crate::sim::SimClock`] with
//! drift and wander) or derived from the machine's real monotonic clock
//! ([`LinearCrystal`], for the demo).

use super::sink::{AudioSink, Block};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::sim::{SimClock, SimTime};
use crate::time::{LocalInstant, NANOS_PER_SEC, Nanos};

/// A follower's crystal: the source of its local clock and of its DAC's frame clock.
pub trait Crystal {
    /// The local clock's reading at true time `true_ns`.
    fn local_at(&mut self, true_ns: i64) -> i64;
    /// The true time at which the local clock reads `local_ns`.
    fn true_at(&mut self, local_ns: i64) -> i64;
}

/// A crystal `drift_ppm` fast, offset from true time: `local = offset + true × (1 + drift)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearCrystal {
    /// How fast it runs, in parts per million (positive: fast).
    pub drift_ppm: f64,
    /// Its reading at true time zero, in ns.
    pub offset_ns: i64,
}

impl Crystal for LinearCrystal {
    fn local_at(&mut self, true_ns: i64) -> i64 {
        let scaled = true_ns as f64 * self.drift_ppm * 1e-6;
        self.offset_ns + true_ns + scaled.round() as i64
    }

    fn true_at(&mut self, local_ns: i64) -> i64 {
        let span = (local_ns - self.offset_ns) as f64;
        (span / (1.0 + self.drift_ppm * 1e-6)).round() as i64
    }
}

impl Crystal for SimClock {
    fn local_at(&mut self, true_ns: i64) -> i64 {
        self.reading(SimTime(true_ns))
    }

    fn true_at(&mut self, local_ns: i64) -> i64 {
        self.time_of(local_ns).as_nanos()
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
    pub true_ns: i64,
    /// Frames in the block.
    pub frames: usize,
}

/// A DAC that consumes frames at its nominal rate on the local clock, that is at nominal ×
/// (1 + drift) in true time. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct VirtualDac {
    rate: u32,
    channels: usize,
    start_local: Option<i64>,
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
        self.start_local = Some(local.as_nanos());
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

    /// The local reading at which frame `k` leaves.
    fn local_of(&self, k: u64) -> Option<i64> {
        let start = self.start_local?;
        let span = i128::from(k) * i128::from(NANOS_PER_SEC) / i128::from(self.rate);
        Some(start + span as i64)
    }

    /// When the next frame leaves, on the local clock; `None` before [`start`](Self::start).
    pub fn next_local(&self) -> Option<LocalInstant> {
        self.local_of(self.frames).map(LocalInstant::from_nanos)
    }

    /// Stalls it for `duration` from now: the next frame, and every one after it, leaves that
    /// much later (on the local clock). Nothing happens before [`start`](Self::start).
    pub fn stall(&mut self, duration: Nanos) {
        if let Some(start) = &mut self.start_local {
            *start = start.saturating_add(duration.as_nanos().max(0));
        }
    }

    /// Emits `block` (interleaved, a whole number of frames); returns when it left.
    /// Returns `None` before [`start`](Self::start).
    pub fn emit(&mut self, block: &[f32], crystal: &mut dyn Crystal) -> Option<Emission> {
        let local = self.local_of(self.frames)?;
        let frames = block.len() / self.channels;
        let emission = Emission {
            first_frame: self.frames,
            local: LocalInstant::from_nanos(local),
            true_ns: crystal.true_at(local),
            frames,
        };
        self.frames += frames as u64;
        Some(emission)
    }
}

pub use super::sink::SinkError;

/// Writes a speaker's output to a 32-bit float WAV file, and beside it
/// (`<file>.json`) the emission time of its first sample and the rate frames left at,
/// which is what the sync meter needs to line two recordings up.
pub struct WavSink {
    path: PathBuf,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    first_sample_ns: Option<i64>,
    rate_hz: f64,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("path", &self.path)
            .field("first_sample_ns", &self.first_sample_ns)
            .finish()
    }
}

impl WavSink {
    /// Creates `path` for `channels` channels at `rate` Hz.
    pub fn create(path: &Path, rate: u32, channels: u16) -> Result<WavSink, SinkError> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|source| SinkError::Wav {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(WavSink {
            path: path.to_path_buf(),
            writer: Some(writer),
            first_sample_ns: None,
            rate_hz: f64::from(rate),
        })
    }

    /// Appends a block whose first frame left at `emitted_ns` (the clock the caller
    /// measures emission on; the first block's time is kept).
    pub fn write(&mut self, block: &[f32], emitted_ns: i64) -> Result<(), SinkError> {
        self.first_sample_ns.get_or_insert(emitted_ns);
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        for &s in block {
            w.write_sample(s).map_err(|source| SinkError::Wav {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Sets the rate, in frames per second of the emission clock, written to the sidecar
    /// (by default the nominal rate).
    pub fn set_rate_hz(&mut self, rate_hz: f64) {
        self.rate_hz = rate_hz;
    }

    /// Finishes the WAV file and writes the sidecar `<file>.json` with `first_sample_ns`
    /// and `rate_hz`.
    pub fn finish(mut self) -> Result<(), SinkError> {
        self.close()
    }

    fn close(&mut self) -> Result<(), SinkError> {
        if let Some(w) = self.writer.take() {
            w.finalize().map_err(|source| SinkError::Wav {
                path: self.path.clone(),
                source,
            })?;
        }
        let mut side = self.path.clone().into_os_string();
        side.push(".json");
        let side = PathBuf::from(side);
        let json = format!(
            "{{\"first_sample_ns\": {}, \"rate_hz\": {}}}\n",
            self.first_sample_ns.unwrap_or(0),
            self.rate_hz
        );
        std::fs::write(&side, json).map_err(|source| SinkError::Sidecar { path: side, source })
    }
}

impl AudioSink for WavSink {
    fn write(&mut self, block: &Block<'_>) -> Result<(), SinkError> {
        WavSink::write(self, block.samples, block.leaves_at_monotonic_ns)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_leave_at_nominal_rate_on_the_local_clock_and_drift_in_true_time() {
        let mut crystal = LinearCrystal {
            drift_ppm: 100.0,
            offset_ns: 5_000_000_000,
        };
        let mut dac = VirtualDac::new(48_000, 2);
        assert!(dac.next_local().is_none());
        let start = crystal.local_at(1_000_000_000);
        dac.start(LocalInstant::from_nanos(start));
        let block = [0f32; 960];
        let mut last = None;
        for _ in 0..100 {
            last = dac.emit(&block, &mut crystal);
        }
        // 99 blocks of 480 frames = 0.99 s of local time.
        let e = last.unwrap();
        assert_eq!(e.first_frame, 99 * 480);
        assert_eq!(e.local.as_nanos() - start, 990_000_000);
        // In true time that is 0.99 s / (1 + 100 ppm).
        let true_span = e.true_ns - 1_000_000_000;
        assert!((true_span - 989_901_010).abs() <= 1, "{true_span}");
    }

    #[test]
    fn linear_crystal_round_trips() {
        let mut c = LinearCrystal {
            drift_ppm: -150.0,
            offset_ns: -7,
        };
        for t in [0i64, 1, 123_456_789, 3_600_000_000_000] {
            let local = c.local_at(t);
            assert!((c.true_at(local) - t).abs() <= 1);
        }
    }
}
