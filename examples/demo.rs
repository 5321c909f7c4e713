//! The lockstep demo: a leader and a group of four speakers on this machine, on loopback,
//! with real UDP sockets and the real monotonic clock.
//!
//! ```text
//! cargo run --release --example demo [-- --seconds 20 --out target/demo]
//! ```
//!
//! - The leader plays its built-in test signal (the same broadband noise on both channels)
//!   to the group "Downstairs".
//! - The living room has a stereo pair (left and right, both model "lockstep-one") and a
//!   subwoofer; the kitchen has one full-range speaker.
//! - Each follower runs on a simulated crystal of its own (+120, −80, +40 and −150 ppm
//!   against the monotonic clock, with an arbitrary offset): its PTP timestamps, its
//!   playout and its virtual DAC all read that crystal, so the estimator and the drift
//!   corrector have real work to do.
//!
//! At the end the sync meter cross-correlates the recorded WAVs of the full-range speakers
//! and reports their skew. It writes to `--out`: one WAV per speaker (with a sidecar), a
//! `report.json` and `skew.svg`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use lockstep::control::{HouseholdKey, Role, new_nonce};
use lockstep::measure::{GroupSkew, Series, log_plot_svg, measure_recordings, recording};
use lockstep::node::{
    Follower, FollowerConfig, FollowerReport, Leader, LeaderConfig, LocalClock, Output, TestSource,
};
use lockstep::time::Nanos;

/// Runs a leader and four followers on loopback and measures how closely they play together.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// How long to play, in seconds.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Where the recordings and the report go.
    #[arg(long, default_value = "target/demo")]
    out: PathBuf,
    /// The group's target latency, ms.
    #[arg(long, default_value_t = 100)]
    latency_ms: u64,
    /// Skew is measured from this many seconds after the first speaker starts (the clocks
    /// converge and the playout locks in first).
    #[arg(long, default_value_t = 5.0)]
    measure_from_s: f64,
}

struct Speaker {
    name: &'static str,
    file: &'static str,
    role: Role,
    model: &'static str,
    drift_ppm: f64,
    offset_ms: i64,
}

const SPEAKERS: [Speaker; 4] = [
    Speaker {
        name: "Living room L",
        file: "living-left.wav",
        role: Role::Left,
        model: "lockstep-one",
        drift_ppm: 120.0,
        offset_ms: 3_217,
    },
    Speaker {
        name: "Living room R",
        file: "living-right.wav",
        role: Role::Right,
        model: "lockstep-one",
        drift_ppm: -80.0,
        offset_ms: -1_804,
    },
    Speaker {
        name: "Living room sub",
        file: "living-sub.wav",
        role: Role::Sub,
        model: "lockstep-sub",
        drift_ppm: 40.0,
        offset_ms: 911,
    },
    Speaker {
        name: "Kitchen",
        file: "kitchen.wav",
        role: Role::Full,
        model: "lockstep-mini",
        drift_ppm: -150.0,
        offset_ms: -4_450,
    },
];

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.seconds.is_nan() || args.seconds < args.measure_from_s + 2.0 {
        return Err(format!(
            "--seconds must be at least --measure-from-s + 2 ({} s)",
            args.measure_from_s + 2.0
        ));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    // A fresh household key for this run.
    let mut secret = Vec::new();
    for _ in 0..2 {
        secret.extend_from_slice(&new_nonce().map_err(|e| e.to_string())?);
    }
    let key = HouseholdKey::new(&secret).map_err(|e| e.to_string())?;

    let mut lc = LeaderConfig::new("Downstairs", key.clone(), "127.0.0.1:0".parse().unwrap());
    lc.latency = Nanos::from_millis(args.latency_ms as i64);
    let leader = Leader::start(lc, Box::new(TestSource::noise(2, 48_000)))
        .map_err(|e| format!("leader: {e}"))?;
    eprintln!(
        "leader: group \"Downstairs\", control {}, L24 48 kHz stereo, 5 ms packets, latency {} ms",
        leader.control_addr(),
        args.latency_ms
    );

    let mut followers = Vec::new();
    let mut joined = Vec::new();
    for s in &SPEAKERS {
        let mut fc = FollowerConfig::new(leader.control_addr(), key.clone(), s.role);
        fc.group = "Downstairs".into();
        fc.name = s.name.into();
        fc.model = s.model.into();
        fc.output = Output::Wav(args.out.join(s.file));
        fc.clock = LocalClock::Drifting {
            drift_ppm: s.drift_ppm,
            offset: Nanos::from_millis(s.offset_ms),
        };
        let t = Instant::now();
        let f = Follower::start(fc).map_err(|e| format!("{}: {e}", s.name))?;
        joined.push(t);
        eprintln!(
            "{}: joined as {} (model {}, crystal {:+} ppm)",
            s.name, s.role, s.model, s.drift_ppm
        );
        followers.push(f);
    }

    // How long each speaker took from being started to playing in sync (its controller
    // locked), polled every 5 ms for up to 5 s.
    let mut to_play: Vec<Option<Duration>> = vec![None; followers.len()];
    while to_play.iter().any(Option::is_none) && joined[0].elapsed() < Duration::from_secs(5) {
        for ((f, t), slot) in followers.iter().zip(&joined).zip(to_play.iter_mut()) {
            if slot.is_none() && f.status().playing {
                *slot = Some(t.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for (s, t) in SPEAKERS.iter().zip(&to_play) {
        match t {
            Some(t) => eprintln!("{}: playing {} ms after it started", s.name, t.as_millis()),
            None => eprintln!("{}: not playing 5 s after it started", s.name),
        }
    }

    let start = Instant::now();
    let total = Duration::from_secs_f64(args.seconds);
    let mut next_status = Duration::from_secs(1);
    while start.elapsed() < total {
        std::thread::sleep(Duration::from_millis(100));
        if start.elapsed() >= next_status {
            next_status += Duration::from_secs(1);
            status_lines(start.elapsed(), &followers);
        }
    }

    let mut reports: Vec<FollowerReport> = Vec::new();
    for (f, s) in followers.into_iter().zip(&SPEAKERS) {
        reports.push(f.stop().map_err(|e| format!("{}: {e}", s.name))?);
    }
    let stats = leader.stats();
    leader.shutdown();

    let first = reports
        .iter()
        .filter_map(|r| r.first_sample_ns)
        .min()
        .ok_or("no speaker emitted anything")?;
    let from = first + (args.measure_from_s * 1e9) as i64;
    let full: Vec<_> = SPEAKERS
        .iter()
        .filter(|s| s.role != Role::Sub)
        .map(|s| recording(s.name, &args.out.join(s.file)))
        .collect();
    let skew = measure_recordings(&full, lockstep::time::TrueInstant::from_nanos(from), None)
        .map_err(|e| e.to_string())?;

    println!();
    println!(
        "skew between full-range speakers (sync meter on the recordings, from {} s on):",
        args.measure_from_s
    );
    for p in &skew.pairs {
        println!(
            "  {:<15} vs {:<15}  p50 {:>7.2} µs  p99 {:>7.2} µs  max {:>7.2} µs  mean {:>+8.2} µs  ({} windows)",
            p.a, p.b, p.p50_us, p.p99_us, p.max_us, p.mean_us, p.windows
        );
    }
    println!(
        "  all pairs: p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs",
        skew.p50_us, skew.p99_us, skew.max_us
    );
    let underruns: u64 = reports.iter().map(|r| r.status.underruns).sum();
    println!(
        "  underruns {underruns}, RTP packets sent {}, PTP exchanges served {}",
        stats.rtp_packets, stats.ptp.received
    );

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "  machine: {} cores, load average {load} (1, 5, 15 min)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    write_report(&args.out, &reports, &skew, &to_play, &load, args)?;
    let svg = log_plot_svg(
        "lockstep demo: worst pairwise skew per 0.5 s window",
        "time since measurement start (s)",
        "|skew| (µs)",
        0.01,
        10_000.0,
        &[Series {
            name: "worst pair",
            points: &skew.series,
        }],
    );
    let svg_path = args.out.join("skew.svg");
    std::fs::write(&svg_path, svg).map_err(|e| format!("{}: {e}", svg_path.display()))?;
    println!("wrote {} (WAVs, report.json, skew.svg)", args.out.display());
    Ok(())
}

fn status_lines(elapsed: Duration, followers: &[Follower]) {
    for (f, s) in followers.iter().zip(&SPEAKERS) {
        eprintln!(
            "[{:>5.1} s] {:<15} {}",
            elapsed.as_secs_f64(),
            s.name,
            f.status()
        );
    }
}

fn write_report(
    out: &Path,
    reports: &[FollowerReport],
    skew: &GroupSkew,
    to_play: &[Option<Duration>],
    load: &str,
    args: &Args,
) -> Result<(), String> {
    let speakers: Vec<serde_json::Value> = reports
        .iter()
        .zip(&SPEAKERS)
        .zip(to_play)
        .map(|((r, s), t)| {
            serde_json::json!({
                "name": s.name,
                "role": s.role.name(),
                "model": s.model,
                "wav": s.file,
                "first_sample_ns": r.first_sample_ns,
                "rate_hz": r.rate_hz,
                "drift_ppm": s.drift_ppm,
                "frames": r.frames,
                "underruns": r.status.underruns,
                "packets_lost": r.status.packets_lost,
                "packets_late": r.status.packets_late,
                "start_to_playing_ms": t.map(|t| t.as_secs_f64() * 1e3),
            })
        })
        .collect();
    let pairs: Vec<serde_json::Value> = skew
        .pairs
        .iter()
        .map(|p| {
            serde_json::json!({
                "a": p.a, "b": p.b, "p50_us": p.p50_us, "p99_us": p.p99_us,
                "max_us": p.max_us, "mean_us": p.mean_us, "windows": p.windows,
            })
        })
        .collect();
    let report = serde_json::json!({
        "seconds": args.seconds,
        "latency_ms": args.latency_ms,
        "measure_from_s": args.measure_from_s,
        "speakers": speakers,
        "pairs": pairs,
        "skew_p50_us": skew.p50_us,
        "skew_p99_us": skew.p99_us,
        "skew_max_us": skew.max_us,
        "load_average": load,
    });
    let path = out.join("report.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}
