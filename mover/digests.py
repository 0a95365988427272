"""Chunk digests and the whole-object digest built from them.

Every chunk's bytes get a digest as they are read; the destination confirms the same digest for
what it stored (S3 and Swift on the server, the file store over the bytes it handed to the
kernel). The algorithm is the one the destination can confirm, first of its
``Capabilities.checksum_algorithms``: xxh3-128 and crc32c cost a few per cent of a core at
page-cache speed, md5 and sha256 most of one (shared/TEST-SERVERS.md), so the fast ones are
preferred wherever a store accepts them.

The whole-object digest is a *composite*: sha256 over the chunk digests in order, suffixed with
the chunk count, in the spirit of S3's composite checksums. Two copies compare equal only when
they were chunked the same way; :func:`mover.check` re-reads both with one chunking to compare
objects written differently.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import xxhash


def _xxh3_128(data: memoryview | bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


def _crc32c(data: memoryview | bytes, value: int = 0) -> int:
    # Imported on first use: file-to-file copies digest with xxh3 and never pay for it.
    import crc32c

    return crc32c.crc32c(data, value)


def _crc32(data: memoryview | bytes, value: int = 0) -> int:
    from awscrt import checksums

    return checksums.crc32(data, value)


def _crc64nvme(data: memoryview | bytes, value: int = 0) -> int:
    from awscrt import checksums

    return checksums.crc64nvme(data, value)


#: The CRC family: algorithm -> (function of a buffer and a running value, width in bytes).
#: S3 names these checksums (x-amz-checksum-crc32c ...) and writes them big-endian.
CRCS: dict[str, tuple[Callable[[memoryview | bytes, int], int], int]] = {
    "crc32c": (_crc32c, 4),
    "crc32": (_crc32, 4),
    "crc64nvme": (_crc64nvme, 8),
}


def _crc_digest(name: str) -> Callable[[memoryview | bytes], bytes]:
    fn, width = CRCS[name]

    def digest(data: memoryview | bytes) -> bytes:
        return fn(data, 0).to_bytes(width, "big")

    return digest


def _hashlib(name: str) -> Callable[[memoryview | bytes], bytes]:
    def digest(data: memoryview | bytes) -> bytes:
        return hashlib.new(name, data).digest()

    return digest


#: Algorithm name -> function of a buffer returning the raw digest.
ALGORITHMS: dict[str, Callable[[memoryview | bytes], bytes]] = {
    "xxh3_128": _xxh3_128,
    "crc32c": _crc_digest("crc32c"),
    "crc32": _crc_digest("crc32"),
    "crc64nvme": _crc_digest("crc64nvme"),
    "md5": _hashlib("md5"),
    "sha1": _hashlib("sha1"),
    "sha256": _hashlib("sha256"),
}


def crc_combine(algorithm: str, first: bytes, second: bytes, second_length: int) -> bytes:
    """The CRC of two blocks end to end, from the CRCs of each (no byte read again): how a
    whole-object CRC is checked from chunks digested in parallel."""
    from awscrt import checksums

    combine = {
        "crc32c": checksums.combine_crc32c,
        "crc32": checksums.combine_crc32,
        "crc64nvme": checksums.combine_crc64nvme,
    }[algorithm]
    width = CRCS[algorithm][1]
    value = combine(int.from_bytes(first, "big"), int.from_bytes(second, "big"), second_length)
    return int(value).to_bytes(width, "big")


class Hasher:
    """An incremental digest of one algorithm, for data read in pieces (streams, check)."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._crc: int | None = None
        self._h: Any = None
        if algorithm == "xxh3_128":
            self._h = xxhash.xxh3_128()
        elif algorithm in CRCS:
            self._crc = 0
        else:
            self._h = hashlib.new(algorithm)

    def update(self, data: memoryview | bytes) -> None:
        if self._crc is not None:
            self._crc = CRCS[self.algorithm][0](data, self._crc)
        else:
            self._h.update(data)

    def digest(self) -> Digest:
        if self._crc is not None:
            raw = self._crc.to_bytes(CRCS[self.algorithm][1], "big")
        else:
            raw = self._h.digest()
        return Digest(self.algorithm, raw.hex())


@dataclass(frozen=True)
class Digest:
    """A digest with its algorithm, written ``algorithm:hex`` in records."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.hex)

    @property
    def b64(self) -> str:
        """Base64 of the raw digest, as S3's checksum headers and Content-MD5 want it."""
        return base64.b64encode(self.raw).decode()

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, _, hexpart = text.partition(":")
        if algorithm not in ALGORITHMS or not hexpart:
            raise ValueError(f"not a digest: {text!r}")
        return cls(algorithm, hexpart)


def digest(algorithm: str, data: memoryview | bytes) -> Digest:
    """The digest of a whole buffer."""
    try:
        fn = ALGORITHMS[algorithm]
    except KeyError:
        known = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"unknown digest algorithm {algorithm!r} (known: {known})") from None
    return Digest(algorithm, fn(data).hex())


def composite(digests: Iterable[Digest | str]) -> str:
    """The whole-object digest of an ordered sequence of chunk digests."""
    h = hashlib.sha256()
    count = 0
    algorithm = ""
    for d in digests:
        d = Digest.parse(d) if isinstance(d, str) else d
        algorithm = algorithm or d.algorithm
        h.update(d.raw)
        count += 1
    return f"{algorithm or 'none'}-composite:{h.hexdigest()}-{count}"
