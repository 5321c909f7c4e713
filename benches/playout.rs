//! Playout costs: one follower's whole signal path at 48 kHz stereo, with each corrector.
//!
//! ```text
//! cargo bench --bench playout
//! ```
//!
//! The path is what a stereo satellite runs: a channel split (swap, so it does real work),
//! a Linkwitz–Riley high-pass at 80 Hz, a gain, a 250 µs delay trim, then the drift
//! corrector at a ratio 150 ppm off 1, in 10 ms blocks. Each iteration processes one second
//! of audio, so the real-time factor is one second divided by the time criterion reports.
//! `stages` times the chain without a corrector, and `stage/…` each stage alone.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockstep::playout::corrector::{CorrectorConfig, CorrectorKind, DriftCorrector};
use lockstep::playout::stage::{Chain, Stage};
use lockstep::playout::stages::{ChannelSplit, Crossover, CrossoverKind, Delay, Gain, SplitMode};

const RATE: u32 = 48_000;
const BLOCK: usize = 480;

fn chain() -> Chain {
    let (gain, _control) = Gain::new(2, RATE, -6.0).expect("gain");
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(ChannelSplit::new(SplitMode::Swap, 2).expect("split")),
        Box::new(Crossover::new(CrossoverKind::HighPass, 80.0, RATE, 2).expect("crossover")),
        Box::new(gain),
        Box::new(Delay::new(2, RATE, 250.0).expect("delay")),
    ];
    Chain::new(2, stages).expect("chain")
}

/// Two seconds of a two-tone stereo signal, read round-robin.
fn source() -> Vec<f32> {
    (0..2 * RATE as usize)
        .flat_map(|i| {
            let t = i as f32 / RATE as f32;
            let x = 0.4 * (std::f32::consts::TAU * 440.0 * t).sin()
                + 0.2 * (std::f32::consts::TAU * 3_150.0 * t).sin();
            [x, -0.5 * x]
        })
        .collect()
}

/// One follower's path: chain then corrector, one DAC block at a time.
struct Path {
    chain: Chain,
    corrector: Option<DriftCorrector>,
    staged: Vec<f32>,
    out: Vec<f32>,
    pos: usize,
}

impl Path {
    fn new(kind: Option<CorrectorKind>) -> Path {
        let corrector = kind.map(|kind| {
            let mut config = CorrectorConfig::new(2, RATE);
            config.kind = kind;
            let mut c = DriftCorrector::new(config).expect("corrector");
            c.set_ratio(1.0 + 150e-6);
            c
        });
        Path {
            chain: chain(),
            corrector,
            staged: vec![0.0; 4 * BLOCK],
            out: vec![0.0; 2 * BLOCK],
            pos: 0,
        }
    }

    /// One second of output: 100 blocks of 10 ms.
    fn second(&mut self, src: &[f32]) -> f32 {
        let mut acc = 0.0;
        for _ in 0..RATE as usize / BLOCK {
            let need = self
                .corrector
                .as_ref()
                .map_or(BLOCK, |c| c.input_frames_next());
            if self.pos + need * 2 > src.len() {
                self.pos = 0;
            }
            let input = &src[self.pos..self.pos + need * 2];
            self.pos += need * 2;
            let staged = &mut self.staged[..need * 2];
            self.chain.process(input, staged);
            match &mut self.corrector {
                Some(c) => {
                    c.process(staged, &mut self.out).expect("process");
                }
                None => self.out.copy_from_slice(&staged[..2 * BLOCK]),
            }
            acc += self.out[0];
        }
        acc
    }
}

fn playout(c: &mut Criterion) {
    let src = source();
    let mut group = c.benchmark_group("playout/48k_stereo_1s");
    group.throughput(Throughput::Elements(u64::from(RATE)));
    let mut stages = Path::new(None);
    group.bench_function("stages", |b| b.iter(|| black_box(stages.second(&src))));
    for kind in CorrectorKind::ALL {
        let mut path = Path::new(Some(kind));
        group.bench_function(format!("stages+{}", kind.name()), |b| {
            b.iter(|| black_box(path.second(&src)))
        });
    }
    group.finish();
}

/// Each stage alone, one second of 48 kHz stereo per iteration, in 10 ms blocks.
fn stages(c: &mut Criterion) {
    let src = source();
    let mut group = c.benchmark_group("stage/48k_stereo_1s");
    group.throughput(Throughput::Elements(u64::from(RATE)));
    let (gain, _control) = Gain::new(2, RATE, -6.0).expect("gain");
    let all: Vec<(&str, Box<dyn Stage>)> = vec![
        (
            "split_swap",
            Box::new(ChannelSplit::new(SplitMode::Swap, 2).expect("split")),
        ),
        (
            "crossover_hp",
            Box::new(Crossover::new(CrossoverKind::HighPass, 80.0, RATE, 2).expect("crossover")),
        ),
        ("gain", Box::new(gain)),
        (
            "delay_250us",
            Box::new(Delay::new(2, RATE, 250.0).expect("delay")),
        ),
    ];
    for (name, mut stage) in all {
        let mut out = vec![0f32; 2 * BLOCK];
        group.bench_function(name, |b| {
            b.iter(|| {
                for block in src[..2 * RATE as usize].chunks_exact(2 * BLOCK) {
                    stage.process(block, &mut out);
                }
                black_box(out[0])
            })
        });
    }
    group.finish();
}

criterion_group!(benches, playout, stages);
criterion_main!(benches);
