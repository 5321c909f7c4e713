//! The leader's media thread: paces the source in packet-sized chunks on the leader clock,
//! stamps each chunk with the instant it is to be played, and sends the RTP packets to
//! every destination.
//!
//! Chunk `k` (one packet's frames, lasting `d`) is "captured" during `[t₀ + k·d,
//! t₀ + (k+1)·d)` and sent at the end of it; its presentation time is `t₀ + k·d + latency`.
//! While paused nothing is sent; on resume the stream carries on from the current time
//! (the sender marks the discontinuity). A source switch crossfades from the old source to the new one.

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::media::sender::RtpSender;
use crate::node::clock::NodeClock;
use crate::node::leader::LeaderShared;
use crate::node::ptp::lock;
use crate::node::source::{AudioSource, Crossfade};
use crate::time::{LeaderInstant, LocalInstant, Nanos};

/// Length of the crossfade at a source switch.
pub(crate) const SWITCH_FADE: Nanos = Nanos(50_000_000);

/// If the thread wakes this late (a stalled machine), it skips ahead rather than bursting.
const MAX_BEHIND: Nanos = Nanos(200_000_000);

pub(crate) struct MediaLoop {
    pub(crate) shared: Arc<LeaderShared>,
    pub(crate) clock: NodeClock,
    pub(crate) sender: RtpSender,
    pub(crate) rtp: crate::net::UdpSocket,
    pub(crate) rtcp: Option<StdUdp>,
    pub(crate) source: Box<dyn AudioSource>,
    pub(crate) channels: usize,
    pub(crate) latency: Nanos,
    /// The group the stream goes to instead of each follower, if multicast.
    pub(crate) multicast: Option<SocketAddr>,
    pub(crate) frames: usize,
    pub(crate) rate: u32,
}

impl MediaLoop {
    pub(crate) fn run(mut self) {
        let mut pcm = vec![0f32; self.frames * self.channels];
        let mut fade = Crossfade::new(
            (SWITCH_FADE.as_nanos() as u128 * u128::from(self.rate) / 1_000_000_000) as usize,
            pcm.len(),
        );
        let mut next: Option<Box<dyn AudioSource>> = None;
        let mut dests: Vec<SocketAddr> = Vec::with_capacity(64);
        let mut static_dests: Vec<SocketAddr> = Vec::with_capacity(8);
        let mut dest_version = u64::MAX;
        let mut rtcp_buf = [0u8; 512];
        let mut t0 = self.clock.now();
        let mut k: i64 = 0;
        let shared = Arc::clone(&self.shared);
        while !shared.shutdown.load(Ordering::Acquire) {
            let end = t0 + self.span(k + 1);
            self.clock.sleep_until(end);
            let now = self.clock.now();
            if now - end > MAX_BEHIND {
                // Skip the chunks the stall swallowed; the sender sees a discontinuity.
                t0 = now;
                k = 0;
                continue;
            }
            if let Some(s) = lock(&shared.next_source).take() {
                if let Some(old) = next.take() {
                    // A switch during a switch: the half-faded source is the old one now.
                    self.source = old;
                }
                next = Some(s);
                fade.restart();
            }
            let version = shared.dest_version.load(Ordering::Acquire);
            if version != dest_version {
                dest_version = version;
                let d = lock(&shared.dests);
                dests.clear();
                match self.multicast {
                    Some(group) => dests.push(group),
                    None => dests.extend(d.followers.iter().map(|(_, a)| *a)),
                }
                static_dests.clear();
                static_dests.extend(d.fixed.iter().copied());
            }
            let captured = t0 + self.span(k);
            k += 1;
            if shared.paused.load(Ordering::Acquire) {
                continue;
            }
            match next.as_mut() {
                Some(n) => {
                    fade.fill(self.source.as_mut(), n.as_mut(), self.channels, &mut pcm);
                    if fade.finished()
                        && let Some(n) = next.take()
                    {
                        self.source = n;
                    }
                }
                None => {
                    let got = (self.source.fill(&mut pcm) * self.channels).min(pcm.len());
                    pcm[got..].fill(0.0);
                }
            }
            let at = leader(captured + self.latency);
            let (rtp, stats) = (&self.rtp, &shared.counters);
            let mut emit = |p: &[u8]| {
                for to in dests.iter().chain(static_dests.iter()) {
                    if rtp.send_to(p, *to).is_ok() {
                        stats.rtp_packets.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.rtp_send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            };
            let _ = self.sender.push(&pcm, at, &mut emit);
            if let Some(rtcp) = &self.rtcp {
                while let Some(n) = self.sender.poll_rtcp(leader(now), &mut rtcp_buf) {
                    // Sender reports go to the RTCP port (RTP + 1) of the static destinations:
                    // standard players use them; our followers take timing from the RTP
                    // header extension.
                    for to in &static_dests {
                        let port = to.port().wrapping_add(1);
                        let _ = rtcp.send_to(&rtcp_buf[..n], SocketAddr::new(to.ip(), port));
                    }
                }
            }
        }
    }
}

impl MediaLoop {
    /// The duration of `k` chunks, exact to the nanosecond (a chunk is a whole number of
    /// frames, which at 44.1 kHz is not a whole number of nanoseconds or of ptimes).
    fn span(&self, k: i64) -> Nanos {
        let frames = i128::from(k) * self.frames as i128;
        Nanos((frames * 1_000_000_000 / i128::from(self.rate.max(1))) as i64)
    }
}

fn leader(t: LocalInstant) -> LeaderInstant {
    LeaderInstant::from_nanos(t.as_nanos())
}
