/* The metrics explorer: one chart of one or more metric queries (letters a, b, c as in
   Datadog), each built with a picker, tag filters, group-by, aggregation and rollup, or
   typed as a Datadog metric query. State: a..j (each query's text), from, to, hide (a
   JSON list of the legend keys switched off). body[data-rendered] is the URL's query
   string once the chart for it is drawn (what the tests wait for). */
"use strict";
(() => {
  const { api, el, state, setState } = K;
  const LETTERS = "abcdefghij".split("");
  const PALETTE = ["#3f7fe0", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#c0ca33", "#6d4c41",
    "#d81b60", "#5e35b1", "#00897b", "#f4511e", "#546e7a", "#7cb342", "#3949ab", "#ffb300"];
  const COUNTER_TYPES = /^(sum|counter|count)$/i;
  let pending = null; // the letter of an added query that has no metric yet (not in the URL until it has one)
  let plot = null;
  let drawn = []; // the series of the last answer: [{key, letter, label, points, stacked}]
  let unit = ""; // the y axis' unit, when every query's metric has the same one

  // --- URL state -------------------------------------------------------------------------
  function queries() {
    const s = state();
    const list = LETTERS.filter((l) => s[l] !== undefined && s[l] !== "").map((letter) => ({ letter, text: s[letter] }));
    if (pending && !list.some((q) => q.letter === pending)) list.push({ letter: pending, text: "" });
    if (!list.length) list.push({ letter: "a", text: "" });
    return list.sort((x, y) => x.letter.localeCompare(y.letter));
  }
  function hidden() {
    try { const h = JSON.parse(state().hide || "[]"); return new Set(Array.isArray(h) ? h.map(String) : []); } catch (e) { return new Set(); }
  }
  function setQuery(letter, text) {
    if (letter === pending && text) pending = null;
    if ((state()[letter] || "") === text) { K.run(); return; }
    setState({ [letter]: text || null });
  }

  // --- one query's row: the builder and the text ----------------------------------------------
  function option(value, text, selected) { return el("option", { value, text: text ?? value, selected: selected || null }); }
  function chip(text, title, onRemove) {
    return el("span", { class: "chip", dataset: { value: text } }, text,
      el("button", { type: "button", class: "chip-x", title, text: "×", onclick: onRemove }));
  }

  /* The row of query `q`; `info` = {tags: {key: [values]}, meta: {type, unit}} once known. */
  function queryRow(q, info, total) {
    const node = document.getElementById("query-row").content.firstElementChild.cloneNode(true);
    node.dataset.letter = q.letter;
    const $ = (sel) => node.querySelector(sel);
    const model = MQ.parse(q.text);
    const m = model || MQ.empty();
    const edit = (change) => setQuery(q.letter, MQ.format({ ...m, ...change }));
    $(".q-letter").textContent = q.letter;
    $(".q-text").value = q.text;
    $(".q-text").placeholder = "avg:metric.name{tag:value} by {tag}";
    $(".remove-query").hidden = total < 2;
    $(".remove-query").onclick = () => removeQuery(q.letter);
    const commit = () => { const t = $(".q-text").value.trim(); if (t !== (state()[q.letter] || "")) setQuery(q.letter, t); };
    $(".q-text").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); commit(); } });
    $(".q-text").addEventListener("change", commit);
    if (!model) {
      $(".q-builder").classList.add("disabled");
      $(".q-builder").title = "this query uses more than the builder knows: edit its text below";
      for (const c of node.querySelectorAll(".q-builder select, .q-builder input")) c.disabled = true;
    }
    // a new metric may not have the old one's tags: filters and groups start over
    wirePicker($(".picker"), m, (name) => edit({ metric: name, filters: [], by: [], modifier: "" }));
    $(".metric").value = m.metric;
    $(".agg").replaceChildren(option("", "auto", !m.agg), ...MQ.AGGS.map((a) => option(a, a, a === m.agg)));
    $(".agg").onchange = (e) => edit({ agg: e.target.value });

    const tags = (info && info.tags) || {};
    $(".filters").replaceChildren(...m.filters.map((f, i) => chip(MQ.tagText(f), "remove this filter",
      () => edit({ filters: m.filters.filter((_, j) => j !== i) }))));
    const used = new Set(m.filters.map(MQ.tagText));
    $(".add-filter").append(...Object.keys(tags).sort().map((k) => el("optgroup", { label: k },
      tags[k].filter((v) => !used.has(`${k}:${v}`)).map((v) => option(`${k}:${v}`)))));
    $(".add-filter").onchange = (e) => {
      const t = e.target.value, i = t.indexOf(":");
      if (t) edit({ filters: [...m.filters, { neg: false, key: t.slice(0, i), value: t.slice(i + 1) }] });
    };
    $(".by").replaceChildren(...m.by.map((k) => chip(k, "stop grouping by this tag", () => edit({ by: m.by.filter((b) => b !== k) }))));
    $(".add-by").append(...Object.keys(tags).sort().filter((k) => !m.by.includes(k)).map((k) => option(k)));
    $(".add-by").onchange = (e) => { if (e.target.value) edit({ by: [...m.by, e.target.value] }); };

    const r = m.rollup;
    $(".rollup-fn").replaceChildren(option("", "auto", !r), ...MQ.ROLLUPS.map((f) => option(f, f, r && r.fn === f)));
    $(".rollup-s").value = r && r.seconds ? r.seconds : "";
    const setRollup = () => {
      const fn = $(".rollup-fn").value, s = parseInt($(".rollup-s").value, 10);
      edit({ rollup: fn || s > 0 ? { fn: fn || "avg", seconds: s > 0 ? s : null } : null });
    };
    $(".rollup-fn").onchange = setRollup;
    $(".rollup-s").onchange = setRollup;
    $(".modifier").replaceChildren(option("", "as is", !m.modifier), ...MQ.MODIFIERS.map((x) => option(x, x.replace("_", " "), x === m.modifier)));
    $(".modifier").onchange = (e) => edit({ modifier: e.target.value });
    const meta = (info && info.meta) || {};
    $(".modifier").hidden = !m.modifier && !COUNTER_TYPES.test(meta.type || "");
    if (meta.type) $(".metric").title = `${meta.type}${meta.unit ? ` · ${meta.unit}` : ""}${meta.description ? ` · ${meta.description}` : ""}`;
    return node;
  }

  /* The metric picker: typing searches the names in the store; a click, or Enter on the
     highlighted one, picks it. */
  function wirePicker(box, m, pick) {
    const input = box.querySelector(".metric"), list = box.querySelector(".metric-options");
    let timer = null, seq = 0, active = -1, found = [];
    const highlight = (i) => {
      active = i;
      [...list.children].forEach((li, j) => li.classList.toggle("active", j === i));
    };
    const search = async () => {
      const mine = ++seq;
      let doc;
      try { doc = await api("/api/metrics/names", { q: input.value.trim(), limit: 30, ...K.apiRange() }); } catch (e) {
        list.replaceChildren(el("li", { class: "muted", text: e.message }));
        list.hidden = false;
        return;
      }
      if (mine !== seq) return;
      found = doc.metrics || [];
      list.replaceChildren(...(found.length ? found.map((x) => el("li", { role: "option", dataset: { name: x.name },
        onmousedown: (e) => { e.preventDefault(); pick(x.name, x); } },
      el("span", { class: "name", text: x.name }),
      el("span", { class: "muted", text: [x.type, x.unit].filter(Boolean).join(" · ") }),
      x.description ? el("div", { class: "muted desc", text: x.description }) : null)) : [el("li", { class: "muted", text: "no metric matches in this time range" })]));
      list.hidden = false;
      highlight(found.length ? 0 : -1);
    };
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 150); });
    input.addEventListener("focus", () => { if (!input.disabled) search(); });
    input.addEventListener("blur", () => { list.hidden = true; input.value = m.metric; });
    input.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        if (found.length) highlight((active + (e.key === "ArrowDown" ? 1 : found.length - 1)) % found.length);
      } else if (e.key === "Enter") {
        e.preventDefault();
        if (active >= 0 && found[active]) pick(found[active].name, found[active]);
      } else if (e.key === "Escape") input.blur();
    });
  }

  function addQuery() {
    const used = new Set(queries().map((q) => q.letter));
    const next = LETTERS.find((l) => !used.has(l));
    if (!next) return;
    pending = next;
    drawRows(queries(), {});
    const row = document.querySelector(`.q-row[data-letter="${next}"] .metric`);
    if (row) row.focus();
  }
  function removeQuery(letter) {
    if (letter === pending) { pending = null; drawRows(queries(), {}); return; }
    const hide = [...hidden()].filter((k) => !k.startsWith(letter + ":"));
    setState({ [letter]: null, hide: hide.length ? JSON.stringify(hide) : null });
  }
  function drawRows(list, infos) {
    document.getElementById("queries").replaceChildren(...list.map((q) => queryRow(q, infos[q.letter], list.length)));
    document.getElementById("add-query").hidden = list.length >= LETTERS.length;
  }

  /* A query's error under its text: a syntax error with a caret at its position. */
  function showQueryError(letter, err) {
    const row = document.querySelector(`.q-row[data-letter="${letter}"]`);
    if (!row) return;
    const box = row.querySelector(".q-error"), text = state()[letter] || "";
    const input = row.querySelector(".q-text");
    input.setAttribute("aria-invalid", "true");
    if (err instanceof K.ApiError && err.body.position !== undefined && err.body.position !== null) {
      const pos = Math.max(0, Math.min(Number(err.body.position) || 0, text.length));
      box.replaceChildren(el("div", { text: `Syntax error at position ${pos}: ${err.message}` }),
        el("pre", {}, text, "\n", " ".repeat(pos), el("span", { class: "caret", text: "^" })));
    } else box.replaceChildren(el("div", { text: err.message || String(err) }));
    box.hidden = false;
  }

  // --- the chart and its legend ------------------------------------------------------------------
  const fmtValue = (v) => {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
    return v.toPrecision(3).replace(/\.?0+$/, "");
  };
  const fmtInterval = (ms) => (ms % 3600e3 === 0 ? `${ms / 3600e3} h` : ms % 60e3 === 0 ? `${ms / 60e3} min` : `${ms / 1e3} s`);
  const labelText = (labels) => Object.entries(labels || {}).map(([k, v]) => `${k}:${v}`).join(",");

  /* Series of every answered query, keyed `<letter>:<labels>`; grouped queries stack. */
  function seriesOf(answers) {
    const out = [];
    for (const { q, doc } of answers) {
      const grouped = (doc.series || []).some((s) => Object.keys(s.labels || {}).length);
      for (const s of doc.series || []) {
        const label = labelText(s.labels) || q.text;
        out.push({ key: `${q.letter}:${labelText(s.labels)}`, letter: q.letter, label, points: s.points || [], stacked: grouped });
      }
    }
    out.forEach((s, i) => { s.color = PALETTE[i % PALETTE.length]; });
    return out;
  }

  function drawChart() {
    const box = document.getElementById("metrics-chart");
    const off = hidden();
    const visible = drawn.filter((s) => !off.has(s.key));
    const xsMs = [...new Set(drawn.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
    const index = new Map(xsMs.map((t, i) => [t, i]));
    const raw = visible.map((s) => {
      const col = xsMs.map(() => null);
      for (const [t, v] of s.points) col[index.get(t)] = v;
      return col;
    });
    // A stacked group is drawn as running sums, its first series (the tallest) first, so
    // each later area covers the one before and the bands show each series' share.
    const shown = raw.map((col, i) => {
      const s = visible[i];
      if (!s.stacked) return col;
      const rest = visible.map((o, j) => [o, j]).filter(([o, j]) => j >= i && o.letter === s.letter && o.stacked);
      return col.map((_, k) => {
        const vals = rest.map(([, j]) => raw[j][k]);
        return vals.every((v) => v === null || v === undefined) ? null : vals.reduce((a, v) => a + (v || 0), 0);
      });
    });
    if (plot) { plot.destroy(); plot = null; }
    box.replaceChildren();
    box.dataset.series = visible.length;
    box.dataset.points = xsMs.length;
    box.dataset.sum = raw.reduce((a, col) => a + col.reduce((b, v) => b + (v || 0), 0), 0); // what tests check
    if (!drawn.length) return;
    const css = (n) => getComputedStyle(document.documentElement).getPropertyValue(n).trim();
    const axis = { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") } };
    plot = new uPlot({
      width: Math.max(300, box.clientWidth), height: 300,
      cursor: { drag: { x: true, y: false, setScale: false } },
      select: { show: true },
      legend: { show: false },
      // stacks start at 0; a line of large values may float
      scales: { x: { time: true }, y: { range: (u, min, max) => {
        const lo = visible.some((x) => x.stacked) ? Math.min(0, min) : min;
        return max > lo ? [lo, max + (max - lo) * 0.05] : [lo - 1, lo + 1];
      } } },
      // each stacked area fills only down to the next series of its stack, so the
      // translucent fills do not mix
      bands: visible.flatMap((x, i) => (x.stacked && visible[i + 1] && visible[i + 1].stacked && visible[i + 1].letter === x.letter
        ? [{ series: [i + 1, i + 2] }] : [])),
      axes: [{ ...axis }, { ...axis, size: 60, values: (u, vs) => vs.map(fmtValue), label: unit || undefined, labelSize: unit ? 20 : 0 }],
      series: [{}, ...visible.map((s) => ({
        label: s.label, stroke: s.color, width: 1.5, spanGaps: false,
        fill: s.stacked ? s.color + "99" : null,
        // a line cannot show a value between two gaps (one flush window): draw it as a dot
        points: { show: true, size: 6, fill: s.color, filter: isolated },
      }))],
      hooks: {
        setSelect: [K.narrowOnDrag],
        setCursor: [(u) => showValues(u.cursor.idx, visible, raw)],
      },
    }, [xsMs.map((t) => t / 1000), ...shown], box);
  }

  function isolated(u, si) {
    const d = u.data[si], out = [];
    for (let i = 0; i < d.length; i++) if (d[i] !== null && d[i] !== undefined && d[i - 1] == null && d[i + 1] == null) out.push(i);
    return out;
  }

  /* The legend: one entry per series (hidden ones too); a click hides or shows it. */
  function drawLegend() {
    const off = hidden();
    document.getElementById("legend").replaceChildren(...drawn.map((s) => {
      const last = [...s.points].reverse().find((p) => p[1] !== null && p[1] !== undefined);
      return el("li", { class: off.has(s.key) ? "off" : null, dataset: { key: s.key }, title: off.has(s.key) ? "click to show" : "click to hide",
        role: "button", tabindex: 0, "aria-pressed": off.has(s.key) ? "false" : "true",
        onclick: () => toggle(s.key), onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(s.key); } } },
      el("span", { class: "swatch", style: `background:${s.color}` }),
      el("span", { class: "q-letter", text: s.letter }),
      el("span", { class: "label", text: s.label }),
      el("span", { class: "v", dataset: { last: last ? last[1] : "" }, text: last ? fmtValue(last[1]) : "–" }));
    }));
  }
  function showValues(idx, visible, raw) {
    const byKey = new Map(visible.map((s, i) => [s.key, raw[i]]));
    for (const li of document.querySelectorAll("#legend li")) {
      const col = byKey.get(li.dataset.key), v = li.querySelector(".v");
      if (idx === null || idx === undefined) { v.textContent = v.dataset.last === "" ? "–" : fmtValue(Number(v.dataset.last)); continue; }
      v.textContent = col ? fmtValue(col[idx]) : "–";
    }
  }
  function toggle(key) {
    const off = hidden();
    if (off.has(key)) off.delete(key); else off.add(key);
    setState({ hide: off.size ? JSON.stringify([...off]) : null }, { render: false });
    const focused = document.activeElement && document.activeElement.dataset.key === key;
    drawLegend();
    if (focused) document.querySelector(`#legend li[data-key="${CSS.escape(key)}"]`).focus(); // keyboard users keep their place
    drawChart();
    document.body.dataset.rendered = location.search;
  }

  // --- page ------------------------------------------------------------------------------------------
  async function infoOf(metric) {
    const [tags, names] = await Promise.allSettled([
      api("/api/metrics/tags", { metric, ...K.apiRange() }),
      api("/api/metrics/names", { q: metric, limit: 100, ...K.apiRange() }),
    ]);
    return {
      tags: tags.status === "fulfilled" ? tags.value.tags || {} : {},
      meta: names.status === "fulfilled" ? (names.value.metrics || []).find((x) => x.name === metric) || {} : {},
    };
  }
  function seriesParams(q) {
    const r = K.seriesRange(120);
    const model = MQ.parse(q.text);
    if (model && model.rollup && model.rollup.seconds && r.interval) r.interval = `${model.rollup.seconds}s`;
    return { source: "metrics", query: q.text, ...r };
  }

  async function render(isCurrent) {
    const list = queries();
    const asked = list.filter((q) => q.text);
    const metrics = [...new Set(list.map((q) => (MQ.parse(q.text) || {}).metric).filter(Boolean))];
    const [infos, answers] = await Promise.all([
      Promise.all(metrics.map(infoOf)),
      Promise.allSettled(asked.map((q) => api("/api/timeseries", seriesParams(q)))),
    ]);
    if (!isCurrent()) return;
    const infoByMetric = Object.fromEntries(metrics.map((m, i) => [m, infos[i]]));
    drawRows(list, Object.fromEntries(list.map((q) => [q.letter, infoByMetric[(MQ.parse(q.text) || {}).metric]])));
    const ok = [];
    answers.forEach((a, i) => {
      if (a.status === "fulfilled") ok.push({ q: asked[i], doc: a.value });
      else showQueryError(asked[i].letter, a.reason);
    });
    drawn = seriesOf(ok);
    const units = new Set(asked.map((q) => ((infoByMetric[(MQ.parse(q.text) || {}).metric] || {}).meta || {}).unit || ""));
    unit = units.size === 1 ? [...units][0] : "";
    const intervals = [...new Set(ok.map((a) => a.doc.interval_ms).filter(Boolean))];
    document.getElementById("chart-note").textContent = intervals.length
      ? `one point per ${intervals.map(fmtInterval).join(" / ")} · ${drawn.length} series` : "";
    document.getElementById("chart-empty").hidden = asked.length > 0;
    document.getElementById("metrics-chart").hidden = !asked.length;
    drawChart();
    drawLegend();
    document.body.dataset.rendered = location.search;
    K.markDrawn();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("add-query").addEventListener("click", addQuery);
    window.addEventListener("resize", () => { if (plot) plot.setSize({ width: document.getElementById("metrics-chart").clientWidth, height: 300 }); });
  });
  K.start(render);
})();
