//! Arbitrary text as an SDP description: parsing never panics, and a description that
//! parses and validates writes out to text that parses back to the same description.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::media::sdp::SessionDescription;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(sdp) = SessionDescription::parse(text) else {
        return;
    };
    if sdp.validate().is_ok() {
        let again = SessionDescription::parse(&sdp.to_sdp()).expect("what we write parses");
        assert_eq!(again, sdp, "a round trip changed the description");
    }
});
