// ferry-client entry for Cloudflare Workers (export condition "workerd"): the runtime
// imports the .wasm file as a compiled WebAssembly.Module, so no fetch is needed.
import { initSync, WasmClient } from "./wasm/ferry_client.js";
import wasmModule from "./wasm/ferry_client_bg.wasm";
import { FerryClient, FerryError, makeConnect } from "./core.js";

let ready = false;

/** Connects to a Ferry bridge; resolves once the bridge has welcomed the connection. */
export const connect = makeConnect(async () => {
  if (!ready) {
    initSync({ module: wasmModule });
    ready = true;
  }
  return { WasmClient };
});
export { FerryClient, FerryError };
