"""The part of writing a batch that a decode worker can do: convert its log records to
the store's Arrow table (store/columns.py `prepare_logs`) and its MetricColumns to
Arrow tables of series and points (`prepare_metrics`), so that the server process
receives an Arrow table (cheap to unpickle, ready to insert) instead of building one
itself on the core that also runs the event loop and the store writer."""

from __future__ import annotations

import pyarrow as pa

from koban.model import Batch
from koban.store.columns import prepare_logs, prepare_metrics


def prepared(batch: Batch) -> Batch:
    """`batch` with its logs and MetricColumns prepared for the store. A batch that does not convert is
    returned as it is: the store writer then refuses it the way it refuses any batch
    that does not fit (quarantine), instead of the request failing here."""
    try:
        return prepare_metrics(prepare_logs(batch))
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return batch
