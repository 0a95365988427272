"""Stats: what the repository's manifests describe against what the store holds.

- ``logical_bytes``: the sum of every manifest's volume size (what restoring all would write);
- ``zero_bytes``: of which zeros (stored as nothing);
- ``unique_bytes``: plaintext bytes of the distinct chunks the manifests reference;
- ``stored_bytes``: every object under ``repository/`` (packs, index, manifests, keys...);
- ``dedup_ratio`` = (logical - zero) / unique; ``compression_ratio`` = unique / the stored
  size of those chunks; ``total_ratio`` = logical / stored;
- ``unused_pack_bytes``: bytes of packs that no manifest references (a prune's to delete, or a
  running backup's).
"""

from __future__ import annotations

from typing import Any

from mover.repository.index import survey
from mover.repository.layout import DATA, INDEX, KINDS
from mover.repository.references import all_manifests, blob_index
from mover.repository.repo import Repository


def stats(repo: Repository) -> dict[str, Any]:
    s = survey(repo, rebuild=False)
    logical = zero = 0
    ids: set[bytes] = set()
    backups = 0
    names: set[tuple[str, str]] = set()
    for m in all_manifests(repo):
        backups += 1
        names.add((m.kind, m.name))
        logical += m.size
        zero += m.size - m.data_bytes()
        ids |= {bytes.fromhex(i) for i in m.ids()}
    where = blob_index(s.indexed, set(s.packs))
    unique = sum(where[i][3] for i in ids if i in where)
    chunk_stored = sum(where[i][2] for i in ids if i in where)
    by_folder: dict[str, int] = {}
    total = 0
    for obj in repo.list(""):
        folder = obj.key.split("/", 1)[0] + "/" if "/" in obj.key else obj.key
        by_folder[folder] = by_folder.get(folder, 0) + obj.size
        total += obj.size
    referenced_packs = {where[i][0] for i in ids if i in where}
    data = logical - zero
    return {
        "store": repo.store_name,
        "encryption": repo.config.encryption,
        "compression": repo.config.compression,
        "backups": backups,
        "snapshots": len({n for k, n in names if k == "snapshot"}),
        "templates": len({n for k, n in names if k == "template"}),
        "logical_bytes": logical,
        "zero_bytes": zero,
        "unique_bytes": unique,
        "chunks": len(ids),
        "stored_bytes": total,
        "pack_bytes": by_folder.get(DATA, 0),
        "index_bytes": by_folder.get(INDEX, 0),
        "manifest_bytes": sum(by_folder.get(f, 0) for f in KINDS.values()),
        "packs": len(s.packs),
        "unused_pack_bytes": sum(size for p, size in s.packs.items() if p not in referenced_packs),
        "dedup_ratio": round(data / unique, 3) if unique else None,
        "compression_ratio": round(unique / chunk_stored, 3) if chunk_stored else None,
        "total_ratio": round(logical / total, 3) if total else None,
    }
