"""``mover.batch.copy``: many small objects in one task (issue 10 item 3).

A task costs the fleet a message published, delivered, acked and a few Redis round trips,
about as much as moving a 16 KiB object; a job of thousands of small objects then spends more
on tasks than on bytes. The celery executor groups the chunks of small one-chunk objects
bound for one queue into batches (:data:`mover.executors.names.BATCH_OBJECTS` at most) and
publishes one ``mover.batch.copy`` per batch; each entry runs here exactly as a
``mover.chunk.copy`` would (the same function, :func:`mover.workers.tasks.chunk_copy`, under a
request of its own: idempotent, cancellable, per-store limits, commit by the last chunk), a
few at once (:data:`BATCH_STREAMS`): their time is the store's latency.

Retries stay Celery's, per chunk: an entry whose chunk asks to be retried is sent again as its
own ``mover.chunk.copy`` (with the back-off the chunk chose), never the whole batch, so retries
neither multiply nor repeat the entries that succeeded. A worker killed mid-batch has the batch
delivered again (acks late); entries already done are recognised and skipped, as a second
delivery of a chunk is.
"""

from __future__ import annotations

import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery, Task
from celery.exceptions import Retry

from mover.executors.names import BATCH_TASK, CHUNK_TASK
from mover.workers import tasks

log = logging.getLogger("mover.workers.batch")

#: Entries of one batch in flight at once, in threads of the worker process.
BATCH_STREAMS = int(os.environ.get("MOVER_BATCH_STREAMS") or 8)


def _run_entry(app: Celery, parent: Any, job_id: str, item: int, chunk: int) -> None:
    """Run one entry as ``mover.chunk.copy`` would run it, in this thread, under a request of
    its own (``parent``: the batch's request, taken in the batch's thread: requests are
    per thread); a retry it asks for is published as that chunk's task."""
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
        task.run(job_id, item, chunk)
    except Retry:
        pass  # chunk_copy published the chunk's own retry (its countdown, its queue)
    except Exception:
        log.exception("job %s object %d chunk %d: failed in a batch", job_id, item, chunk)
    finally:
        task.pop_request()


def batch_copy(self: Task, job_id: str, entries: list[Any]) -> None:
    """Run ``entries`` (``[item, chunk]`` pairs of job ``job_id``), a few at once."""
    pairs = [(int(item), int(chunk)) for item, chunk in entries]
    if not pairs:
        return
    parent = self.request
    # The worker process's job store and watcher are made on first use, without a lock:
    # make them here, in one thread, before the entries' threads use them.
    tasks._watcher()
    streams = min(BATCH_STREAMS, len(pairs))
    with ThreadPoolExecutor(streams, thread_name_prefix="mover-batch") as pool:
        for _ in pool.map(lambda p: _run_entry(self.app, parent, job_id, *p), pairs):
            pass


def register(app: Celery) -> None:
    """Register ``mover.batch.copy`` on the worker's app (:mod:`mover.workers.app`)."""
    app.task(
        name=BATCH_TASK,
        bind=True,
        ignore_result=True,
        soft_time_limit=tasks.CHUNK_TIME_LIMIT_S,
        time_limit=tasks.CHUNK_TIME_LIMIT_S + 60,
    )(batch_copy)
