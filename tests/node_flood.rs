//! Scenario: junk at every UDP port of a running group. A leader and two followers play on
//! loopback; a flooder sends 10⁶ junk datagrams to each UDP port of a follower and of the
//! leader (the follower's RTP, PTP event and general ports; the leader's RTP, PTP event
//! and general ports), as fast as loopback takes them: random bytes of random lengths,
//! and packets shaped like the real thing (RTP with the group's SSRC and plausible
//! sequence numbers, PTP headers of every message type) so that the junk gets past the
//! first checks. Through all of it, and measured from outside:
//!
//! - the followers' recordings, cross-correlated by the sync meter over the flood, agree
//!   within the group's target (20 µs), with no underrun;
//! - the process's resident memory stays within 5 MB of what it was before the flood;
//! - the junk reached the follower (its count of datagrams from unknown sources grew);
//! - each follower's clock estimate, sampled through the flood against the truth, is never
//!   wrong by more than four times the uncertainty it states.

#[path = "common/node.rs"]
mod node;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use lockstep::control::Role;
use lockstep::measure::{measure_recordings, recording};
use lockstep::time::TrueInstant;
use node::*;

/// Resident memory of this process, in kB (`VmRSS` in /proc/self/status).
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A small xorshift generator: the junk is the same on every run.
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// One datagram into `buf`; returns its length. Every fourth is random bytes of a
    /// random length (0 to 1500); the others are shaped like RTP with `ssrc` or like PTP,
    /// with random contents after the header.
    fn datagram(&mut self, buf: &mut [u8; 1500], ssrc: u32) -> usize {
        let r = self.next();
        let len = (r >> 8) as usize % 1501;
        for chunk in buf[..len].chunks_mut(8) {
            let x = self.next().to_le_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
        match r % 4 {
            0 => {}
            1 if len >= 12 => {
                // RTP version 2, payload type 96, a sequence number and timestamp near any.
                buf[0] = 0x80;
                buf[1] = 96 | (buf[1] & 0x80);
                buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
            }
            _ if len >= 34 => {
                // A PTP header: a message type of 0–15, version 2, its length field lying
                // or not.
                buf[0] &= 0x0f;
                buf[1] = 2;
                if r & 0x100 == 0 {
                    buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                }
            }
            _ => {}
        }
        len
    }
}

#[test]
fn a_million_junk_datagrams_at_every_port_leave_the_group_in_step() {
    const PER_PORT: usize = 1_000_000;
    let dir = temp_dir("flood");
    let leader = leader();
    let mut a = follower_config(&leader, Role::Full, 80.0);
    a.output = wav(&dir, "a.wav");
    let a = follower(a);
    let mut b = follower_config(&leader, Role::Full, -70.0);
    b.output = wav(&dir, "b.wav");
    let b = follower(b);
    for f in [&a, &b] {
        assert!(
            wait_until(Duration::from_secs(5), || f.status().playing).is_some(),
            "plays before the flood: {:?}",
            f.status()
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let stream = a.session().expect("joined").stream;
    let ports = a.ports();
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let targets = [
        local(ports.rtp),
        local(ports.ptp_event),
        local(ports.ptp_general),
        local(stream.rtp_port),
        local(stream.ptp_event_port),
        local(stream.ptp_general_port),
    ];
    let before_rss = rss_kb();
    let before = a.status();
    let flood_from = TrueInstant::from_nanos(monotonic_ns());

    let socket = UdpSocket::bind("127.0.0.1:0").expect("flooder's socket");
    let mut junk = Junk(0x9E37_79B9_7F4A_7C15);
    let mut buf = [0u8; 1500];
    let mut sent = 0usize;
    let mut refused = 0usize;
    // Each follower's clock estimate against the truth (the leader runs on the monotonic
    // clock), sampled through the flood: (s into the flood, follower, error µs,
    // uncertainty µs, epoch). Printed when the skew fails, to tell a clock fault from an
    // output fault.
    let mut clock_errors: Vec<(f64, usize, f64, f64, u32)> = Vec::new();
    let started = Instant::now();
    // Round-robin over the ports, so that every port is under fire for the whole flood.
    for i in 0..PER_PORT {
        if i % 4096 == 0 {
            for (n, f) in [&a, &b].into_iter().enumerate() {
                if let Some(e) = f.clock_estimate() {
                    let clock = f.clock();
                    let mono = monotonic_ns();
                    let local = clock.from_monotonic(mono);
                    let error = e.to_leader(local).as_nanos() - mono;
                    clock_errors.push((
                        started.elapsed().as_secs_f64(),
                        n,
                        error as f64 / 1e3,
                        e.uncertainty.as_micros_f64(),
                        e.epoch,
                    ));
                }
            }
        }
        for to in &targets {
            let len = junk.datagram(&mut buf, stream.ssrc);
            match socket.send_to(&buf[..len], to) {
                Ok(_) => sent += 1,
                // A full socket buffer or an ICMP error from a closed port: what loopback
                // takes is what gets there.
                Err(_) => refused += 1,
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the flood is too slow to finish: {sent} sent"
        );
    }
    let flood_secs = started.elapsed().as_secs_f64();
    let flood_to = TrueInstant::from_nanos(monotonic_ns());
    std::thread::sleep(Duration::from_millis(500));
    let after_rss = rss_kb();
    let during = a.status();
    let ra = a.stop().expect("a stops");
    let rb = b.stop().expect("b stops");
    leader.shutdown();

    eprintln!(
        "{sent} junk datagrams sent ({refused} refused by the kernel) to {} ports in \
         {flood_secs:.1} s ({:.0} a second); resident memory {before_rss} kB before, \
         {after_rss} kB after; the follower counted {} from unknown sources",
        targets.len(),
        sent as f64 / flood_secs,
        during.unknown_source - before.unknown_source
    );
    assert!(sent >= PER_PORT * targets.len() / 2, "{sent} sent");
    assert!(
        during.unknown_source > before.unknown_source + 1000,
        "the junk did not reach the follower: {during:?}"
    );
    assert!(
        after_rss <= before_rss + 5 * 1024,
        "resident memory grew from {before_rss} kB to {after_rss} kB"
    );
    assert_eq!(ra.status.underruns, 0, "{:?}", ra.status);
    assert_eq!(rb.status.underruns, 0, "{:?}", rb.status);
    assert!(ra.status.playing && rb.status.playing, "{ra:?} {rb:?}");
    let skew = measure_recordings(
        &[
            recording("a", &dir.join("a.wav")),
            recording("b", &dir.join("b.wav")),
        ],
        flood_from,
        Some(flood_to),
    )
    .expect("the recordings overlap over the flood");
    eprintln!(
        "skew over the flood: p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs ({} windows)",
        skew.p50_us, skew.p99_us, skew.max_us, skew.pairs[0].windows
    );
    assert!(
        skew.pairs[0].windows as f64 >= flood_secs,
        "{} windows over {flood_secs:.1} s",
        skew.pairs[0].windows
    );
    let outliers: Vec<String> = skew
        .series
        .iter()
        .filter(|w| w.1 > 5.0)
        .map(|w| format!("{:.2} s: {:.1} µs", w.0, w.1))
        .collect();
    let worst_clock = clock_errors
        .iter()
        .fold((0.0f64, 0.0f64), |m, c| (m.0.max(c.2.abs()), m.1.max(c.3)));
    eprintln!(
        "clock estimates against the truth over the flood ({} samples): largest error \
         {:.1} µs, largest uncertainty {:.1} µs",
        clock_errors.len(),
        worst_clock.0,
        worst_clock.1
    );
    let bad_clock: Vec<_> = clock_errors.iter().filter(|c| c.2.abs() > 5.0).collect();
    assert!(
        skew.p99_us <= 20.0,
        "skew p99 {:.2} µs; windows over 5 µs (s into the flood): {outliers:?}; clock errors over 5 µs (s into the flood, follower, \
         error, uncertainty, epoch): {bad_clock:?}; a {:?} (late blocks {}, skipped {}); \
         b {:?} (late blocks {}, skipped {})",
        skew.p99_us,
        ra.status,
        ra.late_blocks,
        ra.skipped_blocks,
        rb.status,
        rb.late_blocks,
        rb.skipped_blocks,
    );
    // Whatever the flood did to the clock, the estimate never claimed to be right while it
    // was wrong: its error stays within four times its stated uncertainty (plus 5 µs, the
    // tolerance of the skew above).
    let overconfident: Vec<_> = clock_errors
        .iter()
        .filter(|c| c.2.abs() > 4.0 * c.3 + 5.0)
        .collect();
    assert!(
        overconfident.is_empty(),
        "clock estimates wrong beyond four times their uncertainty (s into the flood, \
         follower, error µs, uncertainty µs, epoch): {overconfident:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
