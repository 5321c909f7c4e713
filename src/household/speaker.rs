//! [`SpeakerNode`]: one long-running node per speaker. It is idle, leads its group, or
//! follows the group's leader, and switches between these at run time as the household
//! changes, without restarting.
//!
//! A speaker node holds:
//! - its state directory ([`StateDir`]): its identity, settings and household replica,
//!   saved atomically after every change by a thread of its own, so that no call waits
//!   for the disk (changes made while a save runs are saved together by the next one). A
//!   change is answered before it is on the disk: a crash within a save's time of it can
//!   lose it from this speaker's file, and the peers, which have it, hand it back at the
//!   first sync after the restart;
//! - the control API on its `rpc` address ([`RpcListener`]), whose methods
//!   (`docs/control-api.md`) edit the household, play, pause and stop groups;
//! - a worker thread that brings the node in line with the household: it starts a
//!   [`Leader`] when the household names this speaker its group's leader and it holds the
//!   source, and a [`Follower`] joined to the group's leader (its own, when it leads, so
//!   that a leading speaker plays too) in the role the household gives it (full, a pair's
//!   left or right, a subwoofer), and it sets each follower's volume, mute and trim from
//!   the household;
//! - its peers: the other speakers' control API addresses, from discovery (mDNS on the
//!   configured interface) or given at start. Every change of the household or of a
//!   speaker's play state is pushed to every peer (`peer.sync`), and every peer is synced
//!   once a second besides, so a speaker that missed a change, or restarted, catches up.
//!   Replicas merge deterministically ([`Household::merge`]).
//!
//! What plays is the household's: a group plays while its record names a leader. The
//! source itself (a file path, `tone`, `noise`, `stream`) lives only on the leading
//! speaker, which keeps it in its state: a leader that restarts leads again by itself
//! (except a pushed `stream`, which ends with the process). While a leader is down its
//! group is silent: nothing else leads it until it is back or the group is stopped.
//!
//! Calls that must reach another speaker (`group.play` for a group another speaker is to
//! lead, `group.pause` and `group.resume` of a group another speaker leads) are forwarded
//! to it synchronously, with a 2 s limit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::discovery::SpeakerRecord;
use super::discovery::{Advertiser, Browser, DiscoveryError, DiscoveryEvent, PlayState};
use super::model::{GroupId, Household, HouseholdError, SpeakerId};
use super::rpc::{RpcError, RpcHandler, codes};
use super::rpc_tcp::{RpcCallError, RpcConnection, RpcListener, SharedHandler};
use super::state::{self, SpeakerState, StateDir, StateError};
use crate::control::{FollowerStatus, HouseholdKey, Role};
use crate::node::{
    AudioSource, FileSource, Follower, FollowerConfig, FollowerReport, Leader, LeaderConfig,
    LocalClock, NodeError, Output, PushHandle, PushSource, TestSource,
};
use crate::sim::playout::TestSignal;
use crate::time::Nanos;

/// How long a call to another speaker may take.
const PEER_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the worker waits for a peer's answer to a sync.
const SYNC_TIMEOUT: Duration = Duration::from_millis(500);
/// How often every peer is synced when nothing changed.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How long a peer whose sync failed is left alone.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// A peer not heard from for this long is shown offline.
const OFFLINE_AFTER: Duration = Duration::from_secs(3);
/// The source name of a stream pushed over the control API.
const STREAM: &str = "stream";
/// How much of a pushed stream a leader queues: 2 s at 48 kHz.
const PUSH_CAPACITY_FRAMES: usize = 96_000;
/// The most peers a speaker keeps.
const MAX_PEERS: usize = 256;
/// The worker's longest sleep.
const TICK: Duration = Duration::from_millis(100);

/// How a speaker node is started.
#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    /// The household key: it logs apps and peers in, and admits followers.
    pub key: HouseholdKey,
    /// Its name, room and model for a new state directory (an existing one keeps its own).
    pub name: String,
    /// The room it stands in.
    pub room: String,
    /// Its model (a stereo pair needs two of one model).
    pub model: String,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The IPv4 address of the interface it works on: its leader, follower and discovery
    /// bind there and nowhere else.
    pub interface: Ipv4Addr,
    /// Where the control API listens (port 0: any free port).
    pub rpc: SocketAddr,
    /// The port its leader's control channel listens on when it leads (0: any free port).
    pub control_port: u16,
    /// Where it plays. A WAV file is written afresh by each follower session: the first to
    /// the path given, the n-th to the path with `-n` before its extension.
    pub output: Output,
    /// Its clock (the drifting crystal of tests, or the machine's).
    pub clock: LocalClock,
    /// Whether to advertise and browse with mDNS on `interface`.
    pub discovery: bool,
    /// Control API addresses of other speakers, known without discovery.
    pub peers: Vec<SocketAddr>,
    /// The target latency of the streams it leads.
    pub latency: Nanos,
}

impl SpeakerConfig {
    /// A speaker on `interface` with its control API at `rpc`: no discovery, no peers, no
    /// output, the monotonic clock, the default latency, any free leader port.
    pub fn new(
        key: HouseholdKey,
        name: &str,
        room: &str,
        model: &str,
        state_dir: impl Into<PathBuf>,
        interface: Ipv4Addr,
        rpc: SocketAddr,
    ) -> SpeakerConfig {
        SpeakerConfig {
            key,
            name: name.into(),
            room: room.into(),
            model: model.into(),
            state_dir: state_dir.into(),
            interface,
            rpc,
            control_port: 0,
            output: Output::Null,
            clock: LocalClock::Monotonic,
            discovery: false,
            peers: Vec::new(),
            latency: crate::node::DEFAULT_LATENCY,
        }
    }
}

/// Why a speaker node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpeakerError {
    /// The state directory could not be opened (a corrupt file is set aside and named).
    #[error("state directory: {0}")]
    State(#[from] StateError),
    /// The control API's port could not be opened.
    #[error("control API on {addr}: {source}")]
    Rpc {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Discovery could not start on the interface.
    #[error("discovery: {0}")]
    Discovery(#[from] DiscoveryError),
    /// The worker thread could not be started.
    #[error("could not start the speaker's thread: {0}")]
    Thread(std::io::Error),
}

/// What one speaker says of itself to its peers: its addresses and play state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Presence {
    id: SpeakerId,
    rpc: SocketAddr,
    state: String,
    group: Option<GroupId>,
    control: Option<SocketAddr>,
    paused: bool,
    health: Option<Value>,
}

/// A group this speaker leads, as asked: the group and the source.
type Playing = state::Leading;

struct Model {
    state: SpeakerState,
    /// Where the state goes to be saved.
    saves: Arc<Saves>,
    /// What this speaker is to lead, if anything (in the state too, unless it is a stream
    /// pushed over the API, which does not outlive the process).
    playing: Option<Playing>,
    /// Why the last attempt to lead failed.
    lead_error: Option<String>,
    /// Conflicts found merging peers' replicas.
    conflicts: u64,
}

struct Peer {
    rpc: SocketAddr,
    presence: Option<Presence>,
    heard: Option<Instant>,
    due: Instant,
    dirty: bool,
}

struct Inner {
    cfg: SpeakerConfig,
    me: SpeakerId,
    rpc_addr: SocketAddr,
    model: Mutex<Model>,
    peers: Mutex<Vec<Peer>>,
    /// This speaker's presence as the worker last published it.
    presence: Mutex<Presence>,
    listener: Mutex<Option<RpcListener>>,
    /// The feeding end of the pushed stream it leads, if it leads one.
    push: Mutex<Option<(GroupId, PushHandle)>>,
    wake: Mutex<bool>,
    woken: Condvar,
    shutdown: AtomicBool,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The saver thread's queue: the latest state to save, and whether to stop.
#[derive(Default)]
struct Saves {
    next: Mutex<(Option<SpeakerState>, bool)>,
    wake: Condvar,
}

impl Saves {
    /// Has `state` saved (replacing a state given earlier and not saved yet).
    fn save(&self, state: &SpeakerState) {
        lock(&self.next).0 = Some(state.clone());
        self.wake.notify_one();
    }

    /// Has the saver thread save what is left and stop.
    fn stop(&self) {
        lock(&self.next).1 = true;
        self.wake.notify_one();
    }

    /// The saver thread: saves the latest state it was given, one save at a time, until
    /// it is stopped with nothing left to save.
    fn run(&self, dir: &StateDir) {
        loop {
            let state = {
                let mut next = lock(&self.next);
                loop {
                    if let Some(s) = next.0.take() {
                        break s;
                    }
                    if next.1 {
                        return;
                    }
                    next = self.wake.wait(next).unwrap_or_else(|e| e.into_inner());
                }
            };
            if let Err(e) = dir.save(&state) {
                // The change stands in memory; the next change or sync saves again.
                eprintln!("lockstep speaker: could not save the state: {e}");
            }
        }
    }
}

impl Model {
    /// Sets what this speaker leads, and keeps it in the state directory.
    fn set_playing(&mut self, playing: Option<Playing>) {
        if self.playing == playing {
            return;
        }
        self.playing = playing;
        let kept = self.playing.clone().filter(|p| p.source != STREAM);
        if self.state.leading() != kept.as_ref() {
            self.state.set_leading(kept);
            self.saves.save(&self.state);
        }
    }
}

impl Inner {
    fn wake(&self) {
        *lock(&self.wake) = true;
        self.woken.notify_all();
    }

    fn notify(&self, method: &str, params: Value) {
        if let Some(l) = lock(&self.listener).as_ref() {
            l.notify(method, params);
        }
    }

    fn mark_peers_dirty(&self) {
        for p in lock(&self.peers).iter_mut() {
            p.dirty = true;
        }
    }

    /// Has the state saved after a change, announces it and pushes it to the peers.
    fn changed(&self, model: &Model) -> Value {
        model.saves.save(&model.state);
        let clock = model.state.household().clock();
        self.notify("household.changed", json!({ "clock": clock }));
        self.mark_peers_dirty();
        self.wake();
        json!({ "clock": clock })
    }

    /// Adds a peer at `rpc` (or refreshes it); returns whether it is new.
    fn add_peer(&self, rpc: SocketAddr) -> bool {
        if rpc == self.rpc_addr {
            return false;
        }
        let mut peers = lock(&self.peers);
        if peers.len() >= MAX_PEERS || peers.iter().any(|p| p.rpc == rpc) {
            return false;
        }
        peers.push(Peer {
            rpc,
            presence: None,
            heard: None,
            due: Instant::now(),
            dirty: true,
        });
        true
    }

    /// Records what a peer said of itself: the latest word from an id replaces any older
    /// entry for it at another address.
    fn heard(&self, presence: Presence) {
        if presence.id == self.me {
            return;
        }
        let mut peers = lock(&self.peers);
        peers.retain(|p| {
            p.rpc == presence.rpc || p.presence.as_ref().is_none_or(|q| q.id != presence.id)
        });
        let now = Instant::now();
        match peers.iter_mut().find(|p| p.rpc == presence.rpc) {
            Some(p) => {
                p.presence = Some(presence);
                p.heard = Some(now);
            }
            None => peers.push(Peer {
                rpc: presence.rpc,
                presence: Some(presence),
                heard: Some(now),
                due: now,
                dirty: true,
            }),
        }
    }

    /// Folds a peer's replica into this one.
    fn merge(&self, remote: &Household) {
        let mut model = lock(&self.model);
        let report = model.state.household_mut().merge(remote);
        if !report.conflicts.is_empty() {
            model.conflicts += report.conflicts.len() as u64;
            let list: Vec<String> = report.conflicts.iter().map(|c| format!("{c:?}")).collect();
            self.notify("household.conflict", json!({ "conflicts": list }));
        }
        if report.changed {
            self.changed(&model);
        }
    }

    /// What a sync says: this speaker's presence, its replica and the peers it knows.
    fn sync_params(&self) -> Value {
        let presence = lock(&self.presence).clone();
        let household = lock(&self.model).state.household().to_json();
        let peers: Vec<String> = lock(&self.peers)
            .iter()
            .map(|p| p.rpc.to_string())
            .collect();
        json!({ "from": presence, "household": household, "peers": peers })
    }

    /// Takes in what a peer's sync said; false if it was malformed.
    fn synced(&self, v: &Value) -> bool {
        let Some((presence, household)) = parse_sync(v) else {
            return false;
        };
        self.heard(presence);
        self.merge(&household);
        // At most as many new peers as a household can hold.
        let peers = v.get("peers").and_then(Value::as_array);
        for addr in peers.into_iter().flatten().take(MAX_PEERS) {
            if let Some(addr) = addr.as_str().and_then(|a| a.parse().ok()) {
                self.add_peer(addr);
            }
        }
        true
    }

    /// The speakers other than `named` that say they lead group `id`: a conflict (the
    /// household's record decides, and followers follow only the leader it names).
    fn other_leaders(&self, id: GroupId, named: Option<SpeakerId>, mine: &Presence) -> Vec<String> {
        let peers = lock(&self.peers);
        let presences = peers
            .iter()
            .filter(|p| p.heard.is_some_and(|h| h.elapsed() < OFFLINE_AFTER))
            .filter_map(|p| p.presence.as_ref())
            .chain(std::iter::once(mine));
        let mut out: Vec<String> = presences
            .filter(|p| p.state == "leading" && p.group == Some(id) && Some(p.id) != named)
            .map(|p| p.id.to_string())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn peer_presence(&self, id: SpeakerId) -> Option<(Presence, bool)> {
        let peers = lock(&self.peers);
        let p = peers
            .iter()
            .find(|p| p.presence.as_ref().is_some_and(|q| q.id == id))?;
        let online = p.heard.is_some_and(|h| h.elapsed() < OFFLINE_AFTER);
        Some((p.presence.clone()?, online))
    }
}

/// A speaker: see the module docs.
pub struct SpeakerNode {
    inner: Arc<Inner>,
    worker: Option<JoinHandle<Vec<FollowerReport>>>,
    saves: Arc<Saves>,
    saver: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SpeakerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeakerNode")
            .field("id", &self.inner.me)
            .field("rpc", &self.inner.rpc_addr)
            .finish_non_exhaustive()
    }
}

impl SpeakerNode {
    /// Opens the state directory (creating the speaker on first start), opens the control
    /// API, starts discovery if configured, and starts the worker. A corrupt state file is
    /// set aside and refused ([`SpeakerError::State`]): the caller decides what to do.
    pub fn start(cfg: SpeakerConfig) -> Result<SpeakerNode, SpeakerError> {
        let dir = StateDir::new(&cfg.state_dir);
        let opened = dir.open(&cfg.name, &cfg.room, &cfg.model)?;
        let me = opened.state.id();
        // A leader that restarts plays on (the worker checks the household still names it).
        let playing = opened.state.leading().cloned();
        let saves = Arc::new(Saves::default());
        let model = Model {
            state: opened.state,
            saves: Arc::clone(&saves),
            playing,
            lead_error: None,
            conflicts: 0,
        };
        // Bound first, so its address is known; the handler comes with the listener.
        let probe = std::net::TcpListener::bind(cfg.rpc).map_err(|source| SpeakerError::Rpc {
            addr: cfg.rpc,
            source,
        })?;
        let rpc_addr = probe.local_addr().map_err(|source| SpeakerError::Rpc {
            addr: cfg.rpc,
            source,
        })?;
        drop(probe);
        let presence = Presence {
            id: me,
            rpc: rpc_addr,
            state: "idle".into(),
            group: None,
            control: None,
            paused: false,
            health: None,
        };
        let inner = Arc::new(Inner {
            me,
            rpc_addr,
            model: Mutex::new(model),
            peers: Mutex::new(Vec::new()),
            presence: Mutex::new(presence),
            listener: Mutex::new(None),
            push: Mutex::new(None),
            wake: Mutex::new(false),
            woken: Condvar::new(),
            shutdown: AtomicBool::new(false),
            cfg,
        });
        for p in inner.cfg.peers.clone() {
            inner.add_peer(p);
        }
        let handler: SharedHandler = Arc::new(Mutex::new(Methods {
            inner: Arc::clone(&inner),
        }));
        let listener =
            RpcListener::bind(rpc_addr, inner.cfg.key.clone(), handler).map_err(|source| {
                SpeakerError::Rpc {
                    addr: rpc_addr,
                    source,
                }
            })?;
        *lock(&inner.listener) = Some(listener);
        let discovery = if inner.cfg.discovery {
            let record = {
                let model = lock(&inner.model);
                let s = model.state.me().cloned();
                let (name, room, model_name) = s.map_or(
                    (
                        inner.cfg.name.clone(),
                        inner.cfg.room.clone(),
                        inner.cfg.model.clone(),
                    ),
                    |s| (s.name, s.room, s.model),
                );
                SpeakerRecord::new(&me.to_string(), &name, &room, &model_name)
                    .map_err(DiscoveryError::from)?
            };
            let advertiser = Advertiser::start(record, rpc_addr.port(), &[inner.cfg.interface])?;
            let browser = Browser::start(&[inner.cfg.interface])?;
            Some((advertiser, browser))
        } else {
            None
        };
        let s = Arc::clone(&saves);
        let saver = std::thread::Builder::new()
            .name("lockstep-speaker-save".into())
            .spawn(move || s.run(&dir))
            .map_err(SpeakerError::Thread)?;
        let w = Arc::clone(&inner);
        let worker = std::thread::Builder::new()
            .name("lockstep-speaker".into())
            .spawn(move || Worker::new(w, discovery).run());
        let worker = match worker {
            Ok(w) => w,
            Err(e) => {
                saves.stop();
                let _ = saver.join();
                return Err(SpeakerError::Thread(e));
            }
        };
        Ok(SpeakerNode {
            inner,
            worker: Some(worker),
            saves,
            saver: Some(saver),
        })
    }

    /// Its id.
    pub fn id(&self) -> SpeakerId {
        self.inner.me
    }

    /// Where its control API listens.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.inner.rpc_addr
    }

    /// Idle, leading or following, as the worker last found it.
    pub fn play_state(&self) -> PlayState {
        match lock(&self.inner.presence).state.as_str() {
            "leading" => PlayState::Leading,
            "following" => PlayState::Following,
            _ => PlayState::Idle,
        }
    }

    /// A copy of its household replica.
    pub fn household(&self) -> Household {
        lock(&self.inner.model).state.household().clone()
    }

    /// Adds a peer's control API address (as discovery would).
    pub fn add_peer(&self, rpc: SocketAddr) {
        if self.inner.add_peer(rpc) {
            self.inner.wake();
        }
    }

    /// Stops the node: its follower and leader, the control API and discovery. Returns
    /// the reports of the follower sessions it ran, in order.
    pub fn stop(mut self) -> Vec<FollowerReport> {
        self.shut()
    }

    fn shut(&mut self) -> Vec<FollowerReport> {
        self.inner.shutdown.store(true, Ordering::Release);
        self.inner.wake();
        let reports = self
            .worker
            .take()
            .and_then(|w| w.join().ok())
            .unwrap_or_default();
        // Taken out of the lock before it is dropped: its threads may be in a call that
        // announces through it.
        let listener = lock(&self.inner.listener).take();
        drop(listener);
        // Last, so that the last change is on the disk when it returns.
        self.saves.stop();
        if let Some(s) = self.saver.take() {
            let _ = s.join();
        }
        reports
    }
}

impl Drop for SpeakerNode {
    fn drop(&mut self) {
        if self.worker.is_some() {
            self.shut();
        }
    }
}

// --- the worker ----------------------------------------------------------------------------

struct Leading {
    group: GroupId,
    source: String,
    paused: bool,
    leader: Leader,
}

struct Following {
    control: SocketAddr,
    role: Role,
    group: GroupId,
    follower: Follower,
}

struct Worker {
    inner: Arc<Inner>,
    discovery: Option<(Advertiser, Browser)>,
    leading: Option<Leading>,
    following: Option<Following>,
    sessions: u32,
    reports: Vec<FollowerReport>,
    connections: Vec<(SocketAddr, RpcConnection)>,
    /// A follower that could not join: not retried before this.
    follow_retry: Option<(SocketAddr, Instant)>,
}

/// What the household asks of this speaker now.
struct Wanted {
    lead: Option<Playing>,
    /// (the leader's control address, this speaker's role, the group) to follow.
    follow: Option<(SocketAddr, Role, GroupId)>,
    /// This speaker's group and role in it.
    role: Option<(GroupId, Role)>,
    volumes: Vec<(SpeakerId, f32, bool, Nanos)>,
    output_latency: Nanos,
    model_name: String,
}

impl Worker {
    fn new(inner: Arc<Inner>, discovery: Option<(Advertiser, Browser)>) -> Worker {
        Worker {
            inner,
            discovery,
            leading: None,
            following: None,
            sessions: 0,
            reports: Vec::new(),
            connections: Vec::new(),
            follow_retry: None,
        }
    }

    fn run(mut self) -> Vec<FollowerReport> {
        while !self.inner.shutdown.load(Ordering::Acquire) {
            self.browse();
            self.reconcile();
            self.publish();
            self.sync_peers();
            let mut woken = lock(&self.inner.wake);
            if !*woken {
                woken = self
                    .inner
                    .woken
                    .wait_timeout(woken, TICK)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            *woken = false;
        }
        self.stop_following();
        if let Some(l) = self.leading.take() {
            l.leader.shutdown();
        }
        if let Some((advertiser, browser)) = self.discovery.take() {
            // Goodbyes are best effort at shutdown.
            let _ = advertiser.stop();
            let _ = browser.stop();
        }
        self.reports
    }

    fn browse(&mut self) {
        let Some((_, browser)) = self.discovery.as_mut() else {
            return;
        };
        let mut found = Vec::new();
        while let Some(event) = browser.poll_event() {
            if let DiscoveryEvent::Discovered(info) | DiscoveryEvent::Updated(info) = event
                && let Some(ip) = info.addresses.first()
            {
                found.push(SocketAddr::new(IpAddr::V4(*ip), info.port));
            }
        }
        for addr in found {
            self.inner.add_peer(addr);
        }
    }

    fn wanted(&self) -> Wanted {
        let mut model = lock(&self.inner.model);
        let me = self.inner.me;
        {
            // What it was to lead and the household no longer has it lead (stopped, moved,
            // deleted, led by another now) is forgotten.
            let h = model.state.household();
            let group = h.group_of(me);
            let leader = group.and_then(|g| h.group(g)).and_then(|g| g.leader);
            if model
                .playing
                .as_ref()
                .is_some_and(|p| Some(p.group) != group || leader != Some(me))
            {
                model.set_playing(None);
            }
        }
        let h = model.state.household();
        let group = h.group_of(me);
        let record = group.and_then(|g| h.group(g));
        let leader = record.and_then(|g| g.leader);
        let lead = model.playing.clone();
        let role = group.and_then(|g| h.roles(g).into_iter().find(|(s, _)| *s == me));
        let follow = match (group, leader, role) {
            (Some(_), Some(l), _) if l == me => None,
            (Some(g), Some(l), Some((_, role))) => self
                .inner
                .peer_presence(l)
                .filter(|(p, online)| *online && p.state == "leading" && p.group == Some(g))
                .and_then(|(p, _)| p.control)
                .map(|c| (c, role, g)),
            _ => None,
        };
        let volumes = match lead.as_ref() {
            Some(p) => h
                .roles(p.group)
                .iter()
                .filter_map(|(s, _)| {
                    let sp = h.speaker(*s)?;
                    Some((
                        *s,
                        h.effective_volume(*s)?,
                        sp.settings.muted,
                        sp.settings.trim(),
                    ))
                })
                .collect(),
            None => Vec::new(),
        };
        let me_rec = h.speaker(me);
        Wanted {
            lead,
            follow,
            role: group.zip(role.map(|(_, r)| r)),
            volumes,
            output_latency: me_rec.map_or(Nanos::ZERO, |s| s.settings.output_latency()),
            model_name: me_rec.map_or_else(|| self.inner.cfg.model.clone(), |s| s.model.clone()),
        }
    }

    fn reconcile(&mut self) {
        let want = self.wanted();
        // The leader first: a follower of this speaker's own group needs its address.
        let keep_leader = match (&self.leading, &want.lead) {
            (Some(l), Some(w)) => l.group == w.group && l.source == w.source,
            (None, None) => true,
            _ => false,
        };
        if !keep_leader {
            if let Some(l) = self.leading.take() {
                l.leader.shutdown();
                *lock(&self.inner.push) = None;
            }
            if let Some(w) = &want.lead {
                match self.start_leader(w) {
                    Ok(leader) => {
                        lock(&self.inner.model).lead_error = None;
                        self.leading = Some(Leading {
                            group: w.group,
                            source: w.source.clone(),
                            paused: false,
                            leader,
                        });
                    }
                    Err(e) => {
                        let mut model = lock(&self.inner.model);
                        model.lead_error = Some(e.clone());
                        model.set_playing(None);
                        drop(model);
                        self.inner.notify(
                            "speaker.error",
                            json!({ "error": e, "speaker": self.inner.me.to_string() }),
                        );
                    }
                }
            }
            self.inner.mark_peers_dirty();
        }
        if let (Some(l), Some(w)) = (self.leading.as_mut(), want.lead.as_ref()) {
            if l.paused != w.paused {
                if w.paused {
                    l.leader.pause();
                } else {
                    l.leader.resume();
                }
                l.paused = w.paused;
                self.inner.mark_peers_dirty();
            }
            for info in l.leader.followers() {
                let Ok(id) = info.name.parse::<SpeakerId>() else {
                    continue;
                };
                if let Some(&(_, volume, muted, trim)) =
                    want.volumes.iter().find(|(s, ..)| *s == id)
                {
                    if (info.volume - volume).abs() > 1e-6 {
                        let _ = l.leader.set_volume(info.id, volume);
                    }
                    if info.muted != muted {
                        let _ = l.leader.set_mute(info.id, muted);
                    }
                    if info.trim != trim {
                        let _ = l.leader.set_trim(info.id, trim);
                    }
                }
            }
        }
        // Then the follower: a leader plays through its own, in the household's role.
        let want_follow = match (&want.lead, &self.leading, want.role) {
            (Some(_), Some(l), Some((g, role))) if l.group == g => {
                Some((l.leader.control_addr(), role, g))
            }
            (Some(_), _, _) => None,
            (None, _, _) => want.follow,
        };
        let keep_follower = match (&self.following, &want_follow) {
            (Some(f), Some((c, r, g))) => f.control == *c && f.role == *r && f.group == *g,
            (None, None) => true,
            _ => false,
        };
        if !keep_follower {
            self.stop_following();
            if let Some((control, role, group)) = want_follow {
                let retry_ok = self
                    .follow_retry
                    .is_none_or(|(c, at)| c != control || Instant::now() >= at);
                if retry_ok {
                    match self.start_follower(control, role, group, &want) {
                        Ok(f) => {
                            self.follow_retry = None;
                            self.following = Some(f);
                        }
                        Err(e) => {
                            eprintln!("lockstep speaker: could not follow {control}: {e}");
                            self.follow_retry =
                                Some((control, Instant::now() + Duration::from_millis(300)));
                        }
                    }
                }
            }
            self.inner.mark_peers_dirty();
        }
    }

    fn start_leader(&self, w: &Playing) -> Result<Leader, String> {
        let source = if w.source == STREAM {
            let (source, handle) = PushSource::new(2, PUSH_CAPACITY_FRAMES);
            *lock(&self.inner.push) = Some((w.group, handle));
            Box::new(source)
        } else {
            open_source(&w.source)?
        };
        let cfg = &self.inner.cfg;
        let mut c = LeaderConfig::new(
            &w.group.to_string(),
            cfg.key.clone(),
            SocketAddr::new(IpAddr::V4(cfg.interface), cfg.control_port),
        );
        c.latency = cfg.latency;
        Leader::start(c, source).map_err(|e| format!("could not lead: {e}"))
    }

    fn start_follower(
        &mut self,
        control: SocketAddr,
        role: Role,
        group: GroupId,
        want: &Wanted,
    ) -> Result<Following, NodeError> {
        let cfg = &self.inner.cfg;
        let mut c = FollowerConfig::new(control, cfg.key.clone(), role);
        c.bind = IpAddr::V4(cfg.interface);
        c.multicast_interface = Some(cfg.interface);
        c.group = group.to_string();
        c.name = self.inner.me.to_string();
        c.model = want.model_name.clone();
        c.clock = cfg.clock.clone();
        c.output_latency = want.output_latency;
        c.output = match &cfg.output {
            Output::Wav(path) => Output::Wav(session_path(path, self.sessions + 1)),
            other => other.clone(),
        };
        let follower = Follower::start(c)?;
        self.sessions += 1;
        Ok(Following {
            control,
            role,
            group,
            follower,
        })
    }

    fn stop_following(&mut self) {
        if let Some(f) = self.following.take() {
            match f.follower.stop() {
                Ok(report) => self.reports.push(report),
                Err(e) => eprintln!("lockstep speaker: the follower stopped with {e}"),
            }
        }
    }

    /// Publishes this speaker's presence and health for the status and its peers.
    fn publish(&mut self) {
        let state = match (&self.leading, &self.following) {
            (Some(_), _) => "leading",
            (None, Some(_)) => "following",
            (None, None) => "idle",
        };
        let group = self
            .leading
            .as_ref()
            .map(|l| l.group)
            .or(self.following.as_ref().map(|f| f.group));
        let health = self
            .following
            .as_ref()
            .map(|f| health_json(&f.follower.status()));
        let next = Presence {
            id: self.inner.me,
            rpc: self.inner.rpc_addr,
            state: state.into(),
            group,
            control: self.leading.as_ref().map(|l| l.leader.control_addr()),
            paused: self.leading.as_ref().is_some_and(|l| l.paused),
            health,
        };
        let mut presence = lock(&self.inner.presence);
        let moved = presence.state != next.state
            || presence.group != next.group
            || presence.control != next.control
            || presence.paused != next.paused;
        *presence = next;
        drop(presence);
        if moved {
            self.inner.mark_peers_dirty();
            let play = match state {
                "leading" => PlayState::Leading,
                "following" => PlayState::Following,
                _ => PlayState::Idle,
            };
            // The group by its name in the advertisement, as people call it.
            let name = group.map(|g| {
                let model = lock(&self.inner.model);
                model
                    .state
                    .household()
                    .group(g)
                    .map_or_else(|| g.to_string(), |r| r.name.clone())
            });
            if let Some((advertiser, _)) = self.discovery.as_mut()
                && let Err(e) = advertiser.set_state(play, name.as_deref())
            {
                eprintln!("lockstep speaker: could not re-announce: {e}");
            }
            self.inner.notify(
                "speaker.state",
                json!({ "speaker": self.inner.me.to_string(), "state": state,
                        "group": group.map(|g| g.to_string()) }),
            );
        }
    }

    fn sync_peers(&mut self) {
        let now = Instant::now();
        let due: Vec<SocketAddr> = {
            let mut peers = lock(&self.inner.peers);
            peers
                .iter_mut()
                .filter(|p| p.dirty || now >= p.due)
                .map(|p| {
                    p.dirty = false;
                    p.due = now + SYNC_EVERY;
                    p.rpc
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let params = self.inner.sync_params();
        for addr in due {
            if self.inner.shutdown.load(Ordering::Acquire) {
                return;
            }
            match self.call(addr, "peer.sync", params.clone(), SYNC_TIMEOUT) {
                Ok(answer) => {
                    self.inner.synced(&answer);
                }
                Err(_) => {
                    if let Some(p) = lock(&self.inner.peers).iter_mut().find(|p| p.rpc == addr) {
                        p.due = Instant::now() + RETRY_AFTER;
                    }
                }
            }
        }
    }

    /// Calls a peer over a kept connection, reconnecting once if it broke.
    fn call(
        &mut self,
        addr: SocketAddr,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, RpcCallError> {
        if let Some(i) = self.connections.iter().position(|(a, _)| *a == addr) {
            match self.connections[i].1.call(method, params.clone(), timeout) {
                Ok(v) => return Ok(v),
                Err(RpcCallError::Rpc(e)) => return Err(RpcCallError::Rpc(e)),
                Err(_) => {
                    self.connections.swap_remove(i);
                }
            }
        }
        let mut c = RpcConnection::connect(addr, self.inner.cfg.key.clone(), timeout)?;
        let answer = c.call(method, params, timeout);
        if !matches!(answer, Err(ref e) if !matches!(e, RpcCallError::Rpc(_))) {
            self.connections.push((addr, c));
        }
        answer
    }
}

/// The path of the `n`-th session's recording: `path` itself for the first.
fn session_path(path: &Path, n: u32) -> PathBuf {
    if n <= 1 {
        return path.to_owned();
    }
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    path.with_file_name(name)
}

/// Opens a source by its name: `tone` (a 440 Hz sine at −12 dBFS), `noise` (white noise),
/// or the path of a music file (`file:` before it is allowed).
fn open_source(spec: &str) -> Result<Box<dyn AudioSource>, String> {
    match spec {
        "tone" => Ok(Box::new(TestSource::new(
            TestSignal::Sine {
                freq_hz: 440.0,
                amplitude: 0.25,
            },
            2,
            48_000,
        ))),
        "noise" => Ok(Box::new(TestSource::noise(2, 48_000))),
        path => {
            let path = Path::new(path.strip_prefix("file:").unwrap_or(path));
            FileSource::open(path, 2, 48_000)
                .map(|s| Box::new(s) as Box<dyn AudioSource>)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

/// Whether `spec` names a music file that this speaker has (the test signals are on every
/// speaker, so they hold no speaker to lead).
fn is_file(spec: &str) -> bool {
    !matches!(spec, "tone" | "noise" | STREAM) && holds_source(spec)
}

/// Whether `spec` names a source this speaker has.
fn holds_source(spec: &str) -> bool {
    match spec {
        "tone" | "noise" | STREAM => true,
        path => Path::new(path.strip_prefix("file:").unwrap_or(path)).is_file(),
    }
}

/// Decodes standard base64 (RFC 4648, padding optional); `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for chunk in body.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c)?;
        }
        // 2, 3 or 4 characters carry 1, 2 or 3 bytes.
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// A single-precision value as the decimal it was written as (0.8, not 0.800000011920929).
fn decimal(v: f32) -> f64 {
    (f64::from(v) * 1e6).round() / 1e6
}

fn health_json(s: &FollowerStatus) -> Value {
    json!({
        "playing": s.playing,
        "underruns": s.underruns,
        "packets_received": s.packets_received,
        "packets_lost": s.packets_lost,
        "packets_late": s.packets_late,
        "buffer_ms": s.buffer_level.as_nanos() as f64 / 1e6,
        "clock_settled": s.clock_settled,
        "uncertainty_us": s.uncertainty.map(|u| u.as_micros_f64()),
        "skew_us": s.skew_estimate.map(|u| u.as_micros_f64()),
        "volume": decimal(s.volume),
        "muted": s.muted,
        "media_authenticated": s.media_authenticated,
        "clock_authenticated": s.clock_authenticated,
    })
}

fn parse_sync(v: &Value) -> Option<(Presence, Household)> {
    let presence: Presence = serde_json::from_value(v.get("from")?.clone()).ok()?;
    let household = Household::from_json(v.get("household")?.as_str()?).ok()?;
    Some((presence, household))
}

// --- the control API's methods ------------------------------------------------------------

struct Methods {
    inner: Arc<Inner>,
}

fn household_error(e: HouseholdError) -> RpcError {
    let message = e.to_string();
    match e {
        HouseholdError::NoSuchSpeaker { speaker } => {
            RpcError::new(codes::NOT_FOUND, message).with_data(json!({ "speaker": speaker }))
        }
        HouseholdError::NoSuchGroup { group } => {
            RpcError::new(codes::NOT_FOUND, message).with_data(json!({ "group": group }))
        }
        HouseholdError::ModelMismatch {
            left,
            left_model,
            right,
            right_model,
        } => RpcError::new(codes::MODEL_MISMATCH, message).with_data(json!({
            "left": left, "left_model": left_model, "right": right, "right_model": right_model
        })),
        _ => RpcError::new(codes::INVALID_PARAMS, message),
    }
}

fn text<'a>(params: &'a Value, name: &str) -> Result<&'a str, RpcError> {
    params
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params(format!("\"{name}\" must be a string")))
}

fn number(params: &Value, name: &str) -> Result<f64, RpcError> {
    params
        .get(name)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
        .ok_or_else(|| RpcError::invalid_params(format!("\"{name}\" must be a number")))
}

fn object(params: &Value) -> Result<(), RpcError> {
    if params.is_object() {
        Ok(())
    } else {
        Err(RpcError::invalid_params("params must be an object"))
    }
}

impl Methods {
    /// Runs an edit of the household as this speaker; on success saves, announces and
    /// pushes it, and answers the clock with `extra`'s fields.
    fn edit<T>(
        &self,
        f: impl FnOnce(&mut Household, SpeakerId) -> Result<T, HouseholdError>,
    ) -> Result<(T, Value), RpcError> {
        let mut model = lock(&self.inner.model);
        let me = self.inner.me;
        let out = f(model.state.household_mut(), me).map_err(household_error)?;
        let answer = self.inner.changed(&model);
        Ok((out, answer))
    }

    fn status(&self) -> Value {
        let model = lock(&self.inner.model);
        let h = model.state.household();
        let me = self.inner.me;
        let my_presence = lock(&self.inner.presence).clone();
        let mut speakers = Vec::new();
        for s in h.speakers() {
            let (presence, online) = if s.id == me {
                (Some(my_presence.clone()), true)
            } else {
                match self.inner.peer_presence(s.id) {
                    Some((p, online)) => (Some(p), online),
                    None => (None, false),
                }
            };
            let group = h.group_of(s.id);
            let role = group.and_then(|g| {
                h.roles(g)
                    .into_iter()
                    .find(|(x, _)| *x == s.id)
                    .map(|(_, r)| role_name(r))
            });
            speakers.push(json!({
                "id": s.id.to_string(),
                "name": s.name,
                "room": s.room,
                "model": s.model,
                "volume": decimal(s.settings.volume.get()),
                "muted": s.settings.muted,
                "trim_ms": s.settings.trim_ns as f64 / 1e6,
                "online": online,
                "state": presence.as_ref().filter(|_| online).map_or("idle", |p| p.state.as_str()),
                "group": group.map(|g| g.to_string()),
                "role": role,
                "health": presence.filter(|_| online).and_then(|p| p.health),
            }));
        }
        let mut groups = Vec::new();
        for (id, g) in h.groups() {
            let leader_presence = g.leader.and_then(|l| {
                if l == me {
                    Some(my_presence.clone())
                } else {
                    self.inner
                        .peer_presence(l)
                        .filter(|(_, on)| *on)
                        .map(|(p, _)| p)
                }
            });
            let live = leader_presence
                .as_ref()
                .filter(|p| p.state == "leading" && p.group == Some(id));
            let state = match (g.leader, live) {
                (None, _) => "stopped",
                (Some(_), Some(p)) if p.paused => "paused",
                (Some(_), Some(_)) => "playing",
                (Some(_), None) => "starting",
            };
            let source = model
                .playing
                .as_ref()
                .filter(|p| p.group == id && g.leader == Some(me))
                .map(|p| p.source.clone());
            groups.push(json!({
                "id": id.to_string(),
                "name": g.name,
                "members": g.members.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                "volume": decimal(g.volume.get()),
                "leader": g.leader.map(|l| l.to_string()),
                "state": state,
                "source": source,
                "other_leaders": self.inner.other_leaders(id, g.leader, &my_presence),
            }));
        }
        let layout = h.layout();
        json!({
            "clock": h.clock(),
            "speaker": me.to_string(),
            "speakers": speakers,
            "groups": groups,
            "pairs": layout.pairs.iter().map(|p| json!({"left": p.left.to_string(), "right": p.right.to_string()})).collect::<Vec<_>>(),
            "subs": layout.subs.iter().map(|s| json!({"host": s.host.to_string(), "sub": s.sub.to_string()})).collect::<Vec<_>>(),
            "conflicts": model.conflicts,
            "lead_error": model.lead_error,
        })
    }

    /// Forwards `method` to speaker `to` and returns its answer.
    fn forward(&self, to: SpeakerId, method: &str, params: Value) -> Result<Value, RpcError> {
        let (presence, online) = self.inner.peer_presence(to).ok_or_else(|| {
            RpcError::new(codes::CONFLICT, "the speaker to lead is not reachable")
                .with_data(json!({ "speaker": to.to_string() }))
        })?;
        if !online {
            return Err(
                RpcError::new(codes::CONFLICT, "the speaker to lead is offline")
                    .with_data(json!({ "speaker": to.to_string() })),
            );
        }
        let mut c =
            RpcConnection::connect(presence.rpc, self.inner.cfg.key.clone(), PEER_CALL_TIMEOUT)
                .map_err(|e| {
                    RpcError::new(codes::INTERNAL_ERROR, format!("forwarding failed: {e}"))
                })?;
        c.call(method, params, PEER_CALL_TIMEOUT)
            .map_err(|e| match e {
                RpcCallError::Rpc(e) => e,
                e => RpcError::new(codes::INTERNAL_ERROR, format!("forwarding failed: {e}")),
            })
    }

    fn group_state(&self, group: GroupId, name: &str, state: &str) {
        self.inner.notify(
            "group.state",
            json!({ "group": group.to_string(), "name": name, "state": state }),
        );
    }

    fn play(&self, params: &Value) -> Result<Value, RpcError> {
        let group = text(params, "group")?;
        let source = text(params, "source")?;
        let (gid, leader) = {
            let model = lock(&self.inner.model);
            let h = model.state.household();
            let gid = h.resolve_group(group).map_err(household_error)?;
            let me = self.inner.me;
            let leader = h
                .choose_leader(gid, |s| s == me && is_file(source))
                .ok_or_else(|| {
                    RpcError::invalid_params(format!("group {group:?} has no speaker to play"))
                })?;
            (gid, leader)
        };
        if leader != self.inner.me {
            // With this replica, so that the leader knows the group even before a sync.
            let household = lock(&self.inner.model).state.household().to_json();
            return self.forward(
                leader,
                "peer.lead",
                json!({ "group": gid.to_string(), "source": source, "household": household }),
            );
        }
        self.lead(gid, source)
    }

    /// Leads group `gid` with `source`: names this speaker the leader, and the worker
    /// starts it.
    fn lead(&self, gid: GroupId, source: &str) -> Result<Value, RpcError> {
        if !holds_source(source) {
            return Err(RpcError::invalid_params(format!(
                "no source {source:?} on this speaker"
            )));
        }
        let me = self.inner.me;
        let ((), mut answer) = self.edit(|h, me| {
            h.edit(me)
                .set_leader(&gid.to_string(), Some(&me.to_string()))
                .map(|_| ())
        })?;
        let name = {
            let mut model = lock(&self.inner.model);
            model.set_playing(Some(Playing {
                group: gid,
                source: source.to_owned(),
                paused: false,
            }));
            model.lead_error = None;
            model
                .state
                .household()
                .group(gid)
                .map(|g| g.name.clone())
                .unwrap_or_default()
        };
        self.inner.wake();
        self.group_state(gid, &name, "playing");
        answer["leader"] = json!(me.to_string());
        Ok(answer)
    }

    fn pause(&self, params: &Value, paused: bool) -> Result<Value, RpcError> {
        let group = text(params, "group")?;
        let (gid, leader, name, clock) = {
            let model = lock(&self.inner.model);
            let h = model.state.household();
            let gid = h.resolve_group(group).map_err(household_error)?;
            let g = h.group(gid).ok_or_else(|| RpcError::not_found(group))?;
            (gid, g.leader, g.name.clone(), h.clock())
        };
        let Some(leader) = leader else {
            return Err(RpcError::new(
                codes::CONFLICT,
                format!("group {name:?} is not playing"),
            ));
        };
        if leader != self.inner.me {
            return self.forward(
                leader,
                if paused {
                    "group.pause"
                } else {
                    "group.resume"
                },
                json!({ "group": gid.to_string() }),
            );
        }
        {
            let mut model = lock(&self.inner.model);
            match model.playing.clone().filter(|p| p.group == gid) {
                Some(p) => model.set_playing(Some(Playing { paused, ..p })),
                None => {
                    return Err(RpcError::new(
                        codes::CONFLICT,
                        format!("group {name:?} is not playing here: play it again"),
                    ));
                }
            }
        }
        self.inner.wake();
        self.group_state(gid, &name, if paused { "paused" } else { "playing" });
        Ok(json!({ "clock": clock }))
    }

    fn stop(&self, params: &Value) -> Result<Value, RpcError> {
        let group = text(params, "group")?;
        let (gid, name) = {
            let model = lock(&self.inner.model);
            let h = model.state.household();
            let gid = h.resolve_group(group).map_err(household_error)?;
            (
                gid,
                h.group(gid).map(|g| g.name.clone()).unwrap_or_default(),
            )
        };
        let ((), answer) =
            self.edit(|h, me| h.edit(me).set_leader(&gid.to_string(), None).map(|_| ()))?;
        {
            let mut model = lock(&self.inner.model);
            if model.playing.as_ref().is_some_and(|p| p.group == gid) {
                model.set_playing(None);
            }
        }
        self.group_state(gid, &name, "stopped");
        Ok(answer)
    }

    /// `group.push`: audio for the stream a group plays, to its leader.
    fn push(&self, params: &Value) -> Result<Value, RpcError> {
        let group = text(params, "group")?;
        let (gid, leader, name) = {
            let model = lock(&self.inner.model);
            let h = model.state.household();
            let gid = h.resolve_group(group).map_err(household_error)?;
            let g = h.group(gid).ok_or_else(|| RpcError::not_found(group))?;
            (gid, g.leader, g.name.clone())
        };
        match leader {
            Some(l) if l != self.inner.me => return self.forward(l, "group.push", params.clone()),
            Some(_) => {}
            None => {
                return Err(RpcError::new(
                    codes::CONFLICT,
                    format!("group {name:?} is not playing"),
                ));
            }
        }
        let handle = lock(&self.inner.push)
            .as_ref()
            .filter(|(g, _)| *g == gid)
            .map(|(_, h)| h.clone())
            .ok_or_else(|| {
                RpcError::new(
                    codes::CONFLICT,
                    format!("group {name:?} is not playing a stream: play \"stream\" first"),
                )
            })?;
        let accepted = match params.get("pcm") {
            None | Some(Value::Null) => 0,
            Some(Value::String(b64)) => {
                let bytes = base64_decode(b64).ok_or_else(|| {
                    RpcError::invalid_params("\"pcm\" must be base64 (16-bit little-endian PCM)")
                })?;
                handle.push_s16le(&bytes)
            }
            Some(_) => return Err(RpcError::invalid_params("\"pcm\" must be a base64 string")),
        };
        if params.get("end").and_then(Value::as_bool) == Some(true) {
            handle.end();
        }
        let buffered = handle.buffered_frames();
        Ok(json!({
            "accepted_frames": accepted,
            "buffered_ms": buffered as f64 / 48.0,
        }))
    }

    fn sync(&self, params: &Value) -> Result<Value, RpcError> {
        if !self.inner.synced(params) {
            return Err(RpcError::invalid_params(
                "a sync takes \"from\", \"household\" and \"peers\"",
            ));
        }
        self.inner.wake();
        Ok(self.inner.sync_params())
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Full => "full",
        Role::Left => "left",
        Role::Right => "right",
        Role::Sub => "sub",
        Role::Mono => "mono",
    }
}

impl RpcHandler for Methods {
    fn call(&mut self, method: &str, params: &Value) -> Result<Value, RpcError> {
        let p = params;
        if !p.is_null() {
            object(p)?;
        }
        let unit = |r: Result<((), Value), RpcError>| r.map(|(_, v)| v);
        match method {
            "household.status" => Ok(self.status()),
            "group.create" => {
                let name = text(p, "name")?;
                let speakers: Vec<&str> = p
                    .get("speakers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .filter(|v: &Vec<&str>| !v.is_empty())
                    .ok_or_else(|| {
                        RpcError::invalid_params("\"speakers\" must be a list of speaker names")
                    })?;
                let (id, mut answer) =
                    self.edit(|h, me| h.edit(me).create_group(name, &speakers))?;
                answer["group"] = json!(id.to_string());
                Ok(answer)
            }
            "group.delete" => {
                let g = text(p, "group")?;
                unit(self.edit(|h, me| h.edit(me).delete_group(g)))
            }
            "group.rename" => {
                let (g, name) = (text(p, "group")?, text(p, "name")?);
                unit(self.edit(|h, me| h.edit(me).rename_group(g, name)))
            }
            "group.add" => {
                let (g, s) = (text(p, "group")?, text(p, "speaker")?);
                unit(self.edit(|h, me| {
                    let id = h.resolve_speaker(s)?;
                    let to = h.resolve_group(g)?;
                    match h.group_of(id) {
                        Some(from) if from != to => h.edit(me).move_speaker(s, g),
                        _ => h.edit(me).add_member(g, s),
                    }
                }))
            }
            "group.remove" => {
                let (g, s) = (text(p, "group")?, text(p, "speaker")?);
                unit(self.edit(|h, me| h.edit(me).remove_member(g, s)))
            }
            "group.play" => self.play(p),
            "group.pause" => self.pause(p, true),
            "group.resume" => self.pause(p, false),
            "group.stop" => self.stop(p),
            "group.push" => self.push(p),
            "group.volume" => {
                let (g, v) = (text(p, "group")?, number(p, "volume")?);
                unit(self.edit(|h, me| h.edit(me).set_group_volume(g, v as f32)))
            }
            "speaker.volume" => {
                let (s, v) = (text(p, "speaker")?, number(p, "volume")?);
                unit(self.edit(|h, me| h.edit(me).set_volume(s, v as f32)))
            }
            "speaker.mute" => {
                let s = text(p, "speaker")?;
                let muted = match p.get("muted") {
                    None => true,
                    Some(v) => v.as_bool().ok_or_else(|| {
                        RpcError::invalid_params("\"muted\" must be true or false")
                    })?,
                };
                unit(self.edit(|h, me| h.edit(me).set_mute(s, muted)))
            }
            "speaker.trim" => {
                let (s, ms) = (text(p, "speaker")?, number(p, "trim_ms")?);
                if ms.abs() > 1e6 {
                    return Err(RpcError::invalid_params("\"trim_ms\" is out of range"));
                }
                let trim = Nanos::from_nanos((ms * 1e6).round() as i64);
                unit(self.edit(|h, me| h.edit(me).set_trim(s, trim)))
            }
            "speaker.rename" => {
                let (s, name) = (text(p, "speaker")?, text(p, "name")?);
                unit(self.edit(|h, me| h.edit(me).rename_speaker(s, name)))
            }
            "pair.create" => {
                let (l, r) = (text(p, "left")?, text(p, "right")?);
                unit(self.edit(|h, me| h.edit(me).create_pair(l, r)))
            }
            "pair.delete" => {
                let s = text(p, "speaker")?;
                unit(self.edit(|h, me| h.edit(me).delete_pair(s)))
            }
            "sub.set" => {
                let (host, sub) = (text(p, "host")?, text(p, "sub")?);
                unit(self.edit(|h, me| h.edit(me).set_sub(host, sub)))
            }
            "sub.clear" => {
                let host = text(p, "host")?;
                unit(self.edit(|h, me| h.edit(me).clear_sub(host)))
            }
            "peer.sync" => self.sync(p),
            "peer.lead" => {
                let (g, source) = (text(p, "group")?, text(p, "source")?);
                if let Some(h) = p.get("household").and_then(Value::as_str) {
                    let h = Household::from_json(h).map_err(household_error)?;
                    self.inner.merge(&h);
                }
                let gid = lock(&self.inner.model)
                    .state
                    .household()
                    .resolve_group(g)
                    .map_err(household_error)?;
                self.lead(gid, source)
            }
            other => Err(RpcError::method_not_found(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding_and_refuses_the_rest() {
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("TQ==").as_deref(), Some(&b"M"[..]));
        assert_eq!(base64_decode("TWE").as_deref(), Some(&b"Ma"[..]));
        assert_eq!(base64_decode("TWFu").as_deref(), Some(&b"Man"[..]));
        assert_eq!(
            base64_decode("bG9ja3N0ZXA/Pz8+Pj4=").as_deref(),
            Some(&b"lockstep???>>>"[..])
        );
        assert_eq!(base64_decode("T"), None, "one character carries no byte");
        assert_eq!(base64_decode("TQ==="), None);
        assert_eq!(base64_decode("TW-u"), None);
    }

    #[test]
    fn each_session_records_to_its_own_file() {
        let p = Path::new("/tmp/rec/den.wav");
        assert_eq!(session_path(p, 1), p);
        assert_eq!(session_path(p, 3), Path::new("/tmp/rec/den-3.wav"));
        assert_eq!(
            session_path(Path::new("out"), 2),
            Path::new("out-2"),
            "no extension"
        );
    }
}
