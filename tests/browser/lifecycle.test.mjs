// ferry-client in a browser's life: the network going offline and back (Chromium's network
// emulation fires `offline`/`online`), and the page frozen by its lifecycle (CDP
// Page.setWebLifecycleState, as Chrome does to background tabs). A TCP proxy between the page
// and the bridge cuts the socket when the test says so.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startBridge, uniqueName } from "../support/bridge.mjs";
import { startWorker } from "../support/worker.mjs";
import { startProxy, portOf } from "../support/proxy.mjs";
import { installedPackageDir } from "../support/package.mjs";
import { launchBrowser, writeTestPage } from "../support/browser.mjs";

const PREFIX = uniqueName("ft.lifecycle");
const queue = `${PREFIX}.echo`;
const PAGE = "ferry-lifecycle-test.html";
// The bridge beats every 300 ms, so the client's watchdog gives up after 900 ms of silence.
const BEAT_MS = 300;
let bridge;
let worker;
let proxy;
let browser;
let page;

// The page counts the sockets the client opens and logs its state changes.
const SCRIPT = `
  import { connect } from "ferry-client";
  window.sockets = 0;
  class Counting extends WebSocket {
    constructor(...args) { super(...args); window.sockets++; }
  }
  window.open = async (url, reconnect) => {
    window.states = [];
    window.client = await connect(url, { WebSocket: Counting, reconnect, onStateChange: (s) => window.states.push(s) });
    return window.client.session;
  };
  window.outcome = (p) => p.then((value) => ({ ok: true, value }), (e) => ({ ok: false, code: e.code, message: e.message }));
  // Resolves when the client reaches \`state\`; rejects if it ends first or after \`ms\`.
  window.until = (state, ms = 10000) => new Promise((resolve, reject) => {
    const c = window.client;
    const timer = setTimeout(() => reject(new Error("still " + c.state + " after " + ms + " ms, waiting for " + state)), ms);
    const on = () => {
      if (c.state !== state && c.state !== "closed") return;
      c.removeEventListener("statechange", on);
      clearTimeout(timer);
      if (c.state === state) resolve(); else reject(new Error("the client closed, waiting for " + state));
    };
    c.addEventListener("statechange", on);
    on();
  });`;

before(async () => {
  const dir = installedPackageDir();
  writeTestPage(dir, PAGE, "ferry-client lifecycle test page", SCRIPT);
  worker = await startWorker(queue);
  bridge = await startBridge({ allow: [`${PREFIX}.*`], args: ["--static-dir", dir, "--ping-interval", `${BEAT_MS}ms`] });
  proxy = await startProxy(portOf(bridge.wsUrl));
  browser = await launchBrowser();
  page = browser.page;
  // The page comes through the proxy too: same origin as the socket the bridge accepts.
  await page.goto(`http://127.0.0.1:${proxy.port}/${PAGE}`);
  await page.waitForFunction(() => window.ready === true);
});

// Each test leaves the network on and its client closed, whatever happened.
afterEach(async () => {
  await browser.context.setOffline(false);
  await page.evaluate(() => window.client?.close());
});

after(async () => {
  await browser?.context.setOffline(false).catch(() => {});
  await page?.evaluate(() => window.client?.close()).catch(() => {});
  await browser?.close();
  await proxy?.close();
  await worker?.stop();
  await bridge?.stop();
});

/** Starts `client.request(...)` in the page; resolves to a handle whose `.outcome()` awaits it. */
async function start(name, body, options) {
  await page.evaluate(
    ([name, q, body, options]) => {
      window[name] = window.outcome(window.client.request(q, body, options));
    },
    [name, queue, body, options],
  );
  return { outcome: () => page.evaluate((n) => window[n], name) };
}

const delayed = (ms) => ({ headers: { "x-mode": "delay", "x-delay-ms": String(ms) }, timeoutMs: 30_000 });

describe("network and page lifecycle, in Chromium", () => {
  test("offline: no reconnect attempts are spent; online: the session resumes and the reply arrives", async () => {
    // Without network awareness, three quick attempts fail while offline and the client ends.
    await page.evaluate((url) => window.open(url, { initialDelayMs: 20, maxDelayMs: 50, maxAttempts: 3 }), proxy.url());
    const reply = await start("offlineReply", { n: 1 }, delayed(1_500));
    await browser.context.setOffline(true);
    assert.equal(await page.evaluate(() => navigator.onLine), false);
    const before = await page.evaluate(() => window.sockets);
    proxy.cut();
    await page.evaluate(() => window.until("reconnecting"));
    // Absence can only be shown over a window: 1 s is 20 times the longest retry delay.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(await page.evaluate(() => [window.sockets, window.client.state]), [before, "reconnecting"]);
    await browser.context.setOffline(false);
    await page.evaluate(() => window.until("open"));
    assert.deepEqual(await reply.outcome(), { ok: true, value: { n: 1 } });
    assert.equal(await page.evaluate(() => window.sockets), before + 1);
  });

  test("online: a client waiting to reconnect tries at once", async () => {
    // A 10-minute backoff: only the `online` event can bring the socket back within the test.
    await page.evaluate((url) => window.open(url, { initialDelayMs: 600_000, maxDelayMs: 600_000 }), proxy.url());
    await browser.context.setOffline(true);
    proxy.cut();
    await page.evaluate(() => window.until("reconnecting"));
    await browser.context.setOffline(false);
    await page.evaluate(() => window.until("open"));
    const r = await start("onlineReply", "back", { timeoutMs: 10_000 });
    assert.deepEqual(await r.outcome(), { ok: true, value: "back" });
  });

  test("connect() while offline waits for the network instead of spending its attempts", async () => {
    await browser.context.setOffline(true);
    const before = await page.evaluate(() => window.sockets);
    await page.evaluate((url) => {
      window.opening = window.outcome(window.open(url, { initialDelayMs: 20, maxDelayMs: 50, maxAttempts: 2 }));
    }, proxy.url());
    // The first attempt fails at once; then none for 25 times the longest retry delay.
    await new Promise((r) => setTimeout(r, 1_250));
    assert.equal(await page.evaluate(() => window.sockets), before + 1);
    await browser.context.setOffline(false);
    const opened = await page.evaluate(() => window.opening);
    assert.equal(opened.ok, true, opened.message);
    assert.equal(await page.evaluate(() => [window.sockets, window.client.state].join()), `${before + 2},open`);
  });

  test("a frozen page keeps its healthy socket, and no request times out early", async () => {
    const session = await page.evaluate((url) => window.open(url, {}), proxy.url());
    const sockets = await page.evaluate(() => window.sockets);
    const slow = await start("frozenSlow", { slow: true }, { ...delayed(1_000), timeoutMs: 20_000 });
    const cdp = await browser.context.newCDPSession(page);
    await cdp.send("Page.setWebLifecycleState", { state: "frozen" });
    // Frozen for ten heartbeats: the watchdog's deadline passes while no script runs.
    await new Promise((r) => setTimeout(r, 10 * BEAT_MS));
    await cdp.send("Page.setWebLifecycleState", { state: "active" });
    assert.deepEqual(await slow.outcome(), { ok: true, value: { slow: true } });
    const after = await start("afterFreeze", "still here", { timeoutMs: 10_000 });
    assert.deepEqual(await after.outcome(), { ok: true, value: "still here" });
    assert.deepEqual(await page.evaluate(() => [window.states, window.client.session, window.sockets]), [
      ["open"],
      session,
      sockets,
    ]);
    await cdp.detach();
  });

  test("woken after the whole process slept, the client keeps its healthy socket", async () => {
    // What a suspended laptop or phone sees on waking: the clock jumped far past the watchdog's
    // deadline, and the page's \`resume\` runs the client's timers before the bridge's queued
    // heartbeats are read (all in one task here, so no frame can come in between).
    const session = await page.evaluate((url) => window.open(url, {}), proxy.url());
    await page.evaluate((beat) => {
      const realNow = Date.now;
      window.restoreClock = () => (Date.now = realNow);
      Date.now = () => realNow.call(Date) + 20 * beat;
      document.dispatchEvent(new Event("resume"));
    }, BEAT_MS);
    try {
      const r = await start("awake", "awake", { timeoutMs: 10_000 });
      assert.deepEqual(await r.outcome(), { ok: true, value: "awake" });
      assert.deepEqual(await page.evaluate(() => [window.states, window.client.session]), [["open"], session]);
    } finally {
      await page.evaluate(() => window.restoreClock());
    }
  });

  test("no page errors", () => {
    // Chromium logs each socket it could not open while offline; that is the test's doing.
    const offline = /net::ERR_INTERNET_DISCONNECTED/;
    assert.deepEqual(browser.errors.filter((e) => !offline.test(e.message)), []);
  });
});
