"""Chunk planning: the part size for an object, within the destination's limits.

The part size starts from what the destination does best with (``preferred_part_bytes``; 64 MiB
measured best here), is cut down so that every stream has work on a medium-sized object, and is
raised when the object would otherwise need more parts than the store allows (S3: 10,000). An
object that cannot fit even at the largest part is refused before any byte moves.
"""

from __future__ import annotations

from collections.abc import Sequence

from mover.errors import NotEnoughSpace, UsageError
from mover.motion import Chunk
from mover.provider import MiB, PartLimits

#: Part sizes are rounded up to a multiple of this, so that they stay aligned for page I/O.
ALIGN_BYTES = 1 * MiB
#: Below this, splitting a medium object across streams costs more than it brings.
MIN_SPLIT_BYTES = 8 * MiB


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def human(n: int | None) -> str:
    """Bytes in binary units (``1.5 GiB``)."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def choose_chunk_size(
    size: int | None,
    limits: PartLimits,
    requested: int | None = None,
    streams: int = 4,
    where: str = "the destination",
) -> tuple[int, list[str]]:
    """Return ``(chunk_size, notes)`` for an object of ``size`` bytes (None: a stream).

    Raises :class:`UsageError` when ``requested`` is outside the part limits and
    :class:`NotEnoughSpace` when the object cannot fit in ``max_parts`` parts of the largest size.
    """
    notes: list[str] = []
    if requested is not None:
        if requested <= 0:
            raise UsageError("--chunk-size must be positive")
        if requested > limits.max_part_bytes:
            raise UsageError(
                f"--chunk-size {human(requested)} is above the largest part "
                f"{where} accepts ({human(limits.max_part_bytes)})"
            )
        if requested < limits.min_part_bytes and (size is None or size > requested):
            raise UsageError(
                f"--chunk-size {human(requested)} is below the smallest part "
                f"{where} accepts ({human(limits.min_part_bytes)})"
            )
        chunk = requested
    else:
        chunk = max(limits.preferred_part_bytes, limits.min_part_bytes)
        if size is not None and size > 0:
            if size < limits.single_put_below_bytes:
                chunk = size
            elif size < chunk * streams:
                # Medium object: split so that every stream has a part to move.
                share = _round_up(-(-size // max(streams, 1)), ALIGN_BYTES)
                chunk = max(limits.min_part_bytes, MIN_SPLIT_BYTES, min(chunk, share))
    if size is None:
        return min(chunk, limits.max_part_bytes), notes
    capacity = limits.max_part_bytes * limits.max_parts
    if size > capacity:
        raise NotEnoughSpace(
            f"object of {human(size)} cannot fit {where}: at most {limits.max_parts:,} parts "
            f"of {human(limits.max_part_bytes)} ({human(capacity)})"
        )
    if size > chunk * limits.max_parts:
        raised = _round_up(-(-size // limits.max_parts), ALIGN_BYTES)
        raised = min(raised, limits.max_part_bytes)
        notes.append(
            f"chunk size raised from {human(chunk)} to {human(raised)} to stay within "
            f"{limits.max_parts:,} parts"
        )
        chunk = raised
    return max(chunk, 1), notes


def make_chunks(size: int | None, chunk_size: int) -> list[Chunk]:
    """The chunks covering ``size`` bytes; one chunk for an empty object or a stream."""
    if size is None:
        return [Chunk(0, 0, None)]
    if size == 0:
        return [Chunk(0, 0, 0)]
    return [
        Chunk(i, offset, min(chunk_size, size - offset))
        for i, offset in enumerate(range(0, size, chunk_size))
    ]


def slices_for(length: int, chunk_size: int, min_part_bytes: int) -> int:
    """How many destination parts a chunk of ``length`` bytes is written as: pieces of at most
    about ``chunk_size`` (what one stream holds in memory), each at least ``min_part_bytes``
    (S3 refuses smaller parts but the last)."""
    n = -(-length // max(chunk_size, 1))
    if min_part_bytes > 1:
        n = min(n, max(1, length // min_part_bytes))
    return max(1, n)


def slice_lengths(length: int, count: int) -> list[int]:
    """``length`` split into ``count`` nearly equal pieces, the longer first."""
    base, extra = divmod(length, count)
    return [base + 1 if i < extra else base for i in range(count)]


def aligned_chunks(
    ranges: Sequence[tuple[int, int]], chunk_size: int, limits: PartLimits
) -> tuple[list[Chunk], list[int]]:
    """Chunks that begin and end on the source's range boundaries, and the destination parts
    each is written as (``[]`` when every chunk is one part).

    Consecutive ranges are grouped up to ``chunk_size`` bytes, so that every range's digest is
    computed from the bytes of one chunk. A range larger than ``chunk_size`` is one chunk read
    in order in slices (memory stays at ``chunk_size``), each slice a destination part; a group
    too small to be a part (``min_part_bytes``) joins the next range. Parts never exceed
    ``max_parts``: ``chunk_size`` grows until they fit.
    """
    while True:
        chunks, slices = _group(ranges, chunk_size, limits.min_part_bytes)
        if sum(slices) <= limits.max_parts or chunk_size >= limits.max_part_bytes:
            break
        chunk_size = min(limits.max_part_bytes, chunk_size * 2)
    if all(n == 1 for n in slices):
        slices = []
    return chunks, slices


def _group(
    ranges: Sequence[tuple[int, int]], chunk_size: int, min_part: int
) -> tuple[list[Chunk], list[int]]:
    bounds: list[tuple[int, int]] = []  # (offset, length) of each chunk
    start, length = 0, 0
    for offset, n in ranges:
        if length == 0:
            start = offset
        if length and length + n > chunk_size and length >= min_part:
            bounds.append((start, length))
            start, length = offset, 0
        length += n
    if length or not bounds:
        bounds.append((start, length))
    chunks = [Chunk(i, offset, n) for i, (offset, n) in enumerate(bounds)]
    slices = [slices_for(n, chunk_size, min_part) if n > chunk_size else 1 for _, n in bounds]
    return chunks, slices
