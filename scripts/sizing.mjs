// sizing.mjs: derives docs/scaling.md's sizing table from measured inputs. How many bridges and
// RabbitMQ nodes a target load needs, and which resource runs out first, for today's design
// (a reply queue and a lease per resumable session) and for the alternative of one shared
// reply queue per bridge.
//
//   node scripts/sizing.mjs [inputs.json]     (default: docs/scaling-inputs.json)
// Every input is a number measured on this project's machines (the file says where from); the
// model is plain arithmetic, so changing one input shows what it moves.

import { readFileSync } from "node:fs";

const file = process.argv[2] ?? new URL("../docs/scaling-inputs.json", import.meta.url).pathname;
const m = JSON.parse(readFileSync(file, "utf8"));
const T = m.target;
const H = m.hardware;

/** Bridges: the largest of what sockets, memory and CPU each ask for. */
function bridges() {
  const byCap = T.sockets / H.bridge.maxSocketsPerBridge;
  const memKiB = (H.bridge.memoryGiB * 1024 * 1024 * H.headroom) / m.bridge.kibPerActiveSocket;
  const byMemory = T.sockets / memKiB;
  const rpsPerBridge = (H.bridge.cores * 1e6 * H.headroom) / m.bridge.cpuUsPerRequest;
  const byCpu = T.requestsPerSecond / rpsPerBridge;
  return pick({ "socket cap per bridge": byCap, memory: byMemory, CPU: byCpu }, { rpsPerBridge, socketsByMemory: memKiB });
}

/** Broker nodes for `design`: per-session queues (`perSession`) or one reply queue per bridge. */
function brokers(design, bridgeCount) {
  const active = T.sockets * T.activeFraction;
  const q = m.broker[design];
  const memoryKiB = active * q.kibPerActiveSession + T.requestsPerSecond * T.replyBytes * T.queuedSeconds / 1024;
  const usableKiB = H.broker.memoryGiB * 1024 * 1024 * H.broker.memoryHighWatermark * H.headroom;
  // Every node holds its share (classic) or every replica (quorum keeps 3 copies, already in
  // the per-session figure, which is summed over the 3 nodes it was measured on).
  const byMemory = memoryKiB / usableKiB;
  const cpuPerSecond =
    (T.requestsPerSecond * q.cpuUsPerRequest + (active / T.sessionLifetimeSeconds) * q.cpuUsPerSessionStart) / 1e6;
  const byCpu = cpuPerSecond / (H.broker.cores * H.headroom);
  const queues = design === "perSession" ? active * q.queuesPerActiveSession : bridgeCount;
  const byQueues = queues / H.broker.maxQueuesPerNode;
  const nodes = pick({ memory: byMemory, CPU: byCpu, "queue count": byQueues });
  nodes.count = Math.max(3, nodes.count + (nodes.count % 2 === 0 ? 1 : 0)); // odd, ≥ 3 for quorum
  return { ...nodes, queues, memoryGiB: memoryKiB / 1024 / 1024, cores: cpuPerSecond };
}

function pick(needs, extra = {}) {
  const [first, value] = Object.entries(needs).sort((a, b) => b[1] - a[1])[0];
  return { count: Math.ceil(value), first, needs, ...extra };
}

const f = (n) => Math.round(n).toLocaleString("en-US");
const b = bridges();
console.log(`Target: ${f(T.sockets)} sockets (${T.activeFraction * 100} % with a request in their session's life), ${f(T.requestsPerSecond)} requests/s.`);
console.log(`Bridge: ${H.bridge.cores} cores, ${H.bridge.memoryGiB} GiB; broker node: ${H.broker.cores} cores, ${H.broker.memoryGiB} GiB; ${H.headroom * 100} % of each used.\n`);
console.log("| design | bridges | runs out first (bridges) | broker nodes | runs out first (broker) | queues | broker memory | broker cores busy |");
console.log("|---|---:|---|---:|---|---:|---:|---:|");
for (const [name, design] of [["a reply queue + lease per session (today)", "perSession"], ["one reply queue per bridge", "perBridge"]]) {
  const n = brokers(design, b.count);
  console.log(`| ${name} | ${f(b.count)} | ${b.first} | ${f(n.count)} | ${n.first} | ${f(n.queues)} | ${f(n.memoryGiB)} GiB | ${f(n.cores)} |`);
}
console.log(`\nPer bridge: ${f(b.rpsPerBridge)} requests/s at ${H.headroom * 100} % CPU, ${f(b.socketsByMemory)} sockets by memory, capped at ${f(H.bridge.maxSocketsPerBridge)}.`);
console.log(`Bridges by need: ${Object.entries(b.needs).map(([k, v]) => `${k} ${f(Math.ceil(v))}`).join(", ")}.`);
for (const design of ["perSession", "perBridge"]) {
  const n = brokers(design, b.count);
  console.log(`Broker nodes by need (${design}): ${Object.entries(n.needs).map(([k, v]) => `${k} ${Math.ceil(v * 10) / 10}`).join(", ")}.`);
}
