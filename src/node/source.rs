//! What a leader plays: a built-in test signal, a WAV file or raw PCM from a reader
//! (standard input), and the crossfade that makes a switch between them click-free. Music
//! files of any supported format play through [`FileSource`](crate::node::FileSource).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::sim::playout::{Source, TestSignal};

/// Why a source could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The file could not be opened or is not a WAV file we can read.
    #[error("cannot read input {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file's format does not fit the stream.
    #[error("input {path} is {got}, the stream needs {needed}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the stream needs.
        needed: String,
        /// What the file has.
        got: String,
    },
    /// The file is not audio, or not in a container or codec this build decodes.
    #[error("cannot play {path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What was found, or what was missing.
        reason: String,
    },
    /// The source's own thread could not be started.
    #[error("cannot start the source's thread: {reason}")]
    Thread {
        /// What the system said.
        reason: String,
    },
}

/// A source of interleaved `f32` PCM at the stream's rate and channel count.
///
/// The leader calls [`fill`](Self::fill) from its media thread once per packet time, so it
/// should not block for long: a source that has nothing (the end of a file, a stalled pipe)
/// says so and the leader sends silence.
pub trait AudioSource: Send {
    /// Fills `out` (whole frames) and returns how many frames it wrote; the rest of `out`
    /// is left for the caller to silence. 0 means the source has ended.
    fn fill(&mut self, out: &mut [f32]) -> usize;
    /// A short description for status lines.
    fn describe(&self) -> String;
}

/// The built-in test signal: white noise at −12 dBFS RMS, the same on every channel, so
/// that the sync meter finds one unambiguous correlation peak between any two speakers; or
/// a sine, for listening.
#[derive(Debug, Clone)]
pub struct TestSource {
    generator: Source,
    channels: usize,
    signal: TestSignal,
}

impl TestSource {
    /// Broadband noise for `channels` channels at `rate` Hz.
    pub fn noise(channels: usize, rate: u32) -> TestSource {
        TestSource::new(TestSignal::Noise, channels, rate)
    }

    /// `signal` for `channels` channels at `rate` Hz.
    pub fn new(signal: TestSignal, channels: usize, rate: u32) -> TestSource {
        TestSource {
            generator: Source::new(signal, 1, rate),
            channels: channels.max(1),
            signal,
        }
    }
}

impl AudioSource for TestSource {
    fn fill(&mut self, out: &mut [f32]) -> usize {
        for frame in out.chunks_exact_mut(self.channels) {
            frame.fill(self.generator.next());
        }
        out.len() / self.channels
    }

    fn describe(&self) -> String {
        match self.signal {
            TestSignal::Noise => "test noise".into(),
            TestSignal::Sine { freq_hz, .. } => format!("test sine {freq_hz} Hz"),
        }
    }
}

/// A source another thread feeds: an app's stream pushed over the control API, say. The
/// pushing side holds the [`PushHandle`]; the leader plays what has come, and silence while
/// nothing has (the stream goes on), until the handle ends it.
///
/// The queue holds at most the capacity given; a push beyond it takes what fits and says
/// how much, so the pusher paces itself. Neither side allocates after the start.
pub struct PushSource {
    shared: Arc<PushShared>,
    channels: usize,
}

/// The feeding end of a [`PushSource`]; cloned freely.
#[derive(Clone)]
pub struct PushHandle {
    shared: Arc<PushShared>,
    channels: usize,
}

struct PushShared {
    queue: Mutex<VecDeque<f32>>,
    /// Samples (not frames) the queue may hold.
    capacity: usize,
    ended: AtomicBool,
}

impl std::fmt::Debug for PushSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSource")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PushHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushHandle")
            .field("buffered_frames", &self.buffered_frames())
            .finish_non_exhaustive()
    }
}

impl PushSource {
    /// A source of `channels` channels holding up to `capacity_frames` frames, and its
    /// handle.
    pub fn new(channels: usize, capacity_frames: usize) -> (PushSource, PushHandle) {
        let channels = channels.max(1);
        let capacity = capacity_frames.max(1) * channels;
        let shared = Arc::new(PushShared {
            queue: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            ended: AtomicBool::new(false),
        });
        (
            PushSource {
                shared: Arc::clone(&shared),
                channels,
            },
            PushHandle { shared, channels },
        )
    }
}

impl PushHandle {
    /// Queues interleaved samples (whole frames; a partial last frame is dropped); returns
    /// the frames taken, fewer than given when the queue is full. Nothing is taken after
    /// [`end`](Self::end).
    pub fn push(&self, samples: &[f32]) -> usize {
        if self.shared.ended.load(Ordering::Acquire) {
            return 0;
        }
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        let room = (self.shared.capacity - q.len()) / self.channels;
        let frames = (samples.len() / self.channels).min(room);
        q.extend(&samples[..frames * self.channels]);
        frames
    }

    /// Queues 16-bit little-endian interleaved PCM; returns the frames taken.
    pub fn push_s16le(&self, bytes: &[u8]) -> usize {
        if self.shared.ended.load(Ordering::Acquire) {
            return 0;
        }
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        let room = (self.shared.capacity - q.len()) / self.channels;
        let frames = (bytes.len() / (2 * self.channels)).min(room);
        q.extend(
            bytes[..frames * self.channels * 2]
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0),
        );
        frames
    }

    /// Ends the stream: what is queued still plays, then the source ends.
    pub fn end(&self) {
        self.shared.ended.store(true, Ordering::Release);
    }

    /// Frames queued and not yet played.
    pub fn buffered_frames(&self) -> usize {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
            / self.channels
    }
}

impl AudioSource for PushSource {
    fn fill(&mut self, out: &mut [f32]) -> usize {
        let frames = out.len() / self.channels;
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        let take = (q.len() / self.channels).min(frames) * self.channels;
        for (o, s) in out.iter_mut().zip(q.drain(..take)) {
            *o = s;
        }
        if take == 0 && self.shared.ended.load(Ordering::Acquire) {
            return 0;
        }
        // What has not come yet is silence; the stream goes on.
        out[take..frames * self.channels].fill(0.0);
        frames
    }

    fn describe(&self) -> String {
        "a pushed stream".into()
    }
}

/// A WAV file, played once. Mono files are spread over every channel; otherwise the file
/// must have the stream's channel count. Its rate must be the stream's.
pub struct WavSource {
    path: PathBuf,
    reader: hound::WavReader<BufReader<File>>,
    file_channels: usize,
    channels: usize,
    scale: f32,
    float: bool,
    ended: bool,
}

impl std::fmt::Debug for WavSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSource")
            .field("path", &self.path)
            .finish()
    }
}

impl WavSource {
    /// Opens `path` for a stream of `channels` channels at `rate` Hz.
    pub fn open(path: &Path, channels: usize, rate: u32) -> Result<WavSource, SourceError> {
        let reader = hound::WavReader::open(path).map_err(|e| SourceError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let spec = reader.spec();
        let file_channels = usize::from(spec.channels);
        if spec.sample_rate != rate || (file_channels != 1 && file_channels != channels) {
            return Err(SourceError::Format {
                path: path.to_path_buf(),
                needed: format!("{rate} Hz, 1 or {channels} channels"),
                got: format!("{} Hz, {} channels", spec.sample_rate, spec.channels),
            });
        }
        let float = spec.sample_format == hound::SampleFormat::Float;
        if (float && spec.bits_per_sample != 32) || (!float && spec.bits_per_sample > 32) {
            return Err(SourceError::Format {
                path: path.to_path_buf(),
                needed: "16-, 24- or 32-bit integer or 32-bit float samples".into(),
                got: format!("{} bits", spec.bits_per_sample),
            });
        }
        let scale = if float {
            1.0
        } else {
            1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32
        };
        Ok(WavSource {
            path: path.to_path_buf(),
            reader,
            file_channels,
            channels: channels.max(1),
            scale,
            float,
            ended: false,
        })
    }

    fn sample(&mut self) -> Option<f32> {
        if self.float {
            self.reader.samples::<f32>().next()?.ok()
        } else {
            let s = self.reader.samples::<i32>().next()?.ok()?;
            Some(s as f32 * self.scale)
        }
    }
}

impl AudioSource for WavSource {
    fn fill(&mut self, out: &mut [f32]) -> usize {
        let mut frames = 0;
        if self.ended {
            return 0;
        }
        for frame in out.chunks_exact_mut(self.channels) {
            if self.file_channels == 1 {
                let Some(x) = self.sample() else {
                    self.ended = true;
                    break;
                };
                frame.fill(x);
            } else {
                for s in frame.iter_mut() {
                    match self.sample() {
                        Some(x) => *s = x,
                        None => {
                            self.ended = true;
                            return frames;
                        }
                    }
                }
            }
            frames += 1;
        }
        frames
    }

    fn describe(&self) -> String {
        format!("{}", self.path.display())
    }
}

/// Raw signed 16-bit little-endian interleaved PCM from a reader, such as standard input
/// (`ffmpeg ... -f s16le -`). A short read leaves the rest of the packet silent; the end of
/// the reader ends the source.
pub struct RawS16Source<R> {
    reader: R,
    channels: usize,
    bytes: Vec<u8>,
    /// Bytes of an incomplete frame carried to the next fill.
    carry: usize,
    ended: bool,
}

impl<R> std::fmt::Debug for RawS16Source<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawS16Source")
            .field("channels", &self.channels)
            .finish()
    }
}

impl<R: Read + Send> RawS16Source<R> {
    /// Reads `channels`-channel frames from `reader`.
    pub fn new(reader: R, channels: usize) -> RawS16Source<R> {
        RawS16Source {
            reader,
            channels: channels.max(1),
            bytes: Vec::new(),
            carry: 0,
            ended: false,
        }
    }
}

impl<R: Read + Send> AudioSource for RawS16Source<R> {
    fn fill(&mut self, out: &mut [f32]) -> usize {
        if self.ended {
            return 0;
        }
        let frame_bytes = 2 * self.channels;
        let want = out.len() / self.channels * frame_bytes;
        if self.bytes.len() < want {
            self.bytes.resize(want, 0);
        }
        let mut have = self.carry;
        while have < want {
            match self.reader.read(&mut self.bytes[have..want]) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(n) => have += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.ended = true;
                    break;
                }
            }
        }
        let frames = have / frame_bytes;
        for (s, b) in out[..frames * self.channels]
            .iter_mut()
            .zip(self.bytes.chunks_exact(2))
        {
            *s = f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0;
        }
        self.carry = have - frames * frame_bytes;
        self.bytes
            .copy_within(frames * frame_bytes..frames * frame_bytes + self.carry, 0);
        frames
    }

    fn describe(&self) -> String {
        "raw s16le input".into()
    }
}

/// Mixes from the playing source to the next over a fixed number of frames, with
/// equal-power gains (cos/sin), so a switch has no step in it and no dip in loudness for
/// uncorrelated material.
#[derive(Debug)]
pub(crate) struct Crossfade {
    len: usize,
    done: usize,
    scratch: Vec<f32>,
}

impl Crossfade {
    /// A fade over `len` frames with room for `max_samples` samples per call.
    pub(crate) fn new(len: usize, max_samples: usize) -> Crossfade {
        Crossfade {
            len: len.max(1),
            done: 0,
            scratch: vec![0.0; max_samples],
        }
    }

    /// Starts a new fade.
    pub(crate) fn restart(&mut self) {
        self.done = 0;
    }

    /// Whether the fade is over.
    pub(crate) fn finished(&self) -> bool {
        self.done >= self.len
    }

    /// Fills `out` with the fade from `old` to `new` (both filled here; what they do not
    /// supply is silence).
    pub(crate) fn fill(
        &mut self,
        old: &mut dyn AudioSource,
        new: &mut dyn AudioSource,
        channels: usize,
        out: &mut [f32],
    ) {
        let n = out.len().min(self.scratch.len());
        let (out, scratch) = (&mut out[..n], &mut self.scratch[..n]);
        let got = old.fill(out) * channels;
        out[got..].fill(0.0);
        let got = new.fill(scratch) * channels;
        scratch[got..].fill(0.0);
        for (frame, nf) in out
            .chunks_exact_mut(channels)
            .zip(scratch.chunks_exact(channels))
        {
            // The fade's last frame is wholly the new source.
            let x = (self.done as f32 / (self.len - 1).max(1) as f32).min(1.0)
                * std::f32::consts::FRAC_PI_2;
            let (g_old, g_new) = (x.cos(), x.sin());
            for (o, &v) in frame.iter_mut().zip(nf) {
                *o = *o * g_old + v * g_new;
            }
            self.done += 1;
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_pushed_stream_plays_what_came_then_silence_then_ends() {
        let (mut source, handle) = PushSource::new(2, 4);
        // Six frames offered, four fit.
        assert_eq!(handle.push(&[0.5; 12]), 4);
        assert_eq!(handle.buffered_frames(), 4);
        let mut out = [9.0f32; 6];
        assert_eq!(source.fill(&mut out), 3);
        assert_eq!(out, [0.5; 6]);
        // One frame left, then silence: the stream goes on.
        assert_eq!(source.fill(&mut out), 3);
        assert_eq!(out, [0.5, 0.5, 0.0, 0.0, 0.0, 0.0]);
        // 16-bit PCM: -32768 and 16384 are -1.0 and 0.5.
        assert_eq!(handle.push_s16le(&[0x00, 0x80, 0x00, 0x40, 0x01]), 1);
        handle.end();
        assert_eq!(
            handle.push(&[0.1, 0.1]),
            0,
            "nothing is taken after the end"
        );
        assert_eq!(source.fill(&mut out), 3);
        assert_eq!(out[..2], [-1.0, 0.5]);
        assert_eq!(source.fill(&mut out), 0, "ended and drained");
    }
    use super::*;

    struct Constant(f32, usize);
    impl AudioSource for Constant {
        fn fill(&mut self, out: &mut [f32]) -> usize {
            out.fill(self.0);
            out.len() / self.1
        }
        fn describe(&self) -> String {
            "constant".into()
        }
    }

    #[test]
    fn a_crossfade_moves_from_old_to_new_without_a_step() {
        let (mut a, mut b) = (Constant(1.0, 2), Constant(-1.0, 2));
        let mut fade = Crossfade::new(480, 2 * 240);
        let mut out = vec![0f32; 2 * 240];
        let mut all = Vec::new();
        while !fade.finished() {
            fade.fill(&mut a, &mut b, 2, &mut out);
            all.extend_from_slice(&out);
        }
        assert!((all[0] - 1.0).abs() < 1e-6, "starts on the old source");
        assert!((all[all.len() - 1] + 1.0).abs() < 1e-3, "ends on the new");
        let max_step = all
            .chunks_exact(2)
            .zip(all.chunks_exact(2).skip(1))
            .map(|(p, q)| (q[0] - p[0]).abs())
            .fold(0.0f32, f32::max);
        // A 480-frame quarter cosine: no step bigger than π/2/480 × √2.
        assert!(max_step < 0.005, "largest step {max_step}");
    }

    #[test]
    fn raw_s16_reads_frames_and_carries_a_split_frame() {
        // Two stereo frames and half of a third.
        let bytes: Vec<u8> = [16384i16, -16384, 0, 32767, 8192]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let mut src = RawS16Source::new(&bytes[..], 2);
        let mut out = [9.0f32; 6];
        assert_eq!(src.fill(&mut out), 2);
        assert_eq!(&out[..4], &[0.5, -0.5, 0.0, 32767.0 / 32768.0]);
        assert_eq!(src.fill(&mut out), 0, "the reader ended");
    }

    #[test]
    fn a_wav_of_the_wrong_rate_is_refused_and_a_missing_one_is_unreadable() {
        let dir = std::env::temp_dir().join(format!("lockstep-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("44k.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        w.write_sample(0i16).unwrap();
        w.write_sample(0i16).unwrap();
        w.finalize().unwrap();
        let err = WavSource::open(&path, 2, 48_000).unwrap_err();
        assert!(matches!(err, SourceError::Format { .. }), "{err}");
        let err = WavSource::open(&dir.join("missing.wav"), 2, 48_000).unwrap_err();
        assert!(matches!(err, SourceError::Unreadable { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_mono_wav_plays_on_every_channel_then_ends() {
        let dir = std::env::temp_dir().join(format!("lockstep-src1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mono.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for s in [16384i16, -8192, 0] {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let mut src = WavSource::open(&path, 2, 48_000).unwrap();
        let mut out = [0f32; 8];
        assert_eq!(src.fill(&mut out), 3);
        assert_eq!(&out[..6], &[0.5, 0.5, -0.25, -0.25, 0.0, 0.0]);
        assert_eq!(src.fill(&mut out), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
