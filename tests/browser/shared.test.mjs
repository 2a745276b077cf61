// `connect(url, { shared: true })` in Chromium: three tabs of one browser share one socket (a
// SharedWorker holds it), every reply reaches the tab that asked, a tab that closes cancels
// only its own requests, and the last tab out closes the socket. The bridge's own metrics
// count the sockets and the requests in flight.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bridgeBinary, startBridge, uniqueName } from "../support/bridge.mjs";
import { startWorker } from "../support/worker.mjs";
import { installedPackageDir } from "../support/package.mjs";
import { launchBrowser, writeTestPage } from "../support/browser.mjs";

const PREFIX = uniqueName("ft.shared");
const queue = `${PREFIX}.echo`;
const PAGE = "ferry-shared-test.html";
let bridge;
let worker;
let browser;
let tabs;

const SCRIPT = `
  import { connect, FerryClient } from "ferry-client";
  window.ferry = { connect, FerryClient };
  window.outcome = (p) => p.then((value) => ({ ok: true, value }), (e) => ({ ok: false, code: e.code, message: e.message }));`;

/** A gauge or counter of the bridge's /metrics (summed over its labels). */
async function metric(name) {
  const text = await (await fetch(`${bridge.adminUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.split(" ").pop());
  }
  return sum;
}

/** Polls a metric until it equals `want` (the bridge has no event for it); fails after 10 s. */
async function metricBecomes(name, want) {
  const deadline = Date.now() + 10_000;
  let got;
  while ((got = await metric(name)) !== want) {
    if (Date.now() > deadline) assert.fail(`${name} is ${got}, expected ${want}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function openTab(page) {
  await page.goto(`${bridge.url}/${PAGE}`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}

const delayed = (ms) => ({ headers: { "x-mode": "delay", "x-delay-ms": String(ms) }, timeoutMs: 20_000 });

before(async () => {
  const dir = installedPackageDir();
  writeTestPage(dir, PAGE, "ferry-client shared test page", SCRIPT);
  worker = await startWorker(queue);
  bridge = await startBridge({ allow: [`${PREFIX}.*`], args: ["--static-dir", dir] });
  browser = await launchBrowser();
  tabs = [await openTab(browser.page), await openTab(await browser.context.newPage()), await openTab(await browser.context.newPage())];
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await bridge?.stop();
});

describe("connect(url, { shared: true }), three tabs in Chromium", () => {
  test("the three tabs share one socket", async () => {
    const opened = await metric("ferry_sessions_total");
    const sessions = [];
    for (const tab of tabs) {
      sessions.push(
        await tab.evaluate(async (url) => {
          window.client = await window.ferry.connect(url, { shared: true });
          return [window.client.state, window.client.session, window.client instanceof window.ferry.FerryClient];
        }, bridge.wsUrl),
      );
    }
    assert.equal(await metric("ferry_sessions_total"), opened + 1);
    assert.equal(await metric("ferry_sessions"), 1);
    assert.deepEqual(new Set(sessions.map((s) => s.join())).size, 1, JSON.stringify(sessions));
    assert.deepEqual(sessions[0].slice(0, 1), ["open"]);
  });

  test("every reply reaches the tab that asked, progress included", async () => {
    const results = await Promise.all(
      tabs.map((tab, i) =>
        tab.evaluate(
          async ([q, i]) => {
            const seen = [];
            const replies = await Promise.all(
              Array.from({ length: 50 }, (_, n) => window.client.request(q, { tab: i, n }, { timeoutMs: 20_000 })),
            );
            const progressed = await window.client.request(q, `tab ${i}`, {
              headers: { "x-mode": "progress", "x-progress": "3" },
              onProgress: (p) => seen.push(p),
            });
            const parts = [];
            for await (const part of window.client.stream(q, { streamed: i }, { headers: { "x-mode": "progress", "x-progress": "2" } })) {
              parts.push(part.kind);
            }
            return { replies, progressed, seen: seen.length, parts, pending: window.client.pending };
          },
          [queue, i],
        ),
      ),
    );
    results.forEach((r, i) => {
      assert.deepEqual(r.replies, Array.from({ length: 50 }, (_, n) => ({ tab: i, n })));
      assert.equal(r.progressed, `tab ${i}`);
      assert.equal(r.seen, 3);
      assert.deepEqual(r.parts, ["progress", "progress", "reply"]);
      assert.equal(r.pending, 0);
    });
  });

  test("errors and aborts stay in their tab", async () => {
    const [missing, aborted, other] = await Promise.all([
      tabs[0].evaluate(() => window.outcome(window.client.request("not.allowed", {}))),
      tabs[1].evaluate(
        ([q, opts]) => {
          const ac = new AbortController();
          const p = window.outcome(window.client.request(q, "slow", { ...opts, signal: ac.signal }));
          ac.abort();
          return p;
        },
        [queue, delayed(2_000)],
      ),
      tabs[2].evaluate((q) => window.outcome(window.client.request(q, "fine")), queue),
    ]);
    assert.equal(missing.code, "forbidden");
    assert.equal(aborted.code, "cancelled");
    assert.deepEqual(other, { ok: true, value: "fine" });
  });

  test("a tab that closes cancels only its own requests; the last tab out closes the socket", async () => {
    for (const [i, tab] of tabs.entries()) {
      await tab.evaluate(
        ([q, i, opts]) => {
          window.late = window.outcome(window.client.request(q, { late: i }, opts));
        },
        [queue, i, delayed(1_500)],
      );
    }
    await metricBecomes("ferry_pending_requests", 3);
    await tabs[1].close();
    await metricBecomes("ferry_pending_requests", 2);
    assert.deepEqual(await tabs[0].evaluate(() => window.late), { ok: true, value: { late: 0 } });
    assert.deepEqual(await tabs[2].evaluate(() => window.late), { ok: true, value: { late: 2 } });
    assert.equal(await metric("ferry_sessions"), 1);
    await tabs[0].close();
    assert.equal(await metric("ferry_sessions"), 1);
    await tabs[2].evaluate(() => window.client.close());
    await metricBecomes("ferry_sessions", 0);
  });

  test("without SharedWorker, shared: true falls back to a socket per tab", async () => {
    const page = await openTab(await browser.context.newPage());
    const opened = await metric("ferry_sessions_total");
    const r = await page.evaluate(
      async ([url, q]) => {
        delete window.SharedWorker;
        const client = await window.ferry.connect(url, { shared: true });
        const reply = await client.request(q, "own socket");
        const own = client instanceof window.ferry.FerryClient;
        await client.close();
        return [reply, own];
      },
      [bridge.wsUrl, queue],
    );
    assert.deepEqual(r, ["own socket", true]);
    assert.equal(await metric("ferry_sessions_total"), opened + 1);
  });

  test("a token function stays in its tab: the shared worker asks the tab for it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-shared-auth-"));
    const secret = join(dir, "secret");
    writeFileSync(secret, "a shared-worker test secret, at least 32 bytes\n");
    const mint = (sub) => execFileSync(bridgeBinary(), ["token", "--secret-file", secret, "--sub", sub], { encoding: "utf8" }).trim();
    const secured = await startBridge({
      allow: [`${PREFIX}.*`],
      args: ["--jwt-secret-file", secret, "--allowed-origin", bridge.url],
    });
    const page = await openTab(await browser.context.newPage());
    try {
      const r = await page.evaluate(
        async ([url, q, token]) => {
          let asked = 0;
          const client = await window.ferry.connect(url, { shared: true, token: () => (asked++, token) });
          const who = await client.request(q, {}, { headers: { "x-mode": "whoami" } });
          await client.close();
          return [who.user, asked > 0];
        },
        [secured.wsUrl, queue, mint("alice")],
      );
      assert.deepEqual(r, ["alice", true]);
      const refused = await page.evaluate(
        ([url]) => window.outcome(window.ferry.connect(url, { shared: true, token: () => "not a token", failFast: true })),
        [secured.wsUrl],
      );
      assert.equal(refused.code, "unauthorized");
    } finally {
      await page.close();
      await secured.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("no page errors", () => {
    assert.deepEqual(browser.errors, []);
  });
});
