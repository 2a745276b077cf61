//! Resumable sessions: a client that ACKs replies gets a resume token; when its socket
//! drops, replies wait in the session's reply queue and reach the client that resumes the
//! session, on the same bridge or another, exactly once after its ACK. After the grace
//! period the queue is gone and a resume opens a new session.

use std::time::Duration;

use crate::support::{Client, STEP, TestBridge, Worker, unique};
use ferry_protocol::{Ack, Attach, Frame, Hello};

/// A HELLO that asks for a resumable session (and resumes `resume` with its token).
pub(crate) fn hello<'a>(resume: Option<(&'a str, &'a str)>, attach: Vec<Attach<'a>>) -> Hello<'a> {
    Hello {
        client: Some("resume-tests"),
        resume: resume.map(|r| r.0),
        resume_token: resume.map(|r| r.1),
        attach,
        acks: true,
        token: None,
    }
}

pub(crate) fn attach<'a>(id: &'a str, destination: &'a str) -> Attach<'a> {
    Attach {
        id,
        timeout_ms: 10_000,
        idle_timeout_ms: None,
        destination,
    }
}

/// Whether a queue exists, asked with `rabbitmqctl` (a passive declare would count as a
/// use of the queue and renew its `x-expires` lease).
async fn queue_exists(name: &str) -> bool {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "--no-table-headers", "name"])
        .output()
        .await
        .expect("rabbitmqctl runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == name)
}

/// Cuts the TCP connection without a close frame (a laptop lid, a network change).
fn cut(c: Client) {
    drop(c);
}

#[tokio::test]
async fn a_reply_sent_while_the_socket_was_down_arrives_after_resume() {
    let bridge = TestBridge::start(|_| {}).await;
    let q = unique("resume");
    let mut worker = Worker::start(&q).await;
    let (mut c, token, resumed) = Client::hello(&bridge.url(), hello(None, vec![])).await;
    let token = token.expect("a resumable session has a token");
    assert!(!resumed);
    c.request("r1", &q, b"{}", Some(10_000)).await;
    let req = worker.next().await;
    let session = c.session.clone();
    cut(c);
    bridge
        .until("the session detached", |s| s.sessions == 0)
        .await;
    worker.reply(&req, b"\"done\"").await;

    let (mut c, _, resumed) = Client::hello(
        &bridge.url(),
        hello(Some((&session, &token)), vec![attach("r1", &q)]),
    )
    .await;
    assert!(resumed, "the session is resumed");
    assert_eq!(c.session, session);
    assert_eq!(c.recv().await.reply(), ("r1".into(), b"\"done\"".to_vec()));
    c.send(Frame::Ack(Ack { ids: vec!["r1"] })).await;
    bridge.until("nothing pending", |s| s.pending == 0).await;
    assert_eq!(bridge.stats.snapshot().sessions_resumed_total, 1);
}

#[tokio::test]
async fn a_reply_the_client_did_not_ack_is_delivered_again_until_acked() {
    let bridge = TestBridge::start(|_| {}).await;
    let q = unique("redeliver");
    let mut worker = Worker::start(&q).await;
    let (mut c, token, _) = Client::hello(&bridge.url(), hello(None, vec![])).await;
    let token = token.unwrap();
    let session = c.session.clone();
    let resume = Some((session.as_str(), token.as_str()));
    c.request("r1", &q, b"{}", Some(10_000)).await;
    let req = worker.next().await;
    worker.reply(&req, b"1").await;
    assert_eq!(c.recv().await.reply().0, "r1");
    // The frame was sent but no ACK came back (lost in the network as the socket died).
    cut(c);
    bridge.until("detached", |s| s.sessions == 0).await;

    let (mut c, next, resumed) =
        Client::hello(&bridge.url(), hello(resume, vec![attach("r1", &q)])).await;
    assert!(resumed);
    // Each resume spends its token and WELCOME hands out the next.
    let next = next.unwrap();
    assert_ne!(next, token);
    let resume = Some((session.as_str(), next.as_str()));
    assert_eq!(
        c.recv().await.reply(),
        ("r1".into(), b"1".to_vec()),
        "redelivered"
    );
    c.send(Frame::Ack(Ack { ids: vec!["r1"] })).await;
    // Nothing else runs through this socket: the ACK frame has been handled by the time the
    // bridge answers the next one, a request that fails at once.
    c.request("probe", "test.no-such-queue-xyz", b"{}", None)
        .await;
    assert_eq!(c.recv().await.error().1, "no_route");
    cut(c);
    bridge.until("detached", |s| s.sessions == 0).await;

    let (mut c, _, resumed) =
        Client::hello(&bridge.url(), hello(resume, vec![attach("r1", &q)])).await;
    assert!(resumed);
    assert!(
        c.nothing_within(Duration::from_millis(500)).await,
        "an ACKed reply is not delivered again"
    );
}

#[tokio::test]
async fn a_session_resumes_on_another_bridge_after_the_first_shuts_down() {
    let mut a = TestBridge::start(|_| {}).await;
    let b = TestBridge::start(|_| {}).await;
    let q = unique("handover");
    let mut worker = Worker::start(&q).await;
    let (mut c, token, _) = Client::hello(&a.url(), hello(None, vec![])).await;
    let token = token.unwrap();
    let session = c.session.clone();
    for id in ["h1", "h2", "h3"] {
        c.request(id, &q, b"{}", Some(10_000)).await;
    }
    // Requests of one socket reach the worker in no promised order (protocol §4).
    let mut reqs = [
        worker.next().await,
        worker.next().await,
        worker.next().await,
    ];
    reqs.sort_by_key(|d| {
        d.properties
            .correlation_id()
            .as_ref()
            .map(|c| c.to_string())
    });
    worker.reply(&reqs[0], b"1").await;
    assert_eq!(c.recv().await.reply().0, "h1");
    c.send(Frame::Ack(Ack { ids: vec!["h1"] })).await;
    // Bridge A goes away (redeploy): the socket closes with 1012, nothing fails.
    a.shutdown.cancel();
    let close = c.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1012);
    a.stopped().await;
    worker.reply(&reqs[1], b"2").await;

    let attach = vec![attach("h2", &q), attach("h3", &q)];
    let (mut c, _, resumed) =
        Client::hello(&b.url(), hello(Some((&session, &token)), attach)).await;
    assert!(resumed, "bridge B resumes bridge A's session");
    assert_eq!(c.recv().await.reply(), ("h2".into(), b"2".to_vec()));
    worker.reply(&reqs[2], b"3").await;
    assert_eq!(c.recv().await.reply(), ("h3".into(), b"3".to_vec()));
    c.send(Frame::Ack(Ack {
        ids: vec!["h2", "h3"],
    }))
    .await;
    assert!(
        c.nothing_within(Duration::from_millis(300)).await,
        "each reply once"
    );
    b.until("nothing pending", |s| s.pending == 0).await;
}

#[tokio::test]
async fn a_resume_on_the_same_bridge_takes_over_a_socket_not_yet_known_dead() {
    let bridge = TestBridge::start(|_| {}).await;
    let q = unique("takeover");
    let mut worker = Worker::start(&q).await;
    let (mut old, token, _) = Client::hello(&bridge.url(), hello(None, vec![])).await;
    let token = token.unwrap();
    let session = old.session.clone();
    old.request("t1", &q, b"{}", Some(10_000)).await;
    let req = worker.next().await;
    let resume = Some((session.as_str(), token.as_str()));
    let (mut new, _, resumed) =
        Client::hello(&bridge.url(), hello(resume, vec![attach("t1", &q)])).await;
    assert!(resumed);
    let close = old.closed().await.expect("the old socket is closed");
    assert_eq!(u16::from(close.code), ferry_protocol::CLOSE_TAKEN_OVER);
    worker.reply(&req, b"1").await;
    assert_eq!(new.recv().await.reply().0, "t1");
}

#[tokio::test]
async fn after_the_grace_period_the_queue_is_gone_and_a_resume_opens_a_new_session() {
    let bridge = TestBridge::start(|c| c.session_grace = Duration::from_secs(1)).await;
    let q = unique("expire");
    let mut worker = Worker::start(&q).await;
    let (mut c, token, _) = Client::hello(&bridge.url(), hello(None, vec![])).await;
    let token = token.unwrap();
    let session = c.session.clone();
    c.request("e1", &q, b"{}", Some(30_000)).await;
    let _req = worker.next().await;
    cut(c);
    let reply_queue = format!("ferry.reply.{session}");
    let deadline = tokio::time::Instant::now() + STEP;
    while queue_exists(&reply_queue).await {
        assert!(tokio::time::Instant::now() < deadline, "queue still there");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (c, new_token, resumed) = Client::hello(
        &bridge.url(),
        hello(Some((&session, &token)), vec![attach("e1", &q)]),
    )
    .await;
    assert!(!resumed, "an expired session is not resumed");
    assert_ne!(c.session, session);
    assert_ne!(new_token.as_deref(), Some(token.as_str()));
    assert_eq!(bridge.stats.snapshot().sessions_expired_total, 1);
    // The worker hears that nobody awaits e1 any more (grace + margin after the drop).
    bridge
        .until("the expiry's cancel notice", |s| s.cancel_notices == 1)
        .await;
}

#[tokio::test]
async fn a_wrong_token_does_not_resume() {
    let bridge = TestBridge::start(|_| {}).await;
    let q = unique("token");
    let mut worker = Worker::start(&q).await;
    let (mut c, _token, _) = Client::hello(&bridge.url(), hello(None, vec![])).await;
    let session = c.session.clone();
    c.request("w1", &q, b"{}", Some(10_000)).await;
    let _req = worker.next().await;
    let (thief, _, resumed) = Client::hello(
        &bridge.url(),
        hello(Some((&session, "0123456789abcdef0123456789abcdef")), vec![]),
    )
    .await;
    assert!(!resumed);
    assert_ne!(thief.session, session);
    assert!(
        c.nothing_within(Duration::from_millis(200)).await,
        "the owner keeps its socket"
    );
}

#[tokio::test]
async fn a_client_without_acks_gets_no_resume_token() {
    let bridge = TestBridge::start(|_| {}).await;
    let (_c, token, _) = Client::hello(&bridge.url(), Hello::default()).await;
    assert_eq!(token, None);
    let off = TestBridge::start(|c| c.session_grace = Duration::ZERO).await;
    let (_c, token, _) = Client::hello(&off.url(), hello(None, vec![])).await;
    assert_eq!(token, None, "--session-grace 0 turns resuming off");
}

/// Whether a queue exists, by a passive declare on a channel of its own.
/// Waits (polling a passive declare: the broker tells nobody) until the queue `name` is
/// gone; `what` names it in the failure.
pub(crate) async fn until_undeclared(name: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + STEP;
    while declared(name).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} was left behind"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn declared(name: &str) -> bool {
    let conn = lapin::Connection::connect(
        crate::support::amqp_url(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let opts = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let found = ch
        .queue_declare(name.into(), opts, lapin::types::FieldTable::default())
        .await
        .is_ok();
    let _ = conn.close(200, "bye".into()).await;
    found
}

#[tokio::test]
async fn a_resume_spends_its_token_and_a_closed_session_leaves_no_lease() {
    // A short grace: a closed session's queue is left to expire (never deleted under a
    // resume that may be consuming it), so the test waits for that.
    let bridge = TestBridge::start(|c| c.session_grace = Duration::from_secs(2)).await;
    let q = unique("spent");
    let (_w, _task) = crate::support::echo_worker(&q).await;
    let (mut c, t0, _) = Client::hello(&bridge.url(), hello(None, vec![])).await;
    let (t0, session) = (t0.unwrap(), c.session.clone());
    c.request("x", &q, b"1", Some(5_000)).await;
    assert_eq!(c.recv().await.reply().0, "x");
    assert!(declared(&ferry_bridge::resume::lease_queue("", &session, &t0)).await);
    cut(c);
    bridge.until("detached", |s| s.sessions == 0).await;
    let (c1, t1, resumed) =
        Client::hello(&bridge.url(), hello(Some((&session, &t0)), vec![])).await;
    assert!(resumed);
    let t1 = t1.unwrap();
    cut(c1);
    bridge.until("detached", |s| s.sessions == 0).await;
    // The spent token resumes nothing: a new, empty session.
    let (c2, _, resumed) = Client::hello(&bridge.url(), hello(Some((&session, &t0)), vec![])).await;
    assert!(!resumed, "a spent token is worthless");
    assert_ne!(c2.session, session);
    // The current one does; a normal close then ends the session and removes its queues.
    let (mut c3, t2, resumed) =
        Client::hello(&bridge.url(), hello(Some((&session, &t1)), vec![])).await;
    assert!(resumed);
    let lease = ferry_bridge::resume::lease_queue("", &session, &t2.unwrap());
    assert!(declared(&lease).await);
    c3.close_normally().await.unwrap();
    // The lease goes at once: the session can no longer be resumed.
    until_undeclared(&lease, "the lease").await;
    // The queue expires with the grace period (the broker sweeps expired queues on a timer).
    // Watched with rabbitmqctl: a passive declare would count as a use and renew it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let queue = format!("ferry.reply.{session}");
    loop {
        if !queue_exists(&queue).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue did not expire"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
