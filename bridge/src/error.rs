//! Why a request or a connection failed: `BridgeError`, its wire code and its safe message.

use ferry_protocol::{DecodeError, ErrorCode, validate::ValidationError};
use thiserror::Error;

/// A failure the bridge reports to a client. `Display` is for the log (it may carry broker
/// detail); [`BridgeError::wire_message`] is what the client sees.
#[derive(Debug, Error)]
pub enum BridgeError {
    /// The frame could not be decoded.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// A request field broke a rule.
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationError),
    /// A text WebSocket message arrived.
    #[error("ferry.v1 uses binary frames")]
    TextFrame,
    /// The first frame was not HELLO.
    #[error("the first frame must be hello, got {0}")]
    HelloFirst(&'static str),
    /// A second HELLO arrived on an open session.
    #[error("hello may only be sent once")]
    HelloTwice,
    /// A client sent a frame the bridge does not accept here.
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
    /// The id is already pending on this socket.
    #[error("id {0:?} is already pending on this connection")]
    DuplicateId(String),
    /// The destination is not on the allowlist.
    #[error("destination {0:?} is not allowed")]
    Forbidden(String),
    /// The message is over the size limit.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size received.
        size: usize,
        /// The configured limit.
        max: u32,
    },
    /// A worker's reply is over `--max-reply-bytes`.
    #[error("the worker's reply of {size} bytes exceeds the bridge's limit of {max} bytes")]
    ReplyTooLarge {
        /// Size of the reply.
        size: usize,
        /// The configured limit.
        max: u32,
    },
    /// Too many pending requests on this socket.
    #[error("more than {0} requests pending on this connection")]
    Overloaded(u32),
    /// No queue takes the message.
    #[error("no queue {0:?} exists")]
    NoRoute(String),
    /// A gather's exchange does not exist.
    #[error("no exchange {0:?} exists")]
    NoExchange(String),
    /// A gather's exchange routed the message to no queue.
    #[error("nothing is bound to exchange {0:?} for this routing key")]
    NoBinding(String),
    /// The queue exists but nobody consumes it.
    #[error("queue {0:?} has no consumers")]
    NoResponders(String),
    /// The broker nacked the publish.
    #[error("the broker rejected the message")]
    BrokerRejected,
    /// No broker connection, or the broker failed mid-operation.
    #[error("broker unavailable: {0}")]
    BrokerUnavailable(String),
    /// The request's deadline passed.
    #[error("no reply within {0} ms")]
    Timeout(u64),
    /// The bridge is draining.
    #[error("the bridge is shutting down")]
    ShuttingDown,
    /// The socket sends requests faster than `--request-rate`.
    #[error("more than {0} requests a second on this connection; slow down")]
    RateLimited(u32),
    /// The access token was missing or refused.
    #[error("unauthorized: {0}")]
    Unauthorized(#[from] crate::auth::AuthError),
    /// An unexpected failure; the log has the cause.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BridgeError {
    /// The stable wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Decode(_)
            | Self::TextFrame
            | Self::HelloFirst(_)
            | Self::HelloTwice
            | Self::Unexpected(_)
            | Self::DuplicateId(_) => ErrorCode::BadRequest,
            Self::Invalid(e) => e.code(),
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::TooLarge { .. } | Self::ReplyTooLarge { .. } => ErrorCode::TooLarge,
            Self::Overloaded(_) => ErrorCode::Overloaded,
            Self::NoRoute(_) | Self::NoExchange(_) | Self::NoBinding(_) => ErrorCode::NoRoute,
            Self::NoResponders(_) => ErrorCode::NoResponders,
            Self::BrokerRejected => ErrorCode::BrokerRejected,
            Self::BrokerUnavailable(_) => ErrorCode::BrokerUnavailable,
            Self::Timeout(_) => ErrorCode::Timeout,
            Self::ShuttingDown => ErrorCode::ShuttingDown,
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The message a client may see: never broker internals.
    pub fn wire_message(&self) -> String {
        match self {
            Self::BrokerUnavailable(_) => "the bridge has no working broker connection".into(),
            Self::Internal(_) => "internal bridge error (see the bridge log)".into(),
            other => other.to_string(),
        }
    }
}

impl From<lapin::Error> for BridgeError {
    fn from(e: lapin::Error) -> Self {
        Self::BrokerUnavailable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_detail_stays_in_the_log() {
        let e = BridgeError::BrokerUnavailable("ACCESS_REFUSED secret".into());
        assert_eq!(e.code(), ErrorCode::BrokerUnavailable);
        assert!(!e.wire_message().contains("secret"));
        assert!(e.to_string().contains("secret"));
        let v = BridgeError::from(ValidationError::ReservedHeader("x-ferry-kind".into()));
        assert_eq!(v.code(), ErrorCode::Forbidden);
    }
}
