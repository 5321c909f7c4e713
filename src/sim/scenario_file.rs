//! Scenario files: a user's own timed events, written as JSON.
//!
//! [`crate::sim::events::family`] names the scenarios lockstep itself is measured on; a file
//! describes the home a user cares about: a roam at the time their access points hand over,
//! a microwave that runs for three minutes, a speaker that warms up after power-on. Text
//! enters through [`parse_events`] (or [`read_events`] for a path) and leaves as [`Events`],
//! which [`crate::sim::sync::SyncScenario`] takes as they are. Nothing here runs a
//! simulation, and nothing reads a clock.
//!
//! # The format
//!
//! One JSON object with one key, `events`: an array of event objects in time order. Each
//! event object has `at_s`, the true time in seconds from the start, and exactly one key that
//! names its kind, whose value is an object of that kind's parameters. Every unit is in the
//! key's name. An example (`examples/scenarios/roam_and_warmup.json`):
//!
//! ```json
//! {
//!   "events": [
//!     {"at_s": 0,      "warmup":    {"node": "follower", "by_ppm": 8, "tau_s": 120}},
//!     {"at_s": 200,    "outage":    {"direction": "both", "duration_s": 0.15}},
//!     {"at_s": 200.15, "path_step": {"direction": "both", "by_ms": 2.5}},
//!     {"at_s": 300,    "outage":    {"direction": "to_leader", "duration_s": 10}}
//!   ]
//! }
//! ```
//!
//! The follower's crystal warms by +8 ppm after power-on; at 200 s it roams to another
//! access point (150 ms without packets, then a path 2.5 ms longer each way); at 300 s its
//! Delay_Reqs get nowhere for 10 s.
//!
//! | kind | keys | what happens |
//! |------|------|--------------|
//! | `path_step` | `direction`, `by_ms` | the base delay changes by `by_ms` (negative: faster) and stays so |
//! | `episode` | `direction`, `duration_s`, `jitter_mean_ms`, `loss` | for `duration_s`, extra exponential jitter of that mean and an extra loss probability |
//! | `outage` | `direction`, `duration_s` | for `duration_s`, nothing gets through |
//! | `warmup` | `node`, `by_ppm`, `tau_s` | the crystal's frequency moves towards `by_ppm` more, exponentially with time constant `tau_s` |
//! | `ramp` | `node`, `by_ppm`, `over_s` | the frequency moves by `by_ppm` linearly over `over_s` (0: a step), then stays |
//! | `sine` | `node`, `amplitude_ppm`, `period_s` | a thermal cycle: a sinusoid of the frequency, from phase zero rising |
//! | `walk` | `node`, `ppm_per_sqrt_s` | an extra random walk of the frequency |
//! | `leader_step` | `by_ms` | the leader's clock reading jumps (someone set it) |
//! | `leader_restart` | `step_ms` (optional, 0) | the leader restarts with a new identity, its clock `step_ms` off the old one's |
//! | `follower_restart` | none | the follower's estimator, slave and receiver start from nothing |
//! | `dac_stall` | `duration_ms` | the follower's DAC takes no frames (playout only) |
//! | `no_cpu` | `duration_ms` | the follower handles nothing it receives (playout only; in the sync experiment its packets wait) |
//!
//! `direction` is `"both"`, `"to_follower"` (Sync, Follow_Up, Delay_Resp, media) or
//! `"to_leader"` (Delay_Req); `node` is `"leader"` or `"follower"`. One line per event, as
//! above, keeps every error's line number pointing at one event.
//!
//! # What is refused
//!
//! The reader is strict, because a typo that is silently ignored gives a report about a
//! scenario the user did not write: unknown keys and kinds, a missing key, a key given twice,
//! two kinds in one event, a value of the wrong type or out of its range, and events whose
//! times go backwards are all errors. Every [`EventsFileError`] names the line, and all but a
//! syntax error (which has serde_json's line and column) name the field, as a path such as
//! `events[2].episode.loss`. The ranges:
//!
//! - `at_s` in `[0, 864000]` (ten days), not below the previous event's;
//! - `duration_s`, `tau_s`, `period_s` in `(0, 864000]`, `over_s` in `[0, 864000]`,
//!   `duration_ms` in `(0, 864000000]`;
//! - `path_step.by_ms` in `[-10000, 10000]`, `jitter_mean_ms` in `[0, 10000]`, `loss` in
//!   `[0, 1]`;
//! - `by_ppm`, `amplitude_ppm` in `[-1000, 1000]`, `ppm_per_sqrt_s` in `[0, 1000]`;
//! - `leader_step.by_ms`, `leader_restart.step_ms` within ten days either way.
//!
//! Each event that passes is also checked by the simulator's own
//! [`LinkChange::validate`] and [`FrequencyChange::validate`].
//!
//! ```
//! use lockstep::sim::events::EventKind;
//! use lockstep::sim::scenario_file::parse_events;
//!
//! let events = parse_events(r#"{"events": [
//!     {"at_s": 200, "leader_step": {"by_ms": 1000}}
//! ]}"#)?;
//! assert!(matches!(events.events[0].kind, EventKind::LeaderStep { .. }));
//!
//! let err = parse_events(r#"{"events": [
//!     {"at_s": 200, "episode": {"direction": "both", "duration_s": 4,
//!                               "jitter_mean_ms": 5, "loss": 1.5}}
//! ]}"#).unwrap_err();
//! assert_eq!(err.to_string(), "line 3: events[0].episode.loss: must be in [0, 1], got 1.5");
//! # Ok::<(), lockstep::sim::scenario_file::EventsFileError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use thiserror::Error;

use super::events::{Direction, Event, EventKind, Events, Node};
use super::{FrequencyChange, LinkChange, SimTime};
use crate::time::Nanos;

/// Why a scenario file was refused. Every variant says on which line.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EventsFileError {
    /// The text is not JSON.
    #[error("line {line}, column {column}: not valid JSON: {message}")]
    Syntax {
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, from 1 (0 at the very end of the text).
        column: usize,
        /// serde_json's description, without its position.
        message: String,
    },
    /// A key is unknown, missing, given twice, of the wrong type or out of range.
    #[error("line {line}: {field}: {problem}")]
    Field {
        /// Line of the value at fault (of its object, for a key that is missing), from 1.
        line: usize,
        /// Path of the field, e.g. `events[2].episode.loss`.
        field: String,
        /// What was expected and what came, e.g. `must be in [0, 1], got 1.5`.
        problem: String,
    },
    /// An event earlier than the one before it in the file.
    #[error(
        "line {line}: at_s: {at_s} s comes before the previous event's {previous_s} s; \
         events must be in time order"
    )]
    TimeBackwards {
        /// Line of the event's `at_s`, from 1.
        line: usize,
        /// Its time, s.
        at_s: f64,
        /// The previous event's time, s.
        previous_s: f64,
    },
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// The latest time an event can happen at, and the longest duration: ten days, s. Longer
/// than any simulation anyone waits for, short enough that times never saturate.
pub const MAX_TIME_S: f64 = 864_000.0;

/// The largest path step either way, ms: a path ten seconds longer is no longer a path.
pub const MAX_PATH_STEP_MS: f64 = 10_000.0;

/// The largest frequency change either way, ppm: ten times a bad crystal's tolerance.
pub const MAX_PPM: f64 = 1_000.0;

/// The event kinds a file can name, in the order the module docs list them.
pub const KINDS: &[&str] = &[
    "path_step",
    "episode",
    "outage",
    "warmup",
    "ramp",
    "sine",
    "walk",
    "leader_step",
    "leader_restart",
    "follower_restart",
    "dac_stall",
    "no_cpu",
];

/// Reads the scenario file at `path` (see the [module docs](self) for the format).
pub fn read_events(path: impl AsRef<Path>) -> Result<Events, EventsFileError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| EventsFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_events(&text)
}

/// Parses a scenario file's text (see the [module docs](self) for the format).
pub fn parse_events(text: &str) -> Result<Events, EventsFileError> {
    // The whole text is checked for syntax first, so that every later error is about the
    // meaning; the raw values keep their place in the text, which is where lines come from.
    let root: &RawValue = serde_json::from_str(text).map_err(|e| {
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = e.to_string();
        EventsFileError::Syntax {
            line: e.line(),
            column: e.column(),
            message: message
                .strip_suffix(&suffix)
                .unwrap_or(&message)
                .to_string(),
        }
    })?;
    let doc = Doc { text };
    // The top object's path is empty, so that its key is plain `events`.
    let mut top = doc.object(root, "")?;
    top.allow(&["events"])?;
    let list = top.required("events")?;
    let items: Vec<&RawValue> = serde_json::from_str(list.get()).map_err(|_| {
        doc.field(
            list,
            "events".into(),
            format!("expected an array of event objects, got {}", preview(list)),
        )
    })?;
    let mut events = Vec::with_capacity(items.len());
    let mut previous: Option<f64> = None;
    for (i, item) in items.into_iter().enumerate() {
        let (at_s, at_line, event) = doc.event(i, item)?;
        if let Some(previous_s) = previous
            && at_s < previous_s
        {
            return Err(EventsFileError::TimeBackwards {
                line: at_line,
                at_s,
                previous_s,
            });
        }
        previous = Some(at_s);
        events.push(event);
    }
    Ok(Events::new(events))
}

/// The text being parsed: raw values are slices of it, so their place in it is their line.
struct Doc<'a> {
    text: &'a str,
}

/// An object's keys and raw values in file order, duplicates kept (serde's maps would keep
/// the last silently).
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

/// One JSON object of the file, with its path and line, from which fields are taken.
struct Object<'a> {
    path: String,
    line: usize,
    /// Key, raw value and the value's line, in file order.
    entries: Vec<(String, &'a RawValue, usize)>,
    /// The keys the object may have, once [`Object::allow`] said so (for messages).
    allowed: &'a [&'a str],
}

/// The values a number may take: a closed range, or one open at its bottom (durations).
#[derive(Clone, Copy)]
struct Range {
    min: f64,
    /// Whether `min` itself is refused (durations must be above zero).
    above_min: bool,
    max: f64,
}

impl Range {
    const fn closed(min: f64, max: f64) -> Range {
        Range {
            min,
            above_min: false,
            max,
        }
    }

    const fn positive(max: f64) -> Range {
        Range {
            min: 0.0,
            above_min: true,
            max,
        }
    }

    fn contains(&self, v: f64) -> bool {
        let low = if self.above_min {
            v > self.min
        } else {
            v >= self.min
        };
        low && v <= self.max
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = if self.above_min { '(' } else { '[' };
        write!(f, "{open}{}, {}]", self.min, self.max)
    }
}

const TIME_S: Range = Range::closed(0.0, MAX_TIME_S);
const DURATION_S: Range = Range::positive(MAX_TIME_S);
const OVER_S: Range = Range::closed(0.0, MAX_TIME_S);
const DURATION_MS: Range = Range::positive(MAX_TIME_S * 1e3);
const PATH_STEP_MS: Range = Range::closed(-MAX_PATH_STEP_MS, MAX_PATH_STEP_MS);
const JITTER_MS: Range = Range::closed(0.0, MAX_PATH_STEP_MS);
const LOSS: Range = Range::closed(0.0, 1.0);
const PPM: Range = Range::closed(-MAX_PPM, MAX_PPM);
const WALK_PPM: Range = Range::closed(0.0, MAX_PPM);
const CLOCK_STEP_MS: Range = Range::closed(-MAX_TIME_S * 1e3, MAX_TIME_S * 1e3);

/// The keys of each kind, in the order the error messages list them.
fn keys_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "path_step" => &["direction", "by_ms"],
        "episode" => &["direction", "duration_s", "jitter_mean_ms", "loss"],
        "outage" => &["direction", "duration_s"],
        "warmup" => &["node", "by_ppm", "tau_s"],
        "ramp" => &["node", "by_ppm", "over_s"],
        "sine" => &["node", "amplitude_ppm", "period_s"],
        "walk" => &["node", "ppm_per_sqrt_s"],
        "leader_step" => &["by_ms"],
        "leader_restart" => &["step_ms"],
        "dac_stall" | "no_cpu" => &["duration_ms"],
        // follower_restart: nothing to say but when.
        _ => &[],
    }
}

/// The start of a raw value, for messages.
fn preview(raw: &RawValue) -> String {
    let s = raw.get();
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The path of `key` within the object at `path` (the top object's is empty).
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn list(names: &[&str]) -> String {
    names.join(", ")
}

impl<'a> Doc<'a> {
    /// The line (from 1) on which `raw` starts.
    fn line_of(&self, raw: &RawValue) -> usize {
        // Every raw value was borrowed from `text`, so its address lies within it.
        let offset = (raw.get().as_ptr() as usize)
            .saturating_sub(self.text.as_ptr() as usize)
            .min(self.text.len());
        1 + self.text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    fn field(&self, raw: &RawValue, field: String, problem: String) -> EventsFileError {
        EventsFileError::Field {
            line: self.line_of(raw),
            field,
            problem,
        }
    }

    /// `raw` as an object; refuses anything else and keys given twice.
    fn object(&self, raw: &'a RawValue, path: &str) -> Result<Object<'a>, EventsFileError> {
        let Entries(entries) = serde_json::from_str(raw.get()).map_err(|_| {
            self.field(
                raw,
                if path.is_empty() { "document" } else { path }.to_string(),
                format!("expected an object {{…}}, got {}", preview(raw)),
            )
        })?;
        for (i, (key, value)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(k, _)| k == key) {
                return Err(self.field(value, join(path, key), "given twice".into()));
            }
        }
        Ok(Object {
            path: path.to_string(),
            line: self.line_of(raw),
            entries: entries
                .into_iter()
                .map(|(k, v)| (k, v, self.line_of(v)))
                .collect(),
            allowed: &[],
        })
    }

    /// `raw` as a number in `range`.
    fn number(&self, raw: &RawValue, field: String, range: Range) -> Result<f64, EventsFileError> {
        let v = match serde_json::from_str::<serde_json::Value>(raw.get()) {
            Ok(serde_json::Value::Number(n)) => n.as_f64(),
            _ => None,
        };
        // serde_json reads numbers beyond f64 as infinite only with a feature we do not
        // enable, but a finite value is what the ranges below assume, so it is checked.
        let Some(v) = v.filter(|v| v.is_finite()) else {
            return Err(self.field(
                raw,
                field,
                format!("expected a number, got {}", preview(raw)),
            ));
        };
        if !range.contains(v) {
            return Err(self.field(raw, field, format!("must be in {range}, got {v}")));
        }
        Ok(v)
    }

    /// `raw` as one of `names`, giving its index.
    fn choice(
        &self,
        raw: &RawValue,
        field: String,
        names: &[&str],
    ) -> Result<usize, EventsFileError> {
        let s = serde_json::from_str::<String>(raw.get()).ok();
        s.and_then(|s| names.iter().position(|n| *n == s))
            .ok_or_else(|| {
                let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
                self.field(
                    raw,
                    field,
                    format!(
                        "expected one of {}, got {}",
                        quoted.join(", "),
                        preview(raw)
                    ),
                )
            })
    }

    /// Event `index` of the list: its time, the line of its time, and the event.
    fn event(
        &self,
        index: usize,
        raw: &'a RawValue,
    ) -> Result<(f64, usize, Event), EventsFileError> {
        let path = format!("events[{index}]");
        let obj = self.object(raw, &path)?;
        let mut at = None;
        let mut kind: Option<(&str, &RawValue)> = None;
        for (key, value, _) in &obj.entries {
            if key == "at_s" {
                at = Some(*value);
            } else if let Some(k) = KINDS.iter().find(|k| **k == key) {
                if let Some((first, _)) = kind {
                    return Err(self.field(
                        value,
                        format!("{path}.{key}"),
                        format!("a second kind in one event (it is already {first}); give each its own object"),
                    ));
                }
                kind = Some((k, *value));
            } else {
                return Err(self.field(
                    value,
                    format!("{path}.{key}"),
                    format!(
                        "unknown key; an event has at_s and one kind of: {}",
                        list(KINDS)
                    ),
                ));
            }
        }
        let Some(at) = at else {
            return Err(EventsFileError::Field {
                line: obj.line,
                field: format!("{path}.at_s"),
                problem: "missing: the event's time in seconds from the start".into(),
            });
        };
        let at_s = self.number(at, format!("{path}.at_s"), TIME_S)?;
        let Some((name, body)) = kind else {
            return Err(EventsFileError::Field {
                line: obj.line,
                field: path,
                problem: format!("no event kind; expected one of: {}", list(KINDS)),
            });
        };
        let mut body = self.object(body, &format!("{path}.{name}"))?;
        body.allow(keys_of(name))?;
        let at_time = SimTime::from_secs_f64(at_s);
        let kind = self.kind(name, &mut body, at_time)?;
        self.check_with_sim(&body, at_time, kind)?;
        Ok((at_s, self.line_of(at), Event { at: at_time, kind }))
    }

    /// The kind `name` from its parameters `body` (whose keys are known to be allowed).
    fn kind(
        &self,
        name: &str,
        body: &mut Object<'a>,
        at: SimTime,
    ) -> Result<EventKind, EventsFileError> {
        let num = |body: &mut Object<'a>, key: &str, range: Range| {
            let raw = body.required(key)?;
            self.number(raw, body.path_of(key), range)
        };
        let direction = |body: &mut Object<'a>| -> Result<Direction, EventsFileError> {
            let raw = body.required("direction")?;
            let i = self.choice(
                raw,
                body.path_of("direction"),
                &["both", "to_follower", "to_leader"],
            )?;
            Ok([Direction::Both, Direction::ToFollower, Direction::ToLeader][i])
        };
        let node = |body: &mut Object<'a>| -> Result<Node, EventsFileError> {
            let raw = body.required("node")?;
            let i = self.choice(raw, body.path_of("node"), &["leader", "follower"])?;
            Ok([Node::Leader, Node::Follower][i])
        };
        let secs = Nanos::from_secs_f64;
        let millis = |ms: f64| Nanos::from_nanos((ms * 1e6).round() as i64);
        let frequency = |node: Node, change: FrequencyChange| EventKind::Frequency { node, change };
        Ok(match name {
            "path_step" => EventKind::PathStep {
                direction: direction(body)?,
                by: millis(num(body, "by_ms", PATH_STEP_MS)?),
            },
            "episode" => EventKind::Episode {
                direction: direction(body)?,
                duration: secs(num(body, "duration_s", DURATION_S)?),
                jitter_mean: millis(num(body, "jitter_mean_ms", JITTER_MS)?),
                loss: num(body, "loss", LOSS)?,
            },
            "outage" => EventKind::Outage {
                direction: direction(body)?,
                duration: secs(num(body, "duration_s", DURATION_S)?),
            },
            "warmup" => frequency(
                node(body)?,
                FrequencyChange::Warmup {
                    at,
                    by_ppm: num(body, "by_ppm", PPM)?,
                    tau: secs(num(body, "tau_s", DURATION_S)?),
                },
            ),
            "ramp" => frequency(
                node(body)?,
                FrequencyChange::Ramp {
                    at,
                    by_ppm: num(body, "by_ppm", PPM)?,
                    over: secs(num(body, "over_s", OVER_S)?),
                },
            ),
            "sine" => frequency(
                node(body)?,
                FrequencyChange::Sine {
                    at,
                    amplitude_ppm: num(body, "amplitude_ppm", PPM)?,
                    period: secs(num(body, "period_s", DURATION_S)?),
                },
            ),
            "walk" => frequency(
                node(body)?,
                FrequencyChange::Walk {
                    at,
                    ppm_per_sqrt_s: num(body, "ppm_per_sqrt_s", WALK_PPM)?,
                },
            ),
            "leader_step" => EventKind::LeaderStep {
                by: millis(num(body, "by_ms", CLOCK_STEP_MS)?),
            },
            "leader_restart" => EventKind::LeaderRestart {
                // A restarted leader that reads the same system clock is the common case,
                // so the step may be left out.
                step: match body.take("step_ms") {
                    Some(raw) => {
                        millis(self.number(raw, body.path_of("step_ms"), CLOCK_STEP_MS)?)
                    }
                    None => Nanos::ZERO,
                },
            },
            "follower_restart" => EventKind::FollowerRestart,
            "dac_stall" => EventKind::DacStall {
                duration: millis(num(body, "duration_ms", DURATION_MS)?),
            },
            "no_cpu" => EventKind::Starve {
                duration: millis(num(body, "duration_ms", DURATION_MS)?),
            },
            _ => unreachable!("kind() is called only for names in KINDS"),
        })
    }

    /// The simulator's own checks of what the event becomes; the ranges above are meant to
    /// imply them, so this refuses only what they missed.
    fn check_with_sim(
        &self,
        body: &Object<'a>,
        at: SimTime,
        kind: EventKind,
    ) -> Result<(), EventsFileError> {
        let checked = match kind {
            EventKind::Frequency { change, .. } => change.validate(),
            EventKind::Episode {
                duration,
                jitter_mean,
                loss,
                ..
            } => LinkChange::Episode {
                at,
                until: at + duration,
                jitter_mean,
                loss,
            }
            .validate(),
            EventKind::Outage { duration, .. } => LinkChange::Outage {
                at,
                until: at + duration,
            }
            .validate(),
            EventKind::PathStep { by, .. } => LinkChange::BaseDelay { at, by }.validate(),
            _ => Ok(()),
        };
        checked.map_err(|e| EventsFileError::Field {
            line: body.line,
            field: body.path.clone(),
            problem: e.to_string(),
        })
    }
}

impl<'a> Object<'a> {
    fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Refuses keys not in `allowed`: the reader's `deny_unknown_fields`.
    fn allow(&mut self, allowed: &'a [&'a str]) -> Result<(), EventsFileError> {
        self.allowed = allowed;
        match self
            .entries
            .iter()
            .find(|(k, _, _)| !allowed.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((key, _, line)) => Err(EventsFileError::Field {
                line: *line,
                field: self.path_of(key),
                problem: if allowed.is_empty() {
                    "unknown key; this kind takes none".into()
                } else {
                    format!("unknown key; expected {}", list(allowed))
                },
            }),
        }
    }

    /// The value of `key`, taken out.
    fn take(&mut self, key: &str) -> Option<&'a RawValue> {
        let i = self.entries.iter().position(|(k, _, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    /// The value of `key`, which must be there.
    fn required(&mut self, key: &str) -> Result<&'a RawValue, EventsFileError> {
        self.take(key).ok_or_else(|| EventsFileError::Field {
            line: self.line,
            field: self.path_of(key),
            problem: format!("missing; expected {}", list(self.allowed)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with the given event lines, one per line from line 3 on.
    fn file(lines: &[&str]) -> String {
        format!(
            "{{\n  \"events\": [\n    {}\n  ]\n}}\n",
            lines.join(",\n    ")
        )
    }

    fn one(line: &str) -> Event {
        let events = parse_events(&file(&[line])).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(events.events.len(), 1);
        events.events[0]
    }

    /// The error for a file of the given event lines, as text.
    fn refused(lines: &[&str]) -> String {
        match parse_events(&file(lines)) {
            Ok(e) => panic!("accepted {lines:?} as {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn at(s: f64) -> SimTime {
        SimTime::from_secs_f64(s)
    }

    #[test]
    fn every_kind_becomes_its_event_kind() {
        let t = at(200.0);
        let cases: &[(&str, EventKind)] = &[
            (
                r#"{"at_s": 200, "path_step": {"direction": "both", "by_ms": 2.5}}"#,
                EventKind::PathStep {
                    direction: Direction::Both,
                    by: Nanos::from_micros(2500),
                },
            ),
            (
                r#"{"at_s": 200, "episode": {"direction": "to_follower", "duration_s": 4, "jitter_mean_ms": 5, "loss": 0.6}}"#,
                EventKind::Episode {
                    direction: Direction::ToFollower,
                    duration: Nanos::from_secs(4),
                    jitter_mean: Nanos::from_millis(5),
                    loss: 0.6,
                },
            ),
            (
                r#"{"at_s": 200, "outage": {"direction": "to_leader", "duration_s": 10}}"#,
                EventKind::Outage {
                    direction: Direction::ToLeader,
                    duration: Nanos::from_secs(10),
                },
            ),
            (
                r#"{"at_s": 200, "warmup": {"node": "follower", "by_ppm": 8, "tau_s": 120}}"#,
                EventKind::Frequency {
                    node: Node::Follower,
                    change: FrequencyChange::Warmup {
                        at: t,
                        by_ppm: 8.0,
                        tau: Nanos::from_secs(120),
                    },
                },
            ),
            (
                r#"{"at_s": 200, "ramp": {"node": "leader", "by_ppm": -3.5, "over_s": 0}}"#,
                EventKind::Frequency {
                    node: Node::Leader,
                    change: FrequencyChange::Ramp {
                        at: t,
                        by_ppm: -3.5,
                        over: Nanos::ZERO,
                    },
                },
            ),
            (
                r#"{"at_s": 200, "sine": {"node": "follower", "amplitude_ppm": 2, "period_s": 1200}}"#,
                EventKind::Frequency {
                    node: Node::Follower,
                    change: FrequencyChange::Sine {
                        at: t,
                        amplitude_ppm: 2.0,
                        period: Nanos::from_secs(1200),
                    },
                },
            ),
            (
                r#"{"at_s": 200, "walk": {"node": "follower", "ppm_per_sqrt_s": 0.1}}"#,
                EventKind::Frequency {
                    node: Node::Follower,
                    change: FrequencyChange::Walk {
                        at: t,
                        ppm_per_sqrt_s: 0.1,
                    },
                },
            ),
            (
                r#"{"at_s": 200, "leader_step": {"by_ms": -1000}}"#,
                EventKind::LeaderStep {
                    by: Nanos::from_secs(-1),
                },
            ),
            (
                r#"{"at_s": 200, "leader_restart": {}}"#,
                EventKind::LeaderRestart { step: Nanos::ZERO },
            ),
            (
                r#"{"at_s": 200, "leader_restart": {"step_ms": 250}}"#,
                EventKind::LeaderRestart {
                    step: Nanos::from_millis(250),
                },
            ),
            (
                r#"{"at_s": 200, "follower_restart": {}}"#,
                EventKind::FollowerRestart,
            ),
            (
                r#"{"at_s": 200, "dac_stall": {"duration_ms": 40}}"#,
                EventKind::DacStall {
                    duration: Nanos::from_millis(40),
                },
            ),
            (
                r#"{"at_s": 200, "no_cpu": {"duration_ms": 300}}"#,
                EventKind::Starve {
                    duration: Nanos::from_millis(300),
                },
            ),
        ];
        for (line, kind) in cases {
            assert_eq!(one(line), Event { at: t, kind: *kind }, "{line}");
        }
        // Every kind the reader knows is among the cases.
        for name in KINDS {
            assert!(
                cases
                    .iter()
                    .any(|(l, _)| l.contains(&format!("\"{name}\""))),
                "{name} untested"
            );
        }
    }

    #[test]
    fn the_example_file_is_a_warmup_a_roam_and_an_outage() {
        let events = parse_events(include_str!(
            "../../examples/scenarios/roam_and_warmup.json"
        ))
        .expect("the example parses");
        let labels: Vec<(f64, String)> = events
            .events
            .iter()
            .map(|e| (e.at.as_secs_f64(), e.label()))
            .collect();
        assert_eq!(
            labels,
            [
                (0.0, "follower warmup +8.0 ppm tau 120 s".to_string()),
                (200.0, "outage both 0.1 s".to_string()),
                (200.15, "path both +2.50 ms".to_string()),
                (300.0, "outage to_leader 10.0 s".to_string()),
            ]
        );
    }

    #[test]
    fn a_syntax_error_has_serde_jsons_line_and_column() {
        let text = "{\n  \"events\": [\n    {\"at_s\": 1,, \"follower_restart\": {}}\n  ]\n}";
        match parse_events(text) {
            Err(EventsFileError::Syntax {
                line,
                column,
                message,
            }) => {
                // The second comma, and the message without serde_json's own position.
                assert_eq!(
                    (line, column, message.as_str()),
                    (3, 16, "key must be a string")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn times_that_go_backwards_name_the_line_of_the_later_event() {
        let text = file(&[
            r#"{"at_s": 200, "follower_restart": {}}"#,
            r#"{"at_s": 300, "follower_restart": {}}"#,
            r#"{"at_s": 100, "follower_restart": {}}"#,
        ]);
        match parse_events(&text) {
            Err(EventsFileError::TimeBackwards {
                line,
                at_s,
                previous_s,
            }) => assert_eq!((line, at_s, previous_s), (5, 100.0, 300.0)),
            other => panic!("{other:?}"),
        }
        // Equal times keep their order: a roam's gap and step may share an instant.
        let same = file(&[
            r#"{"at_s": 200, "outage": {"direction": "both", "duration_s": 0.15}}"#,
            r#"{"at_s": 200, "path_step": {"direction": "both", "by_ms": 1}}"#,
        ]);
        let events = parse_events(&same).unwrap().events;
        assert!(matches!(events[1].kind, EventKind::PathStep { .. }));
    }

    #[test]
    fn values_out_of_range_name_the_line_the_field_and_the_range() {
        let ok = r#"{"at_s": 1, "follower_restart": {}}"#;
        let cases = [
            (
                r#"{"at_s": 9, "episode": {"direction": "both", "duration_s": 4, "jitter_mean_ms": 5, "loss": 1.5}}"#,
                "line 4: events[1].episode.loss: must be in [0, 1], got 1.5",
            ),
            (
                r#"{"at_s": -1, "follower_restart": {}}"#,
                "line 4: events[1].at_s: must be in [0, 864000], got -1",
            ),
            (
                r#"{"at_s": 9, "outage": {"direction": "both", "duration_s": 0}}"#,
                "line 4: events[1].outage.duration_s: must be in (0, 864000], got 0",
            ),
            (
                r#"{"at_s": 9, "path_step": {"direction": "both", "by_ms": -20000}}"#,
                "line 4: events[1].path_step.by_ms: must be in [-10000, 10000], got -20000",
            ),
            (
                r#"{"at_s": 9, "warmup": {"node": "follower", "by_ppm": 5000, "tau_s": 1}}"#,
                "line 4: events[1].warmup.by_ppm: must be in [-1000, 1000], got 5000",
            ),
            (
                r#"{"at_s": 9, "walk": {"node": "follower", "ppm_per_sqrt_s": -0.1}}"#,
                "line 4: events[1].walk.ppm_per_sqrt_s: must be in [0, 1000], got -0.1",
            ),
            (
                r#"{"at_s": 9, "sine": {"node": "follower", "amplitude_ppm": 1, "period_s": "long"}}"#,
                "line 4: events[1].sine.period_s: expected a number, got \"long\"",
            ),
        ];
        for (line, message) in cases {
            assert_eq!(refused(&[ok, line]), message);
        }
    }

    #[test]
    fn unknown_missing_doubled_and_mistyped_keys_are_refused() {
        let cases = [
            (
                r#"{"at_s": 9, "roam": {"by_ms": 2}}"#,
                "line 3: events[0].roam: unknown key; an event has at_s and one kind of: path_step, episode, outage, warmup, ramp, sine, walk, leader_step, leader_restart, follower_restart, dac_stall, no_cpu",
            ),
            (
                r#"{"at_s": 9, "path_step": {"direction": "up", "by_ms": 2}}"#,
                "line 3: events[0].path_step.direction: expected one of \"both\", \"to_follower\", \"to_leader\", got \"up\"",
            ),
            (
                r#"{"at_s": 9, "warmup": {"node": 1, "by_ppm": 2, "tau_s": 3}}"#,
                "line 3: events[0].warmup.node: expected one of \"leader\", \"follower\", got 1",
            ),
            (
                r#"{"at_s": 9, "outage": {"direction": "both", "duration_ms": 10}}"#,
                "line 3: events[0].outage.duration_ms: unknown key; expected direction, duration_s",
            ),
            (
                r#"{"at_s": 9, "outage": {"direction": "both"}}"#,
                "line 3: events[0].outage.duration_s: missing; expected direction, duration_s",
            ),
            (
                r#"{"at_s": 9, "follower_restart": {"now": true}}"#,
                "line 3: events[0].follower_restart.now: unknown key; this kind takes none",
            ),
            (
                r#"{"follower_restart": {}}"#,
                "line 3: events[0].at_s: missing: the event's time in seconds from the start",
            ),
            (
                r#"{"at_s": 9}"#,
                "line 3: events[0]: no event kind; expected one of: path_step, episode, outage, warmup, ramp, sine, walk, leader_step, leader_restart, follower_restart, dac_stall, no_cpu",
            ),
            (
                r#"{"at_s": 9, "at_s": 10, "follower_restart": {}}"#,
                "line 3: events[0].at_s: given twice",
            ),
            (
                r#"{"at_s": 9, "follower_restart": {}, "leader_step": {"by_ms": 1}}"#,
                "line 3: events[0].leader_step: a second kind in one event (it is already follower_restart); give each its own object",
            ),
            (
                r#"{"at_s": 9, "follower_restart": true}"#,
                "line 3: events[0].follower_restart: expected an object {…}, got true",
            ),
            (
                r#"[9, "follower_restart"]"#,
                "line 3: events[0]: expected an object {…}, got [9, \"follower_restart\"]",
            ),
        ];
        for (line, message) in cases {
            assert_eq!(refused(&[line]), message);
        }
    }

    #[test]
    fn a_key_spread_over_lines_is_named_on_its_own_line() {
        let text = "{\"events\": [\n  {\"at_s\": 5,\n   \"episode\": {\"direction\": \"both\",\n      \"duration_s\": 4, \"jitter_mean_ms\": 5,\n      \"loss\": 2}}\n]}";
        match parse_events(text) {
            Err(EventsFileError::Field { line, field, .. }) => {
                assert_eq!((line, field.as_str()), (5, "events[0].episode.loss"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_document_is_one_object_with_an_events_array() {
        let cases = [
            ("[]", "line 1: document: expected an object {…}, got []"),
            (
                "{\"events\": [], \"notes\": \"x\"}",
                "line 1: notes: unknown key; expected events",
            ),
            ("{}", "line 1: events: missing; expected events"),
            (
                "{\n\"events\": {}}",
                "line 2: events: expected an array of event objects, got {}",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(parse_events(text).unwrap_err().to_string(), message);
        }
        assert_eq!(parse_events("{\"events\": []}").unwrap(), Events::none());
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let err = read_events("/nonexistent/lockstep/events.json").unwrap_err();
        assert!(matches!(err, EventsFileError::Io { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("/nonexistent/lockstep/events.json")
        );
    }
}
