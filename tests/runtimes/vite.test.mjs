// ferry-client bundled by Vite as an app would (`import ... from "ferry-client"`, installed from
// `npm pack`), the built page served by the bridge and run in headless Chromium: the scenario of
// scenario.mjs, with the wasm loaded from the asset Vite emitted.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startBridge, uniqueName } from "../support/bridge.mjs";
import { startWorker } from "../support/worker.mjs";
import { installedPackageDir } from "../support/package.mjs";
import { launchBrowser } from "../support/browser.mjs";
import { EXPECTED } from "./scenario.mjs";

const prefix = uniqueName("ft.vite");
let app;
let worker;
let bridge;
let browser;

before(async () => {
  app = mkdtempSync(join(tmpdir(), "ferry-vite-app-"));
  writeFileSync(join(app, "index.html"), '<!doctype html><title>vite app</title><link rel="icon" href="data:,"><script type="module" src="/main.js"></script>\n');
  writeFileSync(
    join(app, "main.js"),
    `import * as lib from "ferry-client";
import { scenario } from "./scenario.mjs";
const q = new URLSearchParams(location.search);
window.result = scenario(lib, q.get("ws"), q.get("queue")).then((ok) => ({ ok }), (e) => ({ error: String(e?.stack ?? e) }));
`,
  );
  copyFileSync(join(ROOT, "tests", "runtimes", "scenario.mjs"), join(app, "scenario.mjs"));
  symlinkSync(join(installedPackageDir(), "node_modules"), join(app, "node_modules"), "dir");
  const { build } = await import("vite");
  await build({ root: app, logLevel: "error", build: { outDir: join(app, "dist"), emptyOutDir: true } });
  worker = await startWorker(`${prefix}.echo`);
  bridge = await startBridge({ allow: [`${prefix}.*`], args: ["--static-dir", join(app, "dist")] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await bridge?.stop();
  await worker?.stop();
  if (app) rmSync(app, { recursive: true, force: true });
});

test("Vite build: the wasm is an emitted asset, and the bundled client works in Chromium", async () => {
  const assets = readdirSync(join(app, "dist", "assets"));
  assert.ok(assets.some((f) => f.endsWith(".wasm")), `no .wasm among ${assets}`);
  const { page, errors } = browser;
  const query = new URLSearchParams({ ws: bridge.wsUrl, queue: `${prefix}.echo` });
  await page.goto(`${bridge.url}/?${query}`);
  const result = await page.evaluate(() => window.result);
  assert.equal(result.error, undefined, result.error);
  assert.deepEqual(result.ok, EXPECTED);
  assert.deepEqual(errors, []);
});
