// Test helper: a TCP proxy on 127.0.0.1 that the test controls, to cut a client's socket
// mid-request (as a network change or a sleeping laptop does) and to keep it down a while.

import net from "node:net";

/**
 * Starts a proxy to `target` (a port on 127.0.0.1). Resolves to { port, url(path), cut(),
 * freeze(), refuse(on), retarget(port), close(), stats }: `cut()` destroys every live
 * connection without a close frame; `freeze()` leaves them open but passes nothing (a
 * half-open socket); while `refuse(true)`, new connections are dropped at once (their times,
 * from `performance.now()`, go to `stats.refused`).
 */
export async function startProxy(target) {
  let to = target;
  let refusing = false;
  const live = new Set();
  const pairs = new Set();
  const stats = { accepted: 0, refused: [] };
  const server = net.createServer((client) => {
    if (refusing) {
      stats.refused.push(performance.now());
      client.destroy();
      return;
    }
    stats.accepted++;
    const upstream = net.connect(to, "127.0.0.1");
    live.add(client);
    live.add(upstream);
    pairs.add([client, upstream]);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    port,
    stats,
    url: (path = "/ws") => `ws://127.0.0.1:${port}${path}`,
    cut() {
      for (const s of live) s.destroy();
      live.clear();
      pairs.clear();
    },
    refuse(on) {
      refusing = on;
    },
    /** Half-opens every live connection: both ends stay open, nothing passes any more. */
    freeze() {
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
      pairs.clear();
    },
    retarget(p) {
      to = p;
    },
    async close() {
      this.cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The port of a bridge's ws:// URL. */
export const portOf = (wsUrl) => Number(new URL(wsUrl).port);
