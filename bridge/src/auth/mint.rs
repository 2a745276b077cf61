//! `ferry-bridge token`: prints an HS256 development token signed with a secret file, for
//! demos, tests and trying a bridge from a terminal. Production tokens come from your IdP.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Map, Value, json};

/// `ferry-bridge token` options.
#[derive(Debug, Parser)]
#[command(
    name = "ferry-bridge token",
    about = "Prints an HS256 development token (a JWT) for a bridge run with --jwt-secret-file"
)]
pub struct MintArgs {
    /// The secret, as given to the bridge's `--jwt-secret-file` (one trailing newline ignored).
    #[arg(long)]
    pub secret_file: PathBuf,
    /// The user (`sub`): what workers see in `x-ferry-user`.
    #[arg(long)]
    pub sub: String,
    /// Destinations this token may call (`ferry.allow`); repeatable, comma-separated.
    /// Without any, the token is bounded by the bridge's `--allow` alone.
    #[arg(long, value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Exchanges this token may gather from (`ferry.allowExchange`).
    #[arg(long = "allow-exchange", value_delimiter = ',')]
    pub allow_exchange: Vec<String>,
    /// How long the token is valid.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// `iss`, if the bridge checks `--jwt-issuer`.
    #[arg(long)]
    pub issuer: Option<String>,
    /// `aud`, if the bridge checks `--jwt-audience`.
    #[arg(long)]
    pub audience: Option<String>,
    /// More claims, `name=value` (repeatable); a value that parses as JSON is kept as JSON.
    #[arg(long = "claim")]
    pub claims: Vec<String>,
}

/// The token `args` describe.
pub fn mint(args: &MintArgs) -> Result<String, String> {
    let mut secret = std::fs::read(&args.secret_file)
        .map_err(|e| format!("cannot read {}: {e}", args.secret_file.display()))?;
    if secret.last() == Some(&b'\n') {
        secret.pop();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut claims = Map::new();
    for c in &args.claims {
        let (name, value) = c
            .split_once('=')
            .ok_or_else(|| format!("--claim {c:?} must be name=value"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
        claims.insert(name.to_owned(), value);
    }
    claims.insert("sub".into(), json!(args.sub));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + args.ttl.as_secs()));
    if let Some(iss) = &args.issuer {
        claims.insert("iss".into(), json!(iss));
    }
    if let Some(aud) = &args.audience {
        claims.insert("aud".into(), json!(aud));
    }
    let mut ferry = Map::new();
    if !args.allow.is_empty() {
        ferry.insert("allow".into(), json!(args.allow));
    }
    if !args.allow_exchange.is_empty() {
        ferry.insert("allowExchange".into(), json!(args.allow_exchange));
    }
    if !ferry.is_empty() {
        claims.insert("ferry".into(), Value::Object(ferry));
    }
    let key = EncodingKey::from_secret(&secret).map_err(|e| format!("bad secret: {e}"))?;
    encode(&Header::default(), &claims, &key).map_err(|e| format!("cannot sign: {e}"))
}
