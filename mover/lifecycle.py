"""The item lifecycle, once, for every executor: plan-or-fail, run a chunk, commit, decide the
final state, word the error.

An *item* (one object of a job) is planned by the dispatcher's strategy, its chunks run under
the one retry policy (:mod:`mover.retry`: in threads for the embedded executor, by Celery's
``retry`` on the fleet, never both), it is committed exactly once (the embedded executor's
in-process counter or the job store's ``claim_commit`` decides who commits; this module does
the commit itself), and when every item is final the job's state is decided from theirs.
The embedded executor (:mod:`mover.executors.embedded`), the celery executor
(:mod:`mover.executors.celery`) and the worker tasks (:mod:`mover.workers.tasks`) all call
these functions, so that the same job ends with the same record wherever it ran.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mover import dispatcher
from mover.errors import Cancelled, MoverError
from mover.jobs import CANCELLED, DONE, FAILED, Item, Job
from mover.motion import Chunk, ChunkContext, Endpoint, MotionStrategy, Options, Plan
from mover.provider import PartReceipt
from mover.transfer import abort_message, endpoints, plan_item

log = logging.getLogger("mover.lifecycle")

#: The error an item and a job record when they were cancelled.
CANCELLED_TEXT = "cancelled"


@dataclass
class Planned:
    """What running an item needs: its strategy, its plan and its two endpoints."""

    strategy: MotionStrategy
    plan: Plan
    source: Endpoint
    destination: Endpoint

    def run_chunk(self, chunk: Chunk, ctx: ChunkContext) -> PartReceipt:
        """One attempt at one chunk (the caller's retry policy decides on another)."""
        return self.strategy.run_chunk(self.source, self.destination, self.plan, chunk, ctx)


def error_text(exc: BaseException) -> str:
    """The one-line error an item or job records: a MoverError's message, else the exception's
    type and text (a bug, logged with its traceback where it happened)."""
    return exc.message if isinstance(exc, MoverError) else f"{type(exc).__name__}: {exc}"


def failure(exc: BaseException, plan: Plan | None = None) -> tuple[str, str]:
    """The state and error an item records when ``exc`` stopped it: ``cancelled`` for a
    cancel, else ``failed`` with the error (and what its abort could not undo)."""
    if isinstance(exc, Cancelled):
        return CANCELLED, CANCELLED_TEXT
    message = error_text(exc)
    if plan is not None:
        message = abort_message(plan.writer, message)
    return FAILED, message


def plan(item: Item, options: Options, ends: tuple[Endpoint, Endpoint] | None = None) -> Planned:
    """Plan ``item`` afresh (the dispatcher's strategy opens the destination writer); the item
    record takes the plan, the caller stores it. Raises what stopped it."""
    source, destination = ends or endpoints(item)
    strategy, planned = plan_item(item, source, destination, options)
    return Planned(strategy, planned, source, destination)


def plan_or_fail(job_id: str, item: Item, options: Options) -> Planned | None:
    """Plan ``item``, or record on it (not in a store: the caller saves it) why it cannot be
    planned: state ``failed``, its error, no plan, no chunk. Returns None then."""
    try:
        return plan(item, options)
    except Exception as exc:
        if not isinstance(exc, MoverError):
            log.exception("job %s object %d: planning failed", job_id, item.index)
        item.state, item.error = failure(exc)
        item.chunks, item.plan = [], None
        return None


def reopen(item: Item, ends: tuple[Endpoint, Endpoint] | None = None) -> Planned | None:
    """An item's recorded plan, to go on with (resume, a chunk on a worker, a commit, an
    abort): its writer (temporary file, upload) still exists. None if it has no plan."""
    if not item.plan or not item.strategy:
        return None
    source, destination = ends or endpoints(item)
    strategy = dispatcher.get_strategy(item.strategy)
    return Planned(strategy, Plan.from_dict(item.plan), source, destination)


def options_of(job: Job, streams: int | None = None) -> Options:
    """The planning options a job was submitted with (``streams`` overrides its own)."""
    return Options(
        streams=int(streams or job.options.get("streams") or 4),
        chunk_size=job.options.get("chunk_size") or None,
    )


def commit(planned: Planned, receipts: list[PartReceipt], flush: bool) -> dict[str, Any]:
    """Commit an item whose chunks are all done and return the fields its record takes.

    Called exactly once per item by whoever won the commit (see the module docstring); the
    strategy verifies the whole object against the source first. ``flush`` makes the object
    durable before it is recorded done (a worker has no job-wide batch to flush at the end).
    Raises what failed; the caller aborts the write."""
    receipts = sorted(receipts, key=lambda r: r.part)
    planned.strategy.commit(planned.source, planned.destination, planned.plan, receipts)
    if flush:
        planned.destination.store.flush()
    digest = planned.strategy.object_digest(planned.plan, receipts)
    size = sum(r.size for r in receipts)  # known now, even for a stream
    return {"state": DONE, "digest": digest, "error": None, "size": size}


def final_state(job: Job, cancelled: bool) -> tuple[str, str | None]:
    """The state and error of a job whose items are all final (or will not run again):
    ``done`` when every item is; ``cancelled`` when the job was cancelled or only cancelled
    items are left; else ``failed``, worded from the first item not done."""
    states = {i.state for i in job.items}
    if states <= {DONE}:
        return DONE, None
    if cancelled or (CANCELLED in states and FAILED not in states):
        return CANCELLED, CANCELLED_TEXT
    failed = [i for i in job.items if i.state not in (DONE, CANCELLED)]
    error = (failed[0].error if failed else None) or "failed"
    if len(failed) > 1:
        error = f"{len(failed)} of {len(job.items)} objects failed; first: {error}"
    return FAILED, error
