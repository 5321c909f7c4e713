//! A roam and a mesh re-route: the path's base delay steps in both directions while the
//! clocks stay as they were. The estimator must keep the offset and the rate across.

#[path = "common/families.rs"]
mod families;
use families::{assert_honest, event, run};

#[test]
fn a_roam_keeps_the_offset_within_fifty_microseconds_and_the_rate_within_half_a_ppm() {
    for seed in [1, 2, 3] {
        for (name, r) in run("roam", seed) {
            let e = event(&r, "path both");
            assert!(e.max_err_us <= 50.0, "{name} seed {seed}: {e:?}");
            assert!(
                r.p99_outside_events_us <= 20.0,
                "{name} seed {seed}: p99 {} µs",
                r.p99_outside_events_us
            );
            // The rate carries across: from 10 s after the step on it is as good as the
            // window before it made it (a young window's first minute, before the step,
            // reaches 1 ppm on some seeds).
            assert!(
                e.max_rate_err_ppm <= 0.5,
                "{name} seed {seed}: rate off by {} ppm after the step",
                e.max_rate_err_ppm
            );
            assert!(
                r.rate_err_max_outside_ppm <= 1.0,
                "{name} seed {seed}: rate off by {} ppm",
                r.rate_err_max_outside_ppm
            );
            // A symmetric change moves no timeline: no epoch.
            assert_eq!(e.epoch_changes, 0, "{name} seed {seed}: {e:?}");
            assert_honest(&name, seed, &r);
        }
    }
}

#[test]
fn a_mesh_reroute_there_and_back_leaves_no_trace() {
    for seed in [1, 2] {
        for (name, r) in run("mesh_reroute", seed) {
            assert!(r.max_us <= 50.0, "{name} seed {seed}: max {} µs", r.max_us);
            assert!(r.p99_us <= 20.0, "{name} seed {seed}: p99 {} µs", r.p99_us);
            assert_eq!(r.honesty.epoch_changes, 0, "{name} seed {seed}");
            assert_honest(&name, seed, &r);
        }
    }
}
