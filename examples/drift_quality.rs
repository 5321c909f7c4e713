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
//! smoothly wandering phase is fitted ([`lockstep::measure::thdn`]: the servo's changing
//! ratio is timing, not distortion) and THD+N is residual over total energy. The worst
//! window is reported, with the true time at which it starts, and the median.
//!
//! `--family NAME` runs each variant of a family of timed events (`roam`, `warmup`,
//! `leader_step`, …; see [`lockstep::sim::events::family`]) on the preset, so that the
//! corrector is heard riding the clock estimate's corrections and re-locks. Windows within
//! 0.5 s of a block at which a speaker's audio was not the leader's played through (a
//! counted re-align's fades, an underrun, a stop, concealed audio: see
//! [`SpeakerRun::disrupted_at`](lockstep::sim::playout::SpeakerRun::disrupted_at)) are left
//! out and counted. `--events FILE` does the same for a scenario file of your own (see
//! [`lockstep::sim::scenario_file`]).

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Parser;
use lockstep::measure::thdn_windows;
use lockstep::playout::corrector::CorrectorKind;
use lockstep::sim::events::{FAMILIES, Variant, family};
use lockstep::sim::playout::{PlayoutScenario, Role, SpeakerSpec, TestSignal, run_group};
use lockstep::sim::scenario_file::read_events;
use lockstep::sim::sync::{json_num, json_str};
use lockstep::sim::{Loss, PathConfig};
use lockstep::time::{Nanos, TrueInstant};

#[path = "common/report.rs"]
mod report;
use report::out;

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
    /// A family of timed events to run on the preset, each of its variants in turn (roam,
    /// warmup, leader_step, …); windows near a speaker's fades or concealed audio are
    /// left out. Most families' events come at 200 s: give `--seconds` past that.
    #[arg(long, conflicts_with = "events")]
    family: Option<String>,
    /// A scenario file of timed events (JSON; see `lockstep::sim::scenario_file`) to run on
    /// the preset, measured as a family's variant is.
    #[arg(long)]
    events: Option<std::path::PathBuf>,
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

/// Seconds either side of a disrupted block within which a window is left out.
const DISRUPTION_MARGIN_S: f64 = 0.5;

/// One measured combination.
struct Row {
    /// The family's variant, or the preset.
    scenario: String,
    corrector: CorrectorKind,
    ppm: f64,
    freq_hz: f64,
    worst_db: f64,
    /// True time at which the worst window starts, s.
    worst_at_s: f64,
    median_db: f64,
    windows: usize,
    /// Windows left out near disruptions.
    excluded: usize,
}

fn run(
    args: &Args,
    variant: Option<&Variant>,
    kind: CorrectorKind,
    freq_hz: f64,
) -> Result<Vec<Row>, String> {
    let duration = Nanos::from_secs_f64(args.seconds);
    let mut s = match variant {
        Some(v) => PlayoutScenario::with_variant(&args.scenario, v, args.seed, duration),
        None => PlayoutScenario::preset(&args.scenario, args.seed, duration),
    }
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
            sink: None,
            name: format!("{ppm:+} ppm"),
            role: Role::Full,
            drift_ppm: ppm,
        })
        .collect();
    let group = run_group(&s).map_err(|e| e.to_string())?;
    let from = TrueInstant::from_nanos(s.measure_from.as_nanos());
    let to = TrueInstant::from_nanos(s.duration.as_nanos() - 100_000_000);
    let mut rows = Vec::new();
    for sp in &group.speakers {
        let capture = sp
            .capture(from, to)
            .ok_or_else(|| format!("{}: nothing recorded after {} s", sp.result.name, args.skip))?;
        let all = thdn_windows(capture.samples, RATE, freq_hz, WINDOW_S, 0.0);
        if all.is_empty() {
            return Err(format!("{}: no window recorded", sp.result.name));
        }
        // A window is 4800 frames; they leave at the DAC's true rate, not at 48 kHz.
        let frames = (WINDOW_S * RATE).round();
        let start_s =
            |i: usize| capture.first.as_nanos() as f64 * 1e-9 + i as f64 * frames / capture.rate_hz;
        let disrupted = |i: usize| {
            let (a, b) = (
                start_s(i) - DISRUPTION_MARGIN_S,
                start_s(i) + WINDOW_S + DISRUPTION_MARGIN_S,
            );
            let first = sp
                .disrupted_at
                .partition_point(|&t| (t.as_nanos() as f64 * 1e-9) < a);
            sp.disrupted_at
                .get(first)
                .is_some_and(|&t| (t.as_nanos() as f64 * 1e-9) <= b)
        };
        let kept: Vec<(usize, f64)> = all
            .iter()
            .copied()
            .enumerate()
            .filter(|&(i, _)| !disrupted(i))
            .collect();
        // (A window of a fade's silence has no tone to fit; anywhere else that is a fault.)
        if let Some(&(i, _)) = kept.iter().find(|k| k.1.is_nan()) {
            return Err(format!(
                "{}: the tone could not be fitted in the window at {:.2} s",
                sp.result.name,
                start_s(i)
            ));
        }
        let excluded = all.len() - kept.len();
        let Some(&(worst_index, _)) = kept.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
            return Err(format!(
                "{}: every window is near a disruption",
                sp.result.name
            ));
        };
        let worst_at_s = start_s(worst_index);
        let mut db: Vec<f64> = kept.iter().map(|k| k.1).collect();
        db.sort_by(f64::total_cmp);
        rows.push(Row {
            scenario: variant.map_or_else(|| args.scenario.clone(), |v| v.name.clone()),
            corrector: kind,
            ppm: sp.result.drift_ppm,
            freq_hz,
            worst_db: db[db.len() - 1],
            worst_at_s,
            median_db: db[db.len() / 2],
            windows: db.len(),
            excluded,
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
    let variants: Vec<Option<Variant>> = match &args.family {
        None if args.events.is_some() => {
            let path = args.events.as_ref().expect("checked");
            match read_events(path) {
                Ok(events) => vec![Some(Variant {
                    name: path
                        .file_stem()
                        .map_or("events".into(), |s| s.to_string_lossy().into_owned()),
                    events,
                    start_burst: true,
                    longer_path: Nanos::ZERO,
                })],
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
        None => vec![None],
        Some(name) => match family(name) {
            Some(v) if name != "soak" && name != "no_burst" => v.into_iter().map(Some).collect(),
            _ => {
                eprintln!(
                    "error: unknown family {name:?}; choose one of {}",
                    FAMILIES
                        .iter()
                        .filter(|f| !matches!(**f, "soak" | "no_burst"))
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return ExitCode::from(2);
            }
        },
    };
    let mut rows = Vec::new();
    for variant in &variants {
        for &kind in &kinds {
            for freq in [1_000.0, 15_000.0] {
                match run(&args, variant.as_ref(), kind, freq) {
                    Ok(r) => rows.extend(r),
                    Err(e) => {
                        eprintln!("error: {} at {freq} Hz: {e}", kind.name());
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    if args.json {
        let objs: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"scenario\": {}, \"corrector\": {}, \"ppm\": {}, \"freq_hz\": {}, \
                     \"thdn_db\": {}, \"worst_at_s\": {}, \"median_thdn_db\": {}, \
                     \"windows\": {}, \"excluded\": {}}}",
                    json_str(&r.scenario),
                    json_str(r.corrector.name()),
                    json_num(r.ppm),
                    json_num(r.freq_hz),
                    json_num(r.worst_db),
                    json_num(r.worst_at_s),
                    json_num(r.median_db),
                    r.windows,
                    r.excluded
                )
            })
            .collect();
        out(&format!("[\n  {}\n]\n", objs.join(",\n  ")));
    } else {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "THD+N of a −1 dBFS tone, 100 ms windows, {}{} ({} s, from {} s on), seed {}",
            args.scenario,
            match (&args.family, &args.events) {
                (Some(f), _) => format!(" with the {f} family"),
                (None, Some(path)) => format!(" with the events of {}", path.display()),
                (None, None) => String::new(),
            },
            args.seconds,
            args.skip,
            args.seed
        );
        let _ = writeln!(
            text,
            "{:<26} {:<10} {:>8} {:>8} {:>12} {:>8} {:>12} {:>8} {:>8}",
            "scenario",
            "corrector",
            "ppm",
            "Hz",
            "worst dB",
            "at s",
            "median dB",
            "windows",
            "excluded"
        );
        for r in &rows {
            let _ = writeln!(
                text,
                "{:<26} {:<10} {:>+8.0} {:>8.0} {:>12.1} {:>8.2} {:>12.1} {:>8} {:>8}",
                r.scenario,
                r.corrector.name(),
                r.ppm,
                r.freq_hz,
                r.worst_db,
                r.worst_at_s,
                r.median_db,
                r.windows,
                r.excluded
            );
        }
        out(&text);
    }
    ExitCode::SUCCESS
}
