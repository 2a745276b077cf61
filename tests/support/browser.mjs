// Test helper: headless Debian Chromium through playwright-core, with a fresh empty profile.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
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

/** Launches Chromium; resolves to { context, page, close() }. Page errors are collected. */
export async function launchBrowser() {
  const profile = mkdtempSync(join(tmpdir(), "ferry-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(new Error(m.text()));
  });
  return {
    context,
    page,
    errors,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Writes a test page into the installed package's project `dir` (served by a bridge's
 * --static-dir): `ferry-client` mapped to the installed package, then `script` as a module
 * that sets `window.ready` when done. Returns the page's file name.
 */
export function writeTestPage(dir, name, title, script) {
  const html = `<!doctype html>
<meta charset="utf-8">
<title>${title}</title>
<link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "ferry-client": "./node_modules/ferry-client/dist/index.js" } }</script>
<script type="module">
${script}
  window.ready = true;
</script>`;
  writeFileSync(join(dir, name), html);
  return name;
}
