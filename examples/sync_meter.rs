//! Sync meter: how far apart two speakers play, from recordings of their output.
//!
//! ```text
//! cargo run --release --example sync_meter -- a.wav b.wav [--json] [--window-s 0.5] [--channel 0]
//! ```
//!
//! Each WAV (integer PCM or 32-bit float) may have a sidecar `<file>.json` with its emission
//! timeline, `{"first_sample_ns": <i64>, "rate_hz": <f64>}`: the true time frame 0 left the
//! DAC and the true rate frames left at, as `WavSink` and
//! `lockstep::measure::write_capture_wav` write it. Without one, frame 0 is taken to
//! leave at 0 ns and frames at the WAV's nominal rate. The skew is B's emission time minus
//! A's for the same content: positive means B plays later.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use lockstep::measure::{MeterConfig, OwnedCapture, SkewReport, load_capture_wav, measure_skew};

#[path = "common/report.rs"]
mod report;
use report::out;

/// Measures, window by window, how much later speaker B emits the same audio than speaker A.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Recording of speaker A (the reference).
    a: PathBuf,
    /// Recording of speaker B.
    b: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Window length, s.
    #[arg(long, default_value_t = 0.5)]
    window_s: f64,
    /// Distance between window starts, s (default: the window length).
    #[arg(long)]
    hop_s: Option<f64>,
    /// Channel compared, in both files (0-based).
    #[arg(long, default_value_t = 0)]
    channel: usize,
    /// Channel of B compared, if not the same as A's.
    #[arg(long)]
    channel_b: Option<usize>,
    /// The skew is searched within ±this, µs.
    #[arg(long, default_value_t = 5000.0)]
    max_skew_us: f64,
    /// Skip windows quieter than this RMS (full scale = 1).
    #[arg(long, default_value_t = 1e-3)]
    min_rms: f32,
    /// Ignore audio emitted before this true time, ns.
    #[arg(long, allow_negative_numbers = true)]
    start_ns: Option<i64>,
}

fn load(path: &Path) -> Result<OwnedCapture, String> {
    let c = load_capture_wav(path).map_err(|e| e.to_string())?;
    if !c.from_sidecar {
        eprintln!(
            "note: no sidecar {}.json: assuming frame 0 at 0 ns and {} Hz",
            path.display(),
            c.nominal_rate_hz
        );
    }
    Ok(c)
}

fn json(report: &SkewReport, args: &Args) -> serde_json::Value {
    let windows: Vec<serde_json::Value> = report
        .windows
        .iter()
        .map(
            |w| serde_json::json!({ "t_ns": w.t.as_nanos(), "skew_us": w.skew_us, "peak": w.peak }),
        )
        .collect();
    serde_json::json!({
        "a": args.a.display().to_string(),
        "b": args.b.display().to_string(),
        "skew_p50_us": report.p50_us,
        "skew_p99_us": report.p99_us,
        "skew_max_us": report.max_us,
        "skew_mean_us": report.mean_us,
        "skipped_quiet": report.skipped_quiet,
        "skipped_weak": report.skipped_weak,
        "skipped_edge": report.skipped_edge,
        "windows": windows,
    })
}

fn run(args: &Args) -> Result<(), String> {
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let config = MeterConfig {
        window_s: args.window_s,
        hop_s: args.hop_s.unwrap_or(args.window_s),
        max_skew_us: args.max_skew_us,
        start: args.start_ns.map(lockstep::time::TrueInstant::from_nanos),
        min_rms: args.min_rms,
    };
    let report = measure_skew(
        &a.capture(args.channel),
        &b.capture(args.channel_b.unwrap_or(args.channel)),
        &config,
    )
    .map_err(|e| e.to_string())?;

    if args.json {
        let text = serde_json::to_string_pretty(&json(&report, args)).map_err(|e| e.to_string())?;
        out(&format!("{text}\n"));
        return Ok(());
    }
    let t0 = report.windows.first().map_or(0, |w| w.t.as_nanos());
    let mut text = String::new();
    let _ = writeln!(text, "{:>10}  {:>12}  {:>8}", "t (s)", "skew (µs)", "peak");
    for w in &report.windows {
        let _ = writeln!(
            text,
            "{:>10.3}  {:>12.3}  {:>8.4}",
            (w.t.as_nanos() - t0) as f64 * 1e-9,
            w.skew_us,
            w.peak
        );
    }
    let _ = writeln!(
        text,
        "\n{} windows (t = 0 at {} ns); skipped: {} quiet, {} without common content, \
         {} at the edge of ±{} µs",
        report.windows.len(),
        t0,
        report.skipped_quiet,
        report.skipped_weak,
        report.skipped_edge,
        args.max_skew_us
    );
    let _ = writeln!(
        text,
        "|skew| p50 {:.3} µs, p99 {:.3} µs, max {:.3} µs; mean skew {:+.3} µs (positive: B later)",
        report.p50_us, report.p99_us, report.max_us, report.mean_us
    );
    out(&text);
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
