"""Holes and zeros, fast: the helpers of :mod:`mover.sparse`, the file store's sparse writes
and the snapshot manifest's zero chunks, on real sparse files in a temporary folder (no root
needed). Byte-level results are checked against hashlib and the file system's own counts."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from mover import catalogue as cat
from mover.catalogue import snapshots as legacy
from mover.catalogue.store import Catalogue
from mover.digests import ALGORITHMS, digest
from mover.errors import VerificationFailed
from mover.location import parse
from mover.providers import memory
from mover.providers.posix import PosixProvider
from mover.sparse import ExtentMap, is_zero, nonzero_runs, read_chunk, sha256_hex, zero_digest
from tests.independent import allocated_bytes, chunks_sha256

KiB = 1024
MiB = 1024 * KiB


class CountingPosix(PosixProvider):
    """The real file store, counting what it reads and how often it is asked for extents."""

    def __init__(self) -> None:
        super().__init__(parse("file:///"))
        self.read = 0
        self.asked = 0

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        n = super().read_into(key, offset, buf)
        self.read += n
        return n

    def data_extents(self, key: str, offset: int, length: int) -> Any:
        self.asked += 1
        return super().data_extents(key, offset, length)


def _sparse(path: Path, size: int, extents: list[tuple[int, int]]) -> bytes:
    """A sparse file with random data at ``extents``; returns its whole content."""
    data = bytearray(size)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, length in extents:
            piece = os.urandom(length)
            data[offset : offset + length] = piece
            f.seek(offset)
            f.write(piece)
    return bytes(data)


def test_zero_scans() -> None:
    block = 64 * KiB
    buf = bytearray(10 * block + 5)
    assert is_zero(memoryview(buf)) and list(nonzero_runs(memoryview(buf))) == []
    buf[3 * block + 1] = 1
    buf[4 * block] = 2
    buf[9 * block] = 3
    buf[-1] = 4
    assert not is_zero(memoryview(buf))
    assert list(nonzero_runs(memoryview(buf))) == [
        (3 * block, 5 * block),
        (9 * block, len(buf)),
    ]
    assert is_zero(memoryview(buf)[: 3 * block])


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_zero_digest_is_the_digest_of_zeros(algorithm: str) -> None:
    for length in (0, 1, MiB - 1, 3 * MiB + 17):
        assert zero_digest(algorithm, length) == digest(algorithm, bytes(length))
    assert zero_digest("sha256", 5).hex == hashlib.sha256(bytes(5)).hexdigest()


@pytest.mark.parametrize("lead", [0, 1, 64 * KiB - 1, 64 * KiB, 3 * 64 * KiB + 5, 2 * MiB])
def test_sha256_with_cached_zero_prefix_is_sha256(lead: int) -> None:
    buf = bytearray(2 * MiB)
    buf[lead : lead + 10] = os.urandom(10)[: len(buf) - lead]
    assert sha256_hex(memoryview(buf)) == hashlib.sha256(buf).hexdigest()


def test_read_chunk_reads_data_extents_only(tmp_path: Path) -> None:
    path = tmp_path / "thin"
    data = _sparse(path, 64 * MiB, [(MiB + 7, 100), (40 * MiB, 2 * MiB)])
    store = CountingPosix()
    buf = bytearray(16 * MiB)
    view = memoryview(buf)
    buf[:] = b"\xff" * len(buf)  # stale bytes from an earlier chunk must not survive

    filled = read_chunk(store, str(path), 0, view)
    assert not filled.hole and filled.got == 16 * MiB
    assert bytes(buf) == data[: 16 * MiB]
    assert store.read <= 1 * MiB  # the block around the 100 bytes, not 16 MiB

    store.read = 0
    buf[:] = b"\xff" * len(buf)
    filled = read_chunk(store, str(path), 16 * MiB, view)
    assert filled.hole and filled.read == 0 and store.read == 0
    assert buf[0] == 0xFF  # a hole chunk's buffer is not even zeroed...
    filled = read_chunk(store, str(path), 16 * MiB, view, fill_holes=True)
    assert filled.hole and bytes(buf) == bytes(len(buf))  # ...unless asked

    # A file shorter than the range: read, and the short read is reported.
    filled = read_chunk(store, str(path), 56 * MiB, view)
    assert filled.got == 8 * MiB and not filled.hole


def test_extent_map_asks_once_per_window(tmp_path: Path) -> None:
    path = tmp_path / "thin"
    _sparse(path, 256 * MiB, [(100 * MiB, MiB)])
    store = CountingPosix()
    emap = ExtentMap(store, str(path), 256 * MiB)
    answers = [emap(offset, 8 * MiB) for offset in range(0, 256 * MiB, 8 * MiB)]
    assert store.asked == 1
    assert [i for i, a in enumerate(answers) if a] == [12]
    assert answers[12] == [(100 * MiB, 101 * MiB)]


def test_file_writer_leaves_zeros_as_holes(tmp_path: Path) -> None:
    store = PosixProvider(parse(f"file://{tmp_path}/"))
    key = f"{tmp_path}/out".lstrip("/")
    size = 32 * MiB
    writer = store.open_writer(key, size)
    part = bytearray(16 * MiB)
    part[5 * MiB : 5 * MiB + 3] = b"abc"
    expected = digest("xxh3_128", part)
    receipts = [writer.write_part(0, 0, memoryview(part), expected)]
    receipts.append(writer.write_zeros(1, 16 * MiB, 16 * MiB, zero_digest("xxh3_128", 16 * MiB)))
    writer.commit(receipts, size)
    out = (tmp_path / "out").read_bytes()
    assert (
        len(out) == size and out[: 16 * MiB] == bytes(part) and out[16 * MiB :] == bytes(16 * MiB)
    )
    assert allocated_bytes(tmp_path / "out") <= 128 * KiB  # one 64 KiB block written


def test_copy_of_a_sparse_file_by_stream_and_by_kernel(tmp_path: Path) -> None:
    import mover

    source = tmp_path / "thin.img"
    data = _sparse(source, 60 * MiB, [(0, MiB), (30 * MiB + 3, 2 * MiB)])
    job = mover.copy(str(source), str(tmp_path / "kernel.img"), chunk_size=8 * MiB)
    assert job.summary()["strategies"] == ["local"]
    assert (tmp_path / "kernel.img").read_bytes() == data
    assert allocated_bytes(tmp_path / "kernel.img") <= 5 * MiB
    # To a memory store: the streaming strategy sends the holes as zeros.
    job = mover.copy(str(source), "memory://m/thin.img", chunk_size=8 * MiB)
    assert job.summary()["strategies"] == ["streaming"] and job.size == 60 * MiB
    assert hashlib.sha256(bytes(memory._OBJECTS["m"]["thin.img"])).hexdigest() == (
        hashlib.sha256(data).hexdigest()
    )


# --- snapshots ----------------------------------------------------------------------------


@pytest.fixture
def backup_store() -> str:
    cat.add_store("backup", "memory://backup/")
    return "backup"


def test_snapshot_stores_zero_chunks_as_nothing(tmp_path: Path, backup_store: str) -> None:
    """The pre-repository layout (still restorable): zero chunks stored as nothing."""
    path = tmp_path / "thin.img"
    data = bytearray(_sparse(path, 16 * MiB, [(3 * MiB + 5, 10), (9 * MiB, 2 * MiB)]))
    with open(path, "r+b") as f:  # one chunk of written zeros
        f.seek(12 * MiB)
        f.write(bytes(MiB))
    first = legacy.backup_snapshot(str(path), backup_store, chunk_size=MiB)
    assert first["chunks"] == 16 and first["chunks_sent"] == 3 and first["zero_chunks"] == 13
    assert first["digest"] == chunks_sha256(bytes(data), MiB)
    stored = sorted(k for k in memory._OBJECTS["backup"] if f"/{first['id']}/" in k)
    assert [k.rsplit("/", 1)[1] for k in stored] == [
        "00000003",
        "00000009",
        "00000010",
        "manifest.json",
    ]
    # A zero chunk that gets data is sent by the next backup; data that becomes zero is not.
    with open(path, "r+b") as f:
        f.seek(14 * MiB)
        f.write(b"new")
        f.seek(9 * MiB)
        f.write(bytes(MiB))
    data[14 * MiB : 14 * MiB + 3] = b"new"
    data[9 * MiB : 10 * MiB] = bytes(MiB)
    second = legacy.backup_snapshot(str(path), backup_store)
    assert second["chunks_sent"] == 1 and second["zero_chunks"] == 13
    out = tmp_path / "restored.img"
    result = cat.restore_snapshot("thin.img", str(out))
    assert out.read_bytes() == bytes(data) and result["digest"] == second["digest"]
    assert allocated_bytes(out) <= 4 * MiB


def test_manifest_v1_is_still_restored_and_verified(tmp_path: Path, backup_store: str) -> None:
    """A backup made before zero chunks (manifest version 1, the volume's whole sha256)."""
    path = tmp_path / "old.img"
    data = os.urandom(5 * MiB + 3)
    path.write_bytes(data)
    made = legacy.backup_snapshot(str(path), backup_store, name="old", chunk_size=MiB)
    key = f"snapshots/old/{made['id']}/manifest.json"
    manifest = json.loads(bytes(memory._OBJECTS["backup"][key]))
    manifest.pop("digest")
    manifest.update(version=1, sha256=hashlib.sha256(data).hexdigest())
    memory._OBJECTS["backup"][key] = json.dumps(manifest).encode()

    out = tmp_path / "restored.img"
    result = cat.restore_snapshot("old", str(out))
    assert out.read_bytes() == data and result["digest"] == f"sha256:{manifest['sha256']}"
    manifest["sha256"] = "0" * 64
    memory._OBJECTS["backup"][key] = json.dumps(manifest).encode()
    with pytest.raises(VerificationFailed, match="differs from the manifest"):
        cat.restore_snapshot("old", str(tmp_path / "bad.img"))
    assert not (tmp_path / "bad.img").exists()
    # The catalogue row of a version 1 backup held a bare hex digest: read back as sha256:.
    with Catalogue()._db() as db:
        db.execute("UPDATE backups SET sha256=?", (hashlib.sha256(data).hexdigest(),))
    assert cat.show_snapshot("old")["backups"][0]["digest"].startswith("sha256:")
