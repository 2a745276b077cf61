// Harness for the dashboard test: finds the worker binary, prepares www/ with the packed
// ferry-client installed, starts the example worker and waits for its "ready" line on stdout.
// The bridge comes from the shared tests/support/bridge.mjs.

import { spawn, execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { createInterface } from "node:readline";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const TARGET = process.env.CARGO_TARGET_DIR ?? join(ROOT, "target");

export const AMQP_URL = process.env.FERRY_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672/%2f";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** A name no other test uses. */
export function uniqueName(prefix) {
  return `${prefix}.${process.pid}.${randomBytes(4).toString("hex")}`;
}

/** The path of a built binary: $ENV, else target/debug, else target/release (newest wins). */
export function binary(name, envVar) {
  if (process.env[envVar]) return process.env[envVar];
  const candidates = ["debug", "release"]
    .map((profile) => join(TARGET, profile, name))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!candidates.length) {
    throw new Error(`${name} is not built: run cargo build -p ${name}`);
  }
  return candidates[0];
}

/**
 * The directory the bridge serves: FERRY_WWW_DIR, else the repo's www/ after installing the
 * packed package into it when missing or older than dist/ (scripts/demo.sh --prepare-only).
 */
export function wwwDir() {
  if (process.env.FERRY_WWW_DIR) return process.env.FERRY_WWW_DIR;
  const www = join(ROOT, "www");
  const installed = join(www, "node_modules", "ferry-client", "dist", "index.js");
  const built = join(ROOT, "dist", "index.js");
  if (!existsSync(built)) throw new Error("the client package is not built: run npm run build");
  if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(built).mtimeMs) {
    execFileSync("bash", [join(ROOT, "scripts", "demo.sh"), "--prepare-only"], { stdio: "inherit" });
  }
  return www;
}

/**
 * Starts a process and resolves once a stdout line matches `ready` (with the match), or
 * rejects if it exits first or `timeoutMs` passes. stderr is kept for error messages.
 */
export function startProcess(command, args, { ready, timeoutMs = 30_000, env = {} }) {
  const child = spawn(command, args, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  const started = new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => {
      reject(new Error(`${command} not ready after ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    lines.on("line", (line) => {
      const match = line.match(ready);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${code ?? signal}) before ready; stderr:\n${stderr}`));
    });
  });
  return started.then(
    (match) => ({ child, match, stop }),
    async (err) => {
      await stop();
      throw err;
    },
  );
}

/** Starts an example worker on `queue`; resolves once it consumes. */
export function startWorker(queue, extraArgs = []) {
  const bin = binary("patient-summary-worker", "FERRY_WORKER_BIN");
  return startProcess(bin, ["--queue", queue, "--auto-delete", "--amqp-url", AMQP_URL, ...extraArgs], {
    ready: /consuming/,
  });
}
