//! `amqps://` toward the broker: a second RabbitMQ node with only a TLS listener (its
//! certificate from a test CA), the bridge trusting that CA with `--amqp-ca-file`, a request
//! answered through it; without the CA the bridge does not connect.
//!
//! Ignored by default: it boots a RabbitMQ node (~20 s). `scripts/test.sh` runs it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::*;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

const NODE: &str = "ferry-amqps@localhost";
const PORT: u16 = 5699;

/// The TLS node; stopped (and its folder removed) whatever happens.
struct TlsNode {
    dir: PathBuf,
    ca: PathBuf,
}

impl TlsNode {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("ferry-amqps-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = certs::authority(&dir);
        let (cert, key) = certs::certificate(&dir, "node");
        let conf = [
            "listeners.tcp = none".to_owned(),
            format!("listeners.ssl.default = 127.0.0.1:{PORT}"),
            format!("ssl_options.cacertfile = {}", ca.display()),
            format!("ssl_options.certfile = {}", cert.display()),
            format!("ssl_options.keyfile = {}", key.display()),
            "ssl_options.verify = verify_none".to_owned(),
            "ssl_options.fail_if_no_peer_cert = false\n".to_owned(),
        ]
        .join("\n");
        std::fs::write(dir.join("rabbitmq.conf"), conf).unwrap();
        std::fs::write(dir.join("plugins"), "[].\n").unwrap();
        let node = Self { dir, ca };
        // The node runs as the rabbitmq user (Debian's wrapper switches to it).
        let own = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&node.dir)
            .status()
            .expect("chown");
        assert!(own.success());
        let d = |name: &str| node.dir.join(name);
        let started = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", NODE)
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("plugins"))
            .env("RABBITMQ_DIST_PORT", (PORT + 20_000).to_string())
            .status()
            .expect("rabbitmq-server runs (a test prerequisite)");
        assert!(started.success());
        // await_startup gives up at once while the booting node is not yet known to epmd:
        // ask again until it answers (no event announces that moment).
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let ready = loop {
            let out = Command::new("rabbitmqctl")
                .args(["-n", NODE, "await_startup", "--timeout", "90"])
                .output()
                .expect("rabbitmqctl");
            if out.status.success() || std::time::Instant::now() > deadline {
                break out;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        assert!(
            ready.status.success(),
            "the TLS node did not boot: {ready:?}"
        );
        node
    }

    fn url(&self) -> String {
        format!("amqps://guest:guest@localhost:{PORT}/%2f")
    }
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", NODE, "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
#[ignore = "boots a second RabbitMQ node with a TLS listener (~20 s); scripts/test.sh runs it"]
async fn the_bridge_speaks_amqps_to_a_broker_with_a_private_ca() {
    let node = tokio::task::spawn_blocking(TlsNode::start).await.unwrap();
    let pem = std::fs::read_to_string(&node.ca).unwrap();
    // An echo worker on the TLS node.
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: Some(pem.clone()),
    };
    let runtime = lapin::runtime::default_runtime().unwrap();
    let conn =
        Connection::connect_with_config(&node.url(), ConnectionProperties::default(), tls, runtime)
            .await
            .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let queue = unique("amqps");
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let consumer = ch
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _worker = echo(ch.clone(), consumer);

    let url = node.url();
    let ca = node.ca.clone();
    let b = TestBridge::start(|c| {
        c.amqp_url = vec![url];
        c.amqp_ca_file = Some(ca);
    })
    .await;
    let mut c = Client::connect(&b.url()).await;
    c.request("r", &queue, b"over amqps", Some(5_000)).await;
    assert_eq!(c.recv().await.reply(), ("r".into(), b"over amqps".to_vec()));

    // Without the CA, the broker's certificate is not trusted: no link comes up.
    let mut cfg = ferry_bridge::Config::with_defaults("127.0.0.1:0".parse().unwrap(), &["test.*"]);
    cfg.amqp_url = vec![node.url()];
    let untrusting = ferry_bridge::Bridge::bind(cfg).await.unwrap();
    let waited =
        tokio::time::timeout(Duration::from_secs(3), untrusting.broker().wait_ready()).await;
    assert!(
        waited.is_err(),
        "a broker certificate of an unknown CA is refused"
    );
    let _ = conn.close(200, "bye".into()).await;
}
