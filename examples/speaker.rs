//! A lockstep speaker as a program: one long-running node that is idle, leads its group or
//! follows it, as the household says, and answers the control API on `--rpc`.
//!
//! ```text
//! cargo run --release --example speaker -- --key household.key --name Kitchen \
//!     --room Kitchen --model lockstep-one --state /var/lib/lockstep/kitchen \
//!     --interface 192.168.1.20 --rpc 192.168.1.20:7800 --output device
//! ```
//!
//! It keeps its identity, settings and household in `--state DIR` (created on first start;
//! `--name`, `--room` and `--model` only name a new speaker). It advertises itself with
//! mDNS on `--interface` (and on no other interface) and finds the other speakers there;
//! `--peer ADDR` names a speaker's control address directly (repeatable), and
//! `--no-discovery` turns mDNS off. Its leader's control channel listens on
//! `--control-port` (default: the `--rpc` port plus one).
//!
//! `--output` is where it plays: a WAV file (each follower session writes its own: the
//! first `FILE.wav`, then `FILE-2.wav`, …), `null`, `-` (raw PCM on standard output,
//! `--format`), or a sound card, `device` / `device:NAME` (needs the cpal feature).
//!
//! Apps control it with JSON-RPC (`docs/control-api.md`), for example with
//! `cargo run --example household -- --key household.key --rpc ADDR ls`.
//!
//! It runs until `--duration` seconds have passed, or until it is stopped (its state is on
//! disk after every change, so a kill loses nothing). It prints a line when its play state
//! changes. Exit codes: 0 done, 1 could not start (a corrupt state file, which is set
//! aside and named; a port in use), 2 bad command line.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use lockstep::control::HouseholdKey;
use lockstep::household::{PlayState, SpeakerConfig, SpeakerNode};
use lockstep::node::LocalClock;
use lockstep::playout::sink::SampleFormat;
use lockstep::time::Nanos;

#[path = "common/cli.rs"]
mod cli;
use cli::Failure;

/// A lockstep speaker: idle, leading or following its group, controlled over JSON-RPC.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The household key file.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Its name, for a new state directory.
    #[arg(long, default_value = "Speaker")]
    name: String,
    /// Its room, for a new state directory.
    #[arg(long, default_value = "Living room")]
    room: String,
    /// Its model, for a new state directory (a stereo pair needs two of one model).
    #[arg(long, default_value = "lockstep-generic")]
    model: String,
    /// The state directory.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The IPv4 address of the interface it works on; nothing binds elsewhere.
    #[arg(long, value_name = "IPv4")]
    interface: Ipv4Addr,
    /// Where the control API listens (default: the interface, port 7800).
    #[arg(long, value_name = "ADDR")]
    rpc: Option<SocketAddr>,
    /// The port its leader's control channel listens on when it leads (default: the
    /// control API's port plus one).
    #[arg(long, value_name = "PORT")]
    control_port: Option<u16>,
    /// Another speaker's control API address (repeatable).
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<SocketAddr>,
    /// Do not advertise or browse with mDNS.
    #[arg(long)]
    no_discovery: bool,
    /// Where the audio goes: a WAV file, `null`, `-`, or `device` / `device:NAME`.
    #[arg(
        long,
        default_value = "null",
        value_name = "FILE.wav|null|-|device[:NAME]"
    )]
    output: String,
    /// The sample format of `--output -`.
    #[arg(long, default_value = "s16le", value_parser = cli::parse_format, value_name = "s16le|s24le|s32le|f32le")]
    format: SampleFormat,
    /// Run on a simulated crystal this many ppm fast (negative: slow); 0 is the machine's
    /// monotonic clock.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "X",
        allow_negative_numbers = true
    )]
    drift_ppm: f64,
    /// The target latency of the streams it leads, in ms.
    #[arg(long, default_value_t = 100)]
    latency_ms: u32,
    /// Stop after this many seconds (default: run until stopped).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit("speaker"),
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    let duration = cli::positive_seconds("--duration", args.duration)?;
    if !(args.drift_ppm.is_finite() && args.drift_ppm.abs() <= 1000.0) {
        return Err(Failure::usage("--drift-ppm must be within ±1000"));
    }
    if !(1..=2000).contains(&args.latency_ms) {
        return Err(Failure::usage("--latency-ms must be within 1..=2000"));
    }
    let key = HouseholdKey::from_file(&args.key).map_err(|e| Failure::runtime(e.to_string()))?;
    let rpc = args
        .rpc
        .unwrap_or_else(|| SocketAddr::from((args.interface, 7800)));
    let control_port = match args.control_port {
        Some(p) => p,
        None if rpc.port() == 0 => 0,
        None => rpc
            .port()
            .checked_add(1)
            .ok_or_else(|| Failure::usage("--rpc's port leaves no room for --control-port"))?,
    };
    let mut config = SpeakerConfig::new(
        key,
        &args.name,
        &args.room,
        &args.model,
        &args.state,
        args.interface,
        rpc,
    );
    config.control_port = control_port;
    config.output = cli::parse_output(&args.output, args.format)?;
    config.peers = args.peers.clone();
    config.discovery = !args.no_discovery;
    config.latency = Nanos::from_millis(i64::from(args.latency_ms));
    if args.drift_ppm != 0.0 {
        config.clock = LocalClock::Drifting {
            drift_ppm: args.drift_ppm,
            offset: Nanos::ZERO,
        };
    }
    let speaker = SpeakerNode::start(config).map_err(|e| Failure::runtime(e.to_string()))?;
    let me = speaker.household();
    let name = me
        .speaker(speaker.id())
        .map_or_else(|| args.name.clone(), |s| s.name.clone());
    eprintln!(
        "speaker: {name:?} ({}) answers on {}",
        speaker.id(),
        speaker.rpc_addr()
    );
    let start = Instant::now();
    let mut state = PlayState::Idle;
    while duration.is_none_or(|d| start.elapsed() < d) {
        let now = speaker.play_state();
        if now != state {
            state = now;
            eprintln!("speaker: {name:?} is {}", state.as_str());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let sessions = speaker.stop();
    for (i, r) in sessions.iter().enumerate() {
        println!(
            "session {}: {} frames, underruns {}, packets lost {}",
            i + 1,
            r.frames,
            r.status.underruns,
            r.status.packets_lost
        );
    }
    Ok(())
}
