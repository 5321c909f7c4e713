//! Arbitrary datagrams into the PTP authentication check: nothing panics, whatever the bytes
//! (truncated TLVs, lengthFields and messageLengths that lie, TLVs claiming more bytes than
//! the datagram); a slave with authentication on takes them without panicking; and whatever
//! parses as a message, once signed, verifies, parses back to the same message, and fails
//! with any one bit flipped (where, the input chooses).
//!
//! Seeded with one signed message of each type (fuzz/seeds/ptp_auth_verify, made by
//! fuzz/make_ptp_auth_seeds.py with the key below), so that the fuzzer starts past the tag.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::ptp::{
    MAX_SIGNED_LEN, Message, PortIdentity, PtpAuth, PtpKeys, PtpSlave, SlaveConfig,
};
use lockstep::time::LocalInstant;

/// The seeds' key: bytes 0 to 31, keyID 1, SPP 0.
fn auth() -> PtpAuth {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = i as u8;
    }
    PtpAuth::new(&key, 1)
}

fuzz_target!(|input: &[u8]| {
    let auth = auth();
    if auth.verify(input).is_ok() {
        // Only a message the key signed verifies: it must parse.
        assert!(Message::parse(input).is_ok(), "verified but does not parse");
    }

    let mut config = SlaveConfig::new(PortIdentity::default());
    config.auth = Some(PtpKeys::shared(auth));
    let mut slave = PtpSlave::<u8>::new(config);
    let _ = slave.handle_receive(0, LocalInstant::from_nanos(1), input);
    let _ = slave.handle_receive(0, LocalInstant::from_nanos(2), input);
    let stats = slave.stats();
    assert_eq!(stats.received, 2);

    let Ok(message) = Message::parse(input) else {
        return;
    };
    let mut buf = [0u8; MAX_SIGNED_LEN];
    let len = message.emit(&mut buf).expect("a parsed message emits");
    let len = auth.sign(&mut buf, len).expect("room for the TLV");
    assert_eq!(auth.verify(&buf[..len]), Ok(()), "signed, then verified");
    assert_eq!(Message::parse(&buf[..len]), Ok(message), "the TLV changes nothing parsed");
    let bit = usize::from(input[input.len() - 1]) * 8 + input.len() % 8;
    let bit = bit % (len * 8);
    buf[bit / 8] ^= 1 << (bit % 8);
    assert!(auth.verify(&buf[..len]).is_err(), "bit {bit} flipped, still verified");
});
