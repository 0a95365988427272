"""The Python API: ``mover.copy(source, destination, **options)`` returns the finished job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mover.errors import MoverError, UsageError
from mover.executors.embedded import EmbeddedExecutor
from mover.jobs import DONE, Job, JobStore
from mover.jobstores.sqlite import SqliteJobStore
from mover.location import parse
from mover.options import copy_request
from mover.redact import forget, recalled, redact, remember
from mover.transfer import Request, prepare


def default_jobstore() -> JobStore:
    return SqliteJobStore()


def copy(
    source: str,
    destination: str,
    *,
    recursive: bool = False,
    streams: int | str = 4,
    chunk_size: int | str | None = None,
    to_device: bool = False,
    jobs: JobStore | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_start: Callable[[Job], None] | None = None,
    raise_on_failure: bool = True,
    include: Any = None,
    exclude: Any = None,
) -> Job:
    """Copy ``source`` to ``destination`` in this process and return the finished job.

    Options are checked as every door checks them (:mod:`mover.options`): ``chunk_size`` in
    bytes or as text such as ``"8MiB"``, ``streams`` from 1 to 256.

    ``source`` may be a file, a block device (a volume), a pipe, a socket or a character
    device; ``destination`` a block device only with ``to_device=True`` (it is overwritten in
    place, and must be at least as large as the source). ``include`` / ``exclude``: globs (one
    or a list) selecting the objects of a recursive copy, as rclone's (:mod:`mover.filters`).

    Raises the :class:`~mover.errors.MoverError` that stopped it (with ``raise_on_failure``),
    after recording it on the job: bad input before anything moves, or a failed transfer.
    """
    options, recursive, filters = copy_request(
        {
            "streams": streams,
            "chunk_size": chunk_size,
            "recursive": recursive,
            "to_device": to_device,
            "include": include,
            "exclude": exclude,
        }
    )
    jobs = jobs or default_jobstore()
    request = Request(source, destination, recursive, options, filters)
    job = prepare(request)
    jobs.create(job)
    if on_start is not None:
        on_start(job)
    executor = EmbeddedExecutor(jobs, streams=options.streams, on_progress=on_progress)
    try:
        done = executor.run(job)
    finally:
        _forget_sources(job)  # a signed URL lives in memory for this run only
    if raise_on_failure and done.state != DONE:
        raise MoverError(f"job {done.id} {done.state}: {done.error}")
    return done


def _forget_sources(job: Job) -> None:
    for url in {job.source, *(i.source for i in job.items)}:
        forget(url)


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
    jobs = jobs or default_jobstore()
    executor = EmbeddedExecutor(jobs, on_progress=on_progress)
    job = executor.reopen(job_id)
    _recall_source(job, source)
    if on_start is not None:
        on_start(job)
    executor.streams = max(1, int(streams or job.options.get("streams") or 4))
    try:
        done = executor.run(job)
    finally:
        _forget_sources(job)
    if raise_on_failure and done.state != DONE:
        raise MoverError(f"job {done.id} {done.state}: {done.error}")
    return done
