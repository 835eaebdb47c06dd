"""A data directory that runs out of space: ingest answers 503 with Retry-After (gRPC:
UNAVAILABLE) and says why in the log, nothing acknowledged is lost, and ingestion
resumes by itself once space returns.

Two ways to run out: a real size-limited tmpfs (needs permission to mount; we run as
root in CI) and, where mounting is refused, RLIMIT_FSIZE set on the running server, so
that every write past the limit fails with EFBIG (Python ignores SIGXFSZ, so the
process gets the error instead of being killed). The second also reaches the store
writer: DuckDB's own log then fails to commit and the writer must retry, not drop.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import psutil
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

from e2e.payloads import log_request
from reliability.clients import PROTOBUF, assert_exactly_once, stored_bodies

SERVICE = "diskfull"


class Ingest:
    """Sends ~50 KiB requests of unique records and keeps what was acknowledged."""

    def __init__(self, server) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30)
        self.acked: list[str] = []
        self.seq = 0

    def send(self) -> httpx.Response:
        bodies = [f"d{self.seq}-{i}-" + "x" * 200 for i in range(200)]
        self.seq += 1
        r = self.http.post("/v1/logs", content=log_request(bodies, SERVICE), headers=PROTOBUF)
        assert r.status_code in (200, 503), f"{r.status_code}: {r.text[:300]}"
        if r.status_code == 200:
            self.acked.extend(bodies)
        else:
            assert int(r.headers["retry-after"]) >= 1
        return r

    def grpc_code(self) -> grpc.StatusCode:
        with grpc.insecure_channel(f"127.0.0.1:{self.server.grpc_port}") as channel:
            stub = logs_service_pb2_grpc.LogsServiceStub(channel)
            request = logs_service_pb2.ExportLogsServiceRequest.FromString(log_request(["grpc-refused"], SERVICE))
            try:
                stub.Export(request, timeout=30)
            except grpc.RpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK


def _run_out_of_space(make_server, data_dir: Path, fill: Callable[[], None], make_room: Callable[[], None],
                      reason: str, *, always_refused: bool, warm_requests: int = 8) -> tuple[list[int], str]:
    """Runs the scenario; returns the statuses while out of space and the server log."""
    server = make_server(data_dir, decode_workers=0).start()
    ingest = Ingest(server)
    for _ in range(warm_requests):
        assert ingest.send().status_code == 200
    client = server.client()
    server.wait_for(lambda: client.logs_histogram(f"service:{SERVICE}", from_="1h")["total"] == len(ingest.acked),
                    what="the first records stored")

    fill()
    statuses = [ingest.send().status_code for _ in range(12)]
    assert 503 in statuses, statuses
    if always_refused:
        assert set(statuses) == {503}, statuses
        assert ingest.grpc_code() == grpc.StatusCode.UNAVAILABLE
    assert server.client().health()["status"] == "ok"  # reads still answer
    server.wait_for(lambda: "write-ahead log write failed" in server.log() and reason in server.log(),
                    what=f"a log line saying the WAL write failed: {reason}")

    make_room()
    server.wait_for(lambda: ingest.send().status_code == 200, timeout_s=30, what="ingest to resume")
    assert all(ingest.send().status_code == 200 for _ in range(4))
    server.wait_for(lambda: client.logs_histogram(f"service:{SERVICE}", from_="1h")["total"] >= len(ingest.acked),
                    timeout_s=60, what=f"{len(ingest.acked)} records stored")
    ingest.http.close()
    assert server.stop() == 0
    assert_exactly_once(ingest.acked, stored_bodies(data_dir, SERVICE))
    return statuses, server.log_path.read_text(errors="replace")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here; test_rlimit_fsize_... covers a failing disk instead")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); "
                    "test_rlimit_fsize_... covers a failing disk instead")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_tmpfs_gets_503_then_ingest_resumes_when_space_returns(make_server, small_tmpfs):
    filler = small_tmpfs / "filler"

    def fill() -> None:
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 2**20)
                    f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC

    _run_out_of_space(make_server, small_tmpfs / "data", fill, filler.unlink, "No space left on device",
                      always_refused=True)


def test_kill_9_while_the_disk_is_full_loses_nothing_acknowledged(make_server, small_tmpfs):
    data_dir, filler = small_tmpfs / "data", small_tmpfs / "filler"
    server = make_server(data_dir, decode_workers=0, batch_max_delay_ms=500, batch_idle_ms=500).start()
    ingest = Ingest(server)
    for _ in range(6):
        assert ingest.send().status_code == 200
    # filled while the writer may still hold acknowledged batches (500 ms delay): their
    # store write fails, and only the WAL has them when the process dies
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 2**20)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    assert ingest.send().status_code == 503
    server.kill()
    ingest.http.close()
    filler.unlink()

    restarted = make_server(data_dir, decode_workers=0).start()  # replays the WAL
    assert restarted.stop() == 0
    assert_exactly_once(ingest.acked, stored_bodies(data_dir, SERVICE))


def test_rlimit_fsize_write_errors_get_503_and_the_store_writer_retries(make_server, tmp_path):
    data_dir = tmp_path / "data"
    servers: list = []

    def make(data_dir: Path, **options):
        servers.append(make_server(data_dir, **options))
        return servers[-1]

    def fill() -> None:
        # Past the log file's size (its lines must still get out) but below the WAL
        # segment and DuckDB's log, which already grew past it: both now fail to grow.
        process = psutil.Process(servers[0].proc.pid)
        limit = servers[0].log_path.stat().st_size + 256 * 2**10
        duckdb_bytes = max((data_dir / name).stat().st_size for name in ("koban.duckdb", "koban.duckdb.wal"))
        assert duckdb_bytes > limit, "DuckDB's files must be past the limit, or its writes would not fail"
        process.rlimit(psutil.RLIMIT_FSIZE, (limit, psutil.RLIM_INFINITY))

    def make_room() -> None:
        psutil.Process(servers[0].proc.pid).rlimit(psutil.RLIMIT_FSIZE, (psutil.RLIM_INFINITY, psutil.RLIM_INFINITY))

    # A fresh WAL segment fits under the limit again, so refusals here come and go.
    # 24 requests first (~1.2 MiB of rows), so DuckDB's files are well past the limit
    statuses, log = _run_out_of_space(make, data_dir, fill, make_room, "File too large", always_refused=False,
                                      warm_requests=24)
    if 200 in statuses:
        # records acknowledged while DuckDB could not grow its log: the store write
        # failed, was retried, and went through once the limit was lifted
        assert "failed; retrying" in log and "recovered after" in log, log[-3000:]
