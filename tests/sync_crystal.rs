//! Crystals whose frequency moves: a warm-up and a wander. The estimator measures the bend
//! from its window's two halves and takes it out before fitting, shortens its window when
//! the newest quarter still disagrees, and widens its uncertainty by what may be left.
//! Measured on seeds 1–10: max ≤ 43 µs (target 50), coverage ≥ 98 %, but p99 13–30 µs
//! against a 20 µs target (see the README). These checks hold what is there; before the
//! bend was taken out the same runs reached 62 µs and were covered 84–96 % of the time.

#[path = "common/families.rs"]
mod families;
use families::run;

#[test]
fn a_warming_crystal_is_followed_within_fifty_microseconds_and_covered() {
    for seed in [1, 2] {
        for (name, r) in run("warmup", seed) {
            assert!(
                r.within_uncertainty >= 0.95,
                "{name} seed {seed}: uncertainty covers only {:.1} %",
                100.0 * r.within_uncertainty
            );
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
fn a_wandering_crystal_is_followed_within_fifty_microseconds_and_covered() {
    for seed in [1, 2] {
        for (name, r) in run("wander", seed) {
            assert!(
                r.within_uncertainty >= 0.95,
                "{name} seed {seed}: uncertainty covers only {:.1} %",
                100.0 * r.within_uncertainty
            );
            assert!(r.max_us <= 50.0, "{name} seed {seed}: max {} µs", r.max_us);
        }
    }
}
