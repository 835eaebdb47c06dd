/* Shared helpers for every page: the API client, URL state, times, the search bar,
   the time range, the ingest rate in the header. No framework; each page script
   calls K.start(render) and re-renders from the URL whenever it changes. */
"use strict";
const K = (() => {
  class ApiError extends Error {
    constructor(status, body) {
      super(body && body.error ? body.error : `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  /* GET an /api path with query parameters (empty ones dropped); JSON or ApiError. */
  async function api(path, params = {}) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") qs.set(k, v);
    const url = path + (qs.toString() ? "?" + qs : "");
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" } });
    } catch (e) {
      throw new ApiError(0, { error: "cannot reach the koban server" });
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = { error: `HTTP ${response.status} (not JSON)` }; }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // --- URL state ---------------------------------------------------------------
  function state() { return Object.fromEntries(new URL(location.href).searchParams); }
  let renderFn = null;
  /* Merge `changes` into the URL (null/"" removes a key) and re-render. `push` adds a
     history entry (the back button returns to the previous state). */
  function setState(changes, { push = true, render = true } = {}) {
    const url = new URL(location.href);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === "") url.searchParams.delete(k); else url.searchParams.set(k, v);
    }
    if (url.href !== location.href) history[push ? "pushState" : "replaceState"](null, "", url);
    if (render && renderFn) run();
  }
  function range() {
    const s = state();
    return { from: s.from || "now-15m", to: s.to || "now" };
  }
  function apiRange() { const r = range(); return { from: r.from, to: r.to === "now" ? "" : r.to }; }

  // --- rendering helpers ------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
    return node;
  }
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  /* A time (ns number or RFC 3339) in the browser's zone, with UTC in the title. */
  function timeEl(value, { date = true } = {}) {
    const ms = typeof value === "number" ? value / 1e6 : Date.parse(value);
    const d = new Date(ms);
    const local = `${date ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` : ""}` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    const utc = typeof value === "string" ? value : d.toISOString();
    return el("time", { datetime: d.toISOString(), title: `${utc} UTC`, text: local });
  }
  function fmtDuration(ns) {
    if (ns === null || ns === undefined) return "–";
    if (ns < 1e3) return `${ns} ns`;
    if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
    if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`;
    return `${(ns / 1e9).toFixed(2)} s`;
  }
  const fmtMs = (ms) => (ms === null || ms === undefined ? "–" : fmtDuration(Math.round(ms * 1e6)));
  const fmtPct = (x) => `${(x * 100).toFixed(x && x < 0.01 ? 2 : 1)}%`;
  const fmtRate = (x) => (x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(2));
  function serviceColor(name) {
    let h = 0;
    for (const c of name || "") h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return `hsl(${h % 360}, 62%, 55%)`;
  }
  function sevClass(sev) {
    const s = (sev || "").toLowerCase();
    if (s.startsWith("err") || s === "fatal" || s === "critical") return "sev-error";
    if (s.startsWith("warn")) return "sev-warn";
    if (s.startsWith("info")) return "sev-info";
    return "sev-debug";
  }
  function logRow(row) {
    return el("tr", { class: "row", dataset: { ts: row.timestamp_ns } },
      el("td", { class: "t" }, timeEl(row.timestamp)),
      el("td", {}, el("a", { href: `/services/${encodeURIComponent(row.service)}`, onclick: (e) => e.stopPropagation(), text: row.service })),
      el("td", {}, el("span", { class: `sev ${sevClass(row.severity)}`, text: row.severity || "–" })),
      el("td", { class: "msg", text: row.body }));
  }
  function traceLink(id) { return el("a", { href: `/traces/${id}`, class: "mono trace-link", text: id }); }

  // --- query text ------------------------------------------------------------------------
  /* A value as the search syntax needs it: bare when plain, else quoted. */
  function quote(value) {
    const v = String(value);
    if (/^[A-Za-z0-9_.\-\/]+$/.test(v) && !/^(AND|OR|NOT)$/.test(v)) return v;
    return '"' + v.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
  }
  const term = (field, value, exclude = false) => `${exclude ? "-" : ""}${field}:${quote(value)}`;
  /* The query with `t` added (or removed when already there, and `toggle`); the opposite
     term (t vs -t) is replaced. */
  function editQuery(q, t, { toggle = false } = {}) {
    const opposite = t.startsWith("-") ? t.slice(1) : "-" + t;
    const has = (s, x) => new RegExp(`(^|\\s)${x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?=\\s|$)`).test(s);
    const drop = (s, x) => s.replace(new RegExp(`(^|\\s)${x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?=\\s|$)`, "g"), " ").replace(/\s+/g, " ").trim();
    if (has(q, t)) return toggle ? drop(q, t) : q;
    q = drop(q, opposite);
    return (q ? q + " " : "") + t;
  }

  // --- errors -----------------------------------------------------------------------------
  function showQueryError(err, text) {
    const box = document.getElementById("query-error");
    if (!box) return false;
    if (!err) { box.hidden = true; box.textContent = ""; return true; }
    const pos = Math.max(0, Math.min(err.body.position ?? 0, text.length));
    box.replaceChildren(
      el("div", { text: `Syntax error at position ${pos}: ${err.message}` }),
      el("pre", {}, text, "\n", " ".repeat(pos), el("span", { class: "caret", text: "^" })));
    box.hidden = false;
    document.getElementById("q").setAttribute("aria-invalid", "true");
    return true;
  }
  /* Show any error readably: a query syntax error under the search bar, the rest in
     the page's error box. */
  function showError(err) {
    const q = state().q || "";
    if (err instanceof ApiError && err.status === 400 && err.body.position !== undefined && showQueryError(err, q)) return;
    const box = document.getElementById("page-error");
    const msg = err instanceof ApiError ? err.message : "something went wrong in the page: " + (err && err.message);
    if (box) { box.textContent = msg; box.hidden = false; }
  }
  function clearErrors() {
    showQueryError(null);
    const q = document.getElementById("q");
    if (q) q.removeAttribute("aria-invalid");
    const box = document.getElementById("page-error");
    if (box) { box.hidden = true; box.textContent = ""; }
  }

  // --- search bar and time range -----------------------------------------------------------
  function toLocalInput(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function syncBar() {
    const s = state();
    const q = document.getElementById("q");
    if (q) q.value = s.q || "";
    const r = range();
    const preset = r.to === "now" && /^now-(\w+)$/.test(r.from) ? r.from.slice(4) : "custom";
    document.querySelectorAll(".preset").forEach((b) => b.classList.toggle("active", b.dataset.preset === preset));
    const custom = document.getElementById("custom-range");
    if (custom) custom.hidden = preset !== "custom";
    if (preset === "custom") {
      const f = Date.parse(r.from), t = r.to === "now" ? Date.now() : Date.parse(r.to);
      if (!isNaN(f)) document.getElementById("range-from").value = toLocalInput(f);
      if (!isNaN(t)) document.getElementById("range-to").value = toLocalInput(t);
    }
  }
  function wireBar() {
    const form = document.getElementById("search");
    if (!form) return;
    form.addEventListener("submit", (e) => { e.preventDefault(); setState({ q: document.getElementById("q").value.trim() }); });
    document.querySelectorAll(".preset").forEach((b) => b.addEventListener("click", () => {
      if (b.dataset.preset === "custom") {
        document.getElementById("custom-range").hidden = false;
        const r = range();
        if (/^now-/.test(r.from)) {
          document.getElementById("range-from").value = toLocalInput(Date.now() - 15 * 60e3);
          document.getElementById("range-to").value = toLocalInput(Date.now());
        }
        return;
      }
      setState({ from: `now-${b.dataset.preset}`, to: null });
    }));
    document.getElementById("range-apply").addEventListener("click", () => {
      const f = new Date(document.getElementById("range-from").value), t = new Date(document.getElementById("range-to").value);
      if (isNaN(f) || isNaN(t) || f >= t) { showError(new ApiError(400, { error: "the custom range needs a start before its end" })); return; }
      setState({ from: f.toISOString(), to: t.toISOString() });
    });
  }

  // --- header: records/s over the last minute, from /metrics ----------------------------------
  const RATE_KEY = "koban.ingest.samples";
  async function sampleRate() {
    const node = document.getElementById("ingest-rate");
    try {
      const text = await (await fetch("/metrics")).text();
      const m = text.match(/^koban_store_records_written(?:\{[^}]*\})?\s+([0-9.e+]+)/m);
      if (!m) return;
      const now = Date.now();
      let samples = JSON.parse(sessionStorage.getItem(RATE_KEY) || "[]").filter((s) => now - s[0] <= 65e3 && s[1] <= +m[1]);
      samples.push([now, +m[1]]);
      sessionStorage.setItem(RATE_KEY, JSON.stringify(samples));
      if (samples.length < 2) { node.textContent = "measuring ingest…"; return; }
      const [t0, n0] = samples[0];
      const rate = (+m[1] - n0) / ((now - t0) / 1e3);
      node.textContent = `${fmtRate(rate)} records/s`;
      node.className = "rate " + (rate > 0 ? "flowing" : "idle");
      node.title = `records written per second over the last ${Math.round((now - t0) / 1e3)} s` + (rate > 0 ? "" : ": no data arriving");
    } catch (e) { node.textContent = "server unreachable"; }
  }

  // --- sortable tables --------------------------------------------------------------------------
  /* Make `table` sortable by its th[data-key]; `rows` is the data, `draw(rows)` fills tbody.
     The sort lives in the URL as `sort=key` / `sort=-key`. */
  function sortable(table, rows, draw, param = "sort") {
    const ths = [...table.querySelectorAll("th[data-key]")];
    const apply = () => {
      const s = state()[param] || "";
      const desc = s.startsWith("-"), key = s.replace(/^-/, "");
      const th = ths.find((t) => t.dataset.key === key);
      ths.forEach((t) => t.removeAttribute("aria-sort"));
      let sorted = rows;
      if (th) {
        th.setAttribute("aria-sort", desc ? "descending" : "ascending");
        const num = th.dataset.type === "num";
        sorted = [...rows].sort((a, b) => {
          const x = a[key], y = b[key];
          const c = num ? (x ?? -Infinity) - (y ?? -Infinity) : String(x ?? "").localeCompare(String(y ?? ""));
          return desc ? -c : c;
        });
      }
      draw(sorted);
    };
    ths.forEach((th) => { th.onclick = () => {
      const cur = state()[param] || "";
      const key = th.dataset.key;
      const next = cur === key ? "-" + key : cur === "-" + key ? key : (th.dataset.type === "num" ? "-" + key : key);
      setState({ [param]: next }, { render: false });
      apply();
    }; });
    apply();
  }

  // --- time series (GET /api/timeseries) and charts ------------------------------------------
  const UNIT_MS = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };
  /* A `from`/`to` value as unix ms (now-15m, RFC 3339, unix ms), or null when unreadable. */
  function toMs(text, now) {
    if (!text || text === "now") return now;
    const rel = /^now-(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(text);
    if (rel) return now - Number(rel[1]) * UNIT_MS[rel[2]];
    if (/^\d+$/.test(text)) return Number(text);
    const t = Date.parse(text);
    return isNaN(t) ? null : t;
  }
  const STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  /* The URL's range as absolute unix ms with a round interval giving about `buckets`
     buckets, so that several /api/timeseries calls share the same buckets. Unreadable
     ranges are passed through and the server chooses the interval. */
  function seriesRange(buckets = 60) {
    const r = range(), now = Date.now();
    const f = toMs(r.from, now), t = toMs(r.to, now);
    if (f === null || t === null || t <= f) return apiRange();
    const wanted = (t - f) / 1e3 / buckets;
    const step = STEPS_S.find((s) => s >= wanted) || Math.ceil(wanted / 86400) * 86400;
    return { from: String(Math.floor(f)), to: String(Math.ceil(t)), interval: `${step}s` };
  }
  /* Requests are server and consumer spans. */
  const REQUESTS = "kind:(server OR consumer)";
  function timeseries(params) { return api("/api/timeseries", { source: "spans", ...params }); }
  /* One time series answer as {key: points}, keyed by the value of label `label`
     ("" for an ungrouped answer). */
  function seriesBy(doc, label) {
    const out = {};
    for (const s of doc.series || []) out[label ? (s.labels || {})[label] ?? "" : ""] = s.points || [];
    return out;
  }

  /* A small inline SVG line of `points` ([[ts_ms, value|null], ...]); gaps where null. */
  const SVG = "http://www.w3.org/2000/svg";
  function sparkline(points, { color = "var(--accent)", fmt = String, width = 72, height = 18 } = {}) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const vals = points.map((p) => p[1]).filter((v) => v !== null && v !== undefined);
    const max = Math.max(0, ...vals), min = Math.min(0, ...vals);
    const n = Math.max(1, points.length - 1);
    let d = "", pen = false;
    points.forEach(([, v], i) => {
      if (v === null || v === undefined) { pen = false; return; }
      const x = (i / n) * (width - 2) + 1;
      const y = height - 1 - (max > min ? ((v - min) / (max - min)) * (height - 2) : 0);
      d += `${pen ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`;
      pen = true;
    });
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", color);
    path.setAttribute("stroke-width", "1.3");
    svg.append(path);
    const title = document.createElementNS(SVG, "title");
    title.textContent = vals.length ? `min ${fmt(Math.min(...vals))} · max ${fmt(Math.max(...vals))} · last ${fmt(vals[vals.length - 1])}` : "no data";
    svg.append(title);
    svg.dataset.points = points.length;
    return svg;
  }

  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  /* uPlot's time axis with the page's colours; dragging across it narrows the URL's range. */
  function narrowOnDrag(u) {
    if (u.select.width < 3) return;
    const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
    setState({ from: new Date(a * 1000).toISOString(), to: new Date(b * 1000).toISOString() });
  }
  /* A uPlot chart in `box` of `series` ([{label, points, color, bars}]) sharing one time
     axis (the first series' timestamps); `fmt` formats values. Returns the plot. */
  function isolated(u, si) {
    const d = u.data[si], out = [];
    for (let i = 0; i < d.length; i++) if (d[i] !== null && d[i] !== undefined && d[i - 1] == null && d[i + 1] == null) out.push(i);
    return out;
  }
  function chart(box, series, { fmt = String, height = 160, old = null } = {}) {
    if (old) old.destroy();
    box.replaceChildren();
    const xsMs = (series[0] ? series[0].points : []).map((p) => p[0]);
    const index = new Map(xsMs.map((t, i) => [t, i]));
    const columns = series.map((s) => {
      const col = xsMs.map(() => null);
      for (const [t, v] of s.points) if (index.has(t)) col[index.get(t)] = v;
      return col;
    });
    const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--line"), width: 1 }, ticks: { stroke: cssVar("--line") } };
    const bars = uPlot.paths.bars({ size: [0.8, Infinity], align: 1 });
    const plot = new uPlot({
      width: Math.max(240, box.clientWidth), height,
      cursor: { drag: { x: true, y: false, setScale: false } },
      select: { show: true },
      legend: { show: true, live: true },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max || 0, 1e-9) * 1.05] } },
      axes: [{ ...axis }, { ...axis, size: 70, values: (u, vs) => vs.map((v) => fmt(v)) }],
      series: [{ value: (u, v) => (v === null ? "" : new Date(v * 1000).toLocaleString()) },
        ...series.map((s) => ({
          label: s.label, stroke: s.color, width: s.bars ? 0 : 1.5, fill: s.bars ? s.color : s.fill || null,
          paths: s.bars ? bars : undefined, spanGaps: false,
          // a line cannot show a value between two gaps: draw such values as dots
          points: s.bars ? { show: false } : { show: true, size: 5, fill: s.color, filter: isolated },
          value: (u, v) => (v === null || v === undefined ? "–" : fmt(v)),
        }))],
      hooks: { setSelect: [narrowOnDrag] },
    }, [xsMs.map((t) => t / 1000), ...columns], box);
    box.dataset.series = series.length;
    box.dataset.points = xsMs.length;
    box.dataset.sum = columns.length ? columns[0].reduce((a, v) => a + (v || 0), 0) : 0; // what tests check
    return plot;
  }

  /* Mark the page as drawn: body[data-<what>="1"] (what tests wait for) and a
     performance mark "koban-<what>" (what benchmarks/ui.py times from navigation). */
  function markDrawn(what = "ready") {
    document.body.dataset[what] = "1";
    try { performance.mark(`koban-${what}`); } catch (e) { /* no User Timing: the attribute is enough */ }
  }

  // --- start --------------------------------------------------------------------------------
  let generation = 0;
  async function run() {
    const mine = ++generation;
    clearErrors();
    syncBar();
    try { await renderFn(() => mine === generation); } catch (e) { if (mine === generation) showError(e); }
  }
  /* `render(isCurrent)` draws the page from the URL; isCurrent() is false once a newer
     render started (so a slow answer cannot overwrite a newer one). */
  function start(render) {
    renderFn = render;
    const boot = () => {
      wireBar();
      window.addEventListener("popstate", run);
      document.addEventListener("keydown", (e) => {
        const t = e.target;
        const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
        if (e.key === "/" && !typing) {
          const q = document.getElementById("q");
          if (q) { e.preventDefault(); q.focus(); q.select(); }
        } else if (e.key === "Escape" && t && t.id === "q") t.blur();
      });
      // the header's rate waits for the page's own data, which it would slow down
      run().finally(() => { sampleRate(); setInterval(sampleRate, 5000); });
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot); else boot();
  }

  return { api, ApiError, state, setState, range, apiRange, el, timeEl, fmtDuration, fmtMs, fmtPct, fmtRate,
    serviceColor, sevClass, logRow, traceLink, quote, term, editQuery, showError, clearErrors, sortable, start, run,
    markDrawn, toMs, seriesRange, REQUESTS, timeseries, seriesBy, sparkline, chart, narrowOnDrag };
})();
