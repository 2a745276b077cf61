//! Publishing a request: mandatory flag + publisher confirms, mapped to Ferry error codes.

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Confirmation};

use super::Links;
use crate::error::BridgeError;

/// AMQP reply code of a message returned because no queue was bound (`NO_ROUTE`).
const NO_ROUTE: u16 = 312;

/// Publishes `body` to `destination` on the default exchange and waits for the confirm.
/// `Ack` with a returned message → `no_route`; `Nack` → `broker_rejected`; a connection
/// blocked by a resource alarm → `broker_unavailable` at once.
pub async fn publish(
    links: &Links,
    destination: &str,
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
    let confirm = links
        .publish
        .basic_publish("".into(), destination.into(), opts, body, props)
        .await
        .map_err(|e| lost(links, e))?;
    match confirm.await.map_err(|e| lost(links, e))? {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(returned)) if returned.reply_code == NO_ROUTE => {
            Err(BridgeError::NoRoute(destination.to_owned()))
        }
        Confirmation::Ack(Some(_)) | Confirmation::Nack(_) => Err(BridgeError::BrokerRejected),
    }
}

fn lost(links: &Links, e: lapin::Error) -> BridgeError {
    if !links.publish.status().connected() {
        links.mark_lost("publish channel closed");
    }
    BridgeError::from(e)
}
