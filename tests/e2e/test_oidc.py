"""Single sign-on against a real OpenID provider (tests/auth/oidc_provider.py) and a real
`koban serve` with auth on: the browser's redirects are followed with httpx, cookies kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from auth.oidc_provider import OidcProvider
from e2e.conftest import KobanServer

ROLE_MAP = "koban-admins=admin,devs=editor"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    p = OidcProvider(client_id="koban", client_secret="s3cret").start()
    yield p
    p.stop()


def _config(provider: OidcProvider, **extra: str) -> str:
    options = {
        "auth": True, "oidc_issuer": provider.issuer, "oidc_client_id": "koban",
        "oidc_role_map": ROLE_MAP, "decode_workers": 0, **extra,
    }
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())  # JSON scalars are TOML too


@pytest.fixture(scope="module")
def koban(provider, tmp_path_factory) -> Iterator[KobanServer]:
    """One server for the tests that share its configuration (no default role)."""
    tmp = tmp_path_factory.mktemp("oidc")
    server = KobanServer(tmp / "data", tmp / "server.log", config_toml=_config(provider),
                         env={"KOBAN_OIDC_CLIENT_SECRET": "s3cret"})
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def reset_provider(provider):
    provider.tamper_id_token = False
    provider.user = "alice"


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    """A browser: follows redirects, keeps cookies."""
    with httpx.Client(follow_redirects=True, timeout=10) as client:
        yield client


def sign_in(browser: httpx.Client, koban: KobanServer, provider: OidcProvider, user: str,
            next_path: str = "/api/auth/me") -> httpx.Response:
    """The browser's whole round trip from koban's SSO link; returns the last response."""
    provider.user = user
    return browser.get(koban.url + "/auth/oidc/login", params={"next": next_path})


def test_an_admin_group_member_ends_signed_in_as_admin(koban, provider, browser):
    response = sign_in(browser, koban, provider, "alice")
    assert response.status_code == 200, response.text
    assert str(response.url) == koban.url + "/api/auth/me"  # back where the login link said
    me = response.json()
    assert (me["name"], me["role"], me["via"]) == ("alice@example.test", "admin", "session")
    assert browser.get(koban.url + "/api/logs").status_code == 200
    assert browser.get(koban.url + "/api/admin/users").status_code == 200
    # the hops: koban -> provider -> koban callback -> next
    hops = [urlparse(str(r.url)).path for r in response.history]
    assert hops == ["/auth/oidc/login", "/authorize", "/auth/oidc/callback"]


def test_a_devs_member_is_an_editor_and_cannot_reach_admin_routes(koban, provider, browser):
    response = sign_in(browser, koban, provider, "dave")
    assert response.json()["role"] == "editor"
    assert browser.get(koban.url + "/api/logs").status_code == 200
    refused = browser.get(koban.url + "/api/admin/users")
    assert refused.status_code == 403
    assert "admin" in refused.json()["error"]


def test_a_user_with_no_mapped_role_and_no_default_is_refused_with_a_reason(koban, provider, browser):
    response = sign_in(browser, koban, provider, "mallory")
    assert response.status_code == 403
    error = response.json()["error"]
    assert "mallory@example.test" in error and "contractors" in error and "oidc_role_map" in error
    assert "koban_session" not in browser.cookies
    assert browser.get(koban.url + "/api/logs").status_code == 401
    koban.wait_for(lambda: "failed (403): mallory@example.test" in koban.log(), what="the refusal in the log")


def test_a_user_without_the_claim_is_refused(koban, provider, browser):
    response = sign_in(browser, koban, provider, "nogroups")
    assert response.status_code == 403
    assert "none" in response.json()["error"]


def test_the_default_role_admits_users_the_map_does_not_name(make_server, provider, browser):
    server = make_server(config_toml=_config(provider, oidc_default_role="viewer"),
                         env={"KOBAN_OIDC_CLIENT_SECRET": "s3cret"}).start()
    response = sign_in(browser, server, provider, "mallory")
    assert response.json()["role"] == "viewer"
    assert browser.get(server.url + "/api/logs").status_code == 200
    assert browser.get(server.url + "/api/admin/users").status_code == 403


def _provider_answer(browser: httpx.Client, koban: KobanServer) -> dict[str, str]:
    """Start a sign-in in `browser` (not following redirects) and return the provider's
    answer (code, state) without delivering it to koban."""
    to_provider = browser.get(koban.url + "/auth/oidc/login")
    assert to_provider.status_code == 302
    back = browser.get(to_provider.headers["location"])
    assert back.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlparse(back.headers["location"]).query).items()}
    assert set(query) >= {"code", "state"}
    return query


def test_a_callback_whose_state_does_not_match_is_refused(koban, provider):
    with httpx.Client(timeout=10) as browser:
        query = _provider_answer(browser, koban)
        wrong = browser.get(koban.url + "/auth/oidc/callback", params={**query, "state": "forged-state"})
        assert wrong.status_code == 400
        assert "state does not match" in wrong.json()["error"]
        assert "koban_session" not in browser.cookies
        # the state is spent: even the right answer cannot follow a refused one
        late = browser.get(koban.url + "/auth/oidc/callback", params=query)
        assert late.status_code == 400 and "no sign-in was started" in late.json()["error"]
    # a callback from a browser that never started a sign-in (login CSRF) is refused too
    with httpx.Client(timeout=10) as stranger:
        refused = stranger.get(koban.url + "/auth/oidc/callback", params=query)
        assert refused.status_code == 400
        assert "no sign-in was started" in refused.json()["error"]


def test_a_tampered_id_token_is_refused(koban, provider, browser):
    provider.tamper_id_token = True
    response = sign_in(browser, koban, provider, "dave")
    assert response.status_code == 400
    assert "ID token is invalid" in response.json()["error"]
    assert browser.get(koban.url + "/api/logs").status_code == 401


def test_koban_sends_its_pkce_verifier_and_client_secret(koban, provider, browser):
    provider.token_requests.clear()
    response = sign_in(browser, koban, provider, "alice")
    assert response.status_code == 200
    [sent] = provider.token_requests
    assert len(sent["code_verifier"]) >= 43
    assert "client_secret" not in sent  # it went in the Basic header, as discovery offers


def test_the_provider_refuses_a_token_request_without_the_right_verifier(provider):
    verifier = "v" * 64
    params = {
        "response_type": "code", "client_id": "koban", "redirect_uri": "http://127.0.0.1:1/cb",
        "scope": "openid email", "state": "s", "nonce": "n",
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
    }
    with httpx.Client(timeout=10) as http:
        back = http.get(provider.issuer + "/authorize", params=params)
        code = parse_qs(urlparse(back.headers["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"]}
        auth = ("koban", "s3cret")
        missing = http.post(provider.issuer + "/token", data=form, auth=auth)
        assert missing.status_code == 400 and "code_verifier" in missing.json()["error_description"]
        wrong = http.post(provider.issuer + "/token", data={**form, "code_verifier": "w" * 64}, auth=auth)
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        right = http.post(provider.issuer + "/token", data={**form, "code_verifier": verifier}, auth=("koban", "nope"))
        assert right.status_code == 401  # and the client secret is checked too
        ok = http.post(provider.issuer + "/token", data={**form, "code_verifier": verifier}, auth=auth)
        assert ok.status_code == 200 and ok.json()["id_token"]
        # and an authorization request without a challenge is refused outright
        bare = {k: v for k, v in params.items() if not k.startswith("code_challenge")}
        assert http.get(provider.issuer + "/authorize", params=bare).status_code == 400


def test_the_login_page_offers_sso(koban):
    page = httpx.get(koban.url + "/login", params={"next": "/logs"}, timeout=10)
    assert page.status_code == 200
    assert 'href="/auth/oidc/login?next=/logs"' in page.text or 'href="/auth/oidc/login?next=%2Flogs"' in page.text


@pytest.mark.parametrize(
    "query,cookie",
    [
        ({"state": "x" * 10_000, "code": "y"}, "garbage"),
        ({"code": "y"}, "a.b.c"),
        ({}, None),
        ({"state": ["a", "b"], "error": "\x00\u2603"}, "\u2603"),
    ],
)
def test_a_hostile_callback_gets_a_4xx_and_the_server_stays_up(koban, query, cookie):
    headers = {"Cookie": b"koban_oidc=" + cookie.encode()} if cookie else {}  # raw bytes: any cookie
    with httpx.Client(timeout=10) as http:
        response = http.get(koban.url + "/auth/oidc/callback", params=query, headers=headers)
        assert response.status_code == 400, response.text
        assert http.get(koban.url + "/api/health").status_code == 200
