//! The playout stages (split, crossover, gain, delay) and the chain that runs them.

mod common;

use std::f64::consts::PI;

use lockstep::playout::stage::{Chain, ChainError, MAX_BLOCK_FRAMES, Stage};
use lockstep::playout::stages::{
    ChannelSplit, Crossover, CrossoverKind, DEFAULT_CROSSOVER_HZ, Delay, Gain, GainControl,
    SplitMode,
};

use common::alloc::watch;

// ---------------------------------------------------------------------------------------
// A counting allocator: counts allocations made by threads that are being watched.
// ---------------------------------------------------------------------------------------

/// Allocations `f` makes on this thread (the shared counting allocator).
fn allocations_during(f: impl FnOnce()) -> u64 {
    watch(f).1
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A small deterministic generator of uniform noise in [−1, 1).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (r >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn block(&mut self, samples: usize, amplitude: f64) -> Vec<f32> {
        (0..samples)
            .map(|_| (amplitude * self.next()) as f32)
            .collect()
    }
}

fn sine(freq: f64, rate: u32, frames: usize, amplitude: f64) -> Vec<f32> {
    (0..frames)
        .map(|n| (amplitude * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Amplitude of the `freq` component of `x`, by least squares over a whole number of
/// periods (`x.len()` must hold one: one second of audio does for integer frequencies).
fn amplitude(x: &[f64], freq: f64, rate: u32) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let ph = 2.0 * PI * freq * n as f64 / f64::from(rate);
        s += v * ph.sin();
        c += v * ph.cos();
    }
    2.0 * s.hypot(c) / x.len() as f64
}

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

fn run(stage: &mut dyn Stage, input: &[f32]) -> Vec<f32> {
    let frames = input.len() / stage.channels_in();
    let mut out = vec![f32::NAN; frames * stage.channels_out()];
    assert_eq!(stage.process(input, &mut out), frames);
    out
}

fn run_chain(chain: &mut Chain, input: &[f32]) -> Vec<f32> {
    let frames = input.len() / chain.channels_in();
    let mut out = vec![f32::NAN; frames * chain.channels_out()];
    assert_eq!(chain.process(input, &mut out), frames);
    out
}

fn field_of(e: ChainError) -> &'static str {
    match e {
        ChainError::InvalidConfig { field, .. } => field,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Split
// ---------------------------------------------------------------------------------------

const STEREO: [f32; 8] = [1.0, 2.0, 3.0, -4.0, 0.5, 0.25, -1.0, 1.0];

#[test]
fn split_left_and_right_pick_one_channel() {
    let mut left = ChannelSplit::new(SplitMode::Left, 2).unwrap();
    assert_eq!((left.channels_in(), left.channels_out()), (2, 1));
    assert_eq!(run(&mut left, &STEREO), [1.0, 3.0, 0.5, -1.0]);
    let mut right = ChannelSplit::new(SplitMode::Right, 2).unwrap();
    assert_eq!((right.channels_in(), right.channels_out()), (2, 1));
    assert_eq!(run(&mut right, &STEREO), [2.0, -4.0, 0.25, 1.0]);
}

#[test]
fn split_mono_downmix_averages() {
    let mut mono = ChannelSplit::new(SplitMode::MonoDownmix, 2).unwrap();
    assert_eq!(mono.channels_out(), 1);
    assert_eq!(run(&mut mono, &STEREO), [1.5, -0.5, 0.375, 0.0]);
    // Full scale on both sides stays finite.
    assert_eq!(run(&mut mono, &[f32::MAX, f32::MAX]), [f32::MAX]);
}

#[test]
fn split_swap_exchanges_left_and_right() {
    let mut swap = ChannelSplit::new(SplitMode::Swap, 2).unwrap();
    assert_eq!((swap.channels_in(), swap.channels_out()), (2, 2));
    assert_eq!(
        run(&mut swap, &STEREO),
        [2.0, 1.0, -4.0, 3.0, 0.25, 0.5, 1.0, -1.0]
    );
}

#[test]
fn split_pass_through_of_six_channels() {
    let mut pass = ChannelSplit::new(SplitMode::PassThrough, 6).unwrap();
    assert_eq!((pass.channels_in(), pass.channels_out()), (6, 6));
    let input: Vec<f32> = (0..6 * 50).map(|i| i as f32 * 0.01 - 1.0).collect();
    assert_eq!(run(&mut pass, &input), input);
    assert_eq!(pass.delay_frames(), 0.0);
}

#[test]
fn split_refuses_wrong_channel_counts() {
    for mode in [
        SplitMode::Left,
        SplitMode::Right,
        SplitMode::MonoDownmix,
        SplitMode::Swap,
    ] {
        assert_eq!(
            field_of(ChannelSplit::new(mode, 1).unwrap_err()),
            "channels_in"
        );
        assert_eq!(
            field_of(ChannelSplit::new(mode, 3).unwrap_err()),
            "channels_in"
        );
    }
    assert_eq!(
        ChannelSplit::new(SplitMode::PassThrough, 9).unwrap_err(),
        ChainError::TooManyChannels { channels: 9 }
    );
    assert_eq!(
        field_of(ChannelSplit::new(SplitMode::PassThrough, 0).unwrap_err()),
        "channels_in"
    );
}

// ---------------------------------------------------------------------------------------
// Chain assembly
// ---------------------------------------------------------------------------------------

#[test]
fn chain_split_then_crossover_is_fine() {
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(ChannelSplit::new(SplitMode::Left, 2).unwrap()),
        Box::new(Crossover::new(CrossoverKind::LowPass, DEFAULT_CROSSOVER_HZ, 48_000, 1).unwrap()),
    ];
    let chain = Chain::new(2, stages).unwrap();
    assert_eq!(chain.channels_in(), 2);
    assert_eq!(chain.channels_out(), 1);
    assert_eq!(chain.len(), 2);
    assert!(!chain.is_empty());
    assert_eq!(chain.delay_frames(), 0.0);
    assert_eq!(
        chain.stage_names().collect::<Vec<_>>(),
        ["split", "crossover"]
    );
}

#[test]
fn chain_refuses_a_split_fed_mono() {
    let stages: Vec<Box<dyn Stage>> =
        vec![Box::new(ChannelSplit::new(SplitMode::Left, 2).unwrap())];
    let err = Chain::new(1, stages).unwrap_err();
    assert_eq!(
        err,
        ChainError::ChannelMismatch {
            index: 0,
            stage: "split",
            expected: 2,
            got: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "stage 0 (split) takes 2 channels but is fed 1"
    );
}

#[test]
fn chain_mismatch_in_the_middle_names_the_stage_index() {
    let (gain, _control) = Gain::new(2, 48_000, 0.0).unwrap();
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(ChannelSplit::new(SplitMode::MonoDownmix, 2).unwrap()),
        Box::new(Crossover::new(CrossoverKind::LowPass, 80.0, 48_000, 1).unwrap()),
        Box::new(gain),
        Box::new(Delay::new(2, 48_000, 0.0).unwrap()),
    ];
    let err = Chain::new(2, stages).unwrap_err();
    assert_eq!(
        err,
        ChainError::ChannelMismatch {
            index: 2,
            stage: "gain",
            expected: 2,
            got: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "stage 2 (gain) takes 2 channels but is fed 1"
    );
}

#[test]
fn chain_refuses_more_than_eight_channels() {
    assert_eq!(
        Chain::new(9, Vec::new()).unwrap_err(),
        ChainError::TooManyChannels { channels: 9 }
    );
    assert!(Chain::new(8, Vec::new()).is_ok());
    assert_eq!(
        field_of(Chain::new(0, Vec::new()).unwrap_err()),
        "channels_in"
    );
    assert_eq!(
        Gain::new(9, 48_000, 0.0).unwrap_err(),
        ChainError::TooManyChannels { channels: 9 }
    );
    assert_eq!(
        Crossover::new(CrossoverKind::LowPass, 80.0, 48_000, 12).unwrap_err(),
        ChainError::TooManyChannels { channels: 12 }
    );
}

#[test]
fn empty_chain_passes_through_and_delays_add_up() {
    let mut chain = Chain::new(3, Vec::new()).unwrap();
    assert!(chain.is_empty());
    assert_eq!(chain.channels_out(), 3);
    let input: Vec<f32> = (0..30).map(|i| i as f32).collect();
    assert_eq!(run_chain(&mut chain, &input), input);

    let a = Delay::new(1, 48_000, 250.0).unwrap();
    let b = Delay::new(1, 48_000, 3.7).unwrap();
    let expected = a.delay_frames() + b.delay_frames();
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(ChannelSplit::new(SplitMode::Right, 2).unwrap()),
        Box::new(a),
        Box::new(b),
    ];
    let chain = Chain::new(2, stages).unwrap();
    assert_eq!(chain.delay_frames(), expected);
    assert!((expected - (12.0 + 0.1776 + 30.0)).abs() < 1e-9);
}

// ---------------------------------------------------------------------------------------
// Crossover
// ---------------------------------------------------------------------------------------

/// The magnitude of an LR4 section made by the bilinear transform prewarped at `fc`.
fn lr4_expected(kind: CrossoverKind, f: f64, fc: f64, rate: u32) -> f64 {
    let r = (PI * f / f64::from(rate)).tan() / (PI * fc / f64::from(rate)).tan();
    let r4 = r.powi(4);
    match kind {
        CrossoverKind::LowPass => 1.0 / (1.0 + r4),
        CrossoverKind::HighPass => r4 / (1.0 + r4),
    }
}

/// Runs a sine of `f` Hz through a fresh crossover for 1.5 s and returns the output over
/// the last second (the transient long gone).
fn crossover_output(kind: CrossoverKind, fc: f64, f: f64, rate: u32) -> Vec<f64> {
    let mut xo = Crossover::new(kind, fc, rate, 1).unwrap();
    let n = rate as usize;
    let input = sine(f, rate, n + n / 2, 0.5);
    let out = run(&mut xo, &input);
    out[n / 2..].iter().map(|&v| f64::from(v)).collect()
}

/// Gain of the crossover at `f`, in dB, from a sine through it.
fn crossover_gain_db(kind: CrossoverKind, fc: f64, f: f64, rate: u32) -> f64 {
    let out = crossover_output(kind, fc, f, rate);
    db(amplitude(&out, f, rate) / 0.5)
}

#[test]
fn crossover_magnitude_at_10_80_and_1000_hz() {
    use CrossoverKind::{HighPass, LowPass};
    let rate = 48_000;
    let lp = |f| crossover_gain_db(LowPass, 80.0, f, rate);
    let hp = |f| crossover_gain_db(HighPass, 80.0, f, rate);

    // At the crossover frequency both sides are 6.02 dB down.
    let (lp80, hp80) = (lp(80.0), hp(80.0));
    assert!((lp80 + 6.0206).abs() < 0.1, "LP at 80 Hz: {lp80} dB");
    assert!((hp80 + 6.0206).abs() < 0.1, "HP at 80 Hz: {hp80} dB");
    // Pass bands flat, stop bands at 24 dB/octave: 3 octaves → about −72 dB.
    let (lp10, hp10, lp1k, hp1k) = (lp(10.0), hp(10.0), lp(1000.0), hp(1000.0));
    assert!(lp10.abs() < 0.01, "LP at 10 Hz: {lp10} dB");
    assert!(hp10 < -70.0, "HP at 10 Hz: {hp10} dB");
    assert!(lp1k < -85.0, "LP at 1 kHz: {lp1k} dB");
    assert!(hp1k.abs() < 0.01, "HP at 1 kHz: {hp1k} dB");

    // And everything as the design says, to a few hundredths of a dB.
    for (kind, f, got) in [
        (LowPass, 10.0, lp10),
        (LowPass, 80.0, lp80),
        (LowPass, 1000.0, lp1k),
        (HighPass, 10.0, hp10),
        (HighPass, 80.0, hp80),
        (HighPass, 1000.0, hp1k),
    ] {
        let want = db(lr4_expected(kind, f, 80.0, rate));
        assert!(
            (got - want).abs() < 0.02,
            "{kind:?} at {f} Hz: {got} dB, want {want} dB"
        );
    }
}

#[test]
fn crossover_is_minus_6_db_at_other_rates_and_frequencies() {
    for (rate, fc) in [
        (44_100, 80.0),
        (96_000, 80.0),
        (48_000, 120.0),
        (44_100, 2_000.0),
    ] {
        for kind in [CrossoverKind::LowPass, CrossoverKind::HighPass] {
            let g = crossover_gain_db(kind, fc, fc, rate);
            assert!(
                (g + 6.0206).abs() < 0.05,
                "{kind:?} {fc} Hz at {rate} Hz: {g} dB"
            );
        }
    }
}

#[test]
fn crossover_low_and_high_pass_sum_flat() {
    let rate = 48_000;
    let mut worst: f64 = 0.0;
    for f in [
        20.0, 50.0, 70.0, 80.0, 90.0, 150.0, 400.0, 2_000.0, 10_000.0,
    ] {
        let lp = crossover_output(CrossoverKind::LowPass, 80.0, f, rate);
        let hp = crossover_output(CrossoverKind::HighPass, 80.0, f, rate);
        let sum: Vec<f64> = lp.iter().zip(&hp).map(|(a, b)| a + b).collect();
        let g = db(amplitude(&sum, f, rate) / 0.5);
        worst = worst.max(g.abs());
        assert!(g.abs() < 0.01, "LP + HP at {f} Hz: {g} dB");
    }
    eprintln!("LP + HP: worst deviation from flat {worst:.6} dB");
}

#[test]
fn crossover_refuses_frequencies_out_of_range() {
    let new = |f| Crossover::new(CrossoverKind::LowPass, f, 48_000, 1);
    for f in [30_000.0, 21_600.0, 0.0, -80.0, f64::NAN, f64::INFINITY] {
        assert_eq!(field_of(new(f).unwrap_err()), "frequency_hz", "{f}");
    }
    assert!(new(21_599.0).is_ok());
    assert_eq!(
        field_of(Crossover::new(CrossoverKind::HighPass, 80.0, 0, 1).unwrap_err()),
        "sample_rate"
    );
}

#[test]
fn crossover_silence_in_gives_exact_zeros_out() {
    for kind in [CrossoverKind::LowPass, CrossoverKind::HighPass] {
        let mut xo = Crossover::new(kind, 80.0, 48_000, 2).unwrap();
        assert!(xo.is_settled());
        let noise = Noise(7).block(2 * 4_800, 0.9);
        run(&mut xo, &noise);
        assert!(!xo.is_settled());
        xo.reset();
        assert!(xo.is_settled());
        let mut input = noise;
        input.resize(2 * 48_000, 0.0);
        let out = run(&mut xo, &input);
        // Tiny states are flushed, so the filter state itself reaches exact zero (and
        // never runs through denormals).
        assert!(xo.is_settled(), "{kind:?} state does not settle to zero");
        assert!(out[..2 * 4_800].iter().any(|&v| v != 0.0));
        let tail = &out[out.len() - 2 * 1_000..];
        assert!(
            tail.iter().all(|&v| v == 0.0),
            "{kind:?} does not settle to zero"
        );
        assert!(out.iter().all(|v| v.is_finite()));
    }
}

// ---------------------------------------------------------------------------------------
// Gain
// ---------------------------------------------------------------------------------------

#[test]
fn gain_minus_6_db_halves_the_amplitude_after_the_ramp() {
    let (mut gain, control) = Gain::new(2, 48_000, 0.0).unwrap();
    assert_eq!(gain.ramp_frames(), 480);
    let input = Noise(3).block(2 * 2_000, 0.8);
    // Unity to start with.
    assert_eq!(run(&mut gain, &input[..200]), &input[..200]);
    control.set_volume_db(-6.0206);
    assert_eq!(control.volume_db(), -6.0206);
    let out = run(&mut gain, &input);
    // During the ramp the gain is between 1 and 0.5; after it, 0.5.
    for (o, x) in out.iter().zip(&input).skip(2 * 480) {
        assert!((o / x - 0.5).abs() < 1e-5 || x.abs() < 1e-6, "{o} / {x}");
    }
    let ramp_mid = out[2 * 240] / input[2 * 240];
    assert!(ramp_mid > 0.7 && ramp_mid < 0.8, "{ramp_mid}");
    assert!((gain.current_gain() - 0.5).abs() < 1e-5);
}

#[test]
fn gain_ramp_has_no_step_larger_than_its_increment() {
    let (mut gain, control) = Gain::new(1, 48_000, 0.0).unwrap();
    control.set_volume_db(-20.0);
    let target = 0.1f64;
    let ones = vec![1.0f32; 1_000];
    // Cut into odd blocks: the ramp must carry on across them.
    let mut out = Vec::new();
    for chunk in ones.chunks(37) {
        out.extend(run(&mut gain, chunk));
    }
    let increment = (1.0 - target) / 480.0;
    let mut prev = 1.0f64;
    for (i, &g) in out.iter().enumerate() {
        let step = prev - f64::from(g);
        assert!(step >= -1e-7, "gain rose at frame {i}");
        assert!(step <= increment * (1.0 + 1e-4), "step {step} at frame {i}");
        prev = f64::from(g);
    }
    assert!((f64::from(out[479]) - target).abs() < 1e-7);
    assert!(out[479..].iter().all(|&g| g == out[479]));
    // A ramp, not a jump: the first frame has moved one increment only.
    assert!(
        (1.0 - f64::from(out[0]) - increment).abs() < 1e-6,
        "{}",
        out[0]
    );
}

#[test]
fn gain_mute_ramps_to_exact_zero_and_back() {
    let (mut gain, control) = Gain::new(2, 48_000, -3.0).unwrap();
    let input = Noise(11).block(2 * 1_000, 0.9);
    run(&mut gain, &input);
    control.set_mute(true);
    assert!(control.muted());
    let out = run(&mut gain, &input);
    assert!(out[..2 * 100].iter().any(|&v| v != 0.0));
    assert!(
        out[2 * 480..].iter().all(|&v| v == 0.0),
        "mute is not exact zero"
    );
    control.set_mute(false);
    let out = run(&mut gain, &input);
    let g = 10f64.powf(-3.0 / 20.0);
    assert!(f64::from(out[1] / input[1]) < 0.1 * g, "unmute jumped");
    for (o, x) in out.iter().zip(&input).skip(2 * 480) {
        assert!((f64::from(o / x) - g).abs() < 1e-5 || x.abs() < 1e-6);
    }
}

#[test]
fn gain_controlled_from_another_thread() {
    let (mut gain, control) = Gain::new(1, 48_000, 0.0).unwrap();
    let remote: GainControl = control.clone();
    std::thread::spawn(move || {
        remote.set_volume_db(-12.0);
        remote.set_mute(false);
    })
    .join()
    .unwrap();
    assert_eq!(control.volume_db(), -12.0);
    let out = run(&mut gain, &[1.0; 1_000]);
    let want = 10f64.powf(-12.0 / 20.0);
    assert!((f64::from(out[999]) - want).abs() < 1e-6, "{}", out[999]);

    // And the stage itself can move to another thread while the control stays here.
    control.set_volume_db(f32::NEG_INFINITY);
    let out = std::thread::spawn(move || run(&mut gain, &[1.0; 1_000]))
        .join()
        .unwrap();
    assert_eq!(out[999], 0.0);
}

#[test]
fn gain_limits() {
    assert_eq!(
        field_of(Gain::new(1, 48_000, 24.5).unwrap_err()),
        "initial_db"
    );
    assert_eq!(
        field_of(Gain::new(1, 48_000, f32::NAN).unwrap_err()),
        "initial_db"
    );
    assert_eq!(
        field_of(Gain::with_ramp(1, 48_000, 0.0, -1.0).unwrap_err()),
        "ramp_ms"
    );
    // −∞ and anything below −120 dB is silence.
    let (mut silent, control) = Gain::new(1, 48_000, f32::NEG_INFINITY).unwrap();
    assert_eq!(run(&mut silent, &[1.0; 4]), [0.0; 4]);
    control.set_volume_db(-130.0);
    assert_eq!(run(&mut silent, &[1.0; 4]), [0.0; 4]);
    // Above +24 dB is clamped, NaN ignored.
    control.set_volume_db(40.0);
    assert_eq!(control.volume_db(), 24.0);
    control.set_volume_db(f32::NAN);
    assert_eq!(control.volume_db(), 24.0);
}

// ---------------------------------------------------------------------------------------
// Delay
// ---------------------------------------------------------------------------------------

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

/// Broadband noise: white noise through a 63-tap Blackman low-pass at 0.35 × the rate.
fn broadband(frames: usize, seed: u64) -> Vec<f32> {
    let taps: Vec<f64> = (0..63)
        .map(|k| {
            let t = k as f64 - 31.0;
            let w = 0.42 - 0.5 * (2.0 * PI * k as f64 / 62.0).cos()
                + 0.08 * (4.0 * PI * k as f64 / 62.0).cos();
            0.7 * sinc(0.7 * t) * w
        })
        .collect();
    let white: Vec<f64> = {
        let mut n = Noise(seed);
        (0..frames + 62).map(|_| n.next()).collect()
    };
    (0..frames)
        .map(|i| (0.5 * (0..63).map(|k| taps[k] * white[i + 62 - k]).sum::<f64>()) as f32)
        .collect()
}

/// The delay of `y` behind `x` in frames, from the peak of their cross-correlation,
/// refined between lags by sinc interpolation.
fn measured_delay(x: &[f32], y: &[f32]) -> f64 {
    let xcorr = |lag: i64| -> f64 {
        x.iter()
            .enumerate()
            .filter_map(|(n, &a)| {
                let m = n as i64 + lag;
                (m >= 0 && (m as usize) < y.len()).then(|| f64::from(a) * f64::from(y[m as usize]))
            })
            .sum()
    };
    let peak = (0..200i64)
        .map(|lag| (lag, xcorr(lag)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
        .0;
    let lags: Vec<(f64, f64)> = (peak - 100..=peak + 100)
        .map(|lag| (lag as f64, xcorr(lag)))
        .collect();
    let r = |t: f64| lags.iter().map(|&(l, v)| v * sinc(t - l)).sum::<f64>();
    // Golden-section search for the maximum within a frame of the integer peak.
    let (mut a, mut b) = (peak as f64 - 1.0, peak as f64 + 1.0);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    while b - a > 1e-7 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if r(c) > r(d) { b = d } else { a = c }
    }
    0.5 * (a + b)
}

#[test]
fn delay_measured_by_cross_correlation_equals_delay_frames() {
    let x = broadband(16_384, 5);
    for (rate, us) in [
        (48_000, 0.0),
        (48_000, 3.7),
        (48_000, 250.0),
        (48_000, 10.416_666_7),
        (44_100, 250.0),
        (96_000, 3.7),
    ] {
        let mut delay = Delay::new(1, rate, us).unwrap();
        let expected = delay.delay_frames();
        // The stage's own delay plus the interpolator's centring latency of 15 frames.
        let requested = us * f64::from(rate) / 1e6;
        assert!(
            (expected - (requested + 15.0)).abs() < 1e-6,
            "{expected} vs {requested}"
        );
        let mut input = x.clone();
        input.resize(x.len() + 300, 0.0);
        let y = run(&mut delay, &input);
        let got = measured_delay(&x, &y);
        eprintln!(
            "{us} µs at {rate} Hz: delay_frames {expected:.5}, measured {got:.5}, error {:+.5}",
            got - expected
        );
        assert!(
            (got - expected).abs() < 0.01,
            "{us} µs at {rate} Hz: measured {got}, reports {expected}"
        );
    }
}

#[test]
fn delay_whole_frames_is_exact() {
    let mut delay = Delay::new(2, 48_000, 250.0).unwrap();
    assert_eq!(delay.delay_frames(), 27.0);
    let input = Noise(9).block(2 * 500, 0.5);
    let out = run(&mut delay, &input);
    assert!(out[..2 * 27].iter().all(|&v| v == 0.0));
    assert_eq!(&out[2 * 27..], &input[..2 * (500 - 27)]);
}

#[test]
fn multichannel_stages_treat_channels_alike_and_apart() {
    // A 2-channel stage fed 20 000 frames in one call gives, channel by channel, what a
    // 1-channel one gives in blocks of 1 000.
    let input = Noise(12).block(2 * 20_000, 0.5);
    let makers: [fn(usize) -> Box<dyn Stage>; 3] = [
        |ch| Box::new(Delay::new(ch, 48_000, 3.7).unwrap()),
        |ch| Box::new(Delay::new(ch, 48_000, 250.0).unwrap()),
        |ch| Box::new(Crossover::new(CrossoverKind::LowPass, 80.0, 48_000, ch).unwrap()),
    ];
    for make in makers {
        let mut both = make(2);
        let out = run(both.as_mut(), &input);
        for c in 0..2 {
            let mut one = make(1);
            let mono: Vec<f32> = input.iter().skip(c).step_by(2).copied().collect();
            let mut want = Vec::new();
            for block in mono.chunks(1_000) {
                want.extend(run(one.as_mut(), block));
            }
            let got: Vec<f32> = out.iter().skip(c).step_by(2).copied().collect();
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{} channel {c}",
                both.name()
            );
        }
    }
}

/// |H(f)| in dB of the stage's impulse response.
fn response_db(h: &[f32], f: f64, rate: u32) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &v) in h.iter().enumerate() {
        let ph = 2.0 * PI * f * n as f64 / f64::from(rate);
        re += f64::from(v) * ph.cos();
        im -= f64::from(v) * ph.sin();
    }
    db(re.hypot(im))
}

#[test]
fn delay_interpolator_is_flat_to_16_khz() {
    let rate = 48_000;
    let mut worst: f64 = 0.0;
    for us in [3.7, 5.0, 10.416_666_7, 15.0, 20.0, 250.3] {
        let mut delay = Delay::new(1, rate, us).unwrap();
        let mut impulse = vec![0.0f32; 400];
        impulse[0] = 1.0;
        let h = run(&mut delay, &impulse);
        let mut f = 0.0;
        while f <= 16_000.0 {
            let g = response_db(&h, f, rate);
            worst = worst.max(g.abs());
            assert!(g.abs() < 0.1, "{us} µs: {g} dB at {f} Hz");
            f += 250.0;
        }
    }
    eprintln!("interpolator: worst deviation to 16 kHz {worst:.5} dB");
}

#[test]
fn delay_refuses_out_of_range() {
    for us in [-1.0, f64::NAN, 1.5e6, f64::INFINITY, -0.0001] {
        assert_eq!(
            field_of(Delay::new(1, 48_000, us).unwrap_err()),
            "delay_us",
            "{us}"
        );
    }
    assert!(Delay::new(1, 48_000, 1e6).is_ok());
}

// ---------------------------------------------------------------------------------------
// The chain at work
// ---------------------------------------------------------------------------------------

/// split(MonoDownmix or Left) → crossover → gain → delay, and the gain's control.
fn full_chain(mode: SplitMode, kind: CrossoverKind, rate: u32) -> (Chain, GainControl) {
    let (gain, control) = Gain::new(1, rate, 0.0).unwrap();
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(ChannelSplit::new(mode, 2).unwrap()),
        Box::new(Crossover::new(kind, DEFAULT_CROSSOVER_HZ, rate, 1).unwrap()),
        Box::new(gain),
        Box::new(Delay::new(1, rate, 3.7).unwrap()),
    ];
    (Chain::new(2, stages).unwrap(), control)
}

#[test]
fn chain_replaces_non_finite_input_with_zero() {
    let stages: Vec<Box<dyn Stage>> = vec![Box::new(
        ChannelSplit::new(SplitMode::PassThrough, 2).unwrap(),
    )];
    let mut chain = Chain::new(2, stages).unwrap();
    let input = [1.0, f32::NAN, f32::INFINITY, 0.5, f32::NEG_INFINITY, -0.25];
    assert_eq!(
        run_chain(&mut chain, &input),
        [1.0, 0.0, 0.0, 0.5, 0.0, -0.25]
    );
    assert_eq!(chain.non_finite_replaced(), 3);

    // Through filters too: one NaN must not poison their state.
    let (mut chain, _control) = full_chain(SplitMode::MonoDownmix, CrossoverKind::LowPass, 48_000);
    let mut input = Noise(1).block(2 * 4_000, 0.5);
    input[2 * 100] = f32::NAN;
    input[2 * 200 + 1] = f32::INFINITY;
    input[2 * 300] = f32::NEG_INFINITY;
    let out = run_chain(&mut chain, &input);
    assert!(out.iter().all(|v| v.is_finite()));
    assert!(out[3_000..].iter().any(|&v| v != 0.0));
    assert_eq!(chain.non_finite_replaced(), 3);

    // And the empty chain sanitises as well.
    let mut empty = Chain::new(1, Vec::new()).unwrap();
    assert_eq!(run_chain(&mut empty, &[f32::NAN, 2.0]), [0.0, 2.0]);
    assert_eq!(empty.non_finite_replaced(), 1);
}

#[test]
fn chain_handles_blocks_of_any_size() {
    let (mut chain, _control) = full_chain(SplitMode::Left, CrossoverKind::HighPass, 48_000);
    let input = Noise(2).block(2 * 20_000, 0.5);
    let mut out = vec![0.0f32; 20_000];
    for frames in [0, 1, 7, MAX_BLOCK_FRAMES, 20_000] {
        assert_eq!(
            chain.process(&input[..2 * frames], &mut out[..frames]),
            frames
        );
    }
    // Ragged input: whole frames only.
    assert_eq!(chain.process(&input[..11], &mut out), 5);
    // An output too short for the input: as many frames as fit.
    assert_eq!(chain.process(&input[..2 * 100], &mut out[..40]), 40);
}

#[test]
fn any_cut_into_blocks_gives_the_same_output_bit_for_bit() {
    let input = Noise(4).block(2 * 60_000, 0.7);
    let rate = 48_000;

    let (mut chain, control) = full_chain(SplitMode::MonoDownmix, CrossoverKind::HighPass, rate);
    control.set_volume_db(-9.0);
    let whole = run_chain(&mut chain, &input);

    let (mut chain, control) = full_chain(SplitMode::MonoDownmix, CrossoverKind::HighPass, rate);
    control.set_volume_db(-9.0);
    let sizes = [1, 7, 0, 480, 8_192, 13, 20_000, 999, 3, 4_096];
    let mut cut = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < 60_000 {
        let n = sizes[i % sizes.len()].min(60_000 - at);
        let mut out = vec![0.0f32; n];
        assert_eq!(chain.process(&input[2 * at..2 * (at + n)], &mut out), n);
        cut.extend(out);
        at += n;
        i += 1;
    }
    assert_eq!(whole.len(), cut.len());
    let first_diff = whole
        .iter()
        .zip(&cut)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(first_diff, None, "outputs differ");

    // Reset brings the chain back to as built (the control still says −9 dB).
    chain.reset();
    let (mut fresh, fresh_control) =
        full_chain(SplitMode::MonoDownmix, CrossoverKind::HighPass, rate);
    fresh_control.set_volume_db(-9.0);
    let a = run_chain(&mut chain, &input[..2 * 5_000]);
    let b = run_chain(&mut fresh, &input[..2 * 5_000]);
    assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()));
    drop(control);
}

#[test]
fn chain_process_allocates_nothing() {
    let (mut chain, control) = full_chain(SplitMode::Left, CrossoverKind::HighPass, 48_000);
    let input = Noise(6).block(2 * 20_000, 0.5);
    let mut out = vec![0.0f32; 20_000];

    // The counter does count.
    let n = allocations_during(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(64))));
    assert!(n >= 1, "the counting allocator counts nothing");

    let n = allocations_during(|| {
        for (i, frames) in [480, 1, 7, 8_192, 20_000, 0, 480].into_iter().enumerate() {
            control.set_volume_db(-(i as f32));
            control.set_mute(i == 5);
            chain.process(&input[..2 * frames], &mut out[..frames]);
        }
        chain.reset();
    });
    assert_eq!(n, 0, "Chain::process allocated {n} times");
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn stages_and_chains_are_send() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send::<Box<dyn Stage>>();
    assert_send::<Chain>();
    assert_send_sync_clone::<GainControl>();
}
