//! The caller within a session ([`Caller`]): who it is, the destinations it may call (the
//! bridge's `--allow` narrowed by its token), its request rate, AUTH frames that renew the
//! token without dropping the socket, and the end of a session whose token expired unrenewed.

use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::ErrorCode;
use ferry_protocol::headers::CancelReason;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info};

use super::{End, Flow, Session};
use crate::auth::rpc::Peer;
use crate::auth::{AuthError, Identity};
use crate::error::BridgeError;
use crate::limits::Bucket;

/// How long a session waits when its token never expires (or the bridge has no auth).
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Who calls on this socket.
pub(super) struct Caller {
    /// Who is calling (when the bridge authenticates); renewed by AUTH frames.
    pub(super) identity: Option<Identity>,
    /// This socket's request rate limit.
    pub(super) requests: Bucket,
    /// Who connected (for a connect proxy asked again on renewal).
    pub(super) peer: Peer,
}

impl Caller {
    /// Time until the caller's token expires.
    pub(super) fn token_lifetime(&self) -> Duration {
        self.identity
            .as_ref()
            .and_then(Identity::expires_in)
            .unwrap_or(NEVER)
    }
}

impl Session {
    /// When both the bridge and the caller's token allow `dest`: the bridge's allowlist
    /// entry that does (the `destination` label of its metrics).
    pub(super) fn allowed(&self, dest: &str) -> Option<Arc<str>> {
        let entry = self.shared.allow.entry(dest)?;
        self.caller
            .identity
            .as_ref()
            .is_none_or(|i| i.allows(dest))
            .then(|| entry.clone())
    }

    /// AUTH: a renewed token. It must verify and name the same user; then its permissions
    /// and expiry replace the old ones. A bad one ends the session like an expired one.
    pub(super) async fn on_auth(&mut self, token: &str) -> Flow {
        let Some(current) = &self.caller.identity else {
            return Flow::Continue; // the bridge does not authenticate: nothing to renew
        };
        let shared = self.shared.clone();
        let verdict = match shared
            .auth
            .authenticate(Some(token), &shared.broker, &self.caller.peer)
            .await
        {
            Ok(Some(new)) if new.user == current.user => Ok(new),
            Ok(_) => Err(AuthError::OtherUser),
            Err(BridgeError::Unauthorized(e)) => Err(e),
            Err(e) => {
                // The connect proxy cannot be asked now: the current token stays.
                debug!(session = %self.id, error = %e, "token renewal not checked now");
                return Flow::Continue;
            }
        };
        match verdict {
            Ok(new) => {
                debug!(session = %self.id, "token renewed");
                self.caller.identity = Some(new);
                Flow::Continue
            }
            Err(e) => {
                info!(session = %self.id, error = %e, "token renewal refused; closing");
                self.revoke(BridgeError::Unauthorized(e)).await;
                Flow::Stop
            }
        }
    }

    /// The token expired without renewal: the session ends.
    pub(super) async fn expired(&mut self) {
        info!(session = %self.id, "access token expired; closing the session");
        self.revoke(BridgeError::Unauthorized(AuthError::Expired))
            .await;
    }

    /// Fails every pending request and the connection with `e`, then closes the socket
    /// (1008). The session is over: its queue goes, even a resumable one's.
    async fn revoke(&mut self, e: BridgeError) {
        let message = e.wire_message();
        self.fail_all(
            ErrorCode::Unauthorized,
            &message,
            Some(CancelReason::Disconnected),
        )
        .await;
        self.send_error(None, &e).await;
        self.out.close(CloseCode::Policy, "unauthorized").await;
        self.end = End::Closed;
    }
}
