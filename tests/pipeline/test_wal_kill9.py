from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from koban.pipeline.wal import WriteAheadLog

APPENDER = Path(__file__).with_name("wal_appender.py")


def run_and_kill(directory: Path, run: str, acks_before_kill: int) -> dict[int, str]:
    """Starts the appender, SIGKILLs it after `acks_before_kill` acknowledged appends
    and returns every lsn it printed (each one was acknowledged)."""
    proc = subprocess.Popen(
        [sys.executable, str(APPENDER), str(directory), run],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: dict[int, str] = {}
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        while len(acked) < acks_before_kill:
            line = proc.stdout.readline()
            assert line, "the appender died on its own"
            lsn, tag = line.split()
            acked[int(lsn)] = tag
        os.kill(proc.pid, signal.SIGKILL)
        for line in proc.stdout:  # whatever it printed before dying was acknowledged too
            if line.endswith("\n"):
                lsn, tag = line.split()
                acked[int(lsn)] = tag
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    return acked


@pytest.mark.timeout(60)
def test_every_acknowledged_append_survives_kill_9(tmp_path: Path) -> None:
    rng = random.Random()
    all_acked: dict[int, str] = {}
    for run in range(3):
        acked = run_and_kill(tmp_path, f"r{run}", rng.randint(50, 600))
        assert not set(acked) & set(all_acked), "an lsn was handed out twice"
        all_acked |= acked

        wal = WriteAheadLog(tmp_path)
        stored = {e.lsn: e.payload for e in wal.replay(0)}
        wal.close()
        lsns = sorted(stored)
        assert lsns == list(range(1, len(lsns) + 1)), "acknowledged lsns must have no gaps"
        missing = set(all_acked) - set(stored)
        assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"
        for lsn, tag in all_acked.items():
            assert stored[lsn].rstrip(b".").decode() == tag
