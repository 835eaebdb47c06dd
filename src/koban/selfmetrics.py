"""koban watches itself: the counters and gauges behind `/metrics`.

One `SelfMetrics` per running server, on its own prometheus_client registry (no global
registry for tests to reset). Gauges that mirror live state (queue depth, WAL size) are
read when scraped, through callbacks the app wires in.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class SelfMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "koban_records_received", "Records accepted (acknowledged) by ingest.", ["signal", "protocol"], registry=r
        )
        self.rejected = Counter(
            "koban_records_rejected",
            "Records or requests refused by ingest, by reason.",
            ["signal", "protocol", "reason"],
            registry=r,
        )
        self.requests = Counter(
            "koban_ingest_requests", "Ingest requests by outcome.", ["protocol", "outcome"], registry=r
        )
        self.query_seconds = Histogram(
            "koban_query_seconds",
            "Time to run one API query against the store.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.retention_deleted = Counter(
            "koban_retention_deleted_rows", "Rows removed by retention.", ["signal"], registry=r
        )
        self.memory_trims = Counter(
            "koban_memory_trims", "Times an idle server gave cached memory back to the OS.", registry=r
        )
        # limits and scrubbing (docs/security.md)
        self.scrubbed = Counter(
            "koban_scrubbed_values", "Values masked at ingest by a scrubbing rule.", ["rule"], registry=r
        )
        self.attributes_dropped = Counter(
            "koban_attributes_dropped", "Attributes dropped over max_attributes_per_record.", registry=r
        )
        self.attribute_values_truncated = Counter(
            "koban_attribute_values_truncated", "Attribute values cut to max_attribute_value_length.", registry=r
        )
        self.series_dropped = Counter(
            "koban_series_dropped", "Metric points of new series dropped over max_series_per_metric.", registry=r
        )

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        """A gauge whose value is `read()` at scrape time."""
        Gauge(name, help, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)
