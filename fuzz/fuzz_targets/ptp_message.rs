//! Arbitrary datagrams into the PTP parser: nothing panics, and whatever parses re-emits to
//! the bytes it came from, except what the receiver is told to ignore (see the `wire`
//! module docs): messageLength and trailing TLVs of the timed messages, the reserved byte of
//! an Announce body, and on a Signaling the TLVs of unknown types and the reserved bits of
//! the negotiation TLVs.
//!
//! tests/ptp_wire.rs runs the same check over a deterministic sweep on every `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::ptp::{
    Body, HEADER_LEN, MAX_MESSAGE_LEN, Message, PORT_IDENTITY_LEN, TLV_GRANT_UNICAST_TRANSMISSION,
    TLV_HEADER_LEN,
};

/// Offset of the reserved byte in an Announce body.
const ANNOUNCE_RESERVED: usize = 46;
/// Where a Signaling's TLVs start.
const SIGNALING_TLVS: usize = HEADER_LEN + PORT_IDENTITY_LEN;

fuzz_target!(|input: &[u8]| {
    let Ok(message) = Message::parse(input) else {
        return;
    };
    let mut out = [0u8; MAX_MESSAGE_LEN];
    let len = message.emit(&mut out).expect("a parsed message emits");
    assert_eq!(len, message.buffer_len());
    let out = &out[..len];
    assert_eq!(Message::parse(out), Ok(message), "emit then parse");

    // Parsing succeeded, so the input holds at least messageLength bytes.
    let declared = usize::from(u16::from_be_bytes([input[2], input[3]]));
    let mut expected = [0u8; MAX_MESSAGE_LEN];
    match message.body {
        Body::Signaling(_) if declared != len => {
            // Unknown TLVs were skipped and the known ones moved up: the fixed part matches.
            expected[..SIGNALING_TLVS].copy_from_slice(&input[..SIGNALING_TLVS]);
            expected[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            assert_eq!(&out[..SIGNALING_TLVS], &expected[..SIGNALING_TLVS]);
            return;
        }
        _ => {}
    }
    expected[..len].copy_from_slice(&input[..len]);
    expected[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    match message.body {
        Body::Announce(_) => expected[ANNOUNCE_RESERVED] = 0,
        Body::Signaling(_) => {
            // Every TLV was kept and lies where it lay; clear the bits emit writes as 0.
            let mut at = SIGNALING_TLVS;
            while at < len {
                let tlv_type = u16::from_be_bytes([expected[at], expected[at + 1]]);
                let length = usize::from(u16::from_be_bytes([expected[at + 2], expected[at + 3]]));
                expected[at + TLV_HEADER_LEN] &= 0xF0;
                if tlv_type == TLV_GRANT_UNICAST_TRANSMISSION {
                    expected[at + TLV_HEADER_LEN + 6] = 0;
                    expected[at + TLV_HEADER_LEN + 7] &= 0x01;
                }
                at += TLV_HEADER_LEN + length;
            }
        }
        _ => {}
    }
    assert_eq!(out, &expected[..len], "emit reproduces the input");
});
