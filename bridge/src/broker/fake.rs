//! An in-memory broker behind the session's seam ([`super::port`]), for the session loop's
//! unit tests of what needs no RabbitMQ (frame handling, limits, ordering, clean-up): calls
//! published are handed to the test, which answers them as a worker would; reply queues are
//! bounded channels; acks, requeues and closes are recorded. The integration tests keep the
//! real RabbitMQ.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use lapin::BasicProperties;
use lapin::types::{DeliveryTag, ShortString};
use tokio::sync::mpsc;

use super::port::{Boxed, Port, Replies, Reply, Route, Target};
use super::publish::CancelNotice;
use crate::error::BridgeError;

/// Room in each reply queue and in the list of calls published.
const ROOM: usize = 1024;

/// A call the session published.
#[derive(Debug)]
pub struct Published {
    /// The queue (by the default exchange) or `exchange/key`.
    pub to: String,
    /// Its properties (`reply_to`, `correlation_id`, headers).
    pub properties: BasicProperties,
    /// Its body.
    pub body: Bytes,
}

/// What the fake broker saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Delivery tags acknowledged.
    pub acked: Vec<DeliveryTag>,
    /// Delivery tags given back to their queue.
    pub requeued: Vec<DeliveryTag>,
    /// Reply queues closed (a plain session's end) or detached.
    pub closed: Vec<String>,
    /// Cancel notices published.
    pub notices: Vec<CancelNotice>,
}

#[derive(Default)]
struct State {
    down: bool,
    /// The reply queues being consumed.
    queues: HashMap<String, mpsc::Sender<Reply>>,
    next_tag: DeliveryTag,
    /// Every publish fails with this, when set.
    refuse: Option<fn() -> BridgeError>,
    /// Sessions' leases are on their way (not yet held).
    leases_late: bool,
    seen: Seen,
}

/// The in-memory broker.
pub struct Fake {
    state: Mutex<State>,
    published_tx: mpsc::Sender<Published>,
    published_rx: tokio::sync::Mutex<mpsc::Receiver<Published>>,
}

impl Fake {
    /// A broker that is up, with no queues.
    pub fn new() -> Arc<Self> {
        let (published_tx, rx) = mpsc::channel(ROOM);
        Arc::new(Self {
            state: Mutex::default(),
            published_tx,
            published_rx: tokio::sync::Mutex::new(rx),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// The broker goes away (`false`) or comes back.
    pub fn set_up(&self, up: bool) {
        self.state().down = !up;
    }

    /// Leases are on their way (`true`: no session holds its lease) or held.
    pub fn leases_late(&self, late: bool) {
        self.state().leases_late = late;
    }

    /// Every publish from now on fails with `error()` (`None`: confirmed again).
    pub fn refuse(&self, error: Option<fn() -> BridgeError>) {
        self.state().refuse = error;
    }

    /// The next call a session publishes (within 5 s).
    pub async fn published(&self) -> Published {
        let mut rx = self.published_rx.lock().await;
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        match next {
            Ok(Some(p)) => p,
            _ => panic!("nothing published within 5 s"),
        }
    }

    /// Answers `call` as a worker would: `body` to its `reply_to` with its `correlation_id`
    /// and `headers`. False when its reply queue is not consumed (or full).
    pub fn answer(
        &self,
        call: &Published,
        headers: Option<lapin::types::FieldTable>,
        body: &[u8],
    ) -> bool {
        let reply_to = call.properties.reply_to().as_ref().map(ShortString::as_str);
        let id = call.properties.correlation_id().clone().unwrap_or_default();
        let mut props = BasicProperties::default().with_correlation_id(id);
        if let Some(h) = headers {
            props = props.with_headers(h);
        }
        self.deliver(reply_to.unwrap_or(""), props, body.to_vec())
    }

    /// Puts a reply straight into the consumed queue `queue`.
    pub fn deliver(&self, queue: &str, properties: BasicProperties, data: Vec<u8>) -> bool {
        let mut s = self.state();
        s.next_tag += 1;
        let tag = s.next_tag;
        let Some(tx) = s.queues.get(queue) else {
            return false;
        };
        tx.try_send(Reply {
            tag,
            properties,
            data,
        })
        .is_ok()
    }

    /// What the broker saw so far.
    pub fn seen<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&self.state().seen)
    }

    /// The reply queues being consumed now.
    pub fn consumed(&self) -> usize {
        self.state().queues.len()
    }
}

impl Port for Arc<Fake> {
    fn route(&self) -> Option<Arc<dyn Route>> {
        if self.state().down {
            return None;
        }
        Some(self.clone() as Arc<dyn Route>)
    }
}

impl Route for Fake {
    fn replies(
        self: Arc<Self>,
        session: &str,
        _resumable: Option<(&str, Duration)>,
        _limit: Duration,
    ) -> Boxed<'static, Result<Box<dyn Replies>, BridgeError>> {
        let queue = format!("{}{session}", super::replies::REPLY_QUEUE_PREFIX);
        let (tx, rx) = mpsc::channel(ROOM);
        self.state().queues.insert(queue.clone(), tx);
        let replies = FakeReplies {
            queue,
            rx,
            fake: self,
        };
        Box::pin(std::future::ready(
            Ok(Box::new(replies) as Box<dyn Replies>),
        ))
    }

    fn publish(
        self: Arc<Self>,
        to: Target,
        body: Bytes,
        properties: BasicProperties,
    ) -> Boxed<'static, Result<(), BridgeError>> {
        let to = match to {
            Target::Queue { name, .. } => name,
            Target::Exchange { name, key } => format!("{name}/{key}"),
        };
        let refused = self.state().refuse.map(|e| e());
        Box::pin(async move {
            if let Some(e) = refused {
                return Err(e);
            }
            let call = Published {
                to,
                properties,
                body,
            };
            self.published_tx
                .try_send(call)
                .map_err(|_| BridgeError::BrokerRejected)
        })
    }

    fn notice(self: Arc<Self>, notice: CancelNotice) -> Option<Boxed<'static, ()>> {
        self.state().seen.notices.push(notice);
        Some(Box::pin(std::future::ready(())))
    }
}

/// A consumed reply queue of the fake broker.
struct FakeReplies {
    queue: String,
    rx: mpsc::Receiver<Reply>,
    fake: Arc<Fake>,
}

impl FakeReplies {
    fn end(&self) -> Boxed<'static, ()> {
        let mut s = self.fake.state();
        s.queues.remove(&self.queue);
        s.seen.closed.push(self.queue.clone());
        Box::pin(std::future::ready(()))
    }
}

impl Replies for FakeReplies {
    fn queue(&self) -> &str {
        &self.queue
    }

    fn restarts(&self) -> u64 {
        0
    }

    fn is_live(&self) -> bool {
        !self.fake.state().down
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Reply>> {
        self.rx.poll_recv(cx)
    }

    fn ack(&self, tag: DeliveryTag) {
        self.fake.state().seen.acked.push(tag);
    }

    fn requeue(&self, tag: DeliveryTag) {
        self.fake.state().seen.requeued.push(tag);
    }

    fn detach(self: Box<Self>) -> Boxed<'static, ()> {
        self.end()
    }

    fn close(self: Box<Self>) -> Boxed<'static, ()> {
        self.end()
    }

    fn lease_ready(&mut self) -> bool {
        !self.fake.state().leases_late
    }
}
