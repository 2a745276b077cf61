// Measures what sessions cost at scale on the 3-node cluster of scripts/cluster.sh: one bridge
// (the release binary), N resumable ferry-client sessions from this process. Reports the
// bridge's memory per idle socket, the broker's memory and queues per idle and per active
// session (one request made), and how long opening and first requests took. Prints JSON
// (for scripts/sizing.mjs) and a Markdown table (for docs/scaling.md).
//
//   node bench/sessions.mjs [--sessions 10000] [--reply-queue-type classic|quorum]
// Needs: scripts/cluster.sh start; cargo build --release -p ferry-bridge; npm run build.

import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import amqp from "amqplib";
import WebSocket from "ws";
import { connect } from "../dist/index.js";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const N = Number(arg("sessions", 10000));
const TYPE = arg("reply-queue-type", "classic");
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const URLS = [5681, 5682, 5683].map((p) => `amqp://guest:guest@127.0.0.1:${p}/%2f`);
const QUEUE = `bench.sessions.${process.pid}`;
const BATCH = 200;

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
const ctl = (n, ...a) => execFileSync("rabbitmqctl", ["-n", `ferry-c${n}@localhost`, "-q", ...a]).toString();
const brokerMemory = () => [1, 2, 3].reduce((s, n) => s + Number(ctl(n, "eval", "erlang:memory(total).").trim()), 0);
const queues = () => Number(ctl(1, "eval", "length(rabbit_amqqueue:list()).").trim());
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

// An echo worker on the cluster.
const wconn = await amqp.connect(URLS[1]);
const wch = await wconn.createChannel();
await wch.assertQueue(QUEUE, { durable: true, arguments: { "x-queue-type": "quorum" } });
await wch.prefetch(500);
await wch.consume(QUEUE, (m) => {
  if (!m) return; // the consumer was cancelled (the queue deleted at the end)
  wch.sendToQueue(m.properties.replyTo, m.content, { correlationId: m.properties.correlationId });
  wch.ack(m);
});

const bridge = spawn(
  `${ROOT}target/release/ferry-bridge`,
  ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--amqp-url", URLS.join(","), "--allow", "bench.*",
    "--max-connections", String(N + 100), "--max-connections-per-ip", String(N + 100), "--session-rate", "100000",
    "--reply-queue-type", TYPE],
  { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RUST_LOG: "warn" } },
);
const wsUrl = await new Promise((resolve) => {
  createInterface({ input: bridge.stdout }).on("line", (l) => {
    const m = / \(socket (ws:\/\/\S+)\)/.exec(l);
    if (m) resolve(m[1]);
  });
});
await pause(2000); // the broker links come up; the bridge has no event for it
const settle = () => pause(5000); // memory of the nodes settles after a burst

const out = { sessions: N, replyQueueType: TYPE };
await settle();
const rss0 = rssKiB(bridge.pid);
const mem0 = brokerMemory();
const q0 = queues();

let t = Date.now();
const clients = [];
for (let i = 0; i < N; i += BATCH) {
  const batch = await Promise.all(
    Array.from({ length: Math.min(BATCH, N - i) }, () => connect(wsUrl, { WebSocket })),
  );
  clients.push(...batch);
}
out.openSeconds = (Date.now() - t) / 1000;
await settle();
out.bridgeKiBPerIdleSocket = (rssKiB(bridge.pid) - rss0) / N;
out.brokerKiBPerIdleSession = (brokerMemory() - mem0) / 1024 / N;
out.queuesPerIdleSession = (queues() - q0) / N;

const firstMs = [];
out.firstRequestErrors = {};
t = Date.now();
for (let i = 0; i < N; i += BATCH) {
  await Promise.all(
    clients.slice(i, i + BATCH).map(async (c) => {
      const t0 = Date.now();
      for (;;) {
        try {
          await c.request(QUEUE, { i }, { timeoutMs: 120_000 });
          break;
        } catch (e) {
          // A declare that waited too long in the broker (broker_unavailable): counted, retried.
          out.firstRequestErrors[e.code] = (out.firstRequestErrors[e.code] ?? 0) + 1;
        }
      }
      firstMs.push(Date.now() - t0);
    }),
  );
}
out.firstRequestsSeconds = (Date.now() - t) / 1000;
firstMs.sort((a, b) => a - b);
out.firstRequestP50Ms = firstMs[Math.floor(N / 2)];
out.firstRequestP99Ms = firstMs[Math.floor(N * 0.99)];
await settle();
out.bridgeKiBPerActiveSocket = (rssKiB(bridge.pid) - rss0) / N;
out.brokerKiBPerActiveSession = (brokerMemory() - mem0) / 1024 / N;
out.queuesPerActiveSession = (queues() - q0) / N;

for (const c of clients) c.close();
await pause(3000);
bridge.kill("SIGTERM");
await new Promise((r) => bridge.once("exit", r));
await wch.deleteQueue(QUEUE);
await wconn.close();

const r = (x) => Math.round(x * 10) / 10;
console.log(JSON.stringify(out));
console.log(`\n${N} resumable sessions, ${TYPE} reply queues, one bridge (release) on the 3-node cluster:\n`);
console.log("| | bridge memory per socket | broker memory per session (3 nodes) | broker queues per session |");
console.log("|---|---|---|---|");
console.log(`| idle (open, no request yet) | ${r(out.bridgeKiBPerIdleSocket)} KiB | ${r(out.brokerKiBPerIdleSession)} KiB | ${r(out.queuesPerIdleSession)} |`);
console.log(`| active (one request made) | ${r(out.bridgeKiBPerActiveSocket)} KiB | ${r(out.brokerKiBPerActiveSession)} KiB | ${r(out.queuesPerActiveSession)} |`);
console.log(`\nOpening ${N} sessions took ${r(out.openSeconds)} s; their first requests (${BATCH} at a time, each declaring the session's reply queue and lease) ${r(out.firstRequestsSeconds)} s, p50 ${out.firstRequestP50Ms} ms, p99 ${out.firstRequestP99Ms} ms (retries included; errors retried: ${JSON.stringify(out.firstRequestErrors)}).`);
