//! The standard group in the simulator: a stereo pair (left and right, same model), a
//! subwoofer and a speaker in another room, on crystals at +120, −80, +40 and −150 ppm,
//! each with its own PTP estimate over its own simulated links. Skew is measured by the
//! sync meter from the audio the virtual DACs emitted, at their true emission times.

use lockstep::playout::corrector::CorrectorKind;
use lockstep::sim::playout::{PlayoutScenario, Role, run_group, run_playout};
use lockstep::time::Nanos;

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
