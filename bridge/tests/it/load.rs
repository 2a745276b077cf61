//! Load shapes: 1,000 concurrent requests on one socket answered in reverse order; 100 sockets.

use std::collections::HashSet;

use crate::support::{Client, TestBridge, Worker, echo_worker, unique};

#[tokio::test]
async fn thousand_concurrent_requests_answered_in_reverse_order() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("many")).await;
    let mut client = Client::connect(&bridge.url()).await;
    const N: usize = 1000;
    for i in 0..N {
        let id = format!("req-{i}");
        client
            .request(&id, &worker.queue, id.as_bytes(), Some(30_000))
            .await;
    }
    let mut deliveries = Vec::with_capacity(N);
    for _ in 0..N {
        deliveries.push(worker.next().await);
    }
    assert_eq!(bridge.stats.snapshot().pending, N as u64);
    for d in deliveries.iter().rev() {
        worker.reply(d, &d.data).await;
    }
    let mut seen = HashSet::new();
    for i in 0..N {
        let (id, body) = client.recv().await.reply();
        assert_eq!(
            id.as_bytes(),
            &body[..],
            "reply {i} carries its own request's body"
        );
        assert!(seen.insert(id), "each reply once");
    }
    assert_eq!(seen.len(), N);
    bridge
        .until("pending back to zero", |s| s.pending == 0)
        .await;
    assert_eq!(bridge.stats.snapshot().dropped_replies, 0);
}

#[tokio::test]
async fn hundred_sockets_at_once() {
    let bridge = TestBridge::start(|_| {}).await;
    let (worker, echo) = echo_worker(&unique("fan")).await;
    let url = bridge.url();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = url.clone();
        let queue = worker.queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&url).await;
            // Every socket uses the same id; the body tells the replies apart.
            let body = format!("socket-{i}");
            c.request("same-id", &queue, body.as_bytes(), Some(20_000))
                .await;
            let (id, got) = c.recv().await.reply();
            assert_eq!(id, "same-id");
            assert_eq!(got, body.as_bytes());
            c
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    assert_eq!(bridge.stats.snapshot().sessions, 100);
    bridge
        .until("pending back to zero", |s| s.pending == 0)
        .await;
    drop(clients);
    bridge.until("sessions closed", |s| s.sessions == 0).await;
    echo.abort();
}
