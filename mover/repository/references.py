"""What the manifests reference: the only thing that keeps a chunk alive.

Prune and check read every manifest (in parallel); a manifest that cannot be read stops a
prune (it cannot know what that manifest needs) and is an error for check.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from mover.repository import manifests
from mover.repository.index import Locations, Packs
from mover.repository.manifests import Manifest
from mover.repository.repo import Repository

READERS = 8


def all_manifests(repo: Repository) -> Iterator[Manifest]:
    """Every manifest of the repository; raises on the first one that does not open."""
    names = manifests.listing(repo)
    with ThreadPoolExecutor(READERS) as pool:
        yield from pool.map(lambda n: manifests.read(repo, *n), names)


def label(m: Manifest) -> str:
    return f"{m.kind} {m.name}/{m.backup}"


def blob_index(packs: Packs, present: set[str] | None = None) -> Locations:
    """Blob id -> (pack, offset, length, raw length), from packs the store has (or all)."""
    out: Locations = {}
    for pid, (_size, entries) in sorted(packs.items()):
        if present is not None and pid not in present:
            continue
        for e in entries:
            out.setdefault(e.id, (pid, e.offset, e.length, e.raw_length))
    return out
