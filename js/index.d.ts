// Type declarations of the npm package ferry-client (hand-written; they describe js/core.js).

/** The stable codes a {@link FerryError} carries in `.code`. */
export type FerryErrorCode =
  | "timeout"
  | "no_route"
  | "forbidden"
  | "remote"
  | "cancelled"
  | "disconnected"
  | "closed"
  | "bad_request"
  | "too_large"
  | "overloaded"
  | "no_responders"
  | "broker_rejected"
  | "broker_unavailable"
  | "session_expired"
  | "shutting_down"
  | "internal"
  | "rate_limited"
  | "unauthorized"
  | "unknown";

/**
 * Every failure of ferry-client rejects with a FerryError (a real `Error` subclass). `C` is its
 * code: `FerryError.is(e, "timeout", "disconnected")` narrows an unknown `e` to
 * `FerryError<"timeout" | "disconnected">`, and a `switch (e.code)` over a FerryError can be
 * checked for exhaustiveness.
 */
export declare class FerryError<C extends FerryErrorCode = FerryErrorCode> extends Error {
  constructor(
    code: C,
    message: string,
    options?: { correlationId?: string; details?: unknown; remoteCode?: string; traceId?: string; cause?: unknown },
  );
  readonly name: "FerryError";
  /** Why the request (or the connection) failed. */
  readonly code: C;
  /** The request's correlation id (a UUID v4), when the failure concerns one request. */
  readonly correlationId: string | undefined;
  /** For `remote`: the worker's error body, decoded by its content type. */
  readonly details: unknown;
  /** For `remote`: the worker's own error code (its `x-ferry-error` header). */
  readonly remoteCode: string | undefined;
  /** The W3C trace id (32 hex digits) of a traced request, for the app's logs. */
  traceId: string | undefined;
  /** Whether `value` is a FerryError, with one of `codes` if any are given. */
  static is<K extends FerryErrorCode = FerryErrorCode>(value: unknown, ...codes: K[]): value is FerryError<K>;
}

/** A WebSocket constructor: the browser's, or e.g. the `ws` package's on Node 20. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => unknown;

/** The subset of `AbortSignal` the client uses (a real `AbortSignal` fits). */
export interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** The connection's state: `reconnecting` while a dropped socket is being replaced. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** How the client reconnects after the socket drops (full-jitter exponential backoff). */
export interface ReconnectOptions {
  /** First delay ceiling, in ms (default 250); each attempt doubles it. */
  initialDelayMs?: number;
  /** Largest delay ceiling, in ms (default 10 000). */
  maxDelayMs?: number;
  /** Attempts before giving up and closing with `disconnected` (default 0: no limit). */
  maxAttempts?: number;
}

/** A storage for `persist` (`sessionStorage` fits). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A request the page was awaiting before a reload, from {@link FerryClient.resumed}. */
export interface ResumedRequest<M = any> {
  /** Its correlation id: pass it to {@link FerryClient.reattach}. */
  id: string;
  /** Where it was sent. */
  destination: string;
  /** The `meta` it was sent with. */
  meta: M;
  /** The session could not be resumed: `reattach` rejects with `session_expired`. */
  expired: boolean;
}

export interface ConnectOptions {
  /**
   * The access token (a JWT) the bridge checks on connect, sent in the HELLO frame (never in
   * the URL). A function is called on every connect and reconnect, and again before the
   * current token's `exp`, so a long session renews without dropping its socket. A refused
   * token rejects `connect` (and ends a reconnecting client) with code `unauthorized`.
   */
  token?: string | (() => string | Promise<string>);
  /** Default timeout of a request, in milliseconds (default: the bridge's). */
  timeoutMs?: number;
  /**
   * Reconnect and resume the session when the socket drops (default true). Pending requests
   * survive; replies that arrived meanwhile are delivered once. `false`: a dropped socket
   * ends the client and its requests reject with `disconnected`. In browsers and web workers
   * it follows `online`/`offline`: no attempt while offline (none of `maxAttempts` spent),
   * one at once when back online.
   */
  reconnect?: boolean | ReconnectOptions;
  /** Requests made while reconnecting wait for the socket (`queue`, default) or reject with `disconnected`. */
  whileReconnecting?: "queue" | "reject";
  /** Most requests waiting for the socket while reconnecting (default 1000). */
  maxQueued?: number;
  /** Called with each state change (also a `statechange` event on the client). */
  onStateChange?: (state: ConnectionState) => void;
  /**
   * Keep the session and its pending requests in the page's storage (default
   * `sessionStorage`, per tab), so that after a reload `connect` resumes the session and
   * {@link FerryClient.resumed} lists what the previous page awaited. The storage holds the
   * session's resume token: anyone who can read it can take the session over.
   */
  persist?: boolean | { storage?: StorageLike; key?: string };
  /** Time allowed to open the socket and complete the handshake (default 10 000 ms). */
  connectTimeoutMs?: number;
  /**
   * Reject at the first failed connection instead of retrying it. By default `connect` retries
   * the first connection like a reconnect (the `reconnect` policy: full-jitter backoff, each
   * attempt may pick another URL, `maxAttempts`), reporting `reconnecting` to `onStateChange`
   * between attempts, and resolves once connected; a refusal no retry can cure
   * (`unauthorized`, `bad_request`, `forbidden`) rejects at once. `reconnect: false` fails
   * fast too.
   */
  failFast?: boolean;
  /** Aborting it stops a connect that is still trying: it rejects with `cancelled`. */
  signal?: AbortSignalLike;
  /**
   * One socket for all of the browser's tabs (same origin, same bridge URLs): the connection
   * lives in a `SharedWorker` and this client talks to it over a `MessagePort`, with the same
   * API. Replies go to the tab that asked; a tab that closes cancels only its own requests;
   * the last tab out closes the socket. The first tab's connect options set up the shared
   * connection (`token` may be a function: the worker asks a tab for it). Not with `persist`
   * (a per-tab session); where `SharedWorker` is missing, a socket per tab as without it.
   */
  shared?: boolean;
  /** The WebSocket constructor to use where the runtime has no global one. */
  WebSocket?: WebSocketConstructor;
  /**
   * Start a W3C trace for every request that has none (a fresh `traceparent`, sampled), so
   * the bridge and the workers record their spans in it; a failure's `error.traceId` and a
   * stream part's `traceId` name it. Default false.
   */
  tracing?: boolean;
}

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json | undefined };

/**
 * A request body: a plain object, array, number, boolean or null is sent as JSON, a string as
 * `text/plain; charset=utf-8`, bytes as `application/octet-stream`, `undefined` as empty.
 */
export type RequestBody = Json | object | Uint8Array | ArrayBuffer | ArrayBufferView | undefined;

/** What a reply decodes to: JSON → its value, `text/*` → a string, anything else → bytes. */
export type ReplyBody = unknown;

export interface RequestOptions<P = any> {
  /** Milliseconds to wait for the reply (clamped to the bridge's maximum). */
  timeoutMs?: number;
  /**
   * Keep waiting past `timeoutMs` while the worker reports progress: each progress message
   * moves the deadline to now + this many milliseconds (if later). A silent job times out.
   */
  idleTimeoutMs?: number;
  /** Aborting it rejects the request with `cancelled` and tells the bridge. */
  signal?: AbortSignalLike;
  /** Application headers for the worker (names `a-z 0-9 - _`, no `x-ferry-*`). */
  headers?: Record<string, string | number | boolean> | Iterable<[string, string]> | { entries(): Iterable<[string, string]> };
  /** Called with each progress message the worker sends before its reply. */
  onProgress?: (progress: P) => void;
  /** Send a string or bytes body with this content type instead of the default. */
  contentType?: string;
  /** JSON-serialisable data kept with the request when `persist` is on; `resumed()` returns it. */
  meta?: unknown;
  /**
   * The W3C `traceparent` this request belongs to (the app's current span), e.g. from
   * OpenTelemetry's propagator; also taken from a `traceparent` header. Its trace id is then
   * `error.traceId` and each stream part's `traceId`.
   */
  traceparent?: string;
  /** The W3C `tracestate` passed with it, unchanged. */
  tracestate?: string;
}

export interface GatherOptions {
  /** How long to collect replies, in milliseconds (default: the connection's timeout). */
  windowMs?: number;
  /** Stop as soon as this many replies arrived. */
  maxReplies?: number;
  /** Routing key for a topic or direct exchange (none for fanout). */
  routingKey?: string;
  /** Aborting it rejects the gather with `cancelled`. */
  signal?: AbortSignalLike;
  /** Application headers for the workers. */
  headers?: RequestOptions["headers"];
  /** Send a string or bytes body with this content type instead of the default. */
  contentType?: string;
}

/** One reply to a gather: its decoded value, or the worker's error reply as a `remote` FerryError. */
export type GatherPart<T = any> =
  | { replier: string | undefined; value: T; error?: undefined }
  | { replier: string | undefined; error: FerryError; value?: undefined };

/** One part of a {@link FerryClient.stream}: a progress message, or the final reply (last). */
export type StreamPart<T = any, P = any> =
  | { kind: "progress"; value: P; traceId?: string }
  | { kind: "reply"; value: T; traceId?: string };

/** A connection to a Ferry bridge. Dispatches `statechange` events (`event.state`). */
export declare class FerryClient extends EventTarget {
  private constructor();
  /** `connecting`, `open`, `reconnecting` or `closed`. */
  readonly state: ConnectionState;
  /** After a reload (with `persist`): the requests the previous page awaited, until reattached. */
  resumed<M = any>(): ResumedRequest<M>[];
  /** A Promise for the reply of a request from {@link resumed}. */
  reattach<T = any, P = any>(id: string, options?: { onProgress?: (progress: P) => void }): Promise<T>;
  /** Sends `body` to the queue `destination`; resolves with the decoded reply. */
  request<T = any, P = any>(destination: string, body?: RequestBody, options?: RequestOptions<P>): Promise<T>;
  /**
   * Sends `body` to `destination` and yields each progress message, then the reply; throws a
   * FerryError on failure. Leaving the loop early cancels the request.
   */
  stream<T = any, P = any>(destination: string, body?: RequestBody, options?: RequestOptions<P>): AsyncGenerator<StreamPart<T, P>, void, undefined>;
  /**
   * Publishes `body` once to the exchange `destination` (allowlisted on the bridge with
   * `--allow-exchange`) and resolves with every reply within the window, tagged with who replied.
   */
  gather<T = any>(destination: string, body?: RequestBody, options?: GatherOptions): Promise<GatherPart<T>[]>;
  /** Number of requests awaiting a reply. */
  readonly pending: number;
  /** The session id the bridge assigned. */
  readonly session: string | undefined;
  /** Settles when the connection ends, with a FerryError saying why. */
  readonly closed: Promise<FerryError>;
  /** Closes the connection; pending requests reject with `closed`. */
  close(): Promise<void>;
}

/**
 * Connects to a Ferry bridge (`ws://host:port/ws`); resolves once the handshake is done. Given
 * several bridges' URLs, it opens one at random and each reconnect tries the next, so a session
 * resumes on whichever bridge answers.
 */
export declare function connect(
  url: string | URL | ReadonlyArray<string | URL>,
  options?: ConnectOptions,
): Promise<FerryClient>;
