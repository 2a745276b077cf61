//! Resumable sessions across a RabbitMQ restart: their reply queues are durable and survive
//! it, the transient replies in them do not, so what they awaited must fail with
//! `broker_unavailable` once the broker is back (attached sessions at once, detached ones on
//! resume), never wait out a timeout. They stop the shared broker, so they are `#[ignore]`d
//! and `scripts/test.sh` runs them alone after everything else, one at a time; a guard starts
//! the broker again whatever happens. The numbers they print are in docs/reliability.md.

use std::time::{Duration, Instant};

use crate::support::restart::{
    assert_broker_reachable, error_after_restart, rabbitmqctl_out, restart_broker, resumable,
};
use crate::support::{Client, TestBridge, Worker, http_get, unique};
use ferry_protocol::{Attach, Hello};

/// Each request's timeout: long, as a dashboard's is; every answer here must come long before.
const TIMEOUT_MS: u32 = 120_000;

/// A resumable session's request in flight across a restart: its reply queue is durable and
/// survives, the transient messages in it do not. The bridge sees the restart (its marker is
/// gone) and fails the request with `broker_unavailable` once the broker is back, instead of
/// leaving it to wait out its two-minute timeout for a reply that may be lost.
#[tokio::test]
#[ignore = "stops the shared RabbitMQ: run alone (scripts/test.sh does, with --ignored)"]
async fn a_resumable_request_across_a_restart_fails_once_the_broker_is_back() {
    assert_broker_reachable();
    let bridge = TestBridge::start(|_| {}).await;
    let queue = unique("across");
    let mut worker = Worker::start(&queue).await;
    let (mut client, token, _) = Client::hello(&bridge.url(), resumable()).await;
    assert!(token.is_some());
    client.request("a1", &queue, b"{}", Some(TIMEOUT_MS)).await;
    let req = worker.next().await; // the worker has it and will never answer
    let reply_to = req.properties.reply_to().as_ref().unwrap().to_string();
    let listed = rabbitmqctl_out(&["list_queues", "name", "durable", "exclusive"]);
    assert!(
        listed
            .lines()
            .any(|l| l == format!("{reply_to}\ttrue\tfalse")),
        "a resumable session's reply queue is durable, not exclusive: {listed}"
    );
    restart_broker(std::future::ready(())).await;
    let back = Instant::now();
    let (id, code) = error_after_restart(&mut client).await;
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("a1"), "broker_unavailable")
    );
    let metrics = http_get(bridge.admin, "/metrics").await;
    assert!(
        metrics.contains("ferry_broker_restarts_total 1\n"),
        "{metrics}"
    );
    let connects = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferry_broker_connects_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(connects >= Some(2), "{metrics}");
    eprintln!(
        "RESULT request across a restart: broker_unavailable {:?} after start_app returned",
        back.elapsed()
    );
    // Service goes on in the same session, on the same (durable) reply queue.
    let mut worker = Worker::start(&queue).await;
    client.request("a2", &queue, b"{}", Some(TIMEOUT_MS)).await;
    let req = worker.next().await;
    assert_eq!(
        req.properties.reply_to().as_ref().unwrap().as_str(),
        reply_to
    );
    worker.reply(&req, b"after").await;
    assert_eq!(
        client.recv().await.reply(),
        ("a2".to_owned(), b"after".to_vec())
    );
}

/// A resumable session detached (its socket cut) when the broker restarts: the bridge that
/// held it puts a note for each pending request into the durable reply queue, so the client
/// that resumes gets `broker_unavailable` at once instead of waiting out the timeout.
#[tokio::test]
#[ignore = "stops the shared RabbitMQ: run alone (scripts/test.sh does, with --ignored)"]
async fn a_detached_sessions_requests_fail_on_resume_after_a_restart() {
    assert_broker_reachable();
    let bridge = TestBridge::start(|_| {}).await;
    let queue = unique("detached");
    let mut worker = Worker::start(&queue).await;
    let (mut client, token, _) = Client::hello(&bridge.url(), resumable()).await;
    let (token, session) = (token.unwrap(), client.session.clone());
    client.request("d1", &queue, b"{}", Some(TIMEOUT_MS)).await;
    let _held = worker.next().await; // never answered
    drop(client); // the TCP connection ends without a close frame: the session detaches
    bridge
        .until("the session detached", |s| s.sessions_detached == 1)
        .await;
    restart_broker(std::future::ready(())).await;
    let back = Instant::now();
    while !http_get(bridge.addr, "/readyz").await.contains("200") {
        assert!(back.elapsed() < Duration::from_secs(30), "bridge not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attach = Attach {
        id: "d1",
        timeout_ms: TIMEOUT_MS,
        idle_timeout_ms: None,
        destination: &queue,
    };
    let hello = Hello {
        resume: Some(&session),
        resume_token: Some(&token),
        attach: vec![attach],
        ..resumable()
    };
    let (mut client, _, resumed) = Client::hello(&bridge.url(), hello).await;
    assert!(resumed, "the durable reply queue outlived the restart");
    let (id, code) = error_after_restart(&mut client).await;
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("d1"), "broker_unavailable")
    );
    eprintln!(
        "RESULT detached request across a restart: broker_unavailable {:?} after start_app returned",
        back.elapsed()
    );
}
