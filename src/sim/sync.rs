//! The sync-accuracy experiment: one leader, one follower, every estimator on one trace.
//!
//! A [`SyncScenario`] names the clocks and the path. [`run_sync`] runs the real
//! [`PtpMaster`] and [`PtpSlave`] over the simulated network, feeds every completed exchange
//! to every estimator (each at its own cadence, see [`ClockEstimator::wants`]), and samples
//! each estimator's error against the simulated clocks' true readings: the ground truth
//! comes from the simulator, never from an estimator.

use super::event_track::{EventResult, EventTracker, Honesty, Sample};
use super::events::{Events, Variant};
use super::{
    ClockModel, Delivery, EventQueue, Link, PathConfig, SimClock, SimConfigError, SimRng, SimTime,
};
use crate::clock::{
    ClockEstimate, ClockEstimator, EnvelopeEstimator, NaiveEstimator, NtpEstimator,
    SnapcastEstimator,
};
use crate::measure::percentile;
use crate::ptp::MAX_SIGNED_LEN;
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
    /// What changes during the run (see [`crate::sim::events`]).
    pub events: Events,
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
            events: Events::none(),
        })
    }

    /// The scenario for a network preset with the events of a family's `variant` (see
    /// [`crate::sim::events::family`]); its name is the variant's.
    pub fn with_variant(
        preset: &str,
        variant: &Variant,
        seed: u64,
        duration: Nanos,
    ) -> Option<SyncScenario> {
        let mut s = SyncScenario::preset(preset, seed, duration)?;
        s.name = format!("{}@{preset}", variant.name);
        s.events = variant.events.clone();
        s.path.to_follower.base_delay += variant.longer_path;
        s.path.to_leader.base_delay += variant.longer_path;
        if !variant.start_burst {
            s.master.burst_count = 0;
        }
        Some(s)
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
    /// 99th percentile |offset error| after the settle time, leaving out the 5 s after each
    /// clock event, µs.
    pub p99_outside_events_us: f64,
    /// Largest |rate error| after the settle time, leaving out the 10 s after each clock
    /// event, ppm.
    pub rate_err_max_outside_ppm: f64,
    /// Whether the uncertainty and the epochs told the truth over the run.
    pub honesty: Honesty,
    /// How each clock event was ridden out, in time order.
    pub events: Vec<EventResult>,
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
    /// Packets each link lost (leader→follower, follower→leader): what outages and loss
    /// episodes did.
    pub lost: [u64; 2],
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
    /// |errors| after settle outside the 5 s after each clock event, µs...
    errors_outside: Vec<f64>,
    /// ...and |rate errors| outside the 10 s after each, ppm.
    rate_outside: Vec<f64>,
    within: u64,
    last_out_100: Option<f64>,
    last_out_20: Option<f64>,
    exchanges: u64,
    series: Vec<(f64, f64)>,
    bin: Option<(f64, f64)>,
    bin_len: f64,
    events: EventTracker,
    previous: Option<ClockEstimate>,
}

/// A sample of one estimator: its estimate and the truth it is judged against.
struct Truth {
    t: f64,
    local: LocalInstant,
    leader: i64,
    rate_ppm: f64,
    after_settle: bool,
    near_event_5s: bool,
    near_event_10s: bool,
}

impl Tracker {
    fn new(duration_s: f64, windows: Vec<(f64, f64, String)>) -> Self {
        Tracker {
            errors: Vec::new(),
            rate_errors: Vec::new(),
            errors_outside: Vec::new(),
            rate_outside: Vec::new(),
            within: 0,
            last_out_100: Some(0.0),
            last_out_20: Some(0.0),
            exchanges: 0,
            series: Vec::with_capacity(PLOT_POINTS + 1),
            bin: None,
            bin_len: duration_s / PLOT_POINTS as f64,
            events: EventTracker::new(windows),
            previous: None,
        }
    }

    /// Records one sample; `None` means no estimate yet.
    fn sample(&mut self, at: &Truth, estimate: Option<ClockEstimate>) {
        let t = at.t;
        let Some(e) = estimate else {
            self.last_out_100 = Some(t);
            self.last_out_20 = Some(t);
            self.events.none(t);
            self.previous = None;
            return;
        };
        let err_ns = (e.to_leader(at.local).as_nanos() as i128 - at.leader as i128) as f64;
        let rate_err = e.rate_ppm - at.rate_ppm;
        let uncertainty_ns = e.uncertainty.as_nanos() as f64;
        let (jump_ns, prev_uncertainty_ns) = match self.previous {
            Some(p) => (
                (e.to_leader(at.local).as_nanos() as i128
                    - p.to_leader(at.local).as_nanos() as i128) as f64,
                p.uncertainty.as_nanos() as f64,
            ),
            None => (0.0, uncertainty_ns),
        };
        self.previous = Some(e);
        self.events.sample(Sample {
            t,
            err_ns,
            uncertainty_ns,
            epoch: e.epoch,
            reason: e.reason,
            jump_ns,
            prev_uncertainty_ns,
            settled: e.settled,
            rate_err_ppm: rate_err,
        });
        let a = err_ns.abs();
        if a > 100_000.0 {
            self.last_out_100 = Some(t);
        }
        if a > 20_000.0 {
            self.last_out_20 = Some(t);
        }
        if at.after_settle {
            self.errors.push(a / 1000.0);
            self.rate_errors.push(rate_err.abs());
            if !at.near_event_5s {
                self.errors_outside.push(a / 1000.0);
            }
            if !at.near_event_10s {
                self.rate_outside.push(rate_err.abs());
            }
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
        let sorted = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v
        };
        let errors = sorted(self.errors);
        let rate = sorted(self.rate_errors);
        let outside = sorted(self.errors_outside);
        let rate_outside = sorted(self.rate_outside);
        let (events, honesty) = self.events.finish(end);
        EstimatorResult {
            estimator: name,
            p50_us: percentile(&errors, 0.50),
            p99_us: percentile(&errors, 0.99),
            max_us: errors.last().copied().unwrap_or(f64::NAN),
            converge_100us_s: converge(self.last_out_100),
            converge_20us_s: converge(self.last_out_20),
            rate_err_ppm: percentile(&rate, 0.50),
            p99_outside_events_us: percentile(&outside, 0.99),
            rate_err_max_outside_ppm: rate_outside.last().copied().unwrap_or(f64::NAN),
            exchanges: self.exchanges,
            within_uncertainty,
            honesty,
            events,
            series: self.series,
        }
    }
}

/// A datagram in flight.
#[derive(Clone, Copy)]
struct Packet {
    to_leader: bool,
    buf: [u8; MAX_SIGNED_LEN],
    len: usize,
}

impl Packet {
    fn new(to_leader: bool, payload: &[u8]) -> Packet {
        let mut buf = [0u8; MAX_SIGNED_LEN];
        let len = payload.len().min(MAX_SIGNED_LEN);
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
    let split = scenario.events.split();
    let mut leader_model = scenario.leader_clock.clone();
    leader_model.offset += LEADER_EPOCH;
    leader_model
        .steps
        .extend(split.leader_steps.iter().copied());
    leader_model
        .frequency
        .extend(split.leader_frequency.iter().copied());
    let mut follower_model = scenario.follower_model();
    follower_model.offset += LEADER_EPOCH;
    follower_model
        .frequency
        .extend(split.follower_frequency.iter().copied());
    let follower_drift_ppm = follower_model.drift_ppm;
    let mut leader = SimClock::new(leader_model, rng.fork(2))?;
    let mut follower = SimClock::new(follower_model, rng.fork(3))?;
    let mut down = Link::with_changes(scenario.path.to_follower, rng.fork(4), &split.to_follower)?;
    let mut up = Link::with_changes(scenario.path.to_leader, rng.fork(5), &split.to_leader)?;

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
    let windows = event_windows(&scenario.events, end_s);
    let mut trackers: Vec<Tracker> = estimators
        .iter()
        .map(|_| Tracker::new(end_s, windows.clone()))
        .collect();
    let mut queue: EventQueue<Packet> = EventQueue::new();
    let mut next_sample = SimTime(0);
    // Deadlines already past map to "now": time never runs backwards.
    let mut last = SimTime(0);
    let mut leader_restarts = split.leader_restarts.iter().copied().peekable();
    let mut follower_restarts = split.follower_restarts.iter().copied().peekable();
    let mut restarts_done = 0u8;
    let mut master_woken = SimTime(0);
    let mut exchanges_before_restart = 0u64;

    loop {
        // A driver wakes its master at least once a Sync interval, so that a leader clock
        // set back does not silence it for as long as the step.
        let master_wake = master.poll_timeout().map(|t| {
            let cap = master_woken + scenario.master.sync_interval;
            leader.time_of(t.as_nanos()).max(last).min(cap.max(last))
        });
        let slave_wake = slave
            .poll_timeout()
            .map(|t| follower.time_of(t.as_nanos()).max(last));
        let packet_at = queue.peek_time();
        let restart_at = [leader_restarts.peek(), follower_restarts.peek()]
            .into_iter()
            .flatten()
            .min()
            .copied();
        let mut now = next_sample;
        for t in [master_wake, slave_wake, packet_at, restart_at]
            .into_iter()
            .flatten()
        {
            now = now.min(t);
        }
        if now > end {
            break;
        }
        last = now;

        if leader_restarts.peek().is_some_and(|&t| t <= now) {
            leader_restarts.next();
            // A new process: a new clock identity, sequence numbers from zero, the follower
            // served from scratch (with its start burst).
            restarts_done = restarts_done.wrapping_add(1);
            let mut config = scenario.master;
            config.port.clock_identity.0[7] ^= restarts_done;
            config.port.clock_identity.0[6] ^= 0x5a;
            master = PtpMaster::new(config);
            master.add_slave(FOLLOWER, LeaderInstant::from_nanos(leader.reading(now)));
            continue;
        }
        if follower_restarts.peek().is_some_and(|&t| t <= now) {
            follower_restarts.next();
            exchanges_before_restart += slave.stats().exchanges;
            slave = PtpSlave::new(SlaveConfig::new(slave_port));
            for est in estimators.iter_mut() {
                est.reset();
            }
            // It joins again, and the leader serves it as a new follower.
            master.add_slave(FOLLOWER, LeaderInstant::from_nanos(leader.reading(now)));
            continue;
        }

        if now == next_sample && packet_at.is_none_or(|p| p > now) {
            let t_s = now.as_secs_f64();
            let truth = Truth {
                t: t_s,
                local: LocalInstant::from_nanos(follower.reading(now)),
                leader: leader.reading(now),
                rate_ppm: {
                    let fl = leader.freq_ppm(now) * 1e-6;
                    let ff = follower.freq_ppm(now) * 1e-6;
                    ((1.0 + fl) / (1.0 + ff) - 1.0) * 1e6
                },
                after_settle: now.as_nanos() >= scenario.settle.as_nanos(),
                near_event_5s: EventTracker::near_event(&windows, t_s, 5.0),
                near_event_10s: EventTracker::near_event(&windows, t_s, 10.0),
            };
            for (est, tr) in estimators.iter().zip(trackers.iter_mut()) {
                tr.sample(&truth, est.estimate());
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
            master_woken = now;
        }
        if slave_wake.is_some_and(|t| t <= now) {
            slave.handle_timeout(local_now);
        }
        while let Some(ex) = slave.poll_exchange() {
            for (est, tr) in estimators.iter_mut().zip(trackers.iter_mut()) {
                if est.wants(ex.completed_at()) {
                    est.handle_exchange(&ex);
                    tr.exchanges += 1;
                }
                if est.poll_burst_request() {
                    slave.request_burst(local_now);
                }
            }
        }
        while let Some(tx) = master.poll_transmit(leader_now) {
            let pkt = Packet::new(false, tx.payload());
            schedule(&mut queue, down.transmit(now), pkt);
        }
        while let Some(tx) = slave.poll_transmit(local_now) {
            let pkt = Packet::new(true, tx.payload());
            schedule(&mut queue, up.transmit(now), pkt);
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
        exchanges: exchanges_before_restart + slave.stats().exchanges,
        lost: [down.stats().lost, up.stats().lost],
        results,
    })
}

/// The window of each clock event: from its time to the next clock event's (or `end`).
fn event_windows(events: &Events, end: f64) -> Vec<(f64, f64, String)> {
    let clock: Vec<_> = events
        .events
        .iter()
        .filter(|e| e.is_clock_event())
        .collect();
    clock
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = e.at.as_secs_f64();
            let until = clock.get(i + 1).map_or(end, |n| n.at.as_secs_f64());
            (at, until.max(at), e.label())
        })
        .collect()
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
    /// `converge_20us_s` and `rate_err_ppm` (null for a threshold never reached); its
    /// honesty: `within_uncertainty` (a fraction), `p99_outside_events_us`,
    /// `rate_err_max_outside_ppm`, `beyond_4x_max_s`, `needless_epochs`, `silent_jumps` and
    /// `epoch_changes`; and `events`, one object per clock event with the fields of
    /// [`EventResult`] under their own names (`settle_s`, `first_epoch_s` and `reason` null
    /// when there is none; `reason` as the epoch reason's text).
    pub fn to_json(&self) -> String {
        let mut out = String::from("[\n");
        for (i, r) in self.results.iter().enumerate() {
            let h = r.honesty;
            let events: Vec<String> = r.events.iter().map(event_json).collect();
            out.push_str(&format!(
                "  {{\"estimator\": {}, \"scenario\": {}, \"seed\": {}, \"p50_us\": {}, \
                 \"p99_us\": {}, \"max_us\": {}, \"converge_100us_s\": {}, \
                 \"converge_20us_s\": {}, \"rate_err_ppm\": {}, \
                 \"within_uncertainty\": {}, \"p99_outside_events_us\": {}, \
                 \"rate_err_max_outside_ppm\": {}, \"beyond_4x_max_s\": {}, \
                 \"needless_epochs\": {}, \"silent_jumps\": {}, \"epoch_changes\": {}, \
                 \"events\": [{}]}}",
                json_str(r.estimator),
                json_str(&self.scenario),
                self.seed,
                json_num(r.p50_us),
                json_num(r.p99_us),
                json_num(r.max_us),
                r.converge_100us_s.map_or("null".into(), json_num),
                r.converge_20us_s.map_or("null".into(), json_num),
                json_num(r.rate_err_ppm),
                json_num(r.within_uncertainty),
                json_num(r.p99_outside_events_us),
                json_num(r.rate_err_max_outside_ppm),
                json_num(h.beyond_4x_max_s),
                h.needless_epochs,
                h.silent_jumps,
                h.epoch_changes,
                events.join(", "),
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
            "scenario {}  seed {}  {:.0} s simulated  follower drift {:+.2} ppm  {} exchanges  \
             lost {}/{}\n",
            self.scenario,
            self.seed,
            self.seconds,
            self.follower_drift_ppm,
            self.exchanges,
            self.lost[0],
            self.lost[1]
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
        out.push_str(&format!(
            "{:<10} {:>10} {:>12} {:>10} {:>10} {:>8} {:>8}\n",
            "honesty", "covered %", "4×unc max s", "p99 out µs", "rate out", "epochs", "bad ep."
        ));
        for r in &self.results {
            let h = r.honesty;
            out.push_str(&format!(
                "{:<10} {:>10.1} {:>12.2} {:>10.2} {:>10.3} {:>8} {:>8}\n",
                r.estimator,
                100.0 * r.within_uncertainty,
                h.beyond_4x_max_s,
                r.p99_outside_events_us,
                r.rate_err_max_outside_ppm,
                h.epoch_changes,
                h.needless_epochs + h.silent_jumps,
            ));
        }
        for r in &self.results {
            for e in &r.events {
                out.push_str(&format!(
                    "{:<10} @{:>7.1}s {:<34} max {:>9.1} µs  5s {:>9.1}  rate {:>6.2} ppm  level {:>8.1}  settle {:>6}  epochs {} first {:>6} {}\n",
                    r.estimator,
                    e.at_s,
                    e.label,
                    e.max_err_us,
                    e.max_err_5s_us,
                    e.max_rate_err_ppm,
                    e.final_level_us,
                    e.settle_s.map_or("never".into(), |v| format!("{v:.2}")),
                    e.epoch_changes,
                    e.first_epoch_s.map_or("-".into(), |v| format!("{v:.2}")),
                    e.reason.map_or(String::new(), |r| r.to_string()),
                ));
            }
        }
        out
    }
}

/// One event's figures as a JSON object (see [`SyncReport::to_json`]).
fn event_json(e: &EventResult) -> String {
    let opt = |v: Option<f64>| v.map_or("null".into(), json_num);
    format!(
        "{{\"label\": {}, \"at_s\": {}, \"until_s\": {}, \"max_err_us\": {}, \
         \"max_err_5s_us\": {}, \"max_rate_err_ppm\": {}, \"final_level_us\": {}, \
         \"settle_s\": {}, \"epoch_changes\": {}, \"first_epoch_s\": {}, \"reason\": {}}}",
        json_str(&e.label),
        json_num(e.at_s),
        json_num(e.until_s),
        json_num(e.max_err_us),
        json_num(e.max_err_5s_us),
        json_num(e.max_rate_err_ppm),
        json_num(e.final_level_us),
        opt(e.settle_s),
        e.epoch_changes,
        opt(e.first_epoch_s),
        e.reason
            .map_or("null".into(), |reason| json_str(&reason.to_string())),
    )
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
