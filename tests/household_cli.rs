//! The `speaker` example as separate processes on loopback, killed with SIGKILL as a power
//! cut or a crash kills them: a following speaker restarted from its state directory comes
//! back into its group, in step and with its settings; a killed leader leaves its group
//! silent (a new `group.play` is refused while it is down) until it restarts and leads
//! again from its state; a corrupt state file stops the speaker with a message naming
//! where the file was set aside.
//!
//! Sync is measured from the speakers' recordings (cross-correlation), never from what the
//! speakers report. The processes stop by `--duration` so that their recordings are
//! finished; a killed process's recording is never read. Every child is killed when its
//! guard drops, so a failed assertion leaves none behind.

#[path = "common/bin.rs"]
mod bin;
#[path = "common/household.rs"]
mod household;
#[path = "common/node.rs"]
mod node;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use household::{CALL, call, entry, playing, status, wait_for};
use lockstep::household::RpcConnection;
use lockstep::household::rpc::codes;
use lockstep::household::{RpcCallError, RpcError};
use lockstep::measure::{MeterConfig, load_capture_wav, measure_skew};
use lockstep::time::TrueInstant;
use node::{key, monotonic_ns, temp_dir};
use serde_json::{Value, json};

/// The skew bound the test holds (the target for a group in step).
const SKEW_P99_US: f64 = 20.0;

/// Hall's trim: it plays this much later than the others, on purpose.
const TRIM_MS: f64 = 0.25;

/// Hall's volume.
const VOLUME: f64 = 0.5;

/// A running `speaker` process; killed (SIGKILL) and reaped when dropped.
struct Proc {
    name: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            into.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&text);
        }
    })
}

impl Proc {
    fn spawn(name: &str, args: &[String]) -> Proc {
        let mut child = bin::example("speaker")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the speaker starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            drain(child.stdout.take().expect("stdout"), Arc::clone(&stdout)),
            drain(child.stderr.take().expect("stderr"), Arc::clone(&stderr)),
        ];
        Proc {
            name: name.into(),
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// SIGKILL, as a crash or a power cut: nothing of the process runs after it.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit by itself.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} still running after {limit:?}; stderr:\n{}",
            self.name,
            self.stderr()
        );
    }

    /// The underruns of each follower session it printed at its end.
    fn underruns(&self) -> Vec<u64> {
        self.stdout()
            .lines()
            .filter_map(|l| l.split("underruns ").nth(1))
            .filter_map(|rest| rest.split(',').next()?.trim().parse().ok())
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

/// A loopback port free for TCP and UDP when asked.
fn free_port() -> u16 {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("address").port();
        drop(l);
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

/// One speaker of a test: its name, crystal, addresses and files.
struct Spec {
    name: &'static str,
    ppm: f64,
    rpc: SocketAddr,
    control_port: u16,
    state: PathBuf,
}

impl Spec {
    fn new(dir: &Path, name: &'static str, ppm: f64) -> Spec {
        Spec {
            name,
            ppm,
            rpc: SocketAddr::from(([127, 0, 0, 1], free_port())),
            control_port: free_port(),
            state: dir.join(name),
        }
    }

    /// Starts it, knowing `peers`, recording to `output`, for `seconds` (none: until
    /// killed).
    fn start(&self, key_file: &Path, peers: &[&Spec], output: &Path, seconds: Option<f64>) -> Proc {
        let mut args: Vec<String> = [
            "--key",
            key_file.to_str().expect("path"),
            "--name",
            self.name,
            "--room",
            self.name,
            "--model",
            "m1",
            "--state",
            self.state.to_str().expect("path"),
            "--interface",
            "127.0.0.1",
            "--no-discovery",
            "--latency-ms",
            "100",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend([
            "--rpc".into(),
            self.rpc.to_string(),
            "--control-port".into(),
            self.control_port.to_string(),
            "--output".into(),
            output.to_str().expect("path").into(),
            "--drift-ppm".into(),
            self.ppm.to_string(),
        ]);
        for p in peers {
            args.extend(["--peer".into(), p.rpc.to_string()]);
        }
        if let Some(s) = seconds {
            args.extend(["--duration".into(), s.to_string()]);
        }
        Proc::spawn(self.name, &args)
    }
}

fn write_key(dir: &Path) -> PathBuf {
    let path = dir.join("household.key");
    std::fs::write(&path, b"lockstep test household key 0001").expect("key file");
    path
}

/// Logs in to `s` as an app, waiting for its process to listen.
fn connect(s: &Spec) -> RpcConnection {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match RpcConnection::connect(s.rpc, key(), CALL) {
            Ok(c) => return c,
            Err(e) if Instant::now() >= deadline => panic!("{} does not answer: {e}", s.name),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The status entry of the group named `name`.
fn group<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["groups"]
        .as_array()
        .and_then(|a| a.iter().find(|g| g["name"] == name))
        .unwrap_or_else(|| panic!("group {name} in {status}"))
}

/// The skew of `b` against `a` (B − A, µs) in every 0.5 s window from `from_ns` on.
fn skew(a: &Path, b: &Path, from_ns: i64) -> Vec<(i64, f64)> {
    let ca = load_capture_wav(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let cb = load_capture_wav(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    let config = MeterConfig {
        start: Some(TrueInstant::from_nanos(from_ns)),
        ..MeterConfig::default()
    };
    let r = measure_skew(&ca.capture(0), &cb.capture(0), &config)
        .unwrap_or_else(|e| panic!("{} against {}: {e}", b.display(), a.display()));
    r.windows
        .iter()
        .map(|w| (w.t.as_nanos(), w.skew_us))
        .collect()
}

/// The p99 of `values`' magnitudes.
fn p99(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().map(f64::abs).collect();
    assert!(!v.is_empty(), "no values");
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

/// The first sample's time (host monotonic clock, ns) of a finished recording.
fn first_sample_ns(wav: &Path) -> i64 {
    load_capture_wav(wav)
        .unwrap_or_else(|e| panic!("{}: {e}", wav.display()))
        .first
        .as_nanos()
}

/// The RMS of channel 0 of `wav` over [from, to) (host monotonic ns).
fn rms(wav: &Path, from_ns: i64, to_ns: i64) -> f64 {
    let c = load_capture_wav(wav).unwrap_or_else(|e| panic!("{}: {e}", wav.display()));
    let frame = |t: i64| {
        (((t - c.first.as_nanos()) as f64 * 1e-9 * c.rate_hz).max(0.0) as usize).min(c.frames())
    };
    let (a, b) = (frame(from_ns), frame(to_ns));
    assert!(
        b > a + 1000,
        "{}: too little audio in the range",
        wav.display()
    );
    let sum: f64 = (a..b)
        .map(|i| f64::from(c.samples[i * c.channels]).powi(2))
        .sum();
    (sum / (b - a) as f64).sqrt()
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

#[test]
fn a_following_speaker_killed_and_restarted_is_back_in_step_with_its_settings() {
    bin::build(&["speaker"]).expect("the speaker example builds");
    let dir = temp_dir("cli-kill-follower");
    let key_file = write_key(&dir);
    let kitchen = Spec::new(&dir, "Kitchen", 60.0);
    let den = Spec::new(&dir, "Den", -40.0);
    let hall = Spec::new(&dir, "Hall", 15.0);
    // Kitchen and Den play to the end (their recordings finish when they exit); Hall is
    // killed, so its first recording is never read.
    let stay = 12.0;
    let mut a = kitchen.start(
        &key_file,
        &[&den, &hall],
        &dir.join("kitchen.wav"),
        Some(stay),
    );
    let mut b = den.start(
        &key_file,
        &[&kitchen, &hall],
        &dir.join("den.wav"),
        Some(stay),
    );
    let mut c = hall.start(&key_file, &[&kitchen, &den], &dir.join("hall.wav"), None);
    let mut app = connect(&kitchen);
    let names = ["Kitchen", "Den", "Hall"];
    wait_for(&mut app, &names, Duration::from_secs(8), |_| true);
    call(
        &mut app,
        "group.create",
        json!({"name": "Downstairs", "speakers": names}),
    );
    call(
        &mut app,
        "speaker.volume",
        json!({"speaker": "Hall", "volume": VOLUME}),
    );
    call(
        &mut app,
        "speaker.trim",
        json!({"speaker": "Hall", "trim_ms": TRIM_MS}),
    );
    let played = call(
        &mut app,
        "group.play",
        json!({"group": "Downstairs", "source": "noise"}),
    );
    let hall_id = entry(&status(&mut app), "Hall")["id"].clone();
    wait_for(&mut app, &names, Duration::from_secs(8), playing);
    // Hall's settings have reached its follower before it is killed: they are on its disk.
    wait_for(&mut app, &["Hall"], Duration::from_secs(3), |s| {
        s["health"]["volume"]
            .as_f64()
            .is_some_and(|v| (v - VOLUME).abs() < 1e-6)
    });
    std::thread::sleep(Duration::from_millis(500));

    c.kill();
    let restarted_at = monotonic_ns();
    let hall_after = dir.join("hall-after.wav");
    let run_after = 6.0;
    let mut c = hall.start(&key_file, &[&kitchen, &den], &hall_after, Some(run_after));
    // Asked of the restarted Hall itself (Kitchen's view of it may still be the killed
    // process's last word): its follower plays, at the volume it had.
    let mut to_hall = connect(&hall);
    let back = wait_for(&mut to_hall, &["Hall"], Duration::from_secs(6), |s| {
        playing(s)
            && s["health"]["volume"]
                .as_f64()
                .is_some_and(|v| (v - VOLUME).abs() < 1e-6)
    });
    let seen_playing = monotonic_ns();
    assert_eq!(
        entry(&back, "Hall")["id"],
        hall_id,
        "the same speaker: {back:#}"
    );
    let h = entry(&back, "Hall");
    assert_eq!(h["volume"], json!(VOLUME), "{h}");
    assert_eq!(h["trim_ms"], json!(TRIM_MS), "{h}");
    assert_eq!(h["group"], group(&back, "Downstairs")["id"], "{back:#}");
    assert_eq!(h["state"], "following", "{h}");
    assert_eq!(
        group(&back, "Downstairs")["leader"],
        played["leader"],
        "{back:#}"
    );
    drop((app, to_hall));

    let limit = Duration::from_secs_f64(run_after + 10.0);
    assert!(c.wait_exit(limit).success(), "{}", c.stderr());
    assert!(a.wait_exit(limit).success(), "{}", a.stderr());
    assert!(b.wait_exit(limit).success(), "{}", b.stderr());

    // From the audio: when the restarted Hall played its first sample, and how far it was
    // from Kitchen (the leader, which plays through its own follower) from then on.
    let first = first_sample_ns(&hall_after);
    let windows = skew(&dir.join("kitchen.wav"), &hall_after, first);
    let trim_us = TRIM_MS * 1000.0;
    // Positive: Hall plays later, by its trim.
    let off: Vec<f64> = windows.iter().map(|(_, s)| s - trim_us).collect();
    let in_step_at = windows
        .iter()
        .position(|(_, s)| (s - trim_us).abs() <= SKEW_P99_US)
        .map(|i| windows[i].0 + 500_000_000);
    let level = rms(&hall_after, first + 1_000_000_000, first + 4_000_000_000)
        / rms(
            &dir.join("kitchen.wav"),
            first + 1_000_000_000,
            first + 4_000_000_000,
        );
    eprintln!(
        "Hall killed and restarted: first sample {:.0} ms after the restart (status said \
         playing at {:.0} ms); first in-step window ended {} ms after; skew against Kitchen \
         less its {TRIM_MS} ms trim: p99 {:.2} µs over {} windows; its level {:.3} of \
         Kitchen's (volume {VOLUME}); underruns Kitchen {:?}, Den {:?}",
        ms(first - restarted_at),
        ms(seen_playing - restarted_at),
        in_step_at.map_or("never".into(), |t| format!("{:.0}", ms(t - restarted_at))),
        p99(off.iter().copied()),
        off.len(),
        level,
        a.underruns(),
        b.underruns(),
    );
    assert!(
        first - restarted_at <= 4_000_000_000,
        "the restarted speaker played {:.0} ms after its start",
        ms(first - restarted_at)
    );
    assert!(off.len() >= 6, "{windows:?}");
    assert!(p99(off.iter().copied()) <= SKEW_P99_US, "{windows:?}");
    assert!((level - VOLUME).abs() < 0.05, "level {level}");
    // The speakers that stayed played on without a break.
    assert_eq!(a.underruns(), [0], "{}", a.stdout());
    assert_eq!(b.underruns(), [0], "{}", b.stdout());
    std::fs::remove_dir_all(&dir).ok();
}

/// The last time (host monotonic ns) at which `wav`'s channel 0 is louder than −60 dBFS.
fn last_sound_ns(wav: &Path) -> i64 {
    let c = load_capture_wav(wav).unwrap_or_else(|e| panic!("{}: {e}", wav.display()));
    let last = (0..c.frames())
        .rev()
        .find(|&i| c.samples[i * c.channels].abs() > 1e-3)
        .unwrap_or_else(|| panic!("{} is silent", wav.display()));
    c.first.as_nanos() + (last as f64 / c.rate_hz * 1e9) as i64
}

#[test]
fn a_killed_leader_leaves_its_group_silent_until_it_restarts_and_leads_again() {
    bin::build(&["speaker"]).expect("the speaker example builds");
    let dir = temp_dir("cli-kill-leader");
    let key_file = write_key(&dir);
    let kitchen = Spec::new(&dir, "Kitchen", 60.0);
    let den = Spec::new(&dir, "Den", -40.0);
    let hall = Spec::new(&dir, "Hall", 15.0);
    let stay = 13.0;
    let mut a = kitchen.start(&key_file, &[&den, &hall], &dir.join("kitchen.wav"), None);
    let mut b = den.start(
        &key_file,
        &[&kitchen, &hall],
        &dir.join("den.wav"),
        Some(stay),
    );
    let mut c = hall.start(
        &key_file,
        &[&kitchen, &den],
        &dir.join("hall.wav"),
        Some(stay),
    );
    let names = ["Kitchen", "Den", "Hall"];
    // The app talks to Den, which outlives the leader.
    let mut app = connect(&den);
    wait_for(&mut app, &names, Duration::from_secs(8), |_| true);
    call(
        &mut app,
        "group.create",
        json!({"name": "Downstairs", "speakers": names}),
    );
    let played = call(
        &mut app,
        "group.play",
        json!({"group": "Downstairs", "source": "noise"}),
    );
    let kitchen_id = entry(&status(&mut app), "Kitchen")["id"].clone();
    assert_eq!(played["leader"], kitchen_id, "{played}");
    wait_for(&mut app, &names, Duration::from_secs(8), playing);
    std::thread::sleep(Duration::from_millis(500));

    a.kill();
    let killed_at = monotonic_ns();
    // The followers stop following once the leader has not been heard for a while; the
    // group's record still names the leader, which is offline.
    let silent = wait_for(&mut app, &["Den", "Hall"], Duration::from_secs(8), |s| {
        s["state"] == "idle" && s["health"].is_null()
    });
    let followers_idle = monotonic_ns();
    let g = group(&silent, "Downstairs");
    assert_eq!(g["leader"], kitchen_id, "{silent:#}");
    assert_eq!(g["state"], "starting", "{silent:#}");
    assert_eq!(entry(&silent, "Kitchen")["online"], false, "{silent:#}");
    // Playing again needs the leader: the household chooses the group's first member,
    // which is offline, so the call is refused as a conflict naming it.
    let refused = app.call(
        "group.play",
        json!({"group": "Downstairs", "source": "noise"}),
        CALL,
    );
    let e: RpcError = match refused {
        Err(RpcCallError::Rpc(e)) => e,
        other => panic!("group.play with the leader down: {other:?}"),
    };
    assert_eq!(e.code, codes::CONFLICT, "{e:?}");
    assert_eq!(e.data, Some(json!({"speaker": kitchen_id})), "{e:?}");

    // The leader restarts from its state directory, which keeps what it leads: it leads
    // again by itself, and the followers follow it again.
    let restarted_at = monotonic_ns();
    let kitchen_after = dir.join("kitchen-after.wav");
    let mut a = kitchen.start(&key_file, &[&den, &hall], &kitchen_after, Some(5.0));
    let back = wait_for(&mut app, &names, Duration::from_secs(6), playing);
    let all_playing = monotonic_ns();
    assert_eq!(entry(&back, "Kitchen")["id"], kitchen_id, "{back:#}");
    assert_eq!(entry(&back, "Kitchen")["state"], "leading", "{back:#}");
    assert_eq!(group(&back, "Downstairs")["leader"], kitchen_id, "{back:#}");
    assert_eq!(group(&back, "Downstairs")["state"], "playing", "{back:#}");
    drop(app);

    let limit = Duration::from_secs(20);
    assert!(a.wait_exit(limit).success(), "{}", a.stderr());
    assert!(b.wait_exit(limit).success(), "{}", b.stderr());
    assert!(c.wait_exit(limit).success(), "{}", c.stderr());

    // From the audio: the followers' first sessions fall silent once the leader is gone;
    // their second sessions play in step with the restarted leader.
    let den_quiet = last_sound_ns(&dir.join("den.wav"));
    let hall_quiet = last_sound_ns(&dir.join("hall.wav"));
    let starts = [
        first_sample_ns(&kitchen_after),
        first_sample_ns(&dir.join("den-2.wav")),
        first_sample_ns(&dir.join("hall-2.wav")),
    ];
    let last_start = *starts.iter().max().expect("three");
    let pairs = [
        skew(&kitchen_after, &dir.join("den-2.wav"), last_start),
        skew(&kitchen_after, &dir.join("hall-2.wav"), last_start),
    ];
    let all: Vec<f64> = pairs.iter().flatten().map(|(_, s)| *s).collect();
    eprintln!(
        "Kitchen (leader) killed: last sound Den {:.0} ms, Hall {:.0} ms after the kill; \
         followers idle after {:.0} ms; group.play refused while it was down ({}); \
         restarted, it led again: every member's first sample {:.0} ms after its restart \
         (status said all playing at {:.0} ms); skew from then p99 {:.2} µs over {} \
         windows; underruns Den {:?}, Hall {:?}",
        ms(den_quiet - killed_at),
        ms(hall_quiet - killed_at),
        ms(followers_idle - killed_at),
        e.message,
        ms(last_start - restarted_at),
        ms(all_playing - restarted_at),
        p99(all.iter().copied()),
        all.len(),
        b.underruns(),
        c.underruns(),
    );
    for quiet in [den_quiet, hall_quiet] {
        assert!(
            quiet - killed_at <= 1_000_000_000,
            "a follower sounded {:.0} ms after the kill",
            ms(quiet - killed_at)
        );
    }
    assert!(
        last_start - restarted_at <= 4_000_000_000,
        "every member played {:.0} ms after the leader's restart",
        ms(last_start - restarted_at)
    );
    assert!(pairs.iter().all(|p| p.len() >= 4), "{pairs:?}");
    assert!(p99(all.iter().copied()) <= SKEW_P99_US, "{pairs:?}");
    assert_eq!(b.underruns().len(), 2, "two sessions: {}", b.stdout());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_corrupt_state_file_stops_the_speaker_and_is_kept_aside() {
    bin::build(&["speaker"]).expect("the speaker example builds");
    let dir = temp_dir("cli-corrupt");
    let key_file = write_key(&dir);
    let spec = Spec::new(&dir, "Attic", 0.0);
    std::fs::create_dir_all(&spec.state).expect("state dir");
    let bad = b"{\"format\": 1, \"id\": \"not an id\", \"household\": 7";
    std::fs::write(spec.state.join("state.json"), bad).expect("state file");
    let mut p = spec.start(&key_file, &[], Path::new("null"), Some(5.0));
    let status = p.wait_exit(Duration::from_secs(10));
    let stderr = p.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let aside: Vec<PathBuf> = std::fs::read_dir(&spec.state)
        .expect("state dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("state.json.corrupt-"))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}; {stderr}");
    assert!(
        stderr.contains(aside[0].to_str().expect("path")),
        "the message names {}: {stderr}",
        aside[0].display()
    );
    assert_eq!(std::fs::read(&aside[0]).expect("kept"), bad);
    // It did not start afresh in its place.
    assert!(!spec.state.join("state.json").exists(), "{stderr}");
    eprintln!("{}", stderr.trim());
    std::fs::remove_dir_all(&dir).ok();
}
