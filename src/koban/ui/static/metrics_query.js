/* Datadog's metric query form, read into the Metrics page's builder and written back:
   `p99:http.request.duration{service:checkout,!env:dev} by {resource}.as_rate().rollup(avg, 60)`.
   The server parses the text for real (and says where it is wrong); this reading is only
   for the builder's controls, so anything it does not know gives null and the text is
   left to the server as typed. */
"use strict";
const MQ = (() => {
  const AGGS = ["avg", "sum", "min", "max", "count", "p50", "p75", "p90", "p95", "p99"];
  const ROLLUPS = ["avg", "sum", "min", "max", "count"];
  const MODIFIERS = ["as_rate", "as_count"];
  // [space:]metric{filters} [by {keys}] [.fn(...)]...; names may hold ':' (Prometheus)
  const SHAPE = /^\s*([A-Za-z0-9_.:\/\-]+)\s*(?:\{([^{}]*)\})?\s*(?:by\s*\{([^{}]*)\})?\s*((?:\.\s*[A-Za-z_]+\s*\([^()]*\)\s*)*)$/;
  const CALL = /\.\s*([A-Za-z_]+)\s*\(([^()]*)\)/g;
  const TAG = /^(!?)([^:!,\s][^:,\s]*)(?::([^,]*))?$/;

  /* A query with no metric yet: what "add query" starts from. agg "" leaves the space
     aggregation to the server (it picks one from the metric's type). */
  const empty = () => ({ agg: "", metric: "", filters: [], by: [], modifier: "", rollup: null });

  /* The builder's model of `text`, or null when the builder cannot show it. Filters are
     {key, value, neg} (value null for a bare tag); rollup is {fn, seconds|null} or null. */
  function parse(text) {
    if (!text || !text.trim()) return empty();
    const m = SHAPE.exec(text);
    if (!m) return null;
    const [, name, filterText = "", byText = "", calls = ""] = m;
    const colon = name.indexOf(":");
    const prefixed = colon > 0 && AGGS.includes(name.slice(0, colon).toLowerCase());
    const agg = prefixed ? name.slice(0, colon).toLowerCase() : "";
    const metric = prefixed ? name.slice(colon + 1) : name;
    if (!metric) return null;
    const filters = [];
    for (const part of filterText.split(",").map((s) => s.trim()).filter((s) => s && s !== "*")) {
      const t = TAG.exec(part);
      if (!t) return null;
      filters.push({ neg: t[1] === "!", key: t[2], value: t[3] === undefined ? null : t[3].trim() });
    }
    const by = byText.split(",").map((s) => s.trim()).filter(Boolean);
    let modifier = "", rollup = null;
    for (const [, fn, argText] of calls.matchAll(CALL)) {
      const args = argText.split(",").map((s) => s.trim()).filter(Boolean);
      if (MODIFIERS.includes(fn) && !args.length) modifier = fn;
      else if (fn === "rollup" && args.length >= 1 && args.length <= 2 && ROLLUPS.includes(args[0])
        && (args.length === 1 || /^\d+$/.test(args[1]))) rollup = { fn: args[0], seconds: args[1] ? Number(args[1]) : null };
      else return null;
    }
    return { agg, metric, filters, by, modifier, rollup };
  }

  const tagText = (f) => `${f.neg ? "!" : ""}${f.key}${f.value === null ? "" : ":" + f.value}`;

  /* The query text of `model` ("" when it has no metric). */
  function format(model) {
    if (!model.metric) return "";
    const filters = model.filters.length ? model.filters.map(tagText).join(",") : "*";
    let text = `${model.agg ? model.agg + ":" : ""}${model.metric}{${filters}}`;
    if (model.by.length) text += ` by {${model.by.join(",")}}`;
    if (model.modifier) text += `.${model.modifier}()`;
    if (model.rollup) text += `.rollup(${model.rollup.fn}${model.rollup.seconds ? `, ${model.rollup.seconds}` : ""})`;
    return text;
  }

  return { AGGS, ROLLUPS, MODIFIERS, empty, parse, format, tagText };
})();
