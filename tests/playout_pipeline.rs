//! One follower's playout path, end to end without a network: our sender's RTP into the
//! receiver, the stage chain, the corrector and the servo, onto a virtual DAC whose crystal
//! drifts. The clock estimate is the exact truth, so whatever error the audio shows is the
//! playout path's own. Timing is measured from the audio: the meter cross-correlates the
//! DAC's output, at its true emission times, with the leader's source at the instants the
//! leader meant it to play.

mod common;

use lockstep::clock::{ClockEstimate, EpochReason};
use lockstep::measure::{Capture, MeterConfig, measure_skew};
use lockstep::media::receiver::{ReceiverConfig, RtpReceiver};
use lockstep::media::sender::{RtpSender, SenderConfig};
use lockstep::media::{AudioFormat, CodecKind};
use lockstep::playout::controller::State;
use lockstep::playout::corrector::CorrectorKind;
use lockstep::playout::dac::{Crystal, LinearCrystal, VirtualDac};
use lockstep::playout::pipeline::{Playout, PlayoutConfig};
use lockstep::playout::stage::{Chain, Stage};
use lockstep::playout::stages::{ChannelSplit, SplitMode};
use lockstep::ptp::{ClockIdentity, PortIdentity};
use lockstep::time::{LeaderInstant, LocalInstant, Nanos, TrueInstant};

use common::alloc::watch;

const RATE: u32 = 48_000;
const PTIME: usize = 240; // 5 ms
/// Leader time at true time 0.
const EPOCH: i64 = 1_700_000_000_000_000_000;

/// Broadband noise, the same on both channels (xorshift).
fn noise(frames: usize, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    (0..frames)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8;
            [v, v]
        })
        .collect()
}

/// The exact estimate for a follower on `crystal` under an ideal leader clock that reads
/// `EPOCH + true time`.
fn truth(crystal: &LinearCrystal) -> ClockEstimate {
    ClockEstimate {
        anchor_local: crystal.offset,
        anchor_leader: LeaderInstant::from_nanos(EPOCH),
        rate_ppm: (1.0 / (1.0 + crystal.drift_ppm * 1e-6) - 1.0) * 1e6,
        uncertainty: Nanos::ZERO,
        leader: PortIdentity {
            clock_identity: ClockIdentity([0; 8]),
            port_number: 1,
        },
        epoch: 0,
        reason: EpochReason::Start,
        settled: true,
    }
}

/// What a run recorded.
struct Run {
    source: Vec<f32>,
    latency_ms: i64,
    /// Channel 0 of the DAC's output.
    out: Vec<f32>,
    /// True time of the DAC's frame 0, and its true rate.
    first_ns: i64,
    rate_hz: f64,
    playout: Playout,
    allocations: u64,
}

/// Plays `seconds` of noise through one follower whose crystal drifts `drift_ppm`, with
/// `kind` correcting, in DAC blocks of `block` frames rendered 10 ms before they leave. The
/// DAC starts at true time 0.3 s; packets arrive the moment they are sent, and the leader's
/// latency is 60 ms plus a block. The allocations of the last second's receive and render
/// are counted.
fn run(drift_ppm: f64, kind: CorrectorKind, seconds: usize, block: usize) -> Run {
    run_with(
        drift_ppm,
        kind,
        seconds,
        block,
        noise(RATE as usize * seconds, 7),
        None,
    )
}

/// As [`run`], playing `source` (interleaved stereo), and with the estimate jumping by
/// `jump.1` ns at true time `jump.0` ns, if given.
fn run_with(
    drift_ppm: f64,
    kind: CorrectorKind,
    seconds: usize,
    block: usize,
    source: Vec<f32>,
    jump: Option<(i64, i64)>,
) -> Run {
    let latency_ms = 61 + block as i64 * 1000 / i64::from(RATE);
    let format = AudioFormat::new(RATE, 2).unwrap();
    let mut crystal = LinearCrystal {
        drift_ppm,
        offset: LocalInstant::from_nanos(123_456_789_012),
    };
    let exact = truth(&crystal);
    // Every packet, sent when its audio is captured, to play LATENCY_MS later.
    let mut sender = RtpSender::new(SenderConfig::new(CodecKind::L24, format, 0xAB)).unwrap();
    let mut packets: Vec<(i64, Vec<u8>)> = Vec::new();
    for (k, chunk) in source.chunks(2 * PTIME).enumerate() {
        let captured = (k * PTIME) as i64 * 1_000_000_000 / i64::from(RATE);
        let at = LeaderInstant::from_nanos(EPOCH + captured + latency_ms * 1_000_000);
        let sent = captured + 5_000_000;
        sender.handle_pcm(chunk, at).unwrap();
        while let Some(p) = sender.poll_transmit() {
            packets.push((sent, p.to_vec()));
        }
    }
    let mut rx = RtpReceiver::new(ReceiverConfig::new(CodecKind::L24, format, 96)).unwrap();
    let mut config = PlayoutConfig::new(RATE);
    config.corrector = kind;
    config.block_frames = block;
    let chain = Chain::new(
        2,
        vec![Box::new(ChannelSplit::new(SplitMode::Swap, 2).unwrap()) as Box<dyn Stage>],
    )
    .unwrap();
    let mut playout = Playout::new(config, chain).unwrap();
    let mut dac = VirtualDac::new(RATE, 2);
    dac.start(crystal.local_at(TrueInstant::from_nanos(300_000_000)));
    let mut block_out = vec![0f32; block * 2];
    let total_frames = (seconds as u64 - 1) * u64::from(RATE);
    let mut out = Vec::with_capacity(total_frames as usize + block);
    let mut first_ns = None;
    let mut next_packet = 0;
    let mut allocations = 0;
    while (out.len() as u64) < total_frames {
        let dac_next = dac.next_local().unwrap();
        // Render one block ahead of emission.
        let now_true = crystal.true_at(dac_next).as_nanos() - 10_000_000;
        let measured = out.len() as u64 + u64::from(RATE) >= total_frames;
        let mut est = exact;
        if let Some((at, by)) = jump
            && now_true >= at
        {
            est.anchor_leader += Nanos::from_nanos(by);
        }
        let ((), allocs, _) = watch(|| {
            let now = LeaderInstant::from_nanos(EPOCH + now_true);
            while next_packet < packets.len() && packets[next_packet].0 <= now_true {
                rx.handle_rtp(&packets[next_packet].1, now);
                next_packet += 1;
            }
            rx.handle_timeout(now);
            playout.render(
                &mut rx,
                Some(&est),
                dac_next,
                dac.frames_emitted(),
                &mut block_out,
            );
            let e = dac
                .emit(&block_out, &mut crystal as &mut dyn Crystal)
                .unwrap();
            first_ns.get_or_insert(e.true_time.as_nanos());
            out.extend(block_out.chunks_exact(2).map(|f| f[0]));
        });
        if measured {
            allocations += allocs;
        }
    }
    let rate_hz = f64::from(RATE) * (1.0 + drift_ppm * 1e-6);
    Run {
        source: source.chunks_exact(2).map(|f| f[0]).collect(),
        latency_ms,
        out,
        first_ns: first_ns.unwrap(),
        rate_hz,
        playout,
        allocations,
    }
}

/// The DAC's output against the source at its intended instants, from `from_s` on: every
/// window's skew, µs (positive: the speaker plays late).
fn skews(r: &Run, from_s: f64) -> Vec<f64> {
    let source = Capture {
        samples: &r.source,
        channels: 1,
        channel: 0,
        first: TrueInstant::from_nanos(r.latency_ms * 1_000_000),
        rate_hz: f64::from(RATE),
    };
    let played = Capture {
        samples: &r.out,
        channels: 1,
        channel: 0,
        first: TrueInstant::from_nanos(r.first_ns),
        rate_hz: r.rate_hz,
    };
    let config = MeterConfig {
        start: Some(TrueInstant::from_nanos((from_s * 1e9) as i64)),
        max_skew_us: 1_000.0,
        ..MeterConfig::default()
    };
    let report = measure_skew(&source, &played, &config).expect("meter");
    report.windows.iter().map(|w| w.skew_us).collect()
}

#[test]
fn each_sample_leaves_the_drifting_dac_at_its_leader_instant() {
    for drift in [150.0, -150.0, 0.0, 37.5] {
        let r = run(drift, CorrectorKind::Sinc, 8, 480);
        let s = skews(&r, 1.0);
        assert!(s.len() >= 10, "{drift} ppm: {} windows", s.len());
        let worst = s.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        // The estimate is exact: what is left is the path's own accounting. A start that
        // got the corrector's first ramp wrong would show 5 ns per ppm of drift.
        assert!(worst < 0.05, "{drift} ppm: worst {worst} µs, windows {s:?}");
        let report = r.playout.controller().report();
        assert_eq!(report.state, State::Locked, "{drift} ppm");
        assert_eq!((report.underruns, report.realigns), (0, 1), "{drift} ppm");
    }
}

#[test]
fn every_corrector_keeps_time() {
    // Slip and drop/dup move in whole frames, so each sample is up to a frame (20.8 µs)
    // off; over a meter window their error averages out to within a few µs, unless their
    // accounting is biased (a slip waits for a whole frame of error: half a frame of bias
    // if the path took its own ratio for the truth).
    for (kind, bound_us) in [
        (CorrectorKind::Poly, 0.2),
        (CorrectorKind::Slip, 3.0),
        (CorrectorKind::DropDup, 3.0),
    ] {
        let r = run(-120.0, kind, 6, 480);
        let s = skews(&r, 1.0);
        assert!(s.len() >= 6, "{kind}: {} windows", s.len());
        let worst = s.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(worst < bound_us, "{kind}: worst {worst} µs");
    }
}

#[test]
fn large_and_small_dac_blocks_work() {
    for block in [64, 8192] {
        let r = run(90.0, CorrectorKind::Sinc, 6, block);
        let s = skews(&r, 1.5);
        let worst = s.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(worst < 0.05, "block {block}: worst {worst} µs");
    }
}

#[test]
fn receive_and_render_allocate_nothing_in_steady_state() {
    for kind in CorrectorKind::ALL {
        let r = run(150.0, kind, 4, 480);
        assert_eq!(r.allocations, 0, "{kind}");
        assert!(r.out.iter().any(|&x| x != 0.0), "{kind}: it played");
    }
}

#[test]
fn a_realign_fades_out_and_in_without_a_click() {
    // A 1 kHz tone; at 2 s the estimate jumps by 15 ms (beyond the 10 ms re-align
    // threshold), as after a leader clock step.
    let amp = 0.5f32;
    let tone: Vec<f32> = (0..RATE as usize * 5)
        .flat_map(|i| {
            let x = amp * (std::f32::consts::TAU * 1000.0 * i as f32 / RATE as f32).sin();
            [x, x]
        })
        .collect();
    let r = run_with(
        60.0,
        CorrectorKind::Sinc,
        5,
        480,
        tone,
        Some((2_000_000_000, 15_000_000)),
    );
    let report = r.playout.controller().report();
    assert_eq!(report.realigns, 2, "the start and the jump");
    // The tone's own largest step is 2π·1000/48000 × 0.5 = 0.065; a cut would be up to 1,
    // and the fades add their own slope (a 5 ms raised cosine: about a tenth more).
    let natural = std::f32::consts::TAU * 1000.0 / RATE as f32 * amp;
    let worst = r
        .out
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1.25 * natural,
        "step {worst} vs the tone's {natural}"
    );
    // It went silent around the jump (faded out, then started afresh) and played again.
    // The DAC started at 0.3 s, so the jump is 1.7 s into its output.
    let around = &r.out[(1.6 * f64::from(RATE)) as usize..(1.9 * f64::from(RATE)) as usize];
    assert!(around.iter().any(|x| x.abs() < 1e-6));
    let tail = &r.out[r.out.len() - 4_800..];
    assert!(tail.iter().fold(0.0f32, |m, x| m.max(x.abs())) > 0.45);
}
