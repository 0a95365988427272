"""Copy a manifest from one store's repository to another's, moving only the chunks the
destination lacks (a template copied to another zone, a snapshot replicated).

When both repositories share their master key (``mover repo init B --like A``), chunk ids are
the same on both sides: the plan asks the destination's index which chunks it lacks and copies
only those, their sealed blobs as they are (each opened and verified on the way, never
re-encrypted). Otherwise ids differ (each repository keys its own), so every chunk is read,
verified, named with the destination's key, and stored there only if it is new: fewer bytes
written, all bytes read.

Runs as range tasks (``copy_blobs``) on the same runners as backups, under a lease of the
destination, and writes the destination's index, then its manifest, last.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from mover.errors import ObjectNotFound, VerificationFailed
from mover.repository import manifests
from mover.repository.backup import packs_of, upload_pack
from mover.repository.crypto import Corrupt
from mover.repository.index import View, locations, survey, write_index
from mover.repository.layout import pack_key
from mover.repository.locks import Lease
from mover.repository.packs import PackBuilder
from mover.repository.references import blob_index
from mover.repository.repo import Repository
from mover.repository.restore import read_groups
from mover.repository.runner import Runner, ThreadRunner

#: Stored bytes of chunks per copy task.
TASK_BYTES = 64 << 20


def run_copy(payload: dict[str, Any]) -> dict[str, Any]:
    """One copy task. Payload: ``src``, ``dst`` (store names), ``view`` (the destination's),
    ``same_keys``, ``entries`` ``[n, 0, 0, id, pack, pack offset, blob length, raw length]``."""
    src = Repository.open(payload["src"])
    dst = Repository.open(payload["dst"])
    known = locations(dst, View.from_json(payload["view"]))
    same_keys = bool(payload["same_keys"])
    builder = PackBuilder(
        dst.sealer,
        dst.config.pack_bytes,
        64 * 1024 + max((e[6] for e in payload["entries"]), default=0) + dst.sealer.overhead,
    )
    here: set[bytes] = set()
    packs: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    copied = copied_bytes = 0

    groups = read_groups(payload["entries"])
    buf = bytearray(max((g[-1][5] + g[-1][6] - g[0][5] for g in groups), default=0))
    for group in groups:
        start = group[0][5]
        view = memoryview(buf)[: group[-1][5] + group[-1][6] - start]
        src.read_into(pack_key(group[0][4]), start, view)
        for _n, _o, _l, cid_hex, pack, poff, plen, raw in group:
            cid = bytes.fromhex(cid_hex)
            blob = view[poff - start : poff - start + plen]
            try:
                plain = src.codec.decode(cid, blob, raw)
            except Corrupt as exc:
                raise VerificationFailed(
                    f"{src.describe()}: chunk {cid_hex[:16]}… in pack {pack[:16]}… is corrupt "
                    f"({exc.message}); nothing copied"
                ) from None
            new = cid if same_keys else dst.ids(plain)
            renamed[cid_hex] = new.hex()
            if new in known or new in here:
                continue
            stored = bytes(blob) if same_keys else dst.codec.encode(new, memoryview(plain))
            builder.add(new, stored, raw)
            here.add(new)
            copied += 1
            copied_bytes += len(stored)
            if builder.full:
                upload_pack(dst, builder, packs)
    upload_pack(dst, builder, packs)
    return {"packs": packs, "renamed": renamed, "copied": copied, "copied_bytes": copied_bytes}


def copy(
    src: Repository,
    dst: Repository,
    kind: str,
    name: str,
    backup: str,
    *,
    runner: Runner | None = None,
) -> dict[str, Any]:
    """Copy manifest ``kind``/``name``/``backup`` and the chunks ``dst`` lacks; a summary."""
    runner = runner or ThreadRunner()
    started = time.time()
    manifest = manifests.read(src, kind, name, backup)
    same_keys = (
        src.master.ids == dst.master.ids
        and src.master.data == dst.master.data
        and src.config.encryption == dst.config.encryption
    )
    with Lease(dst, "backup", f"copy {kind} {name}/{backup}") as lease:
        s = survey(dst)
        view = s.view()
        have = locations(dst, view)
        s_src = survey(src, rebuild=False)
        where = blob_index(s_src.indexed, set(s_src.packs))
        ids = list(dict.fromkeys(c[2] for c in manifest.chunks if c[2] is not None))
        todo = [i for i in ids if not (same_keys and bytes.fromhex(i) in have)]
        lost = [i for i in todo if bytes.fromhex(i) not in where]
        if lost:
            raise ObjectNotFound(
                f"{src.describe()}: {len(lost)} chunk(s) of {kind} {name}/{backup} are in no "
                f"pack (first {lost[0][:16]}…): mover repo check {src.store_name}"
            )
        payloads: list[dict[str, Any]] = []
        for n, cid in enumerate(todo):
            pack, poff, plen, raw = where[bytes.fromhex(cid)]
            if not payloads or payloads[-1]["bytes"] >= TASK_BYTES:
                payloads.append(
                    {
                        "src": src.store_name,
                        "dst": dst.store_name,
                        "view": view.to_json(),
                        "same_keys": same_keys,
                        "entries": [],
                        "bytes": 0,
                    }
                )
            payloads[-1]["entries"].append([n, 0, 0, cid, pack, poff, plen, raw])
            payloads[-1]["bytes"] += plen
        results = [r for _i, r in runner.map("copy_blobs", payloads)]
        write_index(dst, packs_of(results))
        renamed = {k: v for r in results for k, v in r["renamed"].items()}
        chunks = [
            [o, n, c if c is None or same_keys else renamed[c]] for o, n, c in manifest.chunks
        ]
        meta = {**manifest.meta, "copied_from": src.store_name}
        copy_of = replace(manifest, chunks=chunks, meta=meta)
        lease.check()
        manifests.write(dst, copy_of)
    copied = sum(r["copied"] for r in results)
    return {
        "kind": kind,
        "name": name,
        "backup": backup,
        "from": src.store_name,
        "to": dst.store_name,
        "chunks": len(ids),
        "copied_chunks": copied,
        "present_chunks": len(ids) - copied,
        "copied_bytes": sum(r["copied_bytes"] for r in results),
        "same_keys": same_keys,
        "seconds": time.time() - started,
    }
