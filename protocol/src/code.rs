//! The stable error codes that cross the wire in an ERROR frame and reach JS as `error.code`.

use serde::{Deserialize, Serialize};

/// Why a request (or the connection) failed. The string form ([`ErrorCode::as_str`]) is the
/// contract; it never changes for a given variant. A code this build does not know decodes as
/// [`ErrorCode::Unknown`] so an older client still rejects with *something*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No reply arrived before the request's deadline.
    Timeout,
    /// No queue (or exchange) exists that could take the request.
    NoRoute,
    /// The destination or a header is not allowed for this client.
    Forbidden,
    /// The worker replied with an error (see `docs/protocol.md`, "Error replies").
    Remote,
    /// The caller cancelled the request.
    Cancelled,
    /// The socket dropped while the request was pending.
    Disconnected,
    /// The client was closed while the request was pending.
    Closed,
    /// A frame or field was malformed; the message names the problem.
    BadRequest,
    /// A frame exceeded the bridge's size limit.
    TooLarge,
    /// Too many requests are pending on this connection.
    Overloaded,
    /// The destination queue exists but nobody consumes it.
    NoResponders,
    /// The broker refused the message (negative publisher confirm).
    BrokerRejected,
    /// The bridge has no working broker connection right now.
    BrokerUnavailable,
    /// The session to resume no longer exists (its grace period passed).
    SessionExpired,
    /// The bridge is shutting down and takes no new requests.
    ShuttingDown,
    /// The bridge failed in a way the client cannot fix; the bridge log has the cause.
    Internal,
    /// This connection sends requests faster than the bridge allows; the socket stays open.
    RateLimited,
    /// No valid access token: missing, malformed, badly signed, expired, or refused.
    Unauthorized,
    /// A code this build does not know (a newer peer); treated like `internal`.
    Unknown,
}

impl ErrorCode {
    /// Every code this build knows, in declaration order (for docs and tests).
    pub const ALL: [ErrorCode; 18] = [
        Self::Timeout,
        Self::NoRoute,
        Self::Forbidden,
        Self::Remote,
        Self::Cancelled,
        Self::Disconnected,
        Self::Closed,
        Self::BadRequest,
        Self::TooLarge,
        Self::Overloaded,
        Self::NoResponders,
        Self::BrokerRejected,
        Self::BrokerUnavailable,
        Self::SessionExpired,
        Self::ShuttingDown,
        Self::Internal,
        Self::RateLimited,
        Self::Unauthorized,
    ];

    /// The stable wire and JS string for this code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::NoRoute => "no_route",
            Self::Forbidden => "forbidden",
            Self::Remote => "remote",
            Self::Cancelled => "cancelled",
            Self::Disconnected => "disconnected",
            Self::Closed => "closed",
            Self::BadRequest => "bad_request",
            Self::TooLarge => "too_large",
            Self::Overloaded => "overloaded",
            Self::NoResponders => "no_responders",
            Self::BrokerRejected => "broker_rejected",
            Self::BrokerUnavailable => "broker_unavailable",
            Self::SessionExpired => "session_expired",
            Self::ShuttingDown => "shutting_down",
            Self::Internal => "internal",
            Self::RateLimited => "rate_limited",
            Self::Unauthorized => "unauthorized",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a wire string; anything unrecognised is [`ErrorCode::Unknown`].
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .unwrap_or(Self::Unknown)
    }
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
        assert_eq!(ErrorCode::parse("from_the_future"), ErrorCode::Unknown);
    }
}
