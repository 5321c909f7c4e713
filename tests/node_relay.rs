//! The demo's group (a stereo pair, a subwoofer and a full-range speaker, each on a
//! crystal of its own) on real sockets and threads, through the impairment relay: every
//! follower's PTP and RTP cross a simulated network path. Skew is measured from outside,
//! by cross-correlating the recordings with the sync meter. Two faults go through the
//! relay too: one follower cut off for 30 s, and a lasting +2.5 ms step of one follower's
//! path.

#[path = "common/node.rs"]
mod node;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lockstep::control::Role;
use lockstep::measure::{
    GroupSkew, MeterConfig, OwnedCapture, SkewReport, load_capture_wav, measure_recordings,
    measure_skew, recording,
};
use lockstep::node::{FollowerReport, Leader};
use lockstep::relay::{Relay, RelayConfig, RelayStats};
use lockstep::sim::{LinkChange, PathConfig};
use lockstep::time::{Nanos, TrueInstant};
use node::*;

/// The demo's speakers: role, file, crystal (ppm).
const SPEAKERS: [(Role, &str, f64); 4] = [
    (Role::Left, "left.wav", 120.0),
    (Role::Right, "right.wav", -80.0),
    (Role::Sub, "sub.wav", 40.0),
    (Role::Full, "kitchen.wav", -150.0),
];

/// The skew target of the node tests (and the simulator's wifi figure), µs.
const IN_SYNC_US: f64 = 20.0;

struct Run {
    skew: GroupSkew,
    reports: Vec<FollowerReport>,
    relay: RelayStats,
    /// The addresses the leader saw its followers at.
    seen_at: Vec<IpAddr>,
    /// Where the recordings are (removed when the run is dropped).
    dir: PathBuf,
    /// When the first speaker's first sample left, on the monotonic clock (ns).
    first_ns: i64,
    /// Each speaker's clock estimate every 250 ms once `during` returned: (monotonic ns,
    /// index into [`SPEAKERS`], the estimate's rate in ppm).
    rates: Vec<(i64, usize, f64)>,
}

impl Drop for Run {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

impl Run {
    /// The recording of the speaker in `file`.
    fn capture(&self, file: &str) -> OwnedCapture {
        load_capture_wav(self.dir.join(file)).expect("a recording")
    }
}

/// The relay's path of the follower playing `role`, from the address the leader sees it at.
fn path_of(relay: &Relay, leader: &Leader, role: Role) -> usize {
    let info = leader
        .followers()
        .into_iter()
        .find(|f| f.role == role)
        .unwrap_or_else(|| panic!("no {role:?} joined"));
    relay
        .path_at(info.addr.ip())
        .unwrap_or_else(|| panic!("{role:?} is not behind the relay: {}", info.addr))
}

/// Plays the demo's group through a relay on `path` for `seconds`, and measures the skew
/// between the speakers that play the full band (not the subwoofer) from `measure_from_s`
/// after the first sample on. `during` is called once every follower has joined, with
/// the relay, the leader and when the followers were started; the run ends `seconds` after
/// that.
fn group_through_relay(
    name: &str,
    path: PathConfig,
    seconds: u64,
    measure_from_s: f64,
    during: impl FnOnce(&Relay, &Leader, Instant),
) -> Run {
    let dir = temp_dir(name);
    let leader = leader();
    let relay = Relay::start(RelayConfig::new(leader.control_addr(), path, 1)).expect("relay");
    let started = Instant::now();
    let followers: Vec<_> = SPEAKERS
        .iter()
        .map(|&(role, file, ppm)| {
            let mut c = follower_config(&leader, role, ppm);
            c.leader = relay.control_addr();
            // Where the follower's control connection comes from, as the relay expects.
            c.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
            c.output = wav(&dir, file);
            follower(c)
        })
        .collect();
    during(&relay, &leader, started);
    let mut rates = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(
            Duration::from_millis(250)
                .min(Duration::from_secs(seconds).saturating_sub(started.elapsed())),
        );
        let at = monotonic_ns();
        for (i, f) in followers.iter().enumerate() {
            if let Some(e) = f.clock_estimate() {
                rates.push((at, i, e.rate_ppm));
            }
        }
    }
    let seen_at = leader.followers().iter().map(|f| f.addr.ip()).collect();
    let reports: Vec<FollowerReport> = followers
        .into_iter()
        .map(|f| f.stop().expect("follower stops"))
        .collect();
    leader.shutdown();
    let relay = relay.stop();
    let first_ns = reports
        .iter()
        .filter_map(|r| r.first_sample_ns)
        .min()
        .expect("a speaker played");
    let full: Vec<_> = SPEAKERS
        .iter()
        .filter(|s| s.0 != Role::Sub)
        .map(|s| recording(s.1, &dir.join(s.1)))
        .collect();
    let skew = measure_recordings(
        &full,
        TrueInstant::from_nanos(first_ns + (measure_from_s * 1e9) as i64),
        None,
    )
    .expect("the recordings overlap");
    Run {
        skew,
        reports,
        relay,
        seen_at,
        dir,
        first_ns,
        rates,
    }
}

/// The true rate of speaker `i`'s estimate: how much faster the leader's clock (the
/// monotonic clock) runs than the speaker's crystal, `SPEAKERS[i].2` ppm fast, in ppm.
fn true_rate_ppm(i: usize) -> f64 {
    (1.0 / (1.0 + SPEAKERS[i].2 * 1e-6) - 1.0) * 1e6
}

fn print(label: &str, run: &Run) {
    let s = &run.skew;
    println!(
        "{label}: skew p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs (target p99 ≤ 20 µs)",
        s.p50_us, s.p99_us, s.max_us
    );
    for p in &s.pairs {
        println!(
            "  {} vs {}: p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs, {} windows",
            p.a, p.b, p.p50_us, p.p99_us, p.max_us, p.windows
        );
    }
    for r in &run.reports {
        println!("  {}", r.status);
    }
    println!("  relay: {:?}", run.relay.to_follower);
    println!("  relay: {:?}", run.relay.to_leader);
    println!(
        "  relay: {} datagrams stamped in user space; sent more than 20 µs late: {} of {} \
         to followers, {} of {} to the leader",
        run.relay.user_stamps,
        run.relay.to_follower.late,
        run.relay.to_follower.forwarded,
        run.relay.to_leader.late,
        run.relay.to_leader.forwarded
    );
}

/// What holds whatever the network: every speaker played, through its own path, and the
/// relay carried (and impaired) both directions.
fn assert_played_through_the_relay(run: &Run, seconds: u64) {
    assert_eq!(run.relay.paths.len(), SPEAKERS.len(), "{:?}", run.relay);
    assert_eq!(run.relay.unknown_source, 0, "{:?}", run.relay);
    let faces: HashSet<_> = run.seen_at.iter().collect();
    assert_eq!(
        faces.len(),
        SPEAKERS.len(),
        "the leader saw {:?}",
        run.seen_at
    );
    assert!(
        run.seen_at
            .iter()
            .all(|ip| *ip != IpAddr::V4(Ipv4Addr::LOCALHOST))
    );
    for (r, s) in run.reports.iter().zip(&SPEAKERS) {
        assert!(r.status.playing, "{:?} stopped: {}", s.0, r.status);
        // At least most of the run's audio left the DAC.
        let want = (seconds as f64 - 3.0) * 48_000.0;
        assert!(
            r.frames as f64 >= want,
            "{:?} played {} frames",
            s.0,
            r.frames
        );
    }
    for (d, name) in [
        (&run.relay.to_follower, "to followers"),
        (&run.relay.to_leader, "to the leader"),
    ] {
        assert!(
            d.forwarded > 0 && d.overflow == 0 && d.send_errors == 0,
            "{name}: {d:?}"
        );
    }
}

/// A short run on a LAN, in every `cargo test`: the relay carries a real group.
#[test]
fn the_demo_group_plays_in_step_through_the_relay_on_a_lan() {
    let seconds = 10;
    let run = group_through_relay("relay-lan", PathConfig::lan(), seconds, 5.0, |_, _, _| {});
    print("lan, 10 s", &run);
    assert_played_through_the_relay(&run, seconds);
    assert!(
        run.skew.pairs.iter().all(|p| p.windows >= 5),
        "{:?}",
        run.skew.pairs
    );
    // The LAN preset's 0.1 % loss hits some of the ~8000 media datagrams.
    assert!(
        run.relay.to_follower.dropped > 0,
        "{:?}",
        run.relay.to_follower
    );
    assert!(
        run.skew.p99_us <= 1000.0,
        "skew p99 {:.2} µs, max {:.2} µs",
        run.skew.p99_us,
        run.skew.max_us
    );
}

/// The run: 60 s on the `wifi` preset. The target is the simulator's figure, p99
/// ≤ 20 µs; the test asserts only a generous bound and prints what it measured.
#[test]
#[ignore = "60 s of real time on the wifi preset; .ci/run runs it"]
fn the_demo_group_plays_in_step_through_the_relay_on_wifi_for_60_s() {
    let seconds = 60;
    let run = group_through_relay(
        "relay-wifi",
        PathConfig::wifi(),
        seconds,
        10.0,
        |_, _, _| {},
    );
    print("wifi, 60 s", &run);
    assert_played_through_the_relay(&run, seconds);
    // wifi loses 1 % and spikes 3 % of the datagrams each way.
    let down = &run.relay.to_follower;
    assert!(
        down.dropped * 200 > down.received && down.dropped * 50 < down.received,
        "{down:?}"
    );
    assert!(
        run.skew.pairs.iter().all(|p| p.windows >= 50),
        "{:?}",
        run.skew.pairs
    );
    assert!(
        run.skew.p99_us <= 1000.0,
        "skew p99 {:.2} µs, max {:.2} µs",
        run.skew.p99_us,
        run.skew.max_us
    );
}

/// The skew of `b` against `a` in `window_s` windows every `hop_s`, from `from_ns` on the
/// monotonic clock.
fn pair_skew(
    a: &OwnedCapture,
    b: &OwnedCapture,
    from_ns: i64,
    window_s: f64,
    hop_s: f64,
) -> SkewReport {
    let config = MeterConfig {
        window_s,
        hop_s,
        start: Some(TrueInstant::from_nanos(from_ns)),
        ..MeterConfig::default()
    };
    measure_skew(&a.capture(0), &b.capture(0), &config).expect("the pair is measured")
}

/// (seconds since `zero_ns`, |skew| µs) of every window of `reports`, in time order.
fn abs_series(reports: &[&SkewReport], zero_ns: i64) -> Vec<(f64, f64)> {
    let mut s: Vec<(f64, f64)> = reports
        .iter()
        .flat_map(|r| r.windows.iter())
        .map(|w| ((w.t.as_nanos() - zero_ns) as f64 * 1e-9, w.skew_us.abs()))
        .collect();
    s.sort_by(|x, y| x.0.total_cmp(&y.0));
    s
}

/// The 99th percentile (nearest rank) of `v`, as the meter takes it; NaN for none.
fn p99(v: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

/// The frames of `c` (channel 0) that left between `from_ns` and `to_ns`.
fn frames_between(c: &OwnedCapture, from_ns: i64, to_ns: i64) -> &[f32] {
    let frame = |t: i64| {
        let k = ((t - c.first.as_nanos()) as f64 * 1e-9 * c.rate_hz).round();
        (k.max(0.0) as usize).min(c.frames())
    };
    let (a, b) = (frame(from_ns), frame(to_ns));
    &c.samples[a * c.channels..b.max(a) * c.channels]
}

/// The monotonic time (ns) at which frame `k` of `c` left.
fn time_of(c: &OwnedCapture, k: usize) -> i64 {
    c.first.as_nanos() + (k as f64 / c.rate_hz * 1e9) as i64
}

fn rms(x: impl Iterator<Item = f32>) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for v in x {
        sum += f64::from(v) * f64::from(v);
        n += 1;
    }
    (sum / n.max(1) as f64).sqrt()
}

/// The least-squares slope of `points`, per second: a skew's drift in µs/s is the rate
/// error between two speakers in ppm.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    sxy / sxx
}

/// Issue 14's fault: the kitchen speaker's path cut for 30 s (media and clock, both ways)
/// on the `wifi` preset. Measured from the recordings alone: silence (after a fade) while
/// it lasts, nothing stale or out of step when it ends, and how long it takes to be within
/// the node tests' 20 µs of the stereo pair again.
#[test]
#[ignore = "48 s of real time; .ci/run runs it"]
fn a_follower_cut_off_for_30_s_fades_out_and_is_back_in_sync_within_2_s() {
    let cut = Role::Full;
    let mut outage = (0i64, 0i64);
    let run = group_through_relay(
        "relay-outage",
        PathConfig::wifi(),
        48,
        3.0,
        |relay, leader, started| {
            std::thread::sleep(Duration::from_secs(8).saturating_sub(started.elapsed()));
            let path = path_of(relay, leader, cut);
            let (now, mono) = (relay.now(), monotonic_ns());
            relay
                .schedule_path(
                    path,
                    LinkChange::Outage {
                        at: now,
                        until: now + Nanos::from_secs(30),
                    },
                )
                .expect("the outage");
            outage = (mono, mono + 30_000_000_000);
        },
    );
    print("wifi, kitchen cut off for 30 s", &run);
    let (left, right, kitchen) = (
        run.capture("left.wav"),
        run.capture("right.wav"),
        run.capture("kitchen.wav"),
    );
    let (cut_at, back_at) = outage;
    // Before: in step, as on any run.
    let before: Vec<SkewReport> = [&left, &right]
        .iter()
        .map(|a| pair_skew(a, &kitchen, run.first_ns + 5_000_000_000, 0.5, 0.5))
        .collect();
    let before_p99 = p99(abs_series(&[&before[0], &before[1]], 0)
        .into_iter()
        .filter(|w| w.0 * 1e9 + 0.5e9 <= cut_at as f64)
        .map(|w| w.1));
    println!("  before the outage: kitchen vs the pair, p99 {before_p99:.2} µs");

    // While cut off: a fade, then digital silence, and the pair plays on.
    let during = frames_between(&kitchen, cut_at + 250_000_000, back_at);
    let loud = during.iter().filter(|v| **v != 0.0).count();
    assert!(
        during.len() > 29 * 48_000 && loud == 0,
        "{loud} non-zero samples of {} while cut off",
        during.len()
    );
    for (c, name) in [(&left, "left"), (&right, "right")] {
        let level = rms(frames_between(c, cut_at + 1_000_000_000, back_at)
            .iter()
            .copied());
        assert!(level > 0.05, "{name} went quiet: rms {level}");
    }
    let start_frame =
        |t: i64| ((t - kitchen.first.as_nanos()) as f64 * 1e-9 * kitchen.rate_hz) as usize;
    let silent_from = start_frame(cut_at + 250_000_000);
    let last_sound = (0..silent_from)
        .rev()
        .find(|&k| kitchen.samples[k * kitchen.channels] != 0.0)
        .expect("it played before");
    let went_quiet_ms = (time_of(&kitchen, last_sound) - cut_at) as f64 / 1e6;
    // The last 1 ms against the 10 ms before it: faded, not cut.
    let ch = kitchen.channels;
    let tail = rms((last_sound - 47..=last_sound).map(|k| kitchen.samples[k * ch]));
    let body = rms((last_sound - 527..last_sound - 47).map(|k| kitchen.samples[k * ch]));
    println!(
        "  went quiet {went_quiet_ms:.1} ms after the cut; last 1 ms at {:.1} dB of the 10 ms before",
        20.0 * (tail / body).log10()
    );
    assert!(
        tail < 0.5 * body,
        "no fade: rms {tail:.4} in the last 1 ms, {body:.4} before"
    );

    // After: the first sound, then in step with the pair within 2 s, measured in 0.2 s
    // windows every 0.1 s.
    let back_frame = start_frame(back_at);
    let first_sound = (back_frame..kitchen.frames())
        .find(|&k| kitchen.samples[k * ch] != 0.0)
        .expect("it plays again");
    let plays_after_s = (time_of(&kitchen, first_sound) - back_at) as f64 / 1e9;
    let after: Vec<SkewReport> = [&left, &right]
        .iter()
        .map(|a| pair_skew(a, &kitchen, back_at, 0.2, 0.1))
        .collect();
    let series = abs_series(&[&after[0], &after[1]], back_at);
    // In sync from the first window from which both pairs stay within the node tests'
    // 20 µs for a whole second.
    let synced_s = series
        .iter()
        .map(|w| w.0)
        .find(|&t| {
            let next: Vec<_> = series
                .iter()
                .filter(|w| (t..t + 1.0).contains(&w.0))
                .collect();
            next.len() >= 18 && next.iter().all(|w| w.1 <= IN_SYNC_US)
        })
        .unwrap_or(f64::INFINITY);
    let settled = p99(series.iter().filter(|w| w.0 >= synced_s).map(|w| w.1));
    let resumed = series.iter().take_while(|w| w.0 < 0.5).map(|w| w.1);
    let resumed = resumed.fold(0.0f64, f64::max);
    let worst = series.iter().map(|w| w.1).fold(0.0f64, f64::max);
    println!(
        "  plays again {plays_after_s:.3} s after the outage, at most {resumed:.2} µs off in \
         its first 0.5 s; in sync (within {IN_SYNC_US} µs for 1 s) {synced_s:.2} s after the \
         outage, then p99 {settled:.2} µs; worst after the outage {worst:.2} µs"
    );
    println!(
        "  after the outage (s, µs): {}",
        series
            .iter()
            .take(40)
            .map(|(t, v)| format!("{t:.1} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for r in &after {
        println!(
            "  skipped: {} quiet, {} weak, {} edge",
            r.skipped_quiet, r.skipped_weak, r.skipped_edge
        );
        // Nothing audible that is not the pair's content within 5 ms: no stale audio.
        assert_eq!(r.skipped_weak + r.skipped_edge, 0, "stale or foreign audio");
    }
    assert!(series.len() >= 2 * 80, "{} windows", series.len());
    assert!(
        plays_after_s <= 2.0,
        "played again {plays_after_s:.3} s after"
    );
    // Issue 12's figure for the clock when packets resume is 50 µs; the first audio is
    // held to twice that, and to the 2 s and the target after.
    assert!(worst <= 100.0, "{worst:.2} µs after the outage");
    assert!(synced_s <= 2.0, "in sync {synced_s:.2} s after the outage");
    assert!(settled <= 50.0, "p99 {settled:.2} µs once in sync");
}

/// Issue 12's lasting symmetric step of +2.5 ms, on the kitchen speaker's path through
/// the relay (both directions, media and clock), on the `wifi` preset. Its targets, from
/// the recordings against the stereo pair: |skew| ≤ 50 µs throughout, p99 ≤ 20 µs outside
/// the 5 s after the step, and a rate error within 0.5 ppm from 10 s after it: the
/// estimate's rate against the crystal's true one, sampled every 250 ms (the skew's drift
/// between the recordings, which also holds the playout's own wander, is printed and held
/// to 1 ppm).
#[test]
#[ignore = "42 s of real time; .ci/run runs it"]
fn a_path_step_of_2_5_ms_keeps_the_follower_in_step() {
    let mut step_at = 0i64;
    let run = group_through_relay(
        "relay-step",
        PathConfig::wifi(),
        42,
        8.0,
        |relay, leader, started| {
            std::thread::sleep(Duration::from_secs(15).saturating_sub(started.elapsed()));
            let path = path_of(relay, leader, Role::Full);
            let (now, mono) = (relay.now(), monotonic_ns());
            relay
                .schedule_path(
                    path,
                    LinkChange::BaseDelay {
                        at: now,
                        by: Nanos::from_micros(2500),
                    },
                )
                .expect("the step");
            step_at = mono;
        },
    );
    print("wifi, kitchen's path +2.5 ms", &run);
    let (left, right, kitchen) = (
        run.capture("left.wav"),
        run.capture("right.wav"),
        run.capture("kitchen.wav"),
    );
    // From 8 s after the first sample: converged, as in the wifi run (from 10 s).
    let from = run.first_ns + 8_000_000_000;
    let pairs: Vec<SkewReport> = [&left, &right]
        .iter()
        .map(|a| pair_skew(a, &kitchen, from, 0.5, 0.25))
        .collect();
    let unaffected = pair_skew(&left, &right, from, 0.5, 0.25);
    let series = abs_series(&[&pairs[0], &pairs[1]], step_at);
    let end_s = series.last().map_or(0.0, |w| w.0);
    let worst_from_step = series
        .iter()
        .filter(|w| w.0 >= -0.5)
        .map(|w| w.1)
        .fold(0.0f64, f64::max);
    let outside = p99(series
        .iter()
        .filter(|w| w.0 < -0.5 || w.0 >= 5.0)
        .map(|w| w.1));
    let before = p99(series.iter().filter(|w| w.0 < -0.5).map(|w| w.1));
    let after = p99(series.iter().filter(|w| w.0 >= 5.0).map(|w| w.1));
    let pair_p99 = p99(unaffected.windows.iter().map(|w| w.skew_us.abs()));
    let rates: Vec<f64> = pairs
        .iter()
        .chain([&unaffected])
        .map(|r| {
            let pts: Vec<(f64, f64)> = r
                .windows
                .iter()
                .map(|w| ((w.t.as_nanos() - step_at) as f64 * 1e-9, w.skew_us))
                .filter(|p| p.0 >= 10.0)
                .collect();
            assert!(pts.len() >= 50, "{} windows from 10 s after", pts.len());
            slope(&pts)
        })
        .collect();
    println!(
        "  kitchen vs the pair: worst from the step {worst_from_step:.2} µs; p99 outside the \
         5 s after it {outside:.2} µs (before {before:.2}, from 5 s after {after:.2}); \
         rate error from 10 s after {:+.3} and {:+.3} ppm; left vs right p99 {pair_p99:.2} µs, \
         drift {:+.3} ppm; {end_s:.0} s after the step measured",
        rates[0], rates[1], rates[2]
    );
    println!(
        "  around the step (s, µs): {}",
        series
            .iter()
            .filter(|w| (-2.0..8.0).contains(&w.0))
            .map(|(t, v)| format!("{t:.2} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The estimate's own rate against the truth (the crystals' drift is set here, and the
    // leader runs on the monotonic clock): issue 12's target, 0.5 ppm from 10 s after.
    let kitchen_i = SPEAKERS
        .iter()
        .position(|s| s.1 == "kitchen.wav")
        .expect("kitchen");
    let errors: Vec<(f64, f64)> = run
        .rates
        .iter()
        .filter(|r| r.1 == kitchen_i)
        .map(|r| {
            (
                (r.0 - step_at) as f64 * 1e-9,
                r.2 - true_rate_ppm(kitchen_i),
            )
        })
        .collect();
    let after_10: Vec<f64> = errors.iter().filter(|e| e.0 >= 10.0).map(|e| e.1).collect();
    let worst_rate = after_10.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    let others: Vec<f64> = run
        .rates
        .iter()
        .filter(|r| r.1 != kitchen_i && (r.0 - step_at) as f64 * 1e-9 >= 10.0)
        .map(|r| (r.2 - true_rate_ppm(r.1)).abs())
        .collect();
    println!(
        "  kitchen's estimated rate against the truth from 10 s after the step: worst {:.3} \
         ppm over {} samples (the other speakers': worst {:.3} ppm); from the step (s, ppm): \
         {}",
        worst_rate,
        after_10.len(),
        others.iter().fold(0.0f64, |m, e| m.max(*e)),
        errors
            .iter()
            .filter(|e| e.0 >= 0.0)
            .step_by(4)
            .map(|(t, e)| format!("{t:.1} {e:+.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        after_10.len() >= 40,
        "{} rate samples from 10 s after",
        after_10.len()
    );
    assert!(
        worst_rate <= 0.5,
        "the estimate's rate is {worst_rate:.3} ppm off from 10 s after the step"
    );
    assert!(end_s >= 24.0, "measured to {end_s:.1} s after the step");
    assert!(
        series.iter().filter(|w| w.0 < -0.5).count() >= 2 * 8,
        "too little before the step"
    );
    assert!(
        worst_from_step <= 50.0,
        "{worst_from_step:.2} µs after the step"
    );
    assert!(
        outside <= IN_SYNC_US,
        "p99 {outside:.2} µs outside the 5 s after the step"
    );
    // The target is 0.5 ppm. The skew's drift over these 16 s also holds the estimates'
    // ordinary wander (the unaffected pair's drift shows it), so the test holds it to
    // twice that and prints the figure.
    for r in &rates[..2] {
        assert!(
            r.abs() <= 1.0,
            "rate error {r:+.3} ppm from 10 s after the step"
        );
    }
}
