// Checks the deployment files without a cluster or a Docker engine: every YAML file under
// deploy/kubernetes parses (every document of it) and holds what a rollout relies on (probes,
// a grace period covering the drain, non-root, no session affinity, a PDB and an HPA aimed at
// the Deployment, a three-node RabbitmqCluster, a kustomization listing every manifest); the
// Dockerfile builds ferry-bridge in stages and runs it as non-root; and every flag and FERRY_*
// variable they use exists in the real binary ($FERRY_BRIDGE_BIN, set by scripts/test.sh).

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { basename, join, posix, relative, sep } from "node:path";
import { parseAllDocuments } from "yaml";
import { ROOT } from "../support/bridge.mjs";

const K8S = join(ROOT, "deploy", "kubernetes");
const DOCKERFILE = join(ROOT, "Dockerfile");
/** Seconds the process may need after the drain budget to close its sockets and exit. */
const EXIT_MARGIN_S = 5;

// ---------------------------------------------------------------- reading the manifests

/** Paths of every .yaml/.yml file under `dir`, sorted. */
function yamlFiles(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => join(e.parentPath ?? e.path, e.name))
    .sort();
}

/** deploy/kubernetes-relative path with `/` separators. */
const rel = (path) => relative(K8S, path).split(sep).join(posix.sep);

let cache;
/**
 * Every non-empty document of every manifest, as { file, index, obj }. Throws on the first
 * file with a YAML error or warning (duplicate keys included) or no document at all.
 */
function manifests() {
  if (cache) return cache;
  const docs = [];
  for (const path of yamlFiles(K8S)) {
    const file = rel(path);
    // YAML 1.1, as kubectl reads manifests (`yes`, `on` and `0440` mean what they mean there).
    const parsed = Array.from(parseAllDocuments(readFileSync(path, "utf8"), { version: "1.1", uniqueKeys: true }));
    let found = 0;
    parsed.forEach((doc, index) => {
      const problems = [...doc.errors, ...doc.warnings];
      if (problems.length) throw new Error(`${file}, document ${index + 1}: ${problems.map((p) => p.message).join("; ")}`);
      const obj = doc.toJS();
      if (obj == null) return; // an empty document (a trailing `---`); kubectl skips it too
      found++;
      docs.push({ file, index, obj });
    });
    if (!found) throw new Error(`${file} holds no YAML document`);
  }
  return (cache = docs);
}

/** The documents of `kind`. */
const ofKind = (kind) => manifests().filter((d) => d.obj.kind === kind);

/** The one document of `kind` (whose object satisfies `pred`), failing unless exactly one. */
function one(kind, pred = () => true) {
  const found = ofKind(kind).filter((d) => pred(d.obj));
  assert.equal(found.length, 1, `expected exactly one ${kind} in deploy/kubernetes, found ${found.length}`);
  return found[0].obj;
}

/** Whether every label a selector asks for is among `labels`. */
const selects = (matchLabels, labels) =>
  Object.keys(matchLabels ?? {}).length > 0 && Object.entries(matchLabels).every(([k, v]) => labels?.[k] === v);

// ---------------------------------------------------------------- the bridge Deployment

const deployment = () => one("Deployment");
const podSpec = () => deployment().spec.template.spec;
const podLabels = () => deployment().spec.template.metadata.labels;

/** The bridge's container: the one named ferry-bridge, or the only one. */
function container() {
  const cs = podSpec().containers ?? [];
  const c = cs.find((x) => x.name === "ferry-bridge") ?? (cs.length === 1 ? cs[0] : undefined);
  assert.ok(c, "the Deployment has no container named ferry-bridge");
  return c;
}

/** The arguments a container passes the binary: its args, after its command's own (if it overrides the entrypoint). */
const argv = (c) => [...(c.command ?? []).slice(1), ...(c.args ?? [])].map(String);

/** The flags of an argument list, `--name=value`, `--name value` or `--name`: Map name -> values. */
function flagsOf(args) {
  const flags = new Map();
  for (let i = 0; i < args.length; i++) {
    if (!args[i].startsWith("--")) continue; // not a flag (the bridge takes no positional arguments)
    const eq = args[i].indexOf("=");
    let name = args[i];
    let value = true;
    if (eq > 0) {
      name = args[i].slice(0, eq);
      value = args[i].slice(eq + 1);
    } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
      value = args[++i];
    }
    flags.set(name, [...(flags.get(name) ?? []), value]);
  }
  return flags;
}

/** A container's env entry named `name`, if any. */
const envEntry = (c, name) => (c.env ?? []).find((e) => e.name === name);

/** A setting given as `flag` in the args or as literal `envName` in env (the flag wins, as in clap). */
function setting(c, flag, envName) {
  const values = flagsOf(argv(c)).get(flag);
  if (values) return values.at(-1);
  return envEntry(c, envName)?.value;
}

/** The port of a `host:port` listen address (`[::]:8080` too). */
function portOf(addr) {
  const m = /:(\d+)$/.exec(String(addr));
  assert.ok(m, `cannot read a port from the listen address ${addr}`);
  return Number(m[1]);
}

/** A probe's or Service's port, by number or by the container port's name. */
function resolvePort(c, port) {
  if (typeof port === "number") return port;
  const p = (c.ports ?? []).find((x) => x.name === port);
  assert.ok(p, `the container has no port named ${port}`);
  return p.containerPort;
}

/** Seconds of a humantime duration as written in the manifests (`30s`, `1m30s`, `500ms`, `2h`). */
function seconds(text) {
  const units = { ms: 0.001, s: 1, sec: 1, secs: 1, m: 60, min: 60, mins: 60, h: 3600, hr: 3600, hrs: 3600 };
  const s = String(text).replace(/\s+/g, "");
  const parts = [...s.matchAll(/(\d+)([a-z]+)/g)];
  assert.ok(parts.length && parts.map((p) => p[0]).join("") === s, `cannot read the duration ${text}`);
  return parts.reduce((sum, [, n, unit]) => {
    assert.ok(unit in units, `unknown unit ${unit} in the duration ${text}`);
    return sum + Number(n) * units[unit];
  }, 0);
}

/** The listen and admin ports the container's arguments (or env) set. */
function listenPorts(c) {
  const listen = setting(c, "--listen", "FERRY_LISTEN");
  const admin = setting(c, "--admin-listen", "FERRY_ADMIN_LISTEN");
  assert.ok(listen && admin, "the Deployment sets --listen and --admin-listen (the binary's defaults are loopback)");
  return { listen: portOf(listen), admin: portOf(admin) };
}

/** The Secret named `name` among the manifests (bridge-secret.example.yaml), failing if absent. */
function secret(name) {
  return one("Secret", (s) => s.metadata?.name === name);
}

/** Whether a Secret document defines `key` (in stringData or data). */
const secretHas = (s, key) => key in (s.stringData ?? {}) || key in (s.data ?? {});

// ---------------------------------------------------------------- the Dockerfile

/** The Dockerfile's instructions: { op (upper case), rest }, comments dropped, continuations joined. */
function dockerInstructions() {
  const text = readFileSync(DOCKERFILE, "utf8");
  const out = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!pending && (line === "" || line.startsWith("#"))) continue;
    if (pending && line.startsWith("#")) continue; // a comment inside a continued RUN
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = pending + line;
    pending = "";
    const m = /^(\S+)\s*(.*)$/.exec(full);
    if (m) out.push({ op: m[1].toUpperCase(), rest: m[2] });
  }
  return out;
}

/** The instructions after the last FROM (the image that ships). */
function finalStage(ins) {
  const last = ins.map((i) => i.op).lastIndexOf("FROM");
  return ins.slice(last);
}

/** Variables an ENV instruction sets (`ENV A=1 B=2`, or the legacy `ENV A 1`). */
function envVars(rest) {
  if (!rest.includes("=")) return [rest.split(/\s+/)[0]];
  return [...rest.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=/g)].map((m) => m[1]);
}

/** The workspace members listed in Cargo.toml. */
function workspaceMembers() {
  const toml = readFileSync(join(ROOT, "Cargo.toml"), "utf8");
  const m = /^members\s*=\s*\[([^\]]*)\]/m.exec(toml);
  assert.ok(m, "Cargo.toml has no workspace members list");
  return [...m[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]);
}

// ---------------------------------------------------------------- tests

describe("deploy/kubernetes manifests", () => {
  test("every file parses as YAML, and every document names its apiVersion, kind and metadata.name", () => {
    const docs = manifests();
    assert.ok(docs.length > 0, "deploy/kubernetes holds no manifests");
    for (const { file, index, obj } of docs) {
      const where = `${file}, document ${index + 1}`;
      assert.equal(typeof obj, "object", `${where} is not a mapping`);
      assert.ok(typeof obj.apiVersion === "string" && obj.apiVersion, `${where} has no apiVersion`);
      assert.ok(typeof obj.kind === "string" && obj.kind, `${where} has no kind`);
      assert.ok(typeof obj.metadata?.name === "string" && obj.metadata.name, `${where} has no metadata.name`);
    }
  });

  test("Deployment: replicas, ports matching the listen flags, probes on the admin port", () => {
    const d = deployment();
    const c = container();
    assert.equal(d.apiVersion, "apps/v1");
    assert.ok(d.spec.replicas >= 2, `replicas ${d.spec.replicas}: a lone bridge has nowhere to resume sessions`);
    assert.ok(selects(d.spec.selector?.matchLabels, podLabels()), "the Deployment's selector does not match its pod labels");
    const { listen, admin } = listenPorts(c);
    const declared = (c.ports ?? []).map((p) => p.containerPort);
    assert.ok(declared.includes(listen), `--listen port ${listen} is not among the container ports ${declared}`);
    assert.ok(declared.includes(admin), `--admin-listen port ${admin} is not among the container ports ${declared}`);

    const ready = c.readinessProbe?.httpGet;
    assert.equal(ready?.path, "/readyz", "the readinessProbe is an httpGet of /readyz");
    assert.equal(resolvePort(c, ready.port), admin, "the readinessProbe asks the admin port");
    const live = c.livenessProbe?.httpGet;
    assert.equal(live?.path, "/healthz", "the livenessProbe is an httpGet of /healthz (not /readyz: a broker outage must not restart bridges)");
    assert.equal(resolvePort(c, live.port), admin, "the livenessProbe asks the admin port");
  });

  test("Deployment: the grace period covers the preStop sleep, the drain timeout and the exit", () => {
    const c = container();
    const preStop = c.lifecycle?.preStop;
    assert.ok(preStop?.sleep, "a preStop sleep gives the endpoints time to drop the pod before SIGTERM");
    assert.equal(preStop.exec, undefined, "no preStop exec: the distroless image has no shell or sleep binary");
    const sleep = Number(preStop.sleep.seconds);
    assert.ok(sleep > 0, `preStop sleep of ${preStop.sleep.seconds} s`);
    const drainText = setting(c, "--drain-timeout", "FERRY_DRAIN_TIMEOUT");
    assert.ok(drainText, "the Deployment states --drain-timeout (or FERRY_DRAIN_TIMEOUT), the budget the grace period must cover");
    const drain = seconds(drainText);
    const grace = podSpec().terminationGracePeriodSeconds ?? 30;
    assert.ok(
      grace >= sleep + drain + EXIT_MARGIN_S,
      `terminationGracePeriodSeconds ${grace} < preStop ${sleep} s + --drain-timeout ${drain} s + ${EXIT_MARGIN_S} s to close and exit: the kubelet would SIGKILL a draining bridge`,
    );
  });

  test("Deployment: non-root, read-only, no capabilities, resources set", () => {
    const pod = podSpec().securityContext ?? {};
    const c = container();
    const sc = c.securityContext ?? {};
    assert.equal(sc.runAsNonRoot ?? pod.runAsNonRoot, true, "runAsNonRoot: true (container or pod)");
    const uid = sc.runAsUser ?? pod.runAsUser;
    assert.ok(uid === undefined || uid !== 0, "runAsUser is not 0");
    assert.equal(sc.readOnlyRootFilesystem, true, "readOnlyRootFilesystem: true");
    assert.equal(sc.allowPrivilegeEscalation, false, "allowPrivilegeEscalation: false");
    assert.ok(sc.capabilities?.drop?.includes("ALL"), "capabilities.drop includes ALL");
    assert.notEqual(sc.privileged, true, "not privileged");
    const r = c.resources ?? {};
    assert.ok(r.requests?.cpu && r.requests?.memory, "resources.requests sets cpu and memory");
    assert.ok(r.limits?.memory, "resources.limits sets memory");
  });

  test("Deployment: broker URLs and the JWT key come from Secrets, never from the manifest", () => {
    const c = container();
    const flags = flagsOf(argv(c));
    assert.ok(!flags.has("--amqp-url"), "--amqp-url in args would put the broker password in the pod spec: use FERRY_AMQP_URL from a Secret");
    const amqp = envEntry(c, "FERRY_AMQP_URL");
    const ref = amqp?.valueFrom?.secretKeyRef;
    assert.ok(ref?.name && ref?.key, "FERRY_AMQP_URL comes from a secretKeyRef");
    assert.ok(secretHas(secret(ref.name), ref.key), `the Secret ${ref.name} (bridge-secret.example.yaml) has no key ${ref.key}`);
    for (const value of [...argv(c), ...(c.env ?? []).map((e) => e.value ?? "")]) {
      assert.doesNotMatch(String(value), /amqps?:\/\/[^/\s]*@/, "no literal AMQP credentials in args or env");
    }

    assert.ok(!flags.has("--no-auth"), "a bridge on a cluster network authenticates (no --no-auth)");
    const keyFile = setting(c, "--jwt-secret-file", "FERRY_JWT_SECRET_FILE");
    assert.ok(keyFile, "the Deployment sets --jwt-secret-file (or FERRY_JWT_SECRET_FILE)");
    const mount = (c.volumeMounts ?? []).find((m) => keyFile.startsWith(`${m.mountPath.replace(/\/$/, "")}/`));
    assert.ok(mount, `no volumeMount holds ${keyFile}`);
    const volume = (podSpec().volumes ?? []).find((v) => v.name === mount.name);
    assert.ok(volume?.secret?.secretName, `the volume ${mount.name} holding ${keyFile} is a Secret`);
    const key = keyFile.slice(mount.mountPath.replace(/\/$/, "").length + 1);
    assert.ok(secretHas(secret(volume.secret.secretName), key), `the Secret ${volume.secret.secretName} has no key ${key}`);
  });

  test("Service: ClusterIP on the WebSocket port, without session affinity", () => {
    const s = one("Service");
    const c = container();
    const { listen, admin } = listenPorts(c);
    assert.ok((s.spec.type ?? "ClusterIP") === "ClusterIP", `type ${s.spec.type}`);
    assert.ok(
      s.spec.sessionAffinity === undefined || s.spec.sessionAffinity === "None",
      `sessionAffinity ${s.spec.sessionAffinity}: any bridge resumes any session, affinity only skews load and defeats drains`,
    );
    assert.ok(selects(s.spec.selector, podLabels()), "the Service's selector does not match the Deployment's pods");
    const targets = (s.spec.ports ?? []).map((p) => resolvePort(c, p.targetPort ?? p.port));
    assert.ok(targets.includes(listen), `no Service port reaches --listen port ${listen}`);
    assert.ok(!targets.includes(admin), "the admin port (/metrics) stays off the Service");
  });

  test("PodDisruptionBudget: selects the bridge pods and lets evictions through", () => {
    const pdb = one("PodDisruptionBudget", (p) => selects(p.spec?.selector?.matchLabels, podLabels()));
    assert.equal(pdb.apiVersion, "policy/v1");
    const { minAvailable, maxUnavailable } = pdb.spec;
    assert.ok((minAvailable === undefined) !== (maxUnavailable === undefined), "exactly one of minAvailable and maxUnavailable");
    if (maxUnavailable !== undefined) {
      assert.ok(maxUnavailable !== 0 && maxUnavailable !== "0%", "maxUnavailable 0 would block every node drain");
    } else if (typeof minAvailable === "number") {
      const floor = Math.min(deployment().spec.replicas, one("HorizontalPodAutoscaler").spec.minReplicas);
      assert.ok(minAvailable < floor, `minAvailable ${minAvailable} with as few as ${floor} replicas blocks every node drain`);
    }
  });

  test("HorizontalPodAutoscaler: autoscaling/v2 on CPU, aimed at the Deployment", () => {
    const hpa = one("HorizontalPodAutoscaler");
    const d = deployment();
    assert.equal(hpa.apiVersion, "autoscaling/v2");
    assert.equal(hpa.spec.scaleTargetRef?.kind, "Deployment");
    assert.equal(hpa.spec.scaleTargetRef?.name, d.metadata.name, "scaleTargetRef names the bridge Deployment");
    assert.equal(hpa.spec.scaleTargetRef?.apiVersion, "apps/v1");
    assert.ok(hpa.spec.minReplicas >= 2, `minReplicas ${hpa.spec.minReplicas}: a lone bridge has nowhere to resume sessions`);
    assert.ok(hpa.spec.maxReplicas >= hpa.spec.minReplicas, "maxReplicas >= minReplicas");
    const cpu = (hpa.spec.metrics ?? []).find((m) => m.type === "Resource" && m.resource?.name === "cpu");
    assert.equal(cpu?.resource?.target?.type, "Utilization", "a cpu Utilization metric");
    assert.ok(cpu.resource.target.averageUtilization > 0, "averageUtilization is set");
  });

  test("RabbitmqCluster: three nodes, and the bridge's URL list names each of them", () => {
    const rmq = one("RabbitmqCluster");
    assert.equal(rmq.apiVersion, "rabbitmq.com/v1beta1");
    assert.equal(rmq.spec.replicas, 3, "three nodes: a partition always leaves a majority");
    assert.ok(rmq.spec.persistence?.storage, "persistence.storage is set");
    assert.ok(rmq.spec.resources?.limits?.memory, "resources.limits.memory is set (RabbitMQ's memory budget derives from it)");
    assert.match(rmq.spec.rabbitmq?.additionalConfig ?? "", /^\s*cluster_partition_handling\s*=\s*pause_minority\s*$/m);

    const ref = envEntry(container(), "FERRY_AMQP_URL").valueFrom.secretKeyRef;
    const s = secret(ref.name);
    const urls = String(s.stringData?.[ref.key] ?? Buffer.from(s.data?.[ref.key] ?? "", "base64").toString()).split(",");
    const name = rmq.metadata.name;
    const hosts = urls.map((u) => {
      assert.match(u.trim(), /^amqps?:\/\//, `${u} is not an amqp:// or amqps:// URL`);
      return new URL(u.trim()).hostname;
    });
    const expected = Array.from({ length: rmq.spec.replicas }, (_, i) => `${name}-server-${i}.${name}-nodes`);
    assert.deepEqual(hosts.sort(), expected, "one URL per RabbitMQ node, by the operator's pod names");
  });

  test("kustomization.yaml lists every manifest (the Secret template excepted) and the bridge image", () => {
    const k = one("Kustomization");
    const listed = (k.resources ?? []).map(String);
    for (const r of listed) assert.ok(existsSync(join(K8S, r)), `kustomization.yaml lists ${r}, which does not exist`);
    const files = yamlFiles(K8S)
      .map(rel)
      .filter((f) => basename(f) !== "kustomization.yaml" && basename(f) !== "kustomization.yml");
    const templates = files.filter((f) => /\.example\.ya?ml$/.test(f));
    const expected = files.filter((f) => !templates.includes(f));
    assert.deepEqual([...listed].sort(), expected.sort(), "kustomization.yaml's resources are exactly the manifests present");
    for (const t of templates) {
      assert.ok(!listed.includes(t), `${t} is a template: applying it would overwrite real Secrets with placeholders`);
    }
    const image = container().image.replace(/@.*$/, "");
    const repo = /:[^/]+$/.test(image) ? image.slice(0, image.lastIndexOf(":")) : image;
    assert.ok((k.images ?? []).some((i) => i.name === repo), `kustomization.yaml has no images entry for ${repo}`);
  });
});

describe("Dockerfile", () => {
  test("two or more stages, builds -p ferry-bridge, ships it alone as a non-root user", () => {
    const ins = dockerInstructions();
    const froms = ins.filter((i) => i.op === "FROM");
    assert.ok(froms.length >= 2, `${froms.length} FROM: a build stage and a small runtime stage`);
    const build = ins.find((i) => i.op === "RUN" && /\bcargo\s+build\b/.test(i.rest));
    assert.ok(build, "a RUN cargo build");
    assert.match(build.rest, /(?:-p|--package)[\s=]ferry-bridge\b/, "cargo build -p ferry-bridge");
    assert.match(build.rest, /--release\b/, "cargo build --release");
    assert.match(build.rest, /--locked\b/, "cargo build --locked (the image gets Cargo.lock's versions)");

    const last = finalStage(ins);
    assert.ok(last.some((i) => i.op === "COPY" && /--from=/.test(i.rest)), "the final stage copies the binary from the build stage");
    assert.ok(!last.some((i) => i.op === "RUN" && /\bcargo\b/.test(i.rest)), "no cargo in the final stage");
    const users = last.filter((i) => i.op === "USER");
    assert.ok(users.length, "the final stage sets USER");
    const user = users.at(-1).rest.split(":")[0].trim();
    assert.ok(user !== "0" && user !== "root", `USER ${user} is root`);
    assert.match(user, /^\d+$/, "a numeric USER, so Kubernetes can verify runAsNonRoot");
    assert.ok(last.some((i) => i.op === "ENTRYPOINT"), "an ENTRYPOINT");
  });

  test("copies every workspace member, exposes the Deployment's ports, ignores build output", () => {
    const ins = dockerInstructions();
    const sources = ins
      .filter((i) => (i.op === "COPY" || i.op === "ADD") && !/--from=/.test(i.rest))
      .flatMap((i) => i.rest.split(/\s+/).filter((w) => !w.startsWith("--")).slice(0, -1))
      .map((s) => s.replace(/^\.\/?/, "").replace(/\/$/, ""));
    for (const member of workspaceMembers()) {
      assert.ok(
        sources.some((s) => s === "" || member === s || member.startsWith(`${s}/`)),
        `the Dockerfile does not copy the workspace member ${member} (cargo needs every member to build one)`,
      );
    }
    const exposed = ins.filter((i) => i.op === "EXPOSE").flatMap((i) => i.rest.split(/\s+/).map((p) => Number(p.split("/")[0])));
    const { listen, admin } = listenPorts(container());
    assert.ok(exposed.includes(listen) && exposed.includes(admin), `EXPOSE ${exposed} covers ports ${listen} and ${admin}`);

    const ignore = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim().replace(/^\*\*\//, "").replace(/\/$/, ""));
    for (const p of ["target", "node_modules", ".git"]) assert.ok(ignore.includes(p), `.dockerignore excludes ${p}`);
  });
});

describe("the real binary", () => {
  test("every flag and FERRY_* variable of the Deployment and the image exists in ferry-bridge", () => {
    const bin = process.env.FERRY_BRIDGE_BIN;
    assert.ok(
      bin,
      "FERRY_BRIDGE_BIN is not set: point it at a built ferry-bridge (scripts/test.sh sets it to " +
        "target/debug/ferry-bridge after `cargo build -p ferry-bridge`) so the flags in deploy/ are checked against the binary",
    );
    assert.ok(existsSync(bin), `FERRY_BRIDGE_BIN=${bin} does not exist: build it with \`cargo build -p ferry-bridge\``);
    // A clean environment: FERRY_* variables of the caller must not change what is parsed.
    const run = (args) => spawnSync(bin, args, { encoding: "utf8", env: { PATH: process.env.PATH ?? "" }, timeout: 30_000 });
    const help = run(["--help"]);
    assert.equal(help.status, 0, `${bin} --help failed: ${help.error ?? help.stderr}`);

    const c = container();
    const args = argv(c);
    for (const flag of flagsOf(args).keys()) {
      const known = new RegExp(`(^|[\\s,\\[])${flag.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![\\w-])`, "m").test(help.stdout);
      assert.ok(known, `${flag} (bridge-deployment.yaml) is not a flag of ferry-bridge --help`);
    }
    const dockerEnv = dockerInstructions().filter((i) => i.op === "ENV").flatMap((i) => envVars(i.rest));
    const envNames = [...(c.env ?? []).map((e) => e.name), ...dockerEnv].filter((n) => n.startsWith("FERRY_"));
    assert.ok(envNames.includes("FERRY_AMQP_URL"), "the Deployment sets FERRY_AMQP_URL");
    for (const name of envNames) {
      assert.ok(new RegExp(`\\benv: ${name}\\b`).test(help.stdout), `${name} is not a variable ferry-bridge --help lists`);
    }

    // And clap accepts the Deployment's arguments, values included (parsed before --help acts).
    const parsed = run([...args, "--help"]);
    assert.equal(parsed.status, 0, `ferry-bridge refuses the Deployment's arguments ${args.join(" ")}:\n${parsed.stderr}`);
  });
});
