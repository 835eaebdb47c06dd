"""Every route carries an access level, and with auth on every route that is not PUBLIC
refuses an anonymous request. Walks the real route table against a real server, so a
new route cannot slip in unprotected (docs/security.md)."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.routing import Mount, Route

from e2e.conftest import KobanServer
from koban.api.access import PUBLIC, route_access
from koban.api.routes import routes

PUBLIC_BY_DESIGN = {"/api/health", "/static", "/login", "/status", "/ping/{uuid}"}
DUMMIES = {"int": "1", "float": "1.5", "uuid": "00000000-0000-4000-8000-000000000000"}


def _fill(path: str) -> str:
    """`path` with each {param} or {param:convertor} replaced by a value it accepts."""
    return re.sub(r"{([^}:]+)(?::([^}]+))?}", lambda m: DUMMIES.get(m.group(2) or "", "x0"), path)


def _requests() -> list[tuple[str, str, str | None]]:
    """(method, path, level) for every method of every route and mount."""
    out = []
    for route in routes():
        level = route_access(route)
        if isinstance(route, Route):
            for method in sorted(route.methods or {"GET"}):
                out.append((method, _fill(route.path), level))
        elif isinstance(route, Mount):
            for method in ("GET", "POST"):
                out.append((method, _fill(route.path) + "/x0", level))
        else:
            out.append(("GET", getattr(route, "path", "?"), level))
    return out


REQUESTS = _requests()


def test_every_route_has_an_access_level():
    untagged = [path for _, path, level in REQUESTS if level is None]
    assert untagged == [], "tag these in api/routes.py with an access level (api/access.py)"


def test_only_the_routes_public_by_design_are_public():
    public = {route.path for route in routes() if route_access(route) == PUBLIC}
    oidc = {p for p in public if p.startswith("/auth/oidc/")}  # the SSO round trip must be reachable
    assert public - oidc <= PUBLIC_BY_DESIGN, f"public routes not in the list: {public - oidc - PUBLIC_BY_DESIGN}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("protected")
    started = KobanServer(root / "data", root / "server.log", env={"KOBAN_AUTH": "true"}).start()
    yield started
    started.stop()


def test_every_non_public_route_refuses_an_anonymous_request(server):
    checked = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for method, path, level in REQUESTS:
            if level == PUBLIC:
                continue
            answer = client.request(method, path, content=b"{}", headers={"content-type": "application/json"})
            checked.append((method, path, answer.status_code))
            assert answer.status_code in (401, 403, 303), f"{method} {path} ({level}) answered {answer.status_code}"
            if answer.status_code == 303:
                assert answer.headers["location"].startswith("/login?next=")
    assert len(checked) >= 20  # the table really was walked


def test_a_bogus_bearer_token_is_refused_as_well(server):
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": "Bearer kbt_forged"}) as client:
        for method, path, level in REQUESTS:
            if level != PUBLIC and path.startswith("/api/"):
                assert client.request(method, path).status_code == 401, f"{method} {path}"
