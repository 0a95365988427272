"""Snapshots kept in each image store's repository: backup, restore, forget, delete.

``mover snapshot backup/restore`` keep their shape; what changed is underneath. A backup is a
manifest in the store's repository (:mod:`mover.repository`): chunks named by keyed content
digests, stored once per store whatever snapshot needs them, so every backup is incremental
against everything the store holds (not only the same volume's previous backup), two volumes
cloned from one template share their chunks, zeros cost nothing, and any backup can be deleted
alone. The catalogue records which store holds which backups, as before; the repository itself
is the truth (its manifests), so a prune never trusts the catalogue.

Backups made before the repository (:mod:`mover.catalogue.snapshots`: chunks under each
backup's own prefix ``snapshots/NAME/ID/``, a ``manifest.json``) stay restorable through the
same commands: the catalogue row's manifest location says which kind a backup is.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from mover.catalogue import snapshots as legacy
from mover.catalogue.snapshots import choose_backup, job_done, job_failed, job_store, open_source
from mover.catalogue.store import CREATING, FAILED, READY, SNAPSHOT, Catalogue
from mover.errors import MoverError, ObjectNotFound, UsageError
from mover.jobs import RUNNING, Item, Job, JobStore, new_job_id
from mover.lifecycle import error_text
from mover.repository.layout import PREFIX, manifest_folder
from mover.repository.retention import Policy, decide
from mover.transfer import source_notes

if TYPE_CHECKING:
    from mover.repository.repo import Repository

#: What ``format`` says of a backup made into the repository (older ones: ``prefix``).
FORMAT = "repository"


def is_legacy(record: dict[str, Any]) -> bool:
    """A backup made before the repository: its own prefix and ``.../manifest.json``."""
    return str(record["manifest"]).endswith("/" + legacy.MANIFEST)


def _location(store: str, name: str, backup: str | None = None) -> str:
    return f"store:{store}/{PREFIX}{manifest_folder('snapshot', name)}{backup or ''}"


def _job(
    jobs: JobStore | None,
    kind: str,
    source: str,
    destination: str,
    size: int | None,
    job_id: str | None = None,
    streams: int = 4,
    notes: list[str] | None = None,
) -> tuple[JobStore, Job]:
    store = job_store(jobs)
    job = Job(
        id=job_id or new_job_id(),
        source=source,
        destination=destination,
        options={"streams": streams, "kind": kind, "notes": list(notes or [])},
        items=[Item(0, source, destination, size, state=RUNNING)],
        state=RUNNING,
    )
    store.create(job)
    return store, job


def backup_snapshot(
    source: str,
    to: str,
    *,
    name: str | None = None,
    chunk_size: int | None = None,
    streams: int = 4,
    full: bool = False,
    executor: str | None = None,
    catalogue: Catalogue | None = None,
    jobs: JobStore | None = None,
) -> dict[str, Any]:
    """Back ``source`` (any readable location) up into store ``to``'s repository as snapshot
    ``name`` (default: the source's file name). The repository is created on first use from
    the store's options (its key reference). Returns the backup's record."""
    from mover.repository import backup as repo_backup
    from mover.repository.fleet import runner_for
    from mover.repository.repo import Repository

    cat, _src_store, src_loc, info, name = open_source(source, to, name, streams, catalogue)
    notes = source_notes(src_loc, info)  # a volume read live
    runner = runner_for(executor, streams)
    repo = Repository.open(to, create=True)
    obj = cat.find_object(SNAPSHOT, name) or cat.create_object(SNAPSHOT, name, format="raw")
    history = [b for b in cat.backups(obj.id, to) if not is_legacy(b)]
    parent = history[-1]["id"] if history else None
    backup_id = new_job_id()
    manifest_location = _location(to, name, backup_id)
    jobstore, _job_rec = _job(
        jobs, "snapshot-backup", src_loc.url, manifest_location, None, backup_id, streams, notes
    )
    copy = cat.find_object(SNAPSHOT, name)
    has_copy = copy is not None and any(c.store == to and c.state == READY for c in copy.copies)
    if not has_copy:
        cat.set_copy(obj.id, to, CREATING, _location(to, name), job_id=backup_id)
    try:
        summary = repo_backup.backup(
            repo,
            source,
            kind="snapshot",
            name=name,
            chunk_size=chunk_size,
            runner=runner,
            full=full,
            parent=parent,
            backup_id=backup_id,
        )
    except BaseException as exc:
        job_failed(jobstore, backup_id, error_text(exc))
        if not has_copy:
            message = exc.message if isinstance(exc, MoverError) else str(exc)
            cat.set_copy(obj.id, to, FAILED, _location(to, name), error=message)
        raise
    record = {
        "id": backup_id,
        "snapshot": name,
        "store": to,
        "parent": parent,
        "manifest": manifest_location,
        "size": summary["size"],
        "sha256": "",
        "chunk_size": summary["chunk_size"],
        "chunks": summary["chunks"],
        "chunks_sent": summary["new_chunks"],
        "bytes_sent": summary["stored_bytes"],
        "job_id": backup_id,
        "created": time.time(),
    }
    cat.add_backup(obj.id, to, record)
    cat.set_copy(obj.id, to, READY, _location(to, name), job_id=backup_id)
    cat.update_object(obj.id, size=summary["size"])
    job_done(jobstore, backup_id, bytes_through=summary["stored_bytes"])
    return {
        **record,
        "format": FORMAT,
        "full": parent is None,
        "notes": notes,
        "reused_chunks": summary["reused_chunks"],
        "zero_chunks": summary["zero_chunks"],
        "zero_bytes": summary["zero_bytes"],
        "new_bytes": summary["new_bytes"],
        "packs": summary["packs"],
        "seconds": summary["seconds"],
        "executor": runner.name,
    }


def restore_snapshot(
    name: str,
    destination: str,
    *,
    backup: str | None = None,
    store: str | None = None,
    streams: int = 8,
    executor: str | None = None,
    to_device: bool = False,
    catalogue: Catalogue | None = None,
    jobs: JobStore | None = None,
) -> dict[str, Any]:
    """Rebuild snapshot ``name`` (its latest backup, or ``backup``: an id or unique prefix) at
    ``destination``, every chunk verified before it is written; nothing is visible unless all
    verified. Backups made before the repository are restored by their own code. A block
    device is written only with ``to_device``, in place."""
    from mover.repository import restore as repo_restore
    from mover.repository.fleet import runner_for
    from mover.repository.repo import Repository

    cat = catalogue or Catalogue()
    chosen = choose_backup(cat, name, backup, store)
    if is_legacy(chosen):
        return legacy.restore_snapshot(
            name,
            destination,
            backup=chosen["id"],
            store=chosen["store"],
            to_device=to_device,
            catalogue=cat,
            jobs=jobs,
        )
    runner = runner_for(executor, streams)
    repo = Repository.open(chosen["store"])
    jobstore, job = _job(
        jobs, "snapshot-restore", chosen["manifest"], destination, chosen["size"], streams=streams
    )
    try:
        result = repo_restore.restore(
            repo,
            "snapshot",
            name,
            chosen["id"],
            destination,
            runner=runner,
            label=f"snapshot {name!r} backup {chosen['id']} in {chosen['store']}",
            to_device=to_device,
        )
    except BaseException as exc:
        job_failed(jobstore, job.id, error_text(exc))
        raise
    job_done(jobstore, job.id, bytes_through=result["data_bytes"])
    result.pop("manifest")
    return {
        "snapshot": name,
        "backup": chosen["id"],
        "store": chosen["store"],
        "sha256": None,
        "verified": True,
        "job_id": job.id,
        "executor": runner.name,
        **result,
    }


def forget_snapshot(
    name: str,
    *,
    store: str | None = None,
    keep_last: int = 0,
    keep_daily: int = 0,
    keep_weekly: int = 0,
    backup: str | None = None,
    dry_run: bool = False,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """Forget backups of ``name``: one (``backup``), or those a retention policy does not keep,
    per store. Their manifests go at once; their chunks when ``mover repo prune`` finds no
    other manifest needs them. Backups made before the repository are never forgotten (their
    chains of parents would break): ``mover snapshot delete`` removes them all."""
    from mover.repository import manifests
    from mover.repository.repo import Repository

    cat = catalogue or Catalogue()
    obj = cat.get_object(SNAPSHOT, name)
    policy = Policy(keep_last, keep_daily, keep_weekly)
    if backup and not policy.empty:
        raise UsageError("give --backup or --keep-* options, not both")
    if not backup and policy.empty:
        raise UsageError("forget needs --backup ID or at least one --keep-* option")
    rows = cat.backups(obj.id, store)
    if backup:
        chosen = choose_backup(cat, name, backup, store)
        if is_legacy(chosen):
            raise UsageError(
                f"backup {chosen['id']} was made before the repository (its own prefix): "
                f"mover snapshot delete {name} removes such backups"
            )
        remove = [chosen]
        kept: list[dict[str, Any]] = []
    else:
        remove, kept = [], []
        for s in sorted({r["store"] for r in rows}):
            mine = [r for r in rows if r["store"] == s and not is_legacy(r)]
            reasons = decide([(r["id"], r["created"]) for r in mine], policy)
            for r in mine:
                (kept if reasons[r["id"]] else remove).append({**r, "reasons": reasons[r["id"]]})
    if not dry_run:
        repos: dict[str, Repository] = {}
        for r in remove:
            repo = repos.get(r["store"]) or repos.setdefault(
                r["store"], Repository.open(r["store"])
            )
            manifests.delete(repo, "snapshot", name, r["id"])
            cat.delete_backup(r["id"])
        for s in {r["store"] for r in remove}:
            if not cat.backups(obj.id, s):
                cat.delete_copy(obj.id, s)
    return {
        "snapshot": name,
        "dry_run": dry_run,
        "forgotten": [
            {"id": r["id"], "store": r["store"], "created": r["created"]} for r in remove
        ],
        "kept": [
            {"id": r["id"], "store": r["store"], "created": r["created"], "reasons": r["reasons"]}
            for r in kept
        ],
    }


def delete_snapshot(name: str, *, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Delete every backup of ``name`` in every store, then its record: repository manifests
    now (their chunks at the next prune), older backups by their own code."""
    from mover.repository import manifests
    from mover.repository.repo import Repository

    cat = catalogue or Catalogue()
    obj = cat.get_object(SNAPSHOT, name)
    deleted = 0
    old_stores = set()
    for r in cat.backups(obj.id):
        if is_legacy(r):
            old_stores.add(r["store"])
            continue
        with contextlib.suppress(ObjectNotFound):
            deleted += manifests.delete(Repository.open(r["store"]), "snapshot", name, r["id"])
        cat.delete_backup(r["id"])
    for c in obj.copies:
        if c.store not in old_stores:
            cat.delete_copy(obj.id, c.store)
    if old_stores:
        for s in sorted(old_stores):  # older backups keep their chunks under snapshots/NAME/
            cat.set_copy(obj.id, s, READY, f"store:{s}/snapshots/{name}/")
        deleted += legacy.delete_snapshot(name, catalogue=cat)["objects_deleted"]
    else:
        cat.delete_object(obj.id)
    return {"snapshot": name, "objects_deleted": deleted}
