"""Standard input as a source and standard output as a destination (written ``-``).

A stream cannot seek: the source has no ranged reads and no size, so only the single-stream
strategy takes it, and the job records the size that was read; as a destination, parts must
arrive in order and cannot be taken back. Both exist only in this process (kind
:data:`~mover.provider.STREAM`): the fleet refuses them.

Standard output is also how a copy feeds a named pipe (``mover copy SRC - > PIPE``): the file
store refuses a pipe as destination, since its temporary file would be renamed over it.
Zero parts (a sparse source's holes) are written as zeros: a stream has no holes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from mover.digests import Digest
from mover.errors import UsageError
from mover.provider import (
    STREAM,
    Capabilities,
    ChunkWriter,
    MiB,
    ObjectInfo,
    PartLimits,
    PartReceipt,
    StoreProvider,
    confirm_digest,
)


class StdioProvider(StoreProvider):
    """``-``: the process's standard input (as a source) or output (as a destination)."""

    scheme = "stdio"
    needs_store = False
    examples = ("-",)

    _CAPS = Capabilities(
        ranged_read=False,
        sequential_read=True,
        chunk_writer=PartLimits(preferred_part_bytes=8 * MiB),
        streaming_write=True,
        ordered_parts=True,
        checksum_algorithms=("xxh3_128",),
    )

    @property
    def capabilities(self) -> Capabilities:
        return self._CAPS

    def describe(self) -> str:
        return "standard input/output"

    def stat(self, key: str) -> ObjectInfo:
        return ObjectInfo(key="-", size=None, kind=STREAM)

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        raise UsageError("standard input cannot be read at an offset")

    def open_read(self, key: str) -> BinaryIO:
        return sys.stdin.buffer

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        yield self.stat(prefix)

    def delete(self, key: str) -> None:
        raise UsageError("standard output cannot be deleted")

    def open_writer(self, key: str, size: int | None) -> ChunkWriter:
        return _StdoutWriter()

    def resume_writer(self, key: str, state: dict[str, Any]) -> ChunkWriter:
        # Standard output has no state to restore: parts are written as they come, in order
        # (only the single-stream strategy writes here, since write_at is false).
        return _StdoutWriter()


class _StdoutWriter(ChunkWriter):
    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        stored = confirm_digest(data, expected, f"part {part} to standard output", retryable=False)
        sys.stdout.buffer.write(data)
        return PartReceipt(part, offset, len(data), str(stored))

    def commit(self, receipts: list[PartReceipt], size: int) -> ObjectInfo:
        sys.stdout.buffer.flush()
        return ObjectInfo(key="-", size=size, kind=STREAM)

    def abort(self) -> None:
        sys.stdout.buffer.flush()

    def state(self) -> dict[str, Any]:
        return {}
