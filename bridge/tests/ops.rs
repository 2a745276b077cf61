//! Operations: health, readiness and metrics, static files, the drain on shutdown, and the binary's
//! CLI contract (stdout line, SIGTERM).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Client, STEP, TestBridge, Worker, http_get, unique};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn health_and_readiness() {
    let bridge = TestBridge::start(|_| {}).await;
    assert!(
        http_get(bridge.addr, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        http_get(bridge.addr, "/readyz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        http_get(bridge.addr, "/nope")
            .await
            .starts_with("HTTP/1.1 404")
    );
    let metrics = http_get(bridge.admin, "/metrics").await;
    assert!(metrics.contains("ferry_broker_connected 1"), "{metrics}");
    assert!(
        metrics.contains("ferry_broker_restarts_total 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferry_errors_total{code=\"no_route\"}"),
        "{metrics}"
    );
    let plain = http_get(bridge.addr, "/ws").await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
}

#[tokio::test]
async fn static_files_with_content_types_and_no_traversal() {
    let dir = std::env::temp_dir().join(unique("static"));
    std::fs::create_dir_all(dir.join("pkg")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(dir.join("pkg/app.wasm"), b"\0asm").unwrap();
    std::fs::write(dir.join("pkg/app.js"), "export {}").unwrap();
    let d = dir.clone();
    let bridge = TestBridge::start(move |c| c.static_dir = Some(d)).await;
    let index = http_get(bridge.addr, "/").await;
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("text/html") && index.ends_with("<h1>hi</h1>"));
    let wasm = http_get(bridge.addr, "/pkg/app.wasm").await;
    assert!(wasm.contains("content-type: application/wasm"), "{wasm}");
    let js = http_get(bridge.addr, "/pkg/app.js").await;
    assert!(js.contains("content-type: text/javascript"), "{js}");
    for evil in ["/../Cargo.toml", "/pkg/../../x", "/%2e%2e/x"] {
        let r = http_get(bridge.addr, evil).await;
        assert!(!r.starts_with("HTTP/1.1 200"), "{evil}: {r}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn drain_lets_pending_finish_then_closes_with_1001() {
    let mut bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("drain")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("d", &worker.queue, b"", Some(10_000)).await;
    let req = worker.next().await;
    bridge.shutdown.cancel();
    // New requests are refused while draining; the pending one still completes.
    client
        .request("late", &worker.queue, b"", Some(10_000))
        .await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("late"), "shutting_down")
    );
    worker.reply(&req, b"finished").await;
    assert_eq!(
        client.recv().await.reply(),
        ("d".into(), b"finished".to_vec())
    );
    let close = client.closed().await.expect("close frame");
    assert_eq!(close.code, CloseCode::Away);
    bridge.stopped().await;
    worker.delete().await;
}

#[tokio::test]
async fn drain_timeout_fails_what_is_left() {
    let bridge = TestBridge::start(|c| c.drain_timeout = Duration::from_millis(200)).await;
    let mut worker = Worker::start(&unique("stuck")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("s", &worker.queue, b"", Some(30_000)).await;
    worker.next().await;
    bridge.shutdown.cancel();
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("s"), "shutting_down"));
    assert_eq!(client.closed().await.expect("close").code, CloseCode::Away);
    assert_eq!(bridge.stats.snapshot().pending, 0);
    worker.delete().await;
}

#[tokio::test]
async fn binary_prints_its_address_and_drains_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-bridge"))
        .args(["--listen", "127.0.0.1:0", "--allow", "test.*"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .env("FERRY_AMQP_URL", support::AMQP_URL)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(STEP, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let rest = line
        .strip_prefix("ferry-bridge listening on http://")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let (addr, ws) = rest.split_once(' ').unwrap();
    assert_eq!(ws, format!("(socket ws://{addr}/ws)"));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert!(http_get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    // The second line: the admin listener, where the metrics are (and only there).
    let line = tokio::time::timeout(STEP, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let admin = line
        .strip_prefix("ferry-bridge admin on http://")
        .and_then(|r| r.split_once(' '))
        .map(|(a, _)| a.parse::<std::net::SocketAddr>().unwrap())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    assert!(http_get(admin, "/metrics").await.contains("ferry_sessions"));
    assert!(http_get(addr, "/metrics").await.starts_with("HTTP/1.1 404"));
    let _client = Client::connect(&format!("ws://{addr}/ws")).await;
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(STEP, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(
        lines.next_line().await.unwrap(),
        None,
        "exactly two stdout lines"
    );
}

#[tokio::test]
async fn pings_keep_live_sockets_and_close_silent_ones() {
    let bridge = TestBridge::start(|c| c.ping_interval = Duration::from_millis(100)).await;
    let mut live = Client::connect(&bridge.url()).await;
    let mut silent = Client::connect(&bridge.url()).await;
    // `live` keeps reading (its library answers pings); `silent` reads nothing meanwhile.
    assert!(live.nothing_within(Duration::from_millis(500)).await);
    let close = silent.closed().await.expect("close frame");
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "ping timeout");
    bridge.until("one session left", |s| s.sessions == 1).await;
    assert!(live.nothing_within(Duration::from_millis(100)).await);
}
