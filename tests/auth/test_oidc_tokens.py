"""ID token validation, role mapping and the state cookie of koban.auth.oidc, against
the real test provider's discovery document and JWKS (tests/auth/oidc_provider.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from auth.oidc_provider import OidcProvider
from koban.auth.oidc import OidcConfig, OidcLogin, SsoFailed, claim_values, map_role, safe_next, user_name
from koban.errors import BadRequest, ConfigError
from koban.settings import load_settings, parse_role_map

NONCE = "nonce-123"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    p = OidcProvider().start()
    yield p
    p.stop()


def config(issuer: str, **overrides) -> OidcConfig:
    values = dict(issuer=issuer, client_id="koban", client_secret="s3cret", scopes="openid email",
                  role_claim="groups", role_map={"koban-admins": "admin", "devs": "editor"},
                  default_role="", public_url="")
    return OidcConfig(**{**values, **overrides})


def token(provider: OidcProvider, key=None, alg: str = "RS256", **claims) -> str:
    now = int(time.time())
    body = {"iss": provider.issuer, "aud": "koban", "sub": "u-1", "iat": now, "exp": now + 300,
            "nonce": NONCE, "email": "a@example.test", **claims}
    body = {k: v for k, v in body.items() if v is not None}
    key = key or provider.key
    return jwt.encode({"alg": alg, "kid": getattr(key, "kid", None) or "k"}, body, key)


def validate(provider: OidcProvider, id_token: str, flow: OidcLogin | None = None) -> dict:
    flow = flow or OidcLogin(config(provider.issuer), b"k" * 32)
    return asyncio.run(flow.validate_id_token(id_token, NONCE))


def test_it_accepts_a_token_the_provider_signed(provider):
    claims = validate(provider, token(provider, groups=["devs"]))
    assert claims["sub"] == "u-1" and claims["groups"] == ["devs"]


@pytest.mark.parametrize(
    "claims,reason",
    [
        ({"iss": "https://evil.example"}, "'iss'"),
        ({"aud": "someone-else"}, "'aud'"),
        ({"nonce": "replayed"}, "'nonce'"),
        ({"nonce": None}, "'nonce'"),
        ({"sub": None}, "'sub'"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iat": int(time.time()) + 3600}, "'iat'"),
    ],
)
def test_it_refuses_a_token_with_a_wrong_claim(provider, claims, reason):
    with pytest.raises(BadRequest, match=reason):
        validate(provider, token(provider, **claims))


def test_it_refuses_a_token_for_several_audiences_that_names_another_party(provider):
    with pytest.raises(BadRequest, match="azp"):
        validate(provider, token(provider, aud=["koban", "other"], azp="other"))
    assert validate(provider, token(provider, aud=["koban", "other"], azp="koban"))["azp"] == "koban"


def test_it_refuses_a_token_signed_by_a_key_not_in_the_jwks(provider):
    stranger = RSAKey.generate_key(2048, parameters={"kid": "test-key-1"})  # same kid, other key
    with pytest.raises(BadRequest, match="bad_signature"):
        validate(provider, token(provider, key=stranger))


def test_it_refuses_symmetric_and_unsigned_tokens(provider):
    # HS256 keyed with something public (the client id) must never pass as a provider signature
    symmetric = OctKey.import_key(b"koban" * 8, parameters={"kid": provider.key.kid})
    with pytest.raises(BadRequest, match="'HS256' is not allowed"):
        validate(provider, token(provider, key=symmetric, alg="HS256"))
    header = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    payload = token(provider).split(".")[1]
    with pytest.raises(BadRequest, match="'none' is not allowed"):
        validate(provider, f"{header}.{payload}.")


def test_it_refuses_garbage_instead_of_a_token(provider):
    for junk in ("", "not-a-jwt", "a.b.c", None, 42):
        with pytest.raises(BadRequest):
            validate(provider, junk)


def test_it_fetches_the_jwks_again_when_the_provider_rotates_its_key(provider):
    flow = OidcLogin(config(provider.issuer), b"k" * 32)
    validate(provider, token(provider), flow)
    old = provider.key
    provider.key = RSAKey.generate_key(2048, parameters={"kid": "test-key-2", "use": "sig", "alg": "RS256"})
    try:
        assert validate(provider, token(provider), flow)["sub"] == "u-1"
    finally:
        provider.key = old


def test_a_discovery_document_naming_another_issuer_is_refused(provider):
    flow = OidcLogin(config(provider.issuer + "/realms/other"), b"k" * 32)
    with pytest.raises(SsoFailed):
        asyncio.run(flow.start("http://127.0.0.1:1/auth/oidc/callback"))


def test_an_unreachable_provider_is_a_clear_error():
    flow = OidcLogin(config("http://127.0.0.1:9"), b"k" * 32)
    with pytest.raises(SsoFailed, match="discovery document"):
        asyncio.run(flow.start("http://127.0.0.1:1/auth/oidc/callback"))


def test_the_state_cookie_is_signed_and_expires(provider):
    now = [time.time()]
    flow = OidcLogin(config(provider.issuer), b"k" * 32)
    start = asyncio.run(flow.start("http://koban.test/auth/oidc/callback", "/logs?q=x"))
    assert "code_challenge_method=S256" in start.provider_url and "nonce=" in start.provider_url
    assert "s3cret" not in start.provider_url
    other_server = OidcLogin(config(provider.issuer), b"other-key" * 4, now=lambda: now[0])
    state = dict(p.split("=", 1) for p in start.provider_url.split("?", 1)[1].split("&"))["state"]
    with pytest.raises(BadRequest, match="invalid or expired"):
        asyncio.run(other_server.finish({"state": state, "code": "c"}, start.state_cookie))
    with pytest.raises(BadRequest, match="invalid or expired"):
        asyncio.run(flow.finish({"state": state, "code": "c"}, start.state_cookie[:-2] + "xx"))


def test_the_provider_refusing_the_sign_in_is_reported(provider):
    flow = OidcLogin(config(provider.issuer), b"k" * 32)
    start = asyncio.run(flow.start("http://koban.test/auth/oidc/callback"))
    state = dict(p.split("=", 1) for p in start.provider_url.split("?", 1)[1].split("&"))["state"]
    with pytest.raises(BadRequest, match="access_denied"):
        asyncio.run(flow.finish({"state": state, "error": "access_denied"}, start.state_cookie))
    with pytest.raises(BadRequest, match="without a code"):
        asyncio.run(flow.finish({"state": state}, start.state_cookie))


@pytest.mark.parametrize(
    "claims,expected",
    [
        ({"groups": ["devs", "koban-admins"]}, "admin"),  # the strongest wins
        ({"groups": ["devs"]}, "editor"),
        ({"groups": "devs"}, "editor"),  # a single string
        ({"groups": ["contractors"]}, None),
        ({"groups": [{"not": "a string"}]}, None),
        ({}, None),
    ],
)
def test_roles_come_from_the_claim(claims, expected):
    assert map_role(claims, config("http://x")) == expected


def test_a_default_role_admits_the_unmapped_and_nested_claims_are_reached():
    assert map_role({"groups": ["contractors"]}, config("http://x", default_role="viewer")) == "viewer"
    keycloak = {"realm_access": {"roles": ["offline_access", "koban-admins"]}}
    assert claim_values(keycloak, "realm_access.roles") == ["offline_access", "koban-admins"]
    assert map_role(keycloak, config("http://x", role_claim="realm_access.roles")) == "admin"
    assert claim_values({"realm_access": "flat"}, "realm_access.roles") == []


def test_the_user_name_prefers_a_verified_email():
    assert user_name({"sub": "1", "email": "a@x", "preferred_username": "a"}) == "a@x"
    assert user_name({"sub": "1", "email": "a@x", "email_verified": False, "preferred_username": "a"}) == "a"
    assert user_name({"sub": "1"}) == "1"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example", "", None, "logs"])
def test_next_cannot_leave_the_site(target):
    assert safe_next(target) == "/"


def test_next_keeps_a_local_path():
    assert safe_next("/logs?q=service:web") == "/logs?q=service:web"


def test_the_role_map_setting_is_parsed_strictly():
    assert parse_role_map(" koban-admins=admin , devs=editor,") == {"koban-admins": "admin", "devs": "editor"}
    for bad in ("devs", "devs=root", "=admin"):
        with pytest.raises(ConfigError, match="oidc_role_map"):
            parse_role_map(bad)


@pytest.mark.parametrize(
    "flags,fragment",
    [
        ({"oidc_issuer": "https://idp.example"}, "oidc_client_id"),
        ({"oidc_issuer": "idp.example", "oidc_client_id": "k"}, "http(s) URL"),
        ({"oidc_default_role": "root"}, "oidc_default_role"),
        ({"oidc_issuer": "https://idp.example", "oidc_client_id": "k", "oidc_scopes": "email"}, "openid"),
    ],
)
def test_bad_sso_settings_stop_koban_with_a_message(flags, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_settings(flags, environ={})


def _through_provider(provider: OidcProvider, flow: OidcLogin) -> tuple[dict[str, str], str]:
    """A sign-in started by `flow` and approved by the provider: (callback query, state cookie)."""
    start = asyncio.run(flow.start("http://koban.test/auth/oidc/callback"))
    back = httpx.get(start.provider_url, timeout=10)
    query = {k: v[0] for k, v in parse_qs(urlparse(back.headers["location"]).query).items()}
    return query, start.state_cookie


def test_a_replayed_code_is_refused_by_the_provider_and_then_by_koban(provider):
    flow = OidcLogin(config(provider.issuer), b"k" * 32)
    query, cookie = _through_provider(provider, flow)
    signed_in = asyncio.run(flow.finish(query, cookie))
    assert (signed_in.user, signed_in.role) == ("alice@example.test", "admin")
    with pytest.raises(BadRequest, match="invalid_grant|refused the SSO code"):
        asyncio.run(flow.finish(query, cookie))


def test_a_wrong_client_secret_is_koban_misconfigured_not_the_users_fault(provider):
    flow = OidcLogin(config(provider.issuer, client_secret="wrong"), b"k" * 32)
    query, cookie = _through_provider(provider, flow)
    with pytest.raises(SsoFailed, match="401"):
        asyncio.run(flow.finish(query, cookie))


def test_the_redirect_uri_follows_public_url_when_set():
    behind_proxy = OidcLogin(config("http://x", public_url="https://koban.example.com"), b"k" * 32)
    assert behind_proxy.redirect_uri("http://10.0.0.5:7070/") == "https://koban.example.com/auth/oidc/callback"
    direct = OidcLogin(config("http://x"), b"k" * 32)
    assert direct.redirect_uri("http://127.0.0.1:7070/") == "http://127.0.0.1:7070/auth/oidc/callback"
