"""Check: is every chunk that a manifest needs in the store, whole and readable?

Without reading data (fast): every manifest opens (tag, format, entries tile the volume),
every chunk it names is in an index entry of a pack the store lists, every listed pack has the
size its index says, and every pack no index names has a readable header.

``read_data`` (a fraction, ``--read-data-subset 10%``): that share of the packs, picked at
random, is read whole; a pack whose BLAKE3 differs from its name has its blobs opened one by
one (tag, zstd, length, keyed id) to name the corrupt chunks. Every problem is reported with
the manifests (snapshots, templates) that need the chunk, so an operator knows what to back up
again.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mover.errors import MoverError
from mover.repository import manifests
from mover.repository.crypto import Corrupt
from mover.repository.deps import require
from mover.repository.index import survey
from mover.repository.layout import pack_key
from mover.repository.references import blob_index, label
from mover.repository.repo import Repository

READERS = 4


def parse_fraction(text: str | float) -> float:
    """``10%``, ``0.1`` -> 0.1; refused outside (0, 1]."""
    from mover.errors import UsageError

    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise UsageError(f"read-data subset {text!r}: a percentage in (0, 100], e.g. 10%")
    return value


def check(repo: Repository, *, read_data: float = 0.0, seed: int | None = None) -> dict[str, Any]:
    s = survey(repo, rebuild=False)
    errors: list[str] = []
    needed_by: dict[bytes, list[str]] = defaultdict(list)
    names = manifests.listing(repo)

    def read(n: tuple[str, str, str]) -> tuple[tuple[str, str, str], Any]:
        try:
            return n, manifests.read(repo, *n)
        except MoverError as exc:
            return n, exc

    with ThreadPoolExecutor(8) as pool:
        opened = list(pool.map(read, names))
    for n, m in opened:
        if isinstance(m, MoverError):
            errors.append(f"manifest {n[0]} {n[1]}/{n[2]} does not open: {m.message}")
            continue
        for cid in m.ids():
            needed_by[bytes.fromhex(cid)].append(label(m))
    for pid in sorted(s.missing):
        errors.append(f"pack {pid} is named by the index but missing from the store")
    for pid, message in sorted(s.unreadable.items()):
        errors.append(f"pack {pid}: {message}")
    for pid, size in sorted(s.packs.items()):
        if pid in s.indexed and s.indexed[pid][0] != size:
            errors.append(f"pack {pid} holds {size} bytes, its index says {s.indexed[pid][0]}")
    where = blob_index(s.indexed, set(s.packs))
    missing = [
        {"id": cid.hex(), "needed_by": sorted(set(by))}
        for cid, by in sorted(needed_by.items())
        if cid not in where
    ]
    for m in missing:
        errors.append(f"chunk {m['id']} is missing; needed by {', '.join(m['needed_by'])}")

    corrupt: list[dict[str, Any]] = []
    chosen: list[str] = []
    if read_data:
        readable = sorted(p for p in s.packs if p in s.indexed)
        chosen = sorted(random.Random(seed).sample(readable, math.ceil(len(readable) * read_data)))
        with ThreadPoolExecutor(READERS) as pool:
            for found in pool.map(
                lambda p: _read_pack(repo, p, s.packs[p], s.indexed[p][1]), chosen
            ):
                corrupt.extend(found)
        for c in corrupt:
            cid = bytes.fromhex(c["id"]) if c["id"] else b""
            c["needed_by"] = sorted(set(needed_by.get(cid, [])))
            what = f"chunk {c['id']}" if c["id"] else "its header"
            errors.append(
                f"pack {c['pack']}: {what} is corrupt ({c['error']}); needed by "
                f"{', '.join(c['needed_by']) or 'no manifest'}"
            )
    referenced_packs = {where[c][0] for c in needed_by if c in where}
    return {
        "ok": not errors,
        "errors": errors,
        "manifests": len(names),
        "packs": len(s.packs),
        "unreferenced_packs": len(set(s.packs) - referenced_packs),
        "referenced_chunks": len(needed_by),
        "missing": missing,
        "corrupt": corrupt,
        "packs_read": len(chosen),
    }


def _read_pack(repo: Repository, pid: str, size: int, entries: list[Any]) -> list[dict[str, Any]]:
    """Corrupt chunks of one pack (empty when its bytes hash to its name)."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = repo.read_into(pack_key(pid), 0, view)
    if got == size and require("blake3").blake3(view).hexdigest() == pid:
        return []
    out = []
    for e in entries:
        if e.offset + e.length > got:
            out.append({"pack": pid, "id": e.id.hex(), "error": "truncated"})
            continue
        try:
            repo.codec.decode(e.id, view[e.offset : e.offset + e.length], e.raw_length)
        except Corrupt as exc:
            out.append({"pack": pid, "id": e.id.hex(), "error": exc.message})
    if not out:
        out.append({"pack": pid, "id": "", "error": "bytes differ from its name outside chunks"})
    return out
