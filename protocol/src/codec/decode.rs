//! Reads frames: [`Frame::decode`] and [`Frame::decode_from_client`].

use alloc::vec::Vec;

use super::{DecodeError, tag};
use crate::ErrorCode;
use crate::frame::{
    Ack, Attach, Cancel, Done, ErrorFrame, Frame, Gather, Hello, Limits, Part, Progress, Reply,
    Request, Welcome, kind,
};

/// The fields of one frame, as read: every known tag's last value, headers in order.
#[derive(Default)]
struct Fields<'a> {
    id: Option<&'a str>,
    /// Every `id` field in order (ACK carries several).
    ids: Vec<&'a str>,
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
    idle_timeout_ms: Option<u32>,
    routing_key: Option<&'a str>,
    max_replies: Option<u32>,
    replier: Option<&'a str>,
    count: Option<u32>,
    resume_token: Option<&'a str>,
    attach: Vec<Attach<'a>>,
    session_grace_ms: Option<u32>,
    heartbeat_ms: Option<u32>,
    acks: bool,
}

fn text<'a>(v: &'a [u8], field: &'static str) -> Result<&'a str, DecodeError> {
    core::str::from_utf8(v).map_err(|_| DecodeError::InvalidUtf8(field))
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
/// `timeout_ms:u32 idle_timeout_ms:u32 (0 = none) id_len:u8 id destination`.
fn attach(v: &[u8]) -> Result<Attach<'_>, DecodeError> {
    let Some((&id_len, rest)) = v.get(8..).and_then(<[u8]>::split_first) else {
        return Err(DecodeError::Truncated(tag::ATTACH));
    };
    let Some((id, dest)) = rest.split_at_checked(usize::from(id_len)) else {
        return Err(DecodeError::Truncated(tag::ATTACH));
    };
    let idle = be_u32(&v[4..8], "attach idle_timeout_ms")?;
    Ok(Attach {
        id: text(id, "attach id")?,
        timeout_ms: be_u32(&v[..4], "attach timeout_ms")?,
        idle_timeout_ms: (idle != 0).then_some(idle),
        destination: text(dest, "attach destination")?,
    })
}

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
            tag::ID => {
                let id = text(v, "id")?;
                f.id = Some(id);
                f.ids.push(id);
            }
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
            tag::IDLE_TIMEOUT_MS => f.idle_timeout_ms = Some(be_u32(v, "idle_timeout_ms")?),
            tag::ROUTING_KEY => f.routing_key = Some(text(v, "routing_key")?),
            tag::MAX_REPLIES => f.max_replies = Some(be_u32(v, "max_replies")?),
            tag::REPLIER => f.replier = Some(text(v, "replier")?),
            tag::COUNT => f.count = Some(be_u32(v, "count")?),
            tag::RESUME_TOKEN => f.resume_token = Some(text(v, "resume_token")?),
            tag::ATTACH => f.attach.push(attach(v)?),
            tag::SESSION_GRACE_MS => f.session_grace_ms = Some(be_u32(v, "session_grace_ms")?),
            tag::HEARTBEAT_MS => f.heartbeat_ms = Some(be_u32(v, "heartbeat_ms")?),
            tag::ACKS => f.acks = v.first().is_some_and(|b| *b != 0),
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
                resume_token: f.resume_token,
                attach: f.attach,
                acks: f.acks,
            }),
            kind::REQUEST => Frame::Request(Request {
                id: required(f.id, name, "id")?,
                destination: required(f.destination, name, "destination")?,
                content_type: f.content_type,
                timeout_ms: f.timeout_ms,
                idle_timeout_ms: f.idle_timeout_ms,
                headers: f.headers,
                body,
            }),
            kind::CANCEL => Frame::Cancel(Cancel {
                id: required(f.id, name, "id")?,
            }),
            kind::GATHER => Frame::Gather(Gather {
                id: required(f.id, name, "id")?,
                destination: required(f.destination, name, "destination")?,
                routing_key: f.routing_key,
                content_type: f.content_type,
                timeout_ms: f.timeout_ms,
                max_replies: f.max_replies,
                headers: f.headers,
                body,
            }),
            kind::ACK => Frame::Ack(Ack { ids: f.ids }),
            kind::WELCOME => Frame::Welcome(Welcome {
                session: required(f.session, name, "session")?,
                resumed: f.resumed.unwrap_or(false),
                limits: Limits {
                    max_frame_bytes: required(f.max_frame_bytes, name, "max_frame_bytes")?,
                    max_inflight: required(f.max_inflight, name, "max_inflight")?,
                    default_timeout_ms: required(f.default_timeout_ms, name, "default_timeout_ms")?,
                    max_timeout_ms: required(f.max_timeout_ms, name, "max_timeout_ms")?,
                    session_grace_ms: f.session_grace_ms.unwrap_or(0),
                    heartbeat_ms: f.heartbeat_ms.unwrap_or(0),
                },
                resume_token: f.resume_token,
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
            kind::PART => Frame::Part(Part {
                id: required(f.id, name, "id")?,
                replier: f.replier,
                content_type: f.content_type,
                remote_code: f.remote_code,
                message: f.message,
                body,
            }),
            kind::HEARTBEAT => Frame::Heartbeat,
            kind::DONE => Frame::Done(Done {
                id: required(f.id, name, "id")?,
                count: f.count.unwrap_or(0),
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
