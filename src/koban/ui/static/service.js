/* One service: charts of requests, errors and latency percentiles over time, its
   resources (sortable), slowest and failing traces, recent error logs. State: from, to,
   sort. Sets body[data-ready] once the tables are drawn and body[data-charts] once the
   charts are (or could not be). */
"use strict";
(() => {
  const { api, el, apiRange } = K;
  const name = () => document.getElementById("service-name").dataset.service;
  const svcTerm = () => K.term("service", name());

  function metricCells(r) {
    return [
      el("td", { class: "num", text: K.fmtRate(r.rps) }),
      el("td", { class: "num" + (r.error_rate > 0 ? " sev-error" : ""), text: K.fmtPct(r.error_rate) }),
      el("td", { class: "num", text: K.fmtMs(r.p50_ms) }),
      el("td", { class: "num", text: K.fmtMs(r.p90_ms) }),
      el("td", { class: "num", text: K.fmtMs(r.p99_ms) }),
    ];
  }
  function drawResources(rows) {
    const r = apiRange();
    document.getElementById("resource-rows").replaceChildren(...rows.map((row) => {
      const href = `/traces?${new URLSearchParams({ q: `${svcTerm()} ${K.term("resource", row.resource)}`, ...r })}`;
      const errHref = `/traces?${new URLSearchParams({ q: `${svcTerm()} ${K.term("resource", row.resource)} status:error`, ...r })}`;
      return el("tr", { class: "row", dataset: { resource: row.resource }, onclick: () => { location.href = href; } },
        el("td", {}, el("a", { href, text: row.resource }), row.errors ? el("a", { class: "error-flag", href: errHref, title: "failing traces", text: `  ✖ ${row.errors}`, onclick: (e) => e.stopPropagation() }) : null),
        ...metricCells(row));
    }));
  }
  function traceRows(traces) {
    if (!traces.length) return [el("tr", {}, el("td", { class: "muted", text: "none in this time range" }))];
    return traces.map((t) => el("tr", { class: "row", dataset: { traceId: t.trace_id }, onclick: () => { location.href = `/traces/${t.trace_id}`; } },
      el("td", { class: "t" }, K.timeEl(t.start)),
      el("td", {}, el("a", { href: `/traces/${t.trace_id}`, text: t.root_name || t.trace_id.slice(0, 16) })),
      el("td", { class: "num", text: K.fmtDuration(t.duration_ns) }),
      el("td", {}, t.error ? el("span", { class: "error-flag", text: "✖" }) : "")));
  }
  const CHARTS = {
    requests: { aggs: [["rate", "requests/s", "#3f7fe0"]], fmt: (v) => K.fmtRate(v) },
    errors: { aggs: [["errors", "errors", "#e53935"]], fmt: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)), bars: true },
    latency: { aggs: [["p50", "p50", "#43a047"], ["p90", "p90", "#fb8c00"], ["p99", "p99", "#e53935"]], fmt: K.fmtMs },
  };
  const plots = {};
  /* Every chart's series in parallel, one /api/timeseries call per aggregate. */
  async function loadCharts(isCurrent) {
    const r = K.seriesRange(90);
    const q = `${svcTerm()} ${K.REQUESTS}`;
    const names = Object.keys(CHARTS);
    const calls = names.flatMap((n) => CHARTS[n].aggs.map(([agg]) => K.timeseries({ q, agg, ...r })));
    let docs;
    try { docs = await Promise.all(calls); } catch (e) {
      if (!isCurrent()) return;
      const box = document.getElementById("chart-error");
      box.textContent = `charts unavailable: ${e.message}`;
      box.hidden = false;
      K.markDrawn("charts");
      return;
    }
    if (!isCurrent()) return;
    document.getElementById("chart-error").hidden = true;
    let i = 0;
    for (const n of names) {
      const spec = CHARTS[n];
      const series = spec.aggs.map(([, label, color]) => ({ label, color, bars: spec.bars, points: K.seriesBy(docs[i++], "")[""] || [] }));
      plots[n] = K.chart(document.getElementById(`chart-${n}`), series, { fmt: spec.fmt, old: plots[n] });
    }
    K.markDrawn("charts");
  }
  async function render(isCurrent) {
    delete document.body.dataset.charts;
    const charts = loadCharts(isCurrent);
    const r = apiRange();
    const [res, slow, failing, logs] = await Promise.all([
      api(`/api/services/${encodeURIComponent(name())}/resources`, r),
      api("/api/traces", { q: svcTerm(), sort: "duration", limit: 10, ...r }),
      api("/api/traces", { q: `${svcTerm()} status:error`, limit: 10, ...r }),
      api("/api/logs", { q: `${svcTerm()} status:error`, limit: 20, ...r }),
    ]);
    if (!isCurrent()) return;
    K.sortable(document.getElementById("resource-table"), res.resources, drawResources);
    document.getElementById("resources-empty").hidden = res.resources.length > 0;
    document.getElementById("slow-traces").replaceChildren(...traceRows(slow.traces));
    document.getElementById("failing-traces").replaceChildren(...traceRows(failing.traces));
    document.getElementById("error-logs").replaceChildren(...logs.rows.map((row) => {
      const tr = K.logRow(row);
      if (row.trace_id) tr.addEventListener("click", () => { location.href = `/traces/${row.trace_id}`; });
      return tr;
    }));
    K.markDrawn();
    await charts;
  }
  window.addEventListener("resize", () => {
    for (const [n, p] of Object.entries(plots)) p.setSize({ width: document.getElementById(`chart-${n}`).clientWidth, height: 160 });
  });
  K.start(render);
})();
