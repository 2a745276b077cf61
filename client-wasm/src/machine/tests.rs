//! Every transition of the machine, natively: a test host whose callers are numbers, and
//! effects read back as short strings (`send:REQUEST`, `reject:7:timeout`, ...).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};

use ferry_protocol::{
    Ack, Done, ErrorCode, ErrorFrame, Frame, Limits, Part, Progress, Reply, Welcome,
};

use super::*;
use crate::pending::TimerAction;

struct T;

impl Host for T {
    type Call = u32;
    type Progress = &'static str;
    type Meta = u32;
    type Ready = ();
    type Closing = ();
}

const T0: u64 = 1_000_000;

fn policy(reconnect: bool, persist: bool) -> Policy {
    Policy {
        initial_ms: if reconnect { 100 } else { 0 },
        max_ms: 1_000,
        attempts: 3,
        max_queued: 2,
        connect_timeout_ms: 5_000,
        persist,
    }
}

fn limits(heartbeat_ms: u32) -> Limits {
    Limits {
        max_frame_bytes: 4_096,
        max_inflight: 4,
        default_timeout_ms: 30_000,
        max_timeout_ms: 60_000,
        session_grace_ms: 30_000,
        heartbeat_ms,
    }
}

fn welcome(resumed: bool, token: Option<&str>, heartbeat_ms: u32) -> Vec<u8> {
    Frame::Welcome(Welcome {
        session: "s1",
        resumed,
        resume_token: token,
        limits: limits(heartbeat_ms),
        server: None,
        user: None,
    })
    .encode()
}

/// Reads effects back as strings; a sent frame by its kind (and ids where it has them).
fn show(effects: &[Effect<'_, T>]) -> Vec<String> {
    effects
        .iter()
        .map(|e| match e {
            Effect::Send(b) => match Frame::decode(b).expect("a frame the client encoded") {
                Frame::Hello(h) => {
                    let ids: Vec<_> = h.attach.iter().map(|a| a.id).collect();
                    format!("send:HELLO resume={:?} attach={ids:?}", h.resume)
                }
                Frame::Request(r) => format!("send:REQUEST {}", r.id),
                Frame::Gather(g) => format!("send:GATHER {}", g.id),
                Frame::Cancel(c) => format!("send:CANCEL {}", c.id),
                Frame::Ack(a) => format!("send:ACK {:?}", a.ids),
                Frame::Auth(_) => "send:AUTH".into(),
                other => format!("send:{}", other.kind()),
            },
            Effect::Reply { call, body, .. } => {
                format!("reply:{call}:{}", String::from_utf8_lossy(body.bytes))
            }
            Effect::Done { call, count } => format!("done:{call}:{count:?}"),
            Effect::Reject { call, failure } => format!("reject:{call}:{}", failure.code.as_str()),
            Effect::Progress { callback, body } => {
                format!(
                    "progress:{callback}:{}",
                    String::from_utf8_lossy(body.bytes)
                )
            }
            Effect::Part {
                replier, remote, ..
            } => format!("part:{replier:?}:{remote:?}"),
            Effect::Ready(()) => "ready".into(),
            Effect::NotReady { failure, .. } => format!("not_ready:{}", failure.code.as_str()),
            Effect::Closed(()) => "closed".into(),
            Effect::Timer(TimerAction::Arm { delay_ms }) => format!("timer:{delay_ms}"),
            Effect::Timer(_) => "timer:clear".into(),
            Effect::ArmRetry { ceiling_ms } => format!("retry:{ceiling_ms}"),
            Effect::StopRetry => "stop_retry".into(),
            Effect::Reconnect => "reconnect".into(),
            Effect::CloseSocket { code, .. } => format!("close_socket:{code}"),
            Effect::AbandonSocket => "abandon".into(),
            Effect::Detach => "detach".into(),
            Effect::QueueAcks => "queue_acks".into(),
            Effect::Changed => "changed".into(),
            Effect::State(s) => format!("state:{s}"),
            Effect::Ended(f) => format!("ended:{}", f.code.as_str()),
            Effect::Redeliver(_) => "redeliver".into(),
        })
        .collect()
}

fn has(effects: &[String], what: &str) -> bool {
    effects.iter().any(|e| e == what)
}

#[track_caller]
fn failure_of(effects: &[Effect<'_, T>], call: u32) -> Failure {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Reject { call: c, failure } if *c == call => Some(failure.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("call {call} was not rejected: {:?}", show(effects)))
}

fn handle(m: &mut Machine<T>, now: u64, ev: Event<'_, T>) -> Vec<String> {
    show(&m.handle(now, ev))
}

fn frame(m: &mut Machine<T>, now: u64, f: &Frame<'_>) -> Vec<String> {
    let bytes = f.encode();
    show(&m.handle(now, Event::Frame(&bytes)))
}

/// A client whose first socket opened and was welcomed at `T0`.
fn open(reconnect: bool, token: Option<&str>, heartbeat_ms: u32) -> Machine<T> {
    let mut m = Machine::new(policy(reconnect, false), None, T0, ());
    handle(&mut m, T0, Event::Timer);
    handle(&mut m, T0, Event::Opened { token: None });
    let w = welcome(false, token, heartbeat_ms);
    let fx = handle(&mut m, T0, Event::Frame(&w));
    assert!(has(&fx, "ready") && has(&fx, "state:open"), "{fx:?}");
    m
}

fn call<'a>(id: &str, call: u32, headers: &'a [(String, String)]) -> Outgoing<'a, T> {
    Outgoing {
        id: id.into(),
        destination: "patient_summary_request",
        body: b"{}",
        content_type: Some("application/json"),
        timeout_ms: Some(1_000.0),
        idle_timeout_ms: None,
        headers,
        gather: None,
        meta: call,
        call,
        progress: Some("p"),
        aborted: false,
        socket_open: true,
    }
}

fn request(m: &mut Machine<T>, now: u64, id: &str, n: u32) -> Vec<String> {
    handle(m, now, Event::Request(call(id, n, &[])))
}

fn reply<'a>(id: &'a str, body: &'a [u8]) -> Frame<'a> {
    Frame::Reply(Reply {
        id,
        content_type: Some("application/json"),
        headers: vec![],
        body,
    })
}

#[test]
fn hello_then_welcome_opens_the_session_and_resolves_ready() {
    let mut m: Machine<T> = Machine::new(policy(false, false), None, T0, ());
    assert_eq!(handle(&mut m, T0, Event::Timer), ["timer:5000"]);
    let fx = handle(
        &mut m,
        T0 + 10,
        Event::Opened {
            token: Some("jwt".into()),
        },
    );
    assert_eq!(fx, ["send:HELLO resume=None attach=[]"]);
    let w = welcome(false, None, 0);
    let fx = handle(&mut m, T0 + 20, Event::Frame(&w));
    assert_eq!(fx, ["ready", "state:open", "timer:clear"]);
    assert_eq!(m.state(), State::Open);
    assert_eq!(m.session(), Some("s1"));
    // A second WELCOME changes nothing.
    assert!(handle(&mut m, T0 + 30, Event::Frame(&w)).is_empty());
}

#[test]
fn a_handshake_without_welcome_times_out_and_ends_the_client() {
    let mut m: Machine<T> = Machine::new(policy(true, false), None, T0, ());
    handle(&mut m, T0, Event::Timer);
    assert!(
        handle(&mut m, T0 + 4_999, Event::Timer)
            .iter()
            .all(|e| e.starts_with("timer"))
    );
    let fx = handle(&mut m, T0 + 5_000, Event::Timer);
    assert_eq!(fx[0], "not_ready:timeout");
    assert!(
        has(&fx, "ended:timeout") && has(&fx, "close_socket:1000"),
        "{fx:?}"
    );
    assert_eq!(m.state(), State::Ended(ErrorCode::Timeout));
}

#[test]
fn a_refused_hello_rejects_ready_with_the_bridges_code() {
    let mut m: Machine<T> = Machine::new(policy(true, false), None, T0, ());
    let e = Frame::Error(ErrorFrame {
        id: None,
        code: ErrorCode::Unauthorized,
        message: "the token has expired",
        remote_code: None,
        content_type: None,
        details: b"",
    });
    let fx = frame(&mut m, T0, &e);
    assert_eq!(fx[0], "not_ready:unauthorized");
    assert!(has(&fx, "ended:unauthorized"));
    // The close that follows quotes what the bridge said, without ending it twice.
    let fx = handle(
        &mut m,
        T0,
        Event::Closed {
            code: 1008,
            reason: "",
        },
    );
    assert!(!fx.iter().any(|e| e.starts_with("ended")), "{fx:?}");
}

#[test]
fn a_refused_token_later_ends_an_open_client() {
    let mut m = open(true, Some("tok"), 0);
    request(&mut m, T0, "a", 1);
    let e = Frame::Error(ErrorFrame {
        id: None,
        code: ErrorCode::Unauthorized,
        message: "expired",
        remote_code: None,
        content_type: None,
        details: b"",
    });
    let fx = frame(&mut m, T0 + 1, &e);
    assert!(
        has(&fx, "reject:1:unauthorized") && has(&fx, "ended:unauthorized"),
        "{fx:?}"
    );
    assert_eq!(m.awaited(), 0);
}

#[test]
fn a_request_is_sent_and_its_reply_resolves_it() {
    let mut m = open(false, None, 0);
    let fx = request(&mut m, T0, "a", 1);
    assert_eq!(fx, ["send:REQUEST a", "timer:1500"]);
    assert_eq!(m.awaited(), 1);
    let fx = frame(&mut m, T0 + 5, &reply("a", b"42"));
    assert_eq!(fx, ["reply:1:42", "timer:clear"]);
    assert_eq!(m.awaited(), 0);
    // A reply nobody waits for is dropped.
    assert!(frame(&mut m, T0 + 6, &reply("a", b"43")).is_empty());
}

#[test]
fn calls_are_checked_before_anything_is_sent() {
    let mut m: Machine<T> = Machine::new(policy(false, false), None, T0, ());
    let fx = request(&mut m, T0, "early", 1);
    assert_eq!(fx, ["reject:1:disconnected", "timer:5000"]);
    let mut m = open(false, None, 0);
    type Change = fn(&mut Outgoing<'_, T>);
    let cases: [(&str, Change); 8] = [
        ("forbidden", |o| o.destination = "amq.direct"),
        ("bad_request", |o| o.content_type = Some("text/plain\n")),
        ("bad_request", |o| o.timeout_ms = Some(0.0)),
        ("bad_request", |o| o.idle_timeout_ms = Some(f64::NAN)),
        ("cancelled", |o| o.aborted = true),
        ("too_large", |o| o.body = &[0; 5_000]),
        ("bad_request", |o| o.gather = Some((None, Some(-1.0)))),
        ("bad_request", |o| o.timeout_ms = Some(-5.0)),
    ];
    for (i, (code, change)) in cases.into_iter().enumerate() {
        let mut o = call("x", i as u32, &[]);
        change(&mut o);
        let fx = m.handle(T0, Event::Request(o));
        let f = failure_of(&fx, i as u32);
        assert_eq!(f.code.as_str(), code, "case {i}: {}", f.message);
        assert!(!show(&fx).iter().any(|e| e.starts_with("send")), "case {i}");
    }
    let f = failure_of(
        &m.handle(
            T0,
            Event::Request({
                let mut o = call("x", 9, &[]);
                o.timeout_ms = Some(0.0);
                o
            }),
        ),
        9,
    );
    assert_eq!(f.message, "timeoutMs must be a positive number");
    let reserved = [("x-ferry-kind".to_string(), "1".to_string())];
    let f = failure_of(&m.handle(T0, Event::Request(call("x", 10, &reserved))), 10);
    assert_eq!(f.code, ErrorCode::Forbidden);
    assert_eq!(m.awaited(), 0);
    // The bridge's in-flight limit: the fifth of four.
    for i in 0..4 {
        request(&mut m, T0, &format!("r{i}"), i);
    }
    assert_eq!(request(&mut m, T0, "r4", 4), ["reject:4:overloaded"]);
}

#[test]
fn a_request_without_reply_times_out_and_is_cancelled_at_the_bridge() {
    let mut m = open(false, None, 0);
    request(&mut m, T0, "a", 1);
    // A timer that fires early (a throttled page's clock) only re-arms.
    assert_eq!(handle(&mut m, T0 + 1_499, Event::Timer), ["timer:1"]);
    let fx = handle(&mut m, T0 + 1_500, Event::Timer);
    assert_eq!(fx, ["send:CANCEL a", "reject:1:timeout"]);
    assert_eq!(m.awaited(), 0);
}

#[test]
fn progress_reaches_the_callback_and_moves_an_idle_deadline() {
    let mut m = open(false, None, 0);
    let mut o = call("a", 1, &[]);
    o.timeout_ms = Some(100.0);
    o.idle_timeout_ms = Some(100.0);
    m.handle(T0, Event::Request(o));
    let p = Frame::Progress(Progress {
        id: "a",
        content_type: None,
        body: b"50%",
    });
    let fx = frame(&mut m, T0 + 90, &p);
    assert_eq!(fx, ["progress:p:50%", "timer:600"]);
    assert_eq!(handle(&mut m, T0 + 600, Event::Timer), ["timer:90"]);
    assert_eq!(
        handle(&mut m, T0 + 690, Event::Timer)[1],
        "reject:1:timeout"
    );
}

#[test]
fn an_error_frame_rejects_its_request_with_the_workers_code_and_details() {
    let mut m = open(false, None, 0);
    request(&mut m, T0, "a", 1);
    let e = Frame::Error(ErrorFrame {
        id: Some("a"),
        code: ErrorCode::Remote,
        message: "patient not found",
        remote_code: Some("not_found"),
        content_type: Some("application/json"),
        details: b"{\"id\":42}",
    });
    let bytes = e.encode();
    let fx = m.handle(T0, Event::Frame(&bytes));
    let f = failure_of(&fx, 1);
    assert_eq!(f.code, ErrorCode::Remote);
    assert_eq!(f.id.as_deref(), Some("a"));
    assert_eq!(f.remote_code.as_deref(), Some("not_found"));
    assert_eq!(
        f.details.as_deref(),
        Some(&(b"{\"id\":42}".to_vec(), Some("application/json".into())))
    );
    assert_eq!(m.awaited(), 0);
}

#[test]
fn a_gather_gets_parts_and_ends_with_done_or_its_window() {
    let mut m = open(false, None, 0);
    let mut o = call("g", 1, &[]);
    o.gather = Some((Some("eu"), Some(3.0)));
    assert_eq!(show(&m.handle(T0, Event::Request(o)))[0], "send:GATHER g");
    let part = |remote_code| {
        Frame::Part(Part {
            id: "g",
            replier: Some("w1"),
            content_type: None,
            remote_code,
            message: None,
            body: b"x",
        })
    };
    assert_eq!(frame(&mut m, T0, &part(None)), ["part:Some(\"w1\"):None"]);
    assert_eq!(
        frame(&mut m, T0, &part(Some("boom"))),
        ["part:Some(\"w1\"):Some((\"boom\", \"the worker reported an error\"))"]
    );
    let done = Frame::Done(Done { id: "g", count: 2 });
    assert_eq!(frame(&mut m, T0, &done), ["done:1:Some(2)", "timer:clear"]);
    // Without DONE, the window's end resolves it (no count).
    let mut o = call("h", 2, &[]);
    o.gather = Some((None, None));
    m.handle(T0, Event::Request(o));
    let fx = handle(&mut m, T0 + 1_500, Event::Timer);
    assert_eq!(fx, ["send:CANCEL h", "done:2:None"]);
    assert_eq!(m.awaited(), 0);
}

#[test]
fn an_abort_cancels_at_the_bridge_and_rejects_once() {
    let mut m = open(false, None, 0);
    request(&mut m, T0, "a", 1);
    let fx = handle(&mut m, T0, Event::Abort("a"));
    assert_eq!(fx, ["send:CANCEL a", "reject:1:cancelled", "timer:clear"]);
    assert!(handle(&mut m, T0, Event::Abort("a")).is_empty());
    assert_eq!(m.awaited(), 0);
}

#[test]
fn close_rejects_what_is_pending_and_settles_on_the_close_event() {
    let mut m = open(false, None, 0);
    request(&mut m, T0, "a", 1);
    let fx = handle(
        &mut m,
        T0,
        Event::Close {
            closing: (),
            socket_closed: false,
        },
    );
    assert_eq!(
        fx,
        [
            "stop_retry",
            "reject:1:closed",
            "ended:closed",
            "close_socket:1000",
            "timer:3000"
        ]
    );
    assert_eq!(request(&mut m, T0, "b", 2), ["reject:2:closed"]);
    let fx = handle(
        &mut m,
        T0 + 10,
        Event::Closed {
            code: 1000,
            reason: "",
        },
    );
    assert_eq!(fx, ["detach", "stop_retry", "closed", "timer:clear"]);
    // Closing again settles at once.
    assert_eq!(
        handle(
            &mut m,
            T0,
            Event::Close {
                closing: (),
                socket_closed: false
            }
        ),
        ["closed"]
    );
}

#[test]
fn close_without_a_close_event_settles_after_the_wait() {
    let mut m = open(false, None, 0);
    handle(
        &mut m,
        T0,
        Event::Close {
            closing: (),
            socket_closed: false,
        },
    );
    assert_eq!(handle(&mut m, T0 + CLOSE_WAIT_MS, Event::Timer), ["closed"]);
}

#[test]
fn a_dropped_socket_without_reconnecting_ends_with_what_it_said() {
    let mut m = open(false, None, 0);
    request(&mut m, T0, "a", 1);
    handle(
        &mut m,
        T0,
        Event::SocketError("Unexpected server response: 502".into()),
    );
    let fx = m.handle(
        T0,
        Event::Closed {
            code: 1011,
            reason: "broker gone",
        },
    );
    let f = failure_of(&fx, 1);
    assert_eq!(f.code, ErrorCode::Disconnected);
    assert_eq!(
        f.message,
        "the connection to the bridge closed (code 1011): broker gone; Unexpected server response: 502"
    );
    assert!(show(&fx).contains(&"ended:disconnected".into()));
}

/// The reconnect timer fires, the new socket opens, WELCOME (`resumed` or not) comes: the
/// HELLO sent and what WELCOME did.
fn reconnect(m: &mut Machine<T>, resumed: bool) -> (String, Vec<String>) {
    handle(m, T0, Event::Retry);
    let hello = handle(m, T0, Event::Opened { token: None }).remove(0);
    let w = welcome(resumed, Some("tok2"), 0);
    (hello, handle(m, T0, Event::Frame(&w)))
}

/// An open resumable client with request `a` (call 1) sent, then its socket dropped.
fn dropped_with_one_request() -> Machine<T> {
    let mut m = open(true, Some("tok"), 0);
    let mut o = call("a", 1, &[]);
    o.timeout_ms = Some(60_000.0);
    m.handle(T0, Event::Request(o));
    let accepted = Frame::Accepted(Ack { ids: vec!["a"] });
    frame(&mut m, T0, &accepted);
    let fx = handle(
        &mut m,
        T0 + 1,
        Event::Closed {
            code: 1006,
            reason: "",
        },
    );
    assert_eq!(
        fx,
        ["stop_retry", "retry:100", "detach", "state:reconnecting"]
    );
    assert_eq!(m.state(), State::Reconnecting);
    m
}

#[test]
fn a_resumable_session_survives_a_drop_and_its_reply_comes_once() {
    let mut m = dropped_with_one_request();
    assert_eq!(m.awaited(), 1);
    assert_eq!(
        handle(&mut m, T0 + 50, Event::Retry),
        ["reconnect", "timer:5000"]
    );
    let fx = handle(&mut m, T0 + 60, Event::Opened { token: None });
    assert_eq!(fx, ["send:HELLO resume=Some(\"s1\") attach=[\"a\"]"]);
    let w = welcome(true, Some("tok2"), 0);
    let fx = handle(&mut m, T0 + 70, Event::Frame(&w));
    assert_eq!(fx, ["state:open", "timer:60430"]);
    let fx = frame(&mut m, T0 + 80, &reply("a", b"1"));
    assert_eq!(fx, ["queue_acks", "reply:1:1", "timer:clear"]);
    // The bridge redelivers what it has not seen ACKed: ACKed again, not delivered again.
    assert_eq!(frame(&mut m, T0 + 81, &reply("a", b"1")), [] as [&str; 0]);
    assert_eq!(
        handle(&mut m, T0 + 82, Event::FlushAcks),
        ["send:ACK [\"a\", \"a\"]"]
    );
}

#[test]
fn a_session_not_resumed_rejects_what_was_published_and_resends_what_was_not() {
    let mut m = open(true, Some("tok"), 0);
    request(&mut m, T0, "published", 1);
    request(&mut m, T0, "unsure", 2);
    frame(
        &mut m,
        T0,
        &Frame::Accepted(Ack {
            ids: vec!["published"],
        }),
    );
    handle(
        &mut m,
        T0,
        Event::Closed {
            code: 1006,
            reason: "",
        },
    );
    let (hello, fx) = reconnect(&mut m, false);
    // Both are attached: the bridge knows the one it published, and says so.
    assert!(
        hello.contains("attach=[\"published\", \"unsure\"]"),
        "{hello}"
    );
    assert!(has(&fx, "send:REQUEST unsure"), "{fx:?}");
    assert!(has(&fx, "reject:1:session_expired"), "{fx:?}");
    assert_eq!(m.awaited(), 1);
}

#[test]
fn requests_made_while_reconnecting_wait_for_the_next_socket_up_to_a_limit() {
    let mut m = dropped_with_one_request();
    assert_eq!(request(&mut m, T0, "q1", 2), ["timer:1500"]);
    request(&mut m, T0, "q2", 3);
    assert_eq!(request(&mut m, T0, "q3", 4), ["reject:4:disconnected"]);
    let mut g = call("g", 5, &[]);
    g.gather = Some((None, None));
    assert_eq!(
        show(&m.handle(T0, Event::Request(g))),
        ["reject:5:disconnected"]
    );
    let (hello, fx) = reconnect(&mut m, true);
    assert!(
        hello.ends_with("attach=[\"a\"]"),
        "queued ones are not attached: {hello}"
    );
    let sent: Vec<_> = fx.iter().filter(|e| e.starts_with("send")).collect();
    assert_eq!(sent.len(), 2, "{fx:?}");
}

#[test]
fn a_request_on_a_socket_the_bridge_closed_waits_for_the_resumed_session() {
    let mut m = open(true, Some("tok"), 0);
    let mut o = call("a", 1, &[]);
    o.socket_open = false;
    assert_eq!(show(&m.handle(T0, Event::Request(o))), ["timer:1500"]);
    handle(
        &mut m,
        T0,
        Event::Closed {
            code: 1012,
            reason: "draining",
        },
    );
    let (_, fx) = reconnect(&mut m, true);
    assert!(has(&fx, "send:REQUEST a"), "{fx:?}");
}

#[test]
fn reconnecting_gives_up_after_its_attempts() {
    let mut m = dropped_with_one_request();
    // Each attempt opens a socket that never gets a WELCOME within the connect timeout.
    let mut now = T0;
    for ceiling in ["retry:200", "retry:400"] {
        handle(&mut m, now, Event::Retry);
        now += 5_000;
        let fx = handle(&mut m, now, Event::Timer);
        assert!(has(&fx, "abandon") && has(&fx, ceiling), "{fx:?}");
    }
    handle(&mut m, now, Event::Retry);
    now += 5_000;
    let fx = handle(&mut m, now, Event::Timer);
    assert!(
        has(&fx, "reject:1:disconnected") && has(&fx, "ended:disconnected"),
        "{fx:?}"
    );
}

#[test]
fn a_socket_that_cannot_be_made_is_retried_then_given_up() {
    let mut m = dropped_with_one_request();
    for ceiling in ["retry:200", "retry:400"] {
        handle(&mut m, T0, Event::Retry);
        assert!(has(&handle(&mut m, T0, Event::ReconnectFailed), ceiling));
    }
    handle(&mut m, T0, Event::Retry);
    let fx = m.handle(T0, Event::ReconnectFailed);
    assert_eq!(failure_of(&fx, 1).message, "cannot reconnect to the bridge");
}

#[test]
fn a_taken_over_session_starts_afresh() {
    let mut m = open(true, Some("tok"), 0);
    request(&mut m, T0, "a", 1);
    frame(&mut m, T0, &Frame::Accepted(Ack { ids: vec!["a"] }));
    let fx = handle(
        &mut m,
        T0,
        Event::Closed {
            code: ferry_protocol::CLOSE_TAKEN_OVER,
            reason: "",
        },
    );
    assert!(has(&fx, "reject:1:disconnected"), "{fx:?}");
    handle(&mut m, T0, Event::Retry);
    let fx = handle(&mut m, T0, Event::Opened { token: None });
    assert_eq!(fx, ["send:HELLO resume=None attach=[]"]);
}

#[test]
fn the_watchdog_drops_a_silent_socket_and_frames_keep_it_alive() {
    let mut m = open(true, Some("tok"), 1_000);
    // Frames keep it alive: at the deadline, it re-arms from the last frame.
    frame(&mut m, T0 + 2_000, &Frame::Heartbeat);
    let fx = handle(&mut m, T0 + 3_000, Event::Timer);
    assert_eq!(fx, ["timer:2000"]);
    // Three heartbeats of silence: the socket is dead.
    let fx = handle(&mut m, T0 + 5_000, Event::Timer);
    assert_eq!(fx[0], "abandon");
    assert!(has(&fx, "state:reconnecting"), "{fx:?}");
}

#[test]
fn a_late_watchdog_gives_a_frozen_page_one_more_heartbeat() {
    let mut m = open(true, Some("tok"), 1_000);
    // The timer was due at T0 + 3 s but ran 10 s late (the page was frozen).
    let fx = handle(&mut m, T0 + 13_000, Event::Timer);
    assert_eq!(fx, ["timer:1000"]);
    frame(&mut m, T0 + 13_100, &Frame::Heartbeat);
    assert_eq!(handle(&mut m, T0 + 14_000, Event::Timer), ["timer:2100"]);
}

#[test]
fn offline_spends_no_attempt_and_online_reconnects_at_once() {
    let mut m = open(true, Some("tok"), 0);
    assert_eq!(handle(&mut m, T0, Event::Network(false)), ["stop_retry"]);
    let fx = handle(
        &mut m,
        T0,
        Event::Closed {
            code: 1006,
            reason: "",
        },
    );
    assert!(!fx.iter().any(|e| e.starts_with("retry")), "{fx:?}");
    assert_eq!(m.state(), State::Reconnecting);
    let fx = handle(&mut m, T0 + 60_000, Event::Network(true));
    assert_eq!(fx, ["stop_retry", "reconnect", "timer:5000"]);
    assert_eq!(m.attempt, 0);
    // Online again while an attempt is under way: nothing more.
    assert!(handle(&mut m, T0 + 60_001, Event::Network(true)).is_empty());
}

#[test]
fn a_persisted_session_is_restored_parked_and_reattached() {
    let mut m: Machine<T> = Machine::new(policy(true, true), None, T0, ());
    m.restore(
        T0,
        Restored {
            session: "s1".into(),
            token: "tok".into(),
            entries: vec![
                ("a".into(), "q".into(), (T0 + 9_000) as f64, None, 7),
                ("old".into(), "q".into(), (T0 - 1) as f64, None, 8),
                ("nan".into(), "q".into(), f64::NAN, None, 9),
            ],
        },
    );
    assert_eq!(m.awaited(), 1);
    let parked: Vec<_> = m
        .parked()
        .map(|(id, d, meta, exp)| (id, d, *meta, exp))
        .collect();
    assert_eq!(parked, [("a", "q", 7, false)]);
    let fx = handle(&mut m, T0, Event::Opened { token: None });
    assert_eq!(
        fx,
        [
            "send:HELLO resume=Some(\"s1\") attach=[\"a\"]",
            "timer:5000"
        ]
    );
    let w = welcome(true, Some("tok2"), 0);
    let fx = handle(&mut m, T0, Event::Frame(&w));
    assert!(has(&fx, "changed") && has(&fx, "ready"), "{fx:?}");
    // The reply comes before the app reattaches: kept.
    assert!(frame(&mut m, T0, &reply("a", b"done")).is_empty());
    let snap = m.snapshot().expect("a resumable session");
    let entries = snap.entries;
    assert_eq!((snap.session, snap.token, entries.len()), ("s1", "tok2", 1));
    assert_eq!(
        (entries[0].id, *entries[0].meta, entries[0].deadline),
        ("a", 7, T0 + 9_000)
    );
    let mut m2 = m;
    let fx = handle(
        &mut m2,
        T0,
        Event::Reattach {
            id: "a",
            call: 1,
            progress: None,
        },
    );
    assert_eq!(fx, ["redeliver", "changed"]);
    let raw = match m2
        .handle(
            T0,
            Event::Reattach {
                id: "a",
                call: 2,
                progress: None,
            },
        )
        .pop()
    {
        Some(Effect::Reject { failure, .. }) => failure,
        _ => panic!("a second reattach is refused"),
    };
    assert_eq!(raw.code, ErrorCode::BadRequest);
    let stored = reply("a", b"done").encode();
    let fx = handle(&mut m2, T0, Event::Stored(&stored));
    assert_eq!(fx, ["queue_acks", "reply:1:done", "changed", "timer:clear"]);
}

/// A persisting client restored from a snapshot of session `s1` (token `tok`) with `entries`.
fn restored(entries: Vec<(String, String, f64, Option<u32>, u32)>) -> Machine<T> {
    let mut m: Machine<T> = Machine::new(policy(true, true), None, T0, ());
    let session = "s1".into();
    let token = "tok".into();
    m.restore(
        T0,
        Restored {
            session,
            token,
            entries,
        },
    );
    m
}

#[test]
fn a_restored_request_whose_session_expired_rejects_when_reattached() {
    let mut m = restored(vec![(
        "a".into(),
        "q".into(),
        (T0 + 9_000) as f64,
        Some(0),
        7,
    )]);
    handle(&mut m, T0, Event::Opened { token: None });
    let w = welcome(false, Some("new"), 0);
    handle(&mut m, T0, Event::Frame(&w));
    assert_eq!(m.parked().map(|p| p.3).collect::<Vec<_>>(), [true]);
    let fx = handle(
        &mut m,
        T0,
        Event::Reattach {
            id: "a",
            call: 1,
            progress: None,
        },
    );
    assert_eq!(fx, ["reject:1:session_expired", "changed", "timer:clear"]);
}

#[test]
fn an_expired_restored_reply_is_acked_without_a_caller() {
    let mut m = restored(vec![("a".into(), "q".into(), (T0 + 100) as f64, None, 7)]);
    handle(&mut m, T0, Event::Opened { token: None });
    let w = welcome(true, Some("t"), 0);
    handle(&mut m, T0, Event::Frame(&w));
    frame(&mut m, T0, &reply("a", b"late"));
    let fx = handle(&mut m, T0 + 100, Event::Timer);
    assert!(has(&fx, "queue_acks"), "{fx:?}");
    assert_eq!(m.awaited(), 0);
}

#[test]
fn auth_goes_out_only_on_an_open_socket() {
    let m: Machine<T> = Machine::new(policy(true, false), None, T0, ());
    assert!(m.auth("t").is_none());
    let mut m = open(true, Some("tok"), 0);
    assert!(m.auth("t").is_some());
    handle(
        &mut m,
        T0,
        Event::Closed {
            code: 1006,
            reason: "",
        },
    );
    assert!(m.auth("t").is_none());
}

#[test]
fn shutdown_rejects_everything_and_leaves_nothing_pending() {
    let mut m = open(false, None, 0);
    request(&mut m, T0, "a", 1);
    request(&mut m, T0, "b", 2);
    let fx = show(&m.shutdown("the client was dropped"));
    assert_eq!(fx.len(), 2);
    assert!(has(&fx, "reject:1:closed") && has(&fx, "reject:2:closed"));
    assert_eq!(m.awaited(), 0);
}
