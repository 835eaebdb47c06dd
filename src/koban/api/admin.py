"""Admin JSON API: accounts, ingest keys and API tokens (all routes ADMIN).

A key or token's secret is in the response that creates it and nowhere else, ever.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from koban.api import params
from koban.errors import BadRequest, NotFound

_MAX_BODY = 16 * 1024


async def _json_object(request: Request) -> dict:
    return await params.json_object(request, max_bytes=_MAX_BODY)


def _text(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key!r} is required and must be a string")
    return value


def _accounts(request: Request):
    return request.app.state.runtime.auth.accounts


async def list_accounts(request: Request) -> Response:
    """GET /api/admin/users: users, ingest keys and API tokens (never a secret)."""
    rows = _accounts(request).list()
    return JSONResponse({"accounts": [row._asdict() for row in rows]})


async def create_key(request: Request) -> Response:
    """POST /api/admin/keys {"name"}: a new ingest key, shown this once."""
    name = _text(await _json_object(request), "name")
    secret = _accounts(request).create_ingest_key(name)
    return JSONResponse({"name": name, "key": secret, "note": "shown once: store it now"}, status_code=201)


async def create_token(request: Request) -> Response:
    """POST /api/admin/tokens {"name", "role"}: a new API token, shown this once."""
    data = await _json_object(request)
    name, role = _text(data, "name"), _text(data, "role")
    secret = _accounts(request).create_token(name, role)
    return JSONResponse({"name": name, "role": role, "token": secret, "note": "shown once: store it now"},
                        status_code=201)


async def revoke(request: Request) -> Response:
    """DELETE /api/admin/credentials/{name}: revoke a key or token at once."""
    name = request.path_params["name"]
    if not _accounts(request).revoke(name):
        raise NotFound(f"no key or token named {name!r}")
    return Response(status_code=204)
