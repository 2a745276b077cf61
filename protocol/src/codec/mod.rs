//! The frame encoding: `kind`, then tagged fields, then a `0x00` end tag, then the body.
//!
//! Layout (see `docs/protocol.md`, "Encoding"): `kind:u8 (tag:u8 len:u16be value[len])* 0x00 body*`.
//! Unknown tags are skipped, so later versions can add fields without breaking this one.
//! `encode` writes frames, `decode` reads them.

mod decode;
mod encode;

use thiserror::Error;

/// Longest field value: its length is a `u16`.
pub(crate) const MAX_FIELD: usize = u16::MAX as usize;

pub mod tag {
    /// Ends the field list; the body follows.
    pub const END: u8 = 0x00;
    /// Correlation id (UTF-8).
    pub const ID: u8 = 0x01;
    /// Destination queue (UTF-8).
    pub const DESTINATION: u8 = 0x02;
    /// Content type of the body (UTF-8).
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Timeout in milliseconds (u32, big-endian).
    pub const TIMEOUT_MS: u8 = 0x04;
    /// One header: `name_len:u8 name value` (both UTF-8). Repeatable.
    pub const HEADER: u8 = 0x05;
    /// Error code (ASCII).
    pub const CODE: u8 = 0x06;
    /// Human-readable message (UTF-8).
    pub const MESSAGE: u8 = 0x07;
    /// Session id (UTF-8).
    pub const SESSION: u8 = 0x08;
    /// Client name and version (UTF-8).
    pub const CLIENT: u8 = 0x09;
    /// The worker's own error code on a `remote` error (UTF-8).
    pub const REMOTE_CODE: u8 = 0x0a;
    /// Limit: max frame bytes (u32).
    pub const MAX_FRAME_BYTES: u8 = 0x0b;
    /// Limit: max in-flight requests (u32).
    pub const MAX_INFLIGHT: u8 = 0x0c;
    /// Limit: default timeout ms (u32).
    pub const DEFAULT_TIMEOUT_MS: u8 = 0x0d;
    /// Limit: max timeout ms (u32).
    pub const MAX_TIMEOUT_MS: u8 = 0x0e;
    /// Server name and version (UTF-8).
    pub const SERVER: u8 = 0x0f;
    /// Session was resumed (u8: 0 or 1).
    pub const RESUMED: u8 = 0x10;
    /// Session id to resume (UTF-8).
    pub const RESUME: u8 = 0x11;
    /// Idle timeout in milliseconds, extended by each progress message (u32).
    pub const IDLE_TIMEOUT_MS: u8 = 0x12;
    /// Routing key of a GATHER (UTF-8).
    pub const ROUTING_KEY: u8 = 0x13;
    /// Most replies a GATHER collects (u32).
    pub const MAX_REPLIES: u8 = 0x14;
    /// Who sent a PART (UTF-8).
    pub const REPLIER: u8 = 0x15;
    /// Number of PARTs a GATHER produced (u32).
    pub const COUNT: u8 = 0x16;
    /// Resume token (UTF-8).
    pub const RESUME_TOKEN: u8 = 0x17;
    /// A request to re-attach on resume: `timeout_ms:u32 idle_timeout_ms:u32 id_len:u8 id
    /// destination` (repeatable; idle 0 = none).
    pub const ATTACH: u8 = 0x18;
    /// Limit: session grace period in milliseconds (u32).
    pub const SESSION_GRACE_MS: u8 = 0x19;
    /// The client will ACK final replies (u8: 0 or 1).
    pub const ACKS: u8 = 0x1a;
    /// Limit: heartbeat interval in milliseconds (u32).
    pub const HEARTBEAT_MS: u8 = 0x1b;
    /// Access token of HELLO and AUTH (UTF-8).
    pub const TOKEN: u8 = 0x1c;
    /// The authenticated user, in WELCOME (UTF-8).
    pub const USER: u8 = 0x1d;
}

/// Why a message is not a valid frame. The `Display` text names the problem and is safe to
/// send back to the client in a `bad_request` error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message has no bytes at all.
    #[error("empty frame")]
    Empty,
    /// The kind byte is not one this version defines.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A kind only the other side may send.
    #[error("a client may not send a {0} frame")]
    WrongDirection(&'static str),
    /// A kind only a client may send, in a message that should come from a bridge.
    #[error("a bridge does not send {0} frames")]
    NotFromBridge(&'static str),
    /// The message ended inside a field or before the end tag.
    #[error("frame truncated in field 0x{0:02x}")]
    Truncated(u8),
    /// The field list never reached the `0x00` end tag.
    #[error("frame has no end tag")]
    NoEndTag,
    /// A required field is absent.
    #[error("{frame} frame is missing its {field} field")]
    MissingField {
        /// The frame kind's name.
        frame: &'static str,
        /// The field's name.
        field: &'static str,
    },
    /// A text field is not UTF-8.
    #[error("field {0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A repeatable field occurs more often than any valid frame needs.
    #[error("too many {0} fields")]
    TooMany(&'static str),
    /// A fixed-size field has the wrong length.
    #[error("field {field} must be {expected} bytes, got {got}")]
    BadLength {
        /// The field's name.
        field: &'static str,
        /// The length the spec gives.
        expected: usize,
        /// The length found.
        got: usize,
    },
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
