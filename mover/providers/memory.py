"""An in-memory store (``memory://NAME/key``): a real implementation of the contract, for
unit tests of the core and for trying mover without any storage.

Objects live in a process-wide dict per store name. Capabilities can be narrowed by options
(``ranged_read=False``, ``min_part_bytes=...``) so that tests can shape a store like S3 or like
a stream without a server.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from mover.digests import Digest, digest
from mover.errors import ObjectNotFound, TransferError, UsageError
from mover.location import Location
from mover.provider import (
    Capabilities,
    ChunkWriter,
    MiB,
    ObjectInfo,
    PartLimits,
    PartReceipt,
    StoreProvider,
    confirm_digest,
)

#: store name -> key -> bytes; uploads: store name -> upload id -> {part: bytes}
_OBJECTS: dict[str, dict[str, bytes]] = {}
_UPLOADS: dict[str, dict[str, dict[int, bytes]]] = {}
_LOCK = threading.Lock()


class MemoryProvider(StoreProvider):
    """A dict of bytes. Options narrow its capabilities (see module docstring)."""

    scheme = "memory"
    examples = ("memory://scratch/a/b.bin",)

    def __init__(self, location: Location, options: dict[str, Any] | None = None) -> None:
        super().__init__(location, options)
        o = self.options
        self.name = location.store
        self._caps = Capabilities(
            ranged_read=bool(o.get("ranged_read", True)),
            sequential_read=True,
            chunk_writer=PartLimits(
                min_part_bytes=int(o.get("min_part_bytes", 1)),
                max_part_bytes=int(o.get("max_part_bytes", 1 << 40)),
                max_parts=int(o.get("max_parts", 10_000)),
                preferred_part_bytes=int(o.get("preferred_part_bytes", 8 * MiB)),
            ),
            streaming_write=True,
            server_side_copy=bool(o.get("server_side_copy", False)),
            checksum_algorithms=("xxh3_128", "sha256"),
        )
        with _LOCK:
            _OBJECTS.setdefault(self.name, {})
            _UPLOADS.setdefault(self.name, {})

    @classmethod
    def store_id(cls, location: Location, options: dict[str, Any] | None = None) -> str:
        return f"memory://{location.store}"

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def objects(self) -> dict[str, bytes]:
        return _OBJECTS[self.name]

    @property
    def uploads(self) -> dict[str, dict[int, bytes]]:
        return _UPLOADS[self.name]

    def stat(self, key: str) -> ObjectInfo:
        data = self.objects.get(key)
        if data is None:
            raise ObjectNotFound(f"memory://{self.name}/{key}: no such object")
        return ObjectInfo(key=key, size=len(data), checksum=str(digest("sha256", data)))

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        if not self._caps.ranged_read:
            raise UsageError("this memory store has no ranged reads")
        data = self.objects.get(key)
        if data is None:
            raise ObjectNotFound(f"memory://{self.name}/{key}: no such object")
        piece = data[offset : offset + len(buf)]
        buf[: len(piece)] = piece
        return len(piece)

    def open_read(self, key: str) -> BinaryIO:
        data = self.objects.get(key)
        if data is None:
            raise ObjectNotFound(f"memory://{self.name}/{key}: no such object")
        return io.BytesIO(data)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield self.stat(key)

    def delete(self, key: str) -> None:
        if self.objects.pop(key, None) is None:
            raise ObjectNotFound(f"memory://{self.name}/{key}: no such object")

    def open_writer(self, key: str, size: int | None) -> ChunkWriter:
        upload = f"{key}#{time.monotonic_ns()}"
        with _LOCK:
            self.uploads[upload] = {}
        return _MemoryWriter(self, key, upload)

    def resume_writer(self, key: str, state: dict[str, Any]) -> ChunkWriter:
        return _MemoryWriter(self, key, state["upload"])

    def can_copy_from(self, source: StoreProvider) -> bool:
        return self._caps.server_side_copy and isinstance(source, MemoryProvider)

    def copy_server_side(
        self, source: StoreProvider, src_key: str, dst_key: str, size: int
    ) -> ObjectInfo:
        assert isinstance(source, MemoryProvider)
        self.objects[dst_key] = source.objects[src_key]
        return self.stat(dst_key)


@dataclass(eq=False)
class _MemoryWriter(ChunkWriter):
    provider: MemoryProvider
    key: str
    upload: str

    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        stored = confirm_digest(data, expected, f"part {part}", retryable=False)
        parts = self.provider.uploads.get(self.upload)
        if parts is None:
            raise TransferError(f"upload {self.upload} no longer exists")
        parts[part] = bytes(data)
        return PartReceipt(part, offset, len(data), str(stored))

    def commit(self, receipts: list[PartReceipt], size: int) -> ObjectInfo:
        parts = self.provider.uploads.pop(self.upload)
        data = b"".join(parts[r.part] for r in sorted(receipts, key=lambda r: r.part))
        if len(data) != size:
            raise TransferError(f"memory upload holds {len(data)} bytes, expected {size}")
        self.provider.objects[self.key] = data
        return self.provider.stat(self.key)

    def abort(self) -> None:
        self.provider.uploads.pop(self.upload, None)

    def state(self) -> dict[str, Any]:
        return {"upload": self.upload}


def reset() -> None:
    """Forget every memory store (tests)."""
    with _LOCK:
        _OBJECTS.clear()
        _UPLOADS.clear()
