//! A lockstep leader as a program: streams one input to every follower that joins its group,
//! and serves the group's clock.
//!
//! ```text
//! head -c 32 /dev/urandom > household.key        # once; every speaker needs this file
//! cargo run --release --example leader -- --key household.key --input tone
//! cargo run --release --example leader -- --key household.key --input music.wav --group Kitchen
//! cargo run --release --example leader -- --key household.key --input song.flac --rate 48000
//! ffmpeg -re -i song.flac -f s16le -ar 48000 -ac 2 - | \
//!     cargo run --release --example leader -- --key household.key --input -
//! ```
//!
//! Inputs: a music file — FLAC, MP3, Ogg Vorbis or WAV, plus AAC and ALAC when built with
//! the `aac` and `alac` features (docs/sources.md) — played once; `-` for raw signed 16-bit
//! little-endian stereo PCM at 48 kHz on standard input (feed it at real time, e.g.
//! `ffmpeg -re`); or `tone` for the built-in test signal (broadband noise at −12 dBFS, the
//! same on both channels). A file's stream takes the file's rate where the stream can carry
//! it (44.1, 48 or 96 kHz; 48 kHz for Opus), else 48 kHz, or the rate `--rate` gives; the
//! file is resampled when the rates differ. A mono file plays on both channels. When the
//! file ends, or stops early because it is corrupt or truncated (said on standard error),
//! the leader keeps the group and sends silence.
//!
//! Followers (`cargo run --example follower`) join on the control port (`--control`,
//! 127.0.0.1:7700 by default; give `0.0.0.0:7700` to serve the whole network). `--dest`
//! also sends the stream to a standard RTP player that does not join, and `--sdp` writes an
//! SDP file describing it.
//!
//! The leader runs for `--seconds`, or until interrupted (Ctrl-C). Once a second it prints
//! a status line on standard error, with the joined followers' health every two seconds.

use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use lockstep::control::{FollowerStatus, HouseholdKey, Protection};
use lockstep::media::{MAX_CHANNELS, SUPPORTED_SAMPLE_RATES};
use lockstep::node::{
    AudioSource, FileDecoder, FileEnd, FileMonitor, FileSource, FollowerInfo, Leader, LeaderConfig,
    MulticastStream, RawS16Source, TestSource,
};
use lockstep::time::Nanos;

#[path = "common/cli.rs"]
mod cli;
use cli::{Codec, Failure};

/// Streams an input to a group of lockstep followers and serves the group's clock.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// What to play: a music file (FLAC, MP3, Ogg Vorbis, WAV; AAC and ALAC with their
    /// features), `-` for raw s16le stereo 48 kHz on standard input, or `tone` for the
    /// built-in test signal.
    #[arg(long, value_name = "FILE|-|tone")]
    input: String,
    /// The stream's sample rate for a file input (44100, 48000 or 96000) [default: the
    /// file's where the stream can carry it, else 48000].
    #[arg(long, value_name = "HZ")]
    rate: Option<u32>,
    /// The group's name; followers asking for another group are refused.
    #[arg(long, default_value = "Home")]
    group: String,
    /// The stream's codec (opus needs the `opus` cargo feature).
    #[arg(long, value_enum, default_value_t = Codec::L24)]
    codec: Codec,
    /// Audio per packet, ms [default: 5; 20 for opus].
    #[arg(long, value_name = "MS")]
    ptime: Option<u32>,
    /// Target latency from capture to playout on every follower, ms [default: the
    /// library's, 100].
    #[arg(long, value_name = "MS")]
    latency: Option<u32>,
    /// Also send the stream to this address, without a handshake (a standard RTP player).
    /// Repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    dest: Vec<String>,
    /// Write an SDP file describing the stream sent to the multicast group, or else to the
    /// first `--dest`.
    #[arg(long, value_name = "FILE")]
    sdp: Option<PathBuf>,
    /// Send the stream once to this IPv4 multicast group (AES67 style) instead of to each
    /// follower; needs `--interface`.
    #[arg(long, value_name = "GROUP:PORT")]
    multicast: Option<SocketAddrV4>,
    /// The address of the interface the multicast stream leaves by (never a default route).
    #[arg(long, value_name = "IPv4", requires = "multicast")]
    interface: Option<Ipv4Addr>,
    /// The household key file (16 to 1024 bytes); every follower needs the same.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Send the stream and the clock to followers without authentication (plain RTP and
    /// PTP, which anyone on the network can forge). Followers refuse it unless started with
    /// `--accept-unauthenticated`.
    #[arg(long)]
    unauthenticated: bool,
    /// TCP address of the control port followers join on; the clock and media sockets bind
    /// to its IP.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7700")]
    control: SocketAddr,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long, value_name = "S")]
    seconds: Option<f64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit("leader"),
    }
}

/// Sample rate and channels of raw input and of the test signal.
const RATE: u32 = 48_000;
const CHANNELS: u16 = 2;

fn run(args: &Args) -> Result<(), Failure> {
    let duration = cli::positive_seconds("--seconds", args.seconds)?;
    if args.codec == Codec::Opus && !cfg!(feature = "opus") {
        return Err(Failure::usage(
            "codec opus: this leader was built without the opus feature \
             (cargo run --features opus --example leader -- ...)",
        ));
    }
    if args.sdp.is_some() && args.dest.is_empty() && args.multicast.is_none() {
        return Err(Failure::usage(
            "--sdp describes the stream sent to a static destination or a multicast group: \
             give --dest HOST:PORT or --multicast GROUP:PORT too",
        ));
    }
    let multicast = match (args.multicast, args.interface) {
        (Some(group), Some(interface)) => Some(MulticastStream {
            group,
            interface,
            ttl: 1,
        }),
        (Some(_), None) => {
            return Err(Failure::usage(
                "--multicast needs --interface IPv4: multicast only leaves by the interface named",
            ));
        }
        _ => None,
    };
    let dests = args
        .dest
        .iter()
        .map(|d| resolve(d))
        .collect::<Result<Vec<_>, _>>()?;
    if args.control.ip().is_loopback()
        && let Some(d) = dests.iter().find(|d| !d.ip().is_loopback())
    {
        eprintln!(
            "leader: warning: the stream leaves from {} (the --control IP) and cannot reach {d}; \
             give --control 0.0.0.0:{} to send beyond this machine",
            args.control.ip(),
            args.control.port()
        );
    }
    let key = HouseholdKey::from_file(&args.key).map_err(|e| Failure::runtime(e.to_string()))?;

    let (source, rate, channels, file) = open_input(args)?;
    let mut config = LeaderConfig::new(&args.group, key, args.control);
    config.codec = args.codec.kind();
    config.sample_rate = rate;
    config.channels = channels;
    let ptime = args
        .ptime
        .unwrap_or(if args.codec == Codec::Opus { 20 } else { 5 });
    config.ptime = Nanos::from_millis(i64::from(ptime));
    if let Some(ms) = args.latency {
        config.latency = Nanos::from_millis(i64::from(ms));
    }
    config.dests = dests;
    config.multicast = multicast;
    if args.unauthenticated {
        config.protection = Protection::NONE;
        eprintln!(
            "leader: warning: the stream and the clock go to followers UNAUTHENTICATED: \
             anyone on the network can forge them"
        );
    }
    if !config.dests.is_empty() {
        eprintln!(
            "leader: the --dest streams are plain RTP (UNAUTHENTICATED): standard players have \
             no keys"
        );
    }
    config.sdp = args.sdp.clone();
    let latency_ms = config.latency.as_nanos() / 1_000_000;
    let description = source.describe();

    let leader = Leader::start(config, source).map_err(|e| Failure::runtime(e.to_string()))?;
    eprintln!(
        "leader: group {:?}, control {}, {:?} {} Hz {} ch, {} ms packets, latency {} ms, input {}",
        args.group,
        leader.control_addr(),
        args.codec.kind(),
        rate,
        channels,
        ptime,
        latency_ms,
        description,
    );
    if !args.dest.is_empty() {
        eprintln!("leader: also streaming to {}", args.dest.join(", "));
    }
    if let Some(sdp) = &args.sdp {
        eprintln!("leader: wrote {}", sdp.display());
    }

    let mut status = StatusBoard::new();
    let start = Instant::now();
    let mut next_line = Duration::from_secs(1);
    let mut next_details = Duration::from_secs(2);
    let mut details: Vec<(FollowerInfo, Option<FollowerStatus>)> = Vec::new();
    let mut file = file;
    loop {
        if let Some(end) = file.as_ref().and_then(FileMonitor::end) {
            match end {
                FileEnd::Failed(e) => {
                    eprintln!("leader: the input stopped early: {e}; the group stays, in silence")
                }
                _ => eprintln!("leader: the input has ended; the group stays, in silence"),
            }
            file = None;
        }
        let elapsed = start.elapsed();
        if duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        if elapsed >= next_line {
            next_line += Duration::from_secs(1);
            let fresh = elapsed >= next_details;
            if fresh {
                next_details = elapsed + Duration::from_secs(2);
                details = leader.status(Duration::from_millis(300));
            }
            status.show(&summary(&leader, start.elapsed()), &details, fresh);
        }
        let mut nap = Duration::from_millis(100);
        if let Some(d) = duration {
            nap = nap.min(d.saturating_sub(start.elapsed()));
        }
        std::thread::sleep(nap);
    }
    let last = summary(&leader, start.elapsed());
    status.finish(&last);
    leader.shutdown();
    Ok(())
}

/// `HOST:PORT` to an address (the first the resolver gives).
fn resolve(dest: &str) -> Result<SocketAddr, Failure> {
    dest.to_socket_addrs()
        .map_err(|e| Failure::usage(format!("--dest {dest}: {e} (expected HOST:PORT)")))?
        .next()
        .ok_or_else(|| Failure::usage(format!("--dest {dest}: no address found")))
}

/// Opens the input; returns it with the stream's rate and channel count, and for a file, a
/// monitor that tells when and how it ends.
#[allow(clippy::type_complexity)]
fn open_input(
    args: &Args,
) -> Result<(Box<dyn AudioSource>, u32, u16, Option<FileMonitor>), Failure> {
    match args.input.as_str() {
        "tone" => Ok((
            Box::new(TestSource::noise(usize::from(CHANNELS), RATE)),
            RATE,
            CHANNELS,
            None,
        )),
        "-" => Ok((
            Box::new(RawS16Source::new(std::io::stdin(), usize::from(CHANNELS))),
            RATE,
            CHANNELS,
            None,
        )),
        path => {
            let path = Path::new(path);
            // A first look at the file for its rate and channels: the stream follows them
            // where it can (a mono file is spread over a stereo stream, so that a stereo
            // pair can play it).
            let probe = FileDecoder::open(path, usize::from(CHANNELS), RATE)
                .map_err(|e| Failure::runtime(e.to_string()))?;
            let (file_rate, file_channels) = (probe.file_rate(), probe.file_channels());
            drop(probe);
            let rate = match args.rate {
                Some(r) if SUPPORTED_SAMPLE_RATES.contains(&r) => r,
                Some(r) => {
                    return Err(Failure::usage(format!(
                        "--rate {r}: the stream carries {SUPPORTED_SAMPLE_RATES:?} Hz"
                    )));
                }
                None if args.codec == Codec::Opus => RATE,
                None if SUPPORTED_SAMPLE_RATES.contains(&file_rate) => file_rate,
                None => RATE,
            };
            let channels = file_channels.clamp(usize::from(CHANNELS), MAX_CHANNELS) as u16;
            let source = FileSource::open(path, usize::from(channels), rate)
                .map_err(|e| Failure::runtime(e.to_string()))?;
            let monitor = source.monitor();
            Ok((Box::new(source), rate, channels, Some(monitor)))
        }
    }
}

/// The one-line summary: followers, packets, refusals, clock service.
fn summary(leader: &Leader, elapsed: Duration) -> String {
    let s = leader.stats();
    let followers = leader.followers().len();
    let mut line = format!(
        "[{:>6.0} s] followers {followers}  RTP packets sent {}  refused {} (wrong key {})  \
         PTP delay requests {}",
        elapsed.as_secs_f64(),
        s.rtp_packets,
        s.refused_wrong_key + s.refused_other + s.refused_busy,
        s.refused_wrong_key,
        s.ptp.received,
    );
    if s.rtp_send_errors > 0 {
        line.push_str(&format!("  send errors {}", s.rtp_send_errors));
    }
    line
}

/// One follower's health, as one line.
fn follower_line(info: &FollowerInfo, status: Option<&FollowerStatus>) -> String {
    let head = format!("  {:<20} {:<5}", info.name, info.role.name());
    let Some(st) = status else {
        return format!("{head} (no answer)");
    };
    let us = |n: Option<Nanos>| n.map_or("-".into(), |n| format!("{:.1} µs", n.as_micros_f64()));
    format!(
        "{head} offset {}  rate {}  ±{} ({})  buffer {:.1} ms  lost {}  late {}  {}",
        us(st.clock_offset),
        st.clock_rate_ppm
            .map_or("-".into(), |r| format!("{r:+.2} ppm")),
        us(st.uncertainty),
        clock_state(st),
        st.buffer_level.as_nanos() as f64 / 1e6,
        st.packets_lost,
        st.packets_late,
        if st.playing { "playing" } else { "waiting" },
    )
}

/// The status display on standard error: redrawn in place on a terminal; otherwise a line
/// per second, and the followers' lines when they are fresh (every two seconds).
struct StatusBoard {
    terminal: bool,
    /// Lines drawn last time (to move back over, on a terminal).
    drawn: usize,
}

impl StatusBoard {
    fn new() -> StatusBoard {
        StatusBoard {
            terminal: std::io::stderr().is_terminal(),
            drawn: 0,
        }
    }

    fn show(
        &mut self,
        summary: &str,
        details: &[(FollowerInfo, Option<FollowerStatus>)],
        fresh: bool,
    ) {
        let mut lines = vec![summary.to_string()];
        if !self.terminal && !fresh {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{summary}");
            return;
        }
        lines.extend(
            details
                .iter()
                .map(|(info, st)| follower_line(info, st.as_ref())),
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            // Back to the first line of the previous block, then redraw it line by line.
            let mut out = String::new();
            if self.drawn > 1 {
                out.push_str(&format!("\x1b[{}A", self.drawn - 1));
            }
            for (i, l) in lines.iter().enumerate() {
                out.push_str("\r\x1b[K");
                out.push_str(l);
                if i + 1 < lines.len() {
                    out.push('\n');
                }
            }
            // Clear what is left of a longer previous block.
            out.push_str("\x1b[J");
            let _ = err.write_all(out.as_bytes());
            self.drawn = lines.len();
        } else {
            for l in &lines {
                let _ = writeln!(err, "{l}");
            }
        }
        let _ = err.flush();
    }

    fn finish(&mut self, summary: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal && self.drawn > 0 {
            let _ = writeln!(err);
        }
        let _ = writeln!(err, "{summary}");
        let _ = writeln!(err, "leader: done");
    }
}

/// Whether the clock estimate can be played on, and why its epoch began.
fn clock_state(st: &FollowerStatus) -> String {
    match (st.clock_settled, st.clock_reason) {
        (_, None) => "no clock".into(),
        (true, Some(reason)) => format!("settled, since {reason}"),
        (false, Some(reason)) => format!("settling, since {reason}"),
    }
}
