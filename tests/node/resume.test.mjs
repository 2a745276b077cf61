// Resilience of ferry-client (installed from npm pack) with a real bridge binary, RabbitMQ
// and an amqplib worker that answers when the test says so: the socket cut mid-request, the
// bridge killed and replaced, the grace period running out, requests made while reconnecting.

import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import amqp from "amqplib";
import WebSocket from "ws";
import { AMQP_URL, startBridge, uniqueName } from "../support/bridge.mjs";
import { importInstalled } from "../support/package.mjs";
import { portOf, startProxy } from "../support/proxy.mjs";

const PREFIX = uniqueName("ft.resume");
const queue = `${PREFIX}.held`;
let lib;
let worker;

/** A worker that keeps every request until `answer()`; replies `{ n }` with the request's n. */
async function heldWorker(name) {
  const conn = await amqp.connect(AMQP_URL);
  const ch = await conn.createChannel();
  await ch.assertQueue(name, { durable: false, arguments: { "x-expires": 120_000 } });
  const held = [];
  let waiter;
  await ch.consume(name, (msg) => {
    held.push(msg);
    waiter?.();
  });
  return {
    /** Resolves once `n` requests are held. */
    async holding(n) {
      while (held.length < n) await new Promise((r) => (waiter = r));
    },
    /** Drops what an earlier test left held (a request sent again on resume runs twice). */
    forget() {
      for (const msg of held.splice(0)) ch.ack(msg);
    },
    /** Sends a progress message for every held request (it shows the request reached a worker). */
    progress() {
      for (const msg of held) {
        ch.sendToQueue(msg.properties.replyTo, Buffer.from("{}"), {
          correlationId: msg.properties.correlationId,
          contentType: "application/json",
          headers: { "x-ferry-kind": "progress" },
        });
      }
    },
    /** Replies to every held request. */
    answer() {
      for (const msg of held.splice(0)) {
        ch.sendToQueue(msg.properties.replyTo, msg.content, {
          correlationId: msg.properties.correlationId,
          contentType: "application/json",
        });
        ch.ack(msg);
      }
    },
    async stop() {
      await ch.deleteQueue(name).catch(() => {});
      await conn.close().catch(() => {});
    },
  };
}

/** The error `promise` rejects with (fails the test if it resolves). */
const failure = (promise) =>
  promise.then(
    (v) => assert.fail(`resolved with ${JSON.stringify(v)}`),
    (e) => e,
  );

/** Resolves with the next `statechange` to `name`. */
const becomes = (client, name) =>
  new Promise((resolve) => {
    const on = (ev) => {
      if (ev.state === name) {
        client.removeEventListener("statechange", on);
        resolve();
      }
    };
    client.addEventListener("statechange", on);
  });

/** Reply queues of the broker (rabbitmqctl does not touch them, a passive declare would). */
function replyQueues() {
  const out = execFileSync("rabbitmqctl", ["list_queues", "-q", "--no-table-headers", "name"], { encoding: "utf8" });
  return out.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("ferry.reply."));
}

const fast = { initialDelayMs: 20, maxDelayMs: 200 };

before(async () => {
  lib = await importInstalled();
  worker = await heldWorker(queue);
});

after(async () => {
  await worker?.stop();
});

describe("reconnect and resume", () => {
  beforeEach(() => worker.forget());

  test("socket cut mid-request: the reply sent while it was down arrives once", async () => {
    const bridge = await startBridge({ allow: [`${PREFIX}.*`] });
    const proxy = await startProxy(portOf(bridge.wsUrl));
    const states = [];
    const c = await lib.connect(proxy.url(), { WebSocket, reconnect: fast, onStateChange: (s) => states.push(s) });
    try {
      assert.equal(c.state, "open");
      const session = c.session;
      const ps = [1, 2, 3].map((n) => c.request(queue, { n }, { timeoutMs: 20_000 }));
      await worker.holding(3);
      proxy.refuse(true);
      const down = becomes(c, "reconnecting");
      proxy.cut();
      await down;
      assert.equal(c.state, "reconnecting");
      worker.answer(); // the replies wait in the session's reply queue
      const up = becomes(c, "open");
      proxy.refuse(false);
      await up;
      assert.equal(c.session, session, "the same session, resumed");
      assert.deepEqual(await Promise.all(ps), [{ n: 1 }, { n: 2 }, { n: 3 }]);
      assert.equal(c.pending, 0);
      assert.deepEqual(states.slice(0, 3), ["open", "reconnecting", "open"]);
    } finally {
      await c.close();
      await proxy.close();
      await bridge.stop();
    }
  });

  test("bridge A killed with requests in flight, bridge B takes the session: every reply exactly once", async () => {
    const a = await startBridge({ allow: [`${PREFIX}.*`] });
    const proxy = await startProxy(portOf(a.wsUrl));
    const c = await lib.connect(proxy.url(), { WebSocket, reconnect: fast });
    let b;
    try {
      const n = 50;
      const replies = Array.from({ length: n }, (_, i) => c.request(queue, { n: i }, { timeoutMs: 30_000 }));
      await worker.holding(n);
      worker.answer(); // some replies reach A before it dies, some wait in RabbitMQ
      const down = becomes(c, "reconnecting");
      await a.kill();
      await down;
      b = await startBridge({ allow: [`${PREFIX}.*`] });
      proxy.retarget(portOf(b.wsUrl));
      const got = await Promise.all(replies);
      assert.deepEqual(got.map((r) => r.n), Array.from({ length: n }, (_, i) => i));
      assert.equal(c.pending, 0);
      assert.equal(c.state, "open");
      // Nothing more arrives: a second copy would have no request to go to, but would still
      // show as a dropped reply on B; give B's /metrics a look.
      const metrics = await (await fetch(`${b.adminUrl}/metrics`)).text();
      assert.match(metrics, /ferry_sessions_resumed_total 1/);
    } finally {
      await c.close();
      await proxy.close();
      await a.kill();
      await b?.stop();
    }
  });

  test("a half-open socket (nothing passes, nothing closes) is noticed by both ends; the reply arrives", async () => {
    const bridge = await startBridge({ allow: [`${PREFIX}.*`], args: ["--ping-interval", "200ms"] });
    const proxy = await startProxy(portOf(bridge.wsUrl));
    const c = await lib.connect(proxy.url(), { WebSocket, reconnect: fast });
    try {
      const p = c.request(queue, { n: 5 }, { timeoutMs: 20_000 });
      await worker.holding(1);
      const down = becomes(c, "reconnecting");
      const t0 = Date.now();
      proxy.freeze();
      await down; // the client heard no HEARTBEAT for three intervals
      const noticed = Date.now() - t0;
      // Three 200 ms heartbeats (one more if the timer ran late); unnoticed, only the 20 s timeout would end it.
      assert.ok(noticed < 5_000, `noticed after ${noticed} ms`);
      worker.answer();
      assert.deepEqual(await p, { n: 5 });
      assert.equal(c.state, "open");
      assert.equal(c.pending, 0);
    } finally {
      await c.close();
      await proxy.close();
      await bridge.stop();
    }
  });

  test("a request sent into a socket that turns out dead is sent again on resume, not left to its timeout", async () => {
    const bridge = await startBridge({ allow: [`${PREFIX}.*`], args: ["--ping-interval", "200ms"] });
    const proxy = await startProxy(portOf(bridge.wsUrl));
    const c = await lib.connect(proxy.url(), { WebSocket, reconnect: fast });
    try {
      const down = becomes(c, "reconnecting");
      proxy.freeze(); // the request below never reaches the bridge
      const p = c.request(queue, { n: 11 }, { timeoutMs: 20_000 });
      await down;
      // The bridge never reported it ACCEPTED: the resumed session publishes it.
      await worker.holding(1);
      worker.answer();
      assert.deepEqual(await p, { n: 11 });
      assert.equal(c.pending, 0);
    } finally {
      await c.close();
      await proxy.close();
      await bridge.stop();
    }
  });

  test("requests made while reconnecting wait for the socket, or reject with whileReconnecting: reject", async () => {
    const bridge = await startBridge({ allow: [`${PREFIX}.*`] });
    const proxy = await startProxy(portOf(bridge.wsUrl));
    const waits = await lib.connect(proxy.url(), { WebSocket, reconnect: fast });
    const rejects = await lib.connect(proxy.url(), { WebSocket, reconnect: fast, whileReconnecting: "reject" });
    const bounded = await lib.connect(proxy.url(), { WebSocket, reconnect: fast, maxQueued: 1 });
    try {
      proxy.refuse(true);
      const down = Promise.all([
        becomes(waits, "reconnecting"),
        becomes(rejects, "reconnecting"),
        becomes(bounded, "reconnecting"),
      ]);
      proxy.cut();
      await down;
      const waiting = waits.request(queue, { n: 7 }, { timeoutMs: 20_000 });
      const tooLate = waits.request(queue, { n: 8 }, { timeoutMs: 300 });
      const refused = await failure(rejects.request(queue, { n: 9 }));
      assert.equal(refused.code, "disconnected");
      const queued = bounded.request(queue, { n: 10 }, { timeoutMs: 20_000 });
      const overflow = await failure(bounded.request(queue, { n: 11 }, { timeoutMs: 20_000 }));
      assert.equal(overflow.code, "disconnected", "maxQueued: 1 bounds the waiting requests");
      const timedOut = await failure(tooLate);
      assert.equal(timedOut.code, "timeout", "a queued request never hangs past its timeout");
      proxy.refuse(false);
      await worker.holding(2);
      worker.answer();
      assert.deepEqual(await waiting, { n: 7 });
      assert.deepEqual(await queued, { n: 10 });
      assert.equal(waits.pending, 0);
      assert.equal(bounded.pending, 0);
    } finally {
      await waits.close();
      await rejects.close();
      await bounded.close();
      await proxy.close();
      await bridge.stop();
    }
  });

  test("reconnect attempts: full jitter under the cap, and maxAttempts ends the client with disconnected", async () => {
    const bridge = await startBridge({ allow: [`${PREFIX}.*`] });
    const proxy = await startProxy(portOf(bridge.wsUrl));
    // A constant ceiling (initial = max = 100 ms): each delay is uniform in [0, 100 ms].
    const reconnect = { initialDelayMs: 100, maxDelayMs: 100, maxAttempts: 8 };
    const c = await lib.connect(proxy.url(), { WebSocket, reconnect });
    try {
      const p = failure(c.request(queue, { n: 11 }, { timeoutMs: 30_000 }));
      await worker.holding(1);
      proxy.refuse(true);
      const closed = becomes(c, "closed");
      const cutAt = performance.now();
      proxy.cut();
      await closed;
      const at = [cutAt, ...proxy.stats.refused];
      assert.equal(proxy.stats.refused.length, 8, "exactly maxAttempts attempts");
      const gaps = at.slice(1).map((t, i) => t - at[i]);
      // Never more than the ceiling (plus a refused connect's round trip and timer slack)...
      for (const g of gaps) assert.ok(g < 100 + 250, `gap ${g.toFixed(1)} ms above the 100 ms cap: ${gaps}`);
      // ...and jittered: eight uniform draws from [0, 100 ms] do not all fall within 10 ms.
      assert.ok(Math.max(...gaps) - Math.min(...gaps) > 10, `no jitter: ${gaps}`);
      assert.equal((await p).code, "disconnected");
      assert.equal(c.state, "closed");
      assert.equal(c.pending, 0);
    } finally {
      worker.answer();
      await c.close();
      await proxy.close();
      await bridge.stop();
    }
  });

  test("back after the grace period: session_expired, a new session, and no queue left behind", async () => {
    const bridge = await startBridge({ allow: [`${PREFIX}.*`], args: ["--session-grace", "1s"] });
    const proxy = await startProxy(portOf(bridge.wsUrl));
    const c = await lib.connect(proxy.url(), { WebSocket, reconnect: { initialDelayMs: 100, maxDelayMs: 300 } });
    try {
      const old = c.session;
      let progressed;
      const reached = new Promise((r) => (progressed = r));
      const p = c.request(queue, { n: 1 }, { timeoutMs: 30_000, onProgress: () => progressed() });
      await worker.holding(1);
      // A worker has it (so a new session must not send it again: it fails instead).
      worker.progress();
      await reached;
      proxy.refuse(true);
      proxy.cut();
      await becomes(c, "reconnecting");
      const deadline = Date.now() + 15_000;
      while (replyQueues().includes(`ferry.reply.${old}`)) {
        assert.ok(Date.now() < deadline, "the reply queue outlived its grace period");
        await new Promise((r) => setTimeout(r, 250));
      }
      proxy.refuse(false);
      const err = await failure(p);
      assert.equal(err.code, "session_expired");
      assert.notEqual(c.session, old);
      assert.equal(c.state, "open");
      worker.answer(); // a late reply: its queue is gone, the broker drops it
      assert.equal(c.pending, 0);
    } finally {
      await c.close();
      await proxy.close();
      await bridge.stop();
    }
  });

  test("persist: a snapshot of another format is refused whole, and the client starts a new session", async () => {
    const bridge = await startBridge({ allow: [`${PREFIX}.*`] });
    const storageOf = (map) => ({
      getItem: (k) => map.get(k) ?? null,
      setItem: (k, v) => map.set(k, v),
      removeItem: (k) => map.delete(k),
    });
    const stale = [
      // the unversioned arrays an earlier release kept
      JSON.stringify(["s-old", "t-old", [["r1", queue, Date.now() + 60_000, null, { patient: "ann" }]]]),
      // a later release's format
      JSON.stringify({ version: 3, session: "s-new", token: "t", requests: [] }),
      // this format with a field of the wrong type
      JSON.stringify({ version: 2, session: "s", token: 7, requests: [] }),
      "{not json",
    ];
    try {
      for (const text of stale) {
        const map = new Map([["page", text]]);
        const client = await lib.connect(bridge.wsUrl, { WebSocket, persist: { storage: storageOf(map), key: "page" } });
        try {
          assert.deepEqual(client.resumed(), [], text);
          assert.equal(client.pending, 0);
          assert.ok(!["s-old", "s-new", "s"].includes(client.session), "a session of the bridge's own");
          await Promise.resolve(); // the snapshot is written in a microtask
          const saved = JSON.parse(map.get("page"));
          assert.equal(saved.version, 2);
          assert.equal(saved.session, client.session);
        } finally {
          await client.close();
        }
      }
    } finally {
      await bridge.stop();
    }
  });

  test("persist: a new client with the same storage (a reloaded page) reattaches and gets the reply", async () => {
    const bridge = await startBridge({ allow: [`${PREFIX}.*`] });
    const proxy = await startProxy(portOf(bridge.wsUrl));
    const storageOf = (map) => ({
      getItem: (k) => map.get(k) ?? null,
      setItem: (k, v) => map.set(k, v),
      removeItem: (k) => map.delete(k),
    });
    // The "old page" keeps its session in its storage; at the reload the page's storage is
    // what it was at that moment, and the old page runs no more code (here: its client ends
    // when its socket is cut, without a close frame, and writes to a storage nobody reads).
    const before = new Map();
    const old = await lib.connect(proxy.url(), { WebSocket, persist: { storage: storageOf(before), key: "page" }, reconnect: false });
    const lost = old.request(queue, { n: 42 }, { timeoutMs: 20_000, meta: { patient: "ann" } }).catch((e) => e);
    await worker.holding(1);
    await Promise.resolve(); // the snapshot is written in a microtask
    assert.ok(before.get("page"), "the session is in storage");
    assert.equal(JSON.parse(before.get("page")).version, 2, "the snapshot says its format");
    const map = new Map(before); // the storage the reloaded page finds
    proxy.cut();
    assert.equal((await lost).code, "disconnected");
    worker.answer(); // the reply waits in the session's queue
    const persist = { storage: storageOf(map), key: "page" };

    const page = await lib.connect(proxy.url(), { WebSocket, persist });
    try {
      const [r, ...more] = page.resumed();
      assert.equal(more.length, 0);
      assert.equal(r.destination, queue);
      assert.deepEqual(r.meta, { patient: "ann" });
      assert.equal(r.expired, false);
      assert.equal(page.pending, 1);
      assert.deepEqual(await page.reattach(r.id), { n: 42 });
      assert.equal(page.pending, 0);
      assert.deepEqual(page.resumed(), []);
      const unknown = await page.reattach(r.id).catch((e) => e);
      assert.equal(unknown.code, "bad_request", "a request is reattached once");
    } finally {
      await page.close();
    }
    assert.equal(map.get("page"), undefined, "close() ends the session and clears the storage");
    await proxy.close();
    await bridge.stop();
  });
});
