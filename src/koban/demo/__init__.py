"""The demo load: a small fictional shop sending its telemetry to koban over OTLP/HTTP.

`run_demo` is what `koban demo --target URL` and `koban serve --demo` run.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Callable

from koban.demo.emit import Fleet
from koban.demo.shop import Shop

__all__ = ["run_demo"]

_MAX_LAG_S = 1.0  # when the sender falls behind, skip requests instead of bursting


def run_demo(
    target: str,
    *,
    stop: threading.Event,
    rate: float = 5.0,
    seed: int | None = None,
    deploy_every_s: float = 300.0,
    log: Callable[[str], object] = print,
    headers: dict[str, str] | None = None,
) -> None:
    """Send the demo shop's traces, logs and metrics to `target` (koban's OTLP/HTTP base
    URL, e.g. http://127.0.0.1:7070) at about `rate` user requests per second until
    `stop` is set; returns once everything buffered has been flushed and every provider
    shut down. Raises ValueError when `rate` or `deploy_every_s` is not positive. An
    unreachable target is not an error: the exporters log it and drop the data, as any
    OpenTelemetry client would. `headers` go with every request (an ingest key).
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate!r}")
    rng = random.Random(seed)
    shop = Shop(rng, deploy_every_s=deploy_every_s)
    fleet = Fleet(target, headers=headers)
    for service in shop.services():
        fleet.start(service, shop.gauges(service.name))
    names = ", ".join(s.name for s in shop.services())
    log(f"koban demo: a shop ({names}) sending {rate:g} requests/s to {fleet.target}")
    sent = 0
    started = next_at = time.monotonic()
    try:
        while not stop.is_set():
            now = time.monotonic()
            for event in shop.advance(now - started):
                if event.new_version is not None:
                    fleet.start(shop.service(event.service), shop.gauges(event.service))
                fleet.log(event.service, event.line, time.time_ns())
                log(f"koban demo: {event.line.body}")
            fleet.emit(shop.request(), time.time_ns())
            sent += 1
            # Poisson arrivals, like real users, at `rate` on average
            next_at = max(next_at + rng.expovariate(rate), now - _MAX_LAG_S)
            stop.wait(max(0.0, next_at - time.monotonic()))
    finally:
        fleet.shutdown()
        log(f"koban demo: stopped after {sent} requests")
