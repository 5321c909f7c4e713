//! Natural logarithm, exponential and sine built from IEEE-754 basic operations only.
//!
//! `f64::ln` and `f64::exp` call the platform's maths library, whose results may differ in
//! the last bit between operating systems, architectures and compiler releases. The
//! simulator promises bit-identical results for a seed everywhere, so its distributions use
//! these instead. Addition, subtraction, multiplication, division and square root are
//! correctly rounded by IEEE-754 on every platform Rust supports, and Rust never fuses them
//! behind our back, so a function built only from them gives the same bits everywhere.
//!
//! Accuracy is within a few units in the last place, far more than a network model needs;
//! what matters here is that the answer never changes.

/// ln 2 split in two: the high part has only 32 significant bits (its low 21 bits are zero),
/// so `k * LN2_HI` is exact for any exponent `k` an `f64` can have, and the low part carries
/// the rest. Given as bits, because the split is about bits.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const LOG2_E: f64 = core::f64::consts::LOG2_E;
const SQRT_2: f64 = core::f64::consts::SQRT_2;

/// Bits of an `f64` mantissa.
const MANTISSA: u64 = (1 << 52) - 1;

/// `2^k` for `k` in the normal range `-1022..=1023`.
fn pow2(k: i64) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// The natural logarithm of `x`: NaN below zero, −∞ at zero.
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    // Write x = m · 2^e with m in [1, 2); lift subnormals into the normal range first.
    let (x, mut e) = if x < f64::MIN_POSITIVE {
        (x * pow2(54), -54)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & MANTISSA) | (1023 << 52));
    // Centre m on 1 so that the series below converges fast on both sides.
    if m > SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s) with s = (m - 1) / (m + 1); |s| <= 0.1716, so s² <= 0.0295 and
    // eleven odd terms reach below an ulp. m - 1 is exact here (Sterbenz).
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    // Horner's scheme from the innermost term out (a loop: the nested expression defeats
    // rustfmt); the order of operations, and so every bit, is that of the nested form.
    let mut p = 1.0 / 21.0 + z / 23.0;
    for c in [
        1.0 / 19.0,
        1.0 / 17.0,
        1.0 / 15.0,
        1.0 / 13.0,
        1.0 / 11.0,
        1.0 / 9.0,
        1.0 / 7.0,
        1.0 / 5.0,
        1.0 / 3.0,
    ] {
        p = c + z * p;
    }
    let tail = z * p;
    let ln_m = 2.0 * s + 2.0 * s * tail;
    let e = e as f64;
    e * LN2_HI + (e * LN2_LO + ln_m)
}

/// `e^x`: +∞ above about 709.78, zero below about −745.13.
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.782_712_893_384 {
        return f64::INFINITY;
    }
    if x < -745.133_219_101_941_1 {
        return 0.0;
    }
    // x = k ln 2 + r with |r| <= ln2 / 2, so e^x = 2^k e^r.
    let k = (x * LOG2_E).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor series of e^r; with |r| <= 0.347 the 15th term is below 1e-19.
    let mut p = INV_FACTORIAL[14];
    for &c in INV_FACTORIAL[..14].iter().rev() {
        p = p * r + c;
    }
    let k = k as i64;
    if k > 1023 {
        p * pow2(1023) * 2.0
    } else if k < -1022 {
        // The result is subnormal: scale in two steps so no intermediate underflows early.
        p * pow2(k + 54) * pow2(-54)
    } else {
        p * pow2(k)
    }
}

/// `1 / n!` for `n` in `0..=14`, the coefficients of the exponential's Taylor series.
const INV_FACTORIAL: [f64; 15] = {
    let mut table = [1.0; 15];
    let mut factorial = 1.0;
    let mut n = 1;
    while n < 15 {
        factorial *= n as f64;
        table[n] = 1.0 / factorial;
        n += 1;
    }
    table
};

/// `sin x`, for the simulator's periodic frequency changes. Reduced to `[-π, π]` by whole
/// turns (with 2π split in two so the reduction stays exact for the arguments a simulation
/// gives: a few thousand turns), then to `[-π/2, π/2]` by symmetry, then a Taylor series.
pub(crate) fn sin(x: f64) -> f64 {
    if !x.is_finite() {
        return f64::NAN;
    }
    // 2π as a high part whose low 32 bits are zero (so `turns * TWO_PI_HI` is exact) plus
    // the rest, as for ln 2 above.
    const TWO_PI_HI: f64 = f64::from_bits(0x401921fb_54000000);
    const TWO_PI_LO: f64 = core::f64::consts::TAU - TWO_PI_HI;
    const PI: f64 = core::f64::consts::PI;
    const HALF_PI: f64 = core::f64::consts::FRAC_PI_2;
    let turns = (x / core::f64::consts::TAU).round();
    let mut r = (x - turns * TWO_PI_HI) - turns * TWO_PI_LO;
    if r > HALF_PI {
        r = PI - r;
    } else if r < -HALF_PI {
        r = -PI - r;
    }
    // |r| <= π/2: the last term kept, of degree 21, is below 3e-16.
    let z = r * r;
    let mut p = 0.0;
    for k in (1..=11).rev() {
        // Horner: r (1 - z/(2·3) (1 - z/(4·5) (...)))
        let d = (2 * k * (2 * k + 1)) as f64;
        p = 1.0 - z / d * p;
    }
    r * p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln2_splits_into_its_parts() {
        assert_eq!(LN2_HI + LN2_LO, core::f64::consts::LN_2);
        assert!(LN2_HI.to_bits().trailing_zeros() >= 21);
    }

    /// Distance in units of the last place between two finite floats of the same sign.
    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn ln_agrees_with_the_platform_to_a_few_ulps() {
        let mut x = 1e-310;
        while x < 1e300 {
            for m in [1.0, 1.1, 1.41, 1.42, 1.9, 2.7] {
                let v = x * m;
                let (ours, theirs) = (ln(v), v.ln());
                assert!(
                    ulps(ours, theirs) <= 4 || (ours - theirs).abs() < 1e-15,
                    "ln({v}) = {ours}, platform {theirs}"
                );
            }
            x *= 7.3;
        }
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert_eq!(ln(f64::INFINITY), f64::INFINITY);
        // Near 1, where the answer is small and cancellation would show.
        for d in [1e-15, 3e-12, -7e-10, 2e-6, -0.01, 0.3] {
            let x = 1.0 + d;
            // x - 1 is exact here, so ln_1p gives an accurate reference.
            assert!(ulps(ln(x), (x - 1.0).ln_1p()) <= 2, "ln({x})");
        }
    }

    #[test]
    fn exp_agrees_with_the_platform_to_a_few_ulps() {
        let mut x = -745.0;
        while x < 709.0 {
            let (ours, theirs) = (exp(x), x.exp());
            let close = if theirs < f64::MIN_POSITIVE {
                (ours - theirs).abs() <= 2.0 * f64::from_bits(1)
            } else {
                ulps(ours, theirs) <= 4
            };
            assert!(close, "exp({x}) = {ours}, platform {theirs}");
            x += 0.377;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(710.0), f64::INFINITY);
        assert_eq!(exp(-746.0), 0.0);
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn sine_matches_the_platform_to_a_few_ulps() {
        for i in -20_000..20_000 {
            let x = i as f64 * 0.0137;
            let (ours, theirs) = (sin(x), x.sin());
            assert!(
                (ours - theirs).abs() < 1e-13,
                "sin({x}) = {ours}, platform {theirs}"
            );
        }
        assert_eq!(sin(0.0), 0.0);
        assert!(sin(f64::INFINITY).is_nan());
    }
}
