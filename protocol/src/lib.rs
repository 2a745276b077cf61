//! Ferry wire protocol v1: the frames a client and a bridge exchange, and their binary codec.
//!
//! This crate knows neither tokio, lapin nor web-sys: it builds for `wasm32-unknown-unknown`
//! and native alike, and does no I/O. `docs/protocol.md` is the normative text; this crate is
//! its one implementation.
//!
//! - [`frame`]: the frame types ([`Frame`] and one struct per kind).
//! - [`codec`]: [`Frame::encode`] and [`Frame::decode`] over one WebSocket binary message.
//! - [`code`]: the stable error codes ([`ErrorCode`]) that reach JS as `error.code`.
//! - [`validate`]: the rules for ids, destinations and header names, shared by both ends.
//! - [`headers`]: the AMQP header names a worker reads and writes.

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod code;
pub mod codec;
pub mod frame;
pub mod headers;
pub mod trace;
pub mod validate;

pub use code::ErrorCode;
pub use codec::DecodeError;
pub use frame::{
    Ack, Attach, Auth, Cancel, Done, ErrorFrame, Frame, Gather, Hello, Limits, Part, Progress,
    Reply, Request, Welcome,
};

/// The `Sec-WebSocket-Protocol` value of this protocol version.
pub const SUBPROTOCOL: &str = "ferry.v1";

/// WebSocket close code of a socket whose session another connection resumed: the client
/// must not resume it again (that would take it back, and so on), but open a new session.
pub const CLOSE_TAKEN_OVER: u16 = 4001;

/// The prefix every Ferry subprotocol version shares (`ferry.v1`, `ferry.v2`, ...).
pub const SUBPROTOCOL_PREFIX: &str = "ferry.";
