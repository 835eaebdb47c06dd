"""The series rows of metric points already turned into Arrow, kept per process.

Prometheus remote write resends every series at every scrape, and a decode worker
turned each request's series (5,000 of them in the shared workload) into Arrow again:
their attribute maps, keys and ids were ~0.9 us of its ~3.7 us per sample. A
catalogue keeps each series' row once and gives a request's series table as one
`take` of the rows it names.

A row is found by the series' id (MetricColumns.series_ids) and used only if it was
built from the very attributes dict the request holds: the decoder hands out one dict
per label set (and keeps it), the ingest policy returns it unchanged when it masks
nothing, and the catalogue holds a reference to every dict it has rows for, so an id()
cannot be reused while its row exists. A series whose attributes were cleaned (a new
dict each time) is built again, never served stale. Both checks run in C over the
request's arrays (`IdMap`); only taking each dict's id() is a loop in Python.
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


class SeriesCatalogue:
    def __init__(self, build: BuildRows, max_rows: int = MAX_ROWS) -> None:
        self._build = build
        self._max_rows = max_rows
        self._lock = threading.Lock()  # the writer thread and replay may prepare too
        self._clear()

    def _clear(self) -> None:
        self._row = IdMap(np.int64)  # series id -> its row (the last built)
        self._dict_ids = np.empty(0, np.uint64)  # row -> id() of the dict it was built from
        self._built_from: list[Any] = []  # row -> that dict, kept alive so its id stays its own
        self._table: pa.Table | None = None

    def rows(self, attributes: list[Any], series_ids: np.ndarray) -> pa.Table:
        """The series table of one request: `build` of these series, row for row."""
        dict_ids = np.fromiter(map(id, attributes), np.uint64, len(attributes))
        with self._lock:
            rows, found = self._find(dict_ids, series_ids)
            if not found.all():
                self._add(attributes, dict_ids, series_ids, ~found)
                rows, found = self._find(dict_ids, series_ids)
            if not found.all():  # more series than the catalogue holds: build them as they are
                return self._build(attributes, series_ids)
            return self._table.take(pa.array(rows))

    def _find(self, dict_ids: np.ndarray, series_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, found) of each series."""
        if not len(self._row):
            return np.zeros(len(series_ids), np.int64), np.zeros(len(series_ids), bool)
        at, found = self._row.find(series_ids)
        rows = self._row.values[at]
        found &= self._dict_ids[rows] == dict_ids
        return rows, found

    def _add(self, attributes: list[Any], dict_ids: np.ndarray, series_ids: np.ndarray, new: np.ndarray) -> None:
        """Build and keep the rows of the series where `new`."""
        if len(self._built_from) + np.count_nonzero(new) > self._max_rows:
            self._clear()
            if len(series_ids) > self._max_rows:
                return
            new = np.ones(len(series_ids), bool)
        indices = np.flatnonzero(new)
        built_from = [attributes[i] for i in indices.tolist()]
        added = self._build(built_from, series_ids[indices])
        first = len(self._built_from)
        self._row.update(series_ids[indices], np.arange(first, first + len(indices)))
        self._dict_ids = np.concatenate([self._dict_ids, dict_ids[indices]])
        self._built_from.extend(built_from)
        table = added if self._table is None else pa.concat_tables([self._table, added])
        if table.column(0).num_chunks > _MAX_CHUNKS:
            table = table.combine_chunks()
        self._table = table
