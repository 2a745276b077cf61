//! The session loop without RabbitMQ: a socket of in-memory messages, the broker an
//! in-memory fake ([`crate::broker::fake`]); frame handling, limits, ordering and clean-up.
//! What needs the broker itself (queues, confirms, resume, restarts) is in `tests/it`.

use ferry_protocol::headers::CancelReason;
use ferry_protocol::{ErrorCode, Frame, Hello};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::error::BridgeError;
use harness::{Harness, correlation_id};

mod harness;

#[tokio::test]
async fn a_request_is_published_answered_and_leaves_nothing_behind() {
    let mut h = Harness::open(&[]).await;
    h.request("r1", None, b"ping").await;
    let call = h.fake.published().await;
    assert_eq!(call.to, "echo");
    assert_eq!(correlation_id(&call), "r1");
    let reply_to = call.properties.reply_to().as_ref().map(|r| r.as_str());
    assert_eq!(reply_to, Some(h.queue().as_str()));
    assert_eq!(&call.body[..], b"ping");
    assert_eq!(h.pending(), 1);

    assert!(h.fake.answer(&call, None, b"pong"));
    assert_eq!(h.reply().await, ("r1".into(), b"pong".to_vec()));
    assert_eq!(h.pending(), 0);
    assert_eq!(
        h.fake.seen(|s| s.acked.len()),
        1,
        "the reply is acknowledged"
    );

    h.send_message(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    })))
    .await;
    h.drop_socket().await;
    assert_eq!(h.fake.consumed(), 0, "the reply queue is closed");
    assert_eq!(h.fake.seen(|s| s.closed.clone()), vec![h.queue()]);
    assert_eq!(h.shared.stats.snapshot().sessions, 0);
}

#[tokio::test]
async fn replies_in_any_order_reach_the_request_they_answer() {
    let mut h = Harness::open(&[]).await;
    let mut calls = Vec::new();
    for i in 0..50 {
        h.request(&format!("r{i}"), None, format!("{i}").as_bytes())
            .await;
        calls.push(h.fake.published().await);
    }
    for call in calls.iter().rev() {
        let body = call.body.to_vec();
        assert!(h.fake.answer(call, None, &body));
    }
    for i in (0..50).rev() {
        let (id, body) = h.reply().await;
        assert_eq!(id, format!("r{i}"));
        assert_eq!(body, format!("{i}").into_bytes());
    }
    assert_eq!(h.pending(), 0);
}

#[tokio::test]
async fn max_inflight_refuses_the_call_over_it_and_frees_room_with_each_reply() {
    let mut h = Harness::open(&["--max-inflight", "2"]).await;
    h.request("a", None, b"").await;
    h.request("b", None, b"").await;
    let first = h.fake.published().await;
    let _second = h.fake.published().await;
    h.request("c", None, b"").await;
    assert_eq!(h.error().await, (Some("c".into()), ErrorCode::Overloaded));
    assert!(h.fake.answer(&first, None, b"1"));
    assert_eq!(h.reply().await.0, "a");
    h.request("c", None, b"").await;
    assert_eq!(correlation_id(&h.fake.published().await), "c");
    assert_eq!(h.pending(), 2);
}

#[tokio::test]
async fn a_pending_id_sent_again_is_refused_and_the_first_still_answered() {
    let mut h = Harness::open(&[]).await;
    h.request("same", None, b"one").await;
    let call = h.fake.published().await;
    h.request("same", None, b"two").await;
    assert_eq!(
        h.error().await,
        (Some("same".into()), ErrorCode::BadRequest)
    );
    assert!(h.fake.answer(&call, None, b"answer"));
    assert_eq!(h.reply().await, ("same".into(), b"answer".to_vec()));
}

#[tokio::test]
async fn bad_frames_are_answered_with_errors_and_the_session_serves_on() {
    let mut h = Harness::open(&[]).await;
    h.send_message(Message::Text("{}".into())).await;
    assert_eq!(h.error().await.1, BridgeError::TextFrame.code());
    h.send(vec![0xff, 0x00, 0x01]).await;
    assert_eq!(h.error().await.0, None);
    h.send(Frame::Hello(Hello::default()).encode()).await;
    assert_eq!(h.error().await.1, BridgeError::HelloTwice.code());
    h.round_trip("after").await;
}

#[tokio::test]
async fn a_reply_nobody_awaits_is_dropped_and_acknowledged() {
    let mut h = Harness::open(&[]).await;
    h.request("real", None, b"").await;
    let call = h.fake.published().await;
    let stray = lapin::BasicProperties::default().with_correlation_id("nobody".into());
    assert!(h.fake.deliver(&h.queue(), stray, b"stray".to_vec()));
    assert!(h.fake.answer(&call, None, b"mine"));
    // Only the real reply reaches the socket, after the stray one was handled.
    assert_eq!(h.reply().await, ("real".into(), b"mine".to_vec()));
    assert_eq!(h.shared.stats.snapshot().dropped_replies, 1);
    assert_eq!(h.fake.seen(|s| s.acked.len()), 2);
}

#[tokio::test]
async fn a_timeout_fails_the_request_tells_the_workers_and_drops_the_late_reply() {
    let mut h = Harness::open(&[]).await;
    h.request("slow", Some(50), b"").await;
    let call = h.fake.published().await;
    assert_eq!(h.error().await, (Some("slow".into()), ErrorCode::Timeout));
    assert_eq!(h.pending(), 0);
    let notices = h.fake.seen(|s| s.notices.clone());
    assert_eq!(notices.len(), 1);
    assert_eq!(&*notices[0].id, "slow");
    assert_eq!(notices[0].reason, CancelReason::Timeout);
    assert_eq!(notices[0].reply_to, h.queue());

    assert!(h.fake.answer(&call, None, b"too late"));
    h.round_trip("next").await;
    assert_eq!(h.shared.stats.snapshot().dropped_replies, 1);
}

#[tokio::test]
async fn without_a_broker_a_request_fails_at_once_and_the_next_one_goes_through() {
    let mut h = Harness::open(&[]).await;
    h.fake.set_up(false);
    h.request("away", None, b"").await;
    let down = (Some("away".into()), ErrorCode::BrokerUnavailable);
    assert_eq!(h.error().await, down);
    h.fake.set_up(true);
    h.round_trip("back").await;
}

#[tokio::test]
async fn a_refused_publish_fails_its_request_only() {
    let mut h = Harness::open(&[]).await;
    h.fake.refuse(Some(|| BridgeError::NoRoute("echo".into())));
    h.request("lost", None, b"").await;
    assert_eq!(h.error().await, (Some("lost".into()), ErrorCode::NoRoute));
    assert_eq!(h.pending(), 0);
    h.fake.refuse(None);
    h.round_trip("found").await;
}

#[tokio::test]
async fn a_dropped_socket_cancels_what_is_pending_and_closes_the_queue() {
    let mut h = Harness::open(&[]).await;
    h.request("p1", None, b"").await;
    h.request("p2", None, b"").await;
    let _ = h.fake.published().await;
    let _ = h.fake.published().await;
    h.drop_socket().await;
    assert_eq!(h.pending(), 0, "the pending map is empty after the session");
    let mut reasons = h.fake.seen(|s| {
        s.notices
            .iter()
            .map(|n| (n.id.to_string(), n.reason))
            .collect::<Vec<_>>()
    });
    reasons.sort_by(|a, b| a.0.cmp(&b.0));
    let disconnected = CancelReason::Disconnected;
    assert_eq!(
        reasons,
        vec![("p1".into(), disconnected), ("p2".into(), disconnected)]
    );
    assert_eq!(h.fake.consumed(), 0);
}

#[tokio::test]
async fn the_request_rate_limit_refuses_past_the_burst() {
    let mut h = Harness::open(&["--request-rate", "1", "--request-burst", "2"]).await;
    for id in ["a", "b"] {
        h.request(id, None, b"").await;
        let _ = h.fake.published().await;
    }
    h.request("c", None, b"").await;
    assert_eq!(h.error().await, (Some("c".into()), ErrorCode::RateLimited));
    assert_eq!(h.pending(), 2);
}

/// A request reported ACCEPTED is one a resume must find, and a resume needs the session's
/// lease: while it is on its way (a session whose queue came from the pool, on its first
/// request), ACCEPTED waits, and comes once the lease is held.
#[tokio::test]
async fn accepted_waits_for_the_sessions_lease() {
    let mut h = Harness::open_resumable(&[]).await;
    h.fake.leases_late(true);
    h.request("r1", Some(30_000), b"x").await;
    let _call = h.fake.published().await;
    let delay = crate::session::accepted::ACCEPT_DELAY;
    assert!(
        h.nothing_within(delay * 3).await,
        "no ACCEPTED before the lease"
    );
    h.fake.leases_late(false);
    let f = h.next().await;
    match Frame::decode_from_bridge(&f) {
        Ok(Frame::Accepted(a)) => assert_eq!(a.ids, vec!["r1"]),
        other => panic!("expected ACCEPTED, got {other:?}"),
    }
}
