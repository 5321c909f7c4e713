//! An in-process network for the nodes' loops, in real time, whose delays, jitter and
//! losses come from the simulator's [`Link`] models. It implements the driver's
//! [`Transport`], so the same clock threads that run on UDP run here; the tests use it to
//! check a leader and a follower against ground truth on a Wi-Fi-like path without leaving
//! the process.
//!
//! Every socket's outgoing datagrams go through its own link; a datagram becomes readable
//! at its delivery instant and is stamped with exactly that instant (an ideal kernel
//! timestamp), and a send is stamped with the instant it was made.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::net::{self, Datagram, NetError, TimestampSource, Transport};
use crate::node::ptp::lock;
use crate::sim::{Delivery, Link, LinkConfig, SimRng, SimTime};

struct Queued {
    at_mono: i64,
    from: SocketAddr,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Inbox {
    queue: Mutex<Vec<Queued>>,
    ready: Condvar,
}

/// The network: the sockets bound on it, by address.
#[derive(Clone, Default)]
pub(crate) struct SimNet {
    inboxes: Arc<Mutex<HashMap<SocketAddr, Arc<Inbox>>>>,
    start: i64,
}

impl SimNet {
    pub(crate) fn new() -> SimNet {
        SimNet {
            inboxes: Arc::default(),
            start: net::monotonic_ns(),
        }
    }

    /// A socket at `addr` whose datagrams travel over a link `config` seeded with `seed`.
    pub(crate) fn bind(&self, addr: SocketAddr, config: LinkConfig, seed: u64) -> SimSocket {
        let inbox = Arc::new(Inbox::default());
        lock(&self.inboxes).insert(addr, Arc::clone(&inbox));
        SimSocket {
            net: self.clone(),
            addr,
            inbox,
            link: Mutex::new(Link::new(config, SimRng::new(seed)).expect("valid link")),
            tx: Mutex::new((0, Vec::new())),
        }
    }
}

/// One socket on a [`SimNet`].
pub(crate) struct SimSocket {
    net: SimNet,
    addr: SocketAddr,
    inbox: Arc<Inbox>,
    link: Mutex<Link>,
    /// The next transmit id, and the (id, realtime) stamps not yet drained.
    tx: Mutex<(u32, Vec<(u32, i64)>)>,
}

impl SimSocket {
    /// When the earliest queued datagram is due, if any.
    fn next_due(&self) -> Option<i64> {
        lock(&self.inbox.queue).iter().map(|q| q.at_mono).min()
    }
}

fn realtime_of(mono: i64) -> i64 {
    // Not `mono + (realtime − monotonic)` from two bare reads: a preemption between them
    // would shift the stamp by as long, which the clock takes for a shorter path.
    net::monotonic_to_realtime(mono)
}

impl Transport for SimSocket {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn rx_source(&self) -> TimestampSource {
        TimestampSource::Kernel
    }

    fn tx_source(&self) -> TimestampSource {
        TimestampSource::Kernel
    }

    fn send_to(&self, buf: &[u8], to: SocketAddr) -> Result<Option<u32>, NetError> {
        let now = net::monotonic_ns();
        let id = {
            let mut tx = lock(&self.tx);
            let id = tx.0;
            tx.0 = tx.0.wrapping_add(1);
            tx.1.push((id, realtime_of(now)));
            id
        };
        let delivery = lock(&self.link).transmit(SimTime(now - self.net.start));
        let Some(inbox) = lock(&self.net.inboxes).get(&to).cloned() else {
            return Ok(Some(id));
        };
        let times = match delivery {
            Delivery::Lost => vec![],
            Delivery::Once(t) => vec![t],
            Delivery::Twice(a, b) => vec![a, b],
        };
        let mut q = lock(&inbox.queue);
        for t in times {
            q.push(Queued {
                at_mono: self.net.start + t.as_nanos(),
                from: self.addr,
                bytes: buf.to_vec(),
            });
        }
        inbox.ready.notify_all();
        Ok(Some(id))
    }

    fn recv(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<Option<Datagram>, NetError> {
        let deadline = net::monotonic_ns() + timeout.map_or(0, |t| t.as_nanos() as i64);
        let mut q = lock(&self.inbox.queue);
        loop {
            let now = net::monotonic_ns();
            if let Some(i) = (0..q.len())
                .filter(|&i| q[i].at_mono <= now)
                .min_by_key(|&i| q[i].at_mono)
            {
                let d = q.swap_remove(i);
                let len = d.bytes.len().min(buf.len());
                buf[..len].copy_from_slice(&d.bytes[..len]);
                return Ok(Some(Datagram {
                    len,
                    from: d.from,
                    rx_realtime_ns: Some(realtime_of(d.at_mono)),
                }));
            }
            if now >= deadline {
                return Ok(None);
            }
            let due = q.iter().map(|x| x.at_mono).min().unwrap_or(deadline);
            let wait = (due.min(deadline) - now).max(1_000) as u64;
            q = self
                .inbox
                .ready
                .wait_timeout(q, Duration::from_nanos(wait))
                .map(|r| r.0)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn drain_tx_timestamps(&self, f: &mut dyn FnMut(u32, i64)) -> Result<usize, NetError> {
        let stamps = std::mem::take(&mut lock(&self.tx).1);
        for &(id, rt) in &stamps {
            f(id, rt);
        }
        Ok(stamps.len())
    }

    fn wait_any(sockets: &[&Self], timeout: Duration) {
        let end = net::monotonic_ns() + timeout.as_nanos() as i64;
        loop {
            let now = net::monotonic_ns();
            let due = sockets.iter().filter_map(|s| s.next_due()).min();
            if due.is_some_and(|d| d <= now) || now >= end {
                return;
            }
            let until = due.unwrap_or(end).min(end);
            std::thread::sleep(Duration::from_nanos(
                (until - now).clamp(20_000, 1_000_000) as u64
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::clock::{LocalClock, NodeClock};
    use crate::node::ptp::{
        ClockFollower, ClockFollowerConfig, ClockLeader, ClockLeaderConfig, PtpPeer,
        PtpSocketConfig, PtpSockets,
    };
    use crate::ptp::ClockIdentity;
    use crate::sim::PathConfig;
    use crate::time::Nanos;

    /// The leader's and follower's real clock threads, over the simulator's `path` in real
    /// time; returns the follower's estimate error against the truth, in ns, after `secs`.
    fn run(path: PathConfig, secs: u64) -> (i64, Nanos, u64) {
        let net = SimNet::new();
        let ip = |n: u8| std::net::IpAddr::from([10, 0, 0, n]);
        let leader_clock = NodeClock::new(LocalClock::Monotonic);
        let follower_clock = NodeClock::new(LocalClock::Drifting {
            drift_ppm: -95.0,
            offset: Nanos::from_millis(2_345),
        });
        let sock = |n: u8, port: u16, cfg: LinkConfig, seed: u64| {
            net.bind(SocketAddr::new(ip(n), port), cfg, seed)
        };
        let leader = ClockLeader::start_on(
            PtpSockets::new(
                sock(1, 319, path.to_follower, 1),
                sock(1, 320, path.to_follower, 2),
                leader_clock.clone(),
            ),
            ClockLeaderConfig {
                sockets: PtpSocketConfig::new(ip(1)),
                clock_identity: ClockIdentity([1; 8]),
            },
            leader_clock.clone(),
        )
        .expect("leader");
        let follower = ClockFollower::start_on(
            PtpSockets::new(
                sock(2, 319, path.to_leader, 3),
                sock(2, 320, path.to_leader, 4),
                follower_clock.clone(),
            ),
            ClockFollowerConfig {
                sockets: PtpSocketConfig::new(ip(2)),
                master: Some(PtpPeer::new(ip(1), 319, 320)),
                clock_identity: ClockIdentity([2; 8]),
            },
            follower_clock.clone(),
            crate::core::default_estimator(),
        )
        .expect("follower");
        leader.add_peer(PtpPeer::new(ip(2), 319, 320));
        std::thread::sleep(Duration::from_secs(secs));
        let est = follower.estimate().expect("an estimate");
        // The leader's clock is the monotonic clock: the truth at the follower's reading l
        // is the monotonic instant at which the follower's clock reads l.
        let l = follower_clock.now();
        let truth = follower_clock.to_monotonic(l);
        let err = est.to_leader(l).as_nanos() - truth;
        eprintln!(
            "error {err} ns, uncertainty {}, {} exchanges",
            est.uncertainty,
            follower.stats().exchanges
        );
        (err, est.uncertainty, follower.stats().exchanges)
    }

    #[test]
    fn a_followers_burst_request_reaches_the_ptp_master_thread_and_is_granted() {
        use crate::ptp::{
            Body, Header, Message, MessageType, PortIdentity, SignalingBody, SignalingTlv,
            UnicastRequest,
        };
        let net = SimNet::new();
        let ip = |n: u8| std::net::IpAddr::from([10, 0, 0, n]);
        let lan = PathConfig::lan();
        let clock = NodeClock::new(LocalClock::Monotonic);
        let leader = ClockLeader::start_on(
            PtpSockets::new(
                net.bind(SocketAddr::new(ip(1), 319), lan.to_follower, 1),
                net.bind(SocketAddr::new(ip(1), 320), lan.to_follower, 2),
                clock.clone(),
            ),
            ClockLeaderConfig {
                sockets: PtpSocketConfig::new(ip(1)),
                clock_identity: ClockIdentity([1; 8]),
            },
            clock.clone(),
        )
        .expect("leader");
        leader.add_peer(PtpPeer::new(ip(2), 319, 320));
        // The follower's general socket, driven by hand as a slave would, and a stranger's.
        let general = net.bind(SocketAddr::new(ip(2), 320), lan.to_leader, 3);
        let stranger = net.bind(SocketAddr::new(ip(3), 320), lan.to_leader, 4);
        let request = UnicastRequest {
            message_type: MessageType::Sync.code(),
            log_inter_message_period: -9,
            duration_secs: 2,
        };
        let port = |n: u8| PortIdentity {
            clock_identity: ClockIdentity([n; 8]),
            port_number: 1,
        };
        let body = SignalingBody::with_tlv(port(1), SignalingTlv::Request(request));
        let msg = Message::signaling(Header::new(port(2), 0, 0), body);
        let mut bytes = vec![0; msg.buffer_len()];
        msg.emit(&mut bytes).unwrap();
        // Let the master thread take the new peer before the request comes.
        std::thread::sleep(Duration::from_millis(100));
        let master_general = SocketAddr::new(ip(1), 320);
        stranger.send_to(&bytes, master_general).unwrap();
        general.send_to(&bytes, master_general).unwrap();

        let mut buf = [0u8; 1500];
        let mut grant = None;
        // The follower is in its start burst, so Follow_Ups come too: look for 2 s at most.
        let give_up = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < give_up {
            let Some(d) = general
                .recv(&mut buf, Some(Duration::from_millis(100)))
                .unwrap()
            else {
                continue;
            };
            if let Ok(Message {
                body: Body::Signaling(s),
                ..
            }) = Message::parse(&buf[..d.len])
            {
                assert_eq!(d.from, master_general);
                grant = Some(s);
                break;
            }
        }
        let grant = grant.expect("a grant on the follower's general port");
        assert_eq!(grant.target_port, port(2));
        assert!(matches!(
            grant.tlvs(),
            [SignalingTlv::Grant(g)] if g.duration_secs == 2 && g.log_inter_message_period == -9
        ));
        // The thread publishes its counters at the end of each turn.
        std::thread::sleep(Duration::from_millis(50));
        let stats = leader.stats();
        // The stranger's request never reached the master: the thread drops unknown sources.
        assert_eq!((stats.burst_requests, stats.bursts_granted), (1, 1));
        leader.stop();
    }

    #[test]
    fn the_clock_threads_sync_over_a_simulated_lan() {
        let (err, unc, n) = run(PathConfig::lan(), 4);
        assert!(n > 500, "{n} exchanges");
        assert!(err.abs() < 2_000, "error {err} ns (uncertainty {unc})");
    }

    #[test]
    fn the_clock_threads_sync_over_simulated_wifi() {
        let (err, unc, n) = run(PathConfig::wifi(), 6);
        assert!(n > 500, "{n} exchanges");
        assert!(err.abs() < 30_000, "error {err} ns (uncertainty {unc})");
    }
}
