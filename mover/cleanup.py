"""Pending aborts: an abort that meets a dead store is recorded and retried until it succeeds.

A failed object's partial data (a multipart upload, Swift segments, a temporary file) is
removed by its strategy's ``abort``. When the store does not answer at that moment (Swift
restarting, S3 unreachable), the abort used to be logged and forgotten, and the data stayed
forever; a later ``mover resume`` then uploaded new parts beside it. Now the abort is recorded
in the job store (:class:`PendingAbort`: the job, the object, its strategy and the writer state
of its plan) and retried with exponential back-off:

- by every live worker of the fleet, in its periodic sweep (``mover.workers.health``);
- by ``mover resume JOB`` before anything is uploaded again, which refuses to go on while the
  old partial data cannot be removed (so no new segments are written beside orphaned ones);
- by ``mover cancel JOB`` and ``mover cleanup`` (every pending abort, now).

A record older than the job records' lifetime (``MOVER_JOB_TTL_S``, 7 days) is dropped with a
warning: by then the store's own bound has removed the data (Swift segments are written with
``X-Delete-After``; for S3 the bucket's ``AbortIncompleteMultipartUpload`` lifecycle rule, see
the README).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mover.errors import MoverError

if TYPE_CHECKING:
    from mover.jobs import JobStore
    from mover.motion import Endpoint, MotionStrategy, Plan

log = logging.getLogger("mover.cleanup")

#: Seconds before the first retry of an abort; doubled after each failure
#: (``MOVER_ABORT_RETRY_S``).
RETRY_S = float(os.environ.get("MOVER_ABORT_RETRY_S") or 30)
#: The longest wait between two retries.
RETRY_MAX_S = 3600.0
#: Seconds a sweeper holds a due abort it is running (another sweeper skips it meanwhile).
HOLD_S = 300.0
#: Records older than this are dropped (the job records' lifetime).
MAX_AGE_S = float(os.environ.get("MOVER_JOB_TTL_S") or 7 * 24 * 3600)


@dataclass
class PendingAbort:
    """An abort to run again: which object, how to re-open its writer, when to try next."""

    job_id: str
    item: int
    source: str
    destination: str
    strategy: str
    plan: dict[str, Any]
    attempts: int = 0
    first_at: float = 0.0
    next_at: float = 0.0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PendingAbort:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def backoff_s(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed tries."""
    return min(RETRY_MAX_S, RETRY_S * 2 ** max(0, attempts - 1))


def _text(exc: BaseException) -> str:
    return exc.message if isinstance(exc, MoverError) else f"{type(exc).__name__}: {exc}"


def abort_or_defer(
    jobs: JobStore,
    job_id: str,
    item: int,
    urls: Callable[[], tuple[str, str]],
    strategy: MotionStrategy,
    source: Endpoint,
    destination: Endpoint,
    plan: Plan,
) -> bool:
    """Abort an object's write now; if the store fails, record the abort to retry later.

    ``urls()`` gives the item's recorded source and destination (asked only on failure; never
    a credential: a signed source URL is recorded redacted). True when nothing partial is
    left."""
    try:
        strategy.abort(source, destination, plan)
        return True
    except Exception as exc:
        now = jobs.clock()
        source_url, destination_url = urls()
        record = PendingAbort(
            job_id,
            item,
            source_url,
            destination_url,
            strategy.name,
            {**plan.to_dict(), "chunks": []},  # the writer state is what an abort needs
            attempts=1,
            first_at=now,
            next_at=now + backoff_s(1),
            error=_text(exc),
        )
        jobs.save_pending_abort(record)
        log.warning(
            "job %s object %d: abort failed (%s); retried in %.0f s",
            job_id,
            item,
            record.error,
            backoff_s(1),
        )
        return False


def _run(record: PendingAbort) -> None:
    """Re-open the object's writer from the record and abort it.

    The source is opened as recorded, a signed URL redacted: an abort writes to the
    destination only and never reads the source, so its credential is not needed."""
    from mover import dispatcher
    from mover.motion import Endpoint, Plan
    from mover.resolve import open_location

    source = Endpoint(*open_location(record.source))
    destination = Endpoint(*open_location(record.destination))
    plan = Plan.from_dict(record.plan)
    dispatcher.get_strategy(record.strategy).abort(source, destination, plan)


def retry(jobs: JobStore, record: PendingAbort) -> bool:
    """Try one pending abort again; True when it is done (and forgotten)."""
    try:
        _run(record)
    except Exception as exc:
        now = jobs.clock()
        record.attempts += 1
        record.error = _text(exc)
        if now - record.first_at > MAX_AGE_S:
            log.warning(
                "job %s object %d: giving up the abort after %d attempts (%s); the store's "
                "own bound removes what is left",
                record.job_id,
                record.item,
                record.attempts,
                record.error,
            )
            jobs.drop_pending_abort(record.job_id, record.item)
            return True
        record.next_at = now + backoff_s(record.attempts)
        jobs.save_pending_abort(record)
        log.warning(
            "job %s object %d: abort failed again (%s); next try in %.0f s",
            record.job_id,
            record.item,
            record.error,
            record.next_at - now,
        )
        return False
    jobs.drop_pending_abort(record.job_id, record.item)
    log.info(
        "job %s object %d: partial data removed (abort attempt %d)",
        record.job_id,
        record.item,
        record.attempts + 1,
    )
    return True


def retry_due(jobs: JobStore, limit: int = 10) -> int:
    """Retry the pending aborts whose time has come (a sweep); returns how many succeeded."""
    return sum(retry(jobs, r) for r in jobs.due_aborts(limit, HOLD_S))


def retry_job(jobs: JobStore, job_id: str) -> list[PendingAbort]:
    """Retry every pending abort of one job now, due or not (``mover resume``, ``mover
    cancel``); returns those still pending."""
    return [r for r in jobs.pending_aborts(job_id) if not retry(jobs, r)]


def refuse_if_left(jobs: JobStore, job_id: str) -> None:
    """Before a resume uploads anything again: remove the job's old partial data, or refuse
    (a new upload beside orphaned segments would only add to them)."""
    from mover.errors import JobStateError

    left = retry_job(jobs, job_id)
    if left:
        first = left[0]
        raise JobStateError(
            f"job {job_id}: the partial upload of {first.destination} could not be removed "
            f"yet ({first.error}); resume it once the store answers (mover retries the "
            "removal meanwhile)"
        )
