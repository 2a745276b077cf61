// What connect() asks of the JS runtime: waiting between attempts, the network going offline
// and online, the page's lifecycle, and one write per microtask on Node's `ws` sockets.

import { FerryError } from "./error.js";

/** Waits `ms`, or rejects with `cancelled` when `signal` aborts. */
export function pause(ms, signal) {
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
export const offline = () => globalThis.navigator?.onLine === false && typeof globalThis.addEventListener === "function";

/** Resolves at the runtime's next `online` event, or rejects with `cancelled` when `signal` aborts. */
export function whenOnline(signal) {
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
export function watchRuntime(w) {
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
export function corking(Ctor) {
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
