"""The account store: argon2 passwords, keys and tokens stored hashed and shown once."""

from __future__ import annotations

import sqlite3

import pytest

from koban.auth import keys, passwords
from koban.auth.accounts import AccountExists, AccountStore
from koban.auth.principal import Principal
from koban.errors import BadRequest


@pytest.fixture
def accounts(tmp_path):
    store = AccountStore.open(tmp_path)
    yield store
    store.close()


def test_a_password_is_stored_as_an_argon2id_hash_and_checked(accounts, tmp_path):
    accounts.create_user("alice", "admin", "correct horse")
    raw = sqlite3.connect(tmp_path / "auth.sqlite3").execute("SELECT password_hash FROM users").fetchone()[0]
    assert raw.startswith("$argon2id$") and "correct horse" not in raw
    assert accounts.check_password("alice", "correct horse") == "admin"
    assert accounts.check_password("alice", "correct horsE") is None
    assert accounts.check_password("nobody", "correct horse") is None


def test_short_passwords_unknown_roles_and_odd_names_are_refused(accounts):
    with pytest.raises(BadRequest, match="at least 8"):
        accounts.create_user("bob", "viewer", "short")
    with pytest.raises(BadRequest, match="role must be one of viewer, editor, admin"):
        accounts.create_user("bob", "root", "long enough")
    with pytest.raises(BadRequest, match="a name must be"):
        accounts.create_user("bob smith", "viewer", "long enough")
    with pytest.raises(BadRequest, match="a name must be"):
        accounts.create_ingest_key("")


def test_a_name_is_taken_only_once(accounts):
    accounts.create_user("alice", "viewer", "long enough")
    with pytest.raises(AccountExists):
        accounts.create_user("alice", "admin", "long enough")
    accounts.create_ingest_key("ci")
    with pytest.raises(AccountExists):
        accounts.create_token("ci", "viewer")


def test_keys_and_tokens_have_a_visible_prefix_and_only_their_hash_is_kept(accounts, tmp_path):
    key = accounts.create_ingest_key("ci")
    token = accounts.create_token("grafana", "viewer")
    assert key.startswith("kbi_") and token.startswith("kbt_") and len(key) > 40
    dump = "\n".join(sqlite3.connect(tmp_path / "auth.sqlite3").iterdump())
    assert key not in dump and token not in dump
    assert keys.digest(key) in dump
    assert accounts.principal_for_secret(key) == Principal("ci", "ingest", "ingest_key")
    assert accounts.principal_for_secret(token) == Principal("grafana", "viewer", "token")


def test_an_unknown_tampered_or_revoked_secret_finds_nobody(accounts):
    key = accounts.create_ingest_key("ci")
    assert accounts.principal_for_secret(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert accounts.principal_for_secret("kbi_" + "x" * 5000) is None
    assert accounts.principal_for_secret("not-a-key") is None
    assert accounts.revoke("ci") is True
    assert accounts.principal_for_secret(key) is None
    assert accounts.revoke("ci") is False


def test_a_second_process_sees_changes_at_once(accounts, tmp_path):
    other = AccountStore.open(tmp_path)  # as `koban admin` beside a running server
    key = other.create_ingest_key("ci")
    assert accounts.principal_for_secret(key) is not None
    other.revoke("ci")
    assert accounts.principal_for_secret(key) is None
    other.close()


def test_listing_shows_names_roles_and_prefixes_never_secrets(accounts):
    accounts.create_user("alice", "admin", "long enough")
    key = accounts.create_ingest_key("ci")
    rows = accounts.list()
    assert [(r.kind, r.name, r.role) for r in rows] == [("user", "alice", "admin"), ("ingest_key", "ci", "ingest")]
    assert rows[1].shown == key[:10] + "…"
    assert accounts.has_admin()


def test_verify_password_survives_garbage_hashes():
    assert passwords.verify_password("not a hash", "whatever") is False
    assert passwords.verify_password(None, "whatever") is False
