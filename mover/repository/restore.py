"""A restore from the repository: verified chunk by chunk before any byte is written.

1. **Plan** (in the caller): read the manifest, locate every chunk in the packs the store holds
   (a chunk missing from every pack fails here, naming it, before the destination is touched),
   open the destination's chunk writer, and cut the volume into ranges.
2. **Range tasks** (:func:`run_range`, on threads or the fleet): read the range's blobs with
   few requests (blobs adjacent in a pack are read together, up to :data:`READ_BYTES`), open
   each (AES-GCM tag, zstd, length, keyed id of the plaintext: a wrong byte is never used),
   then write. A destination that writes at offsets into a file it sizes first (a new or
   regular file) gets each chunk as it is verified and never sees zero runs: they stay holes.
   Others (S3, Swift, a block device) get one part per range, zeros included.
3. **Commit** (in the caller) once every range is done; any failure aborts the writer, so the
   destination never shows a partial or wrong volume. The error names the chunk (offset, id,
   pack) and what failed.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import time
from typing import Any

from mover.digests import digest
from mover.errors import ObjectNotFound, UsageError, VerificationFailed
from mover.provider import MiB, PartReceipt, StoreProvider
from mover.repository import manifests
from mover.repository.crypto import Corrupt
from mover.repository.index import survey
from mover.repository.layout import pack_key
from mover.repository.repo import Repository
from mover.repository.runner import Runner, ThreadRunner
from mover.resolve import open_location
from mover.transfer import check_destination, stat_or_none

#: Bytes of one read from a pack (adjacent blobs together).
READ_BYTES = 8 * MiB
#: Bytes of volume per restore range (a part for S3 and Swift).
RANGE_BYTES = 16 * MiB
#: Digest of a receipt for a range never written (a hole of a write-at destination).
HOLE = "hole"


def run_range(payload: dict[str, Any]) -> dict[str, Any]:
    """One restore range task. Payload: ``repo``, ``dest`` (location, key, writer state,
    algorithm), ``write_at``, ``offset``, ``length``, ``part``, ``label``, and ``entries``:
    ``[part, offset, length, id, pack, pack offset, blob length, raw length]`` for data
    chunks (``id`` None for zeros, which only non write-at destinations receive)."""
    repo = Repository.open(payload["repo"])
    dest = payload["dest"]
    store, loc = open_location(dest["location"])
    writer = store.resume_writer(dest["key"], dest["state"])
    algorithm = dest["algorithm"]
    write_at = bool(payload["write_at"])
    base = int(payload["offset"])
    buf = None if write_at else bytearray(int(payload["length"]))
    receipts: list[dict[str, Any]] = []

    def put(part: int, offset: int, data: memoryview) -> None:
        expected = digest(algorithm, data)
        receipt = writer.write_part(part, offset, data, expected)
        if receipt.digest != str(expected):
            raise VerificationFailed(
                f"{loc}: part {part} at {offset}: wrote {expected}, store confirmed "
                f"{receipt.digest}"
            )
        receipts.append(receipt.to_dict())

    data_entries = [e for e in payload["entries"] if e[3] is not None]
    groups = read_groups(data_entries)
    read_buf = bytearray(max((g[-1][5] + g[-1][6] - g[0][5] for g in groups), default=0))
    for group in groups:
        pack, start = group[0][4], group[0][5]
        span = group[-1][5] + group[-1][6] - start
        view = memoryview(read_buf)[:span]
        got = repo.read_into(pack_key(pack), start, view)
        for part, offset, length, cid, _pack, poff, plen, raw in group:
            where = (
                f"{payload['label']}: chunk at offset {offset} (id {cid[:16]}…, pack {pack[:16]}…)"
            )
            if got < poff - start + plen:
                raise VerificationFailed(f"{where}: the pack is shorter than its index says")
            try:
                data = repo.codec.decode(
                    bytes.fromhex(cid), view[poff - start : poff - start + plen], raw
                )
            except Corrupt as exc:
                raise VerificationFailed(
                    f"{where} is corrupt: {exc.message}; nothing restored"
                ) from None
            if len(data) != length:
                raise VerificationFailed(f"{where}: {len(data)} bytes, the manifest says {length}")
            if buf is None:
                put(part, offset, memoryview(data))
            else:
                buf[offset - base : offset - base + length] = data
    if buf is not None:
        put(int(payload["part"]), base, memoryview(buf))
    return {"receipts": receipts, "bytes": sum(e[2] for e in data_entries)}


def read_groups(entries: list[list[Any]]) -> list[list[list[Any]]]:
    """Data entries grouped into reads: same pack, adjacent or nearly (64 KiB gaps), at most
    :data:`READ_BYTES` (or one blob)."""
    out: list[list[list[Any]]] = []
    for e in sorted(entries, key=lambda e: (e[4], e[5])):
        if out:
            g = out[-1]
            start, last = g[0][5], g[-1]
            if (
                e[4] == last[4]
                and 0 <= e[5] - (last[5] + last[6]) <= 64 * 1024
                and e[5] + e[6] - start <= READ_BYTES
            ):
                g.append(e)
                continue
        out.append([e])
    return out


def _ranges(
    chunks: list[list[Any]],
    locs: dict[str, tuple[str, int, int, int]],
    step: int,
    write_at: bool,
) -> list[dict[str, Any]]:
    """Cut the manifest into ranges of about ``step`` bytes (offset, length, part, entries).

    For a write-at destination only data chunks go into ranges (zero runs stay holes, covered
    by the commit's receipts) and ranges are counted in data bytes. Otherwise ranges tile the
    volume, zero runs split to fill them, each at least ``step`` bytes but the last (a part).
    """
    ranges: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for i, (off, length, cid) in enumerate(chunks):
        if cid is None and write_at:
            continue
        o, left = off, length
        while left:
            if cur is None or cur["filled"] >= step:
                cur = {"offset": o, "length": 0, "part": len(ranges), "entries": [], "filled": 0}
                ranges.append(cur)
            n = left if cid is not None else min(left, step - cur["filled"])
            loc = locs.get(cid) if cid is not None else None
            cur["entries"].append([i, o, n, cid, *(loc or (None, 0, 0, 0))])
            cur["length"] = o + n - cur["offset"]
            cur["filled"] += n
            o, left = o + n, left - n
    for r in ranges:
        del r["filled"]
    return ranges


def holes_stay(store: StoreProvider, key: str) -> bool:
    """Whether zero runs may be left unwritten: the destination writes parts at offsets into
    a file it sizes first (a new or regular file on this host), so unwritten ranges are holes
    that read as zeros. A device, or a store that cannot say, gets its zeros written."""
    caps = store.capabilities
    if not (caps.write_at and caps.local_path):
        return False
    try:
        mode = os.stat(store.local_path(key)).st_mode
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat.S_ISREG(mode)


def restore(
    repo: Repository,
    kind: str,
    name: str,
    backup: str,
    destination: str,
    *,
    runner: Runner | None = None,
    label: str | None = None,
    to_device: bool = False,
) -> dict[str, Any]:
    """Rebuild manifest ``kind``/``name``/``backup`` at ``destination``, verified; returns a
    summary. Nothing becomes visible unless every chunk verified. A block device is written
    only with ``to_device``, in place (the same gate as ``mover copy --to-device``)."""
    runner = runner or ThreadRunner()
    label = label or f"{kind} {name!r} backup {backup}"
    started = time.time()
    manifest = manifests.read(repo, kind, name, backup)
    s = survey(repo, rebuild=False)
    locs: dict[str, tuple[str, int, int, int]] = {}
    for pid, (_size, entries) in s.indexed.items():
        if pid in s.packs:
            for e in entries:
                locs.setdefault(e.id.hex(), (pid, e.offset, e.length, e.raw_length))
    missing = [c for c in manifest.chunks if c[2] is not None and c[2] not in locs]
    if missing:
        first = missing[0]
        raise ObjectNotFound(
            f"{label}: {len(missing)} chunk(s) are in no pack of the {repo.describe()} (first: "
            f"offset {first[0]}, id {first[2][:16]}…); nothing restored: mover repo check "
            f"{repo.store_name}"
        )

    dst_store, dst_loc = open_location(destination)
    if dst_loc.is_prefix or dst_store.is_folder(dst_loc.full_key):
        dst_loc = dst_loc.child(name)
    key = dst_loc.full_key
    notes = check_destination(dst_loc, stat_or_none(dst_store, key), manifest.size, to_device)
    caps = dst_store.capabilities
    limits = caps.chunk_writer
    if limits is None or caps.ordered_parts:
        raise UsageError(f"{dst_store.describe()} cannot be written in parts: restore to a file")
    write_at = holes_stay(dst_store, key)
    size = manifest.size
    step = max(RANGE_BYTES, limits.min_part_bytes)
    if not write_at:
        while size and math.ceil(size / step) > limits.max_parts:
            step *= 2
        if step + manifest.chunk_size > limits.max_part_bytes:
            raise UsageError(f"{dst_store.describe()}: parts would exceed its limit")
    ranges = _ranges(manifest.chunks, locs, step, write_at)
    dst_store.make_parents(key)
    # Space for what will be written: a file that keeps zero runs as holes needs its data only.
    dst_store.check_writable(key, manifest.data_bytes() if write_at else size)
    writer = dst_store.open_writer(key, size)
    dest = {
        "location": dst_loc.url,
        "key": key,
        "state": writer.state(),
        "algorithm": caps.checksum_algorithms[0],
    }
    payloads = [
        {"repo": repo.store_name, "dest": dest, "write_at": write_at, "label": label, **r}
        for r in ranges
    ]
    receipts: list[PartReceipt] = []
    if write_at:
        receipts = [
            PartReceipt(i, c[0], c[1], HOLE) for i, c in enumerate(manifest.chunks) if c[2] is None
        ]
    restored = 0
    try:
        for _i, result in runner.map("restore_range", payloads):
            receipts.extend(PartReceipt.from_dict(r) for r in result["receipts"])
            restored += result["bytes"]
        receipts.sort(key=lambda r: r.offset)
        writer.commit(receipts, size)
    except BaseException:
        with contextlib.suppress(Exception):
            writer.abort()
        raise
    return {
        "destination": dst_loc.url,
        "size": size,
        "data_bytes": restored,
        "zero_bytes": size - manifest.data_bytes(),
        "chunks": len(manifest.chunks),
        "seconds": time.time() - started,
        "manifest": manifest,
        "notes": notes,
    }
