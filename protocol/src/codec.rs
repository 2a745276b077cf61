//! Encodes and decodes frames: `kind`, then tagged fields, then a `0x00` end tag, then the body.
//!
//! Layout (see `docs/protocol.md`, "Encoding"): `kind:u8 (tag:u8 len:u16be value[len])* 0x00 body*`.
//! Unknown tags are skipped, so later versions can add fields without breaking this one.

use thiserror::Error;

use crate::ErrorCode;
use crate::frame::{
    Cancel, ErrorFrame, Frame, Hello, Limits, Progress, Reply, Request, Welcome, kind,
};

/// Field tags. One namespace for all frame kinds; each kind reads the tags it knows.
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

const MAX_FIELD: usize = u16::MAX as usize;

impl Frame<'_> {
    /// Encodes the frame into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.body_len());
        self.encode_into(&mut out);
        out
    }

    fn body_len(&self) -> usize {
        match self {
            Frame::Request(r) => r.body.len(),
            Frame::Reply(r) => r.body.len(),
            Frame::Progress(p) => p.body.len(),
            Frame::Error(e) => e.details.len(),
            _ => 0,
        }
    }

    /// Appends the encoded frame to `out`. Text fields longer than 65,535 bytes are cut at a
    /// character boundary (the decoder and validator keep ids and names far below that).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.kind());
        let mut w = Writer(out);
        let body: &[u8] = match self {
            Frame::Hello(h) => {
                w.opt_str(tag::CLIENT, h.client);
                w.opt_str(tag::RESUME, h.resume);
                &[]
            }
            Frame::Request(r) => {
                w.str(tag::ID, r.id);
                w.str(tag::DESTINATION, r.destination);
                w.opt_str(tag::CONTENT_TYPE, r.content_type);
                if let Some(t) = r.timeout_ms {
                    w.u32(tag::TIMEOUT_MS, t);
                }
                w.headers(&r.headers);
                r.body
            }
            Frame::Cancel(c) => {
                w.str(tag::ID, c.id);
                &[]
            }
            Frame::Welcome(wl) => {
                w.str(tag::SESSION, wl.session);
                w.field(tag::RESUMED, &[u8::from(wl.resumed)]);
                w.u32(tag::MAX_FRAME_BYTES, wl.limits.max_frame_bytes);
                w.u32(tag::MAX_INFLIGHT, wl.limits.max_inflight);
                w.u32(tag::DEFAULT_TIMEOUT_MS, wl.limits.default_timeout_ms);
                w.u32(tag::MAX_TIMEOUT_MS, wl.limits.max_timeout_ms);
                w.opt_str(tag::SERVER, wl.server);
                &[]
            }
            Frame::Reply(r) => {
                w.str(tag::ID, r.id);
                w.opt_str(tag::CONTENT_TYPE, r.content_type);
                w.headers(&r.headers);
                r.body
            }
            Frame::Progress(p) => {
                w.str(tag::ID, p.id);
                w.opt_str(tag::CONTENT_TYPE, p.content_type);
                p.body
            }
            Frame::Error(e) => {
                w.opt_str(tag::ID, e.id);
                w.str(tag::CODE, e.code.as_str());
                w.str(tag::MESSAGE, e.message);
                w.opt_str(tag::REMOTE_CODE, e.remote_code);
                w.opt_str(tag::CONTENT_TYPE, e.content_type);
                e.details
            }
        };
        out.push(tag::END);
        out.extend_from_slice(body);
    }
}

struct Writer<'o>(&'o mut Vec<u8>);

impl Writer<'_> {
    fn field(&mut self, tag: u8, value: &[u8]) {
        let len = value.len().min(MAX_FIELD);
        self.0.push(tag);
        self.0.extend_from_slice(&(len as u16).to_be_bytes());
        self.0.extend_from_slice(&value[..len]);
    }
    fn str(&mut self, tag: u8, s: &str) {
        self.field(tag, truncate(s, MAX_FIELD).as_bytes());
    }
    fn opt_str(&mut self, tag: u8, s: Option<&str>) {
        if let Some(s) = s {
            self.str(tag, s);
        }
    }
    fn u32(&mut self, tag: u8, v: u32) {
        self.field(tag, &v.to_be_bytes());
    }
    fn headers(&mut self, headers: &[(&str, &str)]) {
        for (name, value) in headers {
            let name = truncate(name, u8::MAX as usize);
            let value = truncate(value, MAX_FIELD - 1 - name.len());
            self.0.push(tag::HEADER);
            self.0
                .extend_from_slice(&((1 + name.len() + value.len()) as u16).to_be_bytes());
            self.0.push(name.len() as u8);
            self.0.extend_from_slice(name.as_bytes());
            self.0.extend_from_slice(value.as_bytes());
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The fields of one frame, as read: every known tag's last value, headers in order.
#[derive(Default)]
struct Fields<'a> {
    id: Option<&'a str>,
    destination: Option<&'a str>,
    content_type: Option<&'a str>,
    timeout_ms: Option<u32>,
    headers: Vec<(&'a str, &'a str)>,
    code: Option<&'a str>,
    message: Option<&'a str>,
    session: Option<&'a str>,
    client: Option<&'a str>,
    remote_code: Option<&'a str>,
    server: Option<&'a str>,
    resume: Option<&'a str>,
    resumed: Option<bool>,
    max_frame_bytes: Option<u32>,
    max_inflight: Option<u32>,
    default_timeout_ms: Option<u32>,
    max_timeout_ms: Option<u32>,
}

fn text<'a>(v: &'a [u8], field: &'static str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(v).map_err(|_| DecodeError::InvalidUtf8(field))
}

fn be_u32(v: &[u8], field: &'static str) -> Result<u32, DecodeError> {
    <[u8; 4]>::try_from(v)
        .map(u32::from_be_bytes)
        .map_err(|_| DecodeError::BadLength {
            field,
            expected: 4,
            got: v.len(),
        })
}

fn header(v: &[u8]) -> Result<(&str, &str), DecodeError> {
    let (&name_len, rest) = v.split_first().ok_or(DecodeError::Truncated(tag::HEADER))?;
    let name_len = usize::from(name_len);
    if rest.len() < name_len {
        return Err(DecodeError::Truncated(tag::HEADER));
    }
    let (name, value) = rest.split_at(name_len);
    Ok((text(name, "header name")?, text(value, "header value")?))
}

/// Reads the field list; returns the fields and the body that follows the end tag.
fn read_fields(mut buf: &[u8]) -> Result<(Fields<'_>, &[u8]), DecodeError> {
    let mut f = Fields::default();
    loop {
        let (&tag, rest) = buf.split_first().ok_or(DecodeError::NoEndTag)?;
        if tag == tag::END {
            return Ok((f, rest));
        }
        if rest.len() < 2 {
            return Err(DecodeError::Truncated(tag));
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let rest = &rest[2..];
        if rest.len() < len {
            return Err(DecodeError::Truncated(tag));
        }
        let (v, rest) = rest.split_at(len);
        buf = rest;
        match tag {
            tag::ID => f.id = Some(text(v, "id")?),
            tag::DESTINATION => f.destination = Some(text(v, "destination")?),
            tag::CONTENT_TYPE => f.content_type = Some(text(v, "content_type")?),
            tag::TIMEOUT_MS => f.timeout_ms = Some(be_u32(v, "timeout_ms")?),
            tag::HEADER => f.headers.push(header(v)?),
            tag::CODE => f.code = Some(text(v, "code")?),
            tag::MESSAGE => f.message = Some(text(v, "message")?),
            tag::SESSION => f.session = Some(text(v, "session")?),
            tag::CLIENT => f.client = Some(text(v, "client")?),
            tag::REMOTE_CODE => f.remote_code = Some(text(v, "remote_code")?),
            tag::SERVER => f.server = Some(text(v, "server")?),
            tag::RESUME => f.resume = Some(text(v, "resume")?),
            tag::RESUMED => f.resumed = Some(v.first().is_some_and(|b| *b != 0)),
            tag::MAX_FRAME_BYTES => f.max_frame_bytes = Some(be_u32(v, "max_frame_bytes")?),
            tag::MAX_INFLIGHT => f.max_inflight = Some(be_u32(v, "max_inflight")?),
            tag::DEFAULT_TIMEOUT_MS => {
                f.default_timeout_ms = Some(be_u32(v, "default_timeout_ms")?);
            }
            tag::MAX_TIMEOUT_MS => f.max_timeout_ms = Some(be_u32(v, "max_timeout_ms")?),
            _ => {} // unknown tag: skipped for forward compatibility
        }
    }
}

fn required<T>(v: Option<T>, frame: &'static str, field: &'static str) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::MissingField { frame, field })
}

impl<'a> Frame<'a> {
    /// Decodes one message. Borrows strings and the body from `buf` (no copies).
    pub fn decode(buf: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        let (&k, rest) = buf.split_first().ok_or(DecodeError::Empty)?;
        let name = kind::name(k);
        if name == "unknown" {
            return Err(DecodeError::UnknownKind(k));
        }
        let (f, body) = read_fields(rest)?;
        Ok(match k {
            kind::HELLO => Frame::Hello(Hello {
                client: f.client,
                resume: f.resume,
            }),
            kind::REQUEST => Frame::Request(Request {
                id: required(f.id, name, "id")?,
                destination: required(f.destination, name, "destination")?,
                content_type: f.content_type,
                timeout_ms: f.timeout_ms,
                headers: f.headers,
                body,
            }),
            kind::CANCEL => Frame::Cancel(Cancel {
                id: required(f.id, name, "id")?,
            }),
            kind::WELCOME => Frame::Welcome(Welcome {
                session: required(f.session, name, "session")?,
                resumed: f.resumed.unwrap_or(false),
                limits: Limits {
                    max_frame_bytes: required(f.max_frame_bytes, name, "max_frame_bytes")?,
                    max_inflight: required(f.max_inflight, name, "max_inflight")?,
                    default_timeout_ms: required(f.default_timeout_ms, name, "default_timeout_ms")?,
                    max_timeout_ms: required(f.max_timeout_ms, name, "max_timeout_ms")?,
                },
                server: f.server,
            }),
            kind::REPLY => Frame::Reply(Reply {
                id: required(f.id, name, "id")?,
                content_type: f.content_type,
                headers: f.headers,
                body,
            }),
            kind::PROGRESS => Frame::Progress(Progress {
                id: required(f.id, name, "id")?,
                content_type: f.content_type,
                body,
            }),
            _ => Frame::Error(ErrorFrame {
                id: f.id,
                code: ErrorCode::parse(required(f.code, name, "code")?),
                message: f.message.unwrap_or(""),
                remote_code: f.remote_code,
                content_type: f.content_type,
                details: body,
            }),
        })
    }

    /// Decodes a message a client sent: like [`Frame::decode`], but a bridge-to-client kind
    /// is an error ([`DecodeError::WrongDirection`]).
    pub fn decode_from_client(buf: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        match buf.first() {
            Some(&k) if k >= 0x80 && kind::name(k) != "unknown" => {
                Err(DecodeError::WrongDirection(kind::name(k)))
            }
            _ => Self::decode(buf),
        }
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
