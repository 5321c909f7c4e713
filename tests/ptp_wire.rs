//! The PTPv2 wire format: hand-written vectors for each message lockstep speaks, every way a
//! datagram is rejected, the time conversions, and a deterministic fuzz-style sweep of the
//! parse/emit round trip.

use lockstep::ptp::{
    AnnounceBody, Body, ClockIdentity, ClockQuality, Correction, Flags, HEADER_LEN, Header,
    MAX_MESSAGE_LEN, MAX_SIGNALING_TLVS, MAX_TLVS, Message, MessageType, Packet, PortIdentity,
    PtpTimestamp, RejectReason, SignalingBody, SignalingTlv, TLV_GRANT_UNICAST_TRANSMISSION,
    TLV_REQUEST_UNICAST_TRANSMISSION, Tlv, UnicastGrant, UnicastRequest, WireError,
};
use lockstep::time::{LeaderInstant, Nanos};

const LEADER_CLOCK: ClockIdentity = ClockIdentity([0x00, 0x1b, 0x21, 0xff, 0xfe, 0x12, 0x34, 0x56]);
const FOLLOWER_CLOCK: ClockIdentity =
    ClockIdentity([0x00, 0x1b, 0x21, 0xff, 0xfe, 0xab, 0xcd, 0xef]);

fn leader_port() -> PortIdentity {
    PortIdentity {
        clock_identity: LEADER_CLOCK,
        port_number: 1,
    }
}

fn follower_port() -> PortIdentity {
    PortIdentity {
        clock_identity: FOLLOWER_CLOCK,
        port_number: 1,
    }
}

/// A two-step Sync from the leader: domain 0, sequence 0x1234, a 1.5 ns correction,
/// logSyncInterval -4 (16 per second).
#[rustfmt::skip]
const SYNC: [u8; 44] = [
    0x00,                                           // transportSpecific 0 | Sync (0x0)
    0x02,                                           // minorVersionPTP 0 | versionPTP 2
    0x00, 0x2c,                                     // messageLength 44
    0x00,                                           // domainNumber 0
    0x00,                                           // minorSdoId
    0x02, 0x00,                                     // flags: twoStep
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x80, 0x00, // correction 1.5 ns × 2^16
    0x00, 0x00, 0x00, 0x00,                         // messageTypeSpecific
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0x12, 0x34, 0x56, // clockIdentity
    0x00, 0x01,                                     // portNumber 1
    0x12, 0x34,                                     // sequenceId
    0x00,                                           // controlField: Sync
    0xfc,                                           // logMessageInterval -4
    0x00, 0x00, 0x65, 0x53, 0xf1, 0x00,             // originTimestamp.seconds 1_700_000_000
    0x07, 0x5b, 0xcd, 0x15,                         // originTimestamp.nanoseconds 123_456_789
];

/// The Follow_Up to [`SYNC`]: the precise send time, 212 ns after the rough one.
#[rustfmt::skip]
const FOLLOW_UP: [u8; 44] = [
    0x08,                                           // transportSpecific 0 | Follow_Up (0x8)
    0x02,                                           // versionPTP 2
    0x00, 0x2c,                                     // messageLength 44
    0x00,                                           // domainNumber 0
    0x00,                                           // minorSdoId
    0x00, 0x08,                                     // flags: ptpTimescale
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // correction 0
    0x00, 0x00, 0x00, 0x00,                         // messageTypeSpecific
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0x12, 0x34, 0x56, // clockIdentity
    0x00, 0x01,                                     // portNumber 1
    0x12, 0x34,                                     // sequenceId, same as the Sync
    0x02,                                           // controlField: Follow_Up
    0xfc,                                           // logMessageInterval -4
    0x00, 0x00, 0x65, 0x53, 0xf1, 0x00,             // preciseOriginTimestamp.seconds
    0x07, 0x5b, 0xcd, 0xe9,                         // preciseOriginTimestamp.nanoseconds 123_457_001
];

/// A follower's Delay_Req, sequence 0x0042, with a zero origin timestamp as many slaves send.
#[rustfmt::skip]
const DELAY_REQ: [u8; 44] = [
    0x01,                                           // transportSpecific 0 | Delay_Req (0x1)
    0x02,                                           // versionPTP 2
    0x00, 0x2c,                                     // messageLength 44
    0x00,                                           // domainNumber 0
    0x00,                                           // minorSdoId
    0x00, 0x00,                                     // flags: none
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // correction 0
    0x00, 0x00, 0x00, 0x00,                         // messageTypeSpecific
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0xab, 0xcd, 0xef, // clockIdentity (the follower)
    0x00, 0x01,                                     // portNumber 1
    0x00, 0x42,                                     // sequenceId
    0x01,                                           // controlField: Delay_Req
    0x7f,                                           // logMessageInterval: not meaningful
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // originTimestamp.seconds 0
    0x00, 0x00, 0x00, 0x00,                         // originTimestamp.nanoseconds 0
];

/// The leader's unicast Delay_Resp to [`DELAY_REQ`], with a -2.5 ns correction and a receive
/// time past 2^32 seconds, so the top 16 bits of the seconds field are in use.
#[rustfmt::skip]
const DELAY_RESP: [u8; 54] = [
    0x09,                                           // transportSpecific 0 | Delay_Resp (0x9)
    0x02,                                           // versionPTP 2
    0x00, 0x36,                                     // messageLength 54
    0x00,                                           // domainNumber 0
    0x00,                                           // minorSdoId
    0x04, 0x08,                                     // flags: unicast, ptpTimescale
    0xff, 0xff, 0xff, 0xff, 0xff, 0xfd, 0x80, 0x00, // correction -2.5 ns × 2^16
    0x00, 0x00, 0x00, 0x00,                         // messageTypeSpecific
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0x12, 0x34, 0x56, // clockIdentity (the leader)
    0x00, 0x01,                                     // portNumber 1
    0x00, 0x42,                                     // sequenceId, same as the Delay_Req
    0x03,                                           // controlField: Delay_Resp
    0x00,                                           // logMessageInterval: logMinDelayReqInterval 0
    0x00, 0x01, 0x00, 0x00, 0x00, 0x01,             // receiveTimestamp.seconds 2^32 + 1
    0x3b, 0x9a, 0xc9, 0xff,                         // receiveTimestamp.nanoseconds 999_999_999
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0xab, 0xcd, 0xef, // requestingPortIdentity.clockIdentity
    0x00, 0x01,                                     // requestingPortIdentity.portNumber 1
];

/// A 1588-2019 (minor version 1) Announce from a default-quality leader, every 2 seconds.
#[rustfmt::skip]
const ANNOUNCE: [u8; 64] = [
    0x0b,                                           // transportSpecific 0 | Announce (0xB)
    0x12,                                           // minorVersionPTP 1 | versionPTP 2
    0x00, 0x40,                                     // messageLength 64
    0x00,                                           // domainNumber 0
    0x00,                                           // minorSdoId
    0x00, 0x0c,                                     // flags: ptpTimescale, currentUtcOffsetValid
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // correction 0
    0x00, 0x00, 0x00, 0x00,                         // messageTypeSpecific
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0x12, 0x34, 0x56, // clockIdentity
    0x00, 0x01,                                     // portNumber 1
    0x00, 0x07,                                     // sequenceId
    0x05,                                           // controlField: other (Announce)
    0x01,                                           // logMessageInterval 1
    0x00, 0x00, 0x65, 0x53, 0xf1, 0x00,             // originTimestamp.seconds 1_700_000_000
    0x00, 0x00, 0x00, 0x00,                         // originTimestamp.nanoseconds 0
    0x00, 0x25,                                     // currentUtcOffset 37 s
    0x00,                                           // reserved
    0x80,                                           // grandmasterPriority1 128
    0xf8,                                           // clockClass 248 (default)
    0xfe,                                           // clockAccuracy unknown
    0xff, 0xff,                                     // offsetScaledLogVariance unknown
    0x80,                                           // grandmasterPriority2 128
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0x12, 0x34, 0x56, // grandmasterIdentity
    0x00, 0x00,                                     // stepsRemoved 0
    0xa0,                                           // timeSource: internal oscillator
];

/// A follower asks its leader for Syncs every 2^-9 s (512 a second, which the leader clamps
/// to its fastest) for 2 s: a Signaling with one REQUEST_UNICAST_TRANSMISSION.
#[rustfmt::skip]
const BURST_REQUEST: [u8; 54] = [
    0x0c,                                           // transportSpecific 0 | Signaling (0xC)
    0x02,                                           // versionPTP 2
    0x00, 0x36,                                     // messageLength 54
    0x00,                                           // domainNumber 0
    0x00,                                           // minorSdoId
    0x00, 0x00,                                     // flags: none
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // correction 0
    0x00, 0x00, 0x00, 0x00,                         // messageTypeSpecific
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0xab, 0xcd, 0xef, // clockIdentity (the follower)
    0x00, 0x01,                                     // portNumber 1
    0x00, 0x03,                                     // sequenceId
    0x05,                                           // controlField: other (Signaling)
    0x7f,                                           // logMessageInterval: not meaningful
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0x12, 0x34, 0x56, // targetPortIdentity.clockIdentity (leader)
    0x00, 0x01,                                     // targetPortIdentity.portNumber 1
    0x00, 0x04,                                     // tlvType REQUEST_UNICAST_TRANSMISSION
    0x00, 0x06,                                     // lengthField 6
    0x00,                                           // messageType Sync (high nibble) | reserved
    0xf7,                                           // logInterMessagePeriod -9
    0x00, 0x00, 0x00, 0x02,                         // durationField 2 s
];

/// The leader's answer to [`BURST_REQUEST`]: 2^-9 s for 2 s granted, no renewal invited.
#[rustfmt::skip]
const BURST_GRANT: [u8; 56] = [
    0x0c,                                           // transportSpecific 0 | Signaling (0xC)
    0x02,                                           // versionPTP 2
    0x00, 0x38,                                     // messageLength 56
    0x00,                                           // domainNumber 0
    0x00,                                           // minorSdoId
    0x00, 0x00,                                     // flags: none
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // correction 0
    0x00, 0x00, 0x00, 0x00,                         // messageTypeSpecific
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0x12, 0x34, 0x56, // clockIdentity (the leader)
    0x00, 0x01,                                     // portNumber 1
    0x00, 0x00,                                     // sequenceId
    0x05,                                           // controlField: other (Signaling)
    0x7f,                                           // logMessageInterval: not meaningful
    0x00, 0x1b, 0x21, 0xff, 0xfe, 0xab, 0xcd, 0xef, // targetPortIdentity (the follower)
    0x00, 0x01,
    0x00, 0x05,                                     // tlvType GRANT_UNICAST_TRANSMISSION
    0x00, 0x08,                                     // lengthField 8
    0x00,                                           // messageType Sync (high nibble) | reserved
    0xf7,                                           // logInterMessagePeriod -9
    0x00, 0x00, 0x00, 0x02,                         // durationField 2 s
    0x00,                                           // reserved
    0x00,                                           // flags: R clear
];

/// Parses `bytes` to `expected` and emits `expected` back to exactly `bytes`.
fn assert_vector(bytes: &[u8], expected: &Message) {
    assert_eq!(Message::parse(bytes), Ok(*expected));
    assert_eq!(expected.buffer_len(), bytes.len());
    let mut out = [0xaau8; MAX_MESSAGE_LEN];
    assert_eq!(expected.emit(&mut out), Ok(bytes.len()));
    assert_eq!(&out[..bytes.len()], bytes);
}

#[test]
fn a_two_step_sync_matches_its_hand_written_bytes() {
    let mut header = Header::new(leader_port(), 0, 0x1234);
    header.correction = Correction(0x1_8000);
    header.log_message_interval = -4;
    let sent_at = PtpTimestamp {
        seconds: 1_700_000_000,
        nanoseconds: 123_456_789,
    };
    let sync = Message::sync(header, sent_at, true);
    assert!(sync.header.flags.two_step());
    assert_eq!(sync.header.control_field, 0);
    assert_eq!(sync.header.correction.to_nanos(), Nanos(2));
    assert_vector(&SYNC, &sync);
}

#[test]
fn a_follow_up_matches_its_hand_written_bytes() {
    let mut header = Header::new(leader_port(), 0, 0x1234);
    header.flags = Flags::PTP_TIMESCALE;
    header.log_message_interval = -4;
    let precise = PtpTimestamp {
        seconds: 1_700_000_000,
        nanoseconds: 123_457_001,
    };
    let follow_up = Message::follow_up(header, precise);
    assert_eq!(follow_up.header.control_field, 2);
    assert_vector(&FOLLOW_UP, &follow_up);
}

#[test]
fn a_delay_req_matches_its_hand_written_bytes() {
    let header = Header::new(follower_port(), 0, 0x0042);
    let delay_req = Message::delay_req(header, PtpTimestamp::default());
    assert_eq!(delay_req.header.control_field, 1);
    assert_eq!(delay_req.header.log_message_interval, 0x7f);
    assert_vector(&DELAY_REQ, &delay_req);
}

#[test]
fn a_delay_resp_past_2_pow_32_seconds_matches_its_hand_written_bytes() {
    let mut header = Header::new(leader_port(), 0, 0x0042);
    header.flags = Flags::UNICAST | Flags::PTP_TIMESCALE;
    header.correction = Correction(-0x2_8000); // -2.5 ns
    header.log_message_interval = 0;
    let received = PtpTimestamp {
        seconds: (1 << 32) + 1,
        nanoseconds: 999_999_999,
    };
    let delay_resp = Message::delay_resp(header, received, follower_port());
    assert_eq!(delay_resp.header.control_field, 3);
    assert_eq!(delay_resp.header.correction.to_nanos(), Nanos(-3));
    assert_vector(&DELAY_RESP, &delay_resp);
}

#[test]
fn a_2019_announce_matches_its_hand_written_bytes() {
    let mut header = Header::new(leader_port(), 0, 7);
    header.minor_version = 1;
    header.flags = Flags::PTP_TIMESCALE | Flags::CURRENT_UTC_OFFSET_VALID;
    header.log_message_interval = 1;
    let body = AnnounceBody {
        origin_timestamp: PtpTimestamp {
            seconds: 1_700_000_000,
            nanoseconds: 0,
        },
        current_utc_offset: 37,
        grandmaster_priority1: 128,
        grandmaster_clock_quality: ClockQuality {
            clock_class: 248,
            clock_accuracy: 0xfe,
            offset_scaled_log_variance: 0xffff,
        },
        grandmaster_priority2: 128,
        grandmaster_identity: LEADER_CLOCK,
        steps_removed: 0,
        time_source: 0xa0,
    };
    let announce = Message::announce(header, body);
    assert_eq!(announce.header.control_field, 5);
    assert_vector(&ANNOUNCE, &announce);
}

fn burst_request() -> Message {
    let request = UnicastRequest {
        message_type: MessageType::Sync.code(),
        log_inter_message_period: -9,
        duration_secs: 2,
    };
    let body = SignalingBody::with_tlv(leader_port(), SignalingTlv::Request(request));
    Message::signaling(Header::new(follower_port(), 0, 3), body)
}

fn burst_grant(duration_secs: u32, renewal_invited: bool) -> SignalingTlv {
    SignalingTlv::Grant(UnicastGrant {
        message_type: MessageType::Sync.code(),
        log_inter_message_period: -9,
        duration_secs,
        renewal_invited,
    })
}

#[test]
fn a_burst_request_matches_its_hand_written_bytes() {
    let request = burst_request();
    assert_eq!(request.header.control_field, 5);
    assert_eq!(request.header.log_message_interval, 0x7f);
    assert!(!MessageType::Signaling.is_event());
    assert_vector(&BURST_REQUEST, &request);
    let packet = Packet::new_checked(&BURST_REQUEST[..]).unwrap();
    let tlvs: Vec<_> = packet.tlvs().collect();
    assert_eq!(
        tlvs,
        [Ok(Tlv {
            tlv_type: TLV_REQUEST_UNICAST_TRANSMISSION,
            value: &BURST_REQUEST[48..]
        })]
    );
}

#[test]
fn a_burst_grant_matches_its_hand_written_bytes_and_carries_the_renewal_flag() {
    let body = SignalingBody::with_tlv(follower_port(), burst_grant(2, false));
    let grant = Message::signaling(Header::new(leader_port(), 0, 0), body);
    assert_vector(&BURST_GRANT, &grant);

    let mut invited = BURST_GRANT;
    invited[55] = 0x01;
    let body = SignalingBody::with_tlv(follower_port(), burst_grant(2, true));
    assert_vector(
        &invited,
        &Message::signaling(Header::new(leader_port(), 0, 0), body),
    );
    assert_eq!(
        Packet::new_checked(&BURST_GRANT[..])
            .unwrap()
            .tlvs()
            .map(|t| t.map(|t| t.tlv_type))
            .collect::<Vec<_>>(),
        [Ok(TLV_GRANT_UNICAST_TRANSMISSION)]
    );
}

#[test]
fn a_signaling_full_of_grants_fills_the_largest_buffer() {
    let mut body = SignalingBody::new(PortIdentity::WILDCARD);
    for secs in 0..MAX_SIGNALING_TLVS as u32 {
        body.push(burst_grant(secs, secs % 2 == 0)).unwrap();
    }
    assert_eq!(
        body.push(burst_grant(9, false)),
        Err(WireError::TooManyTlvs {
            limit: MAX_SIGNALING_TLVS
        })
    );
    assert_eq!(body.tlvs().len(), MAX_SIGNALING_TLVS);
    let message = Message::signaling(Header::new(leader_port(), 0, 1), body);
    assert_eq!(message.buffer_len(), MAX_MESSAGE_LEN);
    let mut out = [0u8; MAX_MESSAGE_LEN];
    assert_eq!(message.emit(&mut out), Ok(MAX_MESSAGE_LEN));
    assert_eq!(Message::parse(&out), Ok(message));
    assert_eq!(
        message.emit(&mut [0u8; MAX_MESSAGE_LEN - 1]),
        Err(WireError::BufferTooSmall {
            needed: MAX_MESSAGE_LEN,
            got: MAX_MESSAGE_LEN - 1
        })
    );
    assert!(PortIdentity::WILDCARD.addresses(leader_port()));
    assert!(leader_port().addresses(leader_port()));
    assert!(!follower_port().addresses(leader_port()));
}

/// [`BURST_REQUEST`] with `tlvs` (whole TLVs, header and value) in place of its own, and
/// messageLength to match.
fn signaling_with(tlvs: &[u8]) -> Vec<u8> {
    let mut bytes = BURST_REQUEST[..44].to_vec();
    bytes.extend_from_slice(tlvs);
    let len = bytes.len() as u16;
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
    bytes
}

const REQUEST_TLV: [u8; 10] = [0x00, 0x04, 0x00, 0x06, 0x00, 0xf7, 0, 0, 0, 2];
const GRANT_TLV: [u8; 12] = [0x00, 0x05, 0x00, 0x08, 0x00, 0xf7, 0, 0, 0, 2, 0, 1];
/// An ORGANIZATION_EXTENSION (0x0003) of 6 bytes that lockstep does not read.
const UNKNOWN_TLV: [u8; 10] = [0x00, 0x03, 0x00, 0x06, 0x00, 0x1b, 0x21, 1, 2, 3];

#[test]
fn unknown_tlvs_are_skipped_and_the_known_ones_kept_in_order() {
    let tlvs = [&UNKNOWN_TLV[..], &REQUEST_TLV, &UNKNOWN_TLV, &GRANT_TLV].concat();
    let bytes = signaling_with(&tlvs);
    let Body::Signaling(body) = Message::parse(&bytes).unwrap().body else {
        panic!("not a Signaling");
    };
    assert_eq!(body.target_port, leader_port());
    assert_eq!(
        body.tlvs(),
        [
            SignalingTlv::Request(UnicastRequest {
                message_type: 0,
                log_inter_message_period: -9,
                duration_secs: 2
            }),
            burst_grant(2, true)
        ]
    );
    assert_eq!(Packet::new_checked(&bytes[..]).unwrap().tlvs().count(), 4);
    // A Signaling with no TLVs at all is well formed, if useless.
    let empty = signaling_with(&[]);
    let Body::Signaling(body) = Message::parse(&empty).unwrap().body else {
        panic!("not a Signaling");
    };
    assert!(body.tlvs().is_empty());
    // Reserved bits are ignored on receipt and written as zero.
    let mut reserved = GRANT_TLV;
    reserved[4] |= 0x0f;
    reserved[10] = 0xff;
    reserved[11] = 0xfe;
    let Body::Signaling(body) = Message::parse(&signaling_with(&reserved)).unwrap().body else {
        panic!("not a Signaling");
    };
    assert_eq!(body.tlvs(), [burst_grant(2, false)]);
}

#[test]
fn malformed_tlvs_get_typed_errors() {
    let bad_tlv = |tlvs: &[u8], expected: WireError| {
        let bytes = signaling_with(tlvs);
        let err = Message::parse(&bytes).unwrap_err();
        assert_eq!(err, expected, "{tlvs:02x?}");
        assert_eq!(err.reason(), RejectReason::BadTlv);
        // The header is fine, so a checked view still opens it. Its walk only knows where
        // TLVs start and end, so it ends in the errors about that.
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let walk_fails = match expected {
            WireError::TlvTruncated { .. } => true,
            WireError::TooManyTlvs { limit } => limit == MAX_TLVS,
            _ => false,
        };
        assert_eq!(packet.tlvs().last().unwrap().is_err(), walk_fails);
    };

    // A request whose lengthField says 8 (a grant's), and a grant that says 6.
    let mut long_request = REQUEST_TLV.to_vec();
    long_request[3] = 8;
    long_request.extend_from_slice(&[0, 0]);
    bad_tlv(
        &long_request,
        WireError::TlvLengthMismatch {
            tlv_type: TLV_REQUEST_UNICAST_TRANSMISSION,
            declared: 8,
            expected: 6,
        },
    );
    let mut short_grant = GRANT_TLV;
    short_grant[3] = 6;
    bad_tlv(
        &short_grant[..10],
        WireError::TlvLengthMismatch {
            tlv_type: TLV_GRANT_UNICAST_TRANSMISSION,
            declared: 6,
            expected: 8,
        },
    );

    // A value cut by messageLength, after a good TLV; and two bytes that cannot hold a
    // TLV header.
    bad_tlv(
        &[&REQUEST_TLV[..], &GRANT_TLV[..9]].concat(),
        WireError::TlvTruncated {
            offset: 54,
            needed: 12,
            got: 9,
        },
    );
    bad_tlv(
        &[0x00, 0x04],
        WireError::TlvTruncated {
            offset: 44,
            needed: 4,
            got: 2,
        },
    );
    // An unknown TLV is skipped only if it fits.
    bad_tlv(
        &[0x7f, 0x00, 0xff, 0xfe, 1, 2, 3],
        WireError::TlvTruncated {
            offset: 44,
            needed: 4 + 0xfffe,
            got: 7,
        },
    );

    // More negotiation TLVs than a body holds, and more TLVs of any kind than are walked.
    bad_tlv(
        &REQUEST_TLV.repeat(MAX_SIGNALING_TLVS + 1),
        WireError::TooManyTlvs {
            limit: MAX_SIGNALING_TLVS,
        },
    );
    let flood = [0x20, 0x00, 0x00, 0x00].repeat(MAX_TLVS);
    assert!(Message::parse(&signaling_with(&flood)).is_ok());
    bad_tlv(
        &[0x20, 0x00, 0x00, 0x00].repeat(MAX_TLVS + 1),
        WireError::TooManyTlvs { limit: MAX_TLVS },
    );

    // TLVs after a timed message are still ignored, not walked strictly.
    let mut sync = SYNC.to_vec();
    sync.extend_from_slice(&[0x00, 0x04]);
    sync[2..4].copy_from_slice(&46u16.to_be_bytes());
    assert!(Message::parse(&sync).is_ok());
    assert_eq!(
        Packet::new_checked(&sync[..]).unwrap().tlvs().next(),
        Some(Err(WireError::TlvTruncated {
            offset: 44,
            needed: 4,
            got: 2
        }))
    );
}

#[test]
fn tlv_walks_on_unchecked_views_never_panic() {
    // Lying messageLengths, unknown types and short buffers: the walk is empty or ends in
    // an error, never a panic.
    for declared in [0u16, 10, 44, 45, 48, 54, 1000, u16::MAX] {
        for len in [0, 10, 34, 44, 47, 54] {
            let mut bytes = BURST_REQUEST[..len.min(54)].to_vec();
            if bytes.len() >= 4 {
                bytes[2..4].copy_from_slice(&declared.to_be_bytes());
            }
            if bytes.len() >= HEADER_LEN {
                let n = Packet::new_unchecked(&bytes[..]).tlvs().count();
                assert!(n <= 1, "{n} TLVs from {len} bytes");
                bytes[0] = 0x0f;
                assert_eq!(Packet::new_unchecked(&bytes[..]).tlvs().count(), 0);
            }
        }
    }
}

#[test]
fn a_checked_packet_reads_the_header_in_place() {
    let packet = Packet::new_checked(&SYNC[..]).unwrap();
    assert_eq!(packet.message_type(), Ok(MessageType::Sync));
    assert_eq!(packet.version(), 2);
    assert_eq!(packet.minor_version(), 0);
    assert_eq!(packet.sdo_id(), 0);
    assert_eq!(packet.message_length(), 44);
    assert_eq!(packet.domain(), 0);
    assert!(packet.flags().two_step());
    assert!(packet.flags().contains(Flags::TWO_STEP));
    assert!(!packet.flags().contains(Flags::TWO_STEP | Flags::UNICAST));
    assert_eq!(packet.correction(), Correction(0x1_8000));
    assert_eq!(packet.source_port(), leader_port());
    assert_eq!(packet.sequence_id(), 0x1234);
    assert_eq!(packet.control_field(), 0);
    assert_eq!(packet.log_message_interval(), -4);
    assert_eq!(packet.payload(), &SYNC[HEADER_LEN..]);
    assert_eq!(
        packet.timestamp(),
        Ok(PtpTimestamp {
            seconds: 1_700_000_000,
            nanoseconds: 123_456_789
        })
    );
    assert_eq!(packet.into_inner(), &SYNC[..]);
    assert!(MessageType::Sync.is_event() && MessageType::DelayReq.is_event());
    assert!(!MessageType::FollowUp.is_event());
}

#[test]
fn a_delay_resp_with_trailing_tlvs_parses_and_emits_without_them() {
    // A 12-byte TLV after the fixed part, counted in messageLength, plus 3 bytes of padding
    // after messageLength that a driver might leave in the datagram.
    let mut bytes = DELAY_RESP.to_vec();
    bytes.extend_from_slice(&[0x00, 0x03, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]);
    bytes[2..4].copy_from_slice(&66u16.to_be_bytes());
    bytes.extend_from_slice(&[0xde, 0xad, 0x00]);

    let message = Message::parse(&bytes).expect("TLVs are skipped");
    assert_eq!(Message::parse(&DELAY_RESP), Ok(message));
    assert_eq!(
        Packet::new_checked(&bytes[..]).unwrap().payload().len(),
        66 - HEADER_LEN
    );

    let mut out = [0u8; MAX_MESSAGE_LEN];
    assert_eq!(message.emit(&mut out), Ok(54));
    assert_eq!(&out[..54], &DELAY_RESP[..]);
}

#[test]
fn every_kind_of_bad_datagram_is_rejected_with_its_reason() {
    // Shorter than a header.
    let err = Message::parse(&SYNC[..33]).unwrap_err();
    assert_eq!(
        err,
        WireError::TooShort {
            needed: 34,
            got: 33
        }
    );
    assert_eq!(err.reason(), RejectReason::TooShort);
    assert_eq!(
        Message::parse(&[]),
        Err(WireError::TooShort { needed: 34, got: 0 })
    );

    // PTPv1 (and anything but 2) in the version nibble; checked before the length.
    let mut v1 = SYNC;
    v1[1] = 0x01;
    let err = Message::parse(&v1[..40]).unwrap_err();
    assert_eq!(err, WireError::BadVersion { got: 1 });
    assert_eq!(err.reason(), RejectReason::BadVersion);

    // A datagram cut short of its declared messageLength.
    assert_eq!(
        Message::parse(&SYNC[..40]),
        Err(WireError::TooShort {
            needed: 44,
            got: 40
        })
    );

    // Peer delay, management and reserved types.
    for code in [0x2, 0x3, 0x4, 0xa, 0xd, 0xf] {
        let mut other = SYNC;
        other[0] = code;
        let err = Message::parse(&other).unwrap_err();
        assert_eq!(err, WireError::UnsupportedType { code });
        assert_eq!(err.reason(), RejectReason::UnsupportedType);
    }
    assert_eq!(
        MessageType::try_from(0x1b),
        Err(WireError::UnsupportedType { code: 0x1b })
    );

    // A Delay_Resp that declares only the length of a Sync.
    let mut short_resp = DELAY_RESP;
    short_resp[3] = 44;
    let err = Message::parse(&short_resp).unwrap_err();
    assert_eq!(
        err,
        WireError::LengthMismatch {
            message_type: MessageType::DelayResp,
            declared: 44,
            minimum: 54
        }
    );
    assert_eq!(err.reason(), RejectReason::LengthMismatch);

    // One whole second in the nanoseconds field.
    let mut bad_ns = FOLLOW_UP;
    bad_ns[40..44].copy_from_slice(&1_000_000_000u32.to_be_bytes());
    let err = Message::parse(&bad_ns).unwrap_err();
    assert_eq!(
        err,
        WireError::InvalidTimestamp {
            nanoseconds: 1_000_000_000
        }
    );
    assert_eq!(err.reason(), RejectReason::InvalidTimestamp);
    // The header alone is fine, so a checked view still opens it.
    assert!(Packet::new_checked(&bad_ns[..]).is_ok());

    // Conversions that do not fit.
    let err = PtpTimestamp::from_instant(LeaderInstant::from_nanos(-1)).unwrap_err();
    assert_eq!(err, WireError::TimestampOutOfRange);
    assert_eq!(err.reason(), RejectReason::Other);

    // Emitting into a short buffer writes nothing.
    let sync = Message::parse(&SYNC).unwrap();
    let mut small = [0x55u8; 43];
    let err = sync.emit(&mut small).unwrap_err();
    assert_eq!(
        err,
        WireError::BufferTooSmall {
            needed: 44,
            got: 43
        }
    );
    assert_eq!(err.reason(), RejectReason::Other);
    assert!(small.iter().all(|&b| b == 0x55));
}

#[test]
fn reject_reasons_index_a_counter_array() {
    let mut management = SYNC;
    management[0] = 0x0d;
    let mut counters = [0u32; RejectReason::COUNT];
    for bytes in [&SYNC[..10], &SYNC[..40], &management[..]] {
        let reason = Message::parse(bytes).unwrap_err().reason();
        counters[reason.index()] += 1;
    }
    assert_eq!(counters[RejectReason::TooShort.index()], 2);
    assert_eq!(counters[RejectReason::UnsupportedType.index()], 1);
    let mut names: Vec<_> = RejectReason::ALL.iter().map(|r| r.name()).collect();
    names.dedup();
    assert_eq!(names.len(), RejectReason::COUNT);
}

#[test]
fn emit_refuses_timestamps_the_wire_cannot_carry() {
    let header = Header::new(leader_port(), 0, 1);
    let mut out = [0u8; MAX_MESSAGE_LEN];
    let bad_ns = PtpTimestamp {
        seconds: 1,
        nanoseconds: 1_000_000_000,
    };
    assert_eq!(
        Message::follow_up(header, bad_ns).emit(&mut out),
        Err(WireError::InvalidTimestamp {
            nanoseconds: 1_000_000_000
        })
    );
    let too_far = PtpTimestamp {
        seconds: 1 << 48,
        nanoseconds: 0,
    };
    assert_eq!(
        Message::sync(header, too_far, false).emit(&mut out),
        Err(WireError::TimestampOutOfRange)
    );
    assert!(out.iter().all(|&b| b == 0), "nothing written on error");
    let last = PtpTimestamp {
        seconds: PtpTimestamp::MAX_SECONDS,
        nanoseconds: 999_999_999,
    };
    let sync = Message::sync(header, last, false);
    assert_eq!(sync.emit(&mut out), Ok(44));
    assert_eq!(&out[34..40], &[0xff; 6]);
    assert_eq!(Message::parse(&out), Ok(sync));
}

#[test]
fn a_one_step_sync_clears_a_stale_two_step_flag() {
    let mut header = Header::new(leader_port(), 3, 9);
    header.flags = Flags::TWO_STEP | Flags::UNICAST;
    let sync = Message::sync(header, PtpTimestamp::default(), false);
    assert!(!sync.header.flags.two_step());
    assert!(sync.header.flags.unicast());
}

#[test]
fn corrections_round_to_the_nearest_nanosecond_symmetrically() {
    assert_eq!(Correction::from_nanos(Nanos(1)), Correction(0x1_0000));
    assert_eq!(Correction::from_nanos(Nanos(-3)), Correction(-0x3_0000));
    assert_eq!(Correction(0x1_8000).to_nanos(), Nanos(2)); // 1.5 → 2
    assert_eq!(Correction(0x1_7fff).to_nanos(), Nanos(1)); // 1.49998 → 1
    assert_eq!(Correction(0x8000).to_nanos(), Nanos(1)); // 0.5 → 1
    assert_eq!(Correction(0x7fff).to_nanos(), Nanos(0));
    assert_eq!(Correction(-0x1_8000).to_nanos(), Nanos(-2)); // -1.5 → -2
    assert_eq!(Correction(-0x1_7fff).to_nanos(), Nanos(-1));
    assert_eq!(Correction(-0x8000).to_nanos(), Nanos(-1)); // -0.5 → -1
    assert_eq!(Correction(-0x7fff).to_nanos(), Nanos(0));
    assert_eq!(Correction(-0x2_8000).to_nanos(), Nanos(-3)); // -2.5 → -3
    // Extremes neither panic nor wrap.
    assert_eq!(Correction(i64::MAX).to_nanos(), Nanos(1 << 47));
    assert_eq!(Correction(i64::MIN).to_nanos(), Nanos(-(1 << 47)));
    assert_eq!(Correction::from_nanos(Nanos::MAX), Correction(i64::MAX));
    assert_eq!(
        Correction::from_nanos(Nanos(i64::MIN)),
        Correction(i64::MIN)
    );
}

#[test]
fn timestamps_convert_to_and_from_leader_instants() {
    let t = LeaderInstant::from_nanos(1_700_000_000_123_456_789);
    let ts = PtpTimestamp::from_instant(t).unwrap();
    assert_eq!(
        ts,
        PtpTimestamp {
            seconds: 1_700_000_000,
            nanoseconds: 123_456_789
        }
    );
    assert_eq!(ts.to_instant(), Ok(t));

    // Past 2^32 seconds (year 2106 of the PTP epoch): the 48-bit field carries it.
    let far = PtpTimestamp {
        seconds: (1 << 32) + 1,
        nanoseconds: 999_999_999,
    };
    let far_instant = far.to_instant().unwrap();
    assert_eq!(far_instant.as_nanos(), 4_294_967_297_999_999_999);
    assert_eq!(PtpTimestamp::from_instant(far_instant), Ok(far));

    // The last instant i64 nanoseconds hold converts both ways; one nanosecond more does not.
    let last = LeaderInstant::from_nanos(i64::MAX);
    let last_ts = PtpTimestamp::from_instant(last).unwrap();
    assert_eq!(
        last_ts,
        PtpTimestamp {
            seconds: 9_223_372_036,
            nanoseconds: 854_775_807
        }
    );
    assert_eq!(last_ts.to_instant(), Ok(last));
    let beyond = PtpTimestamp {
        nanoseconds: 854_775_808,
        ..last_ts
    };
    assert_eq!(beyond.to_instant(), Err(WireError::TimestampOutOfRange));
    let max = PtpTimestamp {
        seconds: PtpTimestamp::MAX_SECONDS,
        nanoseconds: 0,
    };
    assert_eq!(max.to_instant(), Err(WireError::TimestampOutOfRange));
    let huge = PtpTimestamp {
        seconds: u64::MAX,
        nanoseconds: 0,
    };
    assert_eq!(huge.to_instant(), Err(WireError::TimestampOutOfRange));
    let bad = PtpTimestamp {
        seconds: 0,
        nanoseconds: u32::MAX,
    };
    assert_eq!(
        bad.to_instant(),
        Err(WireError::InvalidTimestamp {
            nanoseconds: u32::MAX
        })
    );

    assert_eq!(
        PtpTimestamp::from_instant(LeaderInstant::from_nanos(0)),
        Ok(PtpTimestamp::default())
    );
    assert_eq!(
        PtpTimestamp::from_instant(LeaderInstant::from_nanos(i64::MIN)),
        Err(WireError::TimestampOutOfRange)
    );
}

/// The fuzz target's check (fuzz/fuzz_targets/ptp_message.rs): whatever parses re-emits to
/// the same bytes, up to what the receiver ignores (see the `wire` module docs). Returns
/// whether the input parsed.
fn check_round_trip(input: &[u8]) -> bool {
    let Ok(message) = Message::parse(input) else {
        return false;
    };
    let mut out = [0u8; MAX_MESSAGE_LEN];
    let len = message.emit(&mut out).expect("a parsed message emits");
    assert_eq!(len, message.buffer_len());
    let out = &out[..len];
    assert_eq!(Message::parse(out), Ok(message), "emit then parse");

    let declared = usize::from(u16::from_be_bytes([input[2], input[3]]));
    if message.body.message_type() == MessageType::Signaling && declared != len {
        // Unknown TLVs were skipped, so the known ones moved: the fixed part still matches.
        let mut expected = input[..44].to_vec();
        expected[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        assert_eq!(&out[..44], &expected[..], "emit reproduces the fixed part");
        return true;
    }
    let mut expected = input[..len].to_vec();
    expected[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    match message.body {
        Body::Announce(_) => expected[46] = 0,
        Body::Signaling(_) => {
            // Every TLV was kept, so they lie where they lay; clear their reserved bits.
            let mut at = 44;
            while at < len {
                expected[at + 4] &= 0xf0;
                if expected[at + 1] == 0x05 {
                    expected[at + 10] = 0;
                    expected[at + 11] &= 0x01;
                }
                at += 4 + usize::from(expected[at + 3]);
            }
        }
        _ => {}
    }
    assert_eq!(out, &expected[..], "emit reproduces the input");
    true
}

/// xorshift64*: a few lines of deterministic noise, so the sweep is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        core::array::from_fn(|_| self.byte())
    }

    fn timestamp(&mut self) -> PtpTimestamp {
        PtpTimestamp {
            seconds: self.next() >> 16,
            nanoseconds: self.below(1_000_000_000) as u32,
        }
    }

    fn port(&mut self) -> PortIdentity {
        PortIdentity {
            clock_identity: ClockIdentity(self.bytes()),
            port_number: self.next() as u16,
        }
    }

    /// A valid message of the given type with every field random.
    fn message(&mut self, message_type: MessageType) -> Message {
        let header = Header {
            sdo_id: self.byte() & 0x0f,
            minor_version: self.byte() & 0x0f,
            domain: self.byte(),
            minor_sdo_id: self.byte(),
            flags: Flags(self.next() as u16),
            correction: Correction(self.next() as i64),
            message_type_specific: self.next() as u32,
            source_port: self.port(),
            sequence_id: self.next() as u16,
            control_field: self.byte(),
            log_message_interval: self.byte() as i8,
        };
        let body = match message_type {
            MessageType::Sync => Body::Sync {
                origin_timestamp: self.timestamp(),
            },
            MessageType::DelayReq => Body::DelayReq {
                origin_timestamp: self.timestamp(),
            },
            MessageType::FollowUp => Body::FollowUp {
                precise_origin_timestamp: self.timestamp(),
            },
            MessageType::DelayResp => Body::DelayResp {
                receive_timestamp: self.timestamp(),
                requesting_port: self.port(),
            },
            MessageType::Signaling => {
                let mut body = SignalingBody::new(self.port());
                for _ in 0..self.below(MAX_SIGNALING_TLVS as u64 + 1) {
                    let message_type = self.byte() & 0x0f;
                    let log_inter_message_period = self.byte() as i8;
                    let duration_secs = self.next() as u32;
                    let tlv = if self.below(2) == 0 {
                        SignalingTlv::Request(UnicastRequest {
                            message_type,
                            log_inter_message_period,
                            duration_secs,
                        })
                    } else {
                        SignalingTlv::Grant(UnicastGrant {
                            message_type,
                            log_inter_message_period,
                            duration_secs,
                            renewal_invited: self.below(2) == 0,
                        })
                    };
                    body.push(tlv).unwrap();
                }
                Body::Signaling(body)
            }
            MessageType::Announce => Body::Announce(AnnounceBody {
                origin_timestamp: self.timestamp(),
                current_utc_offset: self.next() as i16,
                grandmaster_priority1: self.byte(),
                grandmaster_clock_quality: ClockQuality {
                    clock_class: self.byte(),
                    clock_accuracy: self.byte(),
                    offset_scaled_log_variance: self.next() as u16,
                },
                grandmaster_priority2: self.byte(),
                grandmaster_identity: ClockIdentity(self.bytes()),
                steps_removed: self.next() as u16,
                time_source: self.byte(),
            }),
        };
        Message { header, body }
    }
}

const TYPES: [MessageType; 6] = [
    MessageType::Sync,
    MessageType::DelayReq,
    MessageType::FollowUp,
    MessageType::DelayResp,
    MessageType::Announce,
    MessageType::Signaling,
];

#[test]
fn two_hundred_thousand_noisy_datagrams_round_trip_or_are_rejected() {
    const INPUTS: usize = 200_000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0usize;
    let mut parsed_by_type = [0usize; TYPES.len()];
    let mut rejected = [0usize; RejectReason::COUNT];

    for _ in 0..INPUTS {
        let mut input = Vec::with_capacity(128);
        if rng.below(8) == 0 {
            // Pure noise, mostly rejected early.
            let len = rng.below(100) as usize;
            input.extend((0..len).map(|_| rng.byte()));
        } else {
            // A valid message of a random type, then bent.
            let message_type = TYPES[rng.below(TYPES.len() as u64) as usize];
            let mut buf = [0u8; MAX_MESSAGE_LEN];
            let len = rng.message(message_type).emit(&mut buf).unwrap();
            input.extend_from_slice(&buf[..len]);
            match rng.below(7) {
                0 => {} // untouched
                1 => {
                    // Flip a few bits anywhere.
                    for _ in 0..=rng.below(3) {
                        let at = rng.below(input.len() as u64) as usize;
                        input[at] ^= 1 << rng.below(8);
                    }
                }
                2 => {
                    // Overwrite a few bytes past the version, keeping type and version.
                    for _ in 0..=rng.below(3) {
                        let at = 2 + rng.below(input.len() as u64 - 2) as usize;
                        input[at] = rng.byte();
                    }
                }
                3 => input.truncate(rng.below(input.len() as u64 + 1) as usize),
                4 => {
                    // Trailing bytes; half the time counted in messageLength, as TLVs are.
                    let extra = 1 + rng.below(40) as usize;
                    input.extend((0..extra).map(|_| rng.byte()));
                    if rng.below(2) == 0 {
                        let declared = input.len() as u16;
                        input[2..4].copy_from_slice(&declared.to_be_bytes());
                    }
                }
                5 => {
                    // Declare a random messageLength.
                    let declared = rng.below(100) as u16;
                    input[2..4].copy_from_slice(&declared.to_be_bytes());
                }
                _ => {
                    // A well-formed TLV of a random type (unknown ones are skipped), counted
                    // in messageLength.
                    let tlv_type = if rng.below(2) == 0 {
                        rng.below(8) as u16
                    } else {
                        rng.next() as u16
                    };
                    let length = 2 * rng.below(6) as u16;
                    input.extend_from_slice(&tlv_type.to_be_bytes());
                    input.extend_from_slice(&length.to_be_bytes());
                    input.extend((0..length).map(|_| rng.byte()));
                    let declared = input.len() as u16;
                    input[2..4].copy_from_slice(&declared.to_be_bytes());
                }
            }
        }

        if check_round_trip(&input) {
            parsed += 1;
            let message = Message::parse(&input).unwrap();
            let index = TYPES
                .iter()
                .position(|&t| t == message.body.message_type())
                .unwrap();
            parsed_by_type[index] += 1;
        } else {
            let reason = Message::parse(&input).unwrap_err().reason();
            rejected[reason.index()] += 1;
        }
    }

    // The check is only worth something if most inputs reach it, for every type, and if the
    // rejections exercise every reason the parser can give.
    assert!(parsed * 5 > INPUTS * 2, "only {parsed} of {INPUTS} parsed");
    for (t, &n) in TYPES.iter().zip(&parsed_by_type) {
        assert!(n > INPUTS / 20, "only {n} {t} messages parsed");
    }
    for reason in RejectReason::ALL {
        if reason != RejectReason::Other {
            assert!(rejected[reason.index()] > 0, "never rejected as {reason:?}");
        }
    }
    assert_eq!(rejected[RejectReason::Other.index()], 0);
}
