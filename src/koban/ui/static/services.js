/* The service catalog, with a sparkline per row of requests/s, error rate and p99 over
   the range (one /api/timeseries call per metric, grouped by service). State: from, to,
   sort. Sets body[data-ready] once the table is drawn and body[data-charts] once the
   sparklines are (or could not be). */
"use strict";
(() => {
  const { api, el, apiRange } = K;
  // metric column -> how its sparkline is fetched and shown
  const SPARKS = {
    rps: { agg: "rate", fmt: (v) => `${K.fmtRate(v)}/s`, color: "var(--accent)" },
    error_rate: { agg: "error_rate", fmt: K.fmtPct, color: "var(--err)" },
    p99_ms: { agg: "p99", fmt: K.fmtMs, color: "var(--warn)" },
  };
  let sparks = {}; // metric -> {service: points}

  function fillSpark(slot) {
    const points = (sparks[slot.dataset.metric] || {})[slot.dataset.service];
    const spec = SPARKS[slot.dataset.metric];
    slot.replaceChildren(points ? K.sparkline(points, { color: spec.color, fmt: spec.fmt }) : "");
  }
  const slot = (metric, service) => el("span", { class: "spark-slot", dataset: { metric, service } });
  const metricCells = (r) => [
    el("td", { class: "num" }, slot("rps", r.service), K.fmtRate(r.rps)),
    el("td", { class: "num" + (r.error_rate > 0 ? " sev-error" : "") }, slot("error_rate", r.service), r.requests ? K.fmtPct(r.error_rate) : "–"),
    el("td", { class: "num", text: K.fmtMs(r.p50_ms) }),
    el("td", { class: "num", text: K.fmtMs(r.p90_ms) }),
    el("td", { class: "num" }, slot("p99_ms", r.service), K.fmtMs(r.p99_ms)),
  ];
  function draw(rows) {
    const keep = new URLSearchParams(apiRange()).toString();
    const body = document.getElementById("service-rows");
    body.replaceChildren(...rows.map((r) =>
      el("tr", { class: "row", dataset: { service: r.service }, onclick: () => { location.href = `/services/${encodeURIComponent(r.service)}?${keep}`; } },
        el("td", {}, el("span", { class: "dot", style: `display:inline-block;width:8px;height:8px;border-radius:2px;margin-right:6px;background:${K.serviceColor(r.service)}` }),
          el("a", { href: `/services/${encodeURIComponent(r.service)}?${keep}`, text: r.service })),
        ...metricCells(r))));
    body.querySelectorAll(".spark-slot").forEach(fillSpark);
  }
  /* The sparklines' data: {metric: {service: points}}; a failed metric is left out and
     its error noted on the table (the catalog itself stays usable). */
  async function loadSparks() {
    const r = K.seriesRange(40);
    const metrics = Object.keys(SPARKS);
    const answers = await Promise.allSettled(metrics.map((m) =>
      K.timeseries({ q: K.REQUESTS, agg: SPARKS[m].agg, by: "service", ...r })));
    const out = {}, failed = [];
    answers.forEach((a, i) => { if (a.status === "fulfilled") out[metrics[i]] = K.seriesBy(a.value, "service"); else failed.push(a.reason); });
    return { out, failed };
  }
  async function render(isCurrent) {
    sparks = {};
    delete document.body.dataset.charts;
    const data = await api("/api/services", apiRange());
    const sparkData = loadSparks(); // after the table's query, which it would slow down
    if (!isCurrent()) return;
    K.sortable(document.getElementById("service-table"), data.services, draw);
    document.getElementById("empty").hidden = data.services.length > 0;
    K.markDrawn();
    const { out, failed } = await sparkData;
    if (!isCurrent()) return;
    sparks = out;
    document.querySelectorAll("#service-rows .spark-slot").forEach(fillSpark);
    const table = document.getElementById("service-table");
    table.dataset.sparkError = failed.length ? failed[0].message : "";
    table.title = failed.length ? `sparklines unavailable: ${failed[0].message}` : "";
    K.markDrawn("charts");
  }
  K.start(render);
})();
