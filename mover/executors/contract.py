"""The executor contract: what every executor does with a job, wherever its chunks run.

Two implementations: ``embedded`` (:class:`mover.executors.embedded.EmbeddedExecutor`, threads
in this process, records in SQLite) and ``celery`` (:class:`mover.executors.celery.CeleryExecutor`,
tasks on the fleet, records in Redis). Both run each object through the same lifecycle
(:mod:`mover.lifecycle`), so the same request ends with the same job record on either.
The CLI, ``mover sync`` and the Python API (:func:`mover.copy`, :func:`mover.submit`) speak only
this contract, and find an executor by its name with :func:`open_executor`: no caller branches
on the name.
"""

from __future__ import annotations

import abc
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from mover.errors import UsageError
from mover.executors import EXECUTORS
from mover.jobs import FINAL, Job, JobStore

if TYPE_CHECKING:
    from mover.repository.runner import Runner
    from mover.transfer import Request


@dataclass(frozen=True)
class Follow:
    """How a caller follows a job to its end.

    Attributes:
        timeout_s: give up after this long (TimeoutError; the job goes on); None: never.
        on_progress: given byte counts as they move.
        on_notice: given one line when the job waits for something (a worker on its queue,
            a broker back after a restart).
    """

    timeout_s: float | None = None
    on_progress: Callable[[int], None] | None = None
    on_notice: Callable[[str], None] | None = None


class Executor(abc.ABC):
    """Runs jobs: ``submit`` starts one, ``wait`` follows it to its end, ``status`` reads its
    record, ``cancel`` stops it (cleaning what it wrote), ``resume`` runs what it left;
    ``complete`` runs a prepared job to its end for a caller that waits for it.

    Parameters:
        jobs (JobStore): where the job records live.
    """

    #: ``embedded`` or ``celery``: what ``Job.executor`` records.
    name: ClassVar[str]
    #: Whether a started job goes on without the process that started it (``--detach``).
    detachable: ClassVar[bool] = False
    jobs: JobStore

    @classmethod
    @abc.abstractmethod
    def open(cls, jobs: JobStore | None = None, streams: int = 4) -> Executor:
        """This executor on ``jobs`` (default: its own store, checked); ``streams`` is the
        chunks in flight of an executor that runs them in this process."""

    @classmethod
    @abc.abstractmethod
    def range_runner(cls, streams: int) -> Runner:
        """What runs a backup's or a restore's range tasks (:mod:`mover.repository.runner`)
        where this executor runs chunks: threads here, or the fleet's workers."""

    def refuse(self, source: str, destination: str, recursive: bool) -> None:
        """Raise the MoverError of a copy this executor cannot run, before anything is
        planned, recorded or reached (the default refuses nothing)."""

    def prepare(self, request: Request) -> Job:
        """Validate and plan ``request`` (:func:`mover.transfer.prepare`) after
        :meth:`refuse`; bad input raises its MoverError with nothing recorded or moved."""
        from mover.transfer import prepare

        self.refuse(request.source, request.destination, request.recursive)
        return prepare(request)

    @abc.abstractmethod
    def start(self, job: Job) -> Job:
        """Record a prepared job and start it; return the job as recorded, at once."""

    def submit(self, request: Request) -> Job:
        """Validate, plan, record and start ``request``; return the job as recorded, at once
        (``wait`` follows it)."""
        return self.start(self.prepare(request))

    def complete(self, job: Job, how: Follow | None = None) -> Job:
        """Record a prepared job, run it to its end and return its final record (``mover
        copy`` without ``--detach``, ``mover sync``)."""
        return self._follow(self.start(job).id, how or Follow())

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
        return self._follow(job_id, Follow(timeout_s, on_progress, on_notice))

    @abc.abstractmethod
    def _follow(self, job_id: str, how: Follow) -> Job:
        """:meth:`wait`, its arguments in one value."""

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


def default_name() -> str:
    """The executor of a caller that names none: ``celery`` when a broker is configured
    (``MOVER_BROKER_URL`` or ``[fleet] broker_url``), else ``embedded``."""
    from mover.config import fleet_setting

    return "celery" if fleet_setting("broker_url") else "embedded"


def executor_class(name: str | None) -> type[Executor]:
    """The executor class called ``name`` (None: :func:`default_name`); UsageError for a
    name no executor has."""
    name = name or default_name()
    if name not in EXECUTORS:
        raise UsageError(f"unknown executor {name!r} (known: {', '.join(sorted(EXECUTORS))})")
    module, _, attr = EXECUTORS[name].partition(":")
    cls: type[Executor] = getattr(importlib.import_module(module), attr)
    return cls


def open_executor(name: str | None, jobs: JobStore | None = None, streams: int = 4) -> Executor:
    """The executor called ``name`` (None: :func:`default_name`) on ``jobs`` (default: its
    own store, checked: the SQLite file here, the fleet's Redis): the one lookup of every
    caller that lets its user choose."""
    return executor_class(name).open(jobs, streams=streams)


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
