//! The frame types of protocol v1: one struct per frame kind, borrowing from the message.

use alloc::vec::Vec;

use serde::Serialize;

use crate::ErrorCode;

/// One WebSocket binary message. Client-to-bridge kinds have codes below `0x80`,
/// bridge-to-client kinds `0x80` and above (see `docs/protocol.md`, "Frames").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Frame<'a> {
    /// `0x01`, client → bridge, first frame on every connection.
    #[serde(borrow)]
    Hello(Hello<'a>),
    /// `0x02`, client → bridge: publish a request and await its reply.
    Request(Request<'a>),
    /// `0x03`, client → bridge: the caller no longer wants this reply.
    Cancel(Cancel<'a>),
    /// `0x04`, client → bridge: publish once to an exchange and gather several replies.
    Gather(Gather<'a>),
    /// `0x05`, client → bridge: these final replies arrived; the bridge may forget them.
    Ack(Ack<'a>),
    /// `0x06`, client → bridge: a renewed access token for the open session (same user).
    Auth(Auth<'a>),
    /// `0x81`, bridge → client: answer to HELLO; the session is open.
    Welcome(Welcome<'a>),
    /// `0x82`, bridge → client: the final reply to a request.
    Reply(Reply<'a>),
    /// `0x83`, bridge → client: a request (or, without id, the connection) failed.
    Error(ErrorFrame<'a>),
    /// `0x84`, bridge → client: a progress message before the final reply.
    Progress(Progress<'a>),
    /// `0x85`, bridge → client: one of the replies to a GATHER.
    Part(Part<'a>),
    /// `0x86`, bridge → client: a GATHER is over.
    Done(Done<'a>),
    /// `0x87`, bridge → client: the bridge is alive (every `heartbeat_ms`), so a client can
    /// tell a half-open socket from a quiet one.
    Heartbeat,
    /// `0x88`, bridge → client (resumable sessions): these requests are published (the broker
    /// confirmed them) and still await their replies, so a resume attaches them; a request
    /// not yet accepted when the socket dropped is sent again instead.
    Accepted(Ack<'a>),
}

impl Frame<'_> {
    /// The frame's kind byte on the wire.
    pub const fn kind(&self) -> u8 {
        match self {
            Self::Hello(_) => kind::HELLO,
            Self::Request(_) => kind::REQUEST,
            Self::Cancel(_) => kind::CANCEL,
            Self::Gather(_) => kind::GATHER,
            Self::Ack(_) => kind::ACK,
            Self::Auth(_) => kind::AUTH,
            Self::Welcome(_) => kind::WELCOME,
            Self::Reply(_) => kind::REPLY,
            Self::Error(_) => kind::ERROR,
            Self::Progress(_) => kind::PROGRESS,
            Self::Part(_) => kind::PART,
            Self::Done(_) => kind::DONE,
            Self::Heartbeat => kind::HEARTBEAT,
            Self::Accepted(_) => kind::ACCEPTED,
        }
    }

    /// A short name of the kind, for logs and error messages.
    pub const fn kind_name(&self) -> &'static str {
        kind::name(self.kind())
    }
}

/// Frame kind bytes.
pub mod kind {
    /// HELLO, client → bridge.
    pub const HELLO: u8 = 0x01;
    /// REQUEST, client → bridge.
    pub const REQUEST: u8 = 0x02;
    /// CANCEL, client → bridge.
    pub const CANCEL: u8 = 0x03;
    /// GATHER, client → bridge.
    pub const GATHER: u8 = 0x04;
    /// ACK, client → bridge.
    pub const ACK: u8 = 0x05;
    /// AUTH, client → bridge.
    pub const AUTH: u8 = 0x06;
    /// WELCOME, bridge → client.
    pub const WELCOME: u8 = 0x81;
    /// REPLY, bridge → client.
    pub const REPLY: u8 = 0x82;
    /// ERROR, bridge → client.
    pub const ERROR: u8 = 0x83;
    /// PROGRESS, bridge → client.
    pub const PROGRESS: u8 = 0x84;
    /// PART, bridge → client.
    pub const PART: u8 = 0x85;
    /// DONE, bridge → client.
    pub const DONE: u8 = 0x86;
    /// HEARTBEAT, bridge → client.
    pub const HEARTBEAT: u8 = 0x87;
    /// ACCEPTED, bridge → client.
    pub const ACCEPTED: u8 = 0x88;

    /// The name of a kind byte (`"unknown"` for one this version does not define).
    pub const fn name(kind: u8) -> &'static str {
        match kind {
            HELLO => "hello",
            REQUEST => "request",
            CANCEL => "cancel",
            GATHER => "gather",
            ACK => "ack",
            AUTH => "auth",
            WELCOME => "welcome",
            REPLY => "reply",
            ERROR => "error",
            PROGRESS => "progress",
            PART => "part",
            DONE => "done",
            HEARTBEAT => "heartbeat",
            ACCEPTED => "accepted",
            _ => "unknown",
        }
    }
}

/// Opens (or resumes) a session. Must be the first frame a client sends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hello<'a> {
    /// Free-form client name and version, for the bridge's logs (`ferry-client/0.1.0`).
    pub client: Option<&'a str>,
    /// A session id from an earlier WELCOME, to resume that session.
    pub resume: Option<&'a str>,
    /// The resume token that WELCOME gave with that session id; proves the session is ours.
    pub resume_token: Option<&'a str>,
    /// When resuming: the requests still awaited, so the new bridge routes their replies.
    pub attach: Vec<Attach<'a>>,
    /// The client sends ACK for final replies; the bridge keeps a reply in RabbitMQ until then.
    pub acks: bool,
    /// The access token (a JWT, or whatever the bridge's connect proxy understands) that says
    /// who is calling. Never logged.
    pub token: Option<&'a str>,
}

/// A renewed access token for the open session; it must name the same user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Auth<'a> {
    /// The new token.
    pub token: &'a str,
}

/// A request a resuming client still awaits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attach<'a> {
    /// Its correlation id.
    pub id: &'a str,
    /// Milliseconds the client will still wait for it.
    pub timeout_ms: u32,
    /// Its idle timeout (`idle_timeout_ms` of the REQUEST), if it had one.
    pub idle_timeout_ms: Option<u32>,
    /// Where it was published (the routing key of a cancel notice for it).
    pub destination: &'a str,
}

/// Server limits announced in WELCOME, so a client can fail fast before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Largest WebSocket message the bridge accepts, in bytes.
    pub max_frame_bytes: u32,
    /// Most requests one connection may have pending at once.
    pub max_inflight: u32,
    /// Timeout applied to a request that names none, in milliseconds.
    pub default_timeout_ms: u32,
    /// Largest timeout a request may ask for, in milliseconds (larger ones are clamped).
    pub max_timeout_ms: u32,
    /// How long the session (and its replies) outlive a dropped socket, in milliseconds.
    /// Zero: the session ends with its socket.
    pub session_grace_ms: u32,
    /// The bridge sends HEARTBEAT this often; a client that hears nothing for a few of these
    /// may treat the socket as dead. Zero: no heartbeats.
    pub heartbeat_ms: u32,
}

/// The bridge's answer to HELLO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Welcome<'a> {
    /// The session id (opaque, URL-safe, at most 128 bytes).
    pub session: &'a str,
    /// True when HELLO's `resume` named a live session and this connection took it over.
    pub resumed: bool,
    /// Secret to present with `resume` in a later HELLO; absent if the bridge cannot resume.
    pub resume_token: Option<&'a str>,
    /// The limits this bridge enforces.
    pub limits: Limits,
    /// Free-form bridge name and version (`ferry-bridge/0.1.0`).
    pub server: Option<&'a str>,
    /// Who the bridge authenticated (the token's `sub`), when it authenticates.
    pub user: Option<&'a str>,
}

/// Publish `body` to `destination` and route the reply back to this connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request<'a> {
    /// Correlation id chosen by the client, unique among its pending requests.
    pub id: &'a str,
    /// The queue to publish to (must be on the bridge's allowlist).
    pub destination: &'a str,
    /// MIME type of `body` (`application/json`, `text/plain; charset=utf-8`, ...).
    pub content_type: Option<&'a str>,
    /// Milliseconds the client will wait; `None` means the bridge's default.
    pub timeout_ms: Option<u32>,
    /// With progress: each PROGRESS moves the deadline to now + this many milliseconds
    /// (if later), so a job that keeps reporting is not timed out and a silent one is.
    pub idle_timeout_ms: Option<u32>,
    /// Application headers copied to the AMQP message (names validated, see [`crate::validate`]).
    pub headers: Vec<(&'a str, &'a str)>,
    /// The payload, byte for byte.
    pub body: &'a [u8],
}

/// Publish `body` once to an exchange and collect the replies that arrive within a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gather<'a> {
    /// Correlation id chosen by the client, unique among its pending requests.
    pub id: &'a str,
    /// The exchange to publish to (must be on the bridge's allowlist).
    pub destination: &'a str,
    /// Routing key for a topic or direct exchange; empty for fanout.
    pub routing_key: Option<&'a str>,
    /// MIME type of `body`.
    pub content_type: Option<&'a str>,
    /// The window in milliseconds; `None` means the bridge's default timeout.
    pub timeout_ms: Option<u32>,
    /// Stop after this many replies; `None` means as many as arrive in the window.
    pub max_replies: Option<u32>,
    /// Application headers copied to the AMQP message.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The payload, byte for byte.
    pub body: &'a [u8],
}

/// A list of correlation ids: in ACK, the final replies the client received (sent only when
/// HELLO asked for `acks`); in ACCEPTED, the requests the broker took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack<'a> {
    /// The correlation ids.
    pub ids: Vec<&'a str>,
}

/// The client gives up on a pending request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cancel<'a> {
    /// Correlation id of the request to cancel.
    pub id: &'a str,
}

/// The worker's final reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply<'a> {
    /// Correlation id of the request this answers.
    pub id: &'a str,
    /// MIME type of `body`, as the worker set it.
    pub content_type: Option<&'a str>,
    /// String-valued application headers the worker set (reserved `x-ferry-*` ones excluded).
    pub headers: Vec<(&'a str, &'a str)>,
    /// The payload, byte for byte.
    pub body: &'a [u8],
}

/// A progress message the worker sent before its final reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress<'a> {
    /// Correlation id of the request this is about.
    pub id: &'a str,
    /// MIME type of `body`.
    pub content_type: Option<&'a str>,
    /// The payload, byte for byte.
    pub body: &'a [u8],
}

/// One reply to a GATHER.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part<'a> {
    /// Correlation id of the GATHER.
    pub id: &'a str,
    /// Who replied: the reply's `app_id`, else its `x-ferry-replier` header, else absent.
    pub replier: Option<&'a str>,
    /// MIME type of `body`.
    pub content_type: Option<&'a str>,
    /// Set when this replier answered with an error reply (its `x-ferry-error`).
    pub remote_code: Option<&'a str>,
    /// The replier's `x-ferry-error-message`, for an error reply.
    pub message: Option<&'a str>,
    /// The payload, byte for byte.
    pub body: &'a [u8],
}

/// A GATHER is over: its window closed or it reached `max_replies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done<'a> {
    /// Correlation id of the GATHER.
    pub id: &'a str,
    /// How many PART frames were sent for it.
    pub count: u32,
}

/// A request failed, or (with `id: None`) the connection has a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorFrame<'a> {
    /// Correlation id of the failed request; `None` for a connection-level error.
    pub id: Option<&'a str>,
    /// The stable code.
    pub code: ErrorCode,
    /// A message a person understands; never a stack trace or a broker internal.
    pub message: &'a str,
    /// For `remote` errors: the code the worker set in `x-ferry-error`.
    pub remote_code: Option<&'a str>,
    /// MIME type of `details`.
    pub content_type: Option<&'a str>,
    /// For `remote` errors: the body of the worker's error reply. Otherwise usually empty.
    pub details: &'a [u8],
}
