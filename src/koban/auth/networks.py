"""Source-address allow lists (for StatsD, which has no credentials to check)."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable


def source_filter(networks: str) -> Callable[[object], bool] | None:
    """A test `allowed(addr)` for datagram source addresses (`(host, port, ...)` tuples)
    against comma-separated CIDRs `networks`; None when `networks` is empty (all allowed).
    Raises ValueError for a network that does not parse."""
    parsed = [ipaddress.ip_network(n.strip(), strict=False) for n in networks.split(",") if n.strip()]
    if not parsed:
        return None

    @functools.lru_cache(maxsize=4096)  # senders are few; parse each address once
    def host_allowed(host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in parsed)

    def allowed(addr: object) -> bool:
        return isinstance(addr, tuple) and bool(addr) and isinstance(addr[0], str) and host_allowed(addr[0])

    return allowed
