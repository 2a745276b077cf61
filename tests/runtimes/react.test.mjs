// ferry-client/react in a Vite + React app, as an app would write it (JSX, `import ... from
// "ferry-client/react"`, the package installed from `npm pack`, React the app's own, the
// connection shared by the app's tabs through the SharedWorker entry): the dashboard's
// summary flow against the example patient-summary worker, in headless Chromium.
// Progress renders as it comes, a new patient cancels the request for the old one, and
// unmounting cancels what is in flight.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startBridge, uniqueName } from "../support/bridge.mjs";
import { installedPackageDir } from "../support/package.mjs";
import { launchBrowser } from "../support/browser.mjs";
import { startWorker } from "../dashboard/harness.mjs";

const prefix = uniqueName("ft.react");
const queue = `${prefix}.summary`;
let app;
let worker;
let bridge;
let browser;
let page;

const MAIN = `import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { connect, FerryClient } from "ferry-client";
import { FerryProvider, useRequest, useStream } from "ferry-client/react";

const q = new URLSearchParams(location.search);
const QUEUE = q.get("queue");
// One socket for the app's tabs: the SharedWorker entry, bundled by Vite from the package.
const client = connect(q.get("ws"), { shared: true });
client.then((c) => {
  window.client = c;
  window.inSharedWorker = !(c instanceof FerryClient);
});
window.progressSeen = [];

function Summary({ patientId }) {
  const { data, error, progress, status, cancel } = useRequest(QUEUE, { patientId }, { timeoutMs: 30_000 });
  useEffect(() => {
    if (progress) window.progressSeen.push(progress);
  }, [progress]);
  return (
    <section id="summary" data-status={status} data-patient={data?.patientId}>
      {progress && status === "pending" && <progress max="100" value={progress.pct}>{progress.stage}</progress>}
      {data && <p className="narrative">{data.narrative}</p>}
      {error && <p className="error">{error.code}</p>}
      <button onClick={cancel}>Cancel</button>
    </section>
  );
}

function Streamed({ patientId }) {
  const { parts, data, status } = useStream(QUEUE, { patientId }, { timeoutMs: 30_000 });
  return <section id="stream" data-status={status} data-kinds={parts.map((p) => p.kind).join()} data-patient={data?.patientId} />;
}

function App() {
  const [patientId, setPatientId] = useState(1);
  const [shown, setShown] = useState(true);
  const [streamed, setStreamed] = useState(null);
  window.show = (id) => { setShown(true); setPatientId(id); };
  window.hide = () => setShown(false);
  window.stream = setStreamed;
  return (
    <FerryProvider client={client}>
      {shown && <Summary patientId={patientId} />}
      {streamed != null && <Streamed patientId={streamed} />}
    </FerryProvider>
  );
}

createRoot(document.getElementById("root")).render(<StrictMode><App /></StrictMode>);
`;

before(async () => {
  app = mkdtempSync(join(tmpdir(), "ferry-react-app-"));
  writeFileSync(
    join(app, "index.html"),
    '<!doctype html><title>react app</title><link rel="icon" href="data:,"><div id="root"></div><script type="module" src="/main.jsx"></script>\n',
  );
  writeFileSync(join(app, "main.jsx"), MAIN);
  // The app's node_modules: ferry-client as installed from the tarball, React from the repo's
  // dev dependencies (the package does not bring it: a peer dependency).
  mkdirSync(join(app, "node_modules"));
  symlinkSync(join(installedPackageDir(), "node_modules", "ferry-client"), join(app, "node_modules", "ferry-client"), "dir");
  for (const dep of ["react", "react-dom", "scheduler"]) {
    symlinkSync(join(ROOT, "node_modules", dep), join(app, "node_modules", dep), "dir");
  }
  const { build } = await import("vite");
  await build({
    root: app,
    logLevel: "error",
    // The symlinked ferry-client/react imports "react": the app's copy, not a second one.
    resolve: { dedupe: ["react", "react-dom"] },
    build: { outDir: join(app, "dist"), emptyOutDir: true },
  });
  worker = await startWorker(queue, ["--work-ms", "1500", "--prefetch", "4"]);
  bridge = await startBridge({ allow: [`${prefix}.*`], args: ["--static-dir", join(app, "dist")] });
  browser = await launchBrowser();
  page = browser.page;
  await page.goto(`${bridge.url}/?${new URLSearchParams({ ws: bridge.wsUrl, queue })}`);
});

after(async () => {
  await page?.evaluate(() => window.client?.close()).catch(() => {});
  await browser?.close();
  await bridge?.stop();
  await worker?.stop();
  if (app) rmSync(app, { recursive: true, force: true });
});

const status = () => page.getAttribute("#summary", "data-status");

describe("ferry-client/react in a Vite + React app, in Chromium", () => {
  test("Vite bundles the shared worker, and the app's connection runs in it", async () => {
    assert.ok(readdirSync(join(app, "dist", "assets")).some((f) => /shared-worker/.test(f)), "no shared-worker asset");
    await page.waitForFunction(() => window.client !== undefined);
    assert.equal(await page.evaluate(() => window.inSharedWorker), true);
  });

  test("useRequest renders the progress, then the summary", async () => {
    await page.waitForSelector("#summary progress");
    await page.waitForSelector('#summary[data-status="success"]');
    assert.equal(await page.getAttribute("#summary", "data-patient"), "1");
    assert.match(await page.textContent("#summary .narrative"), /\w+/);
    const seen = await page.evaluate(() => window.progressSeen);
    assert.ok(seen.length >= 2, `progress seen: ${JSON.stringify(seen)}`);
    assert.ok(seen.every((p) => typeof p.pct === "number" && typeof p.stage === "string"));
  });

  test("a new patient cancels the request for the old one", async () => {
    await page.evaluate(() => window.show(2));
    await page.waitForSelector('#summary[data-status="pending"]');
    await page.evaluate(() => window.show(3));
    // One request in flight: the one for patient 2 was cancelled when the argument changed.
    assert.equal(await page.evaluate(() => window.client.pending), 1);
    await page.waitForSelector('#summary[data-status="success"]');
    assert.equal(await page.getAttribute("#summary", "data-patient"), "3");
    assert.equal(await page.evaluate(() => window.client.pending), 0);
  });

  test("unmounting cancels the request in flight; cancel() reports cancelled", async () => {
    await page.evaluate(() => window.show(4));
    await page.waitForSelector('#summary[data-status="pending"]');
    assert.equal(await page.evaluate(() => window.client.pending), 1);
    await page.evaluate(() => window.hide());
    await page.waitForFunction(() => !document.querySelector("#summary"));
    assert.equal(await page.evaluate(() => window.client.pending), 0);

    await page.evaluate(() => window.show(5));
    await page.waitForSelector('#summary[data-status="pending"]');
    await page.click("#summary button");
    await page.waitForSelector('#summary[data-status="error"]');
    assert.equal(await page.textContent("#summary .error"), "cancelled");
    assert.equal(await page.evaluate(() => window.client.pending), 0);
    assert.equal(await status(), "error");
  });

  test("useStream keeps every part: the progress messages, then the reply", async () => {
    await page.evaluate(() => window.stream(6));
    await page.waitForSelector('#stream[data-status="success"]', { state: "attached" });
    const kinds = (await page.getAttribute("#stream", "data-kinds")).split(",");
    assert.ok(kinds.length >= 3, `parts: ${kinds}`);
    assert.deepEqual(kinds, [...kinds.slice(0, -1).map(() => "progress"), "reply"]);
    assert.equal(await page.getAttribute("#stream", "data-patient"), "6");
  });

  test("no page errors", () => {
    assert.deepEqual(browser.errors, []);
  });
});
