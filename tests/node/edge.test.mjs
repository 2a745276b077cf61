// The bridge's edge as the npm package meets it from Node: a foreign Origin is refused and
// `connect` says so (the status Node's `ws` reports), no Origin is never refused for lacking
// one, and metrics live on the admin listener only.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { startBridge, uniqueName } from "../support/bridge.mjs";
import { startWorker } from "../support/worker.mjs";
import { importInstalled } from "../support/package.mjs";

const PREFIX = uniqueName("ft.edge");
const queue = `${PREFIX}.echo`;
let bridge;
let worker;
let lib;

before(async () => {
  lib = await importInstalled();
  worker = await startWorker(queue);
  bridge = await startBridge({ allow: [`${PREFIX}.*`], args: ["--allowed-origin", "https://app.example"] });
});

after(async () => {
  await worker?.stop();
  await bridge?.stop();
});

/** The `ws` constructor sending `origin`, as a browser on that origin would. */
function from(origin) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { origin });
    }
  };
}

test("a foreign Origin is refused, and connect says why", async () => {
  const err = await lib.connect(bridge.wsUrl, { WebSocket: from("https://evil.example"), reconnect: false }).then(
    () => assert.fail("connected from a foreign origin"),
    (e) => e,
  );
  assert.ok(err instanceof lib.FerryError);
  assert.equal(err.code, "disconnected");
  assert.match(err.message, /403/, err.message);
  const ok = await lib.connect(bridge.wsUrl, { WebSocket: from("https://app.example") });
  assert.deepEqual(await ok.request(queue, { from: "the allowed origin" }), { from: "the allowed origin" });
  await ok.close();
});

test("no Origin (not a browser) is never refused for it", async () => {
  const client = await lib.connect(bridge.wsUrl, { WebSocket });
  assert.equal(await client.request(queue, "node"), "node");
  await client.close();
});

test("metrics are on the admin listener, not on the public port", async () => {
  assert.equal((await fetch(`${bridge.url}/metrics`)).status, 404);
  const admin = await fetch(`${bridge.adminUrl}/metrics`);
  assert.equal(admin.status, 200);
  assert.match(await admin.text(), /ferry_sessions \d+/);
  assert.equal((await fetch(`${bridge.url}/readyz`)).status, 200, "health stays on the public port");
});
