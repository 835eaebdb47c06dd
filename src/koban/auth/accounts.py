"""The account store: users, ingest keys and API tokens in `data_dir/auth.sqlite3`.

Kept apart from the telemetry store so it works whatever the store is (DuckDB or
ClickHouse) and so `koban admin` can change it while the server runs: SQLite in WAL
mode lets the CLI write while the server reads, and every lookup reads the file, so a
revoked key stops working at once. Passwords are argon2 hashes; keys and tokens are
stored as SHA-256 digests and shown once, when created.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import NamedTuple

from koban.auth import keys, passwords
from koban.auth.principal import INGEST_ROLE, Principal, check_role
from koban.errors import BadRequest, ConfigError, KobanError

FILE_NAME = "auth.sqlite3"
PASSWORD_CHECKS_AT_ONCE = 2
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,          -- 'ingest_key' or 'token'
    role TEXT NOT NULL,          -- 'ingest' for keys, a user role for tokens
    digest TEXT NOT NULL UNIQUE, -- sha256 of the secret
    shown TEXT NOT NULL,         -- its first characters, for listings
    created_s REAL NOT NULL
);
"""


class AccountExists(KobanError):
    """A user, key or token with that name already exists."""

    status = 409


class AccountRecord(NamedTuple):
    """One row of `koban admin list` / `GET /api/admin/users`."""

    kind: str  # 'user', 'ingest_key' or 'token'
    name: str
    role: str
    shown: str  # start of the key or token; '' for users
    created_s: float


def check_name(name: str) -> str:
    """`name` when it is 1-64 letters, digits and `._@+-`; raises BadRequest otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequest(f"a name must be 1-64 letters, digits or ._@+- starting with a letter or digit, got {name!r}")
    return name


class AccountStore:
    """Users and credentials in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # argon2 takes 64 MiB per check: a flood of sign-ins must not take the memory
        self._password_slots = threading.BoundedSemaphore(PASSWORD_CHECKS_AT_ONCE)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        path.chmod(0o600)

    @classmethod
    def open(cls, data_dir: Path) -> AccountStore:
        return cls(data_dir / FILE_NAME)

    @classmethod
    def open_in(cls, data_dir: str) -> AccountStore:
        """The account store in `data_dir` (created when missing), for `koban admin`;
        safe to use while a server runs on the same directory. Raises ConfigError."""
        data = Path(data_dir)
        try:
            data.mkdir(parents=True, exist_ok=True)
            return cls.open(data)
        except OSError as exc:
            raise ConfigError(f"cannot open the account store in {data}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _insert(self, sql: str, params: tuple, what: str) -> None:
        try:
            self._run(sql, params)
        except sqlite3.IntegrityError:
            raise AccountExists(f"{what} already exists") from None

    # users

    def create_user(self, name: str, role: str, password: str) -> None:
        """Add a user. Raises BadRequest (bad name, role or short password) or AccountExists."""
        check_name(name)
        try:
            check_role(role)
            password_hash = passwords.hash_password(password)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        self._insert("INSERT INTO users VALUES (?, ?, ?, ?)", (name, role, password_hash, time.time()),
                     f"user {name!r}")

    def delete_user(self, name: str) -> bool:
        """Remove a user; False when there was none. Their sessions end at their next request."""
        return bool(self._run("DELETE FROM users WHERE name = ? RETURNING name", (name,)))

    def user_role(self, name: str) -> str | None:
        """The role of user `name`; None when there is no such user."""
        rows = self._run("SELECT role FROM users WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def password_hash(self, name: str) -> tuple[str, str] | None:
        """(argon2 hash, role) of user `name`; None when there is no such user."""
        rows = self._run("SELECT password_hash, role FROM users WHERE name = ?", (name,))
        return (rows[0][0], rows[0][1]) if rows else None

    def check_password(self, name: str, password: str) -> str | None:
        """The user's role when `password` is theirs; None otherwise (same time either way).
        Slow on purpose (argon2): call it from a worker thread."""
        found = self.password_hash(name)
        with self._password_slots:
            ok = passwords.verify_password(found[0] if found else None, password)
        return found[1] if ok and found else None

    def has_admin(self) -> bool:
        return bool(self._run("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1"))

    # ingest keys and API tokens

    def create_ingest_key(self, name: str) -> str:
        """A new ingest key called `name`; the secret is returned once and never stored."""
        return self._create_credential(name, "ingest_key", INGEST_ROLE, keys.INGEST_KEY_PREFIX)

    def create_token(self, name: str, role: str) -> str:
        """A new API token called `name` acting with `role`; returned once."""
        try:
            check_role(role)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return self._create_credential(name, "token", role, keys.API_TOKEN_PREFIX)

    def _create_credential(self, name: str, kind: str, role: str, prefix: str) -> str:
        check_name(name)
        secret = keys.new_secret(prefix)
        self._insert("INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?)",
                     (name, kind, role, keys.digest(secret), keys.shown_part(secret), time.time()),
                     f"a key or token named {name!r}")
        return secret

    def revoke(self, name: str) -> bool:
        """Delete the key or token called `name`; False when there was none."""
        return bool(self._run("DELETE FROM credentials WHERE name = ? RETURNING name", (name,)))

    def principal_for_secret(self, secret: str) -> Principal | None:
        """Who presents `secret` (an ingest key or API token); None when it is unknown
        or revoked."""
        if not secret.startswith((keys.INGEST_KEY_PREFIX, keys.API_TOKEN_PREFIX)) or len(secret) > 256:
            return None
        rows = self._run("SELECT name, kind, role FROM credentials WHERE digest = ?", (keys.digest(secret),))
        if not rows:
            return None
        name, kind, role = rows[0]
        return Principal(name, role, kind)

    def list(self) -> list[AccountRecord]:
        """Every user, then every key and token, by name."""
        users = self._run("SELECT name, role, created_s FROM users ORDER BY name")
        creds = self._run("SELECT kind, name, role, shown, created_s FROM credentials ORDER BY kind, name")
        return [AccountRecord("user", n, r, "", c) for n, r, c in users] + [AccountRecord(*row) for row in creds]

