"""``vendorx://bucket/key``: a vendor's store, kept as files under ``$VENDORX_ROOT/bucket``.

It implements mover's provider contract from scratch (no subclassing of mover's own stores),
as a third party would, and advertises one vendor power the vendor strategy looks for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from mover.digests import Digest, digest
from mover.errors import ObjectNotFound, VerificationFailed
from mover.provider import (
    Capabilities,
    ChunkWriter,
    ObjectInfo,
    PartLimits,
    PartReceipt,
    StoreProvider,
)


class VendorXProvider(StoreProvider):
    scheme = "vendorx"
    #: The vendor power: objects can be ingested whole from a local file.
    vendor_ingest = True

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            ranged_read=True,
            chunk_writer=PartLimits(min_part_bytes=1, preferred_part_bytes=1 << 20),
            write_at=True,
            checksum_algorithms=("sha256",),
        )

    def _path(self, key: str) -> str:
        return os.path.join(os.environ["VENDORX_ROOT"], self.location.store, key)

    def stat(self, key: str) -> ObjectInfo:
        try:
            st = os.stat(self._path(key))
        except FileNotFoundError:
            raise self._missing(key) from None
        return ObjectInfo(key, st.st_size, mtime=st.st_mtime)

    def _missing(self, key: str) -> ObjectNotFound:
        return ObjectNotFound(f"vendorx://{self.location.store}/{key}: no such object")

    def read_into(self, key: str, offset: int, buf: memoryview) -> int:
        try:
            with open(self._path(key), "rb") as f:
                f.seek(offset)
                return f.readinto(buf) or 0
        except FileNotFoundError:
            raise self._missing(key) from None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = os.path.join(os.environ["VENDORX_ROOT"], self.location.store)
        for folder, _dirs, files in os.walk(base):
            for name in sorted(files):
                key = os.path.relpath(os.path.join(folder, name), base)
                if key.startswith(prefix):
                    yield self.stat(key)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            raise self._missing(key) from None

    def open_writer(self, key: str, size: int | None) -> ChunkWriter:
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path + ".upload", "wb").close()
        return _Writer(path)

    def resume_writer(self, key: str, state: dict[str, Any]) -> ChunkWriter:
        return _Writer(self._path(key))


class _Writer(ChunkWriter):
    def __init__(self, path: str) -> None:
        self.path = path

    def write_part(self, part: int, offset: int, data: memoryview, expected: Digest) -> PartReceipt:
        got = digest(expected.algorithm, data)
        if got != expected:
            raise VerificationFailed(f"vendorx part {part}: {got} != {expected}")
        with open(self.path + ".upload", "r+b") as f:
            f.seek(offset)
            f.write(data)
        return PartReceipt(part, offset, len(data), str(got))

    def commit(self, receipts: list[PartReceipt], size: int) -> ObjectInfo:
        os.truncate(self.path + ".upload", size)
        os.replace(self.path + ".upload", self.path)
        return ObjectInfo(os.path.basename(self.path), size)

    def abort(self) -> None:
        if os.path.exists(self.path + ".upload"):
            os.unlink(self.path + ".upload")

    def state(self) -> dict[str, Any]:
        return {}
