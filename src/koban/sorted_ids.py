"""64-bit ids with a value each, as two sorted numpy arrays: a request's few thousand
series ids are looked up or merged in C. A Python set or dict of them costs a bytecode
loop per id, which was a large part of the cost per Prometheus remote write sample
(the series cap, the ingest policy and the series catalogue each keep one of these)."""

from __future__ import annotations

import numpy as np


class IdMap:
    def __init__(self, dtype: type | np.dtype) -> None:
        self.ids = np.empty(0, np.uint64)  # sorted, distinct
        self.values = np.empty(0, dtype)  # values[i] belongs to ids[i]

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, found) for `ids` (uint64) in their order: where `found[i]`,
        `self.ids[positions[i]] == ids[i]` and `self.values[positions[i]]` is its value."""
        if not len(self.ids):
            return np.zeros(len(ids), np.intp), np.zeros(len(ids), bool)
        order = np.argsort(ids)  # sorted needles: each search starts where the last ended
        positions = np.empty(len(ids), np.intp)
        positions[order] = np.searchsorted(self.ids, ids[order])
        np.minimum(positions, len(self.ids) - 1, out=positions)
        return positions, self.ids[positions] == ids

    def update(self, ids: np.ndarray, values: np.ndarray) -> None:
        """Set `ids` to `values` (an id given twice: its last value). The ids not known
        yet are inserted in place: one pass over the arrays, not a sort of them all (a
        request often brings a few new series to a map of a hundred thousand)."""
        if not len(ids):
            return
        order = np.argsort(ids, kind="stable")
        ids, values = ids[order], values[order]
        last = np.append(ids[1:] != ids[:-1], True)
        ids, values = ids[last], values[last]
        at, found = self.find(ids)
        self.values[at[found]] = values[found]
        if not found.all():
            new = ~found
            where = np.searchsorted(self.ids, ids[new])
            self.ids = np.insert(self.ids, where, ids[new])
            self.values = np.insert(self.values, where, values[new])

    def discard(self, ids: np.ndarray) -> None:
        kept = ~np.isin(self.ids, ids)
        self.ids, self.values = self.ids[kept], self.values[kept]

    def clear(self) -> None:
        self.ids, self.values = self.ids[:0], self.values[:0]
