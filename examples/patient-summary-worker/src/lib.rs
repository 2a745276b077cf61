//! The example Ferry worker: an ordinary AMQP RPC server that builds patient summaries.
//!
//! It knows nothing of Ferry's bridge: it follows the documented reply convention
//! (`docs/protocol.md`, "Writing a worker"), which a worker in any language can follow too.
//!
//! - [`config`]: command-line / environment configuration.
//! - [`cancel`]: cancel notices: which running job's caller gave up.
//! - [`presence`]: answers "who is available?" gathers with the worker's name and load.
//! - [`subscribe`]: a private queue bound to an exchange (for the two above).
//! - [`server`]: [`run`]: connect (with backoff), declare, consume with a prefetch, reconnect.
//! - [`job`]: one request: deadline, progress messages, reply or error reply, ack.
//! - [`trace`]: the job's span in the caller's trace (W3C `traceparent`).
//! - [`patients`]: deterministic fake patient data and the summary built from it.
//! - [`care`]: which caller (`x-ferry-user`) may see which patient.
//! - [`error`]: [`WorkerError`] (connection-level) and [`RequestError`] (error replies).

pub mod cancel;
pub mod care;
pub mod config;
pub mod error;
pub mod job;
pub mod patients;
pub mod presence;
pub mod server;
pub mod subscribe;
pub mod trace;

pub use config::Config;
pub use error::{RequestError, WorkerError};
pub use server::{declare_queue, run};
