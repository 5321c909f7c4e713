//! Interop with linuxptp's `ptp4l` over UDPv4 on the standard ports 319 and 320: our slave
//! following ptp4l as grandmaster, and ptp4l as a slave of our leader.
//!
//! Each test makes two throwaway network namespaces joined by a veth pair (10.99.0.1 and
//! 10.99.0.2, which exist only inside them), so that PTP's multicast never reaches a real
//! interface. Both namespaces share the machine's one `CLOCK_REALTIME`, which is what ptp4l
//! stamps with in software mode, so the true offset between the two sides is zero and
//! whatever a side reports is its error.
//!
//! The tests need root, iproute2 and ptp4l: they are ignored by default and `.ci/run` runs
//! them with `--ignored` after installing linuxptp. A missing ptp4l fails them.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::net::NetNs;
use crate::node::{
    ClockFollower, ClockFollowerConfig, ClockLeader, ClockLeaderConfig, LocalClock, NodeClock,
    PtpPeer, PtpSocketConfig,
};
use crate::ptp::{ClockIdentity, EVENT_PORT, GENERAL_PORT};

/// The bound both directions are held to: far above the few hundred ns a veth pair gives,
/// far below what a broken timestamp path (user-space stamps under load, a wrong
/// correction, a 37 s UTC/TAI mix-up) would show.
const LIMIT_NS: i64 = 50_000;

const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// Two namespaces joined by a veth pair, `a` holding 10.99.0.1 and `b` 10.99.0.2.
///
/// Dropping it deletes both namespaces, and with them both ends of the pair.
struct Pair {
    a: NetNs,
    b: NetNs,
    /// The interface names in `a` and `b`.
    if_a: String,
    if_b: String,
}

impl Pair {
    fn new(prefix: &str) -> Pair {
        let a = NetNs::create(prefix).expect("create namespace a (needs root and iproute2)");
        let b = NetNs::create(prefix).expect("create namespace b");
        // The pid (at most 7 digits) and a per-process count keep concurrent runs apart
        // within the 15 characters an interface name may have.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let (if_a, if_b) = (format!("lsp{pid}{n}a"), format!("lsp{pid}{n}b"));
        a.veth_to(
            &b,
            (&if_a, &format!("{ADDR_A}/24")),
            (&if_b, &format!("{ADDR_B}/24")),
        )
        .expect("join the namespaces with a veth pair");
        Pair { a, b, if_a, if_b }
    }
}

/// Fails the test unless ptp4l can be run: a missing tool must not pass unseen.
fn require_ptp4l() {
    match Command::new("ptp4l").arg("-v").output() {
        Ok(out) => assert!(out.status.success(), "`ptp4l -v` failed: {out:?}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("ptp4l not found: apt-get install linuxptp")
        }
        Err(e) => panic!("cannot run ptp4l: {e}"),
    }
}

/// One line of ptp4l's output and when we read it.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// A ptp4l running in a namespace, its output collected line by line. Dropping it kills
/// the process and waits for it, whatever path the test leaves by.
struct Ptp4l {
    child: Child,
    lines: Lines,
    readers: Vec<JoinHandle<()>>,
    /// Its control socket: by default every ptp4l on the machine would share
    /// /var/run/ptp4l (namespaces do not separate the file system).
    uds: String,
}

impl Ptp4l {
    fn spawn(ns: &NetNs, args: &[&str]) -> Ptp4l {
        let uds = format!("/tmp/lockstep-ptp4l-{}.uds", ns.name());
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "ptp4l"])
            .args(args)
            .arg(format!("--uds_address={uds}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn `ip netns exec ... ptp4l`");
        let lines: Lines = Arc::default();
        let mut readers = Vec::new();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("piped stdout"));
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("piped stderr"));
        for stream in [out, err] {
            let lines = Arc::clone(&lines);
            // Each reader ends at end of file, which the child's death brings.
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    crate::node::ptp::lock(&lines).push((Instant::now(), line));
                }
            }));
        }
        Ptp4l {
            child,
            lines,
            readers,
            uds,
        }
    }

    /// Its output so far.
    fn lines(&self) -> Vec<(Instant, String)> {
        crate::node::ptp::lock(&self.lines).clone()
    }

    /// Its output so far as one text, for failure messages.
    fn log(&self) -> String {
        let lines = self.lines();
        let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        text.join("\n")
    }

    /// Panics (with its output) if it has exited: nothing after that can succeed.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            // Let the readers take in its last words.
            std::thread::sleep(Duration::from_millis(100));
            panic!("ptp4l exited early ({status}):\n{}", self.log());
        }
    }
}

impl Drop for Ptp4l {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        // ptp4l removes it when it exits cleanly; a kill leaves it behind.
        let _ = std::fs::remove_file(&self.uds);
    }
}

/// Sockets on the standard PTP ports, bound to the wildcard so that the group's datagrams
/// reach them, and joined to the group on the veth address `interface` only.
fn sockets(interface: Ipv4Addr) -> PtpSocketConfig {
    PtpSocketConfig {
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        event_port: EVENT_PORT,
        general_port: GENERAL_PORT,
        multicast_interface: Some(interface),
        kernel_timestamps: true,
    }
}

fn median(v: &mut [i64]) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
#[ignore = "needs root, iproute2 and linuxptp (ptp4l): run by .ci/run with --ignored"]
fn our_slave_follows_ptp4l_as_grandmaster() {
    require_ptp4l();
    // Declared first so that it is dropped last, after ptp4l and the follower.
    let pair = Pair::new("lockstep-ptpgm");
    let mut gm = Ptp4l::spawn(
        &pair.a,
        &["-S", "-i", &pair.if_a, "-4", "-m", "--logSyncInterval=-3"],
    );
    let clock = NodeClock::new(LocalClock::Realtime);
    let config = ClockFollowerConfig {
        sockets: sockets(ADDR_B),
        // Found by listening, as a ptp4l slave finds its master.
        master: None,
        clock_identity: ClockIdentity([0x02, 0x6c, 0x6b, 0xff, 0xfe, 0x00, 0x00, 0x01]),
    };
    // Started inside b, so its sockets live there; its thread keeps them.
    let follower = pair
        .b
        .enter_thread(|| ClockFollower::start(config, clock.clone()))
        .expect("enter namespace b")
        .expect("start the clock follower");

    // ptp4l listens for other masters for several seconds (about 7 here) before it takes
    // the grandmaster role and starts sending Syncs.
    let start = Instant::now();
    let first = loop {
        if let Some(e) = follower.estimate() {
            break e;
        }
        gm.check_alive();
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no estimate after 30 s; slave stats {:?}, unknown sources {}; ptp4l:\n{}",
            follower.stats(),
            follower.unknown_source(),
            gm.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let synced_at = Instant::now();
    let exchanges_at_start = follower.stats().exchanges;

    // Ten seconds of following, sampling the estimate's error (the truth is 0) through
    // the second half to see how steady it is once settled.
    let mut settled = Vec::new();
    while synced_at.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        gm.check_alive();
        if synced_at.elapsed() >= Duration::from_secs(5)
            && let Some(e) = follower.estimate()
        {
            settled.push(e.offset_at(clock.now()).as_nanos());
        }
    }
    let estimate = follower.estimate().expect("an estimate, once had, stays");
    let offset = estimate.offset_at(clock.now()).as_nanos();
    let stats = follower.stats();
    let max = settled.iter().map(|o| o.abs()).max().unwrap_or(0);
    let med = median(&mut settled.clone());
    eprintln!(
        "our slave vs ptp4l GM: offset after 10 s {offset} ns (first estimate {} ns), \
         last 5 s: median {med} ns, max |offset| {max} ns over {} samples, \
         rate {:.3} ppm, uncertainty {} ns; timestamps {:?}; stats {stats:?}",
        first.offset_at(clock.now()).as_nanos(),
        settled.len(),
        estimate.rate_ppm,
        estimate.uncertainty.as_nanos(),
        follower.timestamping(),
    );
    let context = || format!("stats {stats:?}; ptp4l:\n{}", gm.log());
    assert!(
        stats.exchanges - exchanges_at_start > 20,
        "only {} exchanges in 10 s; {}",
        stats.exchanges - exchanges_at_start,
        context()
    );
    assert!(
        offset.abs() <= LIMIT_NS,
        "offset {offset} ns after 10 s; {}",
        context()
    );
    assert!(
        med.abs() <= LIMIT_NS,
        "median offset {med} ns over the last 5 s; {}",
        context()
    );
}

/// The offsets (ns) in ptp4l's per-update lines,
/// `ptp4l[…]: master offset   -123 s2 freq …`, with when each was read.
fn reported_offsets(lines: &[(Instant, String)]) -> Vec<(Instant, i64)> {
    lines
        .iter()
        .filter_map(|(at, line)| {
            let rest = line.split("master offset").nth(1)?;
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some((*at, value))
        })
        .collect()
}

#[test]
#[ignore = "needs root, iproute2 and linuxptp (ptp4l): run by .ci/run with --ignored"]
fn ptp4l_slave_follows_our_leader() {
    require_ptp4l();
    let pair = Pair::new("lockstep-ptpsl");
    let clock = NodeClock::new(LocalClock::Realtime);
    let config = ClockLeaderConfig {
        sockets: sockets(ADDR_A),
        clock_identity: ClockIdentity([0x02, 0x6c, 0x6b, 0xff, 0xfe, 0x00, 0x00, 0x02]),
    };
    let leader = pair
        .a
        .enter_thread(|| ClockLeader::start(config, clock.clone()))
        .expect("enter namespace a")
        .expect("start the clock leader");
    // Our master unicasts to the slaves it is given; ptp4l takes unicast on its ports.
    leader.add_peer(PtpPeer::new(IpAddr::V4(ADDR_B), EVENT_PORT, GENERAL_PORT));
    let mut slave = Ptp4l::spawn(
        &pair.b,
        &[
            "-S",
            "-s",
            "-i",
            &pair.if_b,
            "-4",
            "-m",
            // Report only: never steer the clock the whole machine (and the test) reads.
            "--free_running=1",
            // A free-running ptp4l reports one offset per 2^(freq_est_interval −
            // logSyncInterval) Syncs (0, its least, makes that about one a second at any
            // Sync rate), and pools 2^(summary_interval − logSyncInterval) of those into
            // one `rms … max …` line. Our master starts with a burst of 384 Syncs a second
            // (logSyncInterval −9), so summary_interval −3 would print a line about every
            // 20 s; at −10 or below every offset gets a `master offset` line of its own.
            "--freq_est_interval=0",
            "--summary_interval=-10",
            "--logMinDelayReqInterval=-3",
        ],
    );

    // ptp4l qualifies a foreign master over a few Announces before it follows it, and
    // its first offsets include its own path-delay start-up: skip 3 s after the first.
    const SKIP: Duration = Duration::from_secs(3);
    const WANT: usize = 15;
    let start = Instant::now();
    let settled = loop {
        slave.check_alive();
        let all = reported_offsets(&slave.lines());
        let settled: Vec<i64> = match all.first() {
            Some(&(first, _)) => all
                .iter()
                .filter(|(at, _)| *at >= first + SKIP)
                .map(|&(_, o)| o)
                .collect(),
            None => Vec::new(),
        };
        if settled.len() >= WANT || start.elapsed() >= Duration::from_secs(45) {
            break settled;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stats = leader.stats();
    let context = || format!("leader stats {stats:?}; ptp4l:\n{}", slave.log());
    assert!(
        settled.len() >= 10,
        "ptp4l reported {} offsets after its first 3 s: it never synced; {}",
        settled.len(),
        context()
    );
    // The offsets must be about our leader, not some other clock ptp4l settled on.
    assert!(
        slave
            .log()
            .contains("selected best master clock 026c6b.fffe.000002"),
        "ptp4l never chose our leader; {}",
        context()
    );
    let last: Vec<i64> = settled[settled.len().saturating_sub(WANT)..].to_vec();
    let med = median(&mut last.clone());
    let max = last.iter().map(|o| o.abs()).max().unwrap_or(0);
    eprintln!(
        "ptp4l slave vs our leader: last {} offsets: median {med} ns, max |offset| {max} ns: \
         {last:?}; leader timestamps {:?}; stats {stats:?}",
        last.len(),
        leader.timestamping(),
    );
    assert!(
        med.abs() <= LIMIT_NS,
        "median offset {med} ns; {}",
        context()
    );
    assert!(
        max <= LIMIT_NS,
        "an offset of {max} ns among {last:?}; {}",
        context()
    );
}
