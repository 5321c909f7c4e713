//! Scenarios: music files as a leader's source. A FLAC file our own encoder writes decodes
//! bit-exactly; FLAC and WAV files play through a `FileSource` with the samples written (or,
//! resampled from 44.1 kHz, with the tone's frequency and level); a truncated and a
//! corrupted FLAC play a prefix of what was written, then end with a typed error while the
//! leader's group plays on; a file of random bytes is refused at open; randomly damaged
//! files never panic. MP3 and Ogg Vorbis files (and AAC and ALAC ones with the `aac` and
//! `alac` features), made by ffmpeg, decode to the tones they were made from (ignored by
//! default: they need ffmpeg, and fail without it; `.ci/run` runs them).

#[path = "common/alloc.rs"]
mod alloc;
#[path = "common/node.rs"]
mod node;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lockstep::control::Role;
use lockstep::node::{
    AudioSource, FileDecoder, FileEnd, FileError, FileSource, FlacWriter, Output, SourceError,
};
use node::*;

/// Frames per `fill`, as a leader asks for 5 ms packets at 48 kHz.
const PACKET: usize = 240;

/// "Music": a chord of three partials with a slow tremolo plus a little noise, `frames`
/// long, `channels` channels (each channel detuned a little), scaled to `bits`.
fn music(frames: usize, channels: usize, rate: u32, bits: u32, seed: u64) -> Vec<i32> {
    let full = ((1i64 << (bits - 1)) - 1) as f64;
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(frames * channels);
    for i in 0..frames {
        let t = i as f64 / f64::from(rate);
        for c in 0..channels {
            let d = 1.0 + 0.003 * c as f64;
            let tremolo = 0.75 + 0.25 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let x = 0.30 * (2.0 * std::f64::consts::PI * 220.0 * d * t).sin()
                + 0.20 * (2.0 * std::f64::consts::PI * 277.2 * d * t).sin()
                + 0.15 * (2.0 * std::f64::consts::PI * 329.6 * d * t).sin();
            // xorshift noise at about −50 dBFS.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.006;
            out.push(((x * tremolo + noise) * full).round() as i32);
        }
    }
    out
}

/// A sine of `freq` Hz at `amplitude` (of full scale) on every channel, as integers.
fn tone(
    frames: usize,
    channels: usize,
    rate: u32,
    bits: u32,
    freq: f64,
    amplitude: f64,
) -> Vec<i32> {
    let full = ((1i64 << (bits - 1)) - 1) as f64;
    (0..frames)
        .flat_map(|i| {
            let x =
                amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin();
            std::iter::repeat_n((x * full).round() as i32, channels)
        })
        .collect()
}

fn write_flac(path: &Path, rate: u32, channels: usize, bits: u32, samples: &[i32]) {
    let mut w = FlacWriter::new(rate, channels, bits).expect("writer");
    w.push(samples).expect("samples fit");
    w.write_file(path).expect("writes");
}

/// Plays `source` to its end at twice real time (as a leader would, but quicker), at most
/// `limit_frames`, and checks that `fill` allocates nothing; returns the samples.
fn play(source: &mut FileSource, channels: usize, limit_frames: usize) -> Vec<f32> {
    let mut out = Vec::new();
    let mut packet = vec![0f32; PACKET * channels];
    for _ in 0..limit_frames / PACKET + 2 {
        let (n, allocs, _) = alloc::watch(|| source.fill(&mut packet));
        assert_eq!(allocs, 0, "fill allocated");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&packet[..n * channels]);
        std::thread::sleep(Duration::from_micros(2_500));
    }
    panic!("the source did not end within {limit_frames} frames");
}

/// The integer samples as the decoder's floats.
fn as_float(samples: &[i32], bits: u32) -> Vec<f32> {
    let scale = 1.0 / (1u64 << (bits - 1)) as f32;
    samples.iter().map(|&s| s as f32 * scale).collect()
}

/// The frequency of a tone in `x` (one channel), from its zero crossings (interpolated).
fn frequency(x: &[f32], rate: u32) -> f64 {
    let mut crossings = Vec::new();
    for i in 1..x.len() {
        let (a, b) = (f64::from(x[i - 1]), f64::from(x[i]));
        if a < 0.0 && b >= 0.0 {
            crossings.push(i as f64 - 1.0 + a / (a - b));
        }
    }
    assert!(
        crossings.len() > 10,
        "no tone: {} crossings",
        crossings.len()
    );
    let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
    (crossings.len() - 1) as f64 / (last - first) * f64::from(rate)
}

/// RMS level of `x`, dBFS (a full-scale sine is −3.01).
fn level_db(x: &[f32]) -> f64 {
    let ms = x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64;
    10.0 * ms.log10()
}

/// Channel `c` of interleaved `x`, frames `range`.
fn channel(x: &[f32], channels: usize, c: usize, range: std::ops::Range<usize>) -> Vec<f32> {
    x.chunks_exact(channels)
        .skip(range.start)
        .take(range.len())
        .map(|f| f[c])
        .collect()
}

fn all_blocks(decoder: &mut FileDecoder) -> (Vec<f32>, Option<FileError>) {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        match decoder.next_block() {
            Ok(Some(b)) => out.extend_from_slice(b),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
    panic!("the decoder did not end");
}

#[test]
fn our_flac_encoder_is_decoded_bit_exactly_at_16_and_24_bits() {
    let dir = temp_dir("flac-exact");
    for (bits, channels, rate, frames) in [
        (16, 2, 44_100, 44_100 + 1234),
        (24, 2, 48_000, 30_000),
        (16, 1, 48_000, 4096 * 2),
        (24, 1, 96_000, 100),
    ] {
        let samples = music(frames, channels, rate, bits, 7);
        let path = dir.join(format!("m{bits}-{channels}-{rate}.flac"));
        write_flac(&path, rate, channels, bits, &samples);
        let size = std::fs::metadata(&path).unwrap().len() as usize;
        // Fixed predictors and Rice codes compress a chord: below 75 % of the PCM's size
        // (a file of a few frames is mostly headers).
        assert!(
            frames < 4096 || size < samples.len() * bits as usize / 8 * 3 / 4,
            "{bits}-bit: {size} bytes for {} samples",
            samples.len()
        );
        let mut decoder = FileDecoder::open(&path, channels, rate).expect("opens");
        assert_eq!(decoder.codec(), "flac");
        assert_eq!(
            (decoder.file_rate(), decoder.file_channels()),
            (rate, channels)
        );
        let (decoded, error) = all_blocks(&mut decoder);
        assert_eq!(error, None, "{bits}-bit {channels} ch");
        let expected = as_float(&samples, bits);
        assert_eq!(
            decoded.len(),
            expected.len(),
            "{bits}-bit {channels} ch: length"
        );
        let first_diff = decoded.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(
            first_diff, None,
            "{bits}-bit {channels} ch: first differing sample"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_flac_file_plays_through_a_file_source_sample_for_sample_then_finishes() {
    let dir = temp_dir("flac-play");
    let path = dir.join("song.flac");
    let samples = music(48_000, 2, 48_000, 16, 3);
    write_flac(&path, 48_000, 2, 16, &samples);
    let mut source = FileSource::open(&path, 2, 48_000).expect("opens");
    let monitor = source.monitor();
    assert!(source.describe().contains("flac"), "{}", source.describe());
    let played = play(&mut source, 2, 60_000);
    assert_eq!(
        monitor.underruns(),
        0,
        "the decoder kept up at twice real time"
    );
    assert_eq!(
        played,
        as_float(&samples, 16),
        "the samples written, in order"
    );
    assert_eq!(monitor.end(), Some(FileEnd::Finished));
    assert_eq!(monitor.frames_played(), 48_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_mono_flac_plays_on_both_channels_of_a_stereo_stream() {
    let dir = temp_dir("flac-mono");
    let path = dir.join("mono.flac");
    let samples = music(10_000, 1, 48_000, 16, 5);
    write_flac(&path, 48_000, 1, 16, &samples);
    let mut source = FileSource::open(&path, 2, 48_000).expect("opens");
    let played = play(&mut source, 2, 20_000);
    let expected: Vec<f32> = as_float(&samples, 16)
        .iter()
        .flat_map(|&s| [s, s])
        .collect();
    assert_eq!(played, expected);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A 44.1 kHz file on a 48 kHz stream: `left` Hz on the left, `right` Hz on the right, each
/// at −6 dBFS peak, one second; checks length, frequencies and levels after resampling.
fn check_resampled_tones(played: &[f32], left: f64, right: f64, tolerance_db: f64) {
    let frames = played.len() / 2;
    assert!(
        frames.abs_diff(48_000) <= 2,
        "one second at 48 kHz: {frames} frames"
    );
    // The middle half: away from the resampler's edges.
    let mid = 12_000..36_000;
    for (c, f) in [(0, left), (1, right)] {
        let x = channel(played, 2, c, mid.clone());
        let got = frequency(&x, 48_000);
        assert!(
            (got - f).abs() < 0.05,
            "channel {c}: {got:.3} Hz, wrote {f} Hz"
        );
        let level = level_db(&x);
        let expected = 20.0 * 0.5f64.log10() - 3.0103;
        assert!(
            (level - expected).abs() < tolerance_db,
            "channel {c}: {level:.3} dBFS, wrote {expected:.3}"
        );
    }
}

fn stereo_tones(rate: u32, bits: u32, left: f64, right: f64, frames: usize) -> Vec<i32> {
    let l = tone(frames, 1, rate, bits, left, 0.5);
    let r = tone(frames, 1, rate, bits, right, 0.5);
    l.iter().zip(&r).flat_map(|(&a, &b)| [a, b]).collect()
}

/// Writes one second of a 44.1 kHz 16-bit stereo WAV: a tone of `left` Hz on the left, of
/// `right` Hz on the right.
fn write_tones_wav(path: &std::path::Path, left: f64, right: f64) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in stereo_tones(44_100, 16, left, right, 44_100) {
        w.write_sample(s as i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn a_44k1_wav_is_resampled_to_48k_with_its_tones_intact() {
    let dir = temp_dir("wav-44k1");
    let path = dir.join("tones.wav");
    write_tones_wav(&path, 997.0, 1_503.0);
    let mut source = FileSource::open(&path, 2, 48_000).expect("opens");
    let monitor = source.monitor();
    let played = play(&mut source, 2, 60_000);
    check_resampled_tones(&played, 997.0, 1_503.0, 0.05);
    assert_eq!(monitor.end(), Some(FileEnd::Finished));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_48k_wav_plays_sample_for_sample() {
    let dir = temp_dir("wav-48k");
    let path = dir.join("song.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let samples = music(20_000, 2, 48_000, 24, 11);
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for &s in &samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let mut source = FileSource::open(&path, 2, 48_000).expect("opens");
    let played = play(&mut source, 2, 30_000);
    assert_eq!(played, as_float(&samples, 24));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_44k1_flac_is_resampled_to_48k_with_its_tones_intact() {
    let dir = temp_dir("flac-44k1");
    let path = dir.join("tones.flac");
    write_flac(
        &path,
        44_100,
        2,
        16,
        &stereo_tones(44_100, 16, 440.0, 1_000.0, 44_100),
    );
    let mut source = FileSource::open(&path, 2, 48_000).expect("opens");
    let played = play(&mut source, 2, 60_000);
    check_resampled_tones(&played, 440.0, 1_000.0, 0.05);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A one-second 48 kHz stereo FLAC of "music" in `dir`: its path and samples.
fn song(dir: &Path) -> (PathBuf, Vec<i32>) {
    let path = dir.join("song.flac");
    let samples = music(48_000, 2, 48_000, 16, 9);
    write_flac(&path, 48_000, 2, 16, &samples);
    (path, samples)
}

/// Plays `path` and checks it plays a prefix of `samples` at least `min_frames` long, then
/// ends with a typed error; returns the error.
fn plays_a_prefix_then_fails(path: &Path, samples: &[i32], min_frames: usize) -> FileError {
    let mut source = FileSource::open(path, 2, 48_000).expect("opens: the start is good");
    let monitor = source.monitor();
    let played = play(&mut source, 2, 60_000);
    let expected = as_float(samples, 16);
    assert!(
        played.len() / 2 >= min_frames && played.len() < expected.len(),
        "played {} of {} frames",
        played.len() / 2,
        expected.len() / 2
    );
    assert_eq!(played[..], expected[..played.len()], "a prefix of the file");
    match monitor.end() {
        Some(FileEnd::Failed(e)) => {
            assert_eq!(monitor.error(), Some(e.clone()));
            e
        }
        other => panic!("expected a failed end, got {other:?}"),
    }
}

#[test]
fn a_truncated_flac_plays_what_it_has_then_ends_with_a_truncation_error() {
    let dir = temp_dir("flac-truncated");
    let (path, samples) = song(&dir);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let error = plays_a_prefix_then_fails(&path, &samples, 4096 * 4);
    match &error {
        FileError::Truncated {
            path: p,
            frames,
            declared,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*declared, 48_000);
            assert!(*frames < 48_000 && *frames >= 4096 * 4, "{error}");
        }
        other => panic!("expected Truncated, got {other}"),
    }
    assert!(error.to_string().contains("truncated"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corrupted_flac_plays_up_to_the_damage_then_ends_with_a_corruption_error() {
    let dir = temp_dir("flac-corrupt");
    let (path, samples) = song(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    // Scribble over 200 bytes in the middle of the file.
    let mid = bytes.len() / 2;
    for (i, b) in bytes[mid..mid + 200].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let error = plays_a_prefix_then_fails(&path, &samples, 4096 * 3);
    assert!(
        matches!(&error, FileError::Corrupt { path: p, .. } if p == &path),
        "expected Corrupt, got {error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn random_bytes_and_missing_files_are_refused_at_open_with_clear_errors() {
    let dir = temp_dir("flac-random");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for (name, len) in [("noise.flac", 100_000), ("noise.mp3", 5_000), ("noise", 17)] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        match FileSource::open(&path, 2, 48_000) {
            Err(e @ SourceError::Unsupported { .. }) => {
                assert!(e.to_string().contains(name), "names the file: {e}")
            }
            Err(e) => panic!("{name}: expected Unsupported, got {e}"),
            Ok(s) => panic!("{name}: random bytes opened as {}", s.describe()),
        }
    }
    let err = FileSource::open(&dir.join("missing.flac"), 2, 48_000).unwrap_err();
    assert!(matches!(err, SourceError::Unreadable { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_group_plays_on_after_a_truncated_file_ends() {
    let dir = temp_dir("flac-group");
    let (path, _) = song(&dir);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let source = FileSource::open(&path, 2, 48_000).expect("opens");
    let monitor = source.monitor();
    let leader = leader_on("127.0.0.1:0", Box::new(source));
    let mut c = follower_config(&leader, Role::Full, 0.0);
    c.output = Output::Null;
    let follower = follower(c);
    let ended = wait_until(Duration::from_secs(5), || monitor.end().is_some());
    assert!(ended.is_some(), "the half file ends within 5 s");
    assert!(
        matches!(
            monitor.end(),
            Some(FileEnd::Failed(FileError::Truncated { .. }))
        ),
        "{:?}",
        monitor.end()
    );
    let before = leader.stats().rtp_packets;
    let received = follower.status().packets_received;
    std::thread::sleep(Duration::from_millis(500));
    let sent = leader.stats().rtp_packets - before;
    // 5 ms packets: about 100 in half a second.
    assert!(
        sent >= 60,
        "the leader sends on after the end: {sent} packets"
    );
    assert!(
        follower.status().packets_received > received,
        "the follower still receives"
    );
    assert_eq!(leader.followers().len(), 1, "the follower is still joined");
    follower.stop().expect("the follower stops cleanly");
    leader.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Makes `name` from a 44.1 kHz stereo WAV of two tones with ffmpeg (`args` choose the
/// codec), then decodes it through a `FileSource` at 48 kHz and checks the tones.
fn ffmpeg_file_plays(name: &str, args: &[&str], codec: &str) {
    let dir = temp_dir(&format!("ffmpeg-{codec}"));
    let wav = dir.join("tones.wav");
    write_tones_wav(&wav, 440.0, 1_000.0);
    let out = dir.join(name);
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&wav)
        .args(args)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "`ffmpeg` could not be started ({e}): this test needs ffmpeg \
                 (apt-get install ffmpeg)"
            )
        });
    assert!(status.success(), "ffmpeg failed: {status}");
    let mut source = FileSource::open(&out, 2, 48_000).expect("opens");
    assert!(source.describe().contains(codec), "{}", source.describe());
    let monitor = source.monitor();
    let played = play(&mut source, 2, 60_000);
    // Lossy codecs and their encoder delay: the level within 0.5 dB, the length within
    // 60 ms, the frequency as exact as before.
    let frames = played.len() / 2;
    assert!(frames.abs_diff(48_000) < 2_880, "{frames} frames");
    for (c, f) in [(0, 440.0), (1, 1_000.0)] {
        let x = channel(&played, 2, c, 12_000..36_000);
        let got = frequency(&x, 48_000);
        assert!(
            (got - f).abs() < 0.05,
            "channel {c}: {got:.3} Hz, wrote {f} Hz"
        );
        let level = level_db(&x);
        let expected = 20.0 * 0.5f64.log10() - 3.0103;
        assert!(
            (level - expected).abs() < 0.5,
            "channel {c}: {level:.3} dBFS, wrote {expected:.3}"
        );
    }
    assert_eq!(monitor.end(), Some(FileEnd::Finished));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn an_mp3_made_by_ffmpeg_plays_its_tones() {
    ffmpeg_file_plays("tones.mp3", &["-c:a", "libmp3lame", "-b:a", "192k"], "mp3");
}

#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn an_ogg_vorbis_file_made_by_ffmpeg_plays_its_tones() {
    ffmpeg_file_plays("tones.ogg", &["-c:a", "libvorbis", "-q:a", "6"], "vorbis");
}

#[test]
fn no_damage_to_a_flac_file_panics_the_decoder() {
    let dir = temp_dir("flac-damage");
    let samples = music(9_000, 2, 44_100, 16, 13);
    let mut w = FlacWriter::new(44_100, 2, 16).unwrap();
    w.push(&samples).unwrap();
    let good = w.finish();
    let path = dir.join("damaged.flac");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut refused, mut failed, mut whole) = (0, 0, 0);
    for round in 0..300 {
        let mut bytes = good.clone();
        // Flip a few bytes anywhere (headers included), and cut the end off every third.
        for _ in 0..1 + round % 4 {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] ^= 1 + (next() % 255) as u8;
        }
        if round % 3 == 0 {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        std::fs::write(&path, &bytes).unwrap();
        match FileDecoder::open(&path, 2, 48_000) {
            Err(SourceError::Unsupported { .. }) => refused += 1,
            Err(e) => panic!("round {round}: unexpected error {e}"),
            Ok(mut d) => match all_blocks(&mut d) {
                (_, Some(_)) => failed += 1,
                (out, None) => {
                    // A clean end must have every frame (at the stream's rate).
                    let frames = out.len() / 2;
                    assert!(
                        frames.abs_diff(9_000 * 48_000 / 44_100) <= 1,
                        "round {round}: {frames}"
                    );
                    whole += 1;
                }
            },
        }
    }
    assert!(
        failed > 50,
        "damage is found: {refused} refused, {failed} failed, {whole} whole"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "aac")]
#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn an_aac_file_made_by_ffmpeg_plays_its_tones() {
    ffmpeg_file_plays("tones.m4a", &["-c:a", "aac", "-b:a", "192k"], "aac");
}

#[cfg(feature = "alac")]
#[test]
#[ignore = "needs ffmpeg; .ci/run runs it"]
fn an_alac_file_made_by_ffmpeg_plays_its_tones() {
    ffmpeg_file_plays("tones.m4a", &["-c:a", "alac"], "alac");
}

#[test]
fn a_stalled_file_makes_fill_play_silence_and_count_underruns_without_blocking() {
    // A FIFO stands for a file on a slow disk or network share: the writer sends the first
    // 70 % of a song, stalls for 1.5 s, then sends the rest.
    let dir = temp_dir("flac-stall");
    let (song_path, _) = song(&dir);
    let bytes = std::fs::read(&song_path).unwrap();
    let fifo = dir.join("slow.flac");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&writer_path)
            .unwrap();
        let split = bytes.len() * 7 / 10;
        f.write_all(&bytes[..split]).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1_500));
        f.write_all(&bytes[split..]).unwrap();
    });
    let mut source = FileSource::open(&fifo, 2, 48_000).expect("opens");
    let monitor = source.monitor();
    let mut packet = vec![0f32; PACKET * 2];
    let mut slowest = Duration::ZERO;
    let mut calls = 0;
    // At twice real time: the song plays in 0.5 s, the stall adds 1.5 s; 4 s at most.
    for _ in 0..800 {
        let t = std::time::Instant::now();
        let (n, allocs, _) = alloc::watch(|| source.fill(&mut packet));
        slowest = slowest.max(t.elapsed());
        assert_eq!(allocs, 0, "fill allocated");
        calls += 1;
        if n == 0 {
            break;
        }
        std::thread::sleep(Duration::from_micros(2_500));
    }
    writer.join().unwrap();
    assert_eq!(
        monitor.end(),
        Some(FileEnd::Finished),
        "after {calls} calls"
    );
    assert!(
        monitor.underruns() >= 50,
        "the stall shows as underruns: {}",
        monitor.underruns()
    );
    assert_eq!(
        monitor.frames_played(),
        48_000,
        "every frame of the file, in the end"
    );
    // A fill that waited for the decoder would take most of the 1.5 s stall; 50 ms leaves
    // room for a busy machine descheduling the test.
    assert!(
        slowest < Duration::from_millis(50),
        "fill never waits for the decoder: slowest call {slowest:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
