// Test helper: assertions on what the npm package rejects with.

import assert from "node:assert/strict";

/**
 * Awaits `promise`, expecting it to reject with a FerryError (of the package `lib`) of
 * `code`; returns the error.
 */
export async function rejectsWith(lib, promise, code) {
  const err = await promise.then(
    (v) => assert.fail(`expected ${code}, resolved with ${JSON.stringify(v)}`),
    (e) => e,
  );
  assert.ok(err instanceof lib.FerryError, `not a FerryError: ${err}`);
  assert.ok(err instanceof Error);
  assert.equal(err.code, code, err.message);
  return err;
}
