//! The `leader`, `follower` and `fanout` examples as a user runs them: real processes on
//! loopback, joining, refusing and recording.
//!
//! `cargo test --test node_cli` does not build the examples by itself, so the first test
//! to need them runs `cargo build` for the three (a no-op when they are fresh), with the
//! test binary's profile and target directory. Every child process is killed when its test
//! ends, even on failure, and every wait has a deadline.

#[path = "common/bin.rs"]
mod bin;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The examples these tests run.
const EXAMPLES: [&str; 3] = ["leader", "follower", "fanout"];

/// A command for example `name`, built first if this test process has not built it yet.
fn example(name: &str) -> std::process::Command {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = BUILT.get_or_init(build_examples) {
        panic!("cannot build the examples: {e}");
    }
    bin::example(name)
}

/// Builds [`EXAMPLES`] (see [`bin::build`]).
fn build_examples() -> Result<(), String> {
    bin::build(&EXAMPLES)
}

/// A running example: killed and reaped when dropped. Its standard error is collected by a
/// thread, line by line, so that the test can wait for a line and read it all at the end.
struct Running {
    name: &'static str,
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn spawn(name: &'static str, args: &[&str]) -> Running {
        let mut child = example(name)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Running {
            name,
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to `limit` for a line of standard error containing `text`.
    fn wait_for(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stderr().contains(text) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.join_reader();
                panic!(
                    "{} exited ({status}) before saying {text:?}; stderr:\n{}",
                    self.name,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} did not say {text:?} within {limit:?}; stderr:\n{}",
            self.name,
            self.stderr()
        );
    }

    /// Waits up to `limit` for the process to exit; returns its status and all of its
    /// standard error.
    fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.join_reader();
                return (status, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} still running after {limit:?}; stderr:\n{}",
            self.name,
            self.stderr()
        );
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn join_reader(&mut self) {
        // The pipe closes when the process exits, which ends the reader.
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_reader();
    }
}

/// A directory of its own for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lockstep-node-cli-{}-{test}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes a household key file whose bytes derive from `seed`; returns its path.
    fn key(&self, name: &str, seed: u8) -> String {
        let path = self.0.join(name);
        let bytes: Vec<u8> = (0..32u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(seed))
            .collect();
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback address with a port nobody listens on (free when asked).
fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

/// Starts a leader playing the test signal on `control` and waits until it is serving.
fn leader(key: &str, control: &str, seconds: &str) -> Running {
    let mut l = Running::spawn(
        "leader",
        &[
            "--input",
            "tone",
            "--key",
            key,
            "--control",
            control,
            "--seconds",
            seconds,
        ],
    );
    l.wait_for(&format!("control {control}"), Duration::from_secs(10));
    l
}

fn help(name: &str) -> String {
    let out = example(name).arg("--help").output().unwrap();
    assert!(
        out.status.success(),
        "{name} --help failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_names_the_main_flags() {
    let text = help("leader");
    for flag in [
        "--input",
        "--group",
        "--codec",
        "--ptime",
        "--latency",
        "--dest",
        "--sdp",
        "--key",
        "--control",
        "--seconds",
    ] {
        assert!(text.contains(flag), "leader --help lacks {flag}:\n{text}");
    }
    let text = help("follower");
    for flag in [
        "--leader",
        "--role",
        "--model",
        "--name",
        "--group",
        "--output",
        "--drift-ppm",
        "--duration",
        "--key",
    ] {
        assert!(text.contains(flag), "follower --help lacks {flag}:\n{text}");
    }
    let text = help("fanout");
    for flag in ["--followers", "--seconds", "--codec", "--ptime", "--json"] {
        assert!(text.contains(flag), "fanout --help lacks {flag}:\n{text}");
    }
}

#[test]
fn a_follower_with_the_wrong_key_is_refused() {
    let dir = Scratch::new("wrong-key");
    let (k1, k2) = (dir.key("k1", 1), dir.key("k2", 2));
    let control = free_addr();
    let mut leader = leader(&k1, &control, "15");
    let started = Instant::now();
    let mut f = Running::spawn(
        "follower",
        &["--key", &k2, "--leader", &control, "--duration", "3"],
    );
    let (status, stderr) = f.wait_exit(Duration::from_secs(5));
    assert!(!status.success(), "a wrong key was accepted: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("wrong household key"), "{stderr}");
    // The leader counted it and carries on.
    leader.wait_for("wrong key 1", Duration::from_secs(3));
    assert!(leader.is_running());
}

#[test]
fn a_stereo_pair_of_two_models_is_refused() {
    let dir = Scratch::new("pair");
    let key = dir.key("key", 7);
    let control = free_addr();
    let _leader = leader(&key, &control, "15");
    let mut a = Running::spawn(
        "follower",
        &[
            "--key",
            &key,
            "--leader",
            &control,
            "--role",
            "left",
            "--model",
            "one",
            "--duration",
            "10",
        ],
    );
    a.wait_for("joined group", Duration::from_secs(5));
    let mut b = Running::spawn(
        "follower",
        &[
            "--key",
            &key,
            "--leader",
            &control,
            "--role",
            "right",
            "--model",
            "two",
            "--duration",
            "10",
        ],
    );
    let (status, stderr) = b.wait_exit(Duration::from_secs(5));
    assert!(!status.success(), "the pair was accepted: {stderr}");
    assert!(
        stderr.contains("\"one\"") && stderr.contains("\"two\""),
        "the refusal does not name both models: {stderr}"
    );
    // The half that joined first keeps playing.
    std::thread::sleep(Duration::from_millis(300));
    assert!(a.is_running(), "A stopped: {}", a.stderr());
}

#[test]
fn a_leader_on_a_port_in_use_says_so() {
    let dir = Scratch::new("in-use");
    let key = dir.key("key", 3);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let control = taken.local_addr().unwrap().to_string();
    let mut l = Running::spawn(
        "leader",
        &[
            "--input",
            "tone",
            "--key",
            &key,
            "--control",
            &control,
            "--seconds",
            "5",
        ],
    );
    let (status, stderr) = l.wait_exit(Duration::from_secs(5));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    drop(taken);
}

#[test]
fn a_follower_of_an_absent_leader_says_it_is_unreachable() {
    let dir = Scratch::new("unreachable");
    let key = dir.key("key", 4);
    let nobody = free_addr();
    let mut f = Running::spawn(
        "follower",
        &["--key", &key, "--leader", &nobody, "--duration", "3"],
    );
    let (status, stderr) = f.wait_exit(Duration::from_secs(5));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
}

/// The examples here are built without the `cpal` feature: a sound card is a usage error
/// that says which feature it needs, before anything is joined.
#[test]
fn a_follower_without_the_cpal_feature_refuses_a_sound_card() {
    let dir = Scratch::new("no-cpal");
    let key = dir.key("key", 5);
    let nobody = free_addr();
    for output in ["device", "device:hw:0,0"] {
        let mut f = Running::spawn(
            "follower",
            &["--key", &key, "--leader", &nobody, "--output", output],
        );
        let (status, stderr) = f.wait_exit(Duration::from_secs(5));
        assert_eq!(status.code(), Some(2), "{output}: {stderr}");
        assert!(stderr.contains("cpal feature"), "{output}: {stderr}");
    }
}

#[test]
fn a_leader_with_a_missing_input_says_so() {
    let dir = Scratch::new("missing-input");
    let key = dir.key("key", 5);
    let control = free_addr();
    let mut l = Running::spawn(
        "leader",
        &[
            "--input",
            "/nonexistent.wav",
            "--key",
            &key,
            "--control",
            &control,
            "--seconds",
            "5",
        ],
    );
    let (status, stderr) = l.wait_exit(Duration::from_secs(5));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot read input /nonexistent.wav"),
        "{stderr}"
    );
}

/// RMS of every sample of `path` from `skip_s` seconds on; also returns the duration.
fn wav_rms(path: &Path, skip_s: f64) -> (f64, f64) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    assert_eq!(spec.sample_format, hound::SampleFormat::Float);
    let samples: Vec<f32> = r.samples::<f32>().map(|s| s.unwrap()).collect();
    let channels = usize::from(spec.channels);
    let seconds = samples.len() as f64 / channels as f64 / f64::from(spec.sample_rate);
    let skip = (skip_s * f64::from(spec.sample_rate)) as usize * channels;
    let tail = &samples[skip.min(samples.len())..];
    assert!(!tail.is_empty(), "nothing after {skip_s} s in {seconds} s");
    let energy: f64 = tail.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    ((energy / tail.len() as f64).sqrt(), seconds)
}

#[test]
fn a_drifting_follower_records_the_leaders_test_signal() {
    let dir = Scratch::new("e2e");
    let key = dir.key("key", 9);
    let control = free_addr();
    let _leader = leader(&key, &control, "8");
    let wav = dir.path("out.wav");
    let mut f = Running::spawn(
        "follower",
        &[
            "--key",
            &key,
            "--leader",
            &control,
            "--output",
            wav.to_str().unwrap(),
            "--duration",
            "5",
            "--drift-ppm",
            "50",
        ],
    );
    let (status, stderr) = f.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("playing"), "never played: {stderr}");
    let (rms, seconds) = wav_rms(&wav, 1.0);
    assert!(seconds > 3.0, "only {seconds} s recorded");
    // The test signal is noise at −12 dBFS RMS (0.25); silence or a broken path is far off.
    assert!(rms > 0.05, "RMS {rms} after the first second");
    let side = dir.path("out.wav.json");
    let text = std::fs::read_to_string(&side).expect("the sidecar exists");
    let v: serde_json::Value = serde_json::from_str(&text).expect("the sidecar is JSON");
    assert!(v["first_sample_ns"].is_i64(), "{v}");
    let rate = v["rate_hz"].as_f64().expect("rate_hz");
    // The follower's crystal runs 50 ppm fast: its DAC emits 48 kHz of its own clock.
    assert!((rate - 48_000.0 * (1.0 + 50e-6)).abs() < 0.01, "{v}");
}
