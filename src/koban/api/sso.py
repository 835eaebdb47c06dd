"""The HTTP side of single sign-on: /auth/oidc/login and /auth/oidc/callback.

The flow itself is koban.auth.oidc (free of the web framework); these handlers move
its values in and out of HTTP: the state cookie, the redirects, and the session that
koban.auth.sessions.login_response starts once the provider has vouched for the user.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from koban.api.errors import error_response
from koban.auth.oidc import STATE_COOKIE, STATE_MAX_AGE_S, OidcConfig, OidcLogin
from koban.auth.secret_key import load_secret_key
from koban.auth.sessions import login_response
from koban.errors import KobanError, NotFound

log = logging.getLogger("koban.auth.oidc")

COOKIE_PATH = "/auth/oidc"  # the state cookie goes only to these two routes


class SingleSignOn:
    """One per app: it caches the provider's discovery document and keys."""

    def __init__(self) -> None:
        self._flow: OidcLogin | None = None

    def flow(self, request: Request) -> OidcLogin:
        """The app's OIDC flow, built on first use. Raises NotFound when SSO is off."""
        if self._flow is None:
            settings = request.app.state.runtime.settings
            config = OidcConfig.from_settings(settings)
            if config is None:
                raise NotFound("single sign-on is not configured on this server (oidc_issuer)")
            # the key that signs sessions (made by the auth service at start) also signs the state
            self._flow = OidcLogin(config, load_secret_key(settings.secret_key, settings.data_path))
        return self._flow

    async def login(self, request: Request) -> Response:
        """GET /auth/oidc/login?next=/path: to the provider, with a fresh state cookie."""
        flow = self.flow(request)
        start = await flow.start(flow.redirect_uri(str(request.base_url)), request.query_params.get("next", "/"))
        response = RedirectResponse(start.provider_url, status_code=302, headers={"Cache-Control": "no-store"})
        response.set_cookie(STATE_COOKIE, start.state_cookie, max_age=STATE_MAX_AGE_S, path=COOKIE_PATH,
                            httponly=True, samesite="lax", secure=_is_https(request, flow))
        return response

    async def callback(self, request: Request) -> Response:
        """GET /auth/oidc/callback?code&state: a session and a redirect to `next`, or a
        4xx/502 saying why not (koban.auth.oidc.OidcLogin.finish)."""
        try:
            signed_in = await self.flow(request).finish(request.query_params, request.cookies.get(STATE_COOKIE))
            response = login_response(request, user=signed_in.user, role=signed_in.role,
                                      redirect_to=signed_in.redirect_to)
        except KobanError as exc:
            client = request.client.host if request.client else "?"
            log.warning("SSO sign-in from %s failed (%d): %s", client, exc.status, exc.message)  # an audit trail
            response = await error_response(request, exc)
        # the state is good for one callback, whatever its outcome
        response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax")
        return response


def _is_https(request: Request, flow: OidcLogin) -> bool:
    """Whether the browser reaches koban over https: directly, or through a TLS proxy
    that `public_url` names (the request itself then looks like plain http)."""
    return request.url.scheme == "https" or flow.config.public_url.startswith("https://")
