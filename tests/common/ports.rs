//! Free loopback ports for tests that hand a port to another program. Included with
//! `#[path = "common/ports.rs"] mod ports;`.

use std::net::UdpSocket;

/// An even loopback port whose odd neighbour (RTCP) is free too.
pub fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let p = s.local_addr().unwrap().port() & !1;
        drop(s);
        if p > 1024
            && UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no free loopback port pair");
}
