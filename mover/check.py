"""``mover check``: compare two objects (or two trees) by size and content, across any stores.

Both sides are read with the same chunking and hashed with xxh3-128, chunks in parallel where
the stores allow ranged reads, so objects written with different part sizes (an S3 multipart
upload and a file) still compare. Memory stays at chunk size x streams.

Sizes come from the stores (a block device's from the device); a side whose size is unknown
(a pipe, a socket, a ``/proc`` file) is read once as a stream. Holes of a sparse file are not
read: a chunk that is one hole has the cached digest of zeros.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mover.buffers import chunk_buffer, release
from mover.catalogue.objectio import fill
from mover.digests import Hasher
from mover.errors import ObjectNotFound
from mover.provider import MiB, StoreProvider
from mover.reading import open_sequential
from mover.resolve import open_location
from mover.sparse import chunk_digest, read_chunk

#: Both sides are compared in chunks of this size.
CHECK_CHUNK_BYTES = 16 * MiB


@dataclass
class CheckResult:
    matched: int = 0
    differences: list[str] = field(default_factory=list)


def _chunk_digest(store: StoreProvider, key: str, offset: int, length: int) -> str:
    buf = chunk_buffer(length)
    filled = read_chunk(store, key, offset, buf)
    return f"{filled.got}:{chunk_digest('xxh3_128', buf, filled).hex}"


def _digests(
    store: StoreProvider, key: str, size: int | None, pool: ThreadPoolExecutor
) -> list[str]:
    if store.capabilities.ranged_read and size is not None:
        offsets = range(0, max(size, 1), CHECK_CHUNK_BYTES)
        return list(
            pool.map(
                lambda off: _chunk_digest(store, key, off, min(CHECK_CHUNK_BYTES, size - off)),
                offsets,
            )
        )
    out: list[str] = []
    buf = bytearray(CHECK_CHUNK_BYTES)
    stream = open_sequential(store, key, size)
    try:
        while True:
            n = fill(stream, memoryview(buf))
            if n == 0 and out:
                break  # as the ranged side: no empty last piece
            h = Hasher("xxh3_128")
            h.update(memoryview(buf)[:n])
            out.append(f"{n}:{h.digest().hex}")
            if n < CHECK_CHUNK_BYTES:
                break
    finally:
        stream.close()
    return out


def compare(
    source: str, destination: str, *, recursive: bool = False, streams: int = 4
) -> CheckResult:
    """Compare ``source`` with ``destination``; every difference is one line of the result."""
    src_store, src_loc = open_location(source)
    dst_store, dst_loc = open_location(destination)
    result = CheckResult()
    if recursive:
        sp = src_loc.full_key
        if sp and not sp.endswith("/") and src_store.is_folder(sp):
            sp += "/"
        dp = dst_loc.full_key
        if dp and not dp.endswith("/"):
            dp += "/"
        src = {i.key[len(sp) :]: i for i in src_store.list(sp)}
        try:
            dst = {i.key[len(dp) :]: i for i in dst_store.list(dp)}
        except ObjectNotFound:
            dst = {}
        pairs = []
        for rel in sorted(set(src) | set(dst)):
            if rel not in dst:
                result.differences.append(f"missing in destination: {rel}")
            elif rel not in src:
                result.differences.append(f"only in destination: {rel}")
            else:
                pairs.append((rel, sp + rel, src[rel].size, dp + rel, dst[rel].size))
    else:
        s_info = src_store.stat(src_loc.full_key)
        try:
            d_info = dst_store.stat(dst_loc.full_key)
        except ObjectNotFound:
            result.differences.append(f"missing in destination: {dst_loc}")
            return result
        pairs = [(str(dst_loc), src_loc.full_key, s_info.size, dst_loc.full_key, d_info.size)]
    with ThreadPoolExecutor(max(1, streams), initializer=None) as pool:
        for rel, skey, ssize, dkey, dsize in pairs:
            if ssize is not None and dsize is not None and ssize != dsize:
                result.differences.append(f"size differs: {rel} ({ssize} != {dsize})")
                continue
            if _digests(src_store, skey, ssize, pool) != _digests(dst_store, dkey, dsize, pool):
                result.differences.append(f"content differs: {rel}")
            else:
                result.matched += 1
        pool.map(lambda _: release(), range(streams))
    return result
