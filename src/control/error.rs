//! What can go wrong reading or writing control frames.

use super::message::Refusal;

/// Why a control frame could not be read, decoded or encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The frame does not start with `b"LS"`: not a lockstep peer, or the stream lost sync.
    #[error("bad magic {got:?}, expected \"LS\"")]
    BadMagic {
        /// The first two bytes that came.
        got: [u8; 2],
    },
    /// The frame header carries a protocol version this build does not speak.
    #[error("unsupported protocol version {got}, this build speaks {supported}")]
    UnsupportedVersion {
        /// The version in the header.
        got: u8,
        /// The version this build speaks.
        supported: u8,
    },
    /// The frame header carries a message type code no message has.
    #[error("unknown message type code {code:#04x}")]
    UnknownType {
        /// The code in the header.
        code: u8,
    },
    /// A frame header announces a payload longer than the cap, or an encoded payload would
    /// be longer than it.
    #[error("payload of {len} bytes exceeds the cap of {max}")]
    TooLarge {
        /// The announced (or encoded) payload length.
        len: usize,
        /// The cap, [`MAX_PAYLOAD_LEN`](super::MAX_PAYLOAD_LEN).
        max: usize,
    },
    /// The data ended inside a frame or inside a field of a payload.
    #[error("truncated: needed {needed} bytes, got {got}")]
    Truncated {
        /// Bytes the frame or field needs.
        needed: usize,
        /// Bytes there were.
        got: usize,
    },
    /// A payload field holds a value its type does not allow, or the payload has bytes left
    /// over after its last field.
    #[error("malformed payload: {what}")]
    Malformed {
        /// Which field or rule was broken.
        what: &'static str,
    },
    /// A string field is longer than its cap: on encode, or as announced in a payload.
    #[error("field {field} is {len} bytes long, the cap is {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes (UTF-8).
        len: usize,
        /// Its cap in bytes.
        max: usize,
    },
    /// A sealed frame's tag is wrong: it was injected, replayed, dropped or changed on the
    /// way (see the [`seal`](super::seal) module). The session is over.
    #[error("frame {frame} since the Welcome has a bad tag")]
    BadTag {
        /// Its number in its direction since the Welcome, counted from 0.
        frame: u64,
    },
    /// The underlying reader or writer failed.
    #[error("control channel I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection cleanly, between two frames.
    #[error("the peer closed the control channel")]
    Closed,
}

impl ControlError {
    /// The [`Refusal`] a leader sends back for this error, or `None` when nothing should be
    /// sent because the connection itself is gone (I/O error, peer closed).
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            ControlError::UnsupportedVersion { got, supported } => {
                Some(Refusal::UnsupportedVersion {
                    got: *got,
                    supported: *supported,
                })
            }
            ControlError::BadMagic { .. }
            | ControlError::UnknownType { .. }
            | ControlError::TooLarge { .. }
            | ControlError::Truncated { .. }
            | ControlError::Malformed { .. }
            | ControlError::FieldTooLong { .. }
            | ControlError::BadTag { .. } => Some(Refusal::Malformed),
            ControlError::Io(_) | ControlError::Closed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_errors_map_to_refusals_and_io_to_none() {
        assert_eq!(
            ControlError::UnsupportedVersion {
                got: 2,
                supported: 1
            }
            .refusal(),
            Some(Refusal::UnsupportedVersion {
                got: 2,
                supported: 1
            })
        );
        assert_eq!(
            ControlError::BadMagic { got: *b"GE" }.refusal(),
            Some(Refusal::Malformed)
        );
        assert_eq!(
            ControlError::Malformed { what: "x" }.refusal(),
            Some(Refusal::Malformed)
        );
        assert_eq!(ControlError::Closed.refusal(), None);
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(ControlError::from(io).refusal(), None);
    }
}
