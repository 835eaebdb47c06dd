"""kill -9 at random moments under load from several clients (OTLP/HTTP protobuf and
JSON, OTLP/gRPC): every record a client got a 2xx / OK for is stored exactly once.

Rounds are kept short so 20 of them fit CI: decode_workers=0 because spawning the
decode processes is most of a server's start-up time and requests here are small
(under the 16 KiB threshold, so they would be decoded in-process anyway);
batch_max_delay_ms=20 so the store writer is mid-transaction at many kill moments,
not only the WAL. The data directory carries over, so each start replays what the
previous round left in the WAL, sometimes after a kill during a replay.
"""

from __future__ import annotations

import os
import random
import threading
import time

import grpc

from reliability.clients import Acks, assert_exactly_once, send_grpc, send_http, stored_bodies

ROUNDS = int(os.environ.get("KOBAN_CRASH_ROUNDS", 20))
SERVICE = "crashloop"


def test_acknowledged_records_survive_repeated_kill_9_exactly_once(make_server, tmp_path):
    seed = int(os.environ.get("KOBAN_CRASH_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    print(f"crash loop seed: KOBAN_CRASH_SEED={seed}")  # shown when the test fails
    data_dir = tmp_path / "data"
    acks = Acks()
    for round_no in range(ROUNDS):
        server = make_server(data_dir, decode_workers=0, batch_max_delay_ms=20)
        if round_no % 5 == 4:
            # now and then kill while the server is still starting: opening the store,
            # replaying the WAL the previous round left (before it answers /api/health)
            try:
                server.start(timeout_s=rng.uniform(0.05, 1.0))
            except RuntimeError:
                assert server.proc.poll() is None, f"the server exited by itself:\n{server.log()}"
            server.kill()
            continue
        server.start()
        stop = threading.Event()
        clients = [
            threading.Thread(target=send_http, args=(server.url, f"r{round_no}h{c}", SERVICE, stop, acks),
                             kwargs={"as_json": c == 1})
            for c in range(2)
        ] + [
            threading.Thread(target=send_grpc, args=(f"127.0.0.1:{server.grpc_port}", f"r{round_no}g{c}", SERVICE,
                                                     stop, acks))
            for c in range(2)
        ]
        before = len(acks.acked)
        for t in clients:
            t.start()
        # kill at an arbitrary moment once load is flowing (counted in acks, not seconds,
        # so a slow machine does not turn rounds into kills before the first request)
        server.wait_for(lambda: len(acks.acked) >= before + 100, timeout_s=30, what="load to flow")
        time.sleep(rng.uniform(0.0, 1.0))
        server.kill()
        stop.set()
        for t in clients:
            t.join(15)
            assert not t.is_alive(), "a client hung after the server was killed"

    server = make_server(data_dir, decode_workers=0).start()  # replays what the last round left
    assert server.stop() == 0
    stored = stored_bodies(data_dir, SERVICE)
    assert acks.statuses[200] > 0 and acks.statuses[grpc.StatusCode.OK] > 0, acks.statuses
    assert_exactly_once(acks.acked, stored)
    # nothing was stored that no client sent (unacknowledged requests may be stored, once)
    assert all(body.startswith("r") for body in stored), f"seed {seed}"
