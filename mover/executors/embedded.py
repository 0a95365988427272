"""The embedded executor: a bounded pool of threads in the caller's process.

No broker, no server: the default when no fleet is configured. ``streams`` threads pull work
from one priority queue: chunks of objects already started come before new objects, so that
a recursive copy of many objects never opens more writers than it has threads to feed, and
memory stays at chunk size x streams (one reusable buffer per thread).

Each object (item) is planned by the strategy the dispatcher picks, its chunks run with the
retry policy, and the thread that finishes the last chunk claims and runs the commit, exactly
once. A failed object is aborted (its temporary data removed) once its chunks in flight have
drained; a cancelled job aborts every object not yet committed.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mover import cleanup, lifecycle, retry
from mover.buffers import release
from mover.errors import Cancelled, JobStateError, MoverError, UsageError
from mover.executors.contract import Executor, Follow, poll_until_final
from mover.jobs import (
    CANCELLED,
    COMMITTING,
    DONE,
    FAILED,
    FINAL,
    RUNNING,
    Item,
    Job,
    JobStore,
)
from mover.lifecycle import Planned
from mover.motion import Chunk, ChunkContext
from mover.provider import PartReceipt, StoreProvider
from mover.redact import forget
from mover.transfer import endpoints

if TYPE_CHECKING:
    from mover.repository.runner import Runner

log = logging.getLogger("mover.executor")

_START, _CHUNK = 1, 0  # queue priorities: chunks of started objects first
#: Seconds a run spends, at its end, retrying aborts that met a store that did not answer.
ABORT_RETRY_WINDOW_S = float(os.environ.get("MOVER_ABORT_RETRY_WINDOW_S") or 15)
#: Jobs of at least this many objects run inside their stores' batches (grouped commits).
BATCH_MIN_OBJECTS = 16
#: Objects up to this size, in a job of many, go to the small-object lanes (issue 10 item 3).
SMALL_OBJECT_BYTES = 1024 * 1024
#: Threads that move small objects only, each object whole, one after another: many requests
#: in flight (a small object's time is the server's latency, not bandwidth), while memory
#: grows by at most this many small buffers and large chunks keep to ``streams``.
SMALL_LANES = int(os.environ.get("MOVER_SMALL_LANES") or 32)


@dataclass
class _ItemRun:
    item: Item
    planned: Planned
    outstanding: int
    receipts: dict[int, PartReceipt] = field(default_factory=dict)
    error: BaseException | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class EmbeddedExecutor(Executor):
    """Runs jobs in this process (the :class:`~mover.executors.contract.Executor` contract;
    :meth:`run` runs one job in the calling thread, ``submit`` in a thread of its own).

    Parameters:
        jobs (JobStore): where records are kept (SQLite by default).
        streams (int): threads, i.e. chunks in flight at once (default 4).
        on_progress (callable | None): called with a byte count as bytes move, from any thread.
        retry_policy (RetryPolicy): how chunks are retried.
    """

    name = "embedded"

    def __init__(
        self,
        jobs: JobStore,
        streams: int = 4,
        on_progress: Callable[[int], None] | None = None,
        retry_policy: retry.RetryPolicy | None = None,
    ) -> None:
        self.jobs = jobs
        self.streams = max(1, streams)
        self.on_progress = on_progress
        self.retry_policy = retry_policy or retry.RetryPolicy()
        self.cancelled = threading.Event()
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._open_items = 0
        self._all_done = threading.Event()
        self._destinations: dict[int, StoreProvider] = {}
        self._batched = False
        self._small: queue.SimpleQueue = queue.SimpleQueue()
        self._job: Job | None = None
        self._thread: threading.Thread | None = None

    # -- the executor contract ------------------------------------------------------------------

    @classmethod
    def open(cls, jobs: JobStore | None = None, streams: int = 4) -> EmbeddedExecutor:
        """On ``jobs``, or this host's SQLite file."""
        if jobs is None:
            from mover.jobstores.sqlite import SqliteJobStore

            jobs = SqliteJobStore()
        return cls(jobs, streams=streams)

    @classmethod
    def range_runner(cls, streams: int) -> Runner:
        """Threads in this process."""
        from mover.repository.runner import ThreadRunner

        return ThreadRunner(streams)

    def start(self, job: Job) -> Job:
        """Record ``job`` and run it in a thread of this process."""
        self.jobs.create(job)
        return self._start_thread(job)

    def complete(self, job: Job, how: Follow | None = None) -> Job:
        """Record ``job`` and run it in the calling thread: Ctrl-C there cancels it and
        cleans its partial data before the KeyboardInterrupt goes on. A signed URL's
        credential, in this process's memory for the run, is forgotten at its end."""
        self.jobs.create(job)
        if how is not None and how.on_progress is not None:
            self.on_progress = how.on_progress
        try:
            return self.run(job)
        finally:
            forget_sources(job)

    def resume(self, job_id: str) -> Job:
        """Start again, in a thread of this process, what the job did not finish."""
        return self._start_thread(self.reopen(job_id))

    def _follow(self, job_id: str, how: Follow) -> Job:
        """Wait for the job this executor runs (or, run elsewhere, poll its record)."""
        if how.on_progress is not None:
            self.on_progress = how.on_progress
        thread = self._thread
        if thread is None or self._job is None or self._job.id != self.jobs.get(job_id).id:
            return poll_until_final(self.jobs, job_id, how.timeout_s, 0.2)
        thread.join(how.timeout_s)
        if thread.is_alive():
            raise TimeoutError(f"job {job_id} still running after {how.timeout_s} s")
        return self.jobs.get(job_id)

    def cancel(self, job_id: str | None = None) -> Job | None:  # type: ignore[override]
        """Stop the job this executor runs: running chunks stop at their next read; every
        unfinished object is aborted. Without ``job_id``, whatever it runs (Ctrl-C)."""
        self.cancelled.set()
        if job_id is None:
            return None
        job = self.jobs.get(job_id)
        if self._job is None or self._job.id != job.id:
            raise UsageError(
                f"job {job.id} does not run in this process: an embedded copy stops with "
                "Ctrl-C in the process that runs it"
            )
        return self.wait(job.id)

    def _start_thread(self, job: Job) -> Job:
        if self._thread is not None and self._thread.is_alive():
            raise JobStateError(f"this executor already runs job {self._job and self._job.id}")
        self.cancelled.clear()
        self._all_done.clear()
        self._job = job
        self._thread = threading.Thread(
            target=self.run, args=(job,), name=f"mover-job-{job.id}", daemon=True
        )
        self._thread.start()
        return self.jobs.get(job.id)

    def reopen(self, job_id: str) -> Job:
        """Make a failed, cancelled or interrupted job runnable again: done objects are kept
        (one no longer where it was committed is copied again), failed and cancelled ones
        start over (their partial data was cleaned), interrupted ones go on from their done
        chunks. Refuses a job another live process runs, and one with an abort still due."""
        job = self.jobs.get(job_id)
        if job.state == DONE:
            raise JobStateError(f"job {job.id} is already done")
        host, _, pid = job.owner.partition(":")
        local = host == socket.gethostname() and pid.isdigit()
        if job.state == RUNNING and local and int(pid) != os.getpid() and _alive(int(pid)):
            raise JobStateError(f"job {job.id} is still running in process {pid}")
        cleanup.refuse_if_left(self.jobs, job.id)  # never upload beside orphaned partial data
        for item in job.items:
            if item.state == DONE and not _still_there(item):
                # Recorded done, but the object is not where it was committed (a crash between
                # the record and a grouped commit, or someone removed it): copy it again.
                item.state = FAILED
            if item.state in (FAILED, CANCELLED):
                item.state, item.plan, item.chunks, item.error = "pending", None, [], None
                self.jobs.save_item(job.id, item)
        return job

    # -- running one job ------------------------------------------------------------------------

    def run(self, job: Job) -> Job:
        """Run every unfinished item of ``job`` and return the job as recorded at the end."""
        owner = f"{socket.gethostname()}:{os.getpid()}"
        self.jobs.update_job(job.id, state=RUNNING, owner=owner, error=None, finished=None)
        self._job = job
        self._destinations = {}
        todo = [i for i in job.items if i.state != DONE]
        self._open_items = len(todo)
        # Many objects: let stores group their commits (one disk flush for many small files).
        # One or a few: each is committed on its own, which costs less than a group flush.
        self._batched = len(todo) >= BATCH_MIN_OBJECTS
        if not todo:
            self._all_done.set()
        lanes = _small_lanes(todo) if self._batched else 0
        for item in todo:
            if lanes and _small(item):
                self._small.put(item)
            else:
                self._put(_START, ("start", item))
        threads = [
            threading.Thread(target=self._worker, name=f"mover-stream-{n}", daemon=True)
            # Items are planned by these threads, so their chunk counts are not known yet:
            # always start every stream (an idle thread costs nothing but its stack).
            for n in range(self.streams)
        ] + [
            threading.Thread(target=self._small_lane, name=f"mover-small-{n}", daemon=True)
            for n in range(lanes)
        ]
        for t in threads:
            t.start()
        try:
            while not self._all_done.wait(0.2):
                pass
        except KeyboardInterrupt:
            self.cancel()
            self._all_done.wait()
            raise
        finally:
            for _ in threads:
                self._put(-1, None)
                self._small.put(None)
            for t in threads:
                t.join()
        return self._finish(job.id)

    # -- internals ----------------------------------------------------------------------------

    def _put(self, priority: int, task: object) -> None:
        self._queue.put((priority, next(self._seq), task))

    def _worker(self) -> None:
        try:
            while True:
                _, _, task = self._queue.get()
                if task is None:
                    return
                kind, *args = task
                if kind == "start":
                    self._start(*args)
                else:
                    self._run_chunk(*args)
        finally:
            release()

    def _small_lane(self) -> None:
        """Move small objects, each planned, run and committed in this thread."""
        try:
            while (item := self._small.get()) is not None:
                self._start(item, inline=True)
        finally:
            release()

    def _item_finished(self) -> None:
        with self._lock:
            self._open_items -= 1
            if self._open_items <= 0:
                self._all_done.set()

    def _start(self, item: Item, inline: bool = False) -> None:
        """Plan an item (or pick up its plan on resume) and queue its pending chunks (run
        them in this thread with ``inline``: a small object on its lane)."""
        if self.cancelled.is_set():
            self.jobs.update_item(
                self._job.id, item.index, state=CANCELLED, error=lifecycle.CANCELLED_TEXT
            )
            self._item_finished()
            return
        try:
            ends = endpoints(item)
            destination = ends[1]
            with self._lock:
                if id(destination.store) not in self._destinations:
                    if self._batched:
                        destination.store.begin_batch()
                    self._destinations[id(destination.store)] = destination.store
            run = self._plan(item, ends)
        except Exception as exc:
            self._fail_item(item, exc)
            self._item_finished()
            return
        pending = [c for c in item.chunks if c.state != DONE]
        for c in item.chunks:
            if c.state == DONE and c.receipt:
                run.receipts[c.index] = PartReceipt.from_dict(c.receipt)
                if self.on_progress and c.length:
                    self.on_progress(c.length)
        run.outstanding = len(pending)
        if not pending:
            self._commit(run)
            return
        for c in pending:
            if inline:
                self._run_chunk(run, Chunk(c.index, c.offset, c.length))
            else:
                self._put(_CHUNK, ("chunk", run, Chunk(c.index, c.offset, c.length)))

    def _plan(self, item: Item, ends: tuple) -> _ItemRun:
        if item.state in (RUNNING, COMMITTING):
            # Resume of an interrupted item: its writer (temp file, upload) still exists. One
            # interrupted in its commit is committed again from the same writer (a commit that
            # had already gone through is recognised by the writer), never planned afresh.
            planned = lifecycle.reopen(item, ends)
            if planned is not None:
                return _ItemRun(item, planned, 0)
        planned = lifecycle.plan(item, lifecycle.options_of(self._job, self.streams), ends)
        self.jobs.save_item(self._job.id, item)
        return _ItemRun(item, planned, 0)

    def _run_chunk(self, run: _ItemRun, chunk: Chunk) -> None:
        if run.error is None and self.cancelled.is_set():
            run.error = Cancelled("job cancelled")
        if run.error is None:
            ctx = ChunkContext(self.on_progress, self.cancelled)
            try:
                receipt = retry.call(
                    lambda: run.planned.run_chunk(chunk, ctx),
                    self.retry_policy,
                    on_retry=lambda n, exc: log.warning(
                        "job %s object %d chunk %d: retry %d after %s",
                        self._job.id,
                        run.item.index,
                        chunk.index,
                        n,
                        exc,
                    ),
                )
                with run.lock:
                    run.receipts[chunk.index] = receipt
                self.jobs.record_chunk(self._job.id, run.item.index, chunk.index, receipt.to_dict())
            except Exception as exc:
                with run.lock:
                    if run.error is None:
                        run.error = exc
        with run.lock:
            run.outstanding -= 1
            last = run.outstanding == 0
        if last:
            if run.error is None:
                self._commit(run)
            else:
                self._abort(run)

    def _commit(self, run: _ItemRun) -> None:
        job_id, item = self._job.id, run.item
        try:
            # Exactly once: only the thread that finished the item's last chunk gets here (the
            # in-process counter decides), and resume refuses a job whose process is alive, so
            # no other process runs this job. Executors whose chunks run in many processes
            # decide with JobStore.claim_commit instead.
            self.jobs.update_item(job_id, item.index, state=COMMITTING)
            # Durable at the job's end (_finish flushes every destination, or ends its batch).
            fields = lifecycle.commit(run.planned, list(run.receipts.values()), flush=False)
            self.jobs.update_item(job_id, item.index, **fields)
        except Exception as exc:
            run.error = exc
            self._abort(run)
            return
        self._item_finished()

    def _abort(self, run: _ItemRun) -> None:
        # A store that fails the abort gets it retried later (mover.cleanup); the original
        # error is what the item records.
        item, p = run.item, run.planned
        cleanup.abort_or_defer(
            self.jobs,
            self._job.id,
            item.index,
            lambda: (item.source, item.destination),
            p.strategy,
            p.source,
            p.destination,
            p.plan,
        )
        self._fail_item(run.item, run.error or MoverError("aborted"), p.plan)
        self._item_finished()

    def _fail_item(self, item: Item, exc: BaseException, plan: Any = None) -> None:
        state, message = lifecycle.failure(exc, plan)
        if not isinstance(exc, MoverError):
            log.exception("job %s object %d failed", self._job.id, item.index, exc_info=exc)
        self.jobs.update_item(self._job.id, item.index, state=state, error=message)

    def _retry_aborts(self, job_id: str) -> None:
        """Aborts of this job that met a store that did not answer (a restart, a blip) are
        tried again a few times before the run ends, so that a short outage leaves nothing
        behind; what is still pending after :data:`ABORT_RETRY_WINDOW_S` stays recorded for
        ``mover cleanup`` and ``mover resume`` (mover.cleanup)."""
        deadline = time.monotonic() + ABORT_RETRY_WINDOW_S
        pause = 0.5
        while cleanup.retry_job(self.jobs, job_id) and time.monotonic() + pause < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 4.0)

    def _finish(self, job_id: str) -> Job:
        self._retry_aborts(job_id)
        flush_error: str | None = None
        for store in self._destinations.values():
            try:
                # Committed objects durable (and, in a batch, visible) before the job is done.
                if self._batched:
                    store.end_batch()
                else:
                    store.flush()
            except MoverError as exc:
                flush_error = flush_error or f"{store.describe()}: {exc.message}"
        self.jobs.flush()
        job = self.jobs.get(job_id)  # read once: a tree's job holds thousands of objects
        state, error = lifecycle.final_state(job, self.cancelled.is_set())
        if flush_error is not None and state == DONE:
            state, error = FAILED, f"objects written but not made durable: {flush_error}"
        assert state in FINAL
        now = time.time()
        self.jobs.update_job(job_id, state=state, error=error, finished=now)
        self.jobs.flush()  # the final state on disk before anyone is told the job ended
        job.state, job.error, job.finished, job.updated = state, error, now, now
        return job


def forget_sources(job: Job) -> None:
    """Forget the signed URLs of ``job``'s sources (:mod:`mover.redact`): they live in memory
    for one run only."""
    for url in {job.source, *(i.source for i in job.items)}:
        forget(url)


def _small_lanes(todo: list[Item]) -> int:
    """How many small-object lanes a job gets: :data:`SMALL_LANES` when a store is remote (a
    small object's time is the server's latency), one per CPU when both ends are files on this
    host (the time is CPU: more threads than cores only contend for the interpreter; 2,000
    files of 16 KiB on 2 cores: 2.2 s with 32 lanes, 1.9 s with 2)."""
    small = [i for i in todo if _small(i)]
    lanes = min(SMALL_LANES, len(small))
    if not lanes or os.environ.get("MOVER_SMALL_LANES"):
        return lanes
    try:
        ends = endpoints(small[0])
    except Exception:  # the item fails on its lane, with its own error
        return lanes
    if all(e.store.capabilities.local_path for e in ends):
        lanes = min(lanes, os.cpu_count() or 1)
    return lanes


def _small(item: Item) -> bool:
    """Whether ``item`` goes to a small-object lane."""
    return item.size is not None and item.size <= SMALL_OBJECT_BYTES


def _still_there(item: Item) -> bool:
    """Whether a done item's destination exists with the size that was committed."""
    from mover.resolve import open_location

    try:
        store, location = open_location(item.destination)
        info = store.stat(location.full_key)
    except MoverError:
        return False
    return item.size is None or info.size is None or info.size == item.size


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
