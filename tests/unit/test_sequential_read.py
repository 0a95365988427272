"""``sequential_read`` is declared, never assumed: streams built on ranged reads, and a
store that can do neither fails with a MoverError one-liner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mover.errors import MoverError, NoStrategy
from mover.location import parse
from mover.motion import Endpoint, Priority
from mover.provider import Capabilities, ObjectInfo, StoreProvider
from mover.reading import can_read_sequentially, open_sequential
from mover.resolve import open_location
from mover.strategies.motion.single_stream import SingleStreamStrategy

DATA = bytes(range(256)) * 4099


class _RangedOnly(StoreProvider):
    """Reads by range only, as S3 does; counts its requests."""

    scheme = "rangedonly"
    caps = Capabilities(ranged_read=True)

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.reads = 0

    @property
    def capabilities(self) -> Capabilities:
        return self.caps

    def stat(self, key: str) -> ObjectInfo:
        return ObjectInfo(key, len(DATA))

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        self.reads += 1
        piece = DATA[offset : offset + len(buf)]
        buf[: len(piece)] = piece
        return len(piece)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        yield self.stat(prefix)

    def delete(self, key: str) -> None:
        pass


class _Unreadable(_RangedOnly):
    caps = Capabilities(ranged_read=False)


def test_stream_built_on_ranged_reads() -> None:
    store = _RangedOnly(parse("rangedonly://b/k"))
    stream = open_sequential(store, "k", len(DATA))
    assert stream.read() == DATA
    assert store.reads <= 3  # large pieces, not one request per small read


def test_neither_sequential_nor_ranged_is_a_mover_error() -> None:
    store = _Unreadable(parse("rangedonly://b/k"))
    assert not can_read_sequentially(store.capabilities, len(DATA))
    with pytest.raises(MoverError, match="cannot read"):
        open_sequential(store, "k", len(DATA))
    with pytest.raises(MoverError):  # the base class's default, not NotImplementedError
        store.open_read("k")


def test_single_stream_asks_the_capability() -> None:
    out, _ = open_location("-")
    ranged = _RangedOnly(parse("rangedonly://b/k"))
    strategy = SingleStreamStrategy()
    dst = Endpoint(out, parse("-"))
    src = Endpoint(ranged, parse("rangedonly://b/k"), ranged.stat("k"))
    assert strategy.can_handle(src, dst) == Priority.FALLBACK
    unknown = Endpoint(ranged, parse("rangedonly://b/k"), ObjectInfo("k", None))
    assert strategy.can_handle(unknown, dst) == Priority.CANT_HANDLE
    none = _Unreadable(parse("rangedonly://b/k"))
    assert strategy.can_handle(Endpoint(none, parse("rangedonly://b/k"), none.stat("k")), dst) == (
        Priority.CANT_HANDLE
    )
    assert issubclass(NoStrategy, MoverError)
