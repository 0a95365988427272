"""What the fleet records in Redis for ``mover metrics`` and ``mover dashboard``.

Metrics are gathered from Redis on every scrape, never kept in a process: a prefork child that
exits, or a worker on another host, must not take its counts with it. So each chunk task adds
what it saw to Redis (one pipeline, shared with :func:`mover.fleetstate.observer.record_chunk`),
and publishers stamp every task message with its publish time.

Keys (all under ``mover:metrics:``; ``S`` is a store key, see :func:`store_key`):

==============================  =====  ======================================================
``stores``                      set    the store keys seen (at most :data:`MAX_STORES`; later
                                       ones are counted as ``other``)
``store:S``                     hash   counters: ``in_bytes`` (written to S), ``out_bytes``
                                       (read from S), ``chunks`` (attempts that touched S),
                                       ``errors_<class>``, ``retries``
``rate:S:<second>``             hash   ``in`` and ``out`` bytes of that second (kept
                                       :data:`RATE_TTL_S`): the recent bytes/s of S
``job:<id>``                    hash   ``last_progress``: when a chunk of the job last finished
``jobrate:<id>:<second>``       str    bytes of the job's chunks done that second
``hist:<name>:<queue>``         hash   a histogram: count per bucket index, ``sum``, ``count``
``queues``                      set    the queues that have histograms
``autoscale:<controller>``      str    the controller's last decision (JSON)
==============================  =====  ======================================================

Error classes (``errors_<class>``): ``checksum`` (:class:`~mover.errors.VerificationFailed`:
what a store confirmed differs from what was read), ``retryable`` (the task retries it) and
``permanent`` (the object fails). An error counts against both stores the chunk touched: mover
cannot always tell which side failed, and an alert on either is the right alarm.

Why a store key and not a URL: ``store:NAME`` for a configured store, else the limit key of
:mod:`mover.fleetstate.limits` (``scheme://bucket-or-host``, or a ``[limits]`` key): bounded by
the configuration, and never a key, a path or a query string (which could carry a token).

Nothing here may fail a chunk: every write swallows Redis errors (and logs them once).
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import redis

from mover.errors import VerificationFailed
from mover.executors.celery_app import SENT_HEADER  # stamped by every publisher

log = logging.getLogger("mover.metrics")

PREFIX = "mover:metrics:"
#: Most store keys counted separately; more are summed under ``other`` (bounded labels).
MAX_STORES = 200
#: Seconds a per-second rate key is kept.
RATE_TTL_S = 120
#: Seconds a job's last-progress mark is kept after its last chunk.
JOB_TTL_S = 7 * 24 * 3600
#: Upper bounds of the histogram buckets (seconds); +Inf is implied.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
HISTOGRAMS: dict[str, tuple[float, ...]] = {
    "chunk_duration": DURATION_BUCKETS,
    "queue_wait": WAIT_BUCKETS,
}
ERROR_CLASSES = ("retryable", "permanent", "checksum")
OTHER = "other"

_known_stores: set[str] = set()


# -- key names (read by mover.monitor) --------------------------------------------------------


def stores_key() -> str:
    return f"{PREFIX}stores"


def store_counters_key(store: str) -> str:
    return f"{PREFIX}store:{store}"


def store_rate_key(store: str, second: int) -> str:
    return f"{PREFIX}rate:{store}:{second}"


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def job_rate_key(job_id: str, second: int) -> str:
    return f"{PREFIX}jobrate:{job_id}:{second}"


def histogram_key(name: str, queue: str) -> str:
    return f"{PREFIX}hist:{name}:{queue}"


def queues_key() -> str:
    return f"{PREFIX}queues"


def decision_key(controller: str) -> str:
    return f"{PREFIX}autoscale:{controller}"


# -- what a chunk saw -------------------------------------------------------------------------


def store_key(endpoint: Any) -> str:
    """The store an endpoint (:class:`mover.motion.Endpoint`) belongs to, as metrics name it:
    the key its stream leases use in :mod:`mover.fleetstate.limits` (``store:NAME``, a
    ``[limits]`` key, or ``scheme://bucket-or-host``)."""
    from mover.errors import ConfigError
    from mover.fleetstate import limits

    location = endpoint.location
    try:
        return limits.limit_for(location, getattr(endpoint.store, "options", None)).key
    except ConfigError:  # a bad limit is reported where it is enforced; name the store anyway
        return (
            f"store:{location.name}" if location.name else f"{location.scheme}://{location.store}"
        )


def error_class(error: BaseException, retryable: bool) -> str:
    if isinstance(error, VerificationFailed):
        return "checksum"
    return "retryable" if retryable else "permanent"


def _timestamp(value: Any) -> float | None:
    """Seconds since the epoch from a number, a datetime or an ISO 8601 text; else None."""
    try:
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            return datetime.fromisoformat(value).timestamp()
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _sent_at(request: Any) -> float | None:
    """When the task was published, or became due (a retry's ETA), from its request."""
    sent = _timestamp(getattr(request, SENT_HEADER, None))
    eta = _timestamp(getattr(request, "eta", None))
    return max(sent, eta) if sent is not None and eta is not None else sent


def _bucket(bounds: tuple[float, ...], value: float) -> int:
    """Index of the first bucket whose bound holds ``value`` (len(bounds) for +Inf)."""
    return bisect.bisect_left(bounds, value)


def _observe(pipe: Any, name: str, queue: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        return
    key = histogram_key(name, queue)
    pipe.hincrby(key, str(_bucket(HISTOGRAMS[name], value)), 1)
    pipe.hincrbyfloat(key, "sum", value)
    pipe.hincrby(key, "count", 1)


def _bounded(r: redis.Redis, stores: Iterable[str]) -> list[str]:
    """The store keys as labels: each new one is admitted while fewer than MAX_STORES are
    known, else it becomes ``other``. One round trip per store new to this process."""
    out = []
    for s in stores:
        if s not in _known_stores:
            added, count = (
                r.pipeline(transaction=False).sadd(stores_key(), s).scard(stores_key()).execute()
            )
            if added and count > MAX_STORES:
                r.srem(stores_key(), s)
                s = OTHER
                r.sadd(stores_key(), OTHER)
            _known_stores.add(s)
        out.append(s)
    return out


def add_chunk(
    r: redis.Redis,
    pipe: Any,
    queue: str,
    *,
    ok: bool,
    nbytes: int,
    now: float,
    job: str | None = None,
    endpoints: tuple[Any, Any] | None = None,
    started: float | None = None,
    error: BaseException | None = None,
    retryable: bool = False,
    request: Any = None,
) -> None:
    """Queue in ``pipe`` what one finished chunk attempt adds to the metrics.

    Parameters:
        r: the Redis of ``pipe`` (new store keys are admitted on it first).
        queue: the chunk's queue; ok: the attempt succeeded; nbytes: bytes it moved.
        job: the job id; endpoints: (source, destination) :class:`~mover.motion.Endpoint`.
        started: ``time.monotonic()`` when the chunk began to move bytes.
        error, retryable: what failed the attempt and whether the task retries it.
        request: the Celery request (publish time, retries); default the current task's.
    """
    second = int(now)
    seconds = None if started is None else max(0.0, time.monotonic() - started)
    if request is None:
        from celery import current_task

        request = current_task.request if current_task else None
    if seconds is not None:
        _observe(pipe, "chunk_duration", queue, seconds)
    sent = _sent_at(request)
    if sent is not None:
        started = now - (seconds or 0.0)
        _observe(pipe, "queue_wait", queue, max(0.0, started - sent))
    if seconds is not None or sent is not None:
        pipe.sadd(queues_key(), queue)
    retried = bool(getattr(request, "retries", 0) or 0)
    if endpoints is not None:
        source, destination = _bounded(r, [store_key(e) for e in endpoints])
        pipe.sadd(stores_key(), source, destination)  # again: Redis may have been emptied
        # One store both ways (a copy inside a bucket): the attempt counts once, bytes both ways.
        sides = [(source, ("out",)), (destination, ("in",))]
        if source == destination:
            sides = [(source, ("out", "in"))]
        for store, directions in sides:
            counters = store_counters_key(store)
            pipe.hincrby(counters, "chunks", 1)
            if ok and nbytes:
                rate = store_rate_key(store, second)
                for direction in directions:
                    pipe.hincrby(counters, f"{direction}_bytes", int(nbytes))
                    pipe.hincrby(rate, direction, int(nbytes))
                pipe.expire(rate, RATE_TTL_S)
            if error is not None:
                pipe.hincrby(counters, f"errors_{error_class(error, retryable)}", 1)
            if retried:
                pipe.hincrby(counters, "retries", 1)
    if job and ok:
        pipe.hset(job_key(job), "last_progress", now)
        pipe.expire(job_key(job), JOB_TTL_S)
        if nbytes:
            pipe.incrby(job_rate_key(job, second), int(nbytes))
            pipe.expire(job_rate_key(job, second), RATE_TTL_S)


# -- publish time -----------------------------------------------------------------------------


def sent_time(message: bytes | str) -> float | None:
    """The publish time of a raw kombu message as kept in a Redis list (JSON with the task's
    headers), or None when it has none (sent by a client that does not stamp)."""
    try:
        headers = json.loads(message).get("headers") or {}
        return float(headers[SENT_HEADER])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


# -- the controller's decision ----------------------------------------------------------------


def save_decision(
    r: redis.Redis,
    controller: str,
    strategy: str,
    desired: Mapping[str, int],
    previous: Mapping[str, int],
    reasons: Mapping[str, str],
    now: float,
    queues: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Keep the autoscale controller's last decision where ``mover metrics`` reads it.

    ``queues``: per queue, the fields of the decision's log line (real pool, busy slots,
    backlog, MiB/s and its window, action, slots, reason; see ``QueueReport.fields``)."""
    record = {
        "time_s": now,
        "strategy": strategy,
        "desired": {q: int(v) for q, v in desired.items()},
        "previous": {q: int(v) for q, v in previous.items()},
        "reasons": {q: str(v) for q, v in reasons.items()},
        "queues": {q: dict(v) for q, v in (queues or {}).items()},
    }
    try:
        r.set(decision_key(controller), json.dumps(record), ex=7 * 24 * 3600)
    except redis.RedisError as exc:
        log.warning("cannot record the autoscale decision: %s", exc)
