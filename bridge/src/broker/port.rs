//! The seam between a session and the broker: what a session's requests, gathers, replies
//! and cancel notices ask of it, as three small traits ([`Port`], [`Route`], [`Replies`]),
//! and their AMQP side ([`super::Broker`], [`Links`], [`ReplySub`]). The session loop runs
//! on them unchanged against RabbitMQ or, in unit tests, an in-memory fake
//! (`broker/fake.rs`). A resume (its lease, its queue's existence, a rebind after an outage)
//! needs RabbitMQ itself and stays on [`Links`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::types::DeliveryTag;

use super::publish::{self, CancelNotice};
use super::replies::ReplySub;
use super::{Broker, Links};
use crate::error::BridgeError;

/// A boxed future a trait object can return.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A reply delivery as a session handles it: its properties and body, and the tag it is
/// settled by on the consumer it came from ([`Replies::ack`]).
pub struct Reply {
    /// Its delivery tag on the consumer's channel.
    pub tag: DeliveryTag,
    /// Its AMQP properties (`correlation_id`, the `x-ferry-*` headers).
    pub properties: BasicProperties,
    /// Its body.
    pub data: Vec<u8>,
}

/// Where a call is published.
pub enum Target {
    /// A queue by the default exchange; `probe`: check first that something consumes it
    /// (`no_responders`), for destinations not in `--allow-waiting`.
    Queue { name: String, probe: bool },
    /// A named exchange (a GATHER) with its routing key.
    Exchange { name: String, key: String },
}

/// The broker as a session sees it.
pub trait Port: Send + Sync {
    /// The route a new call takes now; `None` while the broker is away.
    fn route(&self) -> Option<Arc<dyn Route>>;
}

/// One live connection's worth of broker: a call's reply queue, publish and cancel notice all
/// go through the same one.
pub trait Route: Send + Sync {
    /// Declares and consumes the reply queue of `session` within `limit`. A resumable one
    /// (`Some((lease, grace))`) is named for the session and holds its lease; a plain one may
    /// come from the pool.
    fn replies(
        self: Arc<Self>,
        session: &str,
        resumable: Option<(&str, Duration)>,
        limit: Duration,
    ) -> Boxed<'static, Result<Box<dyn Replies>, BridgeError>>;

    /// Publishes a call and waits for the broker's confirm (mandatory: an unroutable one
    /// fails with `no_route` / `no_binding`).
    fn publish(
        self: Arc<Self>,
        to: Target,
        body: Bytes,
        props: BasicProperties,
    ) -> Boxed<'static, Result<(), BridgeError>>;

    /// Publishes a cancel notice (best effort); `None` when this route has no cancel
    /// exchange.
    fn notice(self: Arc<Self>, notice: CancelNotice) -> Option<Boxed<'static, ()>>;
}

/// A session's consumed reply queue.
pub trait Replies: Send {
    /// The queue name workers reply to.
    fn queue(&self) -> &str;
    /// Broker restarts seen when this consumer started ([`Links::restarts`]).
    fn restarts(&self) -> u64;
    /// True while the connection this consumer lives on is up.
    fn is_live(&self) -> bool;
    /// The next reply; `None` when the consumer ended (cancelled by the broker, or its
    /// connection died).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Reply>>;
    /// Acknowledges a reply this consumer delivered, without waiting.
    fn ack(&self, tag: DeliveryTag);
    /// Gives a reply this consumer delivered back to the queue.
    fn requeue(&self, tag: DeliveryTag);
    /// Stops consuming but keeps the queue (the session may be resumed).
    fn detach(self: Box<Self>) -> Boxed<'static, ()>;
    /// Ends the session's queue.
    fn close(self: Box<Self>) -> Boxed<'static, ()>;
    /// False for a resumable session's queue from the pool until its lease is held.
    fn lease_ready(&mut self) -> bool {
        true
    }
    /// Starts holding the lease `name` in the background, unless one is held or on its way.
    fn start_lease(&mut self, name: &str, grace: Duration) {
        let _ = (name, grace);
    }
}

impl Port for Broker {
    fn route(&self) -> Option<Arc<dyn Route>> {
        self.current().map(|l| l as Arc<dyn Route>)
    }
}

impl Route for Links {
    fn replies(
        self: Arc<Self>,
        session: &str,
        resumable: Option<(&str, Duration)>,
        limit: Duration,
    ) -> Boxed<'static, Result<Box<dyn Replies>, BridgeError>> {
        let (lease, grace) = match resumable {
            Some((lease, grace)) => (Some(lease.to_owned()), grace),
            None => match self.pool.take() {
                Some(sub) => return Box::pin(std::future::ready(Ok(boxed(sub)))),
                None => (None, Duration::ZERO),
            },
        };
        let session = session.to_owned();
        Box::pin(async move {
            ReplySub::open(self, &session, grace, lease.as_deref(), limit)
                .await
                .map(boxed)
        })
    }

    fn publish(
        self: Arc<Self>,
        to: Target,
        body: Bytes,
        props: BasicProperties,
    ) -> Boxed<'static, Result<(), BridgeError>> {
        Box::pin(async move {
            match to {
                Target::Queue { name, probe } => {
                    if probe {
                        self.probe.check(self.consume_conn(), &name).await?;
                    }
                    publish::publish(&self, "", &name, &body, props).await
                }
                Target::Exchange { name, key } => {
                    // Publishing to a missing exchange would close the shared channel.
                    self.probe
                        .check_exchange(self.consume_conn(), &name)
                        .await?;
                    publish::publish(&self, &name, &key, &body, props).await
                }
            }
        })
    }

    fn notice(self: Arc<Self>, notice: CancelNotice) -> Option<Boxed<'static, ()>> {
        self.cancel_exchange.as_ref()?;
        Some(Box::pin(async move {
            publish::cancel_notice(&self, &notice).await;
        }))
    }
}

/// A consumer as the session holds it.
pub fn boxed(sub: ReplySub) -> Box<dyn Replies> {
    Box::new(sub)
}

impl Replies for ReplySub {
    fn queue(&self) -> &str {
        ReplySub::queue(self)
    }

    fn restarts(&self) -> u64 {
        ReplySub::restarts(self)
    }

    fn is_live(&self) -> bool {
        ReplySub::is_live(self)
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Reply>> {
        self.consumer.poll_next_unpin(cx).map(|d| match d {
            Some(Ok(d)) => Some(Reply {
                tag: d.delivery_tag,
                properties: d.properties,
                data: d.data,
            }),
            Some(Err(_)) | None => None,
        })
    }

    fn ack(&self, tag: DeliveryTag) {
        ReplySub::ack(self, tag);
    }

    fn requeue(&self, tag: DeliveryTag) {
        ReplySub::requeue(self, tag);
    }

    fn detach(self: Box<Self>) -> Boxed<'static, ()> {
        Box::pin(ReplySub::detach(*self))
    }

    fn close(self: Box<Self>) -> Boxed<'static, ()> {
        Box::pin(ReplySub::close(*self))
    }

    fn lease_ready(&mut self) -> bool {
        ReplySub::lease_ready(self)
    }

    fn start_lease(&mut self, name: &str, grace: Duration) {
        ReplySub::start_lease(self, name, grace);
    }
}
