//! The worker's life: connect with backoff, declare and consume the queue with a prefetch,
//! run up to `prefetch` jobs at once, stop a job when its cancel notice comes, reconnect when
//! the broker goes away, stop on request.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, Queue};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, QueueType};
use crate::error::WorkerError;
use crate::{cancel, job, presence};

const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Longest one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the worker until `shutdown` fires. Reconnects (with backoff) whenever the broker
/// connection is lost; calls `ready` each time it starts consuming.
///
/// On shutdown it stops consuming, returns in-flight requests to the queue (so another copy
/// picks them up) and closes the connection.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    ready: impl Fn() + Send + Sync,
) -> Result<(), WorkerError> {
    let config = Arc::new(config);
    let worker: Arc<str> = config.display_name().into();
    let mut node = 0;
    loop {
        let Some(conn) = connect(&config, &mut node, &shutdown).await else {
            return Ok(());
        };
        let result = serve(&conn, &config, &worker, &shutdown, &ready).await;
        let _ = conn.close(200, "worker stopping".into()).await;
        match result {
            Ok(()) => return Ok(()),
            Err(err) => {
                tracing::warn!(code = err.code(), "lost the broker: {err}; reconnecting");
                node += 1; // that node may be gone: try the next first
            }
        }
    }
}

/// Declares the work queue the way the worker does (durable, as RabbitMQ 4.3 requires of a
/// queue that is not exclusive; auto-delete if configured). Anyone publishing before a worker
/// is up may call this first: declaring is idempotent.
pub async fn declare_queue(channel: &Channel, config: &Config) -> lapin::Result<Queue> {
    let options = QueueDeclareOptions {
        durable: true,
        auto_delete: config.auto_delete,
        ..QueueDeclareOptions::default()
    };
    let mut args = FieldTable::default();
    if config.queue_type == QueueType::Quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    channel
        .queue_declare(config.queue.as_str().into(), options, args)
        .await
}

/// Connects to `config.amqp_url[node]`, moving to the next URL after each failure and
/// backing off exponentially once every URL has failed in a row; `None` if shutdown fired
/// first. A node that accepts TCP but never answers (stalled) counts as failed after
/// [`CONNECT_TIMEOUT`].
async fn connect(
    config: &Config,
    node: &mut usize,
    shutdown: &CancellationToken,
) -> Option<Connection> {
    let mut delay = BACKOFF_START;
    let mut attempt = 1usize;
    let nodes = config.amqp_url.len().max(1);
    loop {
        let url = config
            .amqp_url
            .get(*node % nodes)
            .map_or("", String::as_str);
        let props =
            ConnectionProperties::default().with_connection_name("patient-summary-worker".into());
        let connecting = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, props));
        tokio::select! {
            () = shutdown.cancelled() => return None,
            result = connecting => match result {
                Ok(Ok(conn)) => {
                    if attempt > 1 {
                        tracing::info!(attempt, "connected to the broker");
                    }
                    return Some(conn);
                }
                Ok(Err(err)) => {
                    tracing::warn!(attempt, retry_in_ms = delay.as_millis(), "cannot reach the broker: {err}");
                }
                Err(_) => tracing::warn!(attempt, "the broker did not answer in time"),
            }
        }
        *node += 1;
        if attempt.is_multiple_of(nodes) {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(BACKOFF_MAX);
        }
        attempt += 1;
    }
}

/// Consumes on one connection until shutdown (`Ok`) or until the connection fails (`Err`).
async fn serve(
    conn: &Connection,
    config: &Arc<Config>,
    worker: &Arc<str>,
    shutdown: &CancellationToken,
    ready: &(impl Fn() + Send + Sync),
) -> Result<(), WorkerError> {
    let channel = conn
        .create_channel()
        .await
        .map_err(WorkerError::broker("channel.open"))?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await
        .map_err(WorkerError::broker("basic.qos"))?;
    declare_queue(&channel, config)
        .await
        .map_err(WorkerError::broker("queue.declare"))?;
    let mut cancels = if config.cancel_exchange.is_empty() {
        None
    } else {
        let listening = cancel::listen(conn, &config.cancel_exchange, &config.queue).await;
        Some(listening.map_err(WorkerError::broker("cancel listener"))?)
    };
    let running = Arc::new(cancel::Running::default());
    let mut presence = if config.presence_exchange.is_empty() {
        None
    } else {
        let listening = presence::listen(conn, &config.presence_exchange).await;
        Some(listening.map_err(WorkerError::broker("presence listener"))?)
    };
    let mut consumer = channel
        .basic_consume(
            config.queue.as_str().into(),
            worker.as_ref().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(WorkerError::broker("basic.consume"))?;
    tracing::info!(
        queue = %config.queue,
        prefetch = config.prefetch,
        work_ms = config.work_ms,
        "consuming"
    );
    ready();

    // Jobs of this connection: stopped (requeued) on shutdown or when the connection fails.
    let jobs_stop = shutdown.child_token();
    let _stop_jobs = jobs_stop.clone().drop_guard();
    let jobs = TaskTracker::new();
    let result = loop {
        let delivery = tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            next = consumer.next() => next,
            notice = cancel::next(&mut cancels) => match notice {
                Some(Ok(notice)) => {
                    if running.cancel(&notice.properties) {
                        tracing::info!(correlation_id = ?notice.properties.correlation_id(), "cancel notice: stopping the job");
                    }
                    continue;
                }
                Some(Err(err)) => break Err(WorkerError::broker("cancel notice")(err)),
                None => break Err(WorkerError::ConsumerCancelled),
            },
            question = next_question(&mut presence) => match question {
                Some((ch, Ok(q))) => {
                    let answered =
                        presence::answer(&ch, &q.properties, worker, running.len(), config.prefetch).await;
                    if let Err(err) = answered {
                        tracing::warn!(code = err.code(), "presence not answered: {err}");
                    }
                    continue;
                }
                Some((_, Err(err))) => break Err(WorkerError::broker("presence")(err)),
                None => break Err(WorkerError::ConsumerCancelled),
            },
        };
        match delivery {
            Some(Ok(delivery)) => {
                let cancel = running.register(&delivery.properties);
                let (channel, config, worker, stop) = (
                    channel.clone(),
                    config.clone(),
                    worker.clone(),
                    jobs_stop.clone(),
                );
                jobs.spawn(async move {
                    let signals = job::Signals {
                        stop: &stop,
                        cancel: &cancel.token,
                    };
                    if let Err(err) =
                        job::handle(&channel, &config, &worker, delivery, signals).await
                    {
                        tracing::warn!(code = err.code(), "request not completed: {err}");
                    }
                });
            }
            Some(Err(err)) => break Err(WorkerError::broker("basic.deliver")(err)),
            None => break Err(WorkerError::ConsumerCancelled),
        }
    };
    if result.is_ok() {
        let _ = channel
            .basic_cancel(worker.as_ref().into(), BasicCancelOptions::default())
            .await;
    }
    jobs_stop.cancel();
    jobs.close();
    jobs.wait().await;
    if result.is_ok() {
        let _ = channel.close(200, "worker stopping".into()).await;
    }
    result
}

/// The next presence question (with the channel to answer on), or never when presence is off.
async fn next_question(
    presence: &mut Option<(Channel, lapin::Consumer)>,
) -> Option<(Channel, lapin::Result<lapin::message::Delivery>)> {
    match presence {
        Some((channel, consumer)) => Some((channel.clone(), consumer.next().await?)),
        None => std::future::pending().await,
    }
}
