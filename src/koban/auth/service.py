"""What the server holds for auth: the account store and the session signer."""

from __future__ import annotations

from pathlib import Path

from koban.api.access import INGEST
from koban.auth import policy
from koban.auth.accounts import AccountStore
from koban.auth.credentials import presented_secret
from koban.auth.principal import Principal
from koban.auth.secret_key import load_secret_key
from koban.auth.sessions import Session, SessionSigner
from koban.errors import ConfigError


class AuthService:
    """Turns what a request presents (a key, a token, a session cookie) into a Principal."""

    def __init__(self, accounts: AccountStore, signer: SessionSigner) -> None:
        self.accounts = accounts
        self.signer = signer

    @classmethod
    def open(cls, settings) -> AuthService:
        """The account store and signing key under `settings.data_dir`. Raises ConfigError
        when they cannot be opened."""
        data = Path(settings.data_dir)
        try:
            accounts = AccountStore.open(data)
            key = load_secret_key(settings.secret_key, data)
        except OSError as exc:
            raise ConfigError(f"cannot open the account store in {data}: {exc}") from None
        return cls(accounts, SessionSigner(key, settings.session_max_age_s))

    def close(self) -> None:
        self.accounts.close()

    def principal_for_secret(self, secret: str) -> Principal | None:
        """The owner of ingest key or API token `secret`; None when unknown or revoked."""
        return self.accounts.principal_for_secret(secret)

    def principal_for_cookie(self, cookie: str) -> tuple[Principal, Session] | None:
        """The signed-in user of session cookie `cookie`, with the session; None when
        the cookie is forged or expired, or its password user was deleted. A password
        user's role is read from the store on every request, so a change applies at once."""
        session = self.signer.read(cookie)
        if session is None:
            return None
        role = session.role
        if session.kind == "password":
            role = self.accounts.user_role(session.user)
            if role is None:
                return None
        return Principal(session.user, role, "session"), session

    def ingest_verdict(self, header) -> str:
        """policy.ALLOW, UNAUTHENTICATED or FORBIDDEN for a request to send telemetry
        whose headers (or gRPC metadata) `header(name)` returns: for listeners outside
        the HTTP app (gRPC, and later the Datadog agent port)."""
        secret = presented_secret(header)
        principal = self.principal_for_secret(secret) if secret is not None else None
        return policy.decide(INGEST, principal)
