"""The fleet's Python API: submit a copy to the Celery workers and follow it with a handle.

    from mover import fleet

    handle = fleet.submit("file:///srv/x.qcow2", "s3://backups/x.qcow2", chunk_size=64 << 20)
    job = handle.wait(timeout_s=600)    # the finished Job (state done, failed or cancelled)
    handle.status()                     # the Job as recorded now
    handle.cancel()                     # stop it; waits for the workers to clean up

The broker is ``MOVER_BROKER_URL``; validation and planning run in this process, chunks on
the workers (see :mod:`mover.executors.celery`). For a copy in this process, use
:func:`mover.copy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Unpack

from mover.executors.contract import open_executor
from mover.jobs import Job
from mover.jobstores.redis import RedisJobStore
from mover.options import CopyOptions, request_for


@dataclass
class JobHandle:
    """A job running on the fleet, by id."""

    id: str
    jobs: RedisJobStore = field(repr=False)

    def status(self) -> Job:
        """The job as recorded now: state, items, chunks done, errors."""
        return self.jobs.get(self.id)

    def wait(self, timeout_s: float | None = None) -> Job:
        """Block until the job is final and return it; raise TimeoutError after ``timeout_s``
        seconds (the job goes on)."""
        return _executor(self.jobs).wait(self.id, timeout_s=timeout_s)

    def cancel(self, wait_s: float | None = 30.0) -> Job:
        """Cancel the job (see :func:`mover.executors.celery.cancel`)."""
        return _executor(self.jobs).cancel(self.id, wait_s=wait_s)

    def resume(self) -> Job:
        """Re-enqueue what is not done (see :func:`mover.executors.celery.resume`)."""
        return _executor(self.jobs).resume(self.id)


def _executor(jobs: RedisJobStore) -> Any:
    return open_executor("celery", jobs)


def submit(
    source: str,
    destination: str,
    *,
    jobs: RedisJobStore | None = None,
    **options: Unpack[CopyOptions],
) -> JobHandle:
    """Validate and plan a copy here, publish its chunks to the fleet, return a handle.
    ``options`` as :func:`mover.copy` takes them, checked alike (:mod:`mover.options`).

    Raises the :class:`~mover.errors.MoverError` of a bad request before anything is
    enqueued (unknown store, missing object, a device or pipe of this host, which workers
    elsewhere cannot reach: :func:`mover.transfer.check_fleet`)."""
    executor = open_executor("celery", jobs)
    job = executor.submit(request_for(source, destination, options))
    return JobHandle(job.id, executor.jobs)


def handle(job_id: str, jobs: RedisJobStore | None = None) -> JobHandle:
    """A handle on an existing fleet job (a unique prefix of its id is enough)."""
    jobs = jobs or RedisJobStore()
    return JobHandle(jobs.resolve(job_id), jobs)
