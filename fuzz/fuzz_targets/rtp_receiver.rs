//! Arbitrary datagrams, with arbitrary arrival times, into an RTP receiver: nothing panics,
//! and its buffers never grow past their configured bounds.
//!
//! Input layout: byte 0 picks the codec and format; then records of
//! `[kind: u8][len: u16 BE][time step in µs: u16 BE][len bytes]`. `kind` bit 0 sends the
//! bytes as RTCP instead of RTP; bit 1 reads from the output afterwards; bit 2 turns the
//! time step backwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::media::receiver::{ReceiverConfig, RtpReceiver};
use lockstep::media::{AudioFormat, CodecKind};
use lockstep::time::{LeaderInstant, Nanos};

fuzz_target!(|input: &[u8]| {
    let Some((&pick, mut rest)) = input.split_first() else {
        return;
    };
    let (kind, rate, channels) = match pick % 4 {
        0 => (CodecKind::L16, 48_000, 2),
        1 => (CodecKind::L24, 48_000, 2),
        2 => (CodecKind::L16, 44_100, 1),
        _ => (CodecKind::L24, 96_000, 8),
    };
    let format = AudioFormat::new(rate, channels).unwrap();
    let mut config = ReceiverConfig::new(kind, format, 96 + (pick >> 4));
    config.max_depth = 16;
    config.fifo_frames = 4_800;
    if pick & 8 != 0 {
        config.ntp_extension_id = None;
        config.media_clock_offset = Some(u32::from(pick) * 1_000_003);
    }
    let mut rx = RtpReceiver::new(config).unwrap();
    let heap = rx.heap_bytes();
    let mut now = LeaderInstant::from_nanos(1_700_000_000_000_000_000);
    let mut out = [0f32; 512];
    while rest.len() >= 5 {
        let flags = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let step = Nanos::from_micros(i64::from(u16::from_be_bytes([rest[3], rest[4]])));
        rest = &rest[5..];
        let data = &rest[..len.min(rest.len())];
        rest = &rest[data.len()..];
        now = if flags & 4 != 0 { now - step } else { now + step };
        if flags & 1 != 0 {
            rx.handle_rtcp(data);
        } else {
            rx.handle_rtp(data, now);
        }
        if flags & 2 != 0 {
            rx.handle_timeout(now);
            let _ = rx.poll_audio(&mut out);
        }
        assert!(rx.buffered_packets() <= 16);
        assert!(rx.buffered_frames() <= 4_800);
        assert_eq!(rx.heap_bytes(), heap);
    }
});
