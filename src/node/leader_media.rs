//! The leader's media thread: reads the clock, sleeps until the core's next chunk is due,
//! fills the chunk from the source, and sends the datagrams the core makes of it.
//!
//! The pacing, the stamps, the packets and their destinations are the core's
//! ([`LeaderCore::poll_media`](crate::core::LeaderCore::poll_media)); what stays here is the
//! source, read outside the core's lock (a source may block), and the crossfade of a
//! source switch.

use std::net::UdpSocket as StdUdp;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::core::Channel;
use crate::node::clock::NodeClock;
use crate::node::leader::LeaderShared;
use crate::node::ptp::lock;
use crate::node::source::{AudioSource, Crossfade};
use crate::time::Nanos;

/// Length of the crossfade at a source switch.
pub(crate) const SWITCH_FADE: Nanos = Nanos(50_000_000);

pub(crate) struct MediaLoop {
    pub(crate) shared: Arc<LeaderShared>,
    pub(crate) clock: NodeClock,
    pub(crate) rtp: crate::net::UdpSocket,
    pub(crate) rtcp: Option<StdUdp>,
    pub(crate) source: Box<dyn AudioSource>,
    pub(crate) channels: usize,
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
        let shared = Arc::clone(&self.shared);
        let mut due = lock(&shared.core).poll_media_timeout();
        while !shared.shutdown.load(Ordering::Acquire) {
            self.clock.sleep_until(due);
            let now = self.clock.now();
            let chunk = {
                let mut core = lock(&shared.core);
                let chunk = core.poll_media(now);
                due = core.poll_media_timeout();
                chunk
            };
            if let Some(s) = lock(&shared.next_source).take() {
                if let Some(old) = next.take() {
                    // A switch during a switch: the half-faded source is the old one now.
                    self.source = old;
                }
                next = Some(s);
                fade.restart();
            }
            let Some(chunk) = chunk else { continue };
            let pcm = &mut pcm[..(chunk.frames * chunk.channels).min(self.frames * self.channels)];
            match next.as_mut() {
                Some(n) => {
                    fade.fill(self.source.as_mut(), n.as_mut(), self.channels, pcm);
                    if fade.finished()
                        && let Some(n) = next.take()
                    {
                        self.source = n;
                    }
                }
                None => {
                    let got = (self.source.fill(pcm) * self.channels).min(pcm.len());
                    pcm[got..].fill(0.0);
                }
            }
            let mut core = lock(&shared.core);
            let _ = core.handle_media(now, &chunk, pcm);
            let stats = &shared.counters;
            while let Some(tx) = core.poll_media_transmit() {
                match tx.channel {
                    Channel::Rtcp => {
                        // Sender reports go to the RTCP port (RTP + 1) of the static
                        // destinations: standard players use them; our followers take timing
                        // from the RTP header extension.
                        if let Some(rtcp) = &self.rtcp {
                            let _ = rtcp.send_to(tx.payload, tx.to);
                        }
                    }
                    _ => {
                        if self.rtp.send_to(tx.payload, tx.to).is_ok() {
                            stats.rtp_packets.fetch_add(1, Ordering::Relaxed);
                        } else {
                            stats.rtp_send_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
    }
}
