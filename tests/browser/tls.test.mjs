// TLS served by the bridge itself (--tls-cert/--tls-key): the npm package over wss:// from
// Node (trusting the test CA) and from headless Chromium (a page loaded over https:// from
// the bridge), against a real RabbitMQ and worker.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { chromium } from "playwright-core";
import { startBridge, uniqueName } from "../support/bridge.mjs";
import { startWorker } from "../support/worker.mjs";
import { importInstalled, installedPackageDir } from "../support/package.mjs";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../support/browser.mjs";
import { makeCertificate } from "../support/tls.mjs";

const PREFIX = uniqueName("ft.tls");
const queue = `${PREFIX}.echo`;
const PAGE = "ferry-tls-test.html";
let bridge;
let worker;
let tls;

/** GET over https trusting the test CA; resolves to the status code. */
function get(url) {
  return new Promise((resolve, reject) => {
    https.get(url, { ca: tls.ca }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on("error", reject);
  });
}

before(async () => {
  tls = makeCertificate();
  const dir = installedPackageDir();
  writeFileSync(join(dir, PAGE), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "ferry-client": "./node_modules/ferry-client/dist/index.js" } }</script>
<script type="module">import { connect } from "ferry-client"; window.connect = connect; window.ready = true;</script>`);
  worker = await startWorker(queue);
  bridge = await startBridge({
    allow: [`${PREFIX}.*`],
    args: ["--tls-cert", tls.cert, "--tls-key", tls.key, "--static-dir", dir],
    waitReady: false,
  });
  assert.match(bridge.url, /^https:\/\//);
  assert.match(bridge.wsUrl, /^wss:\/\//);
  for (let i = 0; ; i++) {
    try {
      if ((await get(`${bridge.url}/readyz`)) === 200) break;
    } catch {}
    if (i > 200) throw new Error("the TLS bridge never became ready");
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(async () => {
  await worker?.stop();
  await bridge?.stop();
});

test("Node: the npm package over wss:// trusting the bridge's CA", async () => {
  const lib = await importInstalled();
  const ca = tls.ca;
  class TrustingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { ca });
    }
  }
  const client = await lib.connect(bridge.wsUrl.replace("127.0.0.1", "localhost"), { WebSocket: TrustingWebSocket });
  try {
    assert.deepEqual(await client.request(queue, { over: "tls" }), { over: "tls" });
  } finally {
    await client.close();
  }
  // A client that does not trust the certificate cannot connect.
  await assert.rejects(lib.connect(bridge.wsUrl, { WebSocket, reconnect: false }), (e) => e.code === "disconnected");
});

test("Chromium: a page over https:// talks to the bridge over wss://", async () => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS, "--ignore-certificate-errors"],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`${bridge.url}/${PAGE}`);
    await page.waitForFunction(() => window.ready === true);
    const reply = await page.evaluate(async ([url, q]) => {
      const client = await window.connect(url);
      const r = await client.request(q, { from: location.protocol });
      await client.close();
      return r;
    }, [bridge.wsUrl, queue]);
    assert.deepEqual(reply, { from: "https:" });
  } finally {
    await browser.close();
  }
});
