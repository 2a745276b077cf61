// Cluster test harness: the 3-node RabbitMQ cluster of scripts/cluster.sh, reconnecting
// amqplib RPC workers spread over its nodes (counting what they execute), and a load of
// ferry-client sessions that counts every request's outcome.

import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import amqp from "amqplib";
import { ROOT } from "../support/bridge.mjs";

const exec = promisify(execFile);

/** AMQP URLs of the cluster's nodes 1..3 (index 0..2). */
export const NODE_URLS = [5681, 5682, 5683].map((p) => `amqp://guest:guest@127.0.0.1:${p}/%2f`);

/** Runs `scripts/cluster.sh ARGS...`; resolves with its stdout (throws with its output on failure). */
export async function cluster(...args) {
  try {
    const { stdout } = await exec("bash", [join(ROOT, "scripts", "cluster.sh"), ...args], { timeout: 240_000 });
    return stdout.trim();
  } catch (e) {
    throw new Error(`scripts/cluster.sh ${args.join(" ")} failed:\n${e.stdout ?? ""}${e.stderr ?? e.message}`);
  }
}

/** The node number (1..3) a bridge is connected to, read from its `/readyz`. */
export async function bridgeNode(bridge) {
  const text = await (await fetch(`${bridge.adminUrl}/readyz`)).text();
  const m = /127\.0\.0\.1:(568[123])/.exec(text);
  if (!m) throw new Error(`/readyz names no cluster node: ${text}`);
  return Number(m[1]) - 5680;
}

/** One value of the bridge's `/metrics` (0 when absent). */
export async function metric(bridge, name) {
  const text = await (await fetch(`${bridge.adminUrl}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Ordinary AMQP RPC workers, one per node (worker i connects to node i first and moves to
 * the next node whenever its connection ends), on a quorum request queue. Each reply echoes
 * the request after `delayMs`. `executions` counts runs per correlation id: a request run
 * twice was redelivered after a connection loss.
 */
export function startWorkers(queue, { delayMs = 20, prefetch = 64 } = {}) {
  const executions = new Map();
  let stopped = false;
  const conns = new Set();
  const one = async (i) => {
    for (let at = i; !stopped; at++) {
      const url = `${NODE_URLS[at % NODE_URLS.length]}?heartbeat=5`;
      try {
        const conn = await amqp.connect(url, { timeout: 5000 });
        conns.add(conn);
        const closed = new Promise((r) => conn.once("close", r));
        conn.on("error", () => {});
        const ch = await conn.createChannel();
        ch.on("error", () => {});
        await ch.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
        await ch.prefetch(prefetch);
        await ch.consume(queue, (msg) => {
          if (!msg) return;
          const id = msg.properties.correlationId;
          executions.set(id, (executions.get(id) ?? 0) + 1);
          setTimeout(() => {
            try {
              ch.sendToQueue(msg.properties.replyTo, msg.content, {
                correlationId: id,
                contentType: msg.properties.contentType,
              });
              ch.ack(msg);
            } catch {
              // the channel died with its node: the request is redelivered elsewhere
            }
          }, delayMs);
        });
        await closed;
        conns.delete(conn);
      } catch {
        // this node is down or still booting: the next one
      }
      if (!stopped) await pause(250); // a retry delay, not a wait for an event
    }
  };
  const running = [0, 1, 2].map(one);
  return {
    executions,
    /** Requests a worker ran more than once. */
    duplicates: () => [...executions.values()].filter((n) => n > 1).length,
    async stop() {
      stopped = true;
      for (const c of conns) await c.close().catch(() => {});
      await Promise.race([Promise.all(running), pause(6000)]);
    },
    /** Deletes the request queue (through any live node). */
    async deleteQueue() {
      for (const url of NODE_URLS) {
        try {
          const conn = await amqp.connect(url, { timeout: 3000 });
          const ch = await conn.createChannel();
          await ch.deleteQueue(queue);
          await conn.close();
          return;
        } catch {
          // next node
        }
      }
    },
  };
}

/**
 * Keeps `inFlight` requests in flight on each of `clients` ferry-client sessions (connected
 * to `urls`), each request's body naming it, until `stop()`. Counts: resolved, failed by
 * code, wrong (a reply that was not its request's), and records each resolution's time.
 */
export async function startLoad(lib, urls, WebSocket, { queue, clients = 6, inFlight = 4, timeoutMs = 120_000 } = {}) {
  const out = { sent: 0, resolved: 0, wrong: 0, failed: {}, failedTotal: 0, done: [], latencies: [] };
  const outstanding = new Set();
  let running = true;
  const sessions = [];
  for (let c = 0; c < clients; c++) {
    sessions.push(await lib.connect(urls, { WebSocket, reconnect: { maxDelayMs: 1000 } }));
  }
  const loop = async (client, c, k) => {
    for (let n = 0; running; n++) {
      const body = { c, k, n };
      const t0 = Date.now();
      out.sent++;
      const p = client.request(queue, body, { timeoutMs }).then(
        (reply) => {
          if (reply?.c === c && reply?.k === k && reply?.n === n) {
            out.resolved++;
            out.done.push(Date.now());
            out.latencies.push(Date.now() - t0);
          } else out.wrong++;
        },
        (e) => {
          out.failed[e.code ?? "unknown"] = (out.failed[e.code ?? "unknown"] ?? 0) + 1;
          out.failedTotal++;
        },
      );
      const tracked = p.finally(() => outstanding.delete(tracked));
      outstanding.add(tracked);
      const failedBefore = out.failedTotal;
      await p;
      // A failed request is retried after 100 ms, as an app would: the counts are of
      // requests, not of a retry storm.
      if (out.failedTotal !== failedBefore) await pause(100);
    }
  };
  const loops = [];
  sessions.forEach((s, c) => {
    for (let k = 0; k < inFlight; k++) loops.push(loop(s, c, k));
  });
  return {
    counts: out,
    sessions,
    /** Resolves once `n` more requests have resolved than when called. */
    async resolvedMore(n, withinMs = 60_000) {
      const target = out.resolved + n;
      const deadline = Date.now() + withinMs;
      while (out.resolved < target) {
        if (Date.now() > deadline) throw new Error(`only ${out.resolved} of ${target} resolved in ${withinMs} ms`);
        await pause(20); // polling a counter the requests' callbacks raise
      }
    },
    /**
     * Stops sending, then waits up to `hangMs` for what is outstanding; what is still
     * unsettled then is counted `hung`. Closes the sessions.
     */
    async stop(hangMs = 30_000) {
      running = false;
      const deadline = Date.now() + hangMs;
      while (outstanding.size > 0 && Date.now() < deadline) await pause(50);
      out.hung = outstanding.size;
      for (const s of sessions) s.close();
      await Promise.race([Promise.all(loops), pause(2000)]);
      return out;
    },
  };
}

/**
 * The counts of one fault run: what the load saw from `faultAt` on. `outageMs` is the
 * longest time without a resolved request after the fault (the time until service was back).
 */
export function summarize(name, counts, faultAt, extra = {}) {
  const after = counts.done.filter((t) => t >= faultAt).sort((a, b) => a - b);
  let outage = 0;
  let prev = faultAt;
  for (const t of after) {
    outage = Math.max(outage, t - prev);
    prev = t;
  }
  const lat = [...counts.latencies].sort((a, b) => a - b);
  const failed = Object.values(counts.failed).reduce((a, b) => a + b, 0);
  return {
    name,
    sent: counts.sent,
    resolved: counts.resolved,
    failed,
    failedByCode: counts.failed,
    hung: counts.hung,
    wrong: counts.wrong,
    outageMs: outage,
    maxLatencyMs: lat.at(-1) ?? 0,
    ...extra,
  };
}
