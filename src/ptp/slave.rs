//! The follower's side of the clock exchange: a sans-IO PTP slave.
//!
//! Besides answering Syncs, the slave can ask its master for a re-burst of faster Syncs
//! when its estimator wants to re-converge ([`ClockEstimator::poll_burst_request`]):
//! [`PtpSlave::request_burst`] queues a Signaling with a REQUEST_UNICAST_TRANSMISSION for
//! Sync (by default 384 a second for 2 s, see [`SlaveConfig::burst_period`]) that
//! [`PtpSlave::poll_transmit`] hands out to the general port of the followed master. The
//! master's GRANT_UNICAST_TRANSMISSION is taken and counted (granted or refused); nothing
//! waits for it, so a master that never answers, such as linuxptp without unicast
//! negotiation, changes nothing but the rate.
//!
//! [`ClockEstimator::poll_burst_request`]: crate::clock::ClockEstimator::poll_burst_request

use std::collections::VecDeque;

use super::auth::{PtpKeys, ReplayGuard};
use super::wire::{
    Body, Header, Message, MessageType, PortIdentity, PtpTimestamp, SignalingBody, SignalingTlv,
    UnicastRequest,
};
use super::{PtpError, PtpStats, Transmit, TxTag};
use crate::clock::Exchange;
use crate::time::{LeaderInstant, LocalInstant, Nanos};

/// Syncs awaiting their Follow_Up, and Delay_Reqs awaiting their Delay_Resp, kept at most.
/// Fixed so that a flood of Syncs cannot grow memory.
const PENDING: usize = 16;
/// (source, message type) pairs the replay check remembers: the followed master's four
/// types, and a master that took over.
const REPLAY_SOURCES: usize = 16;

/// How the slave behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct SlaveConfig {
    /// This slave's port identity (its requests are matched by it).
    pub port: PortIdentity,
    /// PTP domain number (0 by default).
    pub domain: u8,
    /// A Sync whose Follow_Up has not come within this is dropped.
    pub follow_up_timeout: Nanos,
    /// A Delay_Req not answered within this is dropped.
    pub delay_resp_timeout: Nanos,
    /// After this long without hearing the followed master, another may take over.
    pub master_timeout: Nanos,
    /// Least time between two Delay_Reqs: a cap on the exchange rate whatever the master's
    /// Sync rate. Zero answers every Sync.
    pub min_delay_req_interval: Nanos,
    /// Completed exchanges kept until polled; older ones are dropped first.
    pub max_exchanges: usize,
    /// The Sync interval [`PtpSlave::request_burst`] asks for: 1/384 s by default. The wire
    /// carries a power of two, so the request says the next one down (2^-9 s, 512 a
    /// second) and the master clamps it to its own fastest rate (384 a second by default).
    pub burst_period: Nanos,
    /// How long [`PtpSlave::request_burst`] asks for: 2 s by default, sent as whole seconds
    /// (rounded up).
    pub burst_duration: Nanos,
    /// How long the first [`PtpSlave::request_burst`] to a master asks for: 10 s by default.
    /// An estimator asks at its first exchange; if the master gave no start burst (or the
    /// slave started after it), a lockstep master answers a request this long with a burst
    /// that tapers off as its start burst does (see `ptp::master`), which a follower's first
    /// seconds need. If it did give one, the start burst is as fast, and nothing changes.
    pub first_burst_duration: Nanos,
    /// Authenticate the clock (`None` by default). When set, every message the slave sends
    /// carries an AUTHENTICATION TLV made with the `send` key, and every message it receives
    /// without a valid one under the `receive` key, or with a sequence id it has seen pass
    /// already, is dropped and counted in [`PtpStats::auth`]. See the [`auth`](super::auth)
    /// module.
    pub auth: Option<PtpKeys>,
}

impl SlaveConfig {
    /// Defaults for a slave with port identity `port`.
    pub fn new(port: PortIdentity) -> Self {
        SlaveConfig {
            port,
            domain: 0,
            follow_up_timeout: Nanos::from_millis(500),
            delay_resp_timeout: Nanos::from_secs(1),
            master_timeout: Nanos::from_secs(3),
            min_delay_req_interval: Nanos::ZERO,
            max_exchanges: 64,
            burst_period: Nanos(1_000_000_000 / 384),
            burst_duration: Nanos::from_secs(2),
            first_burst_duration: Nanos::from_secs(10),
            auth: None,
        }
    }
}

/// One Sync being assembled: its arrival and its Follow_Up may come in either order.
#[derive(Clone, Copy, Debug)]
struct PendingSync {
    sequence_id: u16,
    /// Local arrival time and correction of the Sync.
    sync: Option<(LocalInstant, Nanos)>,
    /// Precise origin time and correction from the Follow_Up (or a one-step Sync).
    origin: Option<(LeaderInstant, Nanos)>,
    created: LocalInstant,
}

/// A Delay_Req in flight, with the Sync half of its exchange.
#[derive(Clone, Copy, Debug)]
struct PendingDelay {
    sequence_id: u16,
    sync_sequence: u16,
    t1: LeaderInstant,
    t2: LocalInstant,
    sync_correction: Nanos,
    t3: LocalInstant,
    sent: bool,
}

#[derive(Clone, Copy, Debug)]
struct Master<A> {
    port: PortIdentity,
    addr: A,
    last_heard: LocalInstant,
    /// Whether [`PtpSlave::request_burst`] has asked this master yet.
    asked: bool,
}

/// A PTP slave, sans-IO: turns a master's Syncs into Delay_Reqs and completed
/// [`Exchange`]s.
///
/// Call order:
/// 1. feed every datagram received on the PTP ports to
///    [`handle_receive`](Self::handle_receive) with its local arrival time (a kernel receive
///    timestamp if the driver has one);
/// 2. call [`poll_transmit`](Self::poll_transmit) until `None` and send what it gives; with
///    kernel transmit timestamps, report each tagged Delay_Req's real departure through
///    [`handle_transmitted`](Self::handle_transmitted) before its answer can arrive;
/// 3. call [`poll_exchange`](Self::poll_exchange) until `None` and give each exchange to a
///    [`ClockEstimator`](crate::clock::ClockEstimator);
/// 4. when the deadline from [`poll_timeout`](Self::poll_timeout) passes, call
///    [`handle_timeout`](Self::handle_timeout) (it drops stale half-exchanges);
/// 5. when the estimator asks for a burst, call [`request_burst`](Self::request_burst),
///    then [`poll_transmit`](Self::poll_transmit) until `None` again.
///
/// The slave follows the first master it hears and switches only after that master has been
/// silent for [`SlaveConfig::master_timeout`].
#[derive(Debug)]
pub struct PtpSlave<A> {
    config: SlaveConfig,
    master: Option<Master<A>>,
    syncs: VecDeque<PendingSync>,
    delays: VecDeque<PendingDelay>,
    exchanges: VecDeque<Exchange>,
    next_delay_seq: u16,
    last_delay_req: Option<LocalInstant>,
    /// A burst request waiting to be polled; a newer one replaces it.
    burst_request: Option<UnicastRequest>,
    next_signaling_seq: u16,
    /// With [`SlaveConfig::auth`]: the last sequence id accepted per source and type.
    replay: ReplayGuard,
    stats: PtpStats,
}

impl<A: Copy + Eq> PtpSlave<A> {
    /// A slave with `config`, following no master yet.
    pub fn new(config: SlaveConfig) -> Self {
        PtpSlave {
            config,
            master: None,
            syncs: VecDeque::with_capacity(PENDING),
            delays: VecDeque::with_capacity(PENDING),
            exchanges: VecDeque::with_capacity(config.max_exchanges),
            next_delay_seq: 0,
            last_delay_req: None,
            burst_request: None,
            next_signaling_seq: 0,
            replay: ReplayGuard::new(if config.auth.is_some() {
                REPLAY_SOURCES
            } else {
                1
            }),
            stats: PtpStats::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SlaveConfig {
        &self.config
    }

    /// What the slave has sent, received, completed and rejected.
    pub fn stats(&self) -> &PtpStats {
        &self.stats
    }

    /// The master being followed, if any.
    pub fn master(&self) -> Option<PortIdentity> {
        self.master.map(|m| m.port)
    }

    /// Accepts `from`/`port` as the master, or says why not. Switches masters when the
    /// followed one has gone quiet.
    fn check_master(
        &mut self,
        port: PortIdentity,
        from: A,
        at: LocalInstant,
    ) -> Result<(), PtpError> {
        match &mut self.master {
            Some(m) if m.port == port => {
                m.addr = from;
                m.last_heard = m.last_heard.max(at);
                Ok(())
            }
            // Another identity from the followed master's own address is that master
            // restarted (a new process, a new clock identity): follow it at once rather than
            // wait out the old one's silence.
            Some(m) if m.addr != from && at - m.last_heard < self.config.master_timeout => {
                Err(PtpError::ForeignMaster { from: port })
            }
            _ => {
                self.master = Some(Master {
                    port,
                    addr: from,
                    last_heard: at,
                    asked: false,
                });
                self.syncs.clear();
                self.delays.clear();
                // A request was meant for the old master; the new one starts its own burst.
                self.burst_request = None;
                Ok(())
            }
        }
    }

    /// Takes a datagram that arrived at `at` from `from`. The error says why a datagram was
    /// not used (it is also counted); nothing a peer sends can make this panic or grow memory.
    pub fn handle_receive(
        &mut self,
        from: A,
        at: LocalInstant,
        data: &[u8],
    ) -> Result<(), PtpError> {
        self.stats.received += 1;
        let r = self.receive(from, at, data);
        r.map_err(|e| self.stats.reject(e))
    }

    fn receive(&mut self, from: A, at: LocalInstant, data: &[u8]) -> Result<(), PtpError> {
        let msg = Message::parse(data)?;
        let h = msg.header;
        if let Some(keys) = &self.config.auth {
            // The tag first, so that only key holders reach the replay table.
            keys.receive.verify(data)?;
            self.replay
                .check(h.source_port, msg.body.message_type(), h.sequence_id)?;
        }
        if h.domain != self.config.domain {
            return Err(PtpError::WrongDomain {
                expected: self.config.domain,
                got: h.domain,
            });
        }
        match msg.body {
            Body::DelayReq { .. } => Err(PtpError::Unexpected {
                message_type: MessageType::DelayReq,
            }),
            Body::Signaling(signaling) => self.take_grant(h.source_port, &signaling),
            Body::Announce(_) => self.check_master(h.source_port, from, at),
            Body::Sync { origin_timestamp } => {
                self.check_master(h.source_port, from, at)?;
                let corr = h.correction.to_nanos();
                let origin = if h.flags.two_step() {
                    None
                } else {
                    Some((origin_timestamp.to_instant()?, Nanos::ZERO))
                };
                let p = self.pending_sync(h.sequence_id, at);
                p.sync = Some((at, corr));
                if origin.is_some() {
                    p.origin = origin;
                }
                self.try_complete_sync(h.sequence_id);
                Ok(())
            }
            Body::FollowUp {
                precise_origin_timestamp,
            } => {
                self.check_master(h.source_port, from, at)?;
                let t1 = precise_origin_timestamp.to_instant()?;
                let known = self.syncs.iter().any(|p| p.sequence_id == h.sequence_id);
                // A Follow_Up may overtake its Sync; keep it briefly, but only for a sequence
                // near the ones in flight, so forged ones cannot evict real Syncs.
                if !known && !self.near_recent_sync(h.sequence_id) {
                    return Err(PtpError::UnknownSequence {
                        message_type: MessageType::FollowUp,
                        sequence_id: h.sequence_id,
                    });
                }
                let p = self.pending_sync(h.sequence_id, at);
                p.origin = Some((t1, h.correction.to_nanos()));
                self.try_complete_sync(h.sequence_id);
                Ok(())
            }
            Body::DelayResp {
                receive_timestamp,
                requesting_port,
            } => {
                self.check_master(h.source_port, from, at)?;
                if requesting_port != self.config.port {
                    return Err(PtpError::NotForUs {
                        requesting: requesting_port,
                    });
                }
                let Some(i) = self
                    .delays
                    .iter()
                    .position(|d| d.sequence_id == h.sequence_id && d.sent)
                else {
                    return Err(PtpError::UnknownSequence {
                        message_type: MessageType::DelayResp,
                        sequence_id: h.sequence_id,
                    });
                };
                let t4 = receive_timestamp.to_instant()?;
                if let (Some(d), Some(m)) = (self.delays.remove(i), self.master) {
                    self.push_exchange(Exchange {
                        leader: m.port,
                        sync_sequence: d.sync_sequence,
                        t1: d.t1,
                        t2: d.t2,
                        t3: d.t3,
                        t4,
                        sync_correction: d.sync_correction,
                        delay_correction: h.correction.to_nanos(),
                    });
                }
                Ok(())
            }
        }
    }

    /// Takes the followed master's answer to a burst request. A grant does not make its
    /// sender the master, nor keep a master alive: only timed messages do.
    fn take_grant(
        &mut self,
        source: PortIdentity,
        signaling: &SignalingBody,
    ) -> Result<(), PtpError> {
        if self.master.is_none_or(|m| m.port != source) {
            return Err(PtpError::ForeignMaster { from: source });
        }
        if !signaling.target_port.addresses(self.config.port) {
            return Err(PtpError::WrongTarget {
                target: signaling.target_port,
            });
        }
        let mut grants = 0;
        for tlv in signaling.tlvs() {
            if let SignalingTlv::Grant(g) = tlv {
                grants += 1;
                if g.message_type != MessageType::Sync.code() {
                    continue;
                }
                if g.duration_secs == 0 {
                    self.stats.bursts_refused += 1;
                } else {
                    self.stats.bursts_granted += 1;
                }
            }
        }
        if grants == 0 {
            // A request or anything else: a slave grants nothing.
            return Err(PtpError::Unexpected {
                message_type: MessageType::Signaling,
            });
        }
        Ok(())
    }

    /// Asks the followed master for a burst of Syncs at [`SlaveConfig::burst_period`] for
    /// [`SlaveConfig::burst_duration`] (384 a second for 2 s by default), or for
    /// [`SlaveConfig::first_burst_duration`] if it is the first request to this master. See
    /// [`request_burst_with`](Self::request_burst_with).
    pub fn request_burst(&mut self, now: LocalInstant) -> bool {
        let first = self.master.is_some_and(|m| !m.asked);
        let duration = if first {
            self.config.first_burst_duration
        } else {
            self.config.burst_duration
        };
        let queued = self.request_burst_with(now, self.config.burst_period, duration);
        if queued && let Some(m) = &mut self.master {
            m.asked = true;
        }
        queued
    }

    /// Asks the followed master for Syncs every `period` (the master may grant a longer one)
    /// for `duration`: queues a Signaling with REQUEST_UNICAST_TRANSMISSION for Sync, which
    /// [`poll_transmit`](Self::poll_transmit) then hands out. Returns whether it queued one:
    /// not when no master is followed yet, nor when the followed one has been silent for
    /// [`SlaveConfig::master_timeout`] at `now`. A request not yet polled is replaced.
    ///
    /// The wire carries the period as a power of two of seconds, rounded down (asking for a
    /// rate at least as fast), and the duration as whole seconds, rounded up.
    pub fn request_burst_with(
        &mut self,
        now: LocalInstant,
        period: Nanos,
        duration: Nanos,
    ) -> bool {
        let Some(m) = self.master else {
            return false;
        };
        if now - m.last_heard >= self.config.master_timeout {
            return false;
        }
        let log = if period > Nanos::ZERO {
            period.as_secs_f64().log2().floor().clamp(-128.0, 127.0) as i8
        } else {
            i8::MIN
        };
        let secs = duration
            .as_nanos()
            .max(0)
            .unsigned_abs()
            .div_ceil(1_000_000_000);
        self.burst_request = Some(UnicastRequest {
            message_type: MessageType::Sync.code(),
            log_inter_message_period: log,
            duration_secs: u32::try_from(secs).unwrap_or(u32::MAX),
        });
        true
    }

    fn near_recent_sync(&self, seq: u16) -> bool {
        self.syncs
            .back()
            .map(|p| p.sequence_id)
            .or(self.delays.back().map(|d| d.sync_sequence))
            .is_some_and(|last| seq.wrapping_sub(last) < 8 || last.wrapping_sub(seq) < 8)
    }

    fn pending_sync(&mut self, seq: u16, at: LocalInstant) -> &mut PendingSync {
        if let Some(i) = self.syncs.iter().position(|p| p.sequence_id == seq) {
            return &mut self.syncs[i];
        }
        if self.syncs.len() >= PENDING {
            self.syncs.pop_front();
            self.stats.incomplete += 1;
        }
        self.syncs.push_back(PendingSync {
            sequence_id: seq,
            sync: None,
            origin: None,
            created: at,
        });
        let last = self.syncs.len() - 1;
        &mut self.syncs[last]
    }

    /// When a Sync has both halves, queue the Delay_Req that completes its exchange.
    fn try_complete_sync(&mut self, seq: u16) {
        let Some(i) = self.syncs.iter().position(|p| p.sequence_id == seq) else {
            return;
        };
        let p = self.syncs[i];
        let (Some((t2, c_sync)), Some((t1, c_fu))) = (p.sync, p.origin) else {
            return;
        };
        self.syncs.remove(i);
        if self
            .last_delay_req
            .is_some_and(|last| t2 - last < self.config.min_delay_req_interval)
        {
            return;
        }
        if self.delays.len() >= PENDING {
            self.delays.pop_front();
            self.stats.incomplete += 1;
        }
        self.last_delay_req = Some(t2);
        self.delays.push_back(PendingDelay {
            sequence_id: self.next_delay_seq,
            sync_sequence: seq,
            t1,
            t2,
            sync_correction: c_sync + c_fu,
            t3: t2,
            sent: false,
        });
        self.next_delay_seq = self.next_delay_seq.wrapping_add(1);
    }

    fn push_exchange(&mut self, ex: Exchange) {
        if self.exchanges.len() >= self.config.max_exchanges.max(1) {
            self.exchanges.pop_front();
        }
        self.exchanges.push_back(ex);
        self.stats.exchanges += 1;
    }

    /// Reports that the Delay_Req tagged `tag` really left at `at` (a kernel transmit
    /// timestamp), replacing the time it was polled at.
    pub fn handle_transmitted(&mut self, tag: TxTag, at: LocalInstant) {
        if tag.message_type != MessageType::DelayReq {
            return;
        }
        if let Some(d) = self
            .delays
            .iter_mut()
            .find(|d| d.sequence_id == tag.sequence_id && d.sent)
        {
            d.t3 = at;
        }
    }

    /// Drops half-exchanges that waited too long.
    pub fn handle_timeout(&mut self, now: LocalInstant) {
        let before = self.syncs.len() + self.delays.len();
        let fu = self.config.follow_up_timeout;
        self.syncs.retain(|p| now - p.created < fu);
        let dr = self.config.delay_resp_timeout;
        self.delays.retain(|d| !d.sent || now - d.t3 < dr);
        self.stats.incomplete += (before - self.syncs.len() - self.delays.len()) as u64;
    }

    /// The next datagram to send, stamped as leaving at `now`: Delay_Reqs first (their
    /// send time is part of the exchange), then a burst request. Call until `None`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: LocalInstant) -> Option<Transmit<A>> {
        let m = self.master?;
        let Some(d) = self.delays.iter_mut().find(|d| !d.sent) else {
            let request = self.burst_request.take()?;
            let header = Header::new(
                self.config.port,
                self.config.domain,
                self.next_signaling_seq,
            );
            self.next_signaling_seq = self.next_signaling_seq.wrapping_add(1);
            let body = SignalingBody::with_tlv(m.port, SignalingTlv::Request(request));
            self.stats.sent += 1;
            self.stats.burst_requests += 1;
            return Some(Transmit::new(
                m.addr,
                &Message::signaling(header, body),
                self.config.auth.as_ref().map(|k| &k.send),
            ));
        };
        d.sent = true;
        d.t3 = now;
        let header = Header::new(self.config.port, self.config.domain, d.sequence_id);
        // The origin timestamp of a Delay_Req is informative only (t3 is kept locally); it
        // is left zero so that the follower's local timescale does not leak onto the wire.
        let msg = Message::delay_req(header, PtpTimestamp::default());
        self.stats.sent += 1;
        Some(Transmit::new(
            m.addr,
            &msg,
            self.config.auth.as_ref().map(|k| &k.send),
        ))
    }

    /// The next completed exchange, oldest first. Call until `None`.
    #[must_use]
    pub fn poll_exchange(&mut self) -> Option<Exchange> {
        self.exchanges.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to drop.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<LocalInstant> {
        let a = self
            .syncs
            .iter()
            .map(|p| p.created + self.config.follow_up_timeout)
            .min();
        let b = self
            .delays
            .iter()
            .filter(|d| d.sent)
            .map(|d| d.t3 + self.config.delay_resp_timeout)
            .min();
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ptp::{ClockIdentity, PtpPort, UnicastGrant};

    const MASTER: u8 = 0;

    fn master_port() -> PortIdentity {
        PortIdentity {
            clock_identity: ClockIdentity([1; 8]),
            port_number: 1,
        }
    }

    fn own_port() -> PortIdentity {
        PortIdentity {
            clock_identity: ClockIdentity([2; 8]),
            port_number: 1,
        }
    }

    fn bytes(msg: &Message) -> Vec<u8> {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf).unwrap();
        buf
    }

    fn secs(s: i64) -> LocalInstant {
        LocalInstant::from_nanos(s * 1_000_000_000)
    }

    /// A slave that has heard one Sync from [`master_port`] at 1 s.
    fn following() -> PtpSlave<u8> {
        let mut slave = PtpSlave::new(SlaveConfig::new(own_port()));
        let sync = Message::sync(
            Header::new(master_port(), 0, 1),
            PtpTimestamp::default(),
            true,
        );
        slave
            .handle_receive(MASTER, secs(1), &bytes(&sync))
            .unwrap();
        slave
    }

    fn grant(from: PortIdentity, target: PortIdentity, duration_secs: u32) -> Vec<u8> {
        let g = UnicastGrant {
            message_type: MessageType::Sync.code(),
            log_inter_message_period: -9,
            duration_secs,
            renewal_invited: false,
        };
        let body = SignalingBody::with_tlv(target, SignalingTlv::Grant(g));
        bytes(&Message::signaling(Header::new(from, 0, 0), body))
    }

    #[test]
    fn a_burst_request_is_queued_only_with_a_master_to_send_it_to() {
        let mut slave = PtpSlave::<u8>::new(SlaveConfig::new(own_port()));
        assert!(!slave.request_burst(secs(1)));
        assert!(slave.poll_transmit(secs(1)).is_none());
        assert_eq!(slave.stats().burst_requests, 0);

        let mut slave = following();
        assert!(slave.request_burst(secs(2)));
        let tx = slave.poll_transmit(secs(2)).expect("the request");
        assert_eq!((tx.to, tx.port, tx.tag), (MASTER, PtpPort::General, None));
        let msg = Message::parse(tx.payload()).unwrap();
        assert_eq!(msg.header.source_port, own_port());
        assert_eq!(msg.header.control_field, 5);
        let Body::Signaling(s) = msg.body else {
            panic!("not a Signaling: {msg:?}");
        };
        assert_eq!(s.target_port, master_port());
        // The defaults: 1/384 s, sent as 2^-9 s; 10 s for the first request to a master...
        let asked = |tx: &Transmit<u8>| {
            let Body::Signaling(s) = Message::parse(tx.payload()).unwrap().body else {
                panic!("not a Signaling");
            };
            s.tlvs().to_vec()
        };
        let request = |duration_secs| {
            [SignalingTlv::Request(UnicastRequest {
                message_type: 0,
                log_inter_message_period: -9,
                duration_secs,
            })]
        };
        assert_eq!(s.tlvs(), request(10));
        assert!(slave.poll_transmit(secs(2)).is_none(), "sent once");
        assert_eq!(slave.stats().burst_requests, 1);
        // ...and 2 s for the next ones.
        assert!(slave.request_burst(secs(2)));
        assert_eq!(asked(&slave.poll_transmit(secs(2)).unwrap()), request(2));

        // A master restarted with a new identity at the same address is asked for the
        // long first burst again.
        let restarted = PortIdentity {
            clock_identity: ClockIdentity([3; 8]),
            port_number: 1,
        };
        let sync = Message::sync(Header::new(restarted, 0, 1), PtpTimestamp::default(), true);
        slave
            .handle_receive(MASTER, secs(3), &bytes(&sync))
            .unwrap();
        assert_eq!(slave.master(), Some(restarted));
        assert!(slave.request_burst(secs(3)));
        assert_eq!(asked(&slave.poll_transmit(secs(3)).unwrap()), request(10));

        // A master silent for longer than master_timeout is no longer asked.
        assert!(!slave.request_burst(secs(7)));
        assert_eq!(slave.stats().burst_requests, 3);
    }

    #[test]
    fn explicit_periods_round_down_to_a_power_of_two_and_durations_up_to_seconds() {
        let mut slave = following();
        assert!(slave.request_burst_with(
            secs(1),
            Nanos::from_millis(62) + Nanos::from_micros(500),
            Nanos::from_millis(1500)
        ));
        // A newer request replaces one not yet polled.
        assert!(slave.request_burst_with(
            secs(1),
            Nanos::from_millis(100),
            Nanos::from_millis(1500)
        ));
        let tx = slave.poll_transmit(secs(1)).unwrap();
        let Body::Signaling(s) = Message::parse(tx.payload()).unwrap().body else {
            panic!("not a Signaling");
        };
        assert_eq!(
            s.tlvs(),
            [SignalingTlv::Request(UnicastRequest {
                message_type: 0,
                log_inter_message_period: -4,
                duration_secs: 2
            })]
        );
        assert!(slave.poll_transmit(secs(1)).is_none());
    }

    #[test]
    fn delay_reqs_leave_before_a_burst_request() {
        let mut slave = following();
        let fu = Message::follow_up(
            Header::new(master_port(), 0, 1),
            PtpTimestamp {
                seconds: 5,
                nanoseconds: 0,
            },
        );
        slave.handle_receive(MASTER, secs(1), &bytes(&fu)).unwrap();
        assert!(slave.request_burst(secs(1)));
        let first = slave.poll_transmit(secs(1)).unwrap();
        let second = slave.poll_transmit(secs(1)).unwrap();
        assert_eq!(first.port, PtpPort::Event);
        assert_eq!(second.port, PtpPort::General);
        assert!(slave.poll_transmit(secs(1)).is_none());
    }

    #[test]
    fn grants_from_the_master_are_taken_and_counted() {
        let mut slave = following();
        slave
            .handle_receive(MASTER, secs(2), &grant(master_port(), own_port(), 2))
            .unwrap();
        slave
            .handle_receive(
                MASTER,
                secs(3),
                &grant(master_port(), PortIdentity::WILDCARD, 0),
            )
            .unwrap();
        let s = *slave.stats();
        assert_eq!(
            (s.bursts_granted, s.bursts_refused, s.unexpected),
            (1, 1, 0)
        );

        // Not from the followed master, not for this port, or not a grant: refused.
        let stranger = PortIdentity {
            clock_identity: ClockIdentity([9; 8]),
            port_number: 1,
        };
        assert_eq!(
            slave.handle_receive(5, secs(3), &grant(stranger, own_port(), 2)),
            Err(PtpError::ForeignMaster { from: stranger })
        );
        let mut other = own_port();
        other.port_number = 2;
        assert_eq!(
            slave.handle_receive(MASTER, secs(3), &grant(master_port(), other, 2)),
            Err(PtpError::WrongTarget { target: other })
        );
        let r = UnicastRequest {
            message_type: 0,
            log_inter_message_period: -9,
            duration_secs: 2,
        };
        let body = SignalingBody::with_tlv(own_port(), SignalingTlv::Request(r));
        let request = bytes(&Message::signaling(Header::new(master_port(), 0, 1), body));
        assert_eq!(
            slave.handle_receive(MASTER, secs(3), &request),
            Err(PtpError::Unexpected {
                message_type: MessageType::Signaling
            })
        );
        assert_eq!(slave.stats().bursts_granted, 1);
        assert_eq!(slave.master(), Some(master_port()));
    }
}
