"""Reusable chunk buffers, one per thread.

Allocating a fresh 64 MiB buffer per chunk costs page faults on every chunk; a buffer per
thread, reused, keeps the hot path at page-cache speed and bounds memory at
chunk size x streams, whatever the object's size.
"""

from __future__ import annotations

import threading

_local = threading.local()


def chunk_buffer(size: int) -> memoryview:
    """A writable buffer of at least ``size`` bytes for this thread, as a view of ``size``."""
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None or len(buf) < size:
        _local.buf = buf = bytearray(size)
    return memoryview(buf)[:size]


def release() -> None:
    """Drop this thread's buffer (after a job, so that an idle pool holds no memory)."""
    _local.buf = None
