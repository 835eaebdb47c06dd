"""The dependency rules of DESIGN.md, checked by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "koban"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        out[".".join(rel.parts)] = ast.parse(path.read_text(), str(path))
    return out


MODULES = _modules()


def _imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _importers_of(prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    found = {}
    for name, tree in MODULES.items():
        hits = {i for i in _imports(tree) if any(i == p or i.startswith(p + ".") for p in prefixes)}
        if hits:
            found[name] = hits
    return found


def _outside(found: dict[str, set[str]], allowed: tuple[str, ...]) -> dict[str, set[str]]:
    return {m: i for m, i in found.items() if not any(m == a or m.startswith(a + ".") for a in allowed)}


def test_only_the_store_imports_database_drivers():
    assert _outside(_importers_of(("duckdb", "clickhouse_connect", "chdb")), ("koban.store",)) == {}


def test_only_receivers_api_and_app_import_the_web_framework():
    found = _importers_of(("starlette", "uvicorn", "grpc"))
    assert _outside(found, ("koban.receive", "koban.api", "koban.ui", "koban.app")) == {}


@pytest.mark.parametrize("package", ["koban.ingest", "koban.query", "koban.model"])
def test_pure_layers_do_no_io(package):
    io = ("socket", "httpx", "duckdb", "starlette", "grpc", "subprocess", "koban.store.duckdb",
          "koban.pipeline", "koban.receive", "koban.api", "koban.app", "koban.clock")
    found = {m: i for m, i in _importers_of(io).items() if m == package or m.startswith(package + ".")}
    assert found == {}


def test_the_cli_talks_to_servers_through_the_client():
    found = {i for i in _imports(MODULES["koban.cli"]) if i.startswith("koban.")}
    # koban.auth: `koban admin` edits the account store in the data dir directly
    allowed = ("koban.client", "koban.settings", "koban.errors", "koban.app", "koban.demo", "koban.auth",
               "koban.__version__")
    assert {i for i in found if not i.startswith(allowed)} == set()


def test_nothing_but_settings_reads_the_environment():
    readers = []
    for name, tree in MODULES.items():
        if name == "koban.settings":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                readers.append(name)
    assert readers == []


def test_the_statsd_reader_processes_import_neither_numpy_nor_pyarrow():
    # a second StatsD reader (statsd_processes = 2) costs ~31 MiB; numpy alone would add
    # 16 MiB: what MetricColumns need of it lives in koban.series, not in koban.model
    import subprocess
    import sys

    code = ("import sys, koban.receive.statsd_processes, koban.pipeline.statsd_aggregator; "
            "print(sorted(m for m in ('numpy', 'pyarrow', 'hashlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
