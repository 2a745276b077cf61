// Measures what a resumable session's reply queue costs on the 3-node cluster of
// scripts/cluster.sh, classic (durable) against quorum, declared as the bridge declares them
// (x-expires, plus a lease queue each): declare time, broker memory and CPU per session, and
// per reply (publish to the queue, consume, ack). Prints a Markdown table for docs/scaling.md.
//
//   node bench/queue-types.mjs [--sessions 1000] [--replies 5000]
// The cluster must be running (scripts/cluster.sh start). Everything it declares is deleted.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import amqp from "amqplib";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SESSIONS = arg("sessions", 1000);
const REPLIES = arg("replies", 5000);
const URLS = [5681, 5682, 5683].map((p) => `amqp://guest:guest@127.0.0.1:${p}/%2f`);
const CLUSTER = new URL("../scripts/cluster.sh", import.meta.url).pathname;

const pids = [1, 2, 3].map((n) => Number(execFileSync("bash", [CLUSTER, "pid", String(n)]).toString().trim()));
const ticks = () => pids.reduce((sum, pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return sum + Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (1/100 s)
}, 0);
/** Erlang-allocated memory of the three nodes, in bytes (rabbitmqctl's total). */
function memory() {
  let sum = 0;
  for (let n = 1; n <= 3; n++) {
    const out = execFileSync("rabbitmqctl", ["-n", `ferry-c${n}@localhost`, "-q", "eval", "erlang:memory(total)."]).toString();
    sum += Number(out.trim());
  }
  return sum;
}
const settle = () => new Promise((r) => setTimeout(r, 3000)); // let the nodes' memory settle

async function measure(type) {
  const conn = await amqp.connect(URLS[0]);
  const ch = await conn.createConfirmChannel();
  const tag = randomBytes(3).toString("hex");
  const names = Array.from({ length: SESSIONS }, (_, i) => `bench.qt.${tag}.${i}`);
  const args = { "x-expires": 600_000, "x-queue-type": type };
  await settle();
  const mem0 = memory();
  const cpu0 = ticks();
  const t0 = process.hrtime.bigint();
  // One at a time, as a session's first request does (reply queue, then its lease).
  for (const q of names) {
    await ch.assertQueue(q, { durable: true, arguments: args });
    await ch.assertQueue(`${q}.lease`, { durable: true, arguments: args });
  }
  const declareUs = Number(process.hrtime.bigint() - t0) / 1000 / SESSIONS;
  const declareCpuUs = ((ticks() - cpu0) * 10_000) / SESSIONS;
  await settle();
  const memPerSession = (memory() - mem0) / SESSIONS;

  // Replies: publish to one session's queue (confirmed, as a worker might not; the broker
  // work is the same), consume with acks.
  const q = names[0];
  const body = Buffer.from(JSON.stringify({ summary: "x".repeat(80) }));
  const cpu1 = ticks();
  const t1 = process.hrtime.bigint();
  let got = 0;
  let consumer;
  const done = new Promise((resolve) => {
    consumer = ch.consume(q, (m) => {
      if (!m) return;
      ch.ack(m);
      if (++got === REPLIES) resolve();
    });
  });
  for (let i = 0; i < REPLIES; i++) {
    ch.sendToQueue(q, body, { correlationId: String(i) });
    if (i % 100 === 99) await ch.waitForConfirms();
  }
  await done;
  const replyUs = Number(process.hrtime.bigint() - t1) / 1000 / REPLIES;
  const replyCpuUs = ((ticks() - cpu1) * 10_000) / REPLIES;

  await ch.cancel((await consumer).consumerTag);
  for (const n of names) {
    await ch.deleteQueue(n);
    await ch.deleteQueue(`${n}.lease`);
  }
  await conn.close();
  return { type, declareUs, declareCpuUs, memPerSession, replyUs, replyCpuUs };
}

const rows = [];
for (const type of ["classic", "quorum", "classic", "quorum"]) rows.push(await measure(type));
const median = (type, key) => {
  const v = rows.filter((r) => r.type === type).map((r) => r[key]).sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
};
const f = (n) => Math.round(n).toLocaleString("en-US");
console.log(`${SESSIONS} sessions (reply queue + lease each), ${REPLIES} replies; 3 nodes on one 2-core machine; the larger of 2 interleaved rounds\n`);
console.log("| reply queues | declare per session (wall) | broker CPU per declare | broker memory per session | per reply (wall) | broker CPU per reply |");
console.log("|---|---|---|---|---|---|");
for (const type of ["classic", "quorum"]) {
  console.log(
    `| ${type} | ${f(median(type, "declareUs"))} µs | ${f(median(type, "declareCpuUs"))} µs | ${f(median(type, "memPerSession") / 1024)} KiB | ${f(median(type, "replyUs"))} µs | ${f(median(type, "replyCpuUs"))} µs |`,
  );
}
