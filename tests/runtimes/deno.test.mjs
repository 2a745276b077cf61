// ferry-client in Deno (from the npm package `deno`), installed from `npm pack`, using Deno's
// own global WebSocket: the scenario of scenario.mjs against a real bridge, RabbitMQ and worker.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { ROOT, startBridge, uniqueName } from "../support/bridge.mjs";
import { startWorker } from "../support/worker.mjs";
import { installedPackageDir } from "../support/package.mjs";
import { EXPECTED } from "./scenario.mjs";

const DENO = join(ROOT, "node_modules", ".bin", "deno");
const prefix = uniqueName("ft.deno");
let worker;
let bridge;
let work;

before(async () => {
  worker = await startWorker(`${prefix}.echo`);
  bridge = await startBridge({ allow: [`${prefix}.*`] });
  work = mkdtempSync(join(tmpdir(), "ferry-deno-"));
});

after(async () => {
  await bridge?.stop();
  await worker?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test("Deno: connect with the global WebSocket, round trip, typed error, pending 0", async () => {
  // A missing prerequisite fails the test (it never passes by skipping).
  assert.ok(existsSync(DENO), `the npm package deno is not installed at ${DENO}: run npm ci`);
  const pkg = join(installedPackageDir(), "node_modules", "ferry-client", "dist", "index.js");
  const script = join(work, "main.mjs");
  writeFileSync(
    script,
    `import * as lib from ${JSON.stringify(pathToFileURL(pkg).href)};
import { scenario } from ${JSON.stringify(pathToFileURL(join(ROOT, "tests", "runtimes", "scenario.mjs")).href)};
console.log(JSON.stringify(await scenario(lib, Deno.args[0], Deno.args[1])));
`,
  );
  const { stdout } = await promisify(execFile)(
    DENO,
    ["run", "--no-prompt", "--no-config", "--allow-net=127.0.0.1", "--allow-read", script, bridge.wsUrl, `${prefix}.echo`],
    { timeout: 60_000, env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" } },
  );
  assert.deepEqual(JSON.parse(stdout.trim().split("\n").pop()), EXPECTED);
});
