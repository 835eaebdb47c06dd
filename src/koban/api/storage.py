"""Storage JSON API and page (all ADMIN): disk use per signal and service, ingest volume
per day, retention per signal (editable) and the disk budget. See docs/api.md.
"""

from __future__ import annotations

import math

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from koban.api import params
from koban.errors import BadRequest
from koban.pipeline.retention import DAY_NS
from koban.query import storage as statements
from koban.query.timeparse import format_rfc3339_ns
from koban.ui import pages

_MAX_BODY = 4 * 1024
_MAX_VOLUME_DAYS = 400  # the daily volume covers the longest retention, up to this


async def storage(request: Request) -> Response:
    """GET /api/storage: what the Storage page shows (docs/api.md)."""
    runtime = request.app.state.runtime
    retention = runtime.retention
    tables = await anyio.to_thread.run_sync(runtime.store.usage)
    file_bytes = await anyio.to_thread.run_sync(runtime.store.disk_bytes)
    days = retention.days()
    now = runtime.clock.now_ns()
    window = min(_MAX_VOLUME_DAYS, math.ceil(max(d["days"] for d in days.values())))
    start = (now // DAY_NS - window + 1) * DAY_NS
    volume = await runtime.run_query(
        "storage", statements.rows_per_bucket(runtime.dialect, DAY_NS, start), max_rows=(window + 100) * 3
    )
    services = await runtime.run_query("storage", statements.rows_per_service(runtime.dialect), max_rows=30_000)
    per_signal = statements.signal_usage(tables)
    budget = retention.budget(tables)
    return JSONResponse({
        "backend": runtime.store.dialect,
        "signals": {
            s: {**per_signal[s], "retention_days": d["days"], "default_days": d["default"], "override_days": d["override"]}
            for s, d in days.items()
        },
        "tables": {
            t: {"signal": statements.table_signal(t), "bytes": u.bytes, "live_bytes": u.live_bytes,
                "rows": u.rows, "stored_rows": u.stored_rows}
            for t, u in tables.items()
        },
        "services": _services(statements.service_counts(services), per_signal),
        "volume": _volume(statements.bucket_counts(volume), start, now),
        "budget": {
            "max_disk_bytes": budget.budget_bytes,
            "used_bytes": budget.used_bytes,
            "fraction": budget.fraction,
            "file_bytes": file_bytes,
        },
    })


def _services(counts: dict[str, dict[str, int]], per_signal: dict[str, dict[str, int]]) -> list[dict]:
    """Rows per service and signal, and the bytes they are estimated to take: the
    service's share of the signal's rows times the signal's live bytes."""
    out: dict[str, dict] = {}
    for signal, by_service in counts.items():
        use = per_signal.get(signal, {"live_bytes": 0, "rows": 0})
        per_row = use["live_bytes"] / use["rows"] if use["rows"] else 0.0
        for service, rows in by_service.items():
            entry = out.setdefault(service, {"service": service, "rows": {}, "bytes": {}, "total_bytes": 0})
            entry["rows"][signal] = rows
            entry["bytes"][signal] = round(rows * per_row)
            entry["total_bytes"] += round(rows * per_row)
    return sorted(out.values(), key=lambda e: (-e["total_bytes"], e["service"]))


def _volume(buckets: list[tuple[str, int, int]], start: int, now: int) -> list[dict]:
    """One entry per day from `start` to today (zero-filled): rows received per signal."""
    days = {day: {s: 0 for s in statements.SIGNALS} for day in range(start, now // DAY_NS * DAY_NS + 1, DAY_NS)}
    for signal, bucket, rows in buckets:
        if bucket in days:
            days[bucket][signal] = days[bucket].get(signal, 0) + rows
    return [{"day": format_rfc3339_ns(day)[:10], "ts_ms": day // 1_000_000, "rows": rows} for day, rows in days.items()]


async def set_retention(request: Request) -> Response:
    """PUT /api/storage/retention {"signal", "days"}: keep `signal` `days` days from the
    next retention run on (days null: back to the setting). 400 for a bad body."""
    data = await params.json_object(request, max_bytes=_MAX_BODY)
    if "signal" not in data or "days" not in data:
        raise BadRequest('the body must be a JSON object {"signal": "logs", "days": 7}')
    retention = request.app.state.runtime.retention
    try:
        await anyio.to_thread.run_sync(retention.overrides.set, data["signal"], data["days"])
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return JSONResponse({"retention": retention.days()})


async def page(request: Request) -> Response:
    """GET /storage: the Storage page (its script reads /api/storage)."""
    principal = request.state.principal  # the route is ADMIN: never anonymous here
    html = pages.render(
        "storage", request.query_params,
        # as api/pages.py gives every page: the signed-in user, the role (the nav), the CSRF token
        user=principal.name if principal.via == "session" else "",
        role=principal.role,
        csrf_token=getattr(request.state, "csrf_token", None) or "",
        retention_interval=_every(request.app.state.runtime.settings.retention_interval_s),
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _every(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"
