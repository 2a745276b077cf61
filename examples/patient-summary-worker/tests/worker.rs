//! The worker against a real RabbitMQ: replies, progress, error replies, deadlines, shutdown.
//!
//! Each test uses its own queue (random suffix) and removes it afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use patient_summary_worker::{Config, declare_queue, run};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn amqp_url() -> String {
    std::env::var("FERRY_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("test.{prefix}.{}.{nanos}", std::process::id())
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A caller: a connection, a private reply queue and its consumer.
struct Caller {
    conn: Connection,
    channel: Channel,
    reply_to: String,
    replies: Consumer,
}

/// One message that came back to the caller.
#[derive(Debug)]
struct Msg {
    correlation_id: String,
    kind: Option<String>,
    error: Option<String>,
    error_message: Option<String>,
    body: Value,
}

impl Caller {
    async fn new() -> Self {
        let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let reply_to = queue.name().as_str().to_owned();
        let replies = channel
            .basic_consume(
                reply_to.as_str().into(),
                "caller".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            conn,
            channel,
            reply_to,
            replies,
        }
    }

    async fn request(&self, queue: &str, id: &str, body: Value, deadline: Option<i64>) {
        let mut headers = FieldTable::default();
        if let Some(d) = deadline {
            headers.insert("x-ferry-deadline".into(), AMQPValue::LongLongInt(d));
        }
        let props = BasicProperties::default()
            .with_correlation_id(id.into())
            .with_reply_to(self.reply_to.as_str().into())
            .with_content_type("application/json".into())
            .with_headers(headers);
        self.channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(&body).unwrap(),
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    async fn next(&mut self) -> Msg {
        let delivery = tokio::time::timeout(Duration::from_secs(20), self.replies.next())
            .await
            .expect("no reply within 20 s")
            .unwrap()
            .unwrap();
        let header = |name: &str| {
            let headers = delivery.properties.headers().as_ref()?;
            match headers.inner().get(name)? {
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                _ => None,
            }
        };
        Msg {
            correlation_id: delivery
                .properties
                .correlation_id()
                .as_ref()
                .unwrap()
                .to_string(),
            kind: header("x-ferry-kind"),
            error: header("x-ferry-error"),
            error_message: header("x-ferry-error-message"),
            body: serde_json::from_slice(&delivery.data).unwrap(),
        }
    }

    /// Messages up to and including the next final (non-progress) one.
    async fn until_final(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            let msg = self.next().await;
            let done = msg.kind.is_none();
            out.push(msg);
            if done {
                return out;
            }
        }
    }
}

/// Declares the queue first (so nothing published is lost), then starts a worker on it.
async fn start_worker(
    caller: &Caller,
    config: Config,
) -> (
    CancellationToken,
    JoinHandle<Result<(), patient_summary_worker::WorkerError>>,
) {
    declare_queue(&caller.channel, &config).await.unwrap();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(run(config, stop.clone(), || {}));
    (stop, handle)
}

async fn finish(
    caller: Caller,
    queue: &str,
    stop: CancellationToken,
    handle: JoinHandle<Result<(), patient_summary_worker::WorkerError>>,
) {
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("worker did not stop")
        .unwrap()
        .unwrap();
    let _ = caller
        .channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = caller.conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn replies_with_progress_then_a_summary() {
    let queue = unique("psw.reply");
    let mut caller = Caller::new().await;
    let (stop, handle) = start_worker(&caller, Config::for_queue(&amqp_url(), &queue, 60)).await;

    caller
        .request(
            &queue,
            "c-1",
            json!({ "patientId": 3 }),
            Some(now_ms() + 30_000),
        )
        .await;
    let msgs = caller.until_final().await;
    assert!(msgs.iter().all(|m| m.correlation_id == "c-1"));
    let pcts: Vec<u64> = msgs[..msgs.len() - 1]
        .iter()
        .map(|m| {
            assert_eq!(m.kind.as_deref(), Some("progress"));
            m.body["pct"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(pcts, [10, 45, 80]);
    let summary = &msgs.last().unwrap().body;
    assert_eq!(summary["patientId"], 3);
    assert_eq!(summary["name"], "Chiara Rossi");
    assert!(!summary["medications"].as_array().unwrap().is_empty());
    assert!(summary["latestVitals"]["heartRateBpm"].is_u64());

    finish(caller, &queue, stop, handle).await;
}

#[tokio::test]
async fn unknown_patients_and_bad_bodies_get_error_replies() {
    let queue = unique("psw.error");
    let mut caller = Caller::new().await;
    let (stop, handle) = start_worker(&caller, Config::for_queue(&amqp_url(), &queue, 60)).await;

    caller
        .request(&queue, "c-99", json!({ "patientId": 99 }), None)
        .await;
    let msg = caller.next().await;
    assert_eq!(msg.correlation_id, "c-99");
    assert_eq!(msg.error.as_deref(), Some("unknown_patient"));
    assert_eq!(msg.error_message.as_deref(), Some("no patient with id 99"));
    assert_eq!(msg.body["patientId"], 99);

    caller
        .request(&queue, "c-bad", json!({ "who": 1 }), None)
        .await;
    let msg = caller.next().await;
    assert_eq!(msg.correlation_id, "c-bad");
    assert_eq!(msg.error.as_deref(), Some("bad_request"));

    finish(caller, &queue, stop, handle).await;
}

#[tokio::test]
async fn work_past_its_deadline_is_skipped_or_abandoned() {
    let queue = unique("psw.deadline");
    let mut caller = Caller::new().await;
    // One at a time, 600 ms per summary (200 ms per stage).
    let mut config = Config::for_queue(&amqp_url(), &queue, 600);
    config.prefetch = 1;
    let (stop, handle) = start_worker(&caller, config).await;

    let body = json!({ "patientId": 5 });
    caller
        .request(&queue, "expired", body.clone(), Some(now_ms() - 1))
        .await;
    caller
        .request(&queue, "abandoned", body.clone(), Some(now_ms() + 300))
        .await;
    caller.request(&queue, "kept", body, None).await;

    // Had "abandoned" been finished, its reply would come before "kept" started.
    let msgs = caller.until_final().await;
    let last = msgs.last().unwrap();
    assert_eq!(last.correlation_id, "kept");
    assert_eq!(last.body["patientId"], 5);
    assert!(msgs.iter().all(|m| m.correlation_id != "expired"));
    assert!(
        msgs.iter()
            .filter(|m| m.correlation_id == "abandoned")
            .all(|m| m.kind.as_deref() == Some("progress"))
    );

    finish(caller, &queue, stop, handle).await;
}

#[tokio::test]
async fn several_requests_run_at_once_up_to_the_prefetch() {
    let queue = unique("psw.prefetch");
    let mut caller = Caller::new().await;
    let mut config = Config::for_queue(&amqp_url(), &queue, 500);
    config.no_progress = true;
    let (stop, handle) = start_worker(&caller, config).await;

    let started = std::time::Instant::now();
    for id in 1..=4u64 {
        caller
            .request(&queue, &format!("p-{id}"), json!({ "patientId": id }), None)
            .await;
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        let msg = caller.next().await;
        assert!(msg.kind.is_none());
        seen.push(msg.correlation_id);
    }
    seen.sort();
    assert_eq!(seen, ["p-1", "p-2", "p-3", "p-4"]);
    // Prefetch 2: two rounds of 500 ms (1 s), not four (2 s); the margin is for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );

    finish(caller, &queue, stop, handle).await;
}

#[tokio::test]
async fn several_copies_share_one_queue() {
    let queue = unique("psw.copies");
    let mut caller = Caller::new().await;
    let base = Config::for_queue(&amqp_url(), &queue, 300);
    declare_queue(&caller.channel, &base).await.unwrap();

    // Two copies, one request at a time each; wait until both consume.
    let stop = CancellationToken::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(2);
    let mut handles = Vec::new();
    for name in ["copy-a", "copy-b"] {
        let mut config = base.clone();
        config.prefetch = 1;
        config.no_progress = true;
        config.name = Some(name.to_owned());
        let ready = ready_tx.clone();
        handles.push(tokio::spawn(run(config, stop.clone(), move || {
            let _ = ready.try_send(());
        })));
    }
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), ready_rx.recv())
            .await
            .unwrap();
    }

    for id in 1..=2u64 {
        caller
            .request(&queue, &format!("c-{id}"), json!({ "patientId": id }), None)
            .await;
    }
    let mut workers = vec![
        caller.next().await.body["worker"]
            .as_str()
            .unwrap()
            .to_owned(),
        caller.next().await.body["worker"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    workers.sort();
    assert_eq!(workers, ["copy-a", "copy-b"]);

    stop.cancel();
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let _ = caller
        .channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = caller.conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn a_cancel_notice_stops_the_job_and_frees_its_slot() {
    let queue = unique("psw.cancel");
    let mut caller = Caller::new().await;
    let mut config = Config::for_queue(&amqp_url(), &queue, 60_000);
    config.prefetch = 1;
    let (stop, handle) = start_worker(&caller, config).await;

    caller
        .request(&queue, "first", json!({ "patientId": 1 }), None)
        .await;
    let started = caller.next().await;
    assert_eq!(
        (started.correlation_id.as_str(), started.kind.as_deref()),
        ("first", Some("progress"))
    );
    caller
        .request(&queue, "second", json!({ "patientId": 2 }), None)
        .await;

    // What the bridge publishes when the caller of "first" gives up (docs/protocol.md §1).
    let mut headers = FieldTable::default();
    headers.insert(
        "x-ferry-kind".into(),
        AMQPValue::LongString("cancel".into()),
    );
    headers.insert(
        "x-ferry-cancel-reason".into(),
        AMQPValue::LongString("cancelled".into()),
    );
    let notice = BasicProperties::default()
        .with_correlation_id("first".into())
        .with_reply_to(caller.reply_to.as_str().into())
        .with_headers(headers);
    let sent = std::time::Instant::now();
    caller
        .channel
        .basic_publish(
            "ferry.cancel".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            &[],
            notice,
        )
        .await
        .unwrap()
        .await
        .unwrap();

    // The only slot is freed: "second" starts at once (within 5 s on a loaded machine; held
    // up, it would wait the 60 s "first" takes); "first" never replies.
    let next = caller.next().await;
    assert_eq!(
        (next.correlation_id.as_str(), next.kind.as_deref()),
        ("second", Some("progress"))
    );
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );

    finish(caller, &queue, stop, handle).await;
}

#[tokio::test]
async fn answers_presence_gathers_with_its_name_and_load() {
    let queue = unique("psw.presence");
    let exchange = unique("psw.presence-x");
    let mut caller = Caller::new().await;
    let mut config = Config::for_queue(&amqp_url(), &queue, 60_000);
    config.presence_exchange = exchange.clone();
    config.name = Some("reviewer-1".into());
    config.prefetch = 1;
    let (stop, handle) = start_worker(&caller, config).await;

    // The worker declares the exchange when it starts consuming: a job in progress shows it.
    caller
        .request(&queue, "job", json!({ "patientId": 1 }), None)
        .await;
    assert_eq!(caller.next().await.kind.as_deref(), Some("progress"));
    let props = BasicProperties::default()
        .with_correlation_id("who".into())
        .with_reply_to(caller.reply_to.as_str().into());
    caller
        .channel
        .basic_publish(
            exchange.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            b"{}",
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let answer = caller.next().await;
    assert_eq!(answer.correlation_id, "who");
    assert_eq!(
        answer.body,
        json!({ "worker": "reviewer-1", "busy": 1, "capacity": 1, "available": false })
    );

    let _ = caller
        .channel
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
    finish(caller, &queue, stop, handle).await;
}
