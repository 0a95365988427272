"""The executor contract: what every executor does with a job, wherever its chunks run.

Two implementations: ``embedded`` (:class:`mover.executors.embedded.EmbeddedExecutor`, threads
in this process, records in SQLite) and ``celery`` (:class:`mover.executors.celery.CeleryExecutor`,
tasks on the fleet, records in Redis). Both run each object through the same lifecycle
(:mod:`mover.lifecycle`), so the same request ends with the same job record on either.
The CLI and the Python API (:func:`mover.copy`, :func:`mover.submit`) speak only this contract.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from mover.jobs import FINAL, Job, JobStore

if TYPE_CHECKING:
    from mover.transfer import Request


class Executor(abc.ABC):
    """Runs jobs: ``submit`` starts one, ``wait`` follows it to its end, ``status`` reads its
    record, ``cancel`` stops it (cleaning what it wrote), ``resume`` runs what it left.

    Parameters:
        jobs (JobStore): where the job records live.
    """

    #: ``embedded`` or ``celery``: what ``Job.executor`` records.
    name: ClassVar[str]
    jobs: JobStore

    @abc.abstractmethod
    def submit(self, request: Request) -> Job:
        """Validate and plan ``request`` (bad input raises its MoverError with nothing
        recorded or moved), record the job and start it; return the job as recorded, at
        once (``wait`` follows it)."""

    @abc.abstractmethod
    def wait(
        self,
        job_id: str,
        timeout_s: float | None = None,
        on_progress: Callable[[int], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> Job:
        """Block until the job is final and return its record. ``on_progress`` gets byte
        counts as they move; ``on_notice`` one line when the job waits for something (a
        worker on its queue). Raises TimeoutError after ``timeout_s`` (the job goes on)."""

    def status(self, job_id: str) -> Job:
        """The job as recorded now (a unique prefix of its id is enough)."""
        return self.jobs.get(job_id)

    @abc.abstractmethod
    def cancel(self, job_id: str) -> Job:
        """Stop the job: chunks stop at their next read, unfinished objects are aborted and
        their temporary data removed; return the record, ``cancelled``."""

    @abc.abstractmethod
    def resume(self, job_id: str) -> Job:
        """Start again what the job did not finish (done objects are kept); return the
        record at once, as ``submit`` does."""


def poll_until_final(jobs: JobStore, job_id: str, timeout_s: float | None, poll_s: float) -> Job:
    """Read the record until the job is final (a job some other process runs)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        job = jobs.get(job_id)
        if job.state in FINAL:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job.state} after {timeout_s} s")
        time.sleep(poll_s)
