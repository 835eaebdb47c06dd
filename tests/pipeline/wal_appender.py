"""Run by test_wal_kill9.py: appends to a WAL from many coroutines forever and prints
`<lsn> <tag>` for every acknowledged append, until it is killed."""

from __future__ import annotations

import asyncio
import sys

from koban.pipeline.wal import WriteAheadLog


async def writer(wal: WriteAheadLog, run: str, worker: int) -> None:
    seq = 0
    while True:
        tag = f"{run}-{worker}-{seq}"
        payload = tag.encode().ljust(4096, b".")
        lsn = await wal.append("kill9", payload, seq)
        sys.stdout.write(f"{lsn} {tag}\n")
        sys.stdout.flush()  # printed == acknowledged: the parent trusts every line it sees
        seq += 1


async def main(directory: str, run: str) -> None:
    wal = WriteAheadLog(directory, segment_bytes=256 * 1024)
    print("ready", flush=True)
    await asyncio.gather(*(writer(wal, run, w) for w in range(16)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
