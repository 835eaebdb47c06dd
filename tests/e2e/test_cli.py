"""`koban query` and `koban tail` against a running server, as a user types them."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import httpx

from e2e.payloads import log_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def koban(*args: str, url: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "KOBAN_URL": url}
    return subprocess.run([sys.executable, "-m", "koban.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, **kwargs)


def _post(server, bodies, service):
    r = httpx.post(server.url + "/v1/logs", content=log_request(bodies, service), headers=PROTOBUF)
    assert r.status_code == 200


def test_query_prints_a_readable_table_and_json(server):
    _post(server, ["order 17 failed: card declined", "order 18 shipped"], "cli-shop")
    client = server.client()
    server.wait_for(lambda: len(client.logs("service:cli-shop")["rows"]) == 2, what="2 records")

    table = koban("query", "service:cli-shop declined", "--since", "1h", url=server.url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["TIME", "SERVICE", "LEVEL", "MESSAGE"]
    assert len(lines) == 2 and "cli-shop" in lines[1] and "order 17 failed: card declined" in lines[1]

    as_json = koban("query", "service:cli-shop", "--since", "1h", "--json", url=server.url)
    rows = json.loads(as_json.stdout)["rows"]
    assert sorted(r["body"] for r in rows) == ["order 17 failed: card declined", "order 18 shipped"]


def test_query_reports_a_syntax_error_with_its_position(server):
    result = koban("query", "service:(web", url=server.url)
    assert result.returncode == 1
    assert "position" in result.stderr


def test_query_says_when_the_server_is_unreachable():
    result = koban("query", "x", url="http://127.0.0.1:1")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


def test_tail_prints_new_matching_lines_as_they_arrive(server):
    env = {**os.environ, "KOBAN_URL": server.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "koban.cli", "tail", "service:tailed", "--interval", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1.0)  # tail has started polling
        _post(server, ["first line arrives"], "tailed")
        _post(server, ["not for this tail"], "other")
        _post(server, ["second line arrives"], "tailed")
        seen = _read_lines(proc, 2, timeout_s=15)
    finally:
        proc.terminate()
        proc.wait(10)
    assert "first line arrives" in seen[0] and "second line arrives" in seen[1]
    assert all("not for this tail" not in line for line in seen)


def _read_lines(proc: subprocess.Popen, n: int, timeout_s: float) -> list[str]:
    """The first `n` lines `proc` prints, read by a thread (a select() on a buffered
    pipe misses lines that are already in the buffer)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(seen) < n and time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            pass
    assert len(seen) == n, f"tail printed {seen!r}"
    return seen


def test_help_reads_well():
    result = subprocess.run([sys.executable, "-m", "koban.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("serve", "query", "tail", "demo"):
        assert command in result.stdout
    serve_help = subprocess.run([sys.executable, "-m", "koban.cli", "serve", "--help"], capture_output=True, text=True)
    for flag in ("--host", "--port", "--otlp-http-port", "--otlp-grpc-port", "--statsd-port", "--datadog-port",
                 "--data-dir"):
        assert flag in serve_help.stdout
