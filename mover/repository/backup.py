"""A backup into the repository: a plan of independent range tasks, then one commit.

1. **Plan** (in the caller): take a lease (:mod:`.locks`), survey the repository (index files,
   packs, prune marks; packs no index names are indexed from their headers: a killed backup's
   chunks become reusable here), and cut the volume into ranges of whole chunks.
2. **Range tasks** (:func:`run_range`, on threads or on the fleet): read the range in pieces,
   and for each chunk: zeros -> an entry and nothing stored; else its keyed id; if the view
   knows it (or this task stored it already) -> reuse; else compress, seal and add it to a
   pack, uploaded whole once it holds ``pack_bytes``. A task returns its entries and the packs
   it wrote. Memory: one read piece + one pack buffer per task (streams x (8 + 16) MiB by
   default), whatever the volume's size.
3. **Commit** (in the caller): one index file for the new packs, the lease checked, then the
   manifest, last. A backup that fails or is killed before that leaves no manifest: it never
   happened, and the next backup reuses what it uploaded.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from mover.errors import ChunkFailed, UsageError
from mover.jobs import new_job_id
from mover.repository import manifests
from mover.repository.index import EMPTY, Packs, View, locations, survey, write_index
from mover.repository.layout import INDEX, pack_key
from mover.repository.locks import Lease
from mover.repository.packs import Entry, PackBuilder
from mover.repository.repo import Repository
from mover.repository.runner import Runner, ThreadRunner
from mover.repository.source import (
    READ_BYTES,
    Reader,
    data_extents,
    hole_ranges,
    in_hole,
    is_zero,
    plan_ranges,
    spans,
)
from mover.resolve import open_location

#: Per-backup counters, summed over range tasks.
COUNTERS = (
    "chunks",
    "new_chunks",
    "new_bytes",
    "reused_chunks",
    "zero_chunks",
    "zero_bytes",
    "stored_bytes",
    "packs",
    "read_bytes",
)


_LOCAL = threading.local()


def _buffer(size: int) -> bytearray:
    """This thread's read buffer, kept between range tasks (a thin volume's backup runs
    thousands of ranges: zeroing a new buffer for each cost more than reading its holes)."""
    buf: bytearray | None = getattr(_LOCAL, "buf", None)
    if buf is None or len(buf) < size:
        buf = _LOCAL.buf = bytearray(size)
    return buf


@functools.lru_cache(maxsize=4)
def _zeros(size: int) -> bytes:
    return bytes(size)


def run_range(payload: dict[str, Any]) -> dict[str, Any]:
    """One backup range task (see the module docstring). Payload: ``repo`` (store name),
    ``source`` (location), ``offset``, ``length`` (None: a stream to its end), ``chunk_size``,
    ``view`` (:class:`View` JSON), ``index``. Safe to run twice."""
    repo = Repository.open(payload["repo"])
    src_store, src_loc = open_location(payload["source"])
    chunk = int(payload["chunk_size"])
    offset = int(payload["offset"])
    length = payload["length"]
    known = locations(repo, View.from_json(payload["view"]))
    sequential = length is None
    piece = max(chunk, READ_BYTES // chunk * chunk)
    if not sequential:
        piece = min(piece, max(int(length), 1))
    buf = _buffer(piece)
    zeros = _zeros(chunk)
    reader = Reader(src_store, src_loc.full_key, sequential)
    holes = [] if sequential else hole_ranges(src_store, src_loc.full_key, offset, int(length))
    builder = PackBuilder(repo.sealer, repo.config.pack_bytes, chunk + repo.sealer.overhead + 64)
    here: set[bytes] = set()
    entries: list[list[Any]] = []
    packs: dict[str, Any] = {}
    n = dict.fromkeys(COUNTERS, 0)

    def zero(off: int, size: int) -> None:
        n["zero_chunks"] += 1
        n["zero_bytes"] += size
        if entries and entries[-1][2] is None:
            entries[-1][1] += size
        else:
            entries.append([off, size, None])

    def flush() -> None:
        stored = upload_pack(repo, builder, packs)
        if stored:
            n["stored_bytes"] += stored
            n["packs"] += 1

    def one(off: int, size: int, data: memoryview) -> None:
        """A chunk read: zeros, known (by id), or new (into the pack)."""
        n["chunks"] += 1
        if is_zero(data, zeros):
            zero(off, size)
            return
        cid = repo.ids(data)
        entries.append([off, size, cid.hex()])
        if cid in known or cid in here:
            n["reused_chunks"] += 1
            return
        builder.add(cid, repo.codec.encode(cid, data), size)
        here.add(cid)
        n["new_chunks"] += 1
        n["new_bytes"] += size
        if builder.full:
            flush()

    def read(at: int, view: memoryview) -> None:
        got = reader.read(at, view)
        n["read_bytes"] += got
        if got != len(view):
            raise ChunkFailed(
                f"{src_store.describe()}/{src_loc.full_key} ended at {at + got}, "
                f"{end} bytes expected: the volume changed during the backup",
                retryable=False,
            )

    pos = offset
    end = None if sequential else offset + int(length)
    try:
        while end is None or pos < end:
            want = piece if end is None else min(piece, end - pos)
            view = memoryview(buf)[:want]
            if holes and in_hole(holes, pos, want):
                for off, size in spans(pos, want, chunk):
                    n["chunks"] += 1
                    zero(off, size)
                pos += want
                continue
            if holes:
                # Data and holes in this piece: read only the chunks that hold data (a thin
                # volume's scattered extents cost their chunks, not the pieces around them).
                for off, size in spans(pos, want, chunk):
                    if in_hole(holes, off, size):
                        n["chunks"] += 1
                        zero(off, size)
                        continue
                    data = view[off - pos : off - pos + size]
                    read(off, data)
                    one(off, size, data)
                pos += want
                continue
            if end is not None:
                read(pos, view)
                got = want
            else:
                got = reader.read(pos, view)
                n["read_bytes"] += got
            for off, size in spans(pos, got, chunk):
                one(off, size, view[off - pos : off - pos + size])
            pos += got
            if got < want:
                break  # a stream's end
        flush()
    finally:
        reader.close()
    return {
        "index": payload.get("index", 0),
        "chunks": entries,
        "packs": packs,
        "counters": n,
        "end": pos,
    }


def upload_pack(repo: Repository, builder: PackBuilder, packs: dict[str, Any]) -> int:
    """Store the pack ``builder`` holds (none if it holds nothing) and note it in ``packs`` as
    a range task's result carries it (:func:`packs_of` reads it back); the builder is then
    empty. Returns the pack's size in bytes (0: no pack)."""
    if not len(builder):
        return 0
    pid, data, written = builder.finish()
    repo.put(pack_key(pid), data)
    size = len(data)
    packs[pid] = [size, [[e.id.hex(), e.offset, e.length, e.raw_length] for e in written]]
    builder.reset()
    return size


def packs_of(results: list[dict[str, Any]]) -> Packs:
    """The packs range results wrote, as the index stores them."""
    out: Packs = {}
    for r in results:
        for pid, (size, entries) in r["packs"].items():
            out[pid] = (size, [Entry(bytes.fromhex(i), o, ln, raw) for i, o, ln, raw in entries])
    return out


def merge_entries(results: list[dict[str, Any]]) -> list[list[Any]]:
    """Range results' entries in volume order, zero runs joined across ranges."""
    out: list[list[Any]] = []
    for r in sorted(results, key=lambda r: r["index"]):
        for e in r["chunks"]:
            if e[2] is None and out and out[-1][2] is None:
                out[-1][1] += e[1]
            else:
                out.append(list(e))
    return out


def backup(
    repo: Repository,
    source: str,
    *,
    kind: str,
    name: str,
    chunk_size: int | None = None,
    runner: Runner | None = None,
    full: bool = False,
    parent: str | None = None,
    backup_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Back ``source`` up as manifest ``kind``/``name``/``backup_id``; returns a summary.

    ``full`` ignores what the repository holds (every chunk is stored again: a repair, or a
    measurement); dedup within the backup still applies.
    """
    runner = runner or ThreadRunner()
    src_store, src_loc = open_location(source)
    info = src_store.stat(src_loc.full_key)
    chunk = int(chunk_size or repo.config.chunk_size)
    if not repo.config.chunk_size // 16 <= chunk <= repo.config.pack_bytes:
        raise UsageError(f"chunk size {chunk}: between 1/16 of the default and the pack size")
    sequential = info.size is None or not src_store.capabilities.ranged_read
    if sequential and runner.name != "embedded":
        raise UsageError(
            f"{source} can only be read as a stream: back it up with the embedded executor"
        )
    backup_id = backup_id or new_job_id()
    started = time.time()
    with Lease(repo, "backup", f"{kind} {name}/{backup_id}") as lease:
        s = survey(repo)
        view = EMPTY if full else s.view()
        base = {
            "repo": repo.store_name,
            "source": src_loc.url,
            "chunk_size": chunk,
            "view": view.to_json(),
        }
        if sequential:
            payloads = [{**base, "index": 0, "offset": 0, "length": None}]
        else:
            assert info.size is not None
            data = data_extents(src_store, src_loc.full_key, 0, info.size)
            payloads = [
                {**base, "index": r.index, "offset": r.offset, "length": r.length}
                for r in plan_ranges(info.size, chunk, data=data)
            ] or [{**base, "index": 0, "offset": 0, "length": 0}]
        results: list[dict[str, Any]] = []
        try:
            for _i, result in runner.map("backup_range", payloads):
                results.append(result)
        except BaseException:
            # Index what was stored, so that the next backup need not read the packs' headers.
            write_index(repo, packs_of(results))
            raise
        # One index for this backup's packs and those the survey found unindexed (a killed
        # run's): the survey's own file goes, so an interruption leaves no extra object.
        rebuilt = s.index_files.get(s.rebuilt) if s.rebuilt else None
        index_name = write_index(repo, {**(rebuilt or {}), **packs_of(results)})
        if rebuilt is not None and index_name is not None:
            repo.delete(INDEX + str(s.rebuilt))
        size = max((r["end"] for r in results), default=0) if sequential else info.size
        assert size is not None
        counters = {k: sum(r["counters"][k] for r in results) for k in COUNTERS}
        manifest = manifests.Manifest(
            kind=kind,
            name=name,
            backup=backup_id,
            size=size,
            chunk_size=chunk,
            chunks=merge_entries(results),
            created=started,
            source=source,
            parent=parent,
            meta={**(meta or {}), "counters": counters, "index": index_name},
        )
        lease.check()
        manifest_bytes = manifests.write(repo, manifest)
    return {
        "backup": backup_id,
        "manifest": manifest.key,
        "size": size,
        "chunk_size": chunk,
        "entries": len(manifest.chunks),
        "manifest_bytes": manifest_bytes,
        "seconds": time.time() - started,
        "rebuilt_index": s.rebuilt,
        **counters,
    }
