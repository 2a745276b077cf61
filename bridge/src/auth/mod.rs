//! Who is calling: turns the access token of a HELLO (or AUTH) into an [`Identity`]: the user,
//! the destinations this user may call (within the bridge's own allowlists), the claims
//! forwarded to workers, and when the token expires.
//!
//! [`jwt`] verifies JSON Web Tokens against the configured keys; [`rpc`] asks the app's own
//! service instead (`--auth-rpc`); [`mint`] makes development tokens (`ferry-bridge token`).
//! Without either the bridge does not authenticate ([`Auth::None`]), which it allows only on
//! a loopback address or with `--no-auth`.

pub mod jwt;
pub mod mint;
pub mod rpc;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use thiserror::Error;

use crate::allow::{Allowlist, ExchangeList};
use crate::broker::Broker;
use crate::config::Config;
use crate::error::BridgeError;
use ferry_protocol::validate::MAX_TOKEN_LEN;

use ferry_protocol::headers::CLAIM_PREFIX as CLAIM_HEADER_PREFIX;

/// Why a token was refused. `Display` is safe to send to the client (it names the problem,
/// never a key or the token).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// HELLO carried no token.
    #[error("an access token is required")]
    Missing,
    /// The token is over the size limit.
    #[error("the access token exceeds {0} bytes")]
    TooLong(usize),
    /// Not a JWT this bridge can read (bad shape, bad base64 or JSON, `alg: none`).
    #[error("the access token is malformed")]
    Malformed,
    /// Signed with an algorithm the bridge does not accept for any of its keys.
    #[error("the access token's algorithm is not accepted")]
    Algorithm,
    /// No configured key verifies the signature.
    #[error("the access token's signature is not valid")]
    Signature,
    /// `exp` is in the past.
    #[error("the access token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// `iss` is not `--jwt-issuer`.
    #[error("the access token's issuer is not accepted")]
    Issuer,
    /// `aud` does not name `--jwt-audience`.
    #[error("the access token's audience is not accepted")]
    Audience,
    /// A claim the bridge needs is missing or of the wrong type.
    #[error("the access token has no valid {0} claim")]
    Claim(&'static str),
    /// A renewed token names another user than the session's.
    #[error("the renewed token is for another user")]
    OtherUser,
    /// The connect proxy refused the token (its message).
    #[error("refused by the connect proxy: {0}")]
    Refused(String),
    /// The connect proxy did not answer within `--auth-rpc-timeout`.
    #[error("the connect proxy did not answer in time")]
    ProxySilent,
    /// The connect proxy's answer is not the documented JSON.
    #[error("the connect proxy's answer is not valid")]
    ProxyReply,
}

/// The authenticated caller of one session.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The token's `sub`: what workers see in `x-ferry-user`.
    pub user: String,
    /// The token's `ferry.allow`, when it narrows the bridge's `--allow`.
    allow: Option<Allowlist>,
    /// The token's `ferry.allowExchange`, when it narrows `--allow-exchange`.
    allow_exchange: Option<ExchangeList>,
    /// `(header name, value)` for each `--forward-claim` the token carries.
    pub forwarded: Vec<(String, String)>,
    /// The token's `exp`, in seconds since the Unix epoch.
    pub expires_at: Option<u64>,
}

impl Identity {
    /// Builds the identity from verified claims; `forward` names the claims workers get.
    pub fn from_claims(claims: &Map<String, Value>, forward: &[String]) -> Result<Self, AuthError> {
        let user = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
            _ => return Err(AuthError::Claim("sub")),
        };
        let ferry = match claims.get("ferry") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => return Err(AuthError::Claim("ferry")),
        };
        let names = |key: &'static str| -> Result<Option<Vec<&str>>, AuthError> {
            match ferry.and_then(|f| f.get(key)) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(Value::as_str)
                    .collect::<Option<Vec<&str>>>()
                    .map(Some)
                    .ok_or(AuthError::Claim("ferry")),
                Some(_) => Err(AuthError::Claim("ferry")),
            }
        };
        let forwarded = forward
            .iter()
            .filter_map(|name| {
                let value = match claims.get(name)? {
                    Value::Null => return None,
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Some((format!("{CLAIM_HEADER_PREFIX}{name}"), value))
            })
            .collect();
        Ok(Self {
            user,
            allow: names("allow")?.map(|n| Allowlist::new(&n)),
            allow_exchange: names("allowExchange")?.map(|n| ExchangeList::new(&n)),
            forwarded,
            expires_at: claims.get("exp").and_then(Value::as_u64),
        })
    }

    /// True unless the token narrows the destinations and `dest` is outside them.
    pub fn allows(&self, dest: &str) -> bool {
        self.allow.as_ref().is_none_or(|a| a.allows(dest))
    }

    /// True unless the token narrows the exchanges (and routing keys) and `exchange` with
    /// `key` is outside them.
    pub fn allows_exchange(&self, exchange: &str, key: &str) -> bool {
        self.allow_exchange
            .as_ref()
            .is_none_or(|a| a.allows(exchange, key))
    }

    /// How long until the token expires (zero when it has); `None` when it never does.
    pub fn expires_in(&self) -> Option<Duration> {
        let exp = self.expires_at?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Some(Duration::from_secs(exp.saturating_sub(now)))
    }
}

/// How the bridge authenticates sockets.
pub enum Auth {
    /// Not at all (`--no-auth`, or a loopback-only bridge without `--jwt-*`).
    None,
    /// JSON Web Tokens.
    Jwt(Box<jwt::Verifier>),
    /// A connect proxy (`--auth-rpc`).
    Rpc(Box<rpc::AuthRpc>),
}

impl Auth {
    /// The authenticator the flags ask for.
    pub fn from_config(c: &Config) -> Result<Self, String> {
        let jwt = c.jwt_secret_file.is_some()
            || !c.jwt_public_key_file.is_empty()
            || c.jwt_jwks_file.is_some();
        match (jwt, &c.auth_rpc) {
            (true, Some(_)) => Err("--auth-rpc and --jwt-* exclude each other: choose one".into()),
            (false, Some(queue)) => Ok(Self::Rpc(Box::new(rpc::AuthRpc::new(
                queue.clone(),
                c.auth_rpc_timeout,
                c.forward_claim.clone(),
            )))),
            (true, None) => jwt::Verifier::new(c).map(|v| Self::Jwt(Box::new(v))),
            (false, None) => Ok(Self::None),
        }
    }

    /// True when sockets must present a token.
    pub fn enabled(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// The identity of a HELLO's or AUTH's token; `None` when the bridge does not
    /// authenticate (a token is then ignored). `Unauthorized` for a refused token;
    /// `BrokerUnavailable` when the connect proxy cannot be asked now.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        broker: &Broker,
        peer: &rpc::Peer,
    ) -> Result<Option<Identity>, BridgeError> {
        match self {
            Self::None => Ok(None),
            Self::Jwt(v) => {
                let token = token.ok_or(AuthError::Missing)?;
                Ok(Some(v.verify(token)?))
            }
            Self::Rpc(r) => {
                let token = token.ok_or(AuthError::Missing)?;
                if token.len() > MAX_TOKEN_LEN {
                    return Err(AuthError::TooLong(MAX_TOKEN_LEN).into());
                }
                r.identify(broker, token, peer).await.map(Some)
            }
        }
    }

    /// Re-reads key files (on SIGHUP). Errors keep the old keys.
    pub fn reload(&self) -> Result<(), String> {
        match self {
            Self::None | Self::Rpc(_) => Ok(()),
            Self::Jwt(v) => v.reload(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn permissions_and_forwarded_claims() {
        let c = claims(json!({
            "sub": "alice", "exp": 4_000_000_000u64, "ward": "B4", "level": 3,
            "ferry": { "allow": ["patient_summary_request", "reports.*"], "allowExchange": ["presence"] }
        }));
        let id =
            Identity::from_claims(&c, &["ward".into(), "level".into(), "absent".into()]).unwrap();
        assert_eq!(id.user, "alice");
        assert!(id.allows("patient_summary_request"));
        assert!(id.allows("reports.daily"));
        assert!(!id.allows("billing"));
        assert!(id.allows_exchange("presence", ""));
        assert!(!id.allows_exchange("other", ""));
        assert_eq!(
            id.forwarded,
            vec![
                ("x-ferry-claim-ward".to_owned(), "B4".to_owned()),
                ("x-ferry-claim-level".to_owned(), "3".to_owned())
            ]
        );
        let open = Identity::from_claims(&claims(json!({"sub": "bob"})), &[]).unwrap();
        assert!(open.allows("anything") && open.allows_exchange("anything", "key"));
    }

    #[test]
    fn bad_claims_are_named() {
        let no_sub = Identity::from_claims(&claims(json!({"exp": 1})), &[]);
        assert_eq!(no_sub.unwrap_err(), AuthError::Claim("sub"));
        let bad = Identity::from_claims(&claims(json!({"sub": "a", "ferry": {"allow": "x"}})), &[]);
        assert_eq!(bad.unwrap_err(), AuthError::Claim("ferry"));
    }
}
