"""Snapshots: chunked, incremental backups of a volume into any store, and verified restores.

Modelled on Cinder's chunked backup driver, with its lessons applied:

- The volume is cut into chunks of ``chunk_size`` bytes (8 MiB by default). Each chunk's sha256
  is compared with the previous backup's digest at the same index; only chunks that differ (or
  are new, when the volume grew: no reason to start over) are written, each as its own object
  ``snapshots/<name>/<backup-id>/<index:08d>``.
- A JSON manifest ``snapshots/<name>/<backup-id>/manifest.json`` lists, per chunk, its offset,
  length, sha256 and *which backup holds it*, plus the volume's size and sha256. It is written
  last: a backup without a manifest never happened. The manifest makes the store
  self-describing (the catalogue only indexes it), and a restore needs only the one manifest,
  not a replay of every incremental in order as Cinder does.
- Memory is bounded: the volume is read sequentially (so the volume's sha256 is computed in the
  same pass) into one of ``streams`` chunk buffers; changed chunks are written by up to
  ``streams`` threads, each owning its buffer until its write is confirmed. Nothing ever holds
  more than ``streams x chunk_size`` bytes, whatever the volume's size.
- Every chunk write is confirmed by the store (its checksum of what it stored) as for any
  mover chunk. A restore checks each chunk's sha256 against the manifest and the whole volume's
  sha256 before it commits the destination: a bad restore never becomes visible.

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
from typing import Any

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
from mover.store import MiB, StoreProvider
from mover.stores import open_location

DEFAULT_CHUNK_BYTES = 8 * MiB
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def _chunk_key(prefix: str, backup: str, index: int) -> str:
    return f"{prefix}{backup}/{index:08d}"


def _jobstore(jobs: JobStore | None) -> JobStore:
    if jobs is not None:
        return jobs
    from mover.api import default_jobstore

    return default_jobstore()


def _read_manifest(location: str) -> dict[str, Any]:
    store, loc = open_location(location)
    try:
        manifest: dict[str, Any] = json.loads(read_small(store, loc.full_key))
    except ValueError as exc:
        raise VerificationFailed(f"{location}: not a snapshot manifest ({exc})") from exc
    if manifest.get("version") != MANIFEST_VERSION:
        raise UsageError(f"{location}: manifest version {manifest.get('version')} is unknown")
    return manifest


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
    cat = catalogue or Catalogue()
    cat.get_store(to)
    src_store, src_loc = open_location(source)
    name = check_name(name or src_loc.basename, "snapshot")
    if streams < 1:
        raise UsageError("streams must be at least 1")
    info = src_store.stat(src_loc.full_key)
    obj = cat.find_object(SNAPSHOT, name) or cat.create_object(SNAPSHOT, name, format="raw")
    history = cat.backups(obj.id, to)
    notes: list[str] = []
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

    jobstore = _jobstore(jobs)
    job = Job(
        id=backup_id,
        source=src_loc.url,
        destination=f"store:{to}/snapshots/{name}/{backup_id}/",
        options={"streams": streams, "chunk_size": chunk, "kind": "snapshot-backup"},
        items=[Item(0, src_loc.url, manifest_location, info.size, state=RUNNING)],
        state=RUNNING,
    )
    jobstore.create(job)
    if not history:
        cat.set_copy(obj.id, to, CREATING, copy_location, job_id=backup_id)

    written: list[str] = []
    try:
        entries, sent, whole, size = _send_chunks(
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
        manifest = {
            "version": MANIFEST_VERSION,
            "snapshot": name,
            "backup": backup_id,
            "parent": parent["backup"] if parent else None,
            "created": time.time(),
            "source": src_loc.url,
            "size": size,
            "chunk_size": chunk,
            "sha256": whole,
            "chunks": entries,
        }
        write_whole(dst_store, manifest_key, json.dumps(manifest, indent=1).encode())
    except BaseException as exc:
        for key in written:
            with contextlib.suppress(Exception):
                dst_store.delete(key)
        message = exc.message if isinstance(exc, MoverError) else f"{type(exc).__name__}: {exc}"
        jobstore.update_item(backup_id, 0, state=FAILED, error=message)
        jobstore.update_job(backup_id, state=FAILED, error=message, finished=time.time())
        jobstore.flush()
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
        "sha256": whole,
        "chunk_size": chunk,
        "chunks": len(entries),
        "chunks_sent": len(sent),
        "bytes_sent": bytes_sent,
        "job_id": backup_id,
        "created": manifest["created"],
    }
    cat.add_backup(obj.id, to, record)
    cat.set_copy(obj.id, to, READY, copy_location, job_id=backup_id)
    cat.update_object(obj.id, size=size, checksum=f"sha256:{whole}")
    item = Item(
        0,
        src_loc.url,
        manifest_location,
        size,
        state=DONE,
        strategy="snapshot-incremental",
        digest=f"sha256:{whole}",
        bytes_through=bytes_sent,
        chunks=sent,
    )
    jobstore.save_item(backup_id, item)
    jobstore.update_item(
        backup_id, 0, state=DONE, digest=f"sha256:{whole}", bytes_through=bytes_sent
    )
    jobstore.update_job(backup_id, state=DONE, finished=time.time())
    jobstore.flush()
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
) -> tuple[list[dict[str, Any]], list[ChunkRecord], str, int]:
    """Read the volume in order, hash every chunk, write the changed ones in parallel.

    ``streams`` buffers circulate between the reader and the writers: the reader blocks when
    all are in flight, which is what bounds memory.
    """
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(streams):
        free.put(bytearray(chunk))
    whole = hashlib.sha256()
    entries: list[dict[str, Any]] = []
    sent: list[ChunkRecord] = []
    lock = threading.Lock()
    futures: list[Future[None]] = []
    stream = None if src.capabilities.ranged_read and size is not None else src.open_read(src_key)

    def write(index: int, offset: int, buf: bytearray, length: int, sha: str) -> None:
        try:
            key = _chunk_key(prefix, backup_id, index)
            write_whole(dst, key, memoryview(buf)[:length])
            with lock:
                written.append(key)
                sent.append(ChunkRecord(index, offset, length, DONE, f"sha256:{sha}"))
        finally:
            free.put(buf)

    offset = index = 0
    try:
        with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="snapshot") as pool:
            while size is None or offset < size:
                if any(f.done() and f.exception() for f in futures):
                    break  # a write failed: stop reading, the error is raised below
                buf = free.get()
                want = chunk if size is None else min(chunk, size - offset)
                view = memoryview(buf)[:want]
                n = (
                    fill(stream, view)
                    if stream is not None
                    else src.read_into(src_key, offset, view)
                )
                if size is not None and n != want:
                    free.put(buf)
                    raise ChunkFailed(
                        f"{src.describe()}/{src_key} ended at {offset + n}, {size} bytes "
                        "expected: the volume changed during the backup",
                    )
                if n == 0:
                    free.put(buf)
                    break
                whole.update(view[:n])
                sha = hashlib.sha256(view[:n]).hexdigest()
                old = parent_chunks.get(index)
                if old is not None and old["sha256"] == sha and old["length"] == n:
                    entries.append({**old, "offset": offset})
                    free.put(buf)
                else:
                    entries.append(
                        {
                            "index": index,
                            "offset": offset,
                            "length": n,
                            "sha256": sha,
                            "backup": backup_id,
                        }
                    )
                    futures.append(pool.submit(write, index, offset, buf, n, sha))
                offset += n
                index += 1
                if n < want:
                    break
    finally:
        if stream is not None:
            stream.close()
    for f in futures:
        f.result()  # the first write error, if any
    sent.sort(key=lambda r: r.index)
    return entries, sent, whole.hexdigest(), offset


def restore_snapshot(
    name: str,
    destination: str,
    *,
    backup: str | None = None,
    store: str | None = None,
    catalogue: Catalogue | None = None,
    jobs: JobStore | None = None,
) -> dict[str, Any]:
    """Rebuild snapshot ``name`` (its latest backup, or ``backup``, an id or unique prefix) at
    ``destination``, verified: every chunk's sha256 against the manifest, then the volume's
    sha256, before the destination is committed.

    Chunks are grouped into parts the destination accepts (S3's 5 MiB minimum), written in
    order through its chunk writer; memory is one part.
    """
    cat = catalogue or Catalogue()
    obj = cat.get_object(SNAPSHOT, name)
    history = cat.backups(obj.id, store)
    if backup:
        history = [b for b in history if b["id"].startswith(backup)]
        if len(history) != 1:
            raise UsageError(f"snapshot {name!r}: {len(history)} backups match {backup!r}")
    if not history:
        raise ObjectNotFound(f"snapshot {name!r} has no backup" + (f" in {store}" if store else ""))
    chosen = history[-1]
    manifest = _read_manifest(chosen["manifest"])
    src_store, base = open_location(f"store:{chosen['store']}/snapshots/{name}/")
    prefix = base.full_key
    size, chunk = int(manifest["size"]), int(manifest["chunk_size"])

    dst_store, dst_loc = open_location(destination)
    if dst_loc.is_prefix or dst_store.is_folder(dst_loc.full_key):
        dst_loc = dst_loc.child(name)
    key = dst_loc.full_key
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
    dst_store.check_writable(key, size)

    jobstore = _jobstore(jobs)
    job = Job(
        id=new_job_id(),
        source=chosen["manifest"],
        destination=dst_loc.url,
        options={"streams": 1, "chunk_size": part, "kind": "snapshot-restore"},
        items=[Item(0, chosen["manifest"], dst_loc.url, size, state=RUNNING)],
        state=RUNNING,
    )
    jobstore.create(job)
    algorithm = caps.checksum_algorithms[0]
    whole = hashlib.sha256()
    buf = bytearray(min(part, size) or 1)
    writer = dst_store.open_writer(key, size, part)
    receipts = []
    try:
        chunks = manifest["chunks"]
        for p, start in enumerate(range(0, len(chunks), per)):
            group = chunks[start : start + per]
            filled = 0
            for c in group:
                view = memoryview(buf)[filled : filled + c["length"]]
                ckey = _chunk_key(prefix, c["backup"], c["index"])
                n = read_into(src_store, ckey, view)
                if n != c["length"] or hashlib.sha256(view).hexdigest() != c["sha256"]:
                    raise VerificationFailed(
                        f"snapshot {name!r}: chunk {c['index']} ({c['backup']}) in "
                        f"{chosen['store']} does not match its manifest"
                    )
                whole.update(view)
                filled += n
            data = memoryview(buf)[:filled]
            expected = digest(algorithm, data)
            receipt = writer.write_part(p, group[0]["offset"], data, expected)
            if receipt.digest != str(expected):
                raise VerificationFailed(
                    f"{dst_loc}: part {p} read {expected}, store confirmed {receipt.digest}"
                )
            receipts.append(receipt)
        if whole.hexdigest() != manifest["sha256"]:
            raise VerificationFailed(
                f"snapshot {name!r}: restored sha256 {whole.hexdigest()} differs from the "
                f"manifest's {manifest['sha256']}; nothing committed"
            )
        writer.commit(receipts, size)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            writer.abort()
        message = exc.message if isinstance(exc, MoverError) else f"{type(exc).__name__}: {exc}"
        jobstore.update_item(job.id, 0, state=FAILED, error=message)
        jobstore.update_job(job.id, state=FAILED, error=message, finished=time.time())
        jobstore.flush()
        raise
    jobstore.update_item(
        job.id, 0, state=DONE, digest=f"sha256:{manifest['sha256']}", bytes_through=size
    )
    jobstore.update_job(job.id, state=DONE, finished=time.time())
    jobstore.flush()
    return {
        "snapshot": name,
        "backup": chosen["id"],
        "store": chosen["store"],
        "destination": dst_loc.url,
        "size": size,
        "sha256": manifest["sha256"],
        "verified": True,
        "job_id": job.id,
    }


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
