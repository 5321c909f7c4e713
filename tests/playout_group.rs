//! The standard group in the simulator: a stereo pair (left and right, same model), a
//! subwoofer and a speaker in another room, on crystals at +120, −80, +40 and −150 ppm,
//! each with its own PTP estimate over its own simulated links. Skew is measured by the
//! sync meter from the audio the virtual DACs emitted, at their true emission times.

use lockstep::playout::corrector::CorrectorKind;
use lockstep::sim::playout::{PlayoutScenario, Role, run_group, run_playout};
use lockstep::time::{Nanos, TrueInstant};

fn scenario(name: &str, seconds: i64, seed: u64) -> PlayoutScenario {
    PlayoutScenario::preset(name, seed, Nanos::from_secs(seconds)).expect("preset")
}

#[test]
fn a_group_on_a_lan_plays_within_a_few_microseconds() {
    let r = run_playout(&scenario("lan", 20, 2)).expect("runs");
    assert!(r.skew_p99_us < 5.0, "{}", r.to_table());
    assert_eq!((r.underruns, r.realigns), (0, 0), "{}", r.to_table());
    // The three full-range speakers are compared pairwise, each pair over the whole run.
    assert_eq!(r.pairs.len(), 3);
    assert!(r.pairs.iter().all(|p| p.windows >= 25), "{}", r.to_table());
    // Each plays on the leader's time, not merely together.
    for s in r.speakers.iter().filter(|s| s.role.full_range()) {
        let (_, p99, _) = s.abs_error_us.expect("measured");
        assert!(p99 < 3.0, "{}: {p99} µs", s.name);
    }
}

#[test]
fn a_stereo_pair_on_congested_wifi_stays_within_a_sample_without_underruns() {
    let r = run_playout(&scenario("congested_wifi", 30, 1)).expect("runs");
    let pair = &r.pairs[0];
    assert_eq!((pair.a.as_str(), pair.b.as_str()), ("left", "right"));
    assert!(pair.p99_us < 20.8, "{}", r.to_table());
    assert!(r.skew_p99_us < 100.0, "{}", r.to_table());
    // Every speaker lost and received late packets, and concealed them, on its own.
    for s in &r.speakers {
        assert!(s.lost_packets > 0 && s.late_packets > 0, "{}", r.to_table());
    }
    assert_eq!(r.underruns, 0, "{}", r.to_table());
}

#[test]
fn the_roles_shape_what_each_speaker_plays() {
    let run = run_group(&scenario("lan", 8, 3)).expect("runs");
    let rms =
        |x: &[f32]| (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    for sp in &run.speakers {
        match sp.result.role {
            // Full range: the noise at its level (−12 dBFS RMS, 0.25).
            Role::Left | Role::Right | Role::Full | Role::Mono => {
                let tail = &sp.samples[sp.samples.len() - 48_000..];
                let level = rms(tail);
                assert!(
                    (level - 0.25).abs() < 0.02,
                    "{}: rms {level}",
                    sp.result.name
                );
            }
            // The subwoofer plays the low-passed mono sum: little left above 80 Hz, where
            // white noise has almost all its power. The sample-to-sample difference (a
            // crude high-pass) is √2 × the RMS for white noise, about 1% for this.
            Role::Sub => {
                let tail = &sp.samples[sp.samples.len() - 48_000..];
                let level = rms(tail);
                let diff: Vec<f32> = tail.windows(2).map(|w| w[1] - w[0]).collect();
                assert!(level > 0.005, "sub rms {level}");
                assert!(rms(&diff) < 0.05 * level, "sub: {} vs {level}", rms(&diff));
            }
        }
    }
    // The leader's source is recorded for the absolute measurement.
    assert!(run.source.len() >= 8 * 48_000 - 1);
}

#[test]
fn drop_dup_is_the_baseline_it_is_documented_as() {
    // Snapcast's method keeps time only to a frame: worse than the sinc default by far.
    let mut s = scenario("lan", 15, 4);
    s.corrector = CorrectorKind::DropDup;
    let dd = run_playout(&s).expect("runs");
    s.corrector = CorrectorKind::Sinc;
    let sinc = run_playout(&s).expect("runs");
    assert!(
        dd.skew_p50_us > 3.0 * sinc.skew_p50_us,
        "drop_dup {} µs vs sinc {} µs",
        dd.skew_p50_us,
        sinc.skew_p50_us
    );
}

/// A sink of the test's own: channel 0 and (first frame, true emission time) of each block.
#[derive(Default)]
struct Kept {
    samples: Vec<f32>,
    timeline: Vec<(u64, TrueInstant)>,
}

impl lockstep::playout::sink::AudioSink for Kept {
    fn write(
        &mut self,
        b: &lockstep::playout::sink::Block<'_>,
    ) -> Result<(), lockstep::playout::sink::SinkError> {
        self.timeline.push((b.first_frame, b.leaves_at_monotonic));
        self.samples
            .extend(b.samples.iter().step_by(b.channels).copied());
        Ok(())
    }
}

#[test]
fn a_sink_of_the_callers_own_measures_the_same_skew_as_the_virtual_dac() {
    use lockstep::measure::{Capture, MeterConfig, measure_skew};
    use lockstep::playout::sink::SharedSink;
    use std::sync::{Arc, Mutex};
    let mut s = scenario("wifi", 20, 4);
    let kept = Arc::new(Mutex::new(Kept::default()));
    s.speakers[0].sink = Some(SharedSink::new(Arc::clone(&kept)));
    let run = run_group(&s).expect("runs");
    let kept = kept.lock().unwrap();
    let left = &run.speakers[0];
    assert_eq!(left.result.sink_errors, 0);
    assert_eq!(
        kept.samples.len(),
        left.samples.len(),
        "every block reached the sink"
    );
    // The sink's capture: its first block's time and the rate its blocks left at.
    let (&(f0, t0), &(f1, t1)) = (
        kept.timeline.first().unwrap(),
        kept.timeline.last().unwrap(),
    );
    let own = Capture {
        samples: &kept.samples,
        channels: 1,
        channel: 0,
        first: t0,
        rate_hz: (f1 - f0) as f64 * 1e9 / (t1 - t0).as_nanos() as f64,
    };
    let config = MeterConfig {
        window_s: 0.5,
        hop_s: 0.5,
        max_skew_us: 2_000.0,
        start: Some(TrueInstant::from_nanos(8_000_000_000)),
        min_rms: 1e-3,
    };
    let (from, to) = (
        TrueInstant::from_nanos(8_000_000_000),
        TrueInstant::from_nanos(19_000_000_000),
    );
    let right = run.speakers[1]
        .capture(from, to)
        .expect("right's recording");
    let dac = left.capture(from, to).expect("left's recording");
    let through_sink = measure_skew(&own, &right, &config).expect("measured");
    let through_dac = measure_skew(&dac, &right, &config).expect("measured");
    eprintln!(
        "left through its sink vs right: p99 {:.2} µs; through the virtual DAC: p99 {:.2} µs",
        through_sink.p99_us, through_dac.p99_us
    );
    assert!(
        through_sink.windows.len() >= 15,
        "{} windows",
        through_sink.windows.len()
    );
    assert!(
        (through_sink.p99_us - through_dac.p99_us).abs() < 0.5,
        "sink p99 {} µs, virtual DAC p99 {} µs",
        through_sink.p99_us,
        through_dac.p99_us
    );
    assert!(through_sink.p99_us < 20.0, "{} µs", through_sink.p99_us);
}
