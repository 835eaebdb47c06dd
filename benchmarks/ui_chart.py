"""Chart smoothness with 10,000 points (issue 3): the vendored uPlot, as koban's pages
load it, drawing 10,000 points per series in headless chromium.

Serves the package's static files from a local HTTP server (no koban process needed),
then in the page: builds a chart of N points x S series, and measures the first draw,
a redraw with new data (what a refresh does), and 200 cursor moves (what hovering
does). "Smooth" here: a cursor move well under one 60 Hz frame (16.7 ms). Times include the drawing:
each step waits for uPlot's deferred draw (a macrotask after its microtask) before stopping
the clock, so they also include one timer turn (~1-4 ms in chromium).

    .venv/bin/python benchmarks/ui_chart.py [--points 10000] [--series 4]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import threading
from pathlib import Path

from koban.ui.pages import STATIC_DIR

CHROMIUM = os.environ.get("KOBAN_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VENDOR = next(p.name for p in (Path(STATIC_DIR) / "vendor").iterdir() if p.name.startswith("uplot-"))

PAGE = f"""<!doctype html><html><head>
<link rel="stylesheet" href="/vendor/{VENDOR}/uPlot.min.css">
<script src="/vendor/{VENDOR}/uPlot.iife.min.js"></script></head>
<body><div id="chart"></div></body></html>"""

MEASURE = """async ([n, s]) => {
  const settle = () => new Promise((r) => setTimeout(r, 0));  // uPlot draws in a microtask
  const xs = Array.from({length: n}, (_, i) => 1_700_000_000 + i * 15);
  const series = (k) => Array.from({length: n}, (_, i) => Math.sin(i / 50 + k) * 100 + k * 20 + Math.random() * 5);
  const data = [xs, ...Array.from({length: s}, (_, k) => series(k))];
  const opts = {width: 1200, height: 300, series: [{}, ...Array.from({length: s}, (_, k) => ({label: "s" + k, stroke: "hsl(" + k * 60 + ",70%,50%)"}))]};
  let t = performance.now();
  const u = new uPlot(opts, data, document.getElementById("chart"));
  await settle();
  const first = performance.now() - t;
  t = performance.now();
  u.setData([xs, ...Array.from({length: s}, (_, k) => series(k + 1))]);
  await settle();
  const redraw = performance.now() - t;
  const moves = [];
  for (let i = 0; i < 200; i++) {
    t = performance.now();
    u.setCursor({left: (i * 6) % 1200, top: 150});
    await settle();
    moves.push(performance.now() - t);
  }
  moves.sort((a, b) => a - b);
  return {points: u.data[0].length, series: u.series.length - 1, first_draw_ms: first, redraw_ms: redraw,
          cursor_median_ms: moves[100], cursor_p99_ms: moves[197]};
}"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/":
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--series", type=int, default=4)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    handler = functools.partial(_Handler, directory=str(STATIC_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            results = [page.evaluate(MEASURE, [args.points, args.series]) for _ in range(3)]
            browser.close()
    finally:
        server.shutdown()
    best = min(results, key=lambda r: r["first_draw_ms"])
    print(json.dumps(results, indent=1))
    print("| points x series | first draw ms | redraw ms | cursor move median ms | cursor move p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| {best['points']:,} x {best['series']} | {best['first_draw_ms']:.1f} | {best['redraw_ms']:.1f} | "
          f"{best['cursor_median_ms']:.2f} | {best['cursor_p99_ms']:.2f} |")


if __name__ == "__main__":
    main()
