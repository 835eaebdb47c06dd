"""Signed session cookies and the CSRF token tied to each session.

A session is the cookie itself: user, role, how they signed in and a random nonce,
signed with the server's secret key (itsdangerous, HMAC-SHA1 over a timestamped
payload) and refused once older than `session_max_age_s`. Nothing is stored on the
server; signing out deletes the cookie. The CSRF token is an HMAC of the nonce, so it
belongs to one session and cannot be derived without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, NamedTuple

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "koban_session"
CSRF_FIELD = "csrf_token"
"""The hidden form field carrying the CSRF token."""
CSRF_HEADER = "x-csrf-token"
"""The header carrying the CSRF token on a JSON call."""


class Session(NamedTuple):
    user: str
    role: str
    kind: str
    """"password" (checked against the account store on every request) or "sso"."""
    nonce: str


class SessionSigner:
    """Issues and reads session cookie values with one secret key."""

    def __init__(self, secret_key: bytes, max_age_s: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="koban.session")
        self._csrf_key = hmac.new(secret_key, b"koban.csrf", hashlib.sha256).digest()
        self.max_age_s = max_age_s

    def issue(self, user: str, role: str, kind: str = "password") -> str:
        """A new cookie value for `user` with `role`."""
        return self._serializer.dumps({"u": user, "r": role, "k": kind, "n": secrets.token_urlsafe(16)})

    def read(self, value: str) -> Session | None:
        """The session in cookie `value`; None when it is forged, malformed or expired."""
        try:
            data: Any = self._serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict):
            return None
        fields = [data.get(k) for k in ("u", "r", "k", "n")]
        if not all(isinstance(f, str) and f for f in fields):
            return None
        return Session(*fields)

    def csrf_token(self, session: Session) -> str:
        """The CSRF token forms and JSON calls of `session` must send back."""
        return hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        """True when `token` is `session`'s CSRF token (compared in constant time)."""
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token)


def login_response(request, *, user: str, role: str, redirect_to: str = "/"):
    """A 303 redirect to `redirect_to` that starts a session for `user` with `role`
    (one of viewer, editor, admin; ValueError otherwise). For sign-ins that koban did
    not check itself (OpenID Connect): the role is taken as given, not looked up in
    the account store. `redirect_to` must be a local path; anything else goes to "/".
    """
    # the web layer builds the response: only koban.api imports the framework
    from koban.api.auth import session_redirect

    return session_redirect(request, user=user, role=role, redirect_to=redirect_to, kind="sso")
