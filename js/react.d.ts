// Type declarations of ferry-client/react (hand-written; they describe js/react.js).

import type { ReactElement, ReactNode } from "react";
import type { FerryClient, FerryError, RequestBody, RequestOptions, StreamPart } from "./index.js";

export interface FerryProviderProps {
  /** The client the hooks use: a FerryClient, or the Promise `connect()` returned. */
  client: FerryClient | Promise<FerryClient>;
  children?: ReactNode;
}

/** Makes a client available to {@link useRequest}, {@link useStream} and {@link useFerry}. */
export declare function FerryProvider(props: FerryProviderProps): ReactElement;

/**
 * The provider's client once connected, as `[client, error]`: both undefined while the
 * provider's Promise is pending, `error` if it rejected. Throws outside a FerryProvider.
 */
export declare function useFerry(): [FerryClient | undefined, FerryError | undefined];

/** `idle`: nothing asked (no destination, or `enabled: false`). */
export type RequestStatus = "idle" | "pending" | "success" | "error";

export interface UseRequestOptions<P = unknown> extends RequestOptions<P> {
  /** `false` holds the request (status `idle`) until it turns true. Default true. */
  enabled?: boolean;
}

export interface RequestState<T, P> {
  status: RequestStatus;
  /** The decoded reply, once `success`. */
  data: T | undefined;
  /** Why it failed, once `error` (`cancelled` after {@link RequestState.cancel}). */
  error: FerryError | undefined;
  /** The latest progress message the worker sent. */
  progress: P | undefined;
  /** Cancels the request in flight (the worker hears of it); status becomes `error`. */
  cancel(): void;
}

export interface StreamState<T, P> extends RequestState<T, P> {
  /** Every part so far: progress messages, then the reply. */
  parts: StreamPart<T, P>[];
}

/**
 * Sends `body` to `destination` while the component is mounted. A change of destination,
 * body or options (compared by value; callbacks excluded) cancels the request in flight and
 * sends a new one; unmounting cancels it. A `null`/`undefined` destination sends nothing.
 */
export declare function useRequest<T = unknown, P = unknown>(
  destination: string | null | undefined,
  body?: RequestBody,
  options?: UseRequestOptions<P>,
): RequestState<T, P>;

/** Like {@link useRequest}, keeping every part of the stream in `parts`. */
export declare function useStream<T = unknown, P = unknown>(
  destination: string | null | undefined,
  body?: RequestBody,
  options?: UseRequestOptions<P>,
): StreamState<T, P>;
