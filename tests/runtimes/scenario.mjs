// The scenario every runtime test runs with the package it imported (Deno, a Vite build in
// Chromium, ...): connect with the runtime's own WebSocket, a JSON round trip, a burst of
// requests sent in one go (each frame leaves from the same wasm memory, so a runtime that
// read it after `send` returned would send another's bytes), a typed error, nothing left
// pending, close. Returns plain data so any host can report it as JSON.

/**
 * @param {{ connect: Function, FerryError: Function }} lib the imported ferry-client
 * @param {string} url the bridge's socket URL
 * @param {string} queue an echo worker's queue; `${queue}.missing` must be allowed but absent
 */
export async function scenario(lib, url, queue) {
  const out = {};
  const client = await lib.connect(url);
  out.session = typeof client.session === "string" && client.session.length > 0;
  out.reply = await client.request(queue, { hello: "runtime", n: 42 });
  const bodies = Array.from({ length: 40 }, (_, i) => ({ i, pad: String.fromCharCode(97 + (i % 26)).repeat(i * 97) }));
  const echoed = await Promise.all(bodies.map((b) => client.request(queue, b)));
  out.burstMismatches = echoed.filter((r, i) => r?.i !== i || r?.pad !== bodies[i].pad).length;
  try {
    await client.request(`${queue}.missing`, {});
    out.missing = "resolved";
  } catch (e) {
    out.missing = { code: e?.code, isFerryError: e instanceof lib.FerryError, isError: e instanceof Error };
  }
  out.pending = client.pending;
  await client.close();
  return out;
}

/** What every runtime must report. */
export const EXPECTED = {
  session: true,
  reply: { hello: "runtime", n: 42 },
  burstMismatches: 0,
  missing: { code: "no_route", isFerryError: true, isError: true },
  pending: 0,
};
