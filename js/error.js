// ferry-client's one error class: every failure rejects with a FerryError, whose `code` is
// one of the stable codes (docs/protocol.md), and how the wasm module makes one.

/** Every failure of ferry-client rejects with a FerryError. */
export class FerryError extends Error {
  /**
   * @param {string} code one of the stable codes (`timeout`, `no_route`, `remote`, ...)
   * @param {string} message a message a person understands
   * @param {{correlationId?: string, details?: unknown, remoteCode?: string, traceId?: string, cause?: unknown}} [options]
   */
  constructor(code, message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "FerryError";
    this.code = code;
    this.correlationId = options.correlationId;
    this.details = options.details;
    this.remoteCode = options.remoteCode;
    this.traceId = options.traceId;
  }

  /** Whether `value` is a FerryError, with one of `codes` if any are given. */
  static is(value, ...codes) {
    return value instanceof FerryError && (codes.length === 0 || codes.includes(value.code));
  }
}

export const makeError = (code, message, correlationId, details, remoteCode) =>
  new FerryError(code, message, { correlationId, details, remoteCode });
