//! Opening a Ferry session over WebSocket: the handshake with the `ferry.v1` subprotocol,
//! then HELLO → WELCOME. Shared by the native load client and the connections test.

use std::time::Duration;

use ferry_protocol::{Frame, Hello, Limits, SUBPROTOCOL};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, handshake::client::Request};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{BenchError, Result};

/// How long the handshake plus HELLO → WELCOME may take.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The client name sent in HELLO.
pub const CLIENT_NAME: &str = concat!("ferry-bench/", env!("CARGO_PKG_VERSION"));

/// The access token every HELLO of this process carries (set once, when the benchmark's
/// bridge authenticates).
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes every later HELLO carry `token`.
pub fn use_token(token: String) {
    let _ = TOKEN.set(token);
}

/// The token HELLO carries, if any.
pub fn token() -> Option<&'static str> {
    TOKEN.get().map(String::as_str)
}

/// A WebSocket upgrade request for `url` asking for the Ferry subprotocol.
pub fn request(url: &str) -> Result<Request> {
    let mut req = url.into_client_request()?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(req)
}

/// Connects to `url` (TCP_NODELAY on, as browsers and Node do), then opens a session.
pub async fn open(
    url: &str,
    config: Option<WebSocketConfig>,
) -> Result<(WebSocketStream<MaybeTlsStream<TcpStream>>, Limits)> {
    let fut = async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(request(url)?, config, true).await?;
        let limits = hello(&mut ws).await?;
        Ok((ws, limits))
    };
    tokio::time::timeout(OPEN_TIMEOUT, fut)
        .await
        .map_err(|_| BenchError::Timeout(format!("opening a session at {url}")))?
}

/// Sends HELLO and waits for WELCOME; returns the limits the bridge announced.
pub async fn hello<S>(ws: &mut WebSocketStream<S>) -> Result<Limits>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello = Frame::Hello(Hello {
        client: Some(CLIENT_NAME),
        token: token(),
        ..Hello::default()
    });
    ws.send(Message::Binary(hello.encode().into())).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            Message::Binary(data) => {
                return match Frame::decode_from_bridge(&data) {
                    Ok(Frame::Welcome(w)) => Ok(w.limits),
                    Ok(Frame::Error(e)) => Err(BenchError::Protocol(format!(
                        "bridge refused the session: {} ({})",
                        e.message,
                        e.code.as_str()
                    ))),
                    Ok(other) => Err(BenchError::Protocol(format!(
                        "expected WELCOME, got {}",
                        other.kind_name()
                    ))),
                    Err(e) => Err(BenchError::Protocol(format!("bad frame: {e}"))),
                };
            }
            Message::Close(frame) => {
                return Err(BenchError::Protocol(format!(
                    "bridge closed the socket before WELCOME: {frame:?}"
                )));
            }
            _ => {}
        }
    }
    Err(BenchError::Protocol("socket ended before WELCOME".into()))
}
