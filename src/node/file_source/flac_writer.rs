//! A small FLAC encoder, written from the FLAC format specification, so that tests, benches
//! and demos can make the FLAC files they play without an outside tool.
//!
//! What it writes: the `fLaC` marker, one STREAMINFO block (with the total sample count and
//! the smallest and largest frame sizes; the MD5 signature is left zero, which the format
//! defines as "not computed"), then frames of a fixed block size with independent channels.
//! Each subframe is the cheapest of a constant, a fixed-predictor (orders 0 to 4) with
//! partitioned Rice-coded residuals, or a verbatim subframe. Frame headers carry their CRC-8
//! and frames their CRC-16. No LPC subframes and no stereo decorrelation: the files are
//! larger than a reference encoder's, but every decoder reads them.

use std::path::Path;

/// Frames per FLAC block (the last block of a file may be shorter).
pub const FLAC_BLOCK_FRAMES: usize = 4096;

/// Why a FLAC file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlacWriteError {
    /// The stream's parameters are outside what this encoder writes.
    #[error("cannot encode FLAC with {what}: {supported}")]
    Unsupported {
        /// The parameter that was refused, with its value.
        what: String,
        /// What the encoder supports.
        supported: &'static str,
    },
    /// A sample does not fit the declared bit depth.
    #[error("sample {value} at index {index} does not fit in {bits} bits")]
    SampleRange {
        /// Its index in the interleaved samples given so far.
        index: u64,
        /// The sample.
        value: i32,
        /// The declared bit depth.
        bits: u32,
    },
    /// The samples given are not whole frames.
    #[error("{samples} samples are not whole frames of {channels} channels")]
    PartialFrame {
        /// Samples given.
        samples: usize,
        /// Channels per frame.
        channels: usize,
    },
    /// The file could not be written.
    #[error("cannot write the FLAC file: {0}")]
    Io(#[from] std::io::Error),
}

/// Collects interleaved integer PCM and encodes it as a FLAC file.
///
/// Call [`push`](Self::push) with interleaved samples (any number of calls), then
/// [`finish`](Self::finish) for the file's bytes or [`write_file`](Self::write_file). The
/// samples are kept in memory until then, so that STREAMINFO can give the total length.
#[derive(Debug, Clone)]
pub struct FlacWriter {
    rate: u32,
    channels: usize,
    bits: u32,
    samples: Vec<i32>,
}

impl FlacWriter {
    /// A writer for `channels` (1 to 8) channels of `bits`-bit samples (8 to 24) at `rate` Hz
    /// (1 to 655 350).
    pub fn new(rate: u32, channels: usize, bits: u32) -> Result<FlacWriter, FlacWriteError> {
        if !(1..=8).contains(&channels) {
            return Err(FlacWriteError::Unsupported {
                what: format!("{channels} channels"),
                supported: "1 to 8 channels",
            });
        }
        if !(8..=24).contains(&bits) {
            return Err(FlacWriteError::Unsupported {
                what: format!("{bits}-bit samples"),
                supported: "8- to 24-bit samples",
            });
        }
        if !(1..=655_350).contains(&rate) {
            return Err(FlacWriteError::Unsupported {
                what: format!("{rate} Hz"),
                supported: "1 to 655 350 Hz",
            });
        }
        Ok(FlacWriter {
            rate,
            channels,
            bits,
            samples: Vec::new(),
        })
    }

    /// Appends interleaved samples (whole frames), each within the writer's bit depth.
    pub fn push(&mut self, interleaved: &[i32]) -> Result<(), FlacWriteError> {
        if !interleaved.len().is_multiple_of(self.channels) {
            return Err(FlacWriteError::PartialFrame {
                samples: interleaved.len(),
                channels: self.channels,
            });
        }
        let (lo, hi) = (-(1i32 << (self.bits - 1)), (1i32 << (self.bits - 1)) - 1);
        if let Some(i) = interleaved.iter().position(|s| !(lo..=hi).contains(s)) {
            return Err(FlacWriteError::SampleRange {
                index: (self.samples.len() + i) as u64,
                value: interleaved[i],
                bits: self.bits,
            });
        }
        self.samples.extend_from_slice(interleaved);
        Ok(())
    }

    /// Encodes everything pushed into a FLAC file's bytes.
    pub fn finish(&self) -> Vec<u8> {
        let frames = self.samples.len() / self.channels;
        let mut body = Vec::new();
        let (mut min_frame, mut max_frame) = (u32::MAX, 0u32);
        let mut channel = Vec::with_capacity(FLAC_BLOCK_FRAMES);
        for (index, block) in self
            .samples
            .chunks(FLAC_BLOCK_FRAMES * self.channels)
            .enumerate()
        {
            let start = body.len();
            self.frame(index as u64, block, &mut channel, &mut body);
            let len = (body.len() - start) as u32;
            min_frame = min_frame.min(len);
            max_frame = max_frame.max(len);
        }
        if frames == 0 {
            min_frame = 0;
        }
        let mut out = Vec::with_capacity(42 + body.len());
        out.extend_from_slice(b"fLaC");
        // Metadata block header: last block, type 0 (STREAMINFO), 34 bytes.
        out.extend_from_slice(&[0x80, 0, 0, 34]);
        let mut w = BitWriter::default();
        let block = FLAC_BLOCK_FRAMES.min(frames.max(16)) as u64;
        let min_block = if frames > FLAC_BLOCK_FRAMES {
            FLAC_BLOCK_FRAMES as u64
        } else {
            block
        };
        w.put(min_block, 16);
        w.put(block, 16);
        w.put(u64::from(min_frame), 24);
        w.put(u64::from(max_frame), 24);
        w.put(u64::from(self.rate), 20);
        w.put(self.channels as u64 - 1, 3);
        w.put(u64::from(self.bits) - 1, 5);
        w.put(frames as u64, 36);
        out.extend_from_slice(&w.finish());
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&body);
        out
    }

    /// Encodes everything pushed and writes it to `path`.
    pub fn write_file(&self, path: &Path) -> Result<(), FlacWriteError> {
        std::fs::write(path, self.finish())?;
        Ok(())
    }

    /// One frame: header, a subframe per channel, padding, CRC-16.
    fn frame(&self, index: u64, block: &[i32], channel: &mut Vec<i64>, out: &mut Vec<u8>) {
        let frames = block.len() / self.channels;
        let mut w = BitWriter::default();
        // Sync code, reserved 0, fixed block size.
        w.put(0b11_1111_1111_1110, 14);
        w.put(0, 1);
        w.put(0, 1);
        let (size_code, size_extra) = match frames {
            4096 => (12, None),
            1..=256 => (6, Some((frames as u64 - 1, 8))),
            _ => (7, Some((frames as u64 - 1, 16))),
        };
        w.put(size_code, 4);
        let rate_code = match self.rate {
            88_200 => 1,
            176_400 => 2,
            192_000 => 3,
            8_000 => 4,
            16_000 => 5,
            22_050 => 6,
            24_000 => 7,
            32_000 => 8,
            44_100 => 9,
            48_000 => 10,
            96_000 => 11,
            // From STREAMINFO.
            _ => 0,
        };
        w.put(rate_code, 4);
        w.put(self.channels as u64 - 1, 4);
        let bits_code = match self.bits {
            8 => 1,
            12 => 2,
            16 => 4,
            20 => 5,
            24 => 6,
            // From STREAMINFO.
            _ => 0,
        };
        w.put(bits_code, 3);
        w.put(0, 1);
        // The frame number, in FLAC's extended UTF-8 coding.
        for byte in utf8_number(index) {
            w.put(u64::from(byte), 8);
        }
        if let Some((value, bits)) = size_extra {
            w.put(value, bits);
        }
        let header = w.bytes_so_far();
        w.put(u64::from(crc8(&header)), 8);
        for c in 0..self.channels {
            channel.clear();
            channel.extend(
                block
                    .iter()
                    .skip(c)
                    .step_by(self.channels)
                    .map(|&s| i64::from(s)),
            );
            subframe(&mut w, channel, self.bits);
        }
        let mut bytes = w.finish();
        let crc = crc16(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&bytes);
    }
}

/// The cheapest subframe for one channel of one block.
fn subframe(w: &mut BitWriter, x: &[i64], bits: u32) {
    if x.iter().all(|&s| s == x[0]) {
        // Header: zero pad bit, type 000000 (constant), no wasted bits.
        w.put(0, 8);
        w.put_signed(x[0], bits);
        return;
    }
    let verbatim_bits = x.len() as u64 * u64::from(bits);
    let mut best: Option<(u64, usize, Residual)> = None;
    let mut residual = Vec::with_capacity(x.len());
    for order in 0..=4usize.min(x.len().saturating_sub(1)) {
        fixed_residual(x, order, &mut residual);
        let coded = Residual::plan(&residual, order, x.len());
        let cost = (order as u64 * u64::from(bits)).saturating_add(coded.bits);
        if best.as_ref().is_none_or(|(c, _, _)| cost < *c) {
            best = Some((cost, order, coded));
        }
    }
    match best {
        Some((cost, order, coded)) if cost < verbatim_bits => {
            // Header: zero pad bit, type 001xxx (fixed, order xxx), no wasted bits.
            w.put(0b001000 | order as u64, 7);
            w.put(0, 1);
            for &s in &x[..order] {
                w.put_signed(s, bits);
            }
            fixed_residual(x, order, &mut residual);
            coded.write(w, &residual);
        }
        _ => {
            // Header: zero pad bit, type 000001 (verbatim), no wasted bits.
            w.put(0b000001, 7);
            w.put(0, 1);
            for &s in x {
                w.put_signed(s, bits);
            }
        }
    }
}

/// The residual of FLAC's fixed predictor of `order` (0 to 4), for samples `order..`.
fn fixed_residual(x: &[i64], order: usize, out: &mut Vec<i64>) {
    out.clear();
    out.extend((order..x.len()).map(|i| match order {
        0 => x[i],
        1 => x[i] - x[i - 1],
        2 => x[i] - 2 * x[i - 1] + x[i - 2],
        3 => x[i] - 3 * x[i - 1] + 3 * x[i - 2] - x[i - 3],
        _ => x[i] - 4 * x[i - 1] + 6 * x[i - 2] - 4 * x[i - 3] + x[i - 4],
    }));
}

/// Folds a signed residual onto the unsigned integers: 0, −1, 1, −2, … → 0, 1, 2, 3, …
fn zigzag(r: i64) -> u64 {
    ((r << 1) ^ (r >> 63)) as u64
}

/// Largest Rice parameter of the 5-bit coding method (31 is the escape code).
const MAX_RICE: u32 = 30;
/// Largest partition order tried.
const MAX_PARTITION_ORDER: u32 = 8;

/// A partitioned Rice coding of one residual: the partition order and a parameter per
/// partition, with the total cost in bits.
struct Residual {
    /// The predictor order: the first partition is that much shorter.
    order: usize,
    partition_order: u32,
    params: Vec<u32>,
    bits: u64,
}

impl Residual {
    /// The cheapest partition order and parameters for `residual` (the block's samples after
    /// the first `order`).
    fn plan(residual: &[i64], order: usize, block: usize) -> Residual {
        let mut best: Option<Residual> = None;
        for p in 0..=MAX_PARTITION_ORDER {
            let parts = 1usize << p;
            // Every partition must be whole and the first must hold more than the warm-up.
            if !block.is_multiple_of(parts) || block / parts <= order {
                break;
            }
            let mut params = Vec::with_capacity(parts);
            // Coding method (2 bits) and partition order (4 bits).
            let mut bits = 6u64;
            let mut start = 0;
            for i in 0..parts {
                let n = block / parts - if i == 0 { order } else { 0 };
                let part = &residual[start..start + n];
                start += n;
                let (k, cost) = best_rice(part);
                params.push(k);
                bits += 5 + cost;
            }
            if best.as_ref().is_none_or(|b| bits < b.bits) {
                best = Some(Residual {
                    order,
                    partition_order: p,
                    params,
                    bits,
                });
            }
        }
        best.unwrap_or(Residual {
            order,
            partition_order: 0,
            params: vec![best_rice(residual).0],
            bits: u64::MAX,
        })
    }

    fn write(&self, w: &mut BitWriter, residual: &[i64]) {
        // Coding method 01: partitioned Rice with 5-bit parameters.
        w.put(1, 2);
        w.put(u64::from(self.partition_order), 4);
        let per = (residual.len() + self.order) / self.params.len();
        let mut start = 0;
        for (i, &k) in self.params.iter().enumerate() {
            let n = if i == 0 { per - self.order } else { per };
            w.put(u64::from(k), 5);
            for &r in &residual[start..start + n] {
                let u = zigzag(r);
                let q = u >> k;
                w.put_unary(q);
                if k > 0 {
                    w.put(u & ((1u64 << k) - 1), k);
                }
            }
            start += n;
        }
    }
}

/// The best Rice parameter for `part` and its cost in bits.
fn best_rice(part: &[i64]) -> (u32, u64) {
    let n = part.len() as u64;
    let sum: u64 = part.iter().map(|&r| zigzag(r)).sum();
    // The optimum is near log2(mean); try a small window around it.
    let mean = sum / n.max(1);
    let guess = (64 - mean.leading_zeros()).min(MAX_RICE);
    let mut best = (0, u64::MAX);
    for k in guess.saturating_sub(2)..=(guess + 1).min(MAX_RICE) {
        let cost: u64 = n * (u64::from(k) + 1) + part.iter().map(|&r| zigzag(r) >> k).sum::<u64>();
        if cost < best.1 {
            best = (k, cost);
        }
    }
    best
}

/// FLAC's frame number coding: UTF-8's scheme, extended to 36 bits.
fn utf8_number(n: u64) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    // With c continuation bytes (6 bits each) the lead byte holds 6 − c bits.
    let c = (1..=6u32).find(|&c| n < 1u64 << (6 + 5 * c)).unwrap_or(6);
    let lead_mark = !(0xffu8 >> (c + 1));
    let mut out = vec![lead_mark | (n >> (6 * c)) as u8];
    out.extend((0..c).rev().map(|i| 0x80 | ((n >> (6 * i)) & 0x3f) as u8));
    out
}

/// CRC-8 with polynomial x⁸ + x² + x + 1, initial value 0 (the frame header's).
pub(crate) fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// CRC-16 with polynomial x¹⁶ + x¹⁵ + x² + 1, initial value 0 (the whole frame's).
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Writes bits most significant first.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    /// Bits held in `acc` (under 8 between calls).
    held: u32,
}

impl BitWriter {
    /// The low `bits` (at most 56) bits of `value`.
    fn put(&mut self, value: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        debug_assert!(bits <= 56);
        self.acc = (self.acc << bits) | (value & ((1u64 << bits) - 1));
        self.held += bits;
        while self.held >= 8 {
            self.held -= 8;
            self.bytes.push((self.acc >> self.held) as u8);
        }
        self.acc &= (1u64 << self.held) - 1;
    }

    /// A two's-complement value in `bits` bits.
    fn put_signed(&mut self, value: i64, bits: u32) {
        self.put(value as u64, bits);
    }

    /// `q` zero bits then a one.
    fn put_unary(&mut self, mut q: u64) {
        while q >= 32 {
            self.put(0, 32);
            q -= 32;
        }
        self.put(1, q as u32 + 1);
    }

    /// The whole bytes written so far (the caller is at a byte boundary).
    fn bytes_so_far(&self) -> Vec<u8> {
        debug_assert_eq!(self.held, 0);
        self.bytes.clone()
    }

    /// The bytes, with the last one padded with zero bits.
    fn finish(mut self) -> Vec<u8> {
        if self.held > 0 {
            let pad = 8 - self.held;
            self.put(0, pad);
        }
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crcs_match_the_check_values_of_their_catalogue_entries() {
        // CRC-8/SMBUS and CRC-16/UMTS (a.k.a. BUYPASS) over "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc16(b"123456789"), 0xFEE8);
    }

    #[test]
    fn frame_numbers_use_utf8_coding() {
        assert_eq!(utf8_number(0x7f), vec![0x7f]);
        assert_eq!(utf8_number(0x80), vec![0xC2, 0x80]);
        assert_eq!(utf8_number(0x7ff), vec![0xDF, 0xBF]);
        assert_eq!(utf8_number(0x800), vec![0xE0, 0xA0, 0x80]);
        assert_eq!(utf8_number(0xFFFF), vec![0xEF, 0xBF, 0xBF]);
        assert_eq!(utf8_number(0x10000), vec![0xF0, 0x90, 0x80, 0x80]);
    }

    #[test]
    fn zigzag_folds_signs() {
        let folded: Vec<u64> = [0, -1, 1, -2, 2].iter().map(|&r| zigzag(r)).collect();
        assert_eq!(folded, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn out_of_range_samples_and_parameters_are_refused() {
        assert!(FlacWriter::new(48_000, 9, 16).is_err());
        assert!(FlacWriter::new(48_000, 2, 32).is_err());
        let mut w = FlacWriter::new(48_000, 2, 16).unwrap();
        assert!(matches!(
            w.push(&[0, 40_000]),
            Err(FlacWriteError::SampleRange { index: 1, .. })
        ));
        assert!(matches!(
            w.push(&[0]),
            Err(FlacWriteError::PartialFrame { .. })
        ));
    }
}
