// Test helper: an ORDINARY AMQP RPC worker (amqplib, as in RabbitMQ's RPC tutorial) that
// knows nothing of Ferry beyond the optional reply headers. The request's headers choose
// what it does (`x-mode`):
//   echo (default)  reply with the request body and content type
//   delay           like echo after `x-delay-ms` milliseconds
//   error           error reply: x-ferry-error = x-error-code (default "test_error"),
//                   x-ferry-error-message, JSON body {"reason": ...}
//   progress        `x-progress` progress messages (x-ferry-kind: progress), then echo;
//                   with `x-interval-ms`, one every that many ms (then the echo one later)
//   silent          never reply (ack and forget)
//   whoami          reply {"user": x-ferry-user, "ward": x-ferry-claim-ward} (what the
//                   bridge says about the caller)
//   trace           reply {"traceparent", "tracestate"}: the trace context it received

import amqp from "amqplib";
import { AMQP_URL } from "./bridge.mjs";

/**
 * Starts a worker consuming `queue` (declared non-durable with x-expires, so a crashed test
 * leaves nothing behind). Resolves to { queue, received, stop() }; stop() deletes the queue.
 */
export async function startWorker(queue, { url = AMQP_URL, prefetch = 2000 } = {}) {
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await ch.assertQueue(queue, { durable: false, autoDelete: false, arguments: { "x-expires": 120_000 } });
  await ch.prefetch(prefetch);
  const state = { received: 0 };
  const timers = new Set();
  const reply = (msg, body, props = {}) => {
    ch.sendToQueue(msg.properties.replyTo, body, {
      correlationId: msg.properties.correlationId,
      contentType: msg.properties.contentType,
      ...props,
    });
  };
  const { consumerTag } = await ch.consume(queue, (msg) => {
    if (!msg) return;
    state.received++;
    const h = msg.properties.headers ?? {};
    const mode = String(h["x-mode"] ?? "echo");
    if (!msg.properties.replyTo) {
      ch.ack(msg);
      return;
    }
    switch (mode) {
      case "silent":
        break;
      case "trace": {
        const text = (v) => (v == null ? null : String(v));
        const ctx = { traceparent: text(h.traceparent), tracestate: text(h.tracestate) };
        reply(msg, Buffer.from(JSON.stringify(ctx)), { contentType: "application/json" });
        break;
      }
      case "whoami": {
        const text = (v) => (v == null ? null : String(v));
        const who = { user: text(h["x-ferry-user"]), ward: text(h["x-ferry-claim-ward"]) };
        reply(msg, Buffer.from(JSON.stringify(who)), { contentType: "application/json" });
        break;
      }
      case "error":
        reply(msg, Buffer.from(JSON.stringify({ reason: "the worker refused", echo: msg.content.toString() })), {
          contentType: "application/json",
          headers: {
            "x-ferry-error": String(h["x-error-code"] ?? "test_error"),
            "x-ferry-error-message": String(h["x-error-message"] ?? "the worker refused this request"),
          },
        });
        break;
      case "progress": {
        const n = Number(h["x-progress"] ?? 3);
        const progress = (i) =>
          reply(msg, Buffer.from(JSON.stringify({ step: i, of: n })), {
            contentType: "application/json",
            headers: { "x-ferry-kind": "progress" },
          });
        const interval = Number(h["x-interval-ms"] ?? 0);
        if (interval > 0) {
          let i = 0;
          const tick = () => {
            timers.delete(t);
            try {
              if (++i <= n) {
                progress(i);
                t = setTimeout(tick, interval);
                timers.add(t);
              } else {
                reply(msg, msg.content);
                ch.ack(msg);
              }
            } catch {
              // channel closed by stop()
            }
          };
          let t = setTimeout(tick, 0);
          timers.add(t);
          return;
        }
        for (let i = 1; i <= n; i++) progress(i);
        reply(msg, msg.content);
        break;
      }
      case "delay": {
        const t = setTimeout(() => {
          timers.delete(t);
          try {
            reply(msg, msg.content);
            ch.ack(msg);
          } catch {
            // channel closed by stop()
          }
        }, Number(h["x-delay-ms"] ?? 100));
        timers.add(t);
        return;
      }
      default:
        reply(msg, msg.content);
    }
    ch.ack(msg);
  });
  return {
    queue,
    get received() {
      return state.received;
    },
    async stop() {
      for (const t of timers) clearTimeout(t);
      try {
        await ch.cancel(consumerTag);
        await ch.deleteQueue(queue);
      } finally {
        await conn.close().catch(() => {});
      }
    },
  };
}

/** Deletes queues (best effort): for tests that declared queues without a worker. */
export async function deleteQueues(names, url = AMQP_URL) {
  const conn = await amqp.connect(url);
  try {
    for (const q of names) {
      const ch = await conn.createChannel();
      await ch.deleteQueue(q).catch(() => {});
      await ch.close().catch(() => {});
    }
  } finally {
    await conn.close().catch(() => {});
  }
}

/**
 * Starts `names.length` repliers on the fanout exchange `exchange` (auto-deleted with its
 * last binding): each answers `{ name }` with `appId = name`; a name starting with "busy"
 * answers with an error reply instead. Resolves to { stop() }.
 */
export async function startRepliers(exchange, names, url = AMQP_URL) {
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await ch.assertExchange(exchange, "fanout", { durable: false, autoDelete: true });
  for (const name of names) {
    const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
    await ch.bindQueue(queue, exchange, "");
    await ch.consume(
      queue,
      (msg) => {
        const { replyTo, correlationId } = msg.properties;
        const busy = name.startsWith("busy");
        const headers = busy ? { "x-ferry-error": "busy", "x-ferry-error-message": `${name} is busy` } : {};
        ch.sendToQueue(replyTo, Buffer.from(JSON.stringify({ name })), {
          correlationId,
          appId: name,
          contentType: "application/json",
          headers,
        });
      },
      { noAck: true },
    );
  }
  return {
    async stop() {
      await conn.close().catch(() => {});
    },
  };
}
