"""What is under a URL: the objects of a folder or prefix, relative to it, filtered.

One place for the listing that ``mover ls``, ``mover copy -r`` and ``mover sync`` share, so
that the three agree on what "the objects under SRC" are and on what the filters select.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from mover import config as config_mod
from mover.errors import ObjectNotFound, UsageError
from mover.filters import Filters
from mover.location import Location
from mover.provider import ObjectInfo, StoreProvider
from mover.resolve import open_location


@dataclass(frozen=True)
class Entry:
    """One line of ``mover ls``: an object, or (not recursive) a folder below the URL.

    ``path`` is relative to the listed folder or prefix; a folder's ends in ``/`` and has
    no size of its own (``size`` is the bytes of the objects under it).
    """

    path: str
    size: int | None
    folder: bool = False
    mtime: float | None = None
    etag: str | None = None
    checksum: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": self.size}
        if self.folder:
            out["folder"] = True
        for name in ("mtime", "etag", "checksum"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def folder_prefix(store: StoreProvider, location: Location) -> str:
    """The full-key prefix of a folder or prefix location (ends in ``/`` unless the store's
    root itself), refused where the store cannot list folders."""
    prefix = location.full_key
    if prefix and not prefix.endswith("/") and store.is_folder(prefix):
        prefix += "/"
    if not store.capabilities.listing and (not prefix or prefix.endswith("/")):
        raise UsageError(f"{store.describe()} cannot list folders: name one object")
    return prefix


def objects_under(
    store: StoreProvider,
    location: Location,
    filters: Filters | None = None,
    *,
    missing_ok: bool = False,
) -> tuple[str, list[tuple[str, ObjectInfo]]]:
    """``(prefix, [(relative path, info)])`` of every object under ``location``, in key
    order, those the filters reject left out. A prefix with no object raises ObjectNotFound
    (an empty list with ``missing_ok``: a sync's destination that does not exist yet)."""
    prefix = folder_prefix(store, location)
    try:
        listing = list(store.list(prefix))
    except ObjectNotFound:
        if missing_ok:
            return prefix, []
        raise ObjectNotFound(f"{location}: no such folder or prefix") from None
    out: list[tuple[str, ObjectInfo]] = []
    for info in sorted(listing, key=lambda i: i.key):
        rel = info.key[len(prefix) :] if info.key.startswith(prefix) else os.path.basename(info.key)
        rel = rel or location.basename
        if filters is None or filters.allows(rel):
            out.append((rel, info))
    return prefix, out


def ls(
    url: str,
    *,
    recursive: bool = False,
    include: Any = None,
    exclude: Any = None,
    config: config_mod.Config | None = None,
) -> list[Entry]:
    """The objects under ``url`` with their sizes (``mover ls``). Not recursive: the objects
    directly under it and one entry per folder below (its bytes summed); recursive: every
    object. A URL that names one object lists that object."""
    store, location = open_location(url, config)
    filters = Filters.of(include, exclude)
    if not location.is_prefix and location.key and not store.is_folder(location.full_key):
        try:
            info = store.stat(location.full_key)
        except ObjectNotFound:
            info = None
        if info is not None:
            return [_entry(location.basename, info)]
    _prefix, found = objects_under(store, location, filters)
    if recursive:
        return [_entry(rel, info) for rel, info in found]
    entries: list[Entry] = []
    folders: dict[str, int | None] = {}
    for rel, info in found:
        head, sep, _rest = rel.partition("/")
        if not sep:
            entries.append(_entry(rel, info))
            continue
        total = folders.get(head + "/", 0)
        folders[head + "/"] = None if total is None or info.size is None else total + info.size
    entries += [Entry(name, size, folder=True) for name, size in folders.items()]
    return sorted(entries, key=lambda e: e.path)


def _entry(path: str, info: ObjectInfo) -> Entry:
    return Entry(path, info.size, mtime=info.mtime, etag=info.etag, checksum=info.checksum)
