// The dashboard in headless Chromium, doing what a person would: against a real bridge,
// RabbitMQ and example worker. Saves a screenshot to tests/artifacts/dashboard.png, and to
// docs/screenshot.png when FERRY_UPDATE_SCREENSHOT=1.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import {
  ROOT,
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  startWorker,
  uniqueName,
  wwwDir,
} from "./harness.mjs";
import { bridgeBinary, startBridge } from "../support/bridge.mjs";

const queue = uniqueName("test.dashboard");
const slowQueue = uniqueName("test.dashboard-slow");
const presence = uniqueName("test.dashboard-presence");
let worker;
let slowWorker;
let bridge;
let browser;

before(async () => {
  const www = wwwDir();
  // Three at once, 1.5 s per summary: long enough to see progress and to cancel.
  const answer = ["--presence-exchange", presence];
  worker = await startWorker(queue, ["--work-ms", "1500", "--prefetch", "3", "--name", "worker-1", ...answer]);
  // One at a time, a minute per summary: only a cancel that reaches the worker frees it.
  slowWorker = await startWorker(slowQueue, ["--work-ms", "60000", "--prefetch", "1", "--name", "slow", ...answer]);
  const args = ["--static-dir", www, "--drain-timeout", "1s", "--allow-exchange", presence];
  bridge = await startBridge({ allow: [queue, slowQueue], args });
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await bridge?.stop();
  await worker?.stop();
  await slowWorker?.stop();
});

const cardsIn = (page, state) => page.locator(`#cards > li.card[data-state="${state}"]`);
const cardFor = (page, id) => page.locator(`#cards > li.card[data-patient-id="${id}"]`);
const requestButton = (page, id) => page.locator(`button[data-request="${id}"]`);

test("request three summaries, cancel one, see an unknown patient's error", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const problems = [];
  page.on("pageerror", (err) => problems.push(err.message));
  await page.goto(`${bridge.url}/?queue=${encodeURIComponent(queue)}&presence=${encodeURIComponent(presence)}`);

  const status = page.locator("#connection-status");
  await page.locator('.connection[data-state="connected"]').waitFor();
  assert.equal(await status.textContent(), "Connected");

  // Three requests; the first by keyboard, as a person using only the keyboard would.
  await requestButton(page, 3).focus();
  await page.keyboard.press("Enter");
  await requestButton(page, 7).click();
  await requestButton(page, 11).click();
  assert.equal(await page.locator("#cards > li.card").count(), 3);

  // Cancel patient 7 while it is still being built.
  const seven = cardFor(page, 7);
  assert.match(await seven.getAttribute("data-state"), /^(waiting|working)$/);
  await seven.getByRole("button", { name: /Cancel/ }).click();
  await cardsIn(page, "cancelled").waitFor();
  assert.equal(await seven.getAttribute("data-state"), "cancelled");
  assert.equal(await seven.locator(".badge").textContent(), "Cancelled");

  // The other two arrive, rendered.
  await page.waitForFunction(
    () => document.querySelectorAll('#cards > li.card[data-state="done"]').length === 2,
    null,
    { timeout: 20_000 },
  );
  for (const [id, name] of [[3, "Chiara Rossi"], [11, "Keiko Tanaka"]]) {
    const card = cardFor(page, id);
    assert.equal(await card.getAttribute("data-state"), "done");
    assert.match(await card.locator("h3").textContent(), new RegExp(name));
    assert.match(await card.locator(".narrative").textContent(), new RegExp(`^${name} is a \\d+-year-old`));
    assert.ok((await card.locator(".summary-section li").count()) >= 2, "conditions and medications listed");
    assert.match(await card.locator(".provenance").textContent(), /worker-1/);
  }

  // The unknown patient: a remote error with the worker's code and message.
  await requestButton(page, 99).click();
  const unknown = cardFor(page, 99);
  await page.locator('#cards > li.card[data-patient-id="99"][data-state="failed"]').waitFor();
  assert.equal(await unknown.locator(".error-code").textContent(), "remote");
  assert.equal(await unknown.locator(".remote-code").textContent(), "unknown_patient");
  assert.equal(await unknown.locator(".error-message").textContent(), "no patient with id 99");

  // Nothing is left pending in the client.
  assert.equal(await page.evaluate(() => window.ferryDemo.client.pending), 0);
  assert.match(await page.locator("#counts").textContent(), /0 in flight · 2 done · 1 failed · 1 cancelled/);

  // Who is available (both workers answer), then one more in progress, so the screenshot
  // shows every state.
  await page.getByRole("button", { name: "Find available reviewers" }).click();
  await page.locator("#reviewer-list > li").nth(1).waitFor();
  await requestButton(page, 5).click();
  await page.locator('#cards > li.card[data-patient-id="5"][data-state="working"]').waitFor();
  await page.waitForFunction(
    () => Number(document.querySelector('#cards > li.card[data-patient-id="5"] progress')?.value) >= 45,
  );
  const artifacts = join(ROOT, "tests", "artifacts");
  mkdirSync(artifacts, { recursive: true });
  const shot = join(artifacts, "dashboard.png");
  await page.screenshot({ path: shot, fullPage: true });
  if (process.env.FERRY_UPDATE_SCREENSHOT === "1") {
    copyFileSync(shot, join(ROOT, "docs", "screenshot.png"));
  }

  assert.deepEqual(problems, []);
  await page.close();
});

test("cancelling a running summary frees the worker: the next queued one starts at once", async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (err) => problems.push(err.message));
  await page.goto(`${bridge.url}/?queue=${encodeURIComponent(slowQueue)}`);
  await page.locator('.connection[data-state="connected"]').waitFor();

  await requestButton(page, 3).click();
  await page.locator('#cards > li.card[data-patient-id="3"][data-state="working"]').waitFor();
  await requestButton(page, 7).click();
  const seven = cardFor(page, 7);
  assert.equal(await seven.getAttribute("data-state"), "waiting", "the only slot is taken");

  const t0 = Date.now();
  await cardFor(page, 3).getByRole("button", { name: /Cancel/ }).click();
  await page.locator('#cards > li.card[data-patient-id="7"][data-state="working"]').waitFor({ timeout: 15_000 });
  const took = Date.now() - t0;
  // Held up, patient 7 would wait the 60 s patient 3's summary takes; 10 s is a loaded machine's margin.
  assert.ok(took < 10_000, `patient 7 started ${took} ms after the cancel (a summary takes 60 s)`);

  await seven.getByRole("button", { name: /Cancel/ }).click();
  await page.locator('#cards > li.card[data-patient-id="7"][data-state="cancelled"]').waitFor();
  assert.equal(await page.evaluate(() => window.ferryDemo.client.pending), 0);
  assert.deepEqual(problems, []);
  await page.close();
});

test("reload the page mid-summary: the summary still arrives", async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (err) => problems.push(err.message));
  await page.goto(`${bridge.url}/?queue=${encodeURIComponent(queue)}`);
  await page.locator('.connection[data-state="connected"]').waitFor();
  await requestButton(page, 4).click();
  await page.locator('#cards > li.card[data-patient-id="4"][data-state="working"]').waitFor();

  await page.reload();
  await page.locator('.connection[data-state="connected"]').waitFor();
  // The card comes back from the page's storage, and the reply that the worker sent while
  // the page was reloading is delivered to it.
  await page.locator('#cards > li.card[data-patient-id="4"][data-state="done"]').waitFor({ timeout: 15_000 });
  assert.match(await cardFor(page, 4).innerText(), /Ready/);
  assert.equal(await cardsIn(page, "failed").count(), 0);
  assert.equal(await page.evaluate(() => window.ferryDemo.client.pending), 0);
  assert.deepEqual(problems, []);
  await page.close();
});

test("find available reviewers: one gather answered by every running worker", async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (err) => problems.push(err.message));
  await page.goto(`${bridge.url}/?queue=${encodeURIComponent(slowQueue)}&presence=${encodeURIComponent(presence)}`);
  await page.locator('.connection[data-state="connected"]').waitFor();

  // Keep the slow worker's only slot busy, then ask who is available.
  await requestButton(page, 3).click();
  await page.locator('#cards > li.card[data-patient-id="3"][data-state="working"]').waitFor();
  await page.getByRole("button", { name: "Find available reviewers" }).click();
  await page.locator("#reviewer-list > li").nth(1).waitFor();
  const status = await page.locator("#reviewers-status").textContent();
  assert.match(status, /^2 answered within 1 s; 1 available\.$/);
  assert.equal(await page.locator('#reviewer-list > li[data-worker="worker-1"] .badge').textContent(), "Available");
  assert.equal(await page.locator('#reviewer-list > li[data-worker="slow"] .badge').textContent(), "Busy");
  assert.equal(await page.locator('#reviewer-list > li[data-worker="slow"] .reviewer-load').textContent(), "1 of 1 slots busy");

  await cardFor(page, 3).getByRole("button", { name: /Cancel/ }).click();
  await page.locator('#cards > li.card[data-patient-id="3"][data-state="cancelled"]').waitFor();
  assert.equal(await page.evaluate(() => window.ferryDemo.client.pending), 0);
  assert.deepEqual(problems, []);
  await page.close();
});

test("signed in: each clinician sees their own patients; the other's are the worker's typed error", async () => {
  // A bridge that authenticates, and a tokens file like the one scripts/demo.sh writes.
  const www = wwwDir();
  const dir = mkdtempSync(join(tmpdir(), "ferry-dash-"));
  const secret = join(dir, "secret");
  writeFileSync(secret, randomBytes(32).toString("hex"));
  const mint = (sub) =>
    execFileSync(bridgeBinary(), ["token", "--secret-file", secret, "--sub", sub, "--ttl", "10m"], { encoding: "utf8" }).trim();
  const tokensName = `${uniqueName("test-tokens")}.json`;
  const tokensFile = join(www, tokensName);
  writeFileSync(tokensFile, JSON.stringify([
    { user: "dr.okafor", name: "Dr. Ada Okafor", token: mint("dr.okafor") },
    { user: "dr.lindqvist", name: "Dr. Bruno Lindqvist", token: mint("dr.lindqvist") },
  ]));
  const authed = await startBridge({
    allow: [queue],
    args: ["--static-dir", www, "--drain-timeout", "1s", "--jwt-secret-file", secret],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const problems = [];
  page.on("pageerror", (err) => problems.push(err.message));
  try {
    await page.goto(`${authed.url}/?queue=${encodeURIComponent(queue)}&tokens=${encodeURIComponent(tokensName)}`);
    await page.locator('.connection[data-state="connected"]').waitFor();
    assert.equal(await page.locator("#clinician").inputValue(), "dr.okafor");

    // Dr. Okafor: patient 2 is hers, patient 8 is not.
    await requestButton(page, 2).click();
    await requestButton(page, 8).click();
    await page.locator('#cards > li.card[data-patient-id="8"][data-state="failed"]').waitFor();
    const eight = cardFor(page, 8);
    assert.equal(await eight.locator(".error-code").textContent(), "remote");
    assert.equal(await eight.locator(".remote-code").textContent(), "not_your_patient");
    assert.match(await eight.locator(".error-message").textContent(), /patient 8 is not in dr\.okafor's care/);
    await page.locator('#cards > li.card[data-patient-id="2"][data-state="done"]').waitFor({ timeout: 20_000 });

    // Dr. Lindqvist: patient 8 is his.
    await page.locator("#clinician").selectOption("dr.lindqvist");
    await page.locator('.connection[data-state="connected"]').waitFor();
    await page.waitForFunction(() => window.ferryDemo.client !== null);
    await requestButton(page, 8).click();
    await page.waitForFunction(
      () => document.querySelectorAll('#cards > li.card[data-patient-id="8"][data-state="done"]').length === 1,
      null,
      { timeout: 20_000 },
    );
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
    await authed.stop();
    rmSync(tokensFile, { force: true });
  }
});
