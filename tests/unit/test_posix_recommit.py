"""A file commit repeated after its rename (a commit-lease takeover, a resume whose committer
died before recording it) succeeds only when the destination holds exactly the parts written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mover.digests import digest
from mover.errors import TransferError
from mover.location import parse
from mover.providers.posix import PosixProvider


def _write(tmp_path: Path) -> tuple[PosixProvider, str, list[Any], int, dict[str, Any], bytes]:
    store = PosixProvider.open(parse(str(tmp_path) + "/"))
    key = str(tmp_path / "out.bin").lstrip("/")
    data = os.urandom(3 * 1024 * 1024 + 5)
    writer = store.open_writer(key, len(data))
    receipts = []
    for part, offset in enumerate(range(0, len(data), 1024 * 1024)):
        piece = memoryview(data)[offset : offset + 1024 * 1024]
        receipts.append(writer.write_part(part, offset, piece, digest("xxh3_128", piece)))
    state = writer.state()
    writer.commit(receipts, len(data))
    return store, key, receipts, len(data), state, data


def test_second_commit_finds_the_file_complete(tmp_path: Path) -> None:
    store, key, receipts, size, state, data = _write(tmp_path)
    again = store.resume_writer(key, state)
    info = again.commit(receipts, size)
    assert info.size == size
    assert (tmp_path / "out.bin").read_bytes() == data


def test_second_commit_refuses_a_changed_file(tmp_path: Path) -> None:
    store, key, receipts, size, state, _ = _write(tmp_path)
    with open(tmp_path / "out.bin", "r+b") as f:
        f.seek(2 * 1024 * 1024 + 7)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(TransferError, match="part 2 differs"):
        store.resume_writer(key, state).commit(receipts, size)
