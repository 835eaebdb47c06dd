"""Who may call a route of a given access level (koban.api.access): a pure decision."""

from __future__ import annotations

from koban.api.access import ADMIN, EDITOR, INGEST, PUBLIC, VIEWER
from koban.auth.principal import INGEST_ROLE, Principal, role_rank
from koban.errors import KobanError

ALLOW = "allow"
UNAUTHENTICATED = "unauthenticated"
FORBIDDEN = "forbidden"

_NEEDED_RANK = {VIEWER: role_rank("viewer"), EDITOR: role_rank("editor"), ADMIN: role_rank("admin")}


class Unauthenticated(KobanError):
    """The route needs a credential and the request brought none that is valid."""

    status = 401


class Forbidden(KobanError):
    """The caller is known but may not do this (role too low, ingest key on a read
    route, missing CSRF token)."""

    status = 403


def decide(level: str | None, principal: Principal | None) -> str:
    """ALLOW, UNAUTHENTICATED or FORBIDDEN for `principal` (None: anonymous) calling a
    route tagged `level`. An untagged route (None) or unknown level is refused to all."""
    if level == PUBLIC:
        return ALLOW
    if level not in (INGEST, *_NEEDED_RANK):
        return FORBIDDEN  # fail closed: a route nobody classified
    if principal is None:
        return UNAUTHENTICATED
    if level == INGEST:
        # write-only keys, and people who could change things anyway
        ok = principal.role == INGEST_ROLE or role_rank(principal.role) >= role_rank("editor")
        return ALLOW if ok else FORBIDDEN
    return ALLOW if role_rank(principal.role) >= _NEEDED_RANK[level] else FORBIDDEN
