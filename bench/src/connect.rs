//! The cost of authentication on connect: HELLO → WELCOME latency of new sessions on a bridge
//! that verifies a JWT and on one that does not, in alternating rounds (the WebSocket is open
//! before the clock starts, so only the session handshake is timed).

use std::time::Instant;

use ferry_protocol::{Frame, Hello};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use crate::error::{BenchError, Result};
use crate::session;

/// What the connect test measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectResult {
    /// Sessions opened on each bridge.
    pub sessions: usize,
    /// HELLO → WELCOME with a JWT checked (HS256), median and 99th percentile, µs.
    pub auth_p50_us: f64,
    /// 99th percentile with a JWT, µs.
    pub auth_p99_us: f64,
    /// HELLO → WELCOME on a bridge without authentication, median, µs.
    pub plain_p50_us: f64,
    /// 99th percentile without authentication, µs.
    pub plain_p99_us: f64,
}

/// `rounds` × `per_round` sessions on each of `auth_url` (with `token`) and `plain_url`.
pub async fn run(
    auth_url: &str,
    token: &str,
    plain_url: &str,
    rounds: usize,
    per_round: usize,
) -> Result<ConnectResult> {
    let (mut auth, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for _ in 0..per_round {
            auth.push(one(auth_url, Some(token)).await?);
            plain.push(one(plain_url, None).await?);
        }
    }
    let (auth_p50_us, auth_p99_us) = percentiles(&mut auth);
    let (plain_p50_us, plain_p99_us) = percentiles(&mut plain);
    Ok(ConnectResult {
        sessions: auth.len(),
        auth_p50_us,
        auth_p99_us,
        plain_p50_us,
        plain_p99_us,
    })
}

/// One session: µs from sending HELLO to reading WELCOME.
async fn one(url: &str, token: Option<&str>) -> Result<f64> {
    let (mut ws, _) = tokio_tungstenite::connect_async(session::request(url)?).await?;
    let hello = Frame::Hello(Hello {
        client: Some(session::CLIENT_NAME),
        token,
        ..Hello::default()
    });
    let start = Instant::now();
    ws.send(Message::Binary(hello.encode().into())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                let us = start.elapsed().as_secs_f64() * 1e6;
                return match Frame::decode_from_bridge(&b) {
                    Ok(Frame::Welcome(_)) => {
                        let _ = ws.close(None).await;
                        Ok(us)
                    }
                    _ => Err(BenchError::Protocol("expected WELCOME".into())),
                };
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BenchError::Protocol("socket ended before WELCOME".into())),
        }
    }
}

fn percentiles(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.99))
}
