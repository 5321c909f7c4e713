//! Scenario: a follower core driven by hand, as a speaker project with its own event loop
//! and audio callback drives one. A real PTP master and RTP sender feed it over an ideal
//! link; the project chose its own estimator (lockstep's, counted) and added a stage of
//! its own after the role's (a polarity flip). The core plays the leader's audio inverted,
//! on time to the frame, and rendering allocates nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::alloc::watch;
use lockstep::clock::{ClockEstimate, ClockEstimator, EnvelopeEstimator, Exchange};
use lockstep::control::{CodecId, Role, StreamParams};
use lockstep::core::{FollowerCore, FollowerCoreConfig};
use lockstep::media::sender::{RtpSender, SenderConfig};
use lockstep::media::{AudioFormat, CodecKind};
use lockstep::playout::controller::State;
use lockstep::playout::stage::{ChainError, Stage};
use lockstep::ptp::{ClockIdentity, MasterConfig, PortIdentity, PtpMaster, SlaveConfig};
use lockstep::time::{LeaderInstant, LocalInstant, Nanos};

/// Lockstep's estimator, counting the exchanges it is given.
struct Counted(EnvelopeEstimator, Arc<AtomicU64>);

impl ClockEstimator for Counted {
    fn name(&self) -> &'static str {
        "counted"
    }
    fn wants(&self, at: LocalInstant) -> bool {
        self.0.wants(at)
    }
    fn handle_exchange(&mut self, exchange: &Exchange) {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.handle_exchange(exchange);
    }
    fn reset(&mut self) {
        self.0.reset();
    }
    fn estimate(&self) -> Option<ClockEstimate> {
        self.0.estimate()
    }
    fn poll_burst_request(&mut self) -> bool {
        self.0.poll_burst_request()
    }
}

/// The project's own stage: flips the polarity, counting the frames it sees.
struct Flip(usize, Arc<AtomicU64>);

impl Stage for Flip {
    fn name(&self) -> &'static str {
        "flip"
    }
    fn channels_in(&self) -> usize {
        self.0
    }
    fn channels_out(&self) -> usize {
        self.0
    }
    fn delay_frames(&self) -> f64 {
        0.0
    }
    fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        let n = input.len().min(output.len()) / self.0 * self.0;
        for (o, &x) in output[..n].iter_mut().zip(&input[..n]) {
            *o = -x;
        }
        self.1.fetch_add((n / self.0) as u64, Ordering::Relaxed);
        n / self.0
    }
    fn reset(&mut self) {}
}

const RATE: u32 = 48_000;
const BLOCK: usize = 240;
const LATENCY: Nanos = Nanos::from_millis(100);

/// The leader's signal at frame `k`: two low tones, smooth enough that the resampler
/// reproduces them to a small fraction of their step per frame, so a frame's misplacement
/// shows.
fn signal(k: u64) -> f32 {
    let t = k as f64 / f64::from(RATE);
    (0.2 * (std::f64::consts::TAU * 100.0 * t).sin()
        + 0.05 * (std::f64::consts::TAU * 237.0 * t).sin()) as f32
}

#[test]
fn a_core_driven_by_hand_plays_on_time_through_the_projects_stage_without_allocating() {
    let exchanges = Arc::new(AtomicU64::new(0));
    let flipped = Arc::new(AtomicU64::new(0));
    let port = PortIdentity {
        clock_identity: ClockIdentity([2, 0, 0, 0xff, 0xfe, 0, 0, 9]),
        port_number: 1,
    };
    let mut config = FollowerCoreConfig::new(SlaveConfig::new(port));
    let counter = Arc::clone(&exchanges);
    config.estimator =
        Arc::new(move || Box::new(Counted(EnvelopeEstimator::default(), Arc::clone(&counter))));
    let seen = Arc::clone(&flipped);
    config.stages = Some(Arc::new(move |channels, _rate| {
        let stages: Vec<Box<dyn Stage>> = vec![Box::new(Flip(channels, Arc::clone(&seen)))];
        Ok::<_, ChainError>(stages)
    }));
    config.block_frames = BLOCK;
    let mut core = FollowerCore::<u8>::new(config, Role::Left);

    let format = AudioFormat::new(RATE, 2).expect("format");
    let mut sc = SenderConfig::new(CodecKind::L24, format, 0x1234_5678);
    sc.payload_type = 96;
    sc.ptime_ms = Some(5);
    let mut sender = RtpSender::new(sc).expect("sender");
    let stream = StreamParams {
        codec: CodecId::L24,
        sample_rate: RATE,
        channels: 2,
        payload_type: 96,
        ssrc: 0x1234_5678,
        rtp_port: 0,
        multicast: None,
        ptp_event_port: 0,
        ptp_general_port: 0,
        target_latency: LATENCY,
        ptime: Nanos::from_millis(5),
        protection: lockstep::control::Protection::NONE,
    };
    core.set_stream(&stream, Role::Left).expect("plays L24");
    assert_eq!(core.channels_out(), 1, "a left speaker plays one channel");

    // The leader's clock runs 1 s ahead of the follower's, at the same rate; the link is
    // ideal (the master's datagrams arrive as they leave).
    let ahead = Nanos::from_secs(1);
    let leader_at = |t: LocalInstant| LeaderInstant::from_nanos(t.as_nanos() + ahead.as_nanos());
    let mut master = PtpMaster::new(MasterConfig::new(ClockIdentity([
        0, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1,
    ])));
    master.add_slave(1u8, leader_at(LocalInstant::from_nanos(0)));

    let step = Nanos::from_millis(1);
    let mut out = vec![0f32; BLOCK];
    let mut pcm = vec![0f32; BLOCK * 2];
    let mut sent_frames = 0u64;
    let mut dac_frames = 0u64;
    // The DAC's frame 0 leaves at 500 ms, local time; each block is rendered 3 ms ahead.
    let dac_start = 500_000_000i64;
    let mut played: Vec<(u64, f32)> = Vec::new();
    let mut render_allocs = 0u64;
    let mut last_state = State::Idle;
    for ms in 0..6_000i64 {
        let now = LocalInstant::from_nanos(ms * step.as_nanos());
        let leader_now = leader_at(now);
        // The leader sends every 5 ms the frames it captured during the last 5 ms, for
        // playout LATENCY after their capture.
        if ms % 5 == 0 && ms > 0 {
            for (i, frame) in pcm.chunks_exact_mut(2).enumerate() {
                frame.fill(signal(sent_frames + i as u64));
            }
            let captured = leader_now - Nanos::from_millis(5);
            sender.handle_pcm(&pcm, captured + LATENCY).expect("sends");
            while let Some(p) = sender.poll_transmit() {
                core.handle_rtp(now, p);
            }
            sent_frames += BLOCK as u64;
        }
        if master.poll_timeout().is_some_and(|t| t <= leader_now) {
            master.handle_timeout(leader_now);
        }
        while let Some(tx) = master.poll_transmit(leader_now) {
            let _ = core.handle_ptp(0u8, now, tx.payload());
        }
        core.handle_timeout(now);
        while let Some(tx) = core.poll_transmit(now) {
            let _ = master.handle_receive(1u8, leader_now, tx.payload());
        }
        // The audio callback: a block is due 3 ms before it leaves.
        let next = dac_start + dac_frames as i64 * 1_000_000_000 / i64::from(RATE);
        if now.as_nanos() >= next - 3_000_000 {
            let (r, allocs, _) =
                watch(|| core.render(now, LocalInstant::from_nanos(next), dac_frames, &mut out));
            if ms >= 2_000 {
                render_allocs += allocs;
            }
            if let Some(report) = r.report {
                last_state = report.state;
            }
            // What left the DAC at frame k: the local time of frame k is next + k/RATE.
            for (i, &x) in out.iter().enumerate() {
                played.push((dac_frames + i as u64, x));
            }
            dac_frames += BLOCK as u64;
        }
    }

    assert!(
        exchanges.load(Ordering::Relaxed) > 100,
        "the project's estimator was fed"
    );
    assert!(
        flipped.load(Ordering::Relaxed) > 0,
        "the project's stage ran"
    );
    assert_ne!(last_state, State::Idle, "the core plays");
    assert_eq!(render_allocs, 0, "render allocated");
    let est = core.estimate().expect("an estimate");
    assert!(
        (est.offset_at(LocalInstant::from_nanos(0)) - ahead).abs() < Nanos::from_micros(5),
        "offset {:?}",
        est.offset_at(LocalInstant::from_nanos(0))
    );
    // Frame k left at local dac_start + k/RATE, leader time that + 1 s; the leader's frame
    // j was meant for leader time (j/RATE) + LATENCY + 1 s (its capture began at leader
    // time 1 s). So DAC frame k plays leader frame k + (dac_start − LATENCY)·RATE, inverted.
    let shift = (dac_start - LATENCY.as_nanos()) * i64::from(RATE) / 1_000_000_000;
    let tail: Vec<&(u64, f32)> = played.iter().filter(|(k, _)| *k >= 4 * 48_000).collect();
    assert!(
        tail.len() > 10_000,
        "{} frames played late in the run",
        tail.len()
    );
    let mut worst = 0f32;
    for &&(k, x) in &tail {
        let want = -signal((k as i64 + shift) as u64);
        worst = worst.max((x - want).abs());
    }
    assert!(
        worst < 1e-3,
        "the played audio is not the leader's, inverted and on time: {worst}"
    );
}
