//! The household demo: five speaker nodes, each in a network namespace of its own on one
//! bridge, found by mDNS and driven through the control API as an app drives them. Needs
//! root (it makes the namespaces with iproute2's `ip netns`).
//!
//! ```text
//! sudo cargo run --release --example household_demo [-- --keep]
//! ```
//!
//! In one process, in about a minute:
//!
//! - It makes a hub namespace with a Linux bridge (10.99.0.129/26) and five speaker
//!   namespaces, each joined to the bridge by a veth pair (10.99.0.130 to .134), with
//!   multicast routed over it, so mDNS works between them. Nothing is added to the host's
//!   own interfaces; the namespaces (`lockstep-demo-PID-N`) are removed at the end, on an
//!   error, a panic, Ctrl-C or SIGTERM too.
//! - It starts five speakers, idle, discovery on: "Living L" and "Living R" (one model, in
//!   the living room), "Sub" (living room), "Kitchen" and "Den", each on a simulated
//!   crystal of its own, each recording what it plays to a WAV file. The app's side (the
//!   control API connection and an mDNS browser) runs in the hub namespace.
//! - Through the control API: the group "Downstairs" (Living L, Living R, Kitchen), Living
//!   L and Living R paired, Sub the pair's subwoofer; the group "Upstairs" (Den). Living R
//!   gets a volume of 0.6 and a trim of 1.5 ms.
//! - It writes a 25 s FLAC file (48 kHz stereo, a drum-and-bass loop with chords) and plays
//!   it in Downstairs; Upstairs plays noise.
//! - Mid-song it moves Kitchen to Upstairs (`group.add`), then restarts Living R (its node
//!   stopped, and started again from the same state directory).
//!
//! Every figure is measured from outside: the time to be listed from the mDNS browser's
//! events, the rest from the speakers' recordings (their first samples on the monotonic
//! clock, and the skew between them by cross-correlation; a trim is subtracted as the
//! intended offset it is). The subwoofer's output (below 80 Hz) is not cross-correlated;
//! its first sample counts for "every member sounding". It prints each figure against the
//! issue's target, `ok` or `MISSED`, and the skew per group.
//!
//! Exit codes: 0 the run completed (whether or not every target was met), 1 it could not
//! run or broke (not root, `ip` missing, a speaker that did not start or play), 2 a bad
//! command line.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use lockstep::control::HouseholdKey;
use lockstep::household::{Browser, DiscoveryEvent, RpcConnection, SpeakerConfig, SpeakerNode};
use lockstep::measure::{GroupSkew, MeterConfig, PairwiseSkew, load_capture_wav, measure_skew};
use lockstep::net::NetNs;
use lockstep::node::{FlacWriter, FollowerReport, LocalClock, Output};
use lockstep::time::{Nanos, TrueInstant};
use serde_json::{Value, json};

/// Runs five speakers in network namespaces through a household's day, and measures it.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Keep the recordings, the FLAC file and the state directories (the path is printed).
    #[arg(long)]
    keep: bool,
}

/// The issue's targets.
const LISTED_MS: f64 = 2000.0;
const PLAY_MS: f64 = 1000.0;
const MOVE_MS: f64 = 1000.0;
const RESTART_MS: f64 = 2000.0;
const SKEW_P99_US: f64 = 20.0;

/// How long any one wait for the household may take before the run counts as broken.
const WAIT: Duration = Duration::from_secs(10);
const CALL: Duration = Duration::from_secs(5);
/// Every speaker's control API port (each has its own address).
const RPC_PORT: u16 = 7800;
/// The song's length.
const SONG_S: f64 = 25.0;
const RATE: u32 = 48_000;

struct Spec {
    name: &'static str,
    room: &'static str,
    model: &'static str,
    drift_ppm: f64,
    offset_ms: i64,
    wav: &'static str,
}

const SPECS: [Spec; 5] = [
    Spec {
        name: "Living L",
        room: "Living room",
        model: "lockstep-one",
        drift_ppm: 120.0,
        offset_ms: 3_217,
        wav: "living-l.wav",
    },
    Spec {
        name: "Living R",
        room: "Living room",
        model: "lockstep-one",
        drift_ppm: -80.0,
        offset_ms: -1_804,
        wav: "living-r.wav",
    },
    Spec {
        name: "Sub",
        room: "Living room",
        model: "lockstep-sub",
        drift_ppm: 40.0,
        offset_ms: 712,
        wav: "sub.wav",
    },
    Spec {
        name: "Kitchen",
        room: "Kitchen",
        model: "lockstep-one",
        drift_ppm: -150.0,
        offset_ms: 5_020,
        wav: "kitchen.wav",
    },
    Spec {
        name: "Den",
        room: "Den",
        model: "lockstep-one",
        drift_ppm: 60.0,
        offset_ms: -2_650,
        wav: "den.wav",
    },
];
const LIVING_L: usize = 0;
const LIVING_R: usize = 1;
const SUB: usize = 2;
const KITCHEN: usize = 3;
const DEN: usize = 4;

/// Living R's settings before its restart.
const R_VOLUME: f64 = 0.6;
const R_TRIM_MS: f64 = 1.5;

/// The hub's address on the bridge, and speaker `i`'s.
const HUB: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 129);
fn speaker_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 130 + i as u8)
}
fn rpc_addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(speaker_ip(i)), RPC_PORT)
}

fn key() -> HouseholdKey {
    HouseholdKey::new(b"lockstep household demo key 0001").expect("a 32-byte key")
}

/// Set by SIGINT or SIGTERM: every wait stops, and the run cleans up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn mono_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// Sleeps `d`, in short steps, unless interrupted.
fn pause(d: Duration) -> Result<(), String> {
    let end = mono_ns() + d.as_nanos() as i64;
    while mono_ns() < end {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        std::thread::sleep(Duration::from_millis(20).min(d));
    }
    Ok(())
}

// --- the network -----------------------------------------------------------------------

/// The namespaces: dropped (and deleted) after the speakers, which are declared after it.
struct Lab {
    hub: NetNs,
    rooms: Vec<NetNs>,
}

fn lab() -> Result<Lab, String> {
    let err = |e: std::io::Error| format!("network namespaces: {e}");
    let hub = NetNs::create("lockstep-demo").map_err(err)?;
    hub.add_bridge("br0", &format!("{HUB}/26")).map_err(err)?;
    hub.route_multicast("br0").map_err(err)?;
    let mut rooms = Vec::new();
    for i in 0..SPECS.len() {
        let ns = NetNs::create("lockstep-demo").map_err(err)?;
        ns.veth_to_bridge(
            &hub,
            "br0",
            ("eth0", &format!("{}/26", speaker_ip(i))),
            &format!("port{i}"),
        )
        .map_err(err)?;
        ns.route_multicast("eth0").map_err(err)?;
        rooms.push(ns);
    }
    Ok(Lab { hub, rooms })
}

/// The recordings' directory, removed on drop unless kept.
struct Scratch {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// --- the song ----------------------------------------------------------------------------

/// A small deterministic noise source.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

fn midi_hz(note: f64) -> f64 {
    440.0 * 2f64.powf((note - 69.0) / 12.0)
}

/// `seconds` of a 120 bpm loop at `RATE`, interleaved stereo, 16-bit: a kick on every
/// beat, a snare on two and four, hi-hats on the eighths, a bass line and chords over
/// A–F–C–G, and a quiet noise floor. Each part is panned by gain alone, so the channels
/// differ in mix but are in time with each other: a pair's left half and right half
/// cross-correlate.
fn song(seconds: f64) -> Vec<i32> {
    use std::f64::consts::TAU;
    let frames = (seconds * f64::from(RATE)) as usize;
    let roots = [45.0, 41.0, 48.0, 43.0];
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut last_noise = 0.0;
    let mut out = Vec::with_capacity(frames * 2);
    let mut mix = Vec::with_capacity(frames * 2);
    for i in 0..frames {
        let t = i as f64 / f64::from(RATE);
        let beat = (t / 0.5) as usize;
        let tb = t - beat as f64 * 0.5;
        let te = t - (t / 0.25).floor() * 0.25;
        let root = roots[(t / 2.0) as usize % 4];
        let n = noise.next();
        // Kick: a sweep from 150 Hz down to 50 Hz.
        let kick = (TAU * (50.0 * tb + 100.0 / 30.0 * (1.0 - (-30.0 * tb).exp()))).sin()
            * (-8.0 * tb).exp();
        let snare = if beat % 2 == 1 {
            (0.6 * n + 0.4 * (TAU * 190.0 * tb).sin()) * (-15.0 * tb).exp()
        } else {
            0.0
        };
        // Hi-hat: differenced noise (high-passed).
        let hat = (n - last_noise) * 0.5 * (-40.0 * te).exp();
        last_noise = n;
        let f = midi_hz(root);
        let bass = (1..=4)
            .map(|k| (TAU * f * k as f64 * t).sin() / k as f64)
            .sum::<f64>()
            * (0.4 + 0.6 * (-6.0 * te).exp());
        let pad: f64 = [12.0, 16.0, 19.0]
            .iter()
            .map(|iv| {
                let f = midi_hz(root + iv);
                (1..=3)
                    .map(|k| (TAU * f * k as f64 * t).sin() / (k * k) as f64)
                    .sum::<f64>()
            })
            .sum();
        let floor = 0.02 * n;
        let l = 0.5 * kick + 0.35 * snare + 0.45 * hat + 0.3 * bass + 0.12 * pad + floor;
        let r = 0.5 * kick + 0.3 * snare + 0.3 * hat + 0.3 * bass + 0.08 * pad + floor;
        mix.push(l);
        mix.push(r);
    }
    let peak = mix.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-9);
    let scale = 0.8 * 32767.0 / peak;
    out.extend(mix.iter().map(|x| (x * scale).round() as i32));
    out
}

fn write_song(path: &Path) -> Result<(), String> {
    let mut w = FlacWriter::new(RATE, 2, 16).map_err(|e| format!("FLAC writer: {e}"))?;
    w.push(&song(SONG_S))
        .map_err(|e| format!("FLAC writer: {e}"))?;
    w.write_file(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

// --- speakers and the app ----------------------------------------------------------------

fn start_speaker(ns: &NetNs, i: usize, state: &Path, wav: PathBuf) -> Result<SpeakerNode, String> {
    let s = &SPECS[i];
    let mut c = SpeakerConfig::new(
        key(),
        s.name,
        s.room,
        s.model,
        state,
        speaker_ip(i),
        rpc_addr(i),
    );
    c.control_port = RPC_PORT + 1;
    c.output = Output::Wav(wav);
    c.clock = LocalClock::Drifting {
        drift_ppm: s.drift_ppm,
        offset: Nanos::from_millis(s.offset_ms),
    };
    c.discovery = true;
    c.latency = Nanos::from_millis(100);
    // Started on a thread inside its namespace: every thread and socket it makes stays
    // there.
    ns.enter_thread(move || SpeakerNode::start(c))
        .map_err(|e| format!("{}: entering its namespace: {e}", s.name))?
        .map_err(|e| format!("{} could not start: {e}", s.name))
}

/// What the browser in the hub saw: (monotonic ns, speaker name, listed: discovered or
/// updated; or lost).
type Sightings = Arc<Mutex<Vec<(i64, String, bool)>>>;

/// The first listing of `name` at or after `since`, ms after it.
fn listed_after(seen: &Sightings, name: &str, since: i64) -> Option<f64> {
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(t, n, listed)| *listed && n == name && *t >= since)
        .map(|(t, ..)| ms(t - since))
}

/// Whether `name` was lost at or after `since`.
fn lost_after(seen: &Sightings, name: &str, since: i64) -> bool {
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|(t, n, listed)| !*listed && n == name && *t >= since)
}

struct App {
    conn: RpcConnection,
}

impl App {
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.conn
            .call(method, params.clone(), CALL)
            .map_err(|e| format!("{method} {params}: {e}"))
    }

    fn status(&mut self) -> Result<Value, String> {
        self.call("household.status", json!({}))
    }

    /// Polls the status until `f` holds, for at most `limit`.
    fn wait(
        &mut self,
        what: &str,
        limit: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let end = mono_ns() + limit.as_nanos() as i64;
        loop {
            let s = self.status()?;
            if f(&s) {
                return Ok(s);
            }
            if mono_ns() > end {
                return Err(format!("waited {limit:?} for {what}; the status: {s:#}"));
            }
            pause(Duration::from_millis(50))?;
        }
    }
}

fn entry<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["speakers"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

fn playing_in(status: &Value, name: &str, group: &Value) -> bool {
    entry(status, name).is_some_and(|s| {
        s["online"] == true && s["health"]["playing"] == true && s["group"] == *group
    })
}

// --- measuring -----------------------------------------------------------------------------

/// One recording in a skew measurement: its name, file and trim (its intended offset).
struct Rec {
    name: String,
    wav: PathBuf,
    trim_us: f64,
}

fn rec(name: &str, wav: PathBuf, trim_us: f64) -> Rec {
    Rec {
        name: name.into(),
        wav,
        trim_us,
    }
}

/// The skew of every pair of `recs` in 0.5 s windows from `from` (monotonic ns) to `to`,
/// each window's skew less the pair's trim difference; and the time from `from`, s, from
/// which every window of every pair is within the target.
fn skew(recs: &[Rec], from: i64, to: Option<i64>) -> Result<(GroupSkew, Option<f64>), String> {
    let caps = recs
        .iter()
        .map(|r| {
            load_capture_wav(&r.wav).map_err(|e| format!("recording {}: {e}", r.wav.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let start = TrueInstant::from_nanos(from);
    let cfg = MeterConfig {
        start: Some(start),
        ..MeterConfig::default()
    };
    let window = Nanos::from_secs_f64(cfg.window_s);
    let mut all = PairwiseSkew::new();
    for i in 0..caps.len() {
        for j in i + 1..caps.len() {
            let Ok(r) = measure_skew(&caps[i].capture(0), &caps[j].capture(0), &cfg) else {
                continue;
            };
            let intended = recs[j].trim_us - recs[i].trim_us;
            let w: Vec<(f64, f64)> = r
                .windows
                .iter()
                .filter(|w| to.is_none_or(|t| w.t + window <= TrueInstant::from_nanos(t)))
                .map(|w| ((w.t - start).as_nanos() as f64 * 1e-9, w.skew_us - intended))
                .collect();
            if !w.is_empty() {
                let p = all.add_pair(&recs[i].name, &recs[j].name);
                all.extend(p, w);
            }
        }
    }
    // In step from the start of the first window after the last one out of the target
    // (from the start, if none was out).
    let windows: Vec<(f64, f64)> = (0..all.len())
        .flat_map(|p| all.windows(p).iter().copied())
        .collect();
    let last_out = windows
        .iter()
        .filter(|(_, s)| s.abs() > SKEW_P99_US)
        .map(|(t, _)| *t)
        .reduce(f64::max);
    let settled = match last_out {
        None => Some(0.0),
        Some(bad) => windows
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| *t > bad)
            .reduce(f64::min),
    };
    let group = all.group().ok_or_else(|| {
        let names: Vec<&str> = recs.iter().map(|r| r.name.as_str()).collect();
        format!("no pair of {names:?} had audio in common to measure")
    })?;
    Ok((group, settled))
}

fn first_sample(r: &FollowerReport, who: &str) -> Result<i64, String> {
    r.first_sample_ns
        .ok_or_else(|| format!("{who} never played a sample"))
}

/// The report's lines and its tally of targets.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    met: usize,
    missed: Vec<String>,
}

impl Report {
    fn line(&mut self, s: String) {
        self.lines.push(s);
    }

    /// A figure against its target.
    fn target(&mut self, what: &str, figure: String, ok: bool, target: &str) {
        let verdict = if ok { "ok" } else { "MISSED" };
        self.lines
            .push(format!("{what}: {figure} (target {target}) {verdict}"));
        if ok {
            self.met += 1;
        } else {
            self.missed.push(what.to_owned());
        }
    }

    fn skew(&mut self, what: &str, g: &GroupSkew) {
        let windows: usize = g.pairs.iter().map(|p| p.windows).sum();
        self.target(
            &format!("skew {what}"),
            format!(
                "p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs ({} pairs, {windows} windows)",
                g.p50_us,
                g.p99_us,
                g.max_us,
                g.pairs.len()
            ),
            g.p99_us <= SKEW_P99_US,
            &format!("p99 ≤ {SKEW_P99_US} µs"),
        );
    }
}

/// Figures of a change: the time from the command to the latest first sample, and to the
/// first window from which every window is in step.
fn timing(report: &mut Report, what: &str, sounding_ns: i64, settled: Option<f64>, target_ms: f64) {
    let settled_ms = settled.map(|s| ms(sounding_ns) + s * 1e3);
    let figure = match settled_ms {
        Some(s) => format!(
            "sounding {:.0} ms after the command, in step from {s:.0} ms",
            ms(sounding_ns)
        ),
        None => format!(
            "sounding {:.0} ms after the command, never in step",
            ms(sounding_ns)
        ),
    };
    report.target(
        what,
        figure,
        settled_ms.is_some_and(|s| s <= target_ms),
        &format!("in step ≤ {target_ms:.0} ms"),
    );
}

// --- the run -------------------------------------------------------------------------------

fn run(args: &Args) -> Result<Report, String> {
    let scratch = Scratch {
        dir: std::env::temp_dir().join(format!("lockstep-household-demo-{}", std::process::id())),
        keep: args.keep,
    };
    let dir = scratch.dir.clone();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let song_path = dir.join("song.flac");
    write_song(&song_path)?;

    // Declared first, so dropped last: the speakers leave their namespaces before these go.
    let lab = lab()?;
    println!(
        "network: hub {} with bridge br0 at {HUB}/26; speakers {} at 10.99.0.130-134",
        lab.hub.name(),
        lab.rooms
            .iter()
            .map(NetNs::name)
            .collect::<Vec<_>>()
            .join(", "),
    );
    let wav = |i: usize| dir.join(SPECS[i].wav);
    let state = |i: usize| dir.join(format!("state-{i}"));

    // The app's browser in the hub, watching from before the first speaker starts.
    let mut browser = lab
        .hub
        .enter_thread(|| Browser::start(&[HUB]))
        .map_err(|e| format!("entering the hub: {e}"))?
        .map_err(|e| format!("the app's mDNS browser: {e}"))?;
    let seen: Sightings = Arc::default();
    let watching = Arc::new(AtomicBool::new(true));
    // Its thread is started in the hub too: the browser may start a daemon of its own
    // again (after a loss), and that must bind in the hub.
    let watcher = {
        let (seen, watching) = (Arc::clone(&seen), Arc::clone(&watching));
        lab.hub
            .enter_thread(move || {
                std::thread::spawn(move || {
                    // The names by id, for the events that give only an id.
                    let mut names: Vec<(String, String)> = Vec::new();
                    while watching.load(Ordering::Acquire) {
                        let sighting = match browser.next_event(Duration::from_millis(50)) {
                            Some(
                                DiscoveryEvent::Discovered(info) | DiscoveryEvent::Updated(info),
                            ) => {
                                if !names.iter().any(|(id, _)| id == info.id()) {
                                    names.push((info.id().to_owned(), info.record.name.clone()));
                                }
                                Some((info.record.name.clone(), true))
                            }
                            Some(DiscoveryEvent::Lost(id)) => names
                                .iter()
                                .find(|(i, _)| *i == id)
                                .map(|(_, n)| (n.clone(), false)),
                            _ => None,
                        };
                        if let Some((name, listed)) = sighting {
                            seen.lock().unwrap_or_else(|e| e.into_inner()).push((
                                mono_ns(),
                                name,
                                listed,
                            ));
                        }
                    }
                    let _ = browser.stop();
                })
            })
            .map_err(|e| format!("entering the hub: {e}"))?
    };
    let stop_watching = || watching.store(false, Ordering::Release);

    let result = (|| {
        let mut started = Vec::new();
        let mut nodes: Vec<Option<SpeakerNode>> = Vec::new();
        for i in 0..SPECS.len() {
            started.push(mono_ns());
            nodes.push(Some(start_speaker(&lab.rooms[i], i, &state(i), wav(i))?));
        }
        let out = household(&lab, &song_path, &mut nodes, &started, &seen, &wav, &state);
        // Whatever happened, every node stops before the namespaces go.
        for n in nodes.iter_mut() {
            if let Some(n) = n.take() {
                n.stop();
            }
        }
        out
    })();
    stop_watching();
    let _ = watcher.join();
    if args.keep {
        println!("recordings, song and state kept in {}", dir.display());
    }
    result
}

/// The household's day, from idle speakers to the figures.
#[allow(clippy::too_many_arguments)]
fn household(
    lab: &Lab,
    song_path: &Path,
    nodes: &mut [Option<SpeakerNode>],
    started: &[i64],
    seen: &Sightings,
    wav: &dyn Fn(usize) -> PathBuf,
    state: &dyn Fn(usize) -> PathBuf,
) -> Result<Report, String> {
    let mut report = Report::default();
    let name = |i: usize| SPECS[i].name;

    // Every speaker listed by the app's browser.
    let listed_by = mono_ns() + 5_000_000_000;
    while (0..SPECS.len()).any(|i| listed_after(seen, name(i), started[i]).is_none())
        && mono_ns() < listed_by
    {
        pause(Duration::from_millis(20))?;
    }
    for (spec, &since) in SPECS.iter().zip(started) {
        let figure = listed_after(seen, spec.name, since);
        report.target(
            &format!("listed {}", spec.name),
            figure.map_or("not listed within 5 s".into(), |t| {
                format!("{t:.0} ms after its start")
            }),
            figure.is_some_and(|t| t <= LISTED_MS),
            &format!("≤ {LISTED_MS:.0} ms"),
        );
    }

    // The app, in the hub, talks to Living L.
    let conn = lab
        .hub
        .enter_thread(|| RpcConnection::connect(rpc_addr(LIVING_L), key(), CALL))
        .map_err(|e| format!("entering the hub: {e}"))?
        .map_err(|e| format!("the app could not log in to Living L: {e}"))?;
    let mut app = App { conn };
    app.wait("every speaker online", WAIT, |s| {
        SPECS
            .iter()
            .all(|sp| entry(s, sp.name).is_some_and(|e| e["online"] == true))
    })?;

    let down = app.call(
        "group.create",
        json!({"name": "Downstairs", "speakers": [name(LIVING_L), name(LIVING_R), name(KITCHEN)]}),
    )?["group"]
        .clone();
    app.call(
        "pair.create",
        json!({"left": name(LIVING_L), "right": name(LIVING_R)}),
    )?;
    app.call("sub.set", json!({"host": name(LIVING_L), "sub": name(SUB)}))?;
    let up = app.call(
        "group.create",
        json!({"name": "Upstairs", "speakers": [name(DEN)]}),
    )?["group"]
        .clone();
    app.call(
        "speaker.volume",
        json!({"speaker": name(LIVING_R), "volume": R_VOLUME}),
    )?;
    app.call(
        "speaker.trim",
        json!({"speaker": name(LIVING_R), "trim_ms": R_TRIM_MS}),
    )?;
    println!(
        "groups: Downstairs (Living L + Living R as a pair, Sub its subwoofer; Kitchen), Upstairs (Den)"
    );

    // Play: the song in Downstairs (Living L holds the file, so it leads), noise upstairs.
    let played_at = mono_ns();
    let answer = app.call(
        "group.play",
        json!({"group": "Downstairs", "source": song_path.display().to_string()}),
    )?;
    let up_played_at = mono_ns();
    app.call(
        "group.play",
        json!({"group": "Upstairs", "source": "noise"}),
    )?;
    println!(
        "playing: Downstairs led by {}, Upstairs noise",
        answer["leader"]
    );
    let downstairs = [LIVING_L, LIVING_R, SUB, KITCHEN];
    app.wait("Downstairs and Upstairs playing", WAIT, |s| {
        downstairs.iter().all(|&i| playing_in(s, name(i), &down)) && playing_in(s, name(DEN), &up)
    })?;
    pause(Duration::from_nanos(
        (played_at + 7_000_000_000 - mono_ns()).max(0) as u64,
    ))?;

    // Move Kitchen upstairs, mid-song.
    let moved_at = mono_ns();
    app.call(
        "group.add",
        json!({"group": "Upstairs", "speaker": name(KITCHEN)}),
    )?;
    app.wait("Kitchen playing in Upstairs", WAIT, |s| {
        playing_in(s, name(KITCHEN), &up)
    })?;
    println!("moved: Kitchen to Upstairs");
    pause(Duration::from_nanos(
        (moved_at + 5_000_000_000 - mono_ns()).max(0) as u64,
    ))?;

    // Restart Living R from its state directory, recording to a new file.
    let stop_at = mono_ns();
    let r_before = nodes[LIVING_R]
        .take()
        .map(SpeakerNode::stop)
        .unwrap_or_default();
    let restarted_at = mono_ns();
    let r_wav_after = wav(LIVING_R).with_file_name("living-r-after.wav");
    nodes[LIVING_R] = Some(start_speaker(
        &lab.rooms[LIVING_R],
        LIVING_R,
        &state(LIVING_R),
        r_wav_after.clone(),
    )?);
    // A fresh browser, as `household ls` starts one, looking for it.
    let fresh = lab
        .hub
        .enter_thread(|| -> Result<Option<f64>, String> {
            let mut b = Browser::start(&[HUB]).map_err(|e| format!("a second browser: {e}"))?;
            let mut found = None;
            while found.is_none() && mono_ns() < restarted_at + 3_000_000_000 {
                if let Some(DiscoveryEvent::Discovered(info)) =
                    b.next_event(Duration::from_millis(50))
                    && info.record.name == name(LIVING_R)
                {
                    found = Some(ms(mono_ns() - restarted_at));
                }
            }
            let _ = b.stop();
            Ok(found)
        })
        .map_err(|e| format!("entering the hub: {e}"))??;
    app.wait("Living R playing again", WAIT, |s| {
        playing_in(s, name(LIVING_R), &down)
    })?;
    println!(
        "restarted: Living R (stopped in {:.0} ms, started again)",
        ms(restarted_at - stop_at)
    );
    // Its settings, as the restarted speaker itself tells them.
    let mut own = lab
        .hub
        .enter_thread(|| RpcConnection::connect(rpc_addr(LIVING_R), key(), CALL))
        .map_err(|e| format!("entering the hub: {e}"))?
        .map(|conn| App { conn })
        .map_err(|e| format!("the app could not log in to Living R: {e}"))?;
    let own_status = own.status()?;
    let r_entry = entry(&own_status, name(LIVING_R))
        .cloned()
        .ok_or("Living R does not list itself")?;
    pause(Duration::from_secs(5))?;
    let final_status = app.status()?;

    let mut reports: Vec<Vec<FollowerReport>> = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        let r = n.take().map(SpeakerNode::stop).unwrap_or_default();
        reports.push(if i == LIVING_R {
            r_before.iter().cloned().chain(r).collect()
        } else {
            r
        });
    }
    let session = |i: usize, k: usize| -> Result<&FollowerReport, String> {
        reports[i].get(k).ok_or_else(|| {
            format!(
                "{} played {} sessions, not {}",
                name(i),
                reports[i].len(),
                k + 1
            )
        })
    };

    // Step 1: from play to every member of Downstairs in step.
    let latest = downstairs
        .iter()
        .map(|&i| first_sample(session(i, 0)?, name(i)))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .max()
        .unwrap_or(played_at);
    let (g, settled) = skew(
        &[
            rec(name(LIVING_L), wav(LIVING_L), 0.0),
            rec(name(LIVING_R), wav(LIVING_R), R_TRIM_MS * 1e3),
            rec(name(KITCHEN), wav(KITCHEN), 0.0),
        ],
        latest,
        Some(moved_at),
    )?;
    timing(
        &mut report,
        "play Downstairs",
        latest - played_at,
        settled,
        PLAY_MS,
    );
    report.skew("Downstairs, from play to the move", &g);
    let trim_pair = g
        .pairs
        .iter()
        .find(|p| p.a == name(LIVING_L) && p.b == name(LIVING_R));
    let den_first = first_sample(session(DEN, 0)?, name(DEN))?;
    report.line(format!(
        "play Upstairs: Den sounding {:.0} ms after the command (alone: no skew to measure)",
        ms(den_first - up_played_at)
    ));

    // Step 2: the move.
    let k2 = first_sample(session(KITCHEN, 1)?, "Kitchen in Upstairs")?;
    let (g, settled) = skew(
        &[
            rec(name(DEN), wav(DEN), 0.0),
            rec(name(KITCHEN), session_wav(&wav(KITCHEN), 2), 0.0),
        ],
        k2,
        None,
    )?;
    timing(
        &mut report,
        "move Kitchen to Upstairs",
        k2 - moved_at,
        settled,
        MOVE_MS,
    );
    report.skew("Upstairs, Den and Kitchen after the move", &g);
    let (g, _) = skew(
        &[
            rec(name(LIVING_L), wav(LIVING_L), 0.0),
            rec(name(LIVING_R), wav(LIVING_R), R_TRIM_MS * 1e3),
        ],
        moved_at,
        Some(stop_at),
    )?;
    report.skew("Downstairs, from the move to the restart", &g);
    let stayed = [(LIVING_L, 0), (LIVING_R, 0), (SUB, 0), (DEN, 0)];
    let mut underruns = Vec::new();
    let mut total = 0;
    for (i, k) in stayed {
        let u = session(i, k)?.status.underruns;
        total += u;
        underruns.push(format!("{} {u}", name(i)));
    }
    for (i, k) in stayed {
        if reports[i].len() > k + 1 && i != LIVING_R {
            return Err(format!(
                "{} played {} sessions: it should have played on in one",
                name(i),
                reports[i].len()
            ));
        }
    }
    report.target(
        "underruns of the speakers that stayed",
        underruns.join(", "),
        total == 0,
        "0",
    );

    // Step 3: the restart.
    let r2 = first_sample(session(LIVING_R, 1)?, "Living R after its restart")?;
    let (g, settled) = skew(
        &[
            rec(name(LIVING_L), wav(LIVING_L), 0.0),
            rec(name(LIVING_R), r_wav_after, R_TRIM_MS * 1e3),
        ],
        r2,
        None,
    )?;
    timing(
        &mut report,
        "restart Living R",
        r2 - restarted_at,
        settled,
        RESTART_MS,
    );
    report.skew("Downstairs, Living L and Living R after the restart", &g);
    let measured_trim = g.pairs.first().map(|p| p.mean_us + R_TRIM_MS * 1e3);
    let (vol, trim) = (r_entry["volume"].as_f64(), r_entry["trim_ms"].as_f64());
    let same = vol.is_some_and(|v| (v - R_VOLUME).abs() < 1e-6)
        && trim.is_some_and(|t| (t - R_TRIM_MS).abs() < 1e-9)
        && r_entry["group"] == down;
    report.target(
        "settings of Living R after its restart",
        format!(
            "volume {} (was {R_VOLUME}), trim {} ms (was {R_TRIM_MS}), group {}",
            vol.map_or("?".into(), |v| format!("{v:.3}")),
            trim.map_or("?".into(), |t| format!("{t:.3}")),
            if r_entry["group"] == down {
                "Downstairs"
            } else {
                "not Downstairs"
            }
        ),
        same,
        "as before",
    );
    report.line(format!(
        "trim in the audio: Living R plays {} µs after Living L before its restart and {} µs after it (its trim: {:.0} µs)",
        trim_pair.map_or("?".into(), |p| format!("{:.1}", p.mean_us + R_TRIM_MS * 1e3)),
        measured_trim.map_or("?".into(), |t| format!("{t:.1}")),
        R_TRIM_MS * 1e3
    ));
    report.target(
        "listed Living R again",
        fresh.map_or("not listed by a fresh browser within 3 s".into(), |t| {
            format!("{t:.0} ms after its new start, by a fresh browser (as `household ls`)")
        }),
        fresh.is_some_and(|t| t <= LISTED_MS),
        &format!("≤ {LISTED_MS:.0} ms"),
    );
    let relisted = listed_after(seen, name(LIVING_R), restarted_at);
    report.line(format!(
        "the app's long-running browser: {}",
        match (lost_after(seen, name(LIVING_R), stop_at), relisted) {
            (true, Some(t)) => format!(
                "lost Living R on its goodbye, listed it again {t:.0} ms after its new start"
            ),
            (true, None) => format!(
                "lost Living R on its goodbye and did not list it again ({:.1} s after its new start)",
                ms(mono_ns() - restarted_at) / 1e3
            ),
            (false, _) => "kept Living R listed (its goodbye was not seen)".into(),
        }
    ));
    let sub_first = first_sample(session(SUB, 0)?, name(SUB))?;
    report.line(format!(
        "sub: sounding {:.0} ms after play (below 80 Hz: not cross-correlated)",
        ms(sub_first - played_at)
    ));
    let conflicts = final_status["conflicts"].as_u64().unwrap_or(0);
    report.line(format!("household conflicts reported: {conflicts}"));
    Ok(report)
}

/// The recording of a speaker's `n`-th follower session (`x.wav`, `x-2.wav`, …).
fn session_wav(path: &Path, n: u32) -> PathBuf {
    if n <= 1 {
        return path.to_owned();
    }
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}-{n}.wav"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "household_demo needs root: it makes network namespaces with `ip netns` \
             (try: sudo -E cargo run --release --example household_demo)"
        );
        return ExitCode::from(1);
    }
    let handler = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    let began = mono_ns();
    println!("household demo: five speakers in network namespaces, driven through the control API");
    match run(&args) {
        Ok(report) => {
            println!();
            println!("=== household demo report ===");
            for l in &report.lines {
                println!("{l}");
            }
            let total = report.met + report.missed.len();
            if report.missed.is_empty() {
                println!(
                    "summary: {} of {total} targets met in {:.1} s",
                    report.met,
                    ms(mono_ns() - began) / 1e3
                );
            } else {
                println!(
                    "summary: {} of {total} targets met in {:.1} s; MISSED: {}",
                    report.met,
                    ms(mono_ns() - began) / 1e3,
                    report.missed.join("; ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("household demo: the run broke: {e}");
            ExitCode::from(1)
        }
    }
}
