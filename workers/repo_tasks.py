"""The backup repository's range tasks on the fleet (the runner that sends them is the core's,
:class:`mover.repository.fleet.CeleryRunner`).

Task names are public API:

``mover.repo.backup_range`` / ``mover.repo.restore_range`` (queue ``mover``)
    args ``[payload]``: the JSON payload of :func:`mover.repository.backup.run_range` /
    :func:`mover.repository.restore.run_range` (store names, locations, offsets, chunk ids;
    never a credential or a key: each worker resolves its stores and the repository key from
    its own configuration and environment). The result is the range's JSON result.

A range task is safe to run twice (redelivery after a lost worker): a backup range stores its
chunks again in new packs (the spare copies are pruned), a restore range rewrites its parts.
While it runs, a thread of the worker process renews the broker's lease of its message (the
score of its delivery tag in kombu's ``unacked_index``), so a range that runs longer than the
visibility timeout is not handed to a second worker. A retryable error (connection, 5xx) is
retried by Celery with exponential back-off and full jitter (``MOVER_CHUNK_RETRIES``, 5);
mover's own retry loop is not used here. Other errors fail the task with a ``ValueError``
carrying mover's one-line message, which the runner raises in the caller.

The worker's app registers these tasks (:func:`register`, from :mod:`mover.workers.app`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from celery import Celery, Task

from mover import lifecycle, retry
from mover.executors.celery_app import broker_url, transport_options
from mover.executors.names import REPO_TASK_PREFIX as PREFIX
from mover.fleetstate.perprocess import PerProcess, every
from mover.repository.runner import TASKS, Payload, Result, task_function

log = logging.getLogger("mover.worker.repo")

#: Retries of a range after a retryable error.
RETRIES = int(os.environ.get("MOVER_CHUNK_RETRIES") or 5)
#: The one retry policy (:mod:`mover.retry`) with the fleet's numbers, as for chunks.
POLICY = retry.RetryPolicy(attempts=RETRIES + 1, base_s=1.0, cap_s=60.0)


class _Leases:
    """One thread per worker process renewing the broker leases of running range tasks."""

    def __init__(self) -> None:
        self.tags: dict[str, int] = {}
        self.lock = threading.Lock()
        self.every_s = max(1.0, transport_options()["visibility_timeout"] / 3)
        self.redis: Any = None
        if broker_url().startswith("redis"):
            from mover.jobstores.redis import client_from_url

            self.redis = client_from_url(broker_url())
        every(self.every_s, self.renew_now, "mover-repo-leases")

    @contextlib.contextmanager
    def held(self, tag: str | None) -> Iterator[None]:
        if tag is None or self.redis is None:
            yield
            return
        with self.lock:
            self.tags[tag] = self.tags.get(tag, 0) + 1
        try:
            yield
        finally:
            with self.lock:
                if self.tags[tag] <= 1:
                    del self.tags[tag]
                else:
                    self.tags[tag] -= 1

    def renew_now(self) -> None:
        with self.lock:
            tags = list(self.tags)
        if tags:
            try:  # XX: renew only leases that still exist, never resurrect an acked one
                self.redis.zadd("unacked_index", dict.fromkeys(tags, time.time()), xx=True)
            except Exception as exc:  # a Redis hiccup must not kill the thread
                log.warning("lease renewal: %s", exc)


#: This worker process's renewer.
leases = PerProcess(_Leases).get


def _register(app: Celery, name: str) -> None:
    fn = task_function(name)

    def run(self: Task, payload: Payload) -> Result:
        tag = (self.request.properties or {}).get("delivery_tag")
        try:
            with leases().held(tag):
                return fn(payload)
        except Exception as exc:
            message = lifecycle.error_text(exc)
            countdown = POLICY.next_delay(exc, self.request.retries)
            if countdown is not None:
                log.warning("%s%s: retry in %.1f s after %s", PREFIX, name, countdown, message)
                raise self.retry(countdown=countdown) from None
            log.warning("%s%s failed: %s", PREFIX, name, message)
            raise ValueError(message) from None

    run.__name__ = run.__qualname__ = f"repo_{name}"
    run.__doc__ = f"The repository's {name} task, payload a JSON object (see the module)."
    app.task(name=PREFIX + name, bind=True, acks_late=True)(run)


def register(app: Celery) -> None:
    """Register every range task on ``app`` (the worker's)."""
    for name in TASKS:
        _register(app, name)
