/* The service catalog. State: from, to, sort. */
"use strict";
(() => {
  const { api, el, apiRange } = K;
  const metricCells = (r) => [
    el("td", { class: "num", text: K.fmtRate(r.rps) }),
    el("td", { class: "num" + (r.error_rate > 0 ? " sev-error" : ""), text: r.requests ? K.fmtPct(r.error_rate) : "–" }),
    el("td", { class: "num", text: K.fmtMs(r.p50_ms) }),
    el("td", { class: "num", text: K.fmtMs(r.p90_ms) }),
    el("td", { class: "num", text: K.fmtMs(r.p99_ms) }),
  ];
  function draw(rows) {
    const keep = new URLSearchParams(apiRange()).toString();
    document.getElementById("service-rows").replaceChildren(...rows.map((r) =>
      el("tr", { class: "row", dataset: { service: r.service }, onclick: () => { location.href = `/services/${encodeURIComponent(r.service)}?${keep}`; } },
        el("td", {}, el("span", { class: "dot", style: `display:inline-block;width:8px;height:8px;border-radius:2px;margin-right:6px;background:${K.serviceColor(r.service)}` }),
          el("a", { href: `/services/${encodeURIComponent(r.service)}?${keep}`, text: r.service })),
        ...metricCells(r))));
  }
  async function render(isCurrent) {
    const data = await api("/api/services", apiRange());
    if (!isCurrent()) return;
    K.sortable(document.getElementById("service-table"), data.services, draw);
    document.getElementById("empty").hidden = data.services.length > 0;
    document.body.dataset.ready = "1";
  }
  K.start(render);
})();
