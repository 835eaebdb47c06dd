"""Who may call a route: every route in api/routes.py carries exactly one access level.

The auth layer reads `route_access(route)` for the route a request matched; a route
without a level is refused to everyone (fail closed), and a test walks the route table
so that a new route cannot slip in unprotected (docs/security.md).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

PUBLIC = "public"
"""Anyone: /api/health, the status page, heartbeat pings, static files, the login page."""
INGEST = "ingest"
"""Telemetry senders: an ingest key (write-only), or a signed-in editor/admin."""
VIEWER = "viewer"
"""Read the data: the read API and the UI pages."""
EDITOR = "editor"
"""Change dashboards and monitors."""
ADMIN = "admin"
"""Users, keys, settings, storage."""

LEVELS = (PUBLIC, INGEST, VIEWER, EDITOR, ADMIN)
_ATTR = "koban_access"


def tagged(level: str, *routes: BaseRoute) -> list[BaseRoute]:
    """`routes`, each marked with access `level`."""
    if level not in LEVELS:
        raise ValueError(f"unknown access level {level!r}")
    for route in routes:
        setattr(route, _ATTR, level)
    return list(routes)


def route_access(route: BaseRoute) -> str | None:
    """The level `route` was tagged with; None when it was not (refuse)."""
    return getattr(route, _ATTR, None)
