"""``mover sync SRC DST``: make a destination folder hold what the source folder holds.

The comparison runs in the caller's process, from the two listings (no object is read):

- an object missing at the destination is copied (``missing``);
- one whose size differs is copied (``size``);
- same size: where both stores hold a digest of the whole object in the same algorithm
  (:attr:`ObjectInfo.checksum`, e.g. Swift's md5 of a plain object; never an ETag, whose form
  depends on how the object was uploaded), the digests decide (``checksum``); otherwise the
  modification times do: a source newer than its copy by more than :data:`MODIFY_WINDOW_S`
  is copied (``newer``; one second, since S3 keeps whole seconds). Same size, no common
  digest and no times: the object is taken as unchanged.

The objects to copy become one ordinary copy job (:func:`mover.transfer.prepare` with the
selection), so a sync runs embedded or on the fleet exactly as ``mover copy -r`` does. With
``delete``, objects at the destination that the source lacks are deleted after that job is
done (rclone's ``--delete-after``), and only if it succeeded; objects the filters exclude are
neither copied nor deleted. ``dry_run`` lists the actions and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from mover import config as config_mod
from mover.errors import MoverError, UsageError
from mover.executors.contract import Follow, open_executor
from mover.filters import Filters
from mover.jobs import DONE, Job
from mover.listing import objects_under
from mover.motion import Options
from mover.provider import ObjectInfo
from mover.resolve import open_location
from mover.transfer import Request, prepare

#: Seconds by which a source must be newer than its copy to count as changed.
MODIFY_WINDOW_S = 1.0

COPY = "copy"
DELETE = "delete"


@dataclass(frozen=True)
class Action:
    """One thing a sync does: ``copy`` or ``delete`` the object at ``path`` (relative to the
    folders), and why (``missing``, ``size``, ``checksum``, ``newer``, ``extra``)."""

    verb: str
    path: str
    reason: str
    size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.verb, "path": self.path, "reason": self.reason, "size": self.size}


@dataclass
class SyncResult:
    """What a sync decided and did.

    Attributes:
        actions: every copy and delete, copies first, each in path order.
        unchanged: objects already the same at the destination.
        job: the copy job (None when nothing needed copying, or a dry run).
        deleted: the paths deleted at the destination.
        dry_run: nothing was changed.
    """

    source: str
    destination: str
    actions: list[Action] = field(default_factory=list)
    unchanged: int = 0
    job: Job | None = None
    deleted: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def copies(self) -> list[Action]:
        return [a for a in self.actions if a.verb == COPY]

    @property
    def deletes(self) -> list[Action]:
        return [a for a in self.actions if a.verb == DELETE]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "dry_run": self.dry_run,
            "copied": len(self.copies) if not self.dry_run else 0,
            "deleted": len(self.deleted),
            "unchanged": self.unchanged,
            "job": self.job.id if self.job is not None else None,
            "state": self.job.state if self.job is not None else None,
            "actions": [a.to_dict() for a in self.actions],
        }


def difference(source: ObjectInfo, destination: ObjectInfo) -> str | None:
    """Why the destination's copy differs from the source (module docstring), or None."""
    if source.size != destination.size:
        return "size"
    same_algorithm = (
        source.checksum
        and destination.checksum
        and source.checksum.partition(":")[0] == destination.checksum.partition(":")[0]
    )
    if same_algorithm:
        return None if source.checksum == destination.checksum else "checksum"
    newer = (
        source.mtime is not None
        and destination.mtime is not None
        and source.mtime > destination.mtime + MODIFY_WINDOW_S
    )
    return "newer" if newer else None


@dataclass
class SyncPlan:
    """The actions and the copy job that carries them out (not yet run)."""

    result: SyncResult
    job: Job | None
    delete: Callable[[], list[str]]


class SyncOptions(TypedDict, total=False):
    """What :func:`plan` and :func:`sync` take as keyword arguments (declared once, typed
    with ``Unpack``).

    Attributes:
        delete: also delete the destination's objects the source lacks (default False).
        include, exclude: globs selecting the objects (:mod:`mover.filters`).
        streams: chunks in flight at once (default 4).
        chunk_size: bytes per chunk (default: the strategy's choice).
    """

    delete: bool
    include: Any
    exclude: Any
    streams: int
    chunk_size: int | None


def plan(
    source: str,
    destination: str,
    *,
    config: config_mod.Config | None = None,
    **options: Unpack[SyncOptions],
) -> SyncPlan:
    """Compare the two folders and prepare the copy job of what differs; change nothing."""
    unknown = sorted(set(options) - set(SyncOptions.__annotations__))
    if unknown:
        raise UsageError(
            f"sync: unknown option {unknown[0]!r} (known: {', '.join(SyncOptions.__annotations__)})"
        )
    filters = Filters.of(options.get("include"), options.get("exclude"))
    src_store, src_loc = open_location(source, config)
    dst_store, dst_loc = open_location(destination, config)
    if dst_loc.key and not dst_loc.is_prefix:
        dst_loc = dst_loc.child("")  # the destination is a folder: objects go below it
    src_prefix, src_objects = objects_under(src_store, src_loc, filters)
    dst_prefix, dst_objects = objects_under(dst_store, dst_loc, filters, missing_ok=True)
    if src_store.describe() == dst_store.describe() and (
        src_prefix.startswith(dst_prefix) or dst_prefix.startswith(src_prefix)
    ):
        raise UsageError(
            f"sync: {src_loc} and {dst_loc} overlap (one holds the other): choose folders "
            "apart, or a filter that keeps the destination out"
        )
    there = dict(dst_objects)
    result = SyncResult(src_loc.url, dst_loc.url)
    selection: list[tuple[str, ObjectInfo]] = []
    for rel, info in src_objects:
        existing = there.get(rel)
        reason = "missing" if existing is None else difference(info, existing)
        if reason is None:
            result.unchanged += 1
            continue
        selection.append((rel, info))
        result.actions.append(Action(COPY, rel, reason, info.size))
    extras: list[tuple[str, ObjectInfo]] = []
    if options.get("delete", False):
        wanted = {rel for rel, _ in src_objects}
        extras = [(rel, info) for rel, info in dst_objects if rel not in wanted]
        result.actions += [Action(DELETE, rel, "extra", info.size) for rel, info in extras]
    job = None
    if selection:
        request = Request(
            source,
            dst_loc.url,
            recursive=True,
            options=Options(options.get("streams", 4), options.get("chunk_size")),
            filters=filters or None,
            selection=selection,
        )
        job = prepare(request, config)
        job.options["sync"] = True

    def run_deletes() -> list[str]:
        done = []
        for rel, info in extras:
            dst_store.delete(info.key)
            done.append(rel)
        dst_store.flush()
        return done

    return SyncPlan(result, job, run_deletes)


def finish(sync_plan: SyncPlan, job: Job | None) -> SyncResult:
    """After the copy job (None: nothing to copy): delete the extras if it succeeded."""
    result = sync_plan.result
    result.job = job
    if job is not None and job.state != DONE:
        raise MoverError(f"sync: copy job {job.id} {job.state}: {job.error}; nothing deleted")
    result.deleted = sync_plan.delete()
    return result


def run_job(job: Job, executor: str | None = "embedded", how: Follow | None = None) -> Job:
    """Run a sync's copy job to its end with the executor called ``executor`` (``embedded``:
    in this process; ``celery``: published as ``mover copy`` publishes one, then followed;
    None: the default, celery when a broker is configured); the final job."""
    runner = open_executor(executor, streams=int(job.options.get("streams") or 4))
    runner.refuse(job.source, job.destination, job.recursive)
    return runner.complete(job, how)


def sync(
    source: str,
    destination: str,
    *,
    dry_run: bool = False,
    executor: str | None = "embedded",
    on_progress: Callable[[int], None] | None = None,
    on_start: Callable[[Job], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    **options: Unpack[SyncOptions],
) -> SyncResult:
    """Sync ``source`` to ``destination`` and return what was done (``mover.sync``); the copy
    job runs in this process, or on the fleet with ``executor="celery"``. ``options``:
    :class:`SyncOptions`. ``on_start`` is given the copy job before it runs (not called when
    nothing needs copying).

    Raises the :class:`~mover.errors.MoverError` of bad input before anything changes, or of
    a failed copy (then nothing is deleted)."""
    sync_plan = plan(source, destination, **options)
    if dry_run:
        sync_plan.result.dry_run = True
        return sync_plan.result
    job = sync_plan.job
    if job is not None:
        if on_start is not None:
            on_start(job)
        job = run_job(job, executor, Follow(on_progress=on_progress, on_notice=on_notice))
    return finish(sync_plan, job)
