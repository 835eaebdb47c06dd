"""Giving memory back to the operating system when the server is idle.

An idle koban should be small (issue 5: under 200 MiB with a day of data). After a burst
of ingest or queries, three allocators keep freed memory for reuse: DuckDB's buffer
pool (trimmed by the store), pyarrow's memory pool, and glibc's malloc arenas.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import pyarrow as pa


def release_process_memory() -> None:
    """Return freed memory held by pyarrow's pool and by glibc's malloc to the OS.
    Harmless where either is missing."""
    pa.default_memory_pool().release_unused()
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return
    try:
        ctypes.CDLL(libc_name).malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (musl, macOS): nothing to trim this way
