//! Ferry, real client: the npm package (wasm + JS glue) in Node with `ws`, closed-loop load.
//
// `ws` masks outgoing frames with `bufferutil` (a devDependency) when it is installed, as the
// README advises for Node; WS_NO_BUFFER_UTIL=1 measures without it.
//
// Usage: node load.mjs --client PATH/dist/index.js --url ws://HOST:PORT/ws --dest QUEUE
//          --concurrency N --body-bytes B --warmup-ms MS --duration-ms MS [--token JWT]
// Prints one JSON line (common.mjs): { rps, p50_us, p90_us, p99_us, p999_us, measured, total,
// errors, client_cpu_s }.
import { pathToFileURL } from "node:url";
import { args, closedLoop, jsonBody, report } from "./common.mjs";

const a = args(process.argv);
const { connect } = await import(pathToFileURL(a.client).href);
const { default: WebSocket } = await import("ws");
const body = jsonBody(Number(a["body-bytes"]));
const client = await connect(a.url, { WebSocket, timeoutMs: 30_000, token: a.token || undefined });

const result = await closedLoop({
  call: () => client.request(a.dest, body, { timeoutMs: 30_000 }),
  concurrency: Number(a.concurrency),
  warmupMs: Number(a["warmup-ms"]),
  durationMs: Number(a["duration-ms"]),
});
await client.close();
report(result);
