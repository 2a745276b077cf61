//! `ferry-bridge call`: one request (or gather) from a terminal, spoken over the wire protocol
//! (the protocol crate, as any client in another language would), the reply on stdout.
//!
//! Exit status: 0 with a reply (or a gather's end); 1 when the call failed (stderr names the
//! error code: `timeout`, `remote`, `no_route`, ...); 2 for a bad invocation or a bridge that
//! cannot be reached.

use std::io::Read as _;
use std::time::Duration;

use clap::Parser;
use ferry_protocol::{Cancel, Frame, Gather, Hello, Request, validate};

use super::render::{json_value, one_line, pretty, print_body};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Largest body read from stdin, and largest reply frame accepted.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// Time to connect and be welcomed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past the request's timeout the CLI waits for the bridge's own `timeout` error.
const GRACE: Duration = Duration::from_secs(5);

/// `ferry-bridge call` options.
#[derive(Debug, Parser)]
#[command(
    name = "ferry-bridge call",
    about = "Calls a destination through a Ferry bridge and prints the reply",
    override_usage = "ferry-bridge call [OPTIONS] DEST [BODY|-]\n       ferry-bridge call [OPTIONS] --gather EXCHANGE [BODY|-]"
)]
pub struct CallArgs {
    /// The bridge's socket URL (`ws://HOST:PORT/ws`, or `wss://` for a bridge behind TLS).
    #[arg(long, env = "FERRY_URL", default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// DEST (the queue) then BODY: JSON (sent as `application/json`), other text (sent as
    /// text), or `-` to read stdin; no BODY sends an empty body. With `--gather`, BODY only.
    #[arg(value_name = "DEST [BODY]", num_args = 0..=2)]
    pub args: Vec<String>,
    /// How long to wait for the reply (a gather: its window).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// A header for the worker, `name=value` (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// The access token (for a bridge that authenticates).
    #[arg(long, env = "FERRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print progress messages to stderr, one line each.
    #[arg(long)]
    pub progress: bool,
    /// Scatter-gather from this exchange: print every reply in the window, one JSON line each.
    #[arg(long, value_name = "EXCHANGE")]
    pub gather: Option<String>,
    /// With `--gather`: the routing key.
    #[arg(long, requires = "gather")]
    pub routing_key: Option<String>,
    /// With `--gather`: stop after this many replies.
    #[arg(long, requires = "gather")]
    pub max_replies: Option<u32>,
    /// The body's content type (default: JSON if it parses, else text).
    #[arg(long)]
    pub content_type: Option<String>,
    /// With `wss://`: PEM authorities to trust besides the system's.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// Why a call did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The invocation is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The bridge could not be reached or broke the protocol (exit 2).
    #[error("{0}")]
    Connection(String),
    /// The call failed with an error code (exit 1).
    #[error("{code}: {message}")]
    Failed {
        /// The wire code.
        code: String,
        /// What the bridge (or worker) said.
        message: String,
    },
}

impl CallError {
    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Failed { .. } => 1,
            Self::Usage(_) | Self::Connection(_) => 2,
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs the call; the reply goes to stdout, progress and errors to stderr.
pub async fn call(args: &CallArgs) -> Result<(), CallError> {
    let (dest, body) = match (&args.gather, args.args.as_slice()) {
        (Some(_), [_, _]) => {
            return Err(CallError::Usage(
                "with --gather, give only the BODY (the exchange is --gather's value)".into(),
            ));
        }
        (Some(exchange), rest) => (exchange.clone(), rest.first().cloned()),
        (None, [dest, rest @ ..]) => (dest.clone(), rest.first().cloned()),
        (None, []) => return Err(CallError::Usage("missing DEST (the queue to call)".into())),
    };
    let body = read_body(body.as_deref())?;
    let content_type = match &args.content_type {
        Some(ct) => Some(ct.clone()),
        None if body.is_empty() => None,
        None if serde_json::from_slice::<serde_json::Value>(&body).is_ok() => {
            Some("application/json".into())
        }
        None => Some("text/plain; charset=utf-8".into()),
    };
    let headers = parse_headers(&args.headers)?;
    let timeout_ms = u32::try_from(args.timeout.as_millis())
        .unwrap_or(u32::MAX)
        .max(1);
    let mut ws = connect(&args.url, args.token.as_deref(), args.ca_file.as_deref()).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let frame = match &args.gather {
        Some(_) => Frame::Gather(Gather {
            id: &id,
            destination: &dest,
            routing_key: args.routing_key.as_deref(),
            content_type: content_type.as_deref(),
            timeout_ms: Some(timeout_ms),
            max_replies: args.max_replies,
            headers: pairs,
            body: &body,
        }),
        None => Frame::Request(Request {
            id: &id,
            destination: &dest,
            content_type: content_type.as_deref(),
            timeout_ms: Some(timeout_ms),
            idle_timeout_ms: None,
            headers: pairs,
            body: &body,
        }),
    };
    send(&mut ws, frame).await?;
    let deadline = tokio::time::sleep(args.timeout + GRACE);
    tokio::pin!(deadline);
    loop {
        let msg = tokio::select! {
            msg = ws.next() => msg,
            () = &mut deadline => return Err(failed("timeout", "no answer from the bridge in time")),
            _ = tokio::signal::ctrl_c() => {
                let _ = send(&mut ws, Frame::Cancel(Cancel { id: &id })).await;
                let _ = ws.close(None).await;
                return Err(failed("cancelled", "interrupted"));
            }
        };
        let data = match msg {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Close(close))) => {
                let why = close.map_or_else(String::new, |c| {
                    format!(" ({} {})", u16::from(c.code), c.reason)
                });
                return Err(failed(
                    "disconnected",
                    &format!("the bridge closed the socket{why}"),
                ));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(failed("disconnected", &e.to_string())),
            None => return Err(failed("disconnected", "the bridge closed the socket")),
        };
        let frame = Frame::decode_from_bridge(&data)
            .map_err(|e| CallError::Connection(format!("the bridge sent a bad frame: {e}")))?;
        match frame {
            Frame::Reply(r) if r.id == id => {
                print_body(r.body, r.content_type)?;
                return Ok(());
            }
            Frame::Progress(p) if p.id == id && args.progress => {
                eprintln!("progress: {}", one_line(p.body, p.content_type));
            }
            Frame::Part(p) if p.id == id => {
                let value = json_value(p.body, p.content_type);
                let line = match p.remote_code {
                    Some(code) => serde_json::json!({
                        "replier": p.replier,
                        "error": { "code": code, "message": p.message, "details": value },
                    }),
                    None => serde_json::json!({ "replier": p.replier, "value": value }),
                };
                println!("{line}");
            }
            Frame::Done(d) if d.id == id => return Ok(()),
            Frame::Error(e) if e.id.is_none_or(|i| i == id) => {
                let mut message = e.message.to_owned();
                if let Some(rc) = e.remote_code {
                    message = format!("{rc}: {message}");
                }
                if !e.details.is_empty() {
                    message = format!("{message}\n{}", pretty(e.details, e.content_type));
                }
                return Err(failed(e.code.as_str(), &message));
            }
            _ => {}
        }
    }
}

fn failed(code: &str, message: &str) -> CallError {
    CallError::Failed {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

/// BODY as given, or stdin for `-` (at most [`MAX_BYTES`]).
fn read_body(body: Option<&str>) -> Result<Vec<u8>, CallError> {
    match body {
        None => Ok(Vec::new()),
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .take(MAX_BYTES as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(|e| CallError::Usage(format!("cannot read the body from stdin: {e}")))?;
            if buf.len() > MAX_BYTES {
                return Err(CallError::Usage(format!(
                    "the body on stdin is over {MAX_BYTES} bytes"
                )));
            }
            Ok(buf)
        }
        Some(text) => Ok(text.as_bytes().to_vec()),
    }
}

/// `name=value` pairs, checked with the bridge's own rules.
fn parse_headers(raw: &[String]) -> Result<Vec<(String, String)>, CallError> {
    raw.iter()
        .map(|h| {
            let (name, value) = h
                .split_once('=')
                .ok_or_else(|| CallError::Usage(format!("--header {h:?}: expected NAME=VALUE")))?;
            validate::header(name, value)
                .map_err(|e| CallError::Usage(format!("--header {h:?}: {e}")))?;
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The TLS settings of a `wss://` URL: the system's roots and those of `ca_file`.
fn tls(ca_file: Option<&std::path::Path>) -> Result<Connector, CallError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert); // one unusable system root is no reason to give up
    }
    if let Some(path) = ca_file {
        let bad = |e: &dyn std::fmt::Display| {
            CallError::Usage(format!("--ca-file {}: {e}", path.display()))
        };
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| CallError::Usage(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}

/// Opens the socket (`ferry.v1`), says HELLO and waits for WELCOME.
async fn connect(
    url: &str,
    token: Option<&str>,
    ca_file: Option<&std::path::Path>,
) -> Result<Ws, CallError> {
    let connector = if url.starts_with("wss://") {
        tls(ca_file)?
    } else {
        Connector::Plain
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| CallError::Usage(format!("--url {url:?}: {e}")))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(ferry_protocol::SUBPROTOCOL),
    );
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_BYTES))
        .max_frame_size(Some(MAX_BYTES));
    let open = async {
        let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            false,
            Some(connector),
        )
        .await
        .map_err(|e| CallError::Connection(format!("cannot connect to {url}: {e}")))?;
        let hello = Hello {
            client: Some(concat!("ferry-bridge-call/", env!("CARGO_PKG_VERSION"))),
            token,
            ..Hello::default()
        };
        send(&mut ws, Frame::Hello(hello)).await?;
        while let Some(msg) = ws.next().await {
            let Ok(Message::Binary(data)) = msg else {
                continue;
            };
            match Frame::decode_from_bridge(&data) {
                Ok(Frame::Welcome(_)) => return Ok(ws),
                Ok(Frame::Error(e)) => return Err(failed(e.code.as_str(), e.message)),
                _ => {}
            }
        }
        Err(CallError::Connection(format!(
            "{url} closed the socket before WELCOME"
        )))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, open)
        .await
        .unwrap_or_else(|_| {
            Err(CallError::Connection(format!(
                "{url}: no WELCOME within {CONNECT_TIMEOUT:?}"
            )))
        })
}

async fn send(ws: &mut Ws, frame: Frame<'_>) -> Result<(), CallError> {
    ws.send(Message::Binary(frame.encode().into()))
        .await
        .map_err(|e| CallError::Connection(format!("cannot send: {e}")))
}
