//! SDP session descriptions: what we write, what we read (ours, ffmpeg's, GStreamer's,
//! AES67's), the typed errors for everything malformed, and no panic on any input.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use lockstep::media::sdp::{MAX_LINE_LEN, MAX_SDP_LEN, PtpReference, SdpError, SessionDescription};
use lockstep::media::{AudioFormat, CodecError, CodecKind};

const CLOCK_ID: [u8; 8] = [0x00, 0x1D, 0xC1, 0xFF, 0xFE, 0x12, 0x34, 0x56];

fn format(rate: u32, channels: u16) -> AudioFormat {
    AudioFormat::new(rate, channels).expect("valid format")
}

/// A description with no optional field set.
fn minimal(codec: CodecKind, fmt: AudioFormat, port: u16) -> SessionDescription {
    SessionDescription {
        session_name: "lockstep".to_owned(),
        session_id: 42,
        origin: IpAddr::V4(Ipv4Addr::LOCALHOST),
        destination: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        multicast_ttl: None,
        payload_type: 96,
        codec,
        format: fmt,
        ptime_ms: None,
        ntp_extension_id: None,
        ptp_reference: None,
        media_clock_offset: None,
    }
}

/// A description with every optional field set.
fn full(codec: CodecKind, fmt: AudioFormat, port: u16) -> SessionDescription {
    SessionDescription {
        ptime_ms: Some(if codec == CodecKind::Opus { 20 } else { 5 }),
        ntp_extension_id: Some(1),
        ptp_reference: Some(PtpReference {
            clock_identity: CLOCK_ID,
            domain: 0,
        }),
        media_clock_offset: Some(0),
        ..minimal(codec, fmt, port)
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.split("\r\n").filter(|l| !l.is_empty()).collect()
}

fn round_trip(desc: &SessionDescription) {
    desc.validate().expect("the description is valid");
    let text = desc.to_sdp();
    assert!(text.ends_with("\r\n"), "CRLF line endings: {text:?}");
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "no bare LF: {text:?}"
    );
    assert_eq!(
        SessionDescription::parse(&text).as_ref(),
        Ok(desc),
        "round trip of\n{text}"
    );
    // The same text with LF line endings reads the same.
    assert_eq!(
        SessionDescription::parse(&text.replace("\r\n", "\n")).as_ref(),
        Ok(desc)
    );
}

#[test]
fn round_trips_every_codec_with_and_without_optional_fields() {
    let formats = [
        (CodecKind::L16, format(48_000, 2)),
        (CodecKind::L16, format(44_100, 1)),
        (CodecKind::L16, format(96_000, 8)),
        (CodecKind::L24, format(48_000, 2)),
        (CodecKind::L24, format(96_000, 1)),
        (CodecKind::L24, format(44_100, 6)),
        (CodecKind::Opus, format(48_000, 2)),
        (CodecKind::Opus, format(48_000, 1)),
    ];
    for (codec, fmt) in formats {
        round_trip(&minimal(codec, fmt, 5004));
        round_trip(&full(codec, fmt, 5004));
        // Each optional field alone.
        let base = minimal(codec, fmt, 6000);
        round_trip(&SessionDescription {
            ptime_ms: Some(1000),
            ..base.clone()
        });
        round_trip(&SessionDescription {
            ntp_extension_id: Some(14),
            ..base.clone()
        });
        round_trip(&SessionDescription {
            ptp_reference: Some(PtpReference {
                clock_identity: [0xAB; 8],
                domain: 127,
            }),
            ..base.clone()
        });
        round_trip(&SessionDescription {
            media_clock_offset: Some(u32::MAX),
            ..base.clone()
        });
        // Multicast with a TTL, IPv6, odd names and ids.
        round_trip(&SessionDescription {
            destination: "239.69.1.2:5004".parse().unwrap(),
            multicast_ttl: Some(32),
            payload_type: 127,
            session_id: u64::MAX,
            session_name: "Stage left I/O — ünïcode".to_owned(),
            ..full(codec, fmt, 1)
        });
        round_trip(&SessionDescription {
            destination: "239.69.1.2:5004".parse().unwrap(),
            multicast_ttl: None,
            ..base.clone()
        });
        round_trip(&SessionDescription {
            origin: IpAddr::V6(Ipv6Addr::LOCALHOST),
            destination: "[ff0e::db8:1]:65535".parse().unwrap(),
            session_name: String::new(),
            session_id: 0,
            ..full(codec, fmt, 1)
        });
    }
    // Static payload types.
    round_trip(&SessionDescription {
        payload_type: 10,
        ..full(CodecKind::L16, format(44_100, 2), 5004)
    });
    round_trip(&SessionDescription {
        payload_type: 11,
        ..minimal(CodecKind::L16, format(44_100, 1), 5004)
    });
}

#[test]
fn l16_lines() {
    let text = full(CodecKind::L16, format(48_000, 2), 5004).to_sdp();
    assert_eq!(
        lines(&text),
        [
            "v=0",
            "o=- 42 42 IN IP4 127.0.0.1",
            "s=lockstep",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            "m=audio 5004 RTP/AVP 96",
            "a=rtpmap:96 L16/48000/2",
            "a=ptime:5",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ntp-64",
            "a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0",
            "a=mediaclk:direct=0",
            "a=sendonly",
        ]
    );
    // Mono writes its channel count too.
    let mono = minimal(CodecKind::L16, format(44_100, 1), 5004).to_sdp();
    assert!(lines(&mono).contains(&"a=rtpmap:96 L16/44100/1"), "{mono}");
    assert!(!mono.contains("a=fmtp"), "{mono}");
    assert!(!mono.contains("a=ptime"), "{mono}");
    assert!(!mono.contains("a=extmap"), "{mono}");
    assert!(!mono.contains("a=ts-refclk"), "{mono}");
    assert!(!mono.contains("a=mediaclk"), "{mono}");
}

#[test]
fn l24_lines() {
    let desc = SessionDescription {
        destination: "239.69.1.2:5006".parse().unwrap(),
        multicast_ttl: Some(15),
        payload_type: 98,
        ntp_extension_id: Some(7),
        ptp_reference: Some(PtpReference {
            clock_identity: [0x39, 0xA7, 0x94, 0xFF, 0xFE, 0x07, 0xCB, 0xD0],
            domain: 3,
        }),
        media_clock_offset: Some(963_214_424),
        ptime_ms: Some(1),
        ..full(CodecKind::L24, format(96_000, 8), 0)
    };
    let text = desc.to_sdp();
    let got = lines(&text);
    for want in [
        "c=IN IP4 239.69.1.2/15",
        "m=audio 5006 RTP/AVP 98",
        "a=rtpmap:98 L24/96000/8",
        "a=ptime:1",
        "a=extmap:7 urn:ietf:params:rtp-hdrext:ntp-64",
        "a=ts-refclk:ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0:3",
        "a=mediaclk:direct=963214424",
        "a=sendonly",
    ] {
        assert!(got.contains(&want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("a=fmtp"), "{text}");
}

#[test]
fn opus_lines() {
    let stereo = SessionDescription {
        payload_type: 111,
        ..full(CodecKind::Opus, format(48_000, 2), 5008)
    }
    .to_sdp();
    let got = lines(&stereo);
    for want in [
        "m=audio 5008 RTP/AVP 111",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 sprop-stereo=1; stereo=1; useinbandfec=1",
        "a=ptime:20",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ntp-64",
        "a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0",
        "a=mediaclk:direct=0",
    ] {
        assert!(got.contains(&want), "missing {want:?} in\n{stereo}");
    }

    let mono = minimal(CodecKind::Opus, format(48_000, 1), 5008).to_sdp();
    let got = lines(&mono);
    // RFC 7587: always opus/48000/2; mono is signalled in the fmtp.
    assert!(got.contains(&"a=rtpmap:96 opus/48000/2"), "{mono}");
    assert!(
        got.contains(&"a=fmtp:96 sprop-stereo=0; stereo=0; useinbandfec=1"),
        "{mono}"
    );
}

#[test]
fn parses_ffmpeg_sdp_file() {
    let ffmpeg = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nc=IN IP4 127.0.0.1\nt=0 0\n\
                  a=tool:libavformat 59.27.100\nm=audio 5004 RTP/AVP 97\nb=AS:1536\n\
                  a=rtpmap:97 L16/48000/2\n";
    let want = SessionDescription {
        session_name: "No Name".to_owned(),
        session_id: 0,
        origin: IpAddr::V4(Ipv4Addr::LOCALHOST),
        destination: "127.0.0.1:5004".parse().unwrap(),
        multicast_ttl: None,
        payload_type: 97,
        codec: CodecKind::L16,
        format: format(48_000, 2),
        ptime_ms: None,
        ntp_extension_id: None,
        ptp_reference: None,
        media_clock_offset: None,
    };
    assert_eq!(SessionDescription::parse(ffmpeg), Ok(want.clone()));
    assert_eq!(
        SessionDescription::parse(&ffmpeg.replace('\n', "\r\n")),
        Ok(want)
    );

    // What ffmpeg writes for Opus: no fmtp means mono.
    let opus = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\n\
                t=0 0\r\na=tool:libavformat 59.27.100\r\nm=audio 5004 RTP/AVP 97\r\n\
                b=AS:64\r\na=rtpmap:97 opus/48000/2\r\n";
    let desc = SessionDescription::parse(opus).unwrap();
    assert_eq!(desc.codec, CodecKind::Opus);
    assert_eq!(desc.format, format(48_000, 1));
    let stereo = opus.to_owned() + "a=fmtp:97 sprop-stereo=1\r\n";
    let desc = SessionDescription::parse(&stereo).unwrap();
    assert_eq!(desc.format, format(48_000, 2));

    // ffmpeg 5.1's `-sdp_file` for L24 and for L16 44.1 kHz mono (static type 11, no rtpmap).
    let head = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\n\
                t=0 0\r\na=tool:libavformat LIBAVFORMAT_VERSION\r\n";
    let l24 = format!("{head}m=audio 5300 RTP/AVP 97\r\nb=AS:2304\r\na=rtpmap:97 L24/48000/2\r\n");
    let desc = SessionDescription::parse(&l24).unwrap();
    assert_eq!(
        (desc.codec, desc.format),
        (CodecKind::L24, format(48_000, 2))
    );
    let l16 = format!("{head}m=audio 5300 RTP/AVP 11\r\nb=AS:705\r\n");
    let desc = SessionDescription::parse(&l16).unwrap();
    assert_eq!(desc.payload_type, 11);
    assert_eq!(
        (desc.codec, desc.format),
        (CodecKind::L16, format(44_100, 1))
    );
}

#[test]
fn parses_gstreamer_style_sdp() {
    // Media-level c=, upper-case encoding name, extra attributes, a video section first.
    let gst = "v=0\r\n\
               o=- 1188340656180883 1 IN IP4 192.168.1.10\r\n\
               s=Session streamed with GStreamer\r\n\
               i=rtsp-server\r\n\
               t=0 0\r\n\
               a=tool:GStreamer\r\n\
               a=type:broadcast\r\n\
               m=video 5000 RTP/AVP 96\r\n\
               c=IN IP4 192.168.1.20\r\n\
               a=rtpmap:96 H264/90000\r\n\
               a=ptime:0\r\n\
               m=audio 5002 RTP/AVP 96 97\r\n\
               c=IN IP4 192.168.1.20\r\n\
               b=AS:128\r\n\
               a=rtpmap:96 OPUS/48000/2\r\n\
               a=fmtp:96 sprop-maxcapturerate=48000;sprop-stereo=1\r\n\
               a=rtpmap:97 PCMU/8000\r\n\
               a=control:stream=1\r\n\
               m=audio 5004 RTP/AVP 0\r\n";
    let desc = SessionDescription::parse(gst).unwrap();
    assert_eq!(desc.session_name, "Session streamed with GStreamer");
    assert_eq!(desc.session_id, 1_188_340_656_180_883);
    assert_eq!(desc.origin, "192.168.1.10".parse::<IpAddr>().unwrap());
    assert_eq!(desc.destination, "192.168.1.20:5002".parse().unwrap());
    assert_eq!(desc.payload_type, 96);
    assert_eq!(desc.codec, CodecKind::Opus);
    assert_eq!(desc.format, format(48_000, 2));
    assert_eq!(desc.ptime_ms, None);
}

#[test]
fn parses_aes67_multicast_with_ttl() {
    let aes67 = "v=0\n\
                 o=- 1311738121 1311738121 IN IP4 192.168.1.1\n\
                 s=Stage left I/O\n\
                 c=IN IP4 239.0.0.1/32\n\
                 t=0 0\n\
                 a=ts-refclk:ptp=IEEE1588-2008:39-a7-94-ff-fe-07-cb-d0:domain-nmbr=5\n\
                 m=audio 5004 RTP/AVP 96\n\
                 i=Channels 1-8\n\
                 a=rtpmap:96 L24/48000/8\n\
                 a=recvonly\n\
                 a=ptime:1\n\
                 a=extmap:3/sendonly urn:ietf:params:rtp-hdrext:ntp-64\n\
                 a=mediaclk:direct=963214424\n";
    let desc = SessionDescription::parse(aes67).unwrap();
    assert_eq!(
        desc,
        SessionDescription {
            session_name: "Stage left I/O".to_owned(),
            session_id: 1_311_738_121,
            origin: "192.168.1.1".parse().unwrap(),
            destination: "239.0.0.1:5004".parse().unwrap(),
            multicast_ttl: Some(32),
            payload_type: 96,
            codec: CodecKind::L24,
            format: format(48_000, 8),
            ptime_ms: Some(1),
            ntp_extension_id: Some(3),
            ptp_reference: Some(PtpReference {
                clock_identity: [0x39, 0xA7, 0x94, 0xFF, 0xFE, 0x07, 0xCB, 0xD0],
                domain: 5,
            }),
            media_clock_offset: Some(963_214_424),
        }
    );
    // TTL plus address count, and a media-level ts-refclk overriding the session one.
    let with_count = aes67.replace("239.0.0.1/32", "239.0.0.1/32/2").replace(
        "a=recvonly",
        "a=ts-refclk:ntp=203.0.113.10\na=ts-refclk:ptp=IEEE1588-2008:00-00-00-00-00-00-00-01:0",
    );
    let desc = SessionDescription::parse(&with_count).unwrap();
    assert_eq!(desc.multicast_ttl, Some(32));
    assert_eq!(
        desc.ptp_reference,
        Some(PtpReference {
            clock_identity: [0, 0, 0, 0, 0, 0, 0, 1],
            domain: 0
        })
    );
    // A non-PTP media-level reference clock hides the session-level PTP one.
    let ntp_only = aes67.replace("a=recvonly", "a=ts-refclk:ntp=203.0.113.10");
    assert_eq!(
        SessionDescription::parse(&ntp_only).unwrap().ptp_reference,
        None
    );
}

#[test]
fn static_payload_types_without_rtpmap() {
    let base = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=x\nc=IN IP4 10.0.0.2\nt=0 0\n";
    let desc = SessionDescription::parse(&format!("{base}m=audio 5004 RTP/AVP 10\n")).unwrap();
    assert_eq!(
        (desc.codec, desc.format),
        (CodecKind::L16, format(44_100, 2))
    );
    let desc = SessionDescription::parse(&format!("{base}m=audio 5004 RTP/AVP 11\n")).unwrap();
    assert_eq!(
        (desc.codec, desc.format),
        (CodecKind::L16, format(44_100, 1))
    );
}

/// A valid SDP as lines, for the error cases to edit.
const BASE: [&str; 11] = [
    "v=0",
    "o=- 7 7 IN IP4 127.0.0.1",
    "s=test",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 5004 RTP/AVP 96",
    "a=rtpmap:96 L16/48000/2",
    "a=ptime:5",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ntp-64",
    "a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0",
    "a=mediaclk:direct=0",
];

/// `BASE` with the line starting `prefix` replaced by `with` (removed when `with` is empty).
fn edit(prefix: &str, with: &str) -> String {
    let mut found = false;
    let mut out = String::new();
    for line in BASE {
        if !found && line.starts_with(prefix) {
            found = true;
            if !with.is_empty() {
                out.push_str(with);
                out.push_str("\r\n");
            }
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    assert!(found, "no line starts with {prefix:?}");
    out
}

fn invalid(field: &'static str) -> impl Fn(&SdpError) -> bool {
    move |e| matches!(e, SdpError::Invalid { field: f, .. } if *f == field)
}

#[test]
fn base_sample_is_valid() {
    let text = BASE.join("\r\n");
    assert!(SessionDescription::parse(&text).is_ok());
}

#[test]
fn every_error_names_its_field() {
    type Check = Box<dyn Fn(&SdpError) -> bool>;
    let missing =
        |field: &'static str| -> Check { Box::new(move |e| *e == SdpError::Missing { field }) };
    let inv = |field: &'static str| -> Check { Box::new(invalid(field)) };
    let unsupported = |name: &'static str| -> Check {
        Box::new(move |e| {
            *e == SdpError::UnsupportedCodec {
                name: name.to_owned(),
            }
        })
    };
    let fmt_err = |source: CodecError| -> Check {
        Box::new(move |e| {
            *e == SdpError::Format {
                field: "a=rtpmap",
                source,
            }
        })
    };
    let cases: Vec<(String, Check, &str)> = vec![
        // v=
        (edit("v=", ""), missing("v="), "v="),
        (edit("v=", "v=1"), inv("v="), "v="),
        (String::new(), missing("v="), "v="),
        (format!("{}v=0\r\n", edit("v=", "v=0")), inv("v="), "v="),
        // o=
        (edit("o=", ""), missing("o="), "o="),
        (edit("o=", "o=- abc 1 IN IP4 127.0.0.1"), inv("o="), "o="),
        (edit("o=", "o=- 1 1 IN IP4 host.example"), inv("o="), "o="),
        (edit("o=", "o=- 1 1 IN IP4 ::1"), inv("o="), "o="),
        (edit("o=", "o=- 1 1 IN IP4"), inv("o="), "o="),
        (
            edit("o=", "o=- 99999999999999999999 1 IN IP4 127.0.0.1"),
            inv("o="),
            "o=",
        ),
        // s=
        (edit("s=", ""), missing("s="), "s="),
        (edit("s=", "s=a\u{7}b"), inv("s="), "s="),
        // c=
        (edit("c=", ""), missing("c="), "c="),
        (edit("c=", "c=IN IP4 999.1.1.1"), inv("c="), "c="),
        (edit("c=", "c=IN IP4 ::1"), inv("c="), "c="),
        (edit("c=", "c=IN IP7 127.0.0.1"), inv("c="), "c="),
        (edit("c=", "c=ATM NSAP 127.0.0.1"), inv("c="), "c="),
        (edit("c=", "c=IN IP4 127.0.0.1/32"), inv("c="), "c="),
        (edit("c=", "c=IN IP4 239.1.1.1/300"), inv("c="), "c="),
        (edit("c=", "c=IN IP4 239.1.1.1/3/x"), inv("c="), "c="),
        (edit("c=", "c=IN IP6 ff0e::1/1/2"), inv("c="), "c="),
        // m=
        (BASE[..5].join("\r\n") + "\r\n", missing("m="), "m="),
        (
            edit("m=", "m=video 5004 RTP/AVP 96"),
            Box::new(|e| *e == SdpError::NotAudio),
            "m=",
        ),
        (edit("m=", "m=audio 50x4 RTP/AVP 96"), inv("m="), "m="),
        (edit("m=", "m=audio 70000 RTP/AVP 96"), inv("m="), "m="),
        (edit("m=", "m=audio -1 RTP/AVP 96"), inv("m="), "m="),
        (edit("m=", "m=audio 0 RTP/AVP 96"), inv("m="), "m="),
        (edit("m=", "m=audio 5004 RTP/AVP abc"), inv("m="), "m="),
        (edit("m=", "m=audio 5004 RTP/AVP 128"), inv("m="), "m="),
        (edit("m=", "m=audio 5004 RTP/AVP"), inv("m="), "m="),
        (edit("m=", "m=audio 5004 RTP/SAVP 96"), inv("m="), "m="),
        (edit("m=", "m=audio 5004"), inv("m="), "m="),
        (
            edit("m=", "m=audio 5004 RTP/AVP 0").replace("rtpmap:96", "rtpmap:0"),
            inv("m="),
            "m=",
        ),
        (
            edit("m=", "m=audio 5004 RTP/AVP 10")
                .replace("rtpmap:96 L16/48000/2", "rtpmap:10 L24/44100/2"),
            inv("m="),
            "m=",
        ),
        // a=rtpmap
        (edit("a=rtpmap", ""), missing("a=rtpmap"), "a=rtpmap"),
        (
            edit("a=rtpmap", "a=rtpmap:97 L16/48000/2"),
            inv("a=rtpmap"),
            "a=rtpmap",
        ),
        (
            edit("a=rtpmap", "a=rtpmap:x L16/48000/2"),
            inv("a=rtpmap"),
            "a=rtpmap",
        ),
        (
            edit("a=rtpmap", "a=rtpmap:96 L16"),
            inv("a=rtpmap"),
            "a=rtpmap",
        ),
        (
            edit("a=rtpmap", "a=rtpmap:96 L16/fast/2"),
            inv("a=rtpmap"),
            "a=rtpmap",
        ),
        (
            edit("a=rtpmap", "a=rtpmap:96 L16/48000/2/1"),
            inv("a=rtpmap"),
            "a=rtpmap",
        ),
        (
            edit("a=rtpmap", "a=rtpmap:96 opus/44100/2"),
            inv("a=rtpmap"),
            "a=rtpmap",
        ),
        (
            edit("a=rtpmap", "a=rtpmap:96 opus/48000/1"),
            inv("a=rtpmap"),
            "a=rtpmap",
        ),
        (
            format!("{}a=rtpmap:96 L24/48000/2\r\n", edit("v=", "v=0")),
            inv("a=rtpmap"),
            "a=rtpmap",
        ),
        // Unsupported codecs
        (
            edit("a=rtpmap", "a=rtpmap:96 PCMU/8000"),
            unsupported("PCMU"),
            "a=rtpmap",
        ),
        (
            edit("m=", "m=audio 5004 RTP/AVP 8").replace("a=rtpmap:96 L16/48000/2\r\n", ""),
            unsupported("PCMA"),
            "a=rtpmap",
        ),
        // Formats AudioFormat refuses
        (
            edit("a=rtpmap", "a=rtpmap:96 L16/8000/2"),
            fmt_err(CodecError::UnsupportedSampleRate { rate: 8000 }),
            "a=rtpmap",
        ),
        (
            edit("a=rtpmap", "a=rtpmap:96 L24/48000/9"),
            fmt_err(CodecError::UnsupportedChannels { channels: 9 }),
            "a=rtpmap",
        ),
        (
            edit("a=rtpmap", "a=rtpmap:96 L24/48000/0"),
            fmt_err(CodecError::UnsupportedChannels { channels: 0 }),
            "a=rtpmap",
        ),
        // a=fmtp
        (
            edit("a=rtpmap", "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=2"),
            inv("a=fmtp"),
            "a=fmtp",
        ),
        (
            edit("a=rtpmap", "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo"),
            inv("a=fmtp"),
            "a=fmtp",
        ),
        (
            edit("a=rtpmap", "a=rtpmap:96 L16/48000/2\r\na=fmtp:98 stereo=1"),
            inv("a=fmtp"),
            "a=fmtp",
        ),
        // a=ptime
        (edit("a=ptime", "a=ptime:0"), inv("a=ptime"), "a=ptime"),
        (edit("a=ptime", "a=ptime:1001"), inv("a=ptime"), "a=ptime"),
        (edit("a=ptime", "a=ptime:2.5"), inv("a=ptime"), "a=ptime"),
        (edit("a=ptime", "a=ptime:"), inv("a=ptime"), "a=ptime"),
        // a=extmap
        (
            edit("a=extmap", "a=extmap:0 urn:ietf:params:rtp-hdrext:ntp-64"),
            inv("a=extmap"),
            "a=extmap",
        ),
        (
            edit("a=extmap", "a=extmap:15 urn:ietf:params:rtp-hdrext:ntp-64"),
            inv("a=extmap"),
            "a=extmap",
        ),
        (
            edit("a=extmap", "a=extmap:x urn:ietf:params:rtp-hdrext:ntp-64"),
            inv("a=extmap"),
            "a=extmap",
        ),
        // a=ts-refclk
        (
            edit("a=ts-refclk", "a=ts-refclk:ptp=IEEE1588-2008:00-11-22:0"),
            inv("a=ts-refclk"),
            "a=ts-refclk",
        ),
        (
            edit(
                "a=ts-refclk",
                "a=ts-refclk:ptp=IEEE1588-2008:GG-1D-C1-FF-FE-12-34-56:0",
            ),
            inv("a=ts-refclk"),
            "a=ts-refclk",
        ),
        (
            edit(
                "a=ts-refclk",
                "a=ts-refclk:ptp=IEEE1588-2008:001-D-C1-FF-FE-12-34-56:0",
            ),
            inv("a=ts-refclk"),
            "a=ts-refclk",
        ),
        (
            edit(
                "a=ts-refclk",
                "a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:256",
            ),
            inv("a=ts-refclk"),
            "a=ts-refclk",
        ),
        (
            edit(
                "a=ts-refclk",
                "a=ts-refclk:ptp=IEEE1588-2002:00-1D-C1-FF-FE-12-34-56:0",
            ),
            inv("a=ts-refclk"),
            "a=ts-refclk",
        ),
        (
            edit("a=ts-refclk", "a=ts-refclk:ptp=IEEE1588-2008:traceable"),
            inv("a=ts-refclk"),
            "a=ts-refclk",
        ),
        // a=mediaclk
        (
            edit("a=mediaclk", "a=mediaclk:sender"),
            inv("a=mediaclk"),
            "a=mediaclk",
        ),
        (
            edit("a=mediaclk", "a=mediaclk:direct=abc"),
            inv("a=mediaclk"),
            "a=mediaclk",
        ),
        (
            edit("a=mediaclk", "a=mediaclk:direct=4294967296"),
            inv("a=mediaclk"),
            "a=mediaclk",
        ),
        (
            edit("a=mediaclk", "a=mediaclk:direct=0 rate=1000/1001"),
            inv("a=mediaclk"),
            "a=mediaclk",
        ),
    ];
    for (text, check, field) in cases {
        let err =
            SessionDescription::parse(&text).expect_err(&format!("should be refused:\n{text}"));
        assert!(check(&err), "wrong error {err:?} for\n{text}");
        let shown = err.to_string();
        assert!(
            shown.contains(field),
            "{shown:?} does not name {field} (text:\n{text})"
        );
    }
}

#[test]
fn size_caps() {
    // Exactly at the limits is read; one byte over is refused.
    let valid = BASE.join("\r\n") + "\r\n";
    let pad_line = format!("a=x-pad:{}", "p".repeat(MAX_LINE_LEN - 8));
    assert_eq!(pad_line.len(), MAX_LINE_LEN);
    let mut text = valid.clone() + &pad_line + "\n";
    assert!(SessionDescription::parse(&text).is_ok());
    while text.len() + pad_line.len() + 2 <= MAX_SDP_LEN {
        text += &pad_line;
        text += "\r\n";
    }
    while text.len() < MAX_SDP_LEN {
        let n = (MAX_SDP_LEN - text.len() - 1).min(100);
        text += &"x".repeat(n);
        text.push('\n');
    }
    assert_eq!(text.len(), MAX_SDP_LEN);
    assert!(SessionDescription::parse(&text).is_ok());

    text.push('x');
    let err = SessionDescription::parse(&text).unwrap_err();
    assert_eq!(
        err,
        SdpError::TooLong {
            len: MAX_SDP_LEN + 1,
            limit: MAX_SDP_LEN
        }
    );
    assert!(err.to_string().contains("65536"), "{err}");

    let long_line = valid + &pad_line + "q\r\n";
    let err = SessionDescription::parse(&long_line).unwrap_err();
    assert_eq!(
        err,
        SdpError::LineTooLong {
            line: BASE.len() + 1,
            len: MAX_LINE_LEN + 1,
            limit: MAX_LINE_LEN
        }
    );
    assert!(
        err.to_string()
            .contains(&format!("line {}", BASE.len() + 1))
    );
}

#[test]
fn validate_refuses_what_cannot_round_trip() {
    let base = full(CodecKind::L16, format(48_000, 2), 5004);
    let bad = [
        (
            SessionDescription {
                session_name: " padded ".to_owned(),
                ..base.clone()
            },
            "s=",
        ),
        (
            SessionDescription {
                session_name: "two\r\nlines".to_owned(),
                ..base.clone()
            },
            "s=",
        ),
        (
            SessionDescription {
                multicast_ttl: Some(4),
                ..base.clone()
            },
            "c=",
        ),
        (
            SessionDescription {
                destination: SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 5004, 0, 3)),
                ..base.clone()
            },
            "c=",
        ),
        (
            SessionDescription {
                payload_type: 128,
                ..base.clone()
            },
            "m=",
        ),
        (
            SessionDescription {
                payload_type: 0,
                ..base.clone()
            },
            "m=",
        ),
        (
            SessionDescription {
                payload_type: 10,
                ..base.clone()
            },
            "m=",
        ),
        (
            SessionDescription {
                destination: "127.0.0.1:0".parse().unwrap(),
                ..base.clone()
            },
            "m=",
        ),
        (
            SessionDescription {
                codec: CodecKind::Opus,
                format: format(44_100, 2),
                ..base.clone()
            },
            "a=rtpmap",
        ),
        (
            SessionDescription {
                codec: CodecKind::Opus,
                format: format(48_000, 6),
                ..base.clone()
            },
            "a=rtpmap",
        ),
        (
            SessionDescription {
                ptime_ms: Some(0),
                ..base.clone()
            },
            "a=ptime",
        ),
        (
            SessionDescription {
                ntp_extension_id: Some(15),
                ..base.clone()
            },
            "a=extmap",
        ),
    ];
    for (desc, field) in bad {
        let err = desc
            .validate()
            .expect_err(&format!("{desc:?} is not valid"));
        assert!(invalid(field)(&err), "{err:?} should name {field}");
        assert!(err.to_string().contains(field), "{err}");
    }
}

/// A small deterministic generator (Knuth's MMIX LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "v=",
    "o=",
    "s=",
    "c=",
    "m=",
    "a=",
    "t=",
    "b=",
    "i=",
    "0",
    "1",
    "2",
    "14",
    "15",
    "96",
    "127",
    "128",
    "255",
    "256",
    "5004",
    "65535",
    "65536",
    "99999999999999999999999",
    "-1",
    "+5",
    " ",
    "  ",
    "\t",
    "/",
    "//",
    ":",
    "::",
    "-",
    "=",
    ";",
    "\r",
    "\n",
    "\r\n",
    "IN",
    "IP4",
    "IP6",
    "127.0.0.1",
    "239.1.2.3",
    "::1",
    "ff0e::1",
    "audio",
    "video",
    "RTP/AVP",
    "rtpmap:",
    "fmtp:",
    "ptime:",
    "extmap:",
    "ts-refclk:",
    "mediaclk:",
    "direct=",
    "ptp=",
    "IEEE1588-2008",
    "00-1D-C1-FF-FE-12-34-56",
    "domain-nmbr=",
    "L16",
    "L24",
    "opus",
    "PCMU",
    "/48000",
    "/44100/2",
    "/2",
    "sprop-stereo=1",
    "stereo=",
    NTP,
    "é",
    "\u{0}",
    "\u{7f}",
    "😀",
    "x",
];
const NTP: &str = "urn:ietf:params:rtp-hdrext:ntp-64";

fn mutate(rng: &mut Lcg, seed: &str) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(6) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if !bytes.is_empty() => {
                let at = at.min(bytes.len() - 1);
                bytes[at] = rng.next() as u8;
            }
            1 => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 | 3 => {
                let token = rng.pick(TOKENS).as_bytes().to_vec();
                bytes.splice(at..at, token);
            }
            4 => {
                // Duplicate a slice somewhere else.
                let start = rng.below(bytes.len());
                let end = (start + rng.below(80)).min(bytes.len());
                let chunk = bytes[start..end].to_vec();
                let to = rng.below(bytes.len() + 1);
                bytes.splice(to..to, chunk);
            }
            5 => {
                // Replace a run of digits or letters with a token.
                let end = (at + rng.below(6)).min(bytes.len());
                let token = rng.pick(TOKENS).as_bytes().to_vec();
                bytes.splice(at..end, token);
            }
            _ => {
                bytes.truncate(at);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random_sdp(rng: &mut Lcg) -> String {
    let mut text = String::new();
    if rng.below(4) != 0 {
        text.push_str("v=0\r\n");
    }
    for _ in 0..rng.below(20) {
        for _ in 0..=rng.below(6) {
            text.push_str(rng.pick(TOKENS));
        }
        text.push_str(if rng.below(2) == 0 { "\r\n" } else { "\n" });
    }
    text
}

/// Whatever parses must be valid and survive a round trip.
fn check_parse(text: &str) {
    if let Ok(desc) = SessionDescription::parse(text) {
        assert_eq!(desc.validate(), Ok(()), "parsed but invalid:\n{text:?}");
        assert_eq!(
            SessionDescription::parse(&desc.to_sdp()),
            Ok(desc),
            "parsed but does not round trip:\n{text:?}"
        );
    }
}

#[test]
fn never_panics_on_random_or_mutated_input() {
    let mut seeds: Vec<String> = vec![BASE.join("\r\n"), BASE.join("\n")];
    for (codec, fmt) in [
        (CodecKind::L16, format(44_100, 1)),
        (CodecKind::L24, format(96_000, 8)),
        (CodecKind::Opus, format(48_000, 2)),
    ] {
        seeds.push(full(codec, fmt, 5004).to_sdp());
        seeds.push(
            SessionDescription {
                destination: "239.1.2.3:5004".parse().unwrap(),
                multicast_ttl: Some(16),
                origin: IpAddr::V6(Ipv6Addr::LOCALHOST),
                ..minimal(codec, fmt, 5004)
            }
            .to_sdp(),
        );
    }
    let mut rng = Lcg(0x005d_91ce_5eed);
    let mut parsed = 0;
    for round in 0..30_000 {
        let text = if round % 4 == 0 {
            random_sdp(&mut rng)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        check_parse(&text);
        parsed += usize::from(SessionDescription::parse(&text).is_ok());
    }
    // The mutations leave some inputs valid, so the round-trip check above did run.
    assert!(parsed > 100, "only {parsed} inputs parsed");

    // Large and degenerate inputs.
    for text in [
        "\n".repeat(MAX_SDP_LEN),
        "v=0\n".repeat(MAX_SDP_LEN / 4),
        "=".repeat(MAX_LINE_LEN),
        "v=0\r\na=".to_owned() + &":".repeat(MAX_LINE_LEN - 2),
        "\r".repeat(1000),
        "é".repeat(MAX_LINE_LEN),
    ] {
        check_parse(&text);
    }
}

/// Runs ffmpeg on `desc` (which must point at 127.0.0.1), feeding it RTP packets of silence
/// from `payload`, and returns whether it exited successfully (`None` if it had to be
/// killed) and its stderr. Kills ffmpeg after 3 s.
fn run_ffmpeg(desc: &SessionDescription, payload: Vec<u8>, ts_step: u32) -> (Option<bool>, String) {
    let path = std::env::temp_dir().join(format!(
        "lockstep-sdp-{}-{}.sdp",
        std::process::id(),
        desc.destination.port()
    ));
    std::fs::write(&path, desc.to_sdp()).expect("write the SDP file");

    let mut child = match Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-protocol_whitelist",
            "file,udp,rtp",
            "-i",
        ])
        .arg(&path)
        .args(["-t", "0.5", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run ffmpeg ({e}): this test needs ffmpeg on PATH (e.g. apt-get install ffmpeg)"
        ),
    };
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // Feed RTP packets so that ffmpeg finds the stream, decodes it and exits on its own.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = Arc::clone(&stop);
        let dest = desc.destination;
        let pt = desc.payload_type;
        thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
            let mut seq: u16 = 0;
            let mut ts: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut packet = vec![0x80, pt | if seq == 0 { 0x80 } else { 0 }];
                packet.extend_from_slice(&seq.to_be_bytes());
                packet.extend_from_slice(&ts.to_be_bytes());
                packet.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                packet.extend_from_slice(&payload);
                // Packets sent before ffmpeg listens are refused; that is fine.
                let _ = socket.send_to(&packet, dest);
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(ts_step);
                thread::sleep(Duration::from_millis(1));
            }
        })
    };

    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status.success()),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender thread");
    let text = reader.join().expect("stderr reader thread");
    let _ = std::fs::remove_file(&path);
    (status, text)
}

#[test]
#[ignore = "runs ffmpeg; use `cargo test --test media_sdp -- --ignored`"]
fn ffmpeg_parses_our_sdp() {
    // Opus: a 20 ms CELT packet of digital silence (TOC 0xFC: config 31, stereo, 1 frame).
    let cases = [
        (
            full(CodecKind::L16, format(48_000, 2), 5104),
            vec![0u8; 240 * 4],
            240,
            "Audio: pcm_s16be, 48000 Hz, stereo",
        ),
        (
            SessionDescription {
                payload_type: 98,
                ..full(CodecKind::L24, format(48_000, 2), 5106)
            },
            vec![0u8; 240 * 6],
            240,
            "Audio: pcm_s24be, 48000 Hz, stereo",
        ),
        (
            SessionDescription {
                payload_type: 111,
                ..full(CodecKind::Opus, format(48_000, 2), 5108)
            },
            vec![0xFC, 0xFF, 0xFE],
            960,
            "Audio: opus, 48000 Hz, stereo",
        ),
        (
            SessionDescription {
                payload_type: 11,
                ..minimal(CodecKind::L16, format(44_100, 1), 5110)
            },
            vec![0u8; 441 * 2],
            441,
            "Audio: pcm_s16be, 44100 Hz, mono",
        ),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(desc, payload, step, want)| {
            thread::spawn(move || {
                let (status, stderr) = run_ffmpeg(&desc, payload, step);
                (desc.to_sdp(), status, stderr, want)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for run in runs {
        let (sdp, status, stderr, want) =
            run.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let stream_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("Stream #")).collect();
        println!("--- {want}\n{sdp}{}", stream_lines.join("\n"));
        if !stderr.contains(want) {
            failures.push(format!(
                "ffmpeg did not report {want:?} for\n{sdp}\nstderr:\n{stderr}"
            ));
        } else if status != Some(true) || !stderr.contains("time=00:00:00.50") {
            // It read the description but did not decode the 0.5 s of silence we sent.
            failures.push(format!(
                "ffmpeg read but did not decode the stream (exit: {status:?}) for\n{sdp}\n\
                 stderr:\n{stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
#[ignore = "runs ffmpeg; use `cargo test --test media_sdp -- --ignored`"]
fn we_parse_ffmpeg_sdp_files() {
    let cases: [(&[&str], CodecKind, AudioFormat); 4] = [
        (
            &["pcm_s16be", "-ar", "48000", "-ac", "2"],
            CodecKind::L16,
            format(48_000, 2),
        ),
        (
            &["pcm_s24be", "-ar", "96000", "-ac", "2"],
            CodecKind::L24,
            format(96_000, 2),
        ),
        (
            &["pcm_s16be", "-ar", "44100", "-ac", "1"],
            CodecKind::L16,
            format(44_100, 1),
        ),
        (
            &["libopus", "-ar", "48000", "-ac", "2"],
            CodecKind::Opus,
            format(48_000, 2),
        ),
    ];
    for (index, (codec_args, codec, fmt)) in cases.into_iter().enumerate() {
        let path = std::env::temp_dir().join(format!(
            "lockstep-ffmpeg-{}-{index}.sdp",
            std::process::id()
        ));
        let output = match Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "sine=duration=0.05", "-c:a"])
            .args(codec_args)
            .args(["-f", "rtp", "-sdp_file"])
            .arg(&path)
            .arg("rtp://127.0.0.1:5112")
            .stdin(Stdio::null())
            .output()
        {
            Ok(output) => output,
            Err(e) => panic!(
                "cannot run ffmpeg ({e}): this test needs ffmpeg on PATH (e.g. apt-get install ffmpeg)"
            ),
        };
        assert!(
            output.status.success(),
            "ffmpeg {codec_args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(&path).expect("ffmpeg wrote the SDP file");
        let _ = std::fs::remove_file(&path);
        let desc = SessionDescription::parse(&text)
            .unwrap_or_else(|e| panic!("{e} for ffmpeg's SDP:\n{text}"));
        assert_eq!((desc.codec, desc.format), (codec, fmt), "{text}");
        assert_eq!(desc.destination, "127.0.0.1:5112".parse().unwrap());
    }
}
