"""Single sign-on with OpenID Connect: the authorization code flow with PKCE.

`OidcLogin.start` makes the provider URL to send the browser to, and a signed,
short-lived state cookie holding what the callback needs (state, nonce, PKCE
verifier, redirect URI, where to go after). `OidcLogin.finish` takes the callback's
query and that cookie, checks the state, trades the code for tokens at the provider
(with the client secret and the PKCE verifier), validates the ID token (signature
against the issuer's JWKS, iss, aud, azp, exp, iat, nonce) and maps a claim to a koban
role. The web side (koban.api.sso) only moves these values in and out of HTTP.

Libraries do the security-sensitive parts: authlib builds the authorization URL and
the S256 challenge, joserfc verifies the JWT, itsdangerous signs the state cookie.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from itsdangerous import BadData, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from koban.errors import BadRequest, KobanError
from koban.settings import Settings, parse_role_map

log = logging.getLogger("koban.auth.oidc")

STATE_COOKIE = "koban_oidc"
STATE_MAX_AGE_S = 600
"""How long a sign-in may take at the provider before the callback is refused."""
CALLBACK_PATH = "/auth/oidc/callback"
LEEWAY_S = 60
"""Clock skew tolerated between koban and the provider on exp and iat."""
# asymmetric algorithms only: "none" and HS* (keyed with the client secret) are refused
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
DISCOVERY_TTL_S = 3600.0
HTTP_TIMEOUT_S = 10.0
ROLE_ORDER = ("viewer", "editor", "admin")


class SsoRefused(KobanError):
    """The provider vouched for the user, but koban will not let them in: no role maps."""

    status = 403


class SsoFailed(KobanError):
    """The provider could not be used: discovery, JWKS or the token exchange failed."""

    status = 502


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    role_claim: str
    role_map: Mapping[str, str]
    default_role: str
    public_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """The SSO configuration; None when `oidc_issuer` is not set (SSO off)."""
        if not settings.oidc_issuer:
            return None
        return cls(
            issuer=settings.oidc_issuer.rstrip("/"),
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            scopes=settings.oidc_scopes,
            role_claim=settings.oidc_role_claim,
            role_map=parse_role_map(settings.oidc_role_map),
            default_role=settings.oidc_default_role,
            public_url=settings.public_url.rstrip("/"),
        )


class LoginStart(NamedTuple):
    provider_url: str
    """Where to redirect the browser."""
    state_cookie: str
    """Value of the STATE_COOKIE to set (HttpOnly, SameSite=Lax, STATE_MAX_AGE_S)."""


class SignedIn(NamedTuple):
    user: str
    role: str
    redirect_to: str


class OidcLogin:
    """One provider's sign-in. Discovery and JWKS are fetched on first use and cached;
    the JWKS is fetched again when a token names a key it does not hold (rotation)."""

    def __init__(
        self,
        config: OidcConfig,
        secret_key: bytes,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._signer = URLSafeTimedSerializer(secret_key, salt="koban.oidc.state")
        self._transport = transport
        self._now = now
        self._discovery: dict[str, Any] | None = None
        self._discovered_at = 0.0
        self._keys: KeySet | None = None

    def redirect_uri(self, request_base_url: str) -> str:
        """The callback URL: under `public_url` when set, else under the request's base."""
        return (self.config.public_url or request_base_url.rstrip("/")) + CALLBACK_PATH

    async def start(self, redirect_uri: str, next_path: str = "/") -> LoginStart:
        """The provider URL and the state cookie for a new sign-in. Raises SsoFailed
        when discovery fails."""
        meta = await self._metadata()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        url = prepare_grant_uri(
            meta["authorization_endpoint"],
            client_id=self.config.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=self.config.scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        cookie = self._signer.dumps(
            {"s": state, "n": nonce, "v": verifier, "r": redirect_uri, "next": safe_next(next_path)}
        )
        return LoginStart(url, cookie)

    async def finish(self, params: Mapping[str, str], state_cookie: str | None) -> SignedIn:
        """The signed-in user from the callback's query `params` and the state cookie.

        Raises BadRequest (400) when the cookie is missing, forged or expired, the state
        does not match, the provider sent an error or no code, refuses the code as
        invalid (stale or replayed), or the ID token is invalid; SsoFailed (502) when the
        provider cannot be reached or refuses koban itself (a wrong client secret);
        SsoRefused (403) when no role maps and there is no default role.
        """
        pending = self._read_state(state_cookie)
        if not hmac.compare_digest(str(params.get("state", "")), pending["s"]):
            raise BadRequest("SSO sign-in refused: the state does not match this browser's sign-in; start again")
        if "error" in params:
            detail = str(params.get("error_description") or params["error"])[:300]
            raise BadRequest(f"SSO sign-in refused by the provider: {detail}")
        code = params.get("code")
        if not code:
            raise BadRequest("SSO callback without a code")
        tokens = await self._exchange(code, pending["v"], pending["r"])
        claims = await self.validate_id_token(tokens.get("id_token"), pending["n"])
        user = user_name(claims)
        role = map_role(claims, self.config)
        if role is None:
            raise SsoRefused(
                f"{user} signed in at the provider, but none of their {self.config.role_claim!r} values "
                f"({', '.join(claim_values(claims, self.config.role_claim)) or 'none'}) is in oidc_role_map "
                "and oidc_default_role is empty: ask an admin for access",
                user=user,
            )
        log.info("SSO sign-in: %s as %s", user, role)
        return SignedIn(user, role, pending["next"])

    def _read_state(self, state_cookie: str | None) -> dict[str, str]:
        if not state_cookie:
            raise BadRequest("SSO sign-in refused: no sign-in was started in this browser (state cookie missing)")
        try:
            data = self._signer.loads(state_cookie, max_age=STATE_MAX_AGE_S)
        except BadData:  # forged, expired (SignatureExpired) or unreadable
            raise BadRequest("SSO sign-in refused: the sign-in state is invalid or expired; start again") from None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("s", "n", "v", "r", "next")):
            raise BadRequest("SSO sign-in refused: the sign-in state is malformed; start again")
        return data

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        meta = await self._metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier, "client_id": self.config.client_id}
        auth = None
        if self.config.client_secret:
            methods = meta.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
            if "client_secret_basic" in methods or "client_secret_post" not in methods:
                # RFC 6749 2.3.1: both are form-encoded before they go into the Basic header
                auth = httpx.BasicAuth(quote(self.config.client_id, safe=""), quote(self.config.client_secret, safe=""))
            else:
                form["client_secret"] = self.config.client_secret
        try:
            async with self._http() as http:
                resp = await http.post(meta["token_endpoint"], data=form, auth=auth,
                                       headers={"Accept": "application/json"})
            body = resp.json()
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise SsoFailed(f"SSO token request to the provider failed: {exc}") from None
        if resp.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            detail = (body.get("error_description") or error) if isinstance(body, dict) else None
            message = f"the provider refused the SSO code ({resp.status_code}: {detail or 'no reason given'})"
            if error == "invalid_grant":  # a stale, reused or forged code: the browser's request, not koban's setup
                raise BadRequest(f"SSO sign-in refused: {message}; start again")
            raise SsoFailed(message)
        return body

    async def validate_id_token(self, id_token: object, nonce: str) -> dict[str, Any]:
        """The ID token's claims after checking its signature (JWKS) and iss, aud, azp,
        exp, iat and nonce. Raises BadRequest naming what failed."""
        if not isinstance(id_token, str) or not id_token:
            raise BadRequest("SSO sign-in refused: the provider returned no ID token (is 'openid' in oidc_scopes?)")
        meta = await self._metadata()
        offered = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        allowed = [a for a in offered if a in SIGNING_ALGORITHMS]
        if not allowed:
            raise SsoFailed(f"the provider signs ID tokens with {offered}; "
                            f"koban accepts only {', '.join(SIGNING_ALGORITHMS)}")
        keys = await self._key_set(refresh=False)
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=allowed)
            except InvalidKeyIdError:
                token = jwt.decode(id_token, await self._key_set(refresh=True), algorithms=allowed)  # keys rotated
            claims = dict(token.claims)
            jwt.JWTClaimsRegistry(
                now=lambda: int(self._now()),
                leeway=LEEWAY_S,
                iss={"essential": True, "value": meta["issuer"]},
                aud={"essential": True, "value": self.config.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(claims)
        except ExpiredTokenError:
            raise BadRequest("SSO sign-in refused: the ID token has expired") from None
        except (JoseError, ValueError) as exc:
            raise BadRequest(f"SSO sign-in refused: the ID token is invalid ({_jose_reason(exc)})") from None
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.config.client_id:
            raise BadRequest("SSO sign-in refused: the ID token is invalid (azp is not this client)")
        return claims

    async def _metadata(self) -> dict[str, Any]:
        if self._discovery is not None and self._now() - self._discovered_at < DISCOVERY_TTL_S:
            return self._discovery
        url = self.config.issuer + "/.well-known/openid-configuration"
        meta = await self._get_json(url, "discovery document")
        missing = [k for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
                   if not str(meta.get(k) or "").startswith(("https://", "http://"))]
        if missing:
            raise SsoFailed(f"the provider's discovery document {url} lacks a URL for {', '.join(missing)}")
        if str(meta["issuer"]).rstrip("/") != self.config.issuer:
            # OpenID Connect Discovery 4.3: the document must name the issuer it was fetched from
            raise SsoFailed(f"the provider's discovery document names issuer {meta['issuer']!r}, "
                            f"not oidc_issuer {self.config.issuer!r}")
        self._discovery, self._discovered_at, self._keys = meta, self._now(), None
        return meta

    async def _key_set(self, *, refresh: bool) -> KeySet:
        if self._keys is None or refresh:
            meta = await self._metadata()
            jwks = await self._get_json(meta["jwks_uri"], "JWKS")
            self._keys = _import_signing_keys(jwks)
        return self._keys

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http() as http:
                resp = await http.get(url, headers={"Accept": "application/json"})
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise SsoFailed(f"cannot read the SSO provider's {what} at {url}: {exc}") from None
        if not isinstance(body, dict):
            raise SsoFailed(f"the SSO provider's {what} at {url} is not a JSON object")
        return body

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, transport=self._transport)


def _import_signing_keys(jwks: Mapping[str, Any]) -> KeySet:
    """The signature keys of a JWKS; keys of a type joserfc does not know, or marked
    for encryption, are skipped rather than failing every sign-in."""
    keys = []
    for entry in jwks.get("keys", []) if isinstance(jwks.get("keys"), list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            keys.append(KeySet.import_key_set({"keys": [entry]}).keys[0])
        except (JoseError, ValueError, TypeError, KeyError):
            log.warning("skipping a JWKS key koban cannot use: kty=%r kid=%r", entry.get("kty"), entry.get("kid"))
    if not keys:
        raise SsoFailed("the SSO provider's JWKS holds no signature key koban can use")
    return KeySet(keys)


def _jose_reason(exc: Exception) -> str:
    claim = getattr(exc, "claim", None)
    if claim:
        return f"claim {claim!r} is wrong or missing"
    return getattr(exc, "description", None) or getattr(exc, "error", None) or type(exc).__name__


def claim_values(claims: Mapping[str, Any], path: str) -> list[str]:
    """The strings at claim `path` ("groups", or dotted "realm_access.roles"); a single
    string counts as one value; anything else yields []."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def map_role(claims: Mapping[str, Any], config: OidcConfig) -> str | None:
    """The strongest role that `config.role_map` gives the claim's values; else the
    default role; None when neither (refuse the user)."""
    roles = {config.role_map[v] for v in claim_values(claims, config.role_claim) if v in config.role_map}
    for role in reversed(ROLE_ORDER):
        if role in roles:
            return role
    return config.default_role or None


def user_name(claims: Mapping[str, Any]) -> str:
    """Who signed in, as koban shows them: a verified email, else preferred_username,
    else the provider's subject id."""
    email = claims.get("email")
    if isinstance(email, str) and email and claims.get("email_verified", True) is not False:
        return email
    name = claims.get("preferred_username")
    if isinstance(name, str) and name:
        return name
    return str(claims["sub"])


def safe_next(path: str | None) -> str:
    """`path` when it is a path on this server; "/" otherwise, so the login link cannot
    be made to redirect somewhere else ("//evil.example", "https://...", "/\\evil")."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path
