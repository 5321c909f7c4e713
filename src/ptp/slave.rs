//! The follower's side of the clock exchange: a sans-IO PTP slave.

use std::collections::VecDeque;

use super::wire::{Body, Header, Message, MessageType, PortIdentity, PtpTimestamp};
use super::{PtpError, PtpStats, Transmit, TxTag};
use crate::clock::Exchange;
use crate::time::{LeaderInstant, LocalInstant, Nanos};

/// Syncs awaiting their Follow_Up, and Delay_Reqs awaiting their Delay_Resp, kept at most.
/// Fixed so that a flood of Syncs cannot grow memory.
const PENDING: usize = 16;

/// How the slave behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
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
///    [`handle_timeout`](Self::handle_timeout) (it drops stale half-exchanges).
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
            Some(m) if at - m.last_heard < self.config.master_timeout => {
                Err(PtpError::ForeignMaster { from: port })
            }
            _ => {
                self.master = Some(Master {
                    port,
                    addr: from,
                    last_heard: at,
                });
                self.syncs.clear();
                self.delays.clear();
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
            Body::Signaling(_) => Err(PtpError::Unexpected {
                message_type: MessageType::Signaling,
            }),
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

    /// The next datagram to send, stamped as leaving at `now`. Call until `None`.
    pub fn poll_transmit(&mut self, now: LocalInstant) -> Option<Transmit<A>> {
        let m = self.master?;
        let d = self.delays.iter_mut().find(|d| !d.sent)?;
        d.sent = true;
        d.t3 = now;
        let header = Header::new(self.config.port, self.config.domain, d.sequence_id);
        // The origin timestamp of a Delay_Req is informative only (t3 is kept locally); it
        // is left zero so that the follower's local timescale does not leak onto the wire.
        let msg = Message::delay_req(header, PtpTimestamp::default());
        self.stats.sent += 1;
        Some(Transmit::new(m.addr, &msg))
    }

    /// The next completed exchange, oldest first. Call until `None`.
    pub fn poll_exchange(&mut self) -> Option<Exchange> {
        self.exchanges.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to drop.
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
