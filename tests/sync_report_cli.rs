//! The `sync_report` example as a user runs it.

#[path = "common/bin.rs"]
mod bin;

use std::process::Command;

fn sync_report() -> Command {
    bin::example("sync_report")
}

#[test]
fn json_has_one_object_per_estimator_with_the_documented_keys() {
    let out = sync_report()
        .args([
            "--scenario",
            "lan",
            "--seconds",
            "30",
            "--seed",
            "3",
            "--json",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let arr = v.as_array().expect("an array");
    let names: Vec<&str> = arr
        .iter()
        .map(|o| o["estimator"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lockstep", "naive", "ntp", "snapcast"]);
    for o in arr {
        assert_eq!(o["scenario"], "lan");
        assert_eq!(o["seed"], 3);
        for k in ["p50_us", "p99_us", "max_us", "rate_err_ppm"] {
            assert!(o[k].as_f64().is_some_and(|x| x >= 0.0), "{k} in {o}");
        }
        for k in ["converge_100us_s", "converge_20us_s"] {
            assert!(o[k].is_null() || o[k].as_f64().is_some(), "{k} in {o}");
        }
        let covered = o["within_uncertainty"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&covered), "{o}");
        for k in [
            "p99_outside_events_us",
            "rate_err_max_outside_ppm",
            "beyond_4x_max_s",
        ] {
            assert!(o[k].as_f64().is_some_and(|x| x >= 0.0), "{k} in {o}");
        }
        for k in ["needless_epochs", "silent_jumps", "epoch_changes"] {
            assert!(o[k].as_u64().is_some(), "{k} in {o}");
        }
        // A preset has no events.
        assert_eq!(o["events"], serde_json::json!([]), "{o}");
        assert_eq!(o.as_object().unwrap().len(), 17, "{o}");
    }
    // On a LAN lockstep converges; snapcast without a rate never gets within 20 µs of a
    // drifting crystal for good.
    assert!(arr[0]["converge_20us_s"].as_f64().is_some());
}

#[test]
fn overrides_change_the_network_and_the_plot_is_written() {
    let dir = std::env::temp_dir().join(format!("lockstep-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("err.svg");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--scenario",
            "wifi",
            "--seconds",
            "20",
            "--seed",
            "2",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = sync_report().args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let plain = run(&[]);
    let quiet = run(&[
        "--jitter-mean-us",
        "10",
        "--drift-ppm",
        "-42",
        "--loss",
        "0",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    // The median: the preset's delay spikes stay, and they set the tail.
    let p = |v: &serde_json::Value| v[1]["p50_us"].as_f64().unwrap();
    assert!(
        p(&quiet) < p(&plain) / 10.0,
        "naive p50 {} vs {}",
        p(&quiet),
        p(&plain)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.matches("<path").count() == 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_options_are_refused_with_a_message() {
    let out = sync_report().args(["--scenario", "moon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown scenario") && err.contains("congested_wifi"),
        "{err}"
    );
    let out = sync_report()
        .args(["--loss", "1.5", "--seconds", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error"));
}

#[test]
fn several_seeds_give_each_estimators_worst_figures() {
    let args = ["--scenario", "wifi", "--seconds", "20", "--seed", "4"];
    let out = sync_report()
        .args(args)
        .args(["--seeds", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("seeds 4..=6"), "{text}");
    // The worst p99 over the seeds is the largest of the single runs' p99s.
    let single_p99 = |seed: &str| {
        let out = sync_report()
            .args([
                "--scenario",
                "wifi",
                "--seconds",
                "20",
                "--seed",
                seed,
                "--json",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["p99_us"].as_f64().unwrap()
    };
    let worst = ["4", "5", "6"]
        .map(single_p99)
        .into_iter()
        .fold(0.0, f64::max);
    let row = text
        .lines()
        .find(|l| l.starts_with("lockstep"))
        .expect("lockstep row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    let shown: f64 = cols[2].parse().unwrap();
    assert!((shown - worst).abs() < 0.006, "{row} vs {worst}");
    assert_eq!(text.lines().count(), 6, "{text}");

    let json = sync_report()
        .args(args)
        .args(["--seeds", "2", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    assert_eq!(v.as_array().unwrap().len(), 8);
    // One preset, one table, and the worst of the honesty figures at the end of each row.
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .ends_with("covered % min  4×unc max s   p99 out µs")
    );

    let zero = sync_report().args(["--seeds", "0"]).output().unwrap();
    assert_eq!(zero.status.code(), Some(2));
}

#[test]
fn playout_json_is_one_object_per_run_with_the_documented_keys() {
    let out = sync_report()
        .args([
            "--playout",
            "--scenario",
            "lan",
            "--seconds",
            "12",
            "--seed",
            "5",
            "--seeds",
            "2",
            "--json",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let runs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(runs.len(), 2);
    for (run, seed) in runs.iter().zip([5, 6]) {
        assert_eq!(run["scenario"], "lan");
        assert_eq!(run["seed"], seed);
        for k in ["skew_p50_us", "skew_p99_us", "skew_max_us"] {
            let v = run[k].as_f64().unwrap_or(f64::NAN);
            assert!((0.0..5.0).contains(&v), "{k} = {v} in {run}");
        }
        assert_eq!(run["underruns"], 0);
        assert_eq!(run["realigns"], 0);
        assert_eq!(run["speakers"].as_array().unwrap().len(), 4);
    }
}

#[test]
fn playout_refuses_a_bad_corrector_or_latency() {
    let out = sync_report()
        .args(["--playout", "--corrector", "cubic"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("drop_dup"));
    let out = sync_report()
        .args(["--playout", "--latency-ms", "-5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--latency-ms"));
}

/// A scenario file in a directory of its own, removed when dropped.
struct TempFile {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let dir =
            std::env::temp_dir().join(format!("lockstep-events-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, text).unwrap();
        TempFile { dir, path }
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn example_file() -> String {
    format!(
        "{}/examples/scenarios/roam_and_warmup.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn the_example_file_runs_and_reports_each_of_its_events() {
    let run = |json: bool| {
        let mut cmd = sync_report();
        cmd.args([
            "--events",
            &example_file(),
            "--seconds",
            "320",
            "--seed",
            "7",
        ]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let labels = [
        "follower warmup +8.0 ppm tau 120 s",
        "outage both 0.1 s",
        "path both +2.50 ms",
        "outage to_leader 10.0 s",
    ];
    let table = run(false);
    assert!(
        table.starts_with("scenario roam_and_warmup  seed 7"),
        "{table}"
    );
    for estimator in ["lockstep", "naive", "ntp", "snapcast"] {
        for label in labels {
            assert!(
                table
                    .lines()
                    .any(|l| l.starts_with(estimator) && l.contains(label)),
                "no line for {estimator} at {label}:\n{table}"
            );
        }
    }

    let v: serde_json::Value = serde_json::from_str(&run(true)).expect("valid JSON");
    for o in v.as_array().unwrap() {
        assert_eq!(o["scenario"], "roam_and_warmup");
        let events = o["events"].as_array().unwrap();
        let shown: Vec<&str> = events
            .iter()
            .map(|e| e["label"].as_str().unwrap())
            .collect();
        assert_eq!(shown, labels, "{o}");
        let at: Vec<f64> = events.iter().map(|e| e["at_s"].as_f64().unwrap()).collect();
        assert_eq!(at, [0.0, 200.0, 200.15, 300.0]);
        for e in events {
            for k in ["until_s", "max_err_us", "max_err_5s_us", "final_level_us"] {
                assert!(e[k].as_f64().is_some(), "{k} in {e}");
            }
            // (The rate is judged from 10 s after an event: null for a shorter window.)
            for k in ["settle_s", "first_epoch_s", "max_rate_err_ppm"] {
                assert!(e[k].is_null() || e[k].as_f64().is_some(), "{k} in {e}");
            }
            assert!(e["epoch_changes"].as_u64().is_some(), "{e}");
            assert!(e["reason"].is_null() || e["reason"].is_string(), "{e}");
            assert_eq!(e.as_object().unwrap().len(), 11, "{e}");
        }
    }
    // Each event's window lasts until the next one, the last until the end of the run.
    let until: Vec<f64> = v[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["until_s"].as_f64().unwrap())
        .collect();
    assert_eq!(until, [200.0, 200.15, 300.0, 320.0]);

    // The events really run: the same seed on plain wifi loses fewer Delay_Reqs, the
    // difference being the 10 s in which none reached the leader (~16 a second), give or
    // take the bursts the estimator asks for while its uncertainty is above 20 µs: the two
    // runs need different numbers of them, and each burst's 768 Delay_Reqs lose 1 % (a
    // 20 s outage would lose over 320).
    let lost_up = |table: &str| -> u64 {
        let head = table.lines().next().unwrap();
        let lost = head.rsplit("lost ").next().unwrap();
        lost.split('/').nth(1).unwrap().trim().parse().unwrap()
    };
    let plain = sync_report()
        .args(["--scenario", "wifi", "--seconds", "320", "--seed", "7"])
        .output()
        .unwrap();
    let lost = lost_up(&table) - lost_up(&String::from_utf8_lossy(&plain.stdout));
    assert!((140..260).contains(&lost), "{lost} more Delay_Reqs lost");
}

#[test]
fn an_events_file_reports_why_an_epoch_changed() {
    let file = TempFile::new(
        "step",
        "{\"events\": [\n  {\"at_s\": 15, \"leader_step\": {\"by_ms\": 1000}}\n]}\n",
    );
    let out = sync_report()
        .args([
            "--events",
            file.arg(),
            "--seconds",
            "40",
            "--seed",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let step = &v[0]["events"][0];
    assert_eq!(v[0]["scenario"], "step");
    assert_eq!(step["label"], "leader step +1000.0 ms");
    assert_eq!(step["epoch_changes"], 1, "{step}");
    assert_eq!(step["reason"], "leader clock step", "{step}");
    // The baselines have no epochs: no reason.
    assert!(v[1]["events"][0]["reason"].is_null(), "{}", v[1]);
}

#[test]
fn a_bad_events_file_is_refused_with_its_line_and_field() {
    let cases = [
        (
            "syntax",
            "{\n  \"events\": [\n    {\"at_s\": 1 \"follower_restart\": {}}\n  ]\n}\n",
            &["line 3, column", "not valid JSON"][..],
        ),
        (
            "backwards",
            "{\"events\": [\n  {\"at_s\": 300, \"follower_restart\": {}},\n  {\"at_s\": 200, \"follower_restart\": {}}\n]}\n",
            &["line 3", "at_s", "200", "300"][..],
        ),
        (
            "loss",
            "{\"events\": [\n  {\"at_s\": 0, \"follower_restart\": {}},\n  {\"at_s\": 100, \"episode\": {\"direction\": \"both\", \"duration_s\": 4, \"jitter_mean_ms\": 5, \"loss\": 1.5}}\n]}\n",
            &["line 3", "events[1].episode.loss", "[0, 1]", "1.5"][..],
        ),
        (
            "kind",
            "{\"events\": [\n  {\"at_s\": 100, \"teleport\": {}}\n]}\n",
            &["line 2", "events[0].teleport", "unknown key", "path_step"][..],
        ),
        (
            "direction",
            "{\"events\": [\n\n  {\"at_s\": 100, \"outage\": {\"direction\": \"sideways\", \"duration_s\": 4}}\n]}\n",
            &[
                "line 3",
                "events[0].outage.direction",
                "to_follower",
                "sideways",
            ][..],
        ),
    ];
    for (name, text, needles) in cases {
        let file = TempFile::new(name, text);
        let out = sync_report()
            .args(["--events", file.arg(), "--seconds", "5"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(out.stdout.is_empty(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(file.arg()), "{name}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{name}: no {needle:?} in {err}");
        }
    }
    let out = sync_report()
        .args(["--events", "/nonexistent/lockstep.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn events_with_a_family_are_refused_and_the_playout_runs_them() {
    let out = sync_report()
        .args(["--events", &example_file(), "--scenario", "roam"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--events") && err.contains("family") && err.contains("roam"),
        "{err}"
    );
    let out = sync_report()
        .args(["--events", &example_file(), "--scenario", "lan"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--network lan"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The playout experiment runs a file's events on every follower, one figure per event.
    let out = sync_report()
        .args([
            "--events",
            &example_file(),
            "--playout",
            "--network",
            "lan",
            "--seconds",
            "12",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("JSON");
    assert!(run["scenario"].as_str().unwrap().ends_with("@lan"), "{run}");
    assert!(!run["events"].as_array().unwrap().is_empty(), "{run}");
}

#[test]
fn several_seeds_of_a_family_give_one_worst_table_per_variant() {
    let out = sync_report()
        .args([
            "--scenario",
            "asym_up",
            "--seconds",
            "20",
            "--seed",
            "4",
            "--seeds",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("scenario")).collect();
    assert_eq!(
        headers,
        [
            "scenario asym_up/to_leader+1ms@wifi  seeds 4..=5  20 s simulated each",
            "scenario asym_up/to_follower+1ms@wifi  seeds 4..=5  20 s simulated each",
        ],
        "{text}"
    );
    assert_eq!(text.lines().count(), 12, "{text}");
}

/// A family variant whose path step down is larger than the network's delay cannot run
/// there: it is left out with a note that says why, and a family with nothing left is an
/// error.
#[test]
fn a_variant_the_network_cannot_have_is_left_out_with_a_note() {
    let out = sync_report()
        .args([
            "--scenario",
            "asym_down",
            "--network",
            "lan",
            "--seconds",
            "20",
        ])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("asym_down/to_leader-1ms@lan is left out")
            && err.contains("below zero")
            && err.contains("no variant can run on lan"),
        "{err}"
    );
    // On wifi (1.5 ms each way) the same family runs, both variants.
    let out = sync_report()
        .args([
            "--scenario",
            "asym_down",
            "--network",
            "wifi",
            "--seconds",
            "20",
            "--json",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("\"estimator\": \"lockstep\"").count(),
        2,
        "{text}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_report_quietly() {
    use std::process::Stdio;
    // As `sync_report … | head -0` would: the pipe's reading end is closed before the
    // report is written (ten minutes of simulated time take far longer than closing it).
    let mut child = sync_report()
        .args(["--scenario", "lan", "--seconds", "600", "--seed", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
