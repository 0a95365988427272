"""Jobs whose messages the broker lost: found by the workers' sweep and published again.

kombu's Redis transport takes a message off its queue (``BRPOP``) and then, in a second
command, files it in the ``unacked`` hash from which a dead worker's messages are restored. A
Redis that dies between the two (a ``kill -9``, a crash, a fail-over) loses that message: it is
neither waiting nor in flight, and nothing will ever run it. A chunk lost so leaves its job
``running`` for ever (the CI met it once in a few hundred broker restarts; the fault suite met
it as "stuck, resumed by the harness"). ``mover resume`` repairs it, but a service that
submitted the job without waiting does not know it should, so the fleet repairs it itself.

Every live worker's sweep (:mod:`mover.workers.health`, every ``MOVER_SWEEP_S``) calls
:func:`sweep_lost`, which:

1. reads the recent ``running`` jobs (the newest :data:`RECENT_JOBS`) and remembers, per job,
   since when its progress (state, bytes done, objects final) has not changed;
2. for a job stalled :data:`STALL_S` seconds, looks on the broker for any message that names
   the job: in every priority band of the queues its objects use (and ``mover``, ``celery``),
   and in the ``unacked`` hash (chunks running, waiting for a retry or for a store's limit).
   A job waiting behind other jobs' work is found there and left alone;
3. a job with no message on two looks :data:`EVERY_S` apart (a message between ``BRPOP`` and
   the ``unacked`` hash is in a worker's hands for milliseconds, not seconds) is published
   again: the chunks of its running objects that are not done (or their commit), under a
   per-job lock so that one sweeper does it. Chunks are idempotent (see
   :mod:`mover.workers.tasks`), so a chunk that was only slow runs once more at worst.

On RabbitMQ (publisher confirms, acknowledgements on the broker) a consumed message cannot
vanish this way, and the broker's queues cannot be read without consuming them: nothing is done.

Settings: ``MOVER_RESCUE_STALL_S`` (120; above the visibility timeout plus one restore sweep,
so kombu's own redelivery comes first).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from mover.executors import celery as fleet_exec
from mover.executors.celery_app import broker_url, is_amqp
from mover.executors.names import DEFAULT_QUEUE, queue_for
from mover.fleetstate.observer import band_keys
from mover.jobs import DONE, FINAL, RUNNING, Item, Job
from mover.jobstores.redis import RedisJobStore, _loads

log = logging.getLogger("mover.worker")

#: Seconds without progress before a running job's messages are looked for
#: (``MOVER_RESCUE_STALL_S``).
STALL_S = float(os.environ.get("MOVER_RESCUE_STALL_S") or 120)
#: Seconds between two sweeps of the worker (``MOVER_SWEEP_S``).
SWEEP_S = float(os.environ.get("MOVER_SWEEP_S") or 5)
#: Seconds between two looks at the running jobs (an eighth of the stall, at least a sweep);
#: a job's messages must be missing on two looks this far apart.
EVERY_S = max(SWEEP_S, STALL_S / 8)
#: How many of the newest jobs are watched.
RECENT_JOBS = 500
#: Messages read per ``LRANGE`` while a queue is searched (newest first: where a stalled
#: job's messages would be, had they not been lost).
PAGE = 1000

#: job id -> (progress fingerprint, since when unchanged, when its messages were last missed).
_stalls: dict[str, tuple[tuple[Any, ...], float, float | None]] = {}
_broker: dict[str, Any] = {}
_last_look: list[float] = []


def _broker_client() -> Any | None:
    """A Redis client on the broker, or None on RabbitMQ."""
    url = broker_url()
    if is_amqp(url):
        return None
    if "client" not in _broker:
        from mover.jobstores.redis import client_from_url

        _broker["client"] = client_from_url(url)
    return _broker["client"]


def _running(jobs: RedisJobStore) -> dict[str, tuple[Any, ...]]:
    """The newest jobs that are running, each with its progress fingerprint (state, bytes
    done, objects final), in one pipeline of two commands per job: a sweep every few seconds
    must never read jobs' objects (a job of 2,000 objects is 2,000 hashes)."""
    ids = [m.decode() for m in jobs.r.zrevrange(f"{jobs.prefix}:jobs", 0, RECENT_JOBS - 1)]
    if not ids:
        return {}
    pipe = jobs.r.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(jobs.job_key(job_id), ["state", "bytes_done"])
        pipe.scard(f"{jobs.job_key(job_id)}:final")
    answers = pipe.execute()
    out: dict[str, tuple[Any, ...]] = {}
    for n, job_id in enumerate(ids):
        (state, done), final = answers[2 * n], answers[2 * n + 1]
        if _loads(state) == RUNNING:
            out[job_id] = (state, done, final)
    return out


def _queues(job: Job) -> set[str]:
    """Where the job's messages may be: its destination's chunk queue (every object of a job
    shares it), the commit queue, and Celery's default."""
    return {DEFAULT_QUEUE, "celery", queue_for(job.destination)}


def has_messages(broker: Any, job_id: str, queues: set[str]) -> bool:
    """Whether any message on the broker names ``job_id``: waiting in a queue (every priority
    band) or delivered and not acknowledged. Task arguments start with the job id, which kombu
    keeps readable in the message's ``argsrepr`` header."""
    needle = job_id.encode()
    for raw in broker.hvals("unacked"):
        if needle in raw:
            return True
    for queue in sorted(queues):
        for key in band_keys(queue):
            start = 0
            while True:
                page = broker.lrange(key, start, start + PAGE - 1)
                if any(needle in raw for raw in page):
                    return True
                if len(page) < PAGE:
                    break
                start += PAGE
    return False


def lost_work(job: Job) -> list[tuple[Item, list[int]]]:
    """What to publish again for a job whose messages are lost: per running object, the
    chunks not done (an empty list: its commit)."""
    return [
        (item, [c.index for c in item.chunks if c.state != DONE])
        for item in job.items
        if item.state == RUNNING
    ]


def sweep_lost(jobs: RedisJobStore, now: float | None = None) -> list[str]:
    """One look (see the module docstring); returns the ids of the jobs published again."""
    broker = _broker_client()
    if broker is None:
        return []
    now = time.monotonic() if now is None else now
    if _last_look and now - _last_look[0] < EVERY_S:
        return []
    _last_look[:] = [now]
    running = _running(jobs)
    for gone in set(_stalls) - set(running):
        del _stalls[gone]
    rescued: list[str] = []
    for job_id, mark in running.items():
        seen = _stalls.get(job_id)
        if seen is None or seen[0] != mark:
            _stalls[job_id] = (mark, now, None)
            continue
        _, since, missed = seen
        if now - since < STALL_S:
            continue
        if has_messages(broker, job_id, _queues(jobs.head(job_id))):
            _stalls[job_id] = (mark, now, None)  # waiting its turn: look again later
            continue
        if missed is None:  # the first look that found nothing: the next one decides
            _stalls[job_id] = (mark, since, now)
            continue
        job = jobs.get(job_id)  # the whole record, only for a job whose messages are gone
        work = lost_work(job)
        if not work:  # objects committing (their leases' sweep) or all settled
            if all(i.state in FINAL for i in job.items):
                fleet_exec.close_job(jobs, job.id)  # the job was never closed
            continue
        if not jobs.r.set(f"{jobs.prefix}:rescue:{job.id}", "1", nx=True, ex=max(1, int(STALL_S))):
            continue  # another worker's sweep is publishing it
        for item, pending in work:
            jobs.unsettle(job.id, item.index, pending)
        sent = fleet_exec.publish(jobs, job.id, work)
        log.warning(
            "job %s: no progress for %.0f s and none of its messages on the broker (lost in "
            "a broker crash?); published its %d unfinished task(s) again",
            job.id,
            now - since,
            sent,
        )
        _stalls[job_id] = (mark, now, None)
        rescued.append(job.id)
    return rescued
