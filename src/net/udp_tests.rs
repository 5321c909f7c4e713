//! Tests of [`UdpSocket`]. The default ones send only on 127.0.0.1; the multicast one runs
//! in a namespace it creates ([`NetNs`]) and is ignored unless asked for.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::*;
use crate::net::NetNs;
use crate::net::clock::realtime_ns;

/// 127.0.0.1 with a port the kernel picks.
fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A plain unicast socket on the loopback.
fn plain() -> UdpSocket {
    UdpSocket::bind(&UdpConfig::new(loopback())).expect("bind 127.0.0.1:0")
}

/// Makes sure the kernel is stamping received packets before a test relies on it.
///
/// Linux turns receive stamping on for the whole host in deferred work when the first
/// socket asks for it, and off again when the last such socket closes, so a datagram sent
/// right after a bind can arrive unstamped while tests open and close sockets around it. A
/// stamping socket held open for the rest of the test process keeps it on; the first call
/// waits (bounded) until a probe comes back stamped.
fn rx_stamping_on() {
    static KEEPER: OnceLock<UdpSocket> = OnceLock::new();
    KEEPER.get_or_init(|| {
        let keeper = UdpSocket::bind(&UdpConfig {
            rx_timestamps: true,
            ..UdpConfig::new(loopback())
        })
        .expect("bind the stamping keeper");
        let mut buf = [0u8; 8];
        for _ in 0..100 {
            keeper
                .send_to(b"probe", keeper.local_addr())
                .expect("probe");
            let got = keeper
                .recv(&mut buf, Some(Duration::from_secs(1)))
                .expect("recv the probe");
            if got.is_some_and(|d| d.rx_realtime_ns.is_some()) {
                return keeper;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the kernel never stamped a received datagram");
    });
}

/// Waits (bounded, about a second) until `sock` has reported `want` transmit timestamps.
fn collect_tx(sock: &UdpSocket, want: usize) -> Vec<(u32, i64)> {
    let mut got = Vec::new();
    for _ in 0..200 {
        sock.drain_tx_timestamps(&mut |id, ns| got.push((id, ns)))
            .expect("drain the error queue");
        if got.len() >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    got
}

#[test]
fn unicast_arrives_from_the_sender_with_a_kernel_timestamp() {
    rx_stamping_on();
    let rx = UdpSocket::bind(&UdpConfig {
        rx_timestamps: true,
        ..UdpConfig::new(loopback())
    })
    .expect("bind the receiver");
    assert_eq!(rx.rx_source(), TimestampSource::Kernel);
    let tx = plain();
    let before = realtime_ns();
    assert_eq!(tx.send_to(b"hello", rx.local_addr()).unwrap(), None);
    let mut buf = [0u8; 64];
    let got = rx
        .recv(&mut buf, Some(Duration::from_secs(2)))
        .expect("recv")
        .expect("a datagram within 2 s");
    let after = realtime_ns();
    assert_eq!(&buf[..got.len], b"hello");
    assert_eq!(got.from, tx.local_addr());
    let stamp = got.rx_realtime_ns.expect("a kernel receive timestamp");
    // The kernel took it between the send and our reading of the clock after recv.
    assert!(
        (before..=after).contains(&stamp),
        "stamp {stamp} outside [{before}, {after}]"
    );
}

#[test]
fn the_timestampns_fallback_also_stamps_receives() {
    rx_stamping_on();
    let cfg = UdpConfig {
        rx_timestamps: true,
        tx_timestamps: true,
        ..UdpConfig::new(loopback())
    };
    let rx = UdpSocket::bind_with(&cfg, false).expect("bind");
    assert_eq!(rx.stamps.rx, RxStamps::TimestampNs);
    assert_eq!(rx.rx_source(), TimestampSource::Kernel);
    // SO_TIMESTAMPNS cannot stamp transmits.
    assert_eq!(rx.tx_source(), TimestampSource::User);
    let before = realtime_ns();
    plain().send_to(b"x", rx.local_addr()).unwrap();
    let mut buf = [0u8; 8];
    let got = rx
        .recv(&mut buf, Some(Duration::from_secs(2)))
        .unwrap()
        .expect("a datagram");
    let stamp = got.rx_realtime_ns.expect("an SCM_TIMESTAMPNS stamp");
    assert!((before..=realtime_ns()).contains(&stamp));
}

#[test]
fn without_rx_timestamps_the_caller_stamps() {
    let rx = plain();
    assert_eq!(rx.rx_source(), TimestampSource::User);
    assert_eq!(rx.tx_source(), TimestampSource::User);
    plain().send_to(b"x", rx.local_addr()).unwrap();
    let mut buf = [0u8; 8];
    let got = rx
        .recv(&mut buf, Some(Duration::from_secs(2)))
        .unwrap()
        .expect("a datagram");
    assert_eq!(got.rx_realtime_ns, None);
}

#[test]
fn transmit_timestamps_come_back_numbered_in_send_order() {
    let tx = UdpSocket::bind(&UdpConfig {
        tx_timestamps: true,
        ..UdpConfig::new(loopback())
    })
    .expect("bind the sender");
    assert_eq!(tx.tx_source(), TimestampSource::Kernel);
    let rx = plain();
    let before = realtime_ns();
    let ids: Vec<Option<u32>> = (0..3)
        .map(|i| tx.send_to(&[i; 10], rx.local_addr()).expect("send"))
        .collect();
    let after = realtime_ns();
    assert_eq!(ids, [Some(0), Some(1), Some(2)]);
    let got = collect_tx(&tx, 3);
    let got_ids: Vec<u32> = got.iter().map(|&(id, _)| id).collect();
    assert_eq!(got_ids, [0, 1, 2]);
    for pair in got.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "timestamps go backwards: {got:?}");
    }
    for &(id, ns) in &got {
        assert!(
            (before..=after).contains(&ns),
            "id {id}: stamp {ns} outside [{before}, {after}]"
        );
    }
    // Nothing more: each send is reported once.
    assert_eq!(tx.drain_tx_timestamps(&mut |_, _| ()).unwrap(), 0);
}

#[test]
fn rx_and_tx_timestamps_together_on_one_socket() {
    rx_stamping_on();
    let cfg = UdpConfig {
        rx_timestamps: true,
        tx_timestamps: true,
        ..UdpConfig::new(loopback())
    };
    let a = UdpSocket::bind(&cfg).expect("bind a");
    let b = UdpSocket::bind(&cfg).expect("bind b");
    assert_eq!(a.send_to(b"ping", b.local_addr()).unwrap(), Some(0));
    let mut buf = [0u8; 16];
    let got = b
        .recv(&mut buf, Some(Duration::from_secs(2)))
        .unwrap()
        .expect("ping");
    assert!(got.rx_realtime_ns.is_some());
    let got = collect_tx(&a, 1);
    assert_eq!(got.len(), 1, "{got:?}");
}

#[test]
fn waiting_with_transmit_timestamps_pending_neither_spins_nor_loses_them() {
    let tx = UdpSocket::bind(&UdpConfig {
        tx_timestamps: true,
        ..UdpConfig::new(loopback())
    })
    .expect("bind");
    let sink = plain();
    tx.send_to(b"x", sink.local_addr()).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // The error queue now holds a timestamp, so poll reports POLLERR; recv must still wait
    // out its timeout and keep the timestamp for later.
    let mut buf = [0u8; 8];
    let start = Instant::now();
    let got = tx.recv(&mut buf, Some(Duration::from_millis(50))).unwrap();
    let waited = start.elapsed();
    assert_eq!(got, None);
    assert!(
        waited >= Duration::from_millis(45),
        "returned after {waited:?}"
    );
    let got = collect_tx(&tx, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 0);
}

#[test]
fn clones_share_the_transmit_counter() {
    let a = UdpSocket::bind(&UdpConfig {
        tx_timestamps: true,
        ..UdpConfig::new(loopback())
    })
    .expect("bind");
    let b = a.try_clone().expect("clone");
    let sink = plain();
    assert_eq!(a.send_to(b"1", sink.local_addr()).unwrap(), Some(0));
    assert_eq!(b.send_to(b"2", sink.local_addr()).unwrap(), Some(1));
    let ids: Vec<u32> = collect_tx(&a, 2).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [0, 1]);
}

#[test]
fn dscp_sets_the_tos_byte() {
    for (dscp, tos) in [(Dscp::Default, 0), (Dscp::Ef, 0xB8), (Dscp::Af41, 0x88)] {
        let sock = UdpSocket::bind(&UdpConfig {
            dscp,
            ..UdpConfig::new(loopback())
        })
        .expect("bind");
        assert_eq!(sock.socket.tos_v4().expect("read IP_TOS"), tos, "{dscp:?}");
    }
}

#[test]
fn dscp_sets_the_traffic_class_on_ipv6() {
    let Ok(sock) = UdpSocket::bind(&UdpConfig {
        dscp: Dscp::Ef,
        ..UdpConfig::new(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)))
    }) else {
        // A host without IPv6 (some containers) cannot bind ::1; that is not this code's fault.
        return;
    };
    assert_eq!(sock.socket.tclass_v6().expect("read IPV6_TCLASS"), 0xB8);
}

#[test]
fn binding_a_taken_port_says_so() {
    let first = plain();
    let addr = first.local_addr();
    match UdpSocket::bind(&UdpConfig::new(addr)) {
        Err(err @ NetError::AddrInUse { addr: reported }) => {
            assert_eq!(reported, addr);
            let text = err.to_string();
            assert!(text.contains("already in use"), "{text}");
            assert!(text.contains(&addr.to_string()), "{text}");
        }
        other => panic!("expected AddrInUse, got {other:?}"),
    }
}

#[test]
fn reuse_lets_two_sockets_share_a_port() {
    let cfg = UdpConfig {
        reuse_addr: true,
        ..UdpConfig::new(loopback())
    };
    let first = UdpSocket::bind(&cfg).expect("bind");
    UdpSocket::bind(&UdpConfig {
        bind: first.local_addr(),
        ..cfg
    })
    .expect("bind the same port again");
}

#[test]
fn recv_times_out_empty() {
    let sock = plain();
    let mut buf = [0u8; 8];
    let start = Instant::now();
    assert_eq!(
        sock.recv(&mut buf, Some(Duration::from_millis(20)))
            .unwrap(),
        None
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(15) && waited < Duration::from_secs(1),
        "waited {waited:?}"
    );
    let start = Instant::now();
    assert_eq!(sock.recv(&mut buf, None).unwrap(), None);
    assert!(start.elapsed() < Duration::from_millis(100));
}

#[test]
fn a_huge_timeout_still_returns_data() {
    let rx = plain();
    plain().send_to(b"x", rx.local_addr()).unwrap();
    let mut buf = [0u8; 8];
    let got = rx.recv(&mut buf, Some(Duration::MAX)).unwrap();
    assert_eq!(got.map(|d| d.len), Some(1));
}

#[test]
fn an_oversized_datagram_is_reported_and_the_socket_goes_on() {
    let rx = plain();
    let tx = plain();
    tx.send_to(&[7u8; 100], rx.local_addr()).unwrap();
    tx.send_to(b"small", rx.local_addr()).unwrap();
    let mut buf = [0u8; 10];
    match rx.recv(&mut buf, Some(Duration::from_secs(2))) {
        Err(NetError::Truncated {
            from,
            len,
            capacity,
        }) => {
            assert_eq!((from, len, capacity), (tx.local_addr(), 100, 10));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    let got = rx
        .recv(&mut buf, Some(Duration::from_secs(2)))
        .unwrap()
        .expect("the next datagram");
    assert_eq!(&buf[..got.len], b"small");
}

#[test]
fn a_unicast_socket_refuses_multicast_destinations() {
    let sock = plain();
    let to = SocketAddr::from((Ipv4Addr::new(239, 255, 77, 1), 9));
    match sock.send_to(b"x", to) {
        Err(NetError::MulticastWithoutInterface { to: got }) => assert_eq!(got, to),
        other => panic!("expected MulticastWithoutInterface, got {other:?}"),
    }
}

#[test]
fn multicast_needs_an_ipv4_bind() {
    let cfg = UdpConfig {
        multicast: Some(Multicast {
            group: Ipv4Addr::new(239, 255, 77, 1),
            interface: Ipv4Addr::LOCALHOST,
            ttl: 1,
            loopback: true,
        }),
        ..UdpConfig::new(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)))
    };
    assert!(matches!(
        UdpSocket::bind(&cfg),
        Err(NetError::MulticastNeedsIpv4 { .. })
    ));
}

#[test]
#[ignore = "needs root and iproute2: run by .ci/run with --ignored"]
fn multicast_on_a_namespace_loopback() {
    let group = Ipv4Addr::new(239, 255, 77, 1);
    let ns = NetNs::create("lockstep-net-mc").expect("create a network namespace");
    ns.enter_thread(|| {
        rx_stamping_on();
        let mc = Multicast {
            group,
            interface: Ipv4Addr::LOCALHOST,
            ttl: 1,
            loopback: true,
        };
        let cfg = UdpConfig {
            reuse_addr: true,
            rx_timestamps: true,
            multicast: Some(mc),
            ..UdpConfig::new(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        };
        let receiver = UdpSocket::bind(&cfg).expect("bind the receiver");
        let port = receiver.local_addr().port();
        let sender = UdpSocket::bind(&UdpConfig {
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            ..cfg
        })
        .expect("bind the sender to the same port");
        let to = SocketAddr::from((group, port));

        let before = realtime_ns();
        sender.send_to(b"one", to).expect("send to the group");
        let mut buf = [0u8; 16];
        let got = receiver
            .recv(&mut buf, Some(Duration::from_secs(2)))
            .expect("recv")
            .expect("the group datagram");
        assert_eq!(&buf[..got.len], b"one");
        assert_eq!(got.from.port(), port);
        let stamp = got.rx_realtime_ns.expect("a kernel timestamp");
        assert!((before..=realtime_ns()).contains(&stamp));
        // Any further copies of the first datagram (loopback delivery) go before the check.
        while receiver
            .recv(&mut buf, Some(Duration::from_millis(50)))
            .expect("recv")
            .is_some()
        {}

        receiver
            .leave_multicast(group, Ipv4Addr::LOCALHOST)
            .expect("leave");
        sender.send_to(b"two", to).expect("send again");
        // The sender is still a member, so the group still reaches this port on lo; the
        // receiver must not get it (IP_MULTICAST_ALL is off).
        let after_leave = receiver
            .recv(&mut buf, Some(Duration::from_millis(100)))
            .expect("recv");
        assert_eq!(after_leave, None);
        // The sender, still joined, does get it: the datagram was really sent.
        let mut seen = false;
        while let Some(d) = sender
            .recv(&mut buf, Some(Duration::from_millis(200)))
            .expect("recv")
        {
            seen |= &buf[..d.len] == b"two";
        }
        assert!(
            seen,
            "the sender's own membership did not see the second datagram"
        );
    })
    .expect("enter the namespace");
}

#[test]
fn a_receive_buffer_past_the_systems_cap_is_granted_to_a_privileged_process() {
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .expect("read net.core.rmem_max")
        .trim()
        .parse()
        .expect("a number");
    // Past the cap (which the kernel would double).
    let ask = rmem_max * 4;
    let sock = UdpSocket::bind(&UdpConfig {
        recv_buffer: Some(ask),
        ..UdpConfig::new(loopback())
    })
    .expect("bind");
    let got = sock.socket.recv_buffer_size().expect("read SO_RCVBUF");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(got >= ask, "asked {ask} bytes as root, got {got}");
    } else {
        // Not privileged: the kernel's cap stands, and binding still succeeds.
        assert!(got >= rmem_max.min(ask), "asked {ask}, got {got}");
    }
}
