"""Fixtures: `backend` / `store` (a fresh, empty store per test) and `loaded` (one store
per backend holding records.everything(), shared by the read-only tests), each
parametrised over conformance.backends.NAMES."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conformance import records
from conformance.backends import NAMES, Backend, backend_for
from koban.store.base import Store


@pytest.fixture(scope="package")
def chdb_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("chdb", reason="chdb (in-process ClickHouse) is not installed")
    pytest.importorskip("clickhouse_connect", reason="clickhouse-connect (koban[clickhouse]) is not installed")
    from chdb_http.engine import Engine

    engine = Engine(tmp_path_factory.mktemp("chdb") / "engine")
    yield engine
    engine.close()  # the engine stops when its last connection closes


@pytest.fixture(scope="package")
def chdb_http(chdb_engine: Any) -> Iterator[Any]:
    from chdb_http.server import ChdbHttpServer

    server = ChdbHttpServer(chdb_engine, user="koban", password="s3cret:/@?").start()
    yield server
    server.stop()


@pytest.fixture(params=NAMES)
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    b = backend_for(request.param, request, tmp_path)
    yield b
    b.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()


@pytest.fixture(scope="package", params=NAMES)
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    b = backend_for(request.param, request, tmp_path_factory.mktemp(f"loaded-{request.param}"))
    s = b.open()
    s.write(records.everything(), lsn=1)
    yield s
    b.close()

