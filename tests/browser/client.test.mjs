// ferry-client in headless Chromium: a real page (served by the bridge, importing the package
// installed from `npm pack` through an import map) against a real bridge, RabbitMQ and worker.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startBridge, uniqueName } from "../support/bridge.mjs";
import { startWorker } from "../support/worker.mjs";
import { installedPackageDir } from "../support/package.mjs";
import { launchBrowser, writeTestPage } from "../support/browser.mjs";

const PREFIX = uniqueName("ft.browser");
const queue = `${PREFIX}.echo`;
const PAGE = "ferry-client-test.html";
let bridge;
let worker;
let browser;
let page;

const SCRIPT = `
  import { connect, FerryError } from "ferry-client";
  window.ferry = { connect, FerryError };
  // Settles every promise into a plain, serialisable outcome.
  window.outcome = (p) => p.then(
    (value) => ({ ok: true, value: value instanceof Uint8Array ? { bytes: [...value] } : value }),
    (e) => ({ ok: false, code: e.code, message: e.message, isFerry: e instanceof FerryError, isError: e instanceof Error,
              correlationId: e.correlationId, remoteCode: e.remoteCode, details: e.details }));`;

before(async () => {
  const dir = installedPackageDir();
  writeTestPage(dir, PAGE, "ferry-client test page", SCRIPT);
  worker = await startWorker(queue);
  bridge = await startBridge({ allow: [`${PREFIX}.*`], args: ["--static-dir", dir] });
  browser = await launchBrowser();
  page = browser.page;
  await page.goto(`${bridge.url}/${PAGE}`);
  await page.waitForFunction(() => window.ready === true);
  await page.evaluate(async (url) => {
    window.client = await window.ferry.connect(url);
  }, bridge.wsUrl);
});

after(async () => {
  await page?.evaluate(() => window.client?.close()).catch(() => {});
  await browser?.close();
  await worker?.stop();
  await bridge?.stop();
});

/** Runs `client.request(dest, body, options)` in the page; returns its outcome. */
function request(dest, body, options) {
  return page.evaluate(
    ([d, b, o]) => window.outcome(window.client.request(d, b, o)),
    [dest, body, options],
  );
}

function assertFailed(out, code) {
  assert.equal(out.ok, false, `expected ${code}, got ${JSON.stringify(out)}`);
  assert.equal(out.code, code, out.message);
  assert.ok(out.isFerry && out.isError, "not a FerryError");
}

describe("in Chromium", () => {
  test("JSON, text and bytes round-trip", async () => {
    assert.deepEqual(await request(queue, { patientId: 42, list: [1, "two"] }), { ok: true, value: { patientId: 42, list: [1, "two"] } });
    assert.deepEqual(await request(queue, "plain text ✓"), { ok: true, value: "plain text ✓" });
    const bytes = await page.evaluate((q) => window.outcome(window.client.request(q, new Uint8Array([0, 7, 255]))), queue);
    assert.deepEqual(bytes, { ok: true, value: { bytes: [0, 7, 255] } });
  });

  test("1,000 concurrent requests all resolve to their own replies", async () => {
    const res = await page.evaluate(async (q) => {
      const n = 1000;
      const replies = await Promise.all(Array.from({ length: n }, (_, i) => window.client.request(q, { i, tag: `r${i}` })));
      const wrong = replies.filter((r, i) => r.i !== i || r.tag !== `r${i}`).length;
      return { n: replies.length, wrong, pending: window.client.pending };
    }, queue);
    assert.deepEqual(res, { n: 1000, wrong: 0, pending: 0 });
  });

  test("timeout", async () => {
    const out = await request(queue, {}, { headers: { "x-mode": "silent" }, timeoutMs: 300 });
    assertFailed(out, "timeout");
    assert.match(out.correlationId, /^[0-9a-f-]{36}$/);
  });

  test("abort", async () => {
    const out = await page.evaluate((q) => {
      const ac = new AbortController();
      const p = window.outcome(window.client.request(q, {}, { headers: { "x-mode": "silent" }, signal: ac.signal }));
      const before = window.client.pending;
      ac.abort();
      return p.then((o) => ({ ...o, before, after: window.client.pending }));
    }, queue);
    assertFailed(out, "cancelled");
    assert.equal(out.before, 1);
    assert.equal(out.after, 0);
  });

  test("no_route, forbidden", async () => {
    assertFailed(await request(`${PREFIX}.nobody`, {}), "no_route");
    assertFailed(await request("elsewhere", {}), "forbidden");
  });

  test("remote error with the worker's details", async () => {
    const out = await request(queue, {}, { headers: { "x-mode": "error", "x-error-code": "unknown_patient" } });
    assertFailed(out, "remote");
    assert.equal(out.remoteCode, "unknown_patient");
    assert.equal(out.details.reason, "the worker refused");
  });

  test("pending is 0 after everything", async () => {
    assert.equal(await page.evaluate(() => window.client.pending), 0);
  });

  test("reconnect: false, the bridge killed mid-request: every promise rejects with disconnected", async () => {
    // Another bridge, so another origin than the page's: it must name the page's origin.
    const other = await startBridge({ allow: [`${PREFIX}.*`], args: ["--allowed-origin", bridge.url] });
    try {
      const started = await page.evaluate(async ([url, q]) => {
        const c = await window.ferry.connect(url, { reconnect: false });
        window.doomed = c;
        window.doomedResults = Promise.all(
          Array.from({ length: 50 }, () => window.outcome(c.request(q, {}, { headers: { "x-mode": "silent" }, timeoutMs: 60_000 }))),
        );
        return c.pending;
      }, [other.wsUrl, queue]);
      assert.equal(started, 50);
      await other.kill();
      const res = await page.evaluate(async () => {
        const outcomes = await window.doomedResults;
        const closed = await window.doomed.closed;
        return { codes: [...new Set(outcomes.map((o) => o.code))], n: outcomes.length, pending: window.doomed.pending, closed: closed.code };
      });
      assert.deepEqual(res, { codes: ["disconnected"], n: 50, pending: 0, closed: "disconnected" });
    } finally {
      await other.kill();
    }
  });

  test("close: pending requests reject with closed", async () => {
    const res = await page.evaluate(async ([url, q]) => {
      const c = await window.ferry.connect(url);
      const p = window.outcome(c.request(q, {}, { headers: { "x-mode": "silent" } }));
      await c.close();
      const o = await p;
      return { code: o.code, pending: c.pending };
    }, [bridge.wsUrl, queue]);
    assert.deepEqual(res, { code: "closed", pending: 0 });
  });

  test("no page errors", () => {
    assert.deepEqual(browser.errors.map(String), []);
  });
});
