//! SDP session descriptions (RFC 8866) for one lockstep audio stream, with the RFC 7273
//! reference-clock signalling that AES67 uses.
//!
//! A [`SessionDescription`] describes one RTP audio stream: where it goes, which codec and
//! format it carries, and optionally how its RTP timestamps relate to a PTP grandmaster
//! (`a=ts-refclk`, `a=mediaclk`) and which RTP header extension carries RFC 6051 NTP
//! timestamps (`a=extmap`). [`SessionDescription::to_sdp`] writes it;
//! [`SessionDescription::parse`] reads it back, and also reads what ffmpeg (`-sdp_file`)
//! and GStreamer write.
//!
//! # What is written
//!
//! For an L16 48 kHz stereo stream to 127.0.0.1:5004 with every optional field set:
//!
//! ```text
//! v=0
//! o=- 42 42 IN IP4 127.0.0.1
//! s=lockstep
//! c=IN IP4 127.0.0.1
//! t=0 0
//! m=audio 5004 RTP/AVP 96
//! a=rtpmap:96 L16/48000/2
//! a=ptime:5
//! a=extmap:1 urn:ietf:params:rtp-hdrext:ntp-64
//! a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0
//! a=mediaclk:direct=0
//! a=sendonly
//! ```
//!
//! Lines end in CRLF. The `a=rtpmap` of L16 and L24 always carries the channel count, also
//! `/1` for mono (RFC 3551 lets it be omitted for one channel; ffmpeg and GStreamer accept
//! both). Opus is always `opus/48000/2` (RFC 7587) followed by
//! `a=fmtp:<pt> sprop-stereo=<0|1>; stereo=<0|1>; useinbandfec=1`, both flags 1 for a stereo
//! stream and 0 for a mono one.
//!
//! # What is read
//!
//! [`SessionDescription::parse`] takes LF or CRLF line endings and:
//!
//! - needs `v=0` as the first line, then one `o=` (numeric session id, IP address), one
//!   `s=` (trimmed; `s= ` reads as an empty name) and a `c=` at session or media level
//!   (media level wins; a `/ttl` is read for IPv4 multicast, a trailing address count is
//!   ignored);
//! - uses the first `m=audio` section only, and in it the first payload type of the `m=`
//!   line; other media sections, `t=`, `b=`, `i=`, direction attributes and unknown
//!   attributes are ignored, as are `a=rtpmap`/`a=fmtp` of the other payload types listed on
//!   the `m=` line (but an `a=rtpmap` or `a=fmtp` naming a payload type that is not on the
//!   `m=` line is refused);
//! - without an `a=rtpmap`, reads static payload type 10 as L16/44100/2 and 11 as
//!   L16/44100/1; other static types name their RFC 3551 codec in
//!   [`SdpError::UnsupportedCodec`];
//! - maps Opus (`opus/48000/2`) to 2 channels when the `a=fmtp` has `sprop-stereo=1` or
//!   `stereo=1`, and to 1 channel otherwise (also when there is no `a=fmtp`);
//! - takes `a=extmap`, `a=ts-refclk` and `a=mediaclk` at media level, or at session level
//!   when the media section has none. Only the `ntp-64` extension is read; other
//!   extensions are ignored. Of the `ts-refclk` sources only the first `ptp=` one is read
//!   (`IEEE1588-2008` or `IEEE1588-2019`, with a grandmaster identity; the domain may be
//!   a bare number or `domain-nmbr=N` and defaults to 0); `ntp=`, `local` and the like
//!   leave [`SessionDescription::ptp_reference`] empty.
//!
//! Everything it reads is checked: a missing or malformed field is refused with an
//! [`SdpError`] naming it, and the result passes [`SessionDescription::validate`]. Input
//! over [`MAX_SDP_LEN`] bytes or with a line over [`MAX_LINE_LEN`] bytes is refused before
//! anything else. No input makes it panic.
//!
//! For every description that passes [`SessionDescription::validate`],
//! `SessionDescription::parse(&d.to_sdp()) == Ok(d)`.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

use super::codec::{AudioFormat, CodecError, CodecKind};

/// The longest SDP text [`SessionDescription::parse`] reads, in bytes (64 KiB).
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// The longest line [`SessionDescription::parse`] reads, in bytes, without its line ending
/// (4 KiB).
pub const MAX_LINE_LEN: usize = 4 * 1024;

/// The URI of the RFC 6051 RTP header extension carrying a 64-bit NTP timestamp.
pub const NTP_64_URI: &str = "urn:ietf:params:rtp-hdrext:ntp-64";

/// The longest value excerpt an [`SdpError::Invalid`] keeps, in bytes.
const MAX_ERROR_VALUE: usize = 256;

/// The PTP grandmaster that a stream's media clock is locked to (RFC 7273 `a=ts-refclk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PtpReference {
    /// The grandmaster's 8-byte clock identity (an EUI-64), written as eight upper-case hex
    /// bytes joined by `-`.
    pub clock_identity: [u8; 8],
    /// The PTP domain number.
    pub domain: u8,
}

/// One RTP audio stream, as described in SDP.
///
/// The fields are public; [`validate`](SessionDescription::validate) says whether a
/// description can be written and read back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionDescription {
    /// The session name (`s=`). Written as `s= ` when empty.
    pub session_name: String,
    /// The session id, written as both the `o=` session id and version.
    pub session_id: u64,
    /// The originator's unicast address (`o=`).
    pub origin: IpAddr,
    /// Where the RTP packets go: the `c=` address and the `m=` port.
    pub destination: SocketAddr,
    /// The multicast TTL (`c=IN IP4 239.x.y.z/<ttl>`); only for an IPv4 multicast
    /// destination.
    pub multicast_ttl: Option<u8>,
    /// The RTP payload type: dynamic 96..=127, or static 10 (L16/44100/2) or 11
    /// (L16/44100/1).
    pub payload_type: u8,
    /// The codec (`a=rtpmap` encoding name).
    pub codec: CodecKind,
    /// The sample rate and channel count. For Opus: 48 kHz and 1 or 2 channels.
    pub format: AudioFormat,
    /// The packet duration in milliseconds (`a=ptime`), 1..=1000.
    pub ptime_ms: Option<u32>,
    /// The RTP header extension id (1..=14) of the RFC 6051 64-bit NTP timestamp
    /// (`a=extmap:<id> urn:ietf:params:rtp-hdrext:ntp-64`).
    pub ntp_extension_id: Option<u8>,
    /// The PTP grandmaster the media clock follows
    /// (`a=ts-refclk:ptp=IEEE1588-2008:<clock identity>:<domain>`).
    pub ptp_reference: Option<PtpReference>,
    /// The RTP timestamp at the PTP epoch, modulo 2³² (`a=mediaclk:direct=<offset>`,
    /// RFC 7273).
    pub media_clock_offset: Option<u32>,
}

/// Why an SDP text could not be read, or a description cannot be written faithfully.
///
/// Every variant's message names the SDP field at fault (`c=`, `m=`, `a=rtpmap`, …).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The text is longer than [`MAX_SDP_LEN`].
    #[error("SDP text of {len} bytes is over the {limit}-byte limit")]
    TooLong {
        /// The text's length in bytes.
        len: usize,
        /// The limit, [`MAX_SDP_LEN`].
        limit: usize,
    },
    /// A line is longer than [`MAX_LINE_LEN`].
    #[error("SDP line {line} of {len} bytes is over the {limit}-byte line limit")]
    LineTooLong {
        /// The line number, from 1.
        line: usize,
        /// The line's length in bytes, without its line ending.
        len: usize,
        /// The limit, [`MAX_LINE_LEN`].
        limit: usize,
    },
    /// A required field is absent.
    #[error("missing SDP field {field}")]
    Missing {
        /// The field: `v=`, `o=`, `s=`, `c=`, `m=` or `a=rtpmap`.
        field: &'static str,
    },
    /// A field is malformed or out of range.
    #[error("invalid SDP field {field} {value:?}: {reason}")]
    Invalid {
        /// The field, such as `m=` or `a=ptime`.
        field: &'static str,
        /// The offending value (cut to 256 bytes).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The codec named by `a=rtpmap` (or by a static payload type) is not L16, L24 or Opus.
    #[error("SDP field a=rtpmap names unsupported codec {name:?} (supported: L16, L24, opus)")]
    UnsupportedCodec {
        /// The encoding name, as written.
        name: String,
    },
    /// The sample rate or channel count is one [`AudioFormat`] refuses.
    #[error("SDP field {field}: {source}")]
    Format {
        /// The field that carried the format: `a=rtpmap` (or `m=` for a static payload
        /// type).
        field: &'static str,
        /// Why the format was refused.
        source: CodecError,
    },
    /// There are media sections, but none is `m=audio`.
    #[error("SDP field m=: no m=audio section")]
    NotAudio,
}

impl SdpError {
    fn invalid(field: &'static str, value: &str, reason: &'static str) -> SdpError {
        SdpError::Invalid {
            field,
            value: excerpt(value),
            reason,
        }
    }
}

/// `value`, cut at a character boundary to at most [`MAX_ERROR_VALUE`] bytes.
fn excerpt(value: &str) -> String {
    if value.len() <= MAX_ERROR_VALUE {
        return value.to_owned();
    }
    let mut end = MAX_ERROR_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

/// The `a=rtpmap` encoding name of `codec`.
fn encoding_name(codec: CodecKind) -> &'static str {
    match codec {
        CodecKind::L16 => "L16",
        CodecKind::L24 => "L24",
        CodecKind::Opus => "opus",
    }
}

/// Appends `args` and a CRLF to `out`.
fn push_line(out: &mut String, args: fmt::Arguments<'_>) {
    // Writing to a String cannot fail.
    let _ = out.write_fmt(args);
    out.push_str("\r\n");
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

impl SessionDescription {
    /// Writes the description as SDP text with CRLF line endings (see the
    /// [module docs](self) for the layout).
    ///
    /// It writes whatever the fields hold; [`validate`](SessionDescription::validate) first
    /// if the text must read back to the same description. A `multicast_ttl` is written only
    /// for an IPv4 destination, and control characters in the session name are written as
    /// spaces.
    pub fn to_sdp(&self) -> String {
        let mut out = String::with_capacity(512);
        let origin = self.origin;
        let dest = self.destination.ip();
        let pt = self.payload_type;
        let id = self.session_id;

        push_line(&mut out, format_args!("v=0"));
        push_line(
            &mut out,
            format_args!("o=- {id} {id} IN {} {origin}", addr_type(origin)),
        );
        let name: String = self
            .session_name
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let name = if name.is_empty() { " " } else { name.as_str() };
        push_line(&mut out, format_args!("s={name}"));
        match (dest, self.multicast_ttl) {
            (IpAddr::V4(_), Some(ttl)) => {
                push_line(&mut out, format_args!("c=IN IP4 {dest}/{ttl}"))
            }
            _ => push_line(&mut out, format_args!("c=IN {} {dest}", addr_type(dest))),
        }
        push_line(&mut out, format_args!("t=0 0"));
        push_line(
            &mut out,
            format_args!("m=audio {} RTP/AVP {pt}", self.destination.port()),
        );
        let rate = self.format.sample_rate();
        let channels = self.format.channels();
        match self.codec {
            CodecKind::L16 | CodecKind::L24 => push_line(
                &mut out,
                format_args!(
                    "a=rtpmap:{pt} {}/{rate}/{channels}",
                    encoding_name(self.codec)
                ),
            ),
            CodecKind::Opus => {
                let stereo = u8::from(channels >= 2);
                push_line(&mut out, format_args!("a=rtpmap:{pt} opus/48000/2"));
                push_line(
                    &mut out,
                    format_args!(
                        "a=fmtp:{pt} sprop-stereo={stereo}; stereo={stereo}; useinbandfec=1"
                    ),
                );
            }
        }
        if let Some(ptime) = self.ptime_ms {
            push_line(&mut out, format_args!("a=ptime:{ptime}"));
        }
        if let Some(ext) = self.ntp_extension_id {
            push_line(&mut out, format_args!("a=extmap:{ext} {NTP_64_URI}"));
        }
        if let Some(ptp) = self.ptp_reference {
            let id = ptp.clock_identity;
            push_line(
                &mut out,
                format_args!(
                    "a=ts-refclk:ptp=IEEE1588-2008:{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}:{}",
                    id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], ptp.domain
                ),
            );
        }
        if let Some(offset) = self.media_clock_offset {
            push_line(&mut out, format_args!("a=mediaclk:direct={offset}"));
        }
        push_line(&mut out, format_args!("a=sendonly"));
        out
    }

    /// Checks that the description can be written by [`to_sdp`](SessionDescription::to_sdp)
    /// and read back by [`parse`](SessionDescription::parse) unchanged.
    ///
    /// It refuses, naming the field: a session name with control characters, leading or
    /// trailing whitespace, or too long for one line (`s=`); an IPv6 destination with a flow
    /// label or scope id, or a TTL on anything but an IPv4 multicast destination (`c=`);
    /// port 0, a payload type above 127, or a static payload type other than 10
    /// (L16/44100/2) and 11 (L16/44100/1) (`m=`); Opus at a rate other than 48 kHz or with
    /// more than 2 channels (`a=rtpmap`); a packet time of 0 or over 1000 ms (`a=ptime`);
    /// an extension id outside 1..=14 (`a=extmap`).
    pub fn validate(&self) -> Result<(), SdpError> {
        let name = self.session_name.as_str();
        if name.chars().any(char::is_control) {
            return Err(SdpError::invalid(
                "s=",
                name,
                "the session name contains a control character",
            ));
        }
        if name.trim() != name {
            return Err(SdpError::invalid(
                "s=",
                name,
                "the session name has leading or trailing whitespace",
            ));
        }
        if name.len() + 2 > MAX_LINE_LEN {
            return Err(SdpError::invalid(
                "s=",
                name,
                "the session name does not fit in one SDP line",
            ));
        }
        if let SocketAddr::V6(v6) = self.destination
            && (v6.flowinfo() != 0 || v6.scope_id() != 0)
        {
            return Err(SdpError::invalid(
                "c=",
                &self.destination.to_string(),
                "an IPv6 flow label or scope id cannot be carried in SDP",
            ));
        }
        if let Some(ttl) = self.multicast_ttl {
            let multicast_v4 = matches!(self.destination.ip(), IpAddr::V4(a) if a.is_multicast());
            if !multicast_v4 {
                return Err(SdpError::invalid(
                    "c=",
                    &format!("{}/{ttl}", self.destination.ip()),
                    "a TTL is allowed only on an IPv4 multicast address",
                ));
            }
        }
        if self.destination.port() == 0 {
            return Err(SdpError::invalid(
                "m=",
                "0",
                "port 0 marks a disabled stream",
            ));
        }
        self.validate_payload_type()?;
        if self.codec == CodecKind::Opus
            && (self.format.sample_rate() != 48_000 || self.format.channels() > 2)
        {
            return Err(SdpError::invalid(
                "a=rtpmap",
                &format!(
                    "opus/{}/{}",
                    self.format.sample_rate(),
                    self.format.channels()
                ),
                "Opus streams run at 48000 Hz with 1 or 2 channels",
            ));
        }
        if let Some(ptime) = self.ptime_ms
            && !(1..=1000).contains(&ptime)
        {
            return Err(SdpError::invalid(
                "a=ptime",
                &ptime.to_string(),
                "the packet time must be 1 to 1000 ms",
            ));
        }
        if let Some(id) = self.ntp_extension_id
            && !(1..=14).contains(&id)
        {
            return Err(SdpError::invalid(
                "a=extmap",
                &id.to_string(),
                "the extension id must be 1 to 14",
            ));
        }
        Ok(())
    }

    fn validate_payload_type(&self) -> Result<(), SdpError> {
        let pt = self.payload_type;
        let is = |channels: u16| {
            self.codec == CodecKind::L16
                && self.format.sample_rate() == 44_100
                && self.format.channels() == channels
        };
        let reason = match pt {
            96..=127 => return Ok(()),
            128.. => "the payload type is above 127",
            10 if is(2) => return Ok(()),
            11 if is(1) => return Ok(()),
            10 => "static payload type 10 is L16/44100/2",
            11 => "static payload type 11 is L16/44100/1",
            _ => "only static payload types 10 and 11 are lockstep formats; use 96 to 127",
        };
        Err(SdpError::invalid("m=", &pt.to_string(), reason))
    }

    /// Reads an SDP text (LF or CRLF line endings) into a description; see the
    /// [module docs](self) for what it accepts.
    ///
    /// Refuses text over [`MAX_SDP_LEN`] bytes or with a line over [`MAX_LINE_LEN`] bytes,
    /// and every missing or malformed field with an [`SdpError`] naming it. Never panics.
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        let raw = RawSdp::split(text)?;

        let (origin, session_id) =
            parse_origin(raw.origin.ok_or(SdpError::Missing { field: "o=" })?)?;
        let session_name = raw
            .name
            .ok_or(SdpError::Missing { field: "s=" })?
            .trim()
            .to_owned();
        let media = match raw.audio {
            Some(media) => media,
            None if raw.saw_media => return Err(SdpError::NotAudio),
            None => return Err(SdpError::Missing { field: "m=" }),
        };
        let m = parse_media_line(media.line)?;
        let pt = m.payload_types[0];
        let connection = media
            .connection
            .or(raw.session.connection)
            .ok_or(SdpError::Missing { field: "c=" })?;
        let (ip, multicast_ttl) = parse_connection(connection)?;

        // a=rtpmap and a=fmtp of the chosen payload type.
        let mut rtpmap = None;
        let mut fmtp = None;
        for &(name, value) in &media.attributes {
            let (field, slot) = match name {
                "rtpmap" => ("a=rtpmap", &mut rtpmap),
                "fmtp" => ("a=fmtp", &mut fmtp),
                _ => continue,
            };
            let (pt_text, rest) = split_first_token(value);
            let this_pt = parse_payload_type(field, pt_text)?;
            if !m.payload_types.contains(&this_pt) {
                return Err(SdpError::invalid(
                    field,
                    value,
                    "the payload type is not on the m= line",
                ));
            }
            if this_pt == pt {
                if slot.is_some() {
                    return Err(SdpError::invalid(
                        field,
                        value,
                        "the payload type is described twice",
                    ));
                }
                *slot = Some((value, rest));
            }
        }

        let (codec, format) = match rtpmap {
            Some((value, encoding)) => parse_rtpmap(value, encoding, fmtp)?,
            None => static_payload_type(pt)?,
        };

        let ptime_ms = match media.attribute("ptime") {
            Some(value) => Some(parse_ptime(value)?),
            None => None,
        };

        let ntp_extension_id = match find_ntp_extmap(&media.attributes)? {
            Some(id) => Some(id),
            None => find_ntp_extmap(&raw.session.attributes)?,
        };

        let refclk_section = if media.attribute("ts-refclk").is_some() {
            &media
        } else {
            &raw.session
        };
        let mut ptp_reference = None;
        for value in refclk_section.attributes_named("ts-refclk") {
            if let Some(ptp) = value.strip_prefix("ptp=") {
                ptp_reference = Some(parse_ptp(value, ptp)?);
                break;
            }
        }

        let media_clock_offset = match media
            .attribute("mediaclk")
            .or_else(|| raw.session.attribute("mediaclk"))
        {
            Some(value) => Some(parse_mediaclk(value)?),
            None => None,
        };

        let description = SessionDescription {
            session_name,
            session_id,
            origin,
            destination: SocketAddr::new(ip, m.port),
            multicast_ttl,
            payload_type: pt,
            codec,
            format,
            ptime_ms,
            ntp_extension_id,
            ptp_reference,
            media_clock_offset,
        };
        description.validate()?;
        Ok(description)
    }
}

/// The lines of one section (session level or one media section) that parsing needs.
#[derive(Default)]
struct Section<'a> {
    /// The `m=` value (media sections only).
    line: &'a str,
    /// The first `c=` value.
    connection: Option<&'a str>,
    /// `(name, value)` of each `a=` line, in order; `value` is empty for a flag.
    attributes: Vec<(&'a str, &'a str)>,
}

impl<'a> Section<'a> {
    fn attributes_named(&self, wanted: &'a str) -> impl Iterator<Item = &'a str> + '_ {
        self.attributes
            .iter()
            .filter(move |(name, _)| *name == wanted)
            .map(|&(_, value)| value)
    }

    fn attribute(&self, wanted: &'a str) -> Option<&'a str> {
        self.attributes_named(wanted).next()
    }
}

/// An SDP text cut into the lines parsing needs, still unparsed.
struct RawSdp<'a> {
    origin: Option<&'a str>,
    name: Option<&'a str>,
    session: Section<'a>,
    audio: Option<Section<'a>>,
    saw_media: bool,
}

impl<'a> RawSdp<'a> {
    fn split(text: &'a str) -> Result<RawSdp<'a>, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLong {
                len: text.len(),
                limit: MAX_SDP_LEN,
            });
        }
        #[derive(PartialEq)]
        enum At {
            Start,
            Session,
            Audio,
            OtherMedia,
        }
        let mut raw = RawSdp {
            origin: None,
            name: None,
            session: Section::default(),
            audio: None,
            saw_media: false,
        };
        let mut at = At::Start;
        for (index, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.len() > MAX_LINE_LEN {
                return Err(SdpError::LineTooLong {
                    line: index + 1,
                    len: line.len(),
                    limit: MAX_LINE_LEN,
                });
            }
            if line.trim().is_empty() {
                continue;
            }
            // `<type>=<value>` with a one-letter type; anything else is not an SDP line.
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            let &[kind] = kind.as_bytes() else {
                continue;
            };
            if !kind.is_ascii_alphabetic() {
                continue;
            }
            if at == At::Start {
                if kind != b'v' {
                    return Err(SdpError::Missing { field: "v=" });
                }
                if value.trim() != "0" {
                    return Err(SdpError::invalid("v=", value, "only SDP version 0 exists"));
                }
                at = At::Session;
                continue;
            }
            if kind == b'm' {
                raw.saw_media = true;
                let media_type = value.split_ascii_whitespace().next().unwrap_or("");
                if media_type == "audio" && raw.audio.is_none() {
                    raw.audio = Some(Section {
                        line: value,
                        ..Section::default()
                    });
                    at = At::Audio;
                } else {
                    at = At::OtherMedia;
                }
                continue;
            }
            let section = match at {
                At::Start | At::OtherMedia => continue,
                At::Session => &mut raw.session,
                At::Audio => match raw.audio.as_mut() {
                    Some(audio) => audio,
                    None => continue,
                },
            };
            match kind {
                b'v' => return Err(SdpError::invalid("v=", value, "appears more than once")),
                b'o' | b's' if at == At::Session => {
                    let (slot, field) = if kind == b'o' {
                        (&mut raw.origin, "o=")
                    } else {
                        (&mut raw.name, "s=")
                    };
                    if slot.replace(value).is_some() {
                        return Err(SdpError::invalid(field, value, "appears more than once"));
                    }
                }
                b'c' => {
                    if section.connection.is_none() {
                        section.connection = Some(value);
                    } else if at == At::Session {
                        return Err(SdpError::invalid("c=", value, "appears more than once"));
                    }
                }
                b'a' => {
                    let (name, value) = value.split_once(':').unwrap_or((value, ""));
                    section.attributes.push((name.trim(), value.trim()));
                }
                _ => {}
            }
        }
        if at == At::Start {
            return Err(SdpError::Missing { field: "v=" });
        }
        Ok(raw)
    }
}

/// Parses an all-digit string (no sign, no spaces) as `T`.
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Splits off the first whitespace-separated token: `("96", "L16/48000/2")`.
fn split_first_token(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((first, rest)) => (first, rest.trim()),
        None => (text, ""),
    }
}

fn parse_ip(
    field: &'static str,
    addr_type: &str,
    addr: &str,
    value: &str,
) -> Result<IpAddr, SdpError> {
    match addr_type {
        "IP4" => addr
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| SdpError::invalid(field, value, "not an IPv4 address")),
        "IP6" => addr
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| SdpError::invalid(field, value, "not an IPv6 address")),
        _ => Err(SdpError::invalid(
            field,
            value,
            "the address type must be IP4 or IP6",
        )),
    }
}

/// `o=<username> <sess-id> <sess-version> IN <IP4|IP6> <address>`.
fn parse_origin(value: &str) -> Result<(IpAddr, u64), SdpError> {
    let tokens: Vec<&str> = value.split_ascii_whitespace().collect();
    let &[_user, id, version, net, addr_type, addr] = tokens.as_slice() else {
        return Err(SdpError::invalid(
            "o=",
            value,
            "expected <username> <sess-id> <sess-version> IN <IP4|IP6> <address>",
        ));
    };
    let id = digits::<u64>(id).ok_or_else(|| {
        SdpError::invalid("o=", value, "the session id is not a 64-bit decimal number")
    })?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdpError::invalid(
            "o=",
            value,
            "the session version is not a decimal number",
        ));
    }
    if net != "IN" {
        return Err(SdpError::invalid(
            "o=",
            value,
            "the network type must be IN",
        ));
    }
    Ok((parse_ip("o=", addr_type, addr, value)?, id))
}

/// `c=IN IP4 <address>[/<ttl>[/<count>]]` or `c=IN IP6 <address>[/<count>]`.
fn parse_connection(value: &str) -> Result<(IpAddr, Option<u8>), SdpError> {
    let tokens: Vec<&str> = value.split_ascii_whitespace().collect();
    let &[net, addr_type, addr] = tokens.as_slice() else {
        return Err(SdpError::invalid(
            "c=",
            value,
            "expected IN <IP4|IP6> <address>",
        ));
    };
    if net != "IN" {
        return Err(SdpError::invalid(
            "c=",
            value,
            "the network type must be IN",
        ));
    }
    let mut parts = addr.split('/');
    let ip = parse_ip("c=", addr_type, parts.next().unwrap_or(""), value)?;
    let suffixes: Vec<&str> = parts.collect();
    let ttl =
        match (ip, suffixes.as_slice()) {
            (_, []) => None,
            (IpAddr::V4(_), [ttl] | [ttl, _]) => Some(digits::<u8>(ttl).ok_or_else(|| {
                SdpError::invalid("c=", value, "the TTL is not a number 0 to 255")
            })?),
            (IpAddr::V6(_), [_]) => None,
            _ => {
                return Err(SdpError::invalid(
                    "c=",
                    value,
                    "too many /-separated parts after the address",
                ));
            }
        };
    // The trailing address count, if any, must be a number; its value is not used.
    let count = match (ip, suffixes.as_slice()) {
        (IpAddr::V4(_), [_, count]) | (IpAddr::V6(_), [count]) => Some(*count),
        _ => None,
    };
    if let Some(count) = count
        && digits::<u32>(count).is_none()
    {
        return Err(SdpError::invalid(
            "c=",
            value,
            "the address count is not a number",
        ));
    }
    Ok((ip, ttl))
}

/// The parts of an `m=audio` line that parsing uses.
struct MediaLine {
    port: u16,
    payload_types: Vec<u8>,
}

/// `m=audio <port>[/<count>] RTP/AVP <pt> [<pt>...]`.
fn parse_media_line(value: &str) -> Result<MediaLine, SdpError> {
    let mut tokens = value.split_ascii_whitespace();
    let _audio = tokens.next();
    let (Some(port), Some(proto)) = (tokens.next(), tokens.next()) else {
        return Err(SdpError::invalid(
            "m=",
            value,
            "expected audio <port> RTP/AVP <payload type>",
        ));
    };
    let port_number = port.split_once('/').map_or(port, |(p, _)| p);
    let port_number = digits::<u16>(port_number)
        .ok_or_else(|| SdpError::invalid("m=", value, "the port is not a number 0 to 65535"))?;
    if let Some((_, count)) = port.split_once('/')
        && digits::<u32>(count).is_none()
    {
        return Err(SdpError::invalid(
            "m=",
            value,
            "the port count is not a number",
        ));
    }
    if proto != "RTP/AVP" && proto != "RTP/AVPF" {
        return Err(SdpError::invalid(
            "m=",
            value,
            "the transport must be RTP/AVP or RTP/AVPF",
        ));
    }
    let payload_types = tokens
        .map(|pt| parse_payload_type("m=", pt))
        .collect::<Result<Vec<u8>, SdpError>>()?;
    if payload_types.is_empty() {
        return Err(SdpError::invalid("m=", value, "no payload type is listed"));
    }
    Ok(MediaLine {
        port: port_number,
        payload_types,
    })
}

fn parse_payload_type(field: &'static str, text: &str) -> Result<u8, SdpError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdpError::invalid(
            field,
            text,
            "the payload type is not a number",
        ));
    }
    match digits::<u8>(text) {
        Some(pt) if pt <= 127 => Ok(pt),
        _ => Err(SdpError::invalid(
            field,
            text,
            "the payload type is above 127",
        )),
    }
}

/// The codec and format of a static payload type with no `a=rtpmap` (RFC 3551 table 4).
fn static_payload_type(pt: u8) -> Result<(CodecKind, AudioFormat), SdpError> {
    let channels = match pt {
        10 => 2,
        11 => 1,
        _ => {
            let name = match pt {
                0 => "PCMU",
                3 => "GSM",
                4 => "G723",
                5 | 6 | 16 | 17 => "DVI4",
                7 => "LPC",
                8 => "PCMA",
                9 => "G722",
                12 => "QCELP",
                13 => "CN",
                14 => "MPA",
                15 => "G728",
                18 => "G729",
                _ => return Err(SdpError::Missing { field: "a=rtpmap" }),
            };
            return Err(SdpError::UnsupportedCodec {
                name: name.to_owned(),
            });
        }
    };
    let format = AudioFormat::new(44_100, channels).map_err(|source| SdpError::Format {
        field: "m=",
        source,
    })?;
    Ok((CodecKind::L16, format))
}

/// `a=rtpmap:<pt> <name>/<rate>[/<channels>]`, with the `a=fmtp` of the same payload type
/// (`(whole value, parameters)`) for Opus.
fn parse_rtpmap(
    value: &str,
    encoding: &str,
    fmtp: Option<(&str, &str)>,
) -> Result<(CodecKind, AudioFormat), SdpError> {
    let parts: Vec<&str> = encoding.split('/').collect();
    let (name, rate, channels) = match parts.as_slice() {
        [name, rate] => (*name, *rate, None),
        [name, rate, channels] => (*name, *rate, Some(*channels)),
        _ => {
            return Err(SdpError::invalid(
                "a=rtpmap",
                value,
                "expected <pt> <encoding>/<clock rate>[/<channels>]",
            ));
        }
    };
    if name.is_empty() {
        return Err(SdpError::invalid(
            "a=rtpmap",
            value,
            "the encoding name is empty",
        ));
    }
    let codec = if name.eq_ignore_ascii_case("L16") {
        CodecKind::L16
    } else if name.eq_ignore_ascii_case("L24") {
        CodecKind::L24
    } else if name.eq_ignore_ascii_case("opus") {
        CodecKind::Opus
    } else {
        return Err(SdpError::UnsupportedCodec {
            name: excerpt(name),
        });
    };
    let rate = digits::<u32>(rate)
        .ok_or_else(|| SdpError::invalid("a=rtpmap", value, "the clock rate is not a number"))?;
    let channels = match channels {
        None => None,
        Some(text) => Some(digits::<u16>(text).ok_or_else(|| {
            SdpError::invalid(
                "a=rtpmap",
                value,
                "the channel count is not a number 0 to 65535",
            )
        })?),
    };
    let channels = match codec {
        CodecKind::L16 | CodecKind::L24 => channels.unwrap_or(1),
        CodecKind::Opus => {
            if rate != 48_000 || channels != Some(2) {
                return Err(SdpError::invalid(
                    "a=rtpmap",
                    value,
                    "Opus must be described as opus/48000/2 (RFC 7587)",
                ));
            }
            match fmtp {
                Some((fmtp_value, params)) => opus_channels(fmtp_value, params)?,
                None => 1,
            }
        }
    };
    let format = AudioFormat::new(rate, channels).map_err(|source| SdpError::Format {
        field: "a=rtpmap",
        source,
    })?;
    Ok((codec, format))
}

/// The channel count an Opus `a=fmtp` signals: 2 when `sprop-stereo=1` or `stereo=1`,
/// else 1.
fn opus_channels(value: &str, params: &str) -> Result<u16, SdpError> {
    let mut stereo = false;
    for param in params.split(';') {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let Some((key, flag)) = param.split_once('=') else {
            return Err(SdpError::invalid(
                "a=fmtp",
                value,
                "a parameter is not <name>=<value>",
            ));
        };
        let key = key.trim();
        if key.eq_ignore_ascii_case("sprop-stereo") || key.eq_ignore_ascii_case("stereo") {
            match flag.trim() {
                "0" => {}
                "1" => stereo = true,
                _ => {
                    return Err(SdpError::invalid(
                        "a=fmtp",
                        value,
                        "stereo and sprop-stereo must be 0 or 1",
                    ));
                }
            }
        }
    }
    Ok(if stereo { 2 } else { 1 })
}

/// `a=ptime:<ms>`, a whole number of milliseconds, 1..=1000.
fn parse_ptime(value: &str) -> Result<u32, SdpError> {
    match digits::<u32>(value) {
        Some(ms @ 1..=1000) => Ok(ms),
        Some(_) => Err(SdpError::invalid(
            "a=ptime",
            value,
            "the packet time must be 1 to 1000 ms",
        )),
        None => Err(SdpError::invalid(
            "a=ptime",
            value,
            "the packet time is not a whole number of milliseconds",
        )),
    }
}

/// The id of the first `a=extmap:<id>[/<direction>] urn:ietf:params:rtp-hdrext:ntp-64` in
/// `attributes`; other extensions are skipped.
fn find_ntp_extmap(attributes: &[(&str, &str)]) -> Result<Option<u8>, SdpError> {
    for &(name, value) in attributes {
        if name != "extmap" {
            continue;
        }
        let (id, rest) = split_first_token(value);
        let (uri, _) = split_first_token(rest);
        if uri != NTP_64_URI {
            continue;
        }
        let id = id.split_once('/').map_or(id, |(id, _)| id);
        return match digits::<u8>(id) {
            Some(id @ 1..=14) => Ok(Some(id)),
            _ => Err(SdpError::invalid(
                "a=extmap",
                value,
                "the extension id must be 1 to 14",
            )),
        };
    }
    Ok(None)
}

/// `a=ts-refclk:ptp=<version>:<clock identity>[:<domain>]`; `ptp` is the part after `ptp=`.
fn parse_ptp(value: &str, ptp: &str) -> Result<PtpReference, SdpError> {
    let invalid = |reason| SdpError::invalid("a=ts-refclk", value, reason);
    let parts: Vec<&str> = ptp.split(':').collect();
    let (version, gmid, domain) = match parts.as_slice() {
        [version] => (*version, None, None),
        [version, gmid] => (*version, Some(*gmid), None),
        [version, gmid, domain] => (*version, Some(*gmid), Some(*domain)),
        _ => {
            return Err(invalid(
                "expected ptp=<version>:<clock identity>[:<domain>]",
            ));
        }
    };
    if version != "IEEE1588-2008" && version != "IEEE1588-2019" {
        return Err(invalid(
            "the PTP version must be IEEE1588-2008 or IEEE1588-2019",
        ));
    }
    let gmid = gmid.ok_or_else(|| invalid("no grandmaster clock identity is given"))?;
    let mut clock_identity = [0u8; 8];
    let bytes: Vec<&str> = gmid.split('-').collect();
    if bytes.len() != 8 {
        return Err(invalid(
            "the clock identity must be 8 hex bytes joined by '-'",
        ));
    }
    for (slot, byte) in clock_identity.iter_mut().zip(&bytes) {
        if byte.len() != 2 || !byte.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "the clock identity must be 8 hex bytes joined by '-'",
            ));
        }
        *slot = u8::from_str_radix(byte, 16)
            .map_err(|_| invalid("the clock identity must be 8 hex bytes joined by '-'"))?;
    }
    let domain = match domain {
        None => 0,
        Some(domain) => {
            let number = domain.strip_prefix("domain-nmbr=").unwrap_or(domain);
            digits::<u8>(number)
                .ok_or_else(|| invalid("the PTP domain is not a number 0 to 255"))?
        }
    };
    Ok(PtpReference {
        clock_identity,
        domain,
    })
}

/// `a=mediaclk:direct=<offset>`, the offset fitting in 32 bits.
fn parse_mediaclk(value: &str) -> Result<u32, SdpError> {
    let Some(rest) = value.strip_prefix("direct=") else {
        return Err(SdpError::invalid(
            "a=mediaclk",
            value,
            "only direct=<offset> is supported",
        ));
    };
    let (offset, extra) = split_first_token(rest);
    if !extra.is_empty() {
        return Err(SdpError::invalid(
            "a=mediaclk",
            value,
            "parameters after the offset (such as rate=) are not supported",
        ));
    }
    digits::<u32>(offset).ok_or_else(|| {
        SdpError::invalid(
            "a=mediaclk",
            value,
            "the offset is not a number 0 to 4294967295",
        )
    })
}
