//! Music files as a leader's source: FLAC, MP3, Ogg Vorbis and WAV, decoded with symphonia,
//! resampled to the stream's rate with rubato, played through a [`FileSource`].
//!
//! Formats: FLAC (`.flac`), MP3, Ogg Vorbis and WAV (PCM) always; AAC (ADTS `.aac`) with the
//! crate's `aac` feature and ALAC and AAC in MP4/M4A files with the `alac` and `aac`
//! features (both bring in symphonia's MP4 reader).
//!
//! How data flows: [`FileSource::open`] probes the file and makes its decoder on the
//! caller's thread (so that a file that is not audio, or that this build cannot decode, is
//! refused there with a [`SourceError`]), decodes the first half second, and then leaves
//! decoding to a thread of its own. That thread runs a [`FileDecoder`] (demux, decode, map
//! the channels, resample) and pushes whole frames into a bounded single-producer,
//! single-consumer ring; [`AudioSource::fill`], on the leader's media thread, only copies
//! out of the ring. It never blocks and never allocates: if the decoder has fallen behind,
//! the missing frames are silence and [`FileMonitor::underruns`] counts it.
//!
//! Channels: a mono file plays on every channel of the stream; a mono stream gets the mean
//! of the file's channels; otherwise stream channel `i` plays file channel `i` (a stereo file
//! on a stereo stream as is; the extra channels of a wider stream are silent; a narrower
//! stream keeps the file's first channels, so 5.1 on stereo keeps front left and right).
//!
//! How a file ends: at its clean end, the source returns 0 from `fill` and
//! [`FileMonitor::end`] says [`FileEnd::Finished`]. A corrupt or truncated file plays every
//! frame decoded before the fault, then ends the same way with [`FileEnd::Failed`] and a
//! [`FileError`] naming the file, the frame where it stopped and why. The leader goes on
//! sending silence either way, so the group stays up. Nothing in a file's content can
//! panic the source.
//!
//! [`FlacWriter`] writes FLAC files (our own encoder) for tests, benches and demos.

mod decode;
mod flac_writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringbuf::HeapRb;
use ringbuf::traits::{Consumer, Observer, Producer, Split};

pub use decode::FileDecoder;
pub use flac_writer::{FLAC_BLOCK_FRAMES, FlacWriteError, FlacWriter};

use crate::node::source::{AudioSource, SourceError};

/// Audio held between the decoding thread and `fill`, in seconds.
const RING_SECONDS: f64 = 0.5;
/// How long the decoding thread sleeps when the ring is full.
const DECODER_NAP: Duration = Duration::from_millis(10);

/// Why a file stopped before its end: every frame before the fault was played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file ends before the audio its container announced.
    #[error("{path} is truncated: it ends after {frames} frames of {declared}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Frames decoded (at the file's rate) before the end.
        frames: u64,
        /// Frames the container declared (0 where it declares none).
        declared: u64,
    },
    /// A packet could not be demuxed or decoded.
    #[error("{path} is corrupt after {frames} frames: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Frames decoded (at the file's rate) before the fault.
        frames: u64,
        /// What the decoder found.
        reason: String,
    },
}

/// How a file source's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileEnd {
    /// The whole file was played.
    Finished,
    /// The file stopped early; what came before was played.
    Failed(FileError),
}

/// State shared between the source, its decoding thread and its monitors.
#[derive(Debug, Default)]
struct Shared {
    /// The decoding thread has pushed its last frame.
    decoded: AtomicBool,
    /// `fill` has handed out the last frame.
    ended: AtomicBool,
    /// The source was dropped: the decoding thread stops.
    stop: AtomicBool,
    underruns: AtomicU64,
    frames_played: AtomicU64,
    /// Set by the decoding thread before `decoded`.
    error: Mutex<Option<FileError>>,
}

/// Watches a [`FileSource`] after it has been handed to a leader: whether and how it ended,
/// and its underruns. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FileMonitor {
    shared: Arc<Shared>,
}

impl FileMonitor {
    /// `None` while the file plays; how it ended once `fill` has handed out its last frame
    /// (from then on `fill` returns 0).
    pub fn end(&self) -> Option<FileEnd> {
        if !self.shared.ended.load(Ordering::Acquire) {
            return None;
        }
        Some(match self.error() {
            Some(e) => FileEnd::Failed(e),
            None => FileEnd::Finished,
        })
    }

    /// The fault that ended (or, once the frames before it are played, will end) the file.
    pub fn error(&self) -> Option<FileError> {
        self.shared
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Calls to `fill` that found the decoder behind and played silence for what was missing.
    pub fn underruns(&self) -> u64 {
        self.shared.underruns.load(Ordering::Relaxed)
    }

    /// Frames of the file handed out by `fill` so far (at the stream's rate).
    pub fn frames_played(&self) -> u64 {
        self.shared.frames_played.load(Ordering::Relaxed)
    }
}

/// A music file, played once: FLAC, MP3, Ogg Vorbis or WAV, plus AAC and ALAC with the
/// `aac` and `alac` features; resampled to the stream's rate where the file's differs.
///
/// [`open`](Self::open) probes the file and decodes its first half second on the caller's
/// thread, then a thread of the source's own decodes the rest into a bounded ring. `fill`
/// (the leader's media thread) only copies out of the ring: it never blocks, and if the
/// decoder is behind it plays silence for the missing frames and counts an underrun.
///
/// Channels: a mono file plays on every channel; a mono stream gets the mean of the file's
/// channels; otherwise stream channel `i` plays file channel `i` (extra stream channels are
/// silent, extra file channels dropped).
///
/// A corrupt or truncated file plays every frame decoded before the fault, then ends (`fill`
/// returns 0; a leader sends silence and its group stays up); [`FileMonitor::end`] then says
/// [`FileEnd::Failed`] with the [`FileError`]. Nothing in a file's content panics it.
pub struct FileSource {
    description: String,
    channels: usize,
    ring: ringbuf::HeapCons<f32>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("description", &self.description)
            .field("channels", &self.channels)
            .finish()
    }
}

impl FileSource {
    /// Opens `path` for a stream of `channels` channels at `rate` Hz and starts decoding it.
    ///
    /// Errors: [`SourceError::Unreadable`] for a file that cannot be opened,
    /// [`SourceError::Unsupported`] for one that is not audio this build decodes (including
    /// one whose first packet does not decode), [`SourceError::Format`] for a stream this
    /// file cannot be converted to, and [`SourceError::Thread`] if the decoding thread cannot
    /// start.
    pub fn open(path: &Path, channels: usize, rate: u32) -> Result<FileSource, SourceError> {
        let decoder = FileDecoder::open(path, channels, rate)?;
        FileSource::start(decoder)
    }

    /// Plays what `decoder` decodes, from a thread of the source's own.
    pub fn start(mut decoder: FileDecoder) -> Result<FileSource, SourceError> {
        let channels = decoder.channels();
        let rate = decoder.rate();
        let capacity = ((f64::from(rate) * RING_SECONDS) as usize).max(1024) * channels;
        let (mut producer, consumer) = HeapRb::<f32>::new(capacity).split();
        let shared = Arc::new(Shared::default());
        let description = format!(
            "{} ({}, {} Hz, {} ch)",
            decoder.path().display(),
            decoder.codec(),
            decoder.file_rate(),
            decoder.file_channels()
        );
        let path = decoder.path().to_path_buf();
        // Fill the ring before the first `fill`, and refuse a file whose first packet does
        // not decode: what the probe took for audio is not.
        let mut carry = Vec::new();
        let mut first = true;
        let mut finished = false;
        while producer.vacant_len() > 0 {
            match decoder.next_block() {
                Ok(Some(block)) => {
                    first = false;
                    let n = producer.push_slice(block);
                    if n < block.len() {
                        carry.extend_from_slice(&block[n..]);
                        break;
                    }
                }
                Ok(None) => {
                    finished = true;
                    break;
                }
                Err(e) if first => {
                    return Err(SourceError::Unsupported {
                        path,
                        reason: format!("nothing in it decodes: {e}"),
                    });
                }
                Err(e) => {
                    *shared.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    finished = true;
                    break;
                }
            }
        }
        if finished && carry.is_empty() {
            shared.decoded.store(true, Ordering::Release);
        } else {
            let thread_shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("lockstep-file".into())
                .spawn(move || {
                    decode_loop(decoder, producer, carry, finished, &thread_shared);
                })
                .map_err(|e| SourceError::Thread {
                    reason: e.to_string(),
                })?;
        }
        Ok(FileSource {
            description,
            channels,
            ring: consumer,
            shared,
        })
    }

    /// A handle that reads how the file ended, and its underruns, from anywhere.
    pub fn monitor(&self) -> FileMonitor {
        FileMonitor {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        // The decoding thread sees this within one nap and exits; it is not joined, so that
        // dropping the source on the media thread never waits for a decode.
        self.shared.stop.store(true, Ordering::Release);
    }
}

/// The decoding thread: pushes `carry`, then every block, into the ring as room appears.
fn decode_loop(
    mut decoder: FileDecoder,
    mut ring: ringbuf::HeapProd<f32>,
    mut carry: Vec<f32>,
    mut finished: bool,
    shared: &Shared,
) {
    let channels = decoder.channels();
    let mut offset = 0;
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if offset < carry.len() {
            // Whole frames only, so that `fill` never sees half a frame.
            let room = ring.vacant_len() / channels * channels;
            let n = room.min(carry.len() - offset);
            offset += ring.push_slice(&carry[offset..offset + n]);
            if offset < carry.len() {
                std::thread::sleep(DECODER_NAP);
                continue;
            }
        }
        carry.clear();
        offset = 0;
        if finished {
            break;
        }
        match decoder.next_block() {
            Ok(Some(block)) => carry.extend_from_slice(block),
            Ok(None) => finished = true,
            Err(e) => {
                *shared.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                finished = true;
            }
        }
    }
    shared.decoded.store(true, Ordering::Release);
}

impl AudioSource for FileSource {
    fn fill(&mut self, out: &mut [f32]) -> usize {
        let want = out.len() / self.channels * self.channels;
        if want == 0 || self.shared.ended.load(Ordering::Relaxed) {
            return 0;
        }
        // Read the flag before the ring: if the decoder had finished, everything it pushed
        // is visible now, and a short read is the file's end.
        let decoded = self.shared.decoded.load(Ordering::Acquire);
        let got = self.ring.pop_slice(&mut out[..want]);
        let frames = got / self.channels;
        self.shared
            .frames_played
            .fetch_add(frames as u64, Ordering::Relaxed);
        if got == want {
            return frames;
        }
        if decoded {
            // The ring is empty and nothing more comes: the next call returns 0.
            self.shared.ended.store(true, Ordering::Release);
            return frames;
        }
        // The decoder is behind: silence for the rest, and count it (0 would mean the end).
        out[got..want].fill(0.0);
        self.shared.underruns.fetch_add(1, Ordering::Relaxed);
        want / self.channels
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}
