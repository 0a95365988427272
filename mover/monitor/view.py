"""One look at the fleet from Redis and the broker: what ``mover metrics`` exposes and
``mover dashboard`` draws.

Everything is read again at every look (a few pipelined round trips), so the figures are the
fleet's, not one process's: prefork children come and go, workers run on many hosts, and their
counts live in Redis (:mod:`mover.fleetstate.metrics_recorder`, :mod:`mover.fleetstate.observer`,
:mod:`mover.fleetstate.limits`, the job store). Two things are not read per look:

- **workers** (pool sizes, busy slots, queues consumed) come from ``inspect()``, a broadcast
  that waits for replies; a background thread asks every ``inspect_interval_s`` and a look
  takes its latest answer (:attr:`FleetState.workers_age_s` says how old it is);
- **finished jobs** do not change: their figures are cached by id.

Bounded: jobs are the newest ``max_jobs`` records that are not finished, or finished less than
``recent_s`` ago (defaults 50 and 15 minutes); stores at most
:data:`~mover.fleetstate.metrics_recorder.MAX_STORES`; queues are those the workers consume, the
default ones and those with chunks recorded. A Redis that cannot be reached makes the look
return ``up=False`` within about ``timeout_s``, with nothing else.

No secret ever leaves here: labels are store keys, queue, worker and job ids; URLs shown on the
dashboard lose any query string and user info.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.retry import Retry

from mover.config import AMQP_SCHEMES
from mover.config import url_scheme as config_scheme
from mover.errors import MoverError
from mover.jobs import FINAL
from mover.resolve import store_table

log = logging.getLogger("mover.monitor")

#: States a job can show (``cancelling`` is the fleet's).
JOB_STATES = ("pending", "running", "committing", "cancelling", "done", "failed", "cancelled")


@dataclass
class QueueStat:
    name: str
    depth: int
    bands: dict[int, int]
    unacked: int = 0
    consumers: int = 0
    #: Seconds the oldest waiting message has waited (0 when empty; None when unknown).
    oldest_age_s: float | None = 0.0


@dataclass
class JobStat:
    id: str
    state: str
    executor: str
    objects: int
    objects_done: int
    objects_failed: int
    chunks: int
    chunks_done: int
    size_bytes: int | None
    done_bytes: int
    rate_bytes_per_s: float
    eta_s: float | None
    created: float
    finished: float | None
    last_progress: float
    source: str = ""
    destination: str = ""


@dataclass
class StoreStat:
    key: str
    in_bytes: int = 0
    out_bytes: int = 0
    in_rate: float = 0.0
    out_rate: float = 0.0
    chunks: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    #: Leases held now on the store's ``max_streams`` semaphore (None: not capped).
    streams: int | None = None
    streams_limit: int | None = None
    streams_high_water: int | None = None


@dataclass
class WorkerStat:
    name: str
    pool: int
    busy: int
    queues: tuple[str, ...]


@dataclass
class DecisionStat:
    controller: str
    strategy: str
    time_s: float
    desired: dict[str, int]
    previous: dict[str, int]
    reasons: dict[str, str]
    #: Per queue, what the decision saw and did (pool, busy, backlog, bytes_per_s, window_s,
    #: action, slots, ...): the fields of its log line.
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class HistogramStat:
    name: str
    queue: str
    bounds: tuple[float, ...]
    #: Observations per bucket (not cumulative), the last one for +Inf.
    counts: list[int]
    sum: float
    count: int


@dataclass
class FleetState:
    up: bool
    time_s: float
    error: str | None = None
    queues: list[QueueStat] = field(default_factory=list)
    jobs: list[JobStat] = field(default_factory=list)
    stores: list[StoreStat] = field(default_factory=list)
    workers: list[WorkerStat] = field(default_factory=list)
    workers_age_s: float | None = None
    decisions: list[DecisionStat] = field(default_factory=list)
    histograms: list[HistogramStat] = field(default_factory=list)
    seconds: float = 0.0


def quick_client(url: str, timeout_s: float) -> redis.Redis:
    """A Redis client that gives up fast: a monitor must answer, not ride out an outage."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(backoff=_NoBackoff(), retries=0),
        health_check_interval=0,
    )


class _NoBackoff:
    def compute(self, failures: int) -> float:
        return 0.0

    def reset(self) -> None:
        pass


_USERINFO = re.compile(r"//[^/@]*@")


def display_url(url: str) -> str:
    """A URL as the dashboard may show it: no query string, fragment or user info (a query
    can carry a signature or a token)."""
    return _USERINFO.sub("//", url.split("?", 1)[0].split("#", 1)[0])


def redis_where(url: str) -> str:
    """``host:port`` of a broker's URL (Redis or RabbitMQ), for messages (never the
    password)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "?"
    default = 5672 if config_scheme(url) in AMQP_SCHEMES else 6379
    return f"{parts.hostname or '?'}:{port or default}"


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _json(raw: Any) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, TypeError):
        return None


class _WorkerPoller:
    """Asks ``inspect()`` for the workers every ``interval_s`` in a daemon thread."""

    def __init__(self, observer: Any, interval_s: float) -> None:
        self.observer = observer
        self.interval_s = interval_s
        self.workers: list[WorkerStat] = []
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="mover-monitor-inspect", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                found = self.observer.workers()
                self.workers = [
                    WorkerStat(w.name, w.pool, w.busy, w.queues) for w in found.values()
                ]
                self.at = time.time()
            except Exception as exc:  # the broker away: keep the last answer, ask again
                log.debug("inspect failed: %s", exc)
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()


class FleetReader:
    """Reads :class:`FleetState` (see the module docstring).

    Parameters:
        broker_url: the broker's Redis (queues, ``unacked``).
        jobs_url: the job store's Redis (jobs, statistics, limits); default the broker.
        prefix: the job store's key prefix (default ``MOVER_REDIS_PREFIX`` or ``mover``).
        max_jobs, recent_s: which jobs are shown (see the module docstring).
        queues: the queues to show besides those found; None for the default ones.
        rate_window_s: seconds of recent chunks that bytes/s figures cover.
        inspect_interval_s: seconds between two ``inspect()`` of the workers; 0 for none.
        timeout_s: how long a Redis call may take before the look reports ``up=False``.
        sqlite_path: also show the embedded jobs of this SQLite job store (one host's).
        app: the Celery app (default the fleet's, from ``MOVER_BROKER_URL``).
        clients: (broker, jobs) Redis clients to use instead of the URLs (unit tests).
    """

    def __init__(
        self,
        broker_url: str,
        jobs_url: str | None = None,
        *,
        prefix: str | None = None,
        max_jobs: int = 50,
        recent_s: float = 900.0,
        queues: Iterable[str] | None = None,
        rate_window_s: float = 10.0,
        inspect_interval_s: float = 2.0,
        timeout_s: float = 1.0,
        sqlite_path: str | Path | None = None,
        app: Any = None,
        clients: tuple[redis.Redis, redis.Redis] | None = None,
    ) -> None:
        from mover.jobstores.redis import RedisJobStore

        self.broker_url = broker_url
        self.jobs_url = jobs_url or broker_url
        if clients is not None:
            self.broker, self.r = clients
        elif config_scheme(broker_url) in AMQP_SCHEMES:
            # RabbitMQ: queue depth by passive declare (mover.broker_queues).
            from mover.broker_queues import AmqpQueues

            self.broker = AmqpQueues(broker_url, timeout_s)
            self.r = quick_client(self.jobs_url, timeout_s)
        else:
            self.broker = quick_client(broker_url, timeout_s)
            same = self.jobs_url == broker_url
            self.r = self.broker if same else quick_client(self.jobs_url, timeout_s)
        prefix = prefix or os.environ.get("MOVER_REDIS_PREFIX") or "mover"
        self.keys = RedisJobStore(client=self.r, prefix=prefix)
        self.max_jobs = max_jobs
        self.recent_s = recent_s
        self.queues = list(queues) if queues is not None else None
        self.rate_window_s = max(1.0, rate_window_s)
        self.inspect_interval_s = inspect_interval_s
        self.sqlite_path = Path(sqlite_path) if sqlite_path else None
        from mover.fleetstate.observer import Observer

        # Only its queue reads are used until the first look at workers sets its app.
        self.observer = Observer(app, self.broker, self.r, inspect_timeout_s=1.0)
        self._poller: _WorkerPoller | None = None
        self._finished: dict[str, JobStat] = {}
        self._lock = threading.Lock()

    # -- the look ---------------------------------------------------------------------------

    def read(self) -> FleetState:
        """Look once. Never raises for an unreachable Redis: ``up`` is False then."""
        started = time.monotonic()
        now = time.time()
        try:
            self.broker.ping()
            if self.r is not self.broker:
                self.r.ping()
        except (redis.RedisError, MoverError) as exc:
            return FleetState(
                up=False,
                time_s=now,
                error=f"cannot reach Redis or the broker ({type(exc).__name__})",
                seconds=time.monotonic() - started,
            )
        with self._lock:  # one look at a time: they share the cache and the clients
            try:
                state = self._read(now)
            except (redis.RedisError, MoverError) as exc:
                state = FleetState(
                    False, now, f"Redis failed during the look: {type(exc).__name__}"
                )
        state.seconds = time.monotonic() - started
        return state

    def _read(self, now: float) -> FleetState:
        workers, age = self._workers(now)
        state = FleetState(up=True, time_s=now, workers=workers, workers_age_s=age)
        state.histograms = self._histograms()
        names = set(self.queues if self.queues is not None else _default_queues())
        names |= {q for w in workers for q in w.queues}
        names |= {h.queue for h in state.histograms}
        unacked = self.observer.unacked()
        names |= set(unacked)
        state.queues = self._queues(sorted(names), unacked, workers, now)
        state.jobs = self._redis_jobs(now) + self._sqlite_jobs(now)
        state.stores = self._stores(now)
        state.decisions = self._decisions()
        return state

    # -- workers ----------------------------------------------------------------------------

    def _workers(self, now: float) -> tuple[list[WorkerStat], float | None]:
        if self.inspect_interval_s <= 0:
            return [], None
        if self._poller is None:
            if self.observer.app is None:
                from mover.executors.celery import get_app

                self.observer.app = get_app()
            self._poller = _WorkerPoller(self.observer, self.inspect_interval_s)
        poller = self._poller
        return list(poller.workers), (now - poller.at if poller.at else None)

    # -- queues -----------------------------------------------------------------------------

    def _queues(
        self, names: list[str], unacked: dict[str, int], workers: list[WorkerStat], now: float
    ) -> list[QueueStat]:
        from mover.fleetstate.metrics_recorder import sent_time
        from mover.fleetstate.observer import PRIORITY_STEPS, band_keys

        if not isinstance(self.broker, redis.Redis):
            return self._amqp_queues(names, workers)
        pipe = self.broker.pipeline(transaction=False)
        for q in names:
            for key in band_keys(q):
                pipe.llen(key)
                pipe.lindex(key, -1)  # the oldest message: kombu LPUSHes and BRPOPs
        raw = pipe.execute()
        out = []
        per = 2 * len(PRIORITY_STEPS)
        for i, q in enumerate(names):
            values = raw[i * per : (i + 1) * per]
            bands = {p: int(values[2 * n]) for n, p in enumerate(PRIORITY_STEPS)}
            sent = [sent_time(values[2 * n + 1]) for n in range(len(PRIORITY_STEPS))]
            depth = sum(bands.values())
            if depth == 0:
                oldest: float | None = 0.0
            else:
                known = [s for s in sent if s is not None]
                oldest = max(0.0, now - min(known)) if known else None
            consumers = sum(1 for w in workers if q in w.queues)
            out.append(QueueStat(q, depth, bands, unacked.get(q, 0), consumers, oldest))
        return out

    def _amqp_queues(self, names: list[str], workers: list[WorkerStat]) -> list[QueueStat]:
        """RabbitMQ's queues: ready messages by passive declare (one queue holds every
        priority); unacknowledged ones and the oldest message's age are not visible over AMQP
        (None: unknown, not zero)."""
        out = []
        for q in names:
            depth, _consumers = self.broker.declared(q)
            consumers = sum(1 for w in workers if q in w.queues)
            out.append(QueueStat(q, depth, {0: depth}, 0, consumers, 0.0 if not depth else None))
        return out

    # -- jobs -------------------------------------------------------------------------------

    def _redis_jobs(self, now: float) -> list[JobStat]:
        keys = self.keys
        ids = [_text(m) for m in self.r.zrevrange(f"{keys.prefix}:jobs", 0, self.max_jobs - 1)]
        fields = ["state", "n_items", "created", "finished", "bytes_done", "executor"]
        fields += ["source", "destination"]
        pipe = self.r.pipeline(transaction=False)
        for jid in ids:
            pipe.hmget(keys.job_key(jid), fields)
        records = pipe.execute()
        wanted: list[tuple[str, dict[str, Any]]] = []
        out: list[JobStat] = []
        for jid, values in zip(ids, records, strict=True):
            if values[0] is None:
                continue  # expired
            rec = {
                f: (_json(v) if f != "bytes_done" else int(v or 0))
                for f, v in zip(fields, values, strict=True)
            }
            finished = rec.get("finished")
            if rec.get("state") in FINAL and finished and now - float(finished) > self.recent_s:
                continue
            cached = self._finished.get(jid)
            if cached is not None and cached.state == rec.get("state"):
                out.append(cached)
                continue
            wanted.append((jid, rec))
        out += self._read_jobs(wanted, now)
        if len(self._finished) > 4 * self.max_jobs:
            self._finished.clear()
        out.sort(key=lambda j: j.created, reverse=True)
        return out

    def _read_jobs(self, wanted: list[tuple[str, dict[str, Any]]], now: float) -> list[JobStat]:
        from mover.fleetstate import metrics_recorder as mr

        keys = self.keys
        window = int(self.rate_window_s)
        seconds = range(int(now) - window, int(now))
        pipe = self.r.pipeline(transaction=False)
        for jid, rec in wanted:
            for i in range(int(rec.get("n_items") or 0)):
                pipe.hmget(keys.item_key(jid, i), ["state", "size", "n_chunks"])
                pipe.scard(keys.item_key(jid, i, "done"))
            pipe.hget(mr.job_key(jid), "last_progress")
            for s in seconds:
                pipe.get(mr.job_rate_key(jid, s))
        raw = pipe.execute()
        pos = 0
        out = []
        for jid, rec in wanted:
            n_items = int(rec.get("n_items") or 0)
            objects_done = objects_failed = chunks = chunks_done = 0
            size: int | None = 0
            for _ in range(n_items):
                (state, item_size, n_chunks), done = raw[pos], raw[pos + 1]
                pos += 2
                state, item_size = _json(state), _json(item_size)
                objects_done += state == "done"
                objects_failed += state in ("failed", "cancelled")
                chunks += int(_json(n_chunks) or 0)
                chunks_done += int(done or 0)
                size = None if size is None or item_size is None else size + int(item_size)
            last = raw[pos]
            recent = sum(int(v or 0) for v in raw[pos + 1 : pos + 1 + len(seconds)])
            pos += 1 + len(seconds)
            job = self._stat(jid, rec, size, rec["bytes_done"], recent / window, now)
            job.objects, job.objects_done, job.objects_failed = (
                n_items,
                objects_done,
                objects_failed,
            )
            job.chunks, job.chunks_done = chunks, chunks_done
            job.last_progress = float(last) if last else job.created
            if job.state in FINAL:
                self._finished[jid] = job
            out.append(job)
        return out

    @staticmethod
    def _stat(
        jid: str, rec: dict[str, Any], size: int | None, done: int, rate: float, now: float
    ) -> JobStat:
        state = str(rec.get("state") or "pending")
        final = state in FINAL
        if final and state == "done" and size is not None:
            done = max(done, size)
        eta = None
        if not final and rate > 0 and size is not None:
            eta = max(0.0, (size - done) / rate)
        return JobStat(
            id=jid,
            state=state,
            executor=str(rec.get("executor") or "celery"),
            objects=0,
            objects_done=0,
            objects_failed=0,
            chunks=0,
            chunks_done=0,
            size_bytes=size,
            done_bytes=done,
            rate_bytes_per_s=0.0 if final else rate,
            eta_s=eta,
            created=float(rec.get("created") or 0.0),
            finished=rec.get("finished"),
            last_progress=float(rec.get("created") or 0.0),
            source=display_url(str(rec.get("source") or "")),
            destination=display_url(str(rec.get("destination") or "")),
        )

    def _sqlite_jobs(self, now: float) -> list[JobStat]:
        """Embedded jobs of one host (``sqlite_path``); their rate is the mean since start."""
        if self.sqlite_path is None or not self.sqlite_path.exists():
            return []
        from mover.jobstores.sqlite import SqliteJobStore

        store = SqliteJobStore(self.sqlite_path, write_behind=False)
        try:
            out = []
            for listed in store.list(self.max_jobs):
                if listed.state in FINAL and now - (listed.finished or now) > self.recent_s:
                    continue
                job = store.get(listed.id)
                elapsed = max(1e-3, (job.finished or now) - job.created)
                rec = {**job.summary(), "created": job.created, "finished": job.finished}
                stat = self._stat(
                    job.id, rec, job.size, job.bytes_done, job.bytes_done / elapsed, now
                )
                stat.objects = len(job.items)
                stat.objects_done = sum(1 for i in job.items if i.state == "done")
                stat.objects_failed = sum(
                    1 for i in job.items if i.state in ("failed", "cancelled")
                )
                stat.chunks = sum(len(i.chunks) for i in job.items)
                stat.chunks_done = sum(1 for i in job.items for c in i.chunks if c.state == "done")
                stat.last_progress = job.updated
                out.append(stat)
            return out
        finally:
            store.close()

    # -- stores -----------------------------------------------------------------------------

    def _stores(self, now: float) -> list[StoreStat]:
        from mover.fleetstate import limits
        from mover.fleetstate import metrics_recorder as mr

        names = {_text(s) for s in self.r.smembers(mr.stores_key())}
        capped = {}
        for raw in self.r.scan_iter(match=f"{limits.PREFIX}*:leases", count=500):
            key = _text(raw)[len(limits.PREFIX) : -len(":leases")]
            capped[key] = None
        names |= set(capped)
        ordered = sorted(names)
        window = int(self.rate_window_s)
        seconds = range(int(now) - window, int(now))
        pipe = self.r.pipeline(transaction=False)
        for s in ordered:
            pipe.hgetall(mr.store_counters_key(s))
            for sec in seconds:
                pipe.hmget(mr.store_rate_key(s, sec), ["in", "out"])
            pipe.zcount(limits.leases_key(s), now, "+inf")
            pipe.get(limits.hwm_key(s))
        raw = pipe.execute()
        per = 3 + len(seconds)
        out = []
        for i, s in enumerate(ordered):
            values = raw[i * per : (i + 1) * per]
            counters = {_text(k): int(float(v)) for k, v in (values[0] or {}).items()}
            rates = values[1 : 1 + len(seconds)]
            held, hwm = values[-2], values[-1]
            stat = StoreStat(
                key=s,
                in_bytes=counters.get("in_bytes", 0),
                out_bytes=counters.get("out_bytes", 0),
                in_rate=sum(int(r[0] or 0) for r in rates) / window,
                out_rate=sum(int(r[1] or 0) for r in rates) / window,
                chunks=counters.get("chunks", 0),
                errors={c: counters.get(f"errors_{c}", 0) for c in mr.ERROR_CLASSES},
                retries=counters.get("retries", 0),
            )
            cap = _stream_limit(s)
            if cap is not None or s in capped:
                stat.streams, stat.streams_limit = int(held or 0), cap
                stat.streams_high_water = int(hwm or 0)
            out.append(stat)
        return out

    # -- autoscale and histograms -----------------------------------------------------------

    def _decisions(self) -> list[DecisionStat]:
        from mover.fleetstate import metrics_recorder as mr

        prefix = mr.decision_key("")
        keys = sorted(_text(k) for k in self.r.scan_iter(match=f"{prefix}*", count=100))
        out = []
        for key, raw in zip(keys, self.r.mget(keys) if keys else [], strict=True):
            rec = _json(raw)
            if not isinstance(rec, dict):
                continue
            out.append(
                DecisionStat(
                    controller=key[len(prefix) :],
                    strategy=str(rec.get("strategy") or ""),
                    time_s=float(rec.get("time_s") or 0.0),
                    desired={q: int(v) for q, v in (rec.get("desired") or {}).items()},
                    previous={q: int(v) for q, v in (rec.get("previous") or {}).items()},
                    reasons={q: str(v) for q, v in (rec.get("reasons") or {}).items()},
                    queues={
                        q: dict(v)
                        for q, v in (rec.get("queues") or {}).items()
                        if isinstance(v, dict)
                    },
                )
            )
        return out

    def _histograms(self) -> list[HistogramStat]:
        from mover.fleetstate import metrics_recorder as mr

        queues = sorted(_text(q) for q in self.r.smembers(mr.queues_key()))
        pairs = [(name, q) for q in queues for name in mr.HISTOGRAMS]
        pipe = self.r.pipeline(transaction=False)
        for name, q in pairs:
            pipe.hgetall(mr.histogram_key(name, q))
        out = []
        for (name, q), raw in zip(pairs, pipe.execute(), strict=True):
            bounds = mr.HISTOGRAMS[name]
            values = {_text(k): v for k, v in (raw or {}).items()}
            counts = [int(values.get(str(i), 0)) for i in range(len(bounds) + 1)]
            total = sum(counts)
            out.append(HistogramStat(name, q, bounds, counts, float(values.get("sum", 0.0)), total))
        return out

    def close(self) -> None:
        if self._poller is not None:
            self._poller.stop()
        self.observer.close()
        self.broker.close()
        if self.r is not self.broker:
            self.r.close()


def _default_queues() -> list[str]:
    from mover.cli.main import default_queues

    return default_queues()


def _stream_limit(key: str) -> int | None:
    """The ``max_streams`` of a store key, from the configuration (None: not capped or
    unreadable). Only this number is read from a store's table: never its credentials."""
    from mover import config as config_mod
    from mover.errors import MoverError
    from mover.fleetstate import limits

    try:
        if key.startswith("store:"):
            options = store_table(key.removeprefix("store:"), config_mod.load())
        else:
            options = limits.limits_table().get(key)
        if not isinstance(options, dict):
            return None
        return limits.limit_from_options(key, options).max_streams
    except MoverError:
        return None
