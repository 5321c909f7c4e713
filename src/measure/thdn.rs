//! THD+N of a sine tone, window by window: how far a recording of a pure tone is from a
//! pure tone whose timing may wander slowly.
//!
//! # What is measured
//!
//! For one window `x[0..N)` the model is a single sinusoid plus DC,
//!
//! ```text
//! model[n] = a·cos θ[n] + b·sin θ[n] + c
//! θ[n]     = ω₀·m + s(n),    m = n − (N − 1)/2
//! ```
//!
//! where `s` is a cubic spline with its knots 10 ms apart: the window is cut into
//! `L = round((N − 1) / (0.01 s · rate))` equal pieces (at least one; a window of 15 ms or
//! less is a single cubic). `a, b` (amplitude and phase), `c` (DC) and the spline's `L + 2`
//! free coefficients are fitted by least squares; `ω₀` is the best of a grid of
//! frequencies within ±4 bins (±4/T Hz for a window of T seconds) of the hint, and the
//! spline refines it to full precision. So the fitted tone has constant amplitude and a
//! phase that may wander smoothly: its instantaneous frequency is a C¹ quadratic spline.
//!
//! The figure returned is
//!
//! ```text
//! THD+N = 10·log10( Σ (x − model)²  /  Σ (x − x̄)² )   dB
//! ```
//!
//! i.e. the energy of everything that is not the tone or DC — harmonics, aliases, noise,
//! clicks, amplitude modulation, and phase modulation faster than a few tens of hertz
//! (jitter) — relative to the window's AC energy (`x̄` is the window mean). Both sums run
//! over the same window with uniform weight; nothing is filtered or band-limited.
//!
//! ## Why a phase spline
//!
//! A drift corrector's output has an instantaneous frequency that follows its ratio, and a
//! servo changes the ratio continuously. That is timing, not distortion. In its first
//! seconds the playout servo is fast (0.5 Hz, smoothing poles of 70 ms) and chases a young
//! clock estimate: the ratio moves by a couple of hundred ppm within half a second and turns
//! within a window. One polynomial per window cannot follow that. This meter used to fit a
//! cubic phase per 100 ms window; a pure tone synthesised in f64 whose phase follows, block
//! by block, the ratio the servo actually produced (Wi-Fi, +150 ppm, no corrector at all)
//! read −68.5 dB at 15 kHz 1.1 s into the run and −105.5 dB at 10.9 s — exactly what the
//! corrector's output read there. The meter, not the corrector, made those figures.
//!
//! A cubic spline with knots every 10 ms follows a slow phase wander and counts a fast
//! one. Phase modulation of a tone (sidebands at ±fm) is followed to within −155 dB of its
//! sidebands at fm = 1 Hz, −100 dB at 5 Hz, −76 dB at 10 Hz and −48 dB at 20 Hz; from
//! about 60 Hz on it is counted in full, as jitter. Why 10 ms:
//!
//! - the servo's own dynamics are far slower (crossover 0.5 Hz at most, smoothing poles of
//!   70 ms at least), so a trajectory it makes on purpose is followed: a glide across
//!   220 ppm in 0.4 s along a half cosine (860 ppm/s at its steepest; the servo reached
//!   880 ppm/s in its first second on Wi-Fi) reads −148 dB at 15 kHz and −171 dB at 1 kHz
//!   in its worst window, where its curvature starts and stops;
//! - it is still a strict notion of "the tone": AES17-2015's standard notch takes all the
//!   power within an octave around the fundamental as the fundamental; this meter takes
//!   the ±60 Hz or so the spline can follow;
//! - it costs real distortion almost nothing. Harmonics and aliases lie kilohertz away and
//!   are counted in full (a harmonic at −60 or −100 dB reads −60.0 or −100.0 dB), and so is
//!   a click (one sample off by e reads e² over the window's energy, within 0.02 dB). The
//!   spline's 12 coefficients in a 100 ms window take 12 of 4800 degrees of freedom: white
//!   noise reads 0.01–0.02 dB low. A dropped or repeated frame is a phase step that the
//!   spline can only round off over about one knot spacing: at 1 kHz it reads about −37 to
//!   −39 dB (a single cubic read −32 dB), at 15 kHz about −14 to −15 dB (−9 dB).
//!
//! What it counts although it is timing: a phase whose second or third derivative jumps
//! between knots. The corrector ramps its ratio linearly across each block, so its output's
//! frequency is piecewise linear; and when the servo's commanded ratio steps (the young
//! clock estimate refitting), its two smoothing poles, updated once a block, turn the step
//! into a jump of the ratio's slope. That is real phase modulation of a few tens of hertz,
//! and it is read at its level: one 155 ppm step so smoothed and ramped reads −106 dB at
//! 15 kHz (−130 dB at 1 kHz), the same step through continuous-time poles −132 dB
//! (−156 dB). Such steps set `drift_quality`'s worst windows in the servo's first two
//! seconds (−98.9 dB at 15 kHz, 1.1 s in, a 155 ppm step), and a tone synthesised in f64
//! from the same per-block ratios reads the same to 0.1 dB: the corrector adds nothing
//! there. Timing of this kind scales with the tone's frequency (20·log10 15 = 23.5 dB more
//! at 15 kHz than at 1 kHz).
//!
//! ## Precision
//!
//! Everything is computed in f64. The large part of the phase, `ω₀·m`, is computed exactly
//! (an FMA-split product, then reduced modulo a double-double 2π), so a pure tone computed in
//! f64 reads at the rounding level of its samples (below −250 dB), not at the level of the
//! rounding of a phase of thousands of radians. A tone rounded to f32 reads at about
//! −150 dB, the f32 quantization floor.

use std::f64::consts::{PI, TAU};

/// 2π − `TAU` (the low part of a double-double 2π).
const TAU_LO: f64 = 2.449_293_598_294_706_4e-16;

/// Fewest samples [`thdn_db`] will fit.
const MIN_SAMPLES: usize = 16;

/// Spacing of the phase spline's knots, in seconds: phase modulation well below
/// 1/(2 × this) = 50 Hz is taken for timing, faster modulation for jitter (see the module
/// docs).
const KNOT_SPACING_S: f64 = 0.01;

/// Half-width of the coarse frequency search, in bins of 1/N cycles per sample.
const SEARCH_BINS: f64 = 4.0;

/// Coarse-grid points per bin.
const GRID_PER_BIN: f64 = 8.0;

/// Most Gauss–Newton iterations.
const MAX_ITERATIONS: usize = 60;

/// THD+N of one window: fits a sinusoid (constant amplitude, DC, and a phase that wanders
/// smoothly around a frequency found near `freq_hint_hz`, a cubic spline with knots 10 ms
/// apart) by least squares and returns `10·log10(residual energy / AC energy)` in dB.
/// See the [module docs](self) for exactly what is fitted and why.
///
/// The true frequency must be within ±4 bins (±4·`sample_rate`/`window.len()` Hz) of the
/// hint. Returns NaN for a window shorter than 16 samples, a non-positive or non-finite
/// sample rate, a hint outside (0, Nyquist), or a window with no AC energy (or non-finite
/// samples); −∞ if the fit is exact.
pub fn thdn_db<S: Copy + Into<f64>>(window: &[S], sample_rate: f64, freq_hint_hz: f64) -> f64 {
    let x: Vec<f64> = window.iter().map(|&s| s.into()).collect();
    thdn_f64(&x, sample_rate, freq_hint_hz)
}

/// Splits a mono signal into consecutive, non-overlapping windows of `window_s` seconds
/// (rounded to whole samples), after skipping `skip_s` seconds at the start, and returns
/// each complete window's [`thdn_db`]. A partial window at the end is left out.
pub fn thdn_windows<S: Copy + Into<f64>>(
    signal: &[S],
    sample_rate: f64,
    freq_hint_hz: f64,
    window_s: f64,
    skip_s: f64,
) -> Vec<f64> {
    let len = (window_s * sample_rate).round();
    let skip = (skip_s * sample_rate).round();
    if !(len >= 1.0 && skip >= 0.0) {
        return Vec::new();
    }
    let (len, skip) = (len as usize, skip as usize);
    let mut out = Vec::new();
    let mut x = vec![0.0f64; len];
    let mut start = skip;
    while start
        .checked_add(len)
        .is_some_and(|end| end <= signal.len())
    {
        for (d, &s) in x.iter_mut().zip(&signal[start..start + len]) {
            *d = s.into();
        }
        out.push(thdn_f64(&x, sample_rate, freq_hint_hz));
        start += len;
    }
    out
}

/// `ω·m` reduced to about (−π, π], computed as if exactly: the product is split with an
/// FMA and reduced modulo a double-double 2π. Absolute error about 1e-15 rad.
fn reduced_phase(omega: f64, m: f64) -> f64 {
    let p = omega * m;
    let e = omega.mul_add(m, -p);
    let k = (p / TAU).round();
    (-k).mul_add(TAU, p) - k * TAU_LO + e
}

/// Where one sample sits on the phase spline: the index `s` of the first of the four cubic
/// B-splines that are non-zero there, and their values.
#[derive(Clone, Copy)]
struct SplinePoint {
    first: usize,
    b: [f64; 4],
}

/// Uniform cubic B-splines over the window: `intervals` equal pieces, so `intervals + 3`
/// functions, numbered `s = 0 ..= intervals + 2`. Their sum is 1, which makes a constant
/// phase the same as rotating `(a, b)`; so function 0 gets no coefficient (without it, the
/// other functions and the rotation still span every spline) and coefficient `s − 1`
/// belongs to function `s`.
fn spline_points(n: usize, intervals: usize) -> Vec<SplinePoint> {
    let h = (n - 1) as f64 / intervals as f64;
    (0..n)
        .map(|i| {
            let u = i as f64 / h;
            let q = (u.floor() as usize).min(intervals - 1);
            let t = u - q as f64;
            let (t2, t3) = (t * t, t * t * t);
            let s = 1.0 - t;
            SplinePoint {
                first: q,
                b: [
                    s * s * s / 6.0,
                    (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
                    (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0,
                    t3 / 6.0,
                ],
            }
        })
        .collect()
}

/// The fit's state: the phase spline's coefficients and the linear a, b, c.
#[derive(Clone)]
struct Params {
    w: Vec<f64>,
    a: f64,
    b: f64,
    c: f64,
}

struct Fit<'a> {
    x: &'a [f64],
    base: Vec<f64>,
    spline: Vec<SplinePoint>,
    /// Phase coefficients: `intervals + 2`.
    phases: usize,
}

impl Fit<'_> {
    fn theta(&self, n: usize, w: &[f64]) -> f64 {
        let p = &self.spline[n];
        let mut t = self.base[n];
        for (k, &b) in p.b.iter().enumerate() {
            if let Some(j) = (p.first + k).checked_sub(1) {
                t += w[j] * b;
            }
        }
        t
    }

    /// Sum of squared residuals.
    fn ssr(&self, p: &Params) -> f64 {
        let mut s = 0.0;
        for n in 0..self.x.len() {
            let (sn, cn) = self.theta(n, &p.w).sin_cos();
            let r = self.x[n] - (p.a * cn + p.b * sn + p.c);
            s += r * r;
        }
        s
    }

    /// Linear least squares for a, b, c at fixed phase coefficients.
    fn linear(&self, w: Vec<f64>) -> Option<Params> {
        let mut m = vec![0.0f64; 9];
        let mut v = [0.0f64; 3];
        for n in 0..self.x.len() {
            let (sn, cn) = self.theta(n, &w).sin_cos();
            let j = [cn, sn, 1.0];
            for r in 0..3 {
                v[r] += j[r] * self.x[n];
                for c in r..3 {
                    m[r * 3 + c] += j[r] * j[c];
                }
            }
        }
        let sol = solve_sym(3, m, v.to_vec())?;
        Some(Params {
            w,
            a: sol[0],
            b: sol[1],
            c: sol[2],
        })
    }

    /// One Gauss–Newton step: the update for (a, b, c, w…).
    fn gauss_newton_step(&self, p: &Params) -> Option<Vec<f64>> {
        let k = 3 + self.phases;
        let mut m = vec![0.0f64; k * k];
        let mut v = vec![0.0f64; k];
        // Each sample touches a, b, c and at most four spline coefficients; the normal
        // matrix is summed over those alone (indices ascending, upper triangle).
        let mut idx = [0usize; 7];
        let mut jac = [0.0f64; 7];
        for n in 0..self.x.len() {
            let (sn, cn) = self.theta(n, &p.w).sin_cos();
            let r = self.x[n] - (p.a * cn + p.b * sn + p.c);
            let g = p.b * cn - p.a * sn;
            let sp = &self.spline[n];
            idx[..3].copy_from_slice(&[0, 1, 2]);
            jac[..3].copy_from_slice(&[cn, sn, 1.0]);
            let mut used = 3;
            for (q, &b) in sp.b.iter().enumerate() {
                if let Some(j) = (sp.first + q).checked_sub(1) {
                    idx[used] = 3 + j;
                    jac[used] = g * b;
                    used += 1;
                }
            }
            for r_ in 0..used {
                v[idx[r_]] += jac[r_] * r;
                let row = idx[r_] * k;
                for c in r_..used {
                    m[row + idx[c]] += jac[r_] * jac[c];
                }
            }
        }
        solve_sym(k, m, v)
    }
}

/// Solves `m·x = v` for a symmetric positive semi-definite `k × k` matrix `m` (row-major,
/// upper triangle given), after scaling it to unit diagonal; unknowns whose column is zero
/// are left at 0.
fn solve_sym(k: usize, mut m: Vec<f64>, v: Vec<f64>) -> Option<Vec<f64>> {
    for r in 0..k {
        for c in 0..r {
            m[r * k + c] = m[c * k + r];
        }
    }
    let scale: Vec<f64> = (0..k)
        .map(|i| {
            let d = m[i * k + i];
            if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 }
        })
        .collect();
    let mut a = m;
    let mut b = v;
    for r in 0..k {
        for c in 0..k {
            a[r * k + c] *= scale[r] * scale[c];
        }
        if scale[r] == 0.0 {
            a[r * k + r] = 1.0;
        }
        b[r] *= scale[r];
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..k {
        let piv =
            (col..k).max_by(|&i, &j| a[i * k + col].abs().total_cmp(&a[j * k + col].abs()))?;
        let p = a[piv * k + col];
        if p.abs() < 1e-14 || !p.is_finite() {
            return None;
        }
        if piv != col {
            for c in 0..k {
                a.swap(col * k + c, piv * k + c);
            }
            b.swap(col, piv);
        }
        for r in col + 1..k {
            let f = a[r * k + col] / a[col * k + col];
            if f == 0.0 {
                continue;
            }
            for c in col..k {
                a[r * k + c] -= f * a[col * k + c];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = vec![0.0f64; k];
    for r in (0..k).rev() {
        let mut s = b[r];
        for c in r + 1..k {
            s -= a[r * k + c] * x[c];
        }
        x[r] = s / a[r * k + r];
    }
    for r in 0..k {
        x[r] *= scale[r];
    }
    Some(x)
}

/// Coarse search: the grid frequency (rad/sample) near `omega_hint` that maximizes the
/// energy of the window's (mean-removed) projection on a complex exponential.
fn coarse_omega(x: &[f64], mean: f64, omega_hint: f64) -> f64 {
    let n = x.len() as f64;
    let bin = TAU / n;
    let step = bin / GRID_PER_BIN;
    let steps = (SEARCH_BINS * GRID_PER_BIN) as i64;
    let mut best = (f64::NEG_INFINITY, omega_hint);
    for k in -steps..=steps {
        let omega = omega_hint + k as f64 * step;
        if !(omega > 0.0 && omega < PI) {
            continue;
        }
        // Rotate a phasor sample by sample; a few ulp of drift do not matter here.
        let (s1, c1) = omega.sin_cos();
        let (mut zr, mut zi) = (1.0f64, 0.0f64);
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for &v in x {
            let d = v - mean;
            re += d * zr;
            im += d * zi;
            let nr = zr * c1 - zi * s1;
            zi = zr * s1 + zi * c1;
            zr = nr;
        }
        let e = re * re + im * im;
        if e > best.0 {
            best = (e, omega);
        }
    }
    best.1
}

fn thdn_f64(x: &[f64], sample_rate: f64, freq_hint_hz: f64) -> f64 {
    let n = x.len();
    if n < MIN_SAMPLES
        || !(sample_rate > 0.0 && sample_rate.is_finite())
        || !(freq_hint_hz > 0.0 && freq_hint_hz < sample_rate / 2.0)
    {
        return f64::NAN;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let total: f64 = x.iter().map(|v| (v - mean) * (v - mean)).sum();
    if !(total > 0.0 && total.is_finite()) {
        return f64::NAN;
    }
    let omega0 = coarse_omega(x, mean, TAU * freq_hint_hz / sample_rate);
    let centre = (n - 1) as f64 / 2.0;
    let knot = KNOT_SPACING_S * sample_rate;
    let intervals = (((n - 1) as f64 / knot).round() as usize).max(1);
    let fit = Fit {
        x,
        base: (0..n)
            .map(|i| reduced_phase(omega0, i as f64 - centre))
            .collect(),
        spline: spline_points(n, intervals),
        phases: intervals + 2,
    };
    let Some(mut p) = fit.linear(vec![0.0; fit.phases]) else {
        return f64::NAN;
    };
    let mut ssr = fit.ssr(&p);
    for _ in 0..MAX_ITERATIONS {
        let Some(d) = fit.gauss_newton_step(&p) else {
            break;
        };
        // Step, halving it while it does not lower the residual.
        let mut lambda = 1.0;
        let mut improved = false;
        for _ in 0..30 {
            let w: Vec<f64> =
                p.w.iter()
                    .zip(&d[3..])
                    .map(|(w, d)| w + lambda * d)
                    .collect();
            // Solve the linear part exactly at the new phase (variable projection).
            let q = fit.linear(w.clone()).unwrap_or(Params {
                w,
                a: p.a + lambda * d[0],
                b: p.b + lambda * d[1],
                c: p.c + lambda * d[2],
            });
            let s = fit.ssr(&q);
            if s < ssr {
                let gain = (ssr - s) / ssr;
                p = q;
                ssr = s;
                improved = gain > 1e-10;
                break;
            }
            lambda *= 0.5;
        }
        if !improved {
            break;
        }
    }
    if ssr == 0.0 {
        return f64::NEG_INFINITY;
    }
    10.0 * (ssr / total).log10()
}
