//! The `sync_meter` example as a user runs it, on WAV captures with timeline sidecars.

#[path = "common/bin.rs"]
mod bin;

use std::process::Command;

use lockstep::measure::write_capture_wav;
use lockstep::time::TrueInstant;

fn at(ns: i64) -> TrueInstant {
    TrueInstant::from_nanos(ns)
}

fn sync_meter() -> Command {
    bin::example("sync_meter")
}

#[test]
fn two_captures_of_the_same_audio_emitted_250_us_apart() {
    let dir = std::env::temp_dir().join(format!("lockstep-meter-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut x = 0x1234_5678_9abc_def1u64;
    let noise: Vec<f32> = (0..48_000 * 4)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
        })
        .collect();
    let (a, b) = (dir.join("a.wav"), dir.join("b.wav"));
    // B emits the same samples 250 µs later.
    write_capture_wav(&a, &noise, 1, 48_000, at(5_000_000_000), 48_000.0).unwrap();
    write_capture_wav(&b, &noise, 1, 48_000, at(5_000_250_000), 48_000.0).unwrap();
    let out = sync_meter()
        .args([a.to_str().unwrap(), b.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mean = v["skew_mean_us"].as_f64().unwrap();
    assert!((mean - 250.0).abs() < 0.01, "{v}");
    assert!(v["windows"].as_array().unwrap().len() >= 6);

    // The table says the same.
    let out = sync_meter()
        .args([a.to_str().unwrap(), b.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mean skew +250.000 µs"), "{text}");

    // A missing file is an error that names it.
    let missing = dir.join("nope.wav");
    let out = sync_meter()
        .args([a.to_str().unwrap(), missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.wav"));
    std::fs::remove_dir_all(&dir).unwrap();
}
