// Traces from the client to the worker, exported over OTLP: a tiny OTLP/HTTP (JSON) receiver,
// a bridge and the example worker both run with --otlp-endpoint, and the npm client sends
// its traceparent. The bridge's span is a child of the client's span, the worker's a child of
// the bridge's, all in the client's trace.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import WebSocket from "ws";
import { startBridge, uniqueName } from "../support/bridge.mjs";
import { importInstalled } from "../support/package.mjs";
import { startWorker } from "./harness.mjs";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN = "00f067aa0ba902b7";
const queue = uniqueName("ft.trace");
const spans = [];
let arrived = () => {};
let receiver;
let endpoint;
let bridge;
let worker;
let lib;

/** Resolves once `pred(spans)` holds, re-checked after each export (bounded by the test's timeout). */
function until(pred) {
  return new Promise((resolve) => {
    const check = () => (pred(spans) ? resolve() : (arrived = check));
    check();
  });
}

before(async () => {
  receiver = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size <= 4 * 1024 * 1024) chunks.push(c);
    });
    req.on("end", () => {
      res.writeHead(req.url === "/v1/traces" ? 200 : 404, { "content-type": "application/json" });
      res.end("{}");
      if (req.url !== "/v1/traces") return;
      const doc = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      for (const rs of doc.resourceSpans ?? []) {
        const service = rs.resource?.attributes?.find((a) => a.key === "service.name")?.value?.stringValue;
        for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push({ service, ...s });
      }
      arrived();
    });
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${receiver.address().port}`;
  // Both processes export a batch every 100 ms instead of every 5 s (an SDK variable).
  process.env.OTEL_BSP_SCHEDULE_DELAY = "100";
  lib = await importInstalled();
  bridge = await startBridge({ allow: [queue], args: ["--otlp-endpoint", endpoint] });
  worker = await startWorker(queue, ["--work-ms", "30", "--otlp-endpoint", endpoint]);
});

after(async () => {
  await worker?.stop();
  await bridge?.stop();
  receiver?.close();
});

test("one request's spans from the bridge and the example worker share the client's trace", async () => {
  const client = await lib.connect(bridge.wsUrl, { WebSocket });
  try {
    const summary = await client.request(queue, { patientId: 7 }, { traceparent: `00-${TRACE}-${CLIENT_SPAN}-01` });
    assert.equal(summary.patientId, 7);
  } finally {
    await client.close();
  }
  await until((all) => all.some((s) => s.service === "ferry-bridge") && all.some((s) => s.service === "patient-summary-worker"));
  const ours = spans.filter((s) => s.traceId === TRACE);
  const bridgeSpan = ours.find((s) => s.service === "ferry-bridge");
  const workerSpan = ours.find((s) => s.service === "patient-summary-worker");
  assert.ok(bridgeSpan, `a bridge span in the client's trace: ${JSON.stringify(spans)}`);
  assert.ok(workerSpan, `a worker span in the client's trace: ${JSON.stringify(spans)}`);
  assert.equal(bridgeSpan.parentSpanId, CLIENT_SPAN, "the bridge's span is a child of the client's");
  assert.equal(workerSpan.parentSpanId, bridgeSpan.spanId, "the worker's span is a child of the bridge's");
  const attr = (s, key) => s.attributes?.find((a) => a.key === key)?.value;
  assert.equal(attr(bridgeSpan, "messaging.destination.name")?.stringValue, queue);
  assert.equal(attr(bridgeSpan, "ferry.outcome")?.stringValue, "ok");
  assert.ok(BigInt(bridgeSpan.endTimeUnixNano) >= BigInt(workerSpan.endTimeUnixNano) - 5_000_000n, "the bridge's span lasts until the reply");
});
