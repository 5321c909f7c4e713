//! Outages and a microwave oven: nothing or little gets through for a while. The estimate
//! rides it out on its rate and is back within bounds as soon as packets come again.

#[path = "common/families.rs"]
mod families;
use families::{assert_honest, event, run};

#[test]
fn after_an_outage_of_ten_or_thirty_seconds_the_error_is_within_fifty_microseconds() {
    for family in ["outage_10s", "outage_30s"] {
        for seed in [1, 2, 3] {
            for (name, r) in run(family, seed) {
                let e = event(&r, "outage both");
                assert!(e.max_err_us <= 50.0, "{name} seed {seed}: {e:?}");
                assert_eq!(e.epoch_changes, 0, "{name} seed {seed}: {e:?}");
                assert_honest(&name, seed, &r);
            }
        }
    }
}

#[test]
fn bursts_of_heavy_loss_and_jitter_are_not_taken_for_changes() {
    for seed in [1, 2, 3] {
        for (name, r) in run("microwave", seed) {
            assert!(r.p99_us <= 20.0, "{name} seed {seed}: p99 {} µs", r.p99_us);
            assert!(r.max_us <= 50.0, "{name} seed {seed}: max {} µs", r.max_us);
            assert_eq!(r.honesty.epoch_changes, 0, "{name} seed {seed}");
            assert_honest(&name, seed, &r);
        }
    }
}

#[test]
fn a_minute_of_heavy_interference_is_waited_out_not_taken_for_a_new_path() {
    use lockstep::sim::scenario_file::parse_events;
    use lockstep::sim::sync::{SyncScenario, default_estimators, run_sync};
    use lockstep::time::Nanos;
    let file = r#"{"events": [{"at_s": 100, "episode": {"direction": "both", "duration_s": 60, "jitter_mean_ms": 20, "loss": 0.3}}]}"#;
    for seed in [1, 2] {
        let mut s = SyncScenario::preset("wifi", seed, Nanos::from_secs(400)).unwrap();
        s.events = parse_events(file).expect("valid events");
        let r = run_sync(&s, default_estimators()).expect("valid scenario");
        let l = r
            .results
            .iter()
            .find(|e| e.estimator == "lockstep")
            .unwrap();
        assert_eq!(l.honesty.epoch_changes, 0, "seed {seed}: {:?}", l.events);
        assert!(l.p99_us <= 20.0, "seed {seed}: p99 {} µs", l.p99_us);
        assert_honest("heavy interference", seed, l);
    }
}
