// ferry-client's SharedWorker: one socket per bridge for every tab of the browser that asks
// for `connect(url, { shared: true })`. Each tab talks to it over its MessagePort (messages in
// shared.js); replies go back to the port that asked, a tab that leaves cancels only its own
// requests, and the last tab to leave closes the socket.

import { connect, FerryError } from "./index.js";

/** How long a tab may take to hand over a token from its `token` function. */
const TOKEN_WAIT_MS = 10_000;

/** One shared connection: `key` (the bridges' URLs) → { client: Promise, tabs: Set<Tab> }. */
const groups = new Map();

const wireError = (e) =>
  e instanceof FerryError
    ? { code: e.code, message: e.message, correlationId: e.correlationId, details: e.details, remoteCode: e.remoteCode, traceId: e.traceId }
    : { code: "internal", message: String(e?.message ?? e) };

/** One tab: its port, the group it joined and its requests in flight (id → AbortController). */
class Tab {
  constructor(port) {
    this.port = port;
    this.group = undefined;
    this.calls = new Map();
    this.tokenAsks = new Map();
    this.asked = 0;
    port.addEventListener("message", (ev) => this.on(ev.data));
    port.addEventListener("close", () => this.leave()); // where the browser reports it
    port.start();
  }

  post(message) {
    try {
      this.port.postMessage(message);
    } catch (e) {
      // a value the tab cannot receive (not cloneable): tell it what went wrong instead
      if (message.id !== undefined) {
        this.port.postMessage({ t: "error", id: message.id, error: wireError(new FerryError("internal", `cannot pass the reply to the tab: ${e?.message ?? e}`)) });
      }
    }
  }

  on(m) {
    switch (m?.t) {
      case "hello":
        return this.join(m);
      case "call":
        return this.call(m);
      case "cancel":
        return this.calls.get(m.id)?.abort();
      case "token":
        this.tokenAsks.get(m.n)?.(m);
        return this.tokenAsks.delete(m.n);
      case "bye":
        return this.leave();
    }
  }

  /**
   * A token from this tab's `token` function (connect, reconnect, renewal). A tab that does
   * not answer within TOKEN_WAIT_MS (frozen, or gone without a word) fails the ask, so the
   * shared connection is never stuck on it.
   */
  askToken() {
    const n = ++this.asked;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.tokenAsks.delete(n);
        reject(new FerryError("unauthorized", `the tab asked for a token did not answer within ${TOKEN_WAIT_MS} ms`));
      }, TOKEN_WAIT_MS);
      this.tokenAsks.set(n, (m) => {
        clearTimeout(timer);
        if (m.error) reject(new FerryError(m.error.code, m.error.message));
        else resolve(m.value);
      });
      this.post({ t: "token?", n });
    });
  }

  join({ urls, options, tokenFn }) {
    const key = JSON.stringify(urls);
    let group = groups.get(key);
    if (!group) {
      group = { tabs: new Set(), client: undefined };
      groups.set(key, group);
      const token = tokenFn
        ? () => {
            // any tab still here with a token function answers
            const asker = [...group.tabs].find((t) => t.tokenFn) ?? this;
            return asker.askToken();
          }
        : options.token;
      group.client = connect(urls, {
        ...options,
        token,
        onStateChange: (state) => {
          for (const t of group.tabs) t.post({ t: "state", state });
        },
      });
      group.client.then(
        (c) => c.closed.then((e) => {
          for (const t of group.tabs) t.post({ t: "closed", error: wireError(e) });
          if (groups.get(key) === group) groups.delete(key);
        }),
        () => groups.get(key) === group && groups.delete(key),
      );
    }
    this.group = group;
    this.key = key;
    this.tokenFn = tokenFn;
    group.tabs.add(this);
    group.client.then(
      (c) => this.post({ t: "ready", state: c.state, session: c.session }),
      (e) => this.post({ t: "failed", error: wireError(e) }),
    );
  }

  async call({ id, gather, destination, body, options }) {
    const ac = new AbortController();
    this.calls.set(id, ac);
    try {
      const client = await this.group.client;
      const opts = { ...options, signal: ac.signal };
      let value;
      if (gather) {
        value = await client.gather(destination, body, opts);
        value = value.map((p) => (p.error ? { replier: p.replier, error: wireError(p.error) } : p));
      } else {
        opts.onProgress = (p) => this.post({ t: "progress", id, value: p });
        value = await client.request(destination, body, opts);
      }
      this.post({ t: "reply", id, value });
    } catch (e) {
      this.post({ t: "error", id, error: wireError(e) });
    } finally {
      this.calls.delete(id);
    }
  }

  /** The tab is gone: its requests are cancelled; the last tab out closes the socket. */
  leave() {
    const group = this.group;
    if (!group?.tabs.delete(this)) return;
    for (const ac of this.calls.values()) ac.abort();
    this.calls.clear();
    for (const settle of this.tokenAsks.values()) settle({ error: { code: "cancelled", message: "the tab that gave the token left" } });
    this.tokenAsks.clear();
    this.port.close();
    if (group.tabs.size === 0) {
      if (groups.get(this.key) === group) groups.delete(this.key);
      group.client.then((c) => c.close(), () => {});
    }
  }
}

globalThis.addEventListener("connect", (ev) => new Tab(ev.ports[0]));
