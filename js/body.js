// Bodies and headers as they cross between the app and the wasm module: a request body
// encoded by its type (JSON, text, bytes), a received body decoded by its content type, and
// header pairs.

import { FerryError } from "./error.js";

const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain; charset=utf-8";
const BYTES_TYPE = "application/octet-stream";
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** "json", "text" or undefined (bytes) for a content type (case-insensitive, no parameters). */
function kindOf(contentType) {
  if (!contentType) return undefined;
  const essence = contentType.split(";")[0].trim().toLowerCase();
  if (essence === JSON_TYPE || (essence.startsWith("application/") && essence.endsWith("+json"))) return "json";
  if (essence.startsWith("text/")) return "text";
  return undefined;
}

/**
 * A request body as [bytes, contentType]: plain objects, arrays, numbers, booleans and null
 * as JSON, strings as UTF-8 text, Uint8Array / ArrayBuffer / other views as raw bytes,
 * undefined as empty. `contentType` overrides the type of a string or bytes body.
 */
function encodeBody(body, contentType) {
  if (body === undefined) return [new Uint8Array(0), contentType];
  if (typeof body === "string") return [encoder.encode(body), contentType ?? TEXT_TYPE];
  if (body instanceof Uint8Array) return [body, contentType ?? BYTES_TYPE];
  if (body instanceof ArrayBuffer) return [new Uint8Array(body), contentType ?? BYTES_TYPE];
  if (ArrayBuffer.isView(body)) {
    return [new Uint8Array(body.buffer, body.byteOffset, body.byteLength), contentType ?? BYTES_TYPE];
  }
  if (contentType !== undefined && kindOf(contentType) !== "json") {
    throw new FerryError("bad_request", "with a non-JSON contentType the body must be a string or bytes");
  }
  let json;
  try {
    json = JSON.stringify(body);
  } catch (e) {
    throw new FerryError("bad_request", `body is not JSON-serialisable: ${e?.message ?? e}`, { cause: e });
  }
  if (json === undefined) throw new FerryError("bad_request", "body cannot be represented as JSON");
  return [encoder.encode(json), contentType ?? JSON_TYPE];
}

/**
 * A received body (a view into wasm memory, valid during this call) as a JS value. Text that
 * is not UTF-8 is handed over as bytes; a JSON body that does not parse throws its text.
 */
export function decodeBody(view, contentType) {
  const kind = kindOf(contentType);
  if (kind) {
    let text;
    try {
      text = decoder.decode(view);
    } catch {
      if (kind === "json") throw view.slice();
      return view.slice();
    }
    if (kind === "text") return text;
    try {
      return JSON.parse(text);
    } catch {
      throw text;
    }
  }
  return view.slice();
}

/** The headers as `[name, value]` pairs of strings (from an object, a Map, `Headers` or pairs). */
function headerPairs(headers) {
  if (headers == null) return [];
  const entries = Array.isArray(headers)
    ? headers
    : typeof headers.entries === "function"
      ? Array.from(headers.entries())
      : Object.entries(headers);
  const out = [];
  for (const [name, value] of entries) {
    if (value !== undefined) out.push([String(name), String(value)]);
  }
  return out;
}


/** A call's [header pairs, body bytes, content type]; throws a FerryError `bad_request`. */
export function prepare(body, headers, contentType) {
  let pairs;
  try {
    pairs = headerPairs(headers);
  } catch (e) {
    throw new FerryError("bad_request", "headers must be an object of strings", { cause: e });
  }
  return [pairs, ...encodeBody(body, contentType == null ? undefined : String(contentType))];
}
