"""``mover.batch.copy``: many small objects in one task (issue 10 item 3).

A task costs the fleet a message published, delivered, acked and a few Redis round trips,
about as much as moving a 16 KiB object; a job of thousands of small objects then spends more
on tasks than on bytes. The celery executor groups the chunks of small one-chunk objects
bound for one queue into batches (:data:`mover.executors.names.BATCH_OBJECTS` at most) and
publishes one ``mover.batch.copy`` per batch; each entry runs here exactly as a
``mover.chunk.copy`` would (the same function, :func:`mover.workers.tasks.chunk_copy`, under a
request of its own: idempotent, cancellable, per-store limits, commit by the last chunk), a
few at once (:data:`BATCH_STREAMS`): their time is the store's latency.

Records: the entries' Redis records are kept a group at a time
(:mod:`mover.jobstores.batchrecords`: the job's state and the items' plans in one pipeline for
the batch; then for the entries that have moved, every chunk done and every commit claim in
one script, every outcome in another), a few round trips per batch instead of about twenty
per object, which were 70 % of a worker's time on 16 KiB objects. The moved entries are
recorded when all have moved, or as they are when the others are slow (no entry finished for
:data:`RECORD_AFTER_S`): a slow object holds back neither the others' records (the progress a
follower sees) nor, if the worker dies, their work. An entry that is anything
but the usual case (its job being cancelled, its object not ``running``, its chunk done
already, a failure) runs the one-object code of
:mod:`mover.workers.tasks`, so every rule of a chunk holds for it unchanged.

Retries stay Celery's, per chunk: an entry whose chunk asks to be retried is sent again as its
own ``mover.chunk.copy`` (with the back-off the chunk chose), never the whole batch, so retries
neither multiply nor repeat the entries that succeeded. A worker killed mid-batch has the batch
delivered again (acks late); entries already done are recognised and skipped, as a second
delivery of a chunk is.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any

from celery import Celery, Task
from celery.exceptions import Retry

from mover import lifecycle
from mover.errors import MoverError
from mover.executors import celery as fleet_exec
from mover.executors.names import BATCH_TASK, CHUNK_TASK
from mover.fleetstate import limits
from mover.fleetstate.observer import record_chunks
from mover.jobs import COMMITTING, DONE, FAILED, RUNNING
from mover.jobstores import batchrecords, leases
from mover.jobstores.redis import RedisJobStore
from mover.lifecycle import Planned
from mover.motion import Chunk, ChunkContext
from mover.provider import PartReceipt
from mover.workers import tasks

log = logging.getLogger("mover.workers.batch")

#: Entries of one batch in flight at once, in threads of the worker process.
BATCH_STREAMS = int(os.environ.get("MOVER_BATCH_STREAMS") or 8)
#: Moved entries are recorded together when the batch's entries have all moved, or as they
#: are whenever no entry has finished for this many seconds (one is slow). Each recording
#: costs a few round trips and some CPU (groups of 16 cost the fleet about 20 % more CPU on
#: 16 KiB objects than whole batches).
RECORD_AFTER_S = 1.0


def _pool() -> ThreadPoolExecutor:
    """This process's threads for batch entries (made once per process: a pool per batch
    started and stopped eight threads for every 64 objects)."""
    return tasks.per_process(
        "batch_pool", lambda: ThreadPoolExecutor(BATCH_STREAMS, thread_name_prefix="mover-batch")
    )


def _as_chunk_task(
    app: Celery, parent: Any, job_id: str, item: int, chunk: int, run: Callable[[Task], None]
) -> None:
    """Call ``run`` with the ``mover.chunk.copy`` task under a request of its own for this
    entry (``parent``: the batch's request, taken in the batch's thread: requests are per
    thread), so that a retry it asks for is published as that chunk's own task."""
    task = app.tasks[CHUNK_TASK]  # the bound task (its request stack exists)
    task.push_request(
        id=str(uuid.uuid4()),
        args=(job_id, item, chunk),
        kwargs={},
        retries=0,
        is_eager=False,
        called_directly=False,
        delivery_info=dict(parent.delivery_info or {}),
        properties=dict(parent.properties or {}),  # its delivery is renewed while it runs
        hostname=parent.hostname,
    )
    try:
        run(task)
    except Retry:
        pass  # the chunk's own retry was published (its countdown, its queue)
    except Exception:
        log.exception("job %s object %d chunk %d: failed in a batch", job_id, item, chunk)
    finally:
        task.pop_request()


def _run_entry(app: Celery, parent: Any, job_id: str, item: int, chunk: int) -> None:
    """Run one entry exactly as ``mover.chunk.copy`` would (the one-object path)."""
    _as_chunk_task(app, parent, job_id, item, chunk, lambda t: t.run(job_id, item, chunk))


@dataclass
class _Fast:
    """An entry on the fast path: its plan, its chunk, and what moving it gave."""

    item: int
    chunk: int
    planned: Planned
    spec: Chunk
    receipt: PartReceipt | None = None
    started: float = 0.0
    failed: Exception | None = None


def _fast_entries(
    job_id: str, job_state: str, found: list[batchrecords.Entry]
) -> tuple[list[_Fast], list[batchrecords.Entry]]:
    """Split the entries: those in the usual case (object running, chunk not done, plan
    readable) go the fast path; the rest the one-object path. Objects already committed are
    left out (a second delivery)."""
    fast: list[_Fast] = []
    slow: list[batchrecords.Entry] = []
    for e in found:
        state = e.record.state if e.record is not None else None
        if state in (DONE, COMMITTING):
            continue  # a second delivery of an object already committed
        if e.record is None or job_state in tasks._STOP_JOB or state != RUNNING or e.chunk_done:
            slow.append(e)
            continue
        try:
            planned = lifecycle.reopen(e.record)
        except MoverError:
            planned = None
        spec = (
            next((c for c in planned.plan.chunks if c.index == e.chunk), None) if planned else None
        )
        if planned is None or spec is None:
            slow.append(e)
            continue
        fast.append(_Fast(e.item, e.chunk, planned, spec))
    return fast, slow


def _move(jobs: RedisJobStore, job_id: str, tag: str | None, f: _Fast) -> None:
    """Move one fast entry's bytes (under the stores' limits, cancellable); what failed is
    kept on the entry for the one-object failure path."""
    p = f.planned
    f.started = time.monotonic()
    try:
        lease = limits.acquire(jobs.r, (p.source, p.destination), f.spec.length or 0)
        with lease, tasks._watcher().watch(job_id, f.item, tag) as cancelled:
            ctx = ChunkContext(None, cancelled)
            ctx.check()
            f.receipt = p.run_chunk(f.spec, ctx)
    except Exception as exc:
        f.failed = exc


def _failed(
    app: Celery, parent: Any, jobs: RedisJobStore, job_id: str, queue: str, f: _Fast
) -> None:
    """A fast entry whose attempt failed: the one-object rules (retry as its own task, or
    give the object up); a store at its limit sends the chunk back without counting a try."""
    exc = f.failed
    assert exc is not None
    seen = {
        "job": job_id,
        "endpoints": (f.planned.source, f.planned.destination),
        "started": f.started,
    }

    def run(task: Task) -> None:
        if isinstance(exc, limits.LeaseUnavailable):
            task.request.retries -= 1  # waiting for a store is not a failed attempt
            raise task.retry(countdown=exc.retry_after_s) from None
        tasks._chunk_failed(
            task,
            jobs,
            job_id,
            f.item,
            f.chunk,
            f.planned,
            exc,
            queue,
            seen,
        )

    _as_chunk_task(app, parent, job_id, f.item, f.chunk, run)


def _commit(jobs: RedisJobStore, job_id: str, owner: str, f: _Fast) -> batchrecords.Outcome:
    """Commit a claimed one-chunk object (verified against its source, durable), as
    :func:`mover.workers.tasks._run_commit` does; its lease is renewed meanwhile."""
    assert f.receipt is not None
    with tasks._watcher().keep_lease(job_id, f.item, owner):
        try:
            fields = lifecycle.commit(f.planned, [f.receipt], flush=True)
        except Exception as exc:
            _, message = lifecycle.failure(exc, f.planned.plan)
            log.warning("job %s object %d: commit failed: %s", job_id, f.item, message)
            return batchrecords.Outcome(f.item, owner, {"state": FAILED, "error": message})
    log.info("job %s object %d committed (1 part, %s)", job_id, f.item, fields["digest"])
    return batchrecords.Outcome(f.item, owner, fields)


def _record(
    pool: ThreadPoolExecutor,
    jobs: RedisJobStore,
    job_id: str,
    queue: str,
    parent: Any,
    moved: list[_Fast],
) -> bool:
    """Record the ``moved`` entries (each with its receipt), commit the objects this batch
    claimed, record the outcomes; True when this call made the job's last object final."""
    record_chunks(
        jobs.r,
        queue,
        [
            (
                f.receipt.size,
                {
                    "job": job_id,
                    "endpoints": (f.planned.source, f.planned.destination),
                    "started": f.started,
                },
            )
            for f in moved
        ],
        request=parent,
    )
    owner = leases.new_owner()
    done = [batchrecords.Done(f.item, f.chunk, f.receipt.to_dict()) for f in moved]
    claims = batchrecords.record_done_and_claim(jobs, job_id, done, owner, tasks._STOP_JOB)
    claimed: list[_Fast] = []
    for f, (left, won) in zip(moved, claims, strict=True):
        if won:
            claimed.append(f)
        else:  # cancelled meanwhile, committed by another delivery, or chunks left
            tasks._after_done(jobs, job_id, f.item, f.chunk, f.planned, left)
    outcomes = list(pool.map(lambda f: _commit(jobs, job_id, owner, f), claimed))
    recorded, made_final = batchrecords.finish_commits(jobs, job_id, outcomes)
    for f, o, ok in zip(claimed, outcomes, recorded, strict=True):
        if not ok:
            log.warning("job %s object %d: commit lease lost; not recorded", job_id, f.item)
        elif o.fields["state"] == FAILED:
            tasks._abort(jobs, job_id, f.item, f.planned)
    return made_final


def batch_copy(self: Task, job_id: str, entries: list[Any]) -> None:
    """Run ``entries`` (``[item, chunk]`` pairs of job ``job_id``), a few at once."""
    pairs = [(int(item), int(chunk)) for item, chunk in entries]
    if not pairs:
        return
    parent = self.request
    jobs = tasks._jobs()
    job_state, found = batchrecords.read(jobs, job_id, pairs)
    if job_state is None:
        log.warning("job %s: no such job (expired?); batch of %d dropped", job_id, len(pairs))
        return
    fast, slow = _fast_entries(job_id, job_state, found)
    tag = (parent.properties or {}).get("delivery_tag")
    queue = (parent.delivery_info or {}).get("routing_key") or "mover"
    pool = _pool()
    waits = [pool.submit(_run_entry, self.app, parent, job_id, e.item, e.chunk) for e in slow]

    def settle(group: list[_Fast]) -> bool:
        for f in group:
            if f.failed is not None:
                _failed(self.app, parent, jobs, job_id, queue, f)
        moved = [f for f in group if f.receipt is not None]
        return _record(pool, jobs, job_id, queue, parent, moved) if moved else False

    # Recorded when all have moved, or as they have when one is slow: a slow object holds back
    # neither the others' records (and the progress followers see) nor, if this worker dies,
    # their work.
    finished: SimpleQueue[_Fast] = SimpleQueue()

    def move(f: _Fast) -> None:
        try:
            _move(jobs, job_id, tag, f)
        finally:
            finished.put(f)

    for f in fast:
        pool.submit(move, f)
    left, ready, made_final = len(fast), [], False
    while left:
        try:
            ready.append(finished.get(timeout=RECORD_AFTER_S))
            left -= 1
            slow_rest = False
        except Empty:
            slow_rest = True
        if ready and (not left or slow_rest):
            made_final |= settle(ready)
            ready = []
    for w in waits:
        w.result()
    if made_final:
        log.info("job %s %s", job_id, fleet_exec.close_job(jobs, job_id))


def register(app: Celery) -> None:
    """Register ``mover.batch.copy`` on the worker's app (:mod:`mover.workers.app`)."""
    app.task(
        name=BATCH_TASK,
        bind=True,
        ignore_result=True,
        soft_time_limit=tasks.CHUNK_TIME_LIMIT_S,
        time_limit=tasks.CHUNK_TIME_LIMIT_S + 60,
    )(batch_copy)
