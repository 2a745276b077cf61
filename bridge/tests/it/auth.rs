//! Authentication against the real bridge and broker: each token failure is refused with
//! `unauthorized`, permissions are the intersection of `--allow` and the token's, workers
//! see `x-ferry-user` and forwarded claims (which no client can set), a session belongs to
//! its user, and a token expires or is renewed (AUTH) without dropping the socket.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;
use ferry_bridge::Config;
use ferry_protocol::{Auth, Frame, Hello, Request};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const SECRET: &[u8] = b"a test secret of at least 32 bytes!!";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ferry-auth-{}-{name}", uuid::Uuid::new_v4()));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn sign(claims: Value, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret).unwrap();
    encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

fn token(sub: &str, extra: Value) -> String {
    let mut c = json!({ "sub": sub, "exp": now() + 3600 });
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        c.extend(e);
    }
    sign(c, SECRET)
}

async fn bridge(tweak: impl FnOnce(&mut Config)) -> TestBridge {
    let secret = file("secret", &[SECRET, b"\n"].concat());
    TestBridge::start(|c| {
        c.jwt_secret_file = Some(secret);
        c.forward_claim = vec!["ward".into()];
        tweak(c);
    })
    .await
}

/// Sends HELLO with `token` and expects `unauthorized`, then close 1008; returns the message.
async fn refused(b: &TestBridge, token: Option<&str>) -> String {
    let (code, message, close) = hello_refused(&b.url(), token).await;
    assert_eq!(code, "unauthorized", "{message}");
    assert_eq!(close.map(|c| c.code), Some(CloseCode::Policy));
    message
}

/// How a session ends for its token: ERROR `unauthorized` without id naming `why`, then
/// close 1008.
async fn revoked(c: &mut Client, why: &str) {
    let (id, code, message, ..) = c.recv().await.error();
    assert_eq!((id, code.as_str()), (None, "unauthorized"));
    assert!(message.contains(why), "{message}");
    assert_eq!(c.closed().await.map(|f| f.code), Some(CloseCode::Policy));
}

async fn signed_in(b: &TestBridge, token: &str, acks: bool) -> (Client, Option<String>, bool) {
    let hello = Hello {
        token: Some(token),
        acks,
        ..Hello::default()
    };
    Client::hello(&b.url(), hello).await
}

#[tokio::test]
async fn every_bad_token_is_refused_with_unauthorized_naming_why() {
    let b = bridge(|c| {
        c.jwt_issuer = Some("https://idp.example".into());
        c.jwt_audience = Some("ferry".into());
        c.jwt_leeway = Duration::ZERO;
    })
    .await;
    let good = |extra: Value| {
        let mut c = json!({"sub": "alice", "exp": now() + 600, "iss": "https://idp.example", "aud": "ferry"});
        if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
            c.extend(e);
        }
        c
    };
    assert!(refused(&b, None).await.contains("required"));
    assert!(refused(&b, Some("garbage")).await.contains("malformed"));
    let wrong_key = sign(good(json!({})), b"another secret of at least 32 bytes!!");
    assert!(refused(&b, Some(&wrong_key)).await.contains("signature"));
    let issuer = sign(good(json!({"iss": "https://evil.example"})), SECRET);
    assert!(refused(&b, Some(&issuer)).await.contains("issuer"));
    let audience = sign(good(json!({"aud": "other"})), SECRET);
    assert!(refused(&b, Some(&audience)).await.contains("audience"));
    let expired = sign(good(json!({"exp": now() - 5})), SECRET);
    assert!(refused(&b, Some(&expired)).await.contains("expired"));
    let early = sign(good(json!({"nbf": now() + 600})), SECRET);
    assert!(refused(&b, Some(&early)).await.contains("not valid yet"));
    let no_sub = sign(
        json!({"exp": now() + 600, "iss": "https://idp.example", "aud": "ferry"}),
        SECRET,
    );
    assert!(refused(&b, Some(&no_sub)).await.contains("sub"));
    // alg "none": a header and claims with an empty signature.
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(good(json!({})))
    );
    assert!(refused(&b, Some(&none)).await.contains("malformed"));
    let huge = "x".repeat(ferry_protocol::validate::MAX_TOKEN_LEN + 1);
    assert!(refused(&b, Some(&huge)).await.contains("exceeds"));
    // A good token still opens a session on the same bridge.
    let ok = sign(good(json!({})), SECRET);
    let (_c, _, _) = signed_in(&b, &ok, false).await;
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_public_key_is_refused() {
    // The bridge knows only an Ed25519 public key; an attacker signs HS256 with its PEM bytes.
    let dir = std::env::temp_dir().join(format!("ferry-ed-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (private, public) = keypair(&dir, "ed", &["-algorithm", "ed25519"]);
    let pem = std::fs::read(&public).unwrap();
    let b = TestBridge::start(|c| c.jwt_public_key_file = vec![public.clone()]).await;
    let claims = json!({"sub": "mallory", "exp": now() + 600});
    let forged = sign(claims.clone(), &pem);
    assert!(refused(&b, Some(&forged)).await.contains("algorithm"));
    // The real key's EdDSA token is accepted.
    let signing = EncodingKey::from_ed_pem(&private).unwrap();
    let real = encode(&Header::new(Algorithm::EdDSA), &claims, &signing).unwrap();
    let (_c, _, _) = signed_in(&b, &real, false).await;
}

#[tokio::test]
async fn workers_see_the_user_and_forwarded_claims_and_clients_cannot_spoof_them() {
    let queue = unique("auth.user");
    let mut worker = Worker::start(&queue).await;
    let b = bridge(|_| {}).await;
    let t = token("alice", json!({"ward": "B4"}));
    let (mut c, _, _) = signed_in(&b, &t, false).await;
    for spoof in ["x-ferry-user", "x-ferry-claim-ward"] {
        c.send(Frame::Request(Request {
            headers: vec![(spoof, "bob")],
            ..request_of("s", &queue)
        }))
        .await;
        let (id, code, ..) = c.recv().await.error();
        assert_eq!((id.as_deref(), code.as_str()), (Some("s"), "forbidden"));
    }
    c.request("r1", &queue, b"{}", Some(5_000)).await;
    let d = worker.next().await;
    let h = d.properties.headers().clone().unwrap();
    let text = |k: &str| match h.inner().get(k) {
        Some(lapin::types::AMQPValue::LongString(s)) => {
            String::from_utf8_lossy(s.as_bytes()).into_owned()
        }
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(text("x-ferry-user"), "alice");
    assert_eq!(text("x-ferry-claim-ward"), "B4");
    worker.reply(&d, b"\"ok\"").await;
    assert_eq!(c.recv().await.reply().0, "r1");
}

fn request_of<'a>(id: &'a str, dest: &'a str) -> Request<'a> {
    Request {
        id,
        destination: dest,
        content_type: None,
        timeout_ms: Some(5_000),
        idle_timeout_ms: None,
        headers: vec![],
        body: b"{}",
    }
}

#[tokio::test]
async fn a_user_may_call_only_what_both_the_bridge_and_the_token_allow() {
    let allowed = unique("auth.mine");
    let (_w, _task) = echo_worker(&allowed).await;
    let b = bridge(|_| {}).await;
    let t = token(
        "alice",
        json!({"ferry": {"allow": [allowed.clone(), "outside.*"]}}),
    );
    let (mut c, _, _) = signed_in(&b, &t, false).await;
    c.request("a", &allowed, b"1", Some(5_000)).await;
    assert_eq!(c.recv().await.reply().0, "a");
    // On the bridge's list (test.*) but not the token's.
    c.request("b", &unique("auth.other"), b"1", Some(5_000))
        .await;
    assert_eq!(c.recv().await.error().1, "forbidden");
    // On the token's list but not the bridge's: the bridge stays the outer bound.
    c.request("c", "outside.x", b"1", Some(5_000)).await;
    assert_eq!(c.recv().await.error().1, "forbidden");
}

#[tokio::test]
async fn another_users_token_cannot_resume_a_session() {
    let queue = unique("auth.resume");
    let mut worker = Worker::start(&queue).await;
    let b = bridge(|_| {}).await;
    let alice = token("alice", json!({}));
    let (mut a, resume_token, _) = signed_in(&b, &alice, true).await;
    a.request("r", &queue, b"{}", Some(10_000)).await;
    let d = worker.next().await;
    let session = a.session.clone();
    drop(a);
    let resume_token = resume_token.expect("a resumable session");
    let mallory = token("mallory", json!({}));
    let hello = Hello {
        token: Some(&mallory),
        resume: Some(&session),
        resume_token: Some(&resume_token),
        acks: true,
        ..Hello::default()
    };
    let (mut m, _, resumed) = Client::hello(&b.url(), hello).await;
    assert!(!resumed, "mallory got a new session, not alice's");
    assert_ne!(m.session, session);
    // Alice's reply waits for alice.
    worker.reply(&d, b"\"for alice\"").await;
    assert!(m.nothing_within(Duration::from_millis(300)).await);
    let hello = Hello {
        token: Some(&alice),
        resume: Some(&session),
        resume_token: Some(&resume_token),
        acks: true,
        attach: vec![ferry_protocol::Attach {
            id: "r",
            timeout_ms: 5_000,
            idle_timeout_ms: None,
            destination: &queue,
        }],
        ..Hello::default()
    };
    let (mut a2, _, resumed) = Client::hello(&b.url(), hello).await;
    assert!(resumed);
    assert_eq!(
        a2.recv().await.reply(),
        ("r".into(), b"\"for alice\"".to_vec())
    );
}

#[tokio::test]
async fn an_expired_token_ends_the_session_and_its_requests() {
    let queue = unique("auth.expiry");
    let _worker = Worker::start(&queue).await; // never answers
    let b = bridge(|c| c.jwt_leeway = Duration::ZERO).await;
    let t = sign(json!({"sub": "alice", "exp": now() + 2}), SECRET);
    let (mut c, _, _) = signed_in(&b, &t, false).await;
    c.request("r", &queue, b"{}", Some(60_000)).await;
    let (id, code, ..) = c.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("r"), "unauthorized"));
    revoked(&mut c, "expired").await;
}

#[tokio::test]
async fn an_auth_frame_renews_the_token_without_dropping_the_socket() {
    let queue = unique("auth.renew");
    let (_w, _task) = echo_worker(&queue).await;
    let b = bridge(|c| c.jwt_leeway = Duration::ZERO).await;
    let short = sign(json!({"sub": "alice", "exp": now() + 2}), SECRET);
    let (mut c, _, _) = signed_in(&b, &short, false).await;
    let renewed = sign(json!({"sub": "alice", "exp": now() + 600}), SECRET);
    c.send(Frame::Auth(Auth { token: &renewed })).await;
    // Past the first token's expiry, the socket still serves.
    assert!(c.nothing_within(Duration::from_millis(3_500)).await);
    c.request("r", &queue, b"1", Some(5_000)).await;
    assert_eq!(c.recv().await.reply().0, "r");
    // A renewal for another user ends the session.
    let other = token("mallory", json!({}));
    c.send(Frame::Auth(Auth { token: &other })).await;
    revoked(&mut c, "another user").await;
}

#[tokio::test]
async fn without_auth_a_non_loopback_bridge_refuses_to_start_unless_no_auth() {
    let mut cfg = Config::with_defaults("0.0.0.0:0".parse().unwrap(), &["test.*"]);
    cfg.amqp_url = vec![amqp_url().into()];
    let e = ferry_bridge::Bridge::bind(cfg.clone())
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("--no-auth"), "{e}");
    cfg.no_auth = true;
    assert!(ferry_bridge::Bridge::bind(cfg).await.is_ok());
}

/// A private key (PKCS#8 PEM) from `genpkey` with `opts`, and its public key file.
fn keypair(dir: &std::path::Path, name: &str, opts: &[&str]) -> (Vec<u8>, PathBuf) {
    let (key, public) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.pub.pem")),
    );
    let mut args = vec!["genpkey"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["-out", key.to_str().unwrap()]);
    certs::openssl(&args);
    certs::openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (std::fs::read(&key).unwrap(), public)
}

fn signed(alg: Algorithm, key: &EncodingKey, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, &json!({"sub": "alice", "exp": now() + 600}), key).unwrap()
}

#[tokio::test]
async fn rs256_and_es256_keys_verify_and_a_jwks_rotates_on_reload() {
    let dir = std::env::temp_dir().join(format!("ferry-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (rsa, rsa_pub) = keypair(
        &dir,
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let ec_opts = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
    let (ec, ec_pub) = keypair(&dir, "ec", &ec_opts);
    let rsa = EncodingKey::from_rsa_pem(&rsa).unwrap();
    let ec = EncodingKey::from_ec_pem(&ec).unwrap();

    // PEM public keys, one of each family.
    let b =
        TestBridge::start(|c| c.jwt_public_key_file = vec![rsa_pub.clone(), ec_pub.clone()]).await;
    let (_a, _, _) = signed_in(&b, &signed(Algorithm::RS256, &rsa, None), false).await;
    let (_e, _, _) = signed_in(&b, &signed(Algorithm::ES256, &ec, None), false).await;
    // HS256 "signed" with the RSA public key's PEM bytes: HS/RS confusion.
    let forged = sign(
        json!({"sub": "mallory", "exp": now() + 600}),
        &std::fs::read(&rsa_pub).unwrap(),
    );
    assert!(refused(&b, Some(&forged)).await.contains("algorithm"));

    // A JWKS: `kid` selects the key; a reload (SIGHUP) takes the rotated set.
    let jwks = dir.join("jwks.json");
    let write_jwks = |key: &EncodingKey, kid: &str| {
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(key, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        let set = jsonwebtoken::jwk::JwkSet { keys: vec![jwk] };
        std::fs::write(&jwks, serde_json::to_vec(&set).unwrap()).unwrap();
    };
    write_jwks(&ec, "k1");
    let b = TestBridge::start(|c| c.jwt_jwks_file = Some(jwks.clone())).await;
    let first = signed(Algorithm::ES256, &ec, Some("k1"));
    let (_k1, _, _) = signed_in(&b, &first, false).await;
    let (ec2, _) = keypair(&dir, "ec2", &ec_opts);
    let ec2 = EncodingKey::from_ec_pem(&ec2).unwrap();
    let second = signed(Algorithm::ES256, &ec2, Some("k2"));
    assert!(
        refused(&b, Some(&second)).await.contains("signature"),
        "k2 unknown before the reload"
    );
    write_jwks(&ec2, "k2");
    b.reloader.reload();
    let (_k2, _, _) = signed_in(&b, &second, false).await;
    assert!(
        refused(&b, Some(&first)).await.contains("signature"),
        "k1 retired by the reload"
    );
}
