//! Arbitrary bytes into the control-channel decoder: nothing panics, whatever decodes
//! re-encodes to exactly the bytes it came from (the format is strict, so each message has
//! one encoding) and decodes again to an equal message, and the blocking reader agrees with
//! the buffer decoder frame by frame.
//!
//! Equality holds because decoding refuses NaN (volumes and clock rates), so every decoded
//! message compares equal to itself.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use lockstep::control::{ControlError, decode_frame, read_message};

fuzz_target!(|input: &[u8]| {
    let mut reader = Cursor::new(input);
    let mut scratch = Vec::new();
    let mut at = 0;
    loop {
        let rest = &input[at..];
        let read = read_message(&mut reader, &mut scratch);
        let (message, used) = match decode_frame(rest) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => {
                // Less than a frame left: the reader hits the end before a whole frame.
                match read {
                    Err(ControlError::Closed) => assert!(rest.is_empty()),
                    Err(ControlError::Truncated { .. }) => assert!(!rest.is_empty()),
                    other => panic!("decode_frame wants more bytes, read_message gave {other:?}"),
                }
                return;
            }
            Err(_) => {
                assert!(read.is_err(), "decode_frame refused, read_message accepted");
                return;
            }
        };
        assert!(used <= rest.len());

        let mut again = Vec::new();
        message
            .encode(&mut again)
            .expect("a decoded message encodes");
        assert_eq!(again, &rest[..used], "encode reproduces the input");
        let (back, back_used) = decode_frame(&again)
            .expect("a re-encoded message decodes")
            .expect("a re-encoded message is whole");
        assert_eq!(back, message, "decode after encode");
        assert_eq!(back_used, again.len());

        assert_eq!(
            read.expect("read_message takes what decode_frame takes"),
            message
        );
        assert_eq!(scratch, again, "read_message keeps the frame's bytes");
        at += used;
        assert_eq!(
            reader.position(),
            at as u64,
            "read_message reads exactly one frame"
        );
    }
});
