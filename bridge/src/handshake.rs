//! The WebSocket upgrade: request checks, Origin, `ferry.v1` subprotocol negotiation, and the
//! refusal of other versions with a readable close reason.
//!
//! Origin: without `--allowed-origin`, a browser's socket must come from a page of the same
//! origin as the bridge (Origin's host equals Host); `--allowed-origin '*'` allows any. A
//! request without Origin is not a browser's: Origin protects nothing there, so it is never
//! refused for lacking one (authentication judges it).

use ferry_protocol::SUBPROTOCOL;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// What the handshake decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Upgrade and speak ferry.v1.
    Accept,
    /// Upgrade echoing `protocol` (or none), then close at once with 1002 and `reason`.
    Refuse {
        /// The protocol to echo so the browser completes the upgrade.
        protocol: Option<String>,
        /// The close reason.
        reason: String,
    },
}

/// Why the upgrade request itself is refused with an HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The status to answer with.
    pub status: StatusCode,
    /// A short text body.
    pub message: &'static str,
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Checks an upgrade request; returns the `Sec-WebSocket-Accept` value and the verdict.
pub fn check<B>(
    req: &Request<B>,
    allowed_origins: &[String],
) -> Result<(HeaderValue, Verdict), Rejection> {
    let h = req.headers();
    let reject = |status, message| Err(Rejection { status, message });
    if req.method() != Method::GET
        || !has_token(h, header::CONNECTION, "upgrade")
        || !has_token(h, header::UPGRADE, "websocket")
    {
        return reject(StatusCode::UPGRADE_REQUIRED, "websocket upgrade required\n");
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return reject(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Version must be 13\n",
        );
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
        return reject(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key missing\n");
    };
    if let Some(origin) = h.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let allowed = if allowed_origins.is_empty() {
            same_origin(origin, h.get(header::HOST))
        } else {
            allowed_origins.iter().any(|a| a == "*" || a == origin)
        };
        if !allowed {
            return reject(
                StatusCode::FORBIDDEN,
                "origin not allowed (same-origin only unless --allowed-origin names it)\n",
            );
        }
    }
    let accept =
        HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| Rejection {
            status: StatusCode::BAD_REQUEST,
            message: "bad Sec-WebSocket-Key\n",
        })?;
    Ok((accept, negotiate(h)))
}

/// True when `origin` (`scheme://host[:port]`) names the same host and port as `Host`.
fn same_origin(origin: &str, host: Option<&HeaderValue>) -> bool {
    let Some(authority) = origin.split_once("://").map(|(_, a)| a) else {
        return false;
    };
    host.and_then(|h| h.to_str().ok())
        .is_some_and(|h| !h.is_empty() && h.eq_ignore_ascii_case(authority))
}

fn negotiate(h: &HeaderMap) -> Verdict {
    let offered: Vec<&str> = h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if offered.contains(&SUBPROTOCOL) {
        return Verdict::Accept;
    }
    match offered.first() {
        Some(first) => Verdict::Refuse {
            protocol: Some((*first).to_owned()),
            reason: format!(
                "unsupported protocol {}; this bridge speaks {SUBPROTOCOL}",
                truncate(&offered.join(", "), 60)
            ),
        },
        None => Verdict::Refuse {
            protocol: None,
            reason: format!("missing Sec-WebSocket-Protocol: {SUBPROTOCOL}"),
        },
    }
}

/// Close reasons must fit in a control frame (123 bytes).
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(protocols: Option<&str>, origin: Option<&str>) -> Request<()> {
        let mut b = Request::get("/ws")
            .header("host", "bridge.example:8080")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        if let Some(p) = protocols {
            b = b.header("sec-websocket-protocol", p);
        }
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn negotiation() {
        let (accept, v) = check(&req(Some("x, ferry.v1"), None), &[]).unwrap();
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(v, Verdict::Accept);
        let (_, v) = check(&req(Some("ferry.v9"), None), &[]).unwrap();
        assert_eq!(
            v,
            Verdict::Refuse {
                protocol: Some("ferry.v9".into()),
                reason: "unsupported protocol ferry.v9; this bridge speaks ferry.v1".into()
            }
        );
        let (_, v) = check(&req(None, None), &[]).unwrap();
        assert!(matches!(v, Verdict::Refuse { protocol: None, .. }));
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example".to_owned()];
        assert!(
            check(
                &req(Some("ferry.v1"), Some("https://app.example")),
                &allowed
            )
            .is_ok()
        );
        let r = check(
            &req(Some("ferry.v1"), Some("https://evil.example")),
            &allowed,
        );
        assert_eq!(r.unwrap_err().status, StatusCode::FORBIDDEN);
        // No Origin: not a browser; never refused for that.
        assert!(check(&req(Some("ferry.v1"), None), &allowed).is_ok());
        // Without a list: same origin only.
        let same = req(Some("ferry.v1"), Some("http://bridge.example:8080"));
        assert!(check(&same, &[]).is_ok());
        let other = req(Some("ferry.v1"), Some("http://evil.example"));
        assert_eq!(
            check(&other, &[]).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert!(check(&other, &["*".to_owned()]).is_ok(), "explicit '*'");
        assert!(
            check(&req(None, Some("null")), &[]).is_err(),
            "an opaque origin"
        );
    }
}
