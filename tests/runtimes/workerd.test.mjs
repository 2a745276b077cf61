// ferry-client in Cloudflare's workerd (through Miniflare), installed from `npm pack` and bundled
// the way wrangler does: esbuild with the "workerd" export condition, the .wasm kept as a
// CompiledWasm module. The Worker runs scenario.mjs with workerd's own WebSocket.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startBridge, uniqueName } from "../support/bridge.mjs";
import { startWorker } from "../support/worker.mjs";
import { installedPackageDir } from "../support/package.mjs";
import { EXPECTED } from "./scenario.mjs";

const prefix = uniqueName("ft.workerd");
let app;
let worker;
let bridge;
let mf;

before(async () => {
  app = mkdtempSync(join(tmpdir(), "ferry-workerd-app-"));
  writeFileSync(
    join(app, "main.mjs"),
    `import * as lib from "ferry-client";
import { scenario } from "./scenario.mjs";
export default {
  async fetch(request) {
    const q = new URL(request.url).searchParams;
    try {
      return Response.json({ ok: await scenario(lib, q.get("ws"), q.get("queue")) });
    } catch (e) {
      return Response.json({ error: String(e?.stack ?? e) });
    }
  },
};
`,
  );
  copyFileSync(join(ROOT, "tests", "runtimes", "scenario.mjs"), join(app, "scenario.mjs"));
  const installed = join(installedPackageDir(), "node_modules");
  symlinkSync(installed, join(app, "node_modules"), "dir");
  const esbuild = await import("esbuild");
  await esbuild.build({
    entryPoints: [join(app, "main.mjs")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    external: ["*.wasm"],
    outfile: join(app, "out", "worker.mjs"),
    logLevel: "error",
  });
  mkdirSync(join(app, "out", "wasm"));
  copyFileSync(join(installed, "ferry-client", "dist", "wasm", "ferry_client_bg.wasm"), join(app, "out", "wasm", "ferry_client_bg.wasm"));
  worker = await startWorker(`${prefix}.echo`);
  bridge = await startBridge({ allow: [`${prefix}.*`] });
  const { Miniflare } = await import("miniflare");
  mf = new Miniflare({
    modules: true,
    scriptPath: join(app, "out", "worker.mjs"),
    modulesRoot: join(app, "out"),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate: "2025-01-01",
  });
});

after(async () => {
  await mf?.dispose();
  await bridge?.stop();
  await worker?.stop();
  if (app) rmSync(app, { recursive: true, force: true });
});

test("workerd: the workerd entry, a compiled wasm module and the runtime's WebSocket", async () => {
  const query = new URLSearchParams({ ws: bridge.wsUrl, queue: `${prefix}.echo` });
  const res = await mf.dispatchFetch(`http://worker.test/?${query}`);
  const result = await res.json();
  assert.equal(result.error, undefined, result.error);
  assert.deepEqual(result.ok, EXPECTED);
});
