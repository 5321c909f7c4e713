//! The leader's side of the clock exchange: a sans-IO PTP master.

use std::collections::VecDeque;

use super::wire::{
    AnnounceBody, ClockIdentity, ClockQuality, Header, Message, MessageType, PortIdentity,
    PtpTimestamp,
};
use super::{PtpError, PtpStats, Transmit, TxTag};
use crate::time::{LeaderInstant, Nanos};

/// How the master paces its messages. The defaults keep steady traffic at 16 exchanges a
/// second per follower after a starting burst that tapers off: 1024 Syncs at 384 a second,
/// then 1024 at 192, 96, 48 and 24 (83 s in all). The first seconds decide how soon a
/// follower is within a few microseconds on a noisy path; a Sync exchange is four packets of
/// under 100 bytes, so even the fastest stage is well under 1 Mbit/s.
#[derive(Clone, Copy, Debug, PartialEq)]
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

#[derive(Clone, Copy, Debug)]
struct Follower<A> {
    to: A,
    next_sync: LeaderInstant,
    next_announce: LeaderInstant,
    syncs_sent: u32,
    sync_seq: u16,
    announce_seq: u16,
}

#[derive(Clone, Copy, Debug)]
struct AwaitingTimestamp<A> {
    to: A,
    sequence_id: u16,
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
#[derive(Debug)]
pub struct PtpMaster<A> {
    config: MasterConfig,
    followers: Vec<Follower<A>>,
    queue: VecDeque<(A, Message)>,
    awaiting: VecDeque<AwaitingTimestamp<A>>,
    stats: PtpStats,
}

impl<A: Copy + Eq> PtpMaster<A> {
    /// A master with `config` and no followers yet.
    pub fn new(config: MasterConfig) -> Self {
        PtpMaster {
            config,
            followers: Vec::new(),
            queue: VecDeque::with_capacity(config.max_queue),
            awaiting: VecDeque::with_capacity(16),
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
    /// Adding an address already served restarts its burst.
    pub fn add_slave(&mut self, to: A, now: LeaderInstant) {
        self.followers.retain(|f| f.to != to);
        self.followers.push(Follower {
            to,
            next_sync: now,
            next_announce: now,
            syncs_sent: 0,
            sync_seq: 0,
            announce_seq: 0,
        });
    }

    /// Stops serving `to`.
    pub fn remove_slave(&mut self, to: A) {
        self.followers.retain(|f| f.to != to);
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
        let doublings = (sent / self.config.burst_count).min(32);
        Nanos(
            self.config
                .burst_interval
                .as_nanos()
                .saturating_mul(1i64 << doublings),
        )
        .min(steady)
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

    /// Takes a datagram that arrived at `at` from `from`. Delay_Reqs are answered; anything
    /// else is ignored. The error says why a datagram was not used (it is also counted).
    pub fn handle_receive(
        &mut self,
        from: A,
        at: LeaderInstant,
        data: &[u8],
    ) -> Result<(), PtpError> {
        self.stats.received += 1;
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => return Err(self.stats.reject(PtpError::Malformed(e))),
        };
        if msg.header.domain != self.config.domain {
            let e = PtpError::WrongDomain {
                expected: self.config.domain,
                got: msg.header.domain,
            };
            return Err(self.stats.reject(e));
        }
        if msg.body.message_type() != MessageType::DelayReq {
            let e = PtpError::Unexpected {
                message_type: msg.body.message_type(),
            };
            return Err(self.stats.reject(e));
        }
        let receive_timestamp = match PtpTimestamp::from_instant(at) {
            Ok(t) => t,
            Err(e) => return Err(self.stats.reject(PtpError::Malformed(e))),
        };
        let mut header = self.header(msg.header.sequence_id, self.config.sync_interval);
        // The Delay_Req's path correction travels back in the Delay_Resp (IEEE 1588 §11.3).
        header.correction = msg.header.correction;
        let resp = Message::delay_resp(header, receive_timestamp, msg.header.source_port);
        self.enqueue(from, resp);
        // On the master's side an exchange is complete once its Delay_Req is answered.
        self.stats.exchanges += 1;
        Ok(())
    }

    /// Reports that the datagram tagged `tag` left at `at` (used when `tx_timestamps` is set).
    pub fn handle_transmitted(&mut self, tag: TxTag, at: LeaderInstant) {
        if tag.message_type != MessageType::Sync {
            return;
        }
        if let Some(i) = self
            .awaiting
            .iter()
            .position(|w| w.sequence_id == tag.sequence_id)
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
        for i in 0..self.followers.len() {
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
                let interval = self.interval_after(f.syncs_sent);
                let header = self.header(f.sync_seq, interval);
                let origin = PtpTimestamp::from_instant(now).unwrap_or_default();
                self.enqueue(f.to, Message::sync(header, origin, true));
                let f = &mut self.followers[i];
                f.sync_seq = f.sync_seq.wrapping_add(1);
                f.syncs_sent = f.syncs_sent.saturating_add(1);
                f.next_sync = advance(f.next_sync, now, interval);
            }
        }
    }

    /// The next datagram to send, stamped as leaving at `now`. Call until `None`.
    pub fn poll_transmit(&mut self, now: LeaderInstant) -> Option<Transmit<A>> {
        let (to, mut msg) = self.queue.pop_front()?;
        let kind = msg.body.message_type();
        if let super::wire::Body::Sync { origin_timestamp } = &mut msg.body {
            *origin_timestamp = PtpTimestamp::from_instant(now).unwrap_or_default();
        }
        let transmit = Transmit::new(to, &msg);
        self.stats.sent += 1;
        if kind == MessageType::Sync {
            if self.config.tx_timestamps {
                if self.awaiting.len() >= self.config.max_queue {
                    self.awaiting.pop_front();
                }
                self.awaiting.push_back(AwaitingTimestamp {
                    to,
                    sequence_id: msg.header.sequence_id,
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

/// The next deadline after `due`, skipping any missed while the caller was late so that a
/// stalled driver does not cause a burst of catch-up messages.
fn advance(due: LeaderInstant, now: LeaderInstant, interval: Nanos) -> LeaderInstant {
    let next = due + interval;
    if next <= now { now + interval } else { next }
}
