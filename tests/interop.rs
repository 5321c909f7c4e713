//! Interop with real RTP peers: ffmpeg and GStreamer receive our streams through our SDP,
//! and our receiver decodes theirs. Loopback (127.0.0.1) only.
//!
//! These tests need `ffmpeg` and `gst-launch-1.0` (Debian: `ffmpeg gstreamer1.0-tools
//! gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad`), so they
//! are ignored in the default run; `.ci/run` installs the tools and runs them with
//! `cargo test --release --features opus --test interop -- --ignored`. Without the tools
//! they fail, naming what is missing. The Opus cases need the `opus` feature.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "common/ports.rs"]
mod ports;
use ports::free_port_pair;

use lockstep::media::receiver::{ReceiverConfig, RtpReceiver};
use lockstep::media::sdp::SessionDescription;
use lockstep::media::sender::{RtpSender, SenderConfig};
use lockstep::media::{AudioFormat, CodecKind};
use lockstep::time::{LeaderInstant, Nanos};

const RATE: u32 = 48_000;

// ---------------------------------------------------------------- tools and plumbing

/// Fails the test, naming the package, if `tool` is not on PATH.
fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: these interop tests need ffmpeg and GStreamer \
         (apt-get install ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base \
         gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)"
    );
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("interop")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The leader clock for these tests: the wall clock, so NTP timestamps look sane to peers.
fn wall_now() -> LeaderInstant {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    LeaderInstant::from_nanos(d.as_nanos() as i64)
}

/// Waits up to `limit` for `child`; kills it if it is still running. Returns its stderr.
fn finish(mut child: Child, limit: Duration) -> String {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sends SIGINT (GStreamer's `-e` then finalizes the file) and waits.
fn interrupt(child: Child, limit: Duration) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    finish(child, limit)
}

fn read_wav(path: &Path) -> (Vec<f32>, u16, u32) {
    let mut r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} is not a readable WAV: {e}", path.display()));
    let spec = r.spec();
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.unwrap()).collect(),
        hound::SampleFormat::Int => {
            let scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.unwrap() as f32 / scale)
                .collect()
        }
    };
    (samples, spec.channels, spec.sample_rate)
}

// ---------------------------------------------------------------- signal analysis

/// A 4 s stereo test signal: a linear chirp from 200 Hz to 2 kHz (so any alignment is
/// unique), left at 0.5, right inverted at 0.35.
fn chirp(seconds: f64) -> Vec<f32> {
    let n = (seconds * RATE as f64) as usize;
    let (f0, f1) = (200.0, 2_000.0);
    (0..n)
        .flat_map(|i| {
            let t = i as f64 / RATE as f64;
            let phase = 2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * seconds));
            let x = phase.sin();
            [(0.5 * x) as f32, (-0.35 * x) as f32]
        })
        .collect()
}

/// The lag (in frames) at which `got` best matches `source`: frame `j` of `got` is frame
/// `j + lag` of the source. Searched over `-4800..max_lag` (a decoder's delay makes the
/// lag negative), in coarse steps, then refined.
fn align(source: &[f32], got: &[f32], max_lag: i64) -> i64 {
    let frames = (got.len() / 2) as i64;
    let window = 9_600.min(frames / 2);
    let start = frames / 4; // a stretch mid-recording
    let score = |lag: i64| -> f64 {
        let mut s = 0.0f64;
        for j in start..start + window {
            let k = j + lag;
            if k < 0 || 2 * k as usize >= source.len() {
                return f64::MIN;
            }
            s += f64::from(source[2 * k as usize]) * f64::from(got[2 * j as usize]);
        }
        s
    };
    let mut best = (f64::MIN, 0i64);
    for lag in (-4_800..max_lag).step_by(4) {
        let v = score(lag);
        if v > best.0 {
            best = (v, lag);
        }
    }
    let centre = best.1;
    for lag in centre - 8..centre + 8 {
        let v = score(lag);
        if v > best.0 {
            best = (v, lag);
        }
    }
    best.1
}

/// Correlation coefficient and SNR (dB) of `got` against the source shifted by `lag`
/// frames, over every frame they share, both channels.
fn compare(source: &[f32], got: &[f32], lag: i64) -> (f64, f64) {
    let (mut sxy, mut sxx, mut syy, mut err) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for j in 0..(got.len() / 2) as i64 {
        let k = j + lag;
        if k < 0 || 2 * k as usize >= source.len() {
            continue;
        }
        for c in 0..2 {
            let x = f64::from(source[2 * k as usize + c]);
            let y = f64::from(got[2 * j as usize + c]);
            sxy += x * y;
            sxx += x * x;
            syy += y * y;
            err += (x - y) * (x - y);
        }
    }
    (sxy / (sxx * syy).sqrt(), 10.0 * (sxx / err).log10())
}

/// Frequency of channel 0 from its rising zero crossings, interpolated.
fn frequency(samples: &[f32], channels: usize) -> f64 {
    let x: Vec<f32> = samples.iter().step_by(channels).copied().collect();
    let mut crossings = Vec::new();
    for i in 1..x.len() {
        if x[i - 1] < 0.0 && x[i] >= 0.0 {
            let frac = f64::from(-x[i - 1]) / f64::from(x[i] - x[i - 1]);
            crossings.push((i - 1) as f64 + frac);
        }
    }
    assert!(crossings.len() > 10, "no tone in the decoded audio");
    let n = crossings.len() - 1;
    n as f64 * f64::from(RATE) / (crossings[n] - crossings[0])
}

// ---------------------------------------------------------------- we send, they receive

fn sdp_for(codec: CodecKind, port: u16, ptime: u32, pt: u8) -> SessionDescription {
    SessionDescription {
        session_name: "lockstep interop".into(),
        session_id: 1,
        origin: "127.0.0.1".parse().unwrap(),
        destination: ("127.0.0.1".parse::<std::net::IpAddr>().unwrap(), port).into(),
        multicast_ttl: None,
        payload_type: pt,
        codec,
        format: AudioFormat::new(RATE, 2).unwrap(),
        ptime_ms: Some(ptime),
        ntp_extension_id: Some(1),
        ptp_reference: None,
        media_clock_offset: Some(0),
    }
}

/// Streams `source` to 127.0.0.1:`port` in real time (RTP) and SRs to `port + 1`.
fn stream_to(codec: CodecKind, port: u16, source: &[f32]) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut config = SenderConfig::new(codec, AudioFormat::new(RATE, 2).unwrap(), 0x10C5_7E99);
    config.payload_type = 96;
    let mut sender = RtpSender::new(config).expect("sender");
    let chunk = sender.frames_per_packet();
    let ptime = Duration::from_millis(u64::from(sender.ptime_ms()));
    let start = Instant::now();
    let t0 = wall_now() + Nanos::from_millis(50);
    let mut rtcp = [0u8; 256];
    for (k, pcm) in source.chunks_exact(2 * chunk).enumerate() {
        let at = t0 + Nanos::from_nanos((k * chunk) as i64 * 1_000_000_000 / i64::from(RATE));
        sender.handle_pcm(pcm, at).expect("handle_pcm");
        while let Some(p) = sender.poll_transmit() {
            socket.send_to(p, ("127.0.0.1", port)).expect("send");
        }
        if let Some(n) = sender.poll_rtcp(wall_now(), &mut rtcp) {
            socket
                .send_to(&rtcp[..n], ("127.0.0.1", port + 1))
                .expect("send rtcp");
        }
        let next = start + ptime * (k as u32 + 1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// What a peer recorded, compared with the source.
fn check_recording(name: &str, wav: &Path, source: &[f32], codec: CodecKind) {
    let (got, channels, rate) = read_wav(wav);
    assert_eq!((channels, rate), (2, RATE), "{name}: WAV format");
    assert!(
        got.len() / 2 > RATE as usize,
        "{name}: only {} frames recorded",
        got.len() / 2
    );
    let lag = align(source, &got, 2 * i64::from(RATE));
    let (corr, snr) = compare(source, &got, lag);
    println!(
        "{name}: {} frames, aligned at source frame {lag}, correlation {corr:.5}, SNR {snr:.1} dB",
        got.len() / 2
    );
    match codec {
        CodecKind::Opus => assert!(snr > 20.0, "{name}: SNR {snr:.1} dB"),
        _ => assert!(corr > 0.99, "{name}: correlation {corr:.5}"),
    }
}

fn ffmpeg_receives(codec: CodecKind, name: &str) {
    require("ffmpeg");
    let dir = scratch_dir(name);
    let port = free_port_pair();
    let ptime = if codec == CodecKind::Opus { 20 } else { 5 };
    let sdp = dir.join("stream.sdp");
    std::fs::write(&sdp, sdp_for(codec, port, ptime, 96).to_sdp()).unwrap();
    let wav = dir.join("out.wav");
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-y",
            "-protocol_whitelist",
            "file,udp,rtp",
            "-i",
        ])
        .arg(&sdp)
        .args(["-t", "2.5", "-c:a", "pcm_s16le"])
        .arg(&wav)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg");
    std::thread::sleep(Duration::from_millis(700));
    let source = chirp(4.0);
    stream_to(codec, port, &source);
    let log = finish(child, Duration::from_secs(10));
    assert!(wav.exists(), "{name}: ffmpeg wrote no WAV:\n{log}");
    check_recording(name, &wav, &source, codec);
}

fn gstreamer_receives(codec: CodecKind, name: &str) {
    require("gst-launch-1.0");
    let dir = scratch_dir(name);
    let port = free_port_pair();
    let ptime = if codec == CodecKind::Opus { 20 } else { 5 };
    let sdp = dir.join("stream.sdp");
    std::fs::write(&sdp, sdp_for(codec, port, ptime, 96).to_sdp()).unwrap();
    let wav = dir.join("out.wav");
    let decode = match codec {
        CodecKind::L16 => "rtpL16depay",
        CodecKind::L24 => "rtpL24depay",
        CodecKind::Opus => "rtpopusdepay ! opusdec",
        other => panic!("no GStreamer depayloader known for {other:?}"),
    };
    let pipeline = format!(
        "filesrc location={} ! sdpdemux latency=100 ! {decode} ! audioconvert ! \
         audio/x-raw,format=S16LE ! wavenc ! filesink location={}",
        sdp.display(),
        wav.display()
    );
    let child = Command::new("sh")
        .args(["-c", &format!("exec gst-launch-1.0 -e {pipeline}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gst-launch-1.0");
    std::thread::sleep(Duration::from_millis(700));
    let source = chirp(4.0);
    stream_to(codec, port, &source);
    std::thread::sleep(Duration::from_millis(300));
    let log = interrupt(child, Duration::from_secs(10));
    assert!(wav.exists(), "{name}: GStreamer wrote no WAV:\n{log}");
    check_recording(name, &wav, &source, codec);
}

#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn ffmpeg_receives_our_l16() {
    ffmpeg_receives(CodecKind::L16, "ffmpeg_rx_l16");
}

#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn ffmpeg_receives_our_l24() {
    ffmpeg_receives(CodecKind::L24, "ffmpeg_rx_l24");
}

#[cfg(feature = "opus")]
#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn ffmpeg_receives_our_opus() {
    ffmpeg_receives(CodecKind::Opus, "ffmpeg_rx_opus");
}

#[test]
#[ignore = "needs GStreamer; .ci/run runs it"]
fn gstreamer_receives_our_l16() {
    gstreamer_receives(CodecKind::L16, "gst_rx_l16");
}

#[test]
#[ignore = "needs GStreamer; .ci/run runs it"]
fn gstreamer_receives_our_l24() {
    gstreamer_receives(CodecKind::L24, "gst_rx_l24");
}

#[cfg(feature = "opus")]
#[test]
#[ignore = "needs GStreamer; .ci/run runs it"]
fn gstreamer_receives_our_opus() {
    gstreamer_receives(CodecKind::Opus, "gst_rx_opus");
}

// ---------------------------------------------------------------- they send, we receive

/// Receives on 127.0.0.1:`port` while `child` sends, feeding our receiver with arrival
/// times on the wall clock; returns the decoded audio after checking its timeline.
fn receive_from(name: &str, mut child: Child, port: u16, codec: CodecKind, pt: u8) -> Vec<f32> {
    let socket = UdpSocket::bind(("127.0.0.1", port)).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut config = ReceiverConfig::new(codec, AudioFormat::new(RATE, 2).unwrap(), pt);
    config.ntp_extension_id = None;
    let mut rx = RtpReceiver::new(config).expect("receiver");
    let mut buf = [0u8; 2048];
    let mut out = vec![0f32; 2 * 960];
    let mut decoded = Vec::new();
    let mut next_at: Option<LeaderInstant> = None;
    let start = Instant::now();
    let mut last_packet = Instant::now();
    let mut exited = false;
    while start.elapsed() < Duration::from_secs(15) {
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            rx.handle_rtp(&buf[..n], wall_now());
            last_packet = Instant::now();
        }
        let done = exited && last_packet.elapsed() > Duration::from_millis(500);
        // At the end, let time run on so that everything still held comes out.
        let now = wall_now()
            + if done {
                Nanos::from_secs(2)
            } else {
                Nanos::ZERO
            };
        rx.handle_timeout(now);
        while let Some(block) = rx.poll_audio(&mut out) {
            if let Some(expect) = next_at {
                let off = (block.presentation - expect).abs();
                assert!(
                    off <= Nanos::from_micros(21),
                    "{name}: timeline jumped by {off} (a gap that was not concealed)"
                );
            }
            next_at = Some(
                block.presentation
                    + Nanos::from_nanos(block.frames as i64 * 1_000_000_000 / i64::from(RATE)),
            );
            decoded.extend_from_slice(&out[..block.frames * 2]);
        }
        if done {
            break;
        }
        exited = exited || child.try_wait().expect("wait").is_some();
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("sender output");
    let stats = rx.stats();
    println!(
        "{name}: {} packets, {} frames decoded, lost {}, concealed {} frames, dry {} frames, \
         late {}, rejected {}",
        stats.received,
        decoded.len() / 2,
        stats.lost,
        stats.concealed_frames,
        stats.dry_frames,
        stats.late,
        stats.rejected.total()
    );
    assert!(
        stats.received > 20,
        "{name}: the sender's packets did not arrive; its stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stats.rejected.total(), 0, "{name}: {stats:?}");
    assert!(
        stats.concealed_frames == 0 || stats.lost > 0,
        "{name}: concealment without loss: {stats:?}"
    );
    // Once the sender stopped, letting time run on made the receiver conceal the dry
    // stream (a fade to silence, up to max_conceal): that tail is not the sender's audio.
    let dry = 2 * stats.dry_frames as usize;
    assert!(dry <= decoded.len() / 2, "{name}: mostly dry: {stats:?}");
    decoded.truncate(decoded.len() - dry);
    decoded
}

fn check_tone(name: &str, decoded: &[f32], expect_hz: f64) {
    // Skip the codec's start-up and the last packet.
    let skip = 2 * 4_800;
    assert!(decoded.len() > 4 * skip, "{name}: too little audio decoded");
    let f = frequency(&decoded[skip..decoded.len() - skip], 2);
    let err = (f - expect_hz).abs() / expect_hz;
    println!("{name}: tone at {f:.3} Hz (error {:.4}%)", err * 100.0);
    assert!(
        err < 0.001,
        "{name}: tone at {f:.3} Hz, expected {expect_hz} Hz"
    );
}

fn gst_sends(name: &str, caps: &str, pay: &str, codec: CodecKind, pt: u8) {
    require("gst-launch-1.0");
    let port = free_port_pair();
    let pipeline = format!(
        "audiotestsrc is-live=true wave=sine freq=1000 num-buffers=120 ! {caps} ! {pay} pt={pt} ! \
         udpsink host=127.0.0.1 port={port}"
    );
    let child = Command::new("sh")
        .args(["-c", &format!("exec gst-launch-1.0 {pipeline}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gst-launch-1.0");
    let decoded = receive_from(name, child, port, codec, pt);
    check_tone(name, &decoded, 1_000.0);
}

fn ffmpeg_sends(name: &str, encoder: &[&str], codec: CodecKind, pt: u8) {
    require("ffmpeg");
    let port = free_port_pair();
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000:duration=3",
            "-ac",
            "2",
        ])
        .args(encoder)
        .args(["-payload_type", &pt.to_string(), "-f", "rtp"])
        .arg(format!("rtp://127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg");
    let decoded = receive_from(name, child, port, codec, pt);
    check_tone(name, &decoded, 1_000.0);
}

#[test]
#[ignore = "needs GStreamer; .ci/run runs it"]
fn we_receive_gstreamer_l16() {
    gst_sends(
        "gst_tx_l16",
        "audio/x-raw,format=S16BE,rate=48000,channels=2",
        "rtpL16pay",
        CodecKind::L16,
        97,
    );
}

#[test]
#[ignore = "needs GStreamer; .ci/run runs it"]
fn we_receive_gstreamer_l24() {
    gst_sends(
        "gst_tx_l24",
        "audio/x-raw,format=S24BE,rate=48000,channels=2",
        "rtpL24pay",
        CodecKind::L24,
        97,
    );
}

#[cfg(feature = "opus")]
#[test]
#[ignore = "needs GStreamer; .ci/run runs it"]
fn we_receive_gstreamer_opus() {
    gst_sends(
        "gst_tx_opus",
        "audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=128000",
        "rtpopuspay",
        CodecKind::Opus,
        96,
    );
}

#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn we_receive_ffmpeg_l16() {
    ffmpeg_sends("ffmpeg_tx_l16", &["-c:a", "pcm_s16be"], CodecKind::L16, 97);
}

#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn we_receive_ffmpeg_l24() {
    ffmpeg_sends("ffmpeg_tx_l24", &["-c:a", "pcm_s24be"], CodecKind::L24, 97);
}

#[cfg(feature = "opus")]
#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn we_receive_ffmpeg_opus() {
    ffmpeg_sends(
        "ffmpeg_tx_opus",
        &["-c:a", "libopus", "-b:a", "128k"],
        CodecKind::Opus,
        96,
    );
}
