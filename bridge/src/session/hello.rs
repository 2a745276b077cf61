//! The opening of a session: the first frame must be HELLO (within `--hello-timeout`); the
//! bridge answers WELCOME with a session id and its limits, or ERROR + close 1008.
//!
//! A client that sends ACKs (HELLO `acks`) gets a resumable session when `--session-grace`
//! is not zero: a resume token, and a session id derived from it ([`crate::resume`]). A later
//! HELLO with that id and token resumes the session if its reply queue still exists, on this
//! bridge or any other on the broker (`crate::session::resume::take_over`); otherwise it
//! opens a new one (`resumed = false`).

use std::sync::Arc;

use ferry_protocol::{Frame, Hello, Limits, Welcome};
use futures_util::{Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{debug, info};

use super::resume::take_over;
use crate::Shared;
use crate::auth::Identity;
use crate::auth::rpc::Peer;
use crate::broker::port::{self, Replies};
use crate::config::Config;
use crate::error::BridgeError;
use crate::frames::error_frame;
use crate::outbound::Outbound;
use crate::resume;

/// A request a resuming client still awaits (HELLO's `attach`).
#[derive(Debug, Clone)]
pub struct Attached {
    /// Its correlation id.
    pub id: String,
    /// Where it was published.
    pub destination: String,
    /// How much longer the client waits, in milliseconds.
    pub timeout_ms: u32,
    /// Its idle timeout, if any.
    pub idle_timeout_ms: Option<u32>,
}

/// A session as WELCOME opened it.
pub struct Opened {
    /// The session id.
    pub id: String,
    /// The reply queue, already consumed when the session was resumed.
    pub reply: Option<Box<dyn Replies>>,
    /// The requests a resumed session's client still awaits.
    pub attach: Vec<Attached>,
    /// This bridge's hold on the session (a later resume here takes it over).
    pub claim: resume::Claim,
    /// Who is calling, when the bridge authenticates.
    pub identity: Option<Identity>,
    /// The lease queue of the resume token WELCOME hands out: `Some` when the session is
    /// resumable (the client ACKs final replies, and the session outlives its socket).
    pub lease: Option<String>,
}

impl Opened {
    /// A new session (nothing to resume), held by this bridge.
    fn new(shared: &Shared, id: String, lease: Option<String>, identity: Option<Identity>) -> Self {
        Self {
            claim: shared.holders.claim(&id),
            id,
            reply: None,
            attach: Vec::new(),
            identity,
            lease,
        }
    }
}

/// Waits for HELLO and answers WELCOME; `None` (socket closed) otherwise.
pub async fn hello<St>(
    shared: &Arc<Shared>,
    stream: &mut St,
    out: &Outbound,
    peer: &Peer,
) -> Option<Opened>
where
    St: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let first = tokio::time::timeout(shared.config.hello_timeout, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
                Some(Ok(Message::Text(_))) => return Err(BridgeError::TextFrame),
                Some(Err(e)) => {
                    if let Some((code, reason)) = crate::outbound::close_for(&e) {
                        out.close(code, reason).await;
                    }
                    return Ok(None); // the socket is gone: nobody to answer
                }
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    let problem = match first {
        Err(_) => BridgeError::HelloFirst("nothing (hello timeout)"),
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => e,
        Ok(Ok(Some(bytes))) => match Frame::decode_from_client(&bytes) {
            Ok(Frame::Hello(h)) => {
                match shared
                    .auth
                    .authenticate(h.token, &shared.broker, peer)
                    .await
                {
                    Ok(identity) => return welcome(shared, &h, identity, out).await,
                    Err(e) => e,
                }
            }
            Ok(other) => BridgeError::HelloFirst(other.kind_name()),
            Err(e) => e.into(),
        },
    };
    debug!(error = %problem, "socket refused before hello");
    shared.stats.error(problem.code());
    out.send(error_frame(None, problem.code(), &problem.wire_message()))
        .await;
    let (code, reason) = match problem {
        BridgeError::Unauthorized(_) => (CloseCode::Policy, "unauthorized"),
        // The connect proxy cannot be asked now: try again later.
        BridgeError::BrokerUnavailable(_) => {
            (CloseCode::Again, "cannot authenticate now; try again")
        }
        _ => (CloseCode::Policy, "hello expected"),
    };
    out.close(code, reason).await;
    None
}

/// Opens the session of an authenticated HELLO and answers WELCOME.
async fn welcome(
    shared: &Arc<Shared>,
    h: &Hello<'_>,
    identity: Option<Identity>,
    out: &Outbound,
) -> Option<Opened> {
    match open(shared, h, identity).await {
        Ok((opened, token, resumed)) => {
            let grace = if opened.lease.is_some() {
                Config::millis_u32(shared.config.session_grace)
            } else {
                0
            };
            // A client that ACKs is one that watches for HEARTBEAT frames too.
            let heartbeat = if h.acks {
                out.heartbeat();
                Config::millis_u32(shared.config.ping_interval)
            } else {
                0
            };
            let welcome = Frame::Welcome(Welcome {
                session: &opened.id,
                resumed,
                resume_token: token.as_deref(),
                limits: Limits {
                    session_grace_ms: grace,
                    heartbeat_ms: heartbeat,
                    ..limits(&shared.config)
                },
                server: Some(&shared.server_name),
                user: opened.identity.as_ref().map(|i| i.user.as_str()),
            });
            if out.send(welcome.encode()).await {
                return Some(opened);
            }
            // The socket went before WELCOME: a resumed session's queue goes back to waiting;
            // a new one's (from the pool) can never be resumed, so it is deleted.
            shared.holders.release(&opened.id, &opened.claim);
            match opened.reply {
                Some(sub) if resumed => sub.detach().await,
                Some(sub) => sub.close().await,
                None => {}
            }
            None
        }
        Err(e) => {
            // The broker is needed to resume; the client keeps its requests and
            // tries again (close 1013: try again later).
            debug!(error = %e, "resume refused");
            shared.stats.error(e.code());
            out.send(error_frame(None, e.code(), &e.wire_message()))
                .await;
            out.close(CloseCode::Again, "cannot resume now; try again")
                .await;
            None
        }
    }
}

/// Opens the session HELLO asks for: `(session, resume token, resumed)`. `Err` only when a
/// resume cannot be checked now (no broker).
async fn open(
    shared: &Arc<Shared>,
    h: &Hello<'_>,
    identity: Option<Identity>,
) -> Result<(Opened, Option<String>, bool), BridgeError> {
    let client = log_name(h.client);
    let user = identity.as_ref().map_or(String::new(), |i| i.user.clone());
    let user = user.as_str();
    let resumable = h.acks && !shared.config.session_grace.is_zero();
    if !resumable {
        let id = uuid::Uuid::new_v4().to_string();
        info!(session = %id, client, user, "session opened");
        return Ok((Opened::new(shared, id, None, identity), None, false));
    }
    let mut identity = identity;
    if let Some((opened, next)) = take_over(shared, h, &mut identity, client).await? {
        return Ok((opened, Some(next), true));
    }
    let token = resume::new_token();
    // A queue from the pool comes with its session id; its first request holds the lease.
    let pooled = shared
        .broker
        .current()
        .and_then(|l| l.resumable_pool.take_session());
    let (id, reply) = match pooled {
        Some((id, sub)) => (id, Some(port::boxed(sub))),
        None => (resume::new_session_id(), None),
    };
    info!(session = %id, client, user, pooled = reply.is_some(), "session opened (resumable)");
    let lease = resume::lease_queue(user, &id, &token);
    let mut opened = Opened::new(shared, id, Some(lease), identity);
    opened.reply = reply;
    Ok((opened, Some(token), false))
}

/// A HELLO's client name for the log: at most 64 bytes of it.
fn log_name(client: Option<&str>) -> &str {
    let c = client.unwrap_or("-");
    let mut end = c.len().min(64);
    while !c.is_char_boundary(end) {
        end -= 1;
    }
    &c[..end]
}

/// The limits every WELCOME announces (`session_grace_ms` is set per session).
pub fn limits(c: &Config) -> Limits {
    Limits {
        max_frame_bytes: c.max_frame_bytes,
        max_inflight: c.max_inflight,
        default_timeout_ms: Config::millis_u32(c.default_timeout),
        max_timeout_ms: Config::millis_u32(c.max_timeout),
        session_grace_ms: 0,
        heartbeat_ms: 0,
    }
}
