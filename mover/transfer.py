"""Turning a request into a job: validation, listing, items. Runs in the caller's process,
before anything is enqueued, so that bad input fails at once with nothing moved.

Also the helpers every executor uses to rebuild an item's endpoints from its record.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from mover import config as config_mod
from mover.errors import CannotHandle, NotEnoughSpace, ObjectNotFound, SameObject, UsageError
from mover.filters import Filters
from mover.jobs import RUNNING, ChunkRecord, Item, Job, new_job_id
from mover.listing import objects_under
from mover.location import Location
from mover.motion import Endpoint, MotionStrategy, Options, Plan
from mover.planning import human
from mover.provider import DEVICE, IN_PLACE, OBJECT, STREAM, ObjectInfo, StoreProvider
from mover.redact import redact, remember, reveal, secret_params
from mover.resolve import open_location
from mover.sparse import bytes_to_store

log = logging.getLogger("mover.transfer")


@dataclass
class Request:
    """What a caller asked for."""

    source: str
    destination: str
    recursive: bool = False
    options: Options = None  # type: ignore[assignment]
    #: ``--include`` / ``--exclude`` of a recursive copy.
    filters: Filters | None = None
    #: The objects to copy, ``(relative path, info)``, when a sync has chosen them already.
    selection: list[tuple[str, ObjectInfo]] | None = None

    def __post_init__(self) -> None:
        if self.options is None:
            self.options = Options()


def _same(a: StoreProvider, ak: str, b: StoreProvider, bk: str, a_info: ObjectInfo) -> bool:
    if a.describe() == b.describe() and ak == bk:
        return True
    if a.capabilities.local_path and b.capabilities.local_path:
        try:
            return os.path.samefile(a.local_path(ak), b.local_path(bk))
        except OSError:
            return False
    return False


def prepare(request: Request, config: config_mod.Config | None = None) -> Job:
    """Validate a request and build its job: one item per object. Moves no byte."""
    src_store, src_loc = open_location(request.source, config)
    dst_store, dst_loc = open_location(request.destination, config)
    if not src_store.capabilities.readable:
        raise UsageError(f"{src_store.describe()} cannot be read")
    if not dst_store.capabilities.writable:
        raise UsageError(f"{dst_store.describe()} cannot be written")
    job = Job(
        id=new_job_id(),
        # Records hold the URL with any credential redacted; the real one stays in this
        # process's memory for the run (mover.redact).
        source=remember(src_loc.url),
        destination=remember(dst_loc.url),
        recursive=request.recursive,
        options={
            "streams": request.options.streams,
            "chunk_size": request.options.chunk_size,
        },
    )
    notes: list[str] = []
    if request.filters and not request.recursive:
        raise UsageError("--include/--exclude select objects of a folder: add --recursive")
    if request.recursive:
        if request.options.to_device:
            raise UsageError("--to-device writes one volume: it does not go with --recursive")
        job.items, total = _list_items(
            src_store, src_loc, dst_store, dst_loc, request.filters, request.selection
        )
        if request.filters:
            job.options.update(request.filters.to_dict())
    else:
        info = src_store.stat(src_loc.full_key)
        if dst_loc.is_prefix or dst_store.is_folder(dst_loc.full_key):
            dst_loc = dst_loc.child(src_loc.basename)
        dst_info = stat_or_none(dst_store, dst_loc.full_key)
        if dst_info is not None and _same(
            src_store, src_loc.full_key, dst_store, dst_loc.full_key, info
        ):
            raise SameObject(f"source and destination are the same object: {src_loc}")
        notes += source_notes(src_loc, info)
        notes += check_destination(dst_loc, dst_info, info.size, request.options.to_device)
        total = bytes_to_store(src_store, src_loc.full_key, info.size, info.allocated, dst_store)
        dst_store.check_writable(dst_loc.full_key, total)
        job.destination = remember(dst_loc.url)
        job.items = [
            Item(
                0,
                job.source,
                job.destination,
                info.size,
                version=info.etag,
                checksum=info.checksum,
            )
        ]
    if request.options.to_device:
        job.options["to_device"] = True
    if notes:
        job.options["notes"] = notes
    total = total or 0
    if job.items and not request.options.to_device:
        free = dst_store.free_bytes(dst_loc.full_key)
        if free is not None and total > free:
            raise NotEnoughSpace(
                f"not enough space for {dst_loc}: {human(total)} needed, {human(free)} free"
            )
    return job


def _list_items(
    src_store: StoreProvider,
    src_loc: Location,
    dst_store: StoreProvider,
    dst_loc: Location,
    filters: Filters | None = None,
    selection: list[tuple[str, ObjectInfo]] | None = None,
) -> tuple[list[Item], int]:
    """One item per object under the source prefix (those the filters select, or the
    ``selection`` a sync made), and the bytes they take at the destination (a sparse file's
    data only, where the destination keeps holes)."""
    if selection is None:
        _prefix, selection = objects_under(src_store, src_loc, filters)
    items: list[Item] = []
    total = 0
    for rel, info in selection:
        src_item = Location(
            src_loc.scheme,
            src_loc.store,
            info.key[len(src_loc.root) :].lstrip("/") if src_loc.root else info.key,
            src_loc.root,
            src_loc.name,
            src_loc.endpoint,
        )
        dst_item = dst_loc.child(rel)
        items.append(
            Item(
                len(items),
                remember(src_item.url),
                remember(dst_item.url),
                info.size,
                version=info.etag,
                checksum=info.checksum,
            )
        )
        total += bytes_to_store(src_store, info.key, info.size, info.allocated, dst_store) or 0
    if not items:
        what = "nothing the filters select" if filters else "empty folder or prefix"
        raise ObjectNotFound(f"{src_loc}: nothing to copy ({what})")
    return items, total


def stat_or_none(store: StoreProvider, key: str) -> ObjectInfo | None:
    """What ``store`` says of ``key``, or None when it does not exist."""
    try:
        return store.stat(key)
    except ObjectNotFound:
        return None


#: What kind of thing a source or destination is, in messages.
_KINDS = {DEVICE: "block device", STREAM: "stream (a pipe, socket, character device or /proc file)"}


def source_notes(location: Location, info: ObjectInfo) -> list[str]:
    """Remarks for the job record on what the source is, when it is not a plain object.

    A volume cannot be checked for changes while it is read (its mtime does not move when it
    is written), so a copy of a volume in use may mix old and new blocks: the job says so.
    """
    if info.kind == DEVICE:
        return [
            f"source {location} is a block device, read live: writes to it during the copy "
            "are not detected (a device's mtime does not move); snapshot the volume first "
            "(LVM, the hypervisor) and copy the snapshot"
        ]
    if info.kind == STREAM:
        return [f"source {location} is a stream: read once to its end; its size is what was read"]
    return []


def check_destination(
    location: Location, info: ObjectInfo | None, size: int | None, to_device: bool
) -> list[str]:
    """The gate before a volume is overwritten: a block device is written only with
    ``to_device`` (``--to-device``), only when it is at least as large as the source, and
    ``to_device`` names a block device. Returns the note for the job record."""
    is_device = info is not None and info.kind == DEVICE
    if is_device and not to_device:
        raise UsageError(
            f"{location} is a block device: copying onto it overwrites the volume in place; "
            "add --to-device (to_device=True) if that is what you mean"
        )
    if not is_device:
        if to_device:
            raise UsageError(f"--to-device: {location} is not a block device")
        return []
    assert info is not None
    if size is not None and info.size is not None and size > info.size:
        raise NotEnoughSpace(
            f"{location} holds {human(info.size)} ({info.size} bytes), the source "
            f"{human(size)} ({size} bytes): restore to a volume at least that large"
        )
    return [
        f"destination {location} is a block device, written in place: a failed or cancelled "
        "copy leaves it partly overwritten (nothing can be undone)"
    ]


def check_fleet(
    source: str, destination: str, recursive: bool = False, config: config_mod.Config | None = None
) -> None:
    """Refuse, before anything is published, a copy the fleet's workers cannot do: a source
    that is a device or a stream of this host, a device as destination, or a signed URL.
    Workers on other hosts would open another device or no pipe at all, and a signed URL's
    credential would sit in task messages; such copies run embedded. (Recursive listings hold
    regular files only.)"""
    refuse_signed(source, destination)  # before any request: nothing to reach yet
    if recursive:
        return
    for target, role in ((source, "source"), (destination, "destination")):
        store, loc = open_location(target, config)
        if loc.is_prefix or store.is_folder(loc.full_key):
            continue
        info = stat_or_none(store, loc.full_key)
        if info is not None and info.kind != OBJECT:
            raise UsageError(
                f"{role} {loc} is a {_KINDS.get(info.kind, info.kind)} of this host: the "
                "fleet's workers cannot reach it; copy it here with --executor embedded "
                "(mover.copy)"
            )


def refuse_signed(*urls: str) -> None:
    """A signed URL (a credential in its query) cannot run on the fleet: the workers would
    need it, so a task message or Redis would hold it. Raise a one-line UsageError saying
    what to do instead, before anything touches the network."""
    for url in urls:
        names = secret_params(url)
        if names:
            raise UsageError(
                f"{redact(url)}: a signed URL (its {', '.join(names)} is a credential) cannot "
                "go to the fleet, whose task messages and Redis would hold it: copy it embedded "
                "(--executor embedded), or configure a store with its own credentials"
            )


def abort_message(writer_state: dict[str, Any], message: str) -> str:
    """A failed object's error, with what its abort could not undo: a destination written in
    place (a device: its writer's state names it under ``IN_PLACE``) now holds part of the
    new data."""
    where = writer_state.get(IN_PLACE)
    if not where:
        return message
    return (
        f"{message}; {where} was written in place and is now partly overwritten "
        "(nothing can be undone)"
    )


def plan_item(
    item: Item, source: Endpoint, destination: Endpoint, options: Options
) -> tuple[MotionStrategy, Plan]:
    """Plan one object, the same way for every executor: the dispatcher's best strategy (the
    next one when a strategy finds late that it cannot, ``CannotHandle``) plans the chunks and
    opens the destination writer. The item record takes the plan; the caller stores it."""
    from mover import dispatcher

    destination.store.make_parents(destination.key)
    tried: tuple[str, ...] = ()
    while True:
        strategy, _priority = dispatcher.choose(source, destination, exclude=tried)
        try:
            plan = strategy.plan(source, destination, options)
            break
        except CannotHandle as exc:
            log.info("%s cannot move %s: %s", strategy.name, item.source, exc)
            tried += (strategy.name,)
    item.strategy = strategy.name
    item.plan = plan.to_dict()
    item.state = RUNNING
    item.error = None
    item.bytes_through = plan.bytes_through
    item.chunks = [ChunkRecord(c.index, c.offset, c.length) for c in plan.chunks]
    return strategy, plan


def endpoints(item: Item, config: config_mod.Config | None = None) -> tuple[Endpoint, Endpoint]:
    """The source and destination endpoints of an item, from its record (a redacted signed
    URL is looked up in this process's memory, :func:`mover.redact.reveal`)."""
    src_store, src_loc = open_location(reveal(item.source), config)
    dst_store, dst_loc = open_location(reveal(item.destination), config)
    # The version recorded when the job was prepared: reads and the commit hold to it.
    info = ObjectInfo(src_loc.full_key, item.size, etag=item.version, checksum=item.checksum)
    return Endpoint(src_store, src_loc, info), Endpoint(dst_store, dst_loc)
