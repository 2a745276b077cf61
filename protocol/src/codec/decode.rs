//! Reads frames: [`Frame::decode`], [`Frame::decode_from_client`] (the bridge's) and
//! [`Frame::decode_from_bridge`] (the client's).
//!
//! One reader serves all three, parameterised by the directions it accepts (`DIRS`): a side
//! that decodes only the other side's frames compiles only their kinds and tags, which keeps
//! the wasm client small.

use alloc::vec::Vec;

use super::{DecodeError, tag};
use crate::ErrorCode;
use crate::frame::{
    Ack, Attach, Auth, Cancel, Done, ErrorFrame, Frame, Gather, Hello, Limits, Part, Progress,
    Reply, Request, Welcome, kind,
};
use crate::validate::{MAX_ACK_IDS, MAX_ATTACH, MAX_HEADERS};

/// Frames a client sends (kinds below `0x80`).
const FROM_CLIENT: u8 = 1;
/// Frames a bridge sends (kinds `0x80` and above).
const FROM_BRIDGE: u8 = 2;
/// Either direction.
const ANY: u8 = FROM_CLIENT | FROM_BRIDGE;

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
    token: Option<&'a str>,
    user: Option<&'a str>,
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

/// An ATTACH value: `timeout_ms:u32 idle_timeout_ms:u32 (0 = none) id_len:u8 id destination`.
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

/// Appends to a repeatable field's list, refusing more than `max` (before allocating more):
/// a 1 MiB message of empty fields would otherwise make a list of ~350,000 entries.
fn push_capped<T>(
    list: &mut Vec<T>,
    item: T,
    max: usize,
    field: &'static str,
) -> Result<(), DecodeError> {
    if list.len() >= max {
        return Err(DecodeError::TooMany(field));
    }
    list.push(item);
    Ok(())
}

/// Reads the field list; returns the fields and the body that follows the end tag. Tags
/// that only frames outside `DIRS` carry are skipped like unknown ones. `id_list`: the kind
/// lists ids (ACK, ACCEPTED), so each `id` also goes to `ids`.
fn read_fields<const DIRS: u8>(
    mut buf: &[u8],
    id_list: bool,
) -> Result<(Fields<'_>, &[u8]), DecodeError> {
    let client = DIRS & FROM_CLIENT != 0;
    let bridge = DIRS & FROM_BRIDGE != 0;
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
            // Both directions.
            tag::ID => {
                let id = text(v, "id")?;
                f.id = Some(id);
                if id_list {
                    push_capped(&mut f.ids, id, MAX_ACK_IDS, "id")?;
                }
            }
            tag::CONTENT_TYPE => f.content_type = Some(text(v, "content_type")?),
            tag::HEADER => push_capped(&mut f.headers, header(v)?, MAX_HEADERS, "header")?,
            tag::RESUME_TOKEN => f.resume_token = Some(text(v, "resume_token")?),
            // Client to bridge.
            tag::DESTINATION if client => f.destination = Some(text(v, "destination")?),
            tag::TIMEOUT_MS if client => f.timeout_ms = Some(be_u32(v, "timeout_ms")?),
            tag::CLIENT if client => f.client = Some(text(v, "client")?),
            tag::RESUME if client => f.resume = Some(text(v, "resume")?),
            tag::IDLE_TIMEOUT_MS if client => {
                f.idle_timeout_ms = Some(be_u32(v, "idle_timeout_ms")?);
            }
            tag::ROUTING_KEY if client => f.routing_key = Some(text(v, "routing_key")?),
            tag::MAX_REPLIES if client => f.max_replies = Some(be_u32(v, "max_replies")?),
            tag::ATTACH if client => push_capped(&mut f.attach, attach(v)?, MAX_ATTACH, "attach")?,
            tag::TOKEN if client => f.token = Some(text(v, "token")?),
            tag::ACKS if client => f.acks = v.first().is_some_and(|b| *b != 0),
            // Bridge to client.
            tag::CODE if bridge => f.code = Some(text(v, "code")?),
            tag::MESSAGE if bridge => f.message = Some(text(v, "message")?),
            tag::SESSION if bridge => f.session = Some(text(v, "session")?),
            tag::REMOTE_CODE if bridge => f.remote_code = Some(text(v, "remote_code")?),
            tag::SERVER if bridge => f.server = Some(text(v, "server")?),
            tag::RESUMED if bridge => f.resumed = Some(v.first().is_some_and(|b| *b != 0)),
            tag::MAX_FRAME_BYTES if bridge => {
                f.max_frame_bytes = Some(be_u32(v, "max_frame_bytes")?);
            }
            tag::MAX_INFLIGHT if bridge => f.max_inflight = Some(be_u32(v, "max_inflight")?),
            tag::DEFAULT_TIMEOUT_MS if bridge => {
                f.default_timeout_ms = Some(be_u32(v, "default_timeout_ms")?);
            }
            tag::MAX_TIMEOUT_MS if bridge => {
                f.max_timeout_ms = Some(be_u32(v, "max_timeout_ms")?);
            }
            tag::REPLIER if bridge => f.replier = Some(text(v, "replier")?),
            tag::COUNT if bridge => f.count = Some(be_u32(v, "count")?),
            tag::SESSION_GRACE_MS if bridge => {
                f.session_grace_ms = Some(be_u32(v, "session_grace_ms")?);
            }
            tag::HEARTBEAT_MS if bridge => f.heartbeat_ms = Some(be_u32(v, "heartbeat_ms")?),
            tag::USER if bridge => f.user = Some(text(v, "user")?),
            _ => {} // unknown tag (or one only the other direction's frames carry): skipped
        }
    }
}

fn required<T>(v: Option<T>, frame: &'static str, field: &'static str) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::MissingField { frame, field })
}

/// Decodes one message of a kind in `DIRS`.
fn decode_in<const DIRS: u8>(buf: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let client = DIRS & FROM_CLIENT != 0;
    let bridge = DIRS & FROM_BRIDGE != 0;
    let (&k, rest) = buf.split_first().ok_or(DecodeError::Empty)?;
    let name = kind::name(k);
    if name == "unknown" {
        return Err(DecodeError::UnknownKind(k));
    }
    let (f, body) = read_fields::<DIRS>(rest, k == kind::ACK || k == kind::ACCEPTED)?;
    Ok(match k {
        kind::HELLO if client => Frame::Hello(Hello {
            client: f.client,
            resume: f.resume,
            resume_token: f.resume_token,
            attach: f.attach,
            acks: f.acks,
            token: f.token,
        }),
        kind::REQUEST if client => Frame::Request(Request {
            id: required(f.id, name, "id")?,
            destination: required(f.destination, name, "destination")?,
            content_type: f.content_type,
            timeout_ms: f.timeout_ms,
            idle_timeout_ms: f.idle_timeout_ms,
            headers: f.headers,
            body,
        }),
        kind::CANCEL if client => Frame::Cancel(Cancel {
            id: required(f.id, name, "id")?,
        }),
        kind::GATHER if client => Frame::Gather(Gather {
            id: required(f.id, name, "id")?,
            destination: required(f.destination, name, "destination")?,
            routing_key: f.routing_key,
            content_type: f.content_type,
            timeout_ms: f.timeout_ms,
            max_replies: f.max_replies,
            headers: f.headers,
            body,
        }),
        kind::ACK if client => Frame::Ack(Ack { ids: f.ids }),
        kind::AUTH if client => Frame::Auth(Auth {
            token: required(f.token, name, "token")?,
        }),
        kind::WELCOME if bridge => Frame::Welcome(Welcome {
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
            user: f.user,
        }),
        kind::REPLY if bridge => Frame::Reply(Reply {
            id: required(f.id, name, "id")?,
            content_type: f.content_type,
            headers: f.headers,
            body,
        }),
        kind::PROGRESS if bridge => Frame::Progress(Progress {
            id: required(f.id, name, "id")?,
            content_type: f.content_type,
            body,
        }),
        kind::PART if bridge => Frame::Part(Part {
            id: required(f.id, name, "id")?,
            replier: f.replier,
            content_type: f.content_type,
            remote_code: f.remote_code,
            message: f.message,
            body,
        }),
        kind::HEARTBEAT if bridge => Frame::Heartbeat,
        kind::ACCEPTED if bridge => Frame::Accepted(Ack { ids: f.ids }),
        kind::DONE if bridge => Frame::Done(Done {
            id: required(f.id, name, "id")?,
            count: f.count.unwrap_or(0),
        }),
        kind::ERROR if bridge => Frame::Error(ErrorFrame {
            id: f.id,
            code: ErrorCode::parse(required(f.code, name, "code")?),
            message: f.message.unwrap_or(""),
            remote_code: f.remote_code,
            content_type: f.content_type,
            details: body,
        }),
        _ if k >= 0x80 => return Err(DecodeError::WrongDirection(name)),
        _ => return Err(DecodeError::NotFromBridge(name)),
    })
}

impl<'a> Frame<'a> {
    /// Decodes one message of either direction. Borrows strings and the body from `buf` (no
    /// copies).
    pub fn decode(buf: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        decode_in::<ANY>(buf)
    }

    /// Decodes a message a client sent: like [`Frame::decode`], but a bridge-to-client kind
    /// is an error ([`DecodeError::WrongDirection`]).
    pub fn decode_from_client(buf: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        decode_in::<FROM_CLIENT>(buf)
    }

    /// Decodes a message a bridge sent: like [`Frame::decode`], but a client-to-bridge kind
    /// is an error ([`DecodeError::NotFromBridge`]).
    pub fn decode_from_bridge(buf: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        decode_in::<FROM_BRIDGE>(buf)
    }
}
