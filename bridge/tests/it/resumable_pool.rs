//! `--resumable-queue-pool`: a new resumable session takes a reply queue declared ahead (its
//! session id is the queue's), starts holding its token's lease with its first request (its
//! ACCEPTED waits for the lease), and resumes like any other; one closed before its first
//! request leaves nothing behind, even when a client churns them while another is served.

use crate::resume::{attach, declared, hello, until_undeclared};
use crate::support::{Client, TestBridge, Worker, unique};
use ferry_bridge::resume::lease_queue;
use ferry_protocol::{Ack, Frame};

#[tokio::test]
async fn a_pooled_session_holds_its_lease_with_its_first_request_and_resumes_elsewhere() {
    let mut a = TestBridge::start(|c| c.resumable_queue_pool = 2).await;
    let b = TestBridge::start(|_| {}).await;
    a.until_metric("ferry_resumable_queue_pool_ready 2").await;
    let q = unique("rpool");
    let mut worker = Worker::start(&q).await;
    let (mut c, token, _) = Client::hello(&a.url(), hello(None, vec![])).await;
    let (token, session) = (token.unwrap(), c.session.clone());
    let queue = format!("ferry.reply.{session}");
    assert!(
        declared(&queue).await,
        "the session's queue was declared ahead"
    );
    let lease = lease_queue("", &session, &token);
    assert!(!declared(&lease).await, "no lease before the first request");

    c.request("p1", &q, b"{}", Some(10_000)).await;
    let req = worker.next().await;
    let reply_to = req.properties.reply_to().clone().unwrap().to_string();
    assert_eq!(reply_to, queue);
    // The lease is held in the background; ACCEPTED waits for it.
    c.until_accepted().await;
    assert!(declared(&lease).await, "ACCEPTED came before the lease");
    a.until_metric("ferry_resumable_queue_pool_ready 2").await;

    // Bridge A goes away; the reply waits in the pooled queue for the resume on B.
    a.shutdown.cancel();
    c.closed().await.expect("a close frame");
    a.stopped().await;
    worker.reply(&req, b"\"kept\"").await;
    let (mut c, _, resumed) = Client::hello(
        &b.url(),
        hello(Some((&session, &token)), vec![attach("p1", &q)]),
    )
    .await;
    assert!(resumed, "bridge B resumes the pooled session");
    assert_eq!(c.recv().await.reply(), ("p1".into(), b"\"kept\"".to_vec()));
    c.send(Frame::Ack(Ack { ids: vec!["p1"] })).await;
    b.until("nothing pending", |s| s.pending == 0).await;
}

#[tokio::test]
async fn a_pooled_session_closed_before_its_first_request_deletes_its_queue() {
    let bridge = TestBridge::start(|c| c.resumable_queue_pool = 1).await;
    bridge
        .until_metric("ferry_resumable_queue_pool_ready 1")
        .await;
    let (mut c, _, _) = Client::hello(&bridge.url(), hello(None, vec![])).await;
    let queue = format!("ferry.reply.{}", c.session);
    assert!(declared(&queue).await);
    c.close_normally().await.unwrap();
    // No lease was ever held, so nobody can resume it: the queue goes at once.
    until_undeclared(&queue, "the pooled queue").await;
}

/// A client that opens and closes resumable sessions without a request drains the pool as
/// fast as it can: each closed session's queue is deleted, the pool refills, and another
/// client's session keeps being served meanwhile.
#[tokio::test]
async fn sessions_churned_without_requests_leave_no_queues_and_others_are_served() {
    let bridge = TestBridge::start(|c| c.resumable_queue_pool = 2).await;
    bridge
        .until_metric("ferry_resumable_queue_pool_ready 2")
        .await;
    let q = unique("rchurn");
    let (_w, _task) = crate::support::echo_worker(&q).await;
    let (mut steady, _, _) = Client::hello(&bridge.url(), hello(None, vec![])).await;
    let mut churned = Vec::new();
    for i in 0..20 {
        let (mut c, _, _) = Client::hello(&bridge.url(), hello(None, vec![])).await;
        churned.push(format!("ferry.reply.{}", c.session));
        c.close_normally().await.unwrap();
        let id = format!("s{i}");
        steady.request(&id, &q, b"1", Some(5_000)).await;
        assert_eq!(steady.recv().await.reply().0, id);
    }
    for queue in &churned {
        until_undeclared(queue, "a churned session's queue").await;
    }
    bridge
        .until_metric("ferry_resumable_queue_pool_ready 2")
        .await;
}
