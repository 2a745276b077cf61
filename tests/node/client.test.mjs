// ferry-client from Node 20 with the `ws` package injected, installed from `npm pack`, against
// a real ferry-bridge, RabbitMQ and an ordinary amqplib RPC worker.

import { after, before, describe, test } from "node:test";
import net from "node:net";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { startBridge, uniqueName } from "../support/bridge.mjs";
import { startRepliers, startWorker } from "../support/worker.mjs";
import { importInstalled } from "../support/package.mjs";
import { rejectsWith as rejectsWithError } from "../support/assert.mjs";

const PREFIX = uniqueName("ft.node");
const queue = `${PREFIX}.echo`;
const exchange = `${PREFIX}.presence`;
let bridge;
let worker;
let repliers;
let lib;
let client;

before(async () => {
  lib = await importInstalled();
  worker = await startWorker(queue);
  repliers = await startRepliers(exchange, ["ann", "bob", "busy-cy"]);
  bridge = await startBridge({ allow: [`${PREFIX}.*`], args: ["--allow-exchange", exchange] });
  client = await lib.connect(bridge.wsUrl, { WebSocket });
});

after(async () => {
  await client?.close();
  await worker?.stop();
  await repliers?.stop();
  await bridge?.stop();
});

/** A TCP port nothing listens on (yet). */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Awaits `promise`, expecting a FerryError of `code`; returns the error. */
const rejectsWith = (promise, code) => rejectsWithError(lib, promise, code);

describe("happy path", () => {
  test("JSON in, JSON out", async () => {
    const body = { patientId: 42, tags: ["a", "b"], nested: { ok: true } };
    assert.deepEqual(await client.request(queue, body), body);
    assert.deepEqual(await client.request(queue, [1, 2, 3]), [1, 2, 3]);
  });

  test("text in, text out", async () => {
    assert.equal(await client.request(queue, "héllo wörld ✓"), "héllo wörld ✓");
  });

  test("bytes in, bytes out (Uint8Array and ArrayBuffer)", async () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const r = await client.request(queue, bytes);
    assert.ok(r instanceof Uint8Array);
    assert.deepEqual([...r], [...bytes]);
    const r2 = await client.request(queue, bytes.buffer);
    assert.deepEqual([...r2], [...bytes]);
  });

  test("contentType: replies decode by their content type", async () => {
    assert.deepEqual(await client.request(queue, '{"a":1}', { contentType: "application/json" }), { a: 1 });
    assert.equal(await client.request(queue, "a,b\n1,2", { contentType: "text/csv" }), "a,b\n1,2");
    const err = await rejectsWith(client.request(queue, "not json", { contentType: "application/json" }), "remote");
    assert.equal(err.remoteCode, "invalid_json");
    assert.equal(err.details, "not json");
    await rejectsWith(client.request(queue, { a: 1 }, { contentType: "text/plain" }), "bad_request");
  });

  test("progress messages reach onProgress in order before the reply", async () => {
    const seen = [];
    const reply = await client.request(queue, { job: 1 }, {
      headers: { "x-mode": "progress", "x-progress": "3" },
      onProgress: (p) => seen.push(p.step),
    });
    assert.deepEqual(reply, { job: 1 });
    assert.deepEqual(seen, [1, 2, 3]);
  });

  test("idleTimeoutMs: a job that keeps reporting outlives timeoutMs, a silent one does not", async () => {
    const seen = [];
    const t0 = Date.now();
    const reply = await client.request(queue, { long: true }, {
      timeoutMs: 400,
      idleTimeoutMs: 400,
      headers: { "x-mode": "progress", "x-progress": "6", "x-interval-ms": "150" },
      onProgress: (p) => seen.push(p.step),
    });
    assert.deepEqual(reply, { long: true });
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
    assert.ok(Date.now() - t0 >= 900, "the job ran past its timeoutMs");
    await rejectsWith(client.request(queue, {}, { timeoutMs: 300, idleTimeoutMs: 300, headers: { "x-mode": "silent" } }), "timeout");
    await rejectsWith(client.request(queue, {}, { idleTimeoutMs: -1 }), "bad_request");
  });

  test("stream: progress parts in order, then the reply; errors throw; break cancels", async () => {
    const parts = [];
    for await (const part of client.stream(queue, { s: 1 }, { headers: { "x-mode": "progress", "x-progress": "3" } })) {
      parts.push(part);
    }
    assert.deepEqual(parts, [
      { kind: "progress", value: { step: 1, of: 3 } },
      { kind: "progress", value: { step: 2, of: 3 } },
      { kind: "progress", value: { step: 3, of: 3 } },
      { kind: "reply", value: { s: 1 } },
    ]);
    const failing = async () => {
      for await (const part of client.stream(queue, {}, { headers: { "x-mode": "error", "x-error-code": "nope" } })) {
        assert.fail(`unexpected part ${JSON.stringify(part)}`);
      }
    };
    const err = await rejectsWith(failing(), "remote");
    assert.equal(err.remoteCode, "nope");
    const slow = { "x-mode": "progress", "x-progress": "50", "x-interval-ms": "100" };
    for await (const part of client.stream(queue, {}, { headers: slow })) {
      assert.equal(part.kind, "progress");
      assert.equal(client.pending, 1);
      break;
    }
    assert.equal(client.pending, 0, "leaving the loop cancelled the request");
  });

  test("gather: every reply in the window, tagged with who replied; maxReplies stops early", async () => {
    const t0 = Date.now();
    const parts = await client.gather(exchange, { who: "is free" }, { windowMs: 400 });
    assert.ok(Date.now() - t0 >= 400, "collected for the whole window");
    const byName = Object.fromEntries(parts.map((p) => [p.replier, p]));
    assert.deepEqual(Object.keys(byName).sort(), ["ann", "bob", "busy-cy"]);
    assert.deepEqual(byName.ann.value, { name: "ann" });
    assert.ok(byName["busy-cy"].error instanceof lib.FerryError);
    assert.equal(byName["busy-cy"].error.code, "remote");
    assert.equal(byName["busy-cy"].error.remoteCode, "busy");
    const t1 = Date.now();
    const two = await client.gather(exchange, {}, { windowMs: 20_000, maxReplies: 2 });
    assert.equal(two.length, 2);
    assert.ok(Date.now() - t1 < 5_000, "maxReplies ended it before the window");
    await rejectsWith(client.gather(`${PREFIX}.nope`, {}), "forbidden");
    await rejectsWith(client.gather(exchange, {}, { maxReplies: 0 }), "bad_request");
    assert.equal(client.pending, 0);
  });

  test("concurrent requests resolve to their own replies", async () => {
    const n = 200;
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => client.request(queue, { i })));
    replies.forEach((r, i) => assert.equal(r.i, i));
    assert.equal(client.pending, 0);
  });
});

describe("failures", () => {
  test("timeout: a worker that never replies", async () => {
    const t0 = Date.now();
    const err = await rejectsWith(client.request(queue, {}, { headers: { "x-mode": "silent" }, timeoutMs: 300 }), "timeout");
    assert.match(err.correlationId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(Date.now() - t0 < 5000);
  });

  test("abort: rejects with cancelled, already-aborted signals too", async () => {
    const ac = new AbortController();
    const p = client.request(queue, {}, { headers: { "x-mode": "silent" }, signal: ac.signal });
    assert.equal(client.pending, 1);
    ac.abort();
    await rejectsWith(p, "cancelled");
    assert.equal(client.pending, 0);
    await rejectsWith(client.request(queue, {}, { signal: AbortSignal.abort() }), "cancelled");
  });

  test("no_route: no such queue", async () => {
    await rejectsWith(client.request(`${PREFIX}.nobody-declared-this`, {}), "no_route");
  });

  test("forbidden: a destination off the allowlist, or a reserved header", async () => {
    await rejectsWith(client.request("not.on.the.list", {}), "forbidden");
    await rejectsWith(client.request(queue, {}, { headers: { "x-ferry-deadline": "1" } }), "forbidden");
  });

  test("bad_request: malformed destination, header or timeout", async () => {
    await rejectsWith(client.request("has space", {}), "bad_request");
    await rejectsWith(client.request(queue, {}, { headers: { "X-Upper": "a" } }), "bad_request");
    await rejectsWith(client.request(queue, {}, { timeoutMs: -1 }), "bad_request");
    // A wrong type is named like a wrong value (the wasm reads the options as typed fields).
    for (const options of [{ timeoutMs: "5000" }, { timeoutMs: {} }, { idleTimeoutMs: true }]) {
      const err = await rejectsWith(client.request(queue, {}, options), "bad_request");
      assert.match(err.message, new RegExp(`^${Object.keys(options)[0]} must be a positive number$`));
    }
    const cyclic = {};
    cyclic.self = cyclic;
    await rejectsWith(client.request(queue, cyclic), "bad_request");
  });

  test("too_large: a body over the bridge's max_frame_bytes fails before sending", async () => {
    const err = await rejectsWith(client.request(queue, new Uint8Array(2 * 1024 * 1024)), "too_large");
    assert.match(err.message, /1048576/);
    assert.equal(client.pending, 0);
  });

  test("overloaded: more pending than the bridge's max_inflight", async () => {
    const b = await startBridge({ allow: [`${PREFIX}.*`], args: ["--max-inflight", "3"] });
    const c = await lib.connect(b.wsUrl, { WebSocket });
    try {
      const silent = Array.from({ length: 3 }, () =>
        rejectsWith(c.request(queue, {}, { headers: { "x-mode": "silent" }, timeoutMs: 60_000 }), "closed"));
      await rejectsWith(c.request(queue, {}), "overloaded");
      assert.equal(c.pending, 3);
      await c.close();
      await Promise.all(silent);
      assert.equal(c.pending, 0);
    } finally {
      await b.stop();
    }
  });

  test("remote: the worker's error reply, with its code, message and details", async () => {
    const err = await rejectsWith(
      client.request(queue, { q: 1 }, { headers: { "x-mode": "error", "x-error-code": "unknown_patient", "x-error-message": "no patient 7" } }),
      "remote",
    );
    assert.equal(err.remoteCode, "unknown_patient");
    assert.equal(err.message, "no patient 7");
    assert.equal(err.details.reason, "the worker refused");
    assert.equal(typeof err.correlationId, "string");
  });

  test("pending is back to 0 after a mix of outcomes", async () => {
    const ac = new AbortController();
    const all = [
      client.request(queue, { ok: 1 }),
      client.request(queue, {}, { headers: { "x-mode": "error" } }),
      client.request(queue, {}, { headers: { "x-mode": "silent" }, timeoutMs: 200 }),
      client.request(queue, {}, { headers: { "x-mode": "silent" }, signal: ac.signal }),
      client.request("not.allowed", {}),
      client.request(`${PREFIX}.missing`, {}),
    ];
    ac.abort();
    const results = await Promise.allSettled(all);
    assert.deepEqual(results.map((r) => r.status === "fulfilled" ? "ok" : r.reason.code),
      ["ok", "remote", "timeout", "cancelled", "forbidden", "no_route"]);
    assert.equal(client.pending, 0);
  });
});

describe("connection", () => {
  test("FerryError is a real Error subclass", () => {
    const e = new lib.FerryError("timeout", "x", { correlationId: "c1" });
    assert.ok(e instanceof Error);
    assert.ok(e instanceof lib.FerryError);
    assert.equal(e.name, "FerryError");
    assert.equal(e.code, "timeout");
    assert.equal(e.correlationId, "c1");
    assert.ok(e.stack.includes("FerryError"));
  });

  test("with ws, the frames sent in one tick go out together (the socket corked until the microtask)", async () => {
    const sockets = [];
    class Recording extends WebSocket {
      constructor(...args) {
        super(...args);
        sockets.push(this);
      }
    }
    const c = await lib.connect(bridge.wsUrl, { WebSocket: Recording });
    try {
      const raw = sockets.at(-1)._socket;
      assert.equal(raw.writableCorked, 0);
      const calls = Array.from({ length: 20 }, (_, i) => c.request(queue, { i }));
      assert.equal(raw.writableCorked, 1, "the tick's frames wait for one write");
      await Promise.resolve();
      assert.equal(raw.writableCorked, 0, "uncorked once the tick's microtasks ran");
      const replies = await Promise.all(calls);
      assert.deepEqual(
        replies.map((r) => r.i),
        Array.from({ length: 20 }, (_, i) => i),
      );
    } finally {
      await c.close();
    }
  });

  test("close rejects pending requests with closed and later requests too", async () => {
    const c = await lib.connect(bridge.wsUrl, { WebSocket });
    assert.ok(c.session);
    const p = rejectsWith(c.request(queue, {}, { headers: { "x-mode": "silent" } }), "closed");
    assert.equal(c.pending, 1);
    await c.close();
    await p;
    assert.equal(c.pending, 0);
    assert.equal((await c.closed).code, "closed");
    await rejectsWith(c.request(queue, {}), "closed");
    await c.close(); // idempotent
  });

  test("connect to nothing fails fast with disconnected when asked to (failFast, or reconnect: false)", async () => {
    const b = await startBridge({ allow: [`${PREFIX}.*`] });
    const url = b.wsUrl;
    await b.stop();
    await rejectsWith(lib.connect(url, { WebSocket, failFast: true }), "disconnected");
    await rejectsWith(lib.connect(url, { WebSocket, reconnect: false }), "disconnected");
  });

  test("connect retries the first connection until the bridge is up, then resolves", async () => {
    const port = await freePort();
    const states = [];
    let retried;
    const retrying = new Promise((resolve) => (retried = resolve));
    const connecting = lib.connect(`ws://127.0.0.1:${port}/ws`, {
      WebSocket,
      reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
      onStateChange(s) {
        states.push(s);
        if (s === "reconnecting") retried();
      },
    });
    await retrying; // the first attempt failed: nothing listens yet
    const b = await startBridge({ allow: [`${PREFIX}.*`], listen: `127.0.0.1:${port}` });
    try {
      const c = await connecting;
      assert.equal(c.state, "open");
      assert.equal((await c.request(queue, { late: true })).late, true);
      assert.ok(!states.includes("closed"), `a failed attempt is not the end: ${states}`);
      await c.close();
    } finally {
      await b.stop();
    }
  });

  test("connect gives up after reconnect.maxAttempts, and a signal stops it with cancelled", async () => {
    const port = await freePort();
    const url = `ws://127.0.0.1:${port}/ws`;
    const states = [];
    const fast = { initialDelayMs: 5, maxDelayMs: 20, maxAttempts: 3 };
    await rejectsWith(lib.connect(url, { WebSocket, reconnect: fast, onStateChange: (s) => states.push(s) }), "disconnected");
    assert.deepEqual(states.filter((s) => s === "reconnecting").length, 2, `three attempts: ${states}`);
    assert.equal(states.at(-1), "closed");
    const ac = new AbortController();
    const forever = lib.connect(url, { WebSocket, reconnect: { initialDelayMs: 20 }, signal: ac.signal, onStateChange: (s) => s === "reconnecting" && ac.abort() });
    await rejectsWith(forever, "cancelled");
    await rejectsWith(lib.connect(url, { WebSocket, signal: AbortSignal.abort() }), "cancelled");
  });

  test("bad reconnect options are refused with bad_request, naming the option", async () => {
    const bad = [
      [{ whileReconnecting: "maybe" }, /whileReconnecting/],
      [{ maxQueued: -1 }, /maxQueued/],
      [{ reconnect: { initialDelayMs: "soon" } }, /reconnect\.initialDelayMs/],
      [{ reconnect: 5 }, /^reconnect must be true, false or an object$/],
      [{ timeoutMs: "soon" }, /^timeoutMs must be a positive number$/],
      [{ connectTimeoutMs: 0 }, /^connectTimeoutMs must be a positive number$/],
      [{ persist: { storage: {} } }, /storage/],
    ];
    for (const [options, message] of bad) {
      const err = await rejectsWith(lib.connect(bridge.wsUrl, { WebSocket, ...options }), "bad_request");
      assert.match(err.message, message);
    }
  });

  test("connect in a runtime without a WebSocket (Node 20) explains itself", async () => {
    const global = Object.getOwnPropertyDescriptor(globalThis, "WebSocket");
    delete globalThis.WebSocket; // Node 22 has one: take it away for this test
    try {
      const err = await rejectsWith(lib.connect(bridge.wsUrl), "bad_request");
      assert.match(err.message, /WebSocket/);
    } finally {
      if (global) Object.defineProperty(globalThis, "WebSocket", global);
    }
  });

  test("reconnect: false, the bridge killed mid-request: pending requests reject with disconnected", async () => {
    const b = await startBridge({ allow: [`${PREFIX}.*`] });
    const c = await lib.connect(b.wsUrl, { WebSocket, reconnect: false });
    const ps = Array.from({ length: 20 }, () =>
      rejectsWith(c.request(queue, {}, { headers: { "x-mode": "silent" }, timeoutMs: 60_000 }), "disconnected"));
    assert.equal(c.pending, 20);
    await b.kill();
    await Promise.all(ps);
    assert.equal(c.pending, 0);
    assert.equal((await c.closed).code, "disconnected");
    await rejectsWith(c.request(queue, {}), "disconnected");
  });
});

describe("trace context (W3C)", () => {
  const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
  const mine = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const trace = { "x-mode": "trace" };

  test("traceparent option: the worker gets the same trace under the bridge's span; errors and stream parts carry the trace id", async () => {
    const got = await client.request(queue, {}, { headers: trace, traceparent: mine, tracestate: "app=1" });
    const [, traceId, parent] = TRACEPARENT.exec(got.traceparent) ?? [];
    assert.equal(traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert.notEqual(parent, "00f067aa0ba902b7", "the worker's parent is the bridge's span");
    assert.equal(got.tracestate, "app=1");
    const err = await rejectsWith(
      client.request(queue, {}, { headers: { "x-mode": "error" }, traceparent: mine }),
      "remote",
    );
    assert.equal(err.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
    const parts = [];
    for await (const part of client.stream(queue, {}, { headers: { "x-mode": "progress", "x-progress": "2" }, traceparent: mine })) {
      parts.push(part);
    }
    assert.equal(parts.length, 3);
    for (const p of parts) assert.equal(p.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
  });

  test("a traceparent header counts too; a malformed one is refused naming the header", async () => {
    const got = await client.request(queue, {}, { headers: { ...trace, traceparent: mine } });
    assert.equal(TRACEPARENT.exec(got.traceparent)?.[1], "4bf92f3577b34da6a3ce929d0e0e4736");
    const err = await rejectsWith(client.request(queue, {}, { traceparent: "00-abc-def-01" }), "bad_request");
    assert.match(err.message, /traceparent/);
    assert.equal(client.pending, 0);
  });

  test("connect({ tracing: true }) starts a fresh trace per request; without it, none", async () => {
    const plain = await client.request(queue, {}, { headers: trace });
    assert.equal(plain.traceparent, null);
    assert.equal((await rejectsWith(client.request(queue, {}, { headers: { "x-mode": "error" } }), "remote")).traceId, undefined);
    const traced = await lib.connect(bridge.wsUrl, { WebSocket, tracing: true });
    try {
      const a = TRACEPARENT.exec((await traced.request(queue, {}, { headers: trace })).traceparent);
      const b = TRACEPARENT.exec((await traced.request(queue, {}, { headers: trace })).traceparent);
      assert.ok(a && b, "both traced");
      assert.notEqual(a[1], b[1], "a trace per request");
      const err = await rejectsWith(traced.request(queue, {}, { headers: { "x-mode": "error" } }), "remote");
      assert.match(err.traceId, /^[0-9a-f]{32}$/);
      const own = await traced.request(queue, {}, { headers: trace, traceparent: mine });
      assert.equal(TRACEPARENT.exec(own.traceparent)?.[1], "4bf92f3577b34da6a3ce929d0e0e4736", "the app's own wins");
    } finally {
      await traced.close();
    }
  });
});
