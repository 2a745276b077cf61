//! The peer: RabbitMQ's Web-STOMP plugin with `@stomp/stompjs` in Node (over `ws`), closed-loop
//! RPC to the same echo worker, the way its documentation does request-reply: SEND to the
//! worker's queue with `reply-to: /temp-queue/…` and a `correlation-id`; the plugin gives the
//! session a private reply queue and delivers the replies on it.
//
// Usage: node stomp.mjs --url ws://HOST:15674/ws --dest QUEUE --concurrency N --body-bytes B
//          --warmup-ms MS --duration-ms MS [--login guest --passcode guest]
// Bodies are passed as JS objects and JSON-encoded/decoded here, as the Ferry client does.
// Prints the same JSON line as load.mjs.
import { args, closedLoop, jsonBody, report } from "./common.mjs";

const a = args(process.argv);
const { Client } = await import("@stomp/stompjs");
const { default: WebSocket } = await import("ws");
const body = jsonBody(Number(a["body-bytes"]));
const REPLY = "/temp-queue/rpc";
const TIMEOUT_MS = 30_000;

const waiting = new Map();
let next = 0;
const client = new Client({
  webSocketFactory: () => new WebSocket(a.url, ["v12.stomp", "v11.stomp", "v10.stomp"]),
  connectHeaders: { login: a.login ?? "guest", passcode: a.passcode ?? "guest" },
  heartbeatIncoming: 0,
  heartbeatOutgoing: 0,
  reconnectDelay: 0,
  debug: () => {},
});
// Temp-queue replies arrive without a SUBSCRIBE of ours: stompjs hands them here.
client.onUnhandledMessage = (msg) => {
  const id = msg.headers["correlation-id"];
  const w = waiting.get(id);
  if (!w) return;
  waiting.delete(id);
  clearTimeout(w.timer);
  try {
    w.resolve(JSON.parse(msg.body));
  } catch (e) {
    w.reject(e);
  }
};
await new Promise((resolve, reject) => {
  client.onConnect = resolve;
  client.onStompError = (f) => reject(new Error(`STOMP error: ${f.headers.message}`));
  client.onWebSocketError = () => reject(new Error(`cannot open ${a.url}`));
  client.activate();
});
client.onStompError = (f) => console.error(`STOMP error: ${f.headers.message}`);

function call() {
  const id = `c${next++}`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error(`no reply in ${TIMEOUT_MS} ms`));
    }, TIMEOUT_MS);
    waiting.set(id, { resolve, reject, timer });
    client.publish({
      destination: `/amq/queue/${a.dest}`,
      headers: { "reply-to": REPLY, "correlation-id": id, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  });
}

const result = await closedLoop({
  call,
  concurrency: Number(a.concurrency),
  warmupMs: Number(a["warmup-ms"]),
  durationMs: Number(a["duration-ms"]),
});
await client.deactivate();
report(result);
