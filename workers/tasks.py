"""Every Celery task of mover. Their names are public API, independent of this module's path:

``mover.submit`` (queue ``mover``; workers also consume ``celery``)
    args ``[{"source": URL, "destination": URL, "options": {...}}]``; options as every door
    takes them (:mod:`mover.options`): ``streams`` (int), ``chunk_size`` (int bytes or a size
    such as ``"8MiB"``), ``recursive`` (bool), ``include`` / ``exclude`` (globs).
    Validates, plans and enqueues the chunks on the worker side, and returns the job id. A bad
    request fails the task with a ``ValueError`` that says what is wrong and names the job
    record where the same error is kept (``mover status JOB``).
``mover.chunk.copy`` (queue ``mover.store.NAME`` or ``mover.<scheme>`` of the destination)
    args ``[job_id, item, chunk]``. Runs one chunk, records its receipt; the worker that
    completes an object's last chunk commits it. No result kept.
``mover.job.commit`` (queue ``mover``)
    args ``[job_id, item]``. Commits an object whose chunks are all done (objects with no
    chunk, and resumed jobs whose committer died). No result kept.

Exactly once, without chords: a chunk may run twice (redelivery after a lost worker); it
rewrites the same part and records the same receipt. ``chunk_done`` is a SADD + SCARD on the
item's set of done chunks, so the last chunk is seen by whoever completes the set, and
``claim_commit`` (a WATCH/MULTI state change ``running`` -> ``committing``) lets only one of
them commit. The commit verifies the whole object (``strategy.object_digest``) as the embedded
executor does. The claim is a lease (:mod:`mover.jobstores.leases`) the committing process
renews while it works; when it dies, a live worker's sweep (:func:`sweep`, every few seconds
from :mod:`mover.workers.health`) takes the expired lease over and commits again, and only the
lease's holder records the outcome.

Aborts: an abort that meets a dead store is recorded and retried by the same sweeps
(:mod:`mover.cleanup`).

Cancellation: each chunk reads the job state first and returns at once when the job is being
cancelled (queued chunks are dropped this way); while a chunk runs, a per-process watcher polls
the job and item states every ``MOVER_CANCEL_POLL_S`` (1 s) and sets the chunk's cancelled
event, which the strategy checks at each read. The object's write is aborted at once by the
first chunk that notices, and again when its last chunk settles (in case a chunk still running
elsewhere recreated something); then the job becomes ``cancelled``.

Leases: the same watcher renews the broker's lease of each running chunk (the score of its
delivery tag in kombu's ``unacked_index``), so a chunk that runs longer than the visibility
timeout is not handed to a second worker while the first is alive, and the timeout can stay
short enough for a dead worker's chunk to come back within about a minute.

Retries: a retryable error (``MoverError.retryable``: connection, time-out, 5xx, SlowDown)
is retried by Celery (``self.retry``) with exponential back-off and full jitter, at most
``MOVER_CHUNK_RETRIES`` (5) times; mover's own retry loop is not used here, so retries never
multiply. Other errors (403, 404, a checksum mismatch) fail the object at once and abort it.

Secrets: task arguments are ids and indexes; workers resolve stores and credentials from their
own environment and configuration. Log lines name the job, object and chunk, never a secret.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from mover import cleanup, lifecycle, retry
from mover.errors import Cancelled, MoverError, TransferError
from mover.executors import celery as fleet_exec
from mover.executors.celery_app import broker_url, transport_options
from mover.executors.names import CHUNK_TASK, COMMIT_TASK, SUBMIT_TASK
from mover.fleetstate import limits
from mover.fleetstate.observer import record_chunk
from mover.jobs import CANCELLED, COMMITTING, DONE, FAILED, PENDING, RUNNING, Job, new_job_id
from mover.jobstores import leases
from mover.jobstores.redis import CANCELLING, RedisJobStore, _loads, client_from_url
from mover.lifecycle import Planned, error_text
from mover.motion import Chunk, ChunkContext
from mover.options import NAMES as OPTION_NAMES
from mover.options import copy_request
from mover.provider import PartReceipt
from mover.redact import redact
from mover.transfer import Request, check_fleet, prepare

log = logging.getLogger("mover.worker")

#: Retries of a chunk after a retryable error (``MOVER_CHUNK_RETRIES``).
CHUNK_RETRIES = int(os.environ.get("MOVER_CHUNK_RETRIES") or 5)
#: Largest back-off between retries, seconds.
RETRY_BACKOFF_MAX_S = 60
#: The one retry policy (:mod:`mover.retry`), with the fleet's numbers: Celery re-sends the
#: chunk after ``next_delay`` (1 s, then up to 2, 4 ... 60 s, full jitter).
FLEET_RETRY = retry.RetryPolicy(attempts=CHUNK_RETRIES + 1, base_s=1.0, cap_s=RETRY_BACKOFF_MAX_S)
#: Seconds between two looks at the job state while a chunk runs (``MOVER_CANCEL_POLL_S``).
CANCEL_POLL_S = float(os.environ.get("MOVER_CANCEL_POLL_S") or 1.0)
#: Seconds a chunk may run before it is interrupted and retried (``MOVER_CHUNK_TIME_LIMIT_S``,
#: prefork pool only). Leases are renewed while a chunk runs, so without this a chunk stuck
#: on a dead connection in a live worker would never be handed to anyone else.
CHUNK_TIME_LIMIT_S = float(os.environ.get("MOVER_CHUNK_TIME_LIMIT_S") or 3600)
_STOP_JOB = (CANCELLING, CANCELLED, FAILED)


# -- per-process state (created lazily: prefork children each get their own) ----------------

_pid_state: dict[str, Any] = {}
#: Guards the making of ``_pid_state``'s parts: a batch's threads may ask at once. Re-entrant:
#: the watcher is made with the store. A child forked while another thread held it makes its
#: state afresh (its pid differs) under a lock of its own.
_pid_lock = threading.RLock()
_pid_lock_pid = os.getpid()


def _state_lock() -> threading.RLock:
    global _pid_lock, _pid_lock_pid
    if _pid_lock_pid != os.getpid():  # a prefork child: the parent's lock may be held
        _pid_lock, _pid_lock_pid = threading.RLock(), os.getpid()
    return _pid_lock


def per_process(name: str, make: Callable[[], Any]) -> Any:
    """This process's ``name``, made by ``make`` the first time any of its threads asks (a
    prefork child forgets what its parent made: its own connections, threads, caches)."""
    with _state_lock():
        if _pid_state.get("pid") != os.getpid():
            _pid_state.clear()
            _pid_state["pid"] = os.getpid()
        if name not in _pid_state:
            _pid_state[name] = make()
        return _pid_state[name]


def _jobs() -> RedisJobStore:
    """This process's job store (one Redis connection pool per process)."""
    return per_process("jobs", RedisJobStore)


@dataclass
class _Watched:
    job_id: str
    item: int
    tag: str | None
    event: threading.Event = field(default_factory=threading.Event)


class _Watcher:
    """One thread per worker process: sets the cancelled event of running chunks whose job
    is being cancelled (or whose object failed), renews their broker leases, and renews the
    commit leases of the commits this process runs (:mod:`mover.jobstores.leases`)."""

    def __init__(self, jobs: RedisJobStore) -> None:
        self.jobs = jobs
        self._lock = threading.Lock()
        self._watched: dict[int, _Watched] = {}
        self._commits: dict[int, tuple[str, int, str]] = {}
        self._seq = 0
        opts = transport_options()
        self._lease_every_s = max(1.0, opts["visibility_timeout"] / 3)
        self._commit_every_s = max(0.5, leases.LEASE_S / 3)
        self._broker = client_from_url(broker_url()) if broker_url().startswith("redis") else None
        threading.Thread(target=self._loop, name="mover-watcher", daemon=True).start()

    def _add(self, table: dict[int, Any], entry: Any) -> int:
        with self._lock:
            self._seq += 1
            table[self._seq] = entry
            return self._seq

    def _remove(self, table: dict[int, Any], key: int) -> None:
        with self._lock:
            table.pop(key, None)

    @contextlib.contextmanager
    def watch(self, job_id: str, item: int, tag: str | None) -> Iterator[threading.Event]:
        entry = _Watched(job_id, item, tag)
        key = self._add(self._watched, entry)
        try:
            yield entry.event
        finally:
            self._remove(self._watched, key)

    @contextlib.contextmanager
    def keep_lease(self, job_id: str, item: int, owner: str) -> Iterator[None]:
        """Renew ``owner``'s commit lease of ``item`` while the block runs."""
        key = self._add(self._commits, (job_id, item, owner))
        try:
            yield
        finally:
            self._remove(self._commits, key)

    def _loop(self) -> None:
        last_lease = last_commit = time.monotonic()
        while True:
            time.sleep(min(CANCEL_POLL_S, self._commit_every_s))
            with self._lock:
                entries = list(self._watched.values())
                commits = list(self._commits.values())
            try:
                if commits and time.monotonic() - last_commit >= self._commit_every_s:
                    last_commit = time.monotonic()
                    self._renew_commits(commits)
                if entries:
                    self._poll(entries)
                if entries and time.monotonic() - last_lease > self._lease_every_s:
                    last_lease = time.monotonic()
                    self._renew_deliveries(entries)
            except Exception as exc:  # a Redis hiccup must not kill the watcher
                log.warning("watcher: %s", exc)

    def _renew_commits(self, commits: list[tuple[str, int, str]]) -> None:
        for job_id, item, owner in commits:
            if not leases.renew(self.jobs, job_id, item, owner):
                log.warning("job %s object %d: commit lease lost (taken over?)", job_id, item)

    def _poll(self, entries: list[_Watched]) -> None:
        pipe = self.jobs.r.pipeline(transaction=False)
        for e in entries:
            pipe.hget(self.jobs.job_key(e.job_id), "state")
            pipe.hget(self.jobs.item_key(e.job_id, e.item), "state")
        states = pipe.execute()
        for n, e in enumerate(entries):
            job_state, item_state = states[2 * n], states[2 * n + 1]
            job_state, item_state = _loads(job_state), _loads(item_state)
            if job_state in _STOP_JOB or item_state in (FAILED, CANCELLED):
                e.event.set()

    def _renew_deliveries(self, entries: list[_Watched]) -> None:
        if self._broker is None:
            return
        now = time.time()
        tags = {e.tag: now for e in entries if e.tag}
        if tags:
            # XX: only renew leases that still exist (never resurrect an acked one).
            self._broker.zadd("unacked_index", tags, xx=True)


def _watcher() -> _Watcher:
    """This process's watcher thread (made once, whichever thread asks first)."""
    return per_process("watcher", lambda: _Watcher(_jobs()))


@dataclass
class _Prepared(Planned):
    """An item's plan as this process caches it: by chunk index, with its plan token."""

    chunks: dict[int, Chunk] = field(default_factory=dict)
    stamp: str = ""


def _prepared(jobs: RedisJobStore, job_id: str, item: int) -> tuple[str | None, _Prepared | None]:
    """The item's state and its strategy, plan and endpoints, cached per process while the
    plan does not change: the item's ``planned`` token changes with every (re)plan."""
    state_raw, stamp_raw = jobs.r.hmget(jobs.item_key(job_id, item), ["state", "planned"])
    state = _loads(state_raw)
    stamp = stamp_raw.decode() if stamp_raw else ""
    cache: dict[tuple[str, int], _Prepared] = per_process("plans", dict)
    hit = cache.get((job_id, item))
    if hit is not None and stamp and hit.stamp == stamp:
        return state, hit
    record = jobs.get_item(job_id, item, with_chunks=False) if state else None
    planned = lifecycle.reopen(record) if record is not None else None
    if planned is None:
        return state, None
    prepared = _Prepared(
        planned.strategy,
        planned.plan,
        planned.source,
        planned.destination,
        {c.index: c for c in planned.plan.chunks},
        stamp,
    )
    if len(cache) > 256:
        cache.clear()
    cache[(job_id, item)] = prepared
    return state, prepared


def _abort(jobs: RedisJobStore, job_id: str, item: int, prepared: Planned | None) -> None:
    """Remove the object's partial data; a store that fails gets the abort retried later
    (:mod:`mover.cleanup`)."""
    if prepared is None:
        return
    p = prepared

    def urls() -> tuple[str, str]:
        record = jobs.get_item(job_id, item, with_chunks=False)
        return record.source, record.destination

    cleanup.abort_or_defer(jobs, job_id, item, urls, p.strategy, p.source, p.destination, p.plan)


def _item_settled(jobs: RedisJobStore, job_id: str, item: int, prepared: Planned | None) -> None:
    """Every chunk of a failed or cancelled object has settled: clean once more, then count
    the object final (and finish the job if it was the last)."""
    _abort(jobs, job_id, item, prepared)
    if jobs.item_final(job_id, item):
        log.info("job %s %s", job_id, fleet_exec.close_job(jobs, job_id))


def _give_up(
    jobs: RedisJobStore,
    job_id: str,
    item: int,
    chunk: int,
    prepared: Planned | None,
    error: BaseException | str | None,
) -> None:
    """This chunk will not run (job cancelled, object failed): stop the object once, settle."""
    job_state = jobs.job_state(job_id)
    target = CANCELLED if job_state in (CANCELLING, CANCELLED) else FAILED
    message = (
        lifecycle.CANCELLED_TEXT
        if target == CANCELLED
        else (error_text(error) if isinstance(error, BaseException) else (error or "failed"))
    )
    if jobs.transition(jobs.item_key(job_id, item), (PENDING, RUNNING), target, error=message):
        log.warning(
            "job %s object %d chunk %d: object %s: %s", job_id, item, chunk, target, message
        )
        _abort(jobs, job_id, item, prepared)
    if jobs.settle(job_id, item, chunk) == 0:
        state = jobs.item_state(job_id, item)
        if state in (FAILED, CANCELLED):
            _item_settled(jobs, job_id, item, prepared)


def _commit(jobs: RedisJobStore, job_id: str, item: int) -> None:
    """Commit an object whose chunks are all done, if this caller wins the claim."""
    owner = leases.new_owner()
    if jobs.claim_commit(job_id, item, owner=owner):
        _run_commit(jobs, job_id, item, owner)


def _run_commit(jobs: RedisJobStore, job_id: str, item: int, owner: str) -> None:
    """Run the commit of ``item`` whose lease ``owner`` holds (a fresh claim or a takeover);
    the outcome is recorded only while ``owner`` still holds the lease."""
    _, prepared = _prepared(jobs, job_id, item)
    if prepared is None:
        leases.finish(jobs, job_id, item, owner, state=FAILED, error="its plan is gone")
        return
    if jobs.job_state(job_id) in (CANCELLING, CANCELLED):
        if leases.finish(jobs, job_id, item, owner, state=CANCELLED, error="cancelled"):
            _item_settled(jobs, job_id, item, prepared)
        return
    with _watcher().keep_lease(job_id, item, owner):
        try:
            record = jobs.get_item(job_id, item)
            receipts = [PartReceipt.from_dict(c.receipt) for c in record.chunks if c.receipt]
            # Each object is durable before it is recorded done: a worker has no job-wide
            # batch (StoreProvider.begin_batch), so what a commit deferred is flushed here.
            fields = lifecycle.commit(prepared, receipts, flush=True)
            if not leases.finish(jobs, job_id, item, owner, **fields):
                log.warning("job %s object %d: commit lease lost; not recorded", job_id, item)
                return
            log.info(
                "job %s object %d committed (%d parts, %s)",
                job_id,
                item,
                len(receipts),
                fields["digest"],
            )
        except Exception as exc:
            _, message = lifecycle.failure(exc, prepared.plan)
            log.warning("job %s object %d: commit failed: %s", job_id, item, message)
            if not leases.finish(jobs, job_id, item, owner, state=FAILED, error=message):
                return  # a new owner of the lease decides
            _abort(jobs, job_id, item, prepared)
    if jobs.item_final(job_id, item):
        log.info("job %s %s", job_id, fleet_exec.close_job(jobs, job_id))


def _take_over_commits() -> None:
    """Finish commits whose committer died (their lease expired): one sweeper takes each."""
    jobs = _jobs()
    for job_id, item in leases.expired(jobs):
        owner = leases.new_owner()
        if leases.take_over(jobs, job_id, item, owner):
            log.warning(
                "job %s object %d: its commit lease expired (committer dead?); taking it over",
                job_id,
                item,
            )
            _run_commit(jobs, job_id, item, owner)


def _chunk_failed(
    task: Task,
    jobs: RedisJobStore,
    job_id: str,
    item: int,
    chunk: int,
    prepared: Planned,
    exc: Exception,
    queue: str,
    seen: dict[str, Any],
) -> None:
    """An attempt at a chunk raised ``exc``: retry it through Celery (raises ``Retry``: the
    chunk's own task is sent again after its back-off) or give the object up. ``task`` is the
    chunk's task with its request (a batch entry runs under a request of its own)."""
    now_state = jobs.item_state(job_id, item)
    if now_state in (DONE, COMMITTING):
        return  # the object was committed by another delivery meanwhile
    if isinstance(exc, Cancelled) or jobs.job_state(job_id) in _STOP_JOB:
        _give_up(jobs, job_id, item, chunk, prepared, exc)
        return
    if isinstance(exc, SoftTimeLimitExceeded):  # a stuck chunk: run it again
        exc = TransferError(f"chunk ran over {CHUNK_TIME_LIMIT_S:g} s", retryable=True)
    retryable = retry.is_retryable(exc)
    jobs.chunk_failed(job_id, item, chunk, error_text(exc))
    record_chunk(jobs.r, queue, 0, ok=False, error=exc, retryable=retryable, **seen)
    countdown = FLEET_RETRY.next_delay(exc, task.request.retries)
    if countdown is not None:
        log.warning(
            "job %s object %d chunk %d: retry %d in %.1f s after %s",
            job_id,
            item,
            chunk,
            task.request.retries + 1,
            countdown,
            error_text(exc),
        )
        raise task.retry(exc=exc, countdown=countdown) from None
    log.warning("job %s object %d chunk %d failed: %s", job_id, item, chunk, error_text(exc))
    _give_up(jobs, job_id, item, chunk, prepared, exc)


def _after_done(
    jobs: RedisJobStore,
    job_id: str,
    item: int,
    chunk: int,
    prepared: Planned | None,
    remaining: int,
) -> None:
    """A chunk was recorded done with ``remaining`` chunks of its object left: the last one
    commits; otherwise, if the object failed or was cancelled while this chunk ran and this
    chunk was the last to settle, nobody else is left to clean up and count the object final."""
    if remaining == 0:
        _commit(jobs, job_id, item)
        return
    state = jobs.item_state(job_id, item)
    if state in (FAILED, CANCELLED) and jobs.settle(job_id, item, chunk) == 0:
        _item_settled(jobs, job_id, item, prepared)


# -- tasks ---------------------------------------------------------------------------------


def chunk_copy(self: Task, job_id: str, item: int, chunk: int) -> None:
    """Run chunk ``chunk`` of object ``item`` of job ``job_id`` (see the module docstring)."""
    jobs = _jobs()
    job_state = jobs.job_state(job_id)
    if job_state is None:
        log.warning("job %s chunk %d/%d: no such job (expired?); dropped", job_id, item, chunk)
        return
    state, prepared = _prepared(jobs, job_id, item)
    if state in (DONE, COMMITTING):
        return  # a second delivery of a chunk of an object already committed
    if job_state in _STOP_JOB or state != RUNNING or prepared is None:
        _give_up(jobs, job_id, item, chunk, prepared, f"object is {state}")
        return
    spec = prepared.chunks.get(chunk)
    if spec is None:
        _give_up(jobs, job_id, item, chunk, prepared, f"chunk {chunk} is not in the plan")
        return
    if jobs.is_chunk_done(job_id, item, chunk):
        # Delivered again after it was done (its worker died before the ack, or a retry was
        # restored): do not move the bytes again, only make sure the object gets committed.
        log.info("job %s object %d chunk %d: already done", job_id, item, chunk)
        if jobs.chunks_left(job_id, item) == 0:
            _commit(jobs, job_id, item)
        return
    tag = (self.request.properties or {}).get("delivery_tag")
    queue = (self.request.delivery_info or {}).get("routing_key") or "mover"
    try:  # per-store limits (workers/limits.py): a store at its cap sends the chunk back
        lease = limits.acquire(jobs.r, (prepared.source, prepared.destination), spec.length or 0)
    except limits.LeaseUnavailable as busy:
        self.request.retries -= 1  # waiting for a store is not a failed attempt
        raise self.retry(countdown=busy.retry_after_s) from None
    started = time.monotonic()
    seen = {"job": job_id, "endpoints": (prepared.source, prepared.destination), "started": started}
    try:
        with lease, _watcher().watch(job_id, item, tag) as cancelled:
            ctx = ChunkContext(None, cancelled)
            ctx.check()
            receipt = prepared.run_chunk(spec, ctx)
    except Exception as exc:
        _chunk_failed(self, jobs, job_id, item, chunk, prepared, exc, queue, seen)
        return
    remaining = jobs.chunk_done(job_id, item, chunk, receipt.to_dict())
    record_chunk(jobs.r, queue, receipt.size, ok=True, **seen)
    log.info(
        "job %s object %d chunk %d done: %d bytes in %.2f s%s",
        job_id,
        item,
        chunk,
        receipt.size,
        time.monotonic() - started,
        " (redelivered)" if (self.request.delivery_info or {}).get("redelivered") else "",
    )
    _after_done(jobs, job_id, item, chunk, prepared, remaining)


def job_commit(job_id: str, item: int) -> None:
    """Commit object ``item`` of job ``job_id`` if all its chunks are done."""
    jobs = _jobs()
    record = jobs.get_item(job_id, item)
    if record.state != RUNNING:
        return
    if all(c.state == DONE for c in record.chunks):
        _commit(jobs, job_id, item)


def _parse_request(request: Any) -> tuple[str, str, dict[str, Any]]:
    """Check the shape of a ``mover.submit`` request; raise ValueError saying what is wrong.

    One object ``{"source", "destination", "options": {...}}``; the options may also stand
    beside source and destination (``{"source", "destination", "streams": 8}``), as keyword
    arguments of a plain Celery client do."""
    if not isinstance(request, dict):
        raise ValueError('expected {"source": ..., "destination": ..., "options": {...}}')
    unknown = set(request) - {"source", "destination", "options"} - set(OPTION_NAMES)
    if unknown:
        raise ValueError(
            f"unknown request fields {sorted(unknown)} (known: source, destination, options, "
            f"{', '.join(OPTION_NAMES)})"
        )
    source, destination = request.get("source"), request.get("destination")
    if not isinstance(source, str) or not source:
        raise ValueError("request needs a source (a URL or store:NAME/key)")
    if not isinstance(destination, str) or not destination:
        raise ValueError("request needs a destination (a URL or store:NAME/key)")
    options = request.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError("options must be an object")
    beside = {k: v for k, v in request.items() if k in OPTION_NAMES}
    both = sorted(set(beside) & set(options))
    if both:
        raise ValueError(f"option {both[0]!r} given twice (in options and beside them)")
    return source, destination, {**options, **beside}


#: How the record of a refused ``mover.submit`` request begins.
BAD_REQUEST = "bad request: "


def submit(self: Task, request: dict[str, Any] | None = None, **fields: Any) -> str:
    """Validate, plan and enqueue a copy on the worker side; return the job id.

    The request is one object (``args=[{...}]``) or keyword arguments (``kwargs={...}``). A
    redelivered task (its worker killed before the ack) returns the job its first delivery
    made: one request, one job (:meth:`RedisJobStore.claim_submit`, by the task's id)."""
    jobs = _jobs()
    source = destination = "?"
    job_id = new_job_id()
    if self.request.id:
        job_id = jobs.claim_submit(self.request.id, job_id)
        if jobs.has(job_id):
            log.info("mover.submit task %s delivered again: job %s", self.request.id, job_id)
            made = jobs.get(job_id)
            if made.error and made.error.startswith(BAD_REQUEST):
                raise ValueError(
                    f"mover.submit: {made.error.removeprefix(BAD_REQUEST)} (job {job_id})"
                )
            return job_id
    try:
        if request is not None and fields:
            raise ValueError("give the request as one object or as keyword arguments, not both")
        source, destination, raw = _parse_request(fields if request is None else request)
        options, recursive, filters = copy_request(raw)  # the one check of every door
        check_fleet(source, destination, recursive)
        job = prepare(Request(source, destination, recursive, options, filters))
        job.id = job_id
    except (MoverError, ValueError, TypeError) as exc:
        message = error_text(exc) if isinstance(exc, MoverError) else str(exc)
        failed = Job(
            id=job_id,
            source=redact(str(source)),
            destination=redact(str(destination)),
            state=FAILED,
            executor="celery",
            error=f"{BAD_REQUEST}{message}",
            finished=time.time(),
        )
        jobs.create(failed)
        log.warning("mover.submit refused (job %s): %s", failed.id, message)
        raise ValueError(f"mover.submit: {message} (job {failed.id})") from None
    try:
        fleet_exec.start(job, jobs, self.app)
    except MoverError as exc:  # the broker failed mid-publish: one line, the job resumable
        log.warning("mover.submit: %s", exc.message)
        raise ValueError(f"mover.submit: {exc.message}") from None
    log.info("job %s submitted by task %s: %d object(s)", job.id, self.request.id, len(job.items))
    return job.id


# -- the catalogue's operations (templates, snapshots, stores) ------------------------------


def _catalogue_task(app: Celery, name: str) -> None:
    """Register ``name`` as a task that runs the catalogue operation with a JSON payload.

    The operation runs in the worker that takes the task (its copies with the embedded
    executor, its credentials from the worker's own catalogue or configuration): the task
    message holds names and locations only.
    """

    def run(payload: dict[str, Any] | None = None) -> Any:
        from mover.catalogue import service

        try:
            return service.run(name, payload)
        except MoverError as exc:
            log.warning("%s refused: %s", name, error_text(exc))
            raise ValueError(f"{name}: {error_text(exc)}") from None

    run.__name__ = run.__qualname__ = name.replace(".", "_")
    run.__doc__ = f"The catalogue operation {name}, payload a JSON object."
    app.task(name=name)(run)


def register(app: Celery) -> None:
    """Register every task of this module on ``app`` (the worker's, :mod:`mover.workers.app`),
    under its public name (:mod:`mover.executors.names`)."""
    from mover.catalogue.service import OPERATIONS

    app.task(
        name=CHUNK_TASK,
        bind=True,
        ignore_result=True,
        max_retries=CHUNK_RETRIES,
        soft_time_limit=CHUNK_TIME_LIMIT_S,
        time_limit=CHUNK_TIME_LIMIT_S + 60,
    )(chunk_copy)
    app.task(name=COMMIT_TASK, ignore_result=True)(job_commit)
    app.task(name=SUBMIT_TASK, bind=True)(submit)
    for name in OPERATIONS:
        _catalogue_task(app, name)


def sweep() -> None:
    """Periodic work of a healthy worker's main process (see :mod:`mover.workers.health`):
    take over commits whose lease expired, retry the aborts that met a dead store, and publish
    again the work of jobs whose messages the broker lost (:mod:`mover.workers.rescue`)."""
    from mover.workers import rescue

    _take_over_commits()
    cleanup.retry_due(_jobs())
    rescue.sweep_lost(_jobs())
