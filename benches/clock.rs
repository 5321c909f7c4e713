//! Clock-sync costs: one estimator update, PTP parse and emit, and the AUTHENTICATION TLV
//! (sign, verify, both) per message.
//!
//! ```text
//! cargo bench --bench clock
//! ```

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lockstep::clock::{
    ClockEstimator, EnvelopeEstimator, Exchange, NaiveEstimator, NtpEstimator, SnapcastEstimator,
};
use lockstep::ptp::{
    ClockIdentity, Header, MAX_SIGNED_LEN, Message, PortIdentity, PtpAuth, PtpTimestamp,
};
use lockstep::sim::{Link, PathConfig, SimRng, SimTime};
use lockstep::time::{LeaderInstant, LocalInstant, Nanos};

/// A steady-state trace of wifi-like exchanges: 16 a second, a follower 37 ppm slow.
fn trace(n: usize) -> Vec<Exchange> {
    trace_with_bursts(n, None)
}

/// The same, with `bursts: Some(every)` a 2 s burst at 384 a second every `every`
/// seconds: what a follower on that path asks for while its uncertainty is above
/// `EnvelopeConfig::burst_above` (a burst about every 27 s on the simulator's wifi).
fn trace_with_bursts(n: usize, bursts: Option<i64>) -> Vec<Exchange> {
    let path = PathConfig::wifi();
    let rng = SimRng::new(7);
    let mut down = Link::new(path.to_follower, rng.fork(1)).expect("preset");
    let mut up = Link::new(path.to_leader, rng.fork(2)).expect("preset");
    let leader = PortIdentity {
        clock_identity: ClockIdentity([1; 8]),
        port_number: 1,
    };
    let mut out = Vec::with_capacity(n);
    let (mut i, mut next) = (0i64, 0i64);
    while out.len() < n {
        let t = next;
        let bursting = bursts.is_some_and(|every| t % (every * 1_000_000_000) < 2_000_000_000);
        next += if bursting {
            1_000_000_000 / 384
        } else {
            62_500_000
        };
        i += 1;
        let local = |t: i64| LocalInstant::from_nanos(t - t / 27_000 + 123_456_789);
        let sync = down.transmit(SimTime(t));
        let req = up.transmit(SimTime(t + 3_000_000));
        let (Some(a), Some(b)) = (first(sync), first(req)) else {
            continue;
        };
        out.push(Exchange {
            leader,
            sync_sequence: i as u16,
            t1: LeaderInstant::from_nanos(t),
            t2: local(a.as_nanos()),
            t3: local(t + 3_000_000),
            t4: LeaderInstant::from_nanos(b.as_nanos()),
            sync_correction: Nanos::ZERO,
            delay_correction: Nanos::ZERO,
        });
    }
    out
}

fn first(d: lockstep::sim::Delivery) -> Option<SimTime> {
    match d {
        lockstep::sim::Delivery::Lost => None,
        lockstep::sim::Delivery::Once(t) | lockstep::sim::Delivery::Twice(t, _) => Some(t),
    }
}

/// Makes a fresh estimator.
type Make = fn() -> Box<dyn ClockEstimator>;

fn estimator_update(c: &mut Criterion) {
    let makers: [(&str, Make); 4] = [
        ("lockstep", || Box::new(EnvelopeEstimator::default())),
        ("naive", || Box::new(NaiveEstimator::new())),
        ("ntp", || Box::new(NtpEstimator::new())),
        ("snapcast", || Box::new(SnapcastEstimator::new())),
    ];
    // 250 s: longer than the estimator's longest window (240 s).
    let warm = trace(4_000);
    let more = trace(6_000)[4_000..].to_vec();
    updates(c, "estimator_update", &makers, &warm, &more);
    // The same on a trace with a burst every 27 s (277 s of it before the 2000 timed ones):
    // the window holds more samples (a full ring), and each refit walks them all.
    let warm = trace_with_bursts(12_000, Some(27));
    let more = trace_with_bursts(14_000, Some(27))[12_000..].to_vec();
    updates(
        c,
        "estimator_update_with_bursts",
        &makers[..1],
        &warm,
        &more,
    );
}

/// A warmed-up estimator (a full window, from `warm`) takes the exchanges of `more` one at a
/// time; time per element is the mean cost of one update, refits included.
fn updates(
    c: &mut Criterion,
    group: &str,
    makers: &[(&str, Make)],
    warm: &[Exchange],
    more: &[Exchange],
) {
    let mut g = c.benchmark_group(group);
    g.throughput(criterion::Throughput::Elements(more.len() as u64));
    for &(name, make) in makers {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    let mut e = make();
                    for ex in warm {
                        e.handle_exchange(ex);
                    }
                    e
                },
                |e| {
                    for ex in more {
                        e.handle_exchange(black_box(ex));
                    }
                    black_box(e.estimate());
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// The port identity and the timestamp the PTP benches' messages carry.
fn sample_port_and_time() -> (PortIdentity, PtpTimestamp) {
    let port = PortIdentity {
        clock_identity: ClockIdentity([0, 0x1b, 0x21, 0xff, 0xfe, 0x12, 0x34, 0x56]),
        port_number: 1,
    };
    let ts = PtpTimestamp {
        seconds: 1_700_000_000,
        nanoseconds: 123_456_789,
    };
    (port, ts)
}

fn ptp_wire(c: &mut Criterion) {
    let (port, ts) = sample_port_and_time();
    let msgs = [
        ("sync", Message::sync(Header::new(port, 0, 1), ts, true)),
        (
            "delay_resp",
            Message::delay_resp(Header::new(port, 0, 2), ts, port),
        ),
    ];
    let mut g = c.benchmark_group("ptp");
    for (name, msg) in msgs {
        let mut buf = [0u8; 64];
        let len = msg.emit(&mut buf).expect("fits");
        g.bench_function(format!("parse_{name}"), |b| {
            b.iter(|| Message::parse(black_box(&buf[..len])))
        });
        g.bench_function(format!("emit_{name}"), |b| {
            let mut out = [0u8; 64];
            b.iter(|| black_box(&msg).emit(black_box(&mut out)))
        });
    }
    g.finish();
}

fn ptp_auth(c: &mut Criterion) {
    let (port, ts) = sample_port_and_time();
    let auth = PtpAuth::new(&[0x42; 32], 1);
    let msgs = [
        ("follow_up", Message::follow_up(Header::new(port, 0, 1), ts)),
        (
            "delay_resp",
            Message::delay_resp(Header::new(port, 0, 2), ts, port),
        ),
    ];
    let mut g = c.benchmark_group("ptp_auth");
    for (name, msg) in msgs {
        let mut plain = [0u8; MAX_SIGNED_LEN];
        let plain_len = msg.emit(&mut plain).expect("fits");
        let mut signed = plain;
        let signed_len = auth.sign(&mut signed, plain_len).expect("room");
        // Sign: the emitted message is copied back each time (sign changes messageLength).
        g.bench_function(format!("sign_{name}"), |b| {
            let mut buf = plain;
            b.iter(|| {
                buf = plain;
                black_box(&auth).sign(black_box(&mut buf), plain_len)
            })
        });
        g.bench_function(format!("verify_{name}"), |b| {
            b.iter(|| black_box(&auth).verify(black_box(&signed[..signed_len])))
        });
        // What authentication adds to one message: the sender's sign and the receiver's
        // verify.
        g.bench_function(format!("sign_verify_{name}"), |b| {
            let mut buf = plain;
            b.iter(|| {
                buf = plain;
                let len = black_box(&auth).sign(&mut buf, plain_len).expect("room");
                black_box(&auth).verify(black_box(&buf[..len]))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, estimator_update, ptp_wire, ptp_auth);
criterion_main!(benches);
