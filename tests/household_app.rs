//! The `household` example as a user runs it, against a scripted speaker on loopback: a
//! real `RpcListener` whose handler records every call and answers as the control API's
//! contract says (`docs/control-api.md`). Each command's method and params, the text and
//! `--json` output, the exit codes of a refusal, a wrong key and an unreachable speaker,
//! the ambiguity rule of `volume`, and `watch`.
//!
//! Discovery (`--interface`) needs network namespaces and is not run here; the browser it
//! uses is tested in `src/household/discovery/ns_tests.rs`.

#[path = "common/bin.rs"]
mod bin;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lockstep::control::HouseholdKey;
use lockstep::household::rpc::codes;
use lockstep::household::{RpcError, RpcHandler, RpcListener, SharedHandler};
use serde_json::{Value, json};

const KEY: &[u8] = b"the household key of the app test";
const KITCHEN: &str = "6b1f0c2a9d3e4f5061728394a5b6c7d8";
const LIVING_L: &str = "7c2a1d3b0e4f5a6b7c8d9e0f1a2b3c4d";
const LIVING_R: &str = "8d3b2e4c1f5a6b7c8d9e0f1a2b3c4d5e";
const SUB: &str = "9e4c3f5d2a6b7c8d9e0f1a2b3c4d5e6f";
const DEN: &str = "a05d4a6e3b7c8d9e0f1a2b3c4d5e6f70";
const DOWNSTAIRS: &str = "12-6b1f0c2a9d3e4f5061728394a5b6c7d8";
const DEN_GROUP: &str = "15-a05d4a6e3b7c8d9e0f1a2b3c4d5e6f70";
const NEW_GROUP: &str = "18-6b1f0c2a9d3e4f5061728394a5b6c7d8";
/// Longest a run of the app may take: its own waits are 5 s to connect, 10 s per call.
const RUN_DEADLINE: Duration = Duration::from_secs(30);

/// The household a scripted speaker reports: a playing group of a speaker, a stereo pair
/// and a subwoofer, and a speaker "Den" in a group "Den".
fn status() -> Value {
    let health = |skew: f64| {
        json!({"playing": true, "underruns": 0, "packets_lost": 3, "packets_late": 1,
               "buffer_ms": 98.1, "clock_settled": true, "uncertainty_us": 3.2,
               "skew_us": skew, "media_authenticated": true, "clock_authenticated": true})
    };
    let speaker = |id: &str, name: &str, room: &str, state: &str, group: Value, role: Value| {
        json!({"id": id, "name": name, "room": room, "model": "LS-1", "volume": 0.8,
               "muted": false, "trim_ms": 0.0, "online": true, "state": state,
               "group": group, "role": role, "health": Value::Null})
    };
    let mut kitchen = speaker(
        KITCHEN,
        "Kitchen",
        "Kitchen",
        "leading",
        json!(DOWNSTAIRS),
        json!("full"),
    );
    kitchen["health"] = health(0.0);
    let mut left = speaker(
        LIVING_L,
        "Living L",
        "Living",
        "following",
        json!(DOWNSTAIRS),
        json!("left"),
    );
    left["health"] = health(0.4);
    let mut right = speaker(
        LIVING_R,
        "Living R",
        "Living",
        "following",
        json!(DOWNSTAIRS),
        json!("right"),
    );
    right["health"] = health(-0.6);
    right["trim_ms"] = json!(-2.5);
    let mut sub = speaker(
        SUB,
        "Sub",
        "Living",
        "following",
        json!(DOWNSTAIRS),
        json!("sub"),
    );
    // A follower that has no estimates yet.
    sub["health"] = health(1.1);
    sub["health"]["skew_us"] = Value::Null;
    sub["health"]["uncertainty_us"] = Value::Null;
    let mut den = speaker(DEN, "Den", "Den", "idle", json!(DEN_GROUP), Value::Null);
    den["muted"] = json!(true);
    den["online"] = json!(false);
    json!({
        "clock": 17,
        "speaker": KITCHEN,
        "conflicts": 2,
        "lead_error": "no source \"/music/gone.flac\" on this speaker",
        "speakers": [kitchen, left, right, sub, den],
        "groups": [
            {"id": DOWNSTAIRS, "name": "Downstairs", "members": [KITCHEN, LIVING_L, LIVING_R, SUB],
             "volume": 0.5, "leader": KITCHEN, "state": "playing", "source": "tone"},
            {"id": DEN_GROUP, "name": "Den", "members": [DEN], "volume": 1.0,
             "leader": null, "state": "stopped", "source": null}
        ],
        "pairs": [{"left": LIVING_L, "right": LIVING_R}],
        "subs": [{"host": LIVING_L, "sub": SUB}]
    })
}

/// The answer of `household.status` in the example of `docs/control-api.md`.
fn documented_status() -> Value {
    let doc = include_str!("../docs/control-api.md");
    let example = doc
        .split("#### `household.status`")
        .nth(1)
        .expect("the page has an example of household.status");
    // Its second block is the answer.
    let answer = example
        .split("```json\n")
        .nth(2)
        .and_then(|b| b.split("```").next())
        .expect("the example has an answer");
    let answer: Value = serde_json::from_str(answer).expect("the answer is JSON");
    answer["result"].clone()
}

/// A speaker that records every call and answers from a script.
struct Scripted {
    calls: Vec<Call>,
    /// What it answers to `household.status`.
    status: Value,
}

impl RpcHandler for Scripted {
    fn call(&mut self, method: &str, params: &Value) -> Result<Value, RpcError> {
        self.calls.push((method.to_owned(), params.clone()));
        let names_nowhere = params
            .as_object()
            .is_some_and(|o| o.values().any(|v| v == "Nowhere"));
        if names_nowhere {
            // As the speaker node answers it: the data names what was not found.
            return Err(RpcError::new(codes::NOT_FOUND, "no such speaker or group")
                .with_data(json!({"speaker": "Nowhere"})));
        }
        match method {
            "household.status" => Ok(self.status.clone()),
            "group.create" => Ok(json!({"group": NEW_GROUP, "clock": 18})),
            "group.play" => Ok(json!({"leader": KITCHEN, "clock": 18})),
            // An answer without the clock the contract promises.
            "speaker.rename" if params["name"] == "Broken" => Ok(json!({})),
            "group.delete" | "group.rename" | "group.add" | "group.remove" | "group.pause"
            | "group.resume" | "group.stop" | "group.volume" | "speaker.volume"
            | "speaker.mute" | "speaker.trim" | "speaker.rename" | "pair.create"
            | "pair.delete" | "sub.set" | "sub.clear" => Ok(json!({"clock": 18})),
            _ => Err(RpcError::method_not_found(method)),
        }
    }
}

/// A scripted speaker listening on loopback with the test's key (or another).
struct Speaker {
    listener: RpcListener,
    script: Arc<Mutex<Scripted>>,
}

impl Speaker {
    fn start(key: &[u8]) -> Speaker {
        Speaker::answering(key, status())
    }

    fn answering(key: &[u8], status: Value) -> Speaker {
        let script = Arc::new(Mutex::new(Scripted {
            calls: Vec::new(),
            status,
        }));
        let handler: SharedHandler = script.clone();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listener = RpcListener::bind(addr, HouseholdKey::new(key).unwrap(), handler)
            .expect("bind on loopback");
        Speaker { listener, script }
    }

    fn rpc(&self) -> String {
        self.listener.local_addr().to_string()
    }

    /// The calls recorded since the last take.
    fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.script.lock().unwrap().calls)
    }
}

/// The key file the app reads.
fn key_file() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lockstep-app-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("household.key");
        std::fs::write(&path, KEY).unwrap();
        path
    })
    .clone()
}

/// The app, built first if this test process has not built it yet.
fn household() -> Command {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = BUILT.get_or_init(|| bin::build(&["household"])) {
        panic!("cannot build the household example: {e}");
    }
    bin::example("household")
}

/// A running app: killed and reaped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a run of the app gave.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Waits for the app to end (killing it after [`RUN_DEADLINE`]) and collects its output.
fn finish(mut running: Running) -> Ran {
    let deadline = Instant::now() + RUN_DEADLINE;
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the app ran over {RUN_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = running.0.stdout.take() {
        out.read_to_string(&mut stdout).unwrap();
    }
    if let Some(mut err) = running.0.stderr.take() {
        err.read_to_string(&mut stderr).unwrap();
    }
    Ran {
        code: status.code(),
        stdout,
        stderr,
    }
}

fn spawn(args: &[&str]) -> Running {
    Running(
        household()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the app"),
    )
}

/// Runs `household --key KEY --rpc RPC ARGS…`.
fn app(rpc: &str, args: &[&str]) -> Ran {
    let key = key_file();
    let mut all = vec!["--key", key.to_str().unwrap(), "--rpc", rpc];
    all.extend_from_slice(args);
    finish(spawn(&all))
}

/// A call the speaker recorded: its method and params.
type Call = (String, Value);

fn call(method: &str, params: Value) -> Call {
    (method.to_owned(), params)
}

#[test]
fn every_command_sends_its_method_and_params_and_says_what_was_done() {
    let speaker = Speaker::start(KEY);
    let rpc = speaker.rpc();
    let status = || call("household.status", json!({}));
    // The command line, the calls it makes, and what it says once done.
    let cases: Vec<(Vec<&str>, Vec<Call>, &str)> = vec![
        (
            vec!["group", "create", "Upstairs", "Den", KITCHEN],
            vec![call(
                "group.create",
                json!({"name": "Upstairs", "speakers": ["Den", KITCHEN]}),
            )],
            "created group Upstairs (id 18-6b1f0c2a9d3e4f5061728394a5b6c7d8, household clock 18)",
        ),
        (
            vec!["group", "add", "Downstairs", "Den"],
            vec![call(
                "group.add",
                json!({"group": "Downstairs", "speaker": "Den"}),
            )],
            "added Den to Downstairs (household clock 18)",
        ),
        (
            vec!["group", "remove", "Downstairs", "Kitchen"],
            vec![call(
                "group.remove",
                json!({"group": "Downstairs", "speaker": "Kitchen"}),
            )],
            "removed Kitchen from Downstairs",
        ),
        (
            vec!["group", "delete", "Den"],
            vec![call("group.delete", json!({"group": "Den"}))],
            "deleted group Den",
        ),
        (
            vec!["group", "rename", "Den", "Study"],
            vec![call(
                "group.rename",
                json!({"group": "Den", "name": "Study"}),
            )],
            "renamed group Den to Study",
        ),
        (
            vec!["play", "Downstairs", "/music/song.flac"],
            vec![call(
                "group.play",
                json!({"group": "Downstairs", "source": "/music/song.flac"}),
            )],
            "playing /music/song.flac in Downstairs, led by 6b1f0c2a9d3e4f5061728394a5b6c7d8",
        ),
        (
            vec!["pause", "Downstairs"],
            vec![call("group.pause", json!({"group": "Downstairs"}))],
            "paused Downstairs",
        ),
        (
            vec!["resume", "Downstairs"],
            vec![call("group.resume", json!({"group": "Downstairs"}))],
            "resumed Downstairs",
        ),
        (
            vec!["stop", "Downstairs"],
            vec![call("group.stop", json!({"group": "Downstairs"}))],
            "stopped Downstairs",
        ),
        (
            vec!["volume", "Downstairs", "30"],
            vec![
                status(),
                call("group.volume", json!({"group": DOWNSTAIRS, "volume": 0.3})),
            ],
            "set the volume of group Downstairs to 30 %",
        ),
        (
            vec!["volume", "Kitchen", "55"],
            vec![
                status(),
                call(
                    "speaker.volume",
                    json!({"speaker": KITCHEN, "volume": 0.55}),
                ),
            ],
            "set the volume of Kitchen to 55 %",
        ),
        (
            vec!["mute", "Kitchen"],
            vec![call(
                "speaker.mute",
                json!({"speaker": "Kitchen", "muted": true}),
            )],
            "muted Kitchen",
        ),
        (
            vec!["unmute", "Kitchen"],
            vec![call(
                "speaker.mute",
                json!({"speaker": "Kitchen", "muted": false}),
            )],
            "unmuted Kitchen",
        ),
        (
            vec!["trim", "Living R", "-2.5"],
            vec![call(
                "speaker.trim",
                json!({"speaker": "Living R", "trim_ms": -2.5}),
            )],
            "set the trim of Living R to -2.5 ms",
        ),
        (
            vec!["rename", "Den", "Study"],
            vec![call(
                "speaker.rename",
                json!({"speaker": "Den", "name": "Study"}),
            )],
            "renamed Den to Study",
        ),
        (
            vec!["pair", "Living", "Living L", "Living R"],
            vec![
                status(),
                call("pair.create", json!({"left": LIVING_L, "right": LIVING_R})),
            ],
            "paired Living L (left) and Living R (right) in Living",
        ),
        (
            vec!["unpair", "Living R"],
            vec![call("pair.delete", json!({"speaker": "Living R"}))],
            "split the pair of Living R",
        ),
        (
            vec!["sub", "Living L", "Sub"],
            vec![call("sub.set", json!({"host": "Living L", "sub": "Sub"}))],
            "attached Sub as the subwoofer of Living L",
        ),
        (
            vec!["unsub", "Living L"],
            vec![call("sub.clear", json!({"host": "Living L"}))],
            "detached the subwoofer of Living L",
        ),
    ];
    for (args, calls, said) in cases {
        let ran = app(&rpc, &args);
        assert_eq!(ran.code, Some(0), "{args:?}: {ran:?}");
        assert_eq!(speaker.take_calls(), calls, "{args:?}");
        assert!(ran.stdout.contains(said), "{args:?}: {ran:?}");
        assert!(
            ran.stdout.contains("household clock 18"),
            "{args:?}: {ran:?}"
        );
    }
}

#[test]
fn json_prints_the_answer_as_it_came() {
    let speaker = Speaker::start(KEY);
    let ran = app(
        &speaker.rpc(),
        &["--json", "group", "create", "Upstairs", "Den"],
    );
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.json(), json!({"group": NEW_GROUP, "clock": 18}));
    // --json goes after the command too.
    let ran = app(&speaker.rpc(), &["stop", "Downstairs", "--json"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.json(), json!({"clock": 18}));
    let ran = app(&speaker.rpc(), &["--json", "ls"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.json(), status());
}

#[test]
fn ls_lists_speakers_with_their_health_and_groups_pairs_and_subs() {
    let speaker = Speaker::start(KEY);
    let ran = app(&speaker.rpc(), &["ls"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(
        speaker.take_calls(),
        vec![call("household.status", json!({}))]
    );
    let out = &ran.stdout;
    for line in [
        "household clock 17: 5 speakers, 2 groups (as Kitchen sees it)",
        "conflicts found merging the household: 2",
        "could not lead: no source \"/music/gone.flac\" on this speaker",
        "    health: playing, buffer 98.1 ms, skew not estimated yet, no clock estimate yet,",
        &format!("  Kitchen  {KITCHEN}"),
        "    room Kitchen, model LS-1, leading Downstairs, volume 80 %",
        "    health: playing, buffer 98.1 ms, skew 0.0 µs, clock ±3.2 µs, 0 underruns, 3 packets lost, 1 late",
        "    room Living, model LS-1, following Downstairs, role left, volume 80 %",
        "role right, volume 80 %, trim -2.5 ms",
        &format!("  Den  {DEN}"),
        "    room Den, model LS-1, idle, in Den, volume 80 % (muted), OFFLINE",
        "    health: none reported",
        &format!("  Downstairs  {DOWNSTAIRS}"),
        "    playing tone, leader Kitchen, volume 50 %",
        "    members: Kitchen, Living L, Living R, Sub",
        "    stopped, volume 100 %",
        "  Living L (left) + Living R (right)",
        "  Sub under Living L",
    ] {
        assert!(out.contains(line), "no {line:?} in\n{out}");
    }
}

#[test]
fn the_documented_status_is_what_the_app_reads() {
    let speaker = Speaker::answering(KEY, documented_status());
    let ran = app(&speaker.rpc(), &["ls"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    for line in [
        "household clock 17: 5 speakers, 1 group",
        "    room Living, model LS-1, following Downstairs, role right, volume 80 %",
        "    health: playing, buffer 97.6 ms, skew -0.6 µs, clock ±2.9 µs, 0 underruns, 2 packets lost, 0 late",
        "    playing tone, leader Kitchen, volume 100 %",
        "  Sub under Living L",
    ] {
        assert!(ran.stdout.contains(line), "no {line:?} in\n{}", ran.stdout);
    }
}

#[test]
fn a_refusal_shows_the_message_and_data_and_exits_1() {
    let speaker = Speaker::start(KEY);
    let ran = app(&speaker.rpc(), &["group", "add", "Downstairs", "Nowhere"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stdout.is_empty(), "{ran:?}");
    assert!(
        ran.stderr.contains(
            "group.add refused: no such speaker or group: speaker Nowhere (error -32003)"
        ),
        "{ran:?}"
    );
    let ran = app(&speaker.rpc(), &["--json", "mute", "Nowhere"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert_eq!(
        ran.json(),
        json!({"error": {"code": -32003, "message": "no such speaker or group",
                         "data": {"speaker": "Nowhere"}}})
    );
    assert!(ran.stderr.contains("speaker.mute refused"), "{ran:?}");
}

#[test]
fn a_wrong_key_is_refused_at_login_and_exits_2_having_called_nothing() {
    let other = Speaker::start(b"another household's key, long enough");
    let ran = app(&other.rpc(), &["stop", "Downstairs"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("cannot log in"), "{ran:?}");
    assert!(ran.stderr.contains("unauthenticated"), "{ran:?}");
    assert!(other.take_calls().is_empty());
}

#[test]
fn an_unreachable_speaker_a_broken_answer_and_a_bad_command_line_exit_2() {
    // A port nobody listens on: bound, then closed.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let ran = app(&addr, &["ls"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("cannot log in"), "{ran:?}");

    let speaker = Speaker::start(KEY);
    let ran = app(&speaker.rpc(), &["rename", "Den", "Broken"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(
        ran.stderr
            .contains("the answer to speaker.rename does not follow the control API"),
        "{ran:?}"
    );
    assert!(ran.stdout.is_empty(), "{ran:?}");

    // Out of range: refused before anything is sent.
    let ran = app(&speaker.rpc(), &["volume", "Kitchen", "150"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("0 to 100"), "{ran:?}");
    // Neither --rpc nor --interface.
    let key = key_file();
    let ran = finish(spawn(&["--key", key.to_str().unwrap(), "ls"]));
    assert_eq!(ran.code, Some(2), "{ran:?}");
    // An interface address this machine does not have (TEST-NET-1): discovery refuses it
    // before its daemon starts, so nothing is sent.
    let ran = finish(spawn(&[
        "--key",
        key.to_str().unwrap(),
        "--interface",
        "192.0.2.1",
        "ls",
    ]));
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("discovery on 192.0.2.1"), "{ran:?}");
    assert_eq!(
        speaker.take_calls(),
        vec![call(
            "speaker.rename",
            json!({"speaker": "Den", "name": "Broken"})
        )]
    );
}

#[test]
fn volume_takes_a_group_or_a_speaker_by_name_or_id_and_refuses_a_name_that_is_both() {
    let speaker = Speaker::start(KEY);
    let rpc = speaker.rpc();
    // "Den" is a group and a speaker: refused, nothing changed.
    let ran = app(&rpc, &["volume", "Den", "20"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("\"Den\" is ambiguous"), "{ran:?}");
    assert!(
        ran.stderr.contains(&format!("group Den ({DEN_GROUP})"))
            && ran.stderr.contains(&format!("speaker Den ({DEN})")),
        "{ran:?}"
    );
    assert_eq!(
        speaker.take_calls(),
        vec![call("household.status", json!({}))]
    );
    // Their ids say which.
    let ran = app(&rpc, &["volume", DEN_GROUP, "20"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(
        speaker.take_calls()[1],
        call("group.volume", json!({"group": DEN_GROUP, "volume": 0.2}))
    );
    let ran = app(&rpc, &["volume", &DEN.to_uppercase(), "20"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(
        speaker.take_calls()[1],
        call("speaker.volume", json!({"speaker": DEN, "volume": 0.2}))
    );
    // A name the status does not have.
    let ran = app(&rpc, &["volume", "Attic", "20"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(
        ran.stderr
            .contains("no group or speaker is called \"Attic\""),
        "{ran:?}"
    );
    assert_eq!(speaker.take_calls().len(), 1);
}

#[test]
fn pair_refuses_a_speaker_in_another_room_before_asking() {
    let speaker = Speaker::start(KEY);
    let ran = app(&speaker.rpc(), &["pair", "Living", "Living L", "Kitchen"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(
        ran.stderr.contains(&format!(
            "Kitchen ({KITCHEN}) stands in room \"Kitchen\", not \"Living\""
        )),
        "{ran:?}"
    );
    let ran = app(&speaker.rpc(), &["pair", "Living", "Living L", "Attic"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(
        ran.stderr.contains("no speaker is called \"Attic\""),
        "{ran:?}"
    );
    // Only the status was read; no pair was asked for.
    assert_eq!(
        speaker.take_calls(),
        vec![
            call("household.status", json!({})),
            call("household.status", json!({}))
        ]
    );
}

#[test]
fn watch_prints_notifications_as_they_come_and_stops_after_its_seconds() {
    let speaker = Speaker::start(KEY);
    for json_flag in [false, true] {
        let key = key_file();
        let rpc = speaker.rpc();
        let mut args = vec!["--key", key.to_str().unwrap(), "--rpc", &rpc, "watch"];
        args.extend(["--seconds", "3"]);
        if json_flag {
            args.push("--json");
        }
        let mut running = spawn(&args);
        // It says so once it has logged in; notifications before that are not sent to it.
        let mut stderr = BufReader::new(running.0.stderr.take().expect("piped"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("the app's first line");
        assert!(line.contains("watching for 3 s"), "{line:?}");
        speaker
            .listener
            .notify("household.changed", json!({"clock": 19}));
        speaker.listener.notify(
            "group.state",
            json!({"group": DOWNSTAIRS, "name": "Downstairs", "state": "paused"}),
        );
        speaker.listener.notify("other.thing", json!({"x": 1}));
        let started = Instant::now();
        let ran = finish(running);
        assert_eq!(ran.code, Some(0), "{ran:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let lines: Vec<&str> = ran.stdout.lines().collect();
        if json_flag {
            let got: Vec<Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            assert_eq!(
                got,
                vec![
                    json!({"method": "household.changed", "params": {"clock": 19}}),
                    json!({"method": "group.state", "params":
                        {"group": DOWNSTAIRS, "name": "Downstairs", "state": "paused"}}),
                    json!({"method": "other.thing", "params": {"x": 1}}),
                ]
            );
        } else {
            assert_eq!(
                lines,
                [
                    "household changed (clock 19)",
                    &format!("group Downstairs ({DOWNSTAIRS}) is paused"),
                    // One it does not know, as it came.
                    "other.thing {\"x\":1}",
                ]
            );
        }
    }
    assert!(speaker.take_calls().is_empty());
}
