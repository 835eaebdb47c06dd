"""The series rows of metric points already turned into Arrow, kept per process.

Prometheus remote write resends every series at every scrape, and a decode worker
turned each request's series (5,000 of them in the shared workload) into Arrow again:
their attribute maps, keys and ids were ~0.9 us of its ~3.7 us per sample. A
catalogue keeps each series' row once and gives a request's series table from the
rows it names.

A row is found by the series' id (MetricColumns.series_ids): equal ids mean equal
attributes (the decoder's ids hash a series' raw labels, and the ingest policy gives a
series whose attributes it cleaned another id, ingest/guard.py), so a row built once
is right for every later request that names its id. The lookup runs in C over the
request's ids (`IdMap`), and when the rows a request names are a few runs of
consecutive rows (a series set sent in the order it was first seen, as a Prometheus
shard sends its series at each scrape), the table is those runs' slices instead of a
copy of each row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from koban.sorted_ids import IdMap

BuildRows = Callable[[list[Any], np.ndarray], pa.Table]
"""(attributes, series_ids) -> one row per series."""

MAX_ROWS = 200_000
"""Rows kept before the catalogue starts afresh (as the decoder's label cache does)."""
_MAX_CHUNKS = 16  # appended batches of new rows combined beyond this, so `take` stays one pass
_MAX_RUNS = 16  # runs of consecutive rows beyond which a request's rows are taken, not sliced


class SeriesCatalogue:
    def __init__(self, build: BuildRows, max_rows: int = MAX_ROWS) -> None:
        self._build = build
        self._max_rows = max_rows
        self._lock = threading.Lock()  # the writer thread and replay may prepare too
        self._clear()

    def _clear(self) -> None:
        self._row = IdMap(np.int64)  # series id -> its row
        self._table: pa.Table | None = None

    def rows(self, attributes: list[Any], series_ids: np.ndarray) -> pa.Table:
        """The series table of one request: `build` of these series, row for row."""
        if not len(series_ids):
            return self._build(attributes, series_ids)
        with self._lock:
            at, found = self._row.find(series_ids)
            if not found.all():
                self._add(attributes, series_ids, ~found)
                at, found = self._row.find(series_ids)
            if not found.all():  # more series than the catalogue holds: build them as they are
                return self._build(attributes, series_ids)
            return self._select(self._row.values[at])

    def _select(self, rows: np.ndarray) -> pa.Table:
        """Rows `rows` of the table: as slices when they are a few runs of consecutive
        rows (no copy), else taken one by one."""
        starts = np.flatnonzero(np.diff(rows) != 1) + 1
        if len(starts) >= _MAX_RUNS:
            return self._table.take(pa.array(rows))
        bounds = zip([0, *starts.tolist()], [*starts.tolist(), len(rows)])
        return pa.concat_tables([self._table.slice(int(rows[start]), end - start) for start, end in bounds])

    def _add(self, attributes: list[Any], series_ids: np.ndarray, new: np.ndarray) -> None:
        """Build and keep the rows of the series where `new`."""
        if self._rows() + np.count_nonzero(new) > self._max_rows:
            self._clear()
            if len(series_ids) > self._max_rows:
                return
            new = np.ones(len(series_ids), bool)
        indices = np.flatnonzero(new)
        added = self._build([attributes[i] for i in indices.tolist()], series_ids[indices])
        first = self._rows()
        self._row.update(series_ids[indices], np.arange(first, first + len(indices)))
        table = added if self._table is None else pa.concat_tables([self._table, added])
        if table.column(0).num_chunks > _MAX_CHUNKS:
            table = table.combine_chunks()
        self._table = table

    def _rows(self) -> int:
        return 0 if self._table is None else self._table.num_rows
