//! Timed events: what changes in a simulated home while the music plays.
//!
//! A scenario is a network preset plus a list of [`Event`]s at given true times: a path
//! that changes (a roam, a mesh re-route, one direction only), an episode of heavier jitter
//! or loss, an outage, a crystal whose frequency moves (warm-up, ramp, thermal cycle, extra
//! wander), a leader clock step, a restart of the leader or the follower, and for the
//! playout experiment a stalled DAC or a follower that gets no CPU.
//!
//! Events are data. [`Events::split`] turns them into what each simulated component takes:
//! [`LinkChange`]s for each direction, [`FrequencyChange`]s and steps for each clock, and the
//! restarts and stalls a driver carries out itself. [`family`] gives the named scenario
//! families that the sync report runs (`sync_report --scenario roam`), and
//! [`crate::sim::scenario_file`] reads a user's own from a file.

use super::{FrequencyChange, LinkChange, SimRng, SimTime};
use crate::time::Nanos;

/// Which direction of the path an event changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Both directions alike.
    Both,
    /// Leader to follower only (Sync, Follow_Up, Delay_Resp, media).
    ToFollower,
    /// Follower to leader only (Delay_Req).
    ToLeader,
}

impl Direction {
    fn down(self) -> bool {
        matches!(self, Direction::Both | Direction::ToFollower)
    }

    fn up(self) -> bool {
        matches!(self, Direction::Both | Direction::ToLeader)
    }
}

/// Whose crystal a frequency event changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// The leader's clock.
    Leader,
    /// The follower's clock (in the playout experiment: every follower's, each from its own
    /// generator).
    Follower,
}

/// What happens at an event's time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventKind {
    /// The base delay of `direction` changes by `by` and stays so.
    PathStep {
        /// The direction(s) that change.
        direction: Direction,
        /// How much the base delay changes (negative: faster).
        by: Nanos,
    },
    /// For `duration`, extra exponential jitter of mean `jitter_mean` and an extra loss
    /// probability `loss` on `direction`.
    Episode {
        /// The direction(s) affected.
        direction: Direction,
        /// How long it lasts.
        duration: Nanos,
        /// Mean extra delay (zero for none).
        jitter_mean: Nanos,
        /// Extra loss probability.
        loss: f64,
    },
    /// For `duration`, nothing gets through on `direction`.
    Outage {
        /// The direction(s) cut.
        direction: Direction,
        /// How long it lasts.
        duration: Nanos,
    },
    /// A crystal's frequency changes (see [`FrequencyChange`]; its `at` is the event's).
    Frequency {
        /// Whose crystal.
        node: Node,
        /// The change; its start time is replaced by the event's time.
        change: FrequencyChange,
    },
    /// The leader's clock reading jumps by `by` (someone set it).
    LeaderStep {
        /// The jump (negative: back).
        by: Nanos,
    },
    /// The leader restarts: a new clock identity (and in the playout, a new SSRC), its clock
    /// reading jumped by `step` (zero when it reads the same system clock as before).
    LeaderRestart {
        /// How much the new leader's clock differs from the old one's.
        step: Nanos,
    },
    /// The follower restarts: its estimator, slave and receiver start from nothing; its
    /// crystal runs on.
    FollowerRestart,
    /// The follower's DAC takes no frames for `duration` (playout only).
    DacStall {
        /// How long it stalls.
        duration: Nanos,
    },
    /// The follower gets no CPU for `duration`: nothing it receives is handled until then
    /// (playout only; in the sync experiment the slave's packets wait).
    Starve {
        /// How long.
        duration: Nanos,
    },
}

/// One timed event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    /// True time at which it happens.
    pub at: SimTime,
    /// What happens.
    pub kind: EventKind,
}

impl Event {
    /// A short description for reports: `path both +2.50 ms`, `leader step +1000 ms`, ….
    pub fn label(&self) -> String {
        let dir = |d: Direction| match d {
            Direction::Both => "both",
            Direction::ToFollower => "to_follower",
            Direction::ToLeader => "to_leader",
        };
        let ms = |n: Nanos| n.as_nanos() as f64 / 1e6;
        let node = |n: Node| match n {
            Node::Leader => "leader",
            Node::Follower => "follower",
        };
        match self.kind {
            EventKind::PathStep { direction, by } => {
                format!("path {} {:+.2} ms", dir(direction), ms(by))
            }
            EventKind::Episode {
                direction,
                duration,
                jitter_mean,
                loss,
            } => format!(
                "episode {} {:.1} s +{:.1} ms jitter {:.0}% loss",
                dir(direction),
                ms(duration) / 1e3,
                ms(jitter_mean),
                loss * 100.0
            ),
            EventKind::Outage {
                direction,
                duration,
            } => format!("outage {} {:.1} s", dir(direction), ms(duration) / 1e3),
            EventKind::Frequency { node: n, change } => match change {
                FrequencyChange::Warmup { by_ppm, tau, .. } => format!(
                    "{} warmup {:+.1} ppm tau {:.0} s",
                    node(n),
                    by_ppm,
                    ms(tau) / 1e3
                ),
                FrequencyChange::Ramp { by_ppm, over, .. } => format!(
                    "{} ramp {:+.1} ppm over {:.0} s",
                    node(n),
                    by_ppm,
                    ms(over) / 1e3
                ),
                FrequencyChange::Sine {
                    amplitude_ppm,
                    period,
                    ..
                } => format!(
                    "{} sine ±{:.1} ppm period {:.0} s",
                    node(n),
                    amplitude_ppm,
                    ms(period) / 1e3
                ),
                FrequencyChange::Walk { ppm_per_sqrt_s, .. } => {
                    format!("{} walk {:.3} ppm/√s", node(n), ppm_per_sqrt_s)
                }
            },
            EventKind::LeaderStep { by } => format!("leader step {:+.1} ms", ms(by)),
            EventKind::LeaderRestart { step } => {
                format!("leader restart (clock {:+.1} ms)", ms(step))
            }
            EventKind::FollowerRestart => "follower restart".into(),
            EventKind::DacStall { duration } => format!("dac stall {:.0} ms", ms(duration)),
            EventKind::Starve { duration } => format!("no cpu {:.0} ms", ms(duration)),
        }
    }

    /// Whether the event moves the clock relation or the path in a way an estimator must
    /// notice (everything but stalls and starvation, which only the playout sees).
    pub fn is_clock_event(&self) -> bool {
        !matches!(
            self.kind,
            EventKind::DacStall { .. } | EventKind::Starve { .. }
        )
    }
}

/// A scenario's events, and what they mean for each simulated component.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Events {
    /// The events, in time order.
    pub events: Vec<Event>,
}

/// What the events do to each component (see [`Events::split`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    /// Changes of the leader→follower link.
    pub to_follower: Vec<LinkChange>,
    /// Changes of the follower→leader link.
    pub to_leader: Vec<LinkChange>,
    /// Frequency changes of the leader's clock.
    pub leader_frequency: Vec<FrequencyChange>,
    /// Frequency changes of the follower's clock.
    pub follower_frequency: Vec<FrequencyChange>,
    /// Steps of the leader's clock reading (leader steps and restarts with a step).
    pub leader_steps: Vec<(SimTime, Nanos)>,
    /// Times at which the leader restarts with a new identity.
    pub leader_restarts: Vec<SimTime>,
    /// Times at which the follower restarts.
    pub follower_restarts: Vec<SimTime>,
    /// DAC stalls: start and length.
    pub dac_stalls: Vec<(SimTime, Nanos)>,
    /// CPU starvation: start and length.
    pub starvation: Vec<(SimTime, Nanos)>,
}

impl Events {
    /// Events from a list, sorted by time (stable: events at the same time keep their order).
    pub fn new(mut events: Vec<Event>) -> Events {
        events.sort_by_key(|e| e.at);
        Events { events }
    }

    /// No events.
    pub fn none() -> Events {
        Events::default()
    }

    /// Splits the events into what each component takes.
    pub fn split(&self) -> Split {
        let mut s = Split::default();
        for e in &self.events {
            let at = e.at;
            let mut link = |d: Direction, c: LinkChange| {
                if d.down() {
                    s.to_follower.push(c);
                }
                if d.up() {
                    s.to_leader.push(c);
                }
            };
            match e.kind {
                EventKind::PathStep { direction, by } => {
                    link(direction, LinkChange::BaseDelay { at, by })
                }
                EventKind::Episode {
                    direction,
                    duration,
                    jitter_mean,
                    loss,
                } => link(
                    direction,
                    LinkChange::Episode {
                        at,
                        until: at + duration,
                        jitter_mean,
                        loss,
                    },
                ),
                EventKind::Outage {
                    direction,
                    duration,
                } => link(
                    direction,
                    LinkChange::Outage {
                        at,
                        until: at + duration,
                    },
                ),
                EventKind::Frequency { node, change } => {
                    let change = with_start(change, at);
                    match node {
                        Node::Leader => s.leader_frequency.push(change),
                        Node::Follower => s.follower_frequency.push(change),
                    }
                }
                EventKind::LeaderStep { by } => s.leader_steps.push((at, by)),
                EventKind::LeaderRestart { step } => {
                    s.leader_restarts.push(at);
                    if step != Nanos::ZERO {
                        s.leader_steps.push((at, step));
                    }
                }
                EventKind::FollowerRestart => s.follower_restarts.push(at),
                EventKind::DacStall { duration } => s.dac_stalls.push((at, duration)),
                EventKind::Starve { duration } => s.starvation.push((at, duration)),
            }
        }
        s
    }
}

/// `change` starting at `at`.
fn with_start(change: FrequencyChange, at: SimTime) -> FrequencyChange {
    match change {
        FrequencyChange::Warmup { by_ppm, tau, .. } => FrequencyChange::Warmup { at, by_ppm, tau },
        FrequencyChange::Ramp { by_ppm, over, .. } => FrequencyChange::Ramp { at, by_ppm, over },
        FrequencyChange::Sine {
            amplitude_ppm,
            period,
            ..
        } => FrequencyChange::Sine {
            at,
            amplitude_ppm,
            period,
        },
        FrequencyChange::Walk { ppm_per_sqrt_s, .. } => {
            FrequencyChange::Walk { at, ppm_per_sqrt_s }
        }
    }
}

/// One member of a named family: a name for reports, its events, and whether the master
/// gives the follower its start burst.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// `family/variant`, e.g. `roam/+2.5ms`.
    pub name: String,
    /// The events.
    pub events: Events,
    /// Whether the follower gets the master's tapering start burst (`no_burst` turns it
    /// off).
    pub start_burst: bool,
    /// How much longer than the network preset's the path is from the start, both ways: a
    /// roam to a nearer access point needs a path it can shorten (`roam/-2.5ms` on `wifi`,
    /// whose base delay is 1.5 ms, starts at 4 ms).
    pub longer_path: Nanos,
}

/// The names [`family`] knows, in report order.
pub const FAMILIES: &[&str] = &[
    "roam",
    "mesh_reroute",
    "warmup",
    "wander",
    "asym_up",
    "asym_down",
    "microwave",
    "outage_10s",
    "outage_30s",
    "leader_step",
    "leader_restart",
    "follower_restart",
    "no_burst",
    "soak",
];

fn secs(s: f64) -> SimTime {
    SimTime::from_secs_f64(s)
}

fn path(at: f64, direction: Direction, by_us: i64) -> Event {
    Event {
        at: secs(at),
        kind: EventKind::PathStep {
            direction,
            by: Nanos::from_micros(by_us),
        },
    }
}

fn follower_freq(at: f64, change: FrequencyChange) -> Event {
    Event {
        at: secs(at),
        kind: EventKind::Frequency {
            node: Node::Follower,
            change,
        },
    }
}

fn warmup() -> FrequencyChange {
    FrequencyChange::Warmup {
        at: SimTime::ZERO,
        by_ppm: 8.0,
        tau: Nanos::from_secs(120),
    }
}

fn sine() -> FrequencyChange {
    FrequencyChange::Sine {
        at: SimTime::ZERO,
        amplitude_ppm: 2.0,
        period: Nanos::from_secs(1200),
    }
}

/// The roam of the `roam` family: the handover's gap of 150 ms in both directions, then a
/// path `by_us` longer (shorter when negative) each way.
fn roam(at: f64, by_us: i64) -> Vec<Event> {
    vec![
        Event {
            at: secs(at),
            kind: EventKind::Outage {
                direction: Direction::Both,
                duration: Nanos::from_millis(150),
            },
        },
        path(at + 0.15, Direction::Both, by_us),
    ]
}

/// The named family `name`: its variants, or `None` for an unknown name. See [`FAMILIES`].
///
/// - `roam`: a roam at 200 s (150 ms gap, then both directions +0.5 ms, +2.5 ms or −2.5 ms,
///   the last from a path 2.5 ms longer than the preset's);
/// - `mesh_reroute`: both directions +1.2 ms at 200 s and back at 400 s, without a gap;
/// - `warmup`: the follower's crystal warms by +8 ppm (τ = 120 s) from power-on; also with a
///   ±2 ppm, 20-minute thermal wander and a +2.5 ms roam at 200 s all at once;
/// - `wander`: the follower's frequency wanders ±2 ppm over 20 minutes (a sinusoid), or by
///   an extra random walk of 0.1 ppm/√s (about ±2.5 ppm over 10 minutes);
/// - `asym_up` / `asym_down`: one direction (either) +1 ms / −1 ms at 300 s;
/// - `microwave`: from 100 s on, every 60 s, 4 s of 60 % extra loss and 5 ms extra jitter
///   both ways;
/// - `outage_10s` / `outage_30s`: nothing gets through either way from 200 s on;
/// - `leader_step`: the leader's clock jumps +1 s or −1 s at 200 s;
/// - `leader_restart`: the leader restarts at 200 s with a new identity, its clock as before
///   or 0.25 s off;
/// - `follower_restart`: the follower restarts at 200 s;
/// - `no_burst`: no events, but the master gives no start burst;
/// - `soak`: a day in a home, drawn from seed 1 (see [`soak`]; [`family_seeded`] draws it
///   from another seed and for another length).
pub fn family(name: &str) -> Option<Vec<Variant>> {
    let v = |variant: &str, events: Vec<Event>| Variant {
        name: format!("{name}/{variant}"),
        events: Events::new(events),
        start_burst: true,
        longer_path: Nanos::ZERO,
    };
    let both = Direction::Both;
    Some(match name {
        "roam" => vec![
            v("+0.5ms", roam(200.0, 500)),
            v("+2.5ms", roam(200.0, 2500)),
            // (From a path 2.5 ms longer: no preset's base delay is that long. Until
            // 2026-12-07 the simulator clamped the step at zero, so on `wifi` this was a
            // −1.5 ms roam, and on `lan` a −0.15 ms one.)
            Variant {
                longer_path: Nanos::from_micros(2500),
                ..v("-2.5ms", roam(200.0, -2500))
            },
        ],
        "mesh_reroute" => vec![v(
            "+1.2ms,back",
            vec![path(200.0, both, 1200), path(400.0, both, -1200)],
        )],
        "warmup" => vec![
            v("+8ppm", vec![follower_freq(0.0, warmup())]),
            v("+8ppm+wander+roam", {
                let mut e = vec![follower_freq(0.0, warmup()), follower_freq(0.0, sine())];
                e.extend(roam(200.0, 2500));
                e
            }),
        ],
        "wander" => vec![
            v("sine±2ppm/20min", vec![follower_freq(0.0, sine())]),
            v(
                "walk0.1",
                vec![follower_freq(
                    0.0,
                    FrequencyChange::Walk {
                        at: SimTime::ZERO,
                        ppm_per_sqrt_s: 0.1,
                    },
                )],
            ),
        ],
        "asym_up" => vec![
            v(
                "to_leader+1ms",
                vec![path(300.0, Direction::ToLeader, 1000)],
            ),
            v(
                "to_follower+1ms",
                vec![path(300.0, Direction::ToFollower, 1000)],
            ),
        ],
        "asym_down" => vec![
            v(
                "to_leader-1ms",
                vec![path(300.0, Direction::ToLeader, -1000)],
            ),
            v(
                "to_follower-1ms",
                vec![path(300.0, Direction::ToFollower, -1000)],
            ),
        ],
        "microwave" => vec![v(
            "4s/60s",
            (0..8)
                .map(|i| Event {
                    at: secs(100.0 + 60.0 * i as f64),
                    kind: EventKind::Episode {
                        direction: both,
                        duration: Nanos::from_secs(4),
                        jitter_mean: Nanos::from_millis(5),
                        loss: 0.6,
                    },
                })
                .collect(),
        )],
        "outage_10s" | "outage_30s" => {
            let d = if name == "outage_10s" { 10 } else { 30 };
            vec![v(
                &format!("{d}s"),
                vec![Event {
                    at: secs(200.0),
                    kind: EventKind::Outage {
                        direction: both,
                        duration: Nanos::from_secs(d),
                    },
                }],
            )]
        }
        "leader_step" => [1i64, -1]
            .iter()
            .map(|&s| {
                v(
                    &format!("{s:+}s"),
                    vec![Event {
                        at: secs(200.0),
                        kind: EventKind::LeaderStep {
                            by: Nanos::from_secs(s),
                        },
                    }],
                )
            })
            .collect(),
        "leader_restart" => [0i64, 250]
            .iter()
            .map(|&ms| {
                v(
                    &format!("clock{ms:+}ms"),
                    vec![Event {
                        at: secs(200.0),
                        kind: EventKind::LeaderRestart {
                            step: Nanos::from_millis(ms),
                        },
                    }],
                )
            })
            .collect(),
        "follower_restart" => vec![v(
            "at200s",
            vec![Event {
                at: secs(200.0),
                kind: EventKind::FollowerRestart,
            }],
        )],
        "no_burst" => vec![Variant {
            start_burst: false,
            ..v("steady16/s", Vec::new())
        }],
        "soak" => vec![soak(1, Nanos::from_secs(SOAK_SECONDS))],
        _ => return None,
    })
}

/// The length of the `soak` family's day, s.
pub const SOAK_SECONDS: i64 = 86_400;

/// The family `name` as [`family`] gives it, except that `soak` is drawn from `seed` for a
/// run of `duration`: what a report that runs several seeds or lengths wants.
pub fn family_seeded(name: &str, seed: u64, duration: Nanos) -> Option<Vec<Variant>> {
    match name {
        "soak" => Some(vec![soak(seed, duration)]),
        _ => family(name),
    }
}

/// A day in a home, drawn from `seed`, for a run of `duration` (`soak/seedN`):
///
/// - a roam every 15 to 25 minutes: the 150 ms handover gap, then both directions 0.3 to
///   2.5 ms longer or shorter; the sign is drawn, but turned so that the path stays within
///   0 to 5 ms of where it began (a house has a nearest and a farthest access point);
/// - the daily thermal cycle: every follower's crystal ±2 ppm in a sine of 24 hours' period;
/// - three outages of 5 to 30 s, both ways, at random times a minute or more from either
///   end.
pub fn soak(seed: u64, duration: Nanos) -> Variant {
    let mut rng = SimRng::new(seed).fork(0x50a4);
    let end = duration.as_nanos() as f64 * 1e-9;
    let mut events = vec![follower_freq(
        0.0,
        FrequencyChange::Sine {
            at: SimTime::ZERO,
            amplitude_ppm: 2.0,
            period: Nanos::from_secs(SOAK_SECONDS),
        },
    )];
    let mut level_us = 0i64;
    let mut t = rng.uniform(900.0, 1500.0);
    while t + 1.0 < end {
        let size = rng.uniform(300.0, 2500.0).round() as i64;
        let mut by = if rng.chance(0.5) { size } else { -size };
        if !(0..=5000).contains(&(level_us + by)) {
            by = -by;
        }
        level_us += by;
        events.extend(roam(t, by));
        t += rng.uniform(900.0, 1500.0);
    }
    if end > 150.0 {
        for _ in 0..3 {
            let length = rng.uniform(5.0, 30.0);
            let at = rng.uniform(60.0, (end - 60.0 - length).max(60.0));
            events.push(Event {
                at: secs(at),
                kind: EventKind::Outage {
                    direction: Direction::Both,
                    duration: Nanos::from_secs_f64(length),
                },
            });
        }
    }
    Variant {
        name: format!("soak/seed{seed}"),
        events: Events::new(events),
        start_burst: true,
        longer_path: Nanos::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_known_and_splits_into_component_changes() {
        for name in FAMILIES {
            let variants = family(name).expect("listed family");
            assert!(!variants.is_empty(), "{name}");
            for v in &variants {
                assert!(v.name.starts_with(name));
                let split = v.events.split();
                let n = split.to_follower.len()
                    + split.to_leader.len()
                    + split.leader_frequency.len()
                    + split.follower_frequency.len()
                    + split.leader_steps.len()
                    + split.leader_restarts.len()
                    + split.follower_restarts.len();
                assert!(n > 0 || !v.start_burst, "{} does nothing", v.name);
            }
        }
        assert!(family("no_such_family").is_none());
    }

    #[test]
    fn a_soak_day_roams_about_every_twenty_minutes_within_five_milliseconds() {
        let day = soak(7, Nanos::from_secs(SOAK_SECONDS));
        let s = day.events.split();
        // A roam is a gap and a step on each link; the three outages add one more each.
        let steps: Vec<Nanos> = s
            .to_follower
            .iter()
            .filter_map(|c| match c {
                LinkChange::BaseDelay { by, .. } => Some(*by),
                _ => None,
            })
            .collect();
        assert!((55..=100).contains(&steps.len()), "{} roams", steps.len());
        let mut level = 0i64;
        for by in &steps {
            let us = by.as_nanos() / 1000;
            assert!((300..=2500).contains(&us.abs()), "{by:?}");
            level += us;
            assert!((0..=5000).contains(&level), "path at +{level} µs");
        }
        assert_eq!(s.to_follower.len(), 2 * steps.len() + 3);
        assert_eq!(s.follower_frequency.len(), 1);
        // Another seed, another day; the same seed, the same day.
        assert_ne!(day, soak(8, Nanos::from_secs(SOAK_SECONDS)));
        assert_eq!(day, soak(7, Nanos::from_secs(SOAK_SECONDS)));
    }

    #[test]
    fn a_one_way_step_changes_one_link_and_a_roam_both() {
        let up = &family("asym_up").unwrap()[0];
        let s = up.events.split();
        assert!(s.to_follower.is_empty());
        assert_eq!(
            s.to_leader,
            vec![LinkChange::BaseDelay {
                at: secs(300.0),
                by: Nanos::from_millis(1)
            }]
        );
        let roam = &family("roam").unwrap()[1];
        let s = roam.events.split();
        assert_eq!(s.to_follower, s.to_leader);
        assert_eq!(s.to_follower.len(), 2);
        // A frequency change starts at its event's time, whatever its own `at` said.
        let e = Events::new(vec![follower_freq(42.0, warmup())]);
        assert_eq!(e.split().follower_frequency[0].at(), secs(42.0));
    }
}
