//! One request, start to finish: read it, honour its deadline and cancel notice, report
//! progress, reply, ack.
//!
//! This is the part a worker in any language reproduces. It uses only documented AMQP
//! conventions: reply to `reply_to` with the request's `correlation_id`, mark progress with
//! `x-ferry-kind: progress`, mark errors with `x-ferry-error`, read the absolute deadline
//! from `x-ferry-deadline` (milliseconds since the Unix epoch), moved on by each progress
//! message when `x-ferry-idle-timeout` is set, and stop when a cancel notice names the job.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, message::Delivery};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{RequestError, WorkerError};
use crate::trace::Trace;
use crate::{care, patients};

/// Header carrying the request's absolute deadline (AMQP long, ms since the Unix epoch).
pub const HEADER_DEADLINE: &str = "x-ferry-deadline";
/// Header marking an error reply; its value is our error code.
pub const HEADER_ERROR: &str = "x-ferry-error";
/// On a final reply: the milliseconds the worker spent on the request (optional).
pub const HEADER_WORKER_MS: &str = "x-ferry-worker-ms";
/// Header with a human-readable message for an error reply.
pub const HEADER_ERROR_MESSAGE: &str = "x-ferry-error-message";
/// Header marking a message that is not the final reply.
pub const HEADER_KIND: &str = "x-ferry-kind";
/// Header of a request with an idle timeout (ms): each progress message moves the deadline
/// to now + this.
pub const HEADER_IDLE_TIMEOUT: &str = "x-ferry-idle-timeout";

const JSON: &str = "application/json";

/// The stages a summary goes through, with the progress reported when each starts.
const STAGES: [(&str, u32); 3] = [("records", 10), ("labs", 45), ("medications", 80)];

/// How a job ended (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A summary was sent.
    Replied,
    /// An error reply was sent.
    Rejected,
    /// The deadline had passed before or during the work: no reply, acked.
    Expired,
    /// The request had no `reply_to`: nobody to answer; acked.
    NoReplyTo,
    /// The worker is stopping: the request was returned to the queue.
    Requeued,
    /// A cancel notice said nobody awaits the reply: stopped, acked, no reply.
    Cancelled,
}

/// What can stop a job early.
#[derive(Debug, Clone, Copy)]
pub struct Signals<'a> {
    /// The worker is stopping (the request goes back to the queue).
    pub stop: &'a CancellationToken,
    /// A cancel notice named this request (it is dropped).
    pub cancel: &'a CancellationToken,
}

/// Handles one delivery: replies (or skips it past its deadline), then acks it; with a
/// `traceparent`, in a span of the caller's trace.
pub async fn handle(
    channel: &Channel,
    config: &Config,
    worker: &str,
    delivery: Delivery,
    signals: Signals<'_>,
) -> Result<Outcome, WorkerError> {
    let props = &delivery.properties;
    let id = props
        .correlation_id()
        .as_ref()
        .map_or("-", ShortString::as_str);
    let trace = Trace::start(props.headers().as_ref(), &config.queue, id);
    let traceparent = trace.as_ref().map(|t| t.traceparent.clone());
    let result = job(channel, config, worker, delivery, signals, traceparent).await;
    if let Some(t) = trace {
        match &result {
            Ok(outcome) => t.end(&format!("{outcome:?}").to_lowercase(), true),
            Err(e) => t.end(e.code(), false),
        }
    }
    result
}

async fn job(
    channel: &Channel,
    config: &Config,
    worker: &str,
    delivery: Delivery,
    signals: Signals<'_>,
    traceparent: Option<String>,
) -> Result<Outcome, WorkerError> {
    let props = &delivery.properties;
    let correlation_id = props.correlation_id().clone();
    let id_for_log = correlation_id
        .as_ref()
        .map_or("-", ShortString::as_str)
        .to_owned();
    let Some(reply_to) = props.reply_to().clone() else {
        tracing::warn!(correlation_id = %id_for_log, "request without reply_to: dropped");
        ack(&delivery).await?;
        return Ok(Outcome::NoReplyTo);
    };
    let mut deadline = props.headers().as_ref().and_then(deadline_ms);
    let idle = props.headers().as_ref().and_then(idle_timeout_ms);
    if deadline.is_some_and(|d| d <= now_ms()) {
        tracing::info!(correlation_id = %id_for_log, "deadline already passed: skipped");
        ack(&delivery).await?;
        return Ok(Outcome::Expired);
    }
    let trace_id = traceparent
        .as_deref()
        .and_then(|t| t.get(3..35))
        .map(str::to_owned);
    let reply = Reply {
        channel,
        reply_to,
        correlation_id,
        traceparent,
    };

    let patient_id = match parse_patient_id(&delivery.data) {
        Ok(id) => id,
        Err(err) => return reject(&reply, &delivery, &err, &id_for_log).await,
    };
    let Some(mut summary) = patients::summary(patient_id).map(|s| json!(s)) else {
        let err = RequestError::UnknownPatient(patient_id);
        return reject(&reply, &delivery, &err, &id_for_log).await;
    };
    let user = care::caller(props.headers().as_ref());
    if !care::may_see(user.as_deref(), patient_id) {
        let err = RequestError::NotYourPatient {
            patient: patient_id,
            user: user.unwrap_or_default(),
        };
        return reject(&reply, &delivery, &err, &id_for_log).await;
    }

    tracing::info!(correlation_id = %id_for_log, trace_id, patient_id, "building summary");
    let started = std::time::Instant::now();
    let step = config.work() / STAGES.len() as u32;
    for (stage, pct) in STAGES {
        if !config.no_progress {
            let body =
                json!({ "pct": pct, "stage": stage, "patientId": patient_id, "worker": worker });
            reply.progress(&body).await?;
            if let (Some(d), Some(idle)) = (deadline.as_mut(), idle) {
                *d = (*d).max(now_ms().saturating_add(idle));
            }
        }
        match wait(step, deadline, signals).await {
            Wait::Done => {}
            Wait::Cancelled => {
                tracing::info!(correlation_id = %id_for_log, stage, "cancelled by the caller: stopped");
                ack(&delivery).await?;
                return Ok(Outcome::Cancelled);
            }
            Wait::Expired => {
                tracing::info!(correlation_id = %id_for_log, stage, "deadline passed: abandoned");
                ack(&delivery).await?;
                return Ok(Outcome::Expired);
            }
            Wait::Stopped => {
                tracing::info!(correlation_id = %id_for_log, "stopping: request requeued");
                let requeue = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                delivery
                    .nack(requeue)
                    .await
                    .map_err(WorkerError::broker("basic.nack"))?;
                return Ok(Outcome::Requeued);
            }
        }
    }

    if let Some(obj) = summary.as_object_mut() {
        obj.insert("worker".into(), json!(worker));
        obj.insert("generatedAt".into(), json!(now_ms()));
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        obj.insert("tookMs".into(), json!(ms));
    }
    // The worker's own time, so the bridge's metrics can tell queue wait from work.
    let mut headers = FieldTable::default();
    let took = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    headers.insert(HEADER_WORKER_MS.into(), AMQPValue::LongLongInt(took));
    reply.send(&summary, headers).await?;
    ack(&delivery).await?;
    tracing::info!(correlation_id = %id_for_log, trace_id, patient_id, "summary sent");
    Ok(Outcome::Replied)
}

/// Reads `{"patientId": N}` (N a positive integer, or a string of digits).
pub fn parse_patient_id(body: &[u8]) -> Result<u64, RequestError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RequestError::BadRequest(e.to_string()))?;
    let field = value
        .get("patientId")
        .ok_or_else(|| RequestError::BadRequest("missing field patientId".into()))?;
    let id = match field {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    id.ok_or_else(|| RequestError::BadRequest("patientId must be a positive integer".into()))
}

/// Reads the `x-ferry-deadline` header, accepting any integer encoding a publisher may use.
pub fn deadline_ms(headers: &FieldTable) -> Option<i64> {
    match headers.inner().get(HEADER_DEADLINE)? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().parse().ok(),
        _ => None,
    }
}

/// Reads the `x-ferry-idle-timeout` header (ms), if any.
pub fn idle_timeout_ms(headers: &FieldTable) -> Option<i64> {
    match headers.inner().get(HEADER_IDLE_TIMEOUT)? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        _ => None,
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

enum Wait {
    Done,
    Expired,
    Stopped,
    Cancelled,
}

/// Sleeps `step`, unless the deadline passes, the caller cancels or the worker stops first.
async fn wait(step: Duration, deadline: Option<i64>, signals: Signals<'_>) -> Wait {
    let until_deadline = deadline.map(|d| {
        let left = d.saturating_sub(now_ms()).max(0);
        Duration::from_millis(u64::try_from(left).unwrap_or(0))
    });
    let expire = async {
        match until_deadline {
            Some(left) => tokio::time::sleep(left).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(step) => Wait::Done,
        () = expire => Wait::Expired,
        () = signals.cancel.cancelled() => Wait::Cancelled,
        () = signals.stop.cancelled() => Wait::Stopped,
    }
}

async fn ack(delivery: &Delivery) -> Result<(), WorkerError> {
    delivery
        .ack(BasicAckOptions::default())
        .await
        .map(|_| ())
        .map_err(WorkerError::broker("basic.ack"))
}

async fn reject(
    reply: &Reply<'_>,
    delivery: &Delivery,
    err: &RequestError,
    id_for_log: &str,
) -> Result<Outcome, WorkerError> {
    tracing::info!(correlation_id = %id_for_log, code = err.code(), "error reply: {err}");
    let mut headers = FieldTable::default();
    headers.insert(
        HEADER_ERROR.into(),
        AMQPValue::LongString(LongString::from(err.code())),
    );
    headers.insert(
        HEADER_ERROR_MESSAGE.into(),
        AMQPValue::LongString(LongString::from(err.to_string())),
    );
    reply.send(&err.details(), headers).await?;
    ack(delivery).await?;
    Ok(Outcome::Rejected)
}

/// Where and how to answer one request.
struct Reply<'a> {
    channel: &'a Channel,
    reply_to: ShortString,
    correlation_id: Option<ShortString>,
    /// The job's span in the caller's trace, stamped on every message it sends.
    traceparent: Option<String>,
}

impl Reply<'_> {
    async fn progress(&self, body: &serde_json::Value) -> Result<(), WorkerError> {
        let mut headers = FieldTable::default();
        headers.insert(
            HEADER_KIND.into(),
            AMQPValue::LongString(LongString::from("progress")),
        );
        self.send(body, headers).await
    }

    async fn send(
        &self,
        body: &serde_json::Value,
        mut headers: FieldTable,
    ) -> Result<(), WorkerError> {
        Trace::stamp(self.traceparent.as_deref(), &mut headers);
        let mut props = BasicProperties::default().with_headers(headers);
        if let Some(id) = &self.correlation_id {
            props = props.with_correlation_id(id.clone());
        }
        publish_json(self.channel, self.reply_to.clone(), props, body).await
    }
}

/// Publishes `body` as JSON to `reply_to` on the default exchange with `props` (plus the JSON
/// content type) and waits for the broker to take it: how every answer leaves the worker.
pub async fn publish_json(
    channel: &Channel,
    reply_to: ShortString,
    props: BasicProperties,
    body: &serde_json::Value,
) -> Result<(), WorkerError> {
    let payload = serde_json::to_vec(body).unwrap_or_default();
    let props = props.with_content_type(JSON.into());
    channel
        .basic_publish(
            "".into(),
            reply_to,
            BasicPublishOptions::default(),
            &payload,
            props,
        )
        .await
        .map_err(WorkerError::broker("basic.publish"))?
        .await
        .map_err(WorkerError::broker("basic.publish"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_patient_ids() {
        assert_eq!(parse_patient_id(br#"{"patientId":3}"#), Ok(3));
        assert_eq!(parse_patient_id(br#"{"patientId":"12"}"#), Ok(12));
        assert!(parse_patient_id(br#"{"patientId":-1}"#).is_err());
        assert!(parse_patient_id(br#"{"id":3}"#).is_err());
        assert!(parse_patient_id(b"not json").is_err());
    }

    #[test]
    fn reads_deadlines_in_any_integer_encoding() {
        let mut t = FieldTable::default();
        assert_eq!(deadline_ms(&t), None);
        t.insert(HEADER_DEADLINE.into(), AMQPValue::LongLongInt(42));
        assert_eq!(deadline_ms(&t), Some(42));
        t.insert(HEADER_DEADLINE.into(), AMQPValue::LongString("43".into()));
        assert_eq!(deadline_ms(&t), Some(43));
    }
}
