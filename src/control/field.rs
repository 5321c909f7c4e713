//! Field encodings shared by every payload: integers, strings, floats, flags, options.
//!
//! Writing appends to a `Vec<u8>`; reading goes through [`Reader`], which never indexes
//! past its slice: every read checks what is left and reports [`ControlError::Truncated`]
//! when a field runs past the end of the payload.

use super::error::ControlError;
use crate::time::Nanos;

/// Cap on model and device-name strings, in bytes.
pub(super) const MAX_NAME_LEN: usize = 64;
/// Cap on group names, in bytes.
pub(super) const MAX_GROUP_LEN: usize = 64;
/// Cap on free-form detail text (such as [`Refusal::Unsupported`](super::Refusal)), in bytes.
pub(super) const MAX_DETAIL_LEN: usize = 256;

/// Appends a string as u16 BE length + UTF-8, refusing one longer than `max` bytes.
pub(super) fn put_str(
    out: &mut Vec<u8>,
    field: &'static str,
    s: &str,
    max: usize,
) -> Result<(), ControlError> {
    let len = s.len();
    // `max` is never above u16::MAX, so a string within the cap always fits the prefix.
    let prefix = u16::try_from(len).ok().filter(|_| len <= max);
    let Some(prefix) = prefix else {
        return Err(ControlError::FieldTooLong { field, len, max });
    };
    out.extend_from_slice(&prefix.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Appends a bool as one byte, 0 or 1.
pub(super) fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(u8::from(b));
}

/// Appends a span as i64 BE nanoseconds.
pub(super) fn put_nanos(out: &mut Vec<u8>, n: Nanos) {
    out.extend_from_slice(&n.as_nanos().to_be_bytes());
}

/// Appends an optional span: a presence byte, then the span if present.
pub(super) fn put_opt_nanos(out: &mut Vec<u8>, n: Option<Nanos>) {
    put_bool(out, n.is_some());
    if let Some(n) = n {
        put_nanos(out, n);
    }
}

/// Appends a volume as f32 BE bits, refusing one the receiver would refuse.
pub(super) fn put_volume(out: &mut Vec<u8>, volume: f32) -> Result<(), ControlError> {
    check_volume(volume)?;
    out.extend_from_slice(&volume.to_bits().to_be_bytes());
    Ok(())
}

/// Appends an optional finite f64 as a presence byte then BE bits, refusing NaN and
/// infinities (the receiver would refuse them).
pub(super) fn put_opt_f64(
    out: &mut Vec<u8>,
    what: &'static str,
    x: Option<f64>,
) -> Result<(), ControlError> {
    put_bool(out, x.is_some());
    if let Some(x) = x {
        if !x.is_finite() {
            return Err(ControlError::Malformed { what });
        }
        out.extend_from_slice(&x.to_bits().to_be_bytes());
    }
    Ok(())
}

/// A volume must be finite and within 0.0..=1.0 (NaN fails the range test too).
fn check_volume(volume: f32) -> Result<f32, ControlError> {
    if (0.0..=1.0).contains(&volume) {
        Ok(volume)
    } else {
        Err(ControlError::Malformed {
            what: "volume outside 0.0..=1.0",
        })
    }
}

/// Reads fields off the front of a payload.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over a whole payload.
    pub(super) fn new(payload: &'a [u8]) -> Reader<'a> {
        Reader { rest: payload }
    }

    /// The next `N` bytes.
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], ControlError> {
        let Some((head, tail)) = self.rest.split_first_chunk::<N>() else {
            return Err(ControlError::Truncated {
                needed: N,
                got: self.rest.len(),
            });
        };
        self.rest = tail;
        Ok(*head)
    }

    /// The next `len` bytes.
    fn bytes(&mut self, len: usize) -> Result<&'a [u8], ControlError> {
        if len > self.rest.len() {
            return Err(ControlError::Truncated {
                needed: len,
                got: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    /// A u8.
    pub(super) fn u8(&mut self) -> Result<u8, ControlError> {
        self.array::<1>().map(|[b]| b)
    }

    /// A u16 BE.
    pub(super) fn u16(&mut self) -> Result<u16, ControlError> {
        self.array().map(u16::from_be_bytes)
    }

    /// A u32 BE.
    pub(super) fn u32(&mut self) -> Result<u32, ControlError> {
        self.array().map(u32::from_be_bytes)
    }

    /// A u64 BE.
    pub(super) fn u64(&mut self) -> Result<u64, ControlError> {
        self.array().map(u64::from_be_bytes)
    }

    /// A span, i64 BE nanoseconds.
    pub(super) fn nanos(&mut self) -> Result<Nanos, ControlError> {
        self.array().map(|b| Nanos(i64::from_be_bytes(b)))
    }

    /// A bool: 0 or 1, anything else is malformed.
    pub(super) fn bool(&mut self, what: &'static str) -> Result<bool, ControlError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ControlError::Malformed { what }),
        }
    }

    /// An optional span behind a presence byte.
    pub(super) fn opt_nanos(&mut self, what: &'static str) -> Result<Option<Nanos>, ControlError> {
        if self.bool(what)? {
            self.nanos().map(Some)
        } else {
            Ok(None)
        }
    }

    /// An optional finite f64 behind a presence byte; NaN and infinities are malformed so
    /// that every decoded message compares equal to itself.
    pub(super) fn opt_f64(&mut self, what: &'static str) -> Result<Option<f64>, ControlError> {
        if !self.bool(what)? {
            return Ok(None);
        }
        let x = f64::from_bits(self.u64()?);
        if x.is_finite() {
            Ok(Some(x))
        } else {
            Err(ControlError::Malformed { what })
        }
    }

    /// A volume: f32 BE bits, finite and within 0.0..=1.0.
    pub(super) fn volume(&mut self) -> Result<f32, ControlError> {
        check_volume(f32::from_bits(self.u32()?))
    }

    /// A string: u16 BE length, then that many bytes of UTF-8, at most `max` of them.
    pub(super) fn string(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<String, ControlError> {
        let len = usize::from(self.u16()?);
        if len > max {
            return Err(ControlError::FieldTooLong { field, len, max });
        }
        let bytes = self.bytes(len)?;
        match core::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(ControlError::Malformed {
                what: "string is not UTF-8",
            }),
        }
    }

    /// Ends the payload: bytes left over are malformed (the format is strict, so that one
    /// message has exactly one encoding).
    pub(super) fn finish(self) -> Result<(), ControlError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ControlError::Malformed {
                what: "trailing bytes after the payload",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_are_truncated_not_panics() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(matches!(
            r.u32(),
            Err(ControlError::Truncated { needed: 4, got: 3 })
        ));
        // A failed read consumes nothing.
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert!(matches!(
            r.string("name", 64),
            Err(ControlError::Truncated { needed: 2, got: 1 })
        ));
    }

    #[test]
    fn string_length_beyond_the_data_is_truncated() {
        let mut r = Reader::new(&[0, 5, b'a', b'b']);
        assert!(matches!(
            r.string("name", 64),
            Err(ControlError::Truncated { needed: 5, got: 2 })
        ));
    }

    #[test]
    fn string_over_cap_is_refused_before_reading_it() {
        let mut r = Reader::new(&[0, 65]);
        assert!(matches!(
            r.string("name", 64),
            Err(ControlError::FieldTooLong {
                field: "name",
                len: 65,
                max: 64
            })
        ));
    }

    #[test]
    fn string_at_cap_round_trips() {
        let s = "é".repeat(32); // 64 bytes of UTF-8
        let mut out = Vec::new();
        put_str(&mut out, "name", &s, 64).unwrap();
        let mut r = Reader::new(&out);
        assert_eq!(r.string("name", 64).unwrap(), s);
        r.finish().unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            put_str(&mut out, "name", &format!("{s}x"), 64),
            Err(ControlError::FieldTooLong { len: 65, .. })
        ));
        assert!(out.is_empty(), "a refused string writes nothing");
    }

    #[test]
    fn volume_range_is_checked_both_ways() {
        for v in [0.0f32, 0.5, 1.0] {
            let mut out = Vec::new();
            put_volume(&mut out, v).unwrap();
            assert_eq!(Reader::new(&out).volume().unwrap(), v);
        }
        for v in [f32::NAN, 1.5, -0.1, f32::INFINITY] {
            assert!(put_volume(&mut Vec::new(), v).is_err());
            let bytes = v.to_bits().to_be_bytes();
            assert!(matches!(
                Reader::new(&bytes).volume(),
                Err(ControlError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn f64_must_be_finite() {
        let mut bytes = vec![1];
        bytes.extend_from_slice(&f64::NAN.to_bits().to_be_bytes());
        assert!(Reader::new(&bytes).opt_f64("rate").is_err());
        assert!(put_opt_f64(&mut Vec::new(), "rate", Some(f64::INFINITY)).is_err());
        let mut out = Vec::new();
        put_opt_f64(&mut out, "rate", Some(-12.5)).unwrap();
        assert_eq!(Reader::new(&out).opt_f64("rate").unwrap(), Some(-12.5));
    }

    #[test]
    fn presence_byte_must_be_zero_or_one() {
        assert!(matches!(
            Reader::new(&[2]).opt_nanos("offset"),
            Err(ControlError::Malformed { what: "offset" })
        ));
        assert_eq!(Reader::new(&[0]).opt_nanos("offset").unwrap(), None);
    }
}
