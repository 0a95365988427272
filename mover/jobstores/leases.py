"""Commit leases: the claim on an object's commit expires unless its holder renews it.

Exactly one process commits an object: the one that moves its item from ``running`` to
``committing`` (:meth:`~mover.jobstores.redis.RedisJobStore.claim_commit`). Before leases, a
worker killed during a commit left the object ``committing`` until someone ran ``mover
resume``. Now the claim carries an owner (a random token of the committing process) and an
expiry on Redis's clock (``commit_expires``, also the score of ``<job>:<item>`` in the sorted
set ``P:committing``):

- the committer renews the lease every third of :data:`LEASE_S` while its commit runs
  (``mover.workers.tasks``, the per-process watcher thread);
- every live worker sweeps ``P:committing`` every few seconds (``mover.workers.health``): an
  expired lease is *taken over* in one compare-and-set (the item is still ``committing``, its
  expiry is past and its owner unchanged), so one sweeper wins, becomes the owner and runs the
  commit again. Commits are idempotent (a completed multipart upload, an SLO manifest already in
  place), and only the lease's owner records the outcome (:func:`finish`), so a committer that
  lost its lease while cut off from Redis cannot overwrite what the new owner recorded.

An orphaned commit is so finished within about ``LEASE_S + SWEEP_S`` seconds (35 by default)
plus the commit's own time, by any live worker of the fleet.

Why a sweep of every live worker, and not another taker: the object's next chunk or commit task
may never come (every chunk is done, and the one that was to commit died with its worker); a
``--wait`` follower may not exist (jobs submitted without waiting, by services); a Celery beat
would be one more process to deploy and keep alive. Every worker already runs a health thread
that knows whether it is itself healthy (:mod:`mover.workers.health`), so the sweep costs one
``ZRANGEBYSCORE`` every few seconds and needs nothing new to run.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mover.jobs import COMMITTING, RUNNING
from mover.presence import server_time

if TYPE_CHECKING:
    from mover.jobstores.redis import RedisJobStore

#: Seconds a commit claim lasts without renewal (``MOVER_COMMIT_LEASE_S``).
LEASE_S = float(os.environ.get("MOVER_COMMIT_LEASE_S") or 30)


def new_owner() -> str:
    """A lease owner's token: host and process for people, random bits for uniqueness."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _index(jobs: RedisJobStore) -> str:
    return f"{jobs.prefix}:committing"


def _member(job_id: str, item: int) -> str:
    return f"{job_id}:{item}"


def _unindex(jobs: RedisJobStore, job_id: str, item: int) -> Callable[[Any], None]:
    """The pipeline step that takes the item out of the index of commits."""

    def unindex(pipe: Any) -> None:
        pipe.zrem(_index(jobs), _member(job_id, item))

    return unindex


def _expired_at(now: float) -> Callable[[dict[str, Any]], bool]:
    """Whether an item's fields show a commit whose lease had expired by ``now``."""
    return lambda f: f["state"] == COMMITTING and float(f["commit_expires"] or 0) <= now


def claim(
    jobs: RedisJobStore,
    job_id: str,
    item: int,
    owner: str | None = None,
    lease_s: float | None = None,
) -> bool:
    """Claim the commit of ``item`` (``running`` -> ``committing``) for ``owner``; True once."""
    owner = owner or new_owner()
    expires = server_time(jobs.r) + (lease_s or LEASE_S)
    key = jobs.item_key(job_id, item)

    def index(pipe: Any) -> None:
        pipe.zadd(_index(jobs), {_member(job_id, item): expires})
        pipe.hincrby(key, "commits", 1)

    mapping = {"state": COMMITTING, "commit_owner": owner, "commit_expires": expires}
    return jobs.update_if(key, ("state",), lambda f: f["state"] == RUNNING, mapping, index)


def renew(
    jobs: RedisJobStore, job_id: str, item: int, owner: str, lease_s: float | None = None
) -> bool:
    """Push the expiry of ``owner``'s lease forward; False if ``owner`` no longer holds it."""
    expires = server_time(jobs.r) + (lease_s or LEASE_S)

    def index(pipe: Any) -> None:
        pipe.zadd(_index(jobs), {_member(job_id, item): expires})

    return jobs.update_if(
        jobs.item_key(job_id, item),
        ("state", "commit_owner"),
        lambda f: f["state"] == COMMITTING and f["commit_owner"] == owner,
        {"commit_expires": expires},
        index,
    )


def finish(jobs: RedisJobStore, job_id: str, item: int, owner: str, **fields: Any) -> bool:
    """Record the commit's outcome (``state`` and other item fields) if ``owner`` still holds
    the lease, and release it; False (nothing written) for a committer that lost it."""
    return jobs.update_if(
        jobs.item_key(job_id, item),
        ("state", "commit_owner"),
        lambda f: f["state"] == COMMITTING and f["commit_owner"] == owner,
        {**fields, "commit_owner": None, "commit_expires": None},
        _unindex(jobs, job_id, item),
    )


def expired(jobs: RedisJobStore, limit: int = 10) -> list[tuple[str, int]]:
    """Commits whose lease has expired, oldest first (at most ``limit``)."""
    now = server_time(jobs.r)
    found = jobs.r.zrangebyscore(_index(jobs), "-inf", now, start=0, num=limit)
    out: list[tuple[str, int]] = []
    for raw in found:
        job_id, _, item = raw.decode().rpartition(":")
        out.append((job_id, int(item)))
    return out


def take_over(
    jobs: RedisJobStore, job_id: str, item: int, owner: str, lease_s: float | None = None
) -> bool:
    """Become the owner of an expired commit lease; True for the one caller that did.

    An entry of the index whose item is no longer committing (done, failed, expired with its
    job) is dropped instead."""
    now = server_time(jobs.r)
    expires = now + (lease_s or LEASE_S)
    key = jobs.item_key(job_id, item)

    def index(pipe: Any) -> None:
        pipe.zadd(_index(jobs), {_member(job_id, item): expires})
        pipe.hincrby(key, "takeovers", 1)

    won = jobs.update_if(
        key,
        ("state", "commit_expires"),
        _expired_at(now),
        {"commit_owner": owner, "commit_expires": expires},
        index,
    )
    if not won and jobs.item_state(job_id, item) != COMMITTING:
        jobs.r.zrem(_index(jobs), _member(job_id, item))
    return won


def release_expired(jobs: RedisJobStore, job_id: str, item: int) -> bool:
    """Give an expired claim back (``committing`` -> ``running``) so that a resume can claim
    it again; False while a live owner still holds it."""
    return jobs.update_if(
        jobs.item_key(job_id, item),
        ("state", "commit_expires"),
        _expired_at(server_time(jobs.r)),
        {"state": RUNNING, "commit_owner": None, "commit_expires": None},
        _unindex(jobs, job_id, item),
    )


def takeovers(jobs: RedisJobStore, job_id: str, item: int) -> int:
    """How many times an expired commit of ``item`` was taken over (tests read it)."""
    return int(jobs.r.hget(jobs.item_key(job_id, item), "takeovers") or 0)
