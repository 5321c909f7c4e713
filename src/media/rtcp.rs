//! RTCP sender reports (RFC 3550 §6.4.1) with a CNAME source description (§6.5.1), built
//! and read by hand into and out of caller-owned buffers, with no allocation either way.
//!
//! A sender report ties the stream's RTP clock to wall-clock time: it says "the RTP
//! timestamp `rtp_timestamp` corresponds to the NTP instant `ntp`". A receiver uses that pair
//! (and the running packet and octet counts) to line the stream up with its other clocks.
//! RFC 3550 asks every RTCP datagram to be a compound packet that starts with a report and
//! carries a CNAME, so [`SenderReport::write_compound`] always writes the pair below.
//!
//! # Wire format
//!
//! Every RTCP packet starts with the same 4-byte header: the version (2), a padding flag, a
//! 5-bit count whose meaning depends on the type, the packet type, and the packet length in
//! 32-bit words *minus one*. The compound packet this module writes is:
//!
//! ```text
//!          offset  +--------+--------+--------+--------+
//!   SR          0  |  0x80  |  200   |  0x0006         |  V=2, P=0, RC=0; 7 words in all
//!               4  |        SSRC of the sender         |
//!               8  |        NTP timestamp, seconds     |
//!              12  |        NTP timestamp, fraction    |
//!              16  |  RTP timestamp of the same instant|
//!              20  |        sender's packet count      |
//!              24  |  sender's octet count (payload)   |
//!                  +--------+--------+--------+--------+
//!   SDES       28  |  0x81  |  202   |  chunk len / 4  |  V=2, P=0, SC=1
//!              32  |        SSRC of the sender         |
//!              36  |  1     |  len   |  CNAME text (len bytes, UTF-8) ...
//!                  |  ... text       |  0x00 ... 0x00  |  1 to 4 zero bytes: end of items,
//!                  +--------+--------+--------+--------+  then padding to a word boundary
//! ```
//!
//! The sender report carries no reception report blocks (a lockstep leader only sends). Its
//! size is fixed at [`SR_LEN`] bytes; the whole compound takes [`compound_len`] bytes, at
//! most [`MAX_COMPOUND_LEN`].
//!
//! # Reading
//!
//! [`SenderReport::parse_compound`] walks every packet of a datagram, checking each header
//! (version 2, a declared length that fits in what is left, sane padding) and returns the
//! first sender report. Receiver reports, source descriptions, BYE and packet types it does
//! not know are stepped over. Any byte string is safe to pass: a malformed one is an
//! [`RtcpError`], never a panic.

use thiserror::Error;

use crate::media::ntp::NtpTimestamp;

/// RTCP packet type of a sender report (RFC 3550 §12.1).
pub const PT_SR: u8 = 200;
/// RTCP packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type of a source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type of a goodbye.
pub const PT_BYE: u8 = 203;
/// SDES item type of a canonical name.
pub const SDES_CNAME: u8 = 1;

/// Length in bytes of a sender report without report blocks: 4 header bytes, 24 of sender
/// information.
pub const SR_LEN: usize = 28;
/// Length in bytes of one reception report block, which may follow the sender information.
pub const REPORT_BLOCK_LEN: usize = 24;
/// The longest CNAME an SDES item can hold, in bytes.
pub const MAX_CNAME_LEN: usize = 255;
/// The longest compound packet [`SenderReport::write_compound`] writes: the compound of a
/// [`MAX_CNAME_LEN`]-byte CNAME, 296 bytes.
pub const MAX_COMPOUND_LEN: usize = SR_LEN + sdes_len(MAX_CNAME_LEN);

/// Bytes the SDES packet for a CNAME of `cname_len` bytes takes: header, SSRC, item type and
/// length, the text, and at least one zero byte up to the next 32-bit boundary.
const fn sdes_len(cname_len: usize) -> usize {
    4 + (4 + 2 + cname_len + 1).div_ceil(4) * 4
}

/// How many bytes [`SenderReport::write_compound`] writes for `cname` (whatever its length;
/// a CNAME over [`MAX_CNAME_LEN`] bytes is refused when written).
pub const fn compound_len(cname: &str) -> usize {
    SR_LEN + sdes_len(cname.len())
}

/// Why a compound RTCP packet could not be written or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// The output buffer is too small for the compound packet.
    #[error("RTCP buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes the compound packet takes.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
    /// The CNAME does not fit in an SDES item (at most [`MAX_CNAME_LEN`] bytes).
    #[error("CNAME of {len} bytes is longer than the 255 an SDES item holds")]
    CnameTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The datagram ends inside a packet: fewer than 4 bytes are left for a header, or fewer
    /// than the header's length field declares. An empty datagram is truncated too.
    #[error("RTCP datagram truncated: {have} bytes left where {need} were needed")]
    Truncated {
        /// Bytes the next header or packet needs.
        need: usize,
        /// Bytes left in the datagram.
        have: usize,
    },
    /// A packet header carries a version other than 2.
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// A sender report's declared length is too short for its sender information and the
    /// report blocks its count announces.
    #[error("RTCP sender report of {len} bytes is too short for {blocks} report blocks")]
    BadLength {
        /// The report's length without padding, in bytes.
        len: usize,
        /// The reception report count in its header.
        blocks: u8,
    },
    /// A packet has its padding flag set but its last byte (the padding count) is zero or
    /// longer than the packet's body.
    #[error("RTCP packet padding of {count} bytes does not fit in its {len}-byte packet")]
    BadPadding {
        /// The padding count (the packet's last byte).
        count: u8,
        /// The packet's length, header included.
        len: usize,
    },
    /// The datagram is well formed but holds no sender report.
    #[error("RTCP datagram holds no sender report")]
    NoSenderReport,
}

/// The sender information of an RTCP sender report: what time the sender's RTP clock showed at
/// one wall-clock instant, and how much it had sent by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SenderReport {
    /// The sender's synchronization source.
    pub ssrc: u32,
    /// The wall-clock (leader) instant the report describes.
    pub ntp: NtpTimestamp,
    /// The RTP timestamp of that same instant, on the stream's media clock.
    pub rtp_timestamp: u32,
    /// RTP data packets sent so far (wrapping modulo 2³²).
    pub packet_count: u32,
    /// RTP payload bytes sent so far, headers and padding excluded (wrapping modulo 2³²).
    pub octet_count: u32,
}

impl SenderReport {
    /// Writes a compound RTCP packet into `out`: this sender report (no report blocks)
    /// followed by an SDES packet with one chunk for [`ssrc`](SenderReport::ssrc) holding
    /// the CNAME item `cname`. Returns the bytes written, [`compound_len`]`(cname)`.
    ///
    /// Fails, writing nothing, if `cname` is over [`MAX_CNAME_LEN`] bytes or `out` is too
    /// small. Allocates nothing.
    pub fn write_compound(&self, cname: &str, out: &mut [u8]) -> Result<usize, RtcpError> {
        let text = cname.as_bytes();
        if text.len() > MAX_CNAME_LEN {
            return Err(RtcpError::CnameTooLong { len: text.len() });
        }
        let sdes = sdes_len(text.len());
        let need = SR_LEN + sdes;
        if out.len() < need {
            return Err(RtcpError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        let (sr, rest) = out.split_at_mut(SR_LEN);
        let sdes_out = &mut rest[..sdes];

        sr[0] = 2 << 6; // V=2, P=0, RC=0
        sr[1] = PT_SR;
        sr[2..4].copy_from_slice(&((SR_LEN / 4 - 1) as u16).to_be_bytes());
        sr[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        sr[8..16].copy_from_slice(&self.ntp.to_be_bytes());
        sr[16..20].copy_from_slice(&self.rtp_timestamp.to_be_bytes());
        sr[20..24].copy_from_slice(&self.packet_count.to_be_bytes());
        sr[24..28].copy_from_slice(&self.octet_count.to_be_bytes());

        sdes_out[0] = (2 << 6) | 1; // V=2, P=0, SC=1
        sdes_out[1] = PT_SDES;
        // `sdes` is at most 268 bytes, so the word count fits easily.
        sdes_out[2..4].copy_from_slice(&((sdes / 4 - 1) as u16).to_be_bytes());
        sdes_out[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        sdes_out[8] = SDES_CNAME;
        sdes_out[9] = text.len() as u8;
        let end = 10 + text.len();
        sdes_out[10..end].copy_from_slice(text);
        // The end-of-list marker and the padding to a word boundary are all zero bytes.
        sdes_out[end..].fill(0);
        Ok(need)
    }

    /// Reads the first sender report in the compound RTCP packet `datagram`.
    ///
    /// Every packet in the datagram is checked: version 2, a length field that fits in the
    /// bytes left, and, when the padding flag is set, a padding count between 1 and the
    /// packet's body length. A sender report must also be long enough for its sender
    /// information and the report blocks its count announces (the blocks are not read).
    /// Packets of other types are skipped. Fails with [`RtcpError::NoSenderReport`] if the
    /// datagram is well formed but has no sender report. Never panics; allocates nothing.
    pub fn parse_compound(datagram: &[u8]) -> Result<SenderReport, RtcpError> {
        let mut found = None;
        let mut rest = datagram;
        if rest.is_empty() {
            return Err(RtcpError::Truncated { need: 4, have: 0 });
        }
        while !rest.is_empty() {
            let &[b0, pt, len_hi, len_lo, ..] = rest else {
                return Err(RtcpError::Truncated {
                    need: 4,
                    have: rest.len(),
                });
            };
            let version = b0 >> 6;
            if version != 2 {
                return Err(RtcpError::BadVersion(version));
            }
            let len = (usize::from(u16::from_be_bytes([len_hi, len_lo])) + 1) * 4;
            if len > rest.len() {
                return Err(RtcpError::Truncated {
                    need: len,
                    have: rest.len(),
                });
            }
            let (packet, after) = rest.split_at(len);
            let mut body_len = len;
            if b0 & 0x20 != 0 {
                let count = packet[len - 1];
                if count == 0 || usize::from(count) > len - 4 {
                    return Err(RtcpError::BadPadding { count, len });
                }
                body_len -= usize::from(count);
            }
            if pt == PT_SR {
                let blocks = b0 & 0x1F;
                if body_len < SR_LEN + usize::from(blocks) * REPORT_BLOCK_LEN {
                    return Err(RtcpError::BadLength {
                        len: body_len,
                        blocks,
                    });
                }
                if found.is_none() {
                    found = Some(read_sender_info(packet));
                }
            }
            rest = after;
        }
        found.ok_or(RtcpError::NoSenderReport)
    }
}

/// Reads the sender information of a sender report at least [`SR_LEN`] bytes long.
fn read_sender_info(sr: &[u8]) -> SenderReport {
    let u32_at = |at: usize| u32::from_be_bytes([sr[at], sr[at + 1], sr[at + 2], sr[at + 3]]);
    SenderReport {
        ssrc: u32_at(4),
        ntp: NtpTimestamp::new(u32_at(8), u32_at(12)),
        rtp_timestamp: u32_at(16),
        packet_count: u32_at(20),
        octet_count: u32_at(24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SenderReport {
        SenderReport {
            ssrc: 0x1122_3344,
            ntp: NtpTimestamp::new(0x83AA_7E80, 0x8000_0000),
            rtp_timestamp: 0xDEAD_BEEF,
            packet_count: 7,
            octet_count: 7 * 1440,
        }
    }

    #[test]
    fn writes_the_documented_bytes() {
        let mut out = [0xEEu8; 64];
        let n = report().write_compound("ab", &mut out).unwrap();
        assert_eq!(n, 28 + 4 + 12);
        assert_eq!(n, compound_len("ab"));
        #[rustfmt::skip]
        let want: [u8; 44] = [
            0x80, 200, 0, 6,
            0x11, 0x22, 0x33, 0x44,
            0x83, 0xAA, 0x7E, 0x80,
            0x80, 0, 0, 0,
            0xDE, 0xAD, 0xBE, 0xEF,
            0, 0, 0, 7,
            0, 0, 0x27, 0x60,
            0x81, 202, 0, 3,
            0x11, 0x22, 0x33, 0x44,
            1, 2, b'a', b'b',
            0, 0, 0, 0,
        ];
        assert_eq!(out[..n], want);
        assert_eq!(out[n], 0xEE, "nothing written past the end");
    }

    #[test]
    fn sdes_always_ends_with_a_zero_byte_on_a_word_boundary() {
        let name = "x".repeat(MAX_CNAME_LEN);
        let mut out = [0u8; MAX_COMPOUND_LEN];
        for len in 0..=MAX_CNAME_LEN {
            let n = report().write_compound(&name[..len], &mut out).unwrap();
            assert_eq!(n % 4, 0);
            assert!(n - SR_LEN > 4 + 4 + 2 + len);
            assert!(n - SR_LEN < 4 + 4 + 2 + len + 1 + 4);
            assert_eq!(out[SR_LEN + 10 + len], 0);
            assert_eq!(SenderReport::parse_compound(&out[..n]), Ok(report()));
        }
        assert_eq!(compound_len(&name), MAX_COMPOUND_LEN);
        assert_eq!(MAX_COMPOUND_LEN, 296);
    }
}
