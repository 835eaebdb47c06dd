"""The HTTP side of auth: the access-checking middleware, the login page, sign-out.

`AuthMiddleware` is a pure ASGI middleware. For every request it finds the route the
request matches, reads the route's level (koban.api.access) and lets the request in
only with a credential that level accepts (koban.auth.policy), setting
`request.state.principal` (None for an anonymous caller of a PUBLIC route). With
`auth` off everyone is the anonymous admin. A request that a session cookie
authenticates must also carry the session's CSRF token when it changes something (any
method but GET/HEAD/OPTIONS): in the `X-CSRF-Token` header or the `csrf_token` form
field. Keys and tokens need none: a browser never sends them by itself.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import parse_qs, quote

import anyio
import jinja2
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from koban.api.access import PUBLIC, route_access
from koban.api.errors import error_response
from koban.auth import policy
from koban.auth.credentials import presented_secret
from koban.auth.principal import ANONYMOUS, Principal, check_role
from koban.auth.sessions import COOKIE_NAME, CSRF_FIELD, CSRF_HEADER, Session
from koban.ui.pages import HERE as UI_DIR

log = logging.getLogger("koban.auth")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_CSRF_COOKIE = "koban_login"
CSRF_MISSING = "csrf"
"""The verdict for a cookie-authenticated change without its session's CSRF token."""
_API_PREFIXES = ("/api/", "/v1/")
_FORM_TYPE = "application/x-www-form-urlencoded"
_MAX_FORM_BYTES = 64 * 1024

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(UI_DIR / "templates")), autoescape=True, undefined=jinja2.StrictUndefined
)


def matched_route(routes: list[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route that will handle `scope`: the first full match, else the first partial
    one (right path, wrong method: it answers 405). None when no route matches (404)."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return partial


def authenticate(auth, headers: Headers, cookies: dict[str, str]) -> tuple[Principal | None, Session | None]:
    """Who the request is: a key or token it presents wins over a session cookie.
    (None, None) when it presents nothing valid."""
    secret = presented_secret(headers.get)
    if secret is not None:
        return auth.principal_for_secret(secret), None
    cookie = cookies.get(COOKIE_NAME)
    if cookie:
        found = auth.principal_for_cookie(cookie)
        if found is not None:
            return found
    return None, None


def _is_page(path: str) -> bool:
    return not path.startswith(_API_PREFIXES) and path != "/metrics"


class AuthMiddleware:
    """Refuses every request whose route level its credential does not meet."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        state = scope.setdefault("state", {})
        if not runtime.settings.auth:
            state["principal"] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        route = matched_route(scope["app"].routes, scope)
        if route is None:  # no such path: the router answers 404
            state["principal"] = None
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        level = route_access(route)
        principal, session = authenticate(runtime.auth, request.headers, request.cookies)
        verdict = policy.decide(level, principal)
        if verdict == policy.ALLOW and session is not None and level != PUBLIC and scope["type"] == "http":
            verdict, receive = await _check_csrf(runtime.auth.signer, session, request, receive)
        if verdict != policy.ALLOW:
            await _refuse(scope, receive, send, request, verdict, level)
            return
        state["principal"] = principal
        if session is not None:
            state["csrf_token"] = runtime.auth.signer.csrf_token(session)
        await self.app(scope, receive, send)


async def _check_csrf(signer, session: Session, request: Request, receive: Receive) -> tuple[str, Receive]:
    """(verdict, receive to pass on) for a cookie-authenticated request. A form body is
    read here to find its token, and replayed to the route."""
    if request.method in SAFE_METHODS:
        return policy.ALLOW, receive
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").split(";")[0].strip().lower() == _FORM_TYPE:
        body = await _read_body(receive)
        token = (parse_qs(body.decode("latin-1")).get(CSRF_FIELD) or [None])[0]
        receive = _replay(body, receive)
    return (policy.ALLOW if signer.csrf_ok(session, token) else CSRF_MISSING), receive


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_FORM_BYTES:  # no form of ours is this big: look no further for a token
            return b""
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then waits on the real one (for disconnect)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(scope: Scope, receive: Receive, send: Send, request: Request, verdict: str, level) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    path = request.url.path
    if verdict == policy.UNAUTHENTICATED and _is_page(path):
        target = path + (f"?{request.url.query}" if request.url.query else "")
        response: Response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    else:
        if verdict == policy.UNAUTHENTICATED:
            exc: Exception = policy.Unauthenticated(
                "sign in, or send an API token or ingest key as 'Authorization: Bearer <key>'"
            )
        elif verdict == CSRF_MISSING:
            exc = policy.Forbidden(f"missing or wrong CSRF token: send it in the {CSRF_HEADER} header "
                                   f"or the {CSRF_FIELD} form field")
        elif level is None:
            log.error("refused %s %s: its route has no access level (api/routes.py)", request.method, path)
            exc = policy.Forbidden("this route has no access level; refused")
        else:
            exc = policy.Forbidden(f"this needs the {level} level, which your credential does not have")
        response = await error_response(request, exc)
        if verdict == policy.UNAUTHENTICATED:
            response.headers["WWW-Authenticate"] = 'Bearer realm="koban"'
    await response(scope, receive, send)


# sessions


def safe_redirect_target(target: str | None) -> str:
    """`target` when it is a path on this site; "/" otherwise (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(c in target for c in "\r\n"):
        return "/"
    return target


def session_redirect(request: Request, *, user: str, role: str, redirect_to: str = "/", kind: str = "password"):
    """A 303 to `redirect_to` setting a new session cookie for `user` with `role`
    (ValueError for an unknown role). The cookie is HttpOnly, SameSite=Lax, and Secure
    when the request came over https."""
    check_role(role)
    auth = request.app.state.runtime.auth
    response = RedirectResponse(safe_redirect_target(redirect_to), status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        auth.signer.issue(user, role, kind),
        max_age=int(auth.signer.max_age_s),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


# the login page

_NO_STORE = {"Cache-Control": "no-store"}


def _login_page(request: Request, *, error: str = "", status: int = 200) -> Response:
    runtime = request.app.state.runtime
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(16)
    html = _templates.get_template("login.html").render(
        title="Sign in",
        error=error,
        next=safe_redirect_target(request.query_params.get("next")),
        login_token=token,
        csrf_field=CSRF_FIELD,
        sso=bool(runtime.settings.oidc_issuer),
        auth_on=runtime.settings.auth,
    )
    response = HTMLResponse(html, status_code=status, headers=_NO_STORE)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, path="/login", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


async def login_form(request: Request) -> Response:
    """GET /login: the sign-in form."""
    return _login_page(request)


async def login(request: Request) -> Response:
    """POST /login: check the user's password; on success a session and a 303 to `next`."""
    form = parse_qs((await request.body())[:_MAX_FORM_BYTES].decode("utf-8", "replace"))
    field = lambda name: (form.get(name) or [""])[0]  # noqa: E731
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, field(CSRF_FIELD)):
        return _login_page(request, error="The form expired; please try again.", status=403)
    user, password = field("username"), field("password")
    accounts = request.app.state.runtime.auth.accounts
    # argon2 is slow on purpose: verify off the event loop
    role = await anyio.to_thread.run_sync(accounts.check_password, user, password) if user and password else None
    if role is None:
        log.warning("failed sign-in for %r from %s", user[:64], request.client.host if request.client else "?")
        return _login_page(request, error="Wrong user name or password.", status=401)
    log.info("%s signed in", user)
    return session_redirect(request, user=user, role=role, redirect_to=field("next") or "/")


async def logout_form(request: Request) -> Response:
    """GET /logout: a button that posts the sign-out (a GET must not change state)."""
    html = _templates.get_template("logout.html").render(
        title="Sign out", csrf_field=CSRF_FIELD, csrf_token=getattr(request.state, "csrf_token", "")
    )
    return HTMLResponse(html, headers=_NO_STORE)


async def logout(request: Request) -> Response:
    """POST /logout: end the session (CSRF-checked by the middleware) and go to /login."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax")
    return response


async def whoami(request: Request) -> Response:
    """GET /api/auth/me: the caller, and the CSRF token its page scripts must send."""
    principal = request.state.principal
    return JSONResponse({
        "name": principal.name,
        "role": principal.role,
        "via": principal.via,
        "csrf_token": getattr(request.state, "csrf_token", None),
    })
