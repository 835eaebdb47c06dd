"""The demo shop: who calls whom, how long it takes, and what goes wrong.

A pure simulation. `Shop.request()` returns the plan of one user request: a tree of
spans (`Step`) with times relative to the request's start and the log lines each span
writes. Nothing here touches OpenTelemetry or reads the clock, so one seed gives the
same shop every time; `emit.py` turns plans into telemetry.

The story a user can find in koban:
- inventory `GET /stock/{sku}` is sometimes slow (a row lock in the database, 400-900 ms);
- payments `POST /charge` fails a few percent of the time (card declined, gateway timeout);
- every `deploy_every_s` checkout is redeployed, and for a minute its pods warm up:
  slower, and failing more often.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

MS = 1_000_000  # nanoseconds
SERVER, CLIENT = "server", "client"

Attrs = dict[str, "str | int | float | bool"]


class LogLine(NamedTuple):
    at: int  # ns from the start of the request (or of the event)
    severity: str  # "debug", "info", "warn" or "error"
    body: str
    attributes: Attrs


@dataclass
class Step:
    """One span of a plan. `start` and `end` are ns from the start of the request."""

    service: str
    name: str
    kind: str  # SERVER or CLIENT
    start: int
    end: int = 0
    attributes: Attrs = field(default_factory=dict)
    error: str = ""  # the status description; "" when the span succeeded
    exception: BaseException | None = None
    logs: list[LogLine] = field(default_factory=list)
    children: list[Step] = field(default_factory=list)

    def walk(self):
        """This step and all its descendants, parents first."""
        yield self
        for child in self.children:
            yield from child.walk()


class Plan(NamedTuple):
    """One user request: its span tree, and logs written outside any trace
    (the database's own log knows nothing of trace ids), as (service, line)."""

    root: Step
    loose_logs: tuple[tuple[str, LogLine], ...]


class Service(NamedTuple):
    name: str
    version: str
    host: str


class Gauge(NamedTuple):
    """An observable gauge: `read()` returns (value, attributes) pairs when collected."""

    name: str
    unit: str
    description: str
    read: Callable[[], list[tuple[float, Attrs]]]


class ShopEvent(NamedTuple):
    """Something that happened to the shop itself (a deploy), logged by `service`.
    `new_version` is set when the service now runs a new version."""

    service: str
    line: LogLine
    new_version: str | None = None


class CardDeclined(Exception):
    """The card gateway refused the charge."""


class GatewayTimeout(TimeoutError):
    """The card gateway did not answer in time."""


class PoolExhausted(RuntimeError):
    """No database connection was free (checkout's pods warming up after a deploy)."""


# Where the shop runs; shop-db is Postgres, visible as a service through its own logs.
_SERVICES = (
    Service("frontend", "2.3.1", "web-01.demo.internal"),
    Service("checkout", "1.4.0", "app-01.demo.internal"),
    Service("payments", "3.0.2", "app-02.demo.internal"),
    Service("inventory", "1.9.4", "app-03.demo.internal"),
    Service("shop-db", "16.2", "db-01.demo.internal"),
)
_BASE_MEMORY_MB = {"frontend": 180, "checkout": 240, "payments": 150, "inventory": 210, "shop-db": 900}
_ENDPOINTS = (  # (method, route, weight) of the frontend
    ("GET", "/", 35),
    ("GET", "/products/{id}", 35),
    ("POST", "/cart", 18),
    ("POST", "/checkout", 12),
)
_PRODUCTS = 20
_DEPLOY_S = 60.0
_SLOW_STOCK = 0.12  # share of stock lookups that wait on a row lock
_CHARGE_FAILS = 0.04
_DEGRADED_FAILS = 0.12
_SEVERITY_FOR_STATUS = ((500, "error"), (400, "warn"), (0, "info"))


def _severity(status: int) -> str:
    return next(sev for floor, sev in _SEVERITY_FOR_STATUS if status >= floor)


class Shop:
    """The shop's state (stock, versions, deploys) and its request simulator.

    Single-threaded except for the `gauges` callbacks, which only read."""

    def __init__(self, rng: random.Random, *, deploy_every_s: float = 300.0) -> None:
        if deploy_every_s <= 0:
            raise ValueError(f"deploy_every_s must be positive, got {deploy_every_s!r}")
        self.rng = rng
        self.deploy_every_s = deploy_every_s
        # a deploy never outlasts the gap to the next one
        self.deploy_s = min(_DEPLOY_S, deploy_every_s / 2)
        self.degraded = False
        self._services = {s.name: s for s in _SERVICES}
        self._deploys = 0
        self._deploy_ends_at = 0.0
        self._stock = {self._sku(i): rng.randint(40, 200) for i in range(1, _PRODUCTS + 1)}
        self._served = dict.fromkeys(self._services, 0)
        self._orders = 0
        self._loose: list[tuple[str, LogLine]] = []

    # ---------------------------------------------------------------- the shop itself
    def services(self) -> list[Service]:
        return list(self._services.values())

    def service(self, name: str) -> Service:
        return self._services[name]

    def gauges(self, service: str) -> list[Gauge]:
        """The observable gauges that `service` reports."""
        gauges = [
            Gauge(
                "process.memory.usage",
                "By",
                "Resident memory of the service's process",
                lambda: [(float(self._memory_bytes(service)), {})],
            )
        ]
        if service == "inventory":
            gauges.append(
                Gauge(
                    "inventory.stock_level",
                    "{item}",
                    "Items in stock per SKU",
                    lambda: [(float(q), {"sku": sku}) for sku, q in dict(self._stock).items()],
                )
            )
        if service == "shop-db":
            gauges.append(
                Gauge(
                    "postgresql.backends",
                    "{connection}",
                    "Open connections to the database",
                    lambda: [(float(12 + (25 if self.degraded else 0) + self._orders % 7), {})],
                )
            )
        return gauges

    def _memory_bytes(self, service: str) -> int:
        # grows slowly with traffic, like a cache filling; a deploy starts it over
        mb = _BASE_MEMORY_MB[service] + min(self._served[service] / 50, 300)
        return int(mb * 1024 * 1024)

    def advance(self, elapsed_s: float) -> list[ShopEvent]:
        """Move the shop's clock to `elapsed_s` since the demo began; returns the deploy
        events that start or end by then (empty most of the time)."""
        events = []
        due = int(elapsed_s // self.deploy_every_s)
        if due > self._deploys:
            self._deploys = due
            old = self._services["checkout"]
            major, minor, _ = old.version.split(".")
            new = old._replace(version=f"{major}.{int(minor) + 1}.0")
            self._services["checkout"] = new
            self._served["checkout"] = 0
            self._deploy_ends_at = elapsed_s + self.deploy_s
            self.degraded = True
            line = LogLine(
                0,
                "warn",
                f"deploying checkout v{major}.{int(minor) + 1} (was v{major}.{minor}): rolling restart",
                {"deploy.version": new.version, "deploy.previous_version": old.version},
            )
            events.append(ShopEvent("checkout", line, new_version=new.version))
        elif self.degraded and elapsed_s >= self._deploy_ends_at:
            self.degraded = False
            version = self._services["checkout"].version
            line = LogLine(
                0, "info", f"deploy of checkout v{version} finished: all pods ready", {"deploy.version": version}
            )
            events.append(ShopEvent("checkout", line))
        return events

    # ---------------------------------------------------------------- one request
    def request(self) -> Plan:
        """Plan one user request into the frontend."""
        rng = self.rng
        self._loose = []
        method, route, _ = rng.choices(_ENDPOINTS, weights=[w for *_, w in _ENDPOINTS])[0]
        product = rng.randint(1, _PRODUCTS)
        path = route.replace("{id}", str(product))
        user = f"u-{rng.randrange(10_000):05d}"
        root = self._server("frontend", method, route, path, 0)
        root.attributes["enduser.id"] = user
        handler = {
            "/": self._home,
            "/products/{id}": self._product_page,
            "/cart": self._add_to_cart,
            "/checkout": self._checkout_page,
        }[route]
        end, status = handler(root, self._lat(0.4), product, user)
        end += self._lat(2.0)  # rendering
        self._finish(root, end, status)
        took = (end - root.start) / MS
        root.logs.append(
            LogLine(
                end,
                _severity(status),
                f"{method} {path} {status} in {took:.1f}ms",
                {"http.method": method, "http.route": route, "http.status_code": status,
                 "duration_ms": round(took, 3), "user.id": user},
            )
        )
        return Plan(root, tuple(self._loose))

    # frontend handlers: (step, time, product, user) -> (end time, status)
    def _home(self, step: Step, t: int, product: int, user: str) -> tuple[int, int]:
        return self._call(step, t, "inventory", "GET", "/products", "/products?limit=12", self._list_products)

    def _product_page(self, step: Step, t: int, product: int, user: str) -> tuple[int, int]:
        t, status = self._call(step, t, "inventory", "GET", "/products/{id}", f"/products/{product}",
                               lambda s, t2: self._get_product(s, t2, product))
        if status >= 500:
            return t, 502
        sku = self._sku(product)
        return self._call(step, t, "inventory", "GET", "/stock/{sku}", f"/stock/{sku}",
                          lambda s, t2: self._get_stock(s, t2, sku))

    def _add_to_cart(self, step: Step, t: int, product: int, user: str) -> tuple[int, int]:
        end, status = self._call(step, t, "checkout", "POST", "/cart/items", "/cart/items",
                                 lambda s, t2: self._cart_add(s, t2, product, user))
        return end, (502 if status >= 500 else status)

    def _checkout_page(self, step: Step, t: int, product: int, user: str) -> tuple[int, int]:
        end, status = self._call(step, t, "checkout", "POST", "/orders", "/orders",
                                 lambda s, t2: self._place_order(s, t2, product, user))
        if status >= 400:
            step.logs.append(LogLine(end, "warn", f"checkout failed for user {user}: upstream status {status}",
                                     {"user.id": user, "upstream.status_code": status}))
        return end, (502 if status >= 500 else status)

    # inventory
    def _list_products(self, step: Step, t: int) -> tuple[int, int]:
        t = self._query(step, t, "SELECT", "products", "SELECT id, name, price FROM products ORDER BY rank LIMIT $1")
        return t + self._lat(1.0), 200

    def _get_product(self, step: Step, t: int, product: int) -> tuple[int, int]:
        t = self._query(step, t, "SELECT", "products", "SELECT * FROM products WHERE id = $1")
        step.logs.append(LogLine(t, "debug", f"product {product} loaded", {"product.id": product}))
        return t + self._lat(0.8), 200

    def _get_stock(self, step: Step, t: int, sku: str) -> tuple[int, int]:
        slow = self.rng.random() < _SLOW_STOCK
        wait = int(self.rng.uniform(400, 900) * MS) if slow else 0
        statement = "SELECT qty FROM stock WHERE sku = $1 FOR SHARE"
        end = self._query(step, t, "SELECT", "stock", statement, extra=wait)
        if slow:
            took = (end - t) / MS
            step.logs.append(LogLine(end, "warn", f"slow stock lookup sku={sku} took {took:.0f}ms (row lock wait)",
                                     {"sku": sku, "duration_ms": round(took, 3)}))
            # Postgres's own log line, which has no trace id
            self._loose.append(("shop-db", LogLine(end, "warn", f"duration: {took:.3f} ms  statement: {statement}",
                                                   {"db.statement": statement, "duration_ms": round(took, 3)})))
        qty = self._stock[sku]
        if qty < 10:
            step.logs.append(LogLine(end, "warn", f"low stock sku={sku} qty={qty}", {"sku": sku, "stock.qty": qty}))
        return end + self._lat(0.5), 200

    def _reserve(self, step: Step, t: int, sku: str) -> tuple[int, int]:
        t = self._query(step, t, "UPDATE", "stock", "UPDATE stock SET qty = qty - $1 WHERE sku = $2")
        self._stock[sku] -= 1
        if self._stock[sku] <= 2:
            self._stock[sku] += 150
            step.logs.append(LogLine(t, "info", f"restock ordered sku={sku} qty=150", {"sku": sku}))
        return t + self._lat(0.5), 200

    # checkout
    def _cart_add(self, step: Step, t: int, product: int, user: str) -> tuple[int, int]:
        t, failed = self._warm_up(step, t)
        if failed:
            return t, 500
        sku = self._sku(product)
        t, status = self._call(step, t, "inventory", "GET", "/stock/{sku}", f"/stock/{sku}",
                               lambda s, t2: self._get_stock(s, t2, sku))
        t = self._query(step, t, "INSERT", "cart_items", "INSERT INTO cart_items (user_id, sku, qty) VALUES ($1, $2, 1)")
        step.logs.append(LogLine(t, "info", f"added {sku} to cart of {user}", {"sku": sku, "user.id": user}))
        return t + self._lat(0.6), 201

    def _place_order(self, step: Step, t: int, product: int, user: str) -> tuple[int, int]:
        t, failed = self._warm_up(step, t)
        if failed:
            return t, 500
        t = self._query(step, t, "SELECT", "cart_items", "SELECT sku, qty FROM cart_items WHERE user_id = $1")
        sku = self._sku(product)
        t, _ = self._call(step, t, "inventory", "POST", "/reserve", "/reserve", lambda s, t2: self._reserve(s, t2, sku))
        self._orders += 1
        order = f"ord-{self._orders:06d}"
        amount = round(self.rng.uniform(8, 400), 2)
        t, status = self._call(step, t, "payments", "POST", "/charge", "/charge",
                               lambda s, t2: self._charge(s, t2, order, amount))
        if status >= 400:
            step.logs.append(LogLine(t, "error", f"order {order} failed: payment status {status}",
                                     {"order.id": order, "user.id": user, "upstream.status_code": status}))
            return t + self._lat(0.5), status
        t = self._query(step, t, "INSERT", "orders", "INSERT INTO orders (id, user_id, total) VALUES ($1, $2, $3)")
        step.logs.append(LogLine(t, "info", f"order {order} created for {user} total={amount:.2f} USD",
                                 {"order.id": order, "user.id": user, "order.total": amount}))
        return t + self._lat(0.8), 201

    def _warm_up(self, step: Step, t: int) -> tuple[int, bool]:
        """During a deploy checkout's pods are cold: extra latency, and some requests
        fail for want of a database connection. Returns (time, failed)."""
        if not self.degraded:
            return t, False
        t += int(self.rng.lognormvariate(5.5, 0.5) * MS)  # median ~250 ms
        if self.rng.random() >= _DEGRADED_FAILS:
            return t, False
        step.exception = _raised(PoolExhausted("could not acquire a connection to shop-db within 250ms (pool size 10)"))
        step.error = "PoolExhausted: connection pool exhausted"
        step.logs.append(LogLine(t, "error", "connection pool exhausted: could not acquire a connection to shop-db",
                                 {"pool.size": 10, "deploy.version": self._services["checkout"].version}))
        return t, True

    # payments
    def _charge(self, step: Step, t: int, order: str, amount: float) -> tuple[int, int]:
        rng = self.rng
        failure = None
        if rng.random() < _CHARGE_FAILS:
            failure = rng.choice(("declined", "timeout"))
        took = 2000 * MS if failure == "timeout" else int(rng.lognormvariate(4.4, 0.35) * MS)  # ~80 ms
        gateway = Step(step.service, "POST /v1/charges", CLIENT, t, t + took, attributes={
            "http.method": "POST", "http.url": "https://gateway.cards.example/v1/charges",
            "peer.service": "card-gateway", "server.address": "gateway.cards.example", "server.port": 443,
        })
        step.children.append(gateway)
        t += took
        attrs: Attrs = {"order.id": order, "payment.amount": amount, "payment.currency": "USD"}
        if failure is None:
            gateway.attributes["http.status_code"] = 200
            t = self._query(step, t, "INSERT", "payments", "INSERT INTO payments (order_id, amount, status) VALUES ($1, $2, 'captured')")
            charge = f"ch_{rng.getrandbits(48):012x}"
            step.logs.append(LogLine(t, "info", f"charge {charge} captured amount={amount:.2f} USD", {**attrs, "charge.id": charge}))
            return t + self._lat(0.5), 200
        if failure == "declined":
            gateway.attributes["http.status_code"] = 402
            code = rng.choice(("insufficient_funds", "card_expired", "do_not_honor"))
            exc = CardDeclined(f"card declined: {code}")
            status, body = 402, f"card declined for order {order}: {code}"
            attrs["decline.code"] = code
        else:
            gateway.error = "timeout"
            exc = GatewayTimeout("gateway timeout after 2000ms calling gateway.cards.example")
            status, body = 504, f"payment gateway timeout after 2000ms for order {order}"
        # A failed charge is the failure this service exists to prevent, so its span is
        # an error even when the HTTP answer is a 4xx.
        step.exception = _raised(exc)
        step.error = f"{type(exc).__name__}: {exc}"
        step.logs.append(LogLine(t, "error", body, attrs))
        return t + self._lat(0.5), status

    # ---------------------------------------------------------------- building blocks
    def _server(self, service: str, method: str, route: str, path: str, start: int) -> Step:
        attributes: Attrs = {"http.method": method, "http.route": route, "http.target": path,
                             "http.scheme": "http", "net.host.name": self._services[service].host}
        self._served[service] += 1
        return Step(service, f"{method} {route}", SERVER, start, attributes=attributes)

    def _finish(self, step: Step, end: int, status: int) -> None:
        step.end = end
        step.attributes["http.status_code"] = status
        if status >= 500 and not step.error:
            step.error = f"HTTP {status}"

    def _call(self, parent: Step, t: int, service: str, method: str, route: str, path: str,
              handler: Callable[[Step, int], tuple[int, int]]) -> tuple[int, int]:
        """`parent` calls `service` over HTTP at time `t`: a client span in the caller
        around a server span in the callee. Returns (end time, status)."""
        client = Step(parent.service, f"{method} {route}", CLIENT, t, attributes={
            "http.method": method, "http.url": f"http://{service}:8080{path}",
            "peer.service": service, "server.address": service, "server.port": 8080,
        })
        parent.children.append(client)
        server = self._server(service, method, route, path, t + self._lat(0.3))
        client.children.append(server)
        end, status = handler(server, server.start + self._lat(0.2))
        self._finish(server, end, status)
        client.end = end + self._lat(0.3)
        client.attributes["http.status_code"] = status
        if status >= 500:
            client.error = f"HTTP {status}"
        return client.end, status

    def _query(self, parent: Step, t: int, op: str, table: str, statement: str, extra: int = 0) -> int:
        """A Postgres query from `parent` at `t`; returns when it ends."""
        end = t + self._lat(1.5) + extra
        parent.children.append(Step(parent.service, f"{op} {table}", CLIENT, t, end, attributes={
            "db.system": "postgresql", "db.name": "shop", "db.user": "shop_app", "db.operation": op,
            "db.sql.table": table, "db.statement": statement, "net.peer.name": "shop-db",
            "net.peer.port": 5432, "peer.service": "shop-db",
        }))
        return end

    def _lat(self, median_ms: float) -> int:
        """A latency in ns around `median_ms`, long-tailed like real ones."""
        return int(median_ms * self.rng.lognormvariate(0.0, 0.45) * MS)

    @staticmethod
    def _sku(product: int) -> str:
        return f"SKU-{product:04d}"


def _raised(exc: BaseException) -> BaseException:
    """`exc` after being raised a few frames down, so it carries a real stack trace."""
    try:
        _call_downstream(exc)
    except BaseException as caught:  # noqa: BLE001 - we raised it ourselves
        return caught
    raise AssertionError("unreachable")


def _call_downstream(exc: BaseException) -> None:
    _send(exc)


def _send(exc: BaseException) -> None:
    raise exc
