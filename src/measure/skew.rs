//! Skew aggregation: the sync meter's windows of every pair of speakers, gathered into
//! per-pair and group figures.
//!
//! [`PairwiseSkew`] is the one aggregator: the simulator's playout report and
//! [`measure_recordings`] (every pair of a real run's WAV recordings) both fill one and
//! read their figures from it, so a skew percentile means the same in both.

use std::path::{Path, PathBuf};

use super::capture::load_capture_wav;
use super::meter::{MeterConfig, measure_skew};
use super::stats::{percentile, sorted_abs};
use crate::time::{Nanos, TrueInstant};

/// The figures of one pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSkew {
    /// Speaker A.
    pub a: String,
    /// Speaker B.
    pub b: String,
    /// Median |skew|, µs (NaN: no window).
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
    /// (seconds, largest |skew| of any pair in the half-second window there, µs), in time
    /// order. Seconds are on the timescale the windows were given in.
    pub series: Vec<(f64, f64)>,
}

/// The skew windows of a group's pairs, as the meter measured them: each window a time in
/// seconds and the signed skew of B against A, µs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairwiseSkew {
    pairs: Vec<Pair>,
}

#[derive(Debug, Clone, PartialEq)]
struct Pair {
    a: String,
    b: String,
    /// (s, signed skew µs), in the order given.
    windows: Vec<(f64, f64)>,
}

impl PairwiseSkew {
    /// No pairs yet.
    pub fn new() -> PairwiseSkew {
        PairwiseSkew::default()
    }

    /// Adds the pair of `a` and `b`; returns its index.
    pub fn add_pair(&mut self, a: impl Into<String>, b: impl Into<String>) -> usize {
        self.pairs.push(Pair {
            a: a.into(),
            b: b.into(),
            windows: Vec::new(),
        });
        self.pairs.len() - 1
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Adds the windows `(seconds, signed skew µs)` to pair `pair`, in time order (an index
    /// out of range adds nothing).
    pub fn extend(&mut self, pair: usize, windows: impl IntoIterator<Item = (f64, f64)>) {
        if let Some(p) = self.pairs.get_mut(pair) {
            p.windows.extend(windows);
        }
    }

    /// The windows of pair `pair` (none for an index out of range).
    pub fn windows(&self, pair: usize) -> &[(f64, f64)] {
        self.pairs.get(pair).map_or(&[], |p| &p.windows)
    }

    /// The figures of pair `pair` (NaN figures and no window for an index out of range).
    pub fn pair(&self, pair: usize) -> PairSkew {
        let (a, b) = self
            .pairs
            .get(pair)
            .map_or((String::new(), String::new()), |p| {
                (p.a.clone(), p.b.clone())
            });
        let w = self.windows(pair);
        let abs = sorted_abs(w.iter().map(|w| w.1));
        PairSkew {
            a,
            b,
            p50_us: percentile(&abs, 0.5),
            p99_us: percentile(&abs, 0.99),
            max_us: abs.last().copied().unwrap_or(f64::NAN),
            mean_us: w.iter().map(|w| w.1).sum::<f64>() / w.len() as f64,
            windows: abs.len(),
        }
    }

    /// The figures of every pair, in the order they were added.
    pub fn pairs(&self) -> Vec<PairSkew> {
        (0..self.pairs.len()).map(|i| self.pair(i)).collect()
    }

    /// |skew| of every window of every pair for which `keep(pair, seconds)` holds, sorted.
    pub fn abs_where(&self, mut keep: impl FnMut(usize, f64) -> bool) -> Vec<f64> {
        let mut v = Vec::new();
        for (i, p) in self.pairs.iter().enumerate() {
            v.extend(p.windows.iter().filter(|w| keep(i, w.0)).map(|w| w.1));
        }
        sorted_abs(v)
    }

    /// The largest |skew| of any pair in each half-second slot (a window's time rounded to
    /// the nearest half second), in time order.
    pub fn series(&self) -> Vec<(f64, f64)> {
        let mut series: Vec<(f64, f64)> = Vec::new();
        for &(t, skew) in self.pairs.iter().flat_map(|p| &p.windows) {
            let slot = (t * 2.0).round() / 2.0;
            match series.binary_search_by(|e| e.0.total_cmp(&slot)) {
                Ok(k) => series[k].1 = series[k].1.max(skew.abs()),
                Err(k) => series.insert(k, (slot, skew.abs())),
            }
        }
        series
    }

    /// The group's figures; `None` if no pair has a window.
    pub fn group(&self) -> Option<GroupSkew> {
        let all = self.abs_where(|_, _| true);
        let max_us = *all.last()?;
        Some(GroupSkew {
            pairs: self.pairs(),
            p50_us: percentile(&all, 0.5),
            p99_us: percentile(&all, 0.99),
            max_us,
            series: self.series(),
        })
    }
}

/// One speaker's recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// Its name in the report.
    pub name: String,
    /// The WAV file, with its sidecar (as [`WavSink`](super::capture::WavSink) writes it).
    pub wav: PathBuf,
}

/// The recording of `name` at `path`.
pub fn recording(name: &str, path: &Path) -> Recording {
    Recording {
        name: name.into(),
        wav: path.to_path_buf(),
    }
}

/// Why a group could not be measured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
/// or after `from` and end by `to` (on the clock the recordings' sidecars are on: for a
/// real node, the host's monotonic clock). The series' seconds count from `from`.
pub fn measure_recordings(
    recordings: &[Recording],
    from: TrueInstant,
    to: Option<TrueInstant>,
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
        start: Some(from),
        ..MeterConfig::default()
    };
    let window = Nanos::from_secs_f64(config.window_s);
    let mut skew = PairwiseSkew::new();
    for i in 0..caps.len() {
        for j in i + 1..caps.len() {
            let Ok(r) = measure_skew(&caps[i].capture(0), &caps[j].capture(0), &config) else {
                continue;
            };
            let windows: Vec<(f64, f64)> = r
                .windows
                .iter()
                .filter(|w| to.is_none_or(|t| w.t + window <= t))
                .map(|w| ((w.t - from).as_nanos() as f64 * 1e-9, w.skew_us))
                .collect();
            if !windows.is_empty() {
                let pair = skew.add_pair(&recordings[i].name, &recordings[j].name);
                skew.extend(pair, windows);
            }
        }
    }
    skew.group().ok_or(SkewError::NoOverlap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_group_come_from_the_same_windows() {
        let mut s = PairwiseSkew::new();
        let ab = s.add_pair("a", "b");
        let ac = s.add_pair("a", "c");
        let empty = s.add_pair("b", "c");
        s.extend(ab, [(0.0, 1.0), (0.5, -3.0), (1.0, 2.0)]);
        s.extend(ac, [(0.4, 5.0), (1.1, -1.0)]);
        let p = s.pair(ab);
        assert_eq!((p.p50_us, p.max_us, p.windows), (2.0, 3.0, 3));
        assert_eq!(p.mean_us, 0.0);
        let e = s.pair(empty);
        assert!(e.p50_us.is_nan() && e.max_us.is_nan() && e.windows == 0);
        let g = s.group().unwrap();
        assert_eq!(g.pairs.len(), 3);
        assert_eq!((g.p50_us, g.max_us), (2.0, 5.0));
        // 0.4 s falls in the 0.5 s slot with 0.5 s; 1.1 s in the 1.0 s slot.
        assert_eq!(g.series, [(0.0, 1.0), (0.5, 5.0), (1.0, 2.0)]);
        assert_eq!(s.abs_where(|pair, t| pair == ac && t > 1.0), [1.0]);
        assert!(PairwiseSkew::new().group().is_none());
    }
}
