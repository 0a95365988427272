"""The celery executor: plan in the caller, publish one task per chunk, let the fleet run them.

``mover copy`` with a broker configured (``MOVER_BROKER_URL`` or ``--executor celery``) comes
here instead of the embedded executor. Validation and planning happen in the caller, exactly as
embedded (:func:`mover.transfer.prepare`, then :func:`mover.transfer.plan_item` for
each object), so that bad input fails at once with nothing enqueued. The job record goes to
Redis (:class:`~mover.jobstores.redis.RedisJobStore`), then every chunk is published as a
``mover.chunk.copy`` task through ONE producer (one connection for the whole batch: about
3,000-4,000 tasks/s here, against ~1,300/s for one ``apply_async`` each).

Workers (:mod:`mover.workers.tasks`) run the chunks and finish the job without chords: the store's
atomic chunk count decides the last chunk, ``claim_commit`` lets exactly one worker commit.
The caller may :func:`follow` the job by polling its record (``--wait``), or return at once.

Routing: a chunk goes to the queue of its destination (:func:`queue_for`): ``mover.store.NAME``
for a configured store, ``mover.<scheme>`` otherwise (``mover.s3``, ``mover.file``). Task
arguments are the job id and indexes only: no URL, no credential, ever.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Unpack

from mover import cleanup, lifecycle, transfer
from mover.errors import BrokerError, JobStateError, MoverError, UsageError
from mover.executors.contract import Executor, Follow
from mover.executors.names import (  # noqa: F401  (the fleet's names, re-exported)
    BATCH_MAX_BYTES,
    BATCH_OBJECTS,
    BATCH_TASK,
    CHUNK_TASK,
    COMMIT_TASK,
    DEFAULT_QUEUE,
    SUBMIT_TASK,
    queue_for,
)
from mover.jobs import (
    CANCELLED,
    COMMITTING,
    DONE,
    FAILED,
    FINAL,
    PENDING,
    RUNNING,
    Item,
    Job,
    JobStore,
)
from mover.jobstores import leases
from mover.jobstores.redis import CANCELLING, RedisJobStore
from mover.options import CopyOptions, request_for

if TYPE_CHECKING:
    from celery import Celery

    from mover.repository.runner import Runner

log = logging.getLogger("mover.executor.celery")


def get_app() -> Celery:
    """The app that publishes to the fleet of the current ``MOVER_BROKER_URL``
    (:func:`mover.executors.celery_app.client_app`; workers build their own from the same
    settings, :mod:`mover.workers.app`). Imported here only: embedded runs never load Celery."""
    from mover.executors.celery_app import client_app

    return client_app()


def plan_job(job: Job, jobs: RedisJobStore) -> list[Item]:
    """Plan every item not done; items that cannot be planned are recorded failed. Returns
    the items planned (to publish)."""
    options = lifecycle.options_of(job)
    return [
        item
        for item in job.items
        if item.state != DONE and lifecycle.plan_or_fail(job.id, item, options) is not None
    ]


def _batch(producer: Any) -> contextlib.AbstractContextManager[Any]:
    """kombu's publish batch where it exists (kombu >= 5.7 on Redis: LPUSHes go in
    pipelines of 1,000 instead of one round trip each); a no-op elsewhere."""
    batch = getattr(producer, "batch", None)
    return batch(max_size=1000) if batch is not None else contextlib.nullcontext()


def publish(
    jobs: RedisJobStore,
    job_id: str,
    work: Iterable[tuple[Item, list[int]]],
    app: Celery | None = None,
) -> int:
    """Publish ``mover.chunk.copy`` for each (item, chunk indexes), or ``mover.job.commit``
    for an item with no chunk left to run; one producer for the whole batch. Returns the
    number of tasks sent.

    A broker that fails the publish (Redis restarted mid-batch: kombu's ``BatchPublishError``,
    a connection error) raises :class:`~mover.errors.BrokerError`: the job is recorded and
    stays resumable (``mover resume`` re-enqueues every chunk not done; a chunk sent twice
    runs once, see :mod:`mover.workers.tasks`), and the message says so."""
    try:
        return _send_tasks(job_id, work, app or get_app())
    except Exception as exc:
        if not is_broker_error(exc):
            raise
        raise _publish_failed(jobs, job_id, exc) from exc


def is_broker_error(exc: BaseException) -> bool:
    """An error of the broker's client libraries (Redis, kombu, py-amqp for RabbitMQ) or of
    the connection."""
    import amqp.exceptions
    import kombu.exceptions
    import redis

    if isinstance(
        exc,
        (redis.RedisError, kombu.exceptions.KombuError, amqp.exceptions.AMQPError, ConnectionError),
    ):
        return True
    # kombu's Redis transport, its connection torn down under it by a broker that died, fails
    # on the missing client (``'NoneType' object has no attribute 'client'``): a broker error.
    return isinstance(exc, AttributeError) and _raised_in(exc, ("kombu.", "redis.", "celery."))


def _raised_in(exc: BaseException, packages: tuple[str, ...]) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is in one of ``packages``."""
    tb, module = exc.__traceback__, ""
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return module.startswith(packages)


def _publish_failed(jobs: RedisJobStore, job_id: str, exc: BaseException) -> BrokerError:
    """Record (if Redis answers) and word a failed publish: the job is kept, resumable."""
    detail = str(exc).splitlines()[0][:160] if str(exc) else ""
    cause = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    what = f"the broker failed while job {job_id} was being enqueued ({cause})"
    with contextlib.suppress(Exception):
        jobs.check(timeout_s=2.0)
        jobs.update_job(job_id, error=f"{what}; resume it with `mover resume {job_id}`")
    error = BrokerError(
        f"{what}; the job is kept and resumable: run `mover resume {job_id}` once Redis "
        "answers (chunks already sent run once)"
    )
    error.job_id = job_id  # type: ignore[attr-defined]  (for a caller that resumes itself)
    error.transient = _transient(exc)  # type: ignore[attr-defined]
    return error


def _transient(exc: BaseException) -> bool:
    """Whether a failed publish was the broker going away (a restart, a dropped connection:
    worth waiting for), not the broker answering no (a permission, a password)."""
    import redis

    seen: BaseException | None = exc
    chain = []
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(e, (redis.ResponseError, redis.AuthenticationError)) for e in chain):
        return False
    return any(
        isinstance(e, (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError))
        or (isinstance(e, AttributeError) and _raised_in(e, ("kombu.", "redis.")))
        for e in chain
    )


def resume_when_back(
    job_id: str,
    jobs: RedisJobStore,
    within_s: float = 120.0,
    app: Celery | None = None,
) -> Job:
    """Resume job ``job_id`` (its enqueueing failed: :func:`_publish_failed`) as soon as the
    broker and Redis answer again, trying for ``within_s`` seconds: what a caller that waits
    for its job does instead of giving up on a broker restart. Chunks sent before the failure
    may run twice; they are idempotent. Raises the last BrokerError when time is up."""
    deadline = time.monotonic() + within_s
    pause = 0.5
    while True:
        try:
            jobs.check(timeout_s=2.0)
            job = jobs.get(job_id)
            if job.state == DONE:  # every chunk had gone out before the failure
                return job
            return resume(job_id, jobs, app)
        except MoverError as exc:
            if not exc.retryable or time.monotonic() + pause > deadline:
                raise
        except Exception as exc:
            if not is_broker_error(exc):
                raise
            if time.monotonic() + pause > deadline:
                raise _publish_failed(jobs, job_id, exc) from None
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def _batchable(item: Item, chunks: list[int]) -> bool:
    """A small object moved by one chunk: it may share a ``mover.batch.copy`` task."""
    return (
        len(chunks) == 1
        and len(item.chunks) == 1
        and item.size is not None
        and item.size <= BATCH_MAX_BYTES
    )


#: The longest ``argsrepr`` header a message gets (Celery's own limit).
ARGSREPR_MAX = 1024


def _send(app: Celery, producer: Any, name: str, args: tuple[Any, ...], queue: str) -> None:
    """Publish task ``name`` with ``args`` (ids and indexes only) on ``queue``.

    ``argsrepr`` is given, not left to Celery: its ``saferepr`` walks the arguments in Python
    for every message, a tenth of the publish time of a 10,000-chunk job; ``repr`` of ids and
    integers says the same. The rescue sweep finds a job's messages by the id in it."""
    app.send_task(
        name,
        args=args,
        queue=queue,
        producer=producer,
        ignore_result=True,
        argsrepr=repr(args)[:ARGSREPR_MAX],
        kwargsrepr="{}",
    )


def _send_tasks(job_id: str, work: Iterable[tuple[Item, list[int]]], app: Celery) -> int:
    sent = 0
    batches: dict[str, list[list[int]]] = {}

    def send_batch(queue: str, entries: list[list[int]]) -> None:
        if len(entries) == 1:  # alone: the chunk's own task
            _send(app, producer, CHUNK_TASK, (job_id, *entries[0]), queue)
        else:
            _send(app, producer, BATCH_TASK, (job_id, entries), queue)

    with app.producer_or_acquire() as producer, _batch(producer):
        for item, chunks in work:
            queue = queue_for(item.destination)
            if _batchable(item, chunks):
                entries = batches.setdefault(queue, [])
                entries.append([item.index, chunks[0]])
                if len(entries) >= BATCH_OBJECTS:
                    send_batch(queue, entries)
                    sent += 1
                    batches[queue] = []
                continue
            if not chunks:
                _send(app, producer, COMMIT_TASK, (job_id, item.index), DEFAULT_QUEUE)
                sent += 1
                continue
            for index in chunks:
                _send(app, producer, CHUNK_TASK, (job_id, item.index, index), queue)
                sent += 1
        for queue, entries in batches.items():
            if entries:
                send_batch(queue, entries)
                sent += 1
    return sent


def close_job(jobs: RedisJobStore, job_id: str) -> str:
    """Set the job's final state from its items' (once every item is final) and return it;
    reads only the items' states and errors (a worker closes jobs of thousands of objects)."""
    job = jobs.outcomes(job_id)
    state, error = lifecycle.final_state(job, cancelled=job.state in (CANCELLING, CANCELLED))
    jobs.update_job(job_id, state=state, error=error, finished=time.time())
    return state


def finish_job(jobs: RedisJobStore, job_id: str) -> Job:
    """:func:`close_job`, then the whole job as recorded (for a caller that shows it)."""
    close_job(jobs, job_id)
    return jobs.get(job_id)


def start(job: Job, jobs: RedisJobStore, app: Celery | None = None) -> Job:
    """Plan a prepared job, record it and publish its chunks. Returns the job as recorded."""
    job.executor = "celery"
    job.options["recursive"] = job.recursive
    job.state = RUNNING
    planned = plan_job(job, jobs)
    try:
        jobs.create(job)
    except Exception as exc:
        if not is_broker_error(exc):
            raise
        raise BrokerError(
            f"cannot record job {job.id} in Redis ({type(exc).__name__}); nothing was "
            "enqueued: run the copy again once Redis answers"
        ) from exc
    for item in job.items:
        if item.state in FINAL:
            jobs.item_final(job.id, item.index)
    if planned:
        publish(jobs, job.id, [(i, [c.index for c in i.chunks]) for i in planned], app)
    elif job.items:
        finish_job(jobs, job.id)
    else:
        jobs.update_job(job.id, state=DONE, finished=time.time())
    return job


def submit(
    source: str,
    destination: str,
    *,
    jobs: RedisJobStore | None = None,
    app: Celery | None = None,
    **options: Unpack[CopyOptions],
) -> Job:
    """Validate, plan, record and publish a copy; return the job (running on the fleet).
    ``options`` as :mod:`mover.options` checks them (``include`` / ``exclude`` select a
    recursive copy's objects here, before publishing)."""
    return CeleryExecutor(jobs, app).submit(request_for(source, destination, options))


def follow(
    job_id: str,
    jobs: RedisJobStore,
    on_progress: Callable[[int], None] | None = None,
    timeout_s: float | None = None,
    poll_s: float = 0.1,
    on_notice: Callable[[str], None] | None = None,
) -> Job:
    """Poll the job record until the job is final; report bytes done as they grow.

    Each poll reads two hash fields, so a tenth of a second costs Redis nothing and keeps
    ``--wait`` from adding half a second to a short job. With ``on_notice``, the follower
    also says (one line per change) when the job waits for a worker on its queues or for
    Redis (:mod:`mover.executors.waiting`), and keeps following: waiting is a state, not a
    failure.

    Raises TimeoutError after ``timeout_s`` (the job keeps running on the fleet)."""
    import redis

    from mover.executors.waiting import WorkerWatch

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    job_id = jobs.resolve(job_id)
    watch = WorkerWatch(jobs, job_id, on_notice) if on_notice is not None else None
    seen = 0
    while True:
        try:
            # Two hash fields per poll, not the whole record: a job may have 10,000 chunks.
            state, done = jobs.progress(job_id)
            if on_progress is not None and done > seen:
                on_progress(done - seen)
                seen = done
            if state in FINAL:
                return jobs.finished(job_id)
            if watch is not None:
                watch.check()
        except redis.RedisError as exc:
            if watch is None:
                raise
            watch.unreachable(exc)
            state = None
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {state} after {timeout_s} s")
        time.sleep(poll_s)


def cancel(job_id: str, jobs: RedisJobStore, wait_s: float | None = 30.0) -> Job:
    """Cancel a job on the fleet: state ``cancelling``; queued chunks return without work,
    running ones stop at their next read, workers abort the writes and set ``cancelled``.

    With ``wait_s``, wait that long for the workers; if they have not finished by then (no
    worker listening, chunks held by a dead worker), abort the unfinished objects from here
    and set the job cancelled."""
    jid = jobs.resolve(job_id)
    if not jobs.transition(jobs.job_key(jid), (PENDING, RUNNING), CANCELLING):
        job = jobs.get(jid)
        if job.state in FINAL:
            raise JobStateError(f"job {jid} is already {job.state}")
    if wait_s is None:
        return jobs.get(jid)
    try:
        job = follow(jid, jobs, timeout_s=wait_s, poll_s=0.2)
    except TimeoutError:
        job = _cancel_from_here(jobs, jid)
    # Aborts that met a dead store (here or on a worker): try them again now.
    cleanup.retry_job(jobs, jid)
    return job


def _cancel_from_here(jobs: RedisJobStore, jid: str) -> Job:
    """The workers did not finish the cancel in time: abort what is unfinished from here."""
    job = jobs.get(jid)
    for item in job.items:
        if item.state in FINAL or not item.plan or not item.strategy:
            continue
        try:
            p = lifecycle.reopen(item)
        except MoverError as exc:
            log.warning("job %s object %d: cannot abort: %s", jid, item.index, exc.message)
        else:
            assert p is not None
            cleanup.abort_or_defer(
                jobs,
                jid,
                item.index,
                lambda item=item: (item.source, item.destination),
                p.strategy,
                p.source,
                p.destination,
                p.plan,
            )
        jobs.update_item(jid, item.index, state=CANCELLED, error=lifecycle.CANCELLED_TEXT)
        jobs.item_final(jid, item.index)
    return finish_job(jobs, jid)


def resume(job_id: str, jobs: RedisJobStore, app: Celery | None = None) -> Job:
    """Run again, on the fleet, what a job did not finish: failed or cancelled objects are
    planned again from scratch (their partial data was cleaned); interrupted ones get only
    their chunks not done re-enqueued (or their commit, when every chunk is done)."""
    job = jobs.get(job_id)
    if job.state == DONE:
        raise JobStateError(f"job {job.id} is already done")
    cleanup.refuse_if_left(jobs, job.id)  # never upload beside orphaned partial data
    jobs.update_job(job.id, state=RUNNING, error=None, finished=None)
    work: list[tuple[Item, list[int]]] = []
    options = lifecycle.options_of(job)
    for item in job.items:
        if item.state == DONE:
            continue
        if item.state in (FAILED, CANCELLED, PENDING) or not item.plan:
            planned = lifecycle.plan_or_fail(job.id, item, options)
            jobs.save_item(job.id, item)
            if planned is None:
                jobs.item_final(job.id, item.index)
                continue
            work.append((item, [c.index for c in item.chunks]))
            continue
        if item.state == COMMITTING and not leases.release_expired(jobs, job.id, item.index):
            continue  # a live worker holds the commit's lease: it finishes the object
        if item.state == COMMITTING:
            # The worker that claimed the commit died before recording it (its lease expired
            # and no sweep took it over yet): commit again.
            item.state = RUNNING
        pending = [c.index for c in item.chunks if c.state != DONE]
        jobs.unsettle(job.id, item.index, pending)
        work.append((item, pending))
    jobs.set_progress(
        job.id,
        sum(
            c.length or 0 for i in job.items if i.state != DONE for c in i.chunks if c.state == DONE
        )
        + sum(i.size or 0 for i in job.items if i.state == DONE),
    )
    if work:
        publish(jobs, job.id, work, app)
    elif all(i.state in FINAL for i in job.items):
        return finish_job(jobs, job.id)
    return jobs.get(job.id)


class CeleryExecutor(Executor):
    """The fleet (the :class:`~mover.executors.contract.Executor` contract): plan here,
    record in Redis, one task per chunk on the workers.

    Parameters:
        jobs (RedisJobStore | None): the fleet's records (default: ``MOVER_JOBS_URL`` or the
            broker's Redis).
        app (Celery | None): the app to publish with (default :func:`get_app`).
    """

    name = "celery"
    detachable = True

    def __init__(self, jobs: RedisJobStore | None = None, app: Celery | None = None) -> None:
        self.jobs = jobs or RedisJobStore()
        self.app = app

    @classmethod
    def open(cls, jobs: JobStore | None = None, streams: int = 4) -> CeleryExecutor:
        """On ``jobs``, or the fleet's Redis once it answers (``streams`` travel in each
        job's options: the workers' pools run the chunks)."""
        if jobs is None:
            jobs = RedisJobStore()
            jobs.check()
        assert isinstance(jobs, RedisJobStore)
        return cls(jobs)

    @classmethod
    def range_runner(cls, streams: int) -> Runner:
        """``mover.repo.*`` tasks to the fleet's workers (their pools set the parallelism)."""
        from mover.repository.fleet import CeleryRunner

        return CeleryRunner()

    def refuse(self, source: str, destination: str, recursive: bool) -> None:
        """What the workers cannot reach (this host's streams, devices, pipes; a signed URL:
        :func:`mover.transfer.check_fleet`), and a broker that cannot work: one line, no job
        recorded."""
        from mover.executors.celery_app import check_broker

        if "-" in (source, destination):
            raise UsageError("standard input/output cannot go through the fleet")
        transfer.check_fleet(source, destination, recursive)
        check_broker(self.app or get_app())

    def start(self, job: Job) -> Job:
        return start(job, self.jobs, self.app)

    def complete(self, job: Job, how: Follow | None = None) -> Job:
        """Start ``job`` and follow it; a broker that goes away while it is enqueued is
        ridden out, as a worker does: the job is resumed once the broker is back."""
        how = how or Follow()
        try:
            started = self.start(job)
        except BrokerError as exc:
            kept = getattr(exc, "job_id", None)
            if kept is None or not getattr(exc, "transient", False):
                raise
            if how.on_notice is not None:
                how.on_notice(f"mover: {exc.message}; resuming it when the broker is back")
            started = resume_when_back(kept, self.jobs, app=self.app)
        return self._follow(started.id, how)

    def _follow(self, job_id: str, how: Follow) -> Job:
        return follow(
            job_id,
            self.jobs,
            on_progress=how.on_progress,
            timeout_s=how.timeout_s,
            on_notice=how.on_notice,
        )

    def status(self, job_id: str) -> Job:
        return self.jobs.get(self.jobs.resolve(job_id))

    def cancel(self, job_id: str, wait_s: float | None = 30.0) -> Job:  # type: ignore[override]
        return cancel(job_id, self.jobs, wait_s=wait_s)

    def resume(self, job_id: str) -> Job:
        return resume(self.jobs.resolve(job_id), self.jobs, self.app)
