//! HTTP on the listening port (`/ws` upgrade, `/healthz`, `/readyz`, static files) and on the
//! admin port (`/metrics` in Prometheus text, `/healthz`, `/readyz`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tracing::debug;

use crate::Shared;
use crate::auth::rpc::Peer;
use crate::handshake::{self, Verdict};
use crate::{session, static_files};

type Body = Full<Bytes>;

/// Serves one accepted TCP connection: over TLS when the bridge has a certificate (the
/// handshake bounded by `--header-read-timeout`), else as it is.
pub async fn accept(
    shared: Arc<Shared>,
    mut tcp: TcpStream,
    mut peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    if shared.config.proxy_protocol && shared.admission.trusts(peer.ip()) {
        let header = crate::proxy_protocol::read(&mut tcp, peer);
        match tokio::time::timeout(shared.config.header_read_timeout, header).await {
            Ok(Ok(client)) => peer = client,
            Ok(Err(e)) => return debug!(error = %e, %peer, "connection from the proxy dropped"),
            Err(_) => return debug!(%peer, "PROXY header timed out"),
        }
    }
    let Some(tls) = &shared.tls else {
        return serve(shared, tcp, peer, permit, Port::Public).await;
    };
    let handshake = tls.acceptor().accept(tcp);
    match tokio::time::timeout(shared.config.header_read_timeout, handshake).await {
        Ok(Ok(stream)) => serve(shared, stream, peer, permit, Port::Public).await,
        Ok(Err(e)) => debug!(error = %e, %peer, "TLS handshake failed"),
        Err(_) => debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves one connection from `peer` until it closes, upgrades, or the bridge drains;
/// `permit` is its place under `--max-connections`, held until the socket (if it upgrades)
/// ends too.
pub async fn serve<IO>(
    shared: Arc<Shared>,
    io: IO,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    port: Port,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let svc_shared = shared.clone();
    let permit = Arc::new(permit);
    let svc = service_fn(move |req| {
        let shared = svc_shared.clone();
        let permit = permit.clone();
        async move {
            let resp = match port {
                Port::Public => route(shared, req, peer, permit).await,
                Port::Admin => admin(&shared, req.uri().path()),
            };
            Ok::<_, Infallible>(resp)
        }
    });
    // The timer makes hyper enforce the header-read timeout (without one it is silently
    // off): a client that trickles its request headers, or idles between keep-alive
    // requests, is dropped.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_read_timeout)
        .max_buf_size(16 * 1024)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { debug!(error = %e, "http connection error") },
        _ = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Answers a connection over `--max-connections` with 503 and closes it (bounded in time).
pub async fn too_many(mut tcp: TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BODY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
        Content-Length: 21\r\nConnection: close\r\nRetry-After: 5\r\n\r\ntoo many connections\n";
    use tokio::io::AsyncReadExt;
    // Write, half-close, then read what the client sent until it closes (all bounded): a
    // socket closed with unread data resets the connection and loses the answer.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        tcp.write_all(BODY).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 1024];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    permit: Arc<OwnedSemaphorePermit>,
) -> Response<Body> {
    match req.uri().path() {
        "/ws" => upgrade(shared, req, peer, permit),
        path @ ("/healthz" | "/readyz") => health(&shared, path),
        path => static_file(&shared, req.method(), path).await,
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// `--listen`: sockets, health, static files.
    Public,
    /// `--admin-listen`: metrics and health.
    Admin,
}

fn health(shared: &Shared, path: &str) -> Response<Body> {
    if path == "/healthz" {
        text(StatusCode::OK, "ok\n")
    } else if shared.shutdown.is_cancelled() {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if let Some(links) = shared.broker.current() {
        text(
            StatusCode::OK,
            format!("ready: broker node {}\n", links.node),
        )
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "broker not connected\n")
    }
}

fn admin(shared: &Shared, path: &str) -> Response<Body> {
    match path {
        "/metrics" => {
            let open = shared.config.max_connections as usize
                - shared
                    .connections
                    .available_permits()
                    .min(shared.config.max_connections as usize);
            let body = shared.stats.prometheus(shared.broker.health(), open as u64);
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" | "/readyz" => health(shared, path),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn static_file(shared: &Shared, method: &Method, path: &str) -> Response<Body> {
    let Some(root) = &shared.config.static_dir else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match static_files::load(root, path).await {
        Some((ctype, data)) => {
            let body = if method == Method::HEAD {
                Bytes::new()
            } else {
                data
            };
            let mut r = Response::new(Full::new(body));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(header::CONTENT_SECURITY_POLICY, shared.csp.clone());
            r
        }
        None => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn upgrade(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    permit: Arc<OwnedSemaphorePermit>,
) -> Response<Body> {
    if shared.shutdown.is_cancelled() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "bridge shutting down\n");
    }
    let (accept, verdict) = match handshake::check(&req, &shared.config.allowed_origins) {
        Ok(v) => v,
        Err(r) => return text(r.status, r.message),
    };
    let ip = shared.admission.client_ip(peer.ip(), req.headers());
    let peer = Peer {
        origin: req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .filter(|o| o.len() <= 256)
            .map(str::to_owned),
        addr: Some(ip),
    };
    let place = match shared.admission.admit(ip) {
        Ok(p) => p,
        Err(refusal) => {
            shared.stats.connections_refused_total.inc();
            debug!(%ip, ?refusal, "socket refused");
            return text(StatusCode::TOO_MANY_REQUESTS, refusal.message());
        }
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    let protocol = match &verdict {
        Verdict::Accept => Some(ferry_protocol::SUBPROTOCOL.to_owned()),
        Verdict::Refuse { protocol, .. } => protocol.clone(),
    };
    if let Some(p) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        // Both places (per address, global) are held until the socket ends.
        let _held = (place, permit);
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return debug!(error = %e, "upgrade failed"),
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(ws_config(shared.config.max_frame_bytes)),
        )
        .await;
        match verdict {
            Verdict::Accept => session::run(shared, ws, peer).await,
            Verdict::Refuse { reason, .. } => refuse(ws, reason).await,
        }
    });
    resp
}

/// Frames fed to a socket are written out when this much is buffered, or at the flush that
/// ends each batch ([`crate::outbound`]): a batch of replies is one `sendto`. The buffer grows
/// only as frames are fed (an idle socket holds none of it); the outbound byte budget bounds it.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Socket limits. Messages up to twice `--max-frame-bytes` are read and answered with a
/// `too_large` error naming the request; bigger ones close the socket with 1009.
fn ws_config(max_frame_bytes: u32) -> WebSocketConfig {
    let limit = (max_frame_bytes as usize).saturating_mul(2).max(1024);
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(WRITE_BATCH_BYTES)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

async fn refuse<S>(mut ws: WebSocketStream<S>, reason: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    debug!(%reason, "socket refused");
    let frame = CloseFrame {
        code: CloseCode::Protocol,
        reason: reason.into(),
    };
    let _ = ws.close(Some(frame)).await;
    // Read until the peer answers the close (bounded), so the reason is delivered cleanly.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
