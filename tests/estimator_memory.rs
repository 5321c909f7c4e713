//! Estimators keep fixed windows: after warm-up, taking exchanges allocates nothing.

mod common;

use lockstep::clock::{
    ClockEstimator, EnvelopeEstimator, Exchange, NaiveEstimator, NtpEstimator, SnapcastEstimator,
};
use lockstep::ptp::{ClockIdentity, PortIdentity};
use lockstep::time::{LeaderInstant, LocalInstant, Nanos};

use common::alloc::watch;

/// A pseudo-random exchange at step `i`: 16 a second, delays of 1.5 ms plus up to ~8 ms.
fn exchange(i: i64, x: &mut u64) -> Exchange {
    let mut jitter = || {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        1_500_000 + (*x % 8_000_000) as i64
    };
    let t = i * 62_500_000;
    let theta = 1_000_000_000 + t / 50_000;
    Exchange {
        leader: PortIdentity {
            clock_identity: ClockIdentity([1; 8]),
            port_number: 1,
        },
        sync_sequence: i as u16,
        t1: LeaderInstant::from_nanos(t + theta - jitter()),
        t2: LocalInstant::from_nanos(t),
        t3: LocalInstant::from_nanos(t + 1_000_000),
        t4: LeaderInstant::from_nanos(t + 1_000_000 + theta + jitter()),
        sync_correction: Nanos::ZERO,
        delay_correction: Nanos::ZERO,
    }
}

#[test]
fn estimators_allocate_nothing_per_exchange_over_hours() {
    let mut estimators: Vec<Box<dyn ClockEstimator>> = vec![
        Box::new(EnvelopeEstimator::default()),
        Box::new(NaiveEstimator::new()),
        Box::new(NtpEstimator::new()),
        Box::new(SnapcastEstimator::new()),
    ];
    let mut x = 99u64;
    // Warm up past every window (the longest is lockstep's 60 s and snapcast's 200 samples).
    let mut i = 0;
    while i < 4_000 {
        let ex = exchange(i, &mut x);
        for e in estimators.iter_mut() {
            e.handle_exchange(&ex);
        }
        i += 1;
    }
    let ((), allocs, _) = watch(|| {
        // Two simulated hours more.
        while i < 4_000 + 115_200 {
            let ex = exchange(i, &mut x);
            for e in estimators.iter_mut() {
                e.handle_exchange(&ex);
                assert!(e.estimate().is_some());
            }
            i += 1;
        }
    });
    assert_eq!(allocs, 0, "allocations while taking exchanges");
}
