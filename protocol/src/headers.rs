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

/// Prefix of every header name Ferry reserves; clients may not set these.
pub const RESERVED_PREFIX: &str = "x-ferry-";
