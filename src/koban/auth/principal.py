"""Who is making a request, and what a role may do."""

from __future__ import annotations

from typing import NamedTuple

ROLES = ("viewer", "editor", "admin")
"""User and API-token roles, weakest first; each may do what the ones before it may."""

INGEST_ROLE = "ingest"
"""The role of an ingest key: it may send telemetry and nothing else."""


class Principal(NamedTuple):
    """The caller of a request, in `request.state.principal`.

    `via` says how it proved who it is: "session" (a signed-in user's cookie), "token"
    (an API token), "ingest_key", or "none" (auth is off: everyone is the anonymous admin).
    """

    name: str
    role: str
    via: str


ANONYMOUS = Principal("anonymous", "admin", "none")
"""Everyone, when auth is off."""


def role_rank(role: str) -> int:
    """0 for viewer up to 2 for admin; -1 for anything else (an ingest key's role)."""
    try:
        return ROLES.index(role)
    except ValueError:
        return -1


def check_role(role: str) -> str:
    """`role`, when it is one of ROLES; raises ValueError naming the choices otherwise."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return role
