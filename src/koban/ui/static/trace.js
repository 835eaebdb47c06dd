/* One trace: the waterfall, the selected span's details, and the trace's logs.
   State: span (the selected span id). */
"use strict";
(() => {
  const { api, el, state, setState } = K;
  const traceId = () => document.getElementById("waterfall").dataset.traceId;
  let spans = [];

  /* Spans in waterfall order (depth-first, children by start) with their depth. A span
     whose parent is missing (not arrived, or outside the trace) is shown as a root. */
  function order(all) {
    const ids = new Set(all.map((s) => s.span_id));
    const children = new Map();
    const roots = [];
    for (const s of all) {
      if (s.parent_span_id && ids.has(s.parent_span_id) && s.parent_span_id !== s.span_id) {
        if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
        children.get(s.parent_span_id).push(s);
      } else roots.push(s);
    }
    const out = [];
    const seen = new Set();
    const visit = (s, depth) => {
      if (seen.has(s.span_id)) return;
      seen.add(s.span_id);
      out.push([s, depth]);
      (children.get(s.span_id) || []).sort((a, b) => a.start_ns - b.start_ns).forEach((c) => visit(c, depth + 1));
    };
    roots.sort((a, b) => a.start_ns - b.start_ns).forEach((r) => visit(r, 0));
    return out;
  }

  function niceStep(total) {
    const raw = total / 6;
    const pow = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    return [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) || pow * 10;
  }

  function drawWaterfall() {
    const t0 = Math.min(...spans.map((s) => s.start_ns));
    const t1 = Math.max(...spans.map((s) => s.start_ns + s.duration_ns));
    const total = Math.max(1, t1 - t0);
    const pct = (ns) => `${((ns / total) * 100).toFixed(3)}%`;
    const step = niceStep(total);
    const ticks = [];
    for (let t = 0; t <= total; t += step) ticks.push(el("span", { style: `left:${pct(t)}`, text: K.fmtDuration(t) }));
    document.getElementById("wf-axis").replaceChildren(...ticks);
    const selected = state().span;
    document.getElementById("wf-rows").replaceChildren(...order(spans).map(([s, depth]) => {
      const err = s.status === "error";
      const color = K.serviceColor(s.service);
      const offset = s.start_ns - t0;
      return el("div", { class: "wf-row" + (err ? " error" : "") + (s.span_id === selected ? " selected" : ""), dataset: { spanId: s.span_id, depth },
        title: `${s.service} · ${s.name} · ${K.fmtDuration(s.duration_ns)}${err ? " · ERROR" : ""}`,
        onclick: () => setState({ span: s.span_id }) },
        el("div", { class: "wf-name", style: `padding-left:${6 + depth * 14}px` },
          err ? el("span", { class: "err-mark", title: "error", text: "✖" }) : null,
          el("span", { class: "dot", style: `background:${color}` }),
          el("span", { class: "svc", text: s.service }), s.name),
        el("div", { class: "wf-track" },
          el("div", { class: "wf-bar" + (err ? " err" : ""), style: `left:${pct(offset)};width:${pct(s.duration_ns)};background:${color}` }),
          (offset + s.duration_ns) / total > 0.85
            ? el("span", { class: "wf-label", style: `right:${pct(total - offset)};padding-right:4px`, text: K.fmtDuration(s.duration_ns) })
            : el("span", { class: "wf-label", style: `left:${pct(offset + s.duration_ns)}`, text: K.fmtDuration(s.duration_ns) })));
    }));
    const errors = spans.filter((s) => s.status === "error").length;
    const services = new Set(spans.map((s) => s.service)).size;
    document.getElementById("trace-summary").replaceChildren(
      `${spans.length} spans · ${services} services · ${K.fmtDuration(total)} · started `, K.timeEl(t0),
      errors ? el("span", { class: "error-flag", text: ` · ${errors} error${errors > 1 ? "s" : ""}` }) : "");
  }

  function kv(map) {
    const keys = Object.keys(map || {}).sort();
    if (!keys.length) return el("p", { class: "muted", text: "none" });
    return el("table", { class: "kv" }, el("tbody", {}, keys.map((k) => el("tr", {}, el("td", { class: "k", text: k }), el("td", { class: "v", text: map[k] })))));
  }

  function drawDetail() {
    const box = document.getElementById("span-detail");
    const s = spans.find((x) => x.span_id === state().span);
    if (!s) { box.replaceChildren(el("p", { class: "muted", text: "Select a span to see its attributes and events." })); return; }
    const events = s.events.map((e) => {
      const a = { ...e.attributes };
      const stack = a["exception.stacktrace"];
      delete a["exception.stacktrace"];
      return el("div", { class: "event" + (e.name === "exception" ? " exception" : "") },
        el("div", {}, el("strong", { text: e.name }), " ", el("span", { class: "muted" }, K.timeEl(e.timestamp))),
        kv(a), stack ? el("pre", { class: "stack", text: stack }) : null);
    });
    box.replaceChildren(el("div", {},
      el("h2", {}, s.status === "error" ? el("span", { class: "err-mark", text: "✖ " }) : null, s.name),
      el("table", { class: "kv" }, el("tbody", {},
        [["service", el("a", { href: `/services/${encodeURIComponent(s.service)}`, text: s.service })], ["kind", s.kind],
          ["status", s.status + (s.status_message ? `: ${s.status_message}` : "")], ["duration", K.fmtDuration(s.duration_ns)],
          ["start", K.timeEl(s.start)], ["span id", s.span_id], ["parent", s.parent_span_id || "(root)"]]
          .map(([k, v]) => el("tr", { class: k === "status" && s.status === "error" ? "sev-error" : "" }, el("td", { class: "k", text: k }), el("td", { class: "v" }, v))))),
      el("h4", { text: `events (${s.events.length})` }), events.length ? events : el("p", { class: "muted", text: "none" }),
      el("h4", { text: "attributes" }), kv(s.attributes),
      el("h4", { text: "resource" }), kv(s.resource),
      s.links.length ? el("div", {}, el("h4", { text: "links" }), s.links.map((l) => el("div", {}, K.traceLink(l.trace_id), ` span ${l.span_id}`))) : null));
  }

  async function loadLogs(isCurrent) {
    const t0 = Math.min(...spans.map((s) => s.start_ns)), t1 = Math.max(...spans.map((s) => s.start_ns + s.duration_ns));
    const hour = 3600e9;
    const page = await api("/api/logs", { q: `trace_id:${traceId()}`, from: String(Math.floor((t0 - hour) / 1e6)), to: String(Math.ceil((t1 + hour) / 1e6)), limit: 500 });
    if (!isCurrent()) return;
    const rows = [...page.rows].sort((a, b) => a.timestamp_ns - b.timestamp_ns);
    document.getElementById("trace-logs").replaceChildren(...rows.map((r) => {
      const tr = K.logRow(r);
      if (r.span_id) tr.addEventListener("click", () => setState({ span: r.span_id }));
      if (r.span_id && r.span_id === state().span) tr.classList.add("selected");
      return tr;
    }));
    document.getElementById("logs-empty").hidden = rows.length > 0;
  }

  let loadedFor = null;
  async function render(isCurrent) {
    if (loadedFor !== traceId()) {
      const data = await api(`/api/traces/${encodeURIComponent(traceId())}`);
      if (!isCurrent()) return;
      spans = data.spans;
      loadedFor = traceId();
      if (!state().span) {
        // Open on the first failing span: the question a trace view usually answers.
        const firstError = order(spans).find(([s]) => s.status === "error");
        if (firstError) setState({ span: firstError[0].span_id }, { push: false, render: false });
      }
    }
    drawWaterfall();
    drawDetail();
    K.markDrawn();
    await loadLogs(isCurrent);
  }
  K.start(render);
})();
