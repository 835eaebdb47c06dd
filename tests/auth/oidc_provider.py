"""A real OpenID Connect provider for tests, built on authlib's authorization server.

It serves discovery, JWKS, authorize and token on a free loopback port from a thread,
like a small Keycloak with one client:

- authorize auto-approves `provider.user` (one of `USERS`, with its `groups` claim) and
  refuses a request without a PKCE S256 `code_challenge` (PKCE required, as a strict
  provider is configured);
- token checks the client secret (client_secret_basic or _post) and the PKCE verifier
  (authlib's CodeChallenge), and signs the ID token with RS256 under a key in the JWKS;
- `tamper_id_token = True` changes the ID token's payload after signing, so a relying
  party that checks signatures must refuse it.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import WSGIRequestHandler, make_server

USERS: dict[str, dict[str, Any]] = {
    "alice": {"sub": "u-alice", "email": "alice@example.test", "groups": ["koban-admins", "staff"]},
    "dave": {"sub": "u-dave", "email": "dave@example.test", "groups": ["devs"]},
    "mallory": {"sub": "u-mallory", "email": "mallory@example.test", "groups": ["contractors"]},
    "nogroups": {"sub": "u-nogroups", "email": "nogroups@example.test"},
}


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)  # empty: any (the test does not know koban's port first)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "email", "profile"}
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return not self.redirect_uris or redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class OidcProvider:
    """The provider; `start()` serves it on 127.0.0.1 and returns self; `issuer` is its URL."""

    def __init__(self, client_id: str = "koban", client_secret: str = "s3cret") -> None:
        self.client = Client(client_id, client_secret)
        self.user = "alice"
        self.tamper_id_token = False
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "use": "sig", "alg": "RS256"})
        self.codes: dict[str, Code] = {}
        self.token_requests: list[dict[str, str]] = []
        self._server = make_server("127.0.0.1", 0, self._build_app(), threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-provider", daemon=True)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OidcProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.key]).as_dict(private=False)

    def _build_app(self) -> Flask:
        app = Flask("oidc-provider")
        server = AuthorizationServer(app, query_client=self._query_client, save_token=lambda token, req: None)
        grant = type("CodeGrant", (_CodeGrant,), {"provider": self})
        server.register_grant(grant, [_OpenIDCode(self), CodeChallenge(required=True)])

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(
                issuer=self.issuer,
                authorization_endpoint=self.issuer + "/authorize",
                token_endpoint=self.issuer + "/token",
                jwks_uri=self.issuer + "/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                scopes_supported=["openid", "email", "profile"],
                token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
                code_challenge_methods_supported=["S256"],
                claims_supported=["sub", "email", "groups"],
            )

        @app.get("/jwks")
        def jwks():
            return jsonify(self.jwks())

        @app.get("/authorize")
        def authorize():
            if request.args.get("code_challenge_method") != "S256" or not request.args.get("code_challenge"):
                return jsonify(error="invalid_request", error_description="PKCE with S256 is required"), 400
            try:
                grant = server.get_consent_grant(end_user=self.user)
            except OAuth2Error as error:
                return server.handle_error_response(None, error)
            return server.create_authorization_response(grant_user=self.user, grant=grant)

        @app.post("/token")
        def token():
            self.token_requests.append(dict(request.form))
            response = server.create_token_response()
            if self.tamper_id_token and response.status_code == 200:
                body = response.get_json()
                body["id_token"] = _tamper(body["id_token"])
                response.set_data(json.dumps(body))
            return response

        return app

    def _query_client(self, client_id: str) -> Client | None:
        return self.client if client_id == self.client.client_id else None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:  # no access log in test output
        pass


def _tamper(id_token: str) -> str:
    """The same token with its payload changed (groups widened) and the old signature."""
    header, payload, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["koban-admins"]
    claims["email"] = "someone-else@example.test"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


class _CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    provider: OidcProvider  # set on the per-provider subclass (authlib instantiates grants per request)

    def save_authorization_code(self, code: str, request) -> None:
        data = request.payload.data
        self.provider.codes[code] = Code(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.payload.scope,
            user=request.user,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            auth_time=int(time.time()),
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        found = self.provider.codes.get(code)
        return found if found and found.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        self.provider.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> str:
        return authorization_code.user

    def generate_authorization_code(self) -> str:
        return generate_token(40)


class _OpenIDCode(OpenIDCode):
    def __init__(self, provider: OidcProvider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce: str, request) -> bool:
        return any(c.nonce == nonce for c in self.provider.codes.values())

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return self.provider.key

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.provider.key.kid}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        return {"iss": self.provider.issuer, "aud": [client.get_client_id()], "exp": int(time.time()) + 300}

    def generate_user_info(self, user: str, scope: str) -> UserInfo:
        profile = USERS[user]
        info = UserInfo(sub=profile["sub"], preferred_username=user)
        if "email" in scope:
            info["email"] = profile["email"]
            info["email_verified"] = True
        if "groups" in profile:
            info["groups"] = profile["groups"]
        return info
