"""The whole URL map on one screen, grouped by who may call each route (api/access.py)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from koban.api import admin, auth, events, limits, metrics, pages, search, system, timeseries, tracelist
from koban.api import storage as storage_api
from koban.api.access import ADMIN, EDITOR, INGEST, PUBLIC, VIEWER, tagged
from koban.api.sso import SingleSignOn
from koban.api.tail import LiveTail
from koban.receive import prom_remote_write
from koban.receive.otlp_http import export_endpoint
from koban.ui.pages import STATIC_DIR


def routes() -> list[BaseRoute]:
    tail = LiveTail()  # one per app: it bounds that app's open streams
    sso = SingleSignOn()  # one per app: it caches the provider's discovery and keys
    return [
        *tagged(
            PUBLIC,
            Route("/api/health", system.health),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
            Route("/login", auth.login_form, methods=["GET"]),
            Route("/login", auth.login, methods=["POST"]),
            Route("/auth/oidc/login", sso.login, methods=["GET"]),  # single sign-on (api/sso.py)
            Route("/auth/oidc/callback", sso.callback, methods=["GET"]),
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
            Route("/api/metrics/names", metrics.names),
            Route("/api/metrics/tags", metrics.tags),
            Route("/api/events", events.events),  # DogStatsD events
            # who am I, and the CSRF token page scripts send (X-CSRF-Token)
            Route("/api/auth/me", auth.whoami),
            Route("/logout", auth.logout_form, methods=["GET"]),
            Route("/logout", auth.logout, methods=["POST"]),
            # koban watches itself
            Route("/metrics", system.metrics),
            # web UI: pages over the read API above
            Route("/", pages.home),
            Route("/logs", pages.page("logs")),
            Route("/traces", pages.page("traces")),
            Route("/traces/{trace_id}", pages.page("trace", "trace_id")),
            Route("/services", pages.page("services")),
            Route("/services/{name}", pages.page("service", "name")),
            Route("/metrics/explorer", pages.page("metrics")),  # /metrics is koban's own
        ),
        *tagged(EDITOR),
        *tagged(
            ADMIN,
            Route("/api/admin/users", admin.list_accounts),
            Route("/api/admin/keys", admin.create_key, methods=["POST"]),
            Route("/api/admin/tokens", admin.create_token, methods=["POST"]),
            Route("/api/admin/credentials/{name}", admin.revoke, methods=["DELETE"]),
            Route("/api/limits/cardinality", limits.cardinality),  # series cap offenders (api/limits.py)
            # disk use, volume, retention and the disk budget (api/storage.py)
            Route("/api/storage", storage_api.storage),
            Route("/api/storage/retention", storage_api.set_retention, methods=["PUT"]),
            Route("/storage", storage_api.page),
        ),
    ]
