// ferry-client entry for browsers, bundlers (Vite, webpack), Node 20+, Deno and Bun.
// Loads the WebAssembly module next to this file: fetch() for http(s) URLs, the file system
// for file: URLs (Node has no fetch for those).
import init, { WasmClient } from "./wasm/ferry_client.js";
import { FerryClient, FerryError, makeConnect } from "./core.js";

let loading;

async function loadWasm() {
  const url = new URL("./wasm/ferry_client_bg.wasm", import.meta.url);
  if (url.protocol === "file:") {
    const fs = "node:fs/promises";
    const { readFile } = await import(/* @vite-ignore */ /* webpackIgnore: true */ fs);
    await init({ module_or_path: await readFile(url) });
  } else {
    await init({ module_or_path: url });
  }
  return { WasmClient };
}

function load() {
  loading ??= loadWasm().catch((e) => {
    loading = undefined;
    throw new FerryError("internal", `cannot load the ferry-client WebAssembly module: ${e?.message ?? e}`, { cause: e });
  });
  return loading;
}

/** Connects to a Ferry bridge; resolves once the bridge has welcomed the connection. */
export const connect = makeConnect(load);
export { FerryClient, FerryError };
