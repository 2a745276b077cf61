// Authentication seen from the npm package (installed from `npm pack`): the `token` option
// as a string and as a function, tokens minted by the documented `ferry-bridge token`
// command, what an ordinary amqplib worker learns about the caller, renewal without a
// dropped socket, and expiry without renewal.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { bridgeBinary, startBridge, uniqueName } from "../support/bridge.mjs";
import { startWorker } from "../support/worker.mjs";
import { importInstalled } from "../support/package.mjs";
import { rejectsWith as rejectsWithError } from "../support/assert.mjs";
import { portOf, startProxy } from "../support/proxy.mjs";

const PREFIX = uniqueName("ft.auth");
const queue = `${PREFIX}.who`;
const secretFile = join(mkdtempSync(join(tmpdir(), "ferry-auth-")), "secret");
let bridge;
let worker;
let lib;

/** A development token from `ferry-bridge token`. */
function mint(sub, ...flags) {
  const args = ["token", "--secret-file", secretFile, "--sub", sub, ...flags];
  return execFileSync(bridgeBinary(), args, { encoding: "utf8" }).trim();
}

before(async () => {
  writeFileSync(secretFile, "a node test secret, at least 32 bytes long\n");
  lib = await importInstalled();
  worker = await startWorker(queue);
  bridge = await startBridge({
    allow: [`${PREFIX}.*`],
    args: ["--jwt-secret-file", secretFile, "--jwt-leeway", "0s", "--forward-claim", "ward"],
  });
});

after(async () => {
  await worker?.stop();
  await bridge?.stop();
});

/** Awaits `promise`, expecting a FerryError of `code`; returns the error. */
const rejectsWith = (promise, code) => rejectsWithError(lib, promise, code);

const whoami = { headers: { "x-mode": "whoami" } };

describe("token", () => {
  test("connect without a token, or with a bad one, rejects with unauthorized", async () => {
    const e = await rejectsWith(lib.connect(bridge.wsUrl, { WebSocket, reconnect: false }), "unauthorized");
    assert.match(e.message, /token is required/);
    await rejectsWith(lib.connect(bridge.wsUrl, { WebSocket, token: "not.a.jwt" }), "unauthorized");
    const otherSecret = join(mkdtempSync(join(tmpdir(), "ferry-auth-")), "secret");
    writeFileSync(otherSecret, "another secret of at least 32 bytes, not the bridge's");
    const forged = execFileSync(bridgeBinary(), ["token", "--secret-file", otherSecret, "--sub", "x"], { encoding: "utf8" }).trim();
    const bad = await rejectsWith(lib.connect(bridge.wsUrl, { WebSocket, token: forged }), "unauthorized");
    assert.match(bad.message, /signature/);
  });

  test("a string token: the worker sees x-ferry-user and the forwarded claim", async () => {
    const token = mint("dr.alice", "--claim", "ward=B4", "--allow", queue);
    const client = await lib.connect(bridge.wsUrl, { WebSocket, token });
    try {
      assert.deepEqual(await client.request(queue, {}, whoami), { user: "dr.alice", ward: "B4" });
      // The token narrows --allow: another queue under the bridge's pattern is forbidden.
      await rejectsWith(client.request(`${PREFIX}.other`, {}), "forbidden");
      // A client header cannot pose as the bridge's.
      await rejectsWith(client.request(queue, {}, { headers: { "x-ferry-user": "dr.bob" } }), "forbidden");
    } finally {
      await client.close();
    }
  });

  test("a function is asked again before expiry: a request spans renewals on one socket", async () => {
    let calls = 0;
    const states = [];
    const token = async () => {
      calls++;
      return mint("dr.alice", "--ttl", "2s");
    };
    const client = await lib.connect(bridge.wsUrl, { WebSocket, token, onStateChange: (s) => states.push(s) });
    try {
      const body = await client.request(queue, { slow: true }, {
        timeoutMs: 20_000,
        headers: { "x-mode": "delay", "x-delay-ms": "5000" },
      });
      assert.deepEqual(body, { slow: true });
      assert.ok(calls >= 3, `the function was called ${calls} times over 5 s of 2 s tokens`);
      assert.ok(!states.includes("reconnecting"), `the socket never dropped: ${states}`);
      assert.equal((await client.request(queue, {}, whoami)).user, "dr.alice");
    } finally {
      await client.close();
    }
  });

  test("a token that expires unrenewed ends the session: pending requests and the client get unauthorized", async () => {
    const client = await lib.connect(bridge.wsUrl, { WebSocket, token: mint("dr.alice", "--ttl", "2s") });
    const pending = client.request(queue, {}, { timeoutMs: 30_000, headers: { "x-mode": "silent" } });
    await rejectsWith(pending, "unauthorized");
    const ended = await client.closed;
    assert.equal(ended.code, "unauthorized", ended.message);
    assert.equal(client.state, "closed");
  });

  test("a reconnect refused for its token ends the client with unauthorized, without a retry loop", async () => {
    const proxy = await startProxy(portOf(bridge.wsUrl));
    let calls = 0;
    const token = () => {
      calls++;
      // The first connect gets a good token; after that the user was signed out.
      return calls === 1 ? mint("dr.alice") : "signed.out.token";
    };
    const client = await lib.connect(proxy.url("/ws"), {
      WebSocket,
      token,
      reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
    });
    assert.equal(await client.request(queue, "before"), "before");
    proxy.cut();
    const ended = await client.closed;
    assert.equal(ended.code, "unauthorized", ended.message);
    assert.equal(client.state, "closed");
    const settled = calls;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(calls, settled, "no more attempts after unauthorized");
    assert.ok(calls <= 3, `asked ${calls} times`);
    await proxy.close();
  });
});

