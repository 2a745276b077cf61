//! Operations: health, readiness and metrics, static files, the drain on shutdown, and the binary's
//! CLI contract (stdout line, SIGTERM).

use std::time::Duration;

use crate::support::{Client, STEP, TestBridge, Worker, http_get, unique};
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

/// One request answered with the worker's own time, one timed out: the latency histograms
/// are labelled by the allowlist entry (never the queue a client named) and the outcome, and
/// the queue wait is the request's time minus the worker's.
#[tokio::test]
async fn latency_histograms_by_allowlist_entry_and_outcome() {
    let bridge = TestBridge::start(|_| {}).await;
    let queue = unique("test.metrics");
    let mut worker = Worker::start(&queue).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("ok", &queue, b"{}", None).await;
    let req = worker.next().await;
    let mut h = crate::support::headers(&[]);
    h.insert(
        "x-ferry-worker-ms".into(),
        lapin::types::AMQPValue::LongLongInt(0),
    );
    worker.reply_with(&req, b"{}", h).await;
    assert_eq!(client.recv().await.reply().0, "ok");
    client.request("slow", &queue, b"{}", Some(50)).await;
    let (_, code, ..) = client.recv().await.error();
    assert_eq!(code, "timeout");
    let text = http_get(bridge.admin, "/metrics").await;
    for line in [
        "ferry_request_duration_seconds_count{destination=\"test.*\",outcome=\"ok\"} 1\n",
        "ferry_request_duration_seconds_count{destination=\"test.*\",outcome=\"timeout\"} 1\n",
        "ferry_publish_confirm_seconds_count{destination=\"test.*\"} 2\n",
        "ferry_worker_duration_seconds_bucket{destination=\"test.*\",le=\"0.001\"} 1\n",
        "ferry_queue_wait_seconds_count{destination=\"test.*\"} 1\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert!(!text.contains(&queue), "queue names are not labels");
    // Every series the dashboard queries exists, and docs/operations.md lists every family.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dashboard = std::fs::read_to_string(format!("{root}/deploy/grafana/ferry.json")).unwrap();
    let doc = std::fs::read_to_string(format!("{root}/docs/operations.md")).unwrap();
    let names = |s: &str| -> std::collections::BTreeSet<String> {
        s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("ferry_"))
            .map(str::to_owned)
            .collect()
    };
    let series: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    for name in names(&dashboard) {
        assert!(
            series.contains(&name),
            "the dashboard queries {name}, not in /metrics"
        );
    }
    let families: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let documented = names(&doc);
    for family in &families {
        assert!(
            documented.contains(family),
            "docs/operations.md misses {family}"
        );
    }
    for counter in ["ferry_received_bytes_total", "ferry_sent_bytes_total"] {
        let value: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(counter)?.trim().parse().ok())
            .unwrap_or(0);
        assert!(value > 0, "{counter} counts frames: {text}");
    }
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
}

/// The next line the binary printed (within [`STEP`]).
async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut tokio::io::Lines<R>) -> String {
    tokio::time::timeout(STEP, lines.next_line())
        .await
        .expect("a line in time")
        .expect("stdout readable")
        .expect("the binary still runs")
}

#[tokio::test]
async fn binary_prints_its_address_and_drains_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-bridge"))
        .args(["--listen", "127.0.0.1:0", "--allow", "test.*"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .env("FERRY_AMQP_URL", crate::support::amqp_url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = next_line(&mut lines).await;
    let rest = line
        .strip_prefix("ferry-bridge listening on http://")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let (addr, ws) = rest.split_once(' ').unwrap();
    assert_eq!(ws, format!("(socket ws://{addr}/ws)"));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert!(http_get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    // The second line: the admin listener, where the metrics are (and only there).
    let line = next_line(&mut lines).await;
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

/// The binary at `RUST_LOG=trace` with `--log-format json`, through a resumable session's
/// life (an authenticated HELLO, a reply, a timeout, a cancel, a refusal, a resume): every
/// line is a JSON object; request-level lines carry session, id and destination; no line
/// holds a body, the access token or a resume token (not even hex-encoded).
#[tokio::test]
async fn json_logs_at_trace_carry_ids_and_never_bodies_or_tokens() {
    use ferry_protocol::{Cancel, Frame, Hello};
    use tokio::io::{AsyncBufReadExt, BufReader};
    let secret = format!("log-secret-{}", uuid::Uuid::new_v4());
    let secret_file = std::env::temp_dir().join(format!("ferry-log-{}", uuid::Uuid::new_v4()));
    std::fs::write(&secret_file, &secret).unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "sub": "log-test-user", "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-bridge"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--allow", "test.*", "--log-format", "json"])
        .arg("--jwt-secret-file")
        .arg(&secret_file)
        .env("FERRY_AMQP_URL", crate::support::amqp_url())
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let logs = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            all.push(line);
        }
        all
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = next_line(&mut stdout).await;
    let addr = line
        .strip_prefix("ferry-bridge listening on http://")
        .and_then(|r| r.split_once(' '))
        .map(|(a, _)| a.to_owned())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let url = format!("ws://{addr}/ws");
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    tokio::time::timeout(STEP, async {
        while !http_get(addr, "/readyz").await.starts_with("HTTP/1.1 200") {
            tokio::time::sleep(Duration::from_millis(20)).await; // polling: no event to await
        }
    })
    .await
    .expect("the bridge connects to the broker");
    let queue = unique("test.logs");
    let mut worker = Worker::start(&queue).await;
    let body = format!("{{\"note\":\"BODY-{}\"}}", uuid::Uuid::new_v4());
    let reply_body = format!("{{\"note\":\"REPLY-{}\"}}", uuid::Uuid::new_v4());
    let hello = |resume, resume_token| Hello {
        client: Some("log-test"),
        resume,
        resume_token,
        acks: true,
        token: Some(&token),
        ..Hello::default()
    };
    let (mut client, first_resume) = {
        let (c, rt, _) = Client::hello(&url, hello(None, None)).await;
        (c, rt.expect("a resumable session"))
    };
    client
        .request("answered", &queue, body.as_bytes(), None)
        .await;
    let req = worker.next().await;
    worker.reply(&req, reply_body.as_bytes()).await;
    assert_eq!(client.recv().await.reply().0, "answered");
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    client
        .send(Frame::Request(ferry_protocol::Request {
            id: "slow",
            destination: &queue,
            content_type: Some("application/json"),
            timeout_ms: Some(50),
            idle_timeout_ms: None,
            headers: vec![("traceparent", traceparent)],
            body: body.as_bytes(),
        }))
        .await;
    assert_eq!(client.recv().await.error().1, "timeout");
    client
        .request("dropped", &queue, body.as_bytes(), None)
        .await;
    client.send(Frame::Cancel(Cancel { id: "dropped" })).await;
    client
        .request("refused", "other.queue", body.as_bytes(), None)
        .await;
    assert_eq!(client.recv().await.error().1, "forbidden");
    let session = client.session.clone();
    drop(client); // no close handshake: the session detaches
    let (resumed, second_resume, was_resumed) =
        Client::hello(&url, hello(Some(&session), Some(&first_resume))).await;
    assert!(was_resumed);
    let second_resume = second_resume.unwrap();
    drop(resumed);
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(STEP, child.wait())
        .await
        .unwrap()
        .unwrap();
    let lines = tokio::time::timeout(STEP, logs).await.unwrap().unwrap();
    drop(worker);
    let _ = std::fs::remove_file(&secret_file);

    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let secrets = [
        ("request body", body.clone()),
        ("reply body", reply_body.clone()),
        ("access token", token.clone()),
        ("resume token", first_resume.clone()),
        ("next resume token", second_resume.clone()),
        ("JWT secret", secret.clone()),
    ];
    let mut events = Vec::new();
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        for (what, s) in &secrets {
            let short = &s[s.len().saturating_sub(24)..];
            assert!(
                !line.contains(short) && !line.contains(&hex(short)),
                "the {what} is in a log line: {line}"
            );
        }
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
        events.push(v);
    }
    assert!(
        events.len() > 20,
        "trace shows the session's life: {lines:?}"
    );
    let find = |message: &str| {
        events
            .iter()
            .find(|e| e["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
    };
    for (message, id, dest) in [
        ("request timed out", "slow", queue.as_str()),
        ("request cancelled", "dropped", queue.as_str()),
        ("request refused", "refused", "other.queue"),
    ] {
        let e = find(message);
        assert_eq!(e["session"], session.as_str(), "{e}");
        assert_eq!(e["id"], id, "{e}");
        assert_eq!(e["destination"], dest, "{e}");
    }
    let trace = "0af7651916cd43dd8448eb211c80319c";
    assert_eq!(find("request timed out")["trace_id"], trace);
    let span = find("request span ended");
    assert_eq!(
        (&span["trace_id"], &span["id"], &span["outcome"]),
        (
            &serde_json::json!(trace),
            &serde_json::json!("slow"),
            &serde_json::json!("timeout")
        ),
        "{span}"
    );
    assert_eq!(span["parent_id"], "b7ad6b7169203331");
    assert_eq!(span["session"], session.as_str());
}

/// W3C Trace Context: a request's `traceparent` reaches the worker with the same trace id
/// and the bridge's span as parent (a fresh span id), `tracestate` unchanged; a malformed
/// `traceparent` is refused with `bad_request` naming the header.
#[tokio::test]
async fn traceparent_reaches_the_worker_as_a_child_of_the_bridges_span() {
    use ferry_protocol::{Frame, Request};
    let bridge = TestBridge::start(|_| {}).await;
    let queue = unique("test.trace");
    let mut worker = Worker::start(&queue).await;
    let mut client = Client::connect(&bridge.url()).await;
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = |id, traceparent| {
        Frame::Request(Request {
            id,
            destination: &queue,
            content_type: Some("application/json"),
            timeout_ms: None,
            idle_timeout_ms: None,
            headers: vec![("traceparent", traceparent), ("tracestate", "vendor=x")],
            body: b"{}",
        })
    };
    client.send(traced("traced", caller)).await;
    let req = worker.next().await;
    let headers = req.properties.headers().clone().unwrap();
    let text = |name: &str| match headers.inner().get(name) {
        Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{name}: {other:?}"),
    };
    let sent = text("traceparent");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "the bridge's span is the parent"
    );
    assert!(parts[2].len() == 16 && parts[2] != "0000000000000000");
    assert_eq!(parts[3], "01");
    assert_eq!(text("tracestate"), "vendor=x");
    worker.reply(&req, b"{}").await;
    assert_eq!(client.recv().await.reply().0, "traced");

    client.send(traced("malformed", "00-abc-def-01")).await;
    let (id, code, message, ..) = client.recv().await.error();
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("malformed"), "bad_request")
    );
    assert!(message.contains("traceparent"), "{message}");
}
