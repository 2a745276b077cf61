//! `ferry-bridge call`: the binary's request command, against a real bridge, broker and
//! worker: the reply on stdout, progress on stderr, error codes and exit statuses.

use std::process::Stdio;

use crate::support::{STEP, TestBridge, Worker, headers, unique};
use tokio::io::AsyncWriteExt;

/// Starts `ferry-bridge call ARGS`, writing `stdin` to it.
fn start(args: &[&str], stdin: &[u8]) -> tokio::task::JoinHandle<(i32, String, String)> {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-bridge"))
        .arg("call")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    tokio::spawn(async move {
        input.write_all(&stdin).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(STEP, child.wait_with_output())
            .await
            .expect("call ends")
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
}

#[tokio::test]
async fn call_prints_the_reply_and_progress_from_a_stdin_body() {
    let bridge = TestBridge::start(|_| {}).await;
    let queue = unique("test.cli");
    let mut worker = Worker::start(&queue).await;
    let url = bridge.url();
    let run = start(
        &[
            "--url",
            &url,
            "--progress",
            "--header",
            "x-tenant=acme",
            &queue,
            "-",
        ],
        br#"{"patientId": 42}"#,
    );
    let req = worker.next().await;
    assert_eq!(&req.data[..], br#"{"patientId": 42}"#);
    assert_eq!(
        req.properties.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    let h = req.properties.headers().clone().unwrap();
    let Some(lapin::types::AMQPValue::LongString(tenant)) = h.inner().get("x-tenant") else {
        panic!("x-tenant: {h:?}");
    };
    assert_eq!(tenant.to_string(), "acme");
    worker
        .reply_with(
            &req,
            br#"{"pct":50}"#,
            headers(&[("x-ferry-kind", "progress")]),
        )
        .await;
    worker.reply(&req, br#"{"ok":true,"n":[1,2]}"#).await;
    let (code, stdout, stderr) = run.await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout, "{\n  \"ok\": true,\n  \"n\": [\n    1,\n    2\n  ]\n}\n",
        "pretty-printed JSON"
    );
    assert!(stderr.contains(r#"progress: {"pct":50}"#), "{stderr}");
}

#[tokio::test]
async fn call_exits_1_naming_the_error_code() {
    let bridge = TestBridge::start(|_| {}).await;
    let queue = unique("test.cli");
    let mut worker = Worker::start(&queue).await;
    let url = bridge.url();
    let run = start(&["--url", &url, &queue, "plain text"], b"");
    let req = worker.next().await;
    assert_eq!(&req.data[..], b"plain text");
    let refusal = headers(&[
        ("x-ferry-error", "not_your_patient"),
        ("x-ferry-error-message", "ask the ward"),
    ]);
    worker.reply_with(&req, br#"{"ward":"b"}"#, refusal).await;
    let (code, _, stderr) = run.await.unwrap();
    assert_eq!(code, 1);
    assert!(
        stderr.contains("ferry-bridge call: remote: not_your_patient: ask the ward"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\"ward\": \"b\""),
        "the details, pretty: {stderr}"
    );

    let (code, _, stderr) = start(&["--url", &url, "not.allowed", "{}"], b"")
        .await
        .unwrap();
    assert_eq!(code, 1);
    assert!(stderr.contains("forbidden"), "{stderr}");
    let (code, _, stderr) = start(&["--url", &url, "--timeout", "100ms", &queue], b"")
        .await
        .unwrap();
    assert_eq!(code, 1);
    assert!(stderr.contains("timeout"), "{stderr}");
}

#[tokio::test]
async fn call_exits_2_on_a_bad_invocation_or_no_bridge() {
    let (code, _, stderr) = start(&["--header", "no-equals", "test.q"], b"")
        .await
        .unwrap();
    assert_eq!(code, 2);
    assert!(stderr.contains("NAME=VALUE"), "{stderr}");
    let (code, _, stderr) = start(&["--header", "X-Upper=1", "test.q"], b"")
        .await
        .unwrap();
    assert_eq!(code, 2);
    assert!(stderr.contains("X-Upper"), "{stderr}");
    let (code, _, stderr) = start(&["--url", "ws://127.0.0.1:1/ws", "test.q"], b"")
        .await
        .unwrap();
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    let (code, _, stderr) = start(&[], b"").await.unwrap();
    assert_eq!(code, 2);
    assert!(stderr.contains("DEST"), "{stderr}");
}

/// `ferry-bridge config --config FILE`: flag > env > file > default, every setting printed,
/// the AMQP password redacted; a bad file stops the binary naming the setting.
#[tokio::test]
async fn config_file_with_flags_and_env_on_top() {
    let file = std::env::temp_dir().join(format!("ferry-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &file,
        r#"
        amqp-url = ["amqp://ferry:s3cret-pass@rabbit-a:5672/%2f", "amqp://ferry:s3cret-pass@rabbit-b:5672/%2f"]
        max-inflight = 64
        default-timeout = "5s"
        allow = ["reports.*"]
        log-format = "json"
        "#,
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-bridge"));
        cmd.arg("config").arg("--config").arg(&file).args(args);
        cmd.env_remove("FERRY_AMQP_URL");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["--max-inflight", "7"], &[("FERRY_DEFAULT_TIMEOUT", "9s")]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "max-inflight = \"7\"\n",
        "default-timeout = \"9s\"\n",
        "allow = [\"reports.*\"]\n",
        "log-format = \"json\"\n",
        "amqp-url = [\"amqp://ferry:***@rabbit-a:5672/%2f\", \"amqp://ferry:***@rabbit-b:5672/%2f\"]\n",
        "listen = \"127.0.0.1:8080\"\n",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    assert!(!out.contains("s3cret"), "{out}");
    std::fs::write(&file, "max-inflihgt = 3\n").unwrap();
    let (code, _, err) = run(&[], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown setting \"max-inflihgt\""), "{err}");
    let _ = std::fs::remove_file(&file);
}

/// `--worker-threads`: 1 to 256, shown by `config`; anything else refused naming the flag.
#[test]
fn worker_threads_is_bounded_and_shown() {
    let run = |value: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-bridge"))
            .args(["config", "--worker-threads", value])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run("3");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("worker-threads = \"3\"\n"), "{out}");
    for bad in ["0", "257", "two"] {
        let (code, _, err) = run(bad);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("--worker-threads"), "{bad}: {err}");
    }
}

/// `ferry-bridge check`: one line per finding against the real broker; exit 1 when a finding
/// would make requests fail, 0 when none does.
#[tokio::test]
async fn check_names_what_is_wrong_with_a_configuration() {
    let served = unique("test.check-served");
    let idle = unique("test.check-idle");
    let missing = unique("test.check-missing");
    let worker = Worker::start(&served).await;
    let _unconsumed = Worker::declare(&idle).await;
    let exchange = unique("test.check-x");
    worker
        .channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                auto_delete: true,
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let run = |args: Vec<String>| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-bridge"))
            .arg("check")
            .args(&args)
            .env_remove("FERRY_AMQP_URL")
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let urls = format!(
        "amqp://guest:guest@127.0.0.1:1/%2f,{}",
        crate::support::amqp_url()
    );
    let all = vec![
        "--amqp-url".to_owned(),
        urls.clone(),
        "--allow".into(),
        format!("{served},{idle},{missing},test.pattern.*"),
        "--allow-exchange".into(),
        format!("{exchange},{exchange}-missing/key"),
    ];
    let (code, out) = run(all).await;
    assert_eq!(code, 1, "{out}");
    for line in [
        "FAIL broker node 127.0.0.1:1:".to_owned(),
        format!(
            "ok   broker node {}: connected",
            ferry_bridge::broker::node_name(crate::support::amqp_url())
        ),
        "ok   reply queues: declare, consume and publish on ferry.reply.*".into(),
        "ok   cancel exchange ferry.cancel: declared (topic, durable)".into(),
        format!("ok   queue {served}: 1 consumer(s)"),
        format!("FAIL queue {idle}: no consumers (requests get no_responders)"),
        format!("FAIL queue {missing}: does not exist (requests get no_route)"),
        "note allow test.pattern.*: a pattern".into(),
        format!("ok   exchange {exchange}: exists"),
        format!("FAIL exchange {exchange}-missing: does not exist"),
    ] {
        assert!(out.contains(&line), "{line:?} in\n{out}");
    }
    let fine = vec![
        "--amqp-url".to_owned(),
        crate::support::amqp_url().into(),
        "--allow".into(),
        served.clone(),
        "--allow-waiting".into(),
        idle.clone(),
        "--allow".into(),
        idle.clone(),
    ];
    let (code, out) = run(fine).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("note queue {idle}: no consumers now")),
        "{out}"
    );
}

/// `call` over `wss://` to a bridge serving TLS, trusting its CA with `--ca-file`; without it
/// the certificate is refused (exit 2, naming the cause).
#[tokio::test]
async fn call_over_wss_with_a_private_authority() {
    let dir = std::env::temp_dir().join(format!("ferry-cli-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = crate::support::certs::authority(&dir);
    let (cert, key) = crate::support::certs::certificate(&dir, "bridge");
    let bridge = TestBridge::start(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    let queue = unique("test.cli-tls");
    let mut worker = Worker::start(&queue).await;
    let url = format!("wss://localhost:{}/ws", bridge.addr.port());
    let ca = ca.to_str().unwrap().to_owned();
    let run = start(&["--url", &url, "--ca-file", &ca, &queue, "[1]"], b"");
    let req = worker.next().await;
    worker.reply(&req, b"[2]").await;
    let (code, stdout, stderr) = run.await.unwrap();
    assert_eq!((code, stdout.as_str()), (0, "[\n  2\n]\n"), "{stderr}");
    let (code, _, stderr) = start(&["--url", &url, &queue, "[1]"], b"").await.unwrap();
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot connect") && stderr.to_lowercase().contains("certificate"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
