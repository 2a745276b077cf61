// Test helper: the ferry-client package as a user gets it: `npm pack` of the built dist/,
// installed into a fresh project directory (once per dist/ content; shared by test files).

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT } from "./bridge.mjs";

function hashDir(dir, h = createHash("sha256")) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) hashDir(p, h);
    else h.update(name).update(readFileSync(p));
  }
  return h;
}

/**
 * Returns the directory of a project with ferry-client installed from its packed tarball
 * (`<dir>/node_modules/ferry-client`). Builds dist/ first if it is missing.
 */
export function installedPackageDir() {
  const dist = join(ROOT, "dist");
  if (!existsSync(join(dist, "index.js"))) {
    execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "inherit" });
  }
  const key = hashDir(dist).update(readFileSync(join(ROOT, "package.json"))).digest("hex").slice(0, 16);
  const final = join(tmpdir(), `ferry-client-installed-${key}`);
  if (existsSync(join(final, ".ready"))) return final;
  // Installs of earlier builds: remove those older than an hour (a running test may still
  // be using a recent one).
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith("ferry-client-installed-")) continue;
    const p = join(tmpdir(), name);
    try {
      if (Date.now() - statSync(p).mtimeMs > 3_600_000) rmSync(p, { recursive: true, force: true });
    } catch {
      // already gone
    }
  }
  const work = mkdtempSync(join(tmpdir(), "ferry-client-install-"));
  const out = execFileSync("npm", ["pack", "--silent", "--pack-destination", work], { cwd: ROOT, encoding: "utf8" });
  const tgz = join(work, out.trim().split("\n").pop());
  const project = join(work, "project");
  execFileSync("mkdir", ["-p", project]);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "ferry-client-test-app", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--silent", tgz], { cwd: project, stdio: "inherit" });
  writeFileSync(join(project, ".ready"), "");
  try {
    renameSync(project, final);
  } catch {
    // another test process won the race: use its copy
  }
  rmSync(work, { recursive: true, force: true });
  return final;
}

/** Imports the installed package (the same module instance for every caller in a process). */
export async function importInstalled() {
  const dir = installedPackageDir();
  return import(pathToFileURL(join(dir, "node_modules", "ferry-client", "dist", "index.js")).href);
}
