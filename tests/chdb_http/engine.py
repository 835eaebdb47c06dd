"""The one chdb engine of this test process.

chdb hosts one ClickHouse engine per process, at one path; a connection to another
path fails while any connection is open, and the engine shuts down when the last one
closes. Fixtures that want ClickHouse in-process take an `Engine`: it joins the engine
already running (another fixture's, e.g. tests/query's) or starts one at `preferred`,
and keeps it up until closed.
"""

from __future__ import annotations

import re
from pathlib import Path

import chdb

_RUNNING = re.compile(r"already initialized with path '([^']*)'")


class Engine:
    """Holds a connection so the engine stays up; `path` is where it runs."""

    def __init__(self, preferred: Path) -> None:
        try:
            self._keeper = chdb.connect(str(preferred))
            self.path = str(preferred)
        except Exception as e:  # chdb raises RuntimeError or its ChdbError
            m = _RUNNING.search(str(e))
            if m is None:
                raise
            self.path = m.group(1)
            self._keeper = chdb.connect(self.path)

    def connect(self) -> chdb.state.sqlitelike.Connection:
        return chdb.connect(self.path)

    def close(self) -> None:
        self._keeper.close()
