// ferry-client/react: React bindings (a separate entry; React is the app's, a peer dependency).
// FerryProvider puts a client in context; useRequest and useStream run one request per
// (destination, body, options) and cancel it when those change or the component unmounts.

import { createContext, createElement, useCallback, useContext, useEffect, useRef, useState } from "react";
import { FerryError } from "./core.js";

const Ctx = createContext(undefined);

/** Makes `client` (a FerryClient, or a Promise of one from `connect`) available to the hooks below. */
export function FerryProvider({ client, children }) {
  return createElement(Ctx.Provider, { value: client }, children);
}

/** The provider's client once connected: `[client, error]` (both undefined while connecting). */
export function useFerry() {
  const given = useContext(Ctx);
  const [ready, setReady] = useState(() => (isThenable(given) ? [undefined, undefined] : [given, undefined]));
  useEffect(() => {
    if (!isThenable(given)) {
      setReady([given, undefined]);
      return undefined;
    }
    let live = true;
    setReady([undefined, undefined]);
    given.then(
      (c) => live && setReady([c, undefined]),
      (e) => live && setReady([undefined, asFerryError(e)]),
    );
    return () => {
      live = false;
    };
  }, [given]);
  if (given === undefined) throw new FerryError("bad_request", "ferry-client/react hooks need a <FerryProvider client={...}> above them");
  return ready;
}

const isThenable = (v) => typeof v?.then === "function";
const asFerryError = (e) => (e instanceof FerryError ? e : new FerryError("internal", String(e?.message ?? e), { cause: e }));

/** Identities of values JSON cannot hold, for keyOf. */
const ids = new WeakMap();
let nextId = 0;

/**
 * What identifies a request's arguments, compared by value: a change starts a new request.
 * Callbacks and the signal are not part of it; a body JSON cannot hold counts by identity.
 */
function keyOf(destination, body, options) {
  const { onProgress, signal, enabled, ...rest } = options ?? {};
  let b = body ?? null;
  if (ArrayBuffer.isView(b)) b = { bytes: Array.from(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) };
  else if (b instanceof ArrayBuffer) b = { bytes: Array.from(new Uint8Array(b)) };
  try {
    return JSON.stringify([destination, b, rest]);
  } catch {
    if (typeof body !== "object" || body === null) return `#${String(body)}`;
    if (!ids.has(body)) ids.set(body, ++nextId);
    return `#${ids.get(body)}`;
  }
}

const IDLE = { status: "idle", data: undefined, error: undefined, progress: undefined, parts: [] };

/**
 * Runs `run(client, signal, update)` for the current arguments and returns its state plus
 * `cancel`. The request is aborted on unmount and whenever the arguments change; nothing a
 * cancelled run reports reaches the state.
 */
function useRun(destination, body, options, run) {
  const [client, failed] = useFerry();
  const [state, setState] = useState(IDLE);
  const abort = useRef(undefined);
  const key = keyOf(destination, body, options);
  const args = useRef({ body, options });
  args.current = { body, options };
  const enabled = destination != null && options?.enabled !== false;
  useEffect(() => {
    if (failed) {
      setState({ ...IDLE, status: "error", error: failed });
      return undefined;
    }
    if (!enabled || !client) {
      setState(IDLE);
      return undefined;
    }
    const ac = new AbortController();
    abort.current = ac;
    const outer = args.current.options?.signal;
    const forward = () => ac.abort();
    outer?.addEventListener("abort", forward);
    const update = (change) => !ac.signal.aborted && setState((s) => ({ ...s, ...change(s) }));
    setState({ ...IDLE, status: "pending" });
    run(client, destination, args.current, ac.signal, update).then(
      (data) => update(() => ({ status: "success", data })),
      (e) => update(() => ({ status: "error", error: asFerryError(e) })),
    );
    return () => {
      outer?.removeEventListener("abort", forward);
      ac.abort();
    };
    // `key` stands for destination, body and options; `run` is fixed per hook.
  }, [client, failed, enabled, key]);
  const cancel = useCallback(() => {
    const ac = abort.current;
    if (!ac || ac.signal.aborted) return;
    ac.abort();
    setState((s) =>
      s.status === "pending" ? { ...s, status: "error", error: new FerryError("cancelled", "the request was cancelled") } : s,
    );
  }, []);
  return { ...state, cancel };
}

function request(client, destination, { body, options }, signal, update) {
  const onProgress = options?.onProgress;
  return client.request(destination, body, {
    ...options,
    signal,
    onProgress(p) {
      update(() => ({ progress: p }));
      if (typeof onProgress === "function") onProgress(p);
    },
  });
}

async function stream(client, destination, { body, options }, signal, update) {
  let last;
  for await (const part of client.stream(destination, body, { ...options, signal })) {
    update((s) => ({ parts: [...s.parts, part], progress: part.kind === "progress" ? part.value : s.progress }));
    last = part;
  }
  return last?.value;
}

/**
 * Sends a request while the component is mounted: `{ data, error, progress, status, cancel }`,
 * `status` being `idle` (no destination, or `enabled: false`), `pending`, `success` or `error`.
 */
export function useRequest(destination, body, options) {
  const { parts: _, ...state } = useRun(destination, body, options, request);
  return state;
}

/** Like useRequest, and `parts` lists every part of the stream so far (progress, then the reply). */
export function useStream(destination, body, options) {
  return useRun(destination, body, options, stream);
}
