"""`login_response`, which single sign-on calls once the provider vouched for a user."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from koban.auth.accounts import AccountStore
from koban.auth.service import AuthService
from koban.auth.sessions import COOKIE_NAME, SessionSigner, login_response


@pytest.fixture
def app(tmp_path):
    accounts = AccountStore.open(tmp_path)
    auth = AuthService(accounts, SessionSigner(b"k" * 32, max_age_s=600))

    async def sso_done(request):
        q = request.query_params
        return login_response(request, user=q["user"], role=q["role"], redirect_to=q.get("next", "/"))

    app = Starlette(routes=[Route("/done", sso_done)])
    app.state.runtime = SimpleNamespace(auth=auth)
    yield app
    accounts.close()


def _get(app, params: dict, base_url: str = "http://koban.test") -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
            return await client.get("/done", params=params)

    return asyncio.run(go())


def test_it_starts_an_sso_session_and_redirects_to_a_local_path(app):
    auth = app.state.runtime.auth
    answer = _get(app, {"user": "sam@example.com", "role": "editor", "next": "/traces"}, "https://koban.test")
    assert answer.status_code == 303 and answer.headers["location"] == "/traces"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    principal, session = auth.principal_for_cookie(answer.cookies[COOKIE_NAME])
    assert principal == ("sam@example.com", "editor", "session")
    assert session.kind == "sso"  # never matched against a password account of that name


def test_it_never_redirects_off_site(app):
    for target in ("https://evil.example.com/", "//evil.example.com", "/\\evil.example.com", "javascript:x"):
        answer = _get(app, {"user": "sam", "role": "viewer", "next": target})
        assert answer.headers["location"] == "/", target


def test_an_unknown_role_is_an_error_not_a_session(app):
    with pytest.raises(ValueError, match="role must be"):
        _get(app, {"user": "sam", "role": "root"})
