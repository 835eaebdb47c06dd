"""The one HTTP client for koban's JSON API, used by the CLI, the TUI and the tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx


class KobanAPIError(Exception):
    """The server answered with an error. `status` is the HTTP status, `body` its JSON."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", f"HTTP {status}"))
        self.status = status
        self.body = body


class KobanClient:
    def __init__(
        self, base_url: str, *, token: str | None = None, timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        """`token`: an API token (`koban admin create-token`), for servers with auth on."""
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport, headers=headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KobanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        response = self._http.get(path, params=query)
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:200] or f"HTTP {response.status_code}"}
        if response.status_code >= 400:
            raise KobanAPIError(response.status_code, body)
        return body

    def health(self) -> dict[str, Any]:
        return self._get("/api/health")

    def logs(self, q: str = "", *, from_: str | None = None, to: str | None = None,
             limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """One page of log records, newest first: {"rows": [...], "next_cursor": ...}."""
        return self._get("/api/logs", q=q, **{"from": from_}, to=to, limit=limit, cursor=cursor)

    def logs_histogram(self, q: str = "", *, from_: str | None = None, to: str | None = None,
                       interval: str | None = None, by: str | None = None) -> dict[str, Any]:
        return self._get("/api/logs/histogram", q=q, **{"from": from_}, to=to, interval=interval, by=by)

    def logs_facets(self, field: str, q: str = "", *, from_: str | None = None,
                    to: str | None = None) -> dict[str, Any]:
        return self._get("/api/logs/facets", q=q, field=field, **{"from": from_}, to=to)

    def spans(self, q: str = "", *, from_: str | None = None, to: str | None = None,
              limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        return self._get("/api/spans", q=q, **{"from": from_}, to=to, limit=limit, cursor=cursor)

    def trace(self, trace_id: str) -> dict[str, Any]:
        return self._get(f"/api/traces/{trace_id}")

    def services(self, *, from_: str | None = None, to: str | None = None) -> dict[str, Any]:
        return self._get("/api/services", **{"from": from_}, to=to)

    def service_resources(self, name: str, *, from_: str | None = None, to: str | None = None) -> dict[str, Any]:
        return self._get(f"/api/services/{quote(name, safe='')}/resources", **{"from": from_}, to=to)

    def metrics_text(self) -> str:
        response = self._http.get("/metrics")
        response.raise_for_status()
        return response.text
