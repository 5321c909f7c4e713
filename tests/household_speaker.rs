//! Speaker nodes on loopback, driven through the control API as an app drives them: a
//! group formed and played, a speaker moved to another group while both play, a speaker
//! restarted with its settings, and the errors the API gives for bad requests.
//!
//! Every sync figure here is measured from the speakers' recordings (cross-correlation),
//! never from what the speakers report. The figures the issue sets as targets (play to
//! sync within 1 s, a move within 1 s) are measured by `examples/household_demo.rs`; these
//! tests hold the behaviour, with bounds loose enough for a loaded machine.

#[path = "common/household.rs"]
mod household;
#[path = "common/node.rs"]
mod node;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use household::{CALL, call, entry, playing, status, wait_for};
use lockstep::household::rpc::codes;
use lockstep::household::{PlayState, RpcCallError, RpcConnection, SpeakerConfig, SpeakerNode};
use lockstep::measure::{measure_recordings, recording};
use lockstep::node::{FollowerReport, LocalClock, Output};
use lockstep::time::{Nanos, TrueInstant};
use node::*;
use serde_json::{Value, json};

/// A speaker on loopback named `name`, its state in `dir/name`, recording to
/// `dir/<wav>`, on a crystal `ppm` fast, knowing `peers`.
fn speaker(
    dir: &Path,
    name: &str,
    model: &str,
    ppm: f64,
    wav: &str,
    peers: &[SocketAddr],
) -> SpeakerNode {
    let mut c = SpeakerConfig::new(
        key(),
        name,
        "Living room",
        model,
        dir.join(name),
        Ipv4Addr::LOCALHOST,
        "127.0.0.1:0".parse().expect("address"),
    );
    c.output = Output::Wav(dir.join(wav));
    c.clock = LocalClock::Drifting {
        drift_ppm: ppm,
        offset: Nanos::from_millis((ppm * 5.0) as i64),
    };
    c.peers = peers.to_vec();
    c.latency = Nanos::from_millis(100);
    SpeakerNode::start(c).unwrap_or_else(|e| panic!("speaker {name} starts: {e}"))
}

fn app(s: &SpeakerNode) -> RpcConnection {
    RpcConnection::connect(s.rpc_addr(), key(), CALL).expect("the app logs in")
}

fn first_sample(reports: &[FollowerReport]) -> i64 {
    reports
        .iter()
        .filter_map(|r| r.first_sample_ns)
        .min()
        .expect("a session played")
}

/// Kitchen (+60 ppm), Den (−40 ppm) and, when `hall`, Hall (+15 ppm), all model m1,
/// recording to `kitchen.wav`, `den.wav` and `hall.wav`. Den and Hall know only Kitchen
/// (they learn of each other from it). Returns them, in that order, and an app logged in
/// to Kitchen, once Kitchen lists every one of them online.
fn household(dir: &Path, hall: bool) -> (Vec<SpeakerNode>, RpcConnection) {
    let a = speaker(dir, "Kitchen", "m1", 60.0, "kitchen.wav", &[]);
    let mut all = vec![speaker(dir, "Den", "m1", -40.0, "den.wav", &[a.rpc_addr()])];
    if hall {
        all.push(speaker(
            dir,
            "Hall",
            "m1",
            15.0,
            "hall.wav",
            &[a.rpc_addr()],
        ));
    }
    all.insert(0, a);
    let mut to_a = app(&all[0]);
    let names: &[&str] = if hall {
        &["Kitchen", "Den", "Hall"]
    } else {
        &["Kitchen", "Den"]
    };
    wait_for(&mut to_a, names, Duration::from_secs(10), |_| true);
    (all, to_a)
}

/// Creates group `name` of `members` through `app`; returns the answer.
fn create_group(app: &mut RpcConnection, name: &str, members: &[&str]) -> Value {
    call(
        app,
        "group.create",
        json!({"name": name, "speakers": members}),
    )
}

#[test]
fn a_group_formed_and_played_through_the_api_plays_in_step() {
    let dir = temp_dir("speaker-group");
    let (speakers, mut to_a) = household(&dir, true);
    let [a, b, c]: [SpeakerNode; 3] = speakers.try_into().expect("three");
    let made = create_group(&mut to_a, "Downstairs", &["Kitchen", "Den", "Hall"]);
    assert!(made["group"].is_string(), "{made}");
    // Played through another speaker than the leader: B forwards it to A, the group's
    // first member.
    let mut to_b = app(&b);
    wait_until(Duration::from_secs(5), || {
        status(&mut to_b)["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["name"] == "Downstairs"))
    })
    .expect("B learns of the group");
    let played_at = monotonic_ns();
    let answer = call(
        &mut to_b,
        "group.play",
        json!({"group": "Downstairs", "source": "noise"}),
    );
    assert_eq!(answer["leader"], json!(a.id().to_string()), "{answer}");
    let all = wait_for(
        &mut to_a,
        &["Kitchen", "Den", "Hall"],
        Duration::from_secs(10),
        playing,
    );
    assert_eq!(entry(&all, "Kitchen")["state"], "leading", "{all:#}");
    assert_eq!(entry(&all, "Den")["state"], "following", "{all:#}");
    assert_eq!(a.play_state(), PlayState::Leading);
    assert_eq!(b.play_state(), PlayState::Following);
    let group = all["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == "Downstairs"))
        .expect("the group")
        .clone();
    assert_eq!(group["state"], "playing", "{group}");
    // The group's volume scales every member's own, as they play it.
    call(
        &mut to_a,
        "speaker.volume",
        json!({"speaker": "Hall", "volume": 0.8}),
    );
    call(
        &mut to_a,
        "group.volume",
        json!({"group": "Downstairs", "volume": 0.5}),
    );
    let scaled = wait_for(
        &mut to_a,
        &["Kitchen", "Den", "Hall"],
        Duration::from_secs(5),
        |s| {
            let want = if s["name"] == "Hall" { 0.4 } else { 0.5 };
            s["health"]["volume"]
                .as_f64()
                .is_some_and(|v| (v - want).abs() < 1e-6)
        },
    );
    assert_eq!(
        entry(&scaled, "Hall")["volume"],
        0.8,
        "its own volume stays"
    );
    std::thread::sleep(Duration::from_secs(4));
    let reports: Vec<Vec<FollowerReport>> = [a, b, c].into_iter().map(|s| s.stop()).collect();
    for r in &reports {
        assert_eq!(r.len(), 1, "one session each: {r:?}");
        assert_eq!(r[0].status.underruns, 0, "{:?}", r[0].status);
    }
    // From the last speaker's first sample on, measured from the audio.
    let last_start = reports
        .iter()
        .map(|r| first_sample(r))
        .max()
        .expect("three speakers");
    eprintln!(
        "play to the last speaker's first sample: {:.0} ms",
        (last_start - played_at) as f64 / 1e6
    );
    assert!(
        last_start - played_at < 3_000_000_000,
        "the last speaker started {} ms after play",
        (last_start - played_at) / 1_000_000
    );
    let skew = measure_recordings(
        &[
            recording("kitchen", &dir.join("kitchen.wav")),
            recording("den", &dir.join("den.wav")),
            recording("hall", &dir.join("hall.wav")),
        ],
        TrueInstant::from_nanos(last_start),
        None,
    )
    .expect("the recordings overlap");
    eprintln!(
        "skew from then: p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs ({} windows a pair)",
        skew.p50_us, skew.p99_us, skew.max_us, skew.pairs[0].windows
    );
    assert!(
        skew.pairs.len() == 3 && skew.pairs.iter().all(|p| p.windows >= 5),
        "{skew:?}"
    );
    assert!(skew.p99_us <= 20.0, "{skew:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_speaker_moved_between_playing_groups_plays_in_step_in_its_new_group() {
    let dir = temp_dir("speaker-move");
    let (speakers, mut to_a) = household(&dir, true);
    let [a, b, c]: [SpeakerNode; 3] = speakers.try_into().expect("three");
    create_group(&mut to_a, "Downstairs", &["Kitchen", "Den"]);
    create_group(&mut to_a, "Upstairs", &["Hall"]);
    call(
        &mut to_a,
        "group.play",
        json!({"group": "Downstairs", "source": "noise"}),
    );
    // Upstairs' only member leads it: the call is forwarded to C.
    let up = call(
        &mut to_a,
        "group.play",
        json!({"group": "Upstairs", "source": "noise"}),
    );
    assert_eq!(up["leader"], json!(c.id().to_string()), "{up}");
    wait_for(
        &mut to_a,
        &["Kitchen", "Den", "Hall"],
        Duration::from_secs(10),
        playing,
    );
    std::thread::sleep(Duration::from_secs(1));
    let moved_at = monotonic_ns();
    call(
        &mut to_a,
        "group.add",
        json!({"group": "Upstairs", "speaker": "Den"}),
    );
    let after = wait_for(&mut to_a, &["Den"], Duration::from_secs(10), |s| {
        s["group"] == entry_group(&status_of(&a), "Hall") && playing(s)
    });
    assert_eq!(entry(&after, "Den")["state"], "following", "{after:#}");
    std::thread::sleep(Duration::from_secs(4));
    let ra = a.stop();
    let rb = b.stop();
    let rc = c.stop();
    // The speaker that stayed played on without a break.
    assert_eq!(ra.len(), 1, "{ra:?}");
    assert_eq!(ra[0].status.underruns, 0, "{:?}", ra[0].status);
    // The moved speaker's second session, in its new group.
    assert_eq!(rb.len(), 2, "{rb:?}");
    let new_start = rb[1].first_sample_ns.expect("it played in its new group");
    eprintln!(
        "move to the first sample in the new group: {:.0} ms",
        (new_start - moved_at) as f64 / 1e6
    );
    assert!(new_start - moved_at < 3_000_000_000);
    let skew = measure_recordings(
        &[
            recording("hall", &dir.join("hall.wav")),
            recording("den", &dir.join("den-2.wav")),
        ],
        TrueInstant::from_nanos(new_start),
        None,
    )
    .expect("the recordings overlap");
    eprintln!(
        "skew in the new group: p50 {:.2} µs, p99 {:.2} µs ({} windows)",
        skew.p50_us, skew.p99_us, skew.pairs[0].windows
    );
    assert!(skew.pairs[0].windows >= 5, "{skew:?}");
    assert!(skew.p99_us <= 20.0, "{skew:?}");
    assert_eq!(rc.len(), 1, "{rc:?}");
    std::fs::remove_dir_all(&dir).ok();
}

fn status_of(s: &SpeakerNode) -> Value {
    status(&mut app(s))
}

fn entry_group(status: &Value, name: &str) -> Value {
    entry(status, name)["group"].clone()
}

#[test]
fn a_restarted_speaker_comes_back_to_its_group_with_its_settings() {
    let dir = temp_dir("speaker-restart");
    let (speakers, mut to_a) = household(&dir, false);
    let [a, b]: [SpeakerNode; 2] = speakers.try_into().expect("two");
    create_group(&mut to_a, "Downstairs", &["Kitchen", "Den"]);
    call(
        &mut to_a,
        "speaker.volume",
        json!({"speaker": "Den", "volume": 0.5}),
    );
    call(
        &mut to_a,
        "speaker.trim",
        json!({"speaker": "Den", "trim_ms": 0.25}),
    );
    call(
        &mut to_a,
        "group.play",
        json!({"group": "Downstairs", "source": "noise"}),
    );
    wait_for(
        &mut to_a,
        &["Kitchen", "Den"],
        Duration::from_secs(10),
        playing,
    );
    let id = b.id();
    drop(b.stop());
    let restarted_at = monotonic_ns();
    let b = speaker(&dir, "Den", "m1", -40.0, "den-after.wav", &[a.rpc_addr()]);
    assert_eq!(b.id(), id, "the same speaker, from its state directory");
    let back = wait_for(&mut to_a, &["Den"], Duration::from_secs(10), |s| {
        playing(s)
            && s["health"]["volume"]
                .as_f64()
                .is_some_and(|v| (v - 0.5).abs() < 1e-6)
    });
    let den = entry(&back, "Den");
    assert_eq!(den["volume"], 0.5, "{den}");
    assert_eq!(den["trim_ms"], 0.25, "{den}");
    std::thread::sleep(Duration::from_secs(3));
    let rb = b.stop();
    drop(a.stop());
    let start = rb[0].first_sample_ns.expect("it played again");
    eprintln!(
        "restart to the first sample: {:.0} ms",
        (start - restarted_at) as f64 / 1e6
    );
    assert!(start - restarted_at < 4_000_000_000);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_requests_get_typed_errors_that_name_the_speaker() {
    let dir = temp_dir("speaker-errors");
    let a = speaker(&dir, "Kitchen", "m1", 0.0, "a.wav", &[]);
    let b = speaker(&dir, "Den", "m1", 0.0, "b.wav", &[a.rpc_addr()]);
    let c = speaker(&dir, "Hall", "other-model", 0.0, "c.wav", &[a.rpc_addr()]);
    let mut to_a = app(&a);
    wait_for(
        &mut to_a,
        &["Kitchen", "Den", "Hall"],
        Duration::from_secs(10),
        |_| true,
    );
    let rpc_error = |r: Result<Value, RpcCallError>| match r {
        Err(RpcCallError::Rpc(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    let e = rpc_error(to_a.call(
        "group.add",
        json!({"group": "Nowhere", "speaker": "Den"}),
        CALL,
    ));
    assert_eq!(e.code, codes::NOT_FOUND, "{e:?}");
    assert!(e.message.contains("Nowhere"), "{e:?}");
    let e = rpc_error(to_a.call(
        "group.create",
        json!({"name": "Upstairs", "speakers": ["Ghost"]}),
        CALL,
    ));
    assert_eq!(e.code, codes::NOT_FOUND, "{e:?}");
    assert_eq!(e.data, Some(json!({"speaker": "Ghost"})));
    let e = rpc_error(to_a.call("pair.create", json!({"left": "Den", "right": "Hall"}), CALL));
    assert_eq!(e.code, codes::MODEL_MISMATCH, "{e:?}");
    assert_eq!(
        e.data,
        Some(
            json!({"left": "Den", "left_model": "m1", "right": "Hall", "right_model": "other-model"})
        )
    );
    call(
        &mut to_a,
        "pair.create",
        json!({"left": "Kitchen", "right": "Den"}),
    );
    let e = rpc_error(to_a.call(
        "pair.create",
        json!({"left": "Den", "right": "Kitchen"}),
        CALL,
    ));
    assert_eq!(e.code, codes::INVALID_PARAMS, "{e:?}");
    assert!(e.message.contains("Den"), "{e:?}");
    let e = rpc_error(to_a.call(
        "speaker.volume",
        json!({"speaker": "Den", "volume": "loud"}),
        CALL,
    ));
    assert_eq!(e.code, codes::INVALID_PARAMS, "{e:?}");
    let e = rpc_error(to_a.call(
        "speaker.volume",
        json!({"speaker": "Den", "volume": 3.0}),
        CALL,
    ));
    assert_eq!(e.code, codes::INVALID_PARAMS, "{e:?}");
    let e = rpc_error(to_a.call("group.explode", json!({}), CALL));
    assert_eq!(e.code, codes::METHOD_NOT_FOUND, "{e:?}");
    let e = rpc_error(to_a.call("group.play", json!(["Downstairs"]), CALL));
    assert_eq!(e.code, codes::INVALID_PARAMS, "{e:?}");
    // The connection is still good, and the pair is in every replica.
    let s = status(&mut to_a);
    assert_eq!(s["pairs"].as_array().map(Vec::len), Some(1), "{s}");
    let mut to_c = app(&c);
    wait_until(Duration::from_secs(5), || {
        status(&mut to_c)["pairs"].as_array().map(Vec::len) == Some(1)
    })
    .expect("the pair reaches C");
    for s in [a, b, c] {
        s.stop();
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Standard base64 of `bytes`, with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_stream_pushed_over_the_api_plays_in_step_on_every_member() {
    let dir = temp_dir("speaker-push");
    let (speakers, mut to_a) = household(&dir, false);
    let [a, b]: [SpeakerNode; 2] = speakers.try_into().expect("two");
    create_group(&mut to_a, "Downstairs", &["Kitchen", "Den"]);
    let rpc_error = |r: Result<Value, RpcCallError>| match r {
        Err(RpcCallError::Rpc(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    let e = rpc_error(to_a.call(
        "group.push",
        json!({"group": "Downstairs", "pcm": ""}),
        CALL,
    ));
    assert_eq!(e.code, codes::CONFLICT, "not playing yet: {e:?}");
    call(
        &mut to_a,
        "group.play",
        json!({"group": "Downstairs", "source": "stream"}),
    );
    wait_for(
        &mut to_a,
        &["Kitchen", "Den"],
        Duration::from_secs(10),
        playing,
    );
    // Through the follower, which forwards to the leader: 0.2 s of noise a call (51 200
    // characters of base64, within the 64 KiB a request may have).
    let mut to_b = app(&b);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut pushed = 0u64;
    for _ in 0..10 {
        let mut pcm = Vec::with_capacity(9600 * 4);
        for _ in 0..9600 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let s = ((x >> 48) as i16 / 4).to_le_bytes();
            pcm.extend_from_slice(&s);
            pcm.extend_from_slice(&s);
        }
        let r = call(
            &mut to_b,
            "group.push",
            json!({"group": "Downstairs", "pcm": base64(&pcm)}),
        );
        pushed += r["accepted_frames"].as_u64().expect("frames accepted");
    }
    assert!(
        pushed >= 80_000,
        "the leader queued {pushed} frames of 96 000"
    );
    let e = rpc_error(to_b.call(
        "group.push",
        json!({"group": "Downstairs", "pcm": "%%"}),
        CALL,
    ));
    assert_eq!(e.code, codes::INVALID_PARAMS, "{e:?}");
    std::thread::sleep(Duration::from_secs(3));
    let ra = a.stop();
    let rb = b.stop();
    let from = first_sample(&ra).max(first_sample(&rb));
    let skew = measure_recordings(
        &[
            recording("kitchen", &dir.join("kitchen.wav")),
            recording("den", &dir.join("den.wav")),
        ],
        TrueInstant::from_nanos(from),
        None,
    )
    .expect("the recordings overlap");
    eprintln!(
        "pushed stream: {pushed} frames; skew p50 {:.2} µs, p99 {:.2} µs ({} windows with sound)",
        skew.p50_us, skew.p99_us, skew.pairs[0].windows
    );
    // The meter skips silent windows: these are the pushed audio.
    assert!(skew.pairs[0].windows >= 2, "{skew:?}");
    assert!(skew.p99_us <= 20.0, "{skew:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_restarted_leader_plays_on_from_its_state() {
    let dir = temp_dir("speaker-leader-restart");
    let (speakers, _) = household(&dir, false);
    let [a, b]: [SpeakerNode; 2] = speakers.try_into().expect("two");
    // The app talks to the speaker that is not restarted.
    let mut to_b = app(&b);
    // (Kitchen listing Den online does not mean Den has merged Kitchen's record yet.)
    wait_for(
        &mut to_b,
        &["Kitchen", "Den"],
        Duration::from_secs(10),
        |_| true,
    );
    create_group(&mut to_b, "Downstairs", &["Kitchen", "Den"]);
    let played = call(
        &mut to_b,
        "group.play",
        json!({"group": "Downstairs", "source": "noise"}),
    );
    assert_eq!(played["leader"], json!(a.id().to_string()));
    wait_for(
        &mut to_b,
        &["Kitchen", "Den"],
        Duration::from_secs(10),
        playing,
    );
    drop(a.stop());
    let restarted_at = monotonic_ns();
    let a = speaker(
        &dir,
        "Kitchen",
        "m1",
        60.0,
        "kitchen-after.wav",
        &[b.rpc_addr()],
    );
    let back = wait_for(
        &mut to_b,
        &["Kitchen", "Den"],
        Duration::from_secs(10),
        playing,
    );
    assert_eq!(entry(&back, "Kitchen")["state"], "leading", "{back:#}");
    std::thread::sleep(Duration::from_secs(3));
    let ra = a.stop();
    let rb = b.stop();
    // The follower's second session is the one with the restarted leader.
    assert_eq!(rb.len(), 2, "{rb:?}");
    let from = first_sample(&ra).max(rb[1].first_sample_ns.expect("plays again"));
    eprintln!(
        "leader restart to both playing: {:.0} ms",
        (from - restarted_at) as f64 / 1e6
    );
    let skew = measure_recordings(
        &[
            recording("kitchen", &dir.join("kitchen-after.wav")),
            recording("den", &dir.join("den-2.wav")),
        ],
        TrueInstant::from_nanos(from),
        None,
    )
    .expect("the recordings overlap");
    assert!(skew.pairs[0].windows >= 3, "{skew:?}");
    assert!(skew.p99_us <= 20.0, "{skew:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_speakers_told_to_lead_one_group_at_once_settle_on_one_and_say_so() {
    let dir = temp_dir("speaker-two-leaders");
    let (speakers, mut to_a) = household(&dir, false);
    let [a, b]: [SpeakerNode; 2] = speakers.try_into().expect("two");
    let mut to_b = app(&b);
    let made = create_group(&mut to_a, "Downstairs", &["Kitchen", "Den"]);
    let group = made["group"].as_str().expect("id").to_owned();
    wait_until(Duration::from_secs(5), || {
        status(&mut to_b)["groups"]
            .as_array()
            .is_some_and(|g| !g.is_empty())
    })
    .expect("B knows the group");
    // Each is told to lead, as two apps racing would have them: two claims, one record.
    call(
        &mut to_a,
        "peer.lead",
        json!({"group": group, "source": "noise"}),
    );
    call(
        &mut to_b,
        "peer.lead",
        json!({"group": group, "source": "noise"}),
    );
    let settled = wait_for(
        &mut to_a,
        &["Kitchen", "Den"],
        Duration::from_secs(10),
        playing,
    );
    let states: Vec<&str> = ["Kitchen", "Den"]
        .iter()
        .map(|n| entry(&settled, n)["state"].as_str().unwrap_or(""))
        .collect();
    assert!(
        states.contains(&"leading") && states.contains(&"following"),
        "{settled:#}"
    );
    // Both replicas name the same leader, and it is the one leading.
    let leader_on = |s: &Value| s["groups"][0]["leader"].clone();
    let on_b = status(&mut to_b);
    assert_eq!(leader_on(&settled), leader_on(&on_b));
    let leading = if states[0] == "leading" { &a } else { &b };
    assert_eq!(leader_on(&settled), json!(leading.id().to_string()));
    assert_eq!(
        settled["groups"][0]["other_leaders"],
        json!([]),
        "{settled:#}"
    );
    // And it stays settled: no flipping between the two.
    std::thread::sleep(Duration::from_secs(2));
    let later = status(&mut to_a);
    assert_eq!(leader_on(&later), leader_on(&settled));
    let (ra, rb) = (a.stop(), b.stop());
    assert!(
        ra.len() + rb.len() <= 4,
        "{} and {} sessions",
        ra.len(),
        rb.len()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_last_of_a_burst_of_changes_is_on_the_disk_when_the_speaker_stops() {
    let dir = temp_dir("speaker-save-burst");
    let a = speaker(&dir, "Kitchen", "m1", 0.0, "a.wav", &[]);
    let mut to_a = app(&a);
    // Saved by a thread of their own, while the calls are answered: the last one wins.
    for i in 1..=50 {
        call(
            &mut to_a,
            "speaker.volume",
            json!({"speaker": "Kitchen", "volume": f64::from(i) / 100.0}),
        );
    }
    drop(to_a);
    let id = a.id();
    a.stop();
    let opened = lockstep::household::StateDir::new(dir.join("Kitchen"))
        .open("Kitchen", "Living room", "m1")
        .expect("the state reads back");
    assert!(!opened.created);
    let me = opened.state.me().expect("its own record");
    assert_eq!(me.id, id);
    assert_eq!(me.settings.volume.get(), 0.5);
    std::fs::remove_dir_all(&dir).ok();
}
