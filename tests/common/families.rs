//! Runs a family of timed events through the sync experiment on the Wi-Fi preset.

// Each test file uses a part of these helpers.
#![allow(dead_code)]

use lockstep::clock::{ClockEstimator, EnvelopeEstimator};
use lockstep::sim::events::family;
use lockstep::sim::sync::{EstimatorResult, SyncScenario, default_estimators, run_sync};
use lockstep::sim::{EventResult, SimConfigError};
use lockstep::time::Nanos;

/// Each variant of `name` on wifi for 600 s with `seed`: its name and lockstep's result.
pub fn run(name: &str, seed: u64) -> Vec<(String, EstimatorResult)> {
    run_on("wifi", name, seed)
}

/// As [`run`], on the network preset `network`.
pub fn run_on(network: &str, name: &str, seed: u64) -> Vec<(String, EstimatorResult)> {
    family(name)
        .expect("known family")
        .iter()
        .map(|v| {
            let s = SyncScenario::with_variant(network, v, seed, Nanos::from_secs(600))
                .expect("network preset");
            (v.name.clone(), run_lockstep(&s))
        })
        .collect()
}

/// As [`run_on`], for the variants `network` can have the path of, and the names of those
/// it refuses (a path step down by more than its base delay: a LAN's is 150 µs).
pub fn run_on_possible(
    network: &str,
    name: &str,
    seed: u64,
) -> (Vec<(String, EstimatorResult)>, Vec<String>) {
    let (mut ran, mut refused) = (Vec::new(), Vec::new());
    for v in family(name).expect("known family") {
        let s = SyncScenario::with_variant(network, &v, seed, Nanos::from_secs(600))
            .expect("network preset");
        // (lockstep's estimator alone: the baselines are slow, and no check here is theirs.)
        match try_lockstep(&s, vec![Box::new(EnvelopeEstimator::default())]) {
            Ok(r) => ran.push((v.name.clone(), r)),
            Err(SimConfigError::PathBelowZero { .. }) => refused.push(v.name.clone()),
            Err(e) => panic!("{}: {e}", v.name),
        }
    }
    (ran, refused)
}

/// Runs `scenario` and gives lockstep's result.
pub fn run_lockstep(scenario: &SyncScenario) -> EstimatorResult {
    try_lockstep(scenario, default_estimators()).expect("valid scenario")
}

/// Runs `scenario` with lockstep's estimator alone (the baselines are slow) and gives its
/// result.
pub fn run_lockstep_alone(scenario: &SyncScenario) -> EstimatorResult {
    try_lockstep(scenario, vec![Box::new(EnvelopeEstimator::default())]).expect("valid scenario")
}

/// Runs `scenario` with `estimators` (lockstep's among them) and gives lockstep's result, or
/// why the scenario cannot run.
fn try_lockstep(
    scenario: &SyncScenario,
    estimators: Vec<Box<dyn ClockEstimator>>,
) -> Result<EstimatorResult, SimConfigError> {
    Ok(run_sync(scenario, estimators)?
        .results
        .into_iter()
        .find(|e| e.estimator == "lockstep")
        .expect("lockstep in the report"))
}

/// The event whose label starts with `prefix`.
pub fn event<'a>(r: &'a EstimatorResult, prefix: &str) -> &'a EventResult {
    r.events
        .iter()
        .find(|e| e.label.starts_with(prefix))
        .unwrap_or_else(|| panic!("no event {prefix} in {:?}", r.events))
}

/// The honesty every scenario owes: the uncertainty covers the truth in ≥ 90 % of samples
/// and the error never stays beyond four times it for more than a second.
pub fn assert_honest(name: &str, seed: u64, r: &EstimatorResult) {
    assert!(
        r.within_uncertainty >= 0.90,
        "{name} seed {seed}: uncertainty covers only {:.1} %",
        100.0 * r.within_uncertainty
    );
    assert!(
        r.honesty.beyond_4x_max_s <= 1.0,
        "{name} seed {seed}: {:.2} s beyond 4× the uncertainty",
        r.honesty.beyond_4x_max_s
    );
}
