"""Signed session cookies and their CSRF tokens."""

from __future__ import annotations

from koban.auth.sessions import SessionSigner

KEY = b"k" * 32


def test_a_session_round_trips_and_a_tampered_one_is_refused():
    signer = SessionSigner(KEY, max_age_s=3600)
    value = signer.issue("alice", "admin")
    session = signer.read(value)
    assert (session.user, session.role, session.kind) == ("alice", "admin", "password")
    payload, _, rest = value.partition(".")
    assert signer.read(payload[:-2] + "xx." + rest) is None
    assert signer.read("garbage") is None
    assert signer.read("") is None


def test_another_key_cannot_read_or_forge_a_session():
    value = SessionSigner(b"other key" * 4, max_age_s=3600).issue("mallory", "admin")
    assert SessionSigner(KEY, max_age_s=3600).read(value) is None


def test_an_expired_session_is_refused():
    value = SessionSigner(KEY, max_age_s=3600).issue("alice", "admin")
    assert SessionSigner(KEY, max_age_s=-1).read(value) is None  # max age passed


def test_the_csrf_token_belongs_to_one_session():
    signer = SessionSigner(KEY, max_age_s=3600)
    first = signer.read(signer.issue("alice", "admin"))
    second = signer.read(signer.issue("alice", "admin"))
    token = signer.csrf_token(first)
    assert signer.csrf_ok(first, token)
    assert not signer.csrf_ok(second, token)
    assert not signer.csrf_ok(first, None)
    assert not signer.csrf_ok(first, "")
    assert token not in signer.issue("alice", "admin")
