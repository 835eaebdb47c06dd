"""Password hashing with argon2id (argon2-cffi's defaults: RFC 9106 low-memory profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# verified when the user does not exist, so a missing user costs the same time as a wrong password
_DUMMY_HASH = _hasher.hash("koban: no such user")

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    """The argon2id hash of `password` (salt and parameters inside). Raises ValueError
    when the password is shorter than MIN_PASSWORD_LENGTH."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password must be at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches `password_hash`; a None hash (no such user) is
    checked against a dummy so that it takes as long and returns False."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
