/* The Storage page: disk use per signal and per service, rows per day, the disk budget
   as a bar, and retention per signal editable in place (PUT /api/storage/retention with
   the session's CSRF token). Sets body[data-ready] once drawn. */
"use strict";
(() => {
  const { api, el } = K;
  const SIGNALS = ["logs", "spans", "metrics"];
  const COLORS = { logs: "var(--accent)", spans: "var(--warn)", metrics: "var(--ok)" };
  let chart = null;

  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(i && v < 10 ? 1 : 0)} ${units[i]}`;
  }
  const fmtCount = (n) => (n || 0).toLocaleString("en-US");

  /* The session's CSRF token: in the page when it was rendered for a session, else asked
     of /api/auth/me (null with auth off or a bearer token: none is needed then). */
  async function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) return meta.content;
    try { return (await api("/api/auth/me")).csrf_token; } catch (e) { return null; }
  }

  async function saveRetention(signal, input, note) {
    note.className = ""; note.textContent = "saving…";
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const token = await csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
    const days = input.value.trim() === "" ? null : Number(input.value);
    let response, body = null;
    try {
      response = await fetch("/api/storage/retention", { method: "PUT", headers, body: JSON.stringify({ signal, days }) });
      body = await response.json();
    } catch (e) { body = body || { error: "cannot reach the koban server" }; }
    if (!response || !response.ok) {
      note.className = "failed"; note.textContent = (body && body.error) || `HTTP ${response && response.status}`;
      input.setAttribute("aria-invalid", "true");
      return;
    }
    input.removeAttribute("aria-invalid");
    const now = body.retention[signal];
    input.value = now.days;
    note.className = "saved"; note.textContent = "saved";
    document.querySelector(`#signal-rows tr[data-signal="${signal}"]`).dataset.days = now.days;
  }

  function retentionCell(signal, r) {
    const input = el("input", { type: "number", min: "0.001", step: "any", value: r.retention_days, "aria-label": `${signal} retention in days`, name: `retention-${signal}` });
    const note = el("span", { "aria-live": "polite" });
    const save = () => saveRetention(signal, input, note);
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") save(); });
    return el("td", {}, el("span", { class: "retention-edit" }, input, "days", el("button", { type: "button", text: "Save", onclick: save }), note));
  }

  function drawBudget(b) {
    const fill = document.getElementById("budget-fill"), text = document.getElementById("budget-text");
    const bar = document.getElementById("budget-bar");
    if (!b.max_disk_bytes) {
      fill.style.width = "0";
      bar.hidden = true;
      text.textContent = `No disk budget (max_disk_bytes = 0). Data takes ${fmtBytes(b.used_bytes)}; the database files ${fmtBytes(b.file_bytes)}.`;
      return;
    }
    bar.hidden = false;
    const pct = Math.round(b.fraction * 1000) / 10;
    fill.style.width = `${Math.min(100, pct)}%`;
    fill.className = "budget-fill" + (pct >= 100 ? " over" : pct >= 80 ? " warn" : "");
    bar.setAttribute("aria-valuenow", String(Math.min(100, pct)));
    text.textContent = `${fmtBytes(b.used_bytes)} of ${fmtBytes(b.max_disk_bytes)} (${pct}%)` +
      `${pct >= 100 ? ": over budget, retention deletes the oldest data at its next run" : ""}. The database files take ${fmtBytes(b.file_bytes)}.`;
    text.dataset.fraction = b.fraction;
  }

  function drawSignals(signals) {
    document.getElementById("signal-rows").replaceChildren(...SIGNALS.map((s) => {
      const r = signals[s];
      return el("tr", { dataset: { signal: s, days: r.retention_days, bytes: r.live_bytes, rows: r.rows } },
        el("td", {}, el("span", { style: `color:${COLORS[s]}`, text: "■ " }), s),
        el("td", { class: "num", title: `${r.live_bytes} bytes (measured ${r.bytes} with deleted rows not yet reclaimed)`, text: fmtBytes(r.live_bytes) }),
        el("td", { class: "num", text: fmtCount(r.rows) }),
        retentionCell(s, r),
        el("td", { class: "num", text: `${r.default_days} d` }));
    }));
  }

  function drawServices(services) {
    const rows = services.map((s) => ({ service: s.service, total_bytes: s.total_bytes, ...Object.fromEntries(SIGNALS.map((g) => [g, s.rows[g] || 0])) }));
    document.getElementById("no-services").hidden = rows.length > 0;
    K.sortable(document.getElementById("service-table"), rows, (sorted) => {
      document.getElementById("service-rows").replaceChildren(...sorted.map((r) =>
        el("tr", { dataset: { service: r.service } },
          el("td", { text: r.service || "(no service)" }),
          el("td", { class: "num", title: `${r.total_bytes} bytes`, text: fmtBytes(r.total_bytes) }),
          ...SIGNALS.map((g) => el("td", { class: "num", text: fmtCount(r[g]) })))));
    });
  }

  function drawVolume(volume) {
    const box = document.getElementById("volume-chart");
    // the canvas needs real colours, not var(...)
    const css = getComputedStyle(document.documentElement);
    const color = (s) => css.getPropertyValue(COLORS[s].slice(4, -1)).trim();
    const series = SIGNALS.map((s) => ({ label: s, color: color(s), points: volume.map((d) => [d.ts_ms, d.rows[s]]) }));
    chart = K.chart(box, series, { fmt: (v) => fmtCount(Math.round(v)), height: 180, old: chart });
    box.dataset.total = volume.reduce((a, d) => a + SIGNALS.reduce((x, s) => x + d.rows[s], 0), 0);
  }

  /* The metrics with the most series, and those losing new series to the cap
     (GET /api/limits/cardinality). */
  function drawCardinality(c) {
    document.getElementById("cardinality-text").textContent =
      `At most ${fmtCount(c.max_series_per_metric)} series per metric (max_series_per_metric); ` +
      `a new series over the cap is dropped and counted. ${fmtCount(c.tracked_series)} series tracked.`;
    document.getElementById("cardinality-rows").replaceChildren(...c.metrics.map((m) =>
      el("tr", { dataset: { metric: m.metric, dropped: m.dropped }, class: m.dropped ? "over-cap" : "" },
        el("td", { text: m.metric }),
        el("td", { class: "num", text: fmtCount(m.series) }),
        el("td", { class: "num", text: fmtCount(m.dropped) }))));
  }

  async function render(isCurrent) {
    const [data, cardinality] = await Promise.all([api("/api/storage"), api("/api/limits/cardinality")]);
    if (!isCurrent()) return;
    drawBudget(data.budget);
    drawSignals(data.signals);
    drawServices(data.services);
    drawVolume(data.volume);
    drawCardinality(cardinality);
    K.markDrawn();
  }
  K.start(render);
})();
