//! The leader's side of the clock exchange: a sans-IO PTP master.
//!
//! Each follower gets a tapering burst of Syncs when it is added, then the steady rate. The
//! bursts in progress share a budget ([`MasterConfig::burst_budget`]), so that many followers
//! joining at once do not multiply the master's cost.
//! A follower that needs to re-converge (its estimator saw the path or the leader's clock
//! change) can ask for another burst with a Signaling carrying REQUEST_UNICAST_TRANSMISSION
//! for Sync. The master then sends that follower Syncs at the requested period, but no
//! faster than [`MasterConfig::burst_interval`] and no slower than the steady
//! [`MasterConfig::sync_interval`], for the requested duration (cut to
//! [`MasterConfig::reburst_spacing`]), and goes back to its schedule. Only the first
//! [`MasterConfig::reburst_max_duration`] of it runs at that period; a longer request tapers
//! off after it, the rate halving at each such stage, as the start burst does. It answers
//! with a GRANT_UNICAST_TRANSMISSION saying the period and duration granted. A follower gets
//! one re-burst per [`MasterConfig::reburst_spacing`] on average, two at most inside one: a
//! request beyond that is answered with a grant of duration 0, the standard's refusal, so
//! that a misbehaving slave cannot keep the master at its fastest rate. Requests from
//! addresses the master does not serve are not answered. All of it is counted in [`PtpStats`]; a follower's state is two more
//! fields, so memory stays fixed.
//!
//! The schedule runs in the leader's own clock. If that clock is set back, a deadline further
//! ahead than its interval is restarted from now, so the master does not fall silent for as
//! long as the step. A driver must still wake it at least once a Sync interval, since a
//! deadline computed before the step lies that much further in its clock.

use std::collections::VecDeque;

use super::auth::{PtpKeys, ReplayGuard};
use super::wire::{
    AnnounceBody, Body, ClockIdentity, ClockQuality, Header, Message, MessageType, PortIdentity,
    PtpTimestamp, SignalingBody, SignalingTlv, UnicastGrant, UnicastRequest,
};
use super::{PtpError, PtpStats, Transmit, TxTag};
use crate::time::{LeaderInstant, Nanos};

/// How the master paces its messages. The defaults keep steady traffic at 16 exchanges a
/// second per follower after a starting burst that tapers off: 1024 Syncs at 384 a second,
/// then 1024 at 192, 96, 48 and 24 (83 s in all). The first seconds decide how soon a
/// follower is within a few microseconds on a noisy path; a Sync exchange is four packets of
/// under 100 bytes, so even the fastest stage is well under 1 Mbit/s.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct MasterConfig {
    /// This master's port identity (its clockIdentity names the leader).
    pub port: PortIdentity,
    /// PTP domain number (0 by default).
    pub domain: u8,
    /// Interval between Syncs once a follower's burst is over.
    pub sync_interval: Nanos,
    /// Interval between Syncs at the start of a follower's burst.
    pub burst_interval: Nanos,
    /// Syncs sent at `burst_interval` when a follower is added; after each such run the
    /// interval doubles until it reaches `sync_interval`. A gradual taper keeps the estimator
    /// fed while its rate estimate is still young. Zero disables the burst.
    pub burst_count: u32,
    /// Interval between Announce messages to each follower.
    pub announce_interval: Nanos,
    /// When true, a Sync's Follow_Up waits for [`PtpMaster::handle_transmitted`] to report
    /// the Sync's real transmit time (a kernel timestamp); when false the time
    /// [`PtpMaster::poll_transmit`] handed the Sync out is used.
    pub tx_timestamps: bool,
    /// How long to wait for a transmit timestamp before falling back to the poll time.
    pub tx_timestamp_timeout: Nanos,
    /// Priority1 announced (lower wins a best-master choice).
    pub priority1: u8,
    /// Priority2 announced.
    pub priority2: u8,
    /// Most messages waiting to be polled; beyond it new ones are dropped and counted.
    pub max_queue: usize,
    /// Longest run at the requested (fast) rate granted on a follower's request (2 s by
    /// default). A request for longer is granted up to `reburst_spacing`, tapering off after
    /// this as the start burst does: the rate halves every `reburst_max_duration` until the
    /// steady rate or the request's end. Zero refuses every request.
    pub reburst_max_duration: Nanos,
    /// Most Syncs a second the master sends faster than the steady rate, all followers
    /// together (3072 by default: eight followers at the full burst rate at once). When the
    /// start bursts and re-bursts in progress would send more, every bursting follower's
    /// rate is scaled down by the same factor, never below the steady rate, and its burst
    /// lasts longer in time: a start burst counts Syncs, so a follower gets all of them. This
    /// bounds the master's own cost when many followers join at once (a burst Sync is two
    /// datagrams out, a transmit timestamp and usually a Delay_Req in and its answer).
    /// Zero means no bound.
    pub burst_budget: u32,
    /// A follower's allowance of re-bursts (10 s by default): one per spacing on average,
    /// and never more than two in any one spacing. A request beyond it is refused, which
    /// bounds a follower's share of the fast rate to `reburst_max_duration /
    /// reburst_spacing` over time (a tapering one adds at most as many Syncs again). The
    /// second in hand is for a change: a follower whose estimate asks for bursts while it is
    /// short of samples (see [`crate::clock::EnvelopeConfig::burst_above`]) still gets one at
    /// once when the path or the leader's clock changes just after, and a request of its
    /// steady cadence that arrives a hair early is not refused.
    pub reburst_spacing: Nanos,
    /// Authenticate the clock (`None` by default). When set, every message the master
    /// sends carries an AUTHENTICATION TLV made with the `send` key, and every message it
    /// receives without a valid one under the `receive` key, or with a sequence id it has
    /// seen pass already, is dropped and counted in [`PtpStats::auth`]. See the
    /// [`auth`](super::auth) module. A follower added with keys of its own
    /// ([`PtpMaster::add_slave_with_keys`]) uses those instead.
    pub auth: Option<PtpKeys>,
}

impl MasterConfig {
    /// Defaults for a master with clock identity `clock`.
    pub fn new(clock: ClockIdentity) -> Self {
        MasterConfig {
            port: PortIdentity {
                clock_identity: clock,
                port_number: 1,
            },
            domain: 0,
            sync_interval: Nanos::from_micros(62_500),
            burst_interval: Nanos(1_000_000_000 / 384),
            burst_count: 1024,
            announce_interval: Nanos::from_secs(1),
            tx_timestamps: false,
            tx_timestamp_timeout: Nanos::from_millis(20),
            priority1: 128,
            priority2: 128,
            max_queue: 256,
            reburst_max_duration: Nanos::from_secs(2),
            reburst_spacing: Nanos::from_secs(10),
            burst_budget: 3072,
            auth: None,
        }
    }
}

/// log2 of an interval in seconds, as PTP's logMessageInterval carries it.
pub(crate) fn log_interval(interval: Nanos) -> i8 {
    let s = interval.as_secs_f64();
    if s <= 0.0 {
        return 0x7F;
    }
    s.log2().round().clamp(-128.0, 127.0) as i8
}

/// The interval a logInterMessagePeriod stands for: 2^`log` seconds, saturating.
fn interval_of_log(log: i8) -> Nanos {
    // Casting f64 to i64 saturates, so 2^127 s becomes Nanos::MAX rather than wrapping.
    Nanos((2f64.powi(i32::from(log)) * 1e9) as i64)
}

/// A re-burst in progress: `interval` for a `stage`, then twice it for another, and so on,
/// until `until` or the steady interval, whichever comes first.
#[derive(Clone, Copy, Debug)]
struct Reburst {
    interval: Nanos,
    started: LeaderInstant,
    stage: Nanos,
    until: LeaderInstant,
}

impl Reburst {
    /// The interval at `now`, or `None` once the re-burst is over.
    fn interval_at(&self, now: LeaderInstant, steady: Nanos) -> Option<Nanos> {
        if now >= self.until {
            return None;
        }
        let stages = (now - self.started).as_nanos().max(0) / self.stage.as_nanos().max(1);
        let interval = doubled(self.interval, stages);
        (interval < steady).then_some(interval)
    }
}

/// `interval` doubled `times` times (saturating): a taper's interval at its `times`-th stage.
fn doubled(interval: Nanos, times: i64) -> Nanos {
    Nanos(
        interval
            .as_nanos()
            .saturating_mul(1i64 << times.clamp(0, 32)),
    )
}

#[derive(Clone, Copy, Debug)]
struct Follower<A> {
    to: A,
    next_sync: LeaderInstant,
    next_announce: LeaderInstant,
    /// Syncs sent on the start schedule (re-burst Syncs do not advance its taper).
    syncs_sent: u32,
    sync_seq: u16,
    announce_seq: u16,
    reburst: Option<Reburst>,
    /// When the follower's re-burst allowance is whole again: one spacing later per grant,
    /// from the grant or from the last such time, whichever is later. A request is granted
    /// while that lies at most one spacing ahead.
    reburst_clear: Option<LeaderInstant>,
}

/// A follower's own keys, and the sequence ids accepted under them.
#[derive(Clone, Debug)]
struct FollowerKeys<A> {
    to: A,
    keys: PtpKeys,
    replay: ReplayGuard,
}

/// (message type) entries a follower's own replay check remembers: Delay_Req and
/// Signaling, from each port identity it has used under its keys.
const FOLLOWER_REPLAY: usize = 8;

#[derive(Clone, Copy, Debug)]
struct AwaitingTimestamp<A> {
    to: A,
    sequence_id: u16,
    /// The serial its [`TxTag`] carries: what a stamp is matched by.
    serial: u32,
    sent: LeaderInstant,
}

/// A PTP master (IEEE 1588 two-step, unicast to each follower), sans-IO.
///
/// It never reads a clock or touches a socket: every input carries the leader-clock time it
/// happened, every output is a datagram to send or a deadline.
///
/// Call order:
/// 1. [`add_slave`](Self::add_slave) for each follower (a unicast address, or a multicast
///    group if you want one schedule for many);
/// 2. feed received datagrams to [`handle_receive`](Self::handle_receive) and, when the
///    deadline from [`poll_timeout`](Self::poll_timeout) passes, call
///    [`handle_timeout`](Self::handle_timeout);
/// 3. after each of those, call [`poll_transmit`](Self::poll_transmit) until it returns
///    `None` and send what it gives;
/// 4. with `tx_timestamps`, report each tagged datagram's transmit time through
///    [`handle_transmitted`](Self::handle_transmitted).
///
/// A follower's request for a re-burst arrives through `handle_receive` like a Delay_Req
/// (see the `ptp::master` module docs for what is granted); its grant comes out of
/// `poll_transmit`, and the faster Syncs out of the usual `handle_timeout`/`poll_transmit`.
#[derive(Debug)]
pub struct PtpMaster<A> {
    config: MasterConfig,
    followers: Vec<Follower<A>>,
    /// Followers added with keys of their own.
    keys: Vec<FollowerKeys<A>>,
    queue: VecDeque<(A, Message)>,
    awaiting: VecDeque<AwaitingTimestamp<A>>,
    /// The serial of the next tagged datagram ([`TxTag::serial`]).
    tx_serial: u32,
    /// sequenceId of the next Signaling (one sequence for all, per the port).
    signaling_seq: u16,
    /// With [`MasterConfig::auth`]: the last sequence id accepted per source and type.
    replay: ReplayGuard,
    stats: PtpStats,
}

/// (source, message type) pairs the master's replay check remembers: Delay_Req and
/// Signaling from up to 128 followers. Beyond it the least recent is forgotten.
const REPLAY_SOURCES: usize = 256;

impl<A: Copy + Eq> PtpMaster<A> {
    /// A master with `config` and no followers yet.
    pub fn new(config: MasterConfig) -> Self {
        PtpMaster {
            config,
            followers: Vec::new(),
            keys: Vec::new(),
            queue: VecDeque::with_capacity(config.max_queue),
            awaiting: VecDeque::with_capacity(16),
            tx_serial: 0,
            signaling_seq: 0,
            replay: ReplayGuard::new(if config.auth.is_some() {
                REPLAY_SOURCES
            } else {
                1
            }),
            stats: PtpStats::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &MasterConfig {
        &self.config
    }

    /// What the master has sent, received and rejected.
    pub fn stats(&self) -> &PtpStats {
        &self.stats
    }

    /// Starts serving `to`: an Announce and a burst of Syncs at once, then the steady rate.
    /// Adding an address already served restarts its burst. Messages to and from it are
    /// signed and checked with [`MasterConfig::auth`], if set.
    pub fn add_slave(&mut self, to: A, now: LeaderInstant) {
        self.add_slave_with_keys(to, now, None);
    }

    /// As [`add_slave`](Self::add_slave), with keys of this follower's own (`None`: the
    /// config's): what the master sends it is signed with `keys.send`, and what comes from
    /// `to` must carry a valid tag under `keys.receive` and a sequence id not accepted
    /// before under them. Adding it again with new keys forgets the old keys' sequences.
    pub fn add_slave_with_keys(&mut self, to: A, now: LeaderInstant, keys: Option<PtpKeys>) {
        self.followers.retain(|f| f.to != to);
        self.followers.push(Follower {
            to,
            next_sync: now,
            next_announce: now,
            syncs_sent: 0,
            sync_seq: 0,
            announce_seq: 0,
            reburst: None,
            reburst_clear: None,
        });
        self.keys.retain(|k| k.to != to);
        if let Some(keys) = keys {
            self.keys.push(FollowerKeys {
                to,
                keys,
                replay: ReplayGuard::new(FOLLOWER_REPLAY),
            });
        }
    }

    /// Stops serving `to`.
    pub fn remove_slave(&mut self, to: A) {
        self.followers.retain(|f| f.to != to);
        self.keys.retain(|k| k.to != to);
        self.queue.retain(|(dest, _)| *dest != to);
        self.awaiting.retain(|w| w.to != to);
    }

    /// How many followers are served.
    pub fn slave_count(&self) -> usize {
        self.followers.len()
    }

    /// The interval after the `sent`-th Sync to a follower: the burst, tapering to steady.
    fn interval_after(&self, sent: u32) -> Nanos {
        let steady = self.config.sync_interval;
        if self.config.burst_count == 0 {
            return steady;
        }
        doubled(
            self.config.burst_interval,
            i64::from(sent / self.config.burst_count),
        )
        .min(steady)
    }

    /// The interval follower `f` asks for at `now`, before the burst budget: its start
    /// schedule, or its re-burst's when that is faster (then `Some` of it).
    fn wanted_interval(&self, f: &Follower<A>, now: LeaderInstant) -> (Nanos, Option<Nanos>) {
        let scheduled = self.interval_after(f.syncs_sent);
        let reburst = f
            .reburst
            .and_then(|r| r.interval_at(now, self.config.sync_interval))
            .filter(|&i| i < scheduled);
        (reburst.unwrap_or(scheduled), reburst)
    }

    /// How much slower than they ask the bursting followers are served at `now`: the
    /// followers' burst rates summed, over [`MasterConfig::burst_budget`], or 1 within it.
    fn budget_scale(&self, now: LeaderInstant) -> f64 {
        if self.config.burst_budget == 0 {
            return 1.0;
        }
        let steady = self.config.sync_interval;
        let demand: f64 = self
            .followers
            .iter()
            .map(|f| self.wanted_interval(f, now).0)
            .filter(|&wanted| wanted < steady)
            .map(|wanted| 1e9 / wanted.as_nanos().max(1) as f64)
            .sum();
        (demand / f64::from(self.config.burst_budget)).max(1.0)
    }

    /// A bursting follower's interval `wanted` stretched by `scale`, never slower than the
    /// steady interval.
    fn shared_interval(&self, wanted: Nanos, scale: f64) -> Nanos {
        let stretched = (wanted.as_nanos() as f64 * scale).min(i64::MAX as f64) as i64;
        Nanos(stretched).min(self.config.sync_interval)
    }

    fn header(&self, sequence_id: u16, interval: Nanos) -> Header {
        let mut h = Header::new(self.config.port, self.config.domain, sequence_id);
        h.log_message_interval = log_interval(interval);
        h
    }

    fn enqueue(&mut self, to: A, msg: Message) {
        if self.queue.len() >= self.config.max_queue {
            self.stats.dropped_queue_full += 1;
            return;
        }
        self.queue.push_back((to, msg));
    }

    /// Takes a datagram that arrived at `at` from `from`. Delay_Reqs are answered, and so
    /// are Signaling requests from served followers (a request for Sync may start a
    /// re-burst); anything else is ignored. The error says why a datagram was not used (it
    /// is also counted).
    pub fn handle_receive(
        &mut self,
        from: A,
        at: LeaderInstant,
        data: &[u8],
    ) -> Result<(), PtpError> {
        self.stats.received += 1;
        let r = self.receive(from, at, data);
        r.map_err(|e| self.stats.reject(e))
    }

    fn receive(&mut self, from: A, at: LeaderInstant, data: &[u8]) -> Result<(), PtpError> {
        let msg = Message::parse(data)?;
        let h = &msg.header;
        let kind = msg.body.message_type();
        // The tag first, so that only key holders reach the replay tables.
        if let Some(own) = self.keys.iter_mut().find(|k| k.to == from) {
            own.keys.receive.verify(data)?;
            own.replay.check(h.source_port, kind, h.sequence_id)?;
        } else if let Some(keys) = &self.config.auth {
            keys.receive.verify(data)?;
            self.replay.check(h.source_port, kind, h.sequence_id)?;
        }
        if msg.header.domain != self.config.domain {
            return Err(PtpError::WrongDomain {
                expected: self.config.domain,
                got: msg.header.domain,
            });
        }
        match msg.body {
            Body::DelayReq { .. } => self.answer_delay_req(from, at, &msg.header),
            Body::Signaling(signaling) => self.answer_signaling(from, at, &msg.header, &signaling),
            other => Err(PtpError::Unexpected {
                message_type: other.message_type(),
            }),
        }
    }

    fn answer_delay_req(
        &mut self,
        from: A,
        at: LeaderInstant,
        req: &Header,
    ) -> Result<(), PtpError> {
        let receive_timestamp = PtpTimestamp::from_instant(at)?;
        let mut header = self.header(req.sequence_id, self.config.sync_interval);
        // The Delay_Req's path correction travels back in the Delay_Resp (IEEE 1588 §11.3).
        header.correction = req.correction;
        let resp = Message::delay_resp(header, receive_timestamp, req.source_port);
        self.enqueue(from, resp);
        // On the master's side an exchange is complete once its Delay_Req is answered.
        self.stats.exchanges += 1;
        Ok(())
    }

    /// Answers each REQUEST_UNICAST_TRANSMISSION in `signaling` with a grant, in one
    /// Signaling back to `from`.
    fn answer_signaling(
        &mut self,
        from: A,
        at: LeaderInstant,
        req: &Header,
        signaling: &SignalingBody,
    ) -> Result<(), PtpError> {
        if !signaling.target_port.addresses(self.config.port) {
            return Err(PtpError::WrongTarget {
                target: signaling.target_port,
            });
        }
        let Some(i) = self.followers.iter().position(|f| f.to == from) else {
            return Err(PtpError::NotServed {
                from: req.source_port,
            });
        };
        let mut reply = SignalingBody::new(req.source_port);
        for tlv in signaling.tlvs() {
            if let SignalingTlv::Request(r) = tlv {
                let grant = self.grant(i, at, *r);
                // The reply has one grant per request, and the request fitted the same
                // number of TLVs, so this cannot fail.
                let _ = reply.push(SignalingTlv::Grant(grant));
            }
        }
        if reply.tlvs().is_empty() {
            // Grants or other TLVs only: nothing a master answers.
            return Err(PtpError::Unexpected {
                message_type: MessageType::Signaling,
            });
        }
        let header = Header::new(self.config.port, self.config.domain, self.signaling_seq);
        self.signaling_seq = self.signaling_seq.wrapping_add(1);
        self.enqueue(from, Message::signaling(header, reply));
        Ok(())
    }

    /// Decides the request `r` from follower `i` at `now`: starts a re-burst and says what
    /// it is, or refuses with a grant of duration 0.
    fn grant(&mut self, i: usize, now: LeaderInstant, r: UnicastRequest) -> UnicastGrant {
        let refused = UnicastGrant {
            message_type: r.message_type,
            log_inter_message_period: r.log_inter_message_period,
            duration_secs: 0,
            renewal_invited: false,
        };
        // Announce and Delay_Resp already go to every follower on the master's own
        // schedule; only the Sync rate is negotiable.
        if r.message_type != MessageType::Sync.code() {
            self.stats.bursts_refused += 1;
            return refused;
        }
        self.stats.burst_requests += 1;
        let spacing = self.config.reburst_spacing;
        // At the fast rate for `reburst_max_duration` at most; a longer request tapers off
        // after that, as the start burst does, within the spacing.
        let duration = Nanos::from_secs(i64::from(r.duration_secs)).min(spacing);
        let stage = duration.min(self.config.reburst_max_duration);
        let f = &mut self.followers[i];
        let too_soon = f.reburst_clear.is_some_and(|t| t - now > spacing);
        if too_soon || stage <= Nanos::ZERO {
            self.stats.bursts_refused += 1;
            return refused;
        }
        // Never faster than the burst rate the master is configured for, and never slower
        // than the steady rate: a request cannot thin a follower's Syncs out.
        let interval = interval_of_log(r.log_inter_message_period)
            .max(self.config.burst_interval)
            .min(self.config.sync_interval);
        f.reburst = Some(Reburst {
            interval,
            started: now,
            stage,
            until: now + duration,
        });
        f.reburst_clear = Some(f.reburst_clear.map_or(now, |t| t.max(now)) + spacing);
        // The first fast Sync goes now rather than at the next steady deadline.
        f.next_sync = f.next_sync.min(now);
        self.stats.bursts_granted += 1;
        // durationField counts whole seconds; rounding up keeps a short grant from reading
        // as a refusal (0).
        let secs = duration.as_nanos().unsigned_abs().div_ceil(1_000_000_000);
        UnicastGrant {
            message_type: r.message_type,
            log_inter_message_period: log_interval(interval),
            duration_secs: u32::try_from(secs).unwrap_or(u32::MAX),
            renewal_invited: false,
        }
    }

    /// Reports that the datagram tagged `tag` left at `at` (used when `tx_timestamps` is set).
    pub fn handle_transmitted(&mut self, tag: TxTag, at: LeaderInstant) {
        if tag.message_type != MessageType::Sync {
            return;
        }
        if let Some(i) = self
            .awaiting
            .iter()
            .position(|w| w.serial == tag.serial && w.sequence_id == tag.sequence_id)
            && let Some(w) = self.awaiting.remove(i)
        {
            self.follow_up(w.to, w.sequence_id, at);
        }
    }

    fn follow_up(&mut self, to: A, sequence_id: u16, sent: LeaderInstant) {
        let Ok(ts) = PtpTimestamp::from_instant(sent) else {
            return;
        };
        let header = self.header(sequence_id, self.config.sync_interval);
        self.enqueue(to, Message::follow_up(header, ts));
    }

    /// Queues whatever is due at `now`: Syncs, Announces, overdue Follow_Ups.
    pub fn handle_timeout(&mut self, now: LeaderInstant) {
        while self
            .awaiting
            .front()
            .is_some_and(|w| now - w.sent >= self.config.tx_timestamp_timeout)
        {
            if let Some(w) = self.awaiting.pop_front() {
                self.follow_up(w.to, w.sequence_id, w.sent);
            }
        }
        let budget_scale = self.budget_scale(now);
        for i in 0..self.followers.len() {
            // A schedule further ahead than its interval means this clock was set back: start
            // it again from now rather than fall silent for as long as the step.
            let f = &mut self.followers[i];
            if f.next_announce - now > self.config.announce_interval {
                f.next_announce = now;
            }
            if f.next_sync - now > self.config.sync_interval {
                f.next_sync = now;
            }
            let f = self.followers[i];
            if f.next_announce <= now {
                let header = self.header(f.announce_seq, self.config.announce_interval);
                let body = AnnounceBody {
                    origin_timestamp: PtpTimestamp::from_instant(now).unwrap_or_default(),
                    current_utc_offset: 37,
                    grandmaster_priority1: self.config.priority1,
                    grandmaster_clock_quality: ClockQuality {
                        clock_class: 248,
                        clock_accuracy: 0xFE,
                        offset_scaled_log_variance: 0xFFFF,
                    },
                    grandmaster_priority2: self.config.priority2,
                    grandmaster_identity: self.config.port.clock_identity,
                    steps_removed: 0,
                    time_source: 0xA0,
                };
                self.enqueue(f.to, Message::announce(header, body));
                let f = &mut self.followers[i];
                f.announce_seq = f.announce_seq.wrapping_add(1);
                f.next_announce = advance(f.next_announce, now, self.config.announce_interval);
            }
            let f = self.followers[i];
            if f.next_sync <= now {
                let (wanted, reburst) = self.wanted_interval(&f, now);
                let interval = if wanted < self.config.sync_interval {
                    self.shared_interval(wanted, budget_scale)
                } else {
                    wanted
                };
                let header = self.header(f.sync_seq, interval);
                let origin = PtpTimestamp::from_instant(now).unwrap_or_default();
                self.enqueue(f.to, Message::sync(header, origin, true));
                let f = &mut self.followers[i];
                f.sync_seq = f.sync_seq.wrapping_add(1);
                // The start taper pauses during a re-burst, so that a request early on does
                // not cut it short.
                if reburst.is_none() {
                    f.syncs_sent = f.syncs_sent.saturating_add(1);
                }
                if f.reburst
                    .is_some_and(|r| r.interval_at(now, self.config.sync_interval).is_none())
                {
                    f.reburst = None;
                }
                f.next_sync = advance(f.next_sync, now, interval);
                // Over budget, the stretched bursts run on one grid of their interval, so
                // that followers that joined together get their Syncs in one wake-up of the
                // driver rather than each in its own.
                if budget_scale > 1.0 && interval < self.config.sync_interval {
                    f.next_sync = on_grid(f.next_sync, interval);
                }
            }
        }
    }

    /// The next datagram to send, stamped as leaving at `now`. Call until `None`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: LeaderInstant) -> Option<Transmit<A>> {
        let (to, mut msg) = self.queue.pop_front()?;
        let kind = msg.body.message_type();
        if let super::wire::Body::Sync { origin_timestamp } = &mut msg.body {
            *origin_timestamp = PtpTimestamp::from_instant(now).unwrap_or_default();
        }
        let keys = self
            .keys
            .iter()
            .find(|k| k.to == to)
            .map(|k| k.keys)
            .or(self.config.auth);
        let mut transmit = Transmit::new(to, &msg, keys.as_ref().map(|k| &k.send));
        let serial = self.tx_serial;
        if let Some(tag) = &mut transmit.tag {
            tag.serial = serial;
            self.tx_serial = serial.wrapping_add(1);
        }
        self.stats.sent += 1;
        if kind == MessageType::Sync {
            if self.config.tx_timestamps {
                if self.awaiting.len() >= self.config.max_queue {
                    self.awaiting.pop_front();
                }
                self.awaiting.push_back(AwaitingTimestamp {
                    to,
                    sequence_id: msg.header.sequence_id,
                    serial,
                    sent: now,
                });
            } else {
                self.follow_up(to, msg.header.sequence_id, now);
            }
        }
        Some(transmit)
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to do, or `None`
    /// with no followers. Datagrams already queued are not a deadline: poll them now.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<LeaderInstant> {
        let schedule = self
            .followers
            .iter()
            .map(|f| f.next_sync.min(f.next_announce))
            .min();
        let fallback = self
            .awaiting
            .front()
            .map(|w| w.sent + self.config.tx_timestamp_timeout);
        match (schedule, fallback) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// `t` moved later to the next whole multiple of `interval` on the leader's timescale.
fn on_grid(t: LeaderInstant, interval: Nanos) -> LeaderInstant {
    let step = interval.as_nanos().max(1);
    let late = t.as_nanos().rem_euclid(step);
    if late == 0 { t } else { t + Nanos(step - late) }
}

/// The next deadline after `due`, skipping any missed while the caller was late so that a
/// stalled driver does not cause a burst of catch-up messages.
fn advance(due: LeaderInstant, now: LeaderInstant, interval: Nanos) -> LeaderInstant {
    let next = due + interval;
    if next <= now { now + interval } else { next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ptp::PtpPort;

    const FOLLOWER: u8 = 1;
    const T0: i64 = 1_000_000_000_000;

    fn follower_port() -> PortIdentity {
        PortIdentity {
            clock_identity: ClockIdentity([2; 8]),
            port_number: 1,
        }
    }

    fn at(secs: f64) -> LeaderInstant {
        LeaderInstant::from_nanos(T0) + Nanos::from_secs_f64(secs)
    }

    /// A master with no start burst, serving [`FOLLOWER`] from `at(0.0)`.
    fn steady_master() -> PtpMaster<u8> {
        let mut config = MasterConfig::new(ClockIdentity([1; 8]));
        config.burst_count = 0;
        let mut master = PtpMaster::new(config);
        master.add_slave(FOLLOWER, at(0.0));
        master
    }

    fn signaling(target: PortIdentity, tlv: SignalingTlv) -> Vec<u8> {
        let body = SignalingBody::with_tlv(target, tlv);
        let msg = Message::signaling(Header::new(follower_port(), 0, 7), body);
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf).unwrap();
        buf
    }

    fn request(master: &PtpMaster<u8>, message_type: MessageType, log: i8, secs: u32) -> Vec<u8> {
        let r = UnicastRequest {
            message_type: message_type.code(),
            log_inter_message_period: log,
            duration_secs: secs,
        };
        signaling(master.config().port, SignalingTlv::Request(r))
    }

    /// Runs the master until `until`, returning when each Sync left and every grant sent.
    fn run(
        master: &mut PtpMaster<u8>,
        until: LeaderInstant,
    ) -> (Vec<LeaderInstant>, Vec<UnicastGrant>) {
        let (mut syncs, mut grants) = (Vec::new(), Vec::new());
        let mut drain = |master: &mut PtpMaster<u8>, now| {
            while let Some(tx) = master.poll_transmit(now) {
                match Message::parse(tx.payload()).unwrap().body {
                    Body::Sync { .. } => syncs.push(now),
                    Body::Signaling(s) => {
                        assert_eq!(tx.port, PtpPort::General);
                        assert_eq!(s.target_port, follower_port());
                        for tlv in s.tlvs() {
                            match tlv {
                                SignalingTlv::Grant(g) => grants.push(*g),
                                other => panic!("a master sent {other:?}"),
                            }
                        }
                    }
                    _ => {}
                }
            }
        };
        // Grants queued by handle_receive go out before the next deadline.
        let first = master.poll_timeout().unwrap_or(until).min(until);
        drain(master, first);
        while let Some(t) = master.poll_timeout().filter(|&t| t <= until) {
            master.handle_timeout(t);
            drain(master, t);
        }
        (syncs, grants)
    }

    fn intervals(syncs: &[LeaderInstant]) -> Vec<Nanos> {
        syncs.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Syncs each of `n` followers (1..=n), added in the first 54 ms to a default master, got
    /// in the first `secs` seconds.
    fn syncs_per_follower(n: u8, secs: f64) -> Vec<usize> {
        syncs_and_wakeups(n, secs).0
    }

    /// [`syncs_per_follower`], and how many distinct instants the Syncs left at (the
    /// driver's wake-ups for them).
    fn syncs_and_wakeups(n: u8, secs: f64) -> (Vec<usize>, usize) {
        let mut master = PtpMaster::new(MasterConfig::new(ClockIdentity([1; 8])));
        // They join within 54 ms of each other, as real ones do, each on its own phase.
        for to in 1..=n {
            master.add_slave(to, at(f64::from(to) * 0.0017));
        }
        let mut counts = vec![0; usize::from(n)];
        let (mut rounds, mut wakeups) = (0, 0);
        while let Some(t) = master.poll_timeout().filter(|&t| t < at(secs)) {
            rounds += 1;
            assert!(rounds < 1_000_000, "the master never got past {t:?}");
            master.handle_timeout(t);
            let mut any = false;
            while let Some(tx) = master.poll_transmit(t) {
                if let Body::Sync { .. } = Message::parse(tx.payload()).unwrap().body {
                    counts[usize::from(tx.to - 1)] += 1;
                    any = true;
                }
            }
            wakeups += usize::from(any);
        }
        (counts, wakeups)
    }

    #[test]
    fn over_budget_the_stretched_bursts_share_their_wakeups() {
        // 32 followers at a quarter of the burst rate each: 96 Syncs a second, all on one
        // grid, rather than 32 × 96 instants (6074 when each keeps its own phase).
        let (counts, wakeups) = syncs_and_wakeups(32, 2.0);
        let total: usize = counts.iter().sum();
        assert!(total > 5000, "{total} Syncs");
        // 192 grid instants in 2 s, and each follower's first Sync at its own join.
        assert!(
            wakeups <= 192 + 32 + 8,
            "{wakeups} distinct Sync instants in 2 s"
        );
    }

    #[test]
    fn followers_within_the_burst_budget_each_get_the_full_burst_rate() {
        // Four followers at 384 a second ask for 1536: within the default budget.
        let counts = syncs_per_follower(4, 2.0);
        for (i, &c) in counts.iter().enumerate() {
            assert!((764..=770).contains(&c), "follower {i}: {c} Syncs in 2 s");
        }
    }

    #[test]
    fn many_followers_joining_at_once_share_the_burst_budget_evenly() {
        let budget = MasterConfig::new(ClockIdentity([1; 8])).burst_budget as f64;
        let counts = syncs_per_follower(32, 2.0);
        let total: usize = counts.iter().sum();
        // 32 at 384 a second would be 24 576 in 2 s; the budget allows 6144.
        assert!(
            (total as f64) <= 2.0 * budget * 1.01 + 32.0,
            "{total} Syncs in 2 s against a budget of {budget}/s"
        );
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(
            *min as f64 >= 0.95 * *max as f64,
            "uneven shares: {min}..{max}"
        );
        // Each still gets far more than the steady 16 a second.
        assert!(*min >= 180, "a follower got only {min} Syncs in 2 s");
    }

    #[test]
    fn a_zero_budget_leaves_every_burst_at_full_rate() {
        let mut config = MasterConfig::new(ClockIdentity([1; 8]));
        config.burst_budget = 0;
        let mut master = PtpMaster::new(config);
        for to in 1..=32u8 {
            master.add_slave(to, at(0.0));
        }
        let mut syncs = 0;
        while let Some(t) = master.poll_timeout().filter(|&t| t < at(1.0)) {
            master.handle_timeout(t);
            while let Some(tx) = master.poll_transmit(t) {
                if let Body::Sync { .. } = Message::parse(tx.payload()).unwrap().body {
                    syncs += 1;
                }
            }
        }
        assert!(syncs >= 32 * 383, "{syncs} Syncs in 1 s");
    }

    #[test]
    fn a_request_for_syncs_runs_a_reburst_at_the_requested_period_then_goes_back_to_steady() {
        let mut master = steady_master();
        let (before, _) = run(&mut master, at(3.0));
        assert!(
            intervals(&before)
                .iter()
                .all(|&i| i == Nanos::from_millis(62) + Nanos::from_micros(500))
        );

        // 2^-6 s (64 a second) for one second: within the clamps, so granted as asked.
        let req = request(&master, MessageType::Sync, -6, 1);
        master.handle_receive(FOLLOWER, at(3.0), &req).unwrap();
        let (during, grants) = run(&mut master, at(4.0));
        assert_eq!(
            grants,
            [UnicastGrant {
                message_type: 0,
                log_inter_message_period: -6,
                duration_secs: 1,
                renewal_invited: false
            }]
        );
        // The first fast Sync goes at once, then one every 15.625 ms.
        assert_eq!(during[0], at(3.0));
        assert!(
            intervals(&during).iter().all(|&i| i == Nanos(15_625_000)),
            "{during:?}"
        );
        assert_eq!(during.len(), 65);

        let (after, grants) = run(&mut master, at(6.0));
        assert!(grants.is_empty());
        assert!(
            intervals(&after).iter().all(|&i| i == Nanos(62_500_000)),
            "{after:?}"
        );
        assert_eq!(after.len(), 32);
        let s = master.stats();
        assert_eq!(
            (s.burst_requests, s.bursts_granted, s.bursts_refused),
            (1, 1, 0)
        );
    }

    #[test]
    fn the_period_and_duration_granted_are_clamped_and_a_long_request_tapers_off() {
        let mut master = steady_master();
        // Far faster than the master's burst rate, for an hour: 384 a second for 2 s, then
        // 192, 96, 48 and 24 a second for 2 s each; 10 s (the spacing) granted.
        let req = request(&master, MessageType::Sync, -20, 3600);
        master.handle_receive(FOLLOWER, at(1.0), &req).unwrap();
        let (syncs, grants) = run(&mut master, at(11.5));
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].duration_secs, 10);
        assert_eq!(grants[0].log_inter_message_period, -9);
        let fast = master.config().burst_interval;
        let in_stage = |k: i32| {
            let from = at(1.0 + 2.0 * f64::from(k));
            let to = at(3.0 + 2.0 * f64::from(k));
            syncs.iter().filter(|&&t| t >= from && t < to).count()
        };
        for (k, expected) in [768usize, 384, 192, 96, 48].into_iter().enumerate() {
            let n = in_stage(k as i32);
            assert!(
                n.abs_diff(expected) <= 1,
                "stage {k}: {n} Syncs, not {expected}"
            );
        }
        assert!(intervals(&syncs[..700]).iter().all(|&i| i == fast));
        // Then the steady rate.
        let late = syncs.iter().filter(|&&t| t >= at(11.01)).count();
        assert!(late <= 8, "{late} Syncs in the last half second");

        // Slower than steady, past the spacing: the steady rate, never slower.
        let req = request(&master, MessageType::Sync, 3, 2);
        master.handle_receive(FOLLOWER, at(12.0), &req).unwrap();
        let (syncs, grants) = run(&mut master, at(14.0));
        assert_eq!(grants[0].log_inter_message_period, -4);
        assert_eq!(grants[0].duration_secs, 2);
        let later: Vec<_> = syncs.into_iter().filter(|&t| t >= at(12.0)).collect();
        assert!(
            intervals(&later)
                .iter()
                .all(|&i| i <= master.config().sync_interval)
        );
    }

    #[test]
    fn a_third_request_inside_the_spacing_is_refused_with_a_zero_grant() {
        let mut master = steady_master();
        let req = request(&master, MessageType::Sync, -9, 2);
        master.handle_receive(FOLLOWER, at(1.0), &req).unwrap();
        run(&mut master, at(4.0));
        // The second in hand: granted at once.
        master.handle_receive(FOLLOWER, at(4.0), &req).unwrap();
        let (syncs, grants) = run(&mut master, at(5.0));
        assert_eq!(grants[0].duration_secs, 2, "the second is granted");
        assert!(syncs.len() > 300, "{} Syncs", syncs.len());
        run(&mut master, at(6.0));
        master.handle_receive(FOLLOWER, at(6.0), &req).unwrap();
        let (syncs, grants) = run(&mut master, at(8.0));
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].duration_secs, 0, "refused");
        assert!(
            syncs.len() <= 33,
            "{} Syncs: the refusal started a burst",
            syncs.len()
        );
        let s = master.stats();
        assert_eq!(
            (s.burst_requests, s.bursts_granted, s.bursts_refused),
            (3, 2, 1)
        );

        // Ten seconds after the first, the follower may have another: its allowance is
        // whole at 21 s, a spacing after 11 s.
        master.handle_receive(FOLLOWER, at(11.0), &req).unwrap();
        let (syncs, grants) = run(&mut master, at(12.0));
        assert_eq!(grants[0].duration_secs, 2);
        assert!(syncs.len() > 300, "{} Syncs", syncs.len());
        assert_eq!(master.stats().bursts_granted, 3);
        // And none again until 21 s.
        master.handle_receive(FOLLOWER, at(20.0), &req).unwrap();
        let (_, grants) = run(&mut master, at(20.5));
        assert_eq!(grants[0].duration_secs, 0, "refused");
    }

    #[test]
    fn requests_from_strangers_or_for_other_ports_are_not_answered() {
        let mut master = steady_master();
        run(&mut master, at(1.0));
        let req = request(&master, MessageType::Sync, -9, 2);
        assert_eq!(
            master.handle_receive(9, at(1.0), &req),
            Err(PtpError::NotServed {
                from: follower_port()
            })
        );
        assert_eq!(master.stats().not_served, 1);

        let mut elsewhere = master.config().port;
        elsewhere.port_number = 2;
        let r = UnicastRequest {
            message_type: 0,
            log_inter_message_period: -9,
            duration_secs: 2,
        };
        let misdirected = signaling(elsewhere, SignalingTlv::Request(r));
        assert_eq!(
            master.handle_receive(FOLLOWER, at(1.0), &misdirected),
            Err(PtpError::WrongTarget { target: elsewhere })
        );
        assert_eq!(master.stats().not_for_us, 1);

        // A grant is nothing a master takes.
        let g = UnicastGrant {
            message_type: 0,
            log_inter_message_period: -9,
            duration_secs: 2,
            renewal_invited: false,
        };
        let grant = signaling(master.config().port, SignalingTlv::Grant(g));
        assert!(matches!(
            master.handle_receive(FOLLOWER, at(1.0), &grant),
            Err(PtpError::Unexpected {
                message_type: MessageType::Signaling
            })
        ));
        let (syncs, grants) = run(&mut master, at(2.0));
        assert!(grants.is_empty());
        assert_eq!(syncs.len(), 16, "no burst started");
        assert_eq!(master.stats().bursts_granted, 0);
    }

    #[test]
    fn requests_for_other_messages_or_for_no_time_are_refused_and_a_wildcard_target_is_ours() {
        let mut master = steady_master();
        run(&mut master, at(1.0));
        let announce = request(&master, MessageType::Announce, 0, 60);
        master.handle_receive(FOLLOWER, at(1.0), &announce).unwrap();
        let r = UnicastRequest {
            message_type: 0,
            log_inter_message_period: -9,
            duration_secs: 0,
        };
        let no_time = signaling(PortIdentity::WILDCARD, SignalingTlv::Request(r));
        master.handle_receive(FOLLOWER, at(1.0), &no_time).unwrap();
        let (syncs, grants) = run(&mut master, at(2.0));
        assert_eq!(grants.len(), 2);
        assert!(grants.iter().all(|g| g.duration_secs == 0));
        assert_eq!(grants[0].message_type, MessageType::Announce.code());
        assert_eq!(syncs.len(), 16);
        let s = master.stats();
        assert_eq!(
            (s.burst_requests, s.bursts_granted, s.bursts_refused),
            (1, 0, 2)
        );

        // A zero maximum turns re-bursts off.
        let mut config = *master.config();
        config.reburst_max_duration = Nanos::ZERO;
        let mut off = PtpMaster::new(config);
        off.add_slave(FOLLOWER, at(0.0));
        let req = request(&off, MessageType::Sync, -9, 2);
        off.handle_receive(FOLLOWER, at(1.0), &req).unwrap();
        let (_, grants) = run(&mut off, at(2.0));
        assert_eq!(grants[0].duration_secs, 0);
    }

    #[test]
    fn a_reburst_during_the_start_taper_pauses_it_and_never_slows_it() {
        let mut master = PtpMaster::new(MasterConfig::new(ClockIdentity([1; 8])));
        master.add_slave(FOLLOWER, at(0.0));
        // Early on the start burst is already at 384 a second; a request for 64 a second
        // must not slow it down.
        let req = request(&master, MessageType::Sync, -6, 1);
        master.handle_receive(FOLLOWER, at(0.5), &req).unwrap();
        let (syncs, _) = run(&mut master, at(2.0));
        let fast = master.config().burst_interval;
        assert!(intervals(&syncs).iter().all(|&i| i == fast));
    }

    #[test]
    fn log_periods_convert_to_intervals_without_overflow() {
        assert_eq!(interval_of_log(-4), Nanos(62_500_000));
        assert_eq!(interval_of_log(0), Nanos::from_secs(1));
        assert_eq!(interval_of_log(127), Nanos::MAX);
        assert_eq!(interval_of_log(-128), Nanos::ZERO);
        assert_eq!(log_interval(Nanos(1_000_000_000 / 384)), -9);
    }
}
