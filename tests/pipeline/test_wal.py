from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from pathlib import Path

import pytest

from koban.errors import Unavailable
from koban.pipeline import wal as wal_module
from koban.pipeline.wal import WalEntry, WriteAheadLog

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    return tmp_path / "wal"


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


def append_n(wal: WriteAheadLog, n: int, size: int = 10) -> list[int]:
    return [wal.append_blocking("c", f"{i:0{size}d}".encode(), i) for i in range(n)]


def test_concurrent_appends_share_one_fsync_per_group(wal_dir: Path) -> None:
    wal = WriteAheadLog(wal_dir)

    async def main() -> list[int]:
        return await asyncio.gather(*(wal.append("c", b"x" * 100, i) for i in range(200)))

    lsns = asyncio.run(main())
    wal.close()
    assert lsns == list(range(1, 201))  # unique, and in the order they were submitted
    assert wal.stats.appends == 200
    assert wal.stats.fsyncs <= 20, wal.stats.fsyncs


def test_threads_appending_get_unique_lsns(wal_dir: Path) -> None:
    wal = WriteAheadLog(wal_dir)
    got: list[int] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(25):
            lsn = wal.append_blocking("c", f"{t}:{i}".encode(), i)
            with lock:
                got.append(lsn)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    wal.close()
    assert sorted(got) == list(range(1, 201))
    assert wal.stats.fsyncs < 200


def test_reopened_log_replays_every_entry_in_order(wal_dir: Path) -> None:
    wal = WriteAheadLog(wal_dir)
    written = [
        WalEntry(wal.append_blocking(codec, payload, ns), ns, codec, payload)
        for codec, payload, ns in [("otlp/logs", b"", -5), ("otlp/traces", b"\x00\xff" * 500, 7), ("é", b"z", 2**62)]
    ]
    wal.close()

    wal = WriteAheadLog(wal_dir)
    assert list(wal.replay(0)) == written
    assert list(wal.replay(2)) == written[2:]
    assert wal.last_lsn == 3
    assert wal.append_blocking("c", b"next", 1) == 4
    wal.close()


def _truncate_mid_record(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 7)


def _append_garbage(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"\xb1 not a record, the tail of a crashed write")


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _zero_tail(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"\x00" * 4096)  # a preallocated/unwritten block after a crash


@pytest.mark.parametrize("tear", [_truncate_mid_record, _append_garbage, _flip_last_byte, _zero_tail])
def test_torn_tail_is_dropped_and_the_log_keeps_working(wal_dir: Path, tear, caplog) -> None:
    wal = WriteAheadLog(wal_dir)
    append_n(wal, 5)
    wal.close()
    (seg,) = segments(wal_dir)
    tear(seg)

    with caplog.at_level(logging.WARNING):
        wal = WriteAheadLog(wal_dir)
    assert "torn tail" in caplog.text
    kept = [e.lsn for e in wal.replay(0)]
    torn_record_lost = tear in (_truncate_mid_record, _flip_last_byte)
    assert kept == ([1, 2, 3, 4] if torn_record_lost else [1, 2, 3, 4, 5])
    lsn = wal.append_blocking("c", b"after", 0)
    assert lsn == kept[-1] + 1
    wal.close()

    wal = WriteAheadLog(wal_dir)
    assert [e.lsn for e in wal.replay(0)] == kept + [lsn]
    assert list(wal.replay(lsn - 1))[0].payload == b"after"
    wal.close()


def test_segments_rotate_and_truncation_never_removes_the_active_one(wal_dir: Path) -> None:
    wal = WriteAheadLog(wal_dir, segment_bytes=1000)
    append_n(wal, 50, size=200)
    assert len(segments(wal_dir)) > 5
    size_before = wal.size_bytes()

    wal.truncate_through(30)
    firsts = [int(p.stem) for p in segments(wal_dir)]
    assert firsts[0] <= 31  # the segment holding lsn 31 is kept
    assert [e.lsn for e in wal.replay(30)] == list(range(31, 51))
    assert wal.size_bytes() < size_before

    wal.truncate_through(10**9)
    (active,) = segments(wal_dir)
    assert [e.lsn for e in wal.replay(0)] == list(range(int(active.stem), 51))
    wal.close()

    wal = WriteAheadLog(wal_dir, segment_bytes=1000)
    assert wal.last_lsn == 50
    assert wal.append_blocking("c", b"x", 0) == 51
    wal.close()


def test_an_emptied_directory_continues_after_min_lsn(wal_dir: Path) -> None:
    wal = WriteAheadLog(wal_dir)
    append_n(wal, 3)
    wal.close()
    for p in segments(wal_dir):
        p.unlink()

    wal = WriteAheadLog(wal_dir, min_lsn=3)
    assert wal.append_blocking("c", b"x", 0) == 4
    wal.close()
    wal = WriteAheadLog(wal_dir)  # the segment name keeps the floor from now on
    assert wal.last_lsn == 4
    wal.close()


class FailingDisk:
    """Makes os.fsync (and, when asked, os.ftruncate) fail like a full disk."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, ftruncate_too: bool) -> None:
        self.failing = False
        real_fsync, real_ftruncate = os.fsync, os.ftruncate

        def fsync(fd: int) -> None:
            if self.failing:
                raise OSError(errno.ENOSPC, "No space left on device")
            real_fsync(fd)

        def ftruncate(fd: int, length: int) -> None:
            if self.failing and ftruncate_too:
                raise OSError(errno.EIO, "Input/output error")
            real_ftruncate(fd, length)

        monkeypatch.setattr(wal_module.os, "fsync", fsync)
        monkeypatch.setattr(wal_module.os, "ftruncate", ftruncate)


@pytest.mark.parametrize("ftruncate_too", [False, True])
def test_failed_fsync_fails_the_group_and_reuses_its_lsns(
    wal_dir: Path, monkeypatch: pytest.MonkeyPatch, ftruncate_too: bool
) -> None:
    disk = FailingDisk(monkeypatch, ftruncate_too=ftruncate_too)
    wal = WriteAheadLog(wal_dir)
    assert wal.append_blocking("c", b"one", 0) == 1

    disk.failing = True

    async def failing_group() -> list[object]:
        return await asyncio.gather(*(wal.append("c", b"lost", 0) for _ in range(5)), return_exceptions=True)

    results = asyncio.run(failing_group())
    assert all(isinstance(r, Unavailable) and r.status == 503 for r in results)
    with pytest.raises(Unavailable):
        wal.append_blocking("c", b"lost", 0)

    disk.failing = False
    assert wal.append_blocking("c", b"two", 0) == 2  # the failed group consumed no lsn
    assert wal.append_blocking("c", b"three", 0) == 3
    wal.close()

    wal = WriteAheadLog(wal_dir)
    assert [e.payload for e in wal.replay(0)] == [b"one", b"two", b"three"]
    assert wal.append_blocking("c", b"four", 0) == 4
    wal.close()


def test_corruption_inside_an_old_segment_skips_only_that_segment(wal_dir: Path, caplog) -> None:
    wal = WriteAheadLog(wal_dir, segment_bytes=500)
    append_n(wal, 12, size=200)
    wal.close()
    segs = segments(wal_dir)
    assert len(segs) >= 3
    data = bytearray(segs[1].read_bytes())
    data[len(data) // 2] ^= 0xFF  # rot a byte in the middle of the second segment
    segs[1].write_bytes(bytes(data))

    wal = WriteAheadLog(wal_dir, segment_bytes=500)
    with caplog.at_level(logging.ERROR):
        lsns = [e.lsn for e in wal.replay(0)]
    assert "corrupt" in caplog.text
    lost = set(range(1, 13)) - set(lsns)
    assert lost and lsns == sorted(lsns) and 12 in lsns
    wal.close()


def test_appends_after_close_are_refused(wal_dir: Path) -> None:
    wal = WriteAheadLog(wal_dir)
    wal.close()
    with pytest.raises(Unavailable):
        wal.append_blocking("c", b"x", 0)
    wal.close()  # idempotent
