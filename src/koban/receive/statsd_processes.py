"""More StatsD receiving processes on the same UDP port (SO_REUSEPORT), for a second core.

Parsing and aggregating StatsD lines is pure Python and holds the GIL: one process
tops out at one core (benchmarks/README.md). With `statsd_processes = N`, koban binds
its socket with SO_REUSEPORT and starts N - 1 spawn'd processes that bind the same
port. By itself the kernel spreads datagrams over the sockets by source address and
port, so one client socket always reaches the same process and two busy clients may
well share one; so on Linux the server attaches a classic BPF program to the port's
group that sends each datagram to a socket picked at random (`spread_at_random`).
Each process parses and aggregates on its own; at every flush the server process takes
each one's open window (`StatsdAggregator.take`) and merges it into its own (`absorb`:
counters and sketches add, sets unite, a gauge keeps its latest set value). What
"latest" means across processes is the kernel's receive time of the datagram
(SO_TIMESTAMPNS), not when a busy process got round to it. Only the server process
writes the WAL, so durability is unchanged.

A receiving process ignores Ctrl-C (the server stops it) and exits by itself when its
pipe to the server closes (the server died).
"""

from __future__ import annotations

import multiprocessing
import os
import selectors
import signal
import socket
import struct
import sys
import time
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from koban.pipeline.statsd_aggregator import StatsdAggregator, WindowState

READS_PER_WAKEUP = 64
MAX_DATAGRAM_BYTES = 65535  # a UDP payload can be no larger

# Linux's numbers (asm-generic/socket.h, linux/filter.h); Python's socket module lacks them
SO_TIMESTAMPNS = 35
SO_ATTACH_REUSEPORT_CBPF = 51
SKF_AD_RANDOM = 56
SKF_AD_OFF = -0x1000
_TIMESPEC = struct.Struct("qq")
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


def open_socket(host: str, port: int, rcvbuf_bytes: int, *, reuse_port: bool) -> socket.socket:
    """A UDP socket bound to (host, port), non-blocking. Raises OSError when it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # the kernel may grant less (net.core.rmem_max)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def spread_at_random(sock: socket.socket, sockets: int) -> bool:
    """Make the kernel hand each datagram of `sock`'s SO_REUSEPORT group to one of its
    first `sockets` sockets at random (a classic BPF program: ld [random]; mod #n;
    ret a). False when it cannot (not Linux, or the kernel refuses): the group keeps
    the kernel's spread by source address."""
    if sys.platform != "linux":
        return False
    import ctypes

    program = [
        (0x20, 0, 0, (SKF_AD_OFF + SKF_AD_RANDOM) & 0xFFFFFFFF),  # BPF_LD|BPF_W|BPF_ABS
        (0x94, 0, 0, sockets),  # BPF_ALU|BPF_MOD|BPF_K
        (0x16, 0, 0, 0),  # BPF_RET|BPF_A
    ]
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HP", len(program), ctypes.addressof(buf))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError:
        return False
    return True


def keep_receive_times(sock: socket.socket) -> None:
    """Have the kernel stamp each datagram with its receive time (see `receive`)."""
    if sys.platform == "linux":
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def receive(sock: socket.socket) -> tuple[bytes, Any, int]:
    """One datagram of a `keep_receive_times` socket: its bytes, its sender and the
    kernel's receive time (ns since the epoch; now, where the kernel gave none).
    Raises what recvmsg raises (BlockingIOError when there is none)."""
    data, ancillary, _, addr = sock.recvmsg(MAX_DATAGRAM_BYTES, _ANCILLARY_BYTES)
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
            seconds, ns = _TIMESPEC.unpack_from(value)
            return data, addr, seconds * 1_000_000_000 + ns
    return data, addr, time.time_ns()


class Counts(NamedTuple):
    """What a receiving process read since the last take."""

    datagrams: int
    bytes: int
    items: int
    parse_errors: dict[str, int]
    refused: int


class ReceiverProcess:
    """The server's handle on one receiving process."""

    def __init__(self, host: str, port: int, rcvbuf_bytes: int, aggregator_options: dict[str, Any],
                 networks: str = "") -> None:  # fmt: skip
        """`aggregator_options`: StatsdAggregator keyword arguments; `networks`: the
        statsd_allowed_networks the process applies (empty: all sources)."""
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_main, args=(host, port, rcvbuf_bytes, aggregator_options, networks, child),
            name="koban-statsd-receiver", daemon=True,
        )  # fmt: skip
        self._proc.start()
        child.close()
        self.inode = 0

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until the process has bound its socket. Raises OSError with its reason
        when it could not, TimeoutError when it does not answer in time."""
        if not self._conn.poll(timeout_s):
            self.kill()
            raise TimeoutError("a StatsD receiving process did not start")
        reply = self._conn.recv()
        if isinstance(reply, str):
            self.kill()
            raise OSError(reply)
        self.inode = reply

    def take(self, final: bool = False) -> tuple[WindowState, Counts]:
        """Its open window and counts (blocking; run it in a thread). With `final` the
        process exits after answering. Raises EOFError when the process is gone."""
        self._conn.send("stop" if final else "take")
        return self._conn.recv()

    def kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join(5)
        self._conn.close()


def _main(host: str, port: int, rcvbuf_bytes: int, options: dict[str, Any], networks: str,
          conn: Connection) -> None:  # fmt: skip
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sock = open_socket(host, port, rcvbuf_bytes, reuse_port=True)
    except OSError as exc:
        conn.send(f"cannot listen for StatsD on {host}:{port} in a second process: {exc.strerror}")
        return
    conn.send(os.fstat(sock.fileno()).st_ino)
    keep_receive_times(sock)
    allowed = None
    if networks:
        from koban.auth.networks import source_filter

        allowed = source_filter(networks)
    aggregator = StatsdAggregator(time.time_ns(), **options)
    counts = [0, 0, 0, 0]  # datagrams, bytes, items, refused
    errors: dict[str, int] = {}
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(conn, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                _read(sock, aggregator, allowed, counts, errors)
                continue
            try:
                request = conn.recv()
            except (EOFError, OSError):  # the server is gone
                return
            # what is already in the socket belongs to the window being taken (bounded:
            # under a flood the socket is never empty)
            for _ in range(16):
                if _read(sock, aggregator, allowed, counts, errors) < READS_PER_WAKEUP:
                    break
            state = aggregator.take()
            conn.send((state, Counts(counts[0], counts[1], counts[2], errors, counts[3])))
            counts = [0, 0, 0, 0]
            errors = {}
            if request == "stop":
                sock.close()
                return


def _read(sock: socket.socket, aggregator: StatsdAggregator, allowed: Any, counts: list[int],
          errors: dict[str, int]) -> int:  # fmt: skip
    """Read up to READS_PER_WAKEUP datagrams into `aggregator`; returns how many were read."""
    for n in range(READS_PER_WAKEUP):
        try:
            data, addr, received_ns = receive(sock)
        except (BlockingIOError, InterruptedError):
            return n
        except OSError:
            return n
        if allowed is not None and not allowed(addr):
            counts[3] += 1
            continue
        counts[0] += 1
        counts[1] += len(data)
        items, bad = aggregator.add_datagram(data, received_ns)
        counts[2] += items
        for e in bad:
            errors[e.reason] = errors.get(e.reason, 0) + 1
    return READS_PER_WAKEUP
