// Access tokens for connect()'s `token` option: a string, or a function returning a string
// or a Promise of one. A function is asked again before every reconnect and before the
// current token (a JWT) expires, so a long session renews without dropping its socket.

/** Seconds since the epoch of a JWT's `exp`, or undefined (not a JWT, or no `exp`). */
export function jwtExpiry(token) {
  try {
    const part = token.split(".")[1];
    if (!part) return undefined;
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
    return typeof json.exp === "number" ? json.exp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The token source of one client: `current` is what the next HELLO carries; `refresh()`
 * asks the function again; `renewals(send)` keeps renewing before expiry until `stop()`.
 */
export function tokenSource(option, makeError) {
  const check = (t) => {
    if (typeof t !== "string" || t === "") {
      throw makeError("bad_request", "token must be a non-empty string (or a function returning one)");
    }
    return t;
  };
  const fn = typeof option === "function" ? option : undefined;
  let current = option == null || fn ? undefined : check(option);
  let timer;
  let stopped = false;
  const src = {
    get current() {
      return current;
    },
    async refresh() {
      if (fn) current = check(await fn());
      return current;
    },
    /** Renews a minute (or a tenth of its life) before expiry; `send(token)` delivers it. */
    renewals(send) {
      clearTimeout(timer);
      const exp = current && jwtExpiry(current);
      if (!fn || stopped || exp === undefined) return;
      const left = exp * 1000 - Date.now();
      const early = Math.min(60_000, Math.max(1_000, left / 10));
      timer = setTimeout(async () => {
        try {
          send(await src.refresh());
        } catch {
          // The function failed: keep the old token; at expiry the bridge ends the session.
        }
        src.renewals(send);
      }, Math.max(0, left - early));
      timer?.unref?.();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
  return src;
}
