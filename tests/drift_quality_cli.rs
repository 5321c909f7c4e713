//! The `drift_quality` example as a user runs it.

#[path = "common/bin.rs"]
mod bin;

use std::process::Command;

fn drift_quality() -> Command {
    bin::example("drift_quality")
}

/// Runs `cmd`, which must succeed, and gives the rows of its JSON array.
fn json_rows(cmd: &mut Command) -> Vec<serde_json::Value> {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    v.as_array().expect("an array").clone()
}

#[test]
fn json_rows_per_corrector_drift_and_tone_and_sinc_beats_drop_dup() {
    let rows = json_rows(drift_quality().args([
        "--json",
        "--seconds",
        "8",
        "--skip",
        "1",
        "--correctors",
        "sinc,drop_dup",
    ]));
    // 2 correctors × 2 tones × 2 drifts.
    assert_eq!(rows.len(), 8);
    let thdn = |c: &str, f: f64, ppm: f64| {
        rows.iter()
            .find(|r| r["corrector"] == c && r["freq_hz"] == f && r["ppm"] == ppm)
            .and_then(|r| r["thdn_db"].as_f64())
            .unwrap_or_else(|| panic!("no row {c} {f} {ppm}: {rows:?}"))
    };
    for f in [1000.0, 15000.0] {
        for ppm in [150.0, -150.0] {
            let (s, d) = (thdn("sinc", f, ppm), thdn("drop_dup", f, ppm));
            // From the first second on, even while the servo glides fast, the sinc
            // corrector is clean (its changing ratio is timing, which the meter follows,
            // and its path has no kinks), and a dropped or repeated frame is a click.
            assert!(
                s <= -120.0 && d > -40.0 && s < d - 70.0,
                "{f} Hz {ppm} ppm: {s} vs {d}"
            );
        }
    }
    // Each worst window is named by when it starts, inside the measured stretch.
    for r in rows {
        let at = r["worst_at_s"].as_f64().expect("worst_at_s");
        assert!((0.98..7.9).contains(&at), "worst window at {at} s: {r}");
    }
}

#[test]
fn through_a_leader_step_the_relock_is_clean_and_its_fades_are_left_out() {
    // A leader clock step of +1 s at 6 s: every speaker fades out, re-aligns on the new
    // timeline and fades in. The windows around that are left out and counted; every
    // other one, the re-lock's glide included, is measured.
    let dir = std::env::temp_dir().join(format!("lockstep-dq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("step.json");
    std::fs::write(
        &file,
        r#"{"events": [{"at_s": 6, "leader_step": {"by_ms": 1000}}]}"#,
    )
    .unwrap();
    let rows = json_rows(
        drift_quality()
            .args([
                "--json",
                "--seconds",
                "12",
                "--skip",
                "1",
                "--correctors",
                "sinc",
            ])
            .arg("--events")
            .arg(&file),
    );
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for r in rows {
        assert_eq!(r["scenario"], "step", "{r}");
        let (db, windows, excluded) = (
            r["thdn_db"].as_f64().unwrap(),
            r["windows"].as_u64().unwrap(),
            r["excluded"].as_u64().unwrap(),
        );
        assert!(db <= -120.0, "{r}");
        // The fade out, the silence and the fade in: a few hundred ms and the margins.
        assert!((5..40).contains(&excluded), "{r}");
        assert!(windows >= 70, "{r}");
    }
}

#[test]
fn bad_options_are_refused() {
    let out = drift_quality()
        .args(["--correctors", "linear"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown corrector"));
    let out = drift_quality()
        .args(["--seconds", "5", "--skip", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = drift_quality().args(["--family", "soak"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown family"));
    let out = drift_quality()
        .args(["--events", "/nonexistent/events.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
