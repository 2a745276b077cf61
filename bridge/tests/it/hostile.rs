//! Hostile clients against the real bridge and broker: each worst case a client can send is
//! refused with a clear error while a well-behaved client on the same bridge loses nothing,
//! and every per-socket and per-address bound holds.

use std::time::Duration;

use crate::support::*;
use ferry_protocol::validate::{MAX_HEADER_VALUE_LEN, MAX_HEADERS};
use ferry_protocol::{Frame, Gather, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A well-behaved client keeps `n` requests going to an echo worker until `stop`, and
/// returns how many replies it got and every error code it saw.
async fn steady(
    url: String,
    queue: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (u32, Vec<String>) {
    let mut c = Client::connect(&url).await;
    let (mut ok, mut errors, mut i) = (0, Vec::new(), 0u32);
    while !*stop.borrow() {
        for _ in 0..8 {
            i += 1;
            c.request(&i.to_string(), &queue, b"{}", Some(10_000)).await;
        }
        for _ in 0..8 {
            match c.recv().await.frame() {
                Frame::Reply(_) => ok += 1,
                Frame::Error(e) => errors.push(e.code.as_str().to_owned()),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    (ok, errors)
}

#[tokio::test]
async fn worst_case_requests_are_refused_and_another_client_loses_nothing() {
    let queue = unique("hostile.steady");
    let (_w, _task) = echo_worker(&queue).await;
    let b = TestBridge::start(|_| {}).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let good = tokio::spawn(steady(b.url(), queue.clone(), stop_rx));
    let mut attacker = Client::connect(&b.url()).await;
    // Every header the protocol allows, each at its longest: ~133 KB, over frame_max.
    let names: Vec<String> = (0..MAX_HEADERS).map(|i| format!("h{i:02}")).collect();
    let value = "v".repeat(MAX_HEADER_VALUE_LEN);
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), value.as_str())).collect();
    for round in 0..5 {
        let id = format!("big{round}");
        attacker
            .send(Frame::Request(Request {
                id: &id,
                destination: &queue,
                content_type: None,
                timeout_ms: Some(5_000),
                idle_timeout_ms: None,
                headers: headers.clone(),
                body: b"{}",
            }))
            .await;
        let (rid, code, message, ..) = attacker.recv().await.error();
        assert_eq!(
            (rid.as_deref(), code.as_str()),
            (Some(id.as_str()), "too_large")
        );
        assert!(message.contains("16384"), "the limit is named: {message}");
    }
    // A message of nothing but empty header fields: refused by the decoder's count cap.
    let mut flood = vec![ferry_protocol::frame::kind::REQUEST];
    for _ in 0..100_000 {
        flood.extend_from_slice(&[ferry_protocol::codec::tag::HEADER, 0, 1, 0]);
    }
    flood.push(0);
    attacker.send_raw(flood).await;
    let (_, code, message, ..) = attacker.recv().await.error();
    assert_eq!(code, "bad_request");
    assert!(message.contains("too many header"), "{message}");
    // Every id an ACK may carry, and one more.
    let ids: Vec<String> = (0..=ferry_protocol::validate::MAX_ACK_IDS)
        .map(|i| i.to_string())
        .collect();
    attacker
        .send(Frame::Ack(ferry_protocol::Ack {
            ids: ids.iter().map(String::as_str).collect(),
        }))
        .await;
    assert_eq!(attacker.recv().await.error().1, "bad_request");
    // Ferry's own queues and the cancel exchange, whatever the allowlist says.
    attacker
        .request(
            "r",
            &format!("ferry.reply.{}", attacker.session),
            b"{}",
            None,
        )
        .await;
    assert_eq!(attacker.recv().await.error().1, "forbidden");
    stop_tx.send(true).unwrap();
    let (ok, errors) = good.await.unwrap();
    assert!(ok >= 8, "the steady client kept working ({ok} replies)");
    assert!(
        errors.is_empty(),
        "the steady client lost nothing: {errors:?}"
    );
    let metrics = http_get(b.admin, "/metrics").await;
    assert!(
        metrics.contains("ferry_broker_connects_total 1\n"),
        "the broker connection never dropped:\n{metrics}"
    );
}

#[tokio::test]
async fn with_allow_star_ferrys_own_queues_and_the_cancel_exchange_stay_out_of_reach() {
    let b = TestBridge::start(|c| {
        c.allow = vec!["*".into()];
        c.allow_exchange = vec!["*".into()];
    })
    .await;
    let mut c = Client::connect(&b.url()).await;
    for dest in [
        "ferry.reply.0123456789abcdef",
        "ferry.epoch.x",
        "amq.direct",
    ] {
        c.request("r", dest, b"{}", None).await;
        let (_, code, message, ..) = c.recv().await.error();
        assert_eq!(code, "forbidden", "{dest}: {message}");
    }
    c.send(Frame::Gather(Gather {
        id: "g",
        destination: "ferry.cancel",
        routing_key: Some("#"),
        content_type: None,
        timeout_ms: Some(1_000),
        max_replies: None,
        headers: vec![],
        body: b"{}",
    }))
    .await;
    assert_eq!(c.recv().await.error().1, "forbidden");
}

#[tokio::test]
async fn requests_over_the_rate_are_rate_limited_and_the_socket_stays_open() {
    let queue = unique("hostile.rate");
    let (_w, _task) = echo_worker(&queue).await;
    let b = TestBridge::start(|c| {
        c.request_rate = 2;
        c.request_burst = 3;
    })
    .await;
    let mut c = Client::connect(&b.url()).await;
    for i in 0..4 {
        c.request(&i.to_string(), &queue, b"1", Some(5_000)).await;
    }
    let mut codes = Vec::new();
    for _ in 0..4 {
        let r = c.recv().await;
        codes.push(match r.frame() {
            Frame::Reply(_) => "reply".to_owned(),
            Frame::Error(e) => e.code.as_str().to_owned(),
            other => panic!("{other:?}"),
        });
    }
    codes.sort();
    assert_eq!(codes, ["rate_limited", "reply", "reply", "reply"]);
    // Half a second later a token has come back: the same socket is served again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.request("later", &queue, b"1", Some(5_000)).await;
    assert_eq!(c.recv().await.reply().0, "later");
}

#[tokio::test]
async fn sockets_per_address_and_their_open_rate_are_capped() {
    let b = TestBridge::start(|c| {
        c.max_connections_per_ip = 2;
        c.session_rate = 1000;
    })
    .await;
    let _a = Client::connect(&b.url()).await;
    let _b = Client::connect(&b.url()).await;
    let third = tokio_tungstenite::connect_async(b.url()).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    drop(_a);
    b.until("the first socket's place is given back", |s| {
        s.sessions == 1
    })
    .await;
    let _c = Client::connect(&b.url()).await;
    let slow = TestBridge::start(|c| c.session_rate = 1).await; // bursts of 2
    let _x = Client::connect(&slow.url()).await;
    let _y = Client::connect(&slow.url()).await;
    match tokio_tungstenite::connect_async(slow.url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    let metrics = http_get(slow.admin, "/metrics").await;
    assert!(
        metrics.contains("ferry_connections_refused_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_half_sent_http_request_is_dropped_after_the_header_timeout() {
    let b = TestBridge::start(|c| c.header_read_timeout = Duration::from_millis(500)).await;
    let half = raw_exchange(b.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    assert!(half.is_some(), "the bridge closed the slow connection");
}

#[tokio::test]
async fn connections_over_the_global_cap_get_503() {
    let b = TestBridge::start(|c| c.max_connections = 1).await;
    let _held = Client::connect(&b.url()).await;
    let buf = raw_exchange(b.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let buf = buf.expect("the bridge closes it");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
}

#[tokio::test]
async fn a_full_request_queue_refuses_with_broker_rejected_not_a_timeout() {
    use lapin::options::QueueDeclareOptions;
    use lapin::types::{AMQPValue, FieldTable};
    // What an operator's `max-length` + `overflow: reject-publish` policy does, as queue
    // arguments: one message fits, the next publish is refused by the broker.
    let queue = unique("hostile.full");
    let conn = lapin::Connection::connect(amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    let _cleanup = Cleanup(vec![queue.clone()]);
    let b = TestBridge::start(|c| c.allow_waiting = vec![queue.clone()]).await;
    let mut c = Client::connect(&b.url()).await;
    c.request("fits", &queue, b"1", Some(30_000)).await;
    c.request("over", &queue, b"2", Some(30_000)).await;
    let (id, code, ..) = c.recv().await.error();
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("over"), "broker_rejected")
    );
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test]
async fn the_bridge_works_with_a_broker_user_holding_only_the_documented_permissions() {
    // docs/security.md: configure, write and read regexes for the bridge's own user.
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new("rabbitmqctl")
            .args(args)
            .output();
        out.expect("rabbitmqctl runs (a test prerequisite)")
    };
    let user = format!(
        "ferry-min-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let setup = {
        let user = user.clone();
        tokio::task::spawn_blocking(move || {
            assert!(ctl(&["add_user", &user, "pw"]).status.success());
            let perms = ctl(&[
                "set_permissions",
                "-p",
                "/",
                &user,
                r"^ferry\.(reply|lease|epoch)\.|^ferry\.cancel$",
                r"^(amq\.default|ferry\.cancel)$",
                r"^ferry\.(reply|lease|epoch)\.",
            ]);
            assert!(perms.status.success(), "{perms:?}");
        })
    };
    setup.await.unwrap();
    let _guard = UserGuard(user.clone());
    let queue = unique("hostile.perms");
    let (_w, _task) = echo_worker(&queue).await;
    let url = crate::support::amqp_url_as(&user, "pw");
    let b = TestBridge::start(|c| c.amqp_url = vec![url]).await;
    // A request, a cancel notice, and a resumable session that resumes.
    let hello = ferry_protocol::Hello {
        acks: true,
        ..ferry_protocol::Hello::default()
    };
    let (mut c, token, _) = Client::hello(&b.url(), hello).await;
    c.request("r", &queue, b"ok", Some(5_000)).await;
    assert_eq!(c.recv().await.reply().0, "r");
    let session = c.session.clone();
    drop(c);
    b.until("detached", |s| s.sessions == 0).await;
    let hello = ferry_protocol::Hello {
        acks: true,
        resume: Some(&session),
        resume_token: token.as_deref(),
        ..ferry_protocol::Hello::default()
    };
    let (_c, _, resumed) = Client::hello(&b.url(), hello).await;
    assert!(resumed);
    let metrics = http_get(b.admin, "/metrics").await;
    assert!(
        metrics.contains("ferry_broker_connects_total 1\n"),
        "{metrics}"
    );
}

/// Deletes the test's broker user whatever happens.
struct UserGuard(String);

impl Drop for UserGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_user", &self.0])
            .output();
    }
}

#[tokio::test]
async fn a_gather_routing_key_outside_its_pattern_is_forbidden() {
    let b = TestBridge::start(|c| c.allow_exchange = vec!["test.regions/eu.*".into()]).await;
    let mut c = Client::connect(&b.url()).await;
    let gather = |id: &'static str, key: &'static str| {
        Frame::Gather(Gather {
            id,
            destination: "test.regions",
            routing_key: Some(key),
            content_type: None,
            timeout_ms: Some(1_000),
            max_replies: None,
            headers: vec![],
            body: b"{}",
        })
    };
    c.send(gather("us", "us.east")).await;
    assert_eq!(c.recv().await.error().1, "forbidden");
    // Inside the pattern the bridge goes on to the broker (where no such exchange exists).
    c.send(gather("eu", "eu.west")).await;
    assert_eq!(c.recv().await.error().1, "no_route");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let b = TestBridge::start(|c| c.header_read_timeout = Duration::from_millis(500)).await;
    let mut tcp = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The answer arrives; then nothing more is sent on the kept-alive connection.
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(STEP, tcp.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "an idle keep-alive connection is not held forever"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn behind_a_proxy_the_proxy_protocol_names_the_address_the_limits_count() {
    let b = TestBridge::start(|c| {
        c.trusted_proxy = vec!["127.0.0.1/32".parse().unwrap()];
        c.proxy_protocol = true;
        c.max_connections_per_ip = 1;
    })
    .await;
    // What HAProxy's send-proxy writes before the client's bytes.
    let via_proxy = |client: &'static str| {
        let url = b.url();
        let addr = b.addr;
        async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let header = format!("PROXY TCP4 {client} 127.0.0.1 40000 80\r\n");
            tcp.write_all(header.as_bytes()).await.unwrap();
            let req = crate::support::ws_request(&url);
            tokio_tungstenite::client_async(req, tcp).await
        }
    };
    let first = via_proxy("203.0.113.1").await;
    assert!(first.is_ok(), "the first socket of 203.0.113.1");
    match via_proxy("203.0.113.1").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("a second socket of 203.0.113.1 is over its cap: {other:?}"),
    }
    assert!(
        via_proxy("203.0.113.2").await.is_ok(),
        "another client behind the same proxy"
    );
    // The trusted proxy must send the header: plain HTTP from it gets no answer.
    let out = raw_exchange(b.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(!out.unwrap_or_default().starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn a_channel_error_ends_that_channel_alone_not_the_broker_connection() {
    use lapin::options::QueueDeclareOptions;
    use lapin::types::FieldTable;
    let queue = unique("hostile.channel");
    let (_w, _task) = echo_worker(&queue).await;
    let b = TestBridge::start(|_| {}).await;
    let mut victim = Client::connect(&b.url()).await;
    // Someone with broker access (a worker sees reply_to) declares the victim's reply queue
    // first, with other flags: the bridge's declare then fails with a channel error.
    let conn = lapin::Connection::connect(amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let name = format!("ferry.reply.{}", victim.session);
    let args = FieldTable::default();
    ch.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    let _cleanup = Cleanup(vec![name.clone()]);
    victim.request("v", &queue, b"1", Some(5_000)).await;
    assert_eq!(victim.recv().await.error().1, "broker_unavailable");
    // Sessions on every consume channel (the failed one is replaced) are served, and the
    // broker connections were never rebuilt.
    for i in 0..8 {
        let mut c = Client::connect(&b.url()).await;
        c.request(&i.to_string(), &queue, b"1", Some(5_000)).await;
        assert_eq!(c.recv().await.reply().0, i.to_string());
    }
    let metrics = http_get(b.admin, "/metrics").await;
    assert!(
        metrics.contains("ferry_broker_connects_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failed_publish_channel_is_replaced_alone() {
    use lapin::options::ExchangeDeleteOptions;
    // The cancel exchange deleted under the bridge (an operator's slip): the next cancel
    // notice's publish fails with a channel error on the shared publish channel.
    let exchange = unique("cancel");
    let queue = unique("hostile.publish");
    let (_w, _task) = echo_worker(&queue).await;
    let silent = Worker::start(&unique("hostile.silent")).await;
    let b = {
        let exchange = exchange.clone();
        let silent = silent.queue.clone();
        TestBridge::start(move |c| {
            c.cancel_exchange = exchange;
            c.allow_waiting = vec![silent];
        })
        .await
    };
    let conn = lapin::Connection::connect(amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    let mut c = Client::connect(&b.url()).await;
    c.request("doomed", &silent.queue, b"1", Some(30_000)).await;
    c.send(Frame::Cancel(ferry_protocol::Cancel { id: "doomed" }))
        .await;
    // A publish that was on the failed channel fails with it (broker_unavailable); then
    // requests are published on the new channel and answered, and the broker connections
    // were never rebuilt.
    let (mut ok, mut failed) = (0, 0);
    for i in 0..40 {
        c.request(&i.to_string(), &queue, b"1", Some(5_000)).await;
        match c.recv().await.frame() {
            Frame::Reply(_) => ok += 1,
            Frame::Error(e) => {
                assert_eq!(e.code.as_str(), "broker_unavailable");
                failed += 1;
            }
            other => panic!("{other:?}"),
        }
        if ok == 20 {
            break;
        }
    }
    assert_eq!(ok, 20);
    assert!(failed <= 2, "only what was on the failed channel: {failed}");
    let metrics = http_get(b.admin, "/metrics").await;
    assert!(
        metrics.contains("ferry_broker_connects_total 1\n"),
        "{metrics}"
    );
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test]
async fn resumes_racing_their_sessions_close_cost_nobody_else() {
    let queue = unique("hostile.race");
    let (_w, _task) = echo_worker(&queue).await;
    let b = TestBridge::start(|_| {}).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let good = tokio::spawn(steady(b.url(), queue.clone(), stop_rx));
    let resumable = || ferry_protocol::Hello {
        acks: true,
        ..ferry_protocol::Hello::default()
    };
    // The review's H3: a session's socket closes (its queue is deleted) while another socket
    // resumes it, in every interleaving the scheduler gives, twenty times.
    let mut outcomes = (0, 0);
    for round in 0..20 {
        let (mut a, token, _) = Client::hello(&b.url(), resumable()).await;
        a.request("r", &queue, b"1", Some(5_000)).await;
        assert_eq!(a.recv().await.reply().0, "r");
        let session = a.session.clone();
        let token = token.unwrap();
        let url = b.url();
        let resume = tokio::spawn(async move {
            let hello = ferry_protocol::Hello {
                acks: true,
                resume: Some(&session),
                resume_token: Some(&token),
                ..ferry_protocol::Hello::default()
            };
            Client::hello(&url, hello).await.2
        });
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        let _ = a.close_normally().await;
        if resume.await.unwrap() {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
    }
    stop_tx.send(true).unwrap();
    let (ok, errors) = good.await.unwrap();
    assert!(
        ok >= 8 && errors.is_empty(),
        "the steady client lost nothing: {ok} replies, {errors:?}"
    );
    let metrics = http_get(b.admin, "/metrics").await;
    assert!(
        metrics.contains("ferry_broker_connects_total 1\n"),
        "no race closed a shared channel or connection ({outcomes:?} resumed/new):\n{metrics}"
    );
}
