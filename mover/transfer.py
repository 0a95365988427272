"""Turning a request into a job: validation, listing, items. Runs in the caller's process,
before anything is enqueued, so that bad input fails at once with nothing moved.

Also the helpers every executor uses to rebuild an item's endpoints from its record.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from mover import config as config_mod
from mover.errors import CannotHandle, NotEnoughSpace, ObjectNotFound, SameObject, UsageError
from mover.jobs import RUNNING, ChunkRecord, Item, Job, new_job_id
from mover.location import Location
from mover.motion import Endpoint, MotionStrategy, Options, Plan
from mover.planning import human
from mover.store import ObjectInfo, StoreProvider
from mover.stores import open_location

log = logging.getLogger("mover.transfer")


@dataclass
class Request:
    """What a caller asked for."""

    source: str
    destination: str
    recursive: bool = False
    options: Options = None  # type: ignore[assignment]

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
        source=src_loc.url,
        destination=dst_loc.url,
        recursive=request.recursive,
        options={
            "streams": request.options.streams,
            "chunk_size": request.options.chunk_size,
        },
    )
    if request.recursive:
        job.items = _list_items(src_store, src_loc, dst_store, dst_loc)
    else:
        info = src_store.stat(src_loc.full_key)
        if dst_loc.is_prefix or dst_store.is_folder(dst_loc.full_key):
            dst_loc = dst_loc.child(src_loc.basename)
        if dst_store.exists(dst_loc.full_key) and _same(
            src_store, src_loc.full_key, dst_store, dst_loc.full_key, info
        ):
            raise SameObject(f"source and destination are the same object: {src_loc}")
        dst_store.check_writable(dst_loc.full_key, info.size)
        job.destination = dst_loc.url
        job.items = [
            Item(0, src_loc.url, dst_loc.url, info.size, version=info.etag, checksum=info.checksum)
        ]
    total = sum(i.size or 0 for i in job.items)
    if job.items:
        free = dst_store.free_bytes(dst_loc.full_key)
        if free is not None and total > free:
            raise NotEnoughSpace(
                f"not enough space for {dst_loc}: {human(total)} needed, {human(free)} free"
            )
    return job


def _list_items(
    src_store: StoreProvider, src_loc: Location, dst_store: StoreProvider, dst_loc: Location
) -> list[Item]:
    prefix = src_loc.full_key
    if prefix and not prefix.endswith("/") and src_store.is_folder(prefix):
        prefix += "/"
    items: list[Item] = []
    try:
        listing = list(src_store.list(prefix))
    except ObjectNotFound:
        raise ObjectNotFound(f"{src_loc}: no such folder or prefix") from None
    for info in listing:
        rel = info.key[len(prefix) :] if info.key.startswith(prefix) else os.path.basename(info.key)
        if not rel:
            rel = src_loc.basename
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
                src_item.url,
                dst_item.url,
                info.size,
                version=info.etag,
                checksum=info.checksum,
            )
        )
    if not items:
        raise ObjectNotFound(f"{src_loc}: nothing to copy (empty folder or prefix)")
    return items


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
    """The source and destination endpoints of an item, from its record."""
    src_store, src_loc = open_location(item.source, config)
    dst_store, dst_loc = open_location(item.destination, config)
    # The version recorded when the job was prepared: reads and the commit hold to it.
    info = ObjectInfo(src_loc.full_key, item.size, etag=item.version, checksum=item.checksum)
    return Endpoint(src_store, src_loc, info), Endpoint(dst_store, dst_loc)
