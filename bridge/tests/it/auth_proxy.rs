//! The connect proxy (`--auth-rpc`) against the real bridge and broker: an ordinary AMQP RPC
//! server (here a lapin one) decides who a token belongs to; refusals, silence and nonsense
//! are `unauthorized` after a bounded wait, and a slow proxy stalls nobody else.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::*;
use ferry_protocol::{Frame, Hello};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// A connect proxy on `queue`: `good-<user>` is that user (allowed `dest`, ward C1),
/// `refuse` an error reply, `slow` no answer, anything else a body that is not JSON. Every
/// question's body goes to the returned channel.
async fn proxy(queue: &str, dest: &str) -> mpsc::UnboundedReceiver<Value> {
    let mut inner = Worker::start(queue).await;
    let (tx, rx) = mpsc::unbounded_channel();
    let dest = dest.to_owned();
    tokio::spawn(async move {
        loop {
            let d = inner.next_forever().await;
            let q: Value = serde_json::from_slice(&d.data).unwrap();
            let _ = tx.send(q.clone());
            let token = q["token"].as_str().unwrap_or("").to_owned();
            if let Some(user) = token.strip_prefix("good-") {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                let body = json!({
                    "user": user, "allow": [dest], "claims": {"ward": "C1"}, "expiresAt": now + 60_000,
                });
                inner.reply(&d, body.to_string().as_bytes()).await;
            } else if token == "refuse" {
                let h = headers(&[
                    ("x-ferry-error", "denied"),
                    ("x-ferry-error-message", "no such session"),
                ]);
                inner.reply_with(&d, b"{}", h).await;
            } else if token != "slow" {
                inner.reply(&d, b"not json").await;
            }
        }
    });
    rx
}

async fn refused(b: &TestBridge, token: &str) -> String {
    let (code, message, _) = hello_refused(&b.url(), Some(token)).await;
    assert_eq!(code, "unauthorized", "{message}");
    message
}

#[tokio::test]
async fn the_proxy_names_the_user_and_refusals_silence_and_nonsense_are_unauthorized() {
    let proxy_queue = unique("auth.proxy");
    let dest = unique("auth.proxied");
    let mut worker = Worker::start(&dest).await;
    let mut questions = proxy(&proxy_queue, &dest).await;
    let b = TestBridge::start(|c| {
        c.auth_rpc = Some(proxy_queue.clone());
        c.auth_rpc_timeout = Duration::from_millis(3_000);
        c.forward_claim = vec!["ward".into()];
    })
    .await;

    let hello = Hello {
        token: Some("good-carol"),
        ..Hello::default()
    };
    let (mut c, _, _) = Client::hello(&b.url(), hello).await;
    let q = questions.recv().await.unwrap();
    assert_eq!(q["token"], "good-carol");
    assert_eq!(q["remoteAddress"], "127.0.0.1");
    c.request("r", &dest, b"{}", Some(5_000)).await;
    let d = worker.next().await;
    let h = d.properties.headers().clone().unwrap();
    let user = h.inner().get("x-ferry-user").cloned();
    assert!(
        matches!(user, Some(lapin::types::AMQPValue::LongString(s)) if s.as_bytes() == b"carol")
    );
    let ward = h.inner().get("x-ferry-claim-ward").cloned();
    assert!(matches!(ward, Some(lapin::types::AMQPValue::LongString(s)) if s.as_bytes() == b"C1"));
    // The proxy's allow list narrows the bridge's.
    c.request("x", &unique("auth.elsewhere"), b"{}", Some(5_000))
        .await;
    assert_eq!(c.recv().await.error().1, "forbidden");

    assert!(refused(&b, "refuse").await.contains("no such session"));
    assert!(refused(&b, "nonsense").await.contains("not valid"));

    // A silent proxy: refused after the bounded wait, and meanwhile others get in.
    let started = Instant::now();
    let slow = tokio::spawn({
        let b_url = b.url();
        async move {
            let mut ws = raw_socket(&b_url, &["ferry.v1"]).await;
            let hello = Hello {
                token: Some("slow"),
                ..Hello::default()
            };
            ws.send(Message::Binary(Frame::Hello(hello).encode().into()))
                .await
                .unwrap();
            closed_after_error(&mut ws).await
        }
    });
    let hello = Hello {
        token: Some("good-dave"),
        ..Hello::default()
    };
    let (_d, _, _) = Client::hello(&b.url(), hello).await;
    // Held up, it would have waited the whole 3 s; a HELLO on a loaded machine takes far less.
    assert!(
        started.elapsed() < Duration::from_millis(2_000),
        "another client was not held up by the silent proxy"
    );
    let (code, message, _) = slow.await.unwrap();
    assert_eq!(code, "unauthorized");
    assert!(message.contains("did not answer"), "{message}");
    assert!(started.elapsed() >= Duration::from_millis(2_900));
}
