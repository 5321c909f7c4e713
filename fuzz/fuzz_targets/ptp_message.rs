//! Arbitrary datagrams into the PTP parser: nothing panics, and whatever parses re-emits to
//! the bytes it came from, except messageLength (emit writes the fixed length, dropping
//! TLVs) and the reserved byte of an Announce body (emit writes 0).
//!
//! tests/ptp_wire.rs runs the same check over a deterministic sweep on every `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::ptp::{MAX_MESSAGE_LEN, Message, MessageType};

/// Offset of the reserved byte in an Announce body.
const ANNOUNCE_RESERVED: usize = 46;

fuzz_target!(|input: &[u8]| {
    let Ok(message) = Message::parse(input) else {
        return;
    };
    let mut out = [0u8; MAX_MESSAGE_LEN];
    let len = message.emit(&mut out).expect("a parsed message emits");
    assert_eq!(len, message.buffer_len());
    let out = &out[..len];
    assert_eq!(Message::parse(out), Ok(message), "emit then parse");

    // Parsing succeeded, so the input holds at least the fixed length.
    let mut expected = [0u8; MAX_MESSAGE_LEN];
    expected[..len].copy_from_slice(&input[..len]);
    expected[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    if message.body.message_type() == MessageType::Announce {
        expected[ANNOUNCE_RESERVED] = 0;
    }
    assert_eq!(out, &expected[..len], "emit reproduces the input");
});
