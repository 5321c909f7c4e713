//! [`NetNs`]: a throwaway network namespace for tests and demos that send multicast.
//!
//! A fresh namespace has only its own loopback interface, so whatever a test sends there can
//! reach no real network. It is made and removed with iproute2's `ip netns`, which needs
//! root; the tests that use it are ignored by default and run by CI with `--ignored`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Numbers the namespaces of this process, so that parallel tests get distinct names.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named network namespace (`/run/netns/NAME`), deleted on drop: for tests and demos
/// that must send multicast (PTP, mDNS) without it reaching the machine's real interfaces.
///
/// Linux only; it needs root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`) and iproute2's `ip`, and
/// every method fails with an [`io::Error`] that names the `ip` command when either is
/// missing. Interfaces it makes ([`veth_to`](Self::veth_to),
/// [`add_bridge`](Self::add_bridge), [`veth_to_bridge`](Self::veth_to_bridge)) live only
/// inside namespaces, and go with them.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// use lockstep::net::NetNs;
///
/// let hub = NetNs::create("my-demo")?;
/// hub.add_bridge("br0", "10.99.0.129/26")?;
/// let speaker = NetNs::create("my-demo")?;
/// speaker.veth_to_bridge(&hub, "br0", ("eth0", "10.99.0.130/26"), "port0")?;
/// speaker.route_multicast("eth0")?;
/// // Sockets made on this thread's child live in `speaker`'s namespace.
/// speaker.enter_thread(|| { /* start a node */ })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct NetNs {
    /// `PREFIX-PID-N`: the pid keeps concurrent test processes apart.
    name: String,
}

/// Runs `ip ARGS`, turning a missing `ip` or a failure into an error that says which.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::NotFound {
            " (is iproute2 installed?)"
        } else {
            ""
        };
        io::Error::new(
            e.kind(),
            format!("cannot run `ip {}`{hint}: {e}", args.join(" ")),
        )
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kind = if stderr.contains("not permitted") || stderr.contains("denied") {
        io::ErrorKind::PermissionDenied
    } else {
        io::ErrorKind::Other
    };
    Err(io::Error::new(
        kind,
        format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            stderr.trim()
        ),
    ))
}

impl NetNs {
    /// Creates the namespace `PREFIX-PID-N` with its loopback up, multicast-capable and
    /// routing all multicast (224.0.0.0/4), so sockets inside can use groups on 127.0.0.1.
    pub fn create(name_prefix: &str) -> io::Result<NetNs> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{name_prefix}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name])?;
        // From here on, dropping `ns` deletes the namespace if a later step fails.
        let ns = NetNs { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        ip(&["-n", &ns.name, "link", "set", "lo", "multicast", "on"])?;
        ip(&["-n", &ns.name, "route", "add", "224.0.0.0/4", "dev", "lo"])?;
        Ok(ns)
    }

    /// The names of the named network namespaces on this machine, as `ip netns list`
    /// prints them (a test checks with it that it left none behind).
    pub fn list() -> io::Result<Vec<String>> {
        let out = Command::new("ip").args(["netns", "list"]).output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "`ip netns list` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect())
    }

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Joins this namespace to `peer` with a veth pair: `here` (an interface name and an
    /// address with its prefix, e.g. `10.99.0.1/24`) on this side, `there` on the peer's,
    /// both up.
    ///
    /// The pair is created inside this namespace with its far end placed straight into the
    /// peer's, so it never exists in the host's namespace, not even for a moment. Deleting
    /// either namespace destroys both ends, so dropping the two [`NetNs`] cleans up; nothing
    /// here needs a guard of its own.
    pub fn veth_to(&self, peer: &NetNs, here: (&str, &str), there: (&str, &str)) -> io::Result<()> {
        let (near, near_addr) = here;
        let (far, far_addr) = there;
        let (a, b) = (self.name.as_str(), peer.name.as_str());
        ip(&[
            "-n", a, "link", "add", near, "type", "veth", "peer", "name", far, "netns", b,
        ])?;
        ip(&["-n", a, "addr", "add", near_addr, "dev", near])?;
        ip(&["-n", b, "addr", "add", far_addr, "dev", far])?;
        ip(&["-n", a, "link", "set", near, "up"])?;
        ip(&["-n", b, "link", "set", far, "up"])?;
        Ok(())
    }

    /// Makes a Linux bridge `name` in this namespace with the address `addr` (with its
    /// prefix, e.g. `10.99.0.129/26`), up, so that several namespaces joined to it with
    /// [`veth_to_bridge`](Self::veth_to_bridge) share one link, multicast included, and
    /// this namespace can talk on it too.
    pub fn add_bridge(&self, name: &str, addr: &str) -> io::Result<()> {
        let ns = self.name.as_str();
        ip(&["-n", ns, "link", "add", "name", name, "type", "bridge"])?;
        ip(&["-n", ns, "addr", "add", addr, "dev", name])?;
        ip(&["-n", ns, "link", "set", name, "up"])?;
        Ok(())
    }

    /// Joins this namespace to the bridge `bridge` of namespace `hub` (made by
    /// [`add_bridge`](Self::add_bridge)) with a veth pair: `here` (an interface name and an
    /// address with its prefix) on this side; on the hub's side the interface `port`, with
    /// no address, a port of the bridge. Both ends up.
    ///
    /// As with [`veth_to`](Self::veth_to), the pair never exists in the host's namespace,
    /// and deleting either namespace destroys both ends.
    pub fn veth_to_bridge(
        &self,
        hub: &NetNs,
        bridge: &str,
        here: (&str, &str),
        port: &str,
    ) -> io::Result<()> {
        let (near, near_addr) = here;
        let (a, b) = (self.name.as_str(), hub.name.as_str());
        ip(&[
            "-n", a, "link", "add", near, "type", "veth", "peer", "name", port, "netns", b,
        ])?;
        ip(&["-n", a, "addr", "add", near_addr, "dev", near])?;
        ip(&["-n", b, "link", "set", port, "master", bridge])?;
        ip(&["-n", a, "link", "set", near, "up"])?;
        ip(&["-n", b, "link", "set", port, "up"])?;
        Ok(())
    }

    /// Routes all multicast (224.0.0.0/4) out of `dev` instead of the loopback, so that a
    /// socket that names no multicast interface sends its groups over that link.
    pub fn route_multicast(&self, dev: &str) -> io::Result<()> {
        ip(&[
            "-n",
            &self.name,
            "route",
            "replace",
            "224.0.0.0/4",
            "dev",
            dev,
        ])
    }

    /// Runs `f` on a new thread that has first entered the namespace, so that every socket
    /// `f` creates lives there; returns what `f` returns.
    ///
    /// Fails without running `f` when the namespace cannot be entered: running it in the
    /// host's namespace instead would send on the real network. A panic in `f` is passed on.
    pub fn enter_thread<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open {path}: {e}")))?;
        std::thread::scope(|scope| {
            let handle = scope.spawn(move || {
                // SAFETY: `file` is an open namespace file for the whole call; setns only
                // changes the calling thread's network namespace, which is this new thread's
                // alone and ends with it.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    let e = io::Error::last_os_error();
                    return Err(io::Error::new(e.kind(), format!("setns({path}): {e}")));
                }
                Ok(f())
            });
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for NetNs {
    /// Deletes the namespace; a failure is printed, since drop cannot return it.
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("lockstep: leaving network namespace {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// The identity of the calling thread's network namespace.
    fn current_netns() -> std::path::PathBuf {
        std::fs::read_link("/proc/thread-self/ns/net").expect("read /proc/thread-self/ns/net")
    }

    /// The names `ip netns list` prints.
    fn listed() -> Vec<String> {
        NetNs::list().expect("run ip netns list")
    }

    #[test]
    #[ignore = "needs root and iproute2: run by .ci/run with --ignored"]
    fn create_enter_and_drop() {
        let ns = NetNs::create("lockstep-netns-test").expect("create a namespace");
        let name = ns.name().to_owned();
        assert!(listed().contains(&name), "{name} not in {:?}", listed());
        let host = current_netns();
        let (inside, links) = ns
            .enter_thread(|| {
                let links = std::fs::read_to_string("/proc/thread-self/net/dev")
                    .expect("read /proc/thread-self/net/dev");
                (current_netns(), links)
            })
            .expect("enter the namespace");
        assert_ne!(inside, host, "the thread did not change namespace");
        // Only the loopback lives there: nothing sent inside can reach a real network.
        let interfaces: Vec<&str> = links
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(interfaces, ["lo"]);
        assert_eq!(current_netns(), host, "the calling thread must stay put");
        drop(ns);
        assert!(!listed().contains(&name), "{name} still listed after drop");
    }

    /// The interfaces listed in `/proc/thread-self/net/dev` of the calling thread.
    fn interfaces() -> Vec<String> {
        std::fs::read_to_string("/proc/thread-self/net/dev")
            .expect("read /proc/thread-self/net/dev")
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(|s| s.trim().to_owned())
            .collect()
    }

    #[test]
    #[ignore = "needs root and iproute2: run by .ci/run with --ignored"]
    fn a_veth_pair_joins_two_namespaces_and_never_the_host() {
        let a = NetNs::create("lockstep-veth-test").expect("create namespace a");
        let b = NetNs::create("lockstep-veth-test").expect("create namespace b");
        // Names unique to this process, so that a concurrent run cannot clash with them.
        let (va, vb) = (
            format!("lsv{}a", std::process::id()),
            format!("lsv{}b", std::process::id()),
        );
        a.veth_to(&b, (&va, "10.99.0.1/24"), (&vb, "10.99.0.2/24"))
            .expect("make the veth pair");
        let in_a = a.enter_thread(interfaces).expect("enter a");
        let in_b = b.enter_thread(interfaces).expect("enter b");
        assert!(in_a.contains(&va) && !in_a.contains(&vb), "{in_a:?}");
        assert!(in_b.contains(&vb) && !in_b.contains(&va), "{in_b:?}");
        let host = interfaces();
        assert!(!host.contains(&va) && !host.contains(&vb), "{host:?}");
        drop((a, b));
        let host = interfaces();
        assert!(!host.contains(&va) && !host.contains(&vb), "{host:?}");
    }

    #[test]
    #[ignore = "needs root and iproute2: run by .ci/run with --ignored"]
    fn multicast_can_be_routed_out_of_a_veth() {
        let a = NetNs::create("lockstep-veth-test").expect("create namespace a");
        let b = NetNs::create("lockstep-veth-test").expect("create namespace b");
        let (va, vb) = (
            format!("lsm{}a", std::process::id()),
            format!("lsm{}b", std::process::id()),
        );
        a.veth_to(&b, (&va, "10.99.0.1/24"), (&vb, "10.99.0.2/24"))
            .expect("make the veth pair");
        let route = || {
            let out = Command::new("ip")
                .args(["-n", a.name(), "route", "show", "224.0.0.0/4"])
                .output()
                .expect("run ip route show");
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert!(route().contains("dev lo"), "{}", route());
        a.route_multicast(&va)
            .expect("route multicast out of the veth");
        let now = route();
        assert!(
            now.contains(&format!("dev {va}")) && !now.contains("dev lo"),
            "{now}"
        );
    }

    /// A UDP socket in the calling thread's namespace on `addr`'s port, joined to `group`
    /// on `addr`, with a 2 s read limit.
    fn multicast_listener(addr: Ipv4Addr, group: Ipv4Addr, port: u16) -> std::net::UdpSocket {
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).expect("bind");
        s.join_multicast_v4(&group, &addr).expect("join");
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        s
    }

    #[test]
    #[ignore = "needs root and iproute2: run by .ci/run with --ignored"]
    fn namespaces_on_one_bridge_share_multicast_and_the_host_sees_none_of_it() {
        let hub = NetNs::create("lockstep-bridge-test").expect("create the hub");
        let a = NetNs::create("lockstep-bridge-test").expect("create namespace a");
        let b = NetNs::create("lockstep-bridge-test").expect("create namespace b");
        let pid = std::process::id();
        let (br, pa, pb) = (
            format!("lsb{pid}"),
            format!("lsb{pid}a"),
            format!("lsb{pid}b"),
        );
        hub.add_bridge(&br, "10.99.0.190/26")
            .expect("make the bridge");
        a.veth_to_bridge(&hub, &br, ("eth0", "10.99.0.129/26"), &pa)
            .expect("join a");
        b.veth_to_bridge(&hub, &br, ("eth0", "10.99.0.130/26"), &pb)
            .expect("join b");
        for (ns, dev) in [(&hub, br.as_str()), (&a, "eth0"), (&b, "eth0")] {
            ns.route_multicast(dev).expect("route multicast");
        }
        let in_hub = hub.enter_thread(interfaces).expect("enter the hub");
        assert!(
            in_hub.contains(&br) && in_hub.contains(&pa) && in_hub.contains(&pb),
            "{in_hub:?}"
        );
        let host = interfaces();
        assert!(
            !host.contains(&br) && !host.contains(&pa) && !host.contains(&pb),
            "{host:?}"
        );
        let group = Ipv4Addr::new(239, 255, 77, 1);
        let port = 47_001;
        let in_b = b
            .enter_thread(|| multicast_listener(Ipv4Addr::new(10, 99, 0, 130), group, port))
            .expect("enter b");
        let in_hub = hub
            .enter_thread(|| multicast_listener(Ipv4Addr::new(10, 99, 0, 190), group, port))
            .expect("enter the hub");
        // The ports may take a moment to forward: a few sends, bounded.
        let sent = a
            .enter_thread(|| {
                let s = std::net::UdpSocket::bind((Ipv4Addr::new(10, 99, 0, 129), 0))
                    .expect("bind in a");
                for _ in 0..20 {
                    s.send_to(b"through the bridge", (group, port))
                        .expect("send");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            })
            .is_ok();
        assert!(sent);
        let mut buf = [0u8; 64];
        for (who, sock) in [("b", &in_b), ("the hub", &in_hub)] {
            let (n, from) = sock
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("{who} heard nothing from a: {e}"));
            assert_eq!(&buf[..n], b"through the bridge", "{who}");
            assert_eq!(from.ip(), Ipv4Addr::new(10, 99, 0, 129), "{who}");
        }
        drop((in_b, in_hub, a, b, hub));
        let host = interfaces();
        assert!(!host.contains(&br), "{host:?}");
    }

    #[test]
    #[ignore = "needs root and iproute2: run by .ci/run with --ignored"]
    fn a_panic_inside_is_passed_on_and_the_namespace_still_goes() {
        let ns = NetNs::create("lockstep-netns-test").expect("create a namespace");
        let name = ns.name().to_owned();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ns.enter_thread(|| -> u32 { panic!("inside") }).ok();
        }));
        assert!(caught.is_err());
        drop(ns);
        assert!(!listed().contains(&name));
    }
}
