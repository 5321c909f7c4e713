//! Scenario: a speaker project's audio callback pulls a follower's audio. Its sound card
//! runs on a crystal 80 ppm fast; it calls back every 512 frames, woken up to a
//! millisecond late, and reports (on its own clock, offset from the local one) when each
//! buffer plays, with a few tens of µs of jitter. The core is shared with the project's
//! network thread behind a mutex, as a `PullOutput` expects. What the card plays is
//! compared from outside with what the leader meant to be heard at the instant each frame
//! truly leaves the card: the skew is a few µs, the card's rate is found to a few ppm, and
//! the callback allocates nothing. A host that reports nonsense (times that go backwards,
//! latencies below zero, far-future or garbage stamps) has each report rejected and
//! counted; the audio goes on. A callback that cannot get the core plays silence, counted,
//! within its lock budget.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::alloc::watch;
use lockstep::control::{CodecId, Role, StreamParams};
use lockstep::core::{CallbackTiming, FollowerCore, FollowerCoreConfig, PullConfig, PullOutput};
use lockstep::media::sender::{RtpSender, SenderConfig};
use lockstep::media::{AudioFormat, CodecKind};
use lockstep::ptp::{ClockIdentity, MasterConfig, PortIdentity, PtpMaster, SlaveConfig};
use lockstep::time::{LeaderInstant, LocalInstant, Nanos};

const RATE: u32 = 48_000;
const BLOCK: usize = 240;
const LATENCY: Nanos = Nanos::from_millis(100);
/// The card's crystal against the local clock.
const CARD_PPM: f64 = 80.0;
/// Frames per callback, and how many periods ahead of playing the card asks.
const PERIOD: usize = 512;
const AHEAD_PERIODS: f64 = 2.0;
const TONE_HZ: [f64; 2] = [100.0, 237.0];
const TONE_AMP: [f64; 2] = [0.2, 0.05];

/// The leader's signal at (fractional) frame `j`, and its slope per frame.
fn signal(j: f64) -> (f64, f64) {
    let t = j / f64::from(RATE);
    let mut s = 0.0;
    let mut d = 0.0;
    for (f, a) in TONE_HZ.into_iter().zip(TONE_AMP) {
        let w = std::f64::consts::TAU * f;
        s += a * (w * t).sin();
        d += a * w * (w * t).cos() / f64::from(RATE);
    }
    (s, d)
}

/// A deterministic uniform in [0, 1).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How the simulated host corrupts the `n`th callback's report (`None`: it does not).
type Corrupt = fn(u64, CallbackTiming) -> Option<CallbackTiming>;

/// What a run gave.
struct Run {
    /// (true play time of the frame, local ns; the frame played), for every frame.
    played: Vec<(f64, f32)>,
    stats: lockstep::core::PullStats,
    callback_allocs: u64,
    corrupted: u64,
    silent_after_start: u64,
}

/// Runs the leader, the network and the card for `secs` seconds of local time.
fn run(secs: i64, corrupt: Option<Corrupt>) -> Run {
    let port = PortIdentity {
        clock_identity: ClockIdentity([2, 0, 0, 0xff, 0xfe, 0, 0, 7]),
        port_number: 1,
    };
    let mut config = FollowerCoreConfig::new(SlaveConfig::new(port));
    config.block_frames = BLOCK;
    let mut core = FollowerCore::<u8>::new(config, Role::Full);
    let stream = StreamParams {
        codec: CodecId::L24,
        sample_rate: RATE,
        channels: 2,
        payload_type: 96,
        ssrc: 0x0bad_cafe,
        rtp_port: 0,
        multicast: None,
        ptp_event_port: 0,
        ptp_general_port: 0,
        target_latency: LATENCY,
        ptime: Nanos::from_millis(5),
        protection: lockstep::control::Protection::NONE,
    };
    core.set_stream(&stream, Role::Full).expect("plays L24");
    let core = Arc::new(Mutex::new(core));
    // The card has two channels and takes the core's two.
    let mut pull = PullOutput::new(Arc::clone(&core), PullConfig::new(RATE, 2)).expect("handle");
    let monitor = pull.monitor();

    let format = AudioFormat::new(RATE, 2).expect("format");
    let mut sc = SenderConfig::new(CodecKind::L24, format, 0x0bad_cafe);
    sc.payload_type = 96;
    sc.ptime_ms = Some(5);
    let mut sender = RtpSender::new(sc).expect("sender");

    // The leader's clock is 1 s ahead of the follower's; the link is ideal.
    let ahead = Nanos::from_secs(1);
    let leader_at = |t: LocalInstant| LeaderInstant::from_nanos(t.as_nanos() + ahead.as_nanos());
    let mut master = PtpMaster::new(MasterConfig::new(ClockIdentity([
        0, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1,
    ])));
    master.add_slave(1u8, leader_at(LocalInstant::from_nanos(0)));

    // The card: frame k leaves at local time CARD_START + k / card_rate. Its API clock is
    // the local clock minus 2.5 s.
    let card_rate = f64::from(RATE) * (1.0 + CARD_PPM * 1e-6);
    const CARD_START: f64 = 300e6;
    let api_offset = 2_500_000_000i64;
    let plays = |k: f64| CARD_START + k * 1e9 / card_rate;
    let mut rng = Rng(0x5EED_1234_5678_9ABC);
    let mut position = 0u64;
    let mut next_wake = None::<f64>;
    let mut callbacks = 0u64;
    let mut corrupted = 0u64;
    let mut silent_after_start = 0u64;
    let mut buf = vec![0f32; PERIOD * 2];
    let mut pcm = vec![0f32; BLOCK * 2];
    let mut played = Vec::with_capacity((secs as usize + 1) * RATE as usize);
    let mut callback_allocs = 0u64;
    let mut sent = 0u64;

    let step = 250_000i64;
    for i in 0..secs * 4_000 {
        let t = i * step;
        let now = LocalInstant::from_nanos(t);
        let leader_now = leader_at(now);
        {
            let mut core = core.lock().expect("core");
            if t % 5_000_000 == 0 && t > 0 {
                for (n, frame) in pcm.chunks_exact_mut(2).enumerate() {
                    frame.fill(signal((sent + n as u64) as f64).0 as f32);
                }
                let captured = leader_now - Nanos::from_millis(5);
                sender.handle_pcm(&pcm, captured + LATENCY).expect("sends");
                while let Some(p) = sender.poll_transmit() {
                    core.handle_rtp(now, p);
                }
                sent += BLOCK as u64;
            }
            if t % 1_000_000 == 0 {
                if master.poll_timeout().is_some_and(|d| d <= leader_now) {
                    master.handle_timeout(leader_now);
                }
                while let Some(tx) = master.poll_transmit(leader_now) {
                    let _ = core.handle_ptp(0u8, now, tx.payload());
                }
                core.handle_timeout(now);
                while let Some(tx) = core.poll_transmit(now) {
                    let _ = master.handle_receive(1u8, leader_now, tx.payload());
                }
            }
        }
        // The card's interrupt for the buffer at `position` comes AHEAD_PERIODS before it
        // plays; the callback wakes up to 1 ms after it.
        let interrupt = plays(position as f64) - AHEAD_PERIODS * PERIOD as f64 * 1e9 / card_rate;
        let wake = *next_wake.get_or_insert_with(|| interrupt + 1e6 * rng.uniform());
        if (t as f64) < wake || interrupt < 0.0 {
            continue;
        }
        next_wake = None;
        let stamp = interrupt + 20e3 * (rng.uniform() - 0.5);
        let latency = plays(position as f64) - interrupt + 20e3 * (rng.uniform() - 0.5);
        let mut timing = CallbackTiming {
            now: LocalInstant::from_nanos(wake.round() as i64),
            api_callback_ns: stamp.round() as i64 - api_offset,
            api_playback_ns: (stamp + latency).round() as i64 - api_offset,
        };
        if let Some(c) = corrupt
            && let Some(bad) = c(callbacks, timing)
        {
            timing = bad;
            corrupted += 1;
        }
        callbacks += 1;
        let (filled, allocs, _) = watch(|| pull.fill(timing, &mut buf));
        assert_eq!(filled.frames, PERIOD);
        if t >= 3_000_000_000 {
            callback_allocs += allocs;
            if !filled.from_core {
                silent_after_start += 1;
            }
        }
        for (n, frame) in buf.chunks_exact(2).enumerate() {
            assert_eq!(frame[0], frame[1], "both channels carry the stream");
            played.push((plays((position + n as u64) as f64), frame[0]));
        }
        position += PERIOD as u64;
    }
    Run {
        played,
        stats: monitor.stats(),
        callback_allocs,
        corrupted,
        silent_after_start,
    }
}

/// The skew (µs) of the played audio in windows of 100 ms after `from_s`: where the
/// leader's timeline is at each frame's true play time, against where it should be (local
/// time t should play leader frame (t − LATENCY)·RATE), found by a least-squares fit of a
/// small shift along the signal's slope.
fn skews(played: &[(f64, f32)], from_s: f64) -> Vec<f64> {
    let window = RATE as usize / 10;
    played
        .chunks_exact(window)
        .filter(|w| w[0].0 >= from_s * 1e9)
        .map(|w| {
            let (mut num, mut den) = (0.0, 0.0);
            for &(t, x) in w {
                let j = (t - LATENCY.as_nanos() as f64) * f64::from(RATE) / 1e9;
                let (s, d) = signal(j);
                num += (f64::from(x) - s) * d;
                den += d * d;
            }
            // x(t) ≈ s(j + δ): δ frames ahead, i.e. the audio plays δ/RATE early.
            -(num / den) / f64::from(RATE) * 1e6
        })
        .collect()
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn a_card_80_ppm_fast_pulls_the_stream_on_time_without_allocating() {
    let r = run(40, None);
    let s = skews(&r.played, 20.0);
    assert!(s.len() > 150, "{} windows", s.len());
    let abs: Vec<f64> = s.iter().map(|x| x.abs()).collect();
    let p99 = percentile(abs.clone(), 0.99);
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    let rate_ppm = (r.stats.rate_hz / f64::from(RATE) - 1.0) * 1e6;
    eprintln!(
        "pulled from a card {CARD_PPM:+} ppm fast: skew mean {mean:+.1} µs, p99 |skew| \
         {p99:.1} µs over {} windows; rate {rate_ppm:+.2} ppm; {:?}",
        s.len(),
        r.stats
    );
    assert!(r.stats.playing, "{:?}", r.stats);
    assert_eq!(r.callback_allocs, 0, "the callback allocated");
    assert_eq!(r.silent_after_start, 0, "silent callbacks; {:?}", r.stats);
    assert_eq!(r.stats.missed_callbacks, 0);
    assert_eq!(r.stats.rejected_timings, 0);
    assert_eq!(r.stats.relocks, 0);
    assert_eq!(r.stats.underruns, 0);
    // The map wanders by a few tens of µs as the window minima of 1 ms wake-ups come and go.
    assert!(p99 < 40.0, "p99 |skew| {p99} µs");
    assert!(mean.abs() < 15.0, "mean skew {mean} µs");
    assert!(
        (rate_ppm - CARD_PPM).abs() < 3.0,
        "the card's rate: {rate_ppm} ppm"
    );
    // The furthest ahead the card asked: two periods and the rest of a core block.
    let ahead = r.stats.max_ahead.as_nanos() as f64 / 1e6;
    assert!((30.0..=40.0).contains(&ahead), "ahead {ahead} ms");
}

/// Every 37th report is nonsense, of one kind after another.
fn nonsense(n: u64, t: CallbackTiming) -> Option<CallbackTiming> {
    if n < 100 || !n.is_multiple_of(37) {
        return None;
    }
    Some(match (n / 37) % 5 {
        // The API's clock reads earlier than before.
        0 => CallbackTiming {
            api_callback_ns: t.api_callback_ns - 50_000_000,
            api_playback_ns: t.api_playback_ns - 50_000_000,
            ..t
        },
        // The buffer plays before its callback.
        1 => CallbackTiming {
            api_playback_ns: t.api_callback_ns - 1,
            ..t
        },
        // A far-future stamp.
        2 => CallbackTiming {
            api_callback_ns: i64::MAX - 10,
            api_playback_ns: i64::MAX,
            ..t
        },
        // Garbage at the other end.
        3 => CallbackTiming {
            api_callback_ns: i64::MIN,
            api_playback_ns: i64::MIN + 1_000,
            ..t
        },
        // A latency of an hour.
        _ => CallbackTiming {
            api_playback_ns: t.api_callback_ns + 3_600_000_000_000,
            ..t
        },
    })
}

#[test]
fn a_host_that_reports_nonsense_is_counted_and_the_audio_goes_on() {
    let r = run(30, Some(nonsense));
    assert!(r.corrupted > 40, "{} corrupted", r.corrupted);
    // A report that steps the API's clock is rejected, and so is the next one, which steps
    // it back; a bad latency alone costs one.
    assert!(
        (r.corrupted..=2 * r.corrupted).contains(&r.stats.rejected_timings),
        "{} corrupted, {:?}",
        r.corrupted,
        r.stats
    );
    assert_eq!(r.silent_after_start, 0, "silent callbacks; {:?}", r.stats);
    assert_eq!(r.stats.relocks, 0, "{:?}", r.stats);
    let s = skews(&r.played, 15.0);
    let p99 = percentile(s.iter().map(|x| x.abs()).collect(), 0.99);
    eprintln!(
        "with nonsense reports: p99 |skew| {p99:.1} µs; {:?}",
        r.stats
    );
    assert!(p99 < 40.0, "p99 |skew| {p99} µs");
}

#[test]
fn a_callback_that_cannot_get_the_core_plays_silence_within_its_budget() {
    let port = PortIdentity {
        clock_identity: ClockIdentity([2, 0, 0, 0xff, 0xfe, 0, 0, 8]),
        port_number: 1,
    };
    let core = Arc::new(Mutex::new(FollowerCore::<u8>::new(
        FollowerCoreConfig::new(SlaveConfig::new(port)),
        Role::Full,
    )));
    let mut pull = PullOutput::new(Arc::clone(&core), PullConfig::new(RATE, 2)).expect("handle");
    let mut buf = vec![1f32; 256];
    let timing = CallbackTiming::from_latency(LocalInstant::from_nanos(0), Nanos::from_millis(5));
    let held = core.lock().expect("core");
    let began = Instant::now();
    let filled = pull.fill(timing, &mut buf);
    let took = began.elapsed();
    drop(held);
    assert!(!filled.from_core);
    assert!(buf.iter().all(|&x| x == 0.0), "silence");
    assert_eq!(pull.monitor().stats().missed_callbacks, 1);
    // 300 µs of trying, and whatever the scheduler adds on a busy machine.
    assert!(took < Duration::from_millis(50), "took {took:?}");
    // Free, it renders (silence too: no stream yet, but not a miss).
    let later =
        CallbackTiming::from_latency(LocalInstant::from_nanos(2_666_667), Nanos::from_millis(5));
    let filled = pull.fill(later, &mut buf);
    assert!(filled.rejected.is_none());
    assert_eq!(pull.monitor().stats().missed_callbacks, 1);
    // A device of no channels, or of too many, is refused with a typed error.
    assert!(PullOutput::new(Arc::clone(&core), PullConfig::new(RATE, 0)).is_err());
    assert!(PullOutput::new(Arc::clone(&core), PullConfig::new(0, 2)).is_err());
}

#[path = "common/node.rs"]
mod node;

#[test]
fn a_follower_node_hands_its_pull_handle_to_the_hosts_callback() {
    use lockstep::node::Output;

    let leader = node::leader();
    let mut config = node::follower_config(&leader, Role::Full, 40.0);
    config.output = Output::Callback {
        rate: RATE,
        channels: 2,
    };
    let follower = node::follower(config);
    let mut pull = follower.take_pull_output().expect("the handle");
    assert!(follower.take_pull_output().is_none(), "handed over once");
    let monitor = pull.monitor();
    let clock = follower.clock();

    // The host's callback: 480 frames every 10 ms of the node's clock, playing 20 ms after
    // it runs; the last second's audio is kept.
    let host = std::thread::spawn(move || {
        let mut buf = vec![0f32; 480 * 2];
        let mut energy = 0.0f64;
        let start = clock.now();
        for k in 0..500i64 {
            clock.sleep_until(start + Nanos::from_millis(10 * k));
            let timing = CallbackTiming::from_latency(clock.now(), Nanos::from_millis(20));
            let filled = pull.fill(timing, &mut buf);
            assert_eq!(filled.frames, 480);
            if k >= 400 {
                energy += buf
                    .iter()
                    .map(|&x| f64::from(x) * f64::from(x))
                    .sum::<f64>();
            }
        }
        energy
    });
    let energy = host.join().expect("the host's callback");
    let stats = monitor.stats();
    let status = follower.status();
    let report = follower.stop().expect("stops");
    leader.shutdown();
    assert!(stats.playing && status.playing, "{stats:?} {status:?}");
    assert!(stats.first_play.is_some() && report.first_sample_ns.is_some());
    assert_eq!(stats.rejected_timings, 0, "{stats:?}");
    assert!(
        energy > 1.0,
        "the callback played the stream: energy {energy}"
    );
    assert!(report.frames >= 480 * 500, "{report:?}");
}
