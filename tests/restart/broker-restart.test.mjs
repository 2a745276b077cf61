// RabbitMQ restarted, seen from the npm package (installed from npm pack) as an app meets it:
// a request in flight rejects with a FerryError `broker_unavailable` once the broker is back,
// not at its two-minute timeout; a request during the outage rejects at once; the socket to
// the bridge stays open throughout; service resumes on the same client. It stops the shared
// broker, so scripts/test.sh runs it alone, last; a guard starts the broker again.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import amqp from "amqplib";
import WebSocket from "ws";
import { AMQP_URL, startBridge, uniqueName } from "../support/bridge.mjs";
import { importInstalled } from "../support/package.mjs";
import { deleteQueues } from "../support/worker.mjs";

const ctl = (...args) => execFileSync("rabbitmqctl", args, { stdio: "ignore" });
const reachable = (() => {
  try {
    ctl("status");
    return true;
  } catch {
    return false;
  }
})();

/** Starts the broker again if this process stopped it and ends before the test does. */
let stopped = false;
const startAgain = () => {
  if (!stopped) return;
  stopped = false;
  ctl("start_app");
  ctl("await_startup");
};
process.on("exit", startAgain);

/** The error `promise` rejects with (fails the test if it resolves). */
const failure = (promise) =>
  promise.then(
    (v) => assert.fail(`resolved with ${JSON.stringify(v)}`),
    (e) => e,
  );

/** Polls the bridge's /readyz (it has no event for this) until it answers `status`. */
async function readyz(bridge, status) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const got = await fetch(`${bridge.url}/readyz`).then((r) => r.status, () => 0);
    if (got === status) return;
    assert.ok(Date.now() < deadline, `/readyz never answered ${status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An amqplib worker on `queue`: `silent` keeps requests and never answers, else it echoes. */
async function worker(queue, { silent }) {
  const conn = await amqp.connect(AMQP_URL);
  conn.on("error", () => {}); // the broker going away is this test's point
  const ch = await conn.createChannel();
  ch.on("error", () => {});
  await ch.assertQueue(queue, { durable: true, arguments: { "x-expires": 120_000 } });
  let got;
  const first = new Promise((r) => (got = r));
  await ch.consume(
    queue,
    (msg) => {
      if (!msg) return;
      got(msg);
      if (!silent) {
        ch.sendToQueue(msg.properties.replyTo, msg.content, {
          correlationId: msg.properties.correlationId,
          contentType: msg.properties.contentType,
        });
      }
    },
    { noAck: true },
  );
  return { first, close: () => conn.close().catch(() => {}) };
}

test("a request in flight when RabbitMQ restarts rejects with broker_unavailable once it is back", async () => {
  // A missing prerequisite fails the test (it never passes by skipping).
  assert.ok(reachable, "rabbitmqctl cannot reach the RabbitMQ node (scripts/setup.sh starts it)");
  const lib = await importInstalled();
  const prefix = uniqueName("ft.restart");
  const [held, after] = [`${prefix}.held`, `${prefix}.after`];
  const bridge = await startBridge({ allow: [`${prefix}.*`] });
  const silent = await worker(held, { silent: true });
  const states = [];
  const client = await lib.connect(bridge.wsUrl, { WebSocket, onStateChange: (s) => states.push(s) });
  let echo;
  try {
    const inFlight = failure(client.request(held, { n: 1 }, { timeoutMs: 120_000 }));
    await silent.first;
    stopped = true;
    ctl("stop_app");
    await readyz(bridge, 503);
    const t0 = performance.now();
    const during = await failure(client.request(held, { n: 2 }, { timeoutMs: 120_000 }));
    assert.ok(during instanceof lib.FerryError);
    assert.equal(during.code, "broker_unavailable");
    assert.ok(performance.now() - t0 < 2_000, "rejected at once during the outage");
    startAgain();
    const back = performance.now();
    const lost = await inFlight;
    assert.ok(lost instanceof lib.FerryError);
    assert.equal(lost.code, "broker_unavailable");
    const waited = performance.now() - back;
    assert.ok(waited < 30_000, `answered ${waited} ms after the restart, not at the 120 s timeout`);
    console.log(`RESULT npm client: in-flight request rejected broker_unavailable ${waited.toFixed(0)} ms after start_app returned`);
    await readyz(bridge, 200);
    echo = await worker(after, { silent: false });
    assert.deepEqual(await client.request(after, { n: 3 }, { timeoutMs: 10_000 }), { n: 3 });
    assert.equal(client.pending, 0);
    assert.equal(client.state, "open");
    assert.ok(!states.includes("reconnecting"), `the socket to the bridge never dropped: ${states}`);
  } finally {
    startAgain();
    await client.close();
    await bridge.stop();
    await silent.close();
    await echo?.close();
    await deleteQueues([held, after]);
  }
});
