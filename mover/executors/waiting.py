"""What a fleet job waits for: a live worker on each of its queues, and Redis itself.

A job on the fleet runs only where a worker consumes its queues (``mover.store.NAME``,
``mover.<scheme>``, ``mover`` for commits). With none, its chunks sit in Redis and nothing
moves; ``mover copy --wait`` used to wait in silence. This is a state of the job, "waiting for
a worker", not a failure: the job goes on as soon as a worker appears. The follower and
``mover status`` ask :func:`unserved` (one read of the workers' heartbeats,
:mod:`mover.presence`) and say so in one line naming the queues and the command that serves
them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from mover.executors.names import DEFAULT_QUEUE, queue_for
from mover.jobs import COMMITTING, DONE, FINAL, Job
from mover.jobstores.redis import RedisJobStore
from mover.presence import Presence

#: Seconds between two looks at the workers' heartbeats while following a job.
CHECK_S = 2.0


def needed_queues(job: Job) -> list[str]:
    """The queues the unfinished objects of ``job`` still need a worker on: their chunk queue
    while a chunk is not done, else the commit queue. An object being committed needs no
    queue (its committer, or any live worker's sweep, finishes it).

    A job read without its objects (:meth:`~mover.jobstores.redis.RedisJobStore.head`)
    needs its destination's queue: every object of a job is written under its destination,
    so they share one chunk queue. The follower asks this way, and reads the objects only
    to confirm a wait (a whole record of 10,000 objects is seconds of CPU)."""
    if not job.items:
        return [] if job.state in FINAL else [queue_for(job.destination)]
    needed: set[str] = set()
    for item in job.items:
        if item.state in FINAL or item.state == COMMITTING:
            continue
        if item.chunks and any(c.state != DONE for c in item.chunks):
            needed.add(queue_for(item.destination))
        else:
            needed.add(DEFAULT_QUEUE)  # the commit queue
    return sorted(needed)


def unserved(jobs: RedisJobStore, job: Job) -> list[str]:
    """Those of the job's needed queues that no live worker consumes; empty for a final job.
    With no live worker at all, a job being committed waits too (``*``: any worker)."""
    if job.state in FINAL:
        return []
    live = Presence(jobs.r, jobs.prefix).live()
    served = {q for qs in live.values() for q in qs}
    missing = sorted(set(needed_queues(job)) - served)
    if not live and not missing and any(i.state == COMMITTING for i in job.items):
        return ["*"]
    return missing


def waiting_line(queues: list[str]) -> str:
    """The one line that says what a job waits for, and how to serve it."""
    if queues == ["*"]:
        return "waiting: no live worker in the fleet; start one with `mover worker`"
    names = ", ".join(queues)
    return (
        f"waiting: no worker consumes {names}; start one with `mover worker -Q {','.join(queues)}`"
    )


class WorkerWatch:
    """Tells a follower, once per change, when its job waits for a worker or for Redis.

    ``notice`` gets one line when the job starts waiting, and one when it stops."""

    def __init__(self, jobs: RedisJobStore, job_id: str, notice: Callable[[str], None]) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.notice = notice
        self._next = 0.0
        self._waiting: list[str] = []
        self._unreachable = False
        self._job: Job | None = None  # its head read once; the whole only to confirm a wait

    def check(self) -> None:
        """Look again if :data:`CHECK_S` passed since the last look."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + CHECK_S
        if self._job is None:
            self._job = self.jobs.head(self.job_id)
        waiting = unserved(self.jobs, self._job)
        if waiting:
            # A job's record can be large (10,000 chunks): read it again only to confirm.
            self._job = self.jobs.get(self.job_id)
            waiting = unserved(self.jobs, self._job)
        if waiting != self._waiting:
            if waiting:
                self.notice(waiting_line(waiting))
            else:
                self.notice(f"a worker consumes {', '.join(self._waiting)} now; going on")
            self._waiting = waiting
        self.reachable()

    def unreachable(self, exc: redis.RedisError) -> None:
        """Redis did not answer a poll: say so once; the caller keeps polling."""
        if not self._unreachable:
            kwargs = self.jobs.r.connection_pool.connection_kwargs
            where = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
            self.notice(
                f"waiting: cannot reach Redis at {where} ({type(exc).__name__}); the job "
                "goes on when it is back"
            )
            self._unreachable = True

    def reachable(self) -> None:
        if self._unreachable:
            self.notice("Redis answers again; following the job")
            self._unreachable = False
