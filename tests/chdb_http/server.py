"""A ClickHouse-HTTP-compatible endpoint over chdb, for tests.

Enough of ClickHouse's HTTP interface (https://clickhouse.com/docs/interfaces/http) for
clickhouse-connect to run unmodified against the real ClickHouse engine in-process:

- the statement comes from the `query` URL parameter, the body, or both (then the URL
  part is the statement and the body its data, as for `INSERT ... FORMAT Arrow`), or
  from a multipart form (clickhouse-connect's form encoding for large parameters);
- `param_<name>` parameters bind `{name:Type}` placeholders; `database` picks the
  database; every other parameter is a setting, except the transport-only ones below;
- the body may be lz4 (frame), zstd, gzip or deflate compressed (Content-Encoding);
- the result is returned in the statement's FORMAT (TabSeparated when it has none),
  uncompressed; an error is a 500 with ClickHouse's "Code: N. DB::Exception: ..."
  text and the X-ClickHouse-Exception-Code header, which clickhouse-connect parses.

Each request runs on its own chdb connection (settings and USE are per connection),
so concurrent requests do not see each other's settings, like HTTP sessions-less use.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import tempfile
import threading
import uuid
import zlib
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, quote, urlsplit

from chdb_http.engine import Engine

# Parameters the HTTP layer consumes: never passed to the engine as settings.
_TRANSPORT = frozenset({
    "query", "database", "session_id", "session_timeout", "session_check", "query_id", "quota_key",
    "compress", "decompress", "enable_http_compression", "wait_end_of_query", "client_protocol_version",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "role", "buffer_size",
    "user", "password", "default_format",
})  # fmt: skip
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INSERT_WITH_DATA = re.compile(rb"\A\s*(INSERT\s+INTO\s+[^\n]*?)\s+FORMAT\s+(\w+)[ \t]*(?:\r?\n|\Z)", re.I)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*\Z", re.I)
_CODE = re.compile(r"Code:\s*(\d+)")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(body)
    if encoding == "zstd":
        try:
            from compression import zstd  # Python 3.14
        except ImportError:
            from backports import zstd
        return zstd.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class ClickHouseHttpError(Exception):
    def __init__(self, code: int, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class ChdbHttpServer:
    """A ClickHouse HTTP endpoint on 127.0.0.1 backed by `engine`, served from a thread.
    With `user`, requests must authenticate as that user with `password`."""

    def __init__(self, engine: Engine, *, user: str | None = None, password: str = "") -> None:
        self.engine = engine
        self.user = user
        self.password = password
        self.requests = 0
        # Fault injection for tests: a request whose statement text makes this return
        # True is answered with a network error instead of running.
        self.fail_when: Callable[[str], bool] | None = None
        self._spool = tempfile.mkdtemp(prefix="chdb-http-")
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="chdb-http", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, database: str = "default", user: str | None = None, password: str | None = None) -> str:
        """A URL for koban's clickhouse_url setting."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
        return f"http://{auth}127.0.0.1:{self.port}/{database}"

    def start(self) -> ChdbHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
        for name in os.listdir(self._spool):
            os.unlink(os.path.join(self._spool, name))
        os.rmdir(self._spool)

    # --- one request ----------------------------------------------------------------

    def check_auth(self, headers: Any, params: dict[str, str]) -> None:
        if self.user is None:
            return
        user, password = params.get("user", "default"), params.get("password", "")
        header = headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        elif "X-ClickHouse-User" in headers:
            user, password = headers["X-ClickHouse-User"], headers.get("X-ClickHouse-Key", "")
        if (user, password) != (self.user, self.password):
            raise ClickHouseHttpError(516, f"Code: 516. DB::Exception: {user}: Authentication failed. (AUTHENTICATION_FAILED)", 401)

    def execute(self, params: dict[str, str], body: bytes) -> tuple[bytes, str, dict[str, str]]:
        """(response bytes, format, summary) of one request's statement."""
        url_query = params.get("query", "").encode()
        statement = url_query + (b"\n" + body if url_query and body else body)
        if self.fail_when is not None and self.fail_when(statement[:4096].decode(errors="replace")):
            raise ClickHouseHttpError(210, "Code: 210. DB::NetException: connection reset (injected). (NETWORK_ERROR)", 503)
        binds = {k[len("param_"):]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in _TRANSPORT and not k.startswith("param_")}
        conn = self.engine.connect()
        spooled = None
        try:
            if "database" in params and params["database"]:
                conn.query(f"USE {_ident(params['database'])}", "TabSeparated")
            # readonly last: once readonly=1, no other setting may change
            for name in sorted(settings, key=lambda n: n == "readonly"):
                if not _SETTING_NAME.fullmatch(name):
                    raise ClickHouseHttpError(115, f"Code: 115. DB::Exception: Unknown setting {name!r}. (UNKNOWN_SETTING)", 400)
                conn.query(f"SET {name} = {_quote(settings[name])}", "TabSeparated")
            insert = _INSERT_WITH_DATA.match(statement)
            if insert is not None:
                data = statement[insert.end():]
                spooled = os.path.join(self._spool, uuid.uuid4().hex)
                with open(spooled, "wb") as fh:
                    fh.write(data)
                target, fmt = insert.group(1).decode(), insert.group(2).decode()
                sql = f"{target} FROM INFILE {_quote(spooled)} FORMAT {fmt}"
                out_format = "TabSeparated"
            else:
                sql = statement.decode()
                m = _TRAILING_FORMAT.search(sql)
                out_format = m.group(1) if m else params.get("default_format", "TabSeparated")
            result = conn.query(sql, out_format, params=binds) if binds else conn.query(sql, out_format)
            summary = {"read_rows": str(result.rows_read()), "written_rows": str(result.rows_written())}
            return bytes(result.bytes() or b""), out_format, summary
        except ClickHouseHttpError:
            raise
        except Exception as e:  # chdb's errors carry ClickHouse's own text
            text = str(e)
            m = _CODE.search(text)
            raise ClickHouseHttpError(int(m.group(1)) if m else 1002, text) from e
        finally:
            conn.close()
            if spooled is not None:
                os.unlink(spooled)


def _ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class _Handler(BaseHTTPRequestHandler):
    server_state: ChdbHttpServer
    protocol_version = "HTTP/1.1"  # keep-alive, as clickhouse-connect's pool expects

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # quiet in tests

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        state = self.server_state
        state.requests += 1
        try:
            path = urlsplit(self.path)
            if path.path in ("/ping", "/ping/"):
                self._reply(200, b"Ok.\n", {})
                return
            params = dict(parse_qsl(path.query, keep_blank_values=True))
            body = _decompress(self._read_body(), self.headers.get("Content-Encoding", ""))
            if self.headers.get_content_type() == "multipart/form-data":
                body = self._form(body, params)
            state.check_auth(self.headers, params)
            data, fmt, summary = state.execute(params, body)
            self._reply(200, data, {"X-ClickHouse-Format": fmt, "X-ClickHouse-Summary": json.dumps(summary)})
        except ClickHouseHttpError as e:
            self._reply(e.status, (str(e) + "\n").encode(), {"X-ClickHouse-Exception-Code": str(e.code)})
        except Exception as e:  # a bug here must answer, not hang the client
            self._reply(500, f"Code: 1001. DB::Exception: test endpoint: {e!r}\n".encode(),
                        {"X-ClickHouse-Exception-Code": "1001"})  # fmt: skip

    def _form(self, body: bytes, params: dict[str, str]) -> bytes:
        """Moves a multipart form's fields into `params`; returns the statement text."""
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                params[str(name)] = part.get_payload(decode=True).decode()
        return params.pop("query", "").encode()

    def _reply(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if status == 200 else "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-ClickHouse-Query-Id", uuid.uuid4().hex)
        self.send_header("X-ClickHouse-Timezone", "UTC")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
