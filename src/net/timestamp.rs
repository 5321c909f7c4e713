//! Kernel packet timestamps: turning them on and reading them out of control messages.
//!
//! Receive times come from `SO_TIMESTAMPING` (software receive stamps, reported in an
//! `SCM_TIMESTAMPING` message) or, where that option is refused, from `SO_TIMESTAMPNS`
//! (an `SCM_TIMESTAMPNS` message). Transmit times come only from `SO_TIMESTAMPING`: the kernel
//! queues one message per sent datagram on the socket's error queue, with the time in
//! `SCM_TIMESTAMPING` and the datagram's counter (`SOF_TIMESTAMPING_OPT_ID`) in a
//! `sock_extended_err`. All of them are `CLOCK_REALTIME`.

use std::mem::size_of;
use std::os::fd::RawFd;
use std::{io, ptr};

use super::clock::timespec_ns;

/// Where the times a socket reports come from, for statistics and for the caller to know
/// whether it must stamp packets itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimestampSource {
    /// The kernel stamps the packets (software timestamps, taken in the network stack).
    Kernel,
    /// The kernel does not: the caller reads a clock right after the call returns.
    User,
}

/// Which receive timestamp control message a socket gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RxStamps {
    /// `SCM_TIMESTAMPING`, software time in `ts[0]`.
    Timestamping,
    /// `SCM_TIMESTAMPNS`, one timespec.
    TimestampNs,
    /// None: receive times are taken in user space.
    Off,
}

/// What [`enable`] got the kernel to do.
#[derive(Clone, Copy, Debug)]
pub(super) struct Enabled {
    /// The receive timestamps in use.
    pub rx: RxStamps,
    /// Whether transmit timestamps are queued on the error queue.
    pub tx: bool,
}

/// `SO_TIMESTAMPING` flags for software receive stamps.
const RX_FLAGS: libc::c_uint = libc::SOF_TIMESTAMPING_RX_SOFTWARE | libc::SOF_TIMESTAMPING_SOFTWARE;

/// `SO_TIMESTAMPING` flags for software transmit stamps: numbered by a per-socket counter
/// (`OPT_ID`) so they can be matched to sends, without a copy of the payload (`OPT_TSONLY`),
/// which would only cost receive buffer space.
const TX_FLAGS: libc::c_uint = libc::SOF_TIMESTAMPING_TX_SOFTWARE
    | libc::SOF_TIMESTAMPING_SOFTWARE
    | libc::SOF_TIMESTAMPING_OPT_ID
    | libc::SOF_TIMESTAMPING_OPT_TSONLY;

/// Sets an integer socket option.
fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, a live c_int, for the whole call; the
    // kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            ptr::from_ref(&value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turns on what the kernel will give of the asked-for timestamps, best first.
///
/// `SO_TIMESTAMPING` carries both directions in one value, so both are asked for together;
/// if the kernel refuses that, receive stamps alone are tried, then `SO_TIMESTAMPNS`
/// (unless `allow_timestamping` is false, which tests use to reach the fallback). A refusal
/// is not an error: the socket reports [`TimestampSource::User`] for what it lacks.
pub(super) fn enable(fd: RawFd, rx: bool, tx: bool, allow_timestamping: bool) -> Enabled {
    let mut flags = 0;
    if rx {
        flags |= RX_FLAGS;
    }
    if tx {
        flags |= TX_FLAGS;
    }
    if flags != 0 && allow_timestamping {
        if set_int(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            flags as libc::c_int,
        )
        .is_ok()
        {
            let rx = if rx {
                RxStamps::Timestamping
            } else {
                RxStamps::Off
            };
            return Enabled { rx, tx };
        }
        if rx
            && tx
            && set_int(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPING,
                RX_FLAGS as libc::c_int,
            )
            .is_ok()
        {
            return Enabled {
                rx: RxStamps::Timestamping,
                tx: false,
            };
        }
    }
    let rx = if rx && set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1).is_ok() {
        RxStamps::TimestampNs
    } else {
        RxStamps::Off
    };
    Enabled { rx, tx: false }
}

/// `ee_info` of a stamp taken as the packet left for the device (linux/errqueue.h; libc
/// lacks it). The scheduler and ACK stamps have other values and are not asked for.
const SCM_TSTAMP_SND: u32 = 0;

/// A control-message buffer, aligned for `cmsghdr` as the `CMSG_*` helpers require.
#[repr(C, align(8))]
pub(super) struct CmsgBuf(pub [u8; 256]);

impl CmsgBuf {
    /// An empty buffer.
    pub(super) fn new() -> CmsgBuf {
        CmsgBuf([0; 256])
    }
}

/// `struct scm_timestamping`: software, (deprecated), hardware.
#[repr(C)]
#[derive(Clone, Copy)]
struct ScmTimestamping {
    /// The three stamps; only `ts[0]` (software) is asked for.
    ts: [libc::timespec; 3],
}

/// What the control messages of one `recvmsg` held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Found {
    /// A software timestamp, `CLOCK_REALTIME` ns.
    pub realtime_ns: Option<i64>,
    /// For error-queue messages: the `OPT_ID` of a transmit timestamp.
    pub tx_id: Option<u32>,
}

/// Reads `T` from a control message's payload if the message is long enough to hold one.
///
/// # Safety
/// `cmsg` must point to a control message inside the buffer `msg` was filled through, as the
/// `CMSG_*` iteration yields them.
unsafe fn payload<T: Copy>(cmsg: *const libc::cmsghdr) -> Option<T> {
    // SAFETY: per the contract, `cmsg` points to a complete header inside the buffer.
    // The cast is for musl, where cmsg_len is a u32 (glibc: usize).
    #[allow(clippy::unnecessary_cast)]
    let len = unsafe { (*cmsg).cmsg_len } as usize;
    // SAFETY: CMSG_LEN only does arithmetic.
    let needed = unsafe { libc::CMSG_LEN(size_of::<T>() as libc::c_uint) } as usize;
    if len < needed {
        return None;
    }
    // SAFETY: the message is at least CMSG_LEN(size_of::<T>()) long, so its payload holds a
    // whole `T`; the payload need not be aligned for `T`, hence the unaligned read. `T` is a
    // plain C struct for which any bytes are a valid value.
    Some(unsafe { ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<T>()) })
}

/// Walks the control messages `recvmsg` left in `msg` and picks out timestamps and, for
/// error-queue reads, transmit ids. Unknown messages are skipped.
///
/// # Safety
/// `msg` must be the header of a `recvmsg` call that just returned successfully, its
/// `msg_control` still pointing to the live buffer it was filled through.
pub(super) unsafe fn parse(msg: &libc::msghdr) -> Found {
    let mut found = Found::default();
    // MSG_CTRUNC: the buffer was too small and the kernel cut the messages; what is there is
    // still well formed (the kernel drops whole messages), so read what fits.
    // SAFETY: `msg` is a header just filled by recvmsg (the caller's contract).
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: non-null headers from CMSG_FIRSTHDR/CMSG_NXTHDR lie wholly in the buffer.
        let (level, ty) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
        match (level, ty) {
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING) => {
                // SAFETY: `cmsg` came from the CMSG_* walk over this buffer.
                if let Some(s) = unsafe { payload::<ScmTimestamping>(cmsg) } {
                    // All zero means the kernel had no software stamp (only hardware).
                    let ns = timespec_ns(&s.ts[0]);
                    if ns != 0 {
                        found.realtime_ns = Some(ns);
                    }
                }
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                // SAFETY: as above.
                if let Some(ts) = unsafe { payload::<libc::timespec>(cmsg) } {
                    found.realtime_ns = Some(timespec_ns(&ts));
                }
            }
            (libc::SOL_IP, libc::IP_RECVERR) | (libc::SOL_IPV6, libc::IPV6_RECVERR) => {
                // SAFETY: as above.
                if let Some(ee) = unsafe { payload::<libc::sock_extended_err>(cmsg) } {
                    // Only transmit timestamps are wanted; ICMP errors and the like are not.
                    if ee.ee_origin == libc::SO_EE_ORIGIN_TIMESTAMPING
                        && ee.ee_errno == libc::ENOMSG as u32
                        && ee.ee_info == SCM_TSTAMP_SND
                    {
                        found.tx_id = Some(ee.ee_data);
                    }
                }
            }
            _ => {}
        }
        // SAFETY: `msg` and `cmsg` are the header and a message of the same walk.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    found
}
