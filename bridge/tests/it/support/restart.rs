//! Restarting the shared RabbitMQ in a test: `rabbitmqctl`, a guard that starts the broker
//! again whatever happens, and what the restart tests share (a resumable HELLO, the wait for
//! the ERROR that must follow a restart).

use std::process::Command;
use std::time::Duration;

use ferry_protocol::{Frame, Hello};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::{Client, Received};

/// Runs `rabbitmqctl args`; true when it succeeded.
pub fn rabbitmqctl(args: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What `rabbitmqctl args` printed.
pub fn rabbitmqctl_out(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails the test when `rabbitmqctl` (a prerequisite of the restart tests) cannot reach the
/// node: a missing prerequisite is a failure, never a skip.
pub fn assert_broker_reachable() {
    assert!(
        rabbitmqctl(&["status"]),
        "rabbitmqctl cannot reach the RabbitMQ node: the broker-restart tests need it"
    );
}

/// HELLO for a resumable session.
pub fn resumable() -> Hello<'static> {
    Hello {
        client: Some("broker-restart"),
        acks: true,
        token: None,
        ..Hello::default()
    }
}

/// `(id, code)` of the next ERROR on `client` (HEARTBEAT and ACCEPTED skipped), which must come within
/// 30 s: a quarter of the requests' timeout.
pub async fn error_after_restart(client: &mut Client) -> (Option<String>, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, client.ws.next()).await {
            Err(_) => panic!("no answer 30 s after the restart (the timeout is 120 s)"),
            Ok(Some(Ok(Message::Binary(b)))) => {
                let r = Received(b);
                if matches!(r.frame(), Frame::Heartbeat | Frame::Accepted(_)) {
                    continue;
                }
                let (id, code, ..) = r.error();
                return (id, code);
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("socket ended: {other:?}"),
        }
    }
}

/// Stops the broker's app, runs `down` while it is stopped, starts it again (the guard starts
/// it whatever happens).
pub async fn restart_broker(down: impl std::future::Future<Output = ()>) {
    let guard = StartAgain;
    assert!(
        tokio::task::spawn_blocking(|| rabbitmqctl(&["stop_app"]))
            .await
            .unwrap()
    );
    down.await;
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();
}

/// Starts the broker's app again when dropped, whatever happened in between.
pub struct StartAgain;

impl Drop for StartAgain {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    }
}
