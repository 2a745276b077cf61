//! `ferry-bridge check`: checks a configuration against the broker before it serves anyone:
//! each node answers, the bridge may declare, consume and publish its reply queues and declare
//! its cancel exchange, each allowed queue exists and has consumers, each allowed exchange
//! exists. One line per finding (`ok`, `FAIL`, `note`); exit status 1 if any failed.

use std::fmt::Write as _;
use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};

use crate::allow::Allowlist;
use crate::broker::{declare_topic, node_name, open};
use crate::config::Config;

/// Time for each node to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// One line per finding.
    pub text: String,
    /// Findings that would make requests fail.
    pub failures: usize,
}

impl Report {
    fn line(&mut self, verdict: &str, what: &str) {
        if verdict == "FAIL" {
            self.failures += 1;
        }
        let _ = writeln!(self.text, "{verdict:<4} {what}");
    }
}

/// Runs every check of `config` against its broker.
pub async fn check(config: &Config) -> Report {
    let mut report = Report::default();
    let ca = match &config.amqp_ca_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(pem) => Some(pem),
            Err(e) => {
                report.line("FAIL", &format!("--amqp-ca-file {}: {e}", path.display()));
                return report;
            }
        },
        None => None,
    };
    let mut conn = None;
    for url in config.broker_urls() {
        let node = node_name(&url);
        let name = "ferry-bridge check".to_owned();
        match tokio::time::timeout(CONNECT_TIMEOUT, open(&url, name, ca.clone())).await {
            Ok(Ok(c)) => {
                report.line("ok", &format!("broker node {node}: connected"));
                conn.get_or_insert(c);
            }
            Ok(Err(e)) => report.line("FAIL", &format!("broker node {node}: {e}")),
            Err(_) => report.line(
                "FAIL",
                &format!("broker node {node}: no answer in {CONNECT_TIMEOUT:?}"),
            ),
        }
    }
    let Some(conn) = conn else {
        report.line(
            "FAIL",
            "no broker node answered: nothing else can be checked",
        );
        return report;
    };
    reply_queues(&conn, &mut report).await;
    if !config.cancel_exchange.is_empty() {
        let name = &config.cancel_exchange;
        let found = declare_exchange(&conn, name, false).await;
        match found {
            Ok(()) => report.line(
                "ok",
                &format!("cancel exchange {name}: declared (topic, durable)"),
            ),
            Err(e) => report.line(
                "FAIL",
                &format!("cancel exchange {name}: {e} (cancel notices would be off)"),
            ),
        }
    }
    let waiting = Allowlist::new(&config.allow_waiting);
    if config.allow.is_empty() {
        report.line("FAIL", "no --allow entry: every destination is forbidden");
    }
    for entry in &config.allow {
        let entry = entry.trim();
        if entry.ends_with('*') {
            report.line(
                "note",
                &format!("allow {entry}: a pattern; each queue is checked when called"),
            );
            continue;
        }
        queue(&conn, entry, waiting.allows(entry), &mut report).await;
    }
    for entry in &config.allow_exchange {
        let exchange = entry.split('/').next().unwrap_or("").trim();
        if exchange.ends_with('*') || exchange.is_empty() {
            report.line(
                "note",
                &format!("allow-exchange {entry}: a pattern; each exchange is checked when called"),
            );
            continue;
        }
        match declare_exchange(&conn, exchange, true).await {
            Ok(()) => report.line("ok", &format!("exchange {exchange}: exists")),
            Err(e) => report.line(
                "FAIL",
                &format!("exchange {exchange}: {e} (gathers get no_route)"),
            ),
        }
    }
    let _ = conn.close(200, "checked".into()).await;
    report
}

/// A plain session's reply queue, as the bridge declares it: declared, consumed, published to
/// (needs configure, read and write on `ferry.reply.*`), then deleted.
async fn reply_queues(conn: &Connection, report: &mut Report) {
    let name = format!("ferry.reply.check-{}", uuid::Uuid::new_v4().simple());
    let tried = async {
        let ch = conn.create_channel().await?;
        let (opts, args) = crate::broker::declare::reply_queue(
            Duration::ZERO,
            crate::config::ReplyQueueType::Classic,
        );
        ch.queue_declare(name.as_str().into(), opts, args).await?;
        ch.basic_consume(
            name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
        ch.basic_publish(
            "".into(),
            name.as_str().into(),
            BasicPublishOptions::default(),
            b"",
            BasicProperties::default(),
        )
        .await?;
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await?;
        let _ = ch.close(200, "checked".into()).await;
        Ok::<_, lapin::Error>(())
    };
    match tried.await {
        Ok(()) => report.line(
            "ok",
            "reply queues: declare, consume and publish on ferry.reply.*",
        ),
        Err(e) => report.line(
            "FAIL",
            &format!(
                "reply queues (ferry.reply.*): {e} (grant configure, write and read on ^ferry\\.)"
            ),
        ),
    }
}

/// An allowed queue: exists, has consumers (unless it may wait).
async fn queue(conn: &Connection, name: &str, may_wait: bool, report: &mut Report) {
    let passive = async {
        let ch = conn.create_channel().await?;
        let opts = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let q = ch
            .queue_declare(name.into(), opts, FieldTable::default())
            .await?;
        let _ = ch.close(200, "checked".into()).await;
        Ok::<_, lapin::Error>(q.consumer_count())
    };
    match passive.await {
        Ok(0) if may_wait => report.line(
            "note",
            &format!("queue {name}: no consumers now (--allow-waiting: requests wait for one)"),
        ),
        Ok(0) => report.line(
            "FAIL",
            &format!("queue {name}: no consumers (requests get no_responders)"),
        ),
        Ok(n) => report.line("ok", &format!("queue {name}: {n} consumer(s)")),
        Err(e) if e.to_string().contains("NOT_FOUND") => {
            report.line(
                "FAIL",
                &format!("queue {name}: does not exist (requests get no_route)"),
            );
        }
        Err(e) => report.line("FAIL", &format!("queue {name}: {e}")),
    }
}

/// Declares `name` as the bridge does (topic, durable), or only checks it exists (`passive`).
async fn declare_exchange(conn: &Connection, name: &str, passive: bool) -> Result<(), String> {
    declare_topic(conn, name, passive).await.map_err(|e| {
        if e.to_string().contains("NOT_FOUND") {
            "does not exist".to_owned()
        } else {
            e.to_string()
        }
    })
}
