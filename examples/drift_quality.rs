//! Drift-correction quality: how much each corrector distorts a pure tone while it steers a
//! drifting DAC.
//!
//! ```text
//! cargo run --release --example drift_quality -- --json
//! ```
//!
//! For each corrector (`sinc`, `poly`, `slip`, `drop_dup`) and each tone (1 kHz and 15 kHz
//! at −1 dBFS), the whole follower runs in the simulator: PTP over the chosen network preset
//! (Wi-Fi by default, without packet loss so that concealment does not count against the
//! corrector), the clock estimator, the RTP receiver (L24) and the playout servo, on two
//! followers whose crystals run at +150 and −150 ppm. So the ratio the corrector gets is the
//! servo's, varying as it does in real use, not a constant.
//!
//! Each follower's DAC output is cut into 100 ms windows from `--skip` seconds on (35 s by
//! default: the servo starts fast and glides to its steady, smoother bandwidth over 30 s;
//! `--skip 1` measures the glide too, from the first second on); in each a sinusoid with a
//! smoothly wandering phase is fitted ([`lockstep::playout::thdn`]: the servo's changing
//! ratio is timing, not distortion) and THD+N is residual over total energy. The worst
//! window is reported, with the true time at which it starts, and the median.

use std::process::ExitCode;

use clap::Parser;
use lockstep::playout::corrector::CorrectorKind;
use lockstep::playout::thdn::thdn_windows;
use lockstep::sim::playout::{PlayoutScenario, Role, SpeakerSpec, TestSignal, run_group};
use lockstep::sim::sync::{json_num, json_str};
use lockstep::sim::{Loss, PathConfig};
use lockstep::time::Nanos;

/// Measures the worst-window THD+N of a tone through each drift corrector, steered by the
/// playout servo on a drifting simulated DAC.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Print a JSON array of {corrector, ppm, freq_hz, thdn_db, worst_at_s, median_thdn_db,
    /// windows} objects.
    #[arg(long)]
    json: bool,
    /// Network preset for the clock and media (lan, wifi, congested_wifi, asymmetric);
    /// its packet loss is removed.
    #[arg(long, default_value = "wifi")]
    scenario: String,
    /// Simulated seconds per run.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Seconds at the start left out of the measurement: by default the servo's lock-in,
    /// its 30 s glide from a fast start to its steady, smooth bandwidth, and 5 s more.
    #[arg(long, default_value_t = 35.0)]
    skip: f64,
    /// Crystal drift, ppm: one follower runs at +ppm, the other at −ppm.
    #[arg(long, default_value_t = 150.0)]
    ppm: f64,
    /// Only these correctors (comma-separated).
    #[arg(long, value_delimiter = ',')]
    correctors: Option<Vec<String>>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const RATE: f64 = 48_000.0;
const WINDOW_S: f64 = 0.1;

/// One measured combination.
struct Row {
    corrector: CorrectorKind,
    ppm: f64,
    freq_hz: f64,
    worst_db: f64,
    /// True time at which the worst window starts, s.
    worst_at_s: f64,
    median_db: f64,
    windows: usize,
}

fn run(args: &Args, kind: CorrectorKind, freq_hz: f64) -> Result<Vec<Row>, String> {
    let mut s = PlayoutScenario::preset(
        &args.scenario,
        args.seed,
        Nanos::from_secs_f64(args.seconds),
    )
    .ok_or_else(|| format!("unknown scenario {:?}", args.scenario))?;
    s.path.to_follower.loss = Loss::None;
    s.path.to_leader.loss = Loss::None;
    // Room for every delay spike of the preset: a late packet would be concealed, and the
    // concealment, not the corrector, would set the worst window.
    s.latency = Nanos::from_millis(250);
    s.corrector = kind;
    s.measure_from = Nanos::from_secs_f64(args.skip);
    s.signal = TestSignal::Sine {
        freq_hz,
        amplitude: 10f64.powf(-1.0 / 20.0),
    };
    s.speakers = [args.ppm, -args.ppm]
        .iter()
        .map(|&ppm| SpeakerSpec {
            name: format!("{ppm:+} ppm"),
            role: Role::Full,
            drift_ppm: ppm,
        })
        .collect();
    let group = run_group(&s).map_err(|e| e.to_string())?;
    let from = s.measure_from.as_nanos();
    let to = s.duration.as_nanos() - 100_000_000;
    let mut rows = Vec::new();
    for sp in &group.speakers {
        let capture = sp
            .capture(from, to)
            .ok_or_else(|| format!("{}: nothing recorded after {} s", sp.result.name, args.skip))?;
        let mut db = thdn_windows(capture.samples, RATE, freq_hz, WINDOW_S, 0.0);
        if db.is_empty() || db.iter().any(|d| d.is_nan()) {
            return Err(format!("{}: the tone could not be fitted", sp.result.name));
        }
        let worst_index = (0..db.len())
            .max_by(|&i, &j| db[i].total_cmp(&db[j]))
            .expect("not empty");
        // A window is 4800 frames; they leave at the DAC's true rate, not at 48 kHz.
        let frames = (WINDOW_S * RATE).round();
        let worst_at_s =
            capture.first_ns as f64 * 1e-9 + worst_index as f64 * frames / capture.rate_hz;
        db.sort_by(f64::total_cmp);
        rows.push(Row {
            corrector: kind,
            ppm: sp.result.drift_ppm,
            freq_hz,
            worst_db: db[db.len() - 1],
            worst_at_s,
            median_db: db[db.len() / 2],
            windows: db.len(),
        });
        if sp.result.underruns > 0 || sp.result.late_packets > 0 {
            eprintln!(
                "warning: {} {}: {} underruns, {} late packets",
                kind.name(),
                sp.result.name,
                sp.result.underruns,
                sp.result.late_packets
            );
        }
    }
    Ok(rows)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !PathConfig::PRESETS.contains(&args.scenario.as_str()) {
        eprintln!(
            "error: unknown scenario {:?}; choose one of {}",
            args.scenario,
            PathConfig::PRESETS.join(", ")
        );
        return ExitCode::from(2);
    }
    if !(args.skip >= 0.0 && args.seconds >= args.skip + 1.0 && args.seconds.is_finite()) {
        eprintln!("error: --seconds must be at least --skip + 1");
        return ExitCode::from(2);
    }
    if !(args.ppm.is_finite() && args.ppm.abs() <= 900.0) {
        eprintln!("error: --ppm must be within ±900 (the servo corrects up to ±1000 ppm)");
        return ExitCode::from(2);
    }
    let kinds = match &args.correctors {
        None => CorrectorKind::ALL.to_vec(),
        Some(names) => {
            let mut kinds = Vec::new();
            for n in names {
                match CorrectorKind::parse(n) {
                    Some(k) => kinds.push(k),
                    None => {
                        eprintln!(
                            "error: unknown corrector {n:?}; choose from sinc, poly, slip, drop_dup"
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            kinds
        }
    };
    let mut rows = Vec::new();
    for &kind in &kinds {
        for freq in [1_000.0, 15_000.0] {
            match run(&args, kind, freq) {
                Ok(r) => rows.extend(r),
                Err(e) => {
                    eprintln!("error: {} at {freq} Hz: {e}", kind.name());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if args.json {
        let objs: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"corrector\": {}, \"ppm\": {}, \"freq_hz\": {}, \"thdn_db\": {}, \
                     \"worst_at_s\": {}, \"median_thdn_db\": {}, \"windows\": {}}}",
                    json_str(r.corrector.name()),
                    json_num(r.ppm),
                    json_num(r.freq_hz),
                    json_num(r.worst_db),
                    json_num(r.worst_at_s),
                    json_num(r.median_db),
                    r.windows
                )
            })
            .collect();
        println!("[\n  {}\n]", objs.join(",\n  "));
    } else {
        println!(
            "THD+N of a −1 dBFS tone, 100 ms windows, {} ({} s, from {} s on), seed {}",
            args.scenario, args.seconds, args.skip, args.seed
        );
        println!(
            "{:<10} {:>8} {:>8} {:>12} {:>8} {:>12} {:>8}",
            "corrector", "ppm", "Hz", "worst dB", "at s", "median dB", "windows"
        );
        for r in &rows {
            println!(
                "{:<10} {:>+8.0} {:>8.0} {:>12.1} {:>8.2} {:>12.1} {:>8}",
                r.corrector.name(),
                r.ppm,
                r.freq_hz,
                r.worst_db,
                r.worst_at_s,
                r.median_db,
                r.windows
            );
        }
    }
    ExitCode::SUCCESS
}
