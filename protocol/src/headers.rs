//! AMQP header names and values Ferry and workers agree on (see `docs/protocol.md`).

/// Absolute deadline of a request, milliseconds since the Unix epoch (AMQP `long`).
/// Workers may skip or abandon work whose deadline has passed.
pub const DEADLINE: &str = "x-ferry-deadline";
/// Set by a worker on a reply that is an error: a short machine-readable code.
pub const ERROR_CODE: &str = "x-ferry-error";
/// Set by a worker on an error reply: a human-readable message.
pub const ERROR_MESSAGE: &str = "x-ferry-error-message";
/// Set by a worker on a message that is not the final reply (`progress`).
pub const KIND: &str = "x-ferry-kind";
/// Value of [`KIND`] for a progress message.
pub const KIND_PROGRESS: &str = "progress";
/// The Ferry session a request came from (informational, for logs and cancel notices).
pub const SESSION: &str = "x-ferry-session";
/// On a request with an idle timeout: milliseconds (AMQP `long`). Each progress message the
/// worker sends moves the deadline to now + this, so a reporting job may outlive
/// [`DEADLINE`]; a cancel notice tells it when the caller gave up.
pub const IDLE_TIMEOUT: &str = "x-ferry-idle-timeout";
/// Set by a worker on a final reply (optional): the milliseconds it spent on the request,
/// from taking it off the queue to replying (any AMQP integer, or a decimal string). The
/// bridge's metrics then tell the time in the queue from the time in the worker.
pub const WORKER_MS: &str = "x-ferry-worker-ms";
/// Set by a worker on a reply to a gather: who replied (when it does not set `app_id`).
pub const REPLIER: &str = "x-ferry-replier";
/// Value of [`KIND`] on a message a bridge puts in a detached session's reply queue when the
/// broker restarted during the session's grace period: the reply to that `correlation_id`
/// may be lost, so the resumed request fails with `broker_unavailable`.
pub const KIND_LOST: &str = "lost";
/// Value of [`KIND`] on a cancel notice.
pub const KIND_CANCEL: &str = "cancel";
/// On a cancel notice: why nobody awaits the reply any more (see [`CancelReason`]).
pub const CANCEL_REASON: &str = "x-ferry-cancel-reason";
/// The topic exchange cancel notices are published to by default (routing key: the
/// request's destination).
pub const CANCEL_EXCHANGE: &str = "ferry.cancel";

/// Why a cancel notice was published (the value of [`CANCEL_REASON`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The caller aborted the request.
    Cancelled,
    /// The request's deadline passed (or, with an idle timeout, the job went silent).
    Timeout,
    /// The caller's connection closed for good.
    Disconnected,
    /// The bridge shut down before the reply came.
    ShuttingDown,
}

impl CancelReason {
    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::Disconnected => "disconnected",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

/// The authenticated user who sent a request (the access token's `sub`), set by the bridge
/// alone: a client cannot set any `x-ferry-*` header, so a worker may trust it.
pub const USER: &str = "x-ferry-user";
/// Prefix of the headers that carry claims of the caller's token the bridge forwards
/// (`--forward-claim NAME` → `x-ferry-claim-NAME`); as trustworthy as [`USER`].
pub const CLAIM_PREFIX: &str = "x-ferry-claim-";

/// Prefix of every header name Ferry reserves; clients may not set these.
pub const RESERVED_PREFIX: &str = "x-ferry-";
