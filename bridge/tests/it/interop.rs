//! Interop: the worker is a plain AMQP RPC server written without any Ferry code.
//!
//! `pika_rpc_server_works_unchanged` runs the RabbitMQ-tutorial style server in
//! `fixtures/pika_rpc_server.py` (needs `python3` with `pika`, which
//! `scripts/setup.sh` installs; without it the test fails). The lapin variant below uses only literal header names.

use std::process::Stdio;

use crate::support::{Cleanup, Client, STEP, TestBridge, amqp_url, unique};
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn pika_rpc_server_works_unchanged() {
    let bridge = TestBridge::start(|_| {}).await;
    let queue = unique("pika");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pika_rpc_server.py"
    );
    let mut child = tokio::process::Command::new("python3")
        .args([script, amqp_url(), &queue])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(STEP, lines.next_line())
        .await
        .expect("pika server starts")
        .unwrap();
    assert_eq!(
        ready.as_deref(),
        Some("ready"),
        "pika server did not start (is pika installed? pip install pika)"
    );

    let mut client = Client::connect(&bridge.url()).await;
    client.request("p-1", &queue, b"hello", Some(5_000)).await;
    assert_eq!(
        client.recv().await.reply(),
        ("p-1".into(), b"HELLO".to_vec())
    );
    client.request("p-2", &queue, b"fail", Some(5_000)).await;
    let (id, code, message, remote, details) = client.recv().await.error();
    assert_eq!(id.as_deref(), Some("p-2"));
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("remote", "asked to fail")
    );
    assert_eq!(remote.as_deref(), Some("E_FAIL"));
    assert_eq!(details, br#"{"why":"asked"}"#);
    bridge
        .until("pending back to zero", |s| s.pending == 0)
        .await;
    child.kill().await.unwrap();
}

#[tokio::test]
async fn lapin_rpc_server_with_literal_headers() {
    let bridge = TestBridge::start(|_| {}).await;
    let queue = unique("plain");
    let conn = Connection::connect(amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let args = FieldTable::default();
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    let _cleanup = Cleanup(vec![queue.clone()]);
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let server = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(Ok(d)) = consumer.next().await {
            let deadline = d
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-ferry-deadline").cloned());
            let mut h = FieldTable::default();
            h.insert(
                "x-saw-deadline".into(),
                AMQPValue::LongString(format!("{}", deadline.is_some()).into()),
            );
            let props = BasicProperties::default()
                .with_correlation_id(d.properties.correlation_id().clone().unwrap())
                .with_headers(h);
            ch.basic_publish(
                "".into(),
                d.properties.reply_to().clone().unwrap(),
                BasicPublishOptions::default(),
                &d.data,
                props,
            )
            .await
            .unwrap();
            d.ack(Default::default()).await.unwrap();
        }
    });
    let mut client = Client::connect(&bridge.url()).await;
    client.request("l-1", &queue, b"echo", Some(5_000)).await;
    let got = client.recv().await;
    match got.frame() {
        ferry_protocol::Frame::Reply(r) => {
            assert_eq!((r.id, r.body), ("l-1", &b"echo"[..]));
            assert_eq!(r.headers, vec![("x-saw-deadline", "true")]);
        }
        other => panic!("expected a reply, got {other:?}"),
    }
    server.abort();
    let _ = conn.close(200, "bye".into()).await;
}
