"""The whole URL map on one screen."""

from __future__ import annotations

from starlette.routing import Route

from koban.api import search, system
from koban.receive.otlp_http import export_endpoint


def routes() -> list[Route]:
    return [
        # ingest
        Route("/v1/logs", export_endpoint("logs"), methods=["POST"]),
        Route("/v1/traces", export_endpoint("traces"), methods=["POST"]),
        Route("/v1/metrics", export_endpoint("metrics"), methods=["POST"]),
        # read API
        Route("/api/health", system.health),
        Route("/api/logs", search.logs),
        Route("/api/logs/histogram", search.logs_histogram),
        Route("/api/logs/facets", search.logs_facets),
        Route("/api/spans", search.spans),
        Route("/api/traces/{trace_id}", search.trace),
        Route("/api/services", search.services),
        Route("/api/services/{name}/resources", search.service_resources),
        # koban watches itself
        Route("/metrics", system.metrics),
    ]
