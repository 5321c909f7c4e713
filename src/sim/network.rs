//! Simulated network paths: when, whether and how often a packet arrives.
//!
//! A [`Link`] is one direction of a path. It is told the true time a packet is sent
//! ([`Link::transmit`]) and answers with a [`Delivery`]: lost, or the true time(s) it
//! arrives. It does not carry payloads or queue anything; the driver keeps the packet and
//! schedules its arrival (for instance in an [`crate::sim::EventQueue`]). A [`LinkConfig`]
//! describes one direction: a fixed base delay, a random [`Jitter`], occasional delay
//! spikes, [`Loss`] (independent or in bursts), duplicates and deliberate reordering. A
//! [`PathConfig`] pairs the two directions between the leader and one follower; its named
//! presets model typical home networks.
//!
//! Each mechanism of a link draws from its own fork of the link's generator, and draws for
//! every packet whether or not the outcome is used. So the n-th packet's jitter is the same
//! whatever the loss settings, and two configurations can be compared on the same luck:
//! a change in a result is then the configuration's doing, not the dice's.

use super::math::exp;
use super::{SimConfigError, SimRng, SimTime};
use crate::time::Nanos;

/// Random delay added to a link's base delay, drawn per packet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Jitter {
    /// No jitter: every packet takes the base delay.
    None,
    /// Exponentially distributed delay with this mean: a lightly loaded queue.
    Exponential {
        /// The mean extra delay.
        mean: Nanos,
    },
    /// Normally distributed delay, truncated at zero (negative draws are drawn again).
    Normal {
        /// The mean of the normal before truncation.
        mean: Nanos,
        /// Its standard deviation.
        std: Nanos,
    },
    /// Pareto type I delay with this median: a heavy tail, as on a busy shared medium.
    ///
    /// The scale (the smallest possible jitter) is `median / 2^(1/shape)`, so every packet
    /// gets at least that much on top of the base delay.
    Pareto {
        /// Tail exponent: smaller is heavier; at or below 1 the mean is infinite.
        shape: f64,
        /// The median extra delay.
        median: Nanos,
    },
}

/// How a link loses packets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// Never loses a packet.
    None,
    /// Loses each packet independently with probability `p`.
    Random {
        /// Probability that a packet is lost.
        p: f64,
    },
    /// Loses packets in bursts, with the two-state Gilbert-Elliott model.
    ///
    /// In the bad state every packet is lost; the link leaves it after each packet with
    /// probability `1 / mean_burst`, so bursts last `mean_burst` packets on average. The
    /// chance of entering the bad state is set so that the long-run loss fraction is `rate`.
    /// The link starts in a state drawn from that long-run balance.
    GilbertElliott {
        /// Long-run fraction of packets lost.
        rate: f64,
        /// Mean length of a burst of losses, in packets (at least 1).
        mean_burst: f64,
    },
}

/// One direction of a simulated path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// The least time a packet takes: propagation, serialisation, the fixed part of the stack.
    pub base_delay: Nanos,
    /// Random extra delay per packet.
    pub jitter: Jitter,
    /// Fraction of packets that get a delay spike on top of the jitter (a Wi-Fi
    /// retransmission, a power-save wake-up, a scan).
    pub spike_fraction: f64,
    /// Smallest spike.
    pub spike_min: Nanos,
    /// Largest spike; spikes are uniform between `spike_min` and `spike_max`.
    pub spike_max: Nanos,
    /// How packets are lost.
    pub loss: Loss,
    /// Probability that a delivered packet arrives twice; the copy takes its own jitter and
    /// spike.
    pub duplicate: f64,
    /// Probability that a packet is held back `reorder_hold` longer, so that packets sent
    /// after it can overtake it. (Jitter reorders packets on its own as well.)
    pub reorder: f64,
    /// How long a held-back packet is held.
    pub reorder_hold: Nanos,
}

impl LinkConfig {
    /// A link that delivers every packet exactly once after `base_delay`.
    pub fn ideal(base_delay: Nanos) -> Self {
        LinkConfig {
            base_delay,
            jitter: Jitter::None,
            spike_fraction: 0.0,
            spike_min: Nanos::ZERO,
            spike_max: Nanos::ZERO,
            loss: Loss::None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_hold: Nanos::ZERO,
        }
    }

    /// Checks that the configuration can be simulated: probabilities in `[0, 1]`, delays not
    /// negative, `spike_min <= spike_max`, a positive finite Pareto shape, and a reachable
    /// Gilbert-Elliott rate with bursts of at least one packet.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        non_negative("base_delay", self.base_delay)?;
        match self.jitter {
            Jitter::None => {}
            Jitter::Exponential { mean } => non_negative("jitter.mean", mean)?,
            Jitter::Normal { mean, std } => {
                non_negative("jitter.mean", mean)?;
                non_negative("jitter.std", std)?;
            }
            Jitter::Pareto { shape, median } => {
                if !(shape > 0.0 && shape.is_finite()) {
                    return Err(SimConfigError::NotPositive {
                        field: "jitter.shape",
                        got: shape,
                    });
                }
                non_negative("jitter.median", median)?;
            }
        }
        probability("spike_fraction", self.spike_fraction)?;
        non_negative("spike_min", self.spike_min)?;
        non_negative("spike_max", self.spike_max)?;
        if self.spike_min > self.spike_max {
            return Err(SimConfigError::SpikeRange {
                min: self.spike_min,
                max: self.spike_max,
            });
        }
        match self.loss {
            Loss::None => {}
            Loss::Random { p } => probability("loss.p", p)?,
            Loss::GilbertElliott { rate, mean_burst } => {
                probability("loss.rate", rate)?;
                if !(mean_burst >= 1.0 && mean_burst.is_finite()) {
                    return Err(SimConfigError::MeanBurst { got: mean_burst });
                }
                let max = mean_burst / (mean_burst + 1.0);
                if rate > max {
                    return Err(SimConfigError::LossRate {
                        rate,
                        mean_burst,
                        max,
                    });
                }
            }
        }
        probability("duplicate", self.duplicate)?;
        probability("reorder", self.reorder)?;
        non_negative("reorder_hold", self.reorder_hold)
    }
}

fn probability(field: &'static str, got: f64) -> Result<(), SimConfigError> {
    // Written so that NaN fails too.
    if (0.0..=1.0).contains(&got) {
        Ok(())
    } else {
        Err(SimConfigError::Probability { field, got })
    }
}

fn non_negative(field: &'static str, got: Nanos) -> Result<(), SimConfigError> {
    if got >= Nanos::ZERO {
        Ok(())
    } else {
        Err(SimConfigError::NegativeDelay { field, got })
    }
}

/// What became of one transmitted packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The packet never arrives.
    Lost,
    /// The packet arrives once, at this true time.
    Once(SimTime),
    /// The packet arrives twice, at these true times, earlier first (the receiver cannot
    /// tell the original from the copy).
    Twice(SimTime, SimTime),
}

/// Counters of what a link has done, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets transmitted.
    pub sent: u64,
    /// Packets lost.
    pub lost: u64,
    /// Packets delivered twice.
    pub duplicated: u64,
    /// Delivered packets held back by the `reorder` knob (reordering caused by jitter alone
    /// is not counted).
    pub reordered: u64,
    /// Delivered packets that got a delay spike (a duplicate's own spike is not counted).
    pub spiked: u64,
}

/// Fork stream numbers of a link's mechanisms. Fixed forever: changing one would change every
/// seeded result.
const LOSS_STREAM: u64 = 0;
const JITTER_STREAM: u64 = 1;
const SPIKE_STREAM: u64 = 2;
const DUPLICATE_STREAM: u64 = 3;
const REORDER_STREAM: u64 = 4;
const COPY_JITTER_STREAM: u64 = 5;
const COPY_SPIKE_STREAM: u64 = 6;
const EPISODE_JITTER_STREAM: u64 = 7;
const EPISODE_LOSS_STREAM: u64 = 8;

/// A change of a link's behaviour from a true time on: what a scenario's events do to one
/// direction of a path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinkChange {
    /// From `at` on, the base delay is longer by `by` (shorter when negative): a route
    /// change, a roam to another access point. Lasting; changes add up. A link refuses
    /// changes that would take its base delay below zero.
    BaseDelay {
        /// When the path changes.
        at: SimTime,
        /// How much the base delay changes.
        by: Nanos,
    },
    /// From `at` until `until`, every packet gets an extra exponential delay of mean
    /// `jitter_mean` and is lost with an extra probability `loss`: interference, a busy
    /// channel.
    Episode {
        /// When the episode starts.
        at: SimTime,
        /// When it ends.
        until: SimTime,
        /// Mean of the extra exponential delay (zero for none).
        jitter_mean: Nanos,
        /// Extra loss probability in `[0, 1]`.
        loss: f64,
    },
    /// From `at` until `until`, every packet is lost.
    Outage {
        /// When the outage starts.
        at: SimTime,
        /// When packets get through again.
        until: SimTime,
    },
}

impl LinkChange {
    /// When the change starts.
    pub fn at(&self) -> SimTime {
        match *self {
            LinkChange::BaseDelay { at, .. }
            | LinkChange::Episode { at, .. }
            | LinkChange::Outage { at, .. } => at,
        }
    }

    /// When it ends (`SimTime::MAX` for a lasting one).
    pub fn until(&self) -> SimTime {
        match *self {
            LinkChange::BaseDelay { .. } => SimTime::MAX,
            LinkChange::Episode { until, .. } | LinkChange::Outage { until, .. } => until,
        }
    }

    /// Checks the change: an end not before its start, a jitter not negative, a loss that
    /// is a probability.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if self.until() < self.at() {
            return Err(SimConfigError::EndsBeforeStart {
                at: self.at(),
                until: self.until(),
            });
        }
        if let LinkChange::Episode {
            jitter_mean, loss, ..
        } = *self
        {
            non_negative("episode.jitter_mean", jitter_mean)?;
            probability("episode.loss", loss)?;
        }
        Ok(())
    }
}

/// How many times a truncated normal is redrawn before giving zero. With a mean of zero or
/// more each draw is accepted with probability at least 1/2, so the fallback is never seen in
/// practice; it only bounds the loop.
const MAX_REDRAWS: usize = 64;

/// One direction of a simulated path, with its own random state.
#[derive(Clone, Debug)]
pub struct Link {
    config: LinkConfig,
    loss_rng: SimRng,
    duplicate_rng: SimRng,
    reorder_rng: SimRng,
    /// Delays of original packets...
    original: DelayDraws,
    /// ...and of duplicates' copies, apart so that duplicates do not shift the delays of the
    /// packets after them.
    copy: DelayDraws,
    /// Gilbert-Elliott: whether the next packet meets the bad state.
    bad: bool,
    /// Gilbert-Elliott transition probabilities per packet.
    good_to_bad: f64,
    bad_to_good: f64,
    /// Scheduled changes, sorted by start; `reach[i]` is the latest end among the first
    /// `i + 1`, so that the changes active at a time are found without a scan of them all.
    changes: Vec<LinkChange>,
    reach: Vec<SimTime>,
    episode_jitter_rng: SimRng,
    episode_loss_rng: SimRng,
    /// Pareto scale in ns (zero for other jitters).
    pareto_scale: f64,
    stats: LinkStats,
}

impl Link {
    /// A link behaving as `config`, drawing from forks of `rng`.
    ///
    /// Fails if the configuration does not pass [`LinkConfig::validate`].
    pub fn new(config: LinkConfig, rng: SimRng) -> Result<Link, SimConfigError> {
        config.validate()?;
        let mut loss_rng = rng.fork(LOSS_STREAM);
        let (mut bad, mut good_to_bad, mut bad_to_good) = (false, 0.0, 0.0);
        if let Loss::GilbertElliott { rate, mean_burst } = config.loss {
            bad_to_good = 1.0 / mean_burst;
            // Long-run fraction in the bad state: g2b / (g2b + b2g) = rate.
            good_to_bad = rate * bad_to_good / (1.0 - rate);
            bad = loss_rng.chance(rate);
        }
        let pareto_scale = match config.jitter {
            // median / 2^(1/shape), through the reproducible exp.
            Jitter::Pareto { shape, median } => {
                median.as_nanos() as f64 * exp(-core::f64::consts::LN_2 / shape)
            }
            _ => 0.0,
        };
        Ok(Link {
            config,
            loss_rng,
            duplicate_rng: rng.fork(DUPLICATE_STREAM),
            reorder_rng: rng.fork(REORDER_STREAM),
            original: DelayDraws::new(&rng, JITTER_STREAM, SPIKE_STREAM),
            copy: DelayDraws::new(&rng, COPY_JITTER_STREAM, COPY_SPIKE_STREAM),
            bad,
            good_to_bad,
            bad_to_good,
            pareto_scale,
            changes: Vec::new(),
            reach: Vec::new(),
            episode_jitter_rng: rng.fork(EPISODE_JITTER_STREAM),
            episode_loss_rng: rng.fork(EPISODE_LOSS_STREAM),
            stats: LinkStats::default(),
        })
    }

    /// A link behaving as `config` with `changes` scheduled on it (see [`LinkChange`]).
    ///
    /// The changes draw from generators of their own, so the packets' ordinary jitter, loss
    /// and spikes are the same luck with or without them. Fails if the configuration or a
    /// change does not validate.
    pub fn with_changes(
        config: LinkConfig,
        rng: SimRng,
        changes: &[LinkChange],
    ) -> Result<Link, SimConfigError> {
        let mut link = Link::new(config, rng)?;
        for c in changes {
            c.validate()?;
        }
        link.changes = changes.to_vec();
        link.index_changes();
        link.check_base_delay()?;
        Ok(link)
    }

    /// Adds one more change to a running link (a driver in real time schedules an outage
    /// or a path step as it goes). The link's luck is untouched: packets draw the same
    /// numbers as they would have without it. Fails if the change does not validate.
    pub fn schedule(&mut self, change: LinkChange) -> Result<(), SimConfigError> {
        change.validate()?;
        self.changes.push(change);
        self.index_changes();
        if let Err(e) = self.check_base_delay() {
            let i = self.changes.iter().rposition(|c| *c == change);
            if let Some(i) = i {
                self.changes.remove(i);
            }
            self.index_changes();
            return Err(e);
        }
        Ok(())
    }

    /// Fails if the base-delay changes, added up in time order, ever take the base delay
    /// below zero: a packet cannot arrive before it was sent, and a step larger than the
    /// path's delay is a scenario this link cannot run. (It used to clamp at zero: a −1 ms
    /// one-way step on `lan`, whose base delay is far less, silently became a much smaller
    /// one.)
    fn check_base_delay(&self) -> Result<(), SimConfigError> {
        let mut delay = self.config.base_delay;
        for c in &self.changes {
            if let LinkChange::BaseDelay { at, by } = *c {
                delay += by;
                if delay < Nanos::ZERO {
                    return Err(SimConfigError::PathBelowZero { at, delay });
                }
            }
        }
        Ok(())
    }

    /// Sorts the changes by start and rebuilds `reach`.
    fn index_changes(&mut self) {
        self.changes.sort_by_key(|c| c.at());
        let mut reach = SimTime::ZERO;
        self.reach = self
            .changes
            .iter()
            .map(|c| {
                reach = reach.max(c.until());
                reach
            })
            .collect();
    }

    /// The base-delay change, extra jitter mean, extra loss and outage in force at `now`.
    fn in_force(&self, now: SimTime) -> (i64, f64, f64, bool) {
        let (mut delay, mut jitter, mut loss, mut out) = (0i64, 0.0, 0.0, false);
        let started = self.changes.partition_point(|c| c.at() <= now);
        for i in (0..started).rev() {
            if self.reach[i] <= now {
                break;
            }
            match self.changes[i] {
                LinkChange::BaseDelay { by, .. } => delay = delay.saturating_add(by.as_nanos()),
                LinkChange::Episode {
                    until,
                    jitter_mean,
                    loss: p,
                    ..
                } if until > now => {
                    jitter += jitter_mean.as_nanos() as f64;
                    // Independent extra losses combine.
                    loss = 1.0 - (1.0 - loss) * (1.0 - p);
                }
                LinkChange::Outage { until, .. } if until > now => out = true,
                _ => {}
            }
        }
        (delay, jitter, loss, out)
    }

    /// The configuration this link runs.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// What the link has done so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Sends one packet at true time `now` and says when it arrives, if at all.
    pub fn transmit(&mut self, now: SimTime) -> Delivery {
        self.stats.sent += 1;
        // Draw for every mechanism before deciding anything; see the module docs.
        let lost = self.draw_loss();
        let (delay, spiked) = self.original.draw(&self.config, self.pareto_scale);
        let held = self.reorder_rng.chance(self.config.reorder);
        let duplicated = self.duplicate_rng.chance(self.config.duplicate);
        let (mut delay, mut lost, mut extra_delay) = (delay, lost, Nanos::ZERO);
        if !self.changes.is_empty() {
            let (shift, jitter, loss, out) = self.in_force(now);
            // Drawn for every packet, in force or not: see the module docs.
            let extra = self.episode_jitter_rng.exponential(jitter.max(0.0));
            let extra_lost = self.episode_loss_rng.chance(loss);
            let base = self.config.base_delay.as_nanos();
            let shifted = base.saturating_add(shift).max(0) - base;
            extra_delay = Nanos(shifted) + Nanos(extra.round() as i64);
            delay += extra_delay;
            lost |= out || extra_lost;
        }
        if lost {
            self.stats.lost += 1;
            return Delivery::Lost;
        }
        let mut first = now + delay;
        if spiked {
            self.stats.spiked += 1;
        }
        if held {
            self.stats.reordered += 1;
            first += self.config.reorder_hold;
        }
        if !duplicated {
            return Delivery::Once(first);
        }
        self.stats.duplicated += 1;
        let (copy_delay, _) = self.copy.draw(&self.config, self.pareto_scale);
        let second = now + copy_delay + extra_delay;
        Delivery::Twice(first.min(second), first.max(second))
    }

    /// Whether this packet is lost, advancing the Gilbert-Elliott chain.
    fn draw_loss(&mut self) -> bool {
        match self.config.loss {
            Loss::None => false,
            Loss::Random { p } => self.loss_rng.chance(p),
            Loss::GilbertElliott { .. } => {
                let lost = self.bad;
                let leave = if self.bad {
                    self.bad_to_good
                } else {
                    self.good_to_bad
                };
                if self.loss_rng.chance(leave) {
                    self.bad = !self.bad;
                }
                lost
            }
        }
    }
}

/// The generators behind one packet's delay.
#[derive(Clone, Debug)]
struct DelayDraws {
    jitter: SimRng,
    spike: SimRng,
}

impl DelayDraws {
    fn new(rng: &SimRng, jitter_stream: u64, spike_stream: u64) -> DelayDraws {
        DelayDraws {
            jitter: rng.fork(jitter_stream),
            spike: rng.fork(spike_stream),
        }
    }

    /// Base delay plus jitter plus any spike, and whether there was a spike.
    fn draw(&mut self, config: &LinkConfig, pareto_scale: f64) -> (Nanos, bool) {
        let rng = &mut self.jitter;
        let jitter = match config.jitter {
            Jitter::None => 0.0,
            Jitter::Exponential { mean } => rng.exponential(mean.as_nanos() as f64),
            Jitter::Normal { mean, std } => {
                let (mean, std) = (mean.as_nanos() as f64, std.as_nanos() as f64);
                (0..MAX_REDRAWS)
                    .map(|_| rng.normal(mean, std))
                    .find(|&x| x >= 0.0)
                    .unwrap_or(0.0)
            }
            Jitter::Pareto { shape, .. } => rng.pareto(shape, pareto_scale),
        };
        let spiked = self.spike.chance(config.spike_fraction);
        let spike = if spiked {
            let (lo, hi) = (config.spike_min.as_nanos(), config.spike_max.as_nanos());
            self.spike.uniform(lo as f64, hi as f64)
        } else {
            0.0
        };
        // Float to integer conversions saturate, so a huge Pareto draw cannot wrap.
        let delay = config.base_delay + Nanos(jitter.round() as i64) + Nanos(spike.round() as i64);
        (delay, spiked)
    }
}

/// The two directions between the leader and one follower.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathConfig {
    /// Leader to follower: Sync, Follow_Up, Delay_Resp, media.
    pub to_follower: LinkConfig,
    /// Follower to leader: Delay_Req, receiver reports.
    pub to_leader: LinkConfig,
}

impl PathConfig {
    /// The names [`PathConfig::preset`] knows.
    pub const PRESETS: &'static [&'static str] = &["lan", "wifi", "congested_wifi", "asymmetric"];

    /// The same link in both directions.
    pub fn symmetric(link: LinkConfig) -> Self {
        PathConfig {
            to_follower: link,
            to_leader: link,
        }
    }

    /// A wired LAN through a switch or two: 150 µs each way, exponential jitter with a mean
    /// of 30 µs, 0.1 % of packets lost.
    pub fn lan() -> Self {
        PathConfig::symmetric(LinkConfig {
            jitter: Jitter::Exponential {
                mean: Nanos::from_micros(30),
            },
            loss: Loss::Random { p: 0.001 },
            ..LinkConfig::ideal(Nanos::from_micros(150))
        })
    }

    /// A home Wi-Fi network: 1.5 ms each way, exponential jitter with a mean of 2 ms, 3 % of
    /// packets delayed a further 10–60 ms (retransmissions, power save), 1 % lost.
    pub fn wifi() -> Self {
        PathConfig::symmetric(LinkConfig {
            jitter: Jitter::Exponential {
                mean: Nanos::from_millis(2),
            },
            spike_fraction: 0.03,
            spike_min: Nanos::from_millis(10),
            spike_max: Nanos::from_millis(60),
            loss: Loss::Random { p: 0.01 },
            ..LinkConfig::ideal(Nanos::from_micros(1_500))
        })
    }

    /// A busy Wi-Fi network: 3 ms each way, heavy-tailed Pareto jitter (shape 1.5, median
    /// 4 ms), 10 % of packets delayed a further 20–150 ms, 3 % lost in bursts of 5 on
    /// average.
    pub fn congested_wifi() -> Self {
        PathConfig::symmetric(LinkConfig {
            jitter: Jitter::Pareto {
                shape: 1.5,
                median: Nanos::from_millis(4),
            },
            spike_fraction: 0.10,
            spike_min: Nanos::from_millis(20),
            spike_max: Nanos::from_millis(150),
            loss: Loss::GilbertElliott {
                rate: 0.03,
                mean_burst: 5.0,
            },
            ..LinkConfig::ideal(Nanos::from_millis(3))
        })
    }

    /// [`PathConfig::wifi`] with 1 ms more base delay from follower to leader: the case a
    /// symmetric-delay assumption gets wrong by half of that.
    pub fn asymmetric() -> Self {
        let mut path = PathConfig::wifi();
        path.to_leader.base_delay += Nanos::from_millis(1);
        path
    }

    /// The preset called `name` (one of [`PathConfig::PRESETS`]), if there is one.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "lan" => Some(PathConfig::lan()),
            "wifi" => Some(PathConfig::wifi()),
            "congested_wifi" => Some(PathConfig::congested_wifi()),
            "asymmetric" => Some(PathConfig::asymmetric()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(config: LinkConfig, seed: u64) -> Link {
        Link::new(config, SimRng::new(seed)).unwrap()
    }

    /// Arrival delays of `n` packets sent 1 ms apart, `None` for the lost ones.
    fn delays(link: &mut Link, n: usize) -> Vec<Option<Nanos>> {
        (0..n)
            .map(|i| {
                let now = SimTime::ZERO + Nanos::from_millis(i as i64);
                match link.transmit(now) {
                    Delivery::Lost => None,
                    Delivery::Once(at) | Delivery::Twice(at, _) => Some(at - now),
                }
            })
            .collect()
    }

    fn median(mut v: Vec<i64>) -> i64 {
        v.sort_unstable();
        v[v.len() / 2]
    }

    #[test]
    fn an_ideal_link_delivers_everything_after_its_base_delay() {
        let mut l = link(LinkConfig::ideal(Nanos::from_micros(250)), 1);
        let now = SimTime::from_secs_f64(2.0);
        assert_eq!(
            l.transmit(now),
            Delivery::Once(now + Nanos::from_micros(250))
        );
        assert_eq!(l.stats().sent, 1);
        assert_eq!(l.config(), &LinkConfig::ideal(Nanos::from_micros(250)));
    }

    #[test]
    fn bursty_loss_has_its_rate_and_burst_length() {
        let config = LinkConfig {
            loss: Loss::GilbertElliott {
                rate: 0.03,
                mean_burst: 5.0,
            },
            ..LinkConfig::ideal(Nanos::from_micros(100))
        };
        let mut l = link(config, 2);
        let (mut lost, mut bursts, mut in_burst) = (0u64, 0u64, false);
        for _ in 0..1_000_000 {
            let gone = l.transmit(SimTime::ZERO) == Delivery::Lost;
            lost += gone as u64;
            bursts += (gone && !in_burst) as u64;
            in_burst = gone;
        }
        let rate = lost as f64 / 1e6;
        let mean_burst = lost as f64 / bursts as f64;
        assert!((rate - 0.03).abs() < 0.003, "loss rate {rate}");
        assert!((mean_burst - 5.0).abs() < 0.25, "mean burst {mean_burst}");
        assert_eq!(l.stats().lost, lost);
    }

    #[test]
    fn random_loss_has_its_rate() {
        let config = LinkConfig {
            loss: Loss::Random { p: 0.1 },
            ..LinkConfig::ideal(Nanos::from_micros(100))
        };
        let mut l = link(config, 3);
        let lost = delays(&mut l, 100_000)
            .iter()
            .filter(|d| d.is_none())
            .count();
        assert!((lost as f64 / 1e5 - 0.1).abs() < 0.005);
    }

    #[test]
    fn exponential_jitter_has_its_mean() {
        let config = LinkConfig {
            jitter: Jitter::Exponential {
                mean: Nanos::from_micros(500),
            },
            ..LinkConfig::ideal(Nanos::from_millis(1))
        };
        let d: Vec<i64> = delays(&mut link(config, 4), 100_000)
            .into_iter()
            .map(|d| d.unwrap().as_nanos() - 1_000_000)
            .collect();
        assert!(d.iter().all(|&x| x >= 0));
        let mean = d.iter().sum::<i64>() as f64 / d.len() as f64;
        assert!((mean - 500_000.0).abs() < 5_000.0, "mean jitter {mean}");
    }

    #[test]
    fn normal_jitter_never_goes_below_the_base_delay() {
        let config = LinkConfig {
            jitter: Jitter::Normal {
                mean: Nanos::from_micros(100),
                std: Nanos::from_micros(100),
            },
            ..LinkConfig::ideal(Nanos::from_millis(1))
        };
        let d: Vec<i64> = delays(&mut link(config, 5), 100_000)
            .into_iter()
            .map(|d| d.unwrap().as_nanos() - 1_000_000)
            .collect();
        assert!(d.iter().all(|&x| x >= 0));
        // A normal truncated one standard deviation below its mean has its median 0.2 standard
        // deviations above the mean.
        let m = median(d) as f64;
        assert!((m - 120_000.0).abs() < 3_000.0, "median {m}");
    }

    #[test]
    fn pareto_jitter_has_its_median_and_floor() {
        let (shape, median_ns) = (1.5, 4_000_000);
        let config = LinkConfig {
            jitter: Jitter::Pareto {
                shape,
                median: Nanos(median_ns),
            },
            ..LinkConfig::ideal(Nanos::from_millis(3))
        };
        let d: Vec<i64> = delays(&mut link(config, 6), 100_000)
            .into_iter()
            .map(|d| d.unwrap().as_nanos() - 3_000_000)
            .collect();
        let scale = median_ns as f64 / 2f64.powf(1.0 / shape);
        assert!(d.iter().all(|&x| x as f64 >= scale - 1.0));
        let m = median(d) as f64;
        assert!((m / median_ns as f64 - 1.0).abs() < 0.02, "median {m}");
    }

    #[test]
    fn spikes_hit_their_fraction_within_their_range() {
        let config = LinkConfig {
            spike_fraction: 0.1,
            spike_min: Nanos::from_millis(20),
            spike_max: Nanos::from_millis(150),
            ..LinkConfig::ideal(Nanos::from_millis(1))
        };
        let mut l = link(config, 7);
        let d = delays(&mut l, 100_000);
        let spikes: Vec<i64> = d
            .iter()
            .map(|d| d.unwrap().as_nanos() - 1_000_000)
            .filter(|&x| x > 0)
            .collect();
        assert!((spikes.len() as f64 / 1e5 - 0.1).abs() < 0.005);
        assert!(
            spikes
                .iter()
                .all(|&x| (20_000_000..=150_000_000).contains(&x))
        );
        let mean = spikes.iter().sum::<i64>() as f64 / spikes.len() as f64;
        assert!((mean - 85e6).abs() < 2e6, "mean spike {mean}");
        assert_eq!(l.stats().spiked, spikes.len() as u64);
    }

    #[test]
    fn duplicates_arrive_twice_with_their_own_jitter() {
        let config = LinkConfig {
            jitter: Jitter::Exponential {
                mean: Nanos::from_micros(200),
            },
            duplicate: 1.0,
            ..LinkConfig::ideal(Nanos::from_millis(1))
        };
        let mut l = link(config, 8);
        let mut differ = 0;
        for i in 0..1000 {
            let now = SimTime(i * 1_000_000);
            match l.transmit(now) {
                Delivery::Twice(a, b) => {
                    assert!(now + Nanos::from_millis(1) <= a && a <= b);
                    differ += (a != b) as u32;
                }
                other => panic!("expected two copies, got {other:?}"),
            }
        }
        assert!(differ > 990);
        assert_eq!(l.stats().duplicated, 1000);
    }

    #[test]
    fn held_packets_are_overtaken() {
        let config = LinkConfig {
            reorder: 0.25,
            reorder_hold: Nanos::from_millis(10),
            ..LinkConfig::ideal(Nanos::from_millis(1))
        };
        let mut l = link(config, 9);
        let d = delays(&mut l, 10_000);
        let held = d
            .iter()
            .filter(|&&d| d == Some(Nanos::from_millis(11)))
            .count();
        assert!(
            d.iter()
                .all(|&d| d == Some(Nanos::from_millis(1)) || d == Some(Nanos::from_millis(11)))
        );
        assert!((held as f64 / 1e4 - 0.25).abs() < 0.02);
        assert_eq!(l.stats().reordered, held as u64);
    }

    #[test]
    fn the_same_seed_gives_the_same_deliveries() {
        let config = PathConfig::congested_wifi().to_follower;
        let run = |seed| {
            let mut l = link(config, seed);
            (0..2000)
                .map(|i| l.transmit(SimTime(i * 20_000_000)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(10), run(10));
        assert_ne!(run(10), run(11));
    }

    #[test]
    fn loss_settings_do_not_change_the_delays_of_delivered_packets() {
        let lossless = PathConfig::wifi().to_follower;
        let lossy = LinkConfig {
            loss: Loss::GilbertElliott {
                rate: 0.2,
                mean_burst: 3.0,
            },
            duplicate: 0.1,
            ..lossless
        };
        let (mut a, mut b) = (link(lossless, 12), link(lossy, 12));
        let mut compared = 0;
        for i in 0..5000 {
            let now = SimTime(i * 1_000_000);
            let Delivery::Once(want) = a.transmit(now) else {
                // The lossless link loses nothing but `wifi`'s own random 1 %.
                b.transmit(now);
                continue;
            };
            match b.transmit(now) {
                Delivery::Lost => {}
                Delivery::Once(got) => assert_eq!(got, want),
                // The original is one of the two; which one depends on the copy's luck.
                Delivery::Twice(x, y) => assert!(x == want || y == want),
            }
            compared += 1;
        }
        assert!(compared > 4900);
    }

    #[test]
    fn every_preset_is_named_and_valid() {
        for &name in PathConfig::PRESETS {
            let path = PathConfig::preset(name).unwrap();
            path.to_follower.validate().unwrap();
            path.to_leader.validate().unwrap();
        }
        assert_eq!(PathConfig::preset("dial-up"), None);
        let (wifi, asym) = (PathConfig::wifi(), PathConfig::asymmetric());
        assert_eq!(asym.to_follower, wifi.to_follower);
        assert_eq!(
            asym.to_leader.base_delay - wifi.to_leader.base_delay,
            Nanos::from_millis(1)
        );
        assert_eq!(PathConfig::lan().to_leader, PathConfig::lan().to_follower);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let ok = LinkConfig::ideal(Nanos::from_millis(1));
        let err = |c: LinkConfig| Link::new(c, SimRng::new(0)).unwrap_err();
        assert_eq!(
            err(LinkConfig {
                spike_fraction: 1.5,
                ..ok
            }),
            SimConfigError::Probability {
                field: "spike_fraction",
                got: 1.5
            }
        );
        assert!(matches!(
            err(LinkConfig {
                loss: Loss::Random { p: f64::NAN },
                ..ok
            }),
            SimConfigError::Probability {
                field: "loss.p",
                ..
            }
        ));
        assert_eq!(
            err(LinkConfig::ideal(Nanos(-1))),
            SimConfigError::NegativeDelay {
                field: "base_delay",
                got: Nanos(-1)
            }
        );
        assert!(matches!(
            err(LinkConfig {
                spike_min: Nanos(5),
                spike_max: Nanos(4),
                ..ok
            }),
            SimConfigError::SpikeRange { .. }
        ));
        assert!(matches!(
            err(LinkConfig {
                jitter: Jitter::Pareto {
                    shape: 0.0,
                    median: Nanos(1)
                },
                ..ok
            }),
            SimConfigError::NotPositive {
                field: "jitter.shape",
                ..
            }
        ));
        let ge = |rate, mean_burst| LinkConfig {
            loss: Loss::GilbertElliott { rate, mean_burst },
            ..ok
        };
        assert_eq!(err(ge(0.1, 0.5)), SimConfigError::MeanBurst { got: 0.5 });
        assert!(matches!(err(ge(0.6, 1.0)), SimConfigError::LossRate { .. }));
        assert!(matches!(err(ge(1.0, 5.0)), SimConfigError::LossRate { .. }));
        assert!(Link::new(ge(0.5, 1.0), SimRng::new(0)).is_ok());
        assert!(matches!(
            err(LinkConfig {
                reorder_hold: Nanos(-3),
                ..ok
            }),
            SimConfigError::NegativeDelay {
                field: "reorder_hold",
                ..
            }
        ));
    }

    #[test]
    fn a_change_scheduled_on_a_running_link_acts_as_one_given_at_the_start() {
        let config = PathConfig::wifi().to_follower;
        let outage = LinkChange::Outage {
            at: SimTime(50_000_000),
            until: SimTime(80_000_000),
        };
        let mut planned = Link::with_changes(config, SimRng::new(5), &[outage]).unwrap();
        let mut late = Link::new(config, SimRng::new(5)).unwrap();
        let run = |l: &mut Link, from: i64, to: i64| {
            (from..to)
                .map(|i| l.transmit(SimTime(i * 1_000_000)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(&mut planned, 0, 40), run(&mut late, 0, 40));
        late.schedule(outage).unwrap();
        let (a, b) = (run(&mut planned, 40, 100), run(&mut late, 40, 100));
        assert_eq!(a, b);
        assert!(a[10..40].iter().all(|d| *d == Delivery::Lost));
        let backwards = LinkChange::Outage {
            at: SimTime(5),
            until: SimTime(4),
        };
        assert!(late.schedule(backwards).is_err());
    }

    #[test]
    fn path_steps_that_take_the_base_delay_below_zero_are_refused() {
        let ms = |v: i64| SimTime(v * 1_000_000);
        let config = LinkConfig::ideal(Nanos::from_micros(150));
        let step = |at: i64, us: i64| LinkChange::BaseDelay {
            at: ms(at),
            by: Nanos::from_micros(us),
        };
        // Up first, then down by more than the base: fine, the delay never goes negative.
        assert!(
            Link::with_changes(config, SimRng::new(1), &[step(10, 2000), step(20, -2000)]).is_ok()
        );
        // Down by more than the base: refused, saying when and the delay it would leave.
        let err = Link::with_changes(config, SimRng::new(1), &[step(10, -1000)])
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            err,
            SimConfigError::PathBelowZero {
                at: ms(10),
                delay: Nanos::from_micros(-850)
            }
        );
        // A running link refuses it too, and runs on as before.
        let mut link = Link::with_changes(config, SimRng::new(1), &[]).unwrap();
        assert!(link.schedule(step(10, -1000)).is_err());
        assert_eq!(
            link.transmit(ms(30)),
            Delivery::Once(ms(30) + Nanos::from_micros(150))
        );
    }

    #[test]
    fn scheduled_changes_move_the_base_delay_cut_the_link_and_add_episodes() {
        let ms = |v: i64| SimTime(v * 1_000_000);
        let changes = [
            LinkChange::BaseDelay {
                at: ms(1000),
                by: Nanos::from_micros(2500),
            },
            LinkChange::BaseDelay {
                at: ms(3000),
                by: Nanos::from_millis(-4),
            },
            LinkChange::Outage {
                at: ms(1500),
                until: ms(1600),
            },
            LinkChange::Episode {
                at: ms(2000),
                until: ms(2500),
                jitter_mean: Nanos::from_millis(3),
                loss: 0.5,
            },
        ];
        let config = LinkConfig::ideal(Nanos::from_micros(1500));
        let mut link = Link::with_changes(config, SimRng::new(1), &changes).unwrap();
        let delay = |link: &mut Link, t: SimTime| match link.transmit(t) {
            Delivery::Once(at) => Some((at - t).as_nanos()),
            Delivery::Lost => None,
            Delivery::Twice(..) => panic!("no duplicates configured"),
        };
        assert_eq!(delay(&mut link, ms(999)), Some(1_500_000));
        assert_eq!(delay(&mut link, ms(1000)), Some(4_000_000));
        assert_eq!(delay(&mut link, ms(1550)), None);
        assert_eq!(delay(&mut link, ms(1600)), Some(4_000_000));
        // In the episode: about half lost, the rest late by about 3 ms on average.
        let (mut lost, mut extra, mut n) = (0, 0.0, 0);
        for i in 0..500 {
            match delay(&mut link, SimTime(ms(2000).0 + i * 1_000_000)) {
                None => lost += 1,
                Some(d) => {
                    assert!(d >= 4_000_000);
                    extra += (d - 4_000_000) as f64;
                    n += 1;
                }
            }
        }
        assert!((200..300).contains(&lost), "{lost} of 500 lost");
        let mean = extra / n as f64;
        assert!((2.4e6..3.6e6).contains(&mean), "mean extra {mean} ns");
        assert_eq!(delay(&mut link, ms(2600)), Some(4_000_000));
        // Down to zero (below is refused: see the test before).
        assert_eq!(delay(&mut link, ms(3000)), Some(0));
        let backwards = LinkChange::Outage {
            at: ms(5),
            until: ms(4),
        };
        assert!(matches!(
            Link::with_changes(config, SimRng::new(1), &[backwards]),
            Err(SimConfigError::EndsBeforeStart { .. })
        ));
    }
}
