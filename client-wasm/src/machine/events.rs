//! What goes into the machine and what comes out of it: the [`Event`]s the host feeds
//! [`super::Machine::handle`], the [`Effect`]s it returns, and the [`Body`] of a reply.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Host, Outgoing};
use crate::error::Failure;
use crate::pending::TimerAction;

/// A received body, borrowed from its frame, for the host to decode by content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Body<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// Its content type, if the frame had one.
    pub content_type: Option<&'a str>,
}

/// Something that happened: the socket, a timer, the runtime or the app.
pub enum Event<'a, H: Host> {
    /// The socket opened; `token` is the access token for HELLO.
    Opened {
        /// From `connect`'s `token` option.
        token: Option<String>,
    },
    /// A binary message from the bridge.
    Frame(&'a [u8]),
    /// A final frame a restored request kept until the app reattached it.
    Stored(&'a [u8]),
    /// What the socket's `error` event said (quoted when the socket then closes).
    SocketError(String),
    /// The socket closed.
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: &'a str,
    },
    /// The timer fired, the page woke up, or the client started: run what fell due.
    Timer,
    /// The reconnect timer fired.
    Retry,
    /// Opening the next socket threw.
    ReconnectFailed,
    /// The ACKs noted since the last flush are due (once per microtask).
    FlushAcks,
    /// The runtime went online (`true`) or offline (`false`).
    Network(bool),
    /// A request or a gather from the app.
    Request(Outgoing<'a, H>),
    /// A caller's `AbortSignal` fired.
    Abort(&'a str),
    /// The app takes over a request restored after a page reload.
    Reattach {
        /// The restored request's id.
        id: &'a str,
        /// What its caller waits with.
        call: H::Call,
        /// Its progress callback.
        progress: Option<H::Progress>,
    },
    /// The app closes the client; `socket_closed`: there is no close event to wait for.
    Close {
        /// Settles once the socket closed.
        closing: H::Closing,
        /// The socket is already closed.
        socket_closed: bool,
    },
}

/// What the host does, in order, once the machine is released.
pub enum Effect<'a, H: Host> {
    /// Send these bytes (one encoded frame) on the socket.
    Send(Vec<u8>),
    /// Resolve a request with its reply.
    Reply {
        /// The caller.
        call: H::Call,
        /// The request's id.
        id: &'a str,
        /// The reply.
        body: Body<'a>,
    },
    /// Resolve a gather with its number of parts (`None`: its window closed first).
    Done {
        /// The caller.
        call: H::Call,
        /// DONE's count.
        count: Option<u32>,
    },
    /// Reject a request.
    Reject {
        /// The caller.
        call: H::Call,
        /// Why.
        failure: Failure,
    },
    /// A progress message for a request.
    Progress {
        /// The request's callback.
        callback: H::Progress,
        /// The message.
        body: Body<'a>,
    },
    /// One part of a gather.
    Part {
        /// The gather's callback.
        callback: H::Progress,
        /// The gather's id.
        id: &'a str,
        /// Who replied.
        replier: Option<&'a str>,
        /// The part (or a worker error's details).
        body: Body<'a>,
        /// A worker's error: its code and message.
        remote: Option<(&'a str, &'a str)>,
    },
    /// The handshake is done: resolve `ready`.
    Ready(H::Ready),
    /// The handshake failed: reject `ready`.
    NotReady {
        /// What waited.
        ready: H::Ready,
        /// Why.
        failure: Failure,
    },
    /// The socket closed (or `close()` waited long enough): resolve `close()`.
    Closed(H::Closing),
    /// Re-arm or clear the one timer.
    Timer(TimerAction),
    /// Arm the reconnect timer with a random delay in `[0, ceiling_ms)` (full jitter),
    /// clearing any armed one.
    ArmRetry {
        /// The backoff ceiling.
        ceiling_ms: u64,
    },
    /// Clear the reconnect timer.
    StopRetry,
    /// Open a socket to the next bridge; feed [`Event::ReconnectFailed`] if that throws.
    Reconnect,
    /// Close the socket with a close handshake (if not closing already).
    CloseSocket {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: &'static str,
    },
    /// Close the socket without waiting for a dead peer's handshake.
    AbandonSocket,
    /// Stop listening to the socket's events.
    Detach,
    /// Feed [`Event::FlushAcks`] from a microtask.
    QueueAcks,
    /// What a persisted client keeps in storage changed.
    Changed,
    /// The connection is now `open` or `reconnecting`.
    State(&'static str),
    /// The connection is over.
    Ended(Failure),
    /// Feed these bytes back as [`Event::Stored`] (a restored request's kept reply).
    Redeliver(Vec<u8>),
}
