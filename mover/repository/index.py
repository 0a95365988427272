"""The index: which pack holds which blob, and the *view* a backup or restore relies on.

Index files (``index/<id>``, sealed) list packs with their size and blob entries. They are a
cache: every pack ends with its own sealed header, so a pack that no index names (left by a
killed backup, or written by a backup still running) is indexed again from its header by the
next :func:`survey`, which writes one index file for all such packs. That is how an
interrupted backup's chunks are reused by the next one.

A :class:`View` is what a plan hands to its range tasks: the names of the index files to load
and the packs *not* to use (marked by a prune, or named by an index but gone from the store).
Index files are immutable, so each process caches them by name; range tasks on Celery workers
load a view's files once per process, not once per task.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mover.errors import MoverError, ObjectNotFound
from mover.repository.crypto import Corrupt
from mover.repository.layout import DATA, ID_BYTES, INDEX, TRASH, is_id, new_id, pack_key
from mover.repository.packs import (
    ENTRY_BYTES,
    LENGTH_BYTES,
    Entry,
    decode_entries,
    encode_entries,
    header_length,
    open_header,
)
from mover.repository.repo import Repository

INDEX_AAD = b"mover-index"
TRASH_AAD = "mover-trash"
_MAGIC = b"MVIX1"
_PACK = struct.Struct(f"<{ID_BYTES}sQI")
#: Bytes read from a pack's end to find its header in one request, usually.
TAIL_BYTES = 64 * 1024
#: Parallel reads of index files and pack headers.
READERS = 8

#: pack id -> (pack size, entries)
Packs = dict[str, tuple[int, list[Entry]]]
#: blob id -> (pack id, offset, length, raw length)
Locations = dict[bytes, tuple[str, int, int, int]]

_FILES: OrderedDict[tuple[str, str], Packs] = OrderedDict()
_VIEWS: OrderedDict[tuple[str, tuple[str, ...], tuple[str, ...]], Locations] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_MAX_FILES = 4096
_MAX_VIEWS = 2


def encode_index(packs: Packs) -> bytes:
    parts = [_MAGIC]
    for pid, (size, entries) in sorted(packs.items()):
        parts.append(_PACK.pack(bytes.fromhex(pid), size, len(entries)))
        parts.append(encode_entries(entries))
    return b"".join(parts)


def decode_index(data: bytes) -> Packs:
    if not data.startswith(_MAGIC):
        raise Corrupt("not an index file")
    view = memoryview(data)
    pos = len(_MAGIC)
    out: Packs = {}
    while pos < len(view):
        pid, size, count = _PACK.unpack_from(view, pos)
        pos += _PACK.size
        end = pos + count * ENTRY_BYTES
        if end > len(view):
            raise Corrupt("index file ends inside a pack's entries")
        out[pid.hex()] = (size, decode_entries(view[pos:end]))
        pos = end
    return out


def write_index(repo: Repository, packs: Packs) -> str | None:
    """Write one index file for ``packs``; its name, or None when there is nothing to index."""
    if not packs:
        return None
    name = new_id()
    repo.put(INDEX + name, repo.sealer.seal(encode_index(packs), INDEX_AAD))
    return name


def read_index(repo: Repository, name: str) -> Packs:
    """An index file's packs, cached by name (index files never change)."""
    key = (repo.config.id, name)
    with _CACHE_LOCK:
        hit = _FILES.get(key)
        if hit is not None:
            _FILES.move_to_end(key)
            return hit
    try:
        packs = decode_index(repo.sealer.open(repo.get(INDEX + name), INDEX_AAD))
    except Corrupt as exc:
        raise Corrupt(f"{repo.describe()}: index/{name}: {exc.message}") from None
    with _CACHE_LOCK:
        _FILES[key] = packs
        while len(_FILES) > _MAX_FILES:
            _FILES.popitem(last=False)
    return packs


def read_header(repo: Repository, pack_id: str, size: int) -> list[Entry]:
    """A pack's blob entries from its own header (one ranged read, two for a long header)."""
    rel = pack_key(pack_id)
    tail = min(size, TAIL_BYTES)
    buf = bytearray(tail)
    got = repo.read_into(rel, size - tail, memoryview(buf))
    if got != tail or tail < LENGTH_BYTES:
        raise Corrupt(f"{repo.describe()}: {rel}: short read of its header")
    length = header_length(buf)
    if length + LENGTH_BYTES > size:
        raise Corrupt(f"{repo.describe()}: {rel}: header length {length} exceeds the pack")
    if length + LENGTH_BYTES > tail:
        buf = bytearray(length + LENGTH_BYTES)
        repo.read_into(rel, size - len(buf), memoryview(buf))
    sealed = memoryview(buf)[len(buf) - LENGTH_BYTES - length : len(buf) - LENGTH_BYTES]
    try:
        return open_header(repo.sealer, sealed)
    except Corrupt as exc:
        raise Corrupt(f"{repo.describe()}: {rel}: header: {exc.message}") from None


def read_trash(repo: Repository) -> dict[str, dict[str, Any]]:
    """Prune marks: trash file name -> {"time": seconds, "packs": [pack ids]}."""
    out = {}
    for obj in repo.list(TRASH):
        if is_id(obj.name):
            out[obj.name] = repo.get_sealed(TRASH + obj.name, TRASH_AAD)
    return out


@dataclass(frozen=True)
class View:
    """The index files a range task loads and the packs it must not use."""

    index: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"index": list(self.index), "exclude": list(self.exclude)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> View:
        return cls(tuple(raw.get("index", ())), tuple(raw.get("exclude", ())))


EMPTY = View(())


def locations(repo: Repository, view: View) -> Locations:
    """Where each blob of ``view`` lies; cached per process for the last few views."""
    key = (repo.config.id, view.index, view.exclude)
    with _CACHE_LOCK:
        hit = _VIEWS.get(key)
        if hit is not None:
            return hit
    excluded = set(view.exclude)
    out: Locations = {}

    def load(name: str) -> Packs:
        try:
            return read_index(repo, name)
        except ObjectNotFound:
            return {}  # replaced by a prune since the plan: knowing less only stores more

    with ThreadPoolExecutor(READERS) as pool:
        files = list(pool.map(load, view.index))
    for packs in files:
        for pid, (_size, entries) in packs.items():
            if pid in excluded:
                continue
            for e in entries:
                out.setdefault(e.id, (pid, e.offset, e.length, e.raw_length))
    with _CACHE_LOCK:
        _VIEWS[key] = out
        while len(_VIEWS) > _MAX_VIEWS:
            _VIEWS.popitem(last=False)
    return out


@dataclass
class Survey:
    """The repository's packs as the store lists them, and what the index says of them.

    Attributes:
        packs: pack id -> size, as listed under ``data/``.
        index_files: index file name -> its packs.
        indexed: pack id -> (size, entries), from every index file (listed or not).
        trash: prune marks (see :func:`read_trash`).
        rebuilt: the index file written for packs no index named, if any.
    """

    packs: dict[str, int] = field(default_factory=dict)
    index_files: dict[str, Packs] = field(default_factory=dict)
    indexed: Packs = field(default_factory=dict)
    trash: dict[str, dict[str, Any]] = field(default_factory=dict)
    rebuilt: str | None = None
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def trashed(self) -> set[str]:
        return {p for t in self.trash.values() for p in t["packs"]}

    @property
    def missing(self) -> set[str]:
        """Packs an index names that the store no longer has."""
        return set(self.indexed) - set(self.packs)

    def view(self) -> View:
        names = sorted(self.index_files)
        return View(tuple(names), tuple(sorted(self.trashed | self.missing)))


def survey(repo: Repository, *, rebuild: bool = True) -> Survey:
    """List packs, index files and prune marks; index the packs no index file names (from
    their headers), writing one index file for them when ``rebuild``."""
    s = Survey()
    if rebuild:  # a backup under its lease: a killed backup's half-written packs go first
        repo.sweep_abandoned(DATA)
    for obj in repo.list(DATA):
        if is_id(obj.name):
            s.packs[obj.name] = obj.size
    names = [o.name for o in repo.list(INDEX) if is_id(o.name)]
    with ThreadPoolExecutor(READERS) as pool:
        for name, packs in zip(names, pool.map(lambda n: read_index(repo, n), names), strict=True):
            s.index_files[name] = packs
            for pid, value in packs.items():
                s.indexed.setdefault(pid, value)
    s.trash = read_trash(repo)
    orphans = sorted(p for p in s.packs if p not in s.indexed)
    found: Packs = {}

    def header(pid: str) -> tuple[str, list[Entry] | None, str | None]:
        try:
            return pid, read_header(repo, pid, s.packs[pid]), None
        except MoverError as exc:
            return pid, None, exc.message

    with ThreadPoolExecutor(READERS) as pool:
        for pid, entries, error in pool.map(header, orphans):
            if entries is None:
                s.unreadable[pid] = error or "unreadable"
            else:
                found[pid] = (s.packs[pid], entries)
    if found:
        s.indexed.update(found)
        if rebuild:
            s.rebuilt = write_index(repo, found)
            if s.rebuilt:
                s.index_files[s.rebuilt] = found
    return s


def forget_cached() -> None:
    """Drop cached index files and views (tests)."""
    with _CACHE_LOCK:
        _FILES.clear()
        _VIEWS.clear()
