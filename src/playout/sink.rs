//! Where a follower's audio goes: sinks that take each block as it leaves the DAC.
//!
//! A push [`AudioSink`] is handed every block with the time its first frame leaves: a WAV
//! file ([`WavSink`](crate::measure::WavSink)), raw PCM to a pipe ([`PcmWriter`]), nothing
//! ([`NullSink`]), or a speaker project's own. The virtual DAC paces the blocks; a sink
//! only takes them. A sink whose [`paced`](AudioSink::paced) is true gets each block when
//! it leaves rather than when it is rendered, so that its bytes arrive at the DAC's pace.
//!
//! A sink's error stops the output; the follower reports it, typed, when it stops.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::time::{LocalInstant, TrueInstant};

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The WAV file could not be created or written.
    #[error("WAV file {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What hound said.
        source: hound::Error,
    },
    /// The sidecar file could not be written.
    #[error("sidecar file {path}: {source}")]
    Sidecar {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Whoever read the sink went away: a pipe closed at its other end.
    #[error("the reader of the output went away (a closed pipe)")]
    Closed,
    /// Writing failed.
    #[error("cannot write the output: {0}")]
    Io(std::io::Error),
    /// The sink did not return from a block within this long of the follower's stop: its
    /// thread was left behind (it ends with the process), so that the stop does not hang.
    #[error("the sink did not return within {waited_ms} ms of the stop")]
    Hung {
        /// How long the stop waited, ms.
        waited_ms: u64,
    },
    /// A sink of the caller's own failed, and says why.
    #[error("the sink failed: {reason}")]
    Custom {
        /// Why.
        reason: String,
    },
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> SinkError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            SinkError::Closed
        } else {
            SinkError::Io(e)
        }
    }
}

/// One block of audio on its way out.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// Interleaved frames.
    pub samples: &'a [f32],
    /// Channels per frame.
    pub channels: usize,
    /// The stream's sample rate, Hz.
    pub rate: u32,
    /// Frames the DAC emitted before this block.
    pub first_frame: u64,
    /// When the block's first frame leaves, on the node's clock.
    pub leaves_at: LocalInstant,
    /// The same instant on the machine's monotonic clock (what recordings are lined up
    /// by; the simulator's true time in the simulator).
    pub leaves_at_monotonic: TrueInstant,
}

/// Takes a follower's audio, block by block. See the module docs.
///
/// `write` runs on the output thread, once per block: a sink that takes longer than a
/// block's duration is counted late, and the stream goes on.
pub trait AudioSink: Send {
    /// Takes a block. An error stops the output.
    fn write(&mut self, block: &Block<'_>) -> Result<(), SinkError>;

    /// Whether blocks are handed over when they leave the DAC rather than when they are
    /// rendered (a little ahead of that). Default: false.
    fn paced(&self) -> bool {
        false
    }

    /// The end of the stream: flush and close. Default: nothing to do.
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A sink of the caller's own, shared between the caller and the output it is given to
/// (the caller keeps its typed handle to look at the sink afterwards). A follower node and
/// a speaker of the simulator both take one.
#[derive(Clone)]
pub struct SharedSink(Arc<Mutex<dyn AudioSink>>);

impl SharedSink {
    /// Shares `sink`.
    pub fn new<S: AudioSink + 'static>(sink: Arc<Mutex<S>>) -> SharedSink {
        SharedSink(sink)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, dyn AudioSink + 'static> {
        // A sink that panicked leaves plain data behind, still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AudioSink for SharedSink {
    fn write(&mut self, block: &Block<'_>) -> Result<(), SinkError> {
        self.lock().write(block)
    }

    fn paced(&self) -> bool {
        self.lock().paced()
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.lock().finish()
    }
}

impl std::fmt::Debug for SharedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSink")
    }
}

impl PartialEq for SharedSink {
    fn eq(&self, other: &SharedSink) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedSink {}

/// Discards the audio: the virtual DAC still paces the blocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl AudioSink for NullSink {
    fn write(&mut self, _block: &Block<'_>) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A raw PCM sample format, little-endian, interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SampleFormat {
    /// 16-bit signed integers.
    #[default]
    S16Le,
    /// 24-bit signed integers, in 3 bytes.
    S24Le,
    /// 32-bit signed integers.
    S32Le,
    /// 32-bit IEEE floats.
    F32Le,
}

impl SampleFormat {
    /// Every format.
    pub const ALL: [SampleFormat; 4] = [
        SampleFormat::S16Le,
        SampleFormat::S24Le,
        SampleFormat::S32Le,
        SampleFormat::F32Le,
    ];

    /// Its name, as `aplay -f` and `pw-cat --format` spell it in lower case.
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::S16Le => "s16le",
            SampleFormat::S24Le => "s24le",
            SampleFormat::S32Le => "s32le",
            SampleFormat::F32Le => "f32le",
        }
    }

    /// The format named `name` (see [`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<SampleFormat> {
        SampleFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            SampleFormat::S16Le => 2,
            SampleFormat::S24Le => 3,
            SampleFormat::S32Le | SampleFormat::F32Le => 4,
        }
    }

    /// Appends `x` (full scale ±1, clipped there for the integer formats) to `out`.
    fn put(self, x: f32, out: &mut Vec<u8>) {
        let int = |bits: u32| {
            let full = (1i64 << (bits - 1)) as f64;
            let x = if x.is_finite() { f64::from(x) } else { 0.0 };
            (x * full).round().clamp(-full, full - 1.0) as i32
        };
        match self {
            SampleFormat::S16Le => out.extend_from_slice(&(int(16) as i16).to_le_bytes()),
            SampleFormat::S24Le => out.extend_from_slice(&int(24).to_le_bytes()[..3]),
            SampleFormat::S32Le => out.extend_from_slice(&int(32).to_le_bytes()),
            SampleFormat::F32Le => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
}

/// Writes raw interleaved PCM to any writer (standard output, a pipe), each block when it
/// leaves the DAC. The buffer it converts into grows to one block once, then is reused.
#[derive(Debug)]
pub struct PcmWriter<W> {
    out: W,
    format: SampleFormat,
    bytes: Vec<u8>,
}

impl<W: Write + Send> PcmWriter<W> {
    /// Writes `format` to `out`.
    pub fn new(out: W, format: SampleFormat) -> PcmWriter<W> {
        PcmWriter {
            out,
            format,
            bytes: Vec::new(),
        }
    }

    /// The format written.
    pub fn format(&self) -> SampleFormat {
        self.format
    }
}

impl<W: Write + Send> AudioSink for PcmWriter<W> {
    fn write(&mut self, block: &Block<'_>) -> Result<(), SinkError> {
        self.bytes.clear();
        for &x in block.samples {
            self.format.put(x, &mut self.bytes);
        }
        self.out.write_all(&self.bytes)?;
        self.out.flush()?;
        Ok(())
    }

    fn paced(&self) -> bool {
        true
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(self.out.flush()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(samples: &[f32]) -> Block<'_> {
        Block {
            samples,
            channels: 1,
            rate: 48_000,
            first_frame: 0,
            leaves_at: LocalInstant::from_nanos(0),
            leaves_at_monotonic: TrueInstant::from_nanos(0),
        }
    }

    #[test]
    fn every_format_writes_full_scale_clipped_and_little_endian() {
        let x = [0.0, 0.5, -1.0, 1.5, f32::NAN];
        let bytes = |f: SampleFormat| {
            let mut w = PcmWriter::new(Vec::new(), f);
            w.write(&block(&x)).expect("writes");
            w.out
        };
        let s16: Vec<i16> = bytes(SampleFormat::S16Le)
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(s16, [0, 16384, -32768, 32767, 0]);
        let s24: Vec<i32> = bytes(SampleFormat::S24Le)
            .chunks(3)
            .map(|c| i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8)
            .collect();
        assert_eq!(s24, [0, 1 << 22, -(1 << 23), (1 << 23) - 1, 0]);
        let s32: Vec<i32> = bytes(SampleFormat::S32Le)
            .chunks(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(s32, [0, 1 << 30, i32::MIN, i32::MAX, 0]);
        let f32s: Vec<f32> = bytes(SampleFormat::F32Le)
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(&f32s[..4], &x[..4]);
        for f in SampleFormat::ALL {
            assert_eq!(SampleFormat::from_name(f.name()), Some(f));
            assert_eq!(bytes(f).len(), x.len() * f.bytes());
        }
        assert_eq!(SampleFormat::from_name("u8"), None);
    }

    #[test]
    fn a_closed_pipe_is_its_own_error() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = PcmWriter::new(Broken, SampleFormat::S16Le);
        assert!(matches!(w.write(&block(&[0.1])), Err(SinkError::Closed)));
    }
}
