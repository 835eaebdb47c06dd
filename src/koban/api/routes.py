"""The whole URL map on one screen, grouped by who may call each route (api/access.py)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from koban.api import pages, search, system, timeseries, tracelist
from koban.api.access import ADMIN, EDITOR, INGEST, PUBLIC, VIEWER, tagged
from koban.api.tail import LiveTail
from koban.receive import prom_remote_write
from koban.receive.otlp_http import export_endpoint
from koban.ui.pages import STATIC_DIR


def routes() -> list[BaseRoute]:
    tail = LiveTail()  # one per app: it bounds that app's open streams
    return [
        *tagged(
            PUBLIC,
            Route("/api/health", system.health),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ),
        *tagged(
            INGEST,
            Route("/v1/logs", export_endpoint("logs"), methods=["POST"]),
            Route("/v1/traces", export_endpoint("traces"), methods=["POST"]),
            Route("/v1/metrics", export_endpoint("metrics"), methods=["POST"]),
            Route("/api/v1/write", prom_remote_write.write, methods=["POST"]),  # Prometheus remote write 1.0
        ),
        *tagged(
            VIEWER,
            # read API
            Route("/api/logs", search.logs),
            Route("/api/logs/histogram", search.logs_histogram),
            Route("/api/logs/facets", search.logs_facets),
            Route("/api/logs/tail", tail.endpoint),
            Route("/api/spans", search.spans),
            Route("/api/traces", tracelist.traces),
            Route("/api/traces/{trace_id}", search.trace),
            Route("/api/services", search.services),
            Route("/api/services/{name}/resources", search.service_resources),
            Route("/api/timeseries", timeseries.series),
            # koban watches itself
            Route("/metrics", system.metrics),
            # web UI: pages over the read API above
            Route("/", pages.home),
            Route("/logs", pages.page("logs")),
            Route("/traces", pages.page("traces")),
            Route("/traces/{trace_id}", pages.page("trace", "trace_id")),
            Route("/services", pages.page("services")),
            Route("/services/{name}", pages.page("service", "name")),
        ),
        *tagged(EDITOR),
        *tagged(ADMIN),
    ]
