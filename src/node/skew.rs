//! How far apart the speakers of a real run played, measured from their recordings alone:
//! every pair of full-range WAV captures goes through the sync meter.

use std::path::{Path, PathBuf};

use crate::playout::meter::{MeterConfig, load_capture_wav, measure_skew};
use crate::sim::sync::percentile;

/// One speaker's recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// Its name in the report.
    pub name: String,
    /// The WAV file, with its sidecar (as [`Output::Wav`](super::Output::Wav) writes it).
    pub wav: PathBuf,
}

/// The skew of one pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSkew {
    /// Speaker A.
    pub a: String,
    /// Speaker B.
    pub b: String,
    /// Median |skew|, µs.
    pub p50_us: f64,
    /// 99th percentile |skew|, µs.
    pub p99_us: f64,
    /// Largest |skew|, µs.
    pub max_us: f64,
    /// Mean signed skew (B − A), µs.
    pub mean_us: f64,
    /// Windows measured.
    pub windows: usize,
}

/// The skew of a group: every pair, and all their windows together.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSkew {
    /// Each pair.
    pub pairs: Vec<PairSkew>,
    /// Median |skew| over every window of every pair, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Largest, µs.
    pub max_us: f64,
    /// (seconds since `from_ns`, largest |skew| of any pair in that window, µs).
    pub series: Vec<(f64, f64)>,
}

/// Why a group could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum SkewError {
    /// A recording could not be read.
    #[error("recording {path}: {reason}")]
    Recording {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No pair had a window in common.
    #[error("no pair of recordings had audio in common after the start")]
    NoOverlap,
}

/// Measures every pair of `recordings` (channel 0 of each) in 0.5 s windows that start at
/// or after `from_ns` (true, monotonic time) and end by `to_ns`.
pub fn measure_recordings(
    recordings: &[Recording],
    from_ns: i64,
    to_ns: Option<i64>,
) -> Result<GroupSkew, SkewError> {
    let caps = recordings
        .iter()
        .map(|r| {
            load_capture_wav(&r.wav).map_err(|e| SkewError::Recording {
                path: r.wav.clone(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = MeterConfig {
        start_ns: Some(from_ns),
        ..MeterConfig::default()
    };
    let mut pairs = Vec::new();
    let mut all = Vec::new();
    let mut series: Vec<(f64, f64)> = Vec::new();
    for i in 0..caps.len() {
        for j in i + 1..caps.len() {
            let Ok(r) = measure_skew(&caps[i].capture(0), &caps[j].capture(0), &config) else {
                continue;
            };
            let windows: Vec<_> = r
                .windows
                .iter()
                .filter(|w| to_ns.is_none_or(|t| w.t_ns + 500_000_000 <= t))
                .collect();
            let mut abs: Vec<f64> = windows.iter().map(|w| w.skew_us.abs()).collect();
            abs.sort_by(f64::total_cmp);
            if abs.is_empty() {
                continue;
            }
            for w in &windows {
                let t = (w.t_ns - from_ns) as f64 * 1e-9;
                let slot = (t * 2.0).round() / 2.0;
                match series.iter_mut().find(|(s, _)| *s == slot) {
                    Some(e) => e.1 = e.1.max(w.skew_us.abs()),
                    None => series.push((slot, w.skew_us.abs())),
                }
            }
            pairs.push(PairSkew {
                a: recordings[i].name.clone(),
                b: recordings[j].name.clone(),
                p50_us: percentile(&abs, 0.5),
                p99_us: percentile(&abs, 0.99),
                max_us: abs[abs.len() - 1],
                mean_us: windows.iter().map(|w| w.skew_us).sum::<f64>() / windows.len() as f64,
                windows: abs.len(),
            });
            all.extend(abs);
        }
    }
    if all.is_empty() {
        return Err(SkewError::NoOverlap);
    }
    all.sort_by(f64::total_cmp);
    series.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(GroupSkew {
        pairs,
        p50_us: percentile(&all, 0.5),
        p99_us: percentile(&all, 0.99),
        max_us: all[all.len() - 1],
        series,
    })
}

/// The recording of `name` at `path`.
pub fn recording(name: &str, path: &Path) -> Recording {
    Recording {
        name: name.into(),
        wav: path.to_path_buf(),
    }
}
