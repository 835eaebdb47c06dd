"""Fixtures for the pipeline tests: a tiny test codec and an in-memory Store that
follows the protocol (atomic write, exactly-once per lsn, applied_lsn)."""

from __future__ import annotations

import copy
import json
import threading
import time

import pytest

from koban.errors import DecodeError, StoreError
from koban.model import EMPTY_SCOPE, Batch, LogRecord, Resource

CODEC = "test/json"
RESOURCE = Resource("pipeline-test", {})


def encode_bodies(bodies: list[str]) -> bytes:
    return json.dumps(bodies).encode()


def decode_bodies(codec: str, payload: bytes, received_ns: int) -> Batch:
    """The test codec: a JSON list of log bodies -> a Batch of LogRecords."""
    if codec != CODEC:
        raise DecodeError(f"unknown codec {codec!r}")
    try:
        bodies = json.loads(payload)
    except ValueError as e:
        raise DecodeError(f"bad JSON: {e}") from None
    return Batch(
        logs=tuple(
            LogRecord(received_ns, received_ns, "", "", 0, "INFO", 9, b, {}, RESOURCE, EMPTY_SCOPE)
            for b in bodies
        )
    )


class MemoryStore:
    """A Store kept in memory. `fail_next` makes that many writes raise StoreError; a
    write holding a body in `poison` raises a permanent StoreError, as a real store does
    for a value that does not fit its column."""

    dialect = "memory"

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.writes: list[tuple[int, int]] = []  # (lsn, records) of every applied write
        self.failed_writes = 0
        self.fail_next = 0
        self.poison: set[str] = set()
        self.refused_writes = 0
        self._applied = 0
        self._cond = threading.Condition()

    def write(self, batch: Batch, lsn: int) -> None:
        with self._cond:
            if self.fail_next:
                self.fail_next -= 1
                self.failed_writes += 1
                self._cond.notify_all()
                raise StoreError("injected store failure")
            refused = self.poison.intersection(r.body for r in batch.logs)
            if refused and lsn > self._applied:
                self.refused_writes += 1
                raise StoreError(f"poison record(s) {sorted(refused)} at lsn {lsn}", permanent=True)
            if lsn <= self._applied:
                return  # exactly once per lsn
            self.bodies.extend(r.body for r in batch.logs)
            self.writes.append((lsn, batch.record_count))
            self._applied = lsn
            self._cond.notify_all()

    def applied_lsn(self) -> int:
        with self._cond:
            return self._applied

    def snapshot(self) -> MemoryStore:
        """What a crash at this instant would leave (writes are atomic)."""
        with self._cond:
            return copy.deepcopy(self)

    def wait_for(self, predicate, timeout_s: float = 5.0) -> bool:
        """Waits until predicate(store) holds; False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def __deepcopy__(self, memo: dict) -> MemoryStore:
        new = MemoryStore()
        new.bodies = list(self.bodies)
        new.writes = list(self.writes)
        new.poison = set(self.poison)
        new._applied = self._applied
        return new

    def query(self, sql, params, *, timeout_s, max_rows):  # pragma: no cover - unused here
        raise NotImplementedError

    def delete_older_than(self, signal: str, cutoff_ns: int) -> int:  # pragma: no cover
        return 0

    def disk_bytes(self) -> int:
        return 0

    def close(self) -> None:
        pass


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def codec():
    """(codec name, encode(bodies) -> bytes, decode(codec, payload, received_ns) -> Batch)."""
    return CODEC, encode_bodies, decode_bodies


@pytest.fixture
def new_store():
    return MemoryStore
