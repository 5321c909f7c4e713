//! Sync-accuracy report: every clock estimator on the same simulated trace.
//!
//! ```text
//! cargo run --release --example sync_report -- --scenario wifi --seconds 600 --seed 1
//! ```
//!
//! Ground truth comes from the simulated clocks. Options override the preset's network and
//! clock so that you can model your own setup.

use std::process::ExitCode;

use clap::Parser;
use lockstep::sim::plot::{Series, log_plot_svg};
use lockstep::sim::sync::{SyncScenario, default_estimators, run_sync};
use lockstep::sim::{Jitter, LinkConfig, Loss, PathConfig};
use lockstep::time::Nanos;

/// Measures how well each clock estimator tracks the leader's clock in a simulated network.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Network preset: lan, wifi, congested_wifi or asymmetric.
    #[arg(long, default_value = "wifi")]
    scenario: String,
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
    /// Print JSON (one object per estimator) instead of a table.
    #[arg(long)]
    json: bool,
    /// Draw the error over time of every estimator into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
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

fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        eprintln!(
            "error: --seconds must be a positive number, got {}",
            args.seconds
        );
        return ExitCode::from(2);
    }
    let Some(mut scenario) = SyncScenario::preset(
        &args.scenario,
        args.seed,
        Nanos::from_secs_f64(args.seconds),
    ) else {
        eprintln!(
            "error: unknown scenario {:?}; choose one of {}",
            args.scenario,
            PathConfig::PRESETS.join(", ")
        );
        return ExitCode::from(2);
    };
    override_link(&mut scenario.path.to_follower, &args);
    override_link(&mut scenario.path.to_leader, &args);
    if let Some(ppm) = args.drift_ppm {
        let mut model = scenario.follower_model();
        model.drift_ppm = ppm;
        scenario.follower_clock = Some(model);
    }

    let report = match run_sync(&scenario, default_estimators()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: invalid scenario: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
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
