"""Chunk planning: sizes within the destination's limits, at the edges."""

from __future__ import annotations

import itertools

import pytest

from mover.errors import NotEnoughSpace, UsageError
from mover.planning import choose_chunk_size, make_chunks
from mover.provider import GiB, MiB, PartLimits, TiB

S3 = PartLimits(
    min_part_bytes=5 * MiB,
    max_part_bytes=5 * GiB,
    max_parts=10_000,
    preferred_part_bytes=64 * MiB,
    single_put_below_bytes=0,
)


def test_zero_bytes_is_one_empty_chunk() -> None:
    size, _ = choose_chunk_size(0, S3)
    chunks = make_chunks(0, size)
    assert [(c.offset, c.length) for c in chunks] == [(0, 0)]


def test_one_byte_is_one_chunk() -> None:
    size, _ = choose_chunk_size(1, S3)
    assert [(c.offset, c.length) for c in make_chunks(1, size)] == [(0, 1)]


def test_chunks_cover_the_object_exactly() -> None:
    total = 300 * MiB + 7
    size, _ = choose_chunk_size(total, S3)
    chunks = make_chunks(total, size)
    assert chunks[0].offset == 0
    assert sum(c.length for c in chunks) == total
    for a, b in itertools.pairwise(chunks):
        assert a.offset + a.length == b.offset
    assert all(c.length <= size for c in chunks)
    assert all(c.length >= S3.min_part_bytes for c in chunks[:-1])


def test_medium_object_is_split_across_streams() -> None:
    size, _ = choose_chunk_size(100 * MiB, S3, streams=4)
    assert len(make_chunks(100 * MiB, size)) == 4


def test_five_tib_fits_within_ten_thousand_parts() -> None:
    total = 5 * TiB
    size, notes = choose_chunk_size(total, S3)
    chunks = make_chunks(total, size)
    assert len(chunks) <= 10_000
    assert S3.min_part_bytes <= size <= S3.max_part_bytes
    assert notes and "10,000 parts" in notes[0]


def test_exactly_max_parts_at_preferred_size_is_not_raised() -> None:
    total = 10_000 * 64 * MiB
    size, notes = choose_chunk_size(total, S3)
    assert size == 64 * MiB and not notes
    assert len(make_chunks(total, size)) == 10_000


def test_one_byte_more_than_max_parts_raises_the_part_size() -> None:
    total = 10_000 * 64 * MiB + 1
    size, notes = choose_chunk_size(total, S3)
    assert size > 64 * MiB and notes
    assert len(make_chunks(total, size)) <= 10_000


def test_largest_possible_object_fits_and_one_more_byte_does_not() -> None:
    biggest = 10_000 * 5 * GiB
    size, _ = choose_chunk_size(biggest, S3)
    assert size == 5 * GiB
    with pytest.raises(NotEnoughSpace, match="cannot fit"):
        choose_chunk_size(biggest + 1, S3)


def test_requested_chunk_size_outside_limits_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="below the smallest part"):
        choose_chunk_size(100 * MiB, S3, requested=1 * MiB)
    with pytest.raises(UsageError, match="above the largest part"):
        choose_chunk_size(100 * MiB, S3, requested=6 * GiB)


def test_requested_chunk_size_is_kept() -> None:
    size, _ = choose_chunk_size(100 * MiB, S3, requested=8 * MiB)
    assert size == 8 * MiB


def test_unknown_size_is_one_stream_chunk() -> None:
    size, _ = choose_chunk_size(None, S3)
    assert [(c.offset, c.length) for c in make_chunks(None, size)] == [(0, None)]
