/* One service: its resources (sortable), slowest and failing traces, recent error logs.
   State: from, to, sort. */
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
  async function render(isCurrent) {
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
    document.body.dataset.ready = "1";
  }
  K.start(render);
})();
