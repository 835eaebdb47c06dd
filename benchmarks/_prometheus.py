"""A real Prometheus as a remote write receiver, for measuring it beside koban with the
same bodies on the same machine at the same moment (issue 4's bar is "beat Prometheus").

Debian's `prometheus` package (2.42 on bookworm; `.ci/run` installs it) started with
`--web.enable-remote-write-receiver`, a temporary TSDB and an out-of-order window of two
hours: several clients sending a workload's bodies in order still deliver some of a
series' samples out of order, which Prometheus otherwise refuses (400) for the whole
request. Same interface as `_server.KobanServer` where the benchmarks need it: `url`,
`cpu_seconds()`, `peak_rss()`, and `stored_samples()` for its head's appended samples.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from _server import PeakRss, free_port, stop_process

CONFIG = """\
global:
  scrape_interval: 1h
storage:
  tsdb:
    out_of_order_time_window: 2h
"""
APPENDED = "prometheus_tsdb_head_samples_appended_total"


def binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if not found:
        raise SystemExit("prometheus is not installed: apt-get install prometheus (as .ci/run does)")
    return found


class PrometheusServer:
    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="koban-bench-prometheus-")
        self.dir = Path(self._tmp.name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.rss: PeakRss | None = None

    def __enter__(self) -> PrometheusServer:
        config = self.dir / "prometheus.yml"
        config.write_text(CONFIG)
        self._log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [binary(), f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.rss = PeakRss(self.proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.output_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"prometheus did not become ready within 60 s:\n{self.output_tail()}")

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)
        if self.rss is not None:
            self.rss.stop()
        if self.proc is not None:
            self._log.close()
        self._tmp.cleanup()

    def stored_samples(self, api: httpx.Client) -> float:
        """Samples appended to the head (every type), from Prometheus' own /metrics."""
        text = api.get("/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(APPENDED))

    def cpu_seconds(self) -> tuple[float, float]:
        """(CPU seconds of the process, 0.0): Prometheus has no worker processes."""
        assert self.proc is not None
        return sum(psutil.Process(self.proc.pid).cpu_times()[:2]), 0.0

    def peak_rss(self) -> int:
        return self.rss.peak if self.rss else 0

    def output_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.dir / "prometheus.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"
