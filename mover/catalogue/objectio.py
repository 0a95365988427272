"""Small object I/O through mover's providers only, for the catalogue's own needs: probe
objects, snapshot chunks and manifests, and reading an object's sha256.

Nothing here names a protocol: writes use :meth:`StoreProvider.put` when the store advertises
``atomic_put_max_bytes`` large enough, else a one-part chunk writer; reads use ranged reads when
advertised, else the sequential stream. Memory is the caller's buffer, never the whole object.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import BinaryIO

from mover.digests import digest
from mover.errors import ChunkFailed, UsageError, VerificationFailed
from mover.provider import MiB, ObjectInfo, StoreProvider
from mover.reading import open_sequential

#: Buffer size for whole-object digests.
READ_BYTES = 8 * MiB
#: Manifests and probes larger than this are refused on read (they are small by design).
SMALL_MAX_BYTES = 256 * MiB


def write_whole(store: StoreProvider, key: str, data: memoryview | bytes) -> ObjectInfo:
    """Write ``data`` as the object ``key``, verified by the store, visible whole or not at all.

    The store confirms the digest of what it stored (its first checksum algorithm), exactly as
    a motion strategy's chunk does.
    """
    view = memoryview(data)
    caps = store.capabilities
    expected = digest(caps.checksum_algorithms[0], view)
    store.make_parents(key)
    if 0 < len(view) <= caps.atomic_put_max_bytes:
        return store.put(key, view, expected)
    if caps.chunk_writer is None:
        raise UsageError(f"{store.describe()} cannot be written")
    writer = store.open_writer(key, len(view))
    try:
        receipts = []
        if len(view):
            receipt = writer.write_part(0, 0, view, expected)
            if receipt.digest != str(expected):
                raise VerificationFailed(
                    f"{store.describe()}/{key}: wrote {expected}, store confirmed {receipt.digest}"
                )
            receipts.append(receipt)
        return writer.commit(receipts, len(view))
    except BaseException:
        with contextlib.suppress(Exception):
            writer.abort()
        raise


def read_into(store: StoreProvider, key: str, view: memoryview, offset: int = 0) -> int:
    """Fill ``view`` with ``key``'s bytes from ``offset``; return the count read."""
    if store.capabilities.ranged_read:
        return store.read_into(key, offset, view)
    stream = open_sequential(store, key, None)
    try:
        _skip(stream, offset)
        return fill(stream, view)
    finally:
        stream.close()


def fill(stream: BinaryIO, view: memoryview) -> int:
    """Read from a stream until ``view`` is full or the stream ends."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def _skip(stream: BinaryIO, offset: int) -> None:
    buf = bytearray(min(offset, READ_BYTES) or 1)
    left = offset
    while left:
        n = stream.readinto(memoryview(buf)[: min(left, len(buf))])  # type: ignore[attr-defined]
        if not n:
            raise ChunkFailed(f"stream ended before offset {offset}")
        left -= n


def read_small(store: StoreProvider, key: str) -> bytes:
    """A small object whole (a manifest); refused above :data:`SMALL_MAX_BYTES`."""
    size = store.stat(key).size
    if size is None or size > SMALL_MAX_BYTES:
        raise UsageError(f"{store.describe()}/{key} is not a small object ({size} bytes)")
    buf = bytearray(size)
    got = read_into(store, key, memoryview(buf))
    if got != size:
        raise ChunkFailed(f"{store.describe()}/{key}: read {got} of {size} bytes")
    return bytes(buf)


def sha256_of(store: StoreProvider, key: str, algorithm: str = "sha256") -> tuple[str, int]:
    """The digest (hex, sha256 unless another hashlib ``algorithm``) and size of an object,
    read once in :data:`READ_BYTES` pieces."""
    h = hashlib.new(algorithm)
    buf = bytearray(READ_BYTES)
    view = memoryview(buf)
    total = 0
    if store.capabilities.ranged_read:
        size = store.stat(key).size
        while size is None or total < size:
            want = READ_BYTES if size is None else min(READ_BYTES, size - total)
            n = store.read_into(key, total, view[:want])
            if n == 0:
                break
            h.update(view[:n])
            total += n
        if size is not None and total != size:
            raise ChunkFailed(f"{store.describe()}/{key}: read {total} of {size} bytes")
    else:
        stream = open_sequential(store, key, None)
        try:
            while n := fill(stream, view):
                h.update(view[:n])
                total += n
        finally:
            stream.close()
    return h.hexdigest(), total
