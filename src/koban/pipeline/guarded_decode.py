"""The decode functions the intake runs: decode, then the ingest policy (secret
scrubbing and attribute limits, ingest/guard.py); in a decode worker, also prepare the
logs for the store (store/columns.prepare_logs). The policy must come before the
preparing, which turns log records into Arrow tables; its counts travel back beside
the batch in `Guarded`.

Module-level functions over plain data, so `functools.partial(..., policy)` pickles to
the spawn'd decode workers.
"""

from __future__ import annotations

from koban.ingest.guard import Guarded, IngestPolicy, decode_guarded
from koban.pipeline.prepare import prepared


def decode_for_intake(policy: IngestPolicy, codec: str, payload: bytes, received_ns: int) -> Guarded:
    """The request decoded and guarded, in the server process (small requests): its
    logs are converted for the store by the writer, as part of its batch."""
    return decode_guarded(policy, codec, payload, received_ns)


def decode_in_worker(policy: IngestPolicy, codec: str, payload: bytes, received_ns: int) -> Guarded:
    """The request decoded, guarded and prepared, in a decode worker. Raises
    DecodeError for a bad payload."""
    guarded = decode_guarded(policy, codec, payload, received_ns)
    return guarded._replace(batch=prepared(guarded.batch))
