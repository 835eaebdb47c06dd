"""A real `koban serve` subprocess on free ports, for tests that talk over sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from koban.client import KobanClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _PortTaken(Exception):
    """koban serve exited because one of its ports was taken."""


class KobanServer:
    """One `koban serve` process. `start()` waits for /api/health; `kill()` is kill -9."""

    def __init__(
        self, data_dir: Path, log_path: Path, *, config_toml: str | None = None,
        env: dict[str, str] | None = None, **options: object,
    ) -> None:
        """`options` become flags; `config_toml` is written to a koban.toml passed with
        --config (for list-of-tables options); `env` is added to the environment."""
        self.data_dir = data_dir
        self.log_path = log_path
        self.config_toml = config_toml
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.grpc_port = free_port()
        self.options = {"batch_max_delay_ms": 20, **options}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> KobanServer:
        """Start and wait for /api/health. A port picked free can be taken by another
        process before koban binds it (an outgoing connection gets an ephemeral port from
        the same range): then new ports are picked and koban started again, twice at most."""
        for _ in range(2):
            try:
                return self._start(timeout_s)
            except _PortTaken:
                self.port, self.grpc_port = free_port(), free_port()
        return self._start(timeout_s)

    def _start(self, timeout_s: float) -> KobanServer:
        args = [
            sys.executable, "-m", "koban.cli", "serve",
            "--data-dir", str(self.data_dir),
            "--port", str(self.port),
            "--otlp-http-port", "0",
            "--otlp-grpc-port", str(self.grpc_port),
            "--statsd-port", "0",
            "--datadog-port", "0",
        ]
        for name, value in self.options.items():
            flag = name.replace("_", "-")
            if isinstance(value, bool):  # boolean options are --name / --no-name
                args.append(f"--{flag}" if value else f"--no-{flag}")
            else:
                args += [f"--{flag}", str(value)]
        if self.config_toml is not None:
            config = self.log_path.with_suffix(".toml")
            config.write_text(self.config_toml)
            args += ["--config", str(config)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOBAN_")}
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        logged_before = log.tell()
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = self.log_path.read_bytes()[logged_before:].decode(errors="replace")
                if "address already in use" in output.lower():
                    raise _PortTaken
                raise RuntimeError(f"koban serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"koban serve did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def client(self) -> KobanClient:
        return KobanClient(self.url)

    def gauge(self, name: str) -> float:
        """The value of unlabelled series `name` in the server's /metrics."""
        for line in self.client().metrics_text().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics")

    def wait_for(self, predicate, timeout_s: float = 20.0, what: str = "condition"):
        """Poll `predicate()` until it returns a truthy value; returns it."""
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last value {last!r}\n{self.log()}")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    servers: list[KobanServer] = []

    def make(data_dir: Path | None = None, **options: object) -> KobanServer:
        server = KobanServer(data_dir or tmp_path / "data", tmp_path / f"server{len(servers)}.log", **options)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


@pytest.fixture
def server(make_server) -> KobanServer:
    return make_server().start()
