"""An idle server gives cached memory back (koban/memory.py, memory_trim_idle_s)."""

from __future__ import annotations

import re
import time

import httpx

from e2e.payloads import log_request


def _trims(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    found = re.search(r"^koban_memory_trims_total ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_an_idle_server_trims_its_memory(make_server):
    server = make_server(memory_trim_idle_s=1).start()
    sent = httpx.post(server.url + "/v1/logs", content=log_request(["before idle"], "trim"),
                      headers={"Content-Type": "application/x-protobuf"})
    assert sent.status_code == 200
    server.wait_for(lambda: server.client().logs("service:trim")["rows"], what="the record")
    assert server.wait_for(lambda: _trims(server.url) >= 1, timeout_s=30, what="a memory trim") >= 1
    # still answers everything it held after trimming
    assert [r["body"] for r in server.client().logs("service:trim")["rows"]] == ["before idle"]


def test_memory_trim_can_be_turned_off(make_server):
    server = make_server(memory_trim_idle_s=0).start()
    time.sleep(2)
    assert _trims(server.url) == 0
