//! The connect proxy (`--auth-rpc QUEUE`): the bridge asks the app's own service, over AMQP,
//! who a token belongs to. Any team can so authenticate with its own session cookies or IdP,
//! in any language: the service is an ordinary AMQP RPC server (`docs/protocol.md` §2.2).
//!
//! One channel on the consume connection carries every question, with RabbitMQ's direct
//! reply-to (`amq.rabbitmq.reply-to`: no queue per question, answers on the asking channel);
//! a dispatcher task hands each answer to the HELLO that waits for its `correlation_id`, for
//! at most `--auth-rpc-timeout`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use super::{AuthError, Identity};
use crate::broker::{Broker, Links};
use crate::error::BridgeError;

/// RabbitMQ's pseudo-queue for direct replies.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Largest answer of the proxy read (an identity is a few hundred bytes).
const MAX_REPLY: usize = 64 * 1024;
/// Longest error message of the proxy passed on to the client.
const MAX_MESSAGE: usize = 200;

/// What a connect proxy answered.
struct Answer {
    /// `x-ferry-error` and `x-ferry-error-message` of an error reply.
    error: Option<(String, String)>,
    body: Vec<u8>,
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>;

/// The channel questions go out on, and the links it lives on.
struct Link {
    links: Weak<Links>,
    channel: Channel,
}

/// Asks `--auth-rpc` who is calling.
pub struct AuthRpc {
    queue: String,
    timeout: Duration,
    forward: Vec<String>,
    link: tokio::sync::Mutex<Option<Link>>,
    waiting: Waiting,
    tracker: TaskTracker,
}

/// Who asks: what the proxy learns besides the token.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The socket's `Origin` header, if any.
    pub origin: Option<String>,
    /// The client's address (after `--trusted-proxy`).
    pub addr: Option<std::net::IpAddr>,
}

/// Removes a question's waiting slot on every exit (answer, timeout, error).
struct Slot<'a> {
    waiting: &'a Waiting,
    id: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(&self.id);
        }
    }
}

impl AuthRpc {
    /// Asks `queue`, waiting at most `timeout`; `forward` as `--forward-claim`.
    pub fn new(queue: String, timeout: Duration, forward: Vec<String>) -> Self {
        Self {
            queue,
            timeout,
            forward,
            link: tokio::sync::Mutex::new(None),
            waiting: Arc::default(),
            tracker: TaskTracker::new(),
        }
    }

    /// The identity the proxy gives `token`: `Unauthorized` when it refuses, stays silent or
    /// answers nonsense; `BrokerUnavailable` when it cannot be asked (the client retries).
    pub async fn identify(
        &self,
        broker: &Broker,
        token: &str,
        peer: &Peer,
    ) -> Result<Identity, BridgeError> {
        let links = broker
            .current()
            .ok_or_else(|| BridgeError::BrokerUnavailable("not connected".into()))?;
        let channel = self.channel(&links).await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(id.clone(), tx);
        }
        let _slot = Slot {
            waiting: &self.waiting,
            id: id.clone(),
        };
        let body = json!({
            "token": token,
            "origin": peer.origin,
            "remoteAddress": peer.addr.map(|a| a.to_string()),
        });
        let ms = self.timeout.as_millis();
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + ms;
        let mut headers = FieldTable::default();
        let deadline = i64::try_from(deadline).unwrap_or(i64::MAX);
        headers.insert("x-ferry-deadline".into(), AMQPValue::LongLongInt(deadline));
        let props = BasicProperties::default()
            .with_correlation_id(id.as_str().into())
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_content_type("application/json".into())
            .with_expiration(ms.max(1).to_string().into())
            .with_headers(headers);
        let ask = async {
            channel
                .basic_publish(
                    "".into(),
                    self.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body.to_string().as_bytes(),
                    props,
                )
                .await?;
            Ok::<_, lapin::Error>(rx.await)
        };
        let answer = match tokio::time::timeout(self.timeout, ask).await {
            Err(_) | Ok(Ok(Err(_))) => return Err(AuthError::ProxySilent.into()),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(Ok(a))) => a,
        };
        self.read(answer).map_err(BridgeError::from)
    }

    fn read(&self, answer: Answer) -> Result<Identity, AuthError> {
        if let Some((code, message)) = answer.error {
            let mut why = if message.is_empty() { code } else { message };
            let mut end = why.len().min(MAX_MESSAGE);
            while !why.is_char_boundary(end) {
                end -= 1;
            }
            why.truncate(end);
            return Err(AuthError::Refused(why));
        }
        if answer.body.len() > MAX_REPLY {
            return Err(AuthError::ProxyReply);
        }
        let Ok(Value::Object(reply)) = serde_json::from_slice::<Value>(&answer.body) else {
            return Err(AuthError::ProxyReply);
        };
        // The reply's fields become the claims a token would carry: one path for both.
        let mut claims = match reply.get("claims") {
            Some(Value::Object(c)) => c.clone(),
            _ => Map::new(),
        };
        claims.insert(
            "sub".into(),
            reply.get("user").cloned().unwrap_or(Value::Null),
        );
        let mut ferry = Map::new();
        for key in ["allow", "allowExchange"] {
            if let Some(v) = reply.get(key) {
                ferry.insert(key.into(), v.clone());
            }
        }
        claims.insert("ferry".into(), Value::Object(ferry));
        match reply.get("expiresAt") {
            Some(Value::Number(ms)) => {
                let secs = ms.as_u64().ok_or(AuthError::ProxyReply)? / 1000;
                claims.insert("exp".into(), json!(secs));
            }
            _ => {
                claims.remove("exp");
            }
        }
        let identity = Identity::from_claims(&claims, &self.forward)?;
        if identity.expires_in().is_some_and(|d| d.is_zero()) {
            return Err(AuthError::Expired);
        }
        Ok(identity)
    }

    /// The question channel on `links`, opened (with its dispatcher) when missing or stale.
    async fn channel(&self, links: &Arc<Links>) -> Result<Channel, BridgeError> {
        let mut slot = self.link.lock().await;
        if let Some(l) = slot.as_ref()
            && l.links
                .upgrade()
                .is_some_and(|cur| Arc::ptr_eq(&cur, links))
            && l.channel.status().connected()
        {
            return Ok(l.channel.clone());
        }
        let channel = links.consume_conn().create_channel().await?;
        let opts = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let mut consumer = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                "".into(),
                opts,
                FieldTable::default(),
            )
            .await?;
        let waiting = self.waiting.clone();
        // Ends when the channel does (broker loss, bridge stop).
        self.tracker.spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let Some(id) = d.properties.correlation_id().as_ref() else {
                    continue;
                };
                let tx = waiting.lock().ok().and_then(|mut w| w.remove(id.as_str()));
                if let Some(tx) = tx {
                    let _ = tx.send(Answer {
                        error: error_headers(d.properties.headers().as_ref()),
                        body: d.data,
                    });
                }
            }
        });
        *slot = Some(Link {
            links: Arc::downgrade(links),
            channel: channel.clone(),
        });
        Ok(channel)
    }
}

/// `x-ferry-error` and `x-ferry-error-message` of a reply, when it is an error reply.
fn error_headers(headers: Option<&FieldTable>) -> Option<(String, String)> {
    let h = headers?.inner();
    let text = |k: &str| match h.get(k) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
        _ => None,
    };
    let code = text(ferry_protocol::headers::ERROR_CODE)?;
    Some((
        code,
        text(ferry_protocol::headers::ERROR_MESSAGE).unwrap_or_default(),
    ))
}
