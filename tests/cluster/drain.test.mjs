// Behind a real load balancer: HAProxy (Debian's package) in front of two bridges, each
// health-checked on /readyz; one bridge drained with SIGTERM under load. Its clients (which
// know only HAProxy's address) get close 1012, reconnect through HAProxy to the other bridge
// and resume: no request is lost or failed.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { startBridge, uniqueName } from "../support/bridge.mjs";
import { importInstalled } from "../support/package.mjs";
import { startWorker } from "../support/worker.mjs";
import { metric, startLoad } from "./harness.mjs";

let lib;
let dir;

before(async () => {
  lib = await importInstalled();
  dir = mkdtempSync(join(tmpdir(), "ferry-haproxy-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A free loopback port (bound, then released for HAProxy to take). */
async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** Starts HAProxy in the foreground with a config balancing `bridges`; resolves once it listens. */
async function startHaproxy(bridges) {
  const port = await freePort();
  const servers = bridges.map((b, i) => `  server b${i} ${new URL(b.url).host} check`).join("\n");
  const cfg = `global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  option redispatch
  retries 3
frontend ferry
  bind 127.0.0.1:${port}
  default_backend bridges
backend bridges
  balance roundrobin
  option forwardfor
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 200ms fall 1 rise 2
${servers}
`;
  const file = join(dir, "haproxy.cfg");
  writeFileSync(file, cfg);
  const child = spawn("haproxy", ["-f", file, "-db"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (c) => (stderr = (stderr + c).slice(-4000)));
  const spawned = await new Promise((resolve) => {
    child.once("spawn", () => resolve(true));
    child.once("error", (e) => resolve(e));
  });
  if (spawned !== true) throw new Error(`haproxy does not run (scripts/setup.sh installs it): ${spawned.message}`);
  // Up once it answers /readyz through a backend it has checked.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`haproxy not serving within 15 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100)); // polling: HAProxy has no readiness event
  }
  return { port, stop: () => child.kill("SIGKILL"), stderr: () => stderr };
}

test("a bridge drained behind HAProxy: its clients resume on the other, nothing lost or failed", { timeout: 180_000 }, async () => {
  const queue = uniqueName("ft.drain");
  const worker = await startWorker(queue);
  const args = ["--trusted-proxy", "127.0.0.1/32", "--drain-timeout", "10s"];
  const bridges = [await startBridge({ allow: ["ft.*"], args }), await startBridge({ allow: ["ft.*"], args })];
  const proxy = await startHaproxy(bridges);
  const load = await startLoad(lib, `ws://127.0.0.1:${proxy.port}/ws`, WebSocket, { queue, clients: 8, inFlight: 4 });
  try {
    await load.resolvedMore(200);
    const before = [await metric(bridges[0], "ferry_sessions"), await metric(bridges[1], "ferry_sessions")];
    assert.ok(before[0] > 0 && before[1] > 0, `HAProxy spread the sessions over both bridges: ${before}`);
    const drainedAt = Date.now();
    const stopped = await bridges[0].stop(); // SIGTERM: drain
    assert.equal(stopped.code, 0, `the drained bridge exited cleanly:\n${bridges[0].stderr()}`);
    await load.resolvedMore(400);
    const counts = await load.stop();
    const resumed = await metric(bridges[1], "ferry_sessions_resumed_total");
    console.log(
      `haproxy drain: ${JSON.stringify({ sessions: before, resumedOnOther: resumed, sent: counts.sent, resolved: counts.resolved, workerReceived: worker.received, failed: counts.failed, hung: counts.hung, drainMs: Date.now() - drainedAt })}`,
    );
    assert.deepEqual(counts.failed, {}, "no request failed");
    assert.equal(counts.hung, 0, "no request was lost");
    assert.equal(counts.wrong, 0);
    assert.equal(resumed, before[0], "every session of the drained bridge resumed on the other");
  } finally {
    await load.stop(1000).catch(() => {});
    proxy.stop();
    for (const b of bridges) await b.kill();
    await worker.stop();
  }
});
