//! A lockstep follower as a program: joins a leader's group and plays its stream in step
//! with the other speakers.
//!
//! ```text
//! cargo run --release --example follower -- --key household.key --leader 127.0.0.1:7700
//! cargo run --release --example follower -- --key household.key --leader 127.0.0.1:7700 \
//!     --role left --model lockstep-one --name "Living room L" --output left.wav --duration 30
//! ```
//!
//! The follower proves the household key (`--key`, the same file as the leader's), asks for
//! a role (`full`, `left`, `right`, `sub` or `mono`), learns the leader's clock over PTP and
//! plays the RTP stream at the instants the leader stamped on it. Both halves of a stereo
//! pair must be the same model (`--model`); the leader refuses a pair of two.
//!
//! Output: `null` (the timing runs, the audio goes nowhere), a WAV file (32-bit float, with
//! a sidecar `<file>.json` for the sync meter: `cargo run --example sync_meter -- a.wav
//! b.wav`), or `device` / `device:NAME` (a sound card: the default output, or the named
//! one, an ALSA PCM name such as `pulse` or `hw:0,0`; needs the `cpal` feature and ALSA's
//! headers: `cargo run --release --features cpal --example follower -- ... --output device`).
//! `-` writes raw interleaved PCM to standard output (`--format s16le|s24le|s32le|f32le`,
//! default `s16le`), each block when it leaves the virtual DAC, for a pipe:
//! `... --output - | aplay -f S16_LE -r 48000 -c 2` (its status and summary then go to
//! standard error; a closed pipe ends it with exit status 1).
//! `--drift-ppm` runs the follower on a simulated crystal that fast (negative: slow), so
//! that several followers on one machine each have a clock of their own to correct for.
//!
//! It runs for `--duration` seconds, or until interrupted (Ctrl-C). Once a second it prints
//! its status on standard error; at the end it prints a summary on standard output. Exit
//! codes: 0 done, 1 could not join or play (wrong key, unreachable leader, refused pair,
//! port in use, unwritable output), 2 bad command line.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use lockstep::control::{FollowerStatus, HouseholdKey, Refusal, Role};
use lockstep::node::{Follower, FollowerConfig, FollowerReport, LocalClock, NodeError, Output};
use lockstep::playout::sink::SampleFormat;
use lockstep::time::Nanos;

#[path = "common/cli.rs"]
mod cli;
use cli::Failure;

/// Joins a lockstep leader's group and plays its stream in step.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The leader's control address.
    #[arg(long, value_name = "HOST:PORT")]
    leader: String,
    /// The role to play.
    #[arg(long, default_value = "full", value_parser = parse_role, value_name = "full|left|right|sub|mono")]
    role: Role,
    /// The speaker's model; both halves of a stereo pair must have the same.
    #[arg(long, default_value = "lockstep-generic")]
    model: String,
    /// The speaker's name, as the leader shows it [default: the library's].
    #[arg(long)]
    name: Option<String>,
    /// The group to join (empty: whichever the leader leads).
    #[arg(long, default_value = "")]
    group: String,
    /// The address of the interface to join a multicast stream on (default: the address
    /// the sockets bind to, when the leader is on loopback).
    #[arg(long, value_name = "IPv4")]
    multicast_interface: Option<std::net::Ipv4Addr>,
    /// Where the audio goes: a WAV file, `null`, `-` (raw PCM on standard output, see
    /// `--format`), or a sound card, `device` (the default output) or `device:NAME` (an
    /// ALSA PCM such as `pulse` or `hw:0,0`); a sound card needs the cpal feature.
    #[arg(
        long,
        default_value = "null",
        value_name = "FILE.wav|null|-|device[:NAME]"
    )]
    output: String,
    /// The sample format of `--output -`.
    #[arg(long, default_value = "s16le", value_parser = cli::parse_format, value_name = "s16le|s24le|s32le|f32le")]
    format: SampleFormat,
    /// A sound card's callback size in frames (default: the device's); the card's buffer
    /// must fit in the group's latency.
    #[arg(long, value_name = "FRAMES")]
    device_period: Option<u32>,
    /// Run on a simulated crystal this many ppm fast (negative: slow); 0 is the machine's
    /// monotonic clock.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "X",
        allow_negative_numbers = true
    )]
    drift_ppm: f64,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// The household key file (the same as the leader's).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Play a leader whose stream or clock is not authenticated (one started with
    /// `--unauthenticated`). The status then says so.
    #[arg(long)]
    accept_unauthenticated: bool,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

/// Largest simulated drift taken: real crystals are within ±100 ppm or so.
const MAX_DRIFT_PPM: f64 = 1000.0;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit("follower"),
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    let duration = cli::positive_seconds("--duration", args.duration)?;
    if !(args.drift_ppm.is_finite() && args.drift_ppm.abs() <= MAX_DRIFT_PPM) {
        return Err(Failure::usage(format!(
            "--drift-ppm must be within ±{MAX_DRIFT_PPM}, got {}",
            args.drift_ppm
        )));
    }
    let output = cli::parse_output(&args.output, args.format)?;
    let leader = resolve(&args.leader)?;
    let key = HouseholdKey::from_file(&args.key).map_err(|e| Failure::runtime(e.to_string()))?;
    // Find out now whether the output can be written, before joining the group.
    let created = match &output {
        Output::Wav(path) => check_writable(path)?,
        _ => false,
    };

    let mut config = FollowerConfig::new(leader, key, args.role);
    config.model = args.model.clone();
    config.accept_unauthenticated = args.accept_unauthenticated;
    if let Some(name) = &args.name {
        config.name = name.clone();
    }
    config.group = args.group.clone();
    if args.multicast_interface.is_some() {
        config.multicast_interface = args.multicast_interface;
    }
    config.output = output.clone();
    if let Some(frames) = args.device_period {
        if !matches!(output, Output::Device(_)) {
            return Err(Failure::usage("--device-period needs --output device"));
        }
        if !(16..=16_384).contains(&frames) {
            return Err(Failure::usage(format!(
                "--device-period must be 16 to 16384 frames, got {frames}"
            )));
        }
        config.device_period_frames = Some(frames);
    }
    config.clock = if args.drift_ppm == 0.0 {
        LocalClock::Monotonic
    } else {
        LocalClock::Drifting {
            drift_ppm: args.drift_ppm,
            offset: Nanos::ZERO,
        }
    };
    let name = config.name.clone();
    let follower = match Follower::start(config) {
        Ok(f) => f,
        Err(e) => {
            if created && let Output::Wav(path) = &output {
                let _ = std::fs::remove_file(path);
            }
            return Err(Failure::runtime(explain(&e, leader)));
        }
    };
    match follower.session() {
        Some(s) => eprintln!(
            "follower: {name:?} (model {}) joined group {:?} at {leader} as {}, session {}: \
             {:?} {} Hz {} ch, latency {} ms",
            args.model,
            s.group,
            s.role.name(),
            s.session,
            s.stream.codec,
            s.stream.sample_rate,
            s.stream.channels,
            s.stream.target_latency.as_nanos() / 1_000_000,
        ),
        None => eprintln!("follower: {name:?} joined {leader}"),
    }

    let terminal = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut next_line = Duration::from_secs(1);
    loop {
        let elapsed = start.elapsed();
        if duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        if let Some(e) = follower.output_error() {
            if terminal {
                eprintln!();
            }
            let _ = follower.stop();
            return Err(Failure::runtime(format!("output: {e}")));
        }
        if elapsed >= next_line {
            next_line += Duration::from_secs(1);
            let line = status_line(elapsed, &follower.status(), follower.session().is_some());
            let mut err = std::io::stderr().lock();
            if terminal {
                let _ = write!(err, "\r\x1b[K{line}");
            } else {
                let _ = writeln!(err, "{line}");
            }
            let _ = err.flush();
        }
        let mut nap = Duration::from_millis(100);
        if let Some(d) = duration {
            nap = nap.min(d.saturating_sub(start.elapsed()));
        }
        std::thread::sleep(nap);
    }
    if terminal {
        eprintln!();
    }
    let report = follower
        .stop()
        .map_err(|e| Failure::runtime(format!("output: {e}")))?;
    // With the audio on standard output, the summary goes with the status lines.
    if matches!(output, Output::Stdout(_)) {
        eprint!("{}", report_text(&report));
    } else {
        print!("{}", report_text(&report));
    }
    Ok(())
}

/// Whether `path` can be written; creates it if needed and says whether it did.
fn check_writable(path: &std::path::Path) -> Result<bool, Failure> {
    let existed = path.exists();
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Failure::runtime(format!("cannot write output {}: {e}", path.display())))?;
    Ok(!existed)
}

/// `HOST:PORT` to an address (the first the resolver gives).
fn resolve(leader: &str) -> Result<SocketAddr, Failure> {
    leader
        .to_socket_addrs()
        .map_err(|e| Failure::usage(format!("--leader {leader}: {e} (expected HOST:PORT)")))?
        .next()
        .ok_or_else(|| Failure::usage(format!("--leader {leader}: no address found")))
}

/// The library's error, with a hint where one helps.
fn explain(e: &NodeError, leader: SocketAddr) -> String {
    match e {
        NodeError::Refused(Refusal::WrongKey) => {
            format!("{e} (every speaker of the household needs the leader's key file; check --key)")
        }
        NodeError::Refused(Refusal::ModelMismatch { .. }) => {
            format!("{e}; give both halves the same --model, or use --role full")
        }
        NodeError::Unreachable { .. } => {
            format!("{e} (is a leader running with --control {leader}?)")
        }
        _ => e.to_string(),
    }
}

fn status_line(elapsed: Duration, st: &FollowerStatus, joined: bool) -> String {
    let reconnecting = if joined { "" } else { "  reconnecting" };
    format!("[{:>6.0} s] {st}{reconnecting}", elapsed.as_secs_f64())
}

fn report_text(r: &FollowerReport) -> String {
    use std::fmt::Write as _;
    let st = &r.status;
    let seconds = if r.rate_hz > 0.0 {
        r.frames as f64 / r.rate_hz
    } else {
        0.0
    };
    let mut t = String::new();
    let _ = writeln!(t, "follower: stopped");
    let _ = writeln!(t, "  played       {} frames ({seconds:.2} s)", r.frames);
    let _ = writeln!(
        t,
        "  packets      received {}, lost {}, late {}, from unknown sources {}",
        st.packets_received, st.packets_lost, st.packets_late, st.unknown_source
    );
    let _ = writeln!(t, "  underruns    {}", st.underruns);
    let _ = writeln!(t, "  sessions     {}", r.sessions);
    if r.late_blocks > 0 {
        let _ = writeln!(
            t,
            "  late blocks  {} (the output took longer than a block)",
            r.late_blocks
        );
    }
    if r.skipped_blocks > 0 {
        let _ = writeln!(
            t,
            "  skipped      {} blocks (due before the follower could run: silence, not late)",
            r.skipped_blocks
        );
    }
    if let Some(e) = st.skew_estimate {
        let _ = writeln!(
            t,
            "  last error   {:.1} µs against the leader's schedule",
            e.as_micros_f64()
        );
    }
    if let Some(wav) = &r.wav {
        let mut side = wav.clone().into_os_string();
        side.push(".json");
        let _ = writeln!(
            t,
            "  recording    {} (timeline in {})",
            wav.display(),
            PathBuf::from(side).display()
        );
    }
    t
}
