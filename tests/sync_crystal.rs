//! Crystals whose frequency moves: a warm-up and a wander. The estimator does not model
//! the bend; it shortens its window and widens its uncertainty by the drift it sees (a
//! known miss: p99 19–44 µs against 20 µs, and the random-walk wander covered 84 %
//! against 90 %). These checks hold what is there: without the drift allowance the same
//! runs were covered 16–36 % of the time.

#[path = "common/families.rs"]
mod families;
use families::run;

#[test]
fn a_warming_crystal_widens_the_uncertainty_instead_of_hiding_its_error() {
    for seed in [1, 2] {
        for (name, r) in run("warmup", seed) {
            assert!(
                r.within_uncertainty >= 0.88,
                "{name} seed {seed}: uncertainty covers only {:.1} %",
                100.0 * r.within_uncertainty
            );
        }
    }
}

#[test]
fn a_wandering_crystal_is_covered_by_the_uncertainty() {
    for seed in [1, 2] {
        for (name, r) in run("wander", seed) {
            assert!(
                r.within_uncertainty >= 0.80,
                "{name} seed {seed}: uncertainty covers only {:.1} %",
                100.0 * r.within_uncertainty
            );
            assert!(r.max_us <= 100.0, "{name} seed {seed}: max {} µs", r.max_us);
        }
    }
}
