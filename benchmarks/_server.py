"""What the benchmarks share: a `koban serve` subprocess on free ports, its peak RSS,
concurrent OTLP senders that honour 429 + Retry-After, and where results go."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, NamedTuple

import httpx
import psutil

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def koban_command() -> str:
    """The `koban` script beside this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("koban")
    found = str(beside) if beside.exists() else shutil.which("koban")
    if not found:
        raise SystemExit("`koban` is not installed: run `make install-test` first")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeakRss:
    """Samples the resident memory of a process and its children in a thread; `peak`
    is the highest seen, or the kernel's high-water mark (VmHWM) when that is higher."""

    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        self.pid, self.every_s, self.peak = pid, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
            while not self._stop.is_set():
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                self.peak = max(self.peak, rss, _vm_hwm(self.pid))
                self._stop.wait(self.every_s)
        except psutil.Error:  # the process ended
            pass

    def stop(self) -> int:
        self.peak = max(self.peak, _vm_hwm(self.pid))
        self._stop.set()
        self._thread.join()
        return self.peak


def _vm_hwm(pid: int) -> int:
    """The kernel's peak RSS of `pid` in bytes (Linux), or 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def stop_process(proc: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class KobanServer:
    """`koban serve` with a temporary data directory (unless given), the JSON API and
    OTLP/HTTP on one free port, every other listener off. Use as a context manager."""

    def __init__(self, data_dir: Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="koban-bench-")
        self.data_dir = Path(data_dir or self._tmp.name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.rss: PeakRss | None = None
        self.log_path = self.data_dir / "koban-serve.log"

    def __enter__(self) -> KobanServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server and wait until /api/health answers ok. Raises RuntimeError
        with the end of the server's output when it exits or does not come up in time."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [koban_command(), "serve", "--data-dir", str(self.data_dir / "store"), "--port", str(self.port),
               "--otlp-http-port", "0", "--otlp-grpc-port", "0", "--statsd-port", "0", "--datadog-port", "0",
               *self.extra_args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        self.rss = PeakRss(self.proc.pid)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"koban serve exited with {self.proc.returncode}:\n{self.output_tail()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).json().get("status") == "ok":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"koban serve did not answer /api/health within {timeout_s:g}s:\n{self.output_tail()}")

    def peak_rss(self) -> int:
        return self.rss.peak if self.rss else 0

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time (user + system) used so far by the server process and by its
        children (the decode workers): a cost per record that, unlike a rate, barely
        moves when other processes load the machine."""
        assert self.proc is not None
        proc = psutil.Process(self.proc.pid)
        used = sum(proc.cpu_times()[:2])
        children = sum(sum(c.cpu_times()[:2]) for c in proc.children(recursive=True))
        return used, children

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s; removes the temporary data directory."""
        stop_process(self.proc)
        if self.rss is not None:
            self.rss.stop()
        if self.proc is not None:
            self._log.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def output_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"


class Sent(NamedTuple):
    records: int
    requests: int
    retries: int  # 429/503 answers that were waited out and retried
    started: float  # time.monotonic() of the first request
    seconds: float  # from the first request to the last acknowledgement


def post_all(url: str, bodies: list[tuple[bytes, int]], clients: int = 8, headers: dict = PROTOBUF) -> Sent:
    """POST every (body, records) to `url` from `clients` threads, each with its own
    connection; on 429/503 wait Retry-After (or back off) and send the same body again.
    Raises RuntimeError on any other non-2xx answer."""
    work: queue.SimpleQueue = queue.SimpleQueue()
    for item in bodies:
        work.put(item)
    totals = {"records": 0, "requests": 0, "retries": 0}
    lock = threading.Lock()
    errors: list[str] = []

    def sender() -> None:
        with httpx.Client(timeout=120, headers=headers) as client:
            while not errors:
                try:
                    body, records = work.get_nowait()
                except queue.Empty:
                    return
                retries = _post_until_accepted(client, url, body, errors)
                with lock:
                    totals["records"] += records
                    totals["requests"] += 1
                    totals["retries"] += retries

    threads = [threading.Thread(target=sender) for _ in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    if errors:
        raise RuntimeError(errors[0])
    return Sent(totals["records"], totals["requests"], totals["retries"], started, seconds)


def _post_until_accepted(client: httpx.Client, url: str, body: bytes, errors: list[str]) -> int:
    """Returns how many times the server asked us to retry."""
    retries = 0
    while True:
        r = client.post(url, content=body)
        if r.status_code in (429, 503):
            retries += 1
            time.sleep(_retry_after(r, retries))
            continue
        if r.is_success:
            return retries
        errors.append(f"POST {url} -> {r.status_code}: {r.text[:300]}")
        return retries


def _retry_after(response: httpx.Response, attempt: int) -> float:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return min(2.0, 0.05 * 2**attempt)


def wait_until(check: Callable[[], bool], timeout_s: float, every_s: float = 0.1) -> bool:
    """Call `check` until it returns true (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)


def warm_up(
    url: str, bodies: list[tuple[bytes, int]], clients: int, stored: Callable[[], float], timeout_s: float,
    headers: dict = PROTOBUF,
) -> None:
    """POSTs `bodies` to `url` before a benchmark's clock starts and waits until
    `stored()` (a count the server reports) has grown by their records. A server starts
    its decode workers at the first large requests, and each spends ~1.5 s of CPU
    importing its libraries: a one-off cost that a rate would otherwise count."""
    if not bodies:
        return
    before = stored()
    post_all(url, bodies, clients, headers=headers)
    total = sum(n for _, n in bodies)
    wait_until(lambda: stored() - before >= total, timeout_s, 0.05)


def log_count(client: httpx.Client, q: str, start_ms: int, end_ms: int) -> int:
    """How many log records match `q` in [start_ms, end_ms), from /api/logs/histogram."""
    r = client.get("/api/logs/histogram", params={"q": q, "from": start_ms, "to": end_ms})
    r.raise_for_status()
    doc = r.json()
    if "total" in doc:
        return int(doc["total"])
    return sum(int(b.get("count", 0)) for b in doc.get("buckets", []))


def span_count(client: httpx.Client, q: str, start_ms: int, end_ms: int) -> int:
    """How many spans matching `q` start in [start_ms, end_ms), summed from
    /api/timeseries counts with one bucket over the range."""
    r = client.get("/api/timeseries", params={
        "source": "spans", "q": q, "agg": "count", "interval": f"{end_ms - start_ms}ms",
        "from": start_ms, "to": end_ms,
    })
    r.raise_for_status()
    return int(sum(v or 0 for series in r.json()["series"] for _, v in series["points"]))


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }


def koban_version(url: str) -> str:
    try:
        return str(httpx.get(f"{url}/api/health", timeout=5).json().get("version", "?"))
    except (httpx.HTTPError, ValueError):
        return "?"


def write_results(name: str, results: dict) -> Path:
    """Write `results` to benchmarks/results/<name>-<UTC date>.json; returns the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def today() -> str:
    return f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}"
