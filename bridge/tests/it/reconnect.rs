//! Broker loss: pending requests fail with broker_unavailable (not a timeout), the bridge
//! reconnects by itself, and the same socket works again.

use std::time::Duration;

use crate::support::{Client, STEP, TestBridge, Worker, unique};
use ferry_protocol::{Ack, Frame, Hello};

/// Closes this bridge's AMQP connections from the broker side (`rabbitmqctl`).
/// `None` when `rabbitmqctl` is not available (or may not talk to the node).
async fn close_bridge_connections(instance: &str) -> Option<usize> {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut closed = 0;
    for line in text.lines().filter(|l| l.contains(instance)) {
        let pid = line.split_whitespace().next().unwrap();
        let st = tokio::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test: simulated broker failure"])
            .output()
            .await
            .unwrap();
        assert!(st.status.success(), "{st:?}");
        closed += 1;
    }
    Some(closed)
}

#[tokio::test]
async fn broker_loss_fails_pending_fast_and_the_bridge_reconnects() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("loss")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client
        .request("before", &worker.queue, b"", Some(30_000))
        .await;
    worker.next().await; // received, never answered

    let instance = bridge.instance.clone();
    let n = close_bridge_connections(&instance).await;
    let n = n.expect("rabbitmqctl (a test prerequisite) closes the bridge's connections");
    assert_eq!(n, 2, "publish and consume connections");

    let (id, code, ..) = client.recv().await.error();
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("before"), "broker_unavailable")
    );
    assert_eq!(bridge.stats.snapshot().pending, 0);

    // The bridge reconnects; the same socket works again (its reply queue is redeclared).
    let deadline = tokio::time::Instant::now() + STEP;
    for attempt in 1.. {
        let id = format!("after-{attempt}");
        client.request(&id, &worker.queue, b"", Some(5_000)).await;
        tokio::select! {
            frame = client.recv() => {
                let (_, code, ..) = frame.error();
                assert_eq!(code, "broker_unavailable");
                assert!(tokio::time::Instant::now() < deadline, "no reconnect");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            req = worker.next() => {
                worker.reply(&req, b"back").await;
                assert_eq!(client.recv().await.reply(), (id, b"back".to_vec()));
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_resumable_session_keeps_its_requests_through_a_broker_connection_loss() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("loss-resumable")).await;
    let hello = Hello {
        client: Some("reconnect-tests"),
        acks: true,
        token: None,
        ..Hello::default()
    };
    let (mut client, token, _) = Client::hello(&bridge.url(), hello).await;
    assert!(token.is_some(), "resumable");
    client
        .request("kept", &worker.queue, b"", Some(30_000))
        .await;
    let req = worker.next().await;
    // The broker took it, and the reply is awaited: ACCEPTED ~200 ms after the confirm, so a
    // resume would attach it rather than send it again.
    assert!(client.nothing_within(Duration::from_millis(800)).await);
    assert_eq!(
        client.accepted, 1,
        "the pending request was reported ACCEPTED"
    );

    let instance = bridge.instance.clone();
    let n = close_bridge_connections(&instance).await;
    assert!(
        n.is_some(),
        "rabbitmqctl (a test prerequisite) closes the bridge's connections"
    );
    // The broker kept the session's reply queue (only the connection went): the worker's
    // reply waits there, and reaches the client once the bridge consumes it again.
    worker.reply(&req, b"kept").await;
    assert_eq!(
        client.recv().await.reply(),
        ("kept".into(), b"kept".to_vec())
    );
    client.send(Frame::Ack(Ack { ids: vec!["kept"] })).await;
    bridge.until("nothing pending", |s| s.pending == 0).await;
}

#[tokio::test]
async fn the_bridge_asks_the_broker_for_heartbeats() {
    let bridge = TestBridge::start(|c| c.amqp_heartbeat = Duration::from_secs(7)).await;
    let out = tokio::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "timeout",
            "client_properties",
        ])
        .output()
        .await
        .ok()
        .filter(|o| o.status.success());
    let out = out.expect("rabbitmqctl (a test prerequisite) lists the connections");
    let text = String::from_utf8_lossy(&out.stdout);
    let mine: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&bridge.instance))
        .collect();
    assert_eq!(mine.len(), 2, "publish and consume connections: {text}");
    for line in mine {
        assert_eq!(line.split_whitespace().next(), Some("7"), "{line}");
    }
}
