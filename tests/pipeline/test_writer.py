from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from koban.errors import ConfigError, Overloaded, StoreError
from koban.model import Batch
from koban.pipeline.buffer import IngestBuffer
from koban.pipeline.wal import WriteAheadLog
from koban.pipeline.writer import IN_FLIGHT_FILE, StoreWriter

pytestmark = pytest.mark.timeout(30)


class Pipeline:
    """WAL + buffer + writer wired the way app.py wires them, with `receive` doing what
    a receiver does for one request."""

    def __init__(self, directory: Path, store, codec, *, max_records: int = 100_000, **writer_opts) -> None:
        self.name, self.encode, decode = codec
        self.store = store
        self.wal = WriteAheadLog(directory, min_lsn=store.applied_lsn())
        self.buffer = IngestBuffer(max_records)
        opts = {"batch_max_delay_s": 0.01, "truncate_every_s": 3600.0} | writer_opts
        self.writer = StoreWriter(store, self.buffer, self.wal, decode, **opts)

    async def receive(self, bodies: list[str]) -> int:
        payload = self.encode(bodies)
        batch = self.writer.decode(self.name, payload, 1)
        res = self.buffer.reserve(batch.record_count)
        try:
            lsn = await self.wal.append(self.name, payload, 1)
        except BaseException:
            self.buffer.release(res)
            raise
        self.buffer.put(res, lsn, batch)
        return lsn

    def receive_many(self, requests: list[list[str]]) -> list[int]:
        async def main() -> list[int]:
            return await asyncio.gather(*(self.receive(r) for r in requests))

        return asyncio.run(main())

    def close(self) -> None:
        self.writer.stop()
        self.wal.close()


def requests(prefix: str, n: int, per_request: int = 3) -> list[list[str]]:
    return [[f"{prefix}{i}.{j}" for j in range(per_request)] for i in range(n)]


def flat(reqs: list[list[str]]) -> list[str]:
    return [b for r in reqs for b in r]


def test_every_acknowledged_record_is_stored_once(tmp_path: Path, store, codec) -> None:
    p = Pipeline(tmp_path, store, codec)
    p.writer.start()
    reqs = requests("a", 200)
    lsns = p.receive_many(reqs)
    p.close()

    assert sorted(store.bodies) == sorted(flat(reqs))
    assert store.applied_lsn() == max(lsns) == 200
    assert p.writer.records_written == 600
    assert p.writer.batches_written < 200  # merged
    written_lsns = [lsn for lsn, _ in store.writes]
    assert written_lsns == sorted(written_lsns)


def test_replay_after_a_crash_stores_the_rest_exactly_once(tmp_path: Path, store, codec, new_store) -> None:
    p = Pipeline(tmp_path, store, codec)
    p.writer.start()
    first = requests("a", 20)
    p.receive_many(first)
    p.writer.stop()
    assert store.applied_lsn() == 20

    # acknowledged while no writer runs: in the WAL only, then the process "dies"
    later = requests("b", 15)
    p.receive_many(later)
    p.wal.close()

    p = Pipeline(tmp_path, store, codec)
    assert p.writer.replay() == 45
    assert Counter(store.bodies) == Counter(flat(first + later))
    assert store.applied_lsn() == 35
    assert p.writer.replay() == 0  # a second replay finds nothing new
    p.writer.start()
    more = requests("c", 5)
    assert p.receive_many(more) == list(range(36, 41))
    p.close()
    assert Counter(store.bodies) == Counter(flat(first + later + more))


def test_a_crash_under_load_loses_nothing_and_duplicates_nothing(tmp_path: Path, store, codec) -> None:
    live = tmp_path / "live"
    p = Pipeline(live, store, codec, batch_max_records=40)
    p.writer.start()
    acked: list[list[str]] = []
    crashed = threading.Event()

    async def client(c: int) -> None:
        for i in range(1_000):
            if crashed.is_set():
                return
            bodies = [f"{c}.{i}.{j}" for j in range(2)]
            await p.receive(bodies)
            acked.append(bodies)

    async def crash_midway() -> None:
        while len(acked) < 300:
            await asyncio.sleep(0)
        # what kill -9 would leave: the store as of now, then every acked entry is in the WAL
        crashed.set()
        snapshot_store = store.snapshot()
        snapshot_acked = flat(acked)
        # a temp file mid-rename may vanish while we copy; a crash just before its rename
        # leaves the same state as one without it
        shutil.copytree(live, tmp_path / "crashed", ignore=shutil.ignore_patterns("*.tmp"))
        result.extend([snapshot_store, snapshot_acked])

    result: list = []

    async def main() -> None:
        await asyncio.gather(*(client(c) for c in range(20)), crash_midway())

    asyncio.run(main())
    p.close()
    crashed_store, acked_bodies = result
    assert 0 < crashed_store.applied_lsn()

    q = Pipeline(tmp_path / "crashed", crashed_store, codec)
    assert q.writer.replay() > 0
    stored = Counter(crashed_store.bodies)
    assert all(count == 1 for count in stored.values()), "a record was stored twice"
    assert not set(acked_bodies) - set(stored), "an acknowledged record was lost"
    q.close()


def test_a_failing_store_is_retried_until_it_takes_the_batch(tmp_path: Path, store, codec) -> None:
    p = Pipeline(tmp_path, store, codec, max_records=30, retry_initial_s=0.001, retry_max_s=0.01)
    store.fail_next = 10**9  # down until we say so
    p.writer.start()
    acked: list[list[str]] = []

    async def send_until_overloaded() -> bool:
        for bodies in requests("a", 100):
            try:
                await p.receive(bodies)
            except Overloaded:
                return True
            acked.append(bodies)
        return False

    # the buffer fills while the store is down: receivers answer 429
    assert asyncio.run(send_until_overloaded())
    assert store.wait_for(lambda s: s.failed_writes >= 3)
    assert "injected store failure" in p.writer.last_error
    assert p.writer.write_errors_total >= 3

    store.fail_next = 0
    assert store.wait_for(lambda s: s.applied_lsn() == len(acked))
    p.close()
    assert Counter(store.bodies) == Counter(flat(acked))
    assert p.writer.last_error is None


def test_replay_merges_entries_into_chunks(tmp_path: Path, store, codec) -> None:
    p = Pipeline(tmp_path, store, codec, batch_max_records=7)
    p.receive_many(requests("a", 10))  # 3 records each, nobody writing
    assert p.writer.replay() == 30
    assert [lsn for lsn, _ in store.writes] == [3, 6, 9, 10]
    p.close()


def test_replay_repeats_the_boundaries_of_the_write_that_was_in_flight(tmp_path: Path, store, codec) -> None:
    p = Pipeline(tmp_path, store, codec, batch_max_records=100)
    p.receive_many(requests("a", 10))  # 3 records each, nobody writing
    store.fail_next = 1
    with pytest.raises(StoreError, match="injected"):
        p.writer.replay()  # one write of lsn 1..10 begun, then the process "dies"
    assert json.loads((tmp_path / IN_FLIGHT_FILE).read_text()) == {"first_lsn": 1, "last_lsn": 10}
    p.wal.close()

    p = Pipeline(tmp_path, store, codec, batch_max_records=7)  # restarted with other limits
    p.receive_many(requests("b", 5))
    assert p.writer.replay() == 45
    # lsn 1..10 again as one write (a store may have half-applied it), then chunks of 7
    assert [lsn for lsn, _ in store.writes] == [10, 13, 15]
    p.close()
    assert Counter(store.bodies) == Counter(flat(requests("a", 10) + requests("b", 5)))


def test_a_write_that_finished_leaves_replay_free_to_chunk(tmp_path: Path, store, codec) -> None:
    p = Pipeline(tmp_path, store, codec, batch_max_records=100)
    p.receive_many(requests("a", 2))
    p.writer.replay()
    p.receive_many(requests("b", 4))
    p.wal.close()

    p = Pipeline(tmp_path, store, codec, batch_max_records=6)
    assert p.writer.replay() == 12
    assert [lsn for lsn, _ in store.writes] == [2, 4, 6]
    p.close()


def test_an_entry_that_does_not_decode_is_skipped_on_replay(tmp_path: Path, store, codec, caplog) -> None:
    p = Pipeline(tmp_path, store, codec)
    p.wal.append_blocking(p.name, p.encode(["ok1"]), 1)
    p.wal.append_blocking(p.name, b"{not json", 1)
    p.wal.append_blocking("unknown/codec", b"[]", 1)
    with caplog.at_level(logging.ERROR):
        assert p.writer.replay() == 1
    assert "does not decode" in caplog.text
    assert store.bodies == ["ok1"]
    assert store.applied_lsn() == 3  # moved past the bad entries, so startup is not stuck
    p.close()


def test_a_batch_lost_after_its_append_is_stored_from_the_wal(tmp_path: Path, store, codec) -> None:
    p = Pipeline(tmp_path, store, codec, gap_grace_s=0.0)
    p.writer.start()

    async def lost_then_ok() -> None:
        # a request whose task is cancelled while the WAL writes it: durable, never put
        lost = asyncio.create_task(p.receive(["lost"]))
        await asyncio.sleep(0)  # it is now awaiting the append
        lost.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lost
        assert await p.receive(["ok"]) == 2

    asyncio.run(lost_then_ok())
    assert store.wait_for(lambda s: s.applied_lsn() == 2)
    p.close()
    assert store.bodies == ["lost", "ok"]
    assert p.writer.gaps_filled == 1


def test_a_wal_behind_the_store_is_refused(tmp_path: Path, store, codec) -> None:
    store.write(codec[2](codec[0], codec[1](["x"]), 1), 10)
    p = Pipeline(tmp_path, store, codec)
    p.wal.close()
    p.wal = WriteAheadLog(tmp_path / "empty")  # forgot min_lsn
    p.writer.wal = p.wal
    with pytest.raises(ConfigError, match="min_lsn"):
        p.writer.replay()
    p.wal.close()


def test_truncation_removes_applied_segments(tmp_path: Path, store, codec) -> None:
    p = Pipeline(tmp_path, store, codec, truncate_every_s=0.0)
    p.wal.segment_bytes = 200
    p.writer.start()
    p.receive_many(requests("a", 30))
    p.writer.stop()
    assert len(list(tmp_path.glob("*.wal"))) == 1
    assert store.applied_lsn() == 30
    p.wal.close()


# --- poison batches: data the store refuses for good -------------------------------------

POISON = ["x", "poison", "y"]


def quarantined(directory: Path) -> dict[int, tuple[dict, bytes]]:
    """lsn -> (metadata, payload) of every request in the quarantine directory."""
    return {
        int(meta.stem): (json.loads(meta.read_text()), meta.with_suffix(".bin").read_bytes())
        for meta in sorted(directory.glob("*.json"))
    }


def test_a_poison_request_is_quarantined_and_the_rest_stored_once(tmp_path: Path, store, codec, caplog) -> None:
    store.poison = {"poison"}
    p = Pipeline(tmp_path / "wal", store, codec)
    p.writer.replay()  # nothing to replay: the buffer now expects lsn 1
    good = requests("a", 4)
    assert p.receive_many(good[:2] + [POISON] + good[2:]) == [1, 2, 3, 4, 5]

    with caplog.at_level(logging.ERROR, logger="koban.pipeline.writer"):
        p.writer.start()  # takes all five at once: the merged write is refused
        assert store.wait_for(lambda s: s.applied_lsn() == 5)

    assert Counter(store.bodies) == Counter(flat(good))
    assert store.writes == [(1, 3), (2, 3), (3, 0), (4, 3), (5, 3)]  # lsn 3: only applied_lsn moved
    assert store.refused_writes == 2  # the merge, then lsn 3 on its own
    (meta, payload), = quarantined(tmp_path / "quarantine").values()
    assert meta | {"error": ""} == {"lsn": 3, "codec": codec[0], "received_ns": 1,
                                    "payload_bytes": len(payload), "error": ""}  # fmt: skip
    assert "poison" in meta["error"]
    assert payload == codec[1](POISON)
    assert (p.writer.batches_quarantined, p.writer.records_quarantined) == (1, 3)
    assert [r.levelno for r in caplog.records if "quarantined" in r.getMessage()] == [logging.ERROR]

    assert p.receive_many([["after"]]) == [6]  # the writer keeps going
    assert store.wait_for(lambda s: s.applied_lsn() == 6)
    p.close()
    assert store.bodies[-1] == "after"

    again = Pipeline(tmp_path / "wal", store, codec)
    assert again.writer.replay() == 0
    again.close()
    assert again.writer.batches_quarantined == 0
    assert list(quarantined(tmp_path / "quarantine")) == [3]


def test_replay_quarantines_a_poison_entry_once_and_starts(tmp_path: Path, store, codec) -> None:
    store.poison = {"poison"}
    p = Pipeline(tmp_path / "wal", store, codec)
    good = requests("a", 4)
    p.receive_many(good[:1] + [POISON] + good[1:])  # acknowledged, then the process dies
    p.wal.close()

    p = Pipeline(tmp_path / "wal", store, codec)
    assert p.writer.replay() == 12
    p.writer.start()
    assert p.receive_many([["after"]]) == [6]
    p.close()
    assert Counter(store.bodies) == Counter(flat(good) + ["after"])
    assert list(quarantined(tmp_path / "quarantine")) == [2]
    assert p.writer.batches_quarantined == 1

    again = Pipeline(tmp_path / "wal", store, codec)
    assert again.writer.replay() == 0
    again.close()
    assert again.writer.batches_quarantined == 0
    assert Counter(store.bodies) == Counter(flat(good) + ["after"])


def test_a_transient_failure_is_still_retried_before_a_poison_request_is_split_off(
    tmp_path: Path, store, codec
) -> None:
    store.poison = {"poison"}
    store.fail_next = 3
    quarantine = tmp_path / "elsewhere"
    p = Pipeline(tmp_path / "wal", store, codec, retry_initial_s=0.001, retry_max_s=0.01, quarantine_dir=quarantine)
    p.writer.replay()
    p.receive_many([["ok"], POISON])
    p.writer.start()
    assert store.wait_for(lambda s: s.applied_lsn() == 2)
    p.close()

    assert store.failed_writes == 3
    assert store.bodies == ["ok"]
    assert list(quarantined(quarantine)) == [2]
    assert p.writer.last_error is None


def with_overflowing_poison(decode):
    """`decode`, except that a "poison" body gets a timestamp no TIMESTAMP_NS column holds."""

    def overflowing(codec: str, payload: bytes, received_ns: int) -> Batch:
        logs = decode(codec, payload, received_ns).logs
        return Batch(logs=tuple(r._replace(timestamp_ns=2**64 - 1) if r.body == "poison" else r for r in logs))

    return overflowing


def test_duckdb_refusing_a_record_for_good_does_not_stall_ingest_or_startup(tmp_path: Path, codec) -> None:
    duckdb_store = pytest.importorskip("koban.store.duckdb")
    overflow = (codec[0], codec[1], with_overflowing_poison(codec[2]))
    store = duckdb_store.DuckDBStore(tmp_path / "koban.duckdb", threads=1)
    p = Pipeline(tmp_path / "wal", store, overflow)
    p.writer.replay()
    p.receive_many([["a"], POISON, ["b"]])
    p.writer.start()
    p.close()  # drains the queue
    store.close()

    store = duckdb_store.DuckDBStore(tmp_path / "koban.duckdb", threads=1)
    try:
        again = Pipeline(tmp_path / "wal", store, overflow)
        assert again.writer.replay() == 0
        again.close()
        assert store.applied_lsn() == 3
        rows = store.query("SELECT Body FROM otel_logs ORDER BY Body", {}, timeout_s=10, max_rows=10).rows
    finally:
        store.close()
    assert rows == [("a",), ("b",)]
    assert "does not fit the schema" in quarantined(tmp_path / "quarantine")[2][0]["error"]


def test_a_batch_is_written_once_requests_stop_coming(tmp_path: Path, store, codec) -> None:
    """A minute-long batch delay does not hold a lone request: the writer stores what it
    has once no request came for batch_idle_s."""
    p = Pipeline(tmp_path, store, codec, batch_max_delay_s=60.0, batch_idle_s=0.05)
    p.writer.start()
    try:
        p.receive_many(requests("lone", 1))
        store.wait_for(lambda s: len(s.bodies) == 3, timeout_s=10.0)
        assert sorted(store.bodies) == sorted(flat(requests("lone", 1)))
    finally:
        p.close()


def test_requests_that_keep_coming_share_one_batch(tmp_path: Path, store, codec) -> None:
    p = Pipeline(tmp_path, store, codec, batch_max_delay_s=60.0, batch_idle_s=2.0)
    p.writer.start()
    try:
        first, second = requests("steady", 2)
        p.receive_many([first])
        threading.Event().wait(0.3)  # less than batch_idle_s: the writer keeps the batch open
        p.receive_many([second])
        store.wait_for(lambda s: len(s.bodies) == 6, timeout_s=10.0)  # written after 2 s idle, not at stop
        assert store.writes == [(2, 6)]
    finally:
        p.close()
