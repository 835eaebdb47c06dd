"""With a tiny queue, clients get 429 / RESOURCE_EXHAUSTED with a retry hint, memory
stays bounded, and everything acknowledged is stored."""

from __future__ import annotations

import threading

import grpc
import httpx
import psutil
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

from e2e.payloads import log_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _stored(client, service: str) -> int:
    return client.logs_histogram(f"service:{service}", from_="1h")["total"]


def test_http_clients_get_429_with_retry_after_and_nothing_acked_is_lost(make_server):
    server = make_server(queue_max_records=1000).start()
    outcomes: list[tuple[int, str | None]] = []
    acked = 0
    lock = threading.Lock()

    def send(client_id: int) -> None:
        nonlocal acked
        with httpx.Client(timeout=10) as http:
            for seq in range(25):
                bodies = [f"c{client_id}-{seq}-{i}" for i in range(600)]
                r = http.post(server.url + "/v1/logs", content=log_request(bodies, "overload"), headers=PROTOBUF)
                with lock:
                    outcomes.append((r.status_code, r.headers.get("retry-after")))
                    if r.status_code == 200:
                        acked += len(bodies)

    threads = [threading.Thread(target=send, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = {status for status, _ in outcomes}
    assert statuses <= {200, 429}, outcomes
    assert 429 in statuses, "a queue of 1,000 records must overflow under 8 clients of 600-record requests"
    assert all(retry is not None and int(retry) >= 1 for status, retry in outcomes if status == 429)
    assert acked > 0
    rss = psutil.Process(server.proc.pid).memory_info().rss
    assert rss < 600 * 2**20, f"server RSS {rss / 2**20:.0f} MiB"
    client = server.client()
    assert client.health()["status"] == "ok"  # queries still answer
    server.wait_for(lambda: _stored(client, "overload") == acked, what=f"{acked} stored records")


def test_grpc_clients_get_resource_exhausted_with_retry_info(make_server):
    server = make_server(queue_max_records=1000).start()
    codes: list[grpc.StatusCode] = []
    retry_infos: list[int] = []
    acked = 0
    lock = threading.Lock()

    def send(client_id: int) -> None:
        nonlocal acked
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = logs_service_pb2_grpc.LogsServiceStub(channel)
            for seq in range(25):
                body = log_request([f"g{client_id}-{seq}-{i}" for i in range(600)], "overload-grpc")
                request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
                try:
                    stub.Export(request, timeout=10)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()
                    for key, value in exc.trailing_metadata() or ():
                        if key == "grpc-status-details-bin":
                            status = status_pb2.Status.FromString(value)
                            info = error_details_pb2.RetryInfo()
                            assert status.details[0].Unpack(info)
                            with lock:
                                retry_infos.append(info.retry_delay.seconds)
                with lock:
                    codes.append(code)
                    if code == grpc.StatusCode.OK:
                        acked += 600

    threads = [threading.Thread(target=send, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, set(codes)
    exhausted = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert exhausted > 0
    assert len(retry_infos) == exhausted and min(retry_infos) >= 1
    client = server.client()
    server.wait_for(lambda: _stored(client, "overload-grpc") == acked, what=f"{acked} stored records")
