"""The `koban` command: serve, query, tail, demo, config.

`serve` has one flag per option in settings.py (declared there once). The other
commands talk to a running server through client.py.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Sequence

import httpx

from koban import __version__
from koban.client import KobanAPIError, KobanClient
from koban.errors import KobanError
from koban.settings import Settings, client_token, client_url, load_settings

EPILOG = """\
examples:
  koban serve --demo                          run the server with the demo shop load
  koban query 'service:checkout status:error' --since 1h
  koban query '@duration:>250ms' --spans --since 15m
  koban tail 'service:payments -status:info'
  koban demo --target http://127.0.0.1:7070   send the demo load to a server
"""


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the koban server",
        description="Run koban: OTLP receivers, the store, the JSON API. Every option can also be set "
        "as KOBAN_<NAME> in the environment or in koban.toml; a flag wins.",
    )
    p.add_argument("--config", help="path of a koban.toml (default: ./koban.toml when present)")
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, tuple):
            continue  # lists of tables live in koban.toml (or KOBAN_<NAME> as JSON)
        if f.type in ("bool", bool):
            p.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                help=f.metadata["help"].replace("%", "%%"),
            )
        else:
            p.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=f.metadata["help"].replace("%", "%%"))
    p.set_defaults(func=cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koban",
        description="koban: logs, traces and metrics in one process. OTLP in, Datadog-style search out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"koban {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(sub)

    url_help = "server to ask (default: $KOBAN_URL or http://127.0.0.1:7070)"
    q = sub.add_parser("query", help="search logs (or spans) and print the matches")
    q.add_argument("query", nargs="?", default="", help="search, e.g. 'service:web status:error'")
    q.add_argument("--since", default="15m", help="how far back: 15m, 1h, 7d, or a time (default 15m)")
    q.add_argument("--until", default=None, help="end of the range (default now)")
    q.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
    q.add_argument("--spans", action="store_true", help="search spans instead of logs")
    q.add_argument("--json", action="store_true", help="print the API's JSON")
    q.add_argument("--url", default=None, help=url_help)
    q.set_defaults(func=cmd_query)

    t = sub.add_parser("tail", help="print new matching log lines as they arrive, like tail -f")
    t.add_argument("query", nargs="?", default="", help="search, e.g. 'service:web'")
    t.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")
    t.add_argument("--url", default=None, help=url_help)
    t.set_defaults(func=cmd_tail)

    d = sub.add_parser("demo", help="send the demo shop's traces, logs and metrics to a server")
    d.add_argument("--target", default=None, help="OTLP/HTTP base URL (default: the server URL)")
    d.add_argument("--rate", type=float, default=5.0, help="user requests per second (default 5)")
    d.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    d.set_defaults(func=cmd_demo)

    _admin_parser(sub)

    c = sub.add_parser("config", help="print the effective settings (secrets masked)")
    c.add_argument("--config", help="path of a koban.toml")
    c.set_defaults(func=cmd_config)
    return parser


def _admin_parser(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser(
        "admin",
        help="manage users, ingest keys and API tokens (works on the data directory; the server may run)",
        description="Users sign in to the UI and read API; ingest keys send telemetry; API tokens read "
        "the API with a role. Keys and tokens are printed once, when created.",
    )
    a.add_argument("--config", help="path of a koban.toml")
    a.add_argument("--data-dir", default=None, help="data directory (default: the data_dir setting)")
    acts = a.add_subparsers(dest="action", metavar="ACTION", required=True)
    roles = ("viewer", "editor", "admin")
    u = acts.add_parser("create-user", help="add a user who signs in with a password")
    u.add_argument("name")
    u.add_argument("--role", required=True, choices=roles)
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    k = acts.add_parser("create-key", help="make an ingest key (write-only: sends telemetry)")
    k.add_argument("name")
    t = acts.add_parser("create-token", help="make an API token for the read API, with a role")
    t.add_argument("name")
    t.add_argument("--role", required=True, choices=roles)
    lst = acts.add_parser("list", help="list users, keys and tokens (never their secrets)")
    lst.add_argument("--json", action="store_true", help="print JSON")
    d = acts.add_parser("delete-user", help="remove a user (their sessions end at their next request)")
    d.add_argument("name")
    r = acts.add_parser("revoke", help="revoke an ingest key or API token at once")
    r.add_argument("name")
    a.set_defaults(func=cmd_admin)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise KobanError("the two passwords differ")
    return first


def cmd_admin(args: argparse.Namespace) -> int:
    from koban.auth.accounts import AccountStore

    accounts = AccountStore.open_in(load_settings({"data_dir": args.data_dir}, config_file=args.config).data_dir)
    try:
        if args.action == "create-user":
            accounts.create_user(args.name, args.role, _read_password(args))
            print(f"user {args.name} ({args.role}) created")
        elif args.action in ("create-key", "create-token"):
            if args.action == "create-key":
                secret, what = accounts.create_ingest_key(args.name), "ingest key"
            else:
                secret, what = accounts.create_token(args.name, args.role), f"API token ({args.role})"
            print(f"{what} {args.name} created; it is shown this once, store it now:", file=sys.stderr)
            print(secret)
        elif args.action == "list":
            rows = accounts.list()
            if args.json:
                print(json.dumps([row._asdict() for row in rows], indent=2))
            for row in [] if args.json else rows:
                created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(row.created_s))
                print(f"{row.kind:<10}  {row.name:<24}  {row.role:<7}  {row.shown:<12}  {created}")
        elif args.action == "delete-user" or args.action == "revoke":
            gone = accounts.delete_user(args.name) if args.action == "delete-user" else accounts.revoke(args.name)
            if not gone:
                what = "user" if args.action == "delete-user" else "key or token"
                raise KobanError(f"no {what} named {args.name!r}")
            print(f"{args.name} {'deleted' if args.action == 'delete-user' else 'revoked'}")
    finally:
        accounts.close()
    return 0


def _settings_from(args: argparse.Namespace) -> Settings:
    flags = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(Settings)}
    return load_settings(flags, config_file=args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    from koban.app import serve

    _run_event_loop(serve(settings))
    return 0


def _run_event_loop(main) -> None:
    """Runs `main` on uvloop where it is installed (everywhere but Windows), the loop
    uvicorn itself picks when it runs the server; asyncio's own loop otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def cmd_config(args: argparse.Namespace) -> int:
    settings = load_settings(config_file=args.config)
    width = max(len(name) for name, _, _ in settings.describe())
    for name, value, help_text in settings.describe():
        print(f"{name:<{width}}  {value:<16}  {help_text}")
    return 0


def _short_time(rfc3339: str) -> str:
    # 2026-11-26T12:00:00.123456789Z -> 2026-11-26 12:00:00.123
    return rfc3339[:10] + " " + rfc3339[11:23]


def _log_line(row: dict, width: int) -> str:
    head = f"{_short_time(row['timestamp'])}  {row['service'][:18]:<18}  {(row['severity'] or '-')[:7].upper():<7}  "
    body = " ".join(str(row["body"]).split())
    return head + body[: max(20, width - len(head))]


def _span_line(row: dict, width: int) -> str:
    ms = row["duration_ns"] / 1e6
    status = "ERROR" if row["status"] == "error" else row["status"]
    head = f"{_short_time(row['start'])}  {row['service'][:18]:<18}  {ms:>10.2f} ms  {status:<5}  {row['trace_id']}  "
    return head + row["name"][: max(20, width - len(head))]


def cmd_query(args: argparse.Namespace) -> int:
    width = shutil.get_terminal_size((120, 20)).columns
    with KobanClient(args.url or client_url(), token=client_token()) as client:
        fetch = client.spans if args.spans else client.logs
        page = fetch(args.query, from_=args.since, to=args.until, limit=args.limit)
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    rows = page["rows"]
    if not rows:
        print(f"no {'spans' if args.spans else 'log records'} match in the last {args.since}", file=sys.stderr)
        return 0
    if args.spans:
        print(f"{'TIME':<23}  {'SERVICE':<18}  {'DURATION':>13}  {'STATUS':<5}  {'TRACE':<32}  NAME")
        for row in rows:
            print(_span_line(row, width))
    else:
        print(f"{'TIME':<23}  {'SERVICE':<18}  {'LEVEL':<7}  MESSAGE")
        for row in rows:
            print(_log_line(row, width))
    if page.get("next_cursor"):
        print(f"(more than {len(rows)} matches; use --limit or narrow the query)", file=sys.stderr)
    return 0


def _row_key(row: dict) -> tuple:
    return (row["timestamp_ns"], row["service"], row["span_id"], row["body"])


def cmd_tail(args: argparse.Namespace) -> int:
    """Poll a trailing window: records can arrive seconds after their timestamp
    (SDKs batch), so each poll looks back LOOKBACK and skips rows already printed."""
    lookback_s = 60
    width = shutil.get_terminal_size((120, 20)).columns
    seen: dict[tuple, int] = {}
    with KobanClient(args.url or client_url(), token=client_token()) as client:
        first = True
        while True:
            page = client.logs(args.query, from_=f"now-{lookback_s}s", limit=10 if first else 1000)
            fresh = [row for row in reversed(page["rows"]) if _row_key(row) not in seen]
            for row in fresh:
                seen[_row_key(row)] = row["timestamp_ns"]
                print(_log_line(row, width), flush=True)
            horizon = time.time_ns() - 2 * lookback_s * 10**9
            seen = {k: ts for k, ts in seen.items() if ts >= horizon}
            first = False
            time.sleep(args.interval)


def cmd_demo(args: argparse.Namespace) -> int:
    from koban.demo import run_demo

    target = args.target or client_url()
    stop = threading.Event()
    if args.duration is not None:
        threading.Timer(args.duration, stop.set).start()
    print(f"sending the demo shop load to {target} (Ctrl-C to stop)", file=sys.stderr)
    try:
        run_demo(target, stop=stop, rate=args.rate)
    except KeyboardInterrupt:
        stop.set()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `koban query ... | head`: the reader left; say nothing more, like other CLIs
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KobanAPIError as exc:
        where = f" at position {exc.body['position']}" if "position" in exc.body else ""
        print(f"koban: {exc}{where}", file=sys.stderr)
        return 1
    except KobanError as exc:
        print(f"koban: {exc.message}", file=sys.stderr)
        return 1
    except httpx.TransportError as exc:
        print(f"koban: cannot reach the server ({exc}); is `koban serve` running? (--url / KOBAN_URL)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
