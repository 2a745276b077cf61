// Turns a summary (the worker's JSON reply) and errors into DOM nodes. No innerHTML: every
// value is inserted as text.

/** Creates an element with attributes and children (strings become text nodes). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return el;
}

function section(title, ...content) {
  return h("section", { class: "summary-section" }, h("h4", {}, title), ...content);
}

function definitionList(pairs) {
  return h("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** Renders a patient summary. */
export function renderSummary(s) {
  const v = s.latestVitals ?? {};
  const recorded = v.recordedDaysAgo === 0 ? "today" : `${v.recordedDaysAgo} days ago`;
  const took = typeof s.tookMs === "number" ? ` in ${(s.tookMs / 1000).toFixed(1)} s` : "";
  return h(
    "div",
    { class: "summary" },
    h("p", { class: "demographics" }, `${s.age}-year-old ${s.sex} · ${s.mrn}`),
    h("p", { class: "narrative" }, s.narrative ?? ""),
    s.flags?.length
      ? h(
          "ul",
          { class: "flags", "aria-label": "Needs attention" },
          s.flags.map((f) => h("li", {}, h("span", { "aria-hidden": "true" }, "⚠ "), f)),
        )
      : null,
    h(
      "div",
      { class: "summary-grid" },
      section("Conditions", h("ul", {}, (s.conditions ?? []).map((c) => h("li", {}, c)))),
      section(
        "Medications",
        h(
          "ul",
          {},
          (s.medications ?? []).map((m) => h("li", {}, h("strong", {}, m.name), ` — ${m.dose}`)),
        ),
      ),
      section(
        `Latest vitals (${recorded})`,
        definitionList([
          ["Heart rate", `${v.heartRateBpm} bpm`],
          ["Blood pressure", `${v.bloodPressure} mmHg`],
          ["Temperature", `${Number(v.temperatureC).toFixed(1)} °C`],
          ["SpO₂", `${v.spo2Pct} %`],
          ["Respiratory rate", `${v.respiratoryRate} /min`],
        ]),
      ),
    ),
    h("p", { class: "provenance" }, `Built by ${s.worker ?? "a worker"}${took}.`),
  );
}

/** Renders a failed request: Ferry's error code, the worker's own code, the message. */
export function renderError(err) {
  const code = err?.code ?? "error";
  const remote = err?.remoteCode;
  return h(
    "div",
    { class: "error", role: "alert" },
    h(
      "p",
      { class: "error-codes" },
      h("code", { class: "error-code" }, code),
      remote ? [" · ", h("code", { class: "remote-code" }, remote)] : null,
    ),
    h("p", { class: "error-message" }, err?.message ?? String(err)),
  );
}
