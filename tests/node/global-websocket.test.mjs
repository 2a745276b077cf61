// ferry-client with the runtime's own global WebSocket and no injection: Node's built-in
// (undici) WebSocket, as in Node 22+, Deno and Workers. On Node 20 it needs
// --experimental-websocket, so the client runs in a child process started with that flag.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { startBridge, uniqueName } from "../support/bridge.mjs";
import { startWorker } from "../support/worker.mjs";
import { installedPackageDir } from "../support/package.mjs";

const PREFIX = uniqueName("ft.globalws");
const queue = `${PREFIX}.echo`;
let bridge;
let worker;

before(async () => {
  worker = await startWorker(queue);
  bridge = await startBridge({ allow: [`${PREFIX}.*`] });
});

after(async () => {
  await worker?.stop();
  await bridge?.stop();
});

const CHILD = `
const [url, queue, entry] = process.argv.slice(1);
const { connect, FerryError } = await import(entry);
const client = await connect(url);
const out = {
  json: await client.request(queue, { a: [1, 2] }),
  text: await client.request(queue, "text ✓"),
  bytes: [...(await client.request(queue, new Uint8Array([9, 8, 7])))],
};
// Sent in one go: each frame leaves from the same wasm memory, so a WebSocket that read it
// after send() returned would send another request's bytes.
const bodies = Array.from({ length: 40 }, (_, i) => ({ i, pad: "y".repeat(i * 97) }));
const echoed = await Promise.all(bodies.map((b) => client.request(queue, b)));
out.burstMismatches = echoed.filter((r, i) => r?.i !== i || r?.pad !== bodies[i].pad).length;
try {
  await client.request(queue, {}, { headers: { "x-mode": "silent" }, timeoutMs: 200 });
} catch (e) {
  out.timeout = e instanceof FerryError ? e.code : String(e);
}
out.pending = client.pending;
await client.close();
console.log(JSON.stringify(out));
`;

test("the runtime's global WebSocket is used when none is injected", async () => {
  const entry = pathToFileURL(join(installedPackageDir(), "node_modules", "ferry-client", "dist", "index.js")).href;
  const flags = typeof globalThis.WebSocket === "function" ? [] : ["--experimental-websocket"];
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...flags, "--no-warnings", "--input-type=module", "-e", CHILD, bridge.wsUrl, queue, entry],
    { timeout: 30_000 },
  );
  assert.deepEqual(JSON.parse(stdout), {
    json: { a: [1, 2] },
    text: "text ✓",
    bytes: [9, 8, 7],
    burstMismatches: 0,
    timeout: "timeout",
    pending: 0,
  });
});
