//! The sync-accuracy experiment: one leader, one follower, every estimator on one trace.
//!
//! A [`SyncScenario`] names the clocks and the path. [`run_sync`] runs the real
//! [`PtpMaster`] and [`PtpSlave`] over the simulated network, feeds every completed exchange
//! to every estimator (each at its own cadence, see [`ClockEstimator::wants`]), and samples
//! each estimator's error against the simulated clocks' true readings: the ground truth
//! comes from the simulator, never from an estimator.

use super::{
    ClockModel, Delivery, EventQueue, Link, PathConfig, SimClock, SimConfigError, SimRng, SimTime,
};
use crate::clock::{
    ClockEstimator, EnvelopeEstimator, NaiveEstimator, NtpEstimator, SnapcastEstimator,
};
use crate::ptp::wire::MAX_MESSAGE_LEN;
use crate::ptp::{ClockIdentity, MasterConfig, PortIdentity, PtpMaster, PtpSlave, SlaveConfig};
use crate::time::{LeaderInstant, LocalInstant, Nanos};

/// The leader's clock reads about this at the start: a PTP (TAI) time in late 2023, so that
/// the experiment exercises full-size timestamps.
pub const LEADER_EPOCH: Nanos = Nanos::from_secs(1_700_000_000);

/// Address of the leader in the simulated network.
const LEADER: u32 = 0;
/// Address of the follower.
const FOLLOWER: u32 = 1;

/// Everything that defines one run of the sync experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncScenario {
    /// Name for reports (a preset's name, or the user's).
    pub name: String,
    /// Seed of every random draw: clocks and network.
    pub seed: u64,
    /// Simulated duration.
    pub duration: Nanos,
    /// The two directions of the follower's path.
    pub path: PathConfig,
    /// The leader's clock (reading at start is [`LEADER_EPOCH`] plus its offset).
    pub leader_clock: ClockModel,
    /// The follower's clock; `None` draws one from the seed as
    /// [`ClockModel::random_follower`] does (±100 ppm, 0.01 ppm/√s, within ±1 s of the
    /// leader).
    pub follower_clock: Option<ClockModel>,
    /// The leader's PTP schedule.
    pub master: MasterConfig,
    /// How often the estimators' errors are sampled.
    pub sample_interval: Nanos,
    /// Errors before this are left out of the percentiles (convergence is measured from 0).
    pub settle: Nanos,
}

impl SyncScenario {
    /// The scenario for a network preset (see [`PathConfig::PRESETS`]).
    pub fn preset(name: &str, seed: u64, duration: Nanos) -> Option<SyncScenario> {
        let path = PathConfig::preset(name)?;
        Some(SyncScenario {
            name: name.to_string(),
            seed,
            duration,
            path,
            leader_clock: ClockModel::ideal(),
            follower_clock: None,
            master: MasterConfig::new(ClockIdentity([0x00, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1])),
            sample_interval: Nanos::from_millis(10),
            settle: Nanos::from_secs(10),
        })
    }

    /// The follower clock this scenario runs with: the given one, or the one drawn from the
    /// seed.
    pub fn follower_model(&self) -> ClockModel {
        match &self.follower_clock {
            Some(m) => m.clone(),
            None => ClockModel::random_follower(&mut SimRng::new(self.seed).fork(1)),
        }
    }
}

/// One estimator's figures over a run.
#[derive(Clone, Debug, PartialEq)]
pub struct EstimatorResult {
    /// The estimator's name.
    pub estimator: &'static str,
    /// Median |offset error| after the settle time, µs.
    pub p50_us: f64,
    /// 99th percentile |offset error| after the settle time, µs.
    pub p99_us: f64,
    /// Largest |offset error| after the settle time, µs.
    pub max_us: f64,
    /// Seconds from start until the error stays within ±100 µs; `None` if it never does.
    pub converge_100us_s: Option<f64>,
    /// Seconds from start until the error stays within ±20 µs; `None` if it never does.
    pub converge_20us_s: Option<f64>,
    /// Median |rate error| after the settle time, ppm.
    pub rate_err_ppm: f64,
    /// Exchanges this estimator took.
    pub exchanges: u64,
    /// Fraction of samples (after settle) whose |error| was within the estimator's own
    /// reported uncertainty.
    pub within_uncertainty: f64,
    /// Signed offset error over time, `(seconds, µs)`, decimated for plotting (each point is
    /// the largest-magnitude error of its stretch).
    pub series: Vec<(f64, f64)>,
}

/// The outcome of [`run_sync`].
#[derive(Clone, Debug, PartialEq)]
pub struct SyncReport {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Simulated seconds.
    pub seconds: f64,
    /// The follower's drift at start, ppm.
    pub follower_drift_ppm: f64,
    /// Exchanges the slave completed.
    pub exchanges: u64,
    /// Per estimator, in the order given.
    pub results: Vec<EstimatorResult>,
}

/// lockstep's estimator and the three baselines, in report order.
pub fn default_estimators() -> Vec<Box<dyn ClockEstimator>> {
    vec![
        Box::new(EnvelopeEstimator::default()),
        Box::new(NaiveEstimator::new()),
        Box::new(NtpEstimator::new()),
        Box::new(SnapcastEstimator::new()),
    ]
}

/// Plot points kept per estimator.
const PLOT_POINTS: usize = 2000;

struct Tracker {
    errors: Vec<f64>,
    rate_errors: Vec<f64>,
    within: u64,
    last_out_100: Option<f64>,
    last_out_20: Option<f64>,
    exchanges: u64,
    series: Vec<(f64, f64)>,
    bin: Option<(f64, f64)>,
    bin_len: f64,
}

impl Tracker {
    fn new(duration_s: f64) -> Self {
        Tracker {
            errors: Vec::new(),
            rate_errors: Vec::new(),
            within: 0,
            last_out_100: Some(0.0),
            last_out_20: Some(0.0),
            exchanges: 0,
            series: Vec::with_capacity(PLOT_POINTS + 1),
            bin: None,
            bin_len: duration_s / PLOT_POINTS as f64,
        }
    }

    /// Records one sample at `t` seconds; `None` means no estimate yet.
    fn sample(&mut self, t: f64, settled: bool, err: Option<(f64, f64, f64)>) {
        let Some((err_ns, rate_err, uncertainty_ns)) = err else {
            self.last_out_100 = Some(t);
            self.last_out_20 = Some(t);
            return;
        };
        let a = err_ns.abs();
        if a > 100_000.0 {
            self.last_out_100 = Some(t);
        }
        if a > 20_000.0 {
            self.last_out_20 = Some(t);
        }
        if settled {
            self.errors.push(a / 1000.0);
            self.rate_errors.push(rate_err.abs());
            if a <= uncertainty_ns {
                self.within += 1;
            }
        }
        let us = err_ns / 1000.0;
        match &mut self.bin {
            Some((start, worst)) if t - *start < self.bin_len => {
                if us.abs() > worst.abs() {
                    *worst = us;
                }
            }
            _ => {
                if let Some(done) = self.bin.take() {
                    self.series.push(done);
                }
                self.bin = Some((t, us));
            }
        }
    }

    fn finish(mut self, name: &'static str, end: f64, step: f64) -> EstimatorResult {
        if let Some(done) = self.bin.take() {
            self.series.push(done);
        }
        // "Stays within" means from the sample after the last one outside to the end; an
        // estimator still outside at the last sample never converged.
        let converge = |last_out: Option<f64>| match last_out {
            Some(t) if t + step > end => None,
            Some(t) => Some(t + step),
            None => Some(0.0),
        };
        let n = self.errors.len();
        let within_uncertainty = if n == 0 {
            0.0
        } else {
            self.within as f64 / n as f64
        };
        let mut errors = self.errors;
        errors.sort_by(f64::total_cmp);
        let mut rate = self.rate_errors;
        rate.sort_by(f64::total_cmp);
        EstimatorResult {
            estimator: name,
            p50_us: percentile(&errors, 0.50),
            p99_us: percentile(&errors, 0.99),
            max_us: errors.last().copied().unwrap_or(f64::NAN),
            converge_100us_s: converge(self.last_out_100),
            converge_20us_s: converge(self.last_out_20),
            rate_err_ppm: percentile(&rate, 0.50),
            exchanges: self.exchanges,
            within_uncertainty,
            series: self.series,
        }
    }
}

/// The `q` quantile of sorted values (nearest rank); NaN for none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A datagram in flight.
#[derive(Clone, Copy)]
struct Packet {
    to_leader: bool,
    buf: [u8; MAX_MESSAGE_LEN],
    len: usize,
}

impl Packet {
    fn new(to_leader: bool, payload: &[u8]) -> Packet {
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let len = payload.len().min(MAX_MESSAGE_LEN);
        buf[..len].copy_from_slice(&payload[..len]);
        Packet {
            to_leader,
            buf,
            len,
        }
    }
}

/// Runs `scenario` with `estimators` all fed from one trace, and measures each. Fails only
/// if the scenario's clocks or links are invalid (the error names the field).
pub fn run_sync(
    scenario: &SyncScenario,
    mut estimators: Vec<Box<dyn ClockEstimator>>,
) -> Result<SyncReport, SimConfigError> {
    let rng = SimRng::new(scenario.seed);
    let mut leader_model = scenario.leader_clock.clone();
    leader_model.offset += LEADER_EPOCH;
    let mut follower_model = scenario.follower_model();
    follower_model.offset += LEADER_EPOCH;
    let follower_drift_ppm = follower_model.drift_ppm;
    let mut leader = SimClock::new(leader_model, rng.fork(2))?;
    let mut follower = SimClock::new(follower_model, rng.fork(3))?;
    let mut down = Link::new(scenario.path.to_follower, rng.fork(4))?;
    let mut up = Link::new(scenario.path.to_leader, rng.fork(5))?;

    let mut master = PtpMaster::new(scenario.master);
    let slave_port = PortIdentity {
        clock_identity: ClockIdentity([0x02, 0, 0, 0xff, 0xfe, 0, 0, 2]),
        port_number: 1,
    };
    let mut slave = PtpSlave::new(SlaveConfig::new(slave_port));
    master.add_slave(
        FOLLOWER,
        LeaderInstant::from_nanos(leader.reading(SimTime(0))),
    );

    let end = SimTime(scenario.duration.as_nanos());
    let step = scenario.sample_interval.as_nanos().max(1);
    let end_s = end.as_secs_f64();
    let mut trackers: Vec<Tracker> = estimators.iter().map(|_| Tracker::new(end_s)).collect();
    let mut queue: EventQueue<Packet> = EventQueue::new();
    let mut next_sample = SimTime(0);
    // Deadlines already past map to "now": time never runs backwards.
    let mut last = SimTime(0);

    loop {
        let master_wake = master
            .poll_timeout()
            .map(|t| leader.time_of(t.as_nanos()).max(last));
        let slave_wake = slave
            .poll_timeout()
            .map(|t| follower.time_of(t.as_nanos()).max(last));
        let packet_at = queue.peek_time();
        let mut now = next_sample;
        for t in [master_wake, slave_wake, packet_at].into_iter().flatten() {
            now = now.min(t);
        }
        if now > end {
            break;
        }
        last = now;

        if now == next_sample && packet_at.is_none_or(|p| p > now) {
            let local = LocalInstant::from_nanos(follower.reading(now));
            let truth = leader.reading(now);
            let true_rate = {
                let fl = leader.freq_ppm(now) * 1e-6;
                let ff = follower.freq_ppm(now) * 1e-6;
                ((1.0 + fl) / (1.0 + ff) - 1.0) * 1e6
            };
            let t_s = now.as_secs_f64();
            let settled = now.as_nanos() >= scenario.settle.as_nanos();
            for (est, tr) in estimators.iter().zip(trackers.iter_mut()) {
                let e = est.estimate().map(|e| {
                    let err = (e.to_leader(local).as_nanos() as i128 - truth as i128) as f64;
                    (err, e.rate_ppm - true_rate, e.uncertainty.as_nanos() as f64)
                });
                tr.sample(t_s, settled, e);
            }
            next_sample = SimTime(now.as_nanos() + step);
            continue;
        }

        if packet_at == Some(now)
            && let Some((_, pkt)) = queue.pop()
        {
            // What a peer makes of a datagram is its own business (and counted in its
            // stats); the experiment only moves bytes.
            let data = &pkt.buf[..pkt.len];
            if pkt.to_leader {
                let at = LeaderInstant::from_nanos(leader.reading(now));
                let _ = master.handle_receive(FOLLOWER, at, data);
            } else {
                let at = LocalInstant::from_nanos(follower.reading(now));
                let _ = slave.handle_receive(LEADER, at, data);
            }
        }
        let leader_now = LeaderInstant::from_nanos(leader.reading(now));
        let local_now = LocalInstant::from_nanos(follower.reading(now));
        if master_wake.is_some_and(|t| t <= now) {
            master.handle_timeout(leader_now);
        }
        if slave_wake.is_some_and(|t| t <= now) {
            slave.handle_timeout(local_now);
        }
        while let Some(tx) = master.poll_transmit(leader_now) {
            let pkt = Packet::new(false, tx.payload());
            schedule(&mut queue, down.transmit(now), pkt);
        }
        while let Some(tx) = slave.poll_transmit(local_now) {
            let pkt = Packet::new(true, tx.payload());
            schedule(&mut queue, up.transmit(now), pkt);
        }
        while let Some(ex) = slave.poll_exchange() {
            for (est, tr) in estimators.iter_mut().zip(trackers.iter_mut()) {
                if est.wants(ex.completed_at()) {
                    est.handle_exchange(&ex);
                    tr.exchanges += 1;
                }
            }
        }
    }

    let results = estimators
        .iter()
        .zip(trackers)
        .map(|(e, t)| t.finish(e.name(), end_s, step as f64 * 1e-9))
        .collect();
    Ok(SyncReport {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        seconds: end_s,
        follower_drift_ppm,
        exchanges: slave.stats().exchanges,
        results,
    })
}

fn schedule(queue: &mut EventQueue<Packet>, delivery: Delivery, packet: Packet) {
    match delivery {
        Delivery::Lost => {}
        Delivery::Once(at) => queue.push(at, packet),
        Delivery::Twice(a, b) => {
            queue.push(a, packet);
            queue.push(b, packet);
        }
    }
}

impl SyncReport {
    /// The report as a JSON array, one object per estimator, with the keys `estimator`,
    /// `scenario`, `seed`, `p50_us`, `p99_us`, `max_us`, `converge_100us_s`,
    /// `converge_20us_s` and `rate_err_ppm` (null for a threshold never reached).
    pub fn to_json(&self) -> String {
        let mut out = String::from("[\n");
        for (i, r) in self.results.iter().enumerate() {
            out.push_str(&format!(
                "  {{\"estimator\": {}, \"scenario\": {}, \"seed\": {}, \"p50_us\": {}, \
                 \"p99_us\": {}, \"max_us\": {}, \"converge_100us_s\": {}, \
                 \"converge_20us_s\": {}, \"rate_err_ppm\": {}}}",
                json_str(r.estimator),
                json_str(&self.scenario),
                self.seed,
                json_num(r.p50_us),
                json_num(r.p99_us),
                json_num(r.max_us),
                r.converge_100us_s.map_or("null".into(), json_num),
                r.converge_20us_s.map_or("null".into(), json_num),
                json_num(r.rate_err_ppm),
            ));
            out.push_str(if i + 1 < self.results.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        out.push(']');
        out
    }

    /// The report as a fixed-width text table.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "scenario {}  seed {}  {:.0} s simulated  follower drift {:+.2} ppm  {} exchanges\n",
            self.scenario, self.seed, self.seconds, self.follower_drift_ppm, self.exchanges
        );
        out.push_str(&format!(
            "{:<10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12}\n",
            "estimator", "p50 µs", "p99 µs", "max µs", "≤100µs at s", "≤20µs at s", "rate err ppm"
        ));
        let secs = |v: Option<f64>| v.map_or("never".to_string(), |s| format!("{s:.2}"));
        for r in &self.results {
            out.push_str(&format!(
                "{:<10} {:>10.2} {:>10.2} {:>10.2} {:>12} {:>12} {:>12.4}\n",
                r.estimator,
                r.p50_us,
                r.p99_us,
                r.max_us,
                secs(r.converge_100us_s),
                secs(r.converge_20us_s),
                r.rate_err_ppm
            ));
        }
        out
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (null for NaN or infinities, which JSON cannot carry).
pub fn json_num(v: f64) -> String {
    if v.is_finite() {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        "null".into()
    }
}
