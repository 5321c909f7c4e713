//! A recording's capture files: a WAV file and, beside it, a sidecar `<file>.json` that
//! holds the recording's emission timeline (`{"first_sample_ns": …, "rate_hz": …}`: when
//! frame 0 left the DAC, and how many frames left per second of the clock that time is on).
//!
//! [`WavSink`] writes one while a speaker plays, block by block; [`write_capture_wav`]
//! writes one from samples already in memory; [`load_capture_wav`] reads either back as an
//! [`OwnedCapture`], which the [sync meter](super::meter) compares with another.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::meter::{Capture, MeterError, bad_capture};
use crate::playout::sink::{AudioSink, Block, SinkError};
use crate::time::TrueInstant;

/// A capture read from a file, owning its samples.
#[derive(Clone, PartialEq)]
pub struct OwnedCapture {
    /// Interleaved samples, scaled to ±1.
    pub samples: Vec<f32>,
    /// Channels per frame.
    pub channels: usize,
    /// True time at which frame 0 left the DAC (0 without a sidecar).
    pub first: TrueInstant,
    /// True rate frames left at (the WAV's nominal rate without a sidecar).
    pub rate_hz: f64,
    /// The WAV header's sample rate.
    pub nominal_rate_hz: u32,
    /// Whether the timeline came from a sidecar file.
    pub from_sidecar: bool,
}

impl std::fmt::Debug for OwnedCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedCapture")
            .field("samples", &format_args!("[{} samples]", self.samples.len()))
            .field("channels", &self.channels)
            .field("first", &self.first)
            .field("rate_hz", &self.rate_hz)
            .field("nominal_rate_hz", &self.nominal_rate_hz)
            .field("from_sidecar", &self.from_sidecar)
            .finish()
    }
}

impl OwnedCapture {
    /// Borrows it as a [`Capture`] of `channel`.
    pub fn capture(&self, channel: usize) -> Capture<'_> {
        Capture {
            samples: &self.samples,
            channels: self.channels,
            channel,
            first: self.first,
            rate_hz: self.rate_hz,
        }
    }

    /// Whole frames.
    pub fn frames(&self) -> usize {
        self.samples.len().checked_div(self.channels).unwrap_or(0)
    }
}

/// The sidecar of `wav`: `<wav>.json` (`a.wav` → `a.wav.json`).
pub fn sidecar_path(wav: &Path) -> PathBuf {
    let mut s = wav.as_os_str().to_os_string();
    s.push(".json");
    PathBuf::from(s)
}

/// Reads a WAV file (integer PCM of 8 to 32 bits, or 32-bit float) and its emission
/// timeline from the sidecar `<file>.json` (`{"first_sample_ns": …, "rate_hz": …}`, as
/// [`write_capture_wav`] and [`WavSink`] write it). Without a
/// sidecar, frame 0 is taken to leave at 0 ns and frames at the WAV's nominal rate.
pub fn load_capture_wav(path: impl AsRef<Path>) -> Result<OwnedCapture, MeterError> {
    let path = path.as_ref();
    let wav_err = |source| MeterError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = hound::WavReader::open(path).map_err(wav_err)?;
    let spec = reader.spec();
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(wav_err)?,
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / 2f64.powi(i32::from(bits) - 1);
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(wav_err)?
        }
        (format, bits) => {
            return Err(MeterError::WavFormat {
                path: path.to_path_buf(),
                reason: format!("{bits}-bit {format:?} samples are not supported"),
            });
        }
    };
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Err(MeterError::WavFormat {
            path: path.to_path_buf(),
            reason: "0 channels".into(),
        });
    }
    let side = sidecar_path(path);
    let (first, rate_hz, from_sidecar) = match std::fs::read_to_string(&side) {
        Ok(text) => {
            let (first, rate) =
                parse_sidecar(&text).map_err(|reason| MeterError::SidecarFormat {
                    path: side.clone(),
                    reason,
                })?;
            (first, rate, true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            TrueInstant::from_nanos(0),
            f64::from(spec.sample_rate),
            false,
        ),
        Err(source) => return Err(MeterError::SidecarIo { path: side, source }),
    };
    Ok(OwnedCapture {
        samples,
        channels,
        first,
        rate_hz,
        nominal_rate_hz: spec.sample_rate,
        from_sidecar,
    })
}

/// The number following `"key":` in a flat JSON object, as text.
fn json_number<'t>(text: &'t str, key: &str) -> Result<&'t str, String> {
    let quoted = format!("\"{key}\"");
    let at = text
        .find(&quoted)
        .ok_or_else(|| format!("no \"{key}\" field"))?;
    let rest = text[at + quoted.len()..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or_else(|| format!("no ':' after \"{key}\""))?
        .trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
        .unwrap_or(rest.len());
    if end == 0 {
        return Err(format!("\"{key}\" is not a number"));
    }
    Ok(&rest[..end])
}

/// `first_sample_ns` and `rate_hz` from a sidecar's text.
fn parse_sidecar(text: &str) -> Result<(TrueInstant, f64), String> {
    let first = json_number(text, "first_sample_ns")?;
    let first_ns = match first.parse::<i64>() {
        Ok(v) => v,
        Err(_) => {
            let v: f64 = first
                .parse()
                .map_err(|_| format!("first_sample_ns {first:?} is not a number"))?;
            if !(v.is_finite() && v.fract() == 0.0 && v.abs() < 9.2e18) {
                return Err(format!(
                    "first_sample_ns {first} is not a whole number of ns"
                ));
            }
            v as i64
        }
    };
    let rate = json_number(text, "rate_hz")?;
    let rate_hz: f64 = rate
        .parse()
        .map_err(|_| format!("rate_hz {rate:?} is not a number"))?;
    if !(rate_hz.is_finite() && rate_hz > 0.0) {
        return Err(format!("rate_hz {rate_hz} is not finite and positive"));
    }
    Ok((TrueInstant::from_nanos(first_ns), rate_hz))
}

/// Writes `samples` (interleaved, `channels` per frame) as a 32-bit float WAV file whose
/// header says `rate_hz_nominal`, and the sidecar `<path>.json` with the emission timeline:
/// frame 0 left at `first`, frames left at `true_rate_hz` per true second.
pub fn write_capture_wav(
    path: impl AsRef<Path>,
    samples: &[f32],
    channels: usize,
    rate_hz_nominal: u32,
    first: TrueInstant,
    true_rate_hz: f64,
) -> Result<(), MeterError> {
    let path = path.as_ref();
    let channels16 = u16::try_from(channels)
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| bad_capture("capture", "channels", "must be 1 to 65535"))?;
    if !samples.len().is_multiple_of(channels) {
        return Err(bad_capture(
            "capture",
            "samples",
            format!(
                "holds {} samples, not whole {channels}-channel frames",
                samples.len()
            ),
        ));
    }
    if rate_hz_nominal == 0 {
        return Err(bad_capture(
            "capture",
            "rate_hz_nominal",
            "must be positive",
        ));
    }
    if !(true_rate_hz.is_finite() && true_rate_hz > 0.0) {
        return Err(bad_capture(
            "capture",
            "rate_hz",
            format!("must be finite and positive, is {true_rate_hz}"),
        ));
    }
    let wav_err = |source| MeterError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let spec = hound::WavSpec {
        channels: channels16,
        sample_rate: rate_hz_nominal,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(wav_err)?;
    for &s in samples {
        writer.write_sample(s).map_err(wav_err)?;
    }
    writer.finalize().map_err(wav_err)?;
    let side = sidecar_path(path);
    write_sidecar(&side, first, true_rate_hz)
        .map_err(|source| MeterError::SidecarIo { path: side, source })
}

/// Writes the sidecar file `side` (the one place its format is written).
fn write_sidecar(side: &Path, first: TrueInstant, rate_hz: f64) -> std::io::Result<()> {
    // `{}` prints an f64 in the shortest form that reads back to the same value.
    let first_ns = first.as_nanos();
    let json = format!("{{\"first_sample_ns\": {first_ns}, \"rate_hz\": {rate_hz}}}\n");
    std::fs::write(side, json)
}

/// Writes a speaker's output to a 32-bit float WAV file, and beside it
/// (`<file>.json`) the emission time of its first sample and the rate frames left at,
/// which is what the sync meter needs to line two recordings up.
pub struct WavSink {
    path: PathBuf,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    first: Option<TrueInstant>,
    rate_hz: f64,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("path", &self.path)
            .field("first", &self.first)
            .finish()
    }
}

impl WavSink {
    /// Creates `path` for `channels` channels at `rate` Hz.
    pub fn create(path: &Path, rate: u32, channels: u16) -> Result<WavSink, SinkError> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|source| SinkError::Wav {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(WavSink {
            path: path.to_path_buf(),
            writer: Some(writer),
            first: None,
            rate_hz: f64::from(rate),
        })
    }

    /// Appends a block whose first frame left at `emitted` (on the clock the caller
    /// measures emission on; the first block's time is kept).
    pub fn write(&mut self, block: &[f32], emitted: TrueInstant) -> Result<(), SinkError> {
        self.first.get_or_insert(emitted);
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        for &s in block {
            w.write_sample(s).map_err(|source| SinkError::Wav {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Sets the rate, in frames per second of the emission clock, written to the sidecar
    /// (by default the nominal rate).
    pub fn set_rate_hz(&mut self, rate_hz: f64) {
        self.rate_hz = rate_hz;
    }

    /// Finishes the WAV file and writes the sidecar `<file>.json` with `first_sample_ns`
    /// and `rate_hz`.
    pub fn finish(mut self) -> Result<(), SinkError> {
        self.close()
    }

    fn close(&mut self) -> Result<(), SinkError> {
        if let Some(w) = self.writer.take() {
            w.finalize().map_err(|source| SinkError::Wav {
                path: self.path.clone(),
                source,
            })?;
        }
        let side = sidecar_path(&self.path);
        let first = self.first.unwrap_or(TrueInstant::from_nanos(0));
        write_sidecar(&side, first, self.rate_hz)
            .map_err(|source| SinkError::Sidecar { path: side, source })
    }
}

impl AudioSink for WavSink {
    fn write(&mut self, block: &Block<'_>) -> Result<(), SinkError> {
        WavSink::write(self, block.samples, block.leaves_at_monotonic)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_parses_what_is_written() {
        let (f, r) =
            parse_sidecar("{\"first_sample_ns\": -1700000000000000123, \"rate_hz\": 48007.2}\n")
                .unwrap();
        assert_eq!(f, TrueInstant::from_nanos(-1_700_000_000_000_000_123));
        assert_eq!(r, 48007.2);
        assert!(parse_sidecar("{\"rate_hz\": 48000}").is_err());
        assert!(parse_sidecar("{\"first_sample_ns\": 1, \"rate_hz\": -5}").is_err());
        assert!(parse_sidecar("{\"first_sample_ns\": 1.5, \"rate_hz\": 48000}").is_err());
        assert_eq!(
            parse_sidecar("{ \"rate_hz\" : 4.8e4 , \"first_sample_ns\" : 2e3 }").unwrap(),
            (TrueInstant::from_nanos(2000), 48000.0)
        );
    }
}
