"""The codec registry: `CODECS` names every decoder by the codec string the receivers and the WAL record
with each payload, so a payload can be decoded again on replay by name alone.
"""

from __future__ import annotations

from typing import Callable

from koban.errors import DecodeError
from koban.ingest import events, otlp_json, otlp_proto, prom_remote_write, prom_text
from koban.model import Batch

Decoder = Callable[[bytes, int], Batch]

CODECS: dict[str, Decoder] = {
    "otlp-proto/logs": otlp_proto.decode_logs,
    "otlp-proto/traces": otlp_proto.decode_traces,
    "otlp-proto/metrics": otlp_proto.decode_metrics,
    "otlp-json/logs": otlp_json.decode_logs,
    "otlp-json/traces": otlp_json.decode_traces,
    "otlp-json/metrics": otlp_json.decode_metrics,
    "prom-rw/metrics": prom_remote_write.decode,
    prom_text.CODEC: prom_text.decode,  # a Prometheus scrape: envelope + exposition body
    events.CODEC: events.decode,  # DogStatsD events of a StatsD flush window
}


def decode(codec: str, payload: bytes, received_ns: int) -> Batch:
    """`payload` decoded by the decoder named `codec` (a key of CODECS).

    Raises DecodeError when the codec is unknown or the payload is malformed.
    """
    decoder = CODECS.get(codec)
    if decoder is None:
        raise DecodeError(f"unknown codec {codec!r}; known: {', '.join(CODECS)}")
    return decoder(payload, received_ns)
