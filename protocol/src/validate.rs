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

/// A request field breaks a rule. The `Display` text names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The correlation id is empty, too long, or has a character outside `!`..=`~`.
    #[error("id must be 1 to {MAX_ID_LEN} printable ASCII characters without spaces")]
    Id,
    /// The destination is empty, too long, or has a character outside `[A-Za-z0-9._:-]`.
    #[error("destination must be 1 to {MAX_DESTINATION_LEN} characters from A-Z a-z 0-9 . _ : -")]
    Destination,
    /// The destination starts with `amq.` (RabbitMQ's) or `ferry.` (the bridge's own queues).
    #[error("destination may not start with \"amq.\" or \"ferry.\" (reserved)")]
    ReservedDestination,
    /// The content type is too long or not printable ASCII.
    #[error("content type must be at most {MAX_CONTENT_TYPE_LEN} printable ASCII characters")]
    ContentType,
    /// Too many headers.
    #[error("at most {MAX_HEADERS} headers are allowed")]
    TooManyHeaders,
    /// The headers' names and values together are too long.
    #[error("headers may total at most {MAX_HEADER_BYTES} bytes (names and values), got {0}")]
    HeaderBytes(usize),
    /// A header name breaks the syntax rule.
    #[error("header name {0:?} must be 1 to {MAX_HEADER_NAME_LEN} characters from a-z 0-9 - _")]
    HeaderName(String),
    /// A header name is reserved for Ferry or interpreted by the broker.
    #[error("header {0:?} is reserved and may not be set by a client")]
    ReservedHeader(String),
    /// A gather asked for zero replies.
    #[error("max_replies must be at least 1")]
    MaxReplies,
    /// A routing key is too long or not printable ASCII.
    #[error("routing key must be at most 255 printable ASCII characters")]
    RoutingKey,
    /// A header value is too long or has control characters.
    #[error(
        "header {0:?} value must be at most {MAX_HEADER_VALUE_LEN} bytes without control characters"
    )]
    HeaderValue(String),
    /// A `traceparent` header that is not W3C Trace Context.
    #[error(
        "header \"traceparent\" must be a W3C trace context: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lowercase, ids not all zero"
    )]
    TraceParent,
}

impl ValidationError {
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
}
