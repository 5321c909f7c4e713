//! The simulator's random number generator and the distributions it draws from.
//!
//! [`SimRng`] is xoshiro256++ (Blackman and Vigna), a small, fast generator with a 2^256 − 1
//! period that passes the usual statistical batteries; its 256-bit state is filled from the
//! `u64` seed by splitmix64, as the generator's authors recommend. The generator and every
//! distribution are written here rather than taken from a crate so that a seed means the same
//! sequence forever, whatever a dependency later changes; see the module docs of
//! [`crate::sim`] for why the distributions avoid the platform's `ln` and `exp`.
//!
//! Each simulated component should own its own generator obtained with [`SimRng::fork`]. A
//! fork depends only on the seed it came from and a stream number, never on how many draws
//! have been made, so components can be added, removed or made to draw more without
//! disturbing the others.

use super::math::{exp, ln};

/// Odd constant of splitmix64's counter (2^64 / φ).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
/// Keeps fork seeds apart from plain seeds, so `fork` does not merely rename a seed.
const FORK_DOMAIN: u64 = 0x6c6f_636b_7374_6570; // "lockstep"

/// The splitmix64 output function: a bijective mix of all 64 bits.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded xoshiro256++ generator with the distributions the simulator needs.
///
/// Draws are deterministic: the same seed gives the same values, bit for bit, on every
/// platform. A generator is cheap to clone; a clone continues the same sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRng {
    state: [u64; 4],
    /// The seed this generator started from, kept so that forks do not depend on the state.
    seed: u64,
}

impl SimRng {
    /// A generator whose state is filled by splitmix64 from `seed`.
    ///
    /// Every seed, zero included, gives a valid (never all-zero) state: splitmix64's outputs
    /// for four consecutive counter values are distinct, so at most one of them is zero.
    pub fn new(seed: u64) -> SimRng {
        let mut counter = seed;
        let mut next = || {
            counter = counter.wrapping_add(GOLDEN_GAMMA);
            mix64(counter)
        };
        SimRng {
            state: [next(), next(), next(), next()],
            seed,
        }
    }

    /// The seed this generator was created from (for a fork, the seed derived for it).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// An independent generator for sub-stream `stream`, derived from this generator's seed.
    ///
    /// The result depends only on the seed and `stream`, never on draws already made, so
    /// `SimRng::new(s).fork(3)` is the same generator however much the parent has been used.
    /// Different streams of one seed give different, unrelated sequences; forks can be forked
    /// again to build a tree (a network, then each link, then each mechanism of a link).
    pub fn fork(&self, stream: u64) -> SimRng {
        // For a fixed seed this map is a bijection of `stream`, so two streams of one seed
        // can never share a seed.
        SimRng::new(mix64(mix64(self.seed ^ FORK_DOMAIN) ^ stream))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = self.state;
        let out = s0.wrapping_add(s3).rotate_left(23).wrapping_add(s0);
        let t = s1 << 17;
        let s2 = s2 ^ s0;
        let s3 = s3 ^ s1;
        let s1 = s1 ^ s2;
        let s0 = s0 ^ s3;
        self.state = [s0, s1, s2 ^ t, s3.rotate_left(45)];
        out
    }

    /// A uniform draw from `[0, 1)` with 53 random bits (every multiple of 2^-53).
    pub fn next_f64(&mut self) -> f64 {
        // The top bits of xoshiro256++ are its best; 53 of them fill an f64 mantissa exactly.
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform draw between `lo` and `hi`: `lo + (hi - lo) · u` for one
    /// [`next_f64`](SimRng::next_f64) draw `u`, so `lo` can come up and `hi` only through
    /// rounding.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// True with probability `p` (never for `p <= 0`, always for `p >= 1`).
    ///
    /// Always consumes exactly one draw, whatever `p`, so changing a probability does not
    /// shift the rest of the sequence.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// An exponential draw with the given mean (rate `1 / mean`), by inversion.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u = 1.0 - self.next_f64();
        -ln(u) * mean
    }

    /// A normal (Gaussian) draw, by Marsaglia's polar method.
    ///
    /// The polar method needs only a logarithm and a square root, no sine or cosine, so it
    /// stays within the operations that are reproducible everywhere. It consumes pairs of
    /// uniform draws until one falls inside the unit disc (on average 1.27 pairs) and
    /// discards the second normal value it could produce, so a draw never depends on an
    /// earlier one.
    pub fn normal(&mut self, mean: f64, std: f64) -> f64 {
        loop {
            let u = 2.0 * self.next_f64() - 1.0;
            let v = 2.0 * self.next_f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return mean + std * u * (-2.0 * ln(s) / s).sqrt();
            }
        }
    }

    /// A Pareto type I draw: never below `scale`, with `P(X > x) = (scale / x)^shape`.
    ///
    /// The median is `scale · 2^(1/shape)`; the mean is finite only for `shape > 1`
    /// (`shape · scale / (shape − 1)`) and the variance only for `shape > 2`, which is what
    /// makes it a model of heavy-tailed queueing delay.
    pub fn pareto(&mut self, shape: f64, scale: f64) -> f64 {
        let u = 1.0 - self.next_f64();
        // u^(-1/shape) = exp(-ln(u) / shape) >= 1, since ln(u) <= 0.
        scale * exp(-ln(u) / shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain transcription of the published splitmix64 and xoshiro256++ algorithms, kept
    /// separate from the implementation above so that the two check each other.
    struct Reference {
        s: [u64; 4],
    }

    impl Reference {
        fn seeded(seed: u64) -> Reference {
            let mut x = seed;
            let mut s = [0u64; 4];
            for word in &mut s {
                x = x.wrapping_add(0x9e3779b97f4a7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
                *word = z ^ (z >> 31);
            }
            Reference { s }
        }

        fn next(&mut self) -> u64 {
            let s = &mut self.s;
            let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
            let t = s[1] << 17;
            s[2] ^= s[0];
            s[3] ^= s[1];
            s[1] ^= s[2];
            s[0] ^= s[3];
            s[2] ^= t;
            s[3] = s[3].rotate_left(45);
            result
        }
    }

    #[test]
    fn seed_zero_gives_the_published_algorithms_outputs() {
        // Also computed with a C transcription of the reference code; splitmix64's first
        // output for seed 0 is the widely quoted 0xe220a8397b1dcdaf.
        let expected = [
            0x53175d61490b23df,
            0x61da6f3dc380d507,
            0x5c0fdf91ec9a7bfc,
            0x02eebf8c3bbe5e1a,
            0x7eca04ebaf4a5eea,
            0x0543c37757f08d9a,
        ];
        assert_eq!(mix64(GOLDEN_GAMMA), 0xe220a8397b1dcdaf);
        let mut ours = SimRng::new(0);
        let mut reference = Reference::seeded(0);
        for want in expected {
            assert_eq!(reference.next(), want);
            assert_eq!(ours.next_u64(), want);
        }
        let mut ours = SimRng::new(0x1234_5678_9abc_def0);
        let mut reference = Reference::seeded(0x1234_5678_9abc_def0);
        assert_eq!(ours.next_u64(), 0x4d4f7607a97a1bd6);
        assert_eq!(reference.next(), 0x4d4f7607a97a1bd6);
        for _ in 0..1000 {
            assert_eq!(ours.next_u64(), reference.next());
        }
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    fn std_dev(v: &[f64]) -> f64 {
        let m = mean(v);
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    }

    const N: usize = 100_000;

    fn draws(seed: u64, mut f: impl FnMut(&mut SimRng) -> f64) -> Vec<f64> {
        let mut rng = SimRng::new(seed);
        (0..N).map(|_| f(&mut rng)).collect()
    }

    #[test]
    fn uniform_draws_fill_their_range_evenly() {
        let v = draws(1, |r| r.next_f64());
        assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)));
        assert!((mean(&v) - 0.5).abs() < 0.005);
        let v = draws(2, |r| r.uniform(-3.0, 5.0));
        assert!(v.iter().all(|&x| (-3.0..=5.0).contains(&x)));
        assert!((mean(&v) - 1.0).abs() < 0.04);
        assert!((median(v) - 1.0).abs() < 0.06);
        let hits = draws(3, |r| r.chance(0.2) as u8 as f64);
        assert!((mean(&hits) - 0.2).abs() < 0.005);
        let mut r = SimRng::new(4);
        assert!((0..1000).all(|_| !r.chance(0.0) && r.chance(1.0)));
    }

    #[test]
    fn exponential_has_its_mean_and_median() {
        let v = draws(5, |r| r.exponential(2.0));
        assert!(v.iter().all(|&x| x >= 0.0));
        assert!((mean(&v) - 2.0).abs() < 0.03, "mean {}", mean(&v));
        let want = 2.0 * core::f64::consts::LN_2;
        assert!((median(v) - want).abs() < 0.03);
    }

    #[test]
    fn normal_has_its_mean_spread_and_median() {
        let v = draws(6, |r| r.normal(10.0, 3.0));
        assert!((mean(&v) - 10.0).abs() < 0.04, "mean {}", mean(&v));
        assert!((std_dev(&v) - 3.0).abs() < 0.04, "std {}", std_dev(&v));
        let within_one = v.iter().filter(|&&x| (x - 10.0).abs() < 3.0).count();
        assert!((within_one as f64 / N as f64 - 0.6827).abs() < 0.006);
        assert!((median(v) - 10.0).abs() < 0.05);
    }

    #[test]
    fn pareto_has_its_floor_median_and_mean() {
        let (shape, scale) = (3.0, 1.5);
        let v = draws(7, |r| r.pareto(shape, scale));
        assert!(v.iter().all(|&x| x >= scale));
        let want_mean = shape * scale / (shape - 1.0);
        assert!((mean(&v) - want_mean).abs() < 0.03, "mean {}", mean(&v));
        let want_median = scale * 2f64.powf(1.0 / shape);
        assert!((median(v) - want_median).abs() < 0.02);
        // A heavy tail: the mean is infinite, yet the median is where it should be.
        let v = draws(8, |r| r.pareto(0.8, 1.0));
        assert!((median(v) - 2f64.powf(1.0 / 0.8)).abs() < 0.05);
    }

    #[test]
    fn forks_depend_only_on_seed_and_stream() {
        let fresh = SimRng::new(42).fork(3);
        let mut used = SimRng::new(42);
        for _ in 0..17 {
            used.next_u64();
        }
        assert_eq!(used.fork(3), fresh);
        assert_eq!(SimRng::new(42).fork(3).fork(1), fresh.fork(1));
        assert_ne!(SimRng::new(42).fork(4), fresh);
        assert_ne!(SimRng::new(43).fork(3), fresh);
        assert_ne!(SimRng::new(42), SimRng::new(42).fork(0));
    }

    #[test]
    fn forks_are_uncorrelated_with_each_other_and_their_parent() {
        let parent = SimRng::new(9);
        let mut streams = [
            parent.clone(),
            parent.fork(0),
            parent.fork(1),
            parent.fork(2),
        ];
        let columns: Vec<Vec<f64>> = streams
            .iter_mut()
            .map(|r| (0..20_000).map(|_| r.next_f64() - 0.5).collect())
            .collect();
        for i in 0..columns.len() {
            for j in i + 1..columns.len() {
                let dot: f64 = columns[i].iter().zip(&columns[j]).map(|(a, b)| a * b).sum();
                // Correlation of two independent uniform columns: about ±1/sqrt(n) = 0.007.
                let corr = dot / (20_000.0 / 12.0);
                assert!(corr.abs() < 0.03, "streams {i} and {j}: corr {corr}");
            }
        }
    }
}
