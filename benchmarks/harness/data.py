"""The data the cases copy: random large files and trees of small files, warmed."""

from __future__ import annotations

import filecmp
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from .base import SMALL_FILE_BYTES, SMALL_FOLDERS, WRITE_SLICE_BYTES


def write_random(path: Path, size: int, extents: Sequence[tuple[int, int]] | None = None) -> None:
    """Write ``size`` random bytes (incompressible, so no file system or store can cheat), or
    only the ``extents`` ``(offset, length)`` of a sparse file of ``size`` bytes: the rest
    stays holes."""
    with open(path, "wb") as f:
        f.truncate(size)
        for start, length in extents if extents is not None else [(0, size)]:
            f.seek(start)
            left = length
            while left > 0:
                step = min(left, WRITE_SLICE_BYTES)
                f.write(os.urandom(step))
                left -= step


def make_tree(tree: Path, files: int, each: int = SMALL_FILE_BYTES) -> None:
    """``files`` random files of ``each`` bytes, spread over :data:`SMALL_FOLDERS` folders."""
    for i in range(files):
        folder = tree / f"d{i % SMALL_FOLDERS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(each))


def tree_files(path: Path) -> Iterator[Path]:
    """Every file under ``path`` (or ``path`` itself), in a stable order."""
    if path.is_file():
        yield path
        return
    for dirpath, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            yield Path(dirpath, name)


def warm(path: Path) -> None:
    """Read a file or a tree once so that every tool starts with it in the page cache."""
    for p in tree_files(path):
        with open(p, "rb") as f:
            while f.read(WRITE_SLICE_BYTES):
                pass


def tree_shape(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path`` (or of the file ``path``); (0, 0) when it is missing."""
    if not path.exists():
        return 0, 0
    files = total = 0
    for p in tree_files(path):
        files += 1
        total += p.stat().st_size
    return files, total


def same_content(source: Path, copy: Path) -> bool:
    """Byte-for-byte comparison of a file or tree with its copy (an independent reader)."""
    if source.is_file():
        return copy.is_file() and filecmp.cmp(source, copy, shallow=False)
    for p in tree_files(source):
        other = copy / p.relative_to(source)
        if not other.is_file() or not filecmp.cmp(p, other, shallow=False):
            return False
    return True
