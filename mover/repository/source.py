"""Reading a volume for a backup: ranges, chunks, zeros, and the hook for holes.

Chunks are **fixed-size and aligned to the volume** (1 MiB by default). VM volumes are
block-aligned and mostly unchanged between snapshots: a rewritten block changes exactly the
chunk that holds it, so fixed chunks dedup such data as well as content-defined chunking does,
and cost no rolling hash in Python (restic's CDC is worth it for files that shift, not for
disks that are rewritten in place). 1 MiB rather than 4: with 64 KiB blocks rewritten at random
(qcow2's cluster size), a day that touches 2 % of blocks touches 28 % of 1 MiB chunks but 73 %
of 4 MiB ones (benchmarks/bench_repo_params.py); per-chunk work in Python stays under 1 % of a
chunk's hashing time at 1 MiB.

Reading goes through the provider contract only: ranged reads (``read_into``) of
:data:`READ_BYTES` at a time when the source advertises them, so that ranges are read in
parallel by separate tasks; a sequential stream otherwise (one task, embedded only).

Zeros: a chunk of zeros is detected after reading (a memcmp, about 20 GB/s) and stored as
nothing. :func:`hole_ranges` is the hook where a provider's hole map (``SEEK_DATA`` /
``SEEK_HOLE`` on files) lets a backup skip reading holes at all; it asks the provider's
``data_extents`` when the provider has one, and finds no holes otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from mover.catalogue.objectio import fill
from mover.provider import MiB, StoreProvider
from mover.reading import open_sequential

#: Bytes read per request from a ranged source (a multiple of the chunk size is used).
READ_BYTES = 8 * MiB
#: Bytes of volume per backup range task, at least; grown so a plan has at most MAX_RANGES.
RANGE_BYTES = 64 * MiB
MAX_RANGES = 4096


@dataclass(frozen=True)
class Range:
    index: int
    offset: int
    length: int


#: A range of a thin volume spans at most this many times the range size of volume: a task's
#: hole scan stays short, and a volume with data far apart still has several ranges.
MAX_SPAN_STEPS = 64


def plan_ranges(
    size: int,
    chunk: int,
    range_bytes: int | None = None,
    data: list[tuple[int, int]] | None = None,
) -> list[Range]:
    """Ranges of whole chunks covering ``[0, size)``: the backup's independent tasks.

    Without ``data`` (the volume's data extents, ``(start, end)``), each range is
    ``range_bytes`` of volume. With them, a range is cut once it holds ``range_bytes`` of
    data or spans :data:`MAX_SPAN_STEPS` times that: a thin volume's tasks follow its data, so a
    100 GiB volume holding 1 GiB has tens of tasks, not 1,600 mostly made of holes."""
    per = max(1, (range_bytes or RANGE_BYTES) // chunk)
    while math.ceil(size / (per * chunk)) > MAX_RANGES:
        per *= 2
    step = per * chunk
    if data is None:
        return [Range(i, off, min(step, size - off)) for i, off in enumerate(range(0, size, step))]
    extents = sorted(data)
    ranges: list[Range] = []
    start, held, e = 0, 0, 0
    for off in range(0, size, step):
        stop = min(off + step, size)
        while e < len(extents) and extents[e][1] <= off:
            e += 1
        k = e
        while k < len(extents) and extents[k][0] < stop:
            held += min(extents[k][1], stop) - max(extents[k][0], off)
            k += 1
        if stop == size or held >= step or stop - start >= step * MAX_SPAN_STEPS:
            ranges.append(Range(len(ranges), start, stop - start))
            start, held = stop, 0
    return ranges


def spans(offset: int, length: int, chunk: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of each chunk of a piece that starts on a chunk boundary."""
    end = offset + length
    for off in range(offset, end, chunk):
        yield off, min(chunk, end - off)


def data_extents(
    store: StoreProvider, key: str, offset: int, length: int
) -> list[tuple[int, int]] | None:
    """The data extents of ``[offset, offset+length)`` from the provider's hole map, or None
    (no map, or nothing to map)."""
    extents = getattr(store, "data_extents", None)
    return extents(key, offset, length) if extents is not None and length else None


def hole_ranges(store: StoreProvider, key: str, offset: int, length: int) -> list[tuple[int, int]]:
    """HOOK: holes of ``key`` within ``[offset, offset+length)`` as (offset, length), sorted.

    Chunks wholly inside a hole are recorded as zeros without being read. The hole map comes
    from the provider's ``data_extents(key, offset, length)`` (``(start, end)`` pairs of data,
    None when it cannot tell), which the file store's SEEK_DATA/SEEK_HOLE work adds to the
    contract; until a provider has it, this returns no holes and zeros are found after reading.
    """
    data = data_extents(store, key, offset, length)
    if data is None:
        return []
    holes, pos, end = [], offset, offset + length
    for start, stop in sorted(data):
        if start > pos:
            holes.append((pos, start - pos))
        pos = max(pos, stop)
    if pos < end:
        holes.append((pos, end - pos))
    return holes


def in_hole(holes: list[tuple[int, int]], offset: int, length: int) -> bool:
    return any(h <= offset and offset + length <= h + n for h, n in holes)


class Reader:
    """Reads a source at offsets: ranged reads, or a stream read in order (offsets ignored)."""

    def __init__(self, store: StoreProvider, key: str, sequential: bool) -> None:
        self.store = store
        self.key = key
        self.stream: BinaryIO | None = open_sequential(store, key, None) if sequential else None

    def read(self, offset: int, view: memoryview) -> int:
        if self.stream is not None:
            return fill(self.stream, view)
        got = 0
        while got < len(view):
            n = self.store.read_into(self.key, offset + got, view[got:])
            if n == 0:
                break
            got += n
        return got

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def is_zero(view: memoryview, zeros: bytes) -> bool:
    """All bytes zero? Two probes first, then one memcmp (``zeros`` is at least as long)."""
    n = len(view)
    if not n or view[0] or view[n - 1] or view[n // 2]:
        return not n
    return view.tobytes() == zeros[:n]
