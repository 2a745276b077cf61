//! The closed-loop load shape every client follows, latency recording and the summaries.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// One load point: how many requests stay in flight, with what body, for how long.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Requests kept in flight at once (closed loop: a reply triggers the next request).
    pub concurrency: usize,
    /// The request body, sent verbatim.
    pub body: Vec<u8>,
    /// Time run before measuring (connections warm, caches and queues settled).
    pub warmup: Duration,
    /// Time measured after the warm-up.
    pub duration: Duration,
}

/// A JSON body of exactly `len` bytes (at least 32), the kind of payload an app sends.
pub fn json_body(len: usize) -> Vec<u8> {
    let head = br#"{"patient":"p-000123","pad":""#;
    let tail = br#""}"#;
    let pad = len.saturating_sub(head.len() + tail.len());
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(head);
    body.extend(std::iter::repeat_n(b'x', pad));
    body.extend_from_slice(tail);
    body
}

/// The clock of one run: warm-up, then the measured window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// When measuring starts.
    pub measure_from: Instant,
    /// When measuring ends; no request is sent after this.
    pub end: Instant,
}

impl Window {
    /// Starts the clock now.
    pub fn start(spec: &LoadSpec) -> Self {
        let measure_from = Instant::now() + spec.warmup;
        Self {
            measure_from,
            end: measure_from + spec.duration,
        }
    }

    /// Whether a new request may still be sent at `now`.
    pub fn open(&self, now: Instant) -> bool {
        now < self.end
    }
}

/// Records completions of one run.
#[derive(Debug)]
pub struct Recorder {
    window: Window,
    hist: Histogram<u64>,
    /// Requests completed inside the measured window.
    measured: u64,
    /// Requests completed at any time (warm-up included), for CPU per request.
    total: u64,
    errors: u64,
}

impl Recorder {
    /// A recorder for the given window (latencies 1 µs .. 60 s at 3 significant digits).
    pub fn new(window: Window) -> Result<Self> {
        let hist = Histogram::new_with_bounds(1, 60_000_000, 3)
            .map_err(|e| BenchError::Protocol(format!("histogram: {e}")))?;
        Ok(Self {
            window,
            hist,
            measured: 0,
            total: 0,
            errors: 0,
        })
    }

    /// A reply to a request sent at `sent` arrived at `now`.
    pub fn reply(&mut self, sent: Instant, now: Instant) {
        self.total += 1;
        if now >= self.window.measure_from && now < self.window.end {
            self.measured += 1;
            let us = now.duration_since(sent).as_micros();
            self.hist
                .saturating_record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
        }
    }

    /// A request failed (an ERROR frame, a timeout, a broker error).
    pub fn error(&mut self) {
        self.total += 1;
        self.errors += 1;
    }

    /// Adds another recorder's counts (one per concurrent slot, merged at the end).
    pub fn merge(&mut self, other: &Recorder) -> Result<()> {
        self.hist
            .add(&other.hist)
            .map_err(|e| BenchError::Protocol(format!("histogram: {e}")))?;
        self.measured += other.measured;
        self.total += other.total;
        self.errors += other.errors;
        Ok(())
    }

    /// The summary of the run.
    pub fn finish(&self, duration: Duration) -> RunStats {
        let secs = duration.as_secs_f64().max(1e-9);
        RunStats {
            rps: self.measured as f64 / secs,
            p50_us: self.hist.value_at_quantile(0.50) as f64,
            p90_us: self.hist.value_at_quantile(0.90) as f64,
            p99_us: self.hist.value_at_quantile(0.99) as f64,
            p999_us: self.hist.value_at_quantile(0.999) as f64,
            measured: self.measured,
            total: self.total,
            errors: self.errors,
            client_cpu_s: None,
        }
    }
}

/// What one client reported for one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunStats {
    /// Completed requests per second in the measured window.
    pub rps: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 90th percentile latency, microseconds.
    #[serde(default)]
    pub p90_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile latency, microseconds.
    #[serde(default)]
    pub p999_us: f64,
    /// Requests completed in the measured window.
    pub measured: u64,
    /// Requests completed in the whole run, warm-up included.
    pub total: u64,
    /// Requests that failed.
    pub errors: u64,
    /// CPU seconds the load generator itself used, when it runs in its own process (the Node
    /// client reports `process.cpuUsage()`); the runner measures in-process clients itself.
    #[serde(default)]
    pub client_cpu_s: Option<f64>,
}

/// The median of some values (the mean of the middle two for an even count; 0 for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_has_the_exact_length_and_parses() {
        for len in [100, 65_536] {
            let body = json_body(len);
            assert_eq!(body.len(), len);
            let _: serde_json::Value = serde_json::from_slice(&body).unwrap();
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn recorder_counts_only_the_window() {
        let now = Instant::now();
        let window = Window {
            measure_from: now + Duration::from_millis(10),
            end: now + Duration::from_millis(20),
        };
        let mut r = Recorder::new(window).unwrap();
        r.reply(now, now + Duration::from_millis(5));
        r.reply(now, now + Duration::from_millis(15));
        r.error();
        let s = r.finish(Duration::from_millis(10));
        assert_eq!((s.measured, s.total, s.errors), (1, 3, 1));
        assert!((s.p50_us - 15_000.0).abs() < 100.0);
    }
}
