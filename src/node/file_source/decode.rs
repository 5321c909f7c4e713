//! The synchronous half of a file source: demux and decode with symphonia, map the file's
//! channels onto the stream's, and resample to the stream's rate with rubato.

use std::fs::File;
use std::path::{Path, PathBuf};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::FileError;
use crate::node::source::SourceError;

/// Input frames per resampler call.
const RESAMPLE_CHUNK: usize = 1024;

/// Decodes a music file into interleaved `f32` blocks at the stream's rate and channel count,
/// on the caller's thread. [`FileSource`](super::FileSource) runs one on a thread of its own;
/// benches and tools can drive one directly.
///
/// Call [`next_block`](Self::next_block) until it returns `Ok(None)` (the file's end) or an
/// error (the file is corrupt or truncated there; every block before it was good). After an
/// error the decoder is finished: further calls return `Ok(None)`.
pub struct FileDecoder {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    codec: &'static str,
    file_rate: u32,
    file_channels: usize,
    channels: usize,
    rate: u32,
    /// Frames the container declares, where it does.
    declared_frames: Option<u64>,
    /// Frames decoded so far, at the file's rate.
    decoded_frames: u64,
    /// Where the next FLAC frame should start, in frames: one that starts later means the
    /// demuxer skipped damaged data (it resynchronises on the next frame whose CRC holds).
    /// Only FLAC: other codecs' packets overlap or carry their own timing.
    next_pts: Option<i64>,
    /// One decoded packet, planar, at the file's rate.
    planar: Vec<Vec<f32>>,
    /// Decoded frames mapped to the stream's channels, interleaved, at the file's rate.
    mapped: Vec<f32>,
    resampler: Option<Resampling>,
    /// The block handed out by `next_block`.
    block: Vec<f32>,
    phase: Phase,
}

/// Where the decoder is.
enum Phase {
    Decoding,
    /// The file has ended (with the error, if it ended badly): the resampler is drained.
    Draining(Option<FileError>),
    Done,
}

impl std::fmt::Debug for FileDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDecoder")
            .field("path", &self.path)
            .field("codec", &self.codec)
            .field("file_rate", &self.file_rate)
            .field("file_channels", &self.file_channels)
            .finish()
    }
}

impl FileDecoder {
    /// Opens `path` for a stream of `channels` channels at `rate` Hz: finds the container
    /// and its first audio track, and makes the track's decoder. A file that is not audio,
    /// or whose container or codec this build does not decode, is
    /// [`SourceError::Unsupported`]; a file that cannot be read is
    /// [`SourceError::Unreadable`].
    pub fn open(path: &Path, channels: usize, rate: u32) -> Result<FileDecoder, SourceError> {
        let unreadable = |reason: String| SourceError::Unreadable {
            path: path.to_path_buf(),
            reason,
        };
        let unsupported = |reason: String| SourceError::Unsupported {
            path: path.to_path_buf(),
            reason,
        };
        if channels == 0 || rate == 0 {
            return Err(SourceError::Format {
                path: path.to_path_buf(),
                needed: "a stream of at least one channel at a rate above 0 Hz".into(),
                got: format!("{channels} channels at {rate} Hz"),
            });
        }
        let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
        let stream = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                stream,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymError::IoError(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
                    unreadable(e.to_string())
                }
                e => unsupported(format!("not a music file this build can read ({e})")),
            })?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| unsupported("the file has no audio track".into()))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| unsupported("the file's track is not audio".into()))?;
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| {
                unsupported(format!(
                    "no decoder for codec {} in this build ({e}); AAC and ALAC need the \
                     `aac` and `alac` features",
                    params.codec
                ))
            })?;
        let file_rate = params
            .sample_rate
            .ok_or_else(|| unsupported("the track does not give its sample rate".into()))?;
        let file_channels = params.channels.as_ref().map_or(0, |c| c.count());
        if file_channels == 0 {
            return Err(unsupported("the track does not give its channels".into()));
        }
        let track_id = track.id;
        let declared_frames = track.num_frames;
        let resampler = if file_rate == rate {
            None
        } else {
            Some(
                Resampling::new(file_rate, rate, channels).map_err(|e| SourceError::Format {
                    path: path.to_path_buf(),
                    needed: format!("a rate rubato can convert to {rate} Hz"),
                    got: format!("{file_rate} Hz ({e})"),
                })?,
            )
        };
        let codec = decoder.codec_info().short_name;
        Ok(FileDecoder {
            path: path.to_path_buf(),
            format,
            decoder,
            track_id,
            codec,
            file_rate,
            file_channels,
            channels,
            rate,
            declared_frames,
            decoded_frames: 0,
            next_pts: None,
            planar: Vec::new(),
            mapped: Vec::new(),
            resampler,
            block: Vec::new(),
            phase: Phase::Decoding,
        })
    }

    /// The file's sample rate, Hz.
    pub fn file_rate(&self) -> u32 {
        self.file_rate
    }

    /// The file's channel count.
    pub fn file_channels(&self) -> usize {
        self.file_channels
    }

    /// The codec's short name (`flac`, `mp3`, `vorbis`, `pcm_s16le`, …).
    pub fn codec(&self) -> &'static str {
        self.codec
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames decoded so far, at the file's rate.
    pub fn decoded_frames(&self) -> u64 {
        self.decoded_frames
    }

    /// The next block of interleaved samples at the stream's rate and channel count (never
    /// empty); `Ok(None)` at the end; an error where the file turned out corrupt or
    /// truncated.
    pub fn next_block(&mut self) -> Result<Option<&[f32]>, FileError> {
        loop {
            self.block.clear();
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return Ok(None),
                Phase::Draining(error) => {
                    if let Some(r) = self.resampler.as_mut() {
                        r.drain(&mut self.block);
                    }
                    if self.block.is_empty() {
                        return match error {
                            Some(e) => Err(e),
                            None => Ok(None),
                        };
                    }
                    self.phase = Phase::Draining(error);
                    return Ok(Some(&self.block));
                }
                Phase::Decoding => match self.decode_packet() {
                    Ok(true) => {
                        self.phase = Phase::Decoding;
                        match self.resampler.as_mut() {
                            Some(r) => r.push(&self.mapped, &mut self.block),
                            None => std::mem::swap(&mut self.block, &mut self.mapped),
                        }
                        if !self.block.is_empty() {
                            return Ok(Some(&self.block));
                        }
                    }
                    Ok(false) => self.phase = Phase::Draining(self.check_length()),
                    Err(e) => self.phase = Phase::Draining(Some(e)),
                },
            }
        }
    }

    /// A file that ends before the frames its container declared is truncated.
    fn check_length(&self) -> Option<FileError> {
        match self.declared_frames {
            Some(declared) if self.decoded_frames < declared => Some(FileError::Truncated {
                path: self.path.clone(),
                frames: self.decoded_frames,
                declared,
            }),
            _ => None,
        }
    }

    /// Decodes one packet of the track into `mapped`; false at the end of the file.
    fn decode_packet(&mut self) -> Result<bool, FileError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(false),
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(self.truncated());
                }
                Err(e) => return Err(self.corrupt(e)),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let pts = packet.pts.get();
            if self.codec == "flac"
                && let Some(next) = self.next_pts
                && pts > next
            {
                return Err(FileError::Corrupt {
                    path: self.path.clone(),
                    frames: self.decoded_frames,
                    reason: format!(
                        "{} frames are missing: the demuxer skipped damaged data",
                        pts - next
                    ),
                });
            }
            self.next_pts = pts.checked_add(i64::try_from(packet.dur.get()).unwrap_or(i64::MAX));
            let buf = match self.decoder.decode(&packet) {
                Ok(b) => b,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(self.truncated());
                }
                Err(e) => return Err(self.corrupt(e)),
            };
            if buf.spec().rate() != self.file_rate {
                return Err(FileError::Corrupt {
                    path: self.path.clone(),
                    frames: self.decoded_frames,
                    reason: format!(
                        "the rate changes from {} Hz to {} Hz mid-stream",
                        self.file_rate,
                        buf.spec().rate()
                    ),
                });
            }
            let frames = buf.frames();
            let file_channels = buf.spec().channels().count();
            if frames == 0 || file_channels == 0 {
                continue;
            }
            self.planar.resize_with(file_channels, Vec::new);
            for p in &mut self.planar {
                p.resize(frames, 0.0);
            }
            buf.copy_to_slice_planar::<f32, _>(&mut self.planar[..file_channels]);
            self.decoded_frames += frames as u64;
            map_channels(
                &self.planar[..file_channels],
                frames,
                self.channels,
                &mut self.mapped,
            );
            return Ok(true);
        }
    }

    /// The file ended before its last frame, after what was decoded so far.
    fn truncated(&self) -> FileError {
        FileError::Truncated {
            path: self.path.clone(),
            frames: self.decoded_frames,
            declared: self.declared_frames.unwrap_or(0),
        }
    }

    fn corrupt(&self, e: SymError) -> FileError {
        FileError::Corrupt {
            path: self.path.clone(),
            frames: self.decoded_frames,
            reason: e.to_string(),
        }
    }

    /// The stream's rate, Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The stream's channel count.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// Maps `frames` planar frames of the file's channels onto `channels` interleaved ones in
/// `out`: a mono file plays on every channel; a mono stream gets the mean of the file's
/// channels; otherwise stream channel `i` is file channel `i`, a stream wider than the file
/// has silence on the extra channels and a narrower one drops the file's extra channels
/// (5.1 on a stereo stream keeps front left and right).
fn map_channels(planar: &[Vec<f32>], frames: usize, channels: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(frames * channels, 0.0);
    let fc = planar.len();
    for (i, frame) in out.chunks_exact_mut(channels).enumerate() {
        if fc == 1 {
            frame.fill(planar[0][i]);
        } else if channels == 1 {
            frame[0] = planar.iter().map(|p| p[i]).sum::<f32>() / fc as f32;
        } else {
            for (c, s) in frame.iter_mut().enumerate().take(fc) {
                *s = planar[c][i];
            }
        }
    }
}

/// A fixed-ratio resampler from the file's rate to the stream's: rubato's FFT resampler,
/// with its start-up delay trimmed off and its tail drained at the end, so that the output
/// lines up with the input and is as long as the input at the new rate.
struct Resampling {
    resampler: Fft<f32>,
    channels: usize,
    ratio: f64,
    /// Input frames not yet resampled (interleaved).
    pending: Vec<f32>,
    /// Output of one call.
    out: Vec<f32>,
    /// Output frames still to drop (the resampler's delay).
    skip: usize,
    frames_in: u64,
    frames_out: u64,
}

impl Resampling {
    fn new(from: u32, to: u32, channels: usize) -> Result<Resampling, String> {
        let resampler = Fft::<f32>::new(
            from as usize,
            to as usize,
            RESAMPLE_CHUNK,
            channels,
            FixedSync::Input,
        )
        .map_err(|e| e.to_string())?;
        let out = vec![0.0; resampler.output_frames_max() * channels];
        let skip = resampler.output_delay();
        Ok(Resampling {
            resampler,
            channels,
            ratio: f64::from(to) / f64::from(from),
            pending: Vec::with_capacity(2 * RESAMPLE_CHUNK * channels),
            out,
            skip,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Resamples whole chunks of `input` (plus what was pending) onto the end of `output`.
    fn push(&mut self, input: &[f32], output: &mut Vec<f32>) {
        self.pending.extend_from_slice(input);
        self.frames_in += (input.len() / self.channels) as u64;
        let chunk = RESAMPLE_CHUNK * self.channels;
        let mut used = 0;
        while self.pending.len() - used >= chunk {
            let range = used..used + chunk;
            used += chunk;
            self.run(range, output);
        }
        self.pending.drain(..used);
    }

    /// Resamples what is pending, then silence, until the output is as long as the input at
    /// the new rate; appends one call's worth to `output` (nothing once drained).
    fn drain(&mut self, output: &mut Vec<f32>) {
        let target = (self.frames_in as f64 * self.ratio).round() as u64;
        let chunk = RESAMPLE_CHUNK * self.channels;
        let start = output.len();
        // A few calls at most: the first ones may go to the start-up delay.
        for _ in 0..8 {
            if self.frames_out >= target || output.len() > start {
                break;
            }
            self.pending.resize(chunk, 0.0);
            self.run(0..chunk, output);
            self.pending.clear();
        }
        // Cut what lies past the input's end.
        let got = (output.len() - start) / self.channels;
        let cut = (self.frames_out.saturating_sub(target) as usize).min(got);
        output.truncate(start + (got - cut) * self.channels);
        self.frames_out -= cut as u64;
    }

    /// Resamples one chunk of `pending` onto the end of `output`, dropping the delay.
    fn run(&mut self, range: std::ops::Range<usize>, output: &mut Vec<f32>) {
        let ch = self.channels;
        let inp = &self.pending[range];
        let Ok(input) = InterleavedSlice::new(inp, ch, inp.len() / ch) else {
            return;
        };
        let max = self.out.len() / ch;
        let Ok(mut out) = InterleavedSlice::new_mut(&mut self.out[..], ch, max) else {
            return;
        };
        let Ok((_, produced)) = self.resampler.process_into_buffer(&input, &mut out, None) else {
            return;
        };
        let drop = self.skip.min(produced);
        self.skip -= drop;
        output.extend_from_slice(&self.out[drop * ch..produced * ch]);
        self.frames_out += (produced - drop) as u64;
    }
}
