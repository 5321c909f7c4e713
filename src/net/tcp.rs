//! Control connections: TCP options the nodes set on them.

use std::net::TcpStream;
use std::time::Duration;

/// Makes the kernel probe an idle control connection, so that a peer that vanished without
/// closing it (powered off, cable pulled) is noticed in about 5 s: the blocked read then
/// fails, and the follower reconnects or the leader drops the session and stops streaming
/// to it. DSCP is set to AF41 like the media (control is interactive, not bulk).
pub(crate) fn tune_control(stream: &TcpStream) {
    let s = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(2))
        .with_interval(Duration::from_secs(1))
        .with_retries(3);
    // Both are best effort: without them a dead peer is only noticed by the next write.
    let _ = s.set_tcp_keepalive(&keepalive);
    let _ = s.set_tos_v4(super::Dscp::Af41.tos());
    let _ = s.set_tcp_nodelay(true);
}
