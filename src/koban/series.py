"""What identifies and cuts the series of MetricColumns (model.py), for the ingest
policy, the remote write decoder and the store alike. Apart from model.py because it
needs numpy and hashlib, which the StatsD reader processes (which import model.py) do
without: ~20 MiB each."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from koban.model import MetricColumns


def attributes_hash(attributes: dict[str, str]) -> int:
    """A 64-bit digest of an attribute map's content, the same in every process and
    release (blake2b of its sorted items): part of a series' identity in the DuckDB
    store's points tables (store/duckdb_points.py) and of the id of a series whose
    attributes the ingest policy cleaned (ingest/guard.py). Built once per series per
    process (the series catalogue keeps it), so its cost does not recur per sample."""
    text = "\x1e".join(f"{k}\x1f{v}" for k, v in sorted(attributes.items()))
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def only_series(columns: MetricColumns, rows: np.ndarray, point_series: Any) -> MetricColumns:
    """`columns` holding only the series at `rows` (a numpy array of their indices,
    ascending) and the streams those use, renumbered; `point_series` is its points'
    series in the new numbering (the caller decides which points stay)."""
    used, renumbered = np.unique(columns.series_stream[rows], return_inverse=True)
    return columns._replace(
        streams=[columns.streams[i] for i in used.tolist()],
        series_stream=renumbered.astype(np.int32).ravel(),
        attributes=[columns.attributes[i] for i in rows.tolist()],
        series_ids=columns.series_ids[rows],
        point_series=point_series,
    )
