//! The leader's cost of playing a FLAC file: decoding one second of stereo music, and
//! decoding it plus resampling 44.1 kHz to the 48 kHz stream.
//!
//! ```text
//! cargo bench --bench decode -- --warm-up-time 1 --measurement-time 4
//! LOCKSTEP_BENCH_FLAC=song.flac cargo bench --bench decode   # also a file of your own
//! ```
//!
//! The files are written by our [`FlacWriter`] (fixed predictors, 16-bit, 4096-frame
//! blocks) from "music": a melody of notes with six harmonics each, a different mix on each
//! channel, and noise at about −45 dBFS, one second long. Each iteration opens the file and
//! decodes all of it with a [`FileDecoder`], as the source's decoding thread does; the time
//! per iteration is the cost per second of audio (the target is ≤ 20 ms, 2 % of a core).
//! `LOCKSTEP_BENCH_FLAC` adds a file of your own (say, one from the reference encoder, whose
//! LPC subframes cost a little more to decode than fixed predictors), decoded to a 48 kHz
//! stereo stream; its time is per file, so divide by its length.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use lockstep::node::{FileDecoder, FlacWriter};

/// One second of stereo "music" at `rate`, 16-bit.
fn music(rate: u32) -> Vec<i32> {
    let notes = [220.0, 246.9, 261.6, 293.7, 329.6, 293.7, 261.6, 196.0];
    let mut noise = 0x1234_5678_9abc_def1u64;
    let mut out = Vec::with_capacity(2 * rate as usize);
    for i in 0..rate as usize {
        let t = i as f64 / f64::from(rate);
        let note = (t * 4.0) as usize % notes.len();
        let f = notes[note];
        // Each note decays from its onset.
        let env = (-(t * 4.0).fract() * 3.0).exp();
        let mut x = 0.0;
        for h in 1..=6 {
            x += (2.0 * std::f64::consts::PI * f * h as f64 * t).sin() / h as f64;
        }
        let bass = (2.0 * std::f64::consts::PI * f / 2.0 * t).sin();
        for c in 0..2 {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let n = ((noise >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.02;
            let mix = if c == 0 {
                0.25 * x * env + 0.15 * bass
            } else {
                0.15 * x * env + 0.25 * bass
            };
            out.push(((mix + n) * 32767.0).round() as i32);
        }
    }
    out
}

fn write(dir: &Path, rate: u32) -> PathBuf {
    let path = dir.join(format!("music-{rate}.flac"));
    let mut w = FlacWriter::new(rate, 2, 16).expect("writer");
    w.push(&music(rate)).expect("samples fit");
    w.write_file(&path).expect("writes");
    path
}

/// Opens and decodes all of `path` to a `rate` Hz stereo stream; returns the frames.
fn decode_all(path: &Path, rate: u32) -> usize {
    let mut d = FileDecoder::open(path, 2, rate).expect("opens");
    let mut frames = 0;
    while let Some(block) = d.next_block().expect("decodes") {
        frames += block.len() / 2;
        black_box(block[0]);
    }
    frames
}

fn decode(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("lockstep-bench-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let f48 = write(&dir, 48_000);
    let f44 = write(&dir, 44_100);
    // The bench checks what it times: every frame comes out, resampled ones at the new rate.
    assert_eq!(decode_all(&f48, 48_000), 48_000);
    assert_eq!(decode_all(&f44, 44_100), 44_100);
    assert!(decode_all(&f44, 48_000).abs_diff(48_000) <= 1);

    let mut group = c.benchmark_group("decode/flac_stereo_1s");
    group.bench_function("48k", |b| b.iter(|| decode_all(&f48, 48_000)));
    group.bench_function("44k1", |b| b.iter(|| decode_all(&f44, 44_100)));
    group.bench_function("44k1_resampled_to_48k", |b| {
        b.iter(|| decode_all(&f44, 48_000))
    });
    if let Some(own) = std::env::var_os("LOCKSTEP_BENCH_FLAC") {
        let own = PathBuf::from(own);
        group.bench_function("own_file_to_48k", |b| b.iter(|| decode_all(&own, 48_000)));
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, decode);
criterion_main!(benches);
