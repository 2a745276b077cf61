//! TLS served by the bridge itself (`--tls-cert`, `--tls-key`): a `wss://` session against
//! the real broker, a plain-text client refused, and a new certificate taken on reload
//! (SIGHUP) without a restart.

use std::path::Path;
use std::sync::Arc;

use crate::support::*;
use ferry_protocol::{Frame, Hello};
use futures_util::{SinkExt, StreamExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Opens a TLS connection trusting `ca`; returns the stream and the server's certificate.
async fn tls_connect(
    addr: std::net::SocketAddr,
    ca: &Path,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the TLS handshake succeeds");
    let seen = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (stream, seen)
}

fn der(pem: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(pem)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn a_wss_session_works_plain_text_is_refused_and_a_reload_takes_a_new_certificate() {
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("ferry-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = certs::authority(&dir);
    let (cert, key) = certs::certificate(&dir, "first");
    let queue = unique("tls.echo");
    let (_w, _task) = echo_worker(&queue).await;
    let b = TestBridge::start(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;

    let (stream, seen) = tls_connect(b.addr, &ca).await;
    assert_eq!(seen, der(&cert));
    let mut req = format!("wss://localhost:{}/ws", b.addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("ferry.v1"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    ws.send(Message::Binary(
        Frame::Hello(Hello::default()).encode().into(),
    ))
    .await
    .unwrap();
    let welcome = ws.next().await.unwrap().unwrap().into_data();
    assert!(matches!(Frame::decode(&welcome), Ok(Frame::Welcome(_))));
    ws.send(Message::Binary(
        request("r", &queue, b"over tls", Some(5_000))
            .encode()
            .into(),
    ))
    .await
    .unwrap();
    let reply = ws.next().await.unwrap().unwrap().into_data();
    assert_eq!(Received(reply).reply(), ("r".into(), b"over tls".to_vec()));

    // Plain HTTP to the TLS port gets no HTTP answer.
    let out = raw_exchange(b.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        !out.unwrap_or_default().starts_with(b"HTTP/1.1 200"),
        "no plain-text service on a TLS port"
    );

    // Replace the files and reload (what SIGHUP does): new connections see the new one.
    let (cert2, key2) = certs::certificate(&dir, "second");
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    b.reloader.reload();
    let (_s, seen) = tls_connect(b.addr, &ca).await;
    assert_eq!(seen, der(&cert2));
}
