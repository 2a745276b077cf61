// ferry-client's tab side of `connect(url, { shared: true })`: a client with the FerryClient
// API whose socket lives in the SharedWorker of shared-worker.js, shared by the browser's tabs.
// Messages over the MessagePort (structured clones):
//   tab → worker: hello {urls, options, tokenFn} · call {id, gather, destination, body, options}
//                 · cancel {id} · token {n, value | error} · bye
//   worker → tab: ready {state, session} · failed {error} · state {state} · progress {id, value}
//                 · reply {id, value} · error {id, error} · token? {n} · closed {error}

import { FerryError, prepare, progressCallback, streamOf, traceContext, withTraceId } from "./core.js";

const revive = (e) => new FerryError(e.code, e.message, e);

/** Connect options the worker's connection takes (the rest stays in the tab or is refused). */
const PASSED = ["timeoutMs", "reconnect", "whileReconnecting", "maxQueued", "connectTimeoutMs", "failFast", "tracing"];

/** Connects through the browser's shared Ferry worker; resolves once its connection is open. */
export async function connectShared(hrefs, options) {
  if (options.persist) {
    throw new FerryError("bad_request", "persist keeps a session per tab, so it cannot be combined with shared: true");
  }
  const passed = {};
  for (const k of PASSED) if (options[k] !== undefined) passed[k] = options[k];
  if (typeof options.token === "string") passed.token = options.token;
  let worker;
  try {
    worker = new SharedWorker(new URL("./shared-worker.js", import.meta.url), { type: "module", name: "ferry-client" });
  } catch (e) {
    throw new FerryError("internal", `cannot start the ferry-client shared worker: ${e?.message ?? e}`, { cause: e });
  }
  const client = new SharedClient(worker.port, options);
  worker.addEventListener("error", () => client.fail({ code: "internal", message: "the ferry-client shared worker failed to load" }));
  worker.port.postMessage({ t: "hello", urls: hrefs, options: passed, tokenFn: typeof options.token === "function" });
  const abort = () => client.fail({ code: "cancelled", message: "connect was aborted" });
  options.signal?.addEventListener("abort", abort);
  try {
    await client.opened;
  } finally {
    options.signal?.removeEventListener("abort", abort);
  }
  return client;
}

/** The FerryClient API over a MessagePort. Emits `statechange` events. */
class SharedClient extends EventTarget {
  #port;
  #calls = new Map();
  #next = 0;
  #state = "connecting";
  #session;
  #options;
  #opened;
  #closed;
  #settleOpen;
  #settleClosed;
  #leave;

  constructor(port, options) {
    super();
    this.#port = port;
    this.#options = options;
    this.#opened = new Promise((resolve, reject) => (this.#settleOpen = [resolve, reject]));
    this.#closed = new Promise((resolve) => (this.#settleClosed = resolve));
    port.addEventListener("message", (ev) => this.#on(ev.data));
    port.start();
    // A tab that goes away leaves the shared connection: its own requests are cancelled.
    this.#leave = () => this.close();
    globalThis.addEventListener?.("pagehide", this.#leave);
  }

  get opened() {
    return this.#opened;
  }

  #on(m) {
    const call = this.#calls.get(m?.id);
    switch (m?.t) {
      case "ready":
        this.#session = m.session;
        this.#state = m.state;
        return this.#settleOpen[0]();
      case "failed":
        return this.fail(m.error);
      case "state":
        return this.#changed(m.state);
      case "progress":
        return call?.onProgress?.(m.value);
      case "reply":
        this.#calls.delete(m.id);
        return call?.resolve(call.gather ? m.value.map((p) => (p.error ? { ...p, error: revive(p.error) } : p)) : m.value);
      case "error":
        this.#calls.delete(m.id);
        return call?.reject(revive(m.error));
      case "token?":
        return this.#token(m.n);
      case "closed":
        return this.#end(revive(m.error));
    }
  }

  async #token(n) {
    try {
      const value = await this.#options.token();
      this.#port.postMessage({ t: "token", n, value });
    } catch (e) {
      this.#port.postMessage({ t: "token", n, error: { code: "unauthorized", message: `the token function failed: ${e?.message ?? e}` } });
    }
  }

  #changed(state) {
    if (this.#state === state || this.#state === "closed") return;
    this.#state = state;
    const ev = new Event("statechange");
    ev.state = state;
    this.dispatchEvent(ev);
    if (typeof this.#options.onStateChange === "function") this.#options.onStateChange(state);
  }

  /** The connection failed before or after opening: everything here rejects with `error`. */
  fail(error) {
    const e = revive(error);
    this.#settleOpen[1](e);
    this.#end(e);
  }

  #end(error) {
    if (this.#state === "closed") return;
    globalThis.removeEventListener?.("pagehide", this.#leave);
    for (const call of this.#calls.values()) call.reject(error);
    this.#calls.clear();
    this.#changed("closed");
    this.#settleClosed(error);
    this.#port.close();
  }

  /** Posts one call; returns [promise, trace id]. */
  #send(destination, body, options, gather) {
    let headers, bytes, type, onProgress, traceId;
    try {
      if (this.#state === "closed") throw new FerryError("closed", "the client was closed");
      onProgress = progressCallback(options?.onProgress);
      [headers, bytes, type] = prepare(body, options?.headers, options?.contentType);
      if (!gather) traceId = traceContext(headers, options, this.#options.tracing);
    } catch (e) {
      return [Promise.reject(e), undefined];
    }
    const { timeoutMs, idleTimeoutMs, meta, windowMs, maxReplies, routingKey, signal } = options ?? {};
    const id = ++this.#next;
    const promise = new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new FerryError("cancelled", "the request was aborted"));
      const abort = () => {
        if (!this.#calls.delete(id)) return;
        this.#port.postMessage({ t: "cancel", id });
        reject(new FerryError("cancelled", "the request was aborted"));
      };
      signal?.addEventListener("abort", abort, { once: true });
      const done = (settle) => (v) => {
        signal?.removeEventListener("abort", abort);
        settle(v);
      };
      this.#calls.set(id, { resolve: done(resolve), reject: done(reject), onProgress, gather });
      const opts = gather
        ? { windowMs, maxReplies, routingKey, headers, contentType: type }
        : { timeoutMs, idleTimeoutMs, meta, headers, contentType: type };
      try {
        const payload = type === undefined && bytes.length === 0 ? undefined : bytes; // no body
        this.#port.postMessage({ t: "call", id, gather, destination: String(destination), body: payload, options: opts });
      } catch (e) {
        this.#calls.delete(id);
        reject(new FerryError("bad_request", `cannot pass the request to the shared worker: ${e?.message ?? e}`, { cause: e }));
      }
    });
    return [withTraceId(promise, traceId), traceId];
  }

  get state() {
    return this.#state;
  }

  get session() {
    return this.#session;
  }

  get pending() {
    return this.#calls.size;
  }

  get closed() {
    return this.#closed;
  }

  /** A shared connection keeps no page-reload state: nothing to resume. */
  resumed() {
    return [];
  }

  reattach() {
    return Promise.reject(new FerryError("bad_request", "reattach needs persist, which a shared connection does not keep"));
  }

  request(destination, body, options = {}) {
    return this.#send(destination, body, options, false)[0];
  }

  stream(destination, body, options = {}) {
    return streamOf((o) => this.#send(destination, body, o, false), options);
  }

  async gather(destination, body, options = {}) {
    return this.#send(destination, body, options, true)[0];
  }

  /** This tab leaves: its requests reject with `closed`; the last tab out closes the socket. */
  async close() {
    if (this.#state === "closed") return;
    this.#port.postMessage({ t: "bye" });
    this.#end(new FerryError("closed", "the client was closed"));
  }
}
