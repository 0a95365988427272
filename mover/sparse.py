"""Holes and zeros: read a sparse source without reading its holes, know zeros without hashing them.

A sparse file (a thin VM image: 100 GiB of which 1 GiB is data) tells where its data is
(:meth:`~mover.provider.StoreProvider.data_extents`, ``SEEK_DATA``/``SEEK_HOLE`` for files). What
lies between is known to read as zeros, so:

- :func:`read_chunk` fills a chunk buffer by reading the data extents only and zeroing the
  rest, and reads nothing at all for a chunk that is one hole;
- :func:`zero_digest` gives the digest of ``n`` zero bytes from a cache, so a hole chunk costs
  no pass over zeros (chunks are cut on a grid, so a job meets two or three lengths);
- :func:`nonzero_runs` and :func:`is_zero` find zeros in data that was read (a volume's unused
  blocks), so that a file destination leaves them as holes too. They compare against a constant
  zero block with ``bytes.startswith`` (``memcmp``, about 20 GB/s here), which stops at the first
  non-zero byte: ordinary data costs almost nothing to scan.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mover.digests import Digest, Hasher, digest
from mover.provider import KiB, MiB, StoreProvider

if TYPE_CHECKING:
    from mover.motion import ChunkContext

#: The constant zero block that scans compare against and hashes of zeros are fed from (small
#: enough to stay in the CPU's cache, which is what makes hashing from it fast).
ZERO_BLOCK_BYTES = 1 * MiB
_ZEROS = bytes(ZERO_BLOCK_BYTES)
#: File destinations leave all-zero blocks of this size unwritten (holes); a file system's
#: clusters are 4-64 KiB, so finer would find no more holes.
SCAN_BLOCK_BYTES = 64 * KiB
#: A chunk's data is read in slices of at most this much, so that progress and cancellation
#: are seen within a slice rather than a whole part.
READ_SLICE_BYTES = 16 * MiB


def is_zero(view: memoryview) -> bool:
    """Whether every byte of ``view`` is zero."""
    for start in range(0, len(view), ZERO_BLOCK_BYTES):
        if not _ZEROS.startswith(view[start : start + ZERO_BLOCK_BYTES]):
            return False
    return True


def nonzero_runs(view: memoryview, block: int = SCAN_BLOCK_BYTES) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` runs of ``view`` that hold a non-zero byte, in ``block`` steps
    (a run starts and ends on a block boundary, or at the end of ``view``)."""
    block = min(block, ZERO_BLOCK_BYTES)
    run: int | None = None
    size = len(view)
    for pos in range(0, size, block):
        if _ZEROS.startswith(view[pos : pos + block]):
            if run is not None:
                yield run, pos
                run = None
        elif run is None:
            run = pos
    if run is not None:
        yield run, size


def feed_zeros(hasher: Hasher, length: int) -> None:
    """Update ``hasher`` with ``length`` zero bytes, from the cached zero block."""
    while length > 0:
        step = min(length, ZERO_BLOCK_BYTES)
        hasher.update(_ZEROS[:step] if step < ZERO_BLOCK_BYTES else _ZEROS)
        length -= step


@functools.lru_cache(maxsize=64)
def zero_digest(algorithm: str, length: int) -> Digest:
    """The digest of ``length`` zero bytes; computed once per (algorithm, length)."""
    hasher = Hasher(algorithm)
    feed_zeros(hasher, length)
    return hasher.digest()


_prefix_lock = threading.Lock()
#: sha256 states after 0, 1, 2, ... :data:`SCAN_BLOCK_BYTES` blocks of zeros (built on demand,
#: each from the one before: one pass over a chunk's worth of zeros per process).
_sha256_after_zeros: list[hashlib._Hash] = [hashlib.sha256()]


def sha256_hex(view: memoryview) -> str:
    """The sha256 (hex) of ``view``, its leading zero blocks not hashed again: the state after
    them comes from a cache (a chunk of a thin volume often starts in a hole). Trailing zeros
    still cost their pass: sha256 has no shortcut for them."""
    lead = next(nonzero_runs(view), (len(view), len(view)))[0] // SCAN_BLOCK_BYTES
    with _prefix_lock:
        while len(_sha256_after_zeros) <= lead:
            state = _sha256_after_zeros[-1].copy()
            state.update(_ZEROS[:SCAN_BLOCK_BYTES])
            _sha256_after_zeros.append(state)
        hasher = _sha256_after_zeros[lead].copy()
    hasher.update(view[lead * SCAN_BLOCK_BYTES :])
    return hasher.hexdigest()


def fill_zeros(view: memoryview) -> None:
    """Set every byte of ``view`` to zero."""
    for start in range(0, len(view), ZERO_BLOCK_BYTES):
        piece = view[start : start + ZERO_BLOCK_BYTES]
        piece[:] = _ZEROS[: len(piece)]


@dataclass(frozen=True)
class Filled:
    """What :func:`read_chunk` put in the buffer.

    Attributes:
        got: bytes of the range covered from its start (read, or known zero); fewer than asked
            when the source ended first.
        hole: the whole range is a hole: nothing was read and the buffer was left as it was.
        read: bytes actually read from the source.
    """

    got: int
    hole: bool
    read: int


#: ``read_chunk(extents=ASK)``: ask the store for the range's data extents.
ASK = "ask"


def read_chunk(
    store: StoreProvider,
    key: str,
    offset: int,
    view: memoryview,
    ctx: ChunkContext | None = None,
    *,
    fill_holes: bool = False,
    extents: list[tuple[int, int]] | Literal["ask"] | None = ASK,
    reader: Callable[[int, memoryview], int] | None = None,
) -> Filled:
    """Fill ``view`` with ``key``'s bytes from ``offset``, reading only its data extents.

    Holes between extents are zeroed in the buffer. A range that is one hole is neither read
    nor zeroed (``hole`` is set; the caller uses :func:`zero_digest` and
    :meth:`~mover.provider.ChunkWriter.write_zeros`) unless ``fill_holes``. A store that cannot
    tell its holes is read whole. ``extents``: the range's data extents if the caller has
    them (:class:`ExtentMap`), else they are asked of the store. ``ctx`` (optional) is told of
    progress, holes included, and checked for cancellation between slices. ``reader(offset,
    view)`` reads data (default: ``store.read_into``); a strategy passes one that pins reads
    to the version the job was prepared from.
    """
    length = len(view)
    if extents == ASK:
        extents = store.data_extents(key, offset, length) if length else None
    if extents is None or extents == ASK:
        extents = [(offset, offset + length)]
    elif not extents:
        if fill_holes:
            fill_zeros(view)
        if ctx is not None:
            ctx.progress(length)
        return Filled(length, True, 0)
    pos = offset  # everything before pos is in the buffer
    read = 0
    for start, end in extents:
        if start > pos:
            fill_zeros(view[pos - offset : start - offset])
            if ctx is not None:
                ctx.progress(start - pos)
            pos = start
        n = _read_range(store, key, pos, view[pos - offset : end - offset], ctx, reader)
        read += n
        pos += n
        if pos < end:  # the source ended early
            return Filled(pos - offset, False, read)
    if pos < offset + length:
        fill_zeros(view[pos - offset :])
        if ctx is not None:
            ctx.progress(offset + length - pos)
    return Filled(length, False, read)


class ExtentMap:
    """The data extents of one object, asked of its store a window at a time: a reader going
    through a thin volume in order asks once per :data:`WINDOW_BYTES` instead of once per
    chunk, and knows a hole chunk is one before it takes a buffer for it.

    The answer is as fresh as a per-chunk one for a source that does not change while it is
    read; one that does is not consistent either way (see the job's notes on live sources).
    """

    #: How much of the object one question covers.
    WINDOW_BYTES = 1024 * MiB

    def __init__(self, store: StoreProvider, key: str, size: int) -> None:
        self.store, self.key, self.size = store, key, size
        self._start = self._end = 0
        self._extents: list[tuple[int, int]] | None = None

    def __call__(self, offset: int, length: int) -> list[tuple[int, int]] | None:
        """The data extents within ``[offset, offset + length)``, as
        :meth:`~mover.provider.StoreProvider.data_extents` answers."""
        end = offset + length
        if not (self._start <= offset and end <= self._end):
            self._start = offset
            self._end = min(self.size, max(end, offset + self.WINDOW_BYTES))
            self._extents = self.store.data_extents(self.key, offset, self._end - offset)
        if self._extents is None:
            return None
        return [(max(a, offset), min(b, end)) for a, b in self._extents if b > offset and a < end]


def _read_range(
    store: StoreProvider,
    key: str,
    offset: int,
    view: memoryview,
    ctx: ChunkContext | None,
    reader: Callable[[int, memoryview], int] | None = None,
) -> int:
    """Read ``view`` full from ``offset`` in slices; the count read (short at the end)."""
    got = 0
    while got < len(view):
        if ctx is not None:
            ctx.check()
        piece = view[got : got + READ_SLICE_BYTES]
        n = reader(offset + got, piece) if reader else store.read_into(key, offset + got, piece)
        if n == 0:
            break
        got += n
        if ctx is not None:
            ctx.progress(n)
    return got


def chunk_digest(algorithm: str, view: memoryview, filled: Filled) -> Digest:
    """The digest of a chunk :func:`read_chunk` filled: from the cache for a hole."""
    if filled.hole:
        return zero_digest(algorithm, filled.got)
    return digest(algorithm, view[: filled.got])


def bytes_to_store(
    source: StoreProvider,
    key: str,
    size: int | None,
    allocated: int | None,
    destination: StoreProvider,
) -> int | None:
    """How many bytes a copy of ``key`` takes at ``destination``: its data only where the
    destination keeps holes (``sparse_write``: ``allocated`` when the caller has it, else
    the data extents' total), else ``size``. For free-space checks, before any byte moves."""
    if size is None or not destination.capabilities.sparse_write:
        return size
    if allocated is not None:
        return min(size, allocated)
    extents = source.data_extents(key, 0, size) if size else None
    if extents is None:
        return size
    return sum(end - start for start, end in extents)
