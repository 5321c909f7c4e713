//! A follower whose audio goes to a sink of the program's own: how a speaker project with
//! its own output (an I2S driver, a DSP board) embeds lockstep.
//!
//! ```text
//! cargo run --release --example custom_sink
//! ```
//!
//! On loopback, it starts a leader playing the built-in test noise, one follower whose
//! output is [`MemorySink`] (defined below: it keeps channel 0 of every block and when the
//! block left), and one follower on the usual virtual DAC writing a WAV file. Both run on
//! simulated crystals (+60 and −40 ppm). After 8 s it stops them and runs the sync meter on
//! the two outputs; its last line is `custom sink vs virtual DAC: p99 X µs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep::control::{HouseholdKey, Role};
use lockstep::measure::{Capture, MeterConfig, load_capture_wav, measure_skew};
use lockstep::node::{
    Follower, FollowerConfig, Leader, LeaderConfig, LocalClock, Output, SharedSink, TestSource,
};
use lockstep::playout::sink::{AudioSink, Block, SinkError};
use lockstep::time::{Nanos, TrueInstant};

/// The program's own sink: keeps channel 0 of what it is given, and for every block the
/// frame count and the time (monotonic, ns) its first frame left.
#[derive(Default)]
struct MemorySink {
    samples: Vec<f32>,
    /// (frames before the block, when it left).
    times: Vec<(u64, TrueInstant)>,
}

impl AudioSink for MemorySink {
    fn write(&mut self, block: &Block<'_>) -> Result<(), SinkError> {
        if block.channels == 0 {
            return Err(SinkError::Custom {
                reason: "a block without channels".into(),
            });
        }
        self.times
            .push((self.samples.len() as u64, block.leaves_at_monotonic));
        self.samples
            .extend(block.samples.iter().step_by(block.channels).copied());
        Ok(())
    }
}

impl MemorySink {
    /// The recording as a meter capture: its first frame's time and its rate, from the
    /// first and last blocks' times.
    fn capture(&self) -> Option<Capture<'_>> {
        let (&(f0, t0), &(f1, t1)) = (self.times.first()?, self.times.last()?);
        (f1 > f0 && t1 > t0).then(|| Capture {
            samples: &self.samples,
            channels: 1,
            channel: 0,
            first: t0,
            rate_hz: (f1 - f0) as f64 * 1e9 / (t1 - t0).as_nanos() as f64,
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = HouseholdKey::new(b"custom sink example household key")?;
    let leader = Leader::start(
        LeaderConfig::new("Example", key.clone(), "127.0.0.1:0".parse()?),
        Box::new(TestSource::noise(2, 48_000)),
    )?;
    let crystal = |ppm: f64| LocalClock::Drifting {
        drift_ppm: ppm,
        offset: Nanos::from_millis(3),
    };

    let sink = Arc::new(Mutex::new(MemorySink::default()));
    let mut own = FollowerConfig::new(leader.control_addr(), key.clone(), Role::Full);
    own.name = "custom sink".into();
    own.clock = crystal(60.0);
    own.output = Output::Custom(SharedSink::new(Arc::clone(&sink)));

    let dir = std::env::temp_dir().join(format!("lockstep-custom-sink-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let wav = dir.join("virtual-dac.wav");
    let mut dac = FollowerConfig::new(leader.control_addr(), key, Role::Full);
    dac.name = "virtual DAC".into();
    dac.clock = crystal(-40.0);
    dac.output = Output::Wav(wav.clone());

    let a = Follower::start(own)?;
    let b = Follower::start(dac)?;
    println!(
        "playing for 8 s: one follower into the program's own sink, one into {}",
        wav.display()
    );
    std::thread::sleep(Duration::from_secs(8));
    let ra = a.stop()?;
    b.stop()?;
    drop(leader);

    let recorded = load_capture_wav(&wav)?;
    let sink = sink.lock().map_err(|_| "the sink's lock was poisoned")?;
    let mine = sink.capture().ok_or("the sink got no audio")?;
    println!(
        "the custom sink took {} frames in {} blocks (the follower emitted {})",
        sink.samples.len(),
        sink.times.len(),
        ra.frames
    );
    let config = MeterConfig {
        window_s: 0.5,
        hop_s: 0.5,
        max_skew_us: 2_000.0,
        // From 3 s on: both have joined, converged and started.
        start: Some(mine.first + Nanos::from_secs(3)),
        min_rms: 1e-3,
    };
    let skew = measure_skew(&mine, &recorded.capture(0), &config)?;
    let _ = std::fs::remove_dir_all(&dir);
    println!("custom sink vs virtual DAC: p99 {:.2} µs", skew.p99_us);
    Ok(())
}
