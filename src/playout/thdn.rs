//! THD+N of a sine tone, window by window: how far a recording of a pure tone is from a
//! pure tone.
//!
//! # What is measured
//!
//! For one window `x[0..N)` the model is a single sinusoid plus DC,
//!
//! ```text
//! model[n] = a·cos θ[n] + b·sin θ[n] + c
//! θ[n]     = ω₀·m + w₁·P₁(τ) + w₂·P₂(τ) + w₃·P₃(τ)
//! m        = n − (N − 1)/2,    τ = m / ((N − 1)/2) ∈ [−1, 1]
//! ```
//!
//! where `P₁, P₂, P₃` are Legendre polynomials. `a, b` (amplitude and phase), `c` (DC),
//! and the phase polynomial `w₁, w₂, w₃` are fitted by least squares; `ω₀` is the best of a
//! grid of frequencies within ±4 bins (±4/T Hz for a window of T seconds) of the hint,
//! and `w₁` refines it to full precision. So the fitted tone has constant amplitude and an
//! instantaneous frequency that may vary *quadratically* across the window.
//!
//! The figure returned is
//!
//! ```text
//! THD+N = 10·log10( Σ (x − model)²  /  Σ (x − x̄)² )   dB
//! ```
//!
//! i.e. the energy of everything that is not the (slowly frequency-varying) tone or DC —
//! harmonics, aliases, noise, clicks, amplitude modulation — relative to the window's AC
//! energy (`x̄` is the window mean). Both sums run over the same window with uniform
//! weight; nothing is filtered or band-limited.
//!
//! ## Why the phase polynomial
//!
//! A drift corrector's output has an instantaneous frequency that follows its ratio, and a
//! servo changes the ratio continuously. That is correct timing, not distortion, and a fit
//! with one fixed frequency per window would report it as distortion: a ratio drifting by
//! 1.8·10⁻⁶ over a 100 ms window (a ±20 ppm wobble with a 7 s period) gives a linear chirp
//! that a constant-frequency fit leaves at about −64 dB at 15 kHz. The quadratic phase term
//! absorbs the chirp, the cubic one the curvature of the wobble (which would otherwise still
//! read about −106 dB at 15 kHz); what remains of such a wobble, mostly a quartic phase
//! term, reads about −151 dB at 15 kHz where the wobble bends most, and 20·log10 of the
//! frequency ratio less at lower frequencies (about −175 dB at 1 kHz). That is the floor
//! of this meter on such a signal, at the level of f32 rounding. Three extra degrees of
//! freedom out of thousands of samples absorb a negligible share of real noise (N − 6 of N
//! degrees of freedom remain).
//!
//! A step in timing, as made by dropping or repeating a frame, cannot be absorbed by a
//! smooth phase and shows up in full.
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

/// Half-width of the coarse frequency search, in bins of 1/N cycles per sample.
const SEARCH_BINS: f64 = 4.0;

/// Coarse-grid points per bin.
const GRID_PER_BIN: f64 = 8.0;

/// Most Gauss–Newton iterations.
const MAX_ITERATIONS: usize = 60;

/// THD+N of one window: fits a sinusoid (amplitude, phase, DC, and a frequency refined
/// around `freq_hint_hz`, allowed to vary slowly across the window) by least squares and
/// returns `10·log10(residual energy / AC energy)` in dB. See the [module docs](self) for
/// exactly what is fitted.
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

/// Legendre polynomials P₁, P₂, P₃ at `t`.
fn legendre(t: f64) -> [f64; 3] {
    let t2 = t * t;
    [t, 0.5 * (3.0 * t2 - 1.0), 0.5 * (5.0 * t2 - 3.0) * t]
}

/// The fit's nonlinear state: phase polynomial coefficients and the linear a, b, c.
#[derive(Clone, Copy)]
struct Params {
    w: [f64; 3],
    a: f64,
    b: f64,
    c: f64,
}

struct Fit<'a> {
    x: &'a [f64],
    base: Vec<f64>,
    poly: Vec<[f64; 3]>,
}

impl Fit<'_> {
    fn theta(&self, n: usize, w: &[f64; 3]) -> f64 {
        let p = &self.poly[n];
        self.base[n] + w[0] * p[0] + w[1] * p[1] + w[2] * p[2]
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
    fn linear(&self, w: [f64; 3]) -> Option<Params> {
        let mut m = [[0.0f64; 3]; 3];
        let mut v = [0.0f64; 3];
        for n in 0..self.x.len() {
            let (sn, cn) = self.theta(n, &w).sin_cos();
            let j = [cn, sn, 1.0];
            for r in 0..3 {
                v[r] += j[r] * self.x[n];
                for c in r..3 {
                    m[r][c] += j[r] * j[c];
                }
            }
        }
        let sol = solve_sym::<3>(m, v)?;
        Some(Params {
            w,
            a: sol[0],
            b: sol[1],
            c: sol[2],
        })
    }

    /// One Gauss–Newton step: the update for (a, b, c, w₁, w₂, w₃).
    fn gauss_newton_step(&self, p: &Params) -> Option<[f64; 6]> {
        let mut m = [[0.0f64; 6]; 6];
        let mut v = [0.0f64; 6];
        for n in 0..self.x.len() {
            let (sn, cn) = self.theta(n, &p.w).sin_cos();
            let r = self.x[n] - (p.a * cn + p.b * sn + p.c);
            let g = p.b * cn - p.a * sn;
            let q = &self.poly[n];
            let j = [cn, sn, 1.0, g * q[0], g * q[1], g * q[2]];
            for r_ in 0..6 {
                v[r_] += j[r_] * r;
                for c in r_..6 {
                    m[r_][c] += j[r_] * j[c];
                }
            }
        }
        solve_sym::<6>(m, v)
    }
}

/// Solves `m·x = v` for a symmetric positive semi-definite `m` given by its upper triangle,
/// after scaling it to unit diagonal; unknowns whose column is zero are left at 0.
#[allow(clippy::needless_range_loop)] // index loops read best for matrix code
fn solve_sym<const K: usize>(mut m: [[f64; K]; K], v: [f64; K]) -> Option<[f64; K]> {
    for r in 0..K {
        for c in 0..r {
            m[r][c] = m[c][r];
        }
    }
    let mut scale = [0.0f64; K];
    for i in 0..K {
        scale[i] = if m[i][i] > 0.0 {
            1.0 / m[i][i].sqrt()
        } else {
            0.0
        };
    }
    let mut a = [[0.0f64; K]; K];
    let mut b = [0.0f64; K];
    for r in 0..K {
        for c in 0..K {
            a[r][c] = m[r][c] * scale[r] * scale[c];
        }
        if scale[r] == 0.0 {
            a[r][r] = 1.0;
        }
        b[r] = v[r] * scale[r];
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..K {
        let piv = (col..K).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-14 || !a[piv][col].is_finite() {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for r in col + 1..K {
            let f = a[r][col] / a[col][col];
            for c in col..K {
                a[r][c] -= f * a[col][c];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = [0.0f64; K];
    for r in (0..K).rev() {
        let mut s = b[r];
        for c in r + 1..K {
            s -= a[r][c] * x[c];
        }
        x[r] = s / a[r][r];
    }
    for r in 0..K {
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
    let fit = Fit {
        x,
        base: (0..n)
            .map(|i| reduced_phase(omega0, i as f64 - centre))
            .collect(),
        poly: (0..n)
            .map(|i| legendre((i as f64 - centre) / centre))
            .collect(),
    };
    let Some(mut p) = fit.linear([0.0; 3]) else {
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
            let q = Params {
                a: p.a + lambda * d[0],
                b: p.b + lambda * d[1],
                c: p.c + lambda * d[2],
                w: [
                    p.w[0] + lambda * d[3],
                    p.w[1] + lambda * d[4],
                    p.w[2] + lambda * d[5],
                ],
            };
            // Re-solve the linear part exactly at the new phase (variable projection).
            let q = fit.linear(q.w).unwrap_or(q);
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
