"""Sequential reading of any readable store: its own stream, or one built on ranged reads.

A store that can open a stream of an object declares ``sequential_read``; one that reads
only by range (S3 implements ``read_into`` alone) still serves a reader that wants the
object in order: :class:`RangedReader` turns its ranged reads into a stream. So a strategy
that reads sequentially asks :func:`can_read_sequentially` instead of assuming ``open_read``,
and an impossible pair fails with a :class:`~mover.errors.MoverError`, not NotImplementedError.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import BinaryIO

from mover.errors import UsageError
from mover.provider import Capabilities, StoreProvider

#: Piece size of :meth:`RangedReader.readall`: one request per this many bytes.
READ_ALL_BYTES = 8 << 20

#: ``read(offset, view) -> count``: one ranged read into ``view`` (0 at the object's end).
RangeRead = Callable[[int, memoryview], int]


class RangedReader(io.RawIOBase):
    """A read-once stream over ranged reads; stops at ``size`` (or the first empty read).

    Each ``readinto`` is one ranged read of the caller's buffer length, so callers that read
    in large pieces (the single-stream strategy reads a chunk at a time) make few requests.
    """

    def __init__(self, read: RangeRead, size: int | None) -> None:
        super().__init__()
        self._read = read
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        if self._size is not None:
            view = view[: max(0, self._size - self._pos)]
        if not len(view):
            return 0
        n = self._read(self._pos, view)
        self._pos += n
        return n

    def readall(self) -> bytes:
        """The rest in reads of at least :data:`READ_ALL_BYTES` (io's default is 8 KiB)."""
        out = bytearray()
        buf = bytearray(READ_ALL_BYTES)
        while n := self.readinto(buf):
            out += memoryview(buf)[:n]
        return bytes(out)


def can_read_sequentially(caps: Capabilities, size: int | None) -> bool:
    """True when an object of ``size`` bytes (None: unknown) can be read from start to end."""
    if not caps.readable:
        return False
    return caps.sequential_read or (caps.ranged_read and size is not None)


def open_sequential(
    store: StoreProvider, key: str, size: int | None, read: RangeRead | None = None
) -> BinaryIO:
    """The object as a stream: the store's own when it declares ``sequential_read``, else
    ranged reads in order (``read`` when given, e.g. pinned to a version; else ``read_into``).
    """
    caps = store.capabilities
    if caps.sequential_read:
        return store.open_read(key)
    if not can_read_sequentially(caps, size):
        raise UsageError(
            f"{store.describe()} cannot read {key!r} from start to end "
            "(it declares neither sequential_read nor ranged_read with a known size)"
        )
    reader = read or (lambda offset, view: store.read_into(key, offset, view))
    # Unbuffered: readers fill large buffers (a chunk), each one ranged read.
    return RangedReader(reader, size)  # type: ignore[return-value]
