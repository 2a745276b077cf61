// W3C Trace Context for requests: the `traceparent` a request carries (the app's, a header,
// or a fresh one when the client traces), and the trace id on the errors it rejects with.

import { FerryError } from "./error.js";

// W3C Trace Context (docs/protocol.md §1): version 00, lowercase hex, ids not all zero. Only
// to read the trace id here: the wasm checks the header with the protocol crate's rule and
// refuses a malformed one with its message.
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;
const ZEROS = /^0+$/;

function hex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** A new trace (sampled) whose root span is the caller's. */
function freshTraceparent() {
  const b = new Uint8Array(24);
  do globalThis.crypto.getRandomValues(b);
  while (b.subarray(0, 16).every((x) => x === 0) || b.subarray(16).every((x) => x === 0));
  return `00-${hex(b.subarray(0, 16))}-${hex(b.subarray(16))}-01`;
}

/**
 * Puts the request's trace context into its header pairs: the `traceparent` option, else a
 * `traceparent` header, else a fresh one when the client traces; `tracestate` likewise.
 * Returns the trace id, or undefined (none, or a malformed one the wasm will refuse).
 */
export function traceContext(pairs, options, tracing) {
  const at = (name) => pairs.find((p) => p[0] === name);
  const set = (name, value) => {
    const p = at(name);
    if (p) p[1] = value;
    else pairs.push([name, value]);
  };
  if (options?.tracestate != null) set("tracestate", String(options.tracestate));
  let tp = options?.traceparent != null ? String(options.traceparent) : undefined;
  if (tp === undefined) tp = at("traceparent")?.[1];
  if (tp === undefined && tracing) tp = freshTraceparent();
  if (tp === undefined) return undefined;
  set("traceparent", tp);
  const m = TRACEPARENT.exec(tp);
  return m && !ZEROS.test(m[1]) && !ZEROS.test(m[2]) ? m[1] : undefined;
}

/** `promise`, whose FerryError (if any) carries `traceId`. */
export function withTraceId(promise, traceId) {
  if (traceId === undefined) return promise;
  return promise.catch((e) => {
    if (e instanceof FerryError) e.traceId = traceId;
    throw e;
  });
}
