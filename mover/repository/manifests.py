"""Manifests: what a backup, snapshot or template *is* — its chunk ids in order, with offsets
and lengths. Written last (a backup without a manifest never happened), never changed, sealed
like everything else, under ``snapshots/<name>/<backup>`` or ``templates/<name>/<backup>``.

Entries are ``[offset, length, id]`` with the chunk's keyed id in hex, or ``[offset, length,
null]`` for a run of zeros (all-zero chunks and holes are stored as nothing; adjacent zero
chunks are one entry, so a sparse 100 GiB volume has a small manifest). Offsets are explicit,
so a backup's chunk size may differ from its parent's and dedup still works chunk by chunk.

The manifest is sealed with its own key (``snapshots/NAME/ID``) as associated data: a manifest
copied under another name or backup id fails to open.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mover.errors import ObjectNotFound, VerificationFailed
from mover.repository.layout import KINDS, manifest_folder, manifest_key
from mover.repository.repo import Repository

#: Manifest format (1 is the catalogue's per-backup-prefix format, mover.catalogue.snapshots).
FORMAT = 2

Chunk = list[Any]  # [offset, length, hex id | None]


@dataclass
class Manifest:
    kind: str
    name: str
    backup: str
    size: int
    chunk_size: int
    chunks: list[Chunk]
    created: float = 0.0
    source: str = ""
    parent: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT

    @property
    def key(self) -> str:
        return manifest_key(self.kind, self.name, self.backup)

    def ids(self) -> set[str]:
        return {c[2] for c in self.chunks if c[2] is not None}

    def data_bytes(self) -> int:
        """Bytes that are not zeros (what a restore reads from packs)."""
        return sum(c[1] for c in self.chunks if c[2] is not None)

    def check(self, where: str) -> None:
        """Refuse a manifest whose entries do not tile ``[0, size)`` in order."""
        pos = 0
        for c in self.chunks:
            if c[0] != pos or c[1] <= 0:
                raise VerificationFailed(f"{where}: entries do not cover the volume at {pos}")
            pos += c[1]
        if pos != self.size:
            raise VerificationFailed(f"{where}: entries cover {pos} bytes of {self.size}")


def aad(key: str) -> str:
    return f"mover-manifest:{key}"


def write(repo: Repository, manifest: Manifest) -> int:
    """Write ``manifest`` (after checking it tiles the volume); returns its stored size."""
    manifest.check(f"{repo.describe()}: {manifest.key}")
    return repo.put_sealed(manifest.key, asdict(manifest), aad(manifest.key))


def read(repo: Repository, kind: str, name: str, backup: str) -> Manifest:
    key = manifest_key(kind, name, backup)
    try:
        raw = repo.get_sealed(key, aad(key))
    except ObjectNotFound:
        raise ObjectNotFound(f"{repo.describe()}: no manifest {key}") from None
    if raw.get("version") != FORMAT:
        raise VerificationFailed(f"{repo.describe()}: {key}: manifest version {raw.get('version')}")
    m = Manifest(**raw)
    if (m.kind, m.name, m.backup) != (kind, name, backup):
        raise VerificationFailed(f"{repo.describe()}: {key} describes {m.kind} {m.name}/{m.backup}")
    m.check(f"{repo.describe()}: {key}")
    return m


def listing(
    repo: Repository, kind: str | None = None, name: str | None = None
) -> list[tuple[str, str, str]]:
    """(kind, name, backup) of every manifest, by kind, name and backup id."""
    out = []
    for k, folder in KINDS.items():
        if kind is not None and k != kind:
            continue
        prefix = manifest_folder(k, name) if name is not None else folder
        for obj in repo.list(prefix):
            parts = obj.key[len(folder) :].split("/")
            if len(parts) == 2 and all(parts):
                out.append((k, parts[0], parts[1]))
    return sorted(out)


def delete(repo: Repository, kind: str, name: str, backup: str) -> bool:
    return repo.delete(manifest_key(kind, name, backup))
