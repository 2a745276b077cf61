// Type-level test of the package's declarations (npm run typecheck): how an app uses them.
import { connect, FerryClient, FerryError, type ConnectionState, type FerryErrorCode, type RequestOptions } from "ferry-client";

declare const NodeWs: new (address: string | URL, protocols?: string | string[], options?: object) => object;

async function main(): Promise<void> {
  const client: FerryClient = await connect("ws://localhost:8080/ws", { timeoutMs: 30_000 });
  await connect(new URL("ws://localhost:8080/ws"), { WebSocket: NodeWs, connectTimeoutMs: 5_000 });
  await connect("ws://localhost:8080/ws", { WebSocket });
  // Several bridges: one at random, each reconnect the next.
  await connect(["wss://a.example/ws", new URL("wss://b.example/ws")], { WebSocket });

  const ac = new AbortController();
  const summary = await client.request<{ patientId: number; name: string }>(
    "patient_summary_request",
    { patientId: 42 },
    { timeoutMs: 120_000, signal: ac.signal, headers: { "x-tenant": "a" }, onProgress: (p: { step: number }) => p.step },
  );
  const id: number = summary.patientId;
  const text = await client.request<string>("echo", "hello");
  const bytes = await client.request<Uint8Array>("echo", new Uint8Array([1, 2]));
  await client.request("echo", new ArrayBuffer(4), { contentType: "application/x-thing" });
  await client.request("echo", [1, 2, 3], { headers: new Map([["x-a", "b"]]) });
  await client.request("echo");
  const opts: RequestOptions = { headers: [["x-a", "b"]], idleTimeoutMs: 30_000 };
  await client.request("echo", null, opts);
  const parts = await client.gather<{ free: boolean }>("presence", {}, { windowMs: 500, maxReplies: 3 });
  for (const p of parts) console.log(p.replier, p.error ? p.error.remoteCode : p.value.free);
  for await (const part of client.stream<{ done: true }, { pct: number }>("jobs", {}, { timeoutMs: 60_000 })) {
    if (part.kind === "progress") console.log(part.value.pct);
    else console.log(part.value.done);
  }

  const n: number = client.pending;
  const session: string | undefined = client.session;
  const ended: FerryError = await client.closed;
  await client.close();

  try {
    await client.request("echo", {});
  } catch (e) {
    if (e instanceof FerryError) {
      const code: FerryErrorCode = e.code;
      const remote: string | undefined = e.remoteCode;
      const cid: string | undefined = e.correlationId;
      const details: unknown = e.details;
      const msg: string = e.message;
      console.log(code, remote, cid, details, msg, id, text, bytes, n, session, ended);
    }
  }
  // Narrowing an unknown error by its code.
  try {
    await client.request("echo", {});
  } catch (e) {
    if (FerryError.is(e, "timeout", "disconnected")) {
      const retryable: "timeout" | "disconnected" = e.code;
      console.log(retryable);
    } else if (FerryError.is(e)) {
      switch (e.code) {
        case "remote":
          console.log(e.remoteCode, e.details);
          break;
        default: {
          const other: Exclude<FerryErrorCode, "remote"> = e.code;
          console.log(other);
        }
      }
    }
    // @ts-expect-error: narrowed to two codes, "remote" is not one of them
    if (FerryError.is(e, "timeout") && e.code === "remote") console.log(e);
  }
  const typed: FerryError<"timeout"> = new FerryError("timeout", "late");
  // @ts-expect-error: the code must be one of the stable codes
  new FerryError("nope", "x");
  console.log(typed);
  // Replies and progress typed by the caller.
  const reply = await client.request<{ total: number }, { pct: number }>("jobs", {}, { onProgress: (p) => p.pct.toFixed() });
  const total: number = reply.total;
  console.log(total);
  // @ts-expect-error: the progress type has no "step"
  await client.request<{ total: number }, { pct: number }>("jobs", {}, { onProgress: (p) => p.step });
  // @ts-expect-error: destination is required
  await client.request();
  // @ts-expect-error: not a code
  const bad: FerryErrorCode = "nope";
  console.log(bad);
  const resilient = await connect("ws://x/ws", {
    reconnect: { initialDelayMs: 100, maxDelayMs: 5_000, maxAttempts: 10 },
    whileReconnecting: "queue",
    maxQueued: 10,
    persist: { key: "k" },
    onStateChange: (s: ConnectionState) => console.log(s),
  });
  const st: ConnectionState = resilient.state;
  resilient.addEventListener("statechange", () => console.log(st));
  await resilient.request("q", {}, { meta: { patientId: 1 } });
  for (const r of resilient.resumed<{ patientId: number }>()) {
    const pid: number = r.meta.patientId;
    const again: string = await resilient.reattach<string>(r.id, { onProgress: (p) => console.log(p) });
    console.log(pid, again, r.expired, r.destination);
  }
  const err = new FerryError("timeout", "late", { correlationId: "c" });
  const asError: Error = err;
  console.log(asError);
}

void main;
