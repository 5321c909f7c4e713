//! Pieces the node examples share: the codec flag, the output flag, and failures with exit
//! codes. Included
//! with `#[path = "common/cli.rs"] mod cli;`.

#![allow(dead_code)] // each example uses some of it

use clap::ValueEnum;
use std::path::PathBuf;

use lockstep::media::CodecKind;
use lockstep::node::Output;
use lockstep::playout::sink::SampleFormat;

/// The codecs on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    /// 16-bit linear PCM.
    L16,
    /// 24-bit linear PCM (AES67).
    L24,
    /// Opus.
    Opus,
}

impl Codec {
    /// The media path's codec.
    pub fn kind(self) -> CodecKind {
        match self {
            Codec::L16 => CodecKind::L16,
            Codec::L24 => CodecKind::L24,
            Codec::Opus => CodecKind::Opus,
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Codec::L16 => "l16",
            Codec::L24 => "l24",
            Codec::Opus => "opus",
        }
    }
}

/// A failure, with the exit code it ends the program with.
pub struct Failure {
    /// 1 for something that went wrong while running, 2 for a mistake on the command line.
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl Failure {
    /// A mistake on the command line (exit code 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// Something that went wrong while starting or running (exit code 1).
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    /// Prints it, prefixed with the program's name, and gives the exit code.
    pub fn exit(self, program: &str) -> std::process::ExitCode {
        eprintln!("{program}: {}", self.message);
        std::process::ExitCode::from(self.code)
    }
}

/// A `--seconds`-like flag: a positive, finite number of seconds, or absent.
pub fn positive_seconds(
    flag: &str,
    value: Option<f64>,
) -> Result<Option<std::time::Duration>, Failure> {
    match value {
        Some(s) if !(s.is_finite() && s > 0.0) => Err(Failure::usage(format!(
            "{flag} must be a positive number of seconds, got {s}"
        ))),
        Some(s) => Ok(Some(std::time::Duration::from_secs_f64(s))),
        None => Ok(None),
    }
}

/// `--output` to an [`Output`].
pub fn parse_output(output: &str, format: SampleFormat) -> Result<Output, Failure> {
    match output {
        "null" => Ok(Output::Null),
        "-" => Ok(Output::Stdout(format)),
        "device" => device_output(None),
        name if name.starts_with("device:") => {
            let name = &name["device:".len()..];
            if name.is_empty() {
                return Err(Failure::usage("--output device:NAME needs a device name"));
            }
            device_output(Some(name.to_string()))
        }
        "" => Err(Failure::usage("--output is empty")),
        path => Ok(Output::Wav(PathBuf::from(path))),
    }
}

/// A sound card, if this build has the cpal feature.
pub fn device_output(name: Option<String>) -> Result<Output, Failure> {
    if cfg!(feature = "cpal") {
        Ok(Output::Device(name))
    } else {
        Err(Failure::usage(
            "output 'device' needs the cpal feature (cargo run --features cpal ...)",
        ))
    }
}

/// `--format` to a [`SampleFormat`].
pub fn parse_format(s: &str) -> Result<SampleFormat, String> {
    SampleFormat::from_name(s)
        .ok_or_else(|| format!("unknown format {s:?}: s16le, s24le, s32le or f32le"))
}
