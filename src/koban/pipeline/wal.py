"""The write-ahead log: every accepted request is here, fsynced, before its 2xx goes out.

One dedicated thread does all writing. Appends from any number of coroutines and
threads queue up while a write+fsync is in progress and then go to disk together:
ONE write and ONE fsync per group (group commit), which is what makes fsync-per-request
durability affordable.

On disk: a directory of segments named `<first_lsn:020d>.wal`, each a run of records

    magic u8 | crc32 u32 | lsn u64 | received_ns i64 | codec_len u16 | payload_len u32
    | codec bytes | payload bytes

where crc32 covers everything after the crc field (header fields included), so a torn
or bit-flipped header is caught as well as a torn payload.

LSNs are assigned by the WAL thread when a group is written, and only a group that
was written AND fsynced consumes its lsns: when a write or fsync fails, every append
of the group gets `Unavailable` and the next group reuses the same lsns, in a fresh
segment. So acknowledged lsns have no gaps, which is what lets the ingest buffer hand
the writer a contiguous prefix. The stale bytes of a failed group may survive in the
old segment (if even the truncate failed); they are ignored because a segment's
records only count below the first lsn of the segment after it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import NamedTuple

from koban.errors import Unavailable
from koban.pipeline.files import fsync_dir

log = logging.getLogger(__name__)

MAGIC = 0xB1  # format version 1; any other byte (zeros from a torn write) ends a segment
_CRC = struct.Struct("<BI")  # magic, crc32
_BODY = struct.Struct("<QqHI")  # lsn, received_ns, codec_len, payload_len
HEADER_BYTES = _CRC.size + _BODY.size
SUFFIX = ".wal"
_MAX_CODEC = 2**16 - 1
_MAX_PAYLOAD = 2**32 - 1


class WalEntry(NamedTuple):
    lsn: int
    received_ns: int
    codec: str
    payload: bytes


def encode_record(lsn: int, received_ns: int, codec: bytes, payload: bytes) -> bytes:
    """The framed bytes of one record."""
    body = _BODY.pack(lsn, received_ns, len(codec), len(payload))
    crc = zlib.crc32(payload, zlib.crc32(codec, zlib.crc32(body)))
    return b"".join((_CRC.pack(MAGIC, crc), body, codec, payload))


def read_records(path: Path) -> Iterator[tuple[int, WalEntry]]:
    """Yields (offset just past the record, entry) for each valid record of a segment,
    from its start; stops at the end of the file or at the first invalid record."""
    with open(path, "rb") as f:
        offset = 0
        while True:
            head = f.read(HEADER_BYTES)
            if len(head) < HEADER_BYTES:
                return
            magic, crc = _CRC.unpack_from(head)
            if magic != MAGIC:
                return
            body = head[_CRC.size :]
            lsn, received_ns, codec_len, payload_len = _BODY.unpack(body)
            codec = f.read(codec_len)
            payload = f.read(payload_len)
            if len(codec) < codec_len or len(payload) < payload_len:
                return
            if zlib.crc32(payload, zlib.crc32(codec, zlib.crc32(body))) != crc:
                return
            try:
                codec_name = codec.decode()
            except UnicodeDecodeError:
                return
            offset += HEADER_BYTES + codec_len + payload_len
            yield offset, WalEntry(lsn, received_ns, codec_name, payload)


class WalStats:
    """Counters for /metrics; written by the WAL thread only."""

    def __init__(self) -> None:
        self.appends = 0
        self.fsyncs = 0
        self.bytes_written = 0
        self.groups_failed = 0


class _Pending(NamedTuple):
    codec: bytes
    payload: bytes
    received_ns: int
    # exactly one of these is set: an asyncio future and its loop, or a thread future
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[int] | Future[int]


class WriteAheadLog:
    """A directory of WAL segments with one writer thread doing group commit."""

    def __init__(
        self, directory: str | Path, *, segment_bytes: int = 64 * 2**20, min_lsn: int = 0
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.stats = WalStats()
        self._segments: list[int] = sorted(self._scan_names())  # first lsns, oldest first
        self._segments_lock = threading.Lock()
        last = self._recover_last_segment()
        self._next_lsn = max(last, min_lsn) + 1
        self._fd: int | None = None
        self._offset = 0
        if self._segments:
            self._open_active(self._segments[-1], create=False)
        self._pending: list[_Pending] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="koban-wal", daemon=True)
        self._thread.start()

    # -- public API ---------------------------------------------------------------

    @property
    def last_lsn(self) -> int:
        """The lsn of the last durable entry (or the floor given by min_lsn); 0 when none."""
        return self._next_lsn - 1

    async def append(self, codec: str, payload: bytes, received_ns: int) -> int:
        """Returns the entry's lsn once it is written and fsynced.
        Raises Unavailable when the write or fsync failed (nothing was acknowledged;
        the WAL stays usable) or the WAL is closed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._submit(_Pending(_codec_bytes(codec), payload, received_ns, loop, fut))
        return await fut

    def append_blocking(self, codec: str, payload: bytes, received_ns: int) -> int:
        """`append` for threads: blocks until the entry is fsynced; raises Unavailable."""
        fut: Future[int] = Future()
        self._submit(_Pending(_codec_bytes(codec), payload, received_ns, None, fut))
        return fut.result()

    def replay(self, after_lsn: int) -> Iterator[WalEntry]:
        """Yields every entry with lsn > `after_lsn`, in lsn order.

        A segment's records count only below the next segment's first lsn (anything
        above is the leftover of a failed group). An invalid record before that bound
        is corruption: the rest of that segment is skipped with an error logged, and
        replay goes on with the next segment."""
        with self._segments_lock:
            firsts = list(self._segments)
        for i, first in enumerate(firsts):
            # entries at or past the next segment's first lsn, or not yet fsynced, do not count
            bound = firsts[i + 1] if i + 1 < len(firsts) else self._next_lsn
            if bound - 1 <= after_lsn:
                continue
            path = self._path(first)
            last_seen, end = first - 1, 0
            try:
                for end, entry in read_records(path):
                    if entry.lsn >= bound:
                        break
                    last_seen = entry.lsn
                    if entry.lsn > after_lsn:
                        yield entry
                size = path.stat().st_size
            except FileNotFoundError:
                continue  # truncated away while we read it: all of it was applied
            if i + 1 < len(firsts) and last_seen < bound - 1 and end < size:
                log.error(
                    "WAL segment %s is corrupt after lsn %d: entries %d..%d are lost",
                    path.name, last_seen, last_seen + 1, bound - 1,
                )

    def truncate_through(self, lsn: int) -> None:
        """Deletes whole segments whose entries are all <= `lsn`; never the active one."""
        with self._segments_lock:
            doomed = []
            while len(self._segments) > 1 and self._segments[1] - 1 <= lsn:
                doomed.append(self._segments.pop(0))
        for first in doomed:
            try:
                self._path(first).unlink()
            except FileNotFoundError:
                pass

    def size_bytes(self) -> int:
        """Bytes of all segments on disk."""
        total = 0
        with self._segments_lock:
            firsts = list(self._segments)
        for first in firsts:
            try:
                total += self._path(first).stat().st_size
            except FileNotFoundError:
                pass
        return total

    def close(self) -> None:
        """Writes what is queued, stops the WAL thread and closes the file. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- the WAL thread -------------------------------------------------------------

    def _submit(self, item: _Pending) -> None:
        if len(item.payload) > _MAX_PAYLOAD or not -(2**63) <= item.received_ns < 2**63:
            raise ValueError("WAL entry out of range (payload over 4 GiB or received_ns not int64)")
        with self._cond:
            if self._closed:
                raise Unavailable("the write-ahead log is closed")
            self._pending.append(item)
            if len(self._pending) == 1:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return  # closed and drained
                group, self._pending = self._pending, []
            try:
                self._commit(group)
            except Exception:  # a bug must not leave appends waiting forever
                log.exception("WAL thread failed on a group of %d appends", len(group))
                _settle(group, None, "write-ahead log internal error")

    def _commit(self, group: list[_Pending]) -> None:
        first = self._next_lsn
        data = b"".join(
            encode_record(first + i, p.received_ns, p.codec, p.payload)
            for i, p in enumerate(group)
        )
        start = self._offset
        try:
            if self._fd is None or (self._offset > 0 and self._offset + len(data) > self.segment_bytes):
                self._rotate(first)
                start = 0
            _pwrite_all(self._fd, data, start)
            os.fsync(self._fd)
        except OSError as e:
            self.stats.groups_failed += 1
            log.error("WAL write failed for %d appends (lsn %d..): %s", len(group), first, e)
            self._abandon_segment(start)
            _settle(group, None, f"write-ahead log write failed: {e.strerror or e}")
            return
        self._offset = start + len(data)
        self._next_lsn = first + len(group)
        self.stats.appends += len(group)
        self.stats.fsyncs += 1
        self.stats.bytes_written += len(data)
        _settle(group, first, None)

    def _rotate(self, first_lsn: int) -> None:
        """Makes a new, empty, durable segment starting at `first_lsn` the active one."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._open_active(first_lsn, create=True)
        with self._segments_lock:
            if not self._segments or self._segments[-1] != first_lsn:
                self._segments.append(first_lsn)

    def _abandon_segment(self, good_offset: int) -> None:
        """After a failed group: cut its bytes off (best effort) and make the next group
        start a fresh segment, so a file in an unknown error state is not reused."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, good_offset)
            os.fsync(self._fd)
        except OSError:
            pass  # the leftovers are ignored on replay: the next segment's name bounds them
        os.close(self._fd)
        self._fd = None

    # -- opening --------------------------------------------------------------------

    def _scan_names(self) -> Iterator[int]:
        for p in self.directory.iterdir():
            stem = p.name[: -len(SUFFIX)]
            if p.name.endswith(SUFFIX) and len(stem) == 20 and stem.isdigit():
                yield int(stem)

    def _recover_last_segment(self) -> int:
        """Cuts a torn tail off the last segment; returns the last lsn it holds
        (or its first lsn - 1 when empty; 0 when there is no segment)."""
        if not self._segments:
            return 0
        first = self._segments[-1]
        path = self._path(first)
        end, last = 0, first - 1
        for end, entry in read_records(path):
            last = entry.lsn
        size = path.stat().st_size
        if size > end:
            # Everything after the last good record was never acknowledged (acks follow
            # the fsync), so it is a write cut short by a crash.
            log.warning("WAL %s: dropping a torn tail of %d bytes after lsn %d", path.name, size - end, last)
            with open(path, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        return last

    def _open_active(self, first_lsn: int, *, create: bool) -> None:
        path = self._path(first_lsn)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if create else 0)
        fd = os.open(path, flags, 0o644)
        try:
            if create:
                os.fsync(fd)
                fsync_dir(self.directory)
            self._offset = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def _path(self, first_lsn: int) -> Path:
        return self.directory / f"{first_lsn:020d}{SUFFIX}"


def _codec_bytes(codec: str) -> bytes:
    raw = codec.encode()
    if len(raw) > _MAX_CODEC:
        raise ValueError(f"codec name too long: {len(raw)} bytes")
    return raw


def _pwrite_all(fd: int | None, data: bytes, offset: int) -> None:
    if fd is None:
        raise OSError("no active segment")
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _settle(group: list[_Pending], first_lsn: int | None, error: str | None) -> None:
    """Resolves every future of `group`: lsn first_lsn+i, or Unavailable(error) for all.
    Asyncio futures are resolved with one call_soon_threadsafe per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int | None]]] = {}
    for i, p in enumerate(group):
        lsn = None if first_lsn is None else first_lsn + i
        if p.loop is None:
            fut = p.future
            assert isinstance(fut, Future)
            if error is not None:
                fut.set_exception(Unavailable(error))
            else:
                fut.set_result(lsn)  # type: ignore[arg-type]
        else:
            by_loop.setdefault(p.loop, []).append((p.future, lsn))  # type: ignore[arg-type]
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve_in_loop, items, error)
        except RuntimeError:
            pass  # that loop is closed: nobody is waiting any more


def _resolve_in_loop(items: list[tuple[asyncio.Future[int], int | None]], error: str | None) -> None:
    for fut, lsn in items:
        if fut.done():
            continue  # the awaiting task was cancelled
        if error is not None:
            fut.set_exception(Unavailable(error))
        else:
            fut.set_result(lsn)  # type: ignore[arg-type]
