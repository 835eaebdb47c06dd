/* Span search: a duration-over-time scatter of matching spans and the list of their
   traces. State: q, from, to, sort. */
"use strict";
(() => {
  const { api, el, state, apiRange } = K;
  let plot = null;
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function drawScatter(spans) {
    const box = document.getElementById("scatter");
    // Two series (ok, error) over one x array; null where a point belongs to the other.
    const sorted = [...spans].sort((a, b) => a.start_ns - b.start_ns);
    const xs = sorted.map((s) => s.start_ns / 1e9);
    const ok = sorted.map((s) => (s.status === "error" ? null : s.duration_ns / 1e6));
    const bad = sorted.map((s) => (s.status === "error" ? s.duration_ns / 1e6 : null));
    const axis = { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") } };
    const dots = { show: true, size: 5, width: 0 };
    const opts = {
      width: Math.max(300, box.clientWidth), height: 180,
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 8 } },
      scales: { x: { time: true }, y: { distr: 3 } },
      axes: [{ ...axis }, { ...axis, size: 60, values: (u, vals) => vals.map((v) => K.fmtMs(v)) }],
      series: [{},
        { label: "ok", stroke: "#3f7fe0", fill: "#3f7fe0", paths: () => null, points: { ...dots, fill: "#3f7fe0" }, value: (u, v) => K.fmtMs(v) },
        { label: "error", stroke: "#e53935", fill: "#e53935", paths: () => null, points: { ...dots, fill: "#e53935" }, value: (u, v) => K.fmtMs(v) }],
      hooks: { setSelect: [(u) => {
        if (u.select.width < 3) return;
        const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
        K.setState({ from: new Date(a * 1000).toISOString(), to: new Date(b * 1000).toISOString() });
      }] },
    };
    if (plot) plot.destroy();
    box.replaceChildren();
    if (!spans.length) { plot = null; return; }
    plot = new uPlot(opts, [xs, ok, bad], box);
    plot.over.addEventListener("click", () => {
      const i = plot.cursor.idx;
      if (i !== null && i !== undefined && plot.select.width < 3) location.href = `/traces/${sorted[i].trace_id}`;
    });
    box.dataset.points = spans.length;
  }

  function drawTraces(rows) {
    document.getElementById("trace-rows").replaceChildren(...rows.map((t) =>
      el("tr", { class: "row" + (t.error ? " error" : ""), dataset: { traceId: t.trace_id }, onclick: () => { location.href = `/traces/${t.trace_id}`; } },
        el("td", { class: "t" }, K.timeEl(t.start)),
        el("td", {}, t.root_service ? el("span", {}, el("span", { class: "dot", style: `background:${K.serviceColor(t.root_service)}` }), t.root_service) : el("span", { class: "muted", text: "(root span missing)" })),
        el("td", {}, el("a", { href: `/traces/${t.trace_id}`, text: t.root_name || t.trace_id })),
        el("td", { class: "num", text: t.span_count }),
        el("td", { class: "num", text: K.fmtDuration(t.duration_ns) }),
        el("td", { class: "num" }, t.error ? el("span", { class: "error-flag", title: `${t.error_count} error span(s)`, text: `✖ ${t.error_count}` }) : el("span", { class: "muted", text: "–" })))));
  }

  async function render(isCurrent) {
    const params = { q: state().q || "", ...apiRange() };
    const [spans, traces] = await Promise.all([
      api("/api/spans", { ...params, limit: 1000 }),
      api("/api/traces", { ...params, limit: 100 }),
    ]);
    if (!isCurrent()) return;
    drawScatter(spans.rows);
    document.getElementById("scatter-note").textContent = spans.next_cursor ? `(newest ${spans.rows.length} spans)` : `(${spans.rows.length} spans)`;
    K.sortable(document.getElementById("trace-table"), traces.traces, drawTraces);
    document.getElementById("empty").hidden = traces.traces.length > 0;
    K.markDrawn();
  }
  K.start(render);
})();
