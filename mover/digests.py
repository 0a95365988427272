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
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import xxhash


def _xxh3_128(data: memoryview | bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)


#: Bytes a process digests with crc32c in Python before it imports the ``crc32c`` package.
PY_CRC32C_BUDGET_BYTES = 64 * 1024
_py_crc32c_left = PY_CRC32C_BUDGET_BYTES
_crc32c_table: list[int] = []
_crc32c_lock = threading.Lock()


def _crc32c(data: memoryview | bytes, value: int = 0) -> int:
    """crc32c (Castagnoli), as S3's ``x-amz-checksum-crc32c``.

    The ``crc32c`` package (15 GB/s) costs about 15 ms to import (it looks its own version up
    in the installed metadata); a command that sends one small object would spend more on that
    than on everything else it hashes. So the first ``PY_CRC32C_BUDGET_BYTES`` a process
    digests go through a table in Python (60 ns a byte: 4 ms for the whole budget), and only
    what comes after pays for the import: never more than twice the cheaper of the two.
    """
    global _py_crc32c_left
    size = len(data)
    if not size:
        return value  # nothing carried: the running value is the checksum
    with _crc32c_lock:
        python = size <= _py_crc32c_left
        if python:
            _py_crc32c_left -= size
    if not python:
        import crc32c

        return int(crc32c.crc32c(data, value))
    if not _crc32c_table:
        _crc32c_table[:] = _reflected_table(0x82F63B78)
    table = _crc32c_table
    crc = value ^ 0xFFFFFFFF
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def warm() -> None:
    """For a long-lived process (a worker): import the ``crc32c`` package now and use it for
    every byte, the start-up saving of the Python table being worth nothing there."""
    global _py_crc32c_left
    import crc32c  # noqa: F401

    with _crc32c_lock:
        _py_crc32c_left = 0


def _reflected_table(poly: int) -> list[int]:
    """The byte-at-a-time table of a reflected 32-bit CRC."""
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ poly if n & 1 else n >> 1
        table.append(n)
    return table


def _crc32(data: memoryview | bytes, value: int = 0) -> int:
    # zlib's is twice as fast here as awscrt's (6.7 against 3.3 GB/s: the wheel's crc32 is
    # its generic table code) and imports nothing: S3's CRC32 is zlib's.
    return zlib.crc32(data, value)


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


#: The CRCs' polynomials, bit-reflected (all three reflect their input and output and start
#: and end with all bits set, which is what makes :func:`crc_combine`'s one formula hold).
_REFLECTED_POLY = {"crc32": 0xEDB88320, "crc32c": 0x82F63B78, "crc64nvme": 0x9A6C9329AC4BC9B5}
#: Per algorithm: x^(2^k) modulo its polynomial, for k = 0, 1, ... (filled on first use).
_X_POW2: dict[str, list[int]] = {}


def _mulmod(algorithm: str, a: int, b: int) -> int:
    """a(x) * b(x) modulo the algorithm's polynomial, both in the reflected bit order (the
    highest bit holds x^0)."""
    poly = _REFLECTED_POLY[algorithm]
    bit = 1 << (CRCS[algorithm][1] * 8 - 1)
    product = 0
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1
    return product


def _x_pow2(algorithm: str, k: int) -> int:
    table = _X_POW2.setdefault(algorithm, [1 << (CRCS[algorithm][1] * 8 - 2)])  # x^1
    while len(table) <= k:
        table.append(_mulmod(algorithm, table[-1], table[-1]))
    return table[k]


def crc_combine(algorithm: str, first: bytes, second: bytes, second_length: int) -> bytes:
    """The CRC of two blocks end to end, from the CRCs of each (no byte read again): how a
    whole-object CRC is checked from chunks digested in parallel.

    The first block's CRC is carried past the second's bytes by multiplying it with
    x^(8 * second_length) modulo the polynomial (built from x^(2^k) by squaring, one factor
    per bit of the length), then xored with the second's CRC. Pure Python, a few hundred
    microseconds: a download checked against a full-object CRC does not import awscrt.
    """
    width = CRCS[algorithm][1]
    shift = 1 << (width * 8 - 1)  # x^0
    n, k = second_length, 3  # 8 bits a byte: x^(n * 2^3)
    while n:
        if n & 1:
            shift = _mulmod(algorithm, _x_pow2(algorithm, k), shift)
        n >>= 1
        k += 1
    value = _mulmod(algorithm, shift, int.from_bytes(first, "big")) ^ int.from_bytes(second, "big")
    return value.to_bytes(width, "big")


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
