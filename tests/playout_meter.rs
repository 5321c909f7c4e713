//! The sync meter against signals whose true skew is known exactly.
//!
//! The test signal is analytic: a sum of many sines with random frequencies (up to 16 kHz)
//! and phases, plus a few louder tones. It can be evaluated at any true instant, so a
//! capture delayed by a fractional number of samples, or sampled by a DAC at another true
//! rate, is made by evaluating the signal at that capture's own emission instants; nothing
//! in the test shares code with the meter's interpolator.

use std::f64::consts::PI;
use std::path::PathBuf;

use lockstep::measure::{
    Capture, MeterConfig, MeterError, SkewReport, load_capture_wav, measure_skew, percentile,
    sidecar_path, write_capture_wav,
};
use lockstep::sim::SimRng;
use lockstep::time::TrueInstant;

/// A PTP-era true time, so that full-size timestamps are exercised.
const EPOCH: i64 = 1_700_000_000_000_000_000;
const RATE: f64 = 48_000.0;

/// The content: `s(t) = gate(t) Σ aᵢ sin(2π fᵢ t + φᵢ)`, `t` in seconds of true time since
/// [`EPOCH`].
struct Signal {
    parts: Vec<(f64, f64, f64)>,
    /// A silent stretch `[from, to)` s, faded over 20 ms at each end.
    silence: Option<(f64, f64)>,
}

impl Signal {
    fn new(seed: u64, max_hz: f64) -> Signal {
        let mut rng = SimRng::new(seed);
        let count = 150;
        let mut parts: Vec<(f64, f64, f64)> = (0..count)
            .map(|_| {
                let f = rng.uniform(40.0, max_hz);
                let phase = rng.uniform(0.0, 2.0 * PI);
                (f, phase, 0.5 / (count as f64).sqrt())
            })
            .collect();
        for f in [440.0, 1000.0, 3150.0] {
            parts.push((f, rng.uniform(0.0, 2.0 * PI), 0.08));
        }
        Signal {
            parts,
            silence: None,
        }
    }

    fn gate(&self, t: f64) -> f64 {
        let Some((from, to)) = self.silence else {
            return 1.0;
        };
        let fade = 0.02;
        let ramp = |x: f64| 0.5 - 0.5 * (PI * x.clamp(0.0, 1.0)).cos();
        if t < from {
            ramp((from - t) / fade)
        } else if t < to {
            0.0
        } else {
            ramp((t - to) / fade)
        }
    }

    fn at(&self, t: f64) -> f64 {
        let g = self.gate(t);
        if g == 0.0 {
            return 0.0;
        }
        g * self
            .parts
            .iter()
            .map(|&(f, p, a)| a * (2.0 * PI * f * t + p).sin())
            .sum::<f64>()
    }

    /// A stereo capture (the content on both channels) from a DAC whose frame 0 left at
    /// `first_ns` and whose frames leave at `rate_hz` true; the content is late by
    /// `delay_us` (frame k carries `s(t_k − delay)`).
    fn capture(&self, first_ns: i64, rate_hz: f64, seconds: f64, delay_us: f64) -> Vec<f32> {
        let frames = (seconds * rate_hz) as usize;
        let t0 = (first_ns - EPOCH) as f64 * 1e-9 - delay_us * 1e-6;
        let mut out = Vec::with_capacity(2 * frames);
        for k in 0..frames {
            let v = self.at(t0 + k as f64 / rate_hz) as f32;
            out.push(v);
            out.push(v);
        }
        out
    }
}

fn stereo<'a>(samples: &'a [f32], first_ns: i64, rate_hz: f64) -> Capture<'a> {
    Capture {
        samples,
        channels: 2,
        channel: 0,
        first: TrueInstant::from_nanos(first_ns),
        rate_hz,
    }
}

/// The largest |measured − expected| over all windows, µs.
fn max_error(report: &SkewReport, expected_us: f64) -> f64 {
    report
        .windows
        .iter()
        .map(|w| (w.skew_us - expected_us).abs())
        .fold(0.0, f64::max)
}

/// Measures A against B and checks every window is within 0.5 µs of `expected_us`.
fn check(a: &Capture, b: &Capture, expected_us: f64, min_windows: usize, what: &str) {
    let report = measure_skew(a, b, &MeterConfig::default()).expect(what);
    let err = max_error(&report, expected_us);
    eprintln!(
        "{what}: expected {expected_us} µs, {} windows, max |error| {:.4} µs ({:.1} ns), \
         lowest peak {:.4}",
        report.windows.len(),
        err,
        err * 1e3,
        report
            .windows
            .iter()
            .map(|w| w.peak)
            .fold(f64::INFINITY, f64::min)
    );
    assert!(
        report.windows.len() >= min_windows,
        "{what}: only {} windows",
        report.windows.len()
    );
    assert!(err < 0.5, "{what}: max error {err} µs: {report:#?}");
    for w in &report.windows {
        assert!(
            w.peak > 0.95 && w.peak <= 1.0 + 1e-9,
            "{what}: peak {}",
            w.peak
        );
    }
    assert_eq!(
        report.skipped_quiet + report.skipped_weak + report.skipped_edge,
        0
    );
    assert!(
        (report.p50_us - expected_us.abs()).abs() < 0.5,
        "{what}: p50"
    );
    assert!(
        (report.p99_us - expected_us.abs()).abs() < 0.5,
        "{what}: p99"
    );
    assert!(
        (report.max_us - expected_us.abs()).abs() < 0.5,
        "{what}: max"
    );
    assert!((report.mean_us - expected_us).abs() < 0.5, "{what}: mean");
}

#[test]
fn recovers_known_fractional_delays_in_every_window() {
    let s = Signal::new(1, 16_000.0);
    let a = s.capture(EPOCH, RATE, 4.0, 0.0);
    let ca = stereo(&a, EPOCH, RATE);
    for delay in [3.7, 250.0, -42.0] {
        let b = s.capture(EPOCH, RATE, 4.0, delay);
        let cb = stereo(&b, EPOCH, RATE);
        check(&ca, &cb, delay, 6, &format!("delay {delay} µs"));
    }
}

#[test]
fn recovers_delays_when_the_captures_start_at_different_instants() {
    let s = Signal::new(2, 16_000.0);
    let a = s.capture(EPOCH, RATE, 4.0, 0.0);
    let ca = stereo(&a, EPOCH, RATE);
    // B's DAC started 1.234567 ms after A's, at a sample instant unrelated to A's grid.
    let b_first = EPOCH + 1_234_567;
    let b = s.capture(b_first, RATE, 4.0, 250.0);
    check(&ca, &stereo(&b, b_first, RATE), 250.0, 6, "B starts later");
    // And A started earlier than B by more than a window: the windows start where both
    // have audio.
    let a_first = EPOCH - 1_700_000_123;
    let a2 = s.capture(a_first, RATE, 5.0, 0.0);
    check(
        &stereo(&a2, a_first, RATE),
        &stereo(&b, b_first, RATE),
        250.0,
        4,
        "A starts 1.7 s earlier",
    );
}

#[test]
fn different_true_rates_are_compared_on_their_own_timelines() {
    let s = Signal::new(3, 16_000.0);
    let a = s.capture(EPOCH, RATE, 4.0, 0.0);
    let ca = stereo(&a, EPOCH, RATE);
    let rate_b = RATE * (1.0 + 150e-6);
    let b_first = EPOCH + 777_777;
    // Content identical in true time: no skew, although B's samples drift by 75 µs per
    // 0.5 s window against A's.
    let b = s.capture(b_first, rate_b, 4.0, 0.0);
    check(&ca, &stereo(&b, b_first, rate_b), 0.0, 6, "B 150 ppm fast");
    // B's emission 10 µs late, at the other rate.
    let b = s.capture(b_first, rate_b, 4.0, 10.0);
    check(
        &ca,
        &stereo(&b, b_first, rate_b),
        10.0,
        6,
        "B 150 ppm fast, 10 µs late",
    );
    // A different nominal rate too: B a 44.1 kHz DAC 80 ppm slow, 123.4 µs early.
    let rate_c = 44_100.0 * (1.0 - 80e-6);
    let c = s.capture(EPOCH + 5_000, rate_c, 4.0, -123.4);
    check(
        &ca,
        &stereo(&c, EPOCH + 5_000, rate_c),
        -123.4,
        6,
        "B at 44.1 kHz",
    );
}

#[test]
fn a_wrong_timeline_shows_as_growing_skew() {
    // B's DAC runs 20 ppm fast but its timeline claims the nominal rate: the meter must
    // report the drift, not hide it. Frame k carries the content of true time k / rate_b
    // but is taken to leave at k / RATE, 20 ppm of the time since the start later than it
    // did; a window measures that at its middle.
    let s = Signal::new(4, 16_000.0);
    let a = s.capture(EPOCH, RATE, 3.0, 0.0);
    let b = s.capture(EPOCH, RATE * (1.0 + 20e-6), 3.0, 0.0);
    let report = measure_skew(
        &stereo(&a, EPOCH, RATE),
        &stereo(&b, EPOCH, RATE),
        &MeterConfig::default(),
    )
    .unwrap();
    let mut worst: f64 = 0.0;
    for w in &report.windows {
        let mid = (w.t.as_nanos() - EPOCH) as f64 * 1e-9 + 0.25;
        let expected = mid * 20e-6 * 1e6;
        worst = worst.max((w.skew_us - expected).abs());
        assert!(
            (w.skew_us - expected).abs() < 0.5,
            "at {mid} s: {} vs {expected}",
            w.skew_us
        );
    }
    eprintln!("wrong timeline (20 ppm): max |error| {worst:.4} µs");
    assert!(report.windows.len() >= 4);
    assert!(report.max_us > 40.0);
}

#[test]
fn broader_content_up_to_20_khz_is_measured_too() {
    let s = Signal::new(5, 20_000.0);
    let a = s.capture(EPOCH, RATE, 3.0, 0.0);
    let rate_b = RATE * (1.0 - 90e-6);
    let b = s.capture(EPOCH + 3_333, rate_b, 3.0, 61.25);
    check(
        &stereo(&a, EPOCH, RATE),
        &stereo(&b, EPOCH + 3_333, rate_b),
        61.25,
        4,
        "content to 20 kHz",
    );
}

#[test]
fn the_chosen_channel_is_compared() {
    let s = Signal::new(6, 16_000.0);
    let other = Signal::new(99, 16_000.0);
    let a = s.capture(EPOCH, RATE, 3.0, 0.0);
    // B: unrelated content on channel 0, the content (37.5 µs late) on channel 1.
    let mut b = s.capture(EPOCH, RATE, 3.0, 37.5);
    let noise = other.capture(EPOCH, RATE, 3.0, 0.0);
    for (i, v) in noise.iter().enumerate().step_by(2) {
        b[i] = *v;
    }
    let ca = stereo(&a, EPOCH, RATE);
    let mut cb = stereo(&b, EPOCH, RATE);
    cb.channel = 1;
    check(&ca, &cb, 37.5, 4, "channel 1");
    cb.channel = 0;
    match measure_skew(&ca, &cb, &MeterConfig::default()) {
        Err(MeterError::NoCorrelation { best_peak, .. }) => assert!(best_peak < 0.5),
        other => panic!("unrelated content must not give a skew: {other:?}"),
    }
}

#[test]
fn a_skew_beyond_the_search_range_is_not_reported() {
    let s = Signal::new(7, 16_000.0);
    let a = s.capture(EPOCH, RATE, 3.0, 0.0);
    let b = s.capture(EPOCH, RATE, 3.0, 8_000.0);
    let (ca, cb) = (stereo(&a, EPOCH, RATE), stereo(&b, EPOCH, RATE));
    let r = measure_skew(&ca, &cb, &MeterConfig::default());
    assert!(
        matches!(
            r,
            Err(MeterError::NoCorrelation { .. } | MeterError::OutOfRange { .. })
        ),
        "{r:?}"
    );
    // With the range widened, it is.
    let config = MeterConfig {
        max_skew_us: 10_000.0,
        ..MeterConfig::default()
    };
    let r = measure_skew(&ca, &cb, &config).unwrap();
    assert!(max_error(&r, 8_000.0) < 0.5, "{r:?}");

    // A peak right at the edge of the range: ±100 µs is ±5 lags (4.8 rounded up), the
    // edge is lag 6, and 129.17 µs is 6.2 samples.
    let narrow = MeterConfig {
        max_skew_us: 100.0,
        ..MeterConfig::default()
    };
    let b = s.capture(EPOCH, RATE, 3.0, 129.17);
    let r = measure_skew(&ca, &stereo(&b, EPOCH, RATE), &narrow);
    assert!(
        matches!(r, Err(MeterError::OutOfRange { windows: 5, .. })),
        "{r:?}"
    );
    // Within a sample beyond the range, it is still measured.
    let b = s.capture(EPOCH, RATE, 3.0, -110.0);
    let r = measure_skew(&ca, &stereo(&b, EPOCH, RATE), &narrow).unwrap();
    assert!(max_error(&r, -110.0) < 0.5, "{r:?}");
}

#[test]
fn a_silent_stretch_is_skipped_not_reported_as_skew() {
    let mut s = Signal::new(8, 16_000.0);
    // Silent from 2.0 s to 3.6 s (faded over 20 ms either side).
    s.silence = Some((2.0, 3.6));
    let a = s.capture(EPOCH, RATE, 6.0, 0.0);
    let b = s.capture(EPOCH, RATE, 6.0, 250.0);
    let report = measure_skew(
        &stereo(&a, EPOCH, RATE),
        &stereo(&b, EPOCH, RATE),
        &MeterConfig::default(),
    )
    .unwrap();
    // Windows start every 0.5 s from 0: those at 2.0, 2.5 and 3.0 s are silent.
    assert_eq!(report.skipped_quiet, 3, "{report:#?}");
    assert_eq!(report.skipped_weak + report.skipped_edge, 0);
    for w in &report.windows {
        let t = (w.t.as_nanos() - EPOCH) as f64 * 1e-9;
        assert!(
            !(1.99..3.49).contains(&t),
            "silent window at {t} s reported"
        );
    }
    assert_eq!(report.windows.len(), 8);
    let err = max_error(&report, 250.0);
    eprintln!("silent stretch: max |error| {err:.4} µs");
    assert!(err < 0.5);
}

#[test]
fn start_ns_and_hop_choose_the_windows() {
    let s = Signal::new(9, 16_000.0);
    let a = s.capture(EPOCH, RATE, 3.0, 0.0);
    let b = s.capture(EPOCH, RATE, 3.0, -5.0);
    let config = MeterConfig {
        window_s: 0.25,
        hop_s: 0.2,
        start: Some(TrueInstant::from_nanos(EPOCH + 1_000_000_000)),
        ..MeterConfig::default()
    };
    let r = measure_skew(&stereo(&a, EPOCH, RATE), &stereo(&b, EPOCH, RATE), &config).unwrap();
    let starts: Vec<i64> = r.windows.iter().map(|w| w.t.as_nanos() - EPOCH).collect();
    assert_eq!(starts[0], 1_000_000_000);
    for pair in starts.windows(2) {
        assert_eq!(pair[1] - pair[0], 200_000_000);
    }
    // The last window ends, with the search margin, inside the captures.
    assert!(*starts.last().unwrap() + 250_000_000 <= 3_000_000_000 - 5_000_000);
    assert!(starts.len() >= 8);
    assert!(max_error(&r, -5.0) < 0.5);
}

#[test]
fn percentiles_are_nearest_rank() {
    let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
    v.sort_by(f64::total_cmp);
    assert_eq!(percentile(&v, 0.50), 50.0);
    assert_eq!(percentile(&v, 0.99), 99.0);
    assert_eq!(percentile(&v, 1.0), 100.0);
    assert_eq!(percentile(&v, 0.0), 1.0);
    assert_eq!(percentile(&[3.0, 7.0, 9.0], 0.5), 7.0);
    assert_eq!(percentile(&[3.0, 7.0, 9.0], 0.99), 9.0);
    assert_eq!(percentile(&[4.5], 0.5), 4.5);
    assert!(percentile(&[], 0.5).is_nan());
}

#[test]
fn typed_errors() {
    let s = Signal::new(10, 16_000.0);
    let a = s.capture(EPOCH, RATE, 1.0, 0.0);
    let ca = stereo(&a, EPOCH, RATE);
    let config = MeterConfig::default();

    // No overlap: B starts after A ends.
    let late = EPOCH + 2_000_000_000;
    let r = measure_skew(&ca, &stereo(&a, late, RATE), &config);
    match r {
        Err(MeterError::NoOverlap { a_end, b_start, .. }) => {
            assert_eq!(a_end.as_nanos(), EPOCH + 1_000_000_000);
            assert_eq!(b_start.as_nanos(), late);
        }
        other => panic!("{other:?}"),
    }
    // Overlap of 0.4 s, shorter than a window.
    let r = measure_skew(&ca, &stereo(&a, EPOCH + 600_000_000, RATE), &config);
    assert!(matches!(r, Err(MeterError::TooShort { .. })), "{r:?}");
    // Zero-length capture.
    let r = measure_skew(&ca, &stereo(&[], EPOCH, RATE), &config);
    assert!(
        matches!(
            r,
            Err(MeterError::BadCapture {
                capture: "b",
                field: "samples",
                ..
            })
        ),
        "{r:?}"
    );
    // Channel out of range.
    let mut bad = ca;
    bad.channel = 2;
    let r = measure_skew(&bad, &ca, &config);
    assert!(
        matches!(
            r,
            Err(MeterError::BadCapture {
                capture: "a",
                field: "channel",
                ..
            })
        ),
        "{r:?}"
    );
    // Not whole frames, a bad rate, a non-finite sample.
    let r = measure_skew(&ca, &stereo(&a[..a.len() - 1], EPOCH, RATE), &config);
    assert!(matches!(
        r,
        Err(MeterError::BadCapture {
            field: "samples",
            ..
        })
    ));
    let r = measure_skew(&ca, &stereo(&a, EPOCH, 0.0), &config);
    assert!(matches!(
        r,
        Err(MeterError::BadCapture {
            field: "rate_hz",
            ..
        })
    ));
    let mut nan = a.clone();
    nan[1000] = f32::NAN;
    let r = measure_skew(&ca, &stereo(&nan, EPOCH, RATE), &config);
    assert!(matches!(
        r,
        Err(MeterError::BadCapture {
            field: "samples",
            ..
        })
    ));
    // A bad config.
    let r = measure_skew(
        &ca,
        &ca,
        &MeterConfig {
            hop_s: 0.0,
            ..config
        },
    );
    assert!(matches!(
        r,
        Err(MeterError::BadConfig { field: "hop_s", .. })
    ));
    // Silence everywhere.
    let silent = vec![0f32; a.len()];
    let r = measure_skew(&ca, &stereo(&silent, EPOCH, RATE), &config);
    assert!(
        matches!(r, Err(MeterError::NoSignal { windows: 1 })),
        "{r:?}"
    );
    // Errors say what is wrong.
    let msg = measure_skew(&bad, &ca, &config).unwrap_err().to_string();
    assert!(msg.contains("channel") && msg.contains('2'), "{msg}");
}

/// A fresh directory for this test's files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockstep-meter-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn wav_captures_with_sidecars_round_trip_and_measure() {
    let dir = temp_dir("sidecar");
    let s = Signal::new(11, 16_000.0);
    let a = s.capture(EPOCH, RATE, 3.0, 0.0);
    let (pa, pb) = (dir.join("a.wav"), dir.join("b.wav"));
    // The same samples, but B's sidecar says they left 100 µs later: skew +100 µs.
    write_capture_wav(&pa, &a, 2, 48_000, TrueInstant::from_nanos(EPOCH), RATE).unwrap();
    let rate_b = RATE * (1.0 + 0.5e-6);
    let b = s.capture(EPOCH + 1_000_000, rate_b, 3.0, 100.0);
    write_capture_wav(
        &pb,
        &b,
        2,
        48_000,
        TrueInstant::from_nanos(EPOCH + 1_000_000),
        rate_b,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(sidecar_path(&pb)).unwrap(),
        format!(
            "{{\"first_sample_ns\": {}, \"rate_hz\": {rate_b}}}\n",
            EPOCH + 1_000_000
        )
    );

    let la = load_capture_wav(&pa).unwrap();
    let lb = load_capture_wav(&pb).unwrap();
    assert_eq!(la.samples, a);
    assert_eq!(
        (la.channels, la.first.as_nanos(), la.rate_hz),
        (2, EPOCH, RATE)
    );
    assert_eq!(
        (lb.first.as_nanos(), lb.rate_hz),
        (EPOCH + 1_000_000, rate_b)
    );
    assert!(la.from_sidecar && lb.from_sidecar);
    assert_eq!(lb.nominal_rate_hz, 48_000);
    let r = measure_skew(&la.capture(0), &lb.capture(1), &MeterConfig::default()).unwrap();
    assert!((r.p50_us - 100.0).abs() < 0.5, "{r:?}");
    assert!(max_error(&r, 100.0) < 0.5);

    // Identical samples, sidecar offset only: the 100 µs is all timeline.
    let pc = dir.join("c.wav");
    write_capture_wav(
        &pc,
        &a,
        2,
        48_000,
        TrueInstant::from_nanos(EPOCH + 100_000),
        RATE,
    )
    .unwrap();
    let lc = load_capture_wav(&pc).unwrap();
    let r = measure_skew(&la.capture(0), &lc.capture(0), &MeterConfig::default()).unwrap();
    assert!(max_error(&r, 100.0) < 0.5, "{r:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn integer_wavs_without_sidecar_use_the_nominal_timeline() {
    let dir = temp_dir("int");
    let path = dir.join("int16.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for v in [0i16, 16_384, -32_768, 32_767] {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let c = load_capture_wav(&path).unwrap();
    assert_eq!(c.samples, vec![0.0, 0.5, -1.0, 32_767.0 / 32_768.0]);
    assert_eq!(
        (c.channels, c.first.as_nanos(), c.rate_hz),
        (1, 0, 44_100.0)
    );
    assert!(!c.from_sidecar);

    // A malformed sidecar is an error, not silently ignored.
    std::fs::write(sidecar_path(&path), "{\"first_sample_ns\": 5}").unwrap();
    let r = load_capture_wav(&path);
    assert!(matches!(r, Err(MeterError::SidecarFormat { .. })), "{r:?}");
    // A missing or non-WAV file names the file.
    let r = load_capture_wav(dir.join("missing.wav"));
    match r {
        Err(e @ MeterError::Wav { .. }) => assert!(e.to_string().contains("missing.wav")),
        other => panic!("{other:?}"),
    }
    let junk = dir.join("junk.wav");
    std::fs::write(&junk, b"not a wav file").unwrap();
    assert!(matches!(
        load_capture_wav(&junk),
        Err(MeterError::Wav { .. })
    ));
    // Writing rejects what cannot be a capture.
    let r = write_capture_wav(
        dir.join("x.wav"),
        &[0.0; 3],
        2,
        48_000,
        TrueInstant::from_nanos(0),
        48_000.0,
    );
    assert!(matches!(
        r,
        Err(MeterError::BadCapture {
            field: "samples",
            ..
        })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_wav_sink_writes_what_the_meter_reads() {
    use lockstep::measure::WavSink;
    let dir = temp_dir("sink");
    let path = dir.join("speaker.wav");
    let mut sink = WavSink::create(&path, 48_000, 2).unwrap();
    sink.set_rate_hz(48_007.2);
    let block: Vec<f32> = (0..960).map(|i| (i as f32 / 960.0) - 0.5).collect();
    sink.write(&block, TrueInstant::from_nanos(1_234_567_890))
        .unwrap();
    sink.write(&block, TrueInstant::from_nanos(1_244_567_890))
        .unwrap(); // only the first block's time is kept
    sink.finish().unwrap();
    let c = load_capture_wav(&path).unwrap();
    assert!(c.from_sidecar);
    assert_eq!((c.channels, c.nominal_rate_hz), (2, 48_000));
    assert_eq!(c.first.as_nanos(), 1_234_567_890);
    assert_eq!(c.rate_hz, 48_007.2);
    let mut both = block.clone();
    both.extend_from_slice(&block);
    assert_eq!(c.samples, both);
    // A file that cannot be created is an error that names it.
    let err = WavSink::create(&dir.join("no/such/dir.wav"), 48_000, 2).unwrap_err();
    assert!(err.to_string().contains("dir.wav"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
