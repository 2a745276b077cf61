//! Rules for the client-chosen parts of a request: ids, destinations, content types, headers.
//!
//! Both ends apply them: the client to fail fast, the bridge because it trusts no client.

use alloc::borrow::ToOwned;
use alloc::string::String;

use thiserror::Error;

use crate::{ErrorCode, headers::RESERVED_PREFIX};

/// Longest correlation id, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest destination, in bytes (AMQP's short-string limit).
pub const MAX_DESTINATION_LEN: usize = 255;
/// Longest header name, in bytes.
pub const MAX_HEADER_NAME_LEN: usize = 64;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 4096;
/// Most headers on one request.
pub const MAX_HEADERS: usize = 32;
/// Most bytes of all a request's header names and values together. AMQP carries them in one
/// content-header frame that cannot be split, and a frame over the broker's `frame_max`
/// (131,072 by default) makes RabbitMQ close the whole connection, which the bridge shares
/// between sessions: this keeps every request far below it, with room for the bridge's own.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Longest content type, in bytes.
pub const MAX_CONTENT_TYPE_LEN: usize = 255;
/// Most ids in one ACK frame.
pub const MAX_ACK_IDS: usize = 4096;
/// Most requests a resuming HELLO may attach.
pub const MAX_ATTACH: usize = 4096;
/// Longest access token, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Destination prefixes a client may never name: RabbitMQ's own, and Ferry's (reply queues,
/// restart markers, the cancel exchange).
pub const RESERVED_DESTINATIONS: [&str; 2] = ["amq.", "ferry."];

/// Header names the broker itself interprets; a client may never set them.
const BROKER_HEADERS: [&str; 8] = [
    "cc",
    "bcc",
    "x-death",
    "x-delay",
    "x-match",
    "x-delivery-count",
    "x-received-from",
    "x-dead-letter-exchange",
];
/// Header name prefixes the broker itself interprets.
const BROKER_PREFIXES: [&str; 3] = ["x-first-death-", "x-last-death-", "x-dead-letter-"];

/// A request field breaks a rule. The `Display` text names the field and the rule; it is
/// [`ValidationError::message`], defined here once for the bridge and the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The correlation id is empty, too long, or has a character outside `!`..=`~`.
    #[error("{}", self.message())]
    Id,
    /// The destination is empty, too long, or has a character outside `[A-Za-z0-9._:-]`.
    #[error("{}", self.message())]
    Destination,
    /// The destination starts with `amq.` (RabbitMQ's) or `ferry.` (the bridge's own queues).
    #[error("{}", self.message())]
    ReservedDestination,
    /// The content type is too long or not printable ASCII.
    #[error("{}", self.message())]
    ContentType,
    /// Too many headers.
    #[error("{}", self.message())]
    TooManyHeaders,
    /// The headers' names and values together are too long.
    #[error("{}", self.message())]
    HeaderBytes(usize),
    /// A header name breaks the syntax rule.
    #[error("{}", self.message())]
    HeaderName(String),
    /// A header name is reserved for Ferry or interpreted by the broker.
    #[error("{}", self.message())]
    ReservedHeader(String),
    /// A gather asked for zero replies.
    #[error("{}", self.message())]
    MaxReplies,
    /// A routing key is too long or not printable ASCII.
    #[error("{}", self.message())]
    RoutingKey,
    /// A header value is too long or has control characters.
    #[error("{}", self.message())]
    HeaderValue(String),
    /// A `traceparent` header that is not W3C Trace Context.
    #[error("{}", self.message())]
    TraceParent,
    /// A client option (named) that must be a positive number is not one.
    #[error("{}", self.message())]
    Positive(&'static str),
    /// A client option (named) that must be a number >= 0 is not one.
    #[error("{}", self.message())]
    NotNegative(&'static str),
    /// The client option `whileReconnecting` is neither `"queue"` nor `"reject"`.
    #[error("{}", self.message())]
    WhileReconnecting,
    /// The client option `reconnect` is neither a boolean nor an object.
    #[error("{}", self.message())]
    Reconnect,
    /// A client's options are not an object (or not what the client can read).
    #[error("{}", self.message())]
    Options,
}

/// A validation message in pieces: fixed text, what the request had (a header's name, a byte
/// count) if the message names it, fixed text. `Display` writes them; a client without
/// `core::fmt` (the wasm) joins them itself. The limits in the texts are the constants above
/// (a test checks each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The text before the subject.
    pub before: &'static str,
    /// What the request had, if the message names it.
    pub subject: Subject<'a>,
    /// The text after the subject.
    pub after: &'static str,
}

/// The part of a [`Message`] that comes from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// The message names nothing from the request.
    None,
    /// A name (in quotes in the text around it).
    Text(&'a str),
    /// A number.
    Number(usize),
}

impl core::fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.before)?;
        match self.subject {
            Subject::None => {}
            Subject::Text(t) => f.write_str(t)?,
            Subject::Number(n) => write!(f, "{n}")?,
        }
        f.write_str(self.after)
    }
}

impl ValidationError {
    /// What went wrong, in words a developer acts on (the one definition of these texts).
    pub fn message(&self) -> Message<'_> {
        let (before, subject, after) = match self {
            Self::Id => (
                "id must be 1 to 128 printable ASCII characters without spaces",
                Subject::None,
                "",
            ),
            Self::Destination => (
                "destination must be 1 to 255 characters from A-Z a-z 0-9 . _ : -",
                Subject::None,
                "",
            ),
            Self::ReservedDestination => (
                "destination may not start with \"amq.\" or \"ferry.\" (reserved)",
                Subject::None,
                "",
            ),
            Self::ContentType => (
                "content type must be at most 255 printable ASCII characters",
                Subject::None,
                "",
            ),
            Self::TooManyHeaders => ("at most 32 headers are allowed", Subject::None, ""),
            Self::HeaderBytes(n) => (
                "headers may total at most 16384 bytes (names and values), got ",
                Subject::Number(*n),
                "",
            ),
            Self::HeaderName(n) => (
                "header name \"",
                Subject::Text(n),
                "\" must be 1 to 64 characters from a-z 0-9 - _",
            ),
            Self::ReservedHeader(n) => (
                "header \"",
                Subject::Text(n),
                "\" is reserved and may not be set by a client",
            ),
            Self::MaxReplies => ("maxReplies must be at least 1", Subject::None, ""),
            Self::RoutingKey => (
                "routing key must be at most 255 printable ASCII characters",
                Subject::None,
                "",
            ),
            Self::HeaderValue(n) => (
                "header \"",
                Subject::Text(n),
                "\" value must be at most 4096 bytes without control characters",
            ),
            Self::Positive(name) => ("", Subject::Text(name), " must be a positive number"),
            Self::NotNegative(name) => ("", Subject::Text(name), " must be a number >= 0"),
            Self::WhileReconnecting => (
                "whileReconnecting must be \"queue\" or \"reject\"",
                Subject::None,
                "",
            ),
            Self::Reconnect => (
                "reconnect must be true, false or an object",
                Subject::None,
                "",
            ),
            Self::Options => (
                "options must be an object of the documented types",
                Subject::None,
                "",
            ),
            Self::TraceParent => (
                "header \"traceparent\" must be a W3C trace context: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lowercase, ids not all zero",
                Subject::None,
                "",
            ),
        };
        Message {
            before,
            subject,
            after,
        }
    }

    /// The wire code: `forbidden` for reserved names, `too_large` for header bytes,
    /// `bad_request` for the rest.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::ReservedDestination | Self::ReservedHeader(_) => ErrorCode::Forbidden,
            Self::HeaderBytes(_) => ErrorCode::TooLarge,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// Checks a correlation id.
pub fn id(id: &str) -> Result<(), ValidationError> {
    let ok = !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(()).ok_or(ValidationError::Id)
}

/// Checks a destination's syntax (the allowlist is the bridge's business).
pub fn destination(dest: &str) -> Result<(), ValidationError> {
    let ok = !dest.is_empty()
        && dest.len() <= MAX_DESTINATION_LEN
        && dest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if !ok {
        return Err(ValidationError::Destination);
    }
    if RESERVED_DESTINATIONS.iter().any(|p| dest.starts_with(p)) {
        return Err(ValidationError::ReservedDestination);
    }
    Ok(())
}

/// Checks a content type.
pub fn content_type(ct: &str) -> Result<(), ValidationError> {
    let ok = ct.len() <= MAX_CONTENT_TYPE_LEN && ct.bytes().all(|b| (0x20..0x7f).contains(&b));
    ok.then_some(()).ok_or(ValidationError::ContentType)
}

/// Checks one header.
pub fn header(name: &str, value: &str) -> Result<(), ValidationError> {
    let syntax = !name.is_empty()
        && name.len() <= MAX_HEADER_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
    if !syntax {
        return Err(ValidationError::HeaderName(name.to_owned()));
    }
    if name.starts_with(RESERVED_PREFIX)
        || BROKER_HEADERS.contains(&name)
        || BROKER_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        return Err(ValidationError::ReservedHeader(name.to_owned()));
    }
    if value.len() > MAX_HEADER_VALUE_LEN || value.chars().any(char::is_control) {
        return Err(ValidationError::HeaderValue(name.to_owned()));
    }
    if name == crate::trace::TRACEPARENT && crate::trace::TraceParent::parse(value).is_none() {
        return Err(ValidationError::TraceParent);
    }
    Ok(())
}

/// Checks every client-chosen field of a request.
pub fn request(req: &crate::Request<'_>) -> Result<(), ValidationError> {
    common(req.id, req.destination, req.content_type, &req.headers)
}

/// Checks every client-chosen field of a gather (the destination is an exchange name, which
/// follows the same rule as a queue name).
pub fn gather(g: &crate::Gather<'_>) -> Result<(), ValidationError> {
    common(g.id, g.destination, g.content_type, &g.headers)?;
    if g.max_replies == Some(0) {
        return Err(ValidationError::MaxReplies);
    }
    match g.routing_key {
        Some(k) if k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(ValidationError::RoutingKey)
        }
        _ => Ok(()),
    }
}

fn common(
    req_id: &str,
    dest: &str,
    ct: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(), ValidationError> {
    id(req_id)?;
    destination(dest)?;
    if let Some(ct) = ct {
        content_type(ct)?;
    }
    if headers.len() > MAX_HEADERS {
        return Err(ValidationError::TooManyHeaders);
    }
    headers.iter().try_for_each(|(n, v)| header(n, v))?;
    let bytes = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(ValidationError::HeaderBytes(bytes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(id("0b5e6a1c-3f0e-4c1a-9d7e-2a4f8b9c1d2e").is_ok());
        assert_eq!(id(""), Err(ValidationError::Id));
        assert_eq!(id("has space"), Err(ValidationError::Id));
        assert_eq!(id(&"a".repeat(129)), Err(ValidationError::Id));
        assert_eq!(id("é"), Err(ValidationError::Id));
    }

    #[test]
    fn destinations() {
        assert!(destination("patient_summary_request").is_ok());
        assert!(destination("reports.v2:fast-lane").is_ok());
        assert_eq!(
            destination("amq.rabbitmq.reply-to"),
            Err(ValidationError::ReservedDestination)
        );
        assert_eq!(
            destination("ferry.reply.0123"),
            Err(ValidationError::ReservedDestination)
        );
        assert_eq!(destination("a/b"), Err(ValidationError::Destination));
        assert_eq!(destination(""), Err(ValidationError::Destination));
        assert_eq!(
            destination(&"q".repeat(256)),
            Err(ValidationError::Destination)
        );
    }

    #[test]
    fn headers() {
        assert!(header("x-tenant", "a").is_ok());
        assert!(
            header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            )
            .is_ok()
        );
        assert_eq!(
            header("traceparent", "00-abc-def-01"),
            Err(ValidationError::TraceParent)
        );
        assert!(matches!(
            header("X-Tenant", "a"),
            Err(ValidationError::HeaderName(_))
        ));
        assert!(matches!(
            header("x-ferry-deadline", "1"),
            Err(ValidationError::ReservedHeader(_))
        ));
        assert!(matches!(
            header("cc", "other_queue"),
            Err(ValidationError::ReservedHeader(_))
        ));
        assert!(matches!(
            header("x-first-death-queue", "q"),
            Err(ValidationError::ReservedHeader(_))
        ));
        assert!(matches!(
            header("x-a", "line\nbreak"),
            Err(ValidationError::HeaderValue(_))
        ));
        assert_eq!(
            header("x-ferry-kind", "").unwrap_err().code(),
            ErrorCode::Forbidden
        );
    }

    #[test]
    fn header_bytes_are_capped_in_total() {
        let value = "v".repeat(MAX_HEADER_VALUE_LEN);
        let names: alloc::vec::Vec<String> =
            (0..MAX_HEADERS).map(|i| alloc::format!("h{i}")).collect();
        let all: alloc::vec::Vec<(&str, &str)> =
            names.iter().map(|n| (n.as_str(), value.as_str())).collect();
        let e = common("1", "q", None, &all).unwrap_err();
        assert!(matches!(e, ValidationError::HeaderBytes(n) if n > MAX_HEADER_BYTES));
        assert_eq!(e.code(), ErrorCode::TooLarge);
        assert!(common("1", "q", None, &all[..3]).is_ok());
    }

    #[test]
    fn messages_state_the_limits_the_rules_apply() {
        use alloc::string::ToString;
        let said = |e: ValidationError| e.to_string();
        let has = |e: ValidationError, n: usize| {
            let m = said(e.clone());
            assert!(m.contains(&n.to_string()), "{m:?} should name {n}");
        };
        has(ValidationError::Id, MAX_ID_LEN);
        has(ValidationError::Destination, MAX_DESTINATION_LEN);
        has(ValidationError::ContentType, MAX_CONTENT_TYPE_LEN);
        has(ValidationError::TooManyHeaders, MAX_HEADERS);
        has(ValidationError::HeaderBytes(20_000), MAX_HEADER_BYTES);
        has(ValidationError::HeaderName("X".into()), MAX_HEADER_NAME_LEN);
        has(
            ValidationError::HeaderValue("x-a".into()),
            MAX_HEADER_VALUE_LEN,
        );
        for p in RESERVED_DESTINATIONS {
            assert!(said(ValidationError::ReservedDestination).contains(p));
        }
        assert_eq!(
            said(ValidationError::HeaderBytes(20_000)),
            "headers may total at most 16384 bytes (names and values), got 20000"
        );
        assert_eq!(
            said(ValidationError::ReservedHeader("x-ferry-user".into())),
            "header \"x-ferry-user\" is reserved and may not be set by a client"
        );
    }
}
