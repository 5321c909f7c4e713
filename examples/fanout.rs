//! What it costs a leader to feed many followers: the leader's CPU time while it streams to
//! N unicast destinations on loopback.
//!
//! ```text
//! cargo run --release --example fanout                       # 32 followers, 10 s, L24, 5 ms
//! cargo run --release --example fanout -- --followers 64 --codec l16 --json
//! ```
//!
//! The followers are stand-ins: each joins the leader as a follower does (the control
//! handshake, so it gets its own session keys and the leader protects its stream as SRTP
//! and serves it a signed PTP clock), but then only receives: one receiver thread drains
//! every stand-in's RTP socket and checks each packet's SRTP tag, so that almost all the
//! work in the process is the leader's (the stand-ins send no Delay_Req, so the leader's
//! answers to them are not in the figure). With `--plain` the stand-ins are static
//! destinations instead, given plain RTP without a handshake. After a one-second warm-up, the program reads the CPU time
//! (user + system, from `/proc/self/task/<tid>/stat`) of each of the leader's threads
//! (named `lockstep-*`), again at the end, and reports the leader's CPU as a percentage of
//! one core, and its media thread's alone, against a target of 10 % for 32 followers of
//! L24 in 5 ms packets. It also checks that every destination received its packets.
//!
//! Linux only (it reads `/proc`). Build it in release: a debug build measures the
//! compiler's unoptimised code, not the leader.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use std::io::{Read, Write};
use std::net::TcpStream;

use lockstep::control::{
    Capabilities, FollowerEvent, FollowerSession, Hello, HouseholdKey, PeerPorts, Role,
    SessionKeys, StreamParams, new_nonce,
};
use lockstep::media::SrtpContext;
use lockstep::node::{Leader, LeaderConfig, TestSource};
use lockstep::time::Nanos;

#[path = "common/cli.rs"]
mod cli;
use cli::Codec;

/// Measures the leader's CPU cost of streaming to N unicast followers on loopback.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Unicast destinations (cheap stand-ins for followers), 1 to 512.
    #[arg(long, default_value_t = 32)]
    followers: usize,
    /// Measured seconds (after the warm-up), 1 to 600.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds between the followers' joining and the measurement, 1 to 600. Joined
    /// followers get their clock's start burst first (fast Syncs tapering off over about a
    /// minute): the default measures it, a warm-up of 70 s the steady state.
    #[arg(long, default_value_t = 1.0)]
    warm_up: f64,
    /// The stream's codec (opus needs the `opus` cargo feature).
    #[arg(long, value_enum, default_value_t = Codec::L24)]
    codec: Codec,
    /// Audio per packet, ms.
    #[arg(long, default_value_t = 5)]
    ptime: u32,
    /// The target, in percent of one core, for the leader's threads together.
    #[arg(long, default_value_t = 10.0)]
    target_percent: f64,
    /// Print one JSON object on standard output instead of the table.
    #[arg(long)]
    json: bool,
    /// Plain RTP to static destinations, without a handshake, keys or clock (the cost
    /// without protection).
    #[arg(long, conflicts_with = "unauthenticated")]
    plain: bool,
    /// Stand-ins join, but the leader protects neither their streams nor their clock (the
    /// cost of the protection, against the default).
    #[arg(long)]
    unauthenticated: bool,
}

/// Thread names of the leader (`comm` is cut to 15 bytes by the kernel).
const LEADER_PREFIX: &str = "lockstep-";
const MEDIA_THREAD: &str = "lockstep-media";
/// The receiver thread's name, to tell it apart.
const RECEIVER_THREAD: &str = "fanout-rx";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fanout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Per-destination counts kept by the receiver thread.
struct Counts {
    packets: Vec<AtomicU64>,
    bytes: Vec<AtomicU64>,
    /// Packets whose SRTP tag failed.
    rejected: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> Vec<(u64, u64)> {
        self.packets
            .iter()
            .zip(&self.bytes)
            .map(|(p, b)| (p.load(Ordering::Relaxed), b.load(Ordering::Relaxed)))
            .collect()
    }
}

/// CPU time of each thread of this process, by thread id: (name, ticks).
type ThreadTimes = HashMap<u32, (String, u64)>;

fn run(args: &Args) -> Result<(), String> {
    if !(1..=512).contains(&args.followers) {
        return Err(format!(
            "--followers must be 1 to 512, got {}",
            args.followers
        ));
    }
    if !(args.seconds.is_finite() && (1.0..=600.0).contains(&args.seconds)) {
        return Err(format!("--seconds must be 1 to 600, got {}", args.seconds));
    }
    if !(args.warm_up.is_finite() && (1.0..=600.0).contains(&args.warm_up)) {
        return Err(format!("--warm-up must be 1 to 600, got {}", args.warm_up));
    }
    if args.codec == Codec::Opus && !cfg!(feature = "opus") {
        return Err(
            "codec opus: this program was built without the opus feature \
                    (cargo run --release --features opus --example fanout -- ...)"
                .into(),
        );
    }
    let ticks_per_s = clock_ticks()?;
    if cfg!(debug_assertions) {
        eprintln!("fanout: warning: a debug build; run with --release for a meaningful figure");
    }

    // The stand-ins' sockets: RTP, and (joined ones) PTP event and general.
    let bind = || -> Result<UdpSocket, String> {
        let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("UDP socket: {e}"))?;
        s.set_nonblocking(true)
            .map_err(|e| format!("UDP socket: {e}"))?;
        Ok(s)
    };
    let port = |s: &UdpSocket| s.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
    let mut sockets = Vec::with_capacity(args.followers);
    let mut ptp_sockets = Vec::new();
    for _ in 0..args.followers {
        sockets.push(bind()?);
        if !args.plain {
            ptp_sockets.push((bind()?, bind()?));
        }
    }
    let dests: Vec<SocketAddr> = sockets
        .iter()
        .map(|s| s.local_addr().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;

    // The leader, on loopback, streaming the test signal to them.
    let mut secret = Vec::new();
    for _ in 0..2 {
        secret.extend_from_slice(&new_nonce().map_err(|e| e.to_string())?);
    }
    let key = HouseholdKey::new(&secret).map_err(|e| e.to_string())?;
    let mut config = LeaderConfig::new("fanout", key.clone(), "127.0.0.1:0".parse().unwrap());
    config.codec = args.codec.kind();
    config.ptime = Nanos::from_millis(i64::from(args.ptime));
    config.max_sessions = args.followers.max(64);
    if args.plain {
        config.dests = dests;
    }
    if args.unauthenticated {
        config.protection = lockstep::control::Protection::NONE;
    }
    let rate = config.sample_rate;
    let channels = config.channels;
    let leader = Leader::start(
        config,
        Box::new(TestSource::noise(usize::from(channels), rate)),
    )
    .map_err(|e| format!("leader: {e}"))?;

    // Each stand-in joins, as a follower would, and keeps its control connection.
    let mut sessions = Vec::new();
    let mut srtp = Vec::new();
    for (i, (rtp, (event, general))) in sockets.iter().zip(&ptp_sockets).enumerate() {
        let ports = PeerPorts {
            rtp: port(rtp)?,
            ptp_event: port(event)?,
            ptp_general: port(general)?,
        };
        let (conn, keys, stream) = join(leader.control_addr(), &key, ports, i)?;
        srtp.push(match stream.protection.media {
            Some(profile) => Some(
                keys.srtp(profile, stream.ssrc)
                    .map_err(|e| format!("stand-in {i}: {e}"))?,
            ),
            None if args.unauthenticated => None,
            None => return Err("the leader's stream is not protected".into()),
        });
        sessions.push(conn);
    }
    if args.plain {
        srtp = (0..args.followers).map(|_| None).collect();
    }

    let counts = Arc::new(Counts {
        packets: (0..args.followers).map(|_| AtomicU64::new(0)).collect(),
        bytes: (0..args.followers).map(|_| AtomicU64::new(0)).collect(),
        rejected: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let receiver_error = Arc::new(Mutex::new(None::<String>));
    let receiver = {
        let (counts, stop, error) = (
            Arc::clone(&counts),
            Arc::clone(&stop),
            Arc::clone(&receiver_error),
        );
        std::thread::Builder::new()
            .name(RECEIVER_THREAD.into())
            .spawn(move || drain(&sockets, srtp, &counts, &stop, &error))
            .map_err(|e| format!("cannot start the receiver thread: {e}"))?
    };
    if !args.json {
        eprintln!(
            "fanout: leader streaming {} {} Hz {} ch in {} ms packets to {} destinations; \
             warming up for {} s, then measuring for {} s",
            args.codec.name(),
            rate,
            channels,
            args.ptime,
            args.followers,
            args.warm_up,
            args.seconds
        );
    }

    std::thread::sleep(Duration::from_secs_f64(args.warm_up));
    let (t0, cpu0, sent0, rx0) = (
        Instant::now(),
        thread_times()?,
        leader.stats().rtp_packets,
        counts.snapshot(),
    );
    let measure = Duration::from_secs_f64(args.seconds);
    while t0.elapsed() < measure {
        std::thread::sleep(
            measure
                .saturating_sub(t0.elapsed())
                .min(Duration::from_millis(200)),
        );
    }
    let (wall, cpu1, stats, rx1) = (
        t0.elapsed(),
        thread_times()?,
        leader.stats(),
        counts.snapshot(),
    );
    leader.shutdown();
    drop(sessions);
    drop(ptp_sockets);
    stop.store(true, Ordering::Release);
    let _ = receiver.join();
    let rejected = counts.rejected.load(Ordering::Relaxed);
    if let Some(e) = receiver_error.lock().map(|e| e.clone()).unwrap_or(None) {
        return Err(format!("receiver: {e}"));
    }

    // CPU per thread over the window; a thread born during it counts from zero.
    let mut threads: Vec<(String, u64)> = Vec::new();
    for (tid, (name, t1)) in &cpu1 {
        let before = cpu0.get(tid).map_or(0, |(_, t)| *t);
        threads.push((name.clone(), t1.saturating_sub(before)));
    }
    let wall_s = wall.as_secs_f64();
    let percent = |ticks: u64| ticks as f64 / ticks_per_s as f64 / wall_s * 100.0;
    let sum_where = |f: &dyn Fn(&str) -> bool| -> u64 {
        threads.iter().filter(|(n, _)| f(n)).map(|(_, t)| *t).sum()
    };
    let leader_ticks = sum_where(&|n| n.starts_with(LEADER_PREFIX));
    let media_ticks = sum_where(&|n| n == MEDIA_THREAD);
    let receiver_ticks = sum_where(&|n| n == RECEIVER_THREAD);
    let mut by_thread: HashMap<&str, u64> = HashMap::new();
    for (n, t) in threads.iter().filter(|(n, _)| n.starts_with(LEADER_PREFIX)) {
        *by_thread.entry(n.as_str()).or_default() += t;
    }
    let mut by_thread: Vec<(&str, u64)> = by_thread.into_iter().collect();
    by_thread.sort();

    let per_dest: Vec<(u64, u64)> = rx1
        .iter()
        .zip(&rx0)
        .map(|(a, b)| (a.0 - b.0, a.1 - b.1))
        .collect();
    let expected = wall_s * 1000.0 / f64::from(args.ptime);
    let min_rx = per_dest.iter().map(|d| d.0).min().unwrap_or(0);
    let max_rx = per_dest.iter().map(|d| d.0).max().unwrap_or(0);
    let bytes: u64 = per_dest.iter().map(|d| d.1).sum();
    let sent = stats.rtp_packets - sent0;
    let stream_kbps = per_dest
        .first()
        .map_or(0.0, |d| d.1 as f64 * 8.0 / wall_s / 1e3);
    let total_mbps = bytes as f64 * 8.0 / wall_s / 1e6;
    let leader_pct = percent(leader_ticks);
    let media_pct = percent(media_ticks);
    // Every destination within 2 % of its share (a scheduling hiccup at either end of
    // the window moves a packet or two).
    let delivered =
        min_rx as f64 >= expected * 0.98 && max_rx as f64 <= expected * 1.02 + 1.0 && rejected == 0;
    let met = leader_pct <= args.target_percent;

    if args.json {
        let v = serde_json::json!({
            "followers": args.followers,
            "protected": !args.plain && !args.unauthenticated,
            "joined": !args.plain,
            "srtp_rejected": rejected,
            "codec": args.codec.name(),
            "ptime_ms": args.ptime,
            "sample_rate": rate,
            "channels": channels,
            "seconds": wall_s,
            "clock_ticks_per_s": ticks_per_s,
            "leader_cpu_percent": leader_pct,
            "media_cpu_percent": media_pct,
            "receiver_cpu_percent": percent(receiver_ticks),
            "threads": by_thread.iter().map(|(n, t)| serde_json::json!({
                "name": n, "cpu_percent": percent(*t)
            })).collect::<Vec<_>>(),
            "packets_sent": sent,
            "send_errors": stats.rtp_send_errors,
            "packets_expected_per_destination": expected,
            "packets_received_min": min_rx,
            "packets_received_max": max_rx,
            "all_delivered": delivered,
            "stream_kbit_per_s": stream_kbps,
            "total_mbit_per_s": total_mbps,
            "target_percent": args.target_percent,
            "target_met": met,
        });
        println!("{v}");
        return Ok(());
    }

    println!(
        "leader CPU feeding {} unicast followers ({}), {} {} Hz {} ch, {} ms packets, over \
         {:.2} s",
        args.followers,
        if args.plain {
            "plain RTP, static destinations"
        } else if args.unauthenticated {
            "joined, unauthenticated: plain RTP and PTP"
        } else {
            "joined: SRTP and an authenticated clock, per-session keys"
        },
        args.codec.name(),
        rate,
        channels,
        args.ptime,
        wall_s
    );
    println!();
    println!("  {:<22} {:>10}", "thread", "% of a core");
    for (n, t) in &by_thread {
        println!("  {n:<22} {:>10.2}", percent(*t));
    }
    println!("  {:<22} {:>10.2}", "leader, all threads", leader_pct);
    println!(
        "  {:<22} {:>10.2}   (not the leader's: the stand-in followers)",
        RECEIVER_THREAD,
        percent(receiver_ticks)
    );
    println!(
        "  (CPU time in clock ticks of 1/{ticks_per_s} s: ±{:.2} % per thread)",
        100.0 / ticks_per_s as f64 / wall_s
    );
    println!();
    println!(
        "  packets sent           {sent} ({} send errors)",
        stats.rtp_send_errors
    );
    println!(
        "  received per follower  min {min_rx}, max {max_rx} (expected {expected:.0}), \
         {rejected} failing SRTP: {}",
        if delivered {
            "all delivered"
        } else {
            "SOME MISSING"
        }
    );
    println!(
        "  bitrate                {stream_kbps:.0} kbit/s per follower, {total_mbps:.1} Mbit/s in all"
    );
    println!();
    println!(
        "target: leader ≤ {:.1} % of one core: {} ({:.2} %)",
        args.target_percent,
        if met { "met" } else { "NOT met" },
        leader_pct
    );
    Ok(())
}

/// Joins the leader at `leader` as stand-in `i`: the handshake of a follower, sans-IO
/// session over a blocking socket, at most 2 s. Returns the connection (the session lasts as
/// long as it is open), the session's keys and the stream.
fn join(
    leader: SocketAddr,
    key: &HouseholdKey,
    ports: PeerPorts,
    i: usize,
) -> Result<(TcpStream, SessionKeys, StreamParams), String> {
    let fail = |e: String| format!("stand-in {i} joining: {e}");
    let mut conn = TcpStream::connect(leader).map_err(|e| fail(e.to_string()))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| fail(e.to_string()))?;
    let hello = Hello {
        caps: Capabilities {
            model: "fanout-stand-in".into(),
            name: format!("stand-in {i}"),
            channels: 2,
            max_rate: 192_000,
            output_latency: Nanos::ZERO,
        },
        role: Role::Full,
        group: "fanout".into(),
        ports,
    };
    let nonce = new_nonce().map_err(|e| fail(e.to_string()))?;
    let mut session =
        FollowerSession::new(hello, key.clone(), nonce).map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        while let Some(bytes) = session.poll_transmit() {
            conn.write_all(&bytes).map_err(|e| fail(e.to_string()))?;
        }
        while let Some(event) = session.poll_event() {
            match event {
                FollowerEvent::Joined(w) => {
                    let keys = session
                        .keys()
                        .cloned()
                        .ok_or_else(|| fail("no keys".into()))?;
                    return Ok((conn, keys, w.stream));
                }
                FollowerEvent::Failed(e) => return Err(fail(e.to_string())),
                _ => {}
            }
        }
        match conn.read(&mut buf) {
            Ok(0) => return Err(fail("the leader closed the connection".into())),
            Ok(n) => session.handle_input(&buf[..n]),
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    Err(fail("no welcome within 2 s".into()))
}

/// The receiver: drains every destination socket, checking each packet's SRTP tag when
/// the stand-in has a context, counting, until told to stop.
fn drain(
    sockets: &[UdpSocket],
    mut srtp: Vec<Option<SrtpContext>>,
    counts: &Counts,
    stop: &AtomicBool,
    error: &Mutex<Option<String>>,
) {
    let mut buf = [0u8; 2048];
    let mut plain = [0u8; 2048];
    while !stop.load(Ordering::Acquire) {
        for (i, s) in sockets.iter().enumerate() {
            // Bounded: a socket holds at most what its buffer took since the last round.
            for _ in 0..1024 {
                match s.recv(&mut buf) {
                    Ok(n) => {
                        if let Some(Some(c)) = srtp.get_mut(i)
                            && c.unprotect(&buf[..n], &mut plain).is_err()
                        {
                            counts.rejected.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        counts.packets[i].fetch_add(1, Ordering::Relaxed);
                        counts.bytes[i].fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if let Ok(mut slot) = error.lock() {
                            slot.get_or_insert_with(|| format!("destination {i}: {e}"));
                        }
                        break;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The kernel's clock ticks per second (the unit of `/proc/.../stat` CPU times).
fn clock_ticks() -> Result<u64, String> {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t <= 0 {
        return Err("cannot read the clock tick rate (sysconf _SC_CLK_TCK)".into());
    }
    Ok(t as u64)
}

/// User + system CPU time of every thread of this process.
fn thread_times() -> Result<ThreadTimes, String> {
    let dir = "/proc/self/task";
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {dir}: {e}"))?;
    let mut out = HashMap::new();
    for entry in entries.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A thread may end between the listing and the reads: skip it.
        let Ok(name) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ticks = cpu_ticks(&stat).ok_or_else(|| format!("cannot parse {}/{tid}/stat", dir))?;
        out.insert(tid, (name.trim_end().to_string(), ticks));
    }
    Ok(out)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/task/<tid>/stat` line. The name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after its `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: field 3 (state) is index 0, so field 14 is index 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}
