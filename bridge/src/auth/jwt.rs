//! Verifies JSON Web Tokens (HS256 with `--jwt-secret-file`; RS256, ES256 or EdDSA with
//! `--jwt-public-key-file` PEM files or a `--jwt-jwks-file` JWKS) with the `jsonwebtoken`
//! crate. The key files are re-read by [`Verifier::reload`] (SIGHUP).
//!
//! The token header's `alg` picks the key family; a key only ever verifies its own family, so
//! an HS256 token is never checked against an RSA public key used as a secret, and `alg: none`
//! is not an algorithm at all. A `kid` that names a JWKS key selects that key alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use super::{AuthError, Identity};
use crate::config::Config;
use ferry_protocol::validate::MAX_TOKEN_LEN;

/// The algorithms the bridge accepts, one per key family.
const ACCEPTED: [Algorithm; 4] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// One verification key and the algorithm it verifies.
struct Key {
    alg: Algorithm,
    kid: Option<String>,
    key: DecodingKey,
}

/// Where the keys come from.
#[derive(Clone)]
struct Sources {
    secret: Option<PathBuf>,
    pems: Vec<PathBuf>,
    jwks: Option<PathBuf>,
}

/// Checks tokens against the configured keys, issuer and audience.
pub struct Verifier {
    sources: Sources,
    keys: RwLock<Arc<Vec<Key>>>,
    validation: Validation,
    forward: Vec<String>,
}

impl Verifier {
    /// Loads the keys the flags name; an unreadable or invalid key file is an error.
    pub fn new(c: &Config) -> Result<Self, String> {
        let sources = Sources {
            secret: c.jwt_secret_file.clone(),
            pems: c.jwt_public_key_file.clone(),
            jwks: c.jwt_jwks_file.clone(),
        };
        let keys = load(&sources)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = ACCEPTED.to_vec();
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = c.jwt_leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_aud = c.jwt_audience.is_some();
        if let Some(aud) = &c.jwt_audience {
            validation.set_audience(&[aud]);
        }
        if let Some(iss) = &c.jwt_issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        Ok(Self {
            sources,
            keys: RwLock::new(Arc::new(keys)),
            validation,
            forward: c.forward_claim.clone(),
        })
    }

    /// Re-reads every key file; on an error the keys in use stay.
    pub fn reload(&self) -> Result<(), String> {
        let keys = load(&self.sources)?;
        let n = keys.len();
        if let Ok(mut slot) = self.keys.write() {
            *slot = Arc::new(keys);
        }
        tracing::info!(keys = n, "JWT keys reloaded");
        Ok(())
    }

    /// The identity a token proves.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TooLong(MAX_TOKEN_LEN));
        }
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::Algorithm);
        }
        let keys = self
            .keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let by_kid = header
            .kid
            .as_deref()
            .filter(|kid| keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
        let candidates = keys.iter().filter(|k| {
            k.alg == header.alg && by_kid.is_none_or(|kid| k.kid.as_deref() == Some(kid))
        });
        let mut last = AuthError::Algorithm;
        for k in candidates {
            let mut validation = self.validation.clone();
            validation.algorithms = vec![k.alg];
            match decode::<Map<String, Value>>(token, &k.key, &validation) {
                Ok(data) => return Identity::from_claims(&data.claims, &self.forward),
                Err(e) => {
                    last = classify(e.kind());
                    if last != AuthError::Signature {
                        // The signature was good (or the token unreadable): another key
                        // would not change the verdict.
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

fn classify(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::Signature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::Issuer,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::Issuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::Audience,
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => AuthError::Claim("exp"),
        ErrorKind::MissingRequiredClaim(_) => AuthError::Claim("sub"),
        ErrorKind::InvalidClaimFormat(_) => AuthError::Claim("exp"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::Algorithm,
        _ => AuthError::Malformed,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Reads every key the sources name.
fn load(s: &Sources) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    if let Some(path) = &s.secret {
        let mut secret = read(path)?;
        // Secret stores write files with one trailing newline; it is not part of the key.
        if secret.last() == Some(&b'\n') {
            secret.pop();
            if secret.last() == Some(&b'\r') {
                secret.pop();
            }
        }
        if secret.len() < 32 {
            return Err(format!(
                "{}: an HS256 secret must be at least 32 bytes",
                path.display()
            ));
        }
        let key = DecodingKey::from_secret(&secret).map_err(|e| e.to_string())?;
        keys.push(Key {
            alg: Algorithm::HS256,
            kid: None,
            key,
        });
    }
    for path in &s.pems {
        let pem = read(path)?;
        let parsed = [
            (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem)),
            (Algorithm::ES256, DecodingKey::from_ec_pem(&pem)),
            (Algorithm::EdDSA, DecodingKey::from_ed_pem(&pem)),
        ];
        let found = parsed
            .into_iter()
            .find_map(|(alg, k)| k.ok().map(|k| (alg, k)));
        let Some((alg, key)) = found else {
            return Err(format!(
                "{}: not an RSA, EC (P-256) or Ed25519 public key in PEM",
                path.display()
            ));
        };
        keys.push(Key {
            alg,
            kid: None,
            key,
        });
    }
    if let Some(path) = &s.jwks {
        let set: JwkSet = serde_json::from_slice(&read(path)?)
            .map_err(|e| format!("{}: not a JWKS document: {e}", path.display()))?;
        for jwk in &set.keys {
            let Some(alg) = jwk_alg(jwk) else {
                tracing::warn!(kid = ?jwk.common.key_id, "JWKS key of an unsupported type skipped");
                continue;
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| format!("{}: key {:?}: {e}", path.display(), jwk.common.key_id))?;
            keys.push(Key {
                alg,
                kid: jwk.common.key_id.clone(),
                key,
            });
        }
    }
    Ok(keys)
}

/// The accepted algorithm a JWK verifies: its `alg` if it names one, else by key type.
fn jwk_alg(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::{AlgorithmParameters as P, EllipticCurve};
    let by_type = match &jwk.algorithm {
        P::RSA(_) => Algorithm::RS256,
        P::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        P::OctetKeyPair(_) => Algorithm::EdDSA,
        P::OctetKey(_) => Algorithm::HS256,
        _ => return None,
    };
    Some(by_type).filter(|a| ACCEPTED.contains(a))
}
