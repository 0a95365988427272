"""The provider contract, case by case, for every provider on its real server (rclone's habit:
one suite for every backend). A case a provider cannot take is skipped by what it *declares*
(its Capabilities), never by its name; objects are put and read back with the server's own
client or the file system, not with the provider under test.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from mover.digests import digest
from mover.dispatcher import get_strategy, strategies
from mover.errors import (
    BadLocation,
    KeyEscapesRoot,
    MoverError,
    ObjectNotFound,
    UsageError,
)
from mover.location import parse
from mover.motion import ChunkContext, Endpoint, Options, Priority
from mover.provider import KiB, StoreProvider
from mover.reading import can_read_sequentially, open_sequential
from tests.conformance.conftest import Rig, absent

pytestmark = [pytest.mark.integration, pytest.mark.conformance]

SIZE = 300 * KiB + 17


def _data(n: int = SIZE) -> bytes:
    return os.urandom(n)


def _overridden(store: StoreProvider, name: str) -> bool:
    return getattr(type(store), name) is not getattr(StoreProvider, name)


def _writable(rig: Rig) -> bool:
    caps = rig.store.capabilities
    return bool(caps.writable and caps.chunk_writer)


def _need_writer(rig: Rig) -> None:
    if not _writable(rig):
        pytest.skip(f"{rig.name} declares no chunk writer")


# --- what it declares ----------------------------------------------------------------------


def test_capabilities_match_methods(rig: Rig) -> None:
    caps = rig.store.capabilities
    declared = {
        "ranged_read": ("read_into",),
        "sequential_read": ("open_read",),
        "chunk_writer": ("open_writer", "resume_writer"),
        "atomic_put_max_bytes": ("put",),
        "server_side_copy": ("can_copy_from", "copy_server_side"),
        "local_path": ("local_path",),
    }
    for capability, methods in declared.items():
        if getattr(caps, capability):
            for method in methods:
                assert _overridden(rig.store, method), f"{capability} declared, {method} missing"
    assert caps.readable and (caps.ranged_read or caps.sequential_read)


# --- reading -------------------------------------------------------------------------------


def test_stat(rig: Rig) -> None:
    data = _data()
    rig.seed(rig.key("s/one.bin"), data)
    info = rig.store.stat(rig.key("s/one.bin"))
    assert info.key == rig.key("s/one.bin")
    assert info.size in (len(data), None)  # None: a store that cannot tell without reading
    if rig.store.capabilities.ranged_read:
        assert info.size == len(data)


def test_ranged_read(rig: Rig) -> None:
    if not rig.store.capabilities.ranged_read:
        pytest.skip(f"{rig.name} declares no ranged_read")
    data = _data()
    key = rig.key("r/one.bin")
    rig.seed(key, data)
    buf = bytearray(5000)
    assert rig.store.read_into(key, 1000, memoryview(buf)) == 5000
    assert bytes(buf) == data[1000:6000]
    tail = bytearray(100)
    got = rig.store.read_into(key, len(data) - 40, memoryview(tail))
    assert got == 40 and bytes(tail[:40]) == data[-40:]


def test_sequential_read(rig: Rig) -> None:
    data = _data()
    key = rig.key("q/one.bin")
    rig.seed(key, data)
    assert can_read_sequentially(rig.store.capabilities, len(data))
    stream = open_sequential(rig.store, key, len(data))
    try:
        assert stream.read() == data
    finally:
        stream.close()


def test_list(rig: Rig) -> None:
    one, two = _data(10), _data(20)
    rig.seed(rig.key("l/a.bin"), one)
    rig.seed(rig.key("l/sub/b.bin"), two)
    named = list(rig.store.list(rig.key("l/a.bin")))
    assert [(i.key, i.size) for i in named] == [(rig.key("l/a.bin"), 10)]
    if not rig.store.capabilities.listing:
        with pytest.raises(MoverError):  # lists only the object named, and says so
            list(rig.store.list(rig.key("l/")))
        return
    found = {i.key: i.size for i in rig.store.list(rig.key("l/"))}
    assert found == {rig.key("l/a.bin"): 10, rig.key("l/sub/b.bin"): 20}


# --- writing -------------------------------------------------------------------------------


def _part_bytes(rig: Rig) -> int:
    limits = rig.store.capabilities.chunk_writer
    assert limits is not None
    return max(limits.min_part_bytes, 64 * KiB)


def _open_writer(rig: Rig, key: str, size: int, step: int):
    """A writer for ``key``; its parts will be ``step`` bytes (the writer is not told: parts
    come as the strategy planned them)."""
    rig.store.make_parents(key)  # as executors do before the first write
    return rig.store.open_writer(key, size)


def test_write_parts_and_commit(rig: Rig) -> None:
    _need_writer(rig)
    step = _part_bytes(rig)
    data = _data(step + 1234)
    key = rig.key("w/new.bin")
    algorithm = rig.store.capabilities.checksum_algorithms[0]
    writer = _open_writer(rig, key, len(data), step)
    first = writer.write_part(0, 0, memoryview(data[:step]), digest(algorithm, data[:step]))
    # The second part through a writer re-opened from the first one's state (another task).
    again = rig.store.resume_writer(key, writer.state())
    second = again.write_part(1, step, memoryview(data[step:]), digest(algorithm, data[step:]))
    assert (first.part, first.size, second.part, second.size) == (0, step, 1, len(data) - step)
    info = again.commit([first, second], len(data))
    assert info.size == len(data)
    assert rig.fetch(key) == data


def test_abort(rig: Rig) -> None:
    _need_writer(rig)
    step = _part_bytes(rig)
    data = _data(step)
    key = rig.key("w/aborted.bin")
    algorithm = rig.store.capabilities.checksum_algorithms[0]
    writer = _open_writer(rig, key, len(data) * 2, step)
    writer.write_part(0, 0, memoryview(data), digest(algorithm, data))
    writer.abort()
    writer.abort()  # safe twice
    assert absent(rig, key)


def test_abort_keeps_an_existing_object(rig: Rig) -> None:
    _need_writer(rig)
    key = rig.key("w/kept.bin")
    old = _data(100)
    rig.seed(key, old)
    writer = _open_writer(rig, key, 100, _part_bytes(rig))
    writer.abort()
    assert rig.fetch(key) == old


def test_delete(rig: Rig) -> None:
    if not rig.store.capabilities.writable:
        pytest.skip(f"{rig.name} declares it is not writable")
    key = rig.key("d/gone.bin")
    data = _data(100)
    rig.seed(key, data)
    try:
        rig.store.delete(key)
    except UsageError:  # a store that cannot delete says so, and keeps the object
        assert rig.fetch(key) == data
        return
    assert absent(rig, key)
    with pytest.raises(ObjectNotFound):
        rig.store.delete(key)


# --- errors --------------------------------------------------------------------------------


def test_missing_object(rig: Rig) -> None:
    key = rig.key("m/absent.bin")
    with pytest.raises(ObjectNotFound):
        rig.store.stat(key)
    with pytest.raises(MoverError):
        stream = open_sequential(rig.store, key, 10)
        stream.read()
    if rig.store.capabilities.ranged_read:
        with pytest.raises(MoverError):
            rig.store.read_into(key, 0, memoryview(bytearray(10)))


def test_bad_key_and_escaping_root(rig: Rig) -> None:
    with pytest.raises(KeyEscapesRoot):
        rig.base.child("../" * 64 + "etc/passwd")  # above the root, however deep it is
    rooted = replace(rig.base, root=rig.base.key.rstrip("/"), key="")
    with pytest.raises(KeyEscapesRoot):
        rooted.child("../outside.bin")
    url = rig.base.url
    with pytest.raises(BadLocation):
        parse(url + "bad\x00key")


# --- every strategy the provider can take part in -------------------------------------------


def _pairs(rig: Rig, partner: Rig) -> list[tuple[str, Rig, Rig]]:
    """(strategy, source, destination) for each strategy that claims a pair with ``rig`` as
    the source or the destination (and with itself: server-side copies)."""
    out = []
    for src, dst in ((rig, partner), (partner, rig), (rig, rig)):
        if not (src.store.capabilities.readable and _writable(dst)):
            continue
        probe_src = Endpoint(src.store, src.loc("x/src.bin"), src.store.stat(src.key("x/src.bin")))
        probe_dst = Endpoint(dst.store, dst.loc(f"y/{src.name}-{dst.name}.bin"))
        for name in strategies.names():
            if get_strategy(name).can_handle(probe_src, probe_dst) != Priority.CANT_HANDLE:
                out.append((name, src, dst))
    return out


def test_every_strategy_it_claims(rig: Rig, partner: Rig) -> None:
    data = _data(2 * _part_bytes(rig) + 99 if _writable(rig) else SIZE)
    rig.seed(rig.key("x/src.bin"), data)
    partner.seed(partner.key("x/src.bin"), data)
    pairs = _pairs(rig, partner)
    assert pairs, f"no strategy moves anything to or from {rig.name}"
    for name, src, dst in pairs:
        strategy = get_strategy(name)
        source = Endpoint(src.store, src.loc("x/src.bin"), src.store.stat(src.key("x/src.bin")))
        target = dst.loc(f"y/{name}-{src.name}-to-{dst.name}.bin")
        destination = Endpoint(dst.store, target)
        dst.store.make_parents(target.full_key)
        step = _part_bytes(dst)
        plan = strategy.plan(source, destination, Options(streams=2, chunk_size=step))
        receipts = [
            strategy.run_chunk(source, destination, plan, chunk, ChunkContext())
            for chunk in plan.chunks
        ]
        strategy.commit(source, destination, plan, receipts)
        assert dst.fetch(target.full_key) == data, f"{name}: {src.name} -> {dst.name}"
