//! The AMQP side of the worker contract: a request's message properties and headers, the
//! properties of the bridge's own notices (cancel, lost reply), and what a reply's
//! properties say (its kind, headers, the worker's time). [`crate::frames`] turns replies
//! into frames.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_protocol::headers::CancelReason;
use ferry_protocol::{Gather, Request, headers};

use crate::auth::Identity;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};

/// What a published call (request or gather) carries from its frame.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The client's id: the `correlation_id`.
    pub id: &'a str,
    /// The body's MIME type.
    pub content_type: Option<&'a str>,
    /// The client's headers (validated).
    pub headers: &'a [(&'a str, &'a str)],
    /// Replaces the client's `traceparent`: the bridge's span in its trace.
    pub traceparent: Option<&'a str>,
}

impl<'a> From<&'a Request<'a>> for Call<'a> {
    fn from(r: &'a Request<'a>) -> Self {
        Self {
            id: r.id,
            content_type: r.content_type,
            headers: &r.headers,
            traceparent: None,
        }
    }
}

impl<'a> From<&'a Gather<'a>> for Call<'a> {
    fn from(g: &'a Gather<'a>) -> Self {
        Self {
            id: g.id,
            content_type: g.content_type,
            headers: &g.headers,
            traceparent: None,
        }
    }
}

/// Properties of a request (or gather) message: `docs/protocol.md` §1. With an identity,
/// `x-ferry-user` and the forwarded claims (`x-ferry-claim-*`), which no client can set.
pub fn request_properties(
    req: Call<'_>,
    reply_to: &str,
    session: &str,
    timeout: Duration,
    idle: Option<Duration>,
    identity: Option<&Identity>,
) -> BasicProperties {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let deadline_ms = i64::try_from((now + timeout).as_millis()).unwrap_or(i64::MAX);
    let mut table = FieldTable::default();
    for (name, value) in req.headers {
        let value = match req.traceparent {
            Some(ours) if *name == ferry_protocol::trace::TRACEPARENT => ours,
            _ => value,
        };
        table.insert(
            ShortString::from(*name),
            AMQPValue::LongString(value.into()),
        );
    }
    table.insert(
        headers::DEADLINE.into(),
        AMQPValue::LongLongInt(deadline_ms),
    );
    table.insert(
        headers::SESSION.into(),
        AMQPValue::LongString(session.into()),
    );
    if let Some(idle) = idle {
        let ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        table.insert(headers::IDLE_TIMEOUT.into(), AMQPValue::LongLongInt(ms));
    }
    if let Some(who) = identity {
        table.insert(
            headers::USER.into(),
            AMQPValue::LongString(who.user.as_str().into()),
        );
        for (name, value) in &who.forwarded {
            table.insert(
                ShortString::from(name.as_str()),
                AMQPValue::LongString(value.as_str().into()),
            );
        }
    }
    let mut props = BasicProperties::default()
        .with_correlation_id(req.id.into())
        .with_reply_to(reply_to.into())
        .with_message_id(uuid::Uuid::new_v4().to_string().into())
        .with_timestamp(now.as_secs())
        .with_expiration(timeout.as_millis().max(1).to_string().into())
        .with_delivery_mode(1)
        .with_headers(table);
    if let Some(ct) = req.content_type {
        props = props.with_content_type(ct.into());
    }
    props
}

/// Properties of a cancel notice: the request's `correlation_id` and `reply_to` (which
/// together name it), `x-ferry-kind: cancel`, the reason and the session.
pub fn cancel_properties(
    id: &str,
    reply_to: &str,
    session: &str,
    reason: CancelReason,
) -> BasicProperties {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut table = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(s.into());
    table.insert(headers::KIND.into(), text(headers::KIND_CANCEL));
    table.insert(headers::CANCEL_REASON.into(), text(reason.as_str()));
    table.insert(headers::SESSION.into(), text(session));
    BasicProperties::default()
        .with_correlation_id(id.into())
        .with_reply_to(reply_to.into())
        .with_message_id(uuid::Uuid::new_v4().to_string().into())
        .with_timestamp(now.as_secs())
        .with_delivery_mode(1)
        .with_headers(table)
}

/// Properties of the note a bridge puts in a detached session's reply queue for the request
/// `id` after a broker restart ([`ReplyKind::Lost`]). Persistent: a second restart keeps it.
pub fn lost_properties(id: &str) -> BasicProperties {
    let mut table = FieldTable::default();
    let kind = AMQPValue::LongString(headers::KIND_LOST.into());
    table.insert(headers::KIND.into(), kind);
    BasicProperties::default()
        .with_correlation_id(id.into())
        .with_delivery_mode(2)
        .with_headers(table)
}

/// A header value as text, if it is a string type.
pub(crate) fn text(v: &AMQPValue) -> Option<&str> {
    match v {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The worker's own time on a request, from its reply's `x-ferry-worker-ms` (an AMQP
/// integer of any width, a float or a decimal string); absent or negative: `None`.
pub fn worker_time(props: &BasicProperties) -> Option<Duration> {
    let value = props.headers().as_ref()?.inner().get(headers::WORKER_MS)?;
    let ms: f64 = match value {
        AMQPValue::LongLongInt(n) => *n as f64,
        AMQPValue::LongInt(n) => f64::from(*n),
        AMQPValue::LongUInt(n) => f64::from(*n),
        AMQPValue::ShortInt(n) => f64::from(*n),
        AMQPValue::ShortUInt(n) => f64::from(*n),
        AMQPValue::ShortShortInt(n) => f64::from(*n),
        AMQPValue::ShortShortUInt(n) => f64::from(*n),
        AMQPValue::Double(n) => *n,
        AMQPValue::Float(n) => f64::from(*n),
        other => text(other)?.trim().parse().ok()?,
    };
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms.min(1e12) / 1000.0))
}

/// What a reply delivery means for its request.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyKind<'a> {
    /// The final, successful reply.
    Final,
    /// An intermediate progress message; the request stays pending.
    Progress,
    /// A bridge's note that the broker restarted while the session was detached: the reply
    /// may be lost ([`headers::KIND_LOST`]).
    Lost,
    /// The worker's error reply: its code and optional message.
    Error {
        /// `x-ferry-error`.
        code: &'a str,
        /// `x-ferry-error-message`.
        message: Option<&'a str>,
    },
}

/// Classifies a reply by its `x-ferry-*` headers.
pub fn reply_kind(props: &BasicProperties) -> ReplyKind<'_> {
    let Some(table) = props.headers() else {
        return ReplyKind::Final;
    };
    let get = |name: &str| table.inner().get(name).and_then(text);
    if let Some(code) = get(headers::ERROR_CODE) {
        return ReplyKind::Error {
            code,
            message: get(headers::ERROR_MESSAGE),
        };
    }
    match get(headers::KIND) {
        Some(headers::KIND_PROGRESS) => ReplyKind::Progress,
        Some(headers::KIND_LOST) => ReplyKind::Lost,
        _ => ReplyKind::Final,
    }
}

/// The string-valued, non-reserved headers of a reply, for the REPLY frame.
pub fn reply_headers(props: &BasicProperties) -> Vec<(&str, &str)> {
    let Some(table) = props.headers() else {
        return Vec::new();
    };
    table
        .inner()
        .iter()
        .filter(|(k, _)| !k.as_str().starts_with(headers::RESERVED_PREFIX))
        .filter_map(|(k, v)| Some((k.as_str(), text(v)?)))
        .filter(|(k, _)| k.len() <= usize::from(u8::MAX))
        .take(ferry_protocol::validate::MAX_HEADERS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_time_of_any_number_type() {
        let with = |v: AMQPValue| {
            let mut t = FieldTable::default();
            t.insert(headers::WORKER_MS.into(), v);
            worker_time(&BasicProperties::default().with_headers(t))
        };
        let ms = Duration::from_millis;
        assert_eq!(with(AMQPValue::LongLongInt(1500)), Some(ms(1500)));
        assert_eq!(with(AMQPValue::LongInt(20)), Some(ms(20)));
        assert_eq!(with(AMQPValue::ShortShortUInt(7)), Some(ms(7)));
        assert_eq!(
            with(AMQPValue::Double(2.5)),
            Some(Duration::from_micros(2500))
        );
        assert_eq!(with(AMQPValue::LongString("42".into())), Some(ms(42)));
        assert_eq!(with(AMQPValue::LongString("soon".into())), None);
        assert_eq!(with(AMQPValue::LongLongInt(-1)), None);
        assert_eq!(with(AMQPValue::Double(f64::NAN)), None);
        assert_eq!(worker_time(&BasicProperties::default()), None);
    }

    #[test]
    fn request_carries_the_contract() {
        let req = Request {
            id: "c-1",
            destination: "q",
            content_type: Some("application/json"),
            timeout_ms: None,
            idle_timeout_ms: None,
            headers: vec![("x-tenant", "acme")],
            body: b"{}",
        };
        let p = request_properties(
            (&req).into(),
            "ferry.reply.s",
            "s",
            Duration::from_millis(1500),
            None,
            None,
        );
        assert_eq!(p.correlation_id().as_ref().unwrap().as_str(), "c-1");
        assert_eq!(p.reply_to().as_ref().unwrap().as_str(), "ferry.reply.s");
        assert_eq!(p.expiration().as_ref().unwrap().as_str(), "1500");
        assert_eq!(p.delivery_mode(), &Some(1));
        let h = p.headers().as_ref().unwrap().inner();
        assert!(matches!(
            h.get(headers::DEADLINE),
            Some(AMQPValue::LongLongInt(_))
        ));
        assert_eq!(h.get("x-tenant").and_then(text), Some("acme"));
        assert_eq!(h.get(headers::SESSION).and_then(text), Some("s"));
    }

    #[test]
    fn replies_are_classified_by_header() {
        let mut t = FieldTable::default();
        t.insert(
            headers::ERROR_CODE.into(),
            AMQPValue::LongString("E42".into()),
        );
        let p = BasicProperties::default().with_headers(t);
        assert_eq!(
            reply_kind(&p),
            ReplyKind::Error {
                code: "E42",
                message: None
            }
        );
        let mut t = FieldTable::default();
        t.insert(
            headers::KIND.into(),
            AMQPValue::LongString("progress".into()),
        );
        t.insert("x-app".into(), AMQPValue::LongString("v".into()));
        let p = BasicProperties::default().with_headers(t);
        assert_eq!(reply_kind(&p), ReplyKind::Progress);
        assert_eq!(reply_headers(&p), vec![("x-app", "v")]);
        assert_eq!(reply_kind(&BasicProperties::default()), ReplyKind::Final);
        assert_eq!(reply_kind(&lost_properties("c1")), ReplyKind::Lost);
    }
}
