//! Sync-accuracy report: every clock estimator on the same simulated trace.
//!
//! ```text
//! cargo run --release --example sync_report -- --scenario wifi --seconds 600 --seed 1
//! ```
//!
//! Ground truth comes from the simulated clocks. Options override the preset's network and
//! clock so that you can model your own setup. `--seeds N` runs N seeds from `--seed` on and
//! prints each estimator's worst figures over them:
//!
//! ```text
//! cargo run --release --example sync_report -- --scenario wifi --seeds 100
//! ```
//!
//! A family of timed events (`--scenario roam`) runs each of its variants on `--network`; a
//! file of your own events (`--events FILE`, see [`lockstep::sim::scenario_file`]) runs
//! them on `--network`, named after the file:
//!
//! ```text
//! cargo run --release --example sync_report -- --scenario roam --seconds 600
//! cargo run --release --example sync_report -- --events examples/scenarios/roam_and_warmup.json
//! ```
//!
//! `--playout` runs the whole group instead (a stereo pair, a subwoofer and a speaker in
//! another room, each on its own drifting crystal) and reports the inter-speaker skew that
//! the sync meter measures from the emitted audio; families and `--events` files apply to
//! every follower alike, with per-event figures. The `soak` family is a day in a home drawn
//! from the seed, measured 10 s every 5 minutes, with figures and peak memory per hour:
//!
//! ```text
//! cargo run --release --example sync_report -- --playout --scenario wifi --seconds 600 --json
//! cargo run --release --example sync_report -- --playout --scenario roam --seconds 300
//! cargo run --release --example sync_report -- --playout --scenario soak --seconds 7200 --seed 1
//! ```

use std::process::ExitCode;

use clap::Parser;
use lockstep::measure::{Series, log_plot_svg, percentile};
use lockstep::playout::corrector::CorrectorKind;
use lockstep::sim::events::{Events, FAMILIES, family_seeded};
use lockstep::sim::playout::{PlayoutReport, PlayoutScenario, PlayoutSimError, run_playout};
use lockstep::sim::scenario_file::read_events;
use lockstep::sim::sync::{
    EstimatorResult, SyncReport, SyncScenario, default_estimators, run_sync,
};
use lockstep::sim::{Jitter, LinkConfig, Loss, PathConfig, SimConfigError};
use lockstep::time::Nanos;

#[path = "common/report.rs"]
mod report;
use report::out;

/// Measures how well each clock estimator tracks the leader's clock in a simulated network.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Network preset (lan, wifi, congested_wifi, asymmetric), or a family of timed events
    /// (roam, mesh_reroute, warmup, wander, asym_up, asym_down, microwave, outage_10s,
    /// outage_30s, leader_step, leader_restart, follower_restart, no_burst, soak), which runs
    /// each of its variants on `--network` [default: wifi].
    #[arg(long)]
    scenario: Option<String>,
    /// The network preset a family of events or an `--events` file runs on.
    #[arg(long, default_value = "wifi")]
    network: String,
    /// A scenario file of timed events (JSON; see `lockstep::sim::scenario_file`) to run on
    /// `--network`; the report names the scenario after the file.
    #[arg(long, value_name = "FILE.json")]
    events: Option<std::path::PathBuf>,
    /// Simulated seconds.
    #[arg(long, default_value_t = 600.0)]
    seconds: f64,
    /// Seed of every random draw (clocks and network).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Override the base one-way delay of both directions, µs.
    #[arg(long)]
    base_delay_us: Option<f64>,
    /// Override the jitter mean (exponential/normal) or median (Pareto), µs.
    #[arg(long)]
    jitter_mean_us: Option<f64>,
    /// Override the loss fraction of both directions (0..1; bursty presets stay bursty).
    #[arg(long)]
    loss: Option<f64>,
    /// Fix the follower's crystal drift, ppm (instead of drawing it from ±100 ppm).
    #[arg(long, allow_negative_numbers = true)]
    drift_ppm: Option<f64>,
    /// Run this many seeds, from `--seed` on, and print each estimator's worst figures
    /// over them, one table per variant of a family (with `--json`: every run's objects in
    /// one array).
    #[arg(long, value_name = "N")]
    seeds: Option<u64>,
    /// Print JSON (one object per estimator) instead of a table.
    #[arg(long)]
    json: bool,
    /// Draw the error over time of every estimator into this SVG file (with `--playout`:
    /// the worst inter-speaker skew over time).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
    /// Run the playout experiment: the standard group of four followers, skew measured
    /// from their emitted audio.
    #[arg(long)]
    playout: bool,
    /// With `--playout`: the drift corrector every follower uses (sinc, poly, slip,
    /// drop_dup).
    #[arg(long, default_value = "sinc", value_parser = parse_corrector)]
    corrector: CorrectorKind,
    /// With `--playout`: the leader's target latency in ms (default 100; 150 on
    /// congested_wifi).
    #[arg(long, allow_negative_numbers = true)]
    latency_ms: Option<f64>,
}

impl Args {
    /// The `--scenario` given, or the default network preset.
    fn scenario(&self) -> &str {
        self.scenario.as_deref().unwrap_or("wifi")
    }
}

/// What the sync experiment runs for each seed.
enum Plan {
    /// A network preset without events.
    Preset(String),
    /// Each variant of the named family on `--network` (the `soak` family drawn from each
    /// seed).
    Family(String),
    /// A file's events on `--network`, named after the file.
    File {
        /// The file's stem.
        name: String,
        /// Its events.
        events: Events,
    },
}

impl Plan {
    /// The plan the options ask for; a message and exit code 2 if they do not make one.
    fn from_args(args: &Args) -> Result<Plan, ExitCode> {
        let refuse = |message: String| {
            eprintln!("error: {message}");
            ExitCode::from(2)
        };
        let Some(path) = &args.events else {
            return Ok(if FAMILIES.contains(&args.scenario()) {
                Plan::Family(args.scenario().to_string())
            } else {
                Plan::Preset(args.scenario().to_string())
            });
        };
        // The file's events would replace a family's, and a preset given as --scenario would
        // be ignored for --network: either way the user meant something else.
        match args.scenario.as_deref() {
            Some(name) if FAMILIES.contains(&name) => {
                return Err(refuse(format!(
                    "--events and the family --scenario {name} cannot be combined: the file's \
                     events would replace the family's; give one of them"
                )));
            }
            Some(name) => {
                return Err(refuse(format!(
                    "--events runs on --network; give --network {name} instead of --scenario {name}"
                )));
            }
            None => {}
        }
        let events = read_events(path).map_err(|e| refuse(format!("{}: {e}", path.display())))?;
        let name = path
            .file_stem()
            .map_or("events".into(), |s| s.to_string_lossy().into_owned());
        Ok(Plan::File { name, events })
    }
}

fn parse_corrector(s: &str) -> Result<CorrectorKind, String> {
    CorrectorKind::parse(s)
        .ok_or_else(|| format!("unknown corrector {s:?}; choose one of sinc, poly, slip, drop_dup"))
}

fn override_link(link: &mut LinkConfig, args: &Args) {
    if let Some(us) = args.base_delay_us {
        link.base_delay = Nanos::from_secs_f64(us * 1e-6);
    }
    if let Some(us) = args.jitter_mean_us {
        let v = Nanos::from_secs_f64(us * 1e-6);
        link.jitter = match link.jitter {
            Jitter::None | Jitter::Exponential { .. } => Jitter::Exponential { mean: v },
            Jitter::Normal { mean, std } => Jitter::Normal {
                mean: v,
                std: if mean.as_nanos() > 0 {
                    std.mul_f64(v.as_nanos() as f64 / mean.as_nanos() as f64)
                } else {
                    std
                },
            },
            Jitter::Pareto { shape, .. } => Jitter::Pareto { shape, median: v },
        };
    }
    if let Some(p) = args.loss {
        link.loss = match link.loss {
            Loss::GilbertElliott { mean_burst, .. } => Loss::GilbertElliott {
                rate: p,
                mean_burst,
            },
            _ if p == 0.0 => Loss::None,
            _ => Loss::Random { p },
        };
    }
}

/// Builds the scenarios of the plan for `seed` and runs them.
fn run(args: &Args, plan: &Plan, seed: u64) -> Result<Vec<SyncReport>, ExitCode> {
    let duration = Nanos::from_secs_f64(args.seconds);
    let scenarios = match plan {
        Plan::Family(name) => family_seeded(name, seed, duration)
            .unwrap_or_default()
            .iter()
            .map(|v| SyncScenario::with_variant(&args.network, v, seed, duration))
            .collect::<Option<Vec<_>>>(),
        Plan::Preset(name) => SyncScenario::preset(name, seed, duration).map(|s| vec![s]),
        Plan::File { name, events } => {
            SyncScenario::preset(&args.network, seed, duration).map(|mut s| {
                s.name = name.clone();
                s.events = events.clone();
                vec![s]
            })
        }
    }
    .ok_or(ExitCode::from(2))?;
    let runs = scenarios.into_iter().map(|s| run_one(args, s));
    those_that_ran(runs.collect::<Result<_, _>>()?, &args.network)
}

/// The reports of the runs that were not left out (see [`left_out`]); an error if none.
fn those_that_ran<T>(runs: Vec<Option<T>>, network: &str) -> Result<Vec<T>, ExitCode> {
    let ran: Vec<T> = runs.into_iter().flatten().collect();
    if ran.is_empty() {
        eprintln!("error: no variant can run on {network}");
        return Err(ExitCode::from(2));
    }
    Ok(ran)
}

/// Says on stderr that `name` is left out because `network` cannot have its path, if that
/// is why it failed: a family's other variants still run (a −2.5 ms roam on a LAN of
/// 150 µs is not a path, the +2.5 ms one is).
fn left_out(name: &str, network: &str, e: &SimConfigError) -> bool {
    if let SimConfigError::PathBelowZero { .. } = e {
        eprintln!("note: {name} is left out: {network} cannot have its path ({e})");
        true
    } else {
        false
    }
}

fn run_one(args: &Args, mut scenario: SyncScenario) -> Result<Option<SyncReport>, ExitCode> {
    override_link(&mut scenario.path.to_follower, args);
    override_link(&mut scenario.path.to_leader, args);
    if let Some(ppm) = args.drift_ppm {
        let mut model = scenario.follower_model();
        model.drift_ppm = ppm;
        scenario.follower_clock = Some(model);
    }
    match run_sync(&scenario, default_estimators()) {
        Ok(r) => Ok(Some(r)),
        Err(e) if left_out(&scenario.name, &args.network, &e) => Ok(None),
        Err(e) => {
            eprintln!("error: invalid scenario {}: {e}", scenario.name);
            Err(ExitCode::from(2))
        }
    }
}

/// Builds the playout scenarios of the plan for `seed` (one per variant of a family) and
/// runs them, in the way [`run`] does for the sync experiment.
fn run_group(args: &Args, plan: &Plan, seed: u64) -> Result<Vec<PlayoutReport>, ExitCode> {
    let duration = Nanos::from_secs_f64(args.seconds);
    let scenarios = match plan {
        Plan::Family(name) => family_seeded(name, seed, duration)
            .unwrap_or_default()
            .iter()
            .map(|v| PlayoutScenario::with_variant(&args.network, v, seed, duration))
            .collect::<Option<Vec<_>>>(),
        Plan::Preset(name) => PlayoutScenario::preset(name, seed, duration).map(|s| vec![s]),
        Plan::File { name, events } => {
            PlayoutScenario::preset(&args.network, seed, duration).map(|mut s| {
                s.name = format!("{name}@{}", args.network);
                s.events = events.clone();
                vec![s]
            })
        }
    }
    .ok_or(ExitCode::from(2))?;
    let runs = scenarios.into_iter().map(|s| run_group_one(args, s));
    those_that_ran(runs.collect::<Result<_, _>>()?, &args.network)
}

fn run_group_one(
    args: &Args,
    mut scenario: PlayoutScenario,
) -> Result<Option<PlayoutReport>, ExitCode> {
    override_link(&mut scenario.path.to_follower, args);
    override_link(&mut scenario.path.to_leader, args);
    if let Some(ppm) = args.drift_ppm {
        for s in &mut scenario.speakers {
            s.drift_ppm = ppm;
        }
    }
    if let Some(ms) = args.latency_ms {
        scenario.latency = Nanos::from_secs_f64(ms * 1e-3);
    }
    scenario.corrector = args.corrector;
    match run_playout(&scenario) {
        Ok(r) => Ok(Some(r)),
        Err(PlayoutSimError::Sim(e)) if left_out(&scenario.name, &args.network, &e) => Ok(None),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// The playout experiment's part of `main`.
fn main_playout(args: &Args, plan: &Plan) -> ExitCode {
    if args.seconds < 10.0 {
        eprintln!("error: --playout needs --seconds of at least 10 (skew is measured from 5 s on)");
        return ExitCode::from(2);
    }
    if let Some(ms) = args.latency_ms
        && !(ms > 0.0 && ms <= 5_000.0)
    {
        eprintln!("error: --latency-ms must be above 0 and at most 5000, got {ms}");
        return ExitCode::from(2);
    }
    let first = args.seed;
    let count = args.seeds.unwrap_or(1);
    let mut reports = Vec::new();
    for seed in first..first.saturating_add(count) {
        match run_group(args, plan, seed) {
            Ok(rs) => {
                for r in rs {
                    if args.json {
                        out(&format!("{}\n", r.to_json()));
                    } else {
                        out(&r.to_table());
                    }
                    reports.push(r);
                }
            }
            Err(code) => return code,
        }
    }
    if let Some(path) = &args.plot {
        let report = &reports[0];
        let points: Vec<(f64, f64)> = report.series.clone();
        let series = [Series {
            name: "worst pair |skew|",
            points: &points,
        }];
        let title = format!(
            "inter-speaker |skew| from the audio — {} seed {} ({})",
            report.scenario,
            report.seed,
            report.corrector.name()
        );
        let svg = log_plot_svg(&title, "seconds", "|skew| µs", 0.01, 1e4, &series);
        if let Err(e) = std::fs::write(path, svg) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// One worst-table per scenario (a family's variants apart, in the order they ran).
fn worst_tables(reports: &[SyncReport]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in reports {
        if !names.contains(&r.scenario.as_str()) {
            names.push(&r.scenario);
        }
    }
    names
        .iter()
        .map(|name| {
            let runs: Vec<&SyncReport> = reports.iter().filter(|r| r.scenario == *name).collect();
            worst_table(&runs)
        })
        .collect()
}

/// Each estimator's median and worst p99, worst max and worst convergence times over the
/// runs of one scenario ("never" if any run never settled within the bound), and the worst
/// of its honesty figures: the lowest coverage by the stated uncertainty, the longest
/// stretch beyond four times it, and the worst p99 away from events.
fn worst_table(reports: &[&SyncReport]) -> String {
    use std::fmt::Write;
    let first = reports[0];
    let mut out = format!(
        "scenario {}  seeds {}..={}  {:.0} s simulated each\n",
        first.scenario,
        first.seed,
        reports[reports.len() - 1].seed,
        first.seconds
    );
    let _ = writeln!(
        out,
        "{:<10} {:>12} {:>12} {:>12} {:>14} {:>14} {:>13} {:>12} {:>12}",
        "estimator",
        "p99 med µs",
        "p99 worst",
        "max worst",
        "≤100µs worst s",
        "≤20µs worst s",
        "covered % min",
        "4×unc max s",
        "p99 out µs"
    );
    for (i, r) in first.results.iter().enumerate() {
        let all: Vec<&EstimatorResult> = reports.iter().map(|rep| &rep.results[i]).collect();
        let mut p99: Vec<f64> = all.iter().map(|e| e.p99_us).collect();
        p99.sort_by(f64::total_cmp);
        let max_of =
            |f: fn(&EstimatorResult) -> f64| all.iter().map(|e| f(e)).fold(f64::NAN, f64::max);
        let worst = |f: fn(&EstimatorResult) -> Option<f64>| {
            let mut w = Some(0.0f64);
            for e in &all {
                w = match (w, f(e)) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            w.map_or("never".to_string(), |v| format!("{v:.2}"))
        };
        let covered = all
            .iter()
            .map(|e| e.within_uncertainty)
            .fold(f64::NAN, f64::min);
        let _ = writeln!(
            out,
            "{:<10} {:>12.2} {:>12.2} {:>12.2} {:>14} {:>14} {:>13.1} {:>12.2} {:>12.2}",
            r.estimator,
            percentile(&p99, 0.5),
            p99[p99.len() - 1],
            max_of(|e| e.max_us),
            worst(|e| e.converge_100us_s),
            worst(|e| e.converge_20us_s),
            100.0 * covered,
            max_of(|e| e.honesty.beyond_4x_max_s),
            max_of(|e| e.p99_outside_events_us),
        );
    }
    out
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        eprintln!(
            "error: --seconds must be a positive number, got {}",
            args.seconds
        );
        return ExitCode::from(2);
    }
    if args.seeds == Some(0) {
        eprintln!("error: --seeds must be at least 1");
        return ExitCode::from(2);
    }
    let is_family = FAMILIES.contains(&args.scenario());
    if !PathConfig::PRESETS.contains(&args.scenario()) && !is_family {
        eprintln!(
            "error: unknown scenario {:?}; choose one of {} (or a family: {})",
            args.scenario(),
            PathConfig::PRESETS.join(", "),
            FAMILIES.join(", ")
        );
        return ExitCode::from(2);
    }
    if !PathConfig::PRESETS.contains(&args.network.as_str()) {
        eprintln!(
            "error: unknown network {:?}; choose one of {}",
            args.network,
            PathConfig::PRESETS.join(", ")
        );
        return ExitCode::from(2);
    }
    let plan = match Plan::from_args(&args) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    if args.playout {
        return main_playout(&args, &plan);
    }
    if let Some(n) = args.seeds {
        let mut reports = Vec::new();
        for seed in args.seed..args.seed.saturating_add(n) {
            match run(&args, &plan, seed) {
                Ok(r) => reports.extend(r),
                Err(code) => return code,
            }
        }
        if args.json {
            let all: Vec<String> = reports
                .iter()
                .map(|r| {
                    r.to_json()
                        .trim()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .trim()
                        .to_string()
                })
                .collect();
            out(&format!("[{}]\n", all.join(",\n")));
        } else {
            out(&worst_tables(&reports));
        }
        return ExitCode::SUCCESS;
    }
    let reports = match run(&args, &plan, args.seed) {
        Ok(r) => r,
        Err(code) => return code,
    };
    for report in &reports {
        if args.json {
            out(&format!("{}\n", report.to_json()));
        } else {
            out(&report.to_table());
        }
    }
    let report = &reports[0];
    if let Some(path) = &args.plot {
        let series: Vec<Series<'_>> = report
            .results
            .iter()
            .map(|r| Series {
                name: r.estimator,
                points: &r.series,
            })
            .collect();
        let title = format!(
            "|offset error| — {} seed {} ({:.0} s)",
            report.scenario, report.seed, report.seconds
        );
        let svg = log_plot_svg(&title, "seconds", "|error| µs", 0.01, 1e6, &series);
        if let Err(e) = std::fs::write(path, svg) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
