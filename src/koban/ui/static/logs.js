/* The log explorer: histogram, results, facets, live tail. State: q, from, to,
   facets (extra facet fields), open (the expanded row), live. */
"use strict";
(() => {
  const { api, el, state, setState, apiRange } = K;
  const PAGE = 100;
  const TAIL_MAX_LINES = 1000;
  const BASE_FACETS = ["service", "severity", "host"];
  const SEV_ORDER = ["fatal", "error", "warn", "info", "debug", "trace"];
  const SEV_COLORS = { fatal: "#8e24aa", error: "#e53935", warn: "#fb8c00", info: "#3f7fe0", debug: "#90a4ae", trace: "#b0bec5", "(none)": "#bdbdbd", "(other)": "#a1887f" };
  let plot = null;
  let tail = null;
  let cursor = null;

  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const q = () => state().q || "";

  function filterBy(field, value, exclude) {
    setState({ q: K.editQuery(q(), K.term(field, value, exclude)), open: null });
  }

  // --- histogram -------------------------------------------------------------------
  function drawHistogram(data) {
    const box = document.getElementById("histogram");
    const names = new Set();
    data.buckets.forEach((b) => Object.keys(b.groups || {}).forEach((g) => names.add(g)));
    const rank = (g) => { const i = SEV_ORDER.indexOf(g.toLowerCase()); return i < 0 ? SEV_ORDER.length + (g.startsWith("(") ? 1 : 0) : i; };
    const groups = [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const xs = data.buckets.map((b) => b.ts_ms / 1000);
    const raw = groups.map((g) => data.buckets.map((b) => (b.groups || {})[g] || 0));
    // Stacked by drawing cumulative sums, tallest first, each later series over the last.
    const cum = raw.map((_, i) => xs.map((__, j) => raw.slice(i).reduce((s, r) => s + r[j], 0)));
    if (!groups.length) { cum.push(xs.map(() => 0)); raw.push(xs.map(() => 0)); groups.push("records"); }
    const bars = uPlot.paths.bars({ size: [0.9, Infinity], align: 1 });
    const axis = { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") } };
    const opts = {
      width: Math.max(300, box.clientWidth), height: 150,
      cursor: { drag: { x: true, y: false, setScale: false }, points: { show: false } },
      select: { show: true },
      legend: { show: true, live: true },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [{ ...axis }, { ...axis, size: 44 }],
      series: [{ value: (u, v) => (v === null ? "" : new Date(v * 1000).toLocaleString()) },
        ...groups.map((g, i) => ({
          label: g, stroke: SEV_COLORS[g] || K.serviceColor(g), fill: SEV_COLORS[g] || K.serviceColor(g),
          width: 0, paths: bars, points: { show: false },
          value: (u, v, si, di) => (di === null || di === undefined ? "" : raw[i][di]),
        }))],
      hooks: { setSelect: [(u) => {
        if (u.select.width < 3) return;
        const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
        setState({ from: new Date(a * 1000).toISOString(), to: new Date(b * 1000).toISOString() });
      }] },
    };
    if (plot) plot.destroy();
    box.replaceChildren();
    plot = new uPlot(opts, [xs, ...cum], box);
    box.dataset.total = data.total;
    box.dataset.buckets = xs.length;
  }

  // --- results -----------------------------------------------------------------------
  function kvTable(title, map, fieldOf) {
    const keys = Object.keys(map).sort();
    if (!keys.length) return null;
    return el("div", {}, el("h4", { text: title }), el("table", { class: "kv" }, el("tbody", {}, keys.map((k) =>
      el("tr", { dataset: { key: k } },
        el("td", { class: "k", text: k }),
        el("td", { class: "v", text: map[k] }),
        el("td", { class: "acts" },
          el("button", { type: "button", class: "filter-by", title: `filter by ${fieldOf(k)}:${map[k]}`, text: "+ filter", onclick: () => filterBy(fieldOf(k), map[k], false) }),
          " ",
          el("button", { type: "button", class: "exclude", title: `exclude ${fieldOf(k)}:${map[k]}`, text: "− exclude", onclick: () => filterBy(fieldOf(k), map[k], true) })))))));
  }
  function detailRow(row) {
    const ids = {};
    if (row.trace_id) ids.trace_id = row.trace_id;
    if (row.span_id) ids.span_id = row.span_id;
    const attrField = (k) => "@" + k;
    const resField = (k) => (k === "service.name" ? "service" : "@" + k);
    return el("tr", { class: "detail" }, el("td", { colspan: 4 },
      row.trace_id ? el("div", {}, "trace ", K.traceLink(row.trace_id), row.span_id ? el("span", { class: "muted mono", text: `  span ${row.span_id}` }) : null) : null,
      kvTable("attributes", row.attributes, attrField),
      kvTable("resource", row.resource, resField),
      el("pre", { class: "mono", text: row.body })));
  }
  function addRows(rows, open) {
    const body = document.getElementById("log-rows");
    for (const row of rows) {
      const tr = K.logRow(row);
      if (row.trace_id) tr.children[3].append(" ", el("a", { class: "trace-chip", href: `/traces/${row.trace_id}`, title: "open this trace", text: "trace ↗", onclick: (e) => e.stopPropagation() }));
      tr.addEventListener("click", () => {
        const next = tr.nextElementSibling;
        if (next && next.classList.contains("detail")) { next.remove(); setState({ open: null }, { push: false, render: false }); return; }
        tr.after(detailRow(row));
        setState({ open: String(row.timestamp_ns) }, { push: false, render: false });
      });
      body.append(tr);
      if (open && String(row.timestamp_ns) === open) tr.after(detailRow(row));
    }
  }

  // --- facets -------------------------------------------------------------------------
  function extraFacets() { return (state().facets || "").split(",").filter(Boolean); }
  function drawFacet(field, data, current) {
    const removable = !BASE_FACETS.includes(field);
    return el("div", { class: "facet", dataset: { field } },
      el("h3", {}, el("span", { text: field }), removable ? el("button", { type: "button", title: "remove this facet", text: "×",
        onclick: () => setState({ facets: extraFacets().filter((f) => f !== field).join(",") }) }) : null),
      data.values.length ? data.values.map((v) => {
        const t = K.term(field, v.value);
        const on = new RegExp(`(^|\\s)${t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(\\s|$)`).test(current);
        return el("div", { class: "facet-value" + (on ? " on" : ""), dataset: { value: v.value }, title: on ? `remove ${t}` : `filter by ${t}`,
          onclick: () => setState({ q: K.editQuery(current, t, { toggle: true }) }) },
          el("span", { class: "v", text: v.value }), el("span", { class: "muted", text: v.count.toLocaleString() }));
      }) : el("div", { class: "muted", text: "no values" }));
  }
  async function loadFacets(isCurrent) {
    const fields = [...BASE_FACETS, ...extraFacets()];
    const current = q();
    const results = await Promise.all(fields.map((f) => api("/api/logs/facets", { q: current, field: f, limit: 8, ...apiRange() })));
    if (!isCurrent()) return;
    document.getElementById("facet-list").replaceChildren(...results.map((r, i) => drawFacet(fields[i], r, current)));
  }

  // --- live tail ------------------------------------------------------------------------
  function stopTail() { if (tail) { tail.close(); tail = null; } }
  function startTail() {
    stopTail();
    const box = document.getElementById("tail-lines");
    const resume = document.getElementById("tail-resume");
    box.replaceChildren(el("div", { class: "muted", text: "waiting for new lines…" }));
    let unseen = 0;
    const atBottom = () => box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    box.onscroll = () => { if (atBottom()) { unseen = 0; resume.hidden = true; } };
    resume.onclick = () => { box.scrollTop = box.scrollHeight; unseen = 0; resume.hidden = true; };
    const source = new EventSource("/api/logs/tail?" + new URLSearchParams({ q: q() }));
    tail = source;
    source.addEventListener("lines", (e) => {
      const { rows } = JSON.parse(e.data);
      const follow = atBottom();
      const placeholder = box.querySelector(".muted");
      if (placeholder) placeholder.remove();
      for (const r of rows) {
        box.append(el("div", { class: "tail-line", dataset: { ts: r.timestamp_ns } },
          el("span", { class: "t" }, K.timeEl(r.timestamp, { date: false })), " ",
          el("span", { class: `sev ${K.sevClass(r.severity)}`, text: r.severity || "–" }), " ",
          el("a", { href: `/services/${encodeURIComponent(r.service)}`, text: r.service }), " ",
          r.body, r.trace_id ? el("span", {}, " ", el("a", { href: `/traces/${r.trace_id}`, text: "trace ↗" })) : null));
      }
      while (box.children.length > TAIL_MAX_LINES) box.firstElementChild.remove();
      if (follow) box.scrollTop = box.scrollHeight;
      else { unseen += rows.length; resume.hidden = false; resume.textContent = `paused · ${unseen} new line${unseen === 1 ? "" : "s"} ↓`; }
    });
    source.addEventListener("error", (e) => {
      if (e.data) { K.showError(new K.ApiError(500, JSON.parse(e.data))); source.close(); }
      else if (source.readyState === EventSource.CLOSED) K.showError(new K.ApiError(0, { error: "the live tail was disconnected" }));
    });
  }
  function setLiveMode(on) {
    document.getElementById("live-toggle").checked = on;
    for (const id of ["histogram", "log-table"]) document.getElementById(id).hidden = on;
    document.getElementById("tail").hidden = !on;
    if (on) { document.getElementById("empty").hidden = true; document.getElementById("more").hidden = true; }
  }

  // --- page --------------------------------------------------------------------------------
  async function render(isCurrent) {
    const s = state();
    const live = s.live === "1";
    setLiveMode(live);
    stopTail();
    document.getElementById("more").hidden = true;
    const params = { q: q(), ...apiRange() };
    if (live) {
      await api("/api/logs", { ...params, limit: 1 }); // a bad query fails here, under the bar
      if (!isCurrent()) return;
      startTail();
      K.markDrawn();
      await loadFacets(isCurrent);
      return;
    }
    const [hist, page] = await Promise.all([
      api("/api/logs/histogram", { ...params, by: "severity" }),
      api("/api/logs", { ...params, limit: PAGE }),
    ]);
    if (!isCurrent()) return;
    drawHistogram(hist);
    document.getElementById("total").textContent = `${hist.total.toLocaleString()} records`;
    document.getElementById("log-rows").replaceChildren();
    addRows(page.rows, s.open);
    cursor = page.next_cursor;
    document.getElementById("more").hidden = !cursor;
    document.getElementById("empty").hidden = page.rows.length > 0;
    K.markDrawn();
    await loadFacets(isCurrent);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("more").addEventListener("click", async () => {
      try {
        const page = await api("/api/logs", { q: q(), ...apiRange(), limit: PAGE, cursor });
        addRows(page.rows, null);
        cursor = page.next_cursor;
        document.getElementById("more").hidden = !cursor;
      } catch (e) { K.showError(e); }
    });
    document.getElementById("live-toggle").addEventListener("change", (e) => setState({ live: e.target.checked ? "1" : null }));
    document.getElementById("add-facet").addEventListener("submit", (e) => {
      e.preventDefault();
      let f = document.getElementById("facet-field").value.trim();
      if (!f) return;
      if (!f.startsWith("@") && !BASE_FACETS.includes(f)) f = "@" + f;
      document.getElementById("facet-field").value = "";
      setState({ facets: [...new Set([...extraFacets(), f])].join(",") });
    });
    window.addEventListener("resize", () => { if (plot) plot.setSize({ width: document.getElementById("histogram").clientWidth, height: 150 }); });
  });
  K.start(render);
})();
