//! Crystals whose frequency moves: a warm-up and a wander. The estimator measures the bend
//! from its window's two halves and takes it out before fitting, shortens its window when
//! the newest quarter still disagrees, widens its uncertainty by what may be left, and asks
//! for bursts of exchanges while that uncertainty is above 20 µs
//! (`EnvelopeConfig::burst_above`). The targets: p99 ≤ 20 µs, max ≤ 50 µs. Before the
//! bursts, seeds 1–20 gave p99 up to 32.1 µs (warm-up), 36.8 µs (with wander and a roam),
//! 27.3 µs (sine) and 38.9 µs (random walk); before the bend was taken out the same runs
//! reached 62 µs and were covered 84–96 % of the time.

#[path = "common/families.rs"]
mod families;
use families::{assert_honest, run, run_lockstep};

#[test]
fn a_warming_crystal_is_followed_within_twenty_microseconds_and_covered() {
    for seed in [1, 2] {
        for (name, r) in run("warmup", seed) {
            assert!(
                r.within_uncertainty >= 0.95,
                "{name} seed {seed}: uncertainty covers only {:.1} %",
                100.0 * r.within_uncertainty
            );
            assert!(r.p99_us <= 20.0, "{name} seed {seed}: p99 {} µs", r.p99_us);
            assert!(r.max_us <= 50.0, "{name} seed {seed}: max {} µs", r.max_us);
            assert!(
                r.honesty.beyond_4x_max_s <= 1.0,
                "{name} seed {seed}: {} s beyond 4× the uncertainty",
                r.honesty.beyond_4x_max_s
            );
        }
    }
}

#[test]
fn a_wandering_crystal_is_followed_within_twenty_microseconds_and_covered() {
    for seed in [1, 2] {
        for (name, r) in run("wander", seed) {
            assert!(
                r.within_uncertainty >= 0.95,
                "{name} seed {seed}: uncertainty covers only {:.1} %",
                100.0 * r.within_uncertainty
            );
            assert!(r.p99_us <= 20.0, "{name} seed {seed}: p99 {} µs", r.p99_us);
            assert!(r.max_us <= 50.0, "{name} seed {seed}: max {} µs", r.max_us);
        }
    }
}

/// A frequency that moves at a steady pace bends the clock relation by the same amount all
/// the time: the estimator measures that bend and takes it out. A line over the wifi
/// preset's 150 s window would lag it by `d·W²/12` ≈ 90 µs; shortening the window alone (the
/// estimator before the bend was measured) gave p99 23–31 µs and max 30–42 µs on these
/// seeds, taking the bend out 16–20 µs and 19–25 µs.
#[test]
fn a_steadily_moving_frequency_is_taken_out_of_the_fit() {
    use lockstep::sim::events::{Event, EventKind, Events, Node};
    use lockstep::sim::sync::SyncScenario;
    use lockstep::sim::{FrequencyChange, SimTime};
    use lockstep::time::Nanos;

    for seed in [1, 2, 3] {
        let mut s = SyncScenario::preset("wifi", seed, Nanos::from_secs(600)).expect("wifi");
        // +30 ppm over the 600 s: 0.05 ppm/s, about what a warming crystal shows a minute
        // after power-on.
        s.events = Events::new(vec![Event {
            at: SimTime(0),
            kind: EventKind::Frequency {
                node: Node::Follower,
                change: FrequencyChange::Ramp {
                    at: SimTime(0),
                    by_ppm: 30.0,
                    over: Nanos::from_secs(600),
                },
            },
        }]);
        let l = run_lockstep(&s);
        assert!(l.p99_us <= 20.0, "seed {seed}: p99 {} µs", l.p99_us);
        assert!(l.max_us <= 30.0, "seed {seed}: max {} µs", l.max_us);
        assert!(
            l.within_uncertainty >= 0.95,
            "seed {seed}: covered {}",
            l.within_uncertainty
        );
    }
}

/// A warming, wandering crystal goes on moving while a roam's new path levels are learnt
/// (60 s): the bend is measured through that too. Kept from before the roam, it went stale
/// and the rate drifted off by over a ppm: on seed 2 the roam's aftermath reached 35.7 µs.
/// Measured throughout, it stays within 18.7–26.5 µs on these seeds.
#[test]
fn a_warming_crystal_is_followed_through_a_roam() {
    for seed in [2, 4, 10] {
        let (name, r) = run("warmup", seed)
            .into_iter()
            .find(|(name, _)| name.contains("roam"))
            .expect("the warm-up with a roam");
        let roam = families::event(&r, "path both");
        assert!(
            roam.max_err_us <= 30.0,
            "{name} seed {seed}: {} µs after the roam",
            roam.max_err_us
        );
    }
}

/// On a quiet LAN the window is 30 s, and the uncertainty under a microsecond. Its oldest
/// sample goes when it is older than the window, so it spans a little less, and the bend
/// and drift were measured only on windows of 30 s or more: never, there. A warm-up's or a
/// random walk's few microseconds of lag were then covered 21–60 % of the time, and stayed
/// beyond four times the uncertainty for up to 20 s (seeds 1–20). A quarter of the window
/// that disagrees with the whole by more than its spread, short of cutting the window, now
/// counts towards the uncertainty too: without it, the first seconds of a warm-up from
/// power-on went 1–3 s beyond four times it.
#[test]
fn on_a_lan_a_moving_frequency_is_covered_by_the_uncertainty() {
    for seed in [1, 2, 3, 12, 17] {
        for family in ["warmup", "wander"] {
            for (name, r) in families::run_on("lan", family, seed) {
                assert_honest(&name, seed, &r);
                assert!(
                    r.within_uncertainty >= 0.95,
                    "{name} seed {seed}: uncertainty covers only {:.1} %",
                    100.0 * r.within_uncertainty
                );
                assert!(r.p99_us <= 5.0, "{name} seed {seed}: p99 {} µs", r.p99_us);
            }
        }
    }
}
