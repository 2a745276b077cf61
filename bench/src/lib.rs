//! Ferry's benchmark harness: a direct AMQP RPC baseline against Ferry, measured side by side.
//!
//! - [`runner`]: the full run (echo worker, bridge, alternating rounds, connections, size).
//! - [`echo`]: the echo worker, an ordinary AMQP RPC server both sides call.
//! - [`baseline`]: direct lapin RPC client (direct reply-to or an exclusive reply queue).
//! - [`native`]: Rust client speaking the Ferry wire protocol through the bridge.
//! - [`node`]: drives `bench/node/load.mjs`, the npm package in Node.
//! - [`session`]: WebSocket handshake + HELLO → WELCOME, shared by the Rust Ferry clients.
//! - [`conns`]: many idle sessions on one bridge, memory per connection.
//! - [`many`]: many lightly active sockets; [`storm`]: a reconnect storm (a bridge stopped
//!   under N resumable sessions with requests pending).
//! - [`connect`]: what authentication costs a new session (HELLO → WELCOME with and without).
//! - [`stats`]: the closed-loop window, latency histograms, medians.
//! - [`results`], [`report`], [`plot`]: what a run produced, as markdown, JSON and SVG.
//! - [`child`], [`procfs`], [`machine`], [`size`]: processes, /proc readings, machine, client size.

pub mod baseline;
pub mod child;
pub mod connect;
pub mod conns;
pub mod echo;
pub mod error;
pub mod machine;
pub mod many;
pub mod native;
pub mod node;
pub mod plot;
pub mod procfs;
pub mod report;
pub mod results;
pub mod runner;
pub mod session;
pub mod size;
pub mod stats;
pub mod storm;

pub use error::{BenchError, Result};
