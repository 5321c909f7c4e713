//! Discovery's public API without a network: a speaker's TXT record as another program
//! would read it, and the interfaces discovery refuses to bind to.
//!
//! These tests send nothing: every refusal comes before the mDNS daemon starts. Discovery
//! over real mDNS runs in network namespaces, in `src/household/discovery/ns_tests.rs`
//! (root; `.ci/run` runs it with `--ignored`).

use std::net::Ipv4Addr;

use lockstep::control::PROTOCOL_VERSION;
use lockstep::household::discovery::txt::{MAX_FIELD_LEN, MAX_TXT_TOTAL_LEN};
use lockstep::household::{
    Advertiser, Browser, DiscoveryError, IgnoredKind, PlayState, SERVICE_TYPE, SpeakerRecord,
    TxtError,
};

/// A record's TXT entries as the bytes a browser decodes.
fn entries(record: &SpeakerRecord) -> Vec<(String, Option<Vec<u8>>)> {
    record
        .to_txt()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Some(v.into_bytes())))
        .collect()
}

fn parse(entries: &[(String, Option<Vec<u8>>)]) -> Result<SpeakerRecord, TxtError> {
    SpeakerRecord::parse_txt(entries.iter().map(|(k, v)| (k.as_str(), v.as_deref())))
}

#[test]
fn a_following_speaker_advertises_its_version_state_and_group() {
    let mut record = SpeakerRecord::new("3f2a", "Kitchen", "Kitchen", "LS-1").unwrap();
    record
        .set_state(PlayState::Following, Some("Downstairs"))
        .unwrap();
    let txt = record.to_txt();
    let get = |key: &str| txt.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
    assert_eq!(get("lv"), Some(PROTOCOL_VERSION.to_string().as_str()));
    assert_eq!(get("id"), Some("3f2a"));
    assert_eq!(get("state"), Some("following"));
    assert_eq!(get("group"), Some("Downstairs"));
    assert_eq!(parse(&entries(&record)), Ok(record));
    assert!(SERVICE_TYPE.starts_with("_lockstep._tcp."));
}

#[test]
fn a_record_at_every_cap_stays_within_the_txt_size_cap() {
    let long = "x".repeat(MAX_FIELD_LEN);
    let id = "i".repeat(lockstep::household::discovery::txt::MAX_ID_LEN);
    let mut record = SpeakerRecord::new(&id, &long, &long, &long).unwrap();
    record.set_state(PlayState::Following, Some(&long)).unwrap();
    let size: usize = record
        .to_txt()
        .iter()
        .map(|(k, v)| 2 + k.len() + v.len())
        .sum();
    // docs/household.md says "under 400 bytes", well within the cap.
    assert!(size < 400, "{size} bytes");
    const { assert!(MAX_TXT_TOTAL_LEN >= 400) };
    assert_eq!(parse(&entries(&record)), Ok(record));
}

#[test]
fn bad_records_from_the_network_are_typed_and_sorted_into_their_counter() {
    let good = SpeakerRecord::new("k", "Kitchen", "", "LS-1").unwrap();
    let with = |key: &str, value: &[u8]| {
        let mut e = entries(&good);
        e.retain(|(k, _)| k != key);
        e.push((key.to_owned(), Some(value.to_vec())));
        parse(&e).unwrap_err()
    };
    let cases = [
        (with("lv", b"9"), IgnoredKind::Incompatible),
        (with("state", b"dancing"), IgnoredKind::Malformed),
        (with("id", b"two words"), IgnoredKind::Malformed),
        (with("name", &[0xff]), IgnoredKind::Malformed),
        (with("name", &[b'n'; 200]), IgnoredKind::Oversized),
        (with("name", &[b'n'; 400]), IgnoredKind::Oversized),
        (
            parse(&[("txtvers".to_owned(), Some(b"1".to_vec()))]).unwrap_err(),
            IgnoredKind::Foreign,
        ),
    ];
    for (err, kind) in cases {
        assert_eq!(err.kind(), kind, "{err}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn discovery_binds_only_to_addresses_that_name_an_interface_here() {
    let record = || SpeakerRecord::new("k", "Kitchen", "", "LS-1").unwrap();
    assert!(matches!(
        Advertiser::start(record(), 7700, &[]),
        Err(DiscoveryError::NoInterface)
    ));
    assert!(matches!(
        Browser::start(&[]),
        Err(DiscoveryError::NoInterface)
    ));
    for addr in [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(224, 0, 0, 251),
        Ipv4Addr::BROADCAST,
    ] {
        let err = Browser::start(&[addr]).unwrap_err();
        assert!(
            matches!(err, DiscoveryError::BadAddress { addr: a } if a == addr),
            "{err}"
        );
    }
    // 192.0.2.0/24 is for documentation (RFC 5737): no machine has it.
    let absent = Ipv4Addr::new(192, 0, 2, 1);
    let err = Advertiser::start(record(), 7700, &[absent]).unwrap_err();
    assert!(
        matches!(err, DiscoveryError::NoSuchAddress { addr } if addr == absent),
        "{err}"
    );
    let err = Browser::start(&[Ipv4Addr::LOCALHOST, absent]).unwrap_err();
    assert!(
        matches!(err, DiscoveryError::NoSuchAddress { addr } if addr == absent),
        "{err}"
    );
}
