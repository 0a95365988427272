"""The source-check contract and its arithmetic, against digests computed here with hashlib,
crc32c and base64 directly (never with mover's own helpers)."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import crc32c
import pytest

from mover import verify
from mover.motion import Chunk, Plan
from mover.planning import aligned_chunks, slice_lengths
from mover.provider import MiB, PartLimits, SourceCheck
from mover.providers.http import _sent_digest
from mover.providers.s3 import _object_checksum

DATA = os.urandom(3 * MiB + 777)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _crc(data: bytes) -> str:
    return crc32c.crc32c(data).to_bytes(4, "big").hex()


def _feed(check: SourceCheck, start: int, data: bytes, step: int) -> list[verify.Piece]:
    hasher = verify.RangeHasher(check, start)
    for i in range(0, len(data), step):
        hasher.update(data[i : i + step])
    return hasher.finish()


def test_contract_round_trips_as_json_and_refuses_unknown_combines() -> None:
    check = SourceCheck(
        size=10, version="e", pinned=True, algorithm="md5", combine="raw", whole="ab", sizes=(4, 6)
    )
    assert SourceCheck.from_dict(json.loads(json.dumps(check.to_dict()))) == check
    assert SourceCheck.from_dict({"size": 5}) == SourceCheck(size=5)
    with pytest.raises(ValueError, match="unknown combine"):
        SourceCheck(size=1, algorithm="md5", combine="xor")
    plan = Plan("streaming", 10, 4, [Chunk(0, 0, 10)], source=check.to_dict(), slices=[3])
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.source == check.to_dict() and again.slices == [3]
    old = {k: v for k, v in plan.to_dict().items() if k not in ("source", "slices")}
    assert Plan.from_dict(old).source is None and Plan.from_dict(old).slices == []


@pytest.mark.parametrize("step", [1 * MiB, 333_333, len(DATA)])
def test_range_digests_do_not_depend_on_how_bytes_are_fed(step: int) -> None:
    part = MiB
    check = SourceCheck(size=len(DATA), algorithm="md5", combine="raw", part_bytes=part)
    pieces = _feed(check, 0, DATA, step)
    assert [p[2] for p in pieces] == [_md5(DATA[o : o + part]) for o in range(0, len(DATA), part)]
    assert [p[:2] for p in pieces] == [
        [o, len(DATA[o : o + part])] for o in range(0, len(DATA), part)
    ]


def test_a_feed_that_starts_inside_a_range_skips_it() -> None:
    check = SourceCheck(size=len(DATA), algorithm="md5", combine="raw", part_bytes=MiB)
    pieces = _feed(check, MiB // 2, DATA[MiB // 2 : 2 * MiB], 4096)
    assert pieces == [[MiB, MiB, _md5(DATA[MiB : 2 * MiB])]]


def test_s3_multipart_etag_is_md5_of_the_parts_md5s() -> None:
    sizes = (5 * MiB // 4, MiB, len(DATA) - 5 * MiB // 4 - MiB)
    raw = b""
    offset = 0
    for n in sizes:
        raw += hashlib.md5(DATA[offset : offset + n]).digest()
        offset += n
    etag = hashlib.md5(raw).hexdigest()
    check = SourceCheck(size=len(DATA), algorithm="md5", combine="raw", whole=etag, sizes=sizes)
    pieces = _feed(check, 0, DATA, MiB)
    assert verify.whole_value(check, pieces) == f"{etag}-3"
    assert verify.whole_mismatch(check, pieces, "x") is None
    flipped = bytearray(DATA)
    flipped[12345] ^= 0xFF
    message = verify.whole_mismatch(check, _feed(check, 0, bytes(flipped), MiB), "s3://b/k")
    assert message is not None and f"{etag}-3" in message and "s3://b/k" in message


def test_swift_slo_etag_is_md5_of_the_segments_hex_md5s() -> None:
    sizes = (MiB, MiB, len(DATA) - 2 * MiB)
    hexes = [_md5(DATA[:MiB]), _md5(DATA[MiB : 2 * MiB]), _md5(DATA[2 * MiB :])]
    etag = hashlib.md5("".join(hexes).encode()).hexdigest()
    check = SourceCheck(
        size=len(DATA),
        algorithm="md5",
        combine="hex",
        whole=etag,
        sizes=sizes,
        expected=tuple(hexes),
    )
    assert verify.whole_value(check, _feed(check, 0, DATA, 65536)) == etag
    bad = bytearray(DATA[MiB : 2 * MiB])
    bad[7] ^= 1
    pieces = _feed(check, MiB, bytes(bad), MiB)
    with pytest.raises(Exception, match="bytes 1048576-2097151") as info:
        verify.check_expected(check, pieces, "swift://c/o")
    assert getattr(info.value, "retryable", False)


def test_a_full_object_crc_combines_from_chunks_in_any_order() -> None:
    check = SourceCheck(size=len(DATA), algorithm="crc32c", combine="crc", whole=_crc(DATA))
    pieces = []
    for start, end in ((2 * MiB, len(DATA)), (0, 700_001), (700_001, 2 * MiB)):
        pieces += _feed(check, start, DATA[start:end], 100_000)
    assert verify.whole_value(check, pieces) == _crc(DATA)
    with pytest.raises(verify.Unsettled):
        verify.whole_value(check, pieces[:2])


def test_composite_crc_is_the_crc_of_the_parts_crcs() -> None:
    sizes = (2 * MiB, len(DATA) - 2 * MiB)
    raw = crc32c.crc32c(DATA[: 2 * MiB]).to_bytes(4, "big")
    raw += crc32c.crc32c(DATA[2 * MiB :]).to_bytes(4, "big")
    whole = crc32c.crc32c(raw).to_bytes(4, "big").hex()
    check = SourceCheck(size=len(DATA), algorithm="crc32c", combine="raw", whole=whole, sizes=sizes)
    assert verify.whole_mismatch(check, _feed(check, 0, DATA, MiB), "x") is None


def test_empty_object_has_one_empty_range() -> None:
    check = SourceCheck(size=0, algorithm="md5", combine="one", whole=_md5(b""))
    assert verify.whole_mismatch(check, _feed(check, 0, b"", 1), "x") is None


def test_chunks_align_to_ranges() -> None:
    limits = PartLimits(min_part_bytes=5 * MiB, max_part_bytes=5 << 30, max_parts=10_000)
    # Uniform 8 MiB parts, 64 MiB chunks: 8 parts a chunk.
    ranges = [(o, 8 * MiB) for o in range(0, 160 * MiB, 8 * MiB)]
    chunks, slices = aligned_chunks(ranges, 64 * MiB, limits)
    assert [(c.offset, c.length) for c in chunks] == [
        (0, 64 * MiB),
        (64 * MiB, 64 * MiB),
        (128 * MiB, 32 * MiB),
    ]
    assert slices == []
    # A part larger than a chunk is one chunk of slices; a small group before it joins it.
    ranges = [(0, MiB), (MiB, 100 * MiB), (101 * MiB, 10 * MiB)]
    chunks, slices = aligned_chunks(ranges, 32 * MiB, limits)
    assert [(c.offset, c.length) for c in chunks] == [(0, 101 * MiB), (101 * MiB, 10 * MiB)]
    assert slices == [4, 1]
    assert all(5 * MiB <= n <= 32 * MiB for n in slice_lengths(101 * MiB, 4))
    assert sum(slice_lengths(101 * MiB, 4)) == 101 * MiB


def test_chunks_grow_to_stay_within_max_parts() -> None:
    limits = PartLimits(min_part_bytes=1, max_part_bytes=1 << 40, max_parts=10)
    ranges = [(o * MiB, MiB) for o in range(100)]
    chunks, _ = aligned_chunks(ranges, MiB, limits)
    assert len(chunks) <= 10 and sum(c.length or 0 for c in chunks) == 100 * MiB


def test_s3_checksums_from_head() -> None:
    value = base64.b64encode(bytes.fromhex("c4cc92dd")).decode()
    composite = {"ChecksumCRC32C": f"{value}-3", "ChecksumType": "COMPOSITE"}
    assert _object_checksum(composite) == ("crc32c", "c4cc92dd", "composite")
    assert _object_checksum({"ChecksumCRC32C": value}) == ("crc32c", "c4cc92dd", "full")
    # A sha256 of the whole object cannot be made from chunks read in parallel.
    assert _object_checksum({"ChecksumSHA256": base64.b64encode(b"x" * 32).decode()}) is None
    assert _object_checksum({"ETag": '"abc"'}) is None


def test_http_digests_sent_by_servers() -> None:
    md5 = hashlib.md5(b"hello").digest()
    sha = hashlib.sha256(b"hello").digest()
    b64 = base64.b64encode
    assert _sent_digest({"Content-MD5": b64(md5).decode()}) == f"md5:{md5.hex()}"
    assert _sent_digest({"Digest": f"SHA-256={b64(sha).decode()}"}) == f"sha256:{sha.hex()}"
    assert _sent_digest({"Repr-Digest": f"sha-256=:{b64(sha).decode()}:"}) == f"sha256:{sha.hex()}"
    assert _sent_digest({"Digest": "unixsum=30637"}) is None
    assert _sent_digest({"Content-MD5": "not base64!"}) is None
