//! What the Node load generators share: arguments, the JSON body, the closed loop and its report.
//
// Each generator supplies `call(body)` (one request, resolving with the reply) and gets the
// same window rules as the Rust clients: replies count only inside the measured window, and
// the JSON line printed has the same fields.
import { performance } from "node:perf_hooks";

/** `--name value` pairs as an object. */
export function args(argv) {
  const out = {};
  for (let i = 2; i < argv.length; i += 2) out[argv[i].replace(/^--/, "")] = argv[i + 1];
  return out;
}

/** The same 100-byte / 64 KiB JSON document the Rust clients send, as the object an app passes. */
export function jsonBody(len) {
  const head = '{"patient":"p-000123","pad":"';
  const tail = '"}';
  return JSON.parse(head + "x".repeat(Math.max(0, len - head.length - tail.length)) + tail);
}

/** The value at quantile q, as HdrHistogram reports it (the smallest value with ≥ q below it). */
export function quantile(sorted, q) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/**
 * Keeps `concurrency` calls in flight until the window ends; returns the result object
 * (without the client's CPU, which the caller adds once it has closed its connection).
 */
export async function closedLoop({ call, concurrency, warmupMs, durationMs }) {
  const measureFrom = performance.now() + warmupMs;
  const end = measureFrom + durationMs;
  const latencies = [];
  let total = 0;
  let errors = 0;
  let firstError;
  async function slot() {
    while (performance.now() < end) {
      const sent = performance.now();
      try {
        await call();
        const now = performance.now();
        total += 1;
        if (now >= measureFrom && now < end) latencies.push((now - sent) * 1000);
      } catch (e) {
        total += 1;
        errors += 1;
        firstError ??= e;
        if (errors > 1000) throw e;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, slot));
  if (firstError) console.error(`first error: ${firstError.code ?? ""} ${firstError.message}`);
  latencies.sort((x, y) => x - y);
  return {
    rps: latencies.length / (durationMs / 1000),
    p50_us: quantile(latencies, 0.5),
    p90_us: quantile(latencies, 0.9),
    p99_us: quantile(latencies, 0.99),
    p999_us: quantile(latencies, 0.999),
    measured: latencies.length,
    total,
    errors,
  };
}

/** Prints the result line with this process's CPU seconds. */
export function report(result) {
  const { user, system } = process.cpuUsage();
  console.log(JSON.stringify({ ...result, client_cpu_s: (user + system) / 1e6 }));
}
