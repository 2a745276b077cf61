//! Ferry, real client: the npm package (wasm + JS glue) in Node with `ws`, closed-loop load.
//
// Usage: node load.mjs --client PATH/dist/index.js --url ws://HOST:PORT/ws --dest QUEUE
//          --concurrency N --body-bytes B --warmup-ms MS --duration-ms MS
// Prints one JSON line: { rps, p50_us, p99_us, measured, total, errors } — the same shape and
// the same window rules as the Rust clients (replies counted only inside the measured window).
import { pathToFileURL } from "node:url";
import { performance } from "node:perf_hooks";

function args(argv) {
  const out = {};
  for (let i = 2; i < argv.length; i += 2) out[argv[i].replace(/^--/, "")] = argv[i + 1];
  return out;
}

// The same 100-byte / 64 KiB JSON document the Rust clients send, as the object an app passes.
function jsonBody(len) {
  const head = '{"patient":"p-000123","pad":"';
  const tail = '"}';
  return JSON.parse(head + "x".repeat(Math.max(0, len - head.length - tail.length)) + tail);
}

// The value at quantile q, as HdrHistogram reports it (the smallest value with ≥ q below it).
function quantile(sorted, q) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

const a = args(process.argv);
const { connect } = await import(pathToFileURL(a.client).href);
const { default: WebSocket } = await import("ws");
const concurrency = Number(a.concurrency);
const body = jsonBody(Number(a["body-bytes"]));
const client = await connect(a.url, { WebSocket, timeoutMs: 30_000, token: a.token || undefined });

const measureFrom = performance.now() + Number(a["warmup-ms"]);
const end = measureFrom + Number(a["duration-ms"]);
const latencies = [];
let total = 0;
let errors = 0;
let firstError;

async function slot() {
  while (performance.now() < end) {
    const sent = performance.now();
    try {
      await client.request(a.dest, body, { timeoutMs: 30_000 });
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
await client.close();
if (firstError) console.error(`load.mjs: first error: ${firstError.code ?? ""} ${firstError.message}`);
latencies.sort((x, y) => x - y);
const secs = Number(a["duration-ms"]) / 1000;
console.log(
  JSON.stringify({
    rps: latencies.length / secs,
    p50_us: quantile(latencies, 0.5),
    p99_us: quantile(latencies, 0.99),
    measured: latencies.length,
    total,
    errors,
    client_cpu_s: (() => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1e6;
    })(),
  }),
);
