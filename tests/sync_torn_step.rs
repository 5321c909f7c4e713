//! A leader clock step while the follower's window is young, inside one of the bursts of
//! fast exchanges a young window asks for. At 384 exchanges a second many exchanges are in
//! flight when the leader's clock steps, and the leader stamps some of them on either side
//! of it: a direction can show the step a round trip (and on Wi-Fi, a queue) after the
//! other, and a reply held up in a queue brings in a sample dated before the alarm that
//! belongs after it. Taken for samples on the old level, those sent the rate to the bound
//! (±2000 ppm) or made the step look like a one-way change, and the estimate went
//! milliseconds off for tens of seconds, beyond its uncertainty.

#[path = "common/families.rs"]
mod families;
use families::{assert_honest, event, run_lockstep_alone};
use lockstep::clock::EpochReason;
use lockstep::sim::SimTime;
use lockstep::sim::events::{Event, EventKind, Events, Variant};
use lockstep::sim::sync::SyncScenario;
use lockstep::time::Nanos;

fn step_at(at_s: f64, by_s: i64, seed: u64) -> lockstep::sim::sync::EstimatorResult {
    let variant = Variant {
        name: format!("torn/{by_s:+}s@{at_s}"),
        events: Events::new(vec![Event {
            at: SimTime::from_secs_f64(at_s),
            kind: EventKind::LeaderStep {
                by: Nanos::from_secs(by_s),
            },
        }]),
        start_burst: true,
        longer_path: Nanos::ZERO,
    };
    let s = SyncScenario::with_variant("wifi", &variant, seed, Nanos::from_secs(600))
        .expect("network preset");
    run_lockstep_alone(&s)
}

/// Seeds and times that failed before (each one of them is a step of −1 s inside a
/// burst): 1.5 s, 5.5 s, 21.5 s, 31.5 s (seeds 3, 4, 5, 8, 9, 10) and 51.5 s went 0.6–10 ms
/// off (p99), 31.5 s seed 3 with its rate at −1615 ppm.
#[test]
fn a_leader_step_inside_a_young_windows_burst_is_a_step() {
    for (at_s, by_s) in [
        (31.5, -1),
        (41.5, -1),
        (5.5, 1),
        (5.5, -1),
        (21.5, -1),
        (41.5, 1),
    ] {
        for seed in 1..=10 {
            let name = format!("step {by_s:+} s at {at_s} s");
            let r = step_at(at_s, by_s, seed);
            let e = event(&r, "leader step");
            assert_eq!(
                e.reason,
                Some(EpochReason::LeaderStep),
                "{name} seed {seed}: {e:?}"
            );
            // (A guard against the milliseconds these went off, not the ±20 µs target:
            // the worst of these, +1 s at 5.5 s on seed 1, is 33.5 µs.)
            assert!(
                r.p99_outside_events_us <= 50.0,
                "{name} seed {seed}: p99 {} µs outside the 5 s after it",
                r.p99_outside_events_us
            );
            assert_honest(&name, seed, &r);
        }
    }
}

/// A +1 s step at 11.5 s, seed 2: recognised at once, but its burst and the young window's
/// next ones filled the window (1024 blocks) within 20 s, and dropping the oldest samples
/// cut those before the step down to a few seconds' worth. The rate then went 7.6 ppm off
/// over 40 s while it claimed 0.05 ppm: 6.4 s beyond four times the uncertainty, p99 90 µs.
#[test]
fn a_full_window_keeps_the_samples_that_carry_the_rate_across_a_step() {
    let r = step_at(11.5, 1, 2);
    assert_eq!(
        event(&r, "leader step").reason,
        Some(EpochReason::LeaderStep)
    );
    assert!(r.p99_us <= 50.0, "p99 {} µs", r.p99_us);
    assert_honest("step +1 s at 11.5 s", 2, &r);
}
