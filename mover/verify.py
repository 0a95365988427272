"""Checking what was read against values the source store holds: what "verified" rests on.

A chunk's digest in the destination's algorithm only proves that the destination stored what
mover read. What mover read is proved right here, against a :class:`~mover.provider.SourceCheck`
the source's provider gave when the object was planned:

- each chunk digests the source's ranges it holds (:class:`RangeHasher`, on the bytes already
  in memory, in the thread that read them, so ranges of different chunks hash in parallel) and
  compares those with a known value at once (:func:`check_expected`: Swift segment ETags, AWS
  part checksums); a mismatch is a retryable :class:`~mover.errors.VerificationFailed`, so the
  retry policy reads the chunk again;
- the digests of every range travel in the chunks' receipts to the commit, which combines them
  into the whole-object value (:func:`whole_value`: an MD5 ETag, an S3 multipart ETag, a Swift
  SLO ETag, a composite or full-object CRC) before the object is made visible;
- the source's version is held: reads carry ``If-Match`` where the store can (``pinned``), and
  otherwise the version is compared once more after the last chunk (:func:`confirm_version`).

Nothing here reads or writes a byte; strategies do (``mover.strategies.motion.common``).
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Any

from mover.digests import CRCS, Hasher, crc_combine
from mover.errors import SourceChanged, VerificationFailed
from mover.provider import (
    COMBINE_CRC,
    COMBINE_HEX,
    COMBINE_ONE,
    COMBINE_RAW,
    SourceCheck,
    StoreProvider,
)

#: A digested piece of the source, as receipts carry it: ``[offset, length, hex]``.
Piece = list[Any]


class Unsettled(Exception):
    """The pieces do not cover the object in the check's ranges (a chunk started inside a
    range): the whole-object value cannot be computed from them; read the object again in
    order."""


class RangeHasher:
    """Digests the source's ranges from bytes fed in order, starting at byte ``start``.

    With fixed ranges, each range wholly fed becomes one piece; a range the feed started inside
    of is skipped (it cannot be digested from part of its bytes). With a CRC (any split), the
    whole feed is one piece. Feeding a chunk's buffer at once is the same as feeding it in
    slices: hashlib releases the GIL on large buffers, so chunks on other threads hash meanwhile.
    """

    def __init__(self, check: SourceCheck, start: int) -> None:
        self.check = check
        self.start = start
        self.pos = start
        self.pieces: list[Piece] = []
        self._crc = check.combine == COMBINE_CRC
        self._hasher: Hasher | None = Hasher(check.algorithm) if self._crc else None
        self._ranges = check.ranges()
        self._i = max(0, bisect.bisect_right(check.range_starts(), start) - 1)
        if not self._crc and self._i < len(self._ranges) and self._ranges[self._i][0] == start:
            self._hasher = Hasher(check.algorithm)
        self._settle()

    def _settle(self) -> None:
        """Close every range that ends where the feed is (empty ranges, the end of one)."""
        while not self._crc and self._i < len(self._ranges):
            offset, length = self._ranges[self._i]
            if self.pos < offset + length:
                return
            if self._hasher is not None:
                self.pieces.append([offset, length, self._hasher.digest().hex])
            self._i += 1
            self._hasher = Hasher(self.check.algorithm) if self._i < len(self._ranges) else None

    def update(self, data: memoryview | bytes) -> None:
        view = memoryview(data).cast("B")
        if self._crc:
            assert self._hasher is not None
            self._hasher.update(view)
            self.pos += len(view)
            return
        while len(view):
            if self._i >= len(self._ranges):
                self.pos += len(view)  # past the last range: the object grew; size checks say so
                return
            offset, length = self._ranges[self._i]
            take = min(len(view), offset + length - self.pos)
            if self._hasher is not None:
                self._hasher.update(view[:take])
            self.pos += take
            view = view[take:]
            self._settle()

    def finish(self) -> list[Piece]:
        """The pieces digested so far (complete ranges; for a CRC, everything fed)."""
        if self._crc:
            assert self._hasher is not None
            return [[self.start, self.pos - self.start, self._hasher.digest().hex]]
        return list(self.pieces)


def check_expected(check: SourceCheck, pieces: list[Piece], where: str) -> None:
    """Refuse pieces whose digest differs from the value the store gave for their range."""
    if not any(check.expected):
        return
    starts = check.range_starts()
    for offset, length, value in pieces:
        i = bisect.bisect_left(starts, offset)
        if i >= len(starts) or starts[i] != offset or i >= len(check.expected):
            continue
        if not check.expected[i]:
            continue
        if check.expected[i] != value:
            raise VerificationFailed(
                f"{where} bytes {offset}-{offset + length - 1}: read {check.algorithm} {value}, "
                f"{check.what or 'the source'} says {check.expected[i]} for them: the bytes "
                "changed on the way",
                retryable=True,
            )


def whole_value(check: SourceCheck, pieces: list[Piece]) -> str:
    """The whole-object value the pieces make, written as the check writes ``whole`` (with
    ``-N`` for a multipart ETag). Raise :class:`Unsettled` if they do not cover the object."""
    if check.combine == COMBINE_CRC:
        return _crc_of(check, pieces)
    by_offset = {p[0]: p for p in pieces}
    digests: list[str] = []
    for offset, length in check.ranges():
        piece = by_offset.get(offset)
        if piece is None or piece[1] != length:
            raise Unsettled(f"no digest of the range at {offset}")
        digests.append(piece[2])
    if check.combine == COMBINE_ONE:
        if len(digests) != 1:
            raise Unsettled("a single-range value over several ranges")
        return digests[0]
    if check.combine == COMBINE_RAW:
        joined = b"".join(bytes.fromhex(d) for d in digests)
        return f"{_digest_hex(check.algorithm, joined)}-{len(digests)}"
    if check.combine == COMBINE_HEX:
        return _digest_hex(check.algorithm, "".join(digests).encode())
    raise Unsettled(f"no whole-object value ({check.combine or 'none'})")


def expected_whole(check: SourceCheck) -> str:
    """The store's whole-object value in the form :func:`whole_value` returns."""
    if check.combine == COMBINE_RAW:
        return f"{check.whole}-{len(check.ranges())}"
    return check.whole


def whole_mismatch(check: SourceCheck, pieces: list[Piece], where: str) -> str | None:
    """None when the pieces prove the object right; otherwise what was compared with what.

    Checks the whole-object value when the store gave one, and that every range with a known
    value was digested (each was compared as its chunk was read). Raise :class:`Unsettled`
    when the pieces cannot settle it.
    """
    if check.combine and check.whole:
        got = whole_value(check, pieces)
        want = expected_whole(check)
        if got != want:
            return (
                f"{where}: what mover read makes {check.algorithm} {got}, but "
                f"{check.what or 'the source'} is {want}"
            )
        return None
    if any(check.expected):
        done = {p[0] for p in pieces}
        for (offset, _), value in zip(check.ranges(), check.expected, strict=False):
            if value and offset not in done:
                raise Unsettled(f"the range at {offset} was not digested")
    return None


def confirm_version(store: StoreProvider, key: str, check: SourceCheck, where: str) -> None:
    """Raise :class:`~mover.errors.SourceChanged` if ``key`` is no longer the check's version.

    Called after the last chunk and before commit when the reads were not pinned to the
    version (files; HTTP servers without a strong ETag): one ``stat``.
    """
    if check.version is None:
        return
    now = store.stat(key)
    if now.etag != check.version or (check.size is not None and now.size != check.size):
        raise changed(where, check.version, now.etag)


def changed(where: str, was: str | None, now: str | None) -> SourceChanged:
    """The error for a source that is not the version the job was prepared from."""
    return SourceChanged(
        f"source changed during the copy: {where} (version {was} when the job was prepared, "
        f"{now or 'unknown'} now); nothing was committed: run the copy again"
    )


def _crc_of(check: SourceCheck, pieces: list[Piece]) -> str:
    ordered = sorted(pieces, key=lambda p: p[0])
    width = CRCS[check.algorithm][1]
    value = b"\0" * width
    end = 0
    for n, (offset, length, hexd) in enumerate(ordered):
        if offset != end:
            raise Unsettled(f"no digest of the bytes at {end}")
        raw = bytes.fromhex(hexd)
        value = raw if n == 0 else crc_combine(check.algorithm, value, raw, length)
        end += length
    if check.size is not None and end != check.size:
        raise Unsettled(f"digests cover {end} of {check.size} bytes")
    if not ordered:
        value = CRCS[check.algorithm][0](b"", 0).to_bytes(width, "big")
    return value.hex()


def _digest_hex(algorithm: str, data: bytes) -> str:
    if algorithm in CRCS:
        fn, width = CRCS[algorithm]
        return fn(data, 0).to_bytes(width, "big").hex()
    return hashlib.new(algorithm, data).hexdigest()
