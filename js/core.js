// ferry-client core: FerryError, the client wrapper and connect(), shared by every entry
// point (index.js for browsers/Node/Deno, workerd.js for Cloudflare Workers). The stateful
// part (socket, pending map, timer) is the WebAssembly module; this file stays thin.

import { tokenSource } from "./token.js";

/** Every failure of ferry-client rejects with a FerryError. */
export class FerryError extends Error {
  /**
   * @param {string} code one of the stable codes (`timeout`, `no_route`, `remote`, ...)
   * @param {string} message a message a person understands
   * @param {{correlationId?: string, details?: unknown, remoteCode?: string, traceId?: string, cause?: unknown}} [options]
   */
  constructor(code, message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "FerryError";
    this.code = code;
    this.correlationId = options.correlationId;
    this.details = options.details;
    this.remoteCode = options.remoteCode;
    this.traceId = options.traceId;
  }

  /** Whether `value` is a FerryError, with one of `codes` if any are given. */
  static is(value, ...codes) {
    return value instanceof FerryError && (codes.length === 0 || codes.includes(value.code));
  }
}

const makeError = (code, message, correlationId, details, remoteCode) =>
  new FerryError(code, message, { correlationId, details, remoteCode });

const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain; charset=utf-8";
const BYTES_TYPE = "application/octet-stream";
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** "json", "text" or undefined (bytes) for a content type (case-insensitive, no parameters). */
function kindOf(contentType) {
  if (!contentType) return undefined;
  const essence = contentType.split(";")[0].trim().toLowerCase();
  if (essence === JSON_TYPE || (essence.startsWith("application/") && essence.endsWith("+json"))) return "json";
  if (essence.startsWith("text/")) return "text";
  return undefined;
}

/**
 * A request body as [bytes, contentType]: plain objects, arrays, numbers, booleans and null
 * as JSON, strings as UTF-8 text, Uint8Array / ArrayBuffer / other views as raw bytes,
 * undefined as empty. `contentType` overrides the type of a string or bytes body.
 */
function encodeBody(body, contentType) {
  if (body === undefined) return [new Uint8Array(0), contentType];
  if (typeof body === "string") return [encoder.encode(body), contentType ?? TEXT_TYPE];
  if (body instanceof Uint8Array) return [body, contentType ?? BYTES_TYPE];
  if (body instanceof ArrayBuffer) return [new Uint8Array(body), contentType ?? BYTES_TYPE];
  if (ArrayBuffer.isView(body)) {
    return [new Uint8Array(body.buffer, body.byteOffset, body.byteLength), contentType ?? BYTES_TYPE];
  }
  if (contentType !== undefined && kindOf(contentType) !== "json") {
    throw new FerryError("bad_request", "with a non-JSON contentType the body must be a string or bytes");
  }
  let json;
  try {
    json = JSON.stringify(body);
  } catch (e) {
    throw new FerryError("bad_request", `body is not JSON-serialisable: ${e?.message ?? e}`, { cause: e });
  }
  if (json === undefined) throw new FerryError("bad_request", "body cannot be represented as JSON");
  return [encoder.encode(json), contentType ?? JSON_TYPE];
}

/**
 * A received body (a view into wasm memory, valid during this call) as a JS value. Text that
 * is not UTF-8 is handed over as bytes; a JSON body that does not parse throws its text.
 */
function decodeBody(view, contentType) {
  const kind = kindOf(contentType);
  if (kind) {
    let text;
    try {
      text = decoder.decode(view);
    } catch {
      if (kind === "json") throw view.slice();
      return view.slice();
    }
    if (kind === "text") return text;
    try {
      return JSON.parse(text);
    } catch {
      throw text;
    }
  }
  return view.slice();
}

// Open clients are kept reachable, like an open WebSocket: a client is never garbage
// collected (which would close it) while connected, only after it ended.
const live = new Set();

/** The headers as `[name, value]` pairs of strings (from an object, a Map, `Headers` or pairs). */
function headerPairs(headers) {
  if (headers == null) return [];
  const entries = Array.isArray(headers)
    ? headers
    : typeof headers.entries === "function"
      ? Array.from(headers.entries())
      : Object.entries(headers);
  const out = [];
  for (const [name, value] of entries) {
    if (value !== undefined) out.push([String(name), String(value)]);
  }
  return out;
}


/** `onProgress` as the wasm takes it; throws a FerryError `bad_request` unless a function. */
export function progressCallback(onProgress) {
  if (onProgress != null && typeof onProgress !== "function") {
    throw new FerryError("bad_request", "onProgress must be a function");
  }
  return onProgress ?? undefined;
}

/** A call's [header pairs, body bytes, content type]; throws a FerryError `bad_request`. */
export function prepare(body, headers, contentType) {
  let pairs;
  try {
    pairs = headerPairs(headers);
  } catch (e) {
    throw new FerryError("bad_request", "headers must be an object of strings", { cause: e });
  }
  return [pairs, ...encodeBody(body, contentType == null ? undefined : String(contentType))];
}

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

function wsUrl(url) {
  try {
    const base = globalThis.location?.href;
    const u = base ? new URL(String(url), base) : new URL(String(url));
    if (u.protocol === "http:") u.protocol = "ws:";
    else if (u.protocol === "https:") u.protocol = "wss:";
    return u.href;
  } catch (e) {
    throw new FerryError("bad_request", `invalid bridge URL ${JSON.stringify(String(url))}`, { cause: e });
  }
}

/**
 * The parts of one request as an async generator (`FerryClient.stream`): `call(options)`
 * sends it with the options given (its own `signal` and `onProgress`) and returns `[reply
 * promise, trace id]`. Leaving the loop early aborts the request.
 */
export async function* streamOf(call, options) {
  const parts = [];
  let wake;
  let done = false;
  let failed = false;
  let result;
  const mine = new AbortController();
  const outer = options?.signal;
  const forward = () => mine.abort();
  if (outer?.aborted) mine.abort();
  else outer?.addEventListener("abort", forward);
  const onProgress = options?.onProgress;
  const [reply, traceId] = call({
    ...options,
    signal: mine.signal,
    onProgress(p) {
      parts.push(p);
      if (typeof onProgress === "function") onProgress(p);
      wake?.();
    },
  });
  const part = (kind, value) => (traceId === undefined ? { kind, value } : { kind, value, traceId });
  reply.then(
    (v) => {
      done = true;
      result = v;
      wake?.();
    },
    (e) => {
      done = failed = true;
      result = e;
      wake?.();
    },
  );
  try {
    for (;;) {
      while (parts.length > 0) yield part("progress", parts.shift());
      if (done) {
        if (failed) throw result;
        yield part("reply", result);
        return;
      }
      await new Promise((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    outer?.removeEventListener("abort", forward);
    if (!done) mine.abort();
  }
}

/** A connection to a Ferry bridge. Made by `connect()`. Emits `statechange` events. */
export class FerryClient extends EventTarget {
  #w;
  #closed;
  #forget;
  #tracing;
  constructor(wasmClient, closed, forget, tracing) {
    super();
    this.#w = wasmClient;
    this.#closed = closed;
    this.#forget = forget;
    this.#tracing = !!tracing;
  }

  /** `connecting`, `open`, `reconnecting` or `closed`. */
  get state() {
    return this.#w.state;
  }

  /**
   * After a page reload (with `persist`): the requests the previous page was awaiting,
   * `{ id, destination, meta, expired }`, until each is reattached.
   */
  resumed() {
    return this.#w.resumed();
  }

  /** A Promise for the reply of a request from {@link resumed} (rejects like `request`). */
  reattach(id, options = {}) {
    let onProgress;
    try {
      onProgress = progressCallback(options?.onProgress);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#w.reattach(String(id), onProgress);
  }

  /** Sends `body` to `destination` and resolves with the worker's decoded reply. */
  request(destination, body, options = {}) {
    return this.#call(destination, body, options)[0];
  }

  /** A request's [promise, trace id]. */
  #call(destination, body, options) {
    const { timeoutMs, idleTimeoutMs, signal, headers, contentType, meta } = options ?? {};
    let pairs, bytes, type, onProgress, traceId;
    try {
      onProgress = progressCallback(options?.onProgress);
      [pairs, bytes, type] = prepare(body, headers, contentType);
      traceId = traceContext(pairs, options, this.#tracing);
    } catch (e) {
      return [Promise.reject(e), undefined];
    }
    const opts = { timeoutMs, idleTimeoutMs, meta, headers: pairs, contentType: type };
    const reply = this.#w.send(String(destination), bytes, opts, signal ?? undefined, onProgress, false);
    return [withTraceId(reply, traceId), traceId];
  }

  /**
   * Publishes `body` once to the exchange `destination` and resolves with every reply that
   * arrives within `windowMs` (or the first `maxReplies`), each `{ replier, value }` or, for
   * a worker's error reply, `{ replier, error }`. `replier` is who answered, when it said.
   */
  async gather(destination, body, options = {}) {
    const { windowMs, maxReplies, routingKey, signal, headers, contentType } = options ?? {};
    const [pairs, bytes, type] = prepare(body, headers, contentType);
    const parts = [];
    const onPart = (replier, value, error) => parts.push(error === undefined ? { replier, value } : { replier, error });
    const key = routingKey == null ? undefined : String(routingKey);
    const opts = { timeoutMs: windowMs, maxReplies, routingKey: key, headers: pairs, contentType: type };
    await this.#w.send(String(destination), bytes, opts, signal ?? undefined, onPart, true);
    return parts;
  }

  /**
   * Sends a request and yields its progress messages as they come, `{ kind: "progress",
   * value }`, then its reply, `{ kind: "reply", value }`, and ends; an error throws from the
   * loop. Leaving the loop early (break, return, throw) cancels the request. A traced
   * request's parts carry its `traceId`.
   */
  stream(destination, body, options = {}) {
    return streamOf((o) => this.#call(destination, body, o), options);
  }

  /** Number of requests awaiting a reply. */
  get pending() {
    return this.#w.pending;
  }

  /** The session id the bridge assigned. */
  get session() {
    return this.#w.session;
  }

  /** Settles when the connection ends, with a FerryError saying why (`closed`, `disconnected`, ...). */
  get closed() {
    return this.#closed;
  }

  /** Closes the connection; pending requests reject with `closed`; the session ends. */
  close() {
    this.#forget();
    return this.#w.close();
  }
}

/** Where a persisted client keeps its session: `{ storage, key }`, or undefined. */
function persistence(url, persist) {
  if (!persist) return undefined;
  const o = typeof persist === "object" ? persist : {};
  const storage = o.storage ?? globalThis.sessionStorage;
  if (!storage || typeof storage.getItem !== "function") {
    throw new FerryError("bad_request", "persist needs a storage (sessionStorage is not available here)");
  }
  return { storage, key: String(o.key ?? `ferry-client:${url}`) };
}

function restored(p) {
  if (!p) return undefined;
  try {
    const text = p.storage.getItem(p.key);
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined; // unreadable storage: start a new session
  }
}

/** Builds `connect()` around a loader that returns the initialised wasm bindings. */
/** Codes a first connection may fail with that another attempt can cure. */
const RETRYABLE = new Set(["disconnected", "timeout", "broker_unavailable", "shutting_down", "rate_limited", "internal"]);

/** Waits `ms`, or rejects with `cancelled` when `signal` aborts. */
function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const abort = () => {
      clearTimeout(timer);
      reject(new FerryError("cancelled", "connect was aborted"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/** The runtime says it is offline (browsers and workers; elsewhere never). */
const offline = () => globalThis.navigator?.onLine === false && typeof globalThis.addEventListener === "function";

/** Resolves at the runtime's next `online` event, or rejects with `cancelled` when `signal` aborts. */
function whenOnline(signal) {
  return new Promise((resolve, reject) => {
    const done = () => {
      signal?.removeEventListener("abort", abort);
      resolve();
    };
    const abort = () => {
      globalThis.removeEventListener("online", done);
      reject(new FerryError("cancelled", "connect was aborted"));
    };
    globalThis.addEventListener("online", done, { once: true });
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/**
 * Tells the wasm client `w` what the runtime says about its network (`online`/`offline`)
 * and the page's life (lifecycle `resume`, visible again after a throttled background);
 * returns the function that stops listening.
 */
function watchRuntime(w) {
  const g = globalThis;
  const stops = [];
  const on = (target, type, fn) => {
    target.addEventListener(type, fn);
    stops.push(() => target.removeEventListener(type, fn));
  };
  if (typeof g.addEventListener === "function" && typeof g.navigator?.onLine === "boolean") {
    on(g, "online", () => w.network(true));
    on(g, "offline", () => w.network(false));
    if (!g.navigator.onLine) w.network(false);
  }
  const doc = g.document;
  if (typeof doc?.addEventListener === "function") {
    const wake = () => doc.visibilityState !== "hidden" && w.wake();
    on(doc, "resume", wake);
    on(doc, "visibilitychange", wake);
  }
  return () => stops.forEach((stop) => stop());
}

/**
 * A WebSocket class passed as `options.WebSocket`, whose sends within one microtask go out
 * in one write where the socket underneath can cork (the `ws` package on Node: every `send`
 * is otherwise a `write` system call, and a burst of replies makes a burst of requests).
 * Elsewhere (no such socket, or not a class) it is the class itself.
 */
function corking(Ctor) {
  if (typeof Ctor !== "function" || !Ctor.prototype || typeof Ctor.prototype.send !== "function") {
    return Ctor;
  }
  return class extends Ctor {
    #corked = false;
    send(data, ...rest) {
      const raw = this._socket;
      if (!this.#corked && raw && typeof raw.cork === "function" && typeof raw.uncork === "function") {
        this.#corked = true;
        raw.cork();
        queueMicrotask(() => {
          this.#corked = false;
          raw.uncork();
        });
      }
      return super.send(data, ...rest);
    }
  };
}

export function makeConnect(load) {
  return async function connect(url, options = {}) {
    const hrefs = Array.isArray(url) ? url.map(wsUrl) : [wsUrl(url)];
    if (hrefs.length === 0) throw new FerryError("bad_request", "connect needs at least one bridge URL");
    if (options?.shared && typeof globalThis.SharedWorker === "function" && !options.WebSocket) {
      // One socket for the browser's tabs, in a SharedWorker; where there is none, one per tab.
      const { connectShared } = await import("./shared.js");
      return connectShared(hrefs, options);
    }
    const { WasmClient } = await load();
    const Ctor = options?.WebSocket ? corking(options.WebSocket) : globalThis.WebSocket;
    if (typeof Ctor !== "function") {
      throw new FerryError(
        "bad_request",
        "this runtime has no WebSocket: pass one as options.WebSocket (e.g. the \"ws\" package on Node 20)",
      );
    }
    const signal = options?.signal ?? undefined;
    const store = persistence(hrefs.join(" "), options?.persist);
    const tokens = tokenSource(options?.token, (code, message) => new FerryError(code, message));
    await tokens.refresh();
    const onStateChange = options?.onStateChange;
    let client;
    let w;
    let resolveClosed;
    let saving = false;
    let forgotten = false; // close() ended the session: keep nothing for a reload
    let opening = true; // until the first WELCOME: a failed attempt is not the client's end
    let unwatch = () => {};
    const closed = new Promise((resolve) => (resolveClosed = resolve));
    const state = (name) => {
      if (!client) return;
      const ev = new Event("statechange");
      ev.state = name;
      client.dispatchEvent(ev);
      if (typeof onStateChange === "function") onStateChange(name);
    };
    const save = () => {
      saving = false;
      if (!store || !w || forgotten) return;
      try {
        const snap = w.snapshot();
        if (snap === undefined) store.storage.removeItem(store.key);
        else store.storage.setItem(store.key, JSON.stringify(snap));
      } catch {
        // storage full or unavailable: the session still works, it only won't survive a reload
      }
    };
    const forget = () => {
      forgotten = true;
      if (!store) return;
      try {
        store.storage.removeItem(store.key);
      } catch {}
    };
    const hooks = {
      error: makeError,
      decode: decodeBody,
      ended(error) {
        if (opening) return; // an attempt failed; connect() decides what happens next
        tokens.stop();
        unwatch();
        live.delete(client);
        state("closed");
        resolveClosed(error);
      },
      state(name) {
        // A reconnect asks the token function again (a stale token would be refused); the
        // attempt after this one carries the new token. Once open, renew before expiry.
        if (name === "reconnecting") tokens.refresh().catch(() => {});
        if (name === "open") tokens.renewals((t) => w.auth(t));
        state(name);
      },
      token: () => tokens.current,
      changed() {
        if (!saving) {
          saving = true;
          queueMicrotask(save);
        }
      },
    };
    const abortAttempt = () => w?.close();
    signal?.addEventListener("abort", abortAttempt);
    try {
      for (let attempt = 1; ; attempt++) {
        if (signal?.aborted) throw new FerryError("cancelled", "connect was aborted");
        // The wasm reads and checks `options` (timeouts, reconnect policy, queueing).
        w = new WasmClient(hrefs, Ctor, options ?? {}, hooks, !!store, restored(store));
        client = new FerryClient(w, closed, forget, options?.tracing);
        try {
          await w.ready;
          break;
        } catch (e) {
          if (signal?.aborted) throw new FerryError("cancelled", "connect was aborted");
          // Retried under the reconnect policy (if any), unless told to fail fast.
          const backoff = w.backoff;
          const again =
            !options?.failFast &&
            backoff !== undefined &&
            RETRYABLE.has(e?.code) &&
            !(backoff.attempts > 0 && attempt >= backoff.attempts);
          if (!again) throw e;
          // Full-jitter backoff, as for a reconnect; each attempt may pick another bridge.
          if (typeof onStateChange === "function") onStateChange("reconnecting");
          if (offline()) {
            // No attempt can succeed offline, so none is spent: the next starts when online.
            await whenOnline(signal);
            attempt = 0;
          } else {
            await pause(Math.random() * Math.min(backoff.maxMs, backoff.initialMs * 2 ** (attempt - 1)), signal);
          }
          await tokens.refresh();
        }
      }
    } catch (e) {
      tokens.stop();
      if (typeof onStateChange === "function") onStateChange("closed");
      resolveClosed(e);
      throw e;
    } finally {
      signal?.removeEventListener("abort", abortAttempt);
    }
    opening = false;
    unwatch = watchRuntime(w);
    live.add(client);
    tokens.renewals((t) => w.auth(t));
    return client;
  };
}
