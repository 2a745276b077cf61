//! Publishing: a request (mandatory flag + publisher confirms, mapped to Ferry error codes)
//! and a cancel notice (to the cancel exchange, best effort).

use std::time::Duration;

use ferry_protocol::headers::CancelReason;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation};

use super::Links;
use crate::error::BridgeError;

/// AMQP reply code of a message returned because no queue was bound (`NO_ROUTE`).
const NO_ROUTE: u16 = 312;

/// Publishes `body` to `exchange` (`""`: the default exchange, so `routing_key` is a queue)
/// and waits for the confirm. `Ack` with a returned message → `no_route`; `Nack` →
/// `broker_rejected`; a connection blocked by a resource alarm → `broker_unavailable` at once,
/// and so does one lost before the confirm (lapin fails the pending confirm).
/// A named exchange must be known to exist ([`super::probe::Probe::check_exchange`]):
/// publishing to a missing one would close the shared channel.
pub async fn publish(
    links: &Links,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), BridgeError> {
    // During a resource alarm the broker stops reading from publishers: fail now rather
    // than let the request wait out its timeout.
    if links.publish_conn.status().blocked() {
        return Err(BridgeError::BrokerUnavailable(
            "publishing blocked by a broker resource alarm".into(),
        ));
    }
    let opts = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let channel = links.publish_channel();
    let sent = async {
        channel
            .basic_publish(exchange.into(), routing_key.into(), opts, body, props)
            .await?
            .await
    };
    let confirmed = match sent.await {
        Ok(c) => c,
        Err(e) => {
            links.publish_failed(&channel).await;
            return Err(e.into());
        }
    };
    match confirmed {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(returned)) if returned.reply_code == NO_ROUTE => {
            Err(if exchange.is_empty() {
                BridgeError::NoRoute(routing_key.to_owned())
            } else {
                BridgeError::NoBinding(exchange.to_owned())
            })
        }
        Confirmation::Ack(Some(_)) | Confirmation::Nack(_) => Err(BridgeError::BrokerRejected),
    }
}

/// Longest a cancel notice's publish may take.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a cancel notice names: the request (`reply_to` + `correlation_id` are unique
/// together), where it was sent, and why nobody awaits it any more.
#[derive(Debug, Clone)]
pub struct CancelNotice {
    /// The request's destination: the notice's routing key.
    pub destination: Box<str>,
    /// The request's `correlation_id`.
    pub id: Box<str>,
    /// The session's reply queue (the request's `reply_to`).
    pub reply_to: String,
    /// The session id.
    pub session: String,
    /// Why.
    pub reason: CancelReason,
}

/// Publishes a cancel notice to the cancel exchange (if any) and waits for its confirm.
/// Best effort: no worker may be listening, and failures are only logged.
pub async fn cancel_notice(links: &Links, notice: &CancelNotice) {
    let Some(exchange) = links.cancel_exchange.as_deref() else {
        return;
    };
    let n = notice;
    let props = crate::amqp_props::cancel_properties(&n.id, &n.reply_to, &n.session, n.reason);
    let key = &*notice.destination;
    bounded(links, exchange, key, props, &notice.id, "cancel notice").await;
}

/// Puts a note in the reply queue `reply_to` that the reply to `id` may have been lost in a
/// broker restart ([`crate::amqp_props::lost_properties`]), for the client that resumes the
/// session. Best effort, like a cancel notice.
pub async fn lost_note(links: &Links, reply_to: &str, id: &str) {
    let props = crate::amqp_props::lost_properties(id);
    bounded(links, "", reply_to, props, id, "lost note").await;
}

/// An empty message published and confirmed within [`NOTICE_TIMEOUT`]; failures are logged.
async fn bounded(
    links: &Links,
    exchange: &str,
    key: &str,
    props: BasicProperties,
    id: &str,
    what: &str,
) {
    let channel = links.publish_channel();
    let sent = async {
        channel
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                &[],
                props,
            )
            .await?
            .await
    };
    match tokio::time::timeout(NOTICE_TIMEOUT, sent).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::debug!(id, error = %e, "{what} not published");
            links.publish_failed(&channel).await;
        }
        Err(_) => tracing::debug!(id, "{what} timed out"),
    }
}
