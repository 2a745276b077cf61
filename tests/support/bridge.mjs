// Test helper: starts a real ferry-bridge binary on 127.0.0.1:0 and reads its address from
// the one line it prints on stdout once bound. Also: unique names, the repo root.

import { spawn, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? join(ROOT, "target");
export const AMQP_URL = process.env.FERRY_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672/%2f";

/** A queue name no other test (or run) uses: `<prefix>.<pid>.<random>`. */
export function uniqueName(prefix = "ft.test") {
  return `${prefix}.${process.pid}.${randomBytes(4).toString("hex")}`;
}

/** Path of the bridge binary: $FERRY_BRIDGE_BIN, else target/debug (built if missing). */
export function bridgeBinary() {
  if (process.env.FERRY_BRIDGE_BIN) return process.env.FERRY_BRIDGE_BIN;
  const bin = join(TARGET_DIR, "debug", "ferry-bridge");
  if (!existsSync(bin)) {
    execFileSync("cargo", ["build", "-p", "ferry-bridge"], { cwd: ROOT, stdio: "inherit" });
  }
  return bin;
}

const ADMIN = /^ferry-bridge admin on (http:\/\/\S+) /;
const READY = /^ferry-bridge listening on (https?:\/\/\S+) \(socket (wss?:\/\/\S+)\)/;

/**
 * Starts a bridge. `allow`: patterns for `--allow`; `args`: extra flags; `amqpUrl`: the
 * broker (comma-separated URLs for a cluster; default $FERRY_AMQP_URL or the local broker).
 * Resolves to { url (http), wsUrl, process, stderr(), stop(), kill() } once it listens and
 * (unless `waitReady: false`) its `/readyz` says the broker links are up.
 */
export async function startBridge({
  allow = [],
  args = [],
  timeoutMs = 30_000,
  env = {},
  waitReady = true,
  amqpUrl = AMQP_URL,
  listen = "127.0.0.1:0",
} = {}) {
  const argv = ["--listen", listen, "--admin-listen", "127.0.0.1:0", "--amqp-url", amqpUrl];
  for (const a of allow) argv.push("--allow", a);
  argv.push(...args);
  const child = spawn(bridgeBinary(), argv, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (c) => {
    stderr = (stderr + c).slice(-8000);
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const lines = createInterface({ input: child.stdout });
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`ferry-bridge did not start within ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    let found;
    lines.on("line", (line) => {
      const m = READY.exec(line);
      if (m) found = { url: m[1], wsUrl: m[2] };
      const admin = ADMIN.exec(line);
      if (admin && found) {
        clearTimeout(timer);
        resolve({ ...found, adminUrl: admin[1] });
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`ferry-bridge exited (${code ?? signal}) before listening:\n${stderr}`));
    });
  });
  const alive = () => child.exitCode === null && child.signalCode === null;
  if (waitReady) await untilReady(addr.url, timeoutMs, alive, () => stderr);
  return {
    ...addr,
    process: child,
    exited,
    stderr: () => stderr,
    /** SIGTERM (drain), SIGKILL after 10 s; resolves when it exited. */
    async stop() {
      if (!alive()) return exited;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
    /** SIGKILL at once (a crash); resolves when it exited. */
    async kill() {
      if (alive()) child.kill("SIGKILL");
      return exited;
    },
  };
}

/** Polls `/readyz` (the bridge has no event for "broker connected") until it answers 200. */
async function untilReady(url, timeoutMs, alive, stderr) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) return;
    } catch {
      // not accepting yet
    }
    if (!alive()) throw new Error(`ferry-bridge exited before ready:\n${stderr()}`);
    if (Date.now() > deadline) throw new Error(`ferry-bridge not ready within ${timeoutMs} ms:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
