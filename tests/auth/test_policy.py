"""Who may call a route of each level; where a request carries its key; StatsD networks."""

from __future__ import annotations

import pytest

from koban.auth.credentials import presented_secret
from koban.auth.networks import source_filter
from koban.auth.policy import ALLOW, FORBIDDEN, UNAUTHENTICATED, decide
from koban.auth.principal import Principal

SHIPPER = Principal("ci", "ingest", "ingest_key")
VIEWER = Principal("victor", "viewer", "session")
EDITOR = Principal("eve", "editor", "token")
ADMIN = Principal("alice", "admin", "session")


@pytest.mark.parametrize(
    "level,principal,verdict",
    [
        ("public", None, ALLOW),
        ("viewer", None, UNAUTHENTICATED),
        ("ingest", None, UNAUTHENTICATED),
        ("ingest", SHIPPER, ALLOW),
        ("ingest", VIEWER, FORBIDDEN),
        ("ingest", EDITOR, ALLOW),
        ("viewer", SHIPPER, FORBIDDEN),
        ("viewer", VIEWER, ALLOW),
        ("editor", VIEWER, FORBIDDEN),
        ("editor", EDITOR, ALLOW),
        ("admin", EDITOR, FORBIDDEN),
        ("admin", ADMIN, ALLOW),
        (None, ADMIN, FORBIDDEN),  # an untagged route: nobody
        ("superuser", ADMIN, FORBIDDEN),
    ],
)
def test_decide(level, principal, verdict):
    assert decide(level, principal) == verdict


@pytest.mark.parametrize(
    "headers,secret",
    [
        ({"authorization": "Bearer kbi_abc"}, "kbi_abc"),
        ({"authorization": "bearer   kbi_abc  "}, "kbi_abc"),
        ({"dd-api-key": "kbi_dd"}, "kbi_dd"),
        ({"authorization": "Basic dXNlcjpwdw==", "dd-api-key": "kbi_dd"}, "kbi_dd"),
        ({"authorization": "Bearer "}, None),
        ({}, None),
    ],
)
def test_presented_secret_reads_bearer_then_datadog_header(headers, secret):
    assert presented_secret(headers.get) == secret


def test_statsd_networks():
    assert source_filter("") is None
    allowed = source_filter("10.0.0.0/8, 127.0.0.1")
    assert allowed(("10.1.2.3", 8125))
    assert allowed(("127.0.0.1", 5000))
    assert not allowed(("127.0.0.2", 5000))
    assert allowed(("::ffff:10.0.0.1", 1, 0, 0))  # v4-mapped on a dual-stack socket
    assert not allowed(("fe80::1%eth0", 1, 0, 0))
    assert not allowed(None)
    with pytest.raises(ValueError):
        source_filter("10.0.0.0/33")
