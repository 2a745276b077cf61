//! The harness's error type: what went wrong, with the cause attached for the log.

use thiserror::Error;

/// Why a benchmark step failed.
#[derive(Debug, Error)]
pub enum BenchError {
    /// The broker refused or dropped something (connect, declare, publish, consume).
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    /// The WebSocket to the bridge failed (connect, handshake, read, write).
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// A local I/O operation failed (spawning a child, reading /proc, writing a report).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The bridge sent something the protocol does not allow here.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A child process did not start or report as expected.
    #[error("child process: {0}")]
    Child(String),
    /// Results could not be encoded or decoded.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A load run did not finish in time (replies stopped arriving).
    #[error("timed out: {0}")]
    Timeout(String),
    /// Drawing the plot failed.
    #[error("plot: {0}")]
    Plot(String),
}

impl BenchError {
    /// A stable short code for logs and the results file.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Amqp(_) => "broker",
            Self::Ws(_) => "websocket",
            Self::Io(_) => "io",
            Self::Protocol(_) => "protocol",
            Self::Child(_) => "child",
            Self::Json(_) => "json",
            Self::Timeout(_) => "timeout",
            Self::Plot(_) => "plot",
        }
    }
}

/// Result alias for the harness.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
