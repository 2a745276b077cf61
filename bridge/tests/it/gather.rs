//! Scatter-gather: one GATHER publishes once to an allowlisted exchange and gets every reply
//! in its window as a PART tagged with who replied, then DONE; `max_replies` ends it early;
//! errors come at once and never break the bridge's shared publish channel.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{Client, Received, TestBridge, Worker, headers, unique};
use ferry_protocol::{Frame, Gather};
use lapin::message::Delivery;
use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

/// A fanout exchange (deleted with its last binding) and `n` workers bound to it.
async fn fanout(n: usize) -> (String, Vec<Worker>) {
    let exchange = unique("gather");
    let mut workers = Vec::new();
    for i in 0..n {
        let mut w = Worker::declare(&format!("{exchange}.w{i}")).await;
        let opts = ExchangeDeclareOptions {
            auto_delete: true,
            ..ExchangeDeclareOptions::default()
        };
        let table = FieldTable::default();
        w.channel
            .exchange_declare(exchange.as_str().into(), ExchangeKind::Fanout, opts, table)
            .await
            .unwrap();
        let (bind, table) = (QueueBindOptions::default(), FieldTable::default());
        w.channel
            .queue_bind(
                w.queue.as_str().into(),
                exchange.as_str().into(),
                "".into(),
                bind,
                table,
            )
            .await
            .unwrap();
        w.consume().await;
        workers.push(w);
    }
    (exchange, workers)
}

fn gather<'a>(id: &'a str, exchange: &'a str, window_ms: u32, max: Option<u32>) -> Frame<'a> {
    Frame::Gather(Gather {
        id,
        destination: exchange,
        routing_key: None,
        content_type: Some("application/json"),
        timeout_ms: Some(window_ms),
        max_replies: max,
        headers: vec![],
        body: b"{\"who\":\"is free\"}",
    })
}

/// Replies naming the replier by `app_id`, as many AMQP clients do.
async fn reply_as(w: &Worker, req: &Delivery, app_id: &str, body: &[u8]) {
    let props = BasicProperties::default()
        .with_correlation_id(req.properties.correlation_id().clone().unwrap())
        .with_app_id(app_id.into())
        .with_content_type("application/json".into());
    let to = req.properties.reply_to().clone().unwrap();
    w.channel
        .basic_publish("".into(), to, BasicPublishOptions::default(), body, props)
        .await
        .unwrap();
}

/// `(replier, remote_code, body)` of a PART frame for `id`.
fn part(r: &Received, id: &str) -> (Option<String>, Option<String>, Vec<u8>) {
    match r.frame() {
        Frame::Part(p) if p.id == id => (
            p.replier.map(str::to_owned),
            p.remote_code.map(str::to_owned),
            p.body.to_vec(),
        ),
        other => panic!("expected a part of {id}, got {other:?}"),
    }
}

fn done(r: &Received) -> (String, u32) {
    match r.frame() {
        Frame::Done(d) => (d.id.to_owned(), d.count),
        other => panic!("expected done, got {other:?}"),
    }
}

#[tokio::test]
async fn every_reply_in_the_window_is_a_part_tagged_with_its_replier() {
    let (exchange, mut workers) = fanout(3).await;
    let bridge = TestBridge::start(|c| c.allow_exchange = vec![exchange.clone()]).await;
    let mut client = Client::connect(&bridge.url()).await;
    let started = Instant::now();
    client.send(gather("g", &exchange, 600, None)).await;
    for (i, w) in workers.iter_mut().enumerate() {
        let req = w.next().await;
        assert_eq!(&req.data[..], b"{\"who\":\"is free\"}");
        match i {
            0 => reply_as(w, &req, "w0", b"{\"free\":true}").await,
            1 => {
                w.reply_with(
                    &req,
                    b"{\"free\":false}",
                    headers(&[("x-ferry-replier", "w1")]),
                )
                .await
            }
            _ => {
                let h = headers(&[
                    ("x-ferry-replier", "w2"),
                    ("x-ferry-error", "busy"),
                    ("x-ferry-error-message", "on call"),
                ]);
                w.reply_with(&req, b"{}", h).await;
            }
        }
    }
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        let (replier, remote, _) = part(&client.recv().await, "g");
        seen.insert((replier.unwrap(), remote));
    }
    let want = [("w0", None), ("w1", None), ("w2", Some("busy"))];
    let want = want.map(|(r, c)| (r.to_owned(), c.map(str::to_owned)));
    assert_eq!(seen, BTreeSet::from(want));
    assert_eq!(done(&client.recv().await), ("g".into(), 3));
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "done at the window's end"
    );
    bridge.until("gather over", |s| s.pending == 0).await;
}

#[tokio::test]
async fn max_replies_ends_the_gather_early_and_later_replies_are_dropped() {
    let (exchange, mut workers) = fanout(3).await;
    let bridge = TestBridge::start(|c| c.allow_exchange = vec!["test.gather.*".into()]).await;
    let mut client = Client::connect(&bridge.url()).await;
    let started = Instant::now();
    client.send(gather("g2", &exchange, 30_000, Some(2))).await;
    let mut reqs = Vec::new();
    for w in &mut workers {
        reqs.push(w.next().await);
    }
    for (i, (w, req)) in workers.iter().zip(&reqs).enumerate() {
        reply_as(w, req, &format!("w{i}"), b"{}").await;
    }
    part(&client.recv().await, "g2");
    part(&client.recv().await, "g2");
    assert_eq!(done(&client.recv().await), ("g2".into(), 2));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ended by the count, not the window"
    );
    bridge
        .until("third reply dropped", |s| {
            s.dropped_replies == 1 && s.pending == 0
        })
        .await;
}

#[tokio::test]
async fn refused_gathers_fail_at_once_and_the_bridge_keeps_serving() {
    let (exchange, _workers) = fanout(1).await;
    let missing = unique("gather.missing");
    let unbound = unique("gather.unbound");
    let bridge = TestBridge::start(|c| c.allow_exchange = vec!["test.gather.*".into()]).await;
    let w = Worker::declare(&unique("plain")).await;
    let opts = ExchangeDeclareOptions {
        auto_delete: false,
        ..ExchangeDeclareOptions::default()
    };
    w.channel
        .exchange_declare(
            unbound.as_str().into(),
            ExchangeKind::Fanout,
            opts,
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut client = Client::connect(&bridge.url()).await;
    let code = |r: Received| r.error().1;

    client.send(gather("f", "other.exchange", 1000, None)).await;
    assert_eq!(code(client.recv().await), "forbidden");
    client.send(gather("z", &exchange, 1000, Some(0))).await;
    assert_eq!(code(client.recv().await), "bad_request");
    client.send(gather("m", &missing, 10_000, None)).await;
    let (id, c, message, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), c.as_str()), (Some("m"), "no_route"));
    assert!(message.contains("no exchange"), "{message}");
    client.send(gather("u", &unbound, 10_000, None)).await;
    let (id, c, message, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), c.as_str()), (Some("u"), "no_route"));
    assert!(message.contains("nothing is bound"), "{message}");

    // The shared publish channel survived: an ordinary request still works.
    let (echo, task) = crate::support::echo_worker(&unique("after-gather")).await;
    client.request("r", &echo.queue, b"{}", Some(5_000)).await;
    assert_eq!(client.recv().await.reply().0, "r");
    task.abort();
    let _ = w
        .channel
        .exchange_delete(unbound.as_str().into(), Default::default())
        .await;
}
