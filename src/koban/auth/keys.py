"""Ingest keys and API tokens: random secrets with a visible prefix, stored as a hash.

A key is `kbi_` (ingest) or `kbt_` (API token) followed by 32 random bytes in
URL-safe base64. The prefix makes a leaked one recognisable (secret scanners, log
scrubbing); the store keeps only its SHA-256, which is enough for a random 256-bit
secret (no salt or slow KDF needed: there is nothing to guess).
"""

from __future__ import annotations

import hashlib
import secrets

INGEST_KEY_PREFIX = "kbi_"
API_TOKEN_PREFIX = "kbt_"
SHOWN_CHARS = 10
"""How much of a key is kept in clear to tell keys apart in listings (prefix + 6)."""


def new_secret(prefix: str) -> str:
    """A fresh secret with `prefix`."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """The SHA-256 (hex) under which a secret is stored and looked up."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def shown_part(secret: str) -> str:
    """The start of a secret, safe to list (`kbi_AbC123…`)."""
    return secret[:SHOWN_CHARS] + "…"
