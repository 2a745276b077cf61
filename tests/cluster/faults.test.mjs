// Faults under load, counted: 2 bridges on the 3-node cluster of scripts/cluster.sh, ferry-client
// sessions (from npm pack) that know both bridges, amqplib workers on every node; then one
// node SIGKILLed, one bridge SIGKILLed, a rolling restart of the nodes, a node stalled
// (SIGSTOP) for 10 s. Each run's counts go to target/cluster-results/ (docs/reliability.md).
// Reply queues are the bridge's default (classic); FERRY_CLUSTER_REPLY_TYPE=quorum runs the same
// faults with `--reply-queue-type quorum` (docs/scaling.md compares the two).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { TARGET_DIR, startBridge, uniqueName } from "../support/bridge.mjs";
import { importInstalled } from "../support/package.mjs";
import { NODE_URLS, bridgeNode, cluster, metric, startLoad, startWorkers, summarize } from "./harness.mjs";

const REPLY_TYPE = process.env.FERRY_CLUSTER_REPLY_TYPE ?? "classic";
const RESULTS = join(TARGET_DIR, "cluster-results");
let lib;

before(async () => {
  await cluster("start");
  lib = await importInstalled();
  mkdirSync(RESULTS, { recursive: true });
});

after(async () => {
  // Whatever a test did to a node, the cluster is whole again for the next suite.
  await cluster("start");
});

/** Two bridges, workers and a load; `fault(ctx)` runs once the load is flowing. */
async function underLoad(name, fault) {
  const queue = uniqueName("ft.cluster");
  const workers = startWorkers(queue);
  const args = ["--reply-queue-type", REPLY_TYPE, "--max-connections-per-ip", "10000"];
  const amqpUrl = NODE_URLS.join(",");
  const bridges = [
    await startBridge({ allow: ["ft.*"], args, amqpUrl }),
    await startBridge({ allow: ["ft.*"], args, amqpUrl }),
  ];
  const load = await startLoad(lib, bridges.map((b) => b.wsUrl), WebSocket, { queue });
  try {
    await load.resolvedMore(200);
    const faultAt = Date.now();
    const extra = (await fault({ bridges, load })) ?? {};
    // Service is back: many more requests resolve after the fault ended.
    await load.resolvedMore(300, 90_000);
    const counts = await load.stop();
    let dropped = 0;
    for (const b of bridges) {
      if (b.process.exitCode === null && b.process.signalCode === null) {
        dropped += await metric(b, "ferry_dropped_replies_total");
      }
    }
    const result = summarize(name, counts, faultAt, {
      replyQueues: REPLY_TYPE,
      executedTwice: workers.duplicates(),
      droppedByBridge: dropped,
      ...extra,
    });
    writeFileSync(join(RESULTS, `${name}-${REPLY_TYPE}.json`), JSON.stringify(result, null, 2));
    console.log(`cluster fault ${name} (${REPLY_TYPE} reply queues): ${JSON.stringify(result)}`);
    assert.equal(result.hung, 0, "every request got a reply or a typed error");
    assert.equal(result.wrong, 0, "no request got another's reply");
    assert.ok(!("unknown" in result.failedByCode), `every failure is typed: ${JSON.stringify(result.failedByCode)}`);
    return result;
  } finally {
    await load.stop(1000).catch(() => {});
    for (const b of bridges) await b.kill();
    await workers.stop();
    await workers.deleteQueue();
  }
}

describe(`faults under load on a 3-node cluster (${REPLY_TYPE} reply queues)`, { timeout: 600_000 }, () => {
  test("SIGKILL of the node a bridge is connected to", async () => {
    await underLoad("kill-node", async ({ bridges }) => {
      const node = await bridgeNode(bridges[0]);
      const pid = await cluster("pid", String(node));
      process.kill(Number(pid), "SIGKILL");
      // The bridge moves to another node; /readyz says which.
      const deadline = Date.now() + 60_000;
      let now = node;
      while (now === node && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100)); // polling /readyz: the bridge has no event for it
        now = await bridgeNode(bridges[0]).catch(() => node);
      }
      assert.notEqual(now, node, "the bridge failed over to another node");
      const failovers = await metric(bridges[0], "ferry_broker_failovers_total");
      assert.ok(failovers >= 1, "the failover is counted in /metrics");
      await cluster("start-node", String(node));
      return { killedNode: node, movedTo: now };
    });
  });

  test("SIGKILL of one bridge: its clients resume on the other", async () => {
    const r = await underLoad("kill-bridge", async ({ bridges }) => {
      await bridges[0].kill();
    });
    assert.equal(r.failed, 0, `no request failed: ${JSON.stringify(r.failedByCode)}`);
  });

  test("rolling restart of all three nodes", async () => {
    await underLoad("rolling-restart", async ({ load }) => {
      for (const node of [1, 2, 3]) {
        await cluster("stop-node", String(node));
        await cluster("start-node", String(node));
        await load.resolvedMore(50, 60_000);
      }
    });
  });

  test("a node stalled (SIGSTOP) for 10 s", async () => {
    await underLoad("stall-node", async ({ bridges }) => {
      const node = await bridgeNode(bridges[0]);
      const pid = Number(await cluster("pid", String(node)));
      process.kill(pid, "SIGSTOP");
      try {
        await new Promise((r) => setTimeout(r, 10_000)); // the fault itself is 10 s long
      } finally {
        process.kill(pid, "SIGCONT");
      }
      return { stalledNode: node };
    });
  });
});
