//! The opening of a session: the first frame must be HELLO (within `--hello-timeout`); the
//! bridge answers WELCOME with a fresh session id and its limits, or ERROR + close 1008.

use ferry_protocol::{Frame, Limits, Welcome};
use futures_util::{Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{debug, info};

use crate::Shared;
use crate::amqp_props::error_frame;
use crate::config::Config;
use crate::error::BridgeError;
use crate::outbound::Outbound;

/// Waits for HELLO and answers WELCOME; `None` (socket closed with 1008) otherwise.
pub async fn hello<St>(shared: &Shared, stream: &mut St, out: &Outbound) -> Option<String>
where
    St: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let first = tokio::time::timeout(shared.config.hello_timeout, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(b),
                Some(Ok(Message::Text(_))) => return Err(BridgeError::TextFrame),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    return Err(BridgeError::Internal(String::new()));
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    let problem = match first {
        Err(_) => BridgeError::HelloFirst("nothing (hello timeout)"),
        Ok(Err(BridgeError::Internal(_))) => return None,
        Ok(Err(e)) => e,
        Ok(Ok(bytes)) => match Frame::decode_from_client(&bytes) {
            Ok(Frame::Hello(h)) => {
                let session = uuid::Uuid::new_v4().to_string();
                if let Some(old) = h.resume {
                    debug!(old, "resume is not supported yet; opening a new session");
                }
                info!(session, client = h.client.unwrap_or("-"), "session opened");
                let welcome = Frame::Welcome(Welcome {
                    session: &session,
                    resumed: false,
                    resume_token: None,
                    limits: limits(&shared.config),
                    server: Some(&shared.server_name),
                });
                return out.send(welcome.encode()).await.then_some(session);
            }
            Ok(other) => BridgeError::HelloFirst(other.kind_name()),
            Err(e) => e.into(),
        },
    };
    debug!(error = %problem, "socket refused before hello");
    out.send(error_frame(None, problem.code(), &problem.wire_message()))
        .await;
    out.close(CloseCode::Policy, "hello expected").await;
    None
}

pub fn limits(c: &Config) -> Limits {
    Limits {
        max_frame_bytes: c.max_frame_bytes,
        max_inflight: c.max_inflight,
        default_timeout_ms: Config::millis_u32(c.default_timeout),
        max_timeout_ms: Config::millis_u32(c.max_timeout),
        session_grace_ms: 0,
    }
}
