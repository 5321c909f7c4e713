//! Arbitrary text as a scenario events file (`sync_report --events FILE`): parsing never
//! panics; it gives events or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::sim::scenario_file::parse_events;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let _ = parse_events(text);
});
