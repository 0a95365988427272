"""The observer: what the autoscale controller sees of the fleet, once per control interval.

Per queue: the depth (every priority band), the unacknowledged messages (chunks in flight), the
workers consuming it with their *real* pool sizes, and the bytes/s, chunks/s and error rate of
the chunks that finished recently. Strategies never do I/O; this module does all of it, in a
handful of round trips:

- depth: ``LLEN`` of ``Q``, ``Q\\x06\\x163``, ``Q\\x06\\x166``, ``Q\\x06\\x169`` in one pipeline
  (``LLEN Q`` alone undercounts prioritised messages; CELERY-FACTS.md);
- in flight: the broker's ``unacked`` hash (tag -> ``[message, exchange, routing_key]``),
  split by routing key (with ``task_acks_late`` running chunks are there);
- workers: ``inspect().stats()`` (``pool.processes`` is the real pool size after a grow or
  shrink; ``max-concurrency`` is not), ``inspect().active_queues()`` and
  ``inspect().active()`` (how many children are busy), in parallel;
- throughput: every chunk task adds its bytes, and 1 to ``chunks`` or ``errors``, to a hash
  per queue and second (:func:`record_chunk`, ``mover:stats:<queue>:<second>``, kept
  :data:`STATS_TTL_S`); the observer sums the last ``window_s`` seconds.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis

from mover.autoscale import Observations, QueueObservation
from mover.fleetstate import metrics_recorder

log = logging.getLogger("mover.autoscale.observer")

#: Separator kombu's Redis transport puts between a queue name and its priority band.
PRIORITY_SEP = "\x06\x16"
#: Priority bands (kombu's default ``priority_steps``); band 0 is the bare queue name.
PRIORITY_STEPS = (0, 3, 6, 9)
#: Prefix of the per-second counters written by chunk tasks.
STATS_PREFIX = "mover:stats:"
#: Seconds a per-second counter is kept.
STATS_TTL_S = 300


def band_keys(queue: str) -> list[str]:
    """The Redis lists that hold ``queue``'s messages, one per priority band."""
    return [queue if p == 0 else f"{queue}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS]


def stats_key(queue: str, second: int) -> str:
    return f"{STATS_PREFIX}{queue}:{second}"


def record_chunk(
    r: redis.Redis,
    queue: str,
    nbytes: int,
    ok: bool,
    now: float | None = None,
    **detail: Any,
) -> None:
    """Count one finished chunk attempt of ``queue`` (called by the chunk task).

    ``ok`` chunks add their bytes and 1 to ``chunks``; failed attempts add 1 to ``errors``.
    ``detail`` (``job``, ``endpoints``, ``seconds``, ``error``, ``retryable``, ``request``)
    feeds the fleet's metrics (:func:`mover.fleetstate.metrics_recorder.add_chunk`) in the same
    round trip. Never raises: statistics must not fail a chunk.
    """
    now = time.time() if now is None else now
    try:
        pipe = r.pipeline(transaction=False)
        _queue_chunk(r, pipe, queue, nbytes, ok, now, detail)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("cannot record chunk statistics of %s: %s", queue, exc)


def record_chunks(
    r: redis.Redis, queue: str, chunks: list[tuple[int, dict[str, Any]]], **common: Any
) -> None:
    """Count several chunks of ``queue`` that succeeded, in one round trip (a
    ``mover.batch.copy``): each ``(nbytes, detail)`` as :func:`record_chunk` counts one;
    ``common`` is detail they share (``request``). Never raises."""
    if not chunks:
        return
    now = time.time()
    try:
        merged = _Merged()
        for nbytes, detail in chunks:
            _queue_chunk(r, merged, queue, nbytes, True, now, {**common, **detail})
        pipe = r.pipeline(transaction=False)
        merged.write(pipe)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("cannot record chunk statistics of %s: %s", queue, exc)


class _Merged:
    """Stands in for a pipeline while many chunks are counted: increments of one field are
    summed, sets and expiries written once, so that 64 chunks cost a few dozen commands
    instead of about a thousand (the counters come out the same)."""

    def __init__(self) -> None:
        self.incr: dict[tuple[str, str | None], int] = {}
        self.incr_float: dict[tuple[str, str], float] = {}
        self.members: dict[str, set[Any]] = {}
        self.fields: dict[str, dict[str, Any]] = {}
        self.ttl: dict[str, int] = {}

    def hincrby(self, key: str, name: str, amount: int = 1) -> None:
        self.incr[key, name] = self.incr.get((key, name), 0) + amount

    def incrby(self, key: str, amount: int = 1) -> None:
        self.incr[key, None] = self.incr.get((key, None), 0) + amount

    def hincrbyfloat(self, key: str, name: str, amount: float = 1.0) -> None:
        self.incr_float[key, name] = self.incr_float.get((key, name), 0.0) + amount

    def sadd(self, key: str, *values: Any) -> None:
        self.members.setdefault(key, set()).update(values)

    def hset(self, key: str, name: str, value: Any) -> None:
        self.fields.setdefault(key, {})[name] = value

    def expire(self, key: str, seconds: int) -> None:
        self.ttl[key] = seconds

    def write(self, pipe: Any) -> None:
        for (key, name), amount in self.incr.items():
            if name is None:
                pipe.incrby(key, amount)
            else:
                pipe.hincrby(key, name, amount)
        for (key, name), value in self.incr_float.items():
            pipe.hincrbyfloat(key, name, value)
        for key, members in self.members.items():
            pipe.sadd(key, *members)
        for key, mapping in self.fields.items():
            pipe.hset(key, mapping=mapping)
        for key, seconds in self.ttl.items():  # last: the keys exist by now
            pipe.expire(key, seconds)


def _queue_chunk(
    r: redis.Redis,
    pipe: Any,
    queue: str,
    nbytes: int,
    ok: bool,
    now: float,
    detail: dict[str, Any],
) -> None:
    """Queue in ``pipe`` what one finished chunk attempt adds (see :func:`record_chunk`)."""
    key = stats_key(queue, int(now))
    started = detail.get("started")
    if ok:
        pipe.hincrby(key, "bytes", int(nbytes))
        pipe.hincrby(key, "chunks", 1)
        if isinstance(started, int | float):  # time.monotonic() at the chunk's start
            pipe.hincrbyfloat(key, "seconds", max(0.0, time.monotonic() - started))
    else:
        pipe.hincrby(key, "errors", 1)
    pipe.expire(key, STATS_TTL_S)
    try:
        metrics_recorder.add_chunk(r, pipe, queue, ok=ok, nbytes=nbytes, now=now, **detail)
    except Exception as exc:  # metrics are never worth a failed chunk
        log.warning("cannot record chunk metrics of %s: %s", queue, exc)


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as ``inspect()`` saw it.

    Attributes:
        name: the node name (``w1@host``).
        pool: the real pool size (number of pool processes).
        prefork: the pool can grow and shrink (prefork, without ``--autoscale``).
        queues: the queues it consumes.
        pids: its pool processes.
        busy: tasks executing now (``inspect().active()``): the pool minus these is what a
            shrink can take.
        busy_by_queue: the same split by the queue each task came from (its routing key).
    """

    name: str
    pool: int
    prefork: bool
    queues: tuple[str, ...]
    pids: tuple[int, ...] = ()
    busy: int = 0
    busy_by_queue: Mapping[str, int] = field(default_factory=dict)

    @property
    def base_name(self) -> str:
        """The name before ``@`` (what a launcher calls the worker it started)."""
        return self.name.partition("@")[0]


@dataclass(frozen=True)
class Snapshot:
    """One look at the fleet: the observations for the strategy, and the workers behind them."""

    observations: Observations
    workers: Mapping[str, WorkerInfo] = field(default_factory=dict)

    def consumers(self, queue: str) -> list[WorkerInfo]:
        return [w for w in self.workers.values() if queue in w.queues]


def _busy_by_queue(tasks: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Executing tasks per queue, from each task's delivery info (routing key = queue)."""
    out: dict[str, int] = {}
    for task in tasks:
        info = task.get("delivery_info") or {}
        queue = str(info.get("routing_key") or "")
        if queue:
            out[queue] = out.get(queue, 0) + 1
    return out


def _worker_info(
    name: str,
    stats: Mapping[str, Any],
    queues: Iterable[str],
    busy: int = 0,
    busy_by_queue: Mapping[str, int] | None = None,
) -> WorkerInfo:
    pool = stats.get("pool") or {}
    processes = pool.get("processes")
    if isinstance(processes, list):
        size, pids = len(processes), tuple(int(p) for p in processes)
    else:
        size, pids = int(pool.get("max-concurrency") or 0), ()
    implementation = str(pool.get("implementation") or "")
    prefork = "prefork" in implementation and "autoscaler" not in stats
    return WorkerInfo(name, size, prefork, tuple(queues), pids, busy, dict(busy_by_queue or {}))


class Observer:
    """Gathers one :class:`Snapshot` per call of :meth:`observe`.

    Parameters:
        app: the fleet's Celery app (for ``inspect``).
        broker: a Redis client on the broker (queue lists, ``unacked``), or, on RabbitMQ, an
            object with ``depths(queues)`` and ``unacked()``
            (:func:`mover.broker_queues.open_queues` gives either).
        stats: a Redis client where chunk tasks record statistics (the job store's Redis).
        window_s: seconds of recent chunks that bytes/s, chunks/s and the error rate cover
            (the controller gives its decision interval: a rate never spans two decisions).
        inspect_timeout_s: how long to wait for workers to answer ``inspect``.
        queues: the queues to observe; None for every queue some worker consumes.
        exclude: queues never observed (``celery``: only stray tasks land there).
    """

    def __init__(
        self,
        app: Any,
        broker: redis.Redis,
        stats: redis.Redis | None = None,
        *,
        window_s: float = 10.0,
        inspect_timeout_s: float = 0.5,
        queues: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.broker = broker
        self.stats = stats if stats is not None else broker
        self.window_s = max(1.0, float(window_s))
        self.inspect_timeout_s = float(inspect_timeout_s)
        self.queues = list(queues) if queues else None
        self.exclude = set(exclude)
        self._pool = ThreadPoolExecutor(3, thread_name_prefix="mover-observer")

    def workers(self) -> dict[str, WorkerInfo]:
        """Every worker that answered, by name (``stats``, ``active_queues`` and ``active``
        in parallel)."""
        inspect = self.app.control.inspect(timeout=self.inspect_timeout_s)
        stats_f = self._pool.submit(inspect.stats)
        queues_f = self._pool.submit(inspect.active_queues)
        active_f = self._pool.submit(lambda: inspect.active(safe=True))
        stats = stats_f.result() or {}
        consumed = queues_f.result() or {}
        running = active_f.result() or {}
        out: dict[str, WorkerInfo] = {}
        for name, info in stats.items():
            if name not in consumed or name not in running:
                continue  # answered one call and not another: look again next time
            names = [q.get("name", "") for q in consumed[name] or []]
            tasks = running[name] or []
            out[name] = _worker_info(
                name, info, [q for q in names if q], len(tasks), _busy_by_queue(tasks)
            )
        return out

    def known_queues(self, workers: Mapping[str, WorkerInfo]) -> list[str]:
        """The queues to observe, given the workers seen."""
        if self.queues is not None:
            queues = list(self.queues)
        else:
            queues = sorted({q for w in workers.values() for q in w.queues})
        return [q for q in queues if q not in self.exclude]

    def depths(self, queues: list[str]) -> dict[str, int]:
        """Messages waiting per queue, every priority band counted."""
        if not isinstance(self.broker, redis.Redis):
            return dict(self.broker.depths(queues))
        pipe = self.broker.pipeline(transaction=False)
        for q in queues:
            for key in band_keys(q):
                pipe.llen(key)
        raw = pipe.execute()
        n = len(PRIORITY_STEPS)
        return {q: int(sum(raw[i * n : (i + 1) * n])) for i, q in enumerate(queues)}

    def unacked(self) -> dict[str, int]:
        """Delivered, unacknowledged messages per routing key (= queue name in mover)."""
        if not isinstance(self.broker, redis.Redis):
            return dict(self.broker.unacked())
        out: dict[str, int] = {}
        for value in self.broker.hvals("unacked"):
            try:
                _message, _exchange, routing_key = json.loads(value)
            except (ValueError, TypeError):
                continue
            out[str(routing_key)] = out.get(str(routing_key), 0) + 1
        return out

    def throughput(
        self, queues: list[str], now: float
    ) -> dict[str, tuple[float, float, float, float]]:
        """``queue -> (bytes/s, chunks/s, error rate, mean chunk seconds)`` over the last
        ``window_s`` seconds (the current, incomplete second left out)."""
        end = int(now)
        seconds = list(range(end - max(1, math.ceil(self.window_s)), end))
        pipe = self.stats.pipeline(transaction=False)
        for q in queues:
            for s in seconds:
                pipe.hmget(stats_key(q, s), ["bytes", "chunks", "errors", "seconds"])
        raw = pipe.execute()
        out: dict[str, tuple[float, float, float, float]] = {}
        n = len(seconds)
        for i, q in enumerate(queues):
            nbytes = chunks = errors = 0
            spent = 0.0
            for values in raw[i * n : (i + 1) * n]:
                b, c, e = (int(v or 0) for v in values[:3])
                nbytes, chunks, errors = nbytes + b, chunks + c, errors + e
                spent += float(values[3] or 0.0)
            finished = chunks + errors
            out[q] = (
                nbytes / n,
                chunks / n,
                errors / finished if finished else 0.0,
                spent / chunks if chunks else 0.0,
            )
        return out

    def observe(self, now: float | None = None) -> Snapshot:
        """Look at the broker, the workers and the statistics once."""
        now = time.time() if now is None else now
        workers = self.workers()
        queues = self.known_queues(workers)
        depths = self.depths(queues)
        in_flight = self.unacked()
        rates = self.throughput(queues, now)
        observed = []
        for q in queues:
            consumers = [w for w in workers.values() if q in w.queues]
            bps, cps, err, chunk_s = rates[q]
            busy = sum(
                w.busy_by_queue.get(q, 0) if w.busy_by_queue or len(w.queues) > 1 else w.busy
                for w in consumers
            )
            observed.append(
                QueueObservation(
                    queue=q,
                    depth=depths[q],
                    unacked=in_flight.get(q, 0),
                    consumers=len(consumers),
                    pool_sizes={w.name: w.pool for w in consumers},
                    bytes_per_s=bps,
                    chunks_per_s=cps,
                    error_rate=err,
                    time_s=now,
                    busy=busy,
                    window_s=float(max(1, math.ceil(self.window_s))),
                    chunk_s=chunk_s,
                )
            )
        return Snapshot(Observations.of(now, *observed), workers)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
