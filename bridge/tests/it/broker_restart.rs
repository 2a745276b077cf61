//! RabbitMQ restarted under a steady load (`rabbitmqctl stop_app`, then `start_app`): every
//! request ends, answered or rejected with a code, none hangs; `/readyz` says not ready during
//! the outage; service resumes without restarting the bridge. It stops the shared broker, so
//! it is `#[ignore]`d and `scripts/test.sh` runs it alone after everything else; a guard starts
//! the broker again whatever happens. The counts it prints are in docs/reliability.md.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::restart::{assert_broker_reachable, restart_broker, resumable};
use crate::support::{Cleanup, Client, Received, TestBridge, amqp_url, http_get, unique};
use ferry_protocol::{Ack, Frame, Hello};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Load clients, one request in flight each.
const CLIENTS: usize = 8;
/// Each request's timeout: long, as a dashboard's is. A request whose reply the outage lost
/// must be rejected when the bridge learns of the loss, not when this runs out, so a request
/// with no terminal frame after [`HUNG_AFTER`] counts as hung.
const TIMEOUT_MS: u32 = 120_000;
const HUNG_AFTER: Duration = Duration::from_secs(10);
/// How long the broker stays down.
const OUTAGE: Duration = Duration::from_secs(3);

/// How the requests ended.
#[derive(Debug, Default)]
struct Counts {
    resolved: u64,
    rejected: BTreeMap<String, u64>,
    hung: u64,
}

/// An echo RPC server that reconnects, as a supervised worker would after a broker restart.
async fn resilient_echo(queue: String, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let serve = async {
            let conn = Connection::connect(amqp_url(), ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            let table = FieldTable::default();
            ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), table)
                .await?;
            let no_ack = BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            };
            let mut deliveries = ch
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    no_ack,
                    FieldTable::default(),
                )
                .await?;
            while let Some(d) = deliveries.next().await {
                let d = d?;
                let (Some(to), Some(id)) = (d.properties.reply_to(), d.properties.correlation_id())
                else {
                    continue;
                };
                let props = BasicProperties::default().with_correlation_id(id.clone());
                let opts = BasicPublishOptions::default();
                ch.basic_publish("".into(), to.clone(), opts, &d.data, props)
                    .await?;
            }
            Ok::<_, lapin::Error>(())
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = serve => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One client sending requests back to back until `stop`, counting how each ended. A
/// `resumable` one says HELLO with `acks` (as ferry-client does) and ACKs every final frame.
async fn load(
    url: String,
    queue: String,
    counts: Arc<Mutex<Counts>>,
    stop: CancellationToken,
    resumable: bool,
) {
    let hello = Hello {
        acks: resumable,
        token: None,
        ..self::resumable()
    };
    let (mut client, token, _) = Client::hello(&url, hello).await;
    assert_eq!(token.is_some(), resumable);
    let mut n = 0u64;
    while !stop.is_cancelled() {
        n += 1;
        let id = format!("r{n}");
        client.request(&id, &queue, b"{}", Some(TIMEOUT_MS)).await;
        let deadline = tokio::time::Instant::now() + HUNG_AFTER;
        let outcome = loop {
            match tokio::time::timeout_at(deadline, client.ws.next()).await {
                Err(_) => break None,
                Ok(Some(Ok(Message::Binary(b)))) => {
                    let r = Received(b);
                    let end = match r.frame() {
                        Frame::Reply(rep) if rep.id == id => Some(Ok(())),
                        Frame::Error(e) if e.id == Some(id.as_str()) => {
                            Some(Err(e.code.as_str().to_owned()))
                        }
                        _ => None, // a frame about an earlier request: not this one's end
                    };
                    if let Some(end) = end {
                        if resumable {
                            let ids = vec![id.as_str()];
                            client.send(Frame::Ack(Ack { ids })).await;
                        }
                        break Some(end);
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("socket ended: {other:?}"),
            }
        };
        let mut c = counts.lock().unwrap();
        match outcome {
            Some(Ok(())) => c.resolved += 1,
            Some(Err(code)) => *c.rejected.entry(code).or_default() += 1,
            None => c.hung += 1,
        }
    }
}

/// Waits until `f` holds for the counts, polling (the counters have no event), up to `limit`.
async fn until(counts: &Mutex<Counts>, limit: Duration, what: &str, f: impl Fn(&Counts) -> bool) {
    let start = Instant::now();
    while !f(&counts.lock().unwrap()) {
        assert!(
            start.elapsed() < limit,
            "{what}: {:?}",
            counts.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
#[ignore = "stops the shared RabbitMQ: run alone (scripts/test.sh does, with --ignored)"]
async fn broker_restart_under_load_hangs_nothing_and_service_resumes() {
    assert_broker_reachable();
    if let Ok(filter) = std::env::var("FERRY_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    }
    let bridge = TestBridge::start(|_| {}).await;
    let queue = unique("restart");
    let _cleanup = Cleanup(vec![queue.clone()]);
    let stop = CancellationToken::new();
    // The worker outlives the load: the requests in flight when the load stops are answered.
    let stop_echo = CancellationToken::new();
    let echo = tokio::spawn(resilient_echo(queue.clone(), stop_echo.clone()));
    let counts = Arc::new(Mutex::new(Counts::default()));
    // Half the clients resumable (their replies are held until ACKed), half not.
    let resumable_counts = Arc::new(Mutex::new(Counts::default()));
    let loads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let resumable = i % 2 == 1;
            let counts = if resumable {
                &resumable_counts
            } else {
                &counts
            };
            tokio::spawn(load(
                bridge.url(),
                queue.clone(),
                counts.clone(),
                stop.clone(),
                resumable,
            ))
        })
        .collect();
    until(&counts, Duration::from_secs(30), "steady load", |c| {
        c.resolved >= 200
    })
    .await;
    until(
        &resumable_counts,
        Duration::from_secs(30),
        "steady load",
        |c| c.resolved >= 200,
    )
    .await;
    let before = counts.lock().unwrap().resolved;

    let mut during = (0, 0);
    restart_broker(async {
        let noticed = Instant::now();
        while !http_get(bridge.addr, "/readyz").await.contains("503") {
            assert!(
                noticed.elapsed() < Duration::from_secs(10),
                "/readyz still ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The outage itself: a chosen length, not an event. Both samples are taken while the
        // broker is stopped: `start_app` lets the bridge reconnect before it returns, so a
        // sample after it would count replies of the restarted broker.
        tokio::time::sleep(OUTAGE / 2).await;
        let down = (
            counts.lock().unwrap().resolved,
            resumable_counts.lock().unwrap().resolved,
        );
        tokio::time::sleep(OUTAGE / 2).await;
        during = (
            counts.lock().unwrap().resolved,
            resumable_counts.lock().unwrap().resolved,
        );
        assert_eq!(down, during, "nothing resolves while the broker is down");
    })
    .await;
    let restarted = counts.lock().unwrap().resolved;

    let limit = Duration::from_secs(60);
    until(&counts, limit, "service resumed", |c| {
        c.resolved >= restarted + 200
    })
    .await;
    let resumable_restarted = resumable_counts.lock().unwrap().resolved;
    until(
        &resumable_counts,
        limit,
        "resumable sessions resumed",
        |c| c.resolved >= resumable_restarted + 200,
    )
    .await;
    assert!(http_get(bridge.addr, "/readyz").await.contains("200"));
    stop.cancel();
    for l in loads {
        l.await.unwrap();
    }
    stop_echo.cancel();
    echo.await.unwrap();
    let r = resumable_counts.lock().unwrap();
    eprintln!("RESULT broker restart under load, resumable sessions: {r:?}");
    assert_eq!(r.hung, 0, "no request may hang: {r:?}");
    assert!(r.rejected.keys().all(|code| code != "internal"), "{r:?}");
    let c = counts.lock().unwrap();
    eprintln!(
        "RESULT broker restart under load: {c:?} (resolved before the stop: {before}, while stopped: {}, once start_app returned: {restarted})",
        during.0
    );
    assert_eq!(c.hung, 0, "no request may hang: {c:?}");
    assert!(c.rejected.keys().all(|code| code != "internal"), "{c:?}");
    assert!(
        c.rejected.contains_key("broker_unavailable"),
        "the outage was seen: {c:?}"
    );
}
