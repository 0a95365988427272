"""The Python API: ``mover.copy(source, destination, **options)`` returns the finished job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Unpack

from mover.errors import MoverError, UsageError
from mover.executors.contract import Follow, open_executor
from mover.executors.embedded import EmbeddedExecutor, forget_sources
from mover.jobs import DONE, Job, JobStore
from mover.jobstores.sqlite import SqliteJobStore
from mover.location import parse
from mover.options import CopyOptions, request_for
from mover.redact import recalled, redact, remember


def default_jobstore() -> JobStore:
    return SqliteJobStore()


def copy(
    source: str,
    destination: str,
    *,
    jobs: JobStore | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_start: Callable[[Job], None] | None = None,
    raise_on_failure: bool = True,
    **options: Unpack[CopyOptions],
) -> Job:
    """Copy ``source`` to ``destination`` in this process and return the finished job.

    Options (:class:`~mover.options.CopyOptions`) are checked as every door checks them
    (:mod:`mover.options`): ``recursive``; ``chunk_size`` in bytes or as text such as
    ``"8MiB"``; ``streams`` from 1 to 256.

    ``source`` may be a file, a block device (a volume), a pipe, a socket or a character
    device; ``destination`` a block device only with ``to_device=True`` (it is overwritten in
    place, and must be at least as large as the source). ``include`` / ``exclude``: globs (one
    or a list) selecting the objects of a recursive copy, as rclone's (:mod:`mover.filters`).
    ``on_start`` is given the job, planned, before it runs.

    Raises the :class:`~mover.errors.MoverError` that stopped it (with ``raise_on_failure``),
    after recording it on the job: bad input before anything moves, or a failed transfer.
    """
    request = request_for(source, destination, options)
    executor = open_executor("embedded", jobs, streams=request.options.streams)
    job = executor.prepare(request)
    if on_start is not None:
        on_start(job)
    return _outcome(executor.complete(job, Follow(on_progress=on_progress)), raise_on_failure)


def _outcome(done: Job, raise_on_failure: bool) -> Job:
    if raise_on_failure and done.state != DONE:
        raise MoverError(f"job {done.id} {done.state}: {done.error}")
    return done


def _recall_source(job: Job, source: str | None) -> None:
    """A job whose source was a signed URL was recorded without its credential: take the URL
    again from ``source`` (it must be the job's, credential aside), or say how to give it."""
    if source is not None:
        url = parse(source).url  # as the job recorded it: normalised, then redacted
        if redact(url) != job.source:
            raise UsageError(f"--source {redact(source)} is not the source of job {job.id}")
        remember(url)
    for item in job.items:
        if item.state != DONE and not recalled(item.source):
            raise UsageError(
                f"job {job.id}: its source is a signed URL, whose credential mover does not "
                f"record; give it again: mover resume {job.id} --source 'URL'"
            )


def resume(
    job_id: str,
    *,
    jobs: JobStore | None = None,
    streams: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_start: Callable[[Job], None] | None = None,
    raise_on_failure: bool = True,
    source: str | None = None,
) -> Job:
    """Run again what a failed, cancelled or interrupted job did not finish.

    Objects already committed are kept; an interrupted object (its process died) continues
    from its done chunks; a failed one, whose partial data was cleaned, starts over. A job
    whose source was a signed URL needs it again as ``source`` (it was recorded redacted).
    """
    executor = EmbeddedExecutor.open(jobs)
    executor.on_progress = on_progress
    job = executor.reopen(job_id)
    _recall_source(job, source)
    if on_start is not None:
        on_start(job)
    executor.streams = max(1, int(streams or job.options.get("streams") or 4))
    try:
        done = executor.run(job)
    finally:
        forget_sources(job)  # a signed URL lives in memory for this run only
    return _outcome(done, raise_on_failure)
