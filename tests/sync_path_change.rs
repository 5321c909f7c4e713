//! A roam and a mesh re-route: the path's base delay steps in both directions while the
//! clocks stay as they were. The estimator must keep the offset and the rate across.

#[path = "common/families.rs"]
mod families;
use families::{assert_honest, event, run, run_on, run_on_possible};

#[test]
fn a_roam_keeps_the_offset_within_fifty_microseconds_and_the_rate_within_half_a_ppm() {
    // (Seeds 11, 14 and 20 once missed: a false alarm of the window check, 3σ then, cut the
    // window in half long after the step, and the noisier fit went 51 µs and 1.65 ppm off.)
    for seed in [1, 2, 3, 11, 14, 20] {
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

/// Seed 14's +0.5 ms step was once examined through Wi-Fi's delay spikes, taken for an
/// episode of interference, and called noise; the window then tilted over the two levels and
/// the offset went 416 µs wrong for a minute.
#[test]
fn a_small_step_seen_through_wifi_spikes_is_not_called_noise() {
    for (name, r) in run("roam", 14) {
        let e = event(&r, "path both");
        assert!(e.max_err_us <= 50.0, "{name} seed 14: {e:?}");
        assert_eq!(e.epoch_changes, 0, "{name} seed 14: {e:?}");
        assert_honest(&name, 14, &r);
    }
}

/// Conditions the families were not tuned on: a congested Wi-Fi, whose heavier delays once
/// made nearly every small step look like an episode of interference (roam +0.5 ms: 9 seeds
/// of 10 beyond 50 µs, up to 595 µs).
#[test]
fn on_congested_wifi_a_roam_and_a_mesh_reroute_keep_the_offset_within_fifty_microseconds() {
    path_steps_hold("congested_wifi", &[1, 2], 50.0, 20.0);
}

/// On a quiet LAN the window is 30 s. It once dropped the samples from before a step while
/// the step's levels were still being refined on them; refined from one sample, the levels
/// ran away with the rate (roam +0.5 ms, seeds 6 and 7: 59 and 64 ms off, claiming to be
/// settled).
#[test]
fn on_a_lan_a_roam_and_a_mesh_reroute_keep_the_offset_within_a_few_microseconds() {
    path_steps_hold("lan", &[6, 7], 5.0, 2.0);
}

/// A path step down by more than the path's delay cannot happen, and the simulator says so
/// rather than clamp it at zero and run a smaller step under the larger one's name, as it
/// did until 2026-12-07: a LAN's base delay is 150 µs, so one direction −1 ms is refused
/// there. The −2.5 ms roam starts from a path 2.5 ms longer, and runs on every preset (on
/// `wifi` it used to be a −1.5 ms roam).
#[test]
fn a_path_step_down_by_more_than_the_paths_delay_is_refused() {
    let (ran, refused) = run_on_possible("lan", "asym_down", 1);
    assert!(
        ran.is_empty(),
        "{:?}",
        ran.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 2);
    for network in ["lan", "wifi"] {
        let (ran, refused) = run_on_possible(network, "roam", 1);
        assert!(refused.is_empty(), "{network}: {refused:?}");
        let down = ran
            .iter()
            .find(|r| r.0 == "roam/-2.5ms")
            .expect("the −2.5 ms roam");
        let e = event(&down.1, "path both -2.50 ms");
        assert!(e.max_err_us <= 50.0, "{network}: {e:?}");
    }
}

/// Every variant of the roam and mesh re-route families on `network`, for each of `seeds`:
/// the error within `max_us` throughout and `p99_us` outside the 5 s after each step, and
/// an honest uncertainty.
fn path_steps_hold(network: &str, seeds: &[u64], max_us: f64, p99_us: f64) {
    for &seed in seeds {
        for family in ["roam", "mesh_reroute"] {
            for (name, r) in run_on(network, family, seed) {
                assert!(
                    r.max_us <= max_us,
                    "{name} seed {seed}: max {} µs",
                    r.max_us
                );
                assert!(
                    r.p99_outside_events_us <= p99_us,
                    "{name} seed {seed}: p99 {} µs",
                    r.p99_outside_events_us
                );
                assert_honest(&name, seed, &r);
            }
        }
    }
}
