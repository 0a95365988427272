"""Snapshots: chunked, incremental backups of a volume into any store, and verified restores.

Modelled on Cinder's chunked backup driver, with its lessons applied:

- The volume is cut into chunks of ``chunk_size`` bytes (8 MiB by default). Each chunk's sha256
  is compared with the previous backup's digest at the same index; only chunks that differ (or
  are new, when the volume grew: no reason to start over) are written, each as its own object
  ``snapshots/<name>/<backup-id>/<index:08d>``.
- A JSON manifest ``snapshots/<name>/<backup-id>/manifest.json`` lists, per chunk, its offset,
  length, sha256 and *which backup holds it*, plus the volume's size and digest. It is written
  last: a backup without a manifest never happened. The manifest makes the store
  self-describing (the catalogue only indexes it), and a restore needs only the one manifest,
  not a replay of every incremental in order as Cinder does.
- Zeros are stored as nothing (manifest version 2): a chunk that is a hole of a sparse source
  (not even read) or reads as all zeros is an entry ``"zero": true`` and no object. Its sha256
  is the cached digest of that many zeros, so nothing hashes a volume's empty space. For the
  same reason the volume's digest is no longer the sha256 of every byte (version 1, which took
  one pass over 100 GiB of zeros for a thin 100 GiB volume) but ``sha256-chunks:`` the sha256
  of the chunks' sha256 digests in order; a restore checks both levels. Version 1 manifests
  (no zero entries, a whole-volume ``sha256``) are still restored and verified as before.
- Memory is bounded: the volume is read sequentially, holes skipped, into one of ``streams``
  chunk buffers; up to ``streams`` threads hash the chunks and write the changed ones, each
  owning its buffer until its write is confirmed. Nothing ever holds more than
  ``streams x chunk_size`` bytes, whatever the volume's size.
- Every chunk write is confirmed by the store (its checksum of what it stored) as for any
  mover chunk. A restore checks each chunk's sha256 against the manifest and the volume's
  digest before it commits the destination: a bad restore never becomes visible (but see
  devices, below). Zero chunks are restored as holes in a file and as zeros on a device
  (which may hold old data there), the device's fastest way.
- Block devices: backed up live, as any copy of a device (their mtime does not move, so a
  change during the backup cannot be detected): the job records a note saying so, and the
  README says to snapshot the volume first. Restored onto a device only with ``to_device``
  (``--to-device``), in place: a failed restore leaves the device partly overwritten.

Both operations write a job record (``mover jobs``, ``mover status``): the backup's job lists
only the chunks it sent, and its ``bytes_through_mover`` is the bytes sent.

Functions take and return JSON-able values, for the Python API and Celery tasks alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

from mover.catalogue.objectio import fill, read_into, read_small, write_whole
from mover.catalogue.store import (
    CREATING,
    FAILED,
    READY,
    SNAPSHOT,
    Catalogue,
    check_name,
)
from mover.digests import digest
from mover.errors import (
    ChunkFailed,
    MoverError,
    ObjectNotFound,
    UsageError,
    VerificationFailed,
)
from mover.jobs import DONE, RUNNING, ChunkRecord, Item, Job, JobStore, new_job_id
from mover.lifecycle import error_text
from mover.location import Location
from mover.provider import MiB, ObjectInfo, StoreProvider
from mover.reading import open_sequential
from mover.resolve import open_location
from mover.sparse import ExtentMap, fill_zeros, is_zero, read_chunk, sha256_hex, zero_digest
from mover.transfer import abort_message, check_destination, source_notes, stat_or_none

DEFAULT_CHUNK_BYTES = 8 * MiB
MANIFEST = "manifest.json"
#: The version written; 2 added zero chunks and the chunk-level volume digest.
MANIFEST_VERSION = 2
#: Versions a restore understands.
READABLE_VERSIONS = (1, 2)
#: Prefix of a version 2 volume digest: sha256 over the chunks' raw sha256 digests, in order.
CHUNKS_DIGEST = "sha256-chunks"


def _chunk_key(prefix: str, backup: str, index: int) -> str:
    return f"{prefix}{backup}/{index:08d}"


def job_store(jobs: JobStore | None) -> JobStore:
    """``jobs``, or the default job store (where ``mover jobs`` looks)."""
    if jobs is not None:
        return jobs
    from mover.api import default_jobstore

    return default_jobstore()


def job_done(jobstore: JobStore, job_id: str, **item: Any) -> None:
    """Record a snapshot job done: its one item (with ``item``'s fields), then the job."""
    jobstore.update_item(job_id, 0, state=DONE, **item)
    jobstore.update_job(job_id, state=DONE, finished=time.time())
    jobstore.flush()


def job_failed(jobstore: JobStore, job_id: str, message: str) -> None:
    """Record a snapshot job failed with ``message``: its one item, then the job."""
    jobstore.update_item(job_id, 0, state=FAILED, error=message)
    jobstore.update_job(job_id, state=FAILED, error=message, finished=time.time())
    jobstore.flush()


class BackupSource(NamedTuple):
    """A backup's request, checked (:func:`open_source`)."""

    catalogue: Catalogue
    store: StoreProvider
    location: Location
    info: ObjectInfo
    name: str  #: the snapshot's


def open_source(
    source: str, to: str, name: str | None, streams: int, catalogue: Catalogue | None
) -> BackupSource:
    """What every backup checks before it writes anything, into the repository or not: store
    ``to`` is known, the snapshot's name is valid (default: the source's file name), there is
    at least one stream, and the source exists (its stat)."""
    cat = catalogue or Catalogue()
    cat.get_store(to)
    src_store, src_loc = open_location(source)
    name = check_name(name or src_loc.basename, "snapshot")
    if streams < 1:
        raise UsageError("streams must be at least 1")
    return BackupSource(cat, src_store, src_loc, src_store.stat(src_loc.full_key), name)


def choose_backup(
    cat: Catalogue, name: str, backup: str | None, store: str | None
) -> dict[str, Any]:
    """The backup of snapshot ``name`` a restore reads: the latest (in ``store``, if given),
    or the one whose id starts with ``backup``."""
    obj = cat.get_object(SNAPSHOT, name)
    history = cat.backups(obj.id, store)
    if backup:
        history = [b for b in history if b["id"].startswith(backup)]
        if len(history) != 1:
            raise UsageError(f"snapshot {name!r}: {len(history)} backups match {backup!r}")
    if not history:
        raise ObjectNotFound(f"snapshot {name!r} has no backup" + (f" in {store}" if store else ""))
    return history[-1]


def _read_manifest(location: str) -> dict[str, Any]:
    store, loc = open_location(location)
    try:
        manifest: dict[str, Any] = json.loads(read_small(store, loc.full_key))
    except ValueError as exc:
        raise VerificationFailed(f"{location}: not a snapshot manifest ({exc})") from exc
    if manifest.get("version") not in READABLE_VERSIONS:
        raise UsageError(f"{location}: manifest version {manifest.get('version')} is unknown")
    return manifest


def _zero_entry(index: int, offset: int, length: int) -> dict[str, Any]:
    """The manifest entry of a chunk of zeros: stored as nothing, its sha256 implied by its
    length (:func:`zero_sha256`; a thin volume has thousands of these)."""
    return {"index": index, "offset": offset, "length": length, "zero": True}


def chunk_sha256(entry: dict[str, Any]) -> str:
    """A manifest entry's sha256 (hex), a zero chunk's from its length."""
    return zero_sha256(entry["length"]) if entry.get("zero") else entry["sha256"]


def zero_sha256(length: int) -> str:
    """The sha256 (hex) of ``length`` zero bytes, from a cache: no pass over zeros."""
    return zero_digest("sha256", length).hex


def chunks_digest(shas: list[str]) -> str:
    """A volume's digest from its chunks' sha256 (hex), in order: ``sha256-chunks:<hex>``.

    Anyone can recompute it from the volume's bytes and the chunk size (sha256 each chunk,
    sha256 the concatenated raw digests), without mover.
    """
    h = hashlib.sha256()
    for sha in shas:
        h.update(bytes.fromhex(sha))
    return f"{CHUNKS_DIGEST}:{h.hexdigest()}"


def backup_snapshot(
    source: str,
    to: str,
    *,
    name: str | None = None,
    chunk_size: int | None = None,
    streams: int = 4,
    full: bool = False,
    catalogue: Catalogue | None = None,
    jobs: JobStore | None = None,
) -> dict[str, Any]:
    """Back ``source`` (any readable location) up into store ``to`` as snapshot ``name``.

    Incremental against the snapshot's latest backup in that store unless ``full``; the chunk
    size defaults to the parent's (8 MiB for a first backup). A chunk size other than the
    parent's makes a full backup, said in ``notes``. Returns the backup's record.
    """
    cat, src_store, src_loc, info, name = open_source(source, to, name, streams, catalogue)
    obj = cat.find_object(SNAPSHOT, name) or cat.create_object(SNAPSHOT, name, format="raw")
    history = cat.backups(obj.id, to)
    live = source_notes(src_loc, info)  # a device read live: said in the job record
    notes: list[str] = list(live)
    parent: dict[str, Any] | None = None
    if history and not full:
        parent = _read_manifest(history[-1]["manifest"])
        if chunk_size and chunk_size != parent["chunk_size"]:
            notes.append(
                f"chunk size {chunk_size} differs from the parent's {parent['chunk_size']}: "
                "full backup"
            )
            parent = None
    chunk = int(chunk_size or (parent["chunk_size"] if parent else DEFAULT_CHUNK_BYTES))
    parent_chunks = {c["index"]: c for c in parent["chunks"]} if parent else {}

    dst_store, base = open_location(f"store:{to}/snapshots/{name}/")
    prefix = base.full_key
    backup_id = new_job_id()
    manifest_key = f"{prefix}{backup_id}/{MANIFEST}"
    copy_location = f"store:{to}/snapshots/{name}/"
    manifest_location = f"store:{to}/snapshots/{name}/{backup_id}/{MANIFEST}"
    dst_store.make_parents(manifest_key)
    dst_store.check_writable(manifest_key, None)

    jobstore = job_store(jobs)
    job = Job(
        id=backup_id,
        source=src_loc.url,
        destination=f"store:{to}/snapshots/{name}/{backup_id}/",
        options={
            "streams": streams,
            "chunk_size": chunk,
            "kind": "snapshot-backup",
            **({"notes": live} if live else {}),
        },
        items=[Item(0, src_loc.url, manifest_location, info.size, state=RUNNING)],
        state=RUNNING,
    )
    jobstore.create(job)
    if not history:
        cat.set_copy(obj.id, to, CREATING, copy_location, job_id=backup_id)

    written: list[str] = []
    try:
        entries, sent, size = _send_chunks(
            src_store,
            src_loc.full_key,
            info.size,
            dst_store,
            prefix,
            backup_id,
            chunk,
            streams,
            parent_chunks,
            written,
        )
        volume_digest = chunks_digest([chunk_sha256(e) for e in entries])
        manifest = {
            "version": MANIFEST_VERSION,
            "snapshot": name,
            "backup": backup_id,
            "parent": parent["backup"] if parent else None,
            "created": time.time(),
            "source": src_loc.url,
            "size": size,
            "chunk_size": chunk,
            "digest": volume_digest,
            "chunks": entries,
        }
        write_whole(dst_store, manifest_key, json.dumps(manifest, indent=1).encode())
    except BaseException as exc:
        for key in written:
            with contextlib.suppress(Exception):
                dst_store.delete(key)
        message = error_text(exc)
        job_failed(jobstore, backup_id, message)
        if not history:
            cat.set_copy(obj.id, to, FAILED, copy_location, error=message)
        raise
    bytes_sent = sum(r.length or 0 for r in sent)
    record = {
        "id": backup_id,
        "snapshot": name,
        "store": to,
        "parent": manifest["parent"],
        "manifest": manifest_location,
        "size": size,
        "digest": volume_digest,
        "chunk_size": chunk,
        "chunks": len(entries),
        "chunks_sent": len(sent),
        "zero_chunks": sum(1 for e in entries if e.get("zero")),
        "bytes_sent": bytes_sent,
        "job_id": backup_id,
        "created": manifest["created"],
    }
    cat.add_backup(obj.id, to, record)
    cat.set_copy(obj.id, to, READY, copy_location, job_id=backup_id)
    cat.update_object(obj.id, size=size, checksum=volume_digest)
    item = Item(
        0,
        src_loc.url,
        manifest_location,
        size,
        state=DONE,
        strategy="snapshot-incremental",
        digest=volume_digest,
        bytes_through=bytes_sent,
        chunks=sent,
    )
    jobstore.save_item(backup_id, item)
    job_done(jobstore, backup_id, digest=volume_digest, bytes_through=bytes_sent, size=size)
    return {**record, "full": parent is None, "notes": notes}


def _send_chunks(
    src: StoreProvider,
    src_key: str,
    size: int | None,
    dst: StoreProvider,
    prefix: str,
    backup_id: str,
    chunk: int,
    streams: int,
    parent_chunks: dict[int, dict[str, Any]],
    written: list[str],
) -> tuple[list[dict[str, Any]], list[ChunkRecord], int]:
    """Read the volume in order, holes skipped; hash every chunk and write the changed ones,
    in parallel. Returns the manifest entries, the chunks sent and the volume's size.

    ``streams`` buffers circulate between the reader and the hashing writers: the reader
    blocks when all are in flight, which is what bounds memory. A chunk that is one hole is
    neither read nor hashed: its entry is made here, in order with the others.
    """
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(streams):
        free.put(bytearray(chunk))
    sent: list[ChunkRecord] = []
    lock = threading.Lock()
    futures: list[Future[dict[str, Any]] | dict[str, Any]] = []
    stream = (
        None
        if src.capabilities.ranged_read and size is not None
        else open_sequential(src, src_key, size)
    )
    emap = ExtentMap(src, src_key, size) if stream is None and size is not None else None

    failed = threading.Event()

    def store_chunk(index: int, offset: int, buf: bytearray, length: int) -> dict[str, Any]:
        try:
            return _store_chunk(index, offset, buf, length)
        except BaseException:
            failed.set()
            raise
        finally:
            free.put(buf)

    def _store_chunk(index: int, offset: int, buf: bytearray, length: int) -> dict[str, Any]:
        view = memoryview(buf)[:length]
        if is_zero(view):
            return _zero_entry(index, offset, length)
        sha = sha256_hex(view)
        old = parent_chunks.get(index)
        same = old is not None and (old.get("sha256"), old["length"]) == (sha, length)
        if same and old.get("backup"):
            return {**old, "offset": offset}
        key = _chunk_key(prefix, backup_id, index)
        write_whole(dst, key, view)
        with lock:
            written.append(key)
            sent.append(ChunkRecord(index, offset, length, DONE, f"sha256:{sha}"))
        entry = {"index": index, "offset": offset, "length": length}
        return {**entry, "sha256": sha, "backup": backup_id}

    offset = index = 0
    try:
        with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="snapshot") as pool:
            while size is None or offset < size:
                if failed.is_set():
                    break  # a write failed: stop reading, the error is raised below
                want = chunk if size is None else min(chunk, size - offset)
                if emap is not None and emap(offset, want) == []:
                    # One hole: its entry is made here, no buffer, no read, no hashing.
                    futures.append(_zero_entry(index, offset, want))
                    offset += want
                    index += 1
                    continue
                buf = free.get()
                view = memoryview(buf)[:want]
                if stream is not None:
                    n = fill(stream, view)
                else:
                    assert emap is not None
                    n = read_chunk(src, src_key, offset, view, extents=emap(offset, want)).got
                if size is not None and n != want:
                    free.put(buf)
                    raise ChunkFailed(
                        f"{src.describe()}/{src_key} ended at {offset + n}, {size} bytes "
                        "expected: the volume changed during the backup",
                    )
                if n == 0:  # a stream's end
                    free.put(buf)
                    break
                futures.append(pool.submit(store_chunk, index, offset, buf, n))
                offset += n
                index += 1
                if n < want:
                    break
    finally:
        if stream is not None:
            stream.close()
    # In order; the first write error, if any, is raised here.
    entries = [f if isinstance(f, dict) else f.result() for f in futures]
    sent.sort(key=lambda r: r.index)
    return entries, sent, offset


def restore_snapshot(
    name: str,
    destination: str,
    *,
    backup: str | None = None,
    store: str | None = None,
    to_device: bool = False,
    catalogue: Catalogue | None = None,
    jobs: JobStore | None = None,
) -> dict[str, Any]:
    """Rebuild snapshot ``name`` (its latest backup, or ``backup``, an id or unique prefix) at
    ``destination``, verified: every chunk's sha256 against the manifest, then the volume's
    digest, before the destination is committed.

    Chunks are grouped into parts the destination accepts (S3's 5 MiB minimum), written in
    order through its chunk writer; memory is one part. Zero chunks are read from nowhere: a
    part of zeros goes to the writer's ``write_zeros`` (a hole in a file, zeros on a device or
    to S3). A block device is written only with ``to_device``, in place.
    """
    cat = catalogue or Catalogue()
    chosen = choose_backup(cat, name, backup, store)
    manifest = _read_manifest(chosen["manifest"])
    src_store, base = open_location(f"store:{chosen['store']}/snapshots/{name}/")
    prefix = base.full_key
    size, chunk = int(manifest["size"]), int(manifest["chunk_size"])
    chunks = manifest["chunks"]

    dst_store, dst_loc = open_location(destination)
    if dst_loc.is_prefix or dst_store.is_folder(dst_loc.full_key):
        dst_loc = dst_loc.child(name)
    key = dst_loc.full_key
    notes = check_destination(dst_loc, stat_or_none(dst_store, key), size, to_device)
    caps = dst_store.capabilities
    limits = caps.chunk_writer
    if limits is None:
        raise UsageError(f"{dst_store.describe()} cannot be written in parts")
    per = max(1, math.ceil(limits.min_part_bytes / chunk))
    while size and math.ceil(size / (chunk * per)) > limits.max_parts:
        per *= 2
    part = chunk * per
    if part > limits.max_part_bytes:
        raise UsageError(
            f"{dst_store.describe()}: parts of {part} bytes exceed its limit; restore elsewhere"
        )
    dst_store.make_parents(key)
    data_bytes = sum(c["length"] for c in chunks if not c.get("zero"))
    dst_store.check_writable(key, data_bytes if caps.sparse_write else size)

    jobstore = job_store(jobs)
    job = Job(
        id=new_job_id(),
        source=chosen["manifest"],
        destination=dst_loc.url,
        options={
            "streams": 1,
            "chunk_size": part,
            "kind": "snapshot-restore",
            **({"to_device": True, "notes": notes} if notes else {}),
        },
        items=[Item(0, chosen["manifest"], dst_loc.url, size, state=RUNNING)],
        state=RUNNING,
    )
    jobstore.create(job)
    algorithm = caps.checksum_algorithms[0]
    verified = _Verifier(name, chosen, manifest)
    buf = bytearray(min(part, size) or 1)
    writer = dst_store.open_writer(key, size)
    receipts = []
    try:
        for p, start in enumerate(range(0, len(chunks), per)):
            group = chunks[start : start + per]
            length = sum(c["length"] for c in group)
            if all(c.get("zero") for c in group):
                for c in group:
                    verified.zero(c)
                expected = zero_digest(algorithm, length)
                receipt = writer.write_zeros(p, group[0]["offset"], length, expected)
            else:
                filled = 0
                for c in group:
                    view = memoryview(buf)[filled : filled + c["length"]]
                    if c.get("zero"):
                        fill_zeros(view)
                        verified.zero(c)
                    else:
                        n = read_into(src_store, _chunk_key(prefix, c["backup"], c["index"]), view)
                        verified.data(c, view, n)
                    filled += c["length"]
                data = memoryview(buf)[:filled]
                expected = digest(algorithm, data)
                receipt = writer.write_part(p, group[0]["offset"], data, expected)
            if receipt.digest != str(expected):
                raise VerificationFailed(
                    f"{dst_loc}: part {p} read {expected}, store confirmed {receipt.digest}"
                )
            receipts.append(receipt)
        volume_digest = verified.volume()
        writer.commit(receipts, size)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            writer.abort()
        message = abort_message(writer.state(), error_text(exc))
        job_failed(jobstore, job.id, message)
        if isinstance(exc, MoverError) and message != exc.message:
            raise type(exc)(message) from exc
        raise
    job_done(jobstore, job.id, digest=volume_digest, bytes_through=data_bytes)
    return {
        "snapshot": name,
        "backup": chosen["id"],
        "store": chosen["store"],
        "destination": dst_loc.url,
        "size": size,
        "digest": volume_digest,
        "verified": True,
        "job_id": job.id,
        "notes": notes,
    }


class _Verifier:
    """A restore's checks: each chunk's sha256 against its manifest entry as it is read, then
    the volume's digest (version 2: over the chunks' sha256; version 1: the sha256 of every
    byte, as those manifests hold) before the destination is committed."""

    def __init__(self, name: str, chosen: dict[str, Any], manifest: dict[str, Any]) -> None:
        self.name = name
        self.chosen = chosen
        self.manifest = manifest
        self.whole = hashlib.sha256() if manifest["version"] == 1 else None
        self.shas: list[str] = []

    def data(self, entry: dict[str, Any], view: memoryview, got: int) -> None:
        sha = sha256_hex(view)
        if got != entry["length"] or sha != entry["sha256"]:
            raise VerificationFailed(
                f"snapshot {self.name!r}: chunk {entry['index']} ({entry['backup']}) in "
                f"{self.chosen['store']} does not match its manifest"
            )
        self._add(sha, view)

    def zero(self, entry: dict[str, Any]) -> None:
        self._add(chunk_sha256(entry), None)

    def _add(self, sha: str, view: memoryview | None) -> None:
        self.shas.append(sha)
        if self.whole is not None:
            assert view is not None  # version 1 manifests have no zero chunks
            self.whole.update(view)

    def volume(self) -> str:
        """The verified volume digest, ``sha256:`` (v1) or ``sha256-chunks:`` (v2)."""
        if self.whole is not None:
            got, want = f"sha256:{self.whole.hexdigest()}", f"sha256:{self.manifest['sha256']}"
        else:
            got, want = chunks_digest(self.shas), self.manifest["digest"]
        if got != want:
            raise VerificationFailed(
                f"snapshot {self.name!r}: restored {got} differs from the manifest's {want}; "
                "nothing committed"
            )
        return got


def show_snapshot(name: str, *, catalogue: Catalogue | None = None) -> dict[str, Any]:
    cat = catalogue or Catalogue()
    obj = cat.get_object(SNAPSHOT, name)
    out = obj.to_dict()
    out["backups"] = cat.backups(obj.id)
    return out


def list_snapshots(*, catalogue: Catalogue | None = None) -> list[dict[str, Any]]:
    cat = catalogue or Catalogue()
    return [show_snapshot(o.name, catalogue=cat) for o in cat.objects(SNAPSHOT)]


def delete_snapshot(name: str, *, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Delete every backup of ``name`` in every store (chunks and manifests), then its record."""
    cat = catalogue or Catalogue()
    obj = cat.get_object(SNAPSHOT, name)
    deleted = 0
    for c in obj.copies:
        store, loc = open_location(c.location)
        try:
            keys = [i.key for i in store.list(loc.full_key)]
        except ObjectNotFound:
            keys = []
        # Manifests first: a half-deleted backup must not look restorable.
        for key in sorted(keys, key=lambda k: not k.endswith(MANIFEST)):
            with contextlib.suppress(ObjectNotFound):
                store.delete(key)
                deleted += 1
        cat.delete_copy(obj.id, c.store)
    cat.delete_object(obj.id)
    return {"snapshot": name, "objects_deleted": deleted}
