//! Scenario: two follower processes write their audio to pipes (`--output -`), on crystals
//! 100 ppm fast and 100 ppm slow. The test records each pipe with the arrival time of every
//! read, and measures from the content and those times alone how far apart the two play:
//! within 200 µs, where a pipe's wake-up jitter is the floor. A follower whose pipe closes
//! ends with a clear message and exit status 1.

#[path = "common/bin.rs"]
mod bin;
#[path = "common/node.rs"]
mod node;

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lockstep::measure::{Capture, MeterConfig, measure_skew};

fn follower_cmd() -> std::process::Command {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = BUILT.get_or_init(|| bin::build(&["follower"])) {
        panic!("cannot build the follower example: {e}");
    }
    bin::example("follower")
}

/// A child killed and reaped when dropped, even when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One pipe's recording: channel 0 of every frame, and (frames received so far, arrival
/// time in ns since `base`) after each read.
struct PipeRecording {
    samples: Vec<f32>,
    reads: Vec<(u64, i64)>,
}

const CHANNELS: usize = 2;
const BLOCK: u64 = 240;

fn record(mut pipe: std::process::ChildStdout, base: Instant, limit: Duration) -> PipeRecording {
    let mut rec = PipeRecording {
        samples: Vec::new(),
        reads: Vec::new(),
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut pending: Vec<u8> = Vec::new();
    let frame_bytes = 4 * CHANNELS;
    while base.elapsed() < limit {
        let n = match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let at = base.elapsed().as_nanos() as i64;
        pending.extend_from_slice(&buf[..n]);
        let whole = pending.len() / frame_bytes * frame_bytes;
        for frame in pending[..whole].chunks_exact(frame_bytes) {
            rec.samples
                .push(f32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]));
        }
        pending.drain(..whole);
        rec.reads.push((rec.samples.len() as u64, at));
    }
    rec
}

/// When frame 0 arrived and frames per second, fitted to the reads: every block is
/// written when its first frame leaves, so a read that ends with block `k` came when frame
/// `k·BLOCK` left, plus the pipe's delay (alike for both followers) and the writer's and the
/// reader's wake-ups. Those are never negative, and on a busy machine they come in
/// stretches: a least-squares line leans towards a stretch of late reads (a stretch early
/// or late in a 10 s run tilted it by up to 100 ppm, 0.4 ms at its ends). So the line is
/// the one under every read that lies nearest them overall: the edge of their lower convex
/// hull over their mean (the least-sum line under them), which the earliest arrivals fix
/// and late ones leave alone. A pace broken for good (blocks skipped that were not put
/// back: see `with_skips_as_silence`) leaves many reads far above any such line, and fails
/// here rather than be measured as skew.
fn timeline(reads: &[(u64, i64)]) -> (f64, f64) {
    let pts: Vec<(f64, f64)> = reads
        .iter()
        .filter(|(n, _)| *n >= BLOCK && n % BLOCK == 0)
        .map(|&(n, t)| ((n - BLOCK) as f64, t as f64))
        .collect();
    assert!(pts.len() > 100, "too few reads: {}", pts.len());
    // Andrew's monotone chain, lower half (the reads come in frame order).
    let mut hull: Vec<(f64, f64)> = Vec::new();
    for &p in &pts {
        while hull.len() >= 2 {
            let (a, b) = (hull[hull.len() - 2], hull[hull.len() - 1]);
            if (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0) <= 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(p);
    }
    let mean_x = pts.iter().map(|p| p.0).sum::<f64>() / pts.len() as f64;
    let i = hull
        .windows(2)
        .position(|w| w[1].0 >= mean_x)
        .expect("the hull spans the reads");
    let (a, b) = (hull[i], hull[i + 1]);
    let slope = (b.1 - a.1) / (b.0 - a.0);
    let first_ns = a.1 - slope * a.0;
    let far = pts
        .iter()
        .filter(|p| p.1 - (first_ns + slope * p.0) > 50e6)
        .count();
    assert!(
        far * 10 < pts.len(),
        "{far} of {} reads came over 50 ms after the line through the earliest: the pipe's \
         pace broke",
        pts.len()
    );
    (first_ns, 1e9 / slope)
}

/// The recording as the DAC played it: the blocks a follower skipped because it got to
/// them too late (stopped, or starved by a busy machine for over 100 ms) never reach its
/// pipe, and a player reading the pipe in real time hears silence there, as a card that
/// ran dry. They are put back here as silence, so that one line maps frames to time. A
/// skip shows in the reads as a step up, for good, of when a frame arrives less when it
/// would at the nominal rate: the least of that from each read on jumps by the time
/// skipped, in whole blocks (a late reader only delays some reads, which the least of the
/// later ones leaves out; the crystal's ppm move it by a few ms at most).
fn with_skips_as_silence(r: &PipeRecording) -> PipeRecording {
    let excess: Vec<f64> = r
        .reads
        .iter()
        .map(|&(n, t)| t as f64 - n as f64 * 1e9 / 48_000.0)
        .collect();
    let mut least = excess.clone();
    for i in (0..least.len().saturating_sub(1)).rev() {
        least[i] = least[i].min(least[i + 1]);
    }
    let mut out = PipeRecording {
        samples: Vec::with_capacity(r.samples.len()),
        reads: Vec::with_capacity(r.reads.len()),
    };
    let (mut copied, mut added) = (0usize, 0u64);
    for (i, &(n, t)) in r.reads.iter().enumerate() {
        let jump = if i > 0 { least[i] - least[i - 1] } else { 0.0 };
        if jump > 50e6 {
            let blocks = (jump * 48_000.0 / 1e9 / BLOCK as f64).round() as u64;
            let upto = usize::try_from(r.reads[i - 1].0).expect("frames");
            out.samples.extend_from_slice(&r.samples[copied..upto]);
            out.samples
                .extend(std::iter::repeat_n(0.0, (blocks * BLOCK) as usize));
            copied = upto;
            added += blocks * BLOCK;
        }
        out.reads.push((n + added, t));
    }
    out.samples.extend_from_slice(&r.samples[copied..]);
    out
}

/// A pipe's recording as a meter capture on the line `timeline` fitted.
fn pipe_capture(r: &PipeRecording, (first_ns, rate_hz): (f64, f64)) -> Capture<'_> {
    Capture {
        samples: &r.samples,
        channels: 1,
        channel: 0,
        first: lockstep::time::TrueInstant::from_nanos(first_ns as i64),
        rate_hz,
    }
}

/// The skew between two pipes in windows of 0.5 s every `hop_s` from `start_ns` on, with
/// the blocks either skipped put back as silence, the second's line fitted to its reads
/// from `line_from_ns` only (it stopped or restarted before).
fn skew_from(
    recs: &[PipeRecording],
    line_from_ns: i64,
    start_ns: i64,
    hop_s: f64,
) -> Result<lockstep::measure::SkewReport, lockstep::measure::MeterError> {
    let recs = [
        with_skips_as_silence(&recs[0]),
        with_skips_as_silence(&recs[1]),
    ];
    let after: Vec<(u64, i64)> = recs[1]
        .reads
        .iter()
        .copied()
        .filter(|r| r.1 >= line_from_ns)
        .collect();
    let lines = [timeline(&recs[0].reads), timeline(&after)];
    let config = MeterConfig {
        window_s: 0.5,
        hop_s,
        max_skew_us: 5_000.0,
        start: Some(lockstep::time::TrueInstant::from_nanos(start_ns)),
        min_rms: 1e-3,
    };
    measure_skew(
        &pipe_capture(&recs[0], lines[0]),
        &pipe_capture(&recs[1], lines[1]),
        &config,
    )
}

/// A follower process joining `addr`, writing f32le to a pipe, on a crystal `ppm` fast,
/// for `seconds`; its standard error goes to `stderr`, and a thread of its own records the
/// pipe against `base`.
fn pipe_follower(
    key: &std::path::Path,
    addr: &str,
    ppm: &str,
    seconds: f64,
    base: Instant,
    stderr: Stdio,
) -> (Killed, std::thread::JoinHandle<PipeRecording>) {
    let mut child = Killed(
        follower_cmd()
            .args(["--key", key.to_str().expect("utf-8 path"), "--leader", addr])
            .args(["--output", "-", "--format", "f32le", "--drift-ppm", ppm])
            .args(["--duration", &seconds.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("follower starts"),
    );
    let out = child.0.stdout.take().expect("piped");
    let reader =
        std::thread::spawn(move || record(out, base, Duration::from_secs_f64(seconds + 10.0)));
    (child, reader)
}

#[test]
fn two_followers_on_pipes_play_within_200_us_of_each_other() {
    let leader = node::leader();
    let dir = node::temp_dir("stdout");
    let key = dir.join("household.key");
    std::fs::write(&key, b"lockstep test household key 0001").expect("key file");
    let addr = leader.control_addr().to_string();
    let seconds = 10.0;
    let base = Instant::now();
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for ppm in ["100", "-100"] {
        let (child, reader) = pipe_follower(&key, &addr, ppm, seconds, base, Stdio::piped());
        readers.push(reader);
        children.push(child);
    }
    let recs: Vec<PipeRecording> = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .collect();
    for c in &mut children {
        let status = c.0.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut e) = c.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "follower failed ({status}):\n{err}");
        assert!(
            err.contains("follower: stopped"),
            "summary on stderr:\n{err}"
        );
    }
    let lines: Vec<(f64, f64)> = recs.iter().map(|r| timeline(&r.reads)).collect();
    // The pipes' paces are the crystals': 200 ppm apart.
    let apart_ppm = (lines[0].1 / lines[1].1 - 1.0) * 1e6;
    assert!(
        (150.0..250.0).contains(&apart_ppm),
        "the pipes' rates are {apart_ppm:.1} ppm apart, expected about 200"
    );
    fn capture(r: &PipeRecording, (first_ns, rate_hz): (f64, f64)) -> Capture<'_> {
        Capture {
            samples: &r.samples,
            channels: 1,
            channel: 0,
            first: lockstep::time::TrueInstant::from_nanos(first_ns as i64),
            rate_hz,
        }
    }
    let config = MeterConfig {
        window_s: 0.5,
        hop_s: 0.5,
        max_skew_us: 5_000.0,
        // From 3 s on: both have joined, converged and started.
        start: Some(lockstep::time::TrueInstant::from_nanos(3_000_000_000)),
        min_rms: 1e-3,
    };
    let skew = measure_skew(
        &capture(&recs[0], lines[0]),
        &capture(&recs[1], lines[1]),
        &config,
    )
    .expect("the two pipes are measured");
    eprintln!(
        "pipes: {} windows, skew p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs, mean {:+.1} µs",
        skew.windows.len(),
        skew.p50_us,
        skew.p99_us,
        skew.max_us,
        skew.mean_us
    );
    assert!(skew.windows.len() >= 8, "{} windows", skew.windows.len());
    assert!(skew.p99_us <= 200.0, "skew p99 {:.1} µs", skew.p99_us);
    drop(leader);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_closed_pipe_ends_the_follower_with_status_1() {
    let leader = node::leader();
    let dir = node::temp_dir("stdout-closed");
    let key = dir.join("household.key");
    std::fs::write(&key, b"lockstep test household key 0001").expect("key file");
    let mut child = Killed(
        follower_cmd()
            .args(["--key", key.to_str().expect("utf-8 path")])
            .args(["--leader", &leader.control_addr().to_string()])
            .args(["--output", "-", "--duration", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("follower starts"),
    );
    // Read a little, then close the pipe.
    let mut out = child.0.stdout.take().expect("piped");
    let mut first = [0u8; 4096];
    out.read_exact(&mut first).expect("audio comes");
    drop(out);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the follower did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(status.code(), Some(1), "stderr:\n{err}");
    assert!(err.contains("closed pipe"), "stderr:\n{err}");
    drop(leader);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_custom_sink_example_plays_in_step_with_the_virtual_dac() {
    if let Err(e) = bin::build(&["custom_sink"]) {
        panic!("cannot build the custom_sink example: {e}");
    }
    let out = bin::example("custom_sink")
        .stdin(Stdio::null())
        .output()
        .expect("custom_sink runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "custom_sink failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    let p99: f64 = last
        .strip_prefix("custom sink vs virtual DAC: p99 ")
        .and_then(|r| r.strip_suffix(" µs"))
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("unexpected last line {last:?}"));
    // Both followers share the machine's clock and the leader's estimate: far inside the
    // Wi-Fi target.
    assert!(p99 <= 20.0, "custom sink vs virtual DAC p99 {p99} µs");
}

/// A sink of a project's own that goes wrong: after `ok` blocks it takes `slow` per block,
/// or (with `slow` `None`) never returns again.
struct Troubled {
    blocks: u64,
    ok: u64,
    slow: Option<Duration>,
}

impl lockstep::playout::sink::AudioSink for Troubled {
    fn write(
        &mut self,
        _block: &lockstep::playout::sink::Block<'_>,
    ) -> Result<(), lockstep::playout::sink::SinkError> {
        self.blocks += 1;
        if self.blocks > self.ok {
            match self.slow {
                Some(d) => std::thread::sleep(d),
                None => loop {
                    std::thread::sleep(Duration::from_secs(1));
                },
            }
        }
        Ok(())
    }
}

#[test]
fn a_slow_sink_is_counted_late_and_a_stuck_one_does_not_hang_the_stop() {
    use lockstep::node::{Follower, NodeError, Output, SharedSink};
    use lockstep::playout::sink::SinkError;
    use std::sync::{Arc, Mutex};
    let leader = node::leader();
    // 5 ms blocks taking 8 ms each, after the first 100.
    let slow = Arc::new(Mutex::new(Troubled {
        blocks: 0,
        ok: 100,
        slow: Some(Duration::from_millis(8)),
    }));
    let mut c = node::follower_config(&leader, lockstep::control::Role::Full, 0.0);
    c.output = Output::Custom(SharedSink::new(Arc::clone(&slow)));
    let f = Follower::start(c).expect("joins");
    std::thread::sleep(Duration::from_secs(2));
    let report = f.stop().expect("a slow sink is no error");
    assert!(
        report.late_blocks > 10,
        "late blocks {}",
        report.late_blocks
    );
    assert!(slow.lock().unwrap().blocks > 120, "the stream went on");

    // One that never returns after 20 blocks.
    let stuck = Arc::new(Mutex::new(Troubled {
        blocks: 0,
        ok: 20,
        slow: None,
    }));
    let mut c = node::follower_config(&leader, lockstep::control::Role::Full, 0.0);
    c.output = Output::Custom(SharedSink::new(stuck));
    let f = Follower::start(c).expect("joins");
    std::thread::sleep(Duration::from_secs(1));
    // The session goes on meanwhile: the follower still answers.
    assert!(f.session().is_some());
    let began = Instant::now();
    match f.stop() {
        Err(NodeError::Sink(SinkError::Hung { .. })) => {}
        other => panic!("expected a hung sink, got {other:?}"),
    }
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the stop took {:?}",
        began.elapsed()
    );
}

/// A follower on a pipe stopped with SIGSTOP for 5 s, then resumed: its sockets are full of
/// stale packets and its blocks long due. It must not write the missed audio in a burst
/// (its pipe gets no more than real time's worth after the resume), nor play the stale
/// audio it holds, and it must be back in step with one that never stopped within 2 s of
/// the resume, measured from the pipes alone: within 200 µs (the pipes' floor, as above)
/// in every half second from 2 s after the resume on.
///
/// Ignored in the default run, where the other tests' followers share the cores: a machine
/// that starves both followers for over 100 ms makes them skip blocks, which breaks the
/// pipes' pace this measures by (3 of 15 runs under heavy load). `.ci/run` runs it alone.
#[test]
#[ignore = "timing-sensitive: .ci/run runs it alone"]
fn a_follower_stopped_for_5_s_bursts_nothing_and_is_in_step_2_s_after_the_resume() {
    // (Built before the clock starts: a build inside the first 5 s left no time to play.)
    drop(follower_cmd());
    let leader = node::leader();
    let dir = node::temp_dir("stdout-sigstop");
    let key = dir.join("household.key");
    std::fs::write(&key, b"lockstep test household key 0001").expect("key file");
    let addr = leader.control_addr().to_string();
    let seconds = 21.0;
    let base = Instant::now();
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for ppm in ["100", "-100"] {
        let (child, reader) = pipe_follower(&key, &addr, ppm, seconds, base, Stdio::piped());
        readers.push(reader);
        children.push(child);
    }
    let pid = i32::try_from(children[1].0.id()).expect("a pid");
    std::thread::sleep(Duration::from_secs(5).saturating_sub(base.elapsed()));
    // SAFETY: signals to our own child, which is alive (it runs for 16 s).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP");
    let stopped_ns = base.elapsed().as_nanos() as i64;
    std::thread::sleep(Duration::from_secs(5));
    let resumed_ns = base.elapsed().as_nanos() as i64;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0, "SIGCONT");
    let recs: Vec<PipeRecording> = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .collect();
    let mut errs = Vec::new();
    for c in &mut children {
        let status = c.0.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut e) = c.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "follower failed ({status}):\n{err}");
        errs.push(err);
    }
    assert!(
        errs[1].contains("skipped"),
        "the stopped follower skipped what it missed:\n{}",
        errs[1]
    );
    // What the stopped follower's pipe got after the resume: at most real time's worth
    // (and a block or two of slack) in any half second.
    let frames_by = |t: i64| {
        recs[1]
            .reads
            .iter()
            .take_while(|r| r.1 <= t)
            .last()
            .map_or(0, |r| r.0)
    };
    let before_stop = frames_by(stopped_ns);
    assert!(
        before_stop > 48_000,
        "it played before the stop: {before_stop} frames"
    );
    let mut worst = 0.0f64;
    let mut t = resumed_ns;
    while t < resumed_ns + 4_000_000_000 {
        let got = frames_by(t + 500_000_000) - frames_by(t);
        worst = worst.max(got as f64 / 48_000.0);
        t += 50_000_000;
    }
    eprintln!(
        "after 5 s stopped: at most {:.3} s of audio in any half second of the pipe",
        worst
    );
    // A follower that skipped blocks besides the stop's was starved by the machine for over
    // 100 ms (and caught up on shorter stalls): worth knowing when a check below fails.
    let skipped: Vec<&str> = errs
        .iter()
        .map(|e| {
            e.lines()
                .find(|l| l.contains("skipped"))
                .map_or("none skipped", str::trim)
        })
        .collect();
    assert!(
        worst <= 0.5 * 1.05 + 2.0 * BLOCK as f64 / 48_000.0,
        "a burst: {worst:.3} s of audio in half a second ({skipped:?})"
    );

    // In step: half-second windows every quarter second from the resume on, the stopped
    // one's line fitted to its reads from just after the resume (its DAC skipped what it
    // missed there, and runs on one line since).
    let hop = 0.25;
    let skew = skew_from(&recs, resumed_ns + 100_000_000, resumed_ns, hop)
        .expect("the two pipes are measured after the resume");
    let series: Vec<(f64, f64)> = skew
        .windows
        .iter()
        .map(|w| ((w.t.as_nanos() - resumed_ns) as f64 / 1e9, w.skew_us))
        .collect();
    let from_2s: Vec<(f64, f64)> = series.iter().copied().filter(|w| w.0 >= 2.0).collect();
    // Every window from 2 s on is measured (none silent, none beyond the meter's ±5 ms),
    // up to the end of the shorter recording.
    let gaps = from_2s
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 > 1.5 * hop)
        .count();
    let mut abs: Vec<f64> = from_2s.iter().map(|w| w.1.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let p99 = abs
        .get(((abs.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN);
    let worst_2s = abs.last().copied().unwrap_or(f64::NAN);
    // When it was back: the first window from which on every window is measured and within
    // 200 µs.
    let mut back = None;
    for (i, w) in series.iter().enumerate().rev() {
        let next_ok = i + 1 == series.len() || series[i + 1].0 - w.0 <= 1.5 * hop;
        if w.1.abs() <= 200.0 && (back.is_none() || next_ok) {
            back = Some(w.0);
        } else {
            break;
        }
    }
    eprintln!(
        "after the resume, skew (s, µs): {}",
        series
            .iter()
            .map(|(t, v)| format!("{t:.2} {v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!(
        "back within 200 µs from the window at {} s after the resume; from 2 s: {} windows, \
         skew p99 {p99:.1} µs, max {worst_2s:.1} µs",
        back.map_or("(never)".to_string(), |b| format!("{b:.2}")),
        from_2s.len()
    );
    assert!(
        from_2s.len() >= 24 && gaps == 0,
        "{} windows from 2 s after the resume, {gaps} gaps ({skipped:?})",
        from_2s.len()
    );
    assert!(
        worst_2s <= 200.0,
        "skew {worst_2s:.1} µs from 2 s after the resume ({skipped:?})"
    );
    drop(leader);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A follower process killed with SIGKILL and started again: from 2 s after its new start,
/// it plays in step with one that ran throughout, measured from the pipes alone.
#[test]
fn a_follower_killed_and_restarted_is_in_step_2_s_after_its_start() {
    let leader = node::leader();
    let dir = node::temp_dir("stdout-kill");
    let key = dir.join("household.key");
    std::fs::write(&key, b"lockstep test household key 0001").expect("key file");
    let addr = leader.control_addr().to_string();
    let base = Instant::now();
    let spawn =
        |ppm: &str, seconds: f64| pipe_follower(&key, &addr, ppm, seconds, base, Stdio::null());
    let (mut steady, steady_reader) = spawn("100", 13.0);
    let (mut doomed, doomed_reader) = spawn("-100", 30.0);
    std::thread::sleep(Duration::from_secs(4));
    doomed.0.kill().expect("SIGKILL");
    let _ = doomed.0.wait();
    let before = doomed_reader.join().expect("reader");
    assert!(before.samples.len() > 48_000, "it played before the kill");
    let started_ns = base.elapsed().as_nanos() as i64;
    let (mut again, again_reader) = spawn("-100", 8.0);
    let recs = [
        steady_reader.join().expect("reader"),
        again_reader.join().expect("reader"),
    ];
    for c in [&mut steady, &mut again] {
        let status = c.0.wait().expect("wait");
        assert!(status.success(), "a follower failed: {status}");
    }
    let from = started_ns + 2_000_000_000;
    let skew =
        skew_from(&recs, from, from, 0.5).expect("the two pipes are measured after the restart");
    eprintln!(
        "from 2 s after the restarted follower's start: {} windows, skew p50 {:.1} µs, \
         p99 {:.1} µs, max {:.1} µs",
        skew.windows.len(),
        skew.p50_us,
        skew.p99_us,
        skew.max_us
    );
    assert!(skew.windows.len() >= 6, "{} windows", skew.windows.len());
    assert!(skew.p99_us <= 200.0, "skew p99 {:.1} µs", skew.p99_us);
    drop(leader);
    let _ = std::fs::remove_dir_all(&dir);
}
