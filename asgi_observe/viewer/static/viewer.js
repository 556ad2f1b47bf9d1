// asgi_observe's local viewer: plain DOM, no dependencies. Every value from the API is
// placed with textContent, never parsed as HTML. Refreshes the open view by polling.
"use strict";

const POLL_MS = 2000;
const state = { tab: "traces", traceId: null, spanId: null, errorId: null, traceSpans: -1, searched: null };

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path) {
  const response = await fetch("api/" + path, { cache: "no-store", credentials: "same-origin" });
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

const $ = (id) => document.getElementById(id);
const fmtTime = (seconds) => new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
const fmtNs = (ns) => fmtTime(ns / 1e9);
const fmtMs = (ms) => (ms === null || ms === undefined ? "–" : ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms).toString());
const short = (id) => (id ? id.slice(0, 12) + "…" : "");
const traceLink = (id) => (id ? el("a", { href: "#trace/" + id, class: "id", title: id, text: short(id) }) : "");

function showNotice(text) {
  const notice = $("notice");
  notice.textContent = text || "";
  notice.hidden = !text;
}

// ---- traces -------------------------------------------------------------------------
async function loadTraces() {
  const query = $("trace-search").value.trim();
  const data = await api("traces?limit=200&q=" + encodeURIComponent(query));
  const body = $("trace-list").tBodies[0];
  body.replaceChildren(...data.traces.map((t) => {
    const failed = t.errors > 0 || (t.status_code || 0) >= 500;
    const badge = failed ? "error" : (t.status_code || 0) >= 400 ? "warn" : "ok";
    // An unmatched request's span is named by its method only: show the path too.
    const title = t.path && !t.name.includes(" ") ? t.name + " " + t.path : t.name;
    return el("tr", {
      dataset: { traceId: t.trace_id, requestId: t.request_id || "" },
      class: t.trace_id === state.traceId ? "selected" : null,
      onclick: () => { location.hash = "#trace/" + t.trace_id; },
    },
      el("td", { class: "mono", text: fmtNs(t.start_ns) }),
      el("td", {}, el("div", { class: "name", text: title }),
        el("div", { class: "id", text: t.trace_id + (t.request_id ? "  · req " + t.request_id : "") })),
      el("td", { class: "num", text: fmtMs(t.duration_ms) }),
      el("td", { class: "num", text: t.spans + (t.dropped_spans ? "+" + t.dropped_spans : "") }),
      el("td", {}, el("span", { class: "badge " + badge, text: t.status_code || (failed ? "error" : "ok") })));
  }));
  $("trace-empty").hidden = data.traces.length > 0;
  $("trace-empty").textContent = query ? "No trace matches " + query + "." : "No traces yet. Send a request to the app.";
  // A search that finds one trace opens it, once: later polls leave the choice alone.
  if (state.searched === query && query && data.traces.length === 1 && state.traceId !== data.traces[0].trace_id) {
    location.hash = "#trace/" + data.traces[0].trace_id;
  }
  if (state.searched === query) state.searched = null;
}

function kvTable(object) {
  const rows = Object.entries(object || {}).map(([key, value]) =>
    el("tr", {}, el("td", { text: key }), el("td", { text: typeof value === "string" ? value : JSON.stringify(value) })));
  return rows.length ? el("table", { class: "kv" }, el("tbody", {}, rows)) : el("p", { class: "muted", text: "none" });
}

function spanInfo(span) {
  const events = span.events.map((event) => {
    const stack = event.attributes["exception.stacktrace"];
    const rest = Object.fromEntries(Object.entries(event.attributes).filter(([key]) => key !== "exception.stacktrace"));
    return el("div", { class: "event" },
      el("div", {}, el("b", { text: event.name }), " at " + fmtMs(event.at_ms) + " ms"),
      kvTable(rest), stack ? el("pre", { class: "stack", text: stack }) : null);
  });
  return el("div", { class: "span-info" },
    el("div", { class: "links" },
      el("span", { class: "id", text: "span " + span.span_id }),
      el("span", { class: "muted", text: span.kind + " · " + span.scope }),
      el("span", { class: "badge " + (span.status === "ERROR" ? "error" : "ok"), text: span.status + (span.status_message ? ": " + span.status_message : "") })),
    el("h3", { text: "attributes" }), kvTable(span.attributes),
    events.length ? el("h3", { text: "events" }) : null, events);
}

function depthOf(spans) {
  const byId = new Map(spans.map((span) => [span.span_id, span]));
  const depth = new Map();
  const find = (span, seen = 0) => {
    if (depth.has(span.span_id)) return depth.get(span.span_id);
    const parent = byId.get(span.parent_id);
    const value = parent && seen < 64 ? find(parent, seen + 1) + 1 : 0;
    depth.set(span.span_id, value);
    return value;
  };
  spans.forEach((span) => find(span));
  return depth;
}

function ordered(spans) {
  // Parents before children, siblings by start time.
  const children = new Map();
  const ids = new Set(spans.map((span) => span.span_id));
  for (const span of spans) {
    const key = ids.has(span.parent_id) ? span.parent_id : null;
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(span);
  }
  const out = [];
  const walk = (key) => {
    for (const span of (children.get(key) || []).sort((a, b) => a.start_ms - b.start_ms)) {
      out.push(span);
      walk(span.span_id);
    }
  };
  walk(null);
  return out;
}

async function loadTrace(force) {
  const pane = $("trace-detail");
  if (!state.traceId) return;
  let trace;
  try {
    trace = await api("traces/" + encodeURIComponent(state.traceId));
  } catch (error) {
    pane.replaceChildren(el("p", { class: "muted", text: "Trace " + state.traceId + " is not (or no longer) in the viewer." }));
    state.traceSpans = -1;
    return;
  }
  if (!force && trace.spans.length === state.traceSpans) return;
  state.traceSpans = trace.spans.length;
  const total = Math.max(trace.duration_ms, 0.001);
  const depth = depthOf(trace.spans);
  const rows = [];
  for (const span of ordered(trace.spans)) {
    const left = (100 * span.start_ms) / total;
    const width = Math.max((100 * span.duration_ms) / total, 0.3);
    const marks = span.events.filter((e) => e.name === "exception").map((e) =>
      el("div", { class: "mark", style: { left: Math.min(100, (100 * e.at_ms) / total) + "%" } }));
    const row = el("div", {
      class: "span-row" + (span.span_id === state.spanId ? " selected" : ""),
      dataset: { spanId: span.span_id, parentId: span.parent_id || "", kind: span.kind, name: span.name },
      onclick: () => { state.spanId = state.spanId === span.span_id ? null : span.span_id; loadTrace(true); },
    },
      el("div", { class: "span-name", title: span.name, style: { paddingLeft: 14 * (depth.get(span.span_id) || 0) + "px" } },
        el("span", { class: "span-kind", text: span.kind.slice(0, 3) }), span.name),
      el("div", { class: "track" }, el("div", {
        class: "bar " + span.kind + (span.status === "ERROR" ? " ERROR" : ""),
        style: { left: Math.min(left, 99.7) + "%", width: Math.min(width, 100 - Math.min(left, 99.7)) + "%" },
      }), marks),
      el("div", { class: "span-ms", text: fmtMs(span.duration_ms) + " ms" }));
    rows.push(row);
    if (span.span_id === state.spanId) rows.push(spanInfo(span));
  }
  pane.replaceChildren(
    el("h2", { text: trace.name }),
    el("div", { class: "links" },
      el("span", { class: "id", text: "trace " + trace.trace_id }),
      trace.request_id ? el("span", { class: "id", text: "request " + trace.request_id }) : null,
      el("span", { class: "muted", text: fmtMs(trace.duration_ms) + " ms · " + trace.spans.length + " spans" + (trace.dropped_spans ? " (+" + trace.dropped_spans + " not kept)" : "") + (trace.service ? " · " + trace.service : "") }),
      el("a", { href: "#logs?trace_id=" + trace.trace_id, text: "logs of this trace" })),
    el("div", { class: "waterfall", id: "waterfall" }, rows));
}

// ---- RED ----------------------------------------------------------------------------
async function loadRed() {
  const data = await api("red");
  const body = $("red-table").tBodies[0];
  if (!data.red) {
    $("red-window").textContent = "No metrics layer records into this viewer's registry (observe(metrics=False)?).";
    body.replaceChildren();
  } else {
    $("red-window").textContent = "Over the last " + Math.round(data.red.window_s) + " s, from the duration histogram /metrics exposes: 5xx responses count as errors; percentiles are estimated from its buckets, as Prometheus' histogram_quantile does.";
    body.replaceChildren(...data.red.rows.map((row) => redRow(row, row.route, { route: row.route, method: row.method })));
  }
  $("mcp-red").hidden = !data.mcp;
  if (data.mcp) {
    $("mcp-window").textContent = "Over the last " + Math.round(data.mcp.window_s) + " s, from mcp_server_operation_duration_seconds: tool errors (isError), JSON-RPC errors and unanswered requests count as errors. Names the server never listed are _unknown.";
    $("mcp-table").tBodies[0].replaceChildren(...data.mcp.rows.map((row) => redRow(row, row.target, { target: row.target, method: row.method })));
  }
}

function redRow(row, name, dataset) {
  return el("tr", { dataset: dataset },
    el("td", { text: row.method }),
    el("td", { class: "name", text: name }),
    el("td", { class: "num", text: row.count }),
    el("td", { class: "num", text: row.rps.toFixed(2) }),
    el("td", { class: "num" }, el("span", { class: row.errors ? "badge error" : "", text: (100 * row.error_ratio).toFixed(1) + " %" })),
    el("td", { class: "num", text: fmtMs(row.mean_ms) }),
    el("td", { class: "num", text: fmtMs(row.p50_ms) }),
    el("td", { class: "num", text: fmtMs(row.p95_ms) }),
    el("td", { class: "num", text: fmtMs(row.p99_ms) }));
}

// ---- errors -------------------------------------------------------------------------
async function loadErrors() {
  const data = await api("errors?limit=100");
  const body = $("error-list").tBodies[0];
  body.replaceChildren(...data.groups.map((group) => el("tr", {
    dataset: { group: group.id, eventId: group.event_id },
    class: group.event_id === state.errorId ? "selected" : null,
    onclick: () => { location.hash = "#error/" + group.event_id; },
  },
    el("td", { class: "num", text: group.count }),
    el("td", {}, el("div", { class: "name", text: group.type }), el("div", { class: "mono", text: group.value })),
    el("td", { class: "mono", text: (group.method ? group.method + " " : "") + (group.route || "") }),
    el("td", { class: "mono", text: fmtTime(group.last_seen) }))));
  $("error-empty").hidden = data.groups.length > 0;
}

async function loadError() {
  const pane = $("error-detail");
  if (!state.errorId) return;
  let event;
  try {
    event = await api("errors/" + encodeURIComponent(state.errorId));
  } catch (error) {
    pane.replaceChildren(el("p", { class: "muted", text: "That event is no longer kept." }));
    return;
  }
  if (!event) return;
  const trace = (event.contexts && event.contexts.trace) || {};
  const tags = event.tags || {};
  const values = (event.exception && event.exception.values) || [];
  const chain = values.slice().reverse().map((value, index) => el("div", { class: "exception" },
    el("h3", { text: index === 0 ? "exception" : "caused by / while handling" }),
    el("div", {}, el("b", { text: value.type }), ": ", el("span", { class: "mono", text: value.value })),
    ((value.stacktrace && value.stacktrace.frames) || []).slice().reverse().map((frame) =>
      el("div", { class: "frame" }, frame.filename + ":" + frame.lineno + " in " + frame.function,
        frame.context_line ? el("code", { text: frame.context_line }) : null))));
  pane.replaceChildren(
    el("h2", { id: "error-title", text: (values.length ? values[values.length - 1].type : "error") }),
    el("div", { class: "links" },
      trace.trace_id ? el("a", { href: "#trace/" + trace.trace_id, id: "error-trace-link", text: "trace " + short(trace.trace_id) }) : null,
      tags.request_id ? el("a", { href: "#logs?request_id=" + encodeURIComponent(tags.request_id), text: "logs of request " + tags.request_id }) : null,
      el("span", { class: "muted", text: fmtTime(event.timestamp) })),
    ...chain,
    el("h3", { text: "request" }),
    kvTable({ method: (event.request || {}).method, url: (event.request || {}).url, query_string: (event.request || {}).query_string }),
    el("h3", { text: "headers" }), kvTable((event.request || {}).headers),
    el("h3", { text: "tags" }), kvTable(tags));
}

// ---- logs ---------------------------------------------------------------------------
async function loadLogs() {
  const params = new URLSearchParams({ limit: "500" });
  for (const [name, id] of [["request_id", "log-request-id"], ["trace_id", "log-trace-id"], ["level", "log-level"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  const data = await api("logs?" + params.toString());
  $("log-list").tBodies[0].replaceChildren(...data.logs.map((log) => el("tr", { dataset: { requestId: log.request_id || "", traceId: log.trace_id || "" } },
    el("td", { class: "mono", text: fmtTime(log.time) }),
    el("td", {}, el("span", { class: "badge level-" + log.level, text: log.level })),
    el("td", { class: "mono", text: log.logger }),
    el("td", { class: "message" }, log.message,
      Object.keys(log.extra || {}).length ? el("div", { class: "muted", text: JSON.stringify(log.extra) }) : null,
      log.exception ? el("pre", { class: "stack", text: log.exception }) : null),
    el("td", {}, log.request_id ? el("a", { href: "#logs?request_id=" + encodeURIComponent(log.request_id), class: "id", text: log.request_id }) : ""),
    el("td", {}, traceLink(log.trace_id)))));
}

// ---- navigation and polling ---------------------------------------------------------
function route() {
  const hash = decodeURIComponent(location.hash.slice(1)) || "traces";
  const [head, rest] = hash.split("/", 2);
  const [tab, query] = head.split("?", 2);
  if (tab === "trace") {
    state.tab = "traces";
    if (state.traceId !== rest) { state.traceId = rest; state.spanId = null; state.traceSpans = -1; }
  } else if (tab === "error") {
    state.tab = "errors";
    state.errorId = rest;
  } else {
    state.tab = ["traces", "red", "errors", "logs"].includes(tab) ? tab : "traces";
  }
  if (state.tab === "logs" && query) {
    const params = new URLSearchParams(query);
    $("log-request-id").value = params.get("request_id") || "";
    $("log-trace-id").value = params.get("trace_id") || "";
  }
  for (const link of document.querySelectorAll("#tabs a")) link.classList.toggle("active", link.dataset.tab === state.tab);
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== "view-" + state.tab;
  refresh(true);
}

let busy = false;
let pending = false;
async function refresh(force) {
  if (busy) {
    pending = pending || force; // a navigation during a refresh is shown right after it
    return;
  }
  busy = true;
  try {
    const status = await api("status");
    $("count-traces").textContent = status.traces;
    $("count-errors").textContent = status.errors;
    $("count-logs").textContent = status.log_records;
    showNotice(status.tracing ? "" : "No OpenTelemetry SDK tracer provider yet: traces will appear once one is set.");
    if (state.tab === "traces") { await loadTraces(); await loadTrace(force); }
    else if (state.tab === "red") await loadRed();
    else if (state.tab === "errors") { await loadErrors(); if (force) await loadError(); }
    else if (state.tab === "logs") await loadLogs();
    $("refreshed").textContent = "updated " + new Date().toLocaleTimeString([], { hour12: false });
  } catch (error) {
    showNotice("Cannot reach the viewer API: " + error.message);
  } finally {
    busy = false;
    if (pending) {
      pending = false;
      refresh(true);
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("trace-search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.searched = $("trace-search").value.trim();
    refresh(true);
  });
  $("log-filter").addEventListener("submit", (event) => { event.preventDefault(); refresh(true); });
  $("log-level").addEventListener("change", () => refresh(true));
  $("log-clear").addEventListener("click", () => { $("log-request-id").value = ""; $("log-trace-id").value = ""; location.hash = "#logs"; refresh(true); });
  window.addEventListener("hashchange", route);
  setInterval(() => { if ($("live-toggle").checked && !document.hidden) refresh(false); }, POLL_MS);
  route();
});
