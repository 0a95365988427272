"""Digests computed without mover, for tests to compare mover's own against.

A digest mover computed proves something only when it equals one that mover did not compute:
these use hashlib and the file system directly.
"""

from __future__ import annotations

import hashlib
import os


def chunks_sha256(data: bytes, chunk: int) -> str:
    """A snapshot's volume digest (manifest version 2), recomputed from the volume's bytes:
    the sha256 of each ``chunk``-byte piece, then the sha256 of those raw digests in order."""
    outer = hashlib.sha256()
    for start in range(0, len(data), chunk):
        outer.update(hashlib.sha256(data[start : start + chunk]).digest())
    return f"sha256-chunks:{outer.hexdigest()}"


def file_sha256(path: str | os.PathLike[str], block: int = 8 << 20) -> str:
    """The sha256 (hex) of a file or a device, read to its end."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(block):
            h.update(piece)
    return h.hexdigest()


def allocated_bytes(path: str | os.PathLike[str]) -> int:
    """The bytes a file really occupies on disk (``st_blocks``): a sparse file's data."""
    return os.stat(path).st_blocks * 512
