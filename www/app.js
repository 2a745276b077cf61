// The patient-summary dashboard: connects to the Ferry bridge that serves this page and asks
// the `patient_summary_request` AMQP service for summaries, many at once.
//
// Everything Ferry-specific is a few calls of the ferry-client package:
//   connect(url, { token, persist: true })  ·  client.request(destination, body, { timeoutMs, signal, onProgress, meta })
//   client.resumed() and client.reattach(id) after a reload
//   client.gather(exchange, body, { windowMs })  ·  and FerryError's `.code` on failure.

import { PATIENTS } from "./patients.js";
import { h, renderError, renderSummary } from "./render.js";

// The AMQP queue the worker consumes (tests point the page at their own with ?queue=NAME).
const DESTINATION = new URLSearchParams(location.search).get("queue") || "patient_summary_request";
// The fanout exchange every worker answers "who is available?" on (?presence=NAME overrides).
const PRESENCE = new URLSearchParams(location.search).get("presence") || "patient_summary.presence";
const PRESENCE_WINDOW_MS = 1000;
const REQUEST_TIMEOUT_MS = 120_000;
const STATE_LABELS = {
  waiting: "Waiting",
  working: "In progress",
  done: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

const $ = (sel) => document.querySelector(sel);
const ui = {
  connection: $(".connection"),
  status: $("#connection-status"),
  reconnect: $("#reconnect"),
  patients: $("#patient-list"),
  requestAll: $("#request-all"),
  findReviewers: $("#find-reviewers"),
  reviewers: $("#reviewer-list"),
  reviewersStatus: $("#reviewers-status"),
  cards: $("#cards"),
  empty: $("#empty"),
  counts: $("#counts"),
  clear: $("#clear-finished"),
  announcer: $("#announcer"),
  signin: $("#signin"),
  clinician: $("#clinician"),
};

// Who is signed in. A real app gets its token from its login (an IdP); the demo's tokens are
// minted by scripts/demo.sh (`ferry-bridge token`) into demo-tokens.json (?tokens=URL
// overrides): [{ "user": "dr.okafor", "name": "Dr. Ada Okafor", "token": "eyJ..." }, ...].
// Without the file the page connects without a token (a bridge without authentication).
const TOKENS_URL = new URLSearchParams(location.search).get("tokens") || "./demo-tokens.json";
/** @type {{user: string, name: string, token: string}[]} */
let accounts = [];
let account = null;

let ferry = null; // the imported package
let client = null; // the connected client, or null
let connecting = null; // aborts the connect still trying (a new user, a manual reconnect)
let nextCard = 1;
/** @type {Map<number, Card>} */
const cards = new Map();

/** The bridge's socket: same origin as the page, path /ws (override with ?ws=URL). */
function socketUrl() {
  const override = new URLSearchParams(location.search).get("ws");
  if (override) return override;
  const url = new URL("/ws", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

// --- connection ------------------------------------------------------------------------------

function setConnection(state, text) {
  ui.connection.dataset.state = state;
  ui.status.textContent = text;
  ui.reconnect.hidden = state !== "disconnected";
  const connected = state === "connected" || state === "reconnecting";
  for (const button of document.querySelectorAll("[data-request]")) button.disabled = !connected;
  ui.requestAll.disabled = !connected;
  ui.findReviewers.disabled = !connected;
}

async function connectNow() {
  connecting?.abort();
  const attempt = new AbortController();
  connecting = attempt;
  setConnection("connecting", "Connecting…");
  // token: asked on every connect and reconnect, and before the token expires.
  const signedIn = account;
  let connected = null;
  try {
    // connect() retries until the bridge answers (and each later drop is a resume), so the
    // page needs no retry loop of its own. persist: the session and its pending summaries
    // survive a page reload (sessionStorage); replies are never lost.
    connected = await ferry.connect(socketUrl(), {
      token: signedIn ? () => signedIn.token : undefined,
      timeoutMs: REQUEST_TIMEOUT_MS,
      persist: signedIn ? { key: `ferry-demo:${signedIn.user}` } : true,
      signal: attempt.signal,
      onStateChange(state) {
        if (connecting !== attempt && client !== connected) return; // a replaced connection
        if (state === "reconnecting" && !connected) setConnection("connecting", "Connecting… (the bridge does not answer yet; retrying)");
        else if (state === "reconnecting") setConnection("reconnecting", "Reconnecting… summaries keep building");
        else if (state === "open") setConnection("connected", "Connected");
      },
    });
  } catch (err) {
    if (connecting === attempt) lostConnection(err);
    return;
  }
  if (connecting !== attempt) {
    connected.close().catch(() => {}); // replaced while it connected
    return;
  }
  connecting = null;
  client = connected;
  setConnection("connected", "Connected");
  for (const r of connected.resumed()) resumeSummary(r);
  // `closed` settles with a FerryError when the client gives up (or is closed).
  connected.closed?.then((reason) => {
    if (client === connected) lostConnection(reason);
  });
}

/** The connection ended for good (refused, or closed): say why; the button connects again. */
function lostConnection(err) {
  if (client) {
    const old = client;
    client = null;
    old.close?.().catch(() => {});
  }
  const why = err?.code ? ` (${err.code})` : "";
  setConnection("disconnected", `Disconnected${why}.`);
}

// --- cards -----------------------------------------------------------------------------------

/**
 * @typedef {object} Card
 * @property {number} id
 * @property {{id: number, name: string}} patient
 * @property {"waiting"|"working"|"done"|"failed"|"cancelled"} state
 * @property {number} started
 * @property {AbortController} controller
 * @property {Record<string, HTMLElement>} el
 */

function createCard(patient) {
  const id = nextCard++;
  const titleId = `card-${id}-title`;
  const el = {};
  el.title = h("h3", { id: titleId, tabindex: "-1" }, patient.name, " ", h("span", { class: "pid" }, `#${patient.id}`));
  el.badge = h("span", { class: "badge" }, STATE_LABELS.waiting);
  el.elapsed = h("span", { class: "elapsed" }, "0 s");
  el.stage = h("span", { class: "stage" }, "Queued, waiting for a worker");
  el.progress = h("progress", { max: "100", "aria-label": `Progress of ${patient.name}'s summary` });
  el.cancel = h(
    "button",
    { type: "button", class: "cancel secondary" },
    "Cancel",
    h("span", { class: "visually-hidden" }, ` summary for ${patient.name}`),
  );
  el.body = h("div", { class: "card-body" });
  el.root = h(
    "li",
    { class: "card", "data-state": "waiting", "data-patient-id": patient.id, "aria-labelledby": titleId, "aria-busy": "true" },
    h("div", { class: "card-head" }, el.title, el.badge),
    h("p", { class: "status-line" }, el.stage, h("span", { "aria-hidden": "true" }, " · "), el.elapsed),
    el.progress,
    h("div", { class: "card-actions" }, el.cancel),
    el.body,
  );
  const card = { id, patient, state: "waiting", started: performance.now(), controller: new AbortController(), el };
  el.cancel.addEventListener("click", () => {
    card.controller.abort();
    el.title.focus();
  });
  cards.set(id, card);
  ui.cards.prepend(el.root);
  return card;
}

function setState(card, state) {
  card.state = state;
  card.el.root.dataset.state = state;
  card.el.badge.textContent = STATE_LABELS[state];
  const active = state === "waiting" || state === "working";
  card.el.root.setAttribute("aria-busy", String(active));
  if (!active) {
    tick(card);
    card.el.cancel.remove();
    card.el.progress.remove();
  }
  updateCounts();
}

function tick(card) {
  const seconds = Math.floor((performance.now() - card.started) / 1000);
  const text = `${seconds} s`;
  if (card.el.elapsed.textContent !== text) card.el.elapsed.textContent = text;
}

function announce(text) {
  ui.announcer.textContent = text;
}

function updateCounts() {
  const n = { waiting: 0, working: 0, done: 0, failed: 0, cancelled: 0 };
  for (const card of cards.values()) n[card.state]++;
  const inFlight = n.waiting + n.working;
  const parts = [`${inFlight} in flight`, `${n.done} done`];
  if (n.failed) parts.push(`${n.failed} failed`);
  if (n.cancelled) parts.push(`${n.cancelled} cancelled`);
  ui.counts.textContent = cards.size ? parts.join(" · ") : "No requests yet";
  ui.clear.disabled = cards.size === inFlight;
  ui.empty.hidden = cards.size > 0;
}

// --- requests --------------------------------------------------------------------------------

async function requestSummary(patient) {
  if (!client) return;
  const card = createCard(patient);
  updateCounts();
  await follow(card, (onProgress) =>
    client.request(DESTINATION, { patientId: patient.id }, {
      timeoutMs: REQUEST_TIMEOUT_MS,
      signal: card.controller.signal,
      onProgress,
      meta: { patient },
    }),
  );
}

/** A summary the page was awaiting before a reload: its card again, and the same reply. */
async function resumeSummary(r) {
  const patient = r.meta?.patient;
  if (!patient) return;
  const card = createCard(patient);
  card.el.cancel.remove(); // a reattached request has no AbortSignal
  card.el.stage.textContent = "Resumed after reload; waiting for the summary…";
  updateCounts();
  await follow(card, (onProgress) => client.reattach(r.id, { onProgress }));
}

/** Renders a summary request's progress and outcome on its card. */
async function follow(card, start) {
  const { patient } = card;
  const onProgress = (p) => {
    if (card.state !== "waiting" && card.state !== "working") return;
    if (card.state === "waiting") setState(card, "working");
    const pct = Math.max(0, Math.min(100, Number(p?.pct) || 0));
    card.el.progress.value = pct;
    const where = p?.worker ? ` on ${p.worker}` : "";
    card.el.stage.textContent = `Building${where}: ${p?.stage ?? "working"} (${pct}%)`;
  };
  try {
    const summary = await start(onProgress);
    card.el.stage.textContent = "Ready";
    card.el.body.replaceChildren(renderSummary(summary));
    setState(card, "done");
    announce(`Summary for ${patient.name} is ready.`);
  } catch (err) {
    if (err?.code === "cancelled") {
      card.el.stage.textContent = "Cancelled";
      setState(card, "cancelled");
      announce(`Summary for ${patient.name} cancelled.`);
      return;
    }
    card.el.stage.textContent = "Failed";
    card.el.body.replaceChildren(renderError(err));
    setState(card, "failed");
    announce(`Summary for ${patient.name} failed: ${err?.message ?? err}`);
    if (err?.code === "closed") lostConnection(err);
  }
}

// --- reviewers: one gather to every running worker ---------------------------------------------

async function findReviewers() {
  if (!client) return;
  ui.findReviewers.disabled = true;
  ui.reviewersStatus.textContent = "Asking every summary service…";
  try {
    const parts = await client.gather(PRESENCE, { question: "available?" }, { windowMs: PRESENCE_WINDOW_MS });
    const answers = parts.filter((p) => !p.error).map((p) => p.value);
    answers.sort((a, b) => a.busy / a.capacity - b.busy / b.capacity || String(a.worker).localeCompare(b.worker));
    ui.reviewers.replaceChildren(
      ...answers.map((a) =>
        h(
          "li",
          { class: a.available ? "reviewer available" : "reviewer busy", "data-worker": a.worker },
          h("span", { class: "reviewer-name" }, a.worker),
          h("span", { class: "reviewer-load" }, `${a.busy} of ${a.capacity} slots busy`),
          h("span", { class: "badge" }, a.available ? "Available" : "Busy"),
        ),
      ),
    );
    const free = answers.filter((a) => a.available).length;
    ui.reviewersStatus.textContent = `${answers.length} answered within ${PRESENCE_WINDOW_MS / 1000} s; ${free} available.`;
  } catch (err) {
    ui.reviewers.replaceChildren();
    ui.reviewersStatus.textContent = `Could not ask (${err?.code ?? "error"}): ${err?.message ?? err}`;
  } finally {
    ui.findReviewers.disabled = !client;
  }
}

// --- page ------------------------------------------------------------------------------------

function renderPatients() {
  for (const patient of PATIENTS) {
    const button = h(
      "button",
      { type: "button", "data-request": patient.id, disabled: true },
      "Request",
      h("span", { class: "visually-hidden" }, ` summary for ${patient.name}`),
    );
    button.addEventListener("click", () => requestSummary(patient));
    ui.patients.append(
      h(
        "li",
        { class: patient.unknown ? "patient unknown" : "patient" },
        h("span", { class: "patient-name" }, patient.name),
        h("span", { class: "pid" }, `#${patient.id}`),
        button,
      ),
    );
  }
}

function wireControls() {
  ui.reconnect.addEventListener("click", () => connectNow());
  ui.findReviewers.addEventListener("click", findReviewers);
  ui.requestAll.addEventListener("click", () => {
    for (const patient of PATIENTS) if (!patient.unknown) requestSummary(patient);
  });
  ui.clear.addEventListener("click", () => {
    for (const [id, card] of cards) {
      if (card.state !== "waiting" && card.state !== "working") {
        card.el.root.remove();
        cards.delete(id);
      }
    }
    updateCounts();
    $("#summaries-heading").focus();
  });
  setInterval(() => {
    for (const card of cards.values()) if (card.state === "waiting" || card.state === "working") tick(card);
  }, 250);
}

// --- sign-in ---------------------------------------------------------------------------------

async function loadAccounts() {
  try {
    const res = await fetch(TOKENS_URL, { cache: "no-store" });
    if (!res.ok) return;
    const list = await res.json();
    accounts = Array.isArray(list) ? list.filter((a) => a && a.user && a.token) : [];
  } catch {
    accounts = [];
  }
  if (!accounts.length) return;
  for (const a of accounts) ui.clinician.append(h("option", { value: a.user }, a.name || a.user));
  account = accounts[0];
  ui.signin.hidden = false;
  ui.clinician.addEventListener("change", () => {
    account = accounts.find((a) => a.user === ui.clinician.value) ?? accounts[0];
    announce(`Signed in as ${account.name || account.user}`);
    // A new user is a new session: the old one ends (its pending summaries are cancelled).
    const old = client;
    client = null;
    old?.close?.().catch(() => {});
    connectNow();
  });
}

async function main() {
  renderPatients();
  wireControls();
  updateCounts();
  try {
    ferry = await import("ferry-client");
  } catch (err) {
    setConnection("disconnected", "The ferry-client package is not installed in www/.");
    ui.reconnect.hidden = true;
    document.body.prepend(
      h("p", { class: "banner", role: "alert" }, "Could not load ferry-client: run scripts/demo.sh, which builds the package and installs it here. (", String(err?.message ?? err), ")"),
    );
    return;
  }
  window.ferryDemo = { get client() { return client; }, cards };
  await loadAccounts();
  await connectNow();
}

main();
