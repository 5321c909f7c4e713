//! Scenario: a standard player listens to a group. The leader sends its stream to a static
//! destination besides its followers and writes an SDP file for it; ffmpeg, given only that
//! file, records the leader's 1 kHz test tone. Ignored by default (needs ffmpeg); `.ci/run`
//! installs ffmpeg and runs it with `--ignored`, where a missing ffmpeg fails it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/ports.rs"]
mod ports;
use ports::free_port_pair;

use lockstep::control::HouseholdKey;
use lockstep::node::{Leader, LeaderConfig, TestSource};
use lockstep::sim::playout::TestSignal;

fn require_ffmpeg() {
    let found = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "ffmpeg is not installed (apt-get install ffmpeg)");
}

#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn ffmpeg_plays_the_groups_stream_from_the_leaders_sdp_file() {
    require_ffmpeg();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-interop");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port_pair();
    let sdp = dir.join("group.sdp");
    let wav = dir.join("ffmpeg.wav");

    let key = HouseholdKey::new(b"lockstep interop household key!!").unwrap();
    let mut c = LeaderConfig::new("Interop", key, "127.0.0.1:0".parse().unwrap());
    c.dests = vec![format!("127.0.0.1:{port}").parse().unwrap()];
    c.sdp = Some(sdp.clone());
    let tone = TestSignal::Sine {
        freq_hz: 1000.0,
        amplitude: 0.5,
    };
    let leader = Leader::start(c, Box::new(TestSource::new(tone, 2, 48_000))).expect("leader");
    let text = std::fs::read_to_string(&sdp).expect("the leader wrote the SDP file");
    assert!(text.contains(&format!("m=audio {port} RTP/AVP")), "{text}");

    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-y",
            "-protocol_whitelist",
            "file,udp,rtp",
            "-i",
        ])
        .arg(&sdp)
        .args(["-t", "2", "-c:a", "pcm_s16le"])
        .arg(&wav)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg");
    // ffmpeg stops by itself after 2 s of audio; give it 15.
    let mut child = child;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    leader.shutdown();

    let mut r = hound::WavReader::open(&wav)
        .unwrap_or_else(|e| panic!("ffmpeg wrote no readable WAV ({e}):\n{log}"));
    assert_eq!(r.spec().channels, 2);
    let x: Vec<f32> = r
        .samples::<i16>()
        .step_by(2)
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    assert!(x.len() > 48_000, "only {} frames:\n{log}", x.len());
    let x = &x[4_800..];
    let rms = (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt();
    assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.05, "RMS {rms}");
    let crossings = x.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    let hz = crossings as f64 * 48_000.0 / x.len() as f64;
    assert!((hz - 1000.0).abs() < 10.0, "{hz} Hz");
    std::fs::remove_dir_all(&dir).ok();
}
