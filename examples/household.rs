//! The household app in a terminal: lists the speakers and groups of a household and
//! changes them through one speaker's control API (`docs/control-api.md`).
//!
//! ```text
//! cargo run --example household -- --key household.key --interface 192.168.1.20 ls
//! cargo run --example household -- --key household.key --rpc 192.168.1.31:7800 \
//!     group create Downstairs Kitchen "Living L"
//! cargo run --example household -- --key household.key --rpc 192.168.1.31:7800 play Downstairs tone
//! cargo run --example household -- --key household.key --rpc 192.168.1.31:7800 volume Downstairs 40
//! cargo run --example household -- --key household.key --rpc 192.168.1.31:7800 --json ls
//! ```
//!
//! It talks to one speaker: the one given by `--rpc HOST:PORT`, or the first one that
//! answers discovery (mDNS) within 3 s on the interface with the address `--interface`
//! (and on no other). Any speaker will do: each holds the household and passes changes on.
//! The household key (`--key`, the speakers' file) logs the app in.
//!
//! Speakers and groups are named by their name or their id (`ls` shows both). `volume`
//! takes a percentage, 0 to 100, and sets a group's volume if the name is a group's, a
//! speaker's if it is a speaker's; a name that is both, or several of either, is refused:
//! give the id. A stereo pair is named by either half. `pair ROOM LEFT RIGHT` checks that
//! both speakers stand in `ROOM` before it asks for the pair.
//!
//! `--json` prints the speaker's answer as it came (a refusal as `{"error": …}`), for
//! scripts; `watch --json` prints one notification per line.
//!
//! Exit codes: 0 done; 1 refused (by the speaker, or because the household's status does
//! not have the name given, or has it more than once, or has a speaker in another room);
//! 2 a bad command line or key file, no speaker found, no connection, a refused login (a
//! wrong key), no answer in time, or an answer that does not follow the control API.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use lockstep::control::HouseholdKey;
use lockstep::household::{Browser, DiscoveryEvent, RpcCallError, RpcConnection, SpeakerInfo};
use serde::Deserialize;
use serde_json::{Value, json};

#[path = "common/cli.rs"]
mod cli;
use cli::Failure;

/// How long discovery waits for the first speaker.
const DISCOVERY_WAIT: Duration = Duration::from_secs(3);
/// How long connecting and logging in may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call may take (starting a group's playback included).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Lists and changes a lockstep household through one of its speakers.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The household key file (the speakers' key).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Find a speaker with mDNS on the interface with this address, and only there.
    #[arg(
        long,
        value_name = "IPv4",
        conflicts_with = "rpc",
        required_unless_present = "rpc"
    )]
    interface: Option<Ipv4Addr>,
    /// Talk to the speaker whose control API is at this address.
    #[arg(long, value_name = "HOST:PORT")]
    rpc: Option<String>,
    /// Print the speaker's answer as JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Lists the speakers, groups, pairs and subwoofers.
    Ls,
    /// Creates, changes or deletes a group.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Plays SOURCE in GROUP: `tone`, or a music file's path on the group's leader.
    Play { group: String, source: String },
    /// Pauses a group.
    Pause { group: String },
    /// Resumes a paused group.
    Resume { group: String },
    /// Stops a group.
    Stop { group: String },
    /// Sets a group's or a speaker's volume, in percent (0 to 100).
    Volume {
        /// A group or a speaker.
        target: String,
        #[arg(value_parser = parse_percent, value_name = "PERCENT")]
        percent: f64,
    },
    /// Mutes a speaker.
    Mute { speaker: String },
    /// Unmutes a speaker.
    Unmute { speaker: String },
    /// Sets a speaker's trim: how many milliseconds later (negative: earlier) it plays.
    Trim {
        speaker: String,
        #[arg(allow_negative_numbers = true, value_parser = parse_finite, value_name = "MS")]
        ms: f64,
    },
    /// Renames a speaker.
    Rename { speaker: String, name: String },
    /// Pairs two speakers of one model in ROOM as left and right.
    Pair {
        room: String,
        left: String,
        right: String,
    },
    /// Splits the stereo pair SPEAKER is half of.
    Unpair { speaker: String },
    /// Attaches the subwoofer SUB to a speaker or a pair (named by either half).
    Sub { host: String, sub: String },
    /// Detaches the subwoofer of a speaker or a pair.
    Unsub { host: String },
    /// Prints the speaker's notifications as they come.
    Watch {
        /// Stop after this many seconds (default: until interrupted).
        #[arg(long, value_name = "N")]
        seconds: Option<f64>,
    },
}

#[derive(Subcommand, Debug)]
enum GroupCmd {
    /// Creates group NAME of the speakers given.
    Create {
        name: String,
        #[arg(required = true)]
        speakers: Vec<String>,
    },
    /// Moves a speaker into a group (out of any other, while it plays).
    Add { group: String, speaker: String },
    /// Takes a speaker out of a group.
    Remove { group: String, speaker: String },
    /// Deletes a group.
    Delete { group: String },
    /// Renames a group.
    Rename { group: String, name: String },
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a volume from 0 to 100 (percent)")),
    }
}

fn parse_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("{s:?} is not a number")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit("household"),
    }
}

/// Exit code 1: the household said no.
fn refused(message: impl Into<String>) -> Failure {
    Failure::runtime(message)
}

/// Exit code 2: the app could not ask, or did not get an answer it can read.
fn unreachable(message: impl Into<String>) -> Failure {
    Failure::usage(message)
}

fn run(args: &Args) -> Result<(), Failure> {
    let seconds = match &args.command {
        Cmd::Watch { seconds } => cli::positive_seconds("--seconds", *seconds)?,
        _ => None,
    };
    let key = HouseholdKey::from_file(&args.key).map_err(|e| unreachable(e.to_string()))?;
    let (mut conn, mut browser) = match (&args.rpc, args.interface) {
        (Some(rpc), _) => (connect(rpc, &key)?, None),
        (None, Some(interface)) => {
            let (conn, browser) = discover(interface, &key)?;
            (conn, Some(browser))
        }
        (None, None) => return Err(unreachable("give --interface or --rpc")),
    };
    match &args.command {
        Cmd::Ls => {
            let (raw, status) = fetch_status(&mut conn)?;
            if args.json {
                print_json(&raw);
            } else {
                print!("{}", render_status(&status));
            }
            if let Some(browser) = &mut browser {
                let also = also_seen(browser, &status);
                if !also.is_empty() {
                    let mut text = String::from("seen on the network but not in the status:\n");
                    for info in also {
                        text += &format!(
                            "  {}  {}  at {}:{} (room {}, model {}, {})\n",
                            info.record.name,
                            info.id(),
                            info.addresses
                                .first()
                                .map_or_else(|| "?".to_owned(), |a| a.to_string()),
                            info.port,
                            info.record.room,
                            info.record.model,
                            info.record.state.as_str(),
                        );
                    }
                    // With --json, standard output stays the speaker's answer alone.
                    if args.json {
                        eprint!("{text}");
                    } else {
                        print!("{text}");
                    }
                }
            }
            Ok(())
        }
        Cmd::Watch { .. } => watch(&mut conn, seconds, args.json),
        cmd => {
            let status = if needs_status(cmd) {
                Some(fetch_status(&mut conn)?.1)
            } else {
                None
            };
            let call = call_for(cmd, status.as_ref())?;
            let result = send(&mut conn, call.method, call.params.clone(), args.json)?;
            let said = describe(&call, &result)?;
            if args.json {
                print_json(&result);
            } else {
                println!("{said}");
            }
            Ok(())
        }
    }
}

/// Connects to the speaker at `rpc` and logs in.
fn connect(rpc: &str, key: &HouseholdKey) -> Result<RpcConnection, Failure> {
    let addrs: Vec<SocketAddr> = rpc
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("--rpc {rpc}: {e}")))?
        .collect();
    let mut last = format!("--rpc {rpc}: no address");
    for addr in addrs {
        match RpcConnection::connect(addr, key.clone(), CONNECT_TIMEOUT) {
            Ok(conn) => return Ok(conn),
            Err(e) => last = format!("cannot log in to the speaker at {addr}: {e}"),
        }
    }
    Err(unreachable(last))
}

/// Waits for the first speaker that discovery lists on `interface`, connects to it and
/// logs in. The browser is kept for `ls`.
fn discover(interface: Ipv4Addr, key: &HouseholdKey) -> Result<(RpcConnection, Browser), Failure> {
    let mut browser = Browser::start(&[interface])
        .map_err(|e| unreachable(format!("discovery on {interface}: {e}")))?;
    let deadline = Instant::now() + DISCOVERY_WAIT;
    let info = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(unreachable(format!(
                "no speaker found on {interface} within {DISCOVERY_WAIT:?}"
            )));
        }
        if let Some(DiscoveryEvent::Discovered(info) | DiscoveryEvent::Updated(info)) =
            browser.next_event(left)
        {
            break info;
        }
    };
    let mut last = format!(
        "{} ({}) advertises no IPv4 address",
        info.record.name,
        info.id()
    );
    for address in &info.addresses {
        let addr = SocketAddr::new((*address).into(), info.port);
        match RpcConnection::connect(addr, key.clone(), CONNECT_TIMEOUT) {
            Ok(conn) => {
                eprintln!(
                    "household: talking to {} ({}) at {addr}",
                    info.record.name,
                    info.id()
                );
                return Ok((conn, browser));
            }
            Err(e) => {
                last = format!(
                    "cannot log in to {} ({}) at {addr}: {e}",
                    info.record.name,
                    info.id()
                );
            }
        }
    }
    Err(unreachable(last))
}

/// Calls `method`; a refusal is printed (and, with `--json`, written as `{"error": …}`).
fn send(
    conn: &mut RpcConnection,
    method: &str,
    params: Value,
    json: bool,
) -> Result<Value, Failure> {
    match conn.call(method, params, CALL_TIMEOUT) {
        Ok(result) => Ok(result),
        Err(RpcCallError::Rpc(e)) => {
            if json {
                let mut error = json!({"code": e.code, "message": e.message});
                if let Some(data) = &e.data {
                    error["data"] = data.clone();
                }
                print_json(&json!({ "error": error }));
            }
            let data = e
                .data
                .as_ref()
                .map_or_else(String::new, |d| format!(": {}", plain(d)));
            Err(refused(format!(
                "{method} refused: {}{data} (error {})",
                e.message, e.code
            )))
        }
        Err(e) => Err(unreachable(format!("{method}: {e}"))),
    }
}

/// A value as text without JSON's quotes: an object as `key value, …`.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k} {}", plain(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn print_json(v: &Value) {
    // A Value always serializes.
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// An answer that does not follow the control API.
fn broken(method: &str, why: impl std::fmt::Display, answer: &Value) -> Failure {
    unreachable(format!(
        "the answer to {method} does not follow the control API ({why}): {answer}"
    ))
}

// ---------------------------------------------------------------------------------------
// The commands.

/// A call to make: the method, its params, and what to say once it is done.
struct Call {
    method: &'static str,
    params: Value,
    done: String,
}

/// Whether the command needs the household's status to choose its call.
fn needs_status(cmd: &Cmd) -> bool {
    matches!(cmd, Cmd::Volume { .. } | Cmd::Pair { .. })
}

/// The table: every command but `ls` and `watch` is one call.
fn call_for(cmd: &Cmd, status: Option<&Status>) -> Result<Call, Failure> {
    let call = |method, params, done: String| {
        Ok(Call {
            method,
            params,
            done,
        })
    };
    match cmd {
        Cmd::Group(GroupCmd::Create { name, speakers }) => call(
            "group.create",
            json!({"name": name, "speakers": speakers}),
            format!("created group {name}"),
        ),
        Cmd::Group(GroupCmd::Add { group, speaker }) => call(
            "group.add",
            json!({"group": group, "speaker": speaker}),
            format!("added {speaker} to {group}"),
        ),
        Cmd::Group(GroupCmd::Remove { group, speaker }) => call(
            "group.remove",
            json!({"group": group, "speaker": speaker}),
            format!("removed {speaker} from {group}"),
        ),
        Cmd::Group(GroupCmd::Delete { group }) => call(
            "group.delete",
            json!({ "group": group }),
            format!("deleted group {group}"),
        ),
        Cmd::Group(GroupCmd::Rename { group, name }) => call(
            "group.rename",
            json!({"group": group, "name": name}),
            format!("renamed group {group} to {name}"),
        ),
        Cmd::Play { group, source } => call(
            "group.play",
            json!({"group": group, "source": source}),
            format!("playing {source} in {group}"),
        ),
        Cmd::Pause { group } => call(
            "group.pause",
            json!({ "group": group }),
            format!("paused {group}"),
        ),
        Cmd::Resume { group } => call(
            "group.resume",
            json!({ "group": group }),
            format!("resumed {group}"),
        ),
        Cmd::Stop { group } => call(
            "group.stop",
            json!({ "group": group }),
            format!("stopped {group}"),
        ),
        Cmd::Volume { target, percent } => {
            let volume = percent / 100.0;
            match volume_target(need(status)?, target)? {
                Target::Group(g) => call(
                    "group.volume",
                    json!({"group": g.id, "volume": volume}),
                    format!("set the volume of group {} to {percent} %", g.name),
                ),
                Target::Speaker(s) => call(
                    "speaker.volume",
                    json!({"speaker": s.id, "volume": volume}),
                    format!("set the volume of {} to {percent} %", s.name),
                ),
            }
        }
        Cmd::Mute { speaker } => call(
            "speaker.mute",
            json!({"speaker": speaker, "muted": true}),
            format!("muted {speaker}"),
        ),
        Cmd::Unmute { speaker } => call(
            "speaker.mute",
            json!({"speaker": speaker, "muted": false}),
            format!("unmuted {speaker}"),
        ),
        Cmd::Trim { speaker, ms } => call(
            "speaker.trim",
            json!({"speaker": speaker, "trim_ms": ms}),
            format!("set the trim of {speaker} to {ms:+} ms"),
        ),
        Cmd::Rename { speaker, name } => call(
            "speaker.rename",
            json!({"speaker": speaker, "name": name}),
            format!("renamed {speaker} to {name}"),
        ),
        Cmd::Pair { room, left, right } => {
            let status = need(status)?;
            let (l, r) = (status.speaker(left)?, status.speaker(right)?);
            for s in [l, r] {
                if s.room != *room {
                    return Err(refused(format!(
                        "{} ({}) stands in room {:?}, not {room:?}",
                        s.name, s.id, s.room
                    )));
                }
            }
            call(
                "pair.create",
                json!({"left": l.id, "right": r.id}),
                format!("paired {} (left) and {} (right) in {room}", l.name, r.name),
            )
        }
        Cmd::Unpair { speaker } => call(
            "pair.delete",
            json!({ "speaker": speaker }),
            format!("split the pair of {speaker}"),
        ),
        Cmd::Sub { host, sub } => call(
            "sub.set",
            json!({"host": host, "sub": sub}),
            format!("attached {sub} as the subwoofer of {host}"),
        ),
        Cmd::Unsub { host } => call(
            "sub.clear",
            json!({ "host": host }),
            format!("detached the subwoofer of {host}"),
        ),
        Cmd::Ls | Cmd::Watch { .. } => Err(unreachable("ls and watch are not single calls")),
    }
}

fn need(status: Option<&Status>) -> Result<&Status, Failure> {
    status.ok_or_else(|| unreachable("the household's status was not fetched"))
}

/// The text for a done call, from what the speaker answered.
fn describe(call: &Call, result: &Value) -> Result<String, Failure> {
    let field = |name: &str| {
        result
            .get(name)
            .ok_or_else(|| broken(call.method, format!("no {name:?}"), result))
    };
    let clock = field("clock")?
        .as_u64()
        .ok_or_else(|| broken(call.method, "\"clock\" is not a count", result))?;
    let text = |name: &str| {
        field(name)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| broken(call.method, format!("{name:?} is not a string"), result))
    };
    Ok(match call.method {
        "group.create" => format!(
            "{} (id {}, household clock {clock})",
            call.done,
            text("group")?
        ),
        "group.play" => format!(
            "{}, led by {} (household clock {clock})",
            call.done,
            text("leader")?
        ),
        _ => format!("{} (household clock {clock})", call.done),
    })
}

/// What `volume` changes.
enum Target<'a> {
    Group(&'a GroupStatus),
    Speaker(&'a SpeakerStatus),
}

/// The group or speaker `name` names: by id, or by a name that only one group or speaker
/// has. A name that is a group's and a speaker's is refused, as is one that is unknown.
fn volume_target<'a>(status: &'a Status, name: &str) -> Result<Target<'a>, Failure> {
    let groups: Vec<&GroupStatus> = status
        .groups
        .iter()
        .filter(|g| g.id == name || g.name == name)
        .collect();
    let speakers: Vec<&SpeakerStatus> = status
        .speakers
        .iter()
        .filter(|s| s.id.eq_ignore_ascii_case(name) || s.name == name)
        .collect();
    match (groups.as_slice(), speakers.as_slice()) {
        ([g], []) => Ok(Target::Group(g)),
        ([], [s]) => Ok(Target::Speaker(s)),
        ([], []) => Err(refused(format!(
            "no group or speaker is called {name:?} in the household's status"
        ))),
        _ => {
            let mut all: Vec<String> = groups
                .iter()
                .map(|g| format!("group {} ({})", g.name, g.id))
                .collect();
            all.extend(
                speakers
                    .iter()
                    .map(|s| format!("speaker {} ({})", s.name, s.id)),
            );
            Err(refused(format!(
                "{name:?} is ambiguous: it names {}; give the id of the one you mean",
                all.join(" and ")
            )))
        }
    }
}

/// Prints the speaker's notifications until `seconds` have passed (or for good).
fn watch(conn: &mut RpcConnection, seconds: Option<Duration>, json: bool) -> Result<(), Failure> {
    let until = seconds.map(|s| Instant::now() + s);
    match seconds {
        Some(s) => eprintln!("household: watching for {} s", s.as_secs_f64()),
        None => eprintln!("household: watching until interrupted"),
    }
    loop {
        let wait = match until {
            Some(t) => t.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(1),
        };
        if wait.is_zero() {
            return Ok(());
        }
        let note = conn
            .next_notification(wait.min(Duration::from_secs(1)))
            .map_err(|e| unreachable(format!("watching: {e}")))?;
        if let Some((method, params)) = note {
            if json {
                println!("{}", json!({"method": method, "params": params}));
            } else {
                println!("{}", render_notification(&method, &params));
            }
            // Each as it comes, also into a pipe.
            let _ = std::io::stdout().flush();
        }
    }
}

fn render_notification(method: &str, params: &Value) -> String {
    let s = |k: &str| params.get(k).and_then(Value::as_str);
    match method {
        "household.changed" => match params.get("clock").and_then(Value::as_u64) {
            Some(clock) => format!("household changed (clock {clock})"),
            None => format!("{method} {params}"),
        },
        "group.state" => match (s("name"), s("group"), s("state")) {
            (Some(name), Some(id), Some(state)) => format!("group {name} ({id}) is {state}"),
            _ => format!("{method} {params}"),
        },
        "speaker.state" => match (s("speaker"), s("state")) {
            (Some(id), Some(state)) => match s("group") {
                Some(group) => format!("speaker {id} is {state} (group {group})"),
                None => format!("speaker {id} is {state}"),
            },
            _ => format!("{method} {params}"),
        },
        "household.conflict" => format!("household conflict: {}", plain(params)),
        _ => format!("{method} {params}"),
    }
}

// ---------------------------------------------------------------------------------------
// The household's status (`household.status`).

#[derive(Debug, Deserialize)]
struct Status {
    clock: u64,
    /// The id of the speaker that answered.
    speaker: Option<String>,
    /// How many conflicts its merges of the household found so far.
    conflicts: Option<u64>,
    /// Why it could not start leading, if it could not.
    lead_error: Option<String>,
    speakers: Vec<SpeakerStatus>,
    groups: Vec<GroupStatus>,
    pairs: Vec<PairStatus>,
    subs: Vec<SubStatus>,
}

#[derive(Debug, Deserialize)]
struct SpeakerStatus {
    id: String,
    name: String,
    room: String,
    model: String,
    volume: f64,
    muted: bool,
    trim_ms: f64,
    online: bool,
    state: String,
    group: Option<String>,
    role: Option<String>,
    health: Option<Health>,
}

#[derive(Debug, Deserialize)]
struct Health {
    playing: bool,
    underruns: u64,
    packets_lost: u64,
    packets_late: u64,
    buffer_ms: f64,
    clock_settled: bool,
    /// Null until there is a clock estimate.
    uncertainty_us: Option<f64>,
    /// Null until there is a skew estimate.
    skew_us: Option<f64>,
    media_authenticated: bool,
    clock_authenticated: bool,
}

#[derive(Debug, Deserialize)]
struct GroupStatus {
    id: String,
    name: String,
    members: Vec<String>,
    volume: f64,
    leader: Option<String>,
    state: String,
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PairStatus {
    left: String,
    right: String,
}

#[derive(Debug, Deserialize)]
struct SubStatus {
    host: String,
    sub: String,
}

fn fetch_status(conn: &mut RpcConnection) -> Result<(Value, Status), Failure> {
    let raw = conn
        .call("household.status", json!({}), CALL_TIMEOUT)
        .map_err(|e| match e {
            RpcCallError::Rpc(e) => refused(format!("household.status refused: {e}")),
            e => unreachable(format!("household.status: {e}")),
        })?;
    let status = Status::deserialize(&raw).map_err(|e| broken("household.status", e, &raw))?;
    Ok((raw, status))
}

impl Status {
    /// The speaker `name` names, by id or by a name only it has.
    fn speaker(&self, name: &str) -> Result<&SpeakerStatus, Failure> {
        let found: Vec<&SpeakerStatus> = self
            .speakers
            .iter()
            .filter(|s| s.id.eq_ignore_ascii_case(name) || s.name == name)
            .collect();
        match found.as_slice() {
            [s] => Ok(s),
            [] => Err(refused(format!(
                "no speaker is called {name:?} in the household's status"
            ))),
            _ => Err(refused(format!(
                "{name:?} is ambiguous: it names the speakers {}; give the id",
                found
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Names by id, for showing ids as names.
    fn names(&self) -> HashMap<&str, &str> {
        let mut names: HashMap<&str, &str> = self
            .speakers
            .iter()
            .map(|s| (s.id.as_str(), s.name.as_str()))
            .collect();
        names.extend(self.groups.iter().map(|g| (g.id.as_str(), g.name.as_str())));
        names
    }
}

fn count(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

fn percent(volume: f64) -> String {
    format!("{:.0} %", volume * 100.0)
}

fn render_status(status: &Status) -> String {
    let names = status.names();
    let name = |id: &str| {
        names
            .get(id)
            .map_or_else(|| id.to_owned(), |n| (*n).to_owned())
    };
    let mut out = format!(
        "household clock {}: {}, {}",
        status.clock,
        count(status.speakers.len(), "speaker"),
        count(status.groups.len(), "group")
    );
    if let Some(me) = &status.speaker {
        out += &format!(" (as {} sees it)", name(me));
    }
    out += "\n";
    if let Some(n) = status.conflicts.filter(|n| *n > 0) {
        out += &format!("conflicts found merging the household: {n}\n");
    }
    if let Some(e) = &status.lead_error {
        out += &format!("could not lead: {e}\n");
    }
    out += "speakers:\n";
    for s in &status.speakers {
        let mut line = vec![format!("room {}", s.room), format!("model {}", s.model)];
        line.push(match &s.group {
            Some(g) if s.state == "idle" => format!("idle, in {}", name(g)),
            Some(g) => format!("{} {}", s.state, name(g)),
            None => s.state.clone(),
        });
        if let Some(role) = s.role.as_deref().filter(|r| *r != "full") {
            line.push(format!("role {role}"));
        }
        line.push(format!(
            "volume {}{}",
            percent(s.volume),
            if s.muted { " (muted)" } else { "" }
        ));
        if s.trim_ms != 0.0 {
            line.push(format!("trim {:+} ms", s.trim_ms));
        }
        if !s.online {
            line.push("OFFLINE".into());
        }
        out += &format!("  {}  {}\n    {}\n", s.name, s.id, line.join(", "));
        out += &format!("    health: {}\n", health(s.health.as_ref()));
    }
    out += "groups:\n";
    if status.groups.is_empty() {
        out += "  none\n";
    }
    for g in &status.groups {
        let mut line = vec![match &g.source {
            Some(src) => format!("{} {src}", g.state),
            None => g.state.clone(),
        }];
        if let Some(leader) = &g.leader {
            line.push(format!("leader {}", name(leader)));
        }
        line.push(format!("volume {}", percent(g.volume)));
        let members: Vec<String> = g.members.iter().map(|m| name(m)).collect();
        out += &format!(
            "  {}  {}\n    {}\n    members: {}\n",
            g.name,
            g.id,
            line.join(", "),
            members.join(", ")
        );
    }
    if !status.pairs.is_empty() {
        out += "pairs:\n";
        for p in &status.pairs {
            out += &format!("  {} (left) + {} (right)\n", name(&p.left), name(&p.right));
        }
    }
    if !status.subs.is_empty() {
        out += "subwoofers:\n";
        for s in &status.subs {
            out += &format!("  {} under {}\n", name(&s.sub), name(&s.host));
        }
    }
    out
}

fn health(h: Option<&Health>) -> String {
    let Some(h) = h else {
        return "none reported".into();
    };
    let mut parts = vec![
        if h.playing { "playing" } else { "not playing" }.to_owned(),
        format!("buffer {:.1} ms", h.buffer_ms),
        h.skew_us.map_or_else(
            || "skew not estimated yet".into(),
            |s| format!("skew {s:.1} µs"),
        ),
        h.uncertainty_us.map_or_else(
            || "no clock estimate yet".into(),
            |u| format!("clock ±{u:.1} µs"),
        ),
        format!("{} underruns", h.underruns),
        format!("{} packets lost", h.packets_lost),
        format!("{} late", h.packets_late),
    ];
    if !h.clock_settled {
        parts.push("clock settling".into());
    }
    if !h.media_authenticated {
        parts.push("MEDIA NOT AUTHENTICATED".into());
    }
    if !h.clock_authenticated {
        parts.push("CLOCK NOT AUTHENTICATED".into());
    }
    parts.join(", ")
}

/// The speakers discovery lists that the status does not have.
fn also_seen<'a>(browser: &'a mut Browser, status: &Status) -> Vec<&'a SpeakerInfo> {
    // Take in what was resolved while the status was fetched.
    let deadline = Instant::now() + Duration::from_secs(1);
    while browser.poll_event().is_some() && Instant::now() < deadline {}
    browser
        .speakers()
        .into_iter()
        .filter(|info| {
            !status
                .speakers
                .iter()
                .any(|s| s.id.eq_ignore_ascii_case(info.id()))
        })
        .collect()
}
