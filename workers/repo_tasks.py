"""The backup repository's range tasks on the fleet, and the runner that sends them.

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
carrying mover's one-line message, which :class:`CeleryRunner` raises in the caller.

:class:`CeleryRunner` implements :class:`mover.repository.runner.Runner`: it publishes every
range of a plan through one producer, then collects results as they arrive (the Redis result
backend's pub/sub, not polling per task), and forgets them once read. The caller (``mover
snapshot backup --executor celery``) holds the repository lease and writes the index and the
manifest: a task never waits for another task.

This module is included by the app (:mod:`mover.workers.app`); it does not touch
``mover.workers.tasks``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from celery import Task
from celery.result import AsyncResult, ResultSet
from celery.utils.time import get_exponential_backoff_interval

from mover.errors import ConfigError, MoverError, TransferError
from mover.repository.runner import TASKS, Payload, Result, task_function
from mover.workers.app import DEFAULT_QUEUE, app, broker_url, transport_options

log = logging.getLogger("mover.worker.repo")

#: Retries of a range after a retryable error.
RETRIES = int(os.environ.get("MOVER_CHUNK_RETRIES") or 5)
PREFIX = "mover.repo."


class _Leases:
    """One thread per worker process renewing the broker leases of running range tasks."""

    def __init__(self) -> None:
        self.tags: dict[str, int] = {}
        self.lock = threading.Lock()
        self.every_s = max(1.0, transport_options()["visibility_timeout"] / 3)
        self.pid = os.getpid()
        self.redis: Any = None
        if broker_url().startswith("redis"):
            from mover.jobstores.redis import client_from_url

            self.redis = client_from_url(broker_url())
        threading.Thread(target=self._loop, name="mover-repo-leases", daemon=True).start()

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

    def _loop(self) -> None:
        while True:
            time.sleep(self.every_s)
            with self.lock:
                tags = list(self.tags)
            if tags:
                try:  # XX: renew only leases that still exist, never resurrect an acked one
                    self.redis.zadd("unacked_index", dict.fromkeys(tags, time.time()), xx=True)
                except Exception as exc:  # a Redis hiccup must not kill the thread
                    log.warning("lease renewal: %s", exc)


_leases: _Leases | None = None


def leases() -> _Leases:
    global _leases
    if _leases is None or _leases.pid != os.getpid():
        _leases = _Leases()
    return _leases


def _register(name: str) -> None:
    fn = task_function(name)

    def run(self: Task, payload: Payload) -> Result:
        tag = (self.request.properties or {}).get("delivery_tag")
        try:
            with leases().held(tag):
                return fn(payload)
        except Exception as exc:
            retryable = (
                exc.retryable
                if isinstance(exc, MoverError)
                else isinstance(exc, (ConnectionError, TimeoutError))
            )
            message = exc.message if isinstance(exc, MoverError) else f"{type(exc).__name__}: {exc}"
            if retryable and self.request.retries < RETRIES:
                countdown = get_exponential_backoff_interval(
                    factor=1, retries=self.request.retries, maximum=60, full_jitter=True
                )
                log.warning("%s%s: retry in %d s after %s", PREFIX, name, countdown, message)
                raise self.retry(countdown=countdown) from None
            log.warning("%s%s failed: %s", PREFIX, name, message)
            raise ValueError(message) from None

    run.__name__ = run.__qualname__ = f"repo_{name}"
    run.__doc__ = f"The repository's {name} task, payload a JSON object (see the module)."
    app.task(name=PREFIX + name, bind=True, acks_late=True)(run)


for _name in TASKS:
    _register(_name)


class CeleryRunner:
    """Range tasks as ``mover.repo.*`` messages to the fleet (see the module docstring)."""

    name = "celery"

    def __init__(self, queue: str = DEFAULT_QUEUE, interval_s: float = 0.2) -> None:
        """Refuses at once (before any lease or plan) when no worker answers."""
        self.queue = queue
        self.interval_s = interval_s
        try:
            replies = app.control.ping(timeout=2.0)
        except Exception as exc:  # kombu's OperationalError: no broker there
            raise ConfigError(f"the broker (MOVER_BROKER_URL) does not answer: {exc}") from None
        if not replies:
            raise ConfigError(
                "no mover worker answers on the broker (MOVER_BROKER_URL): start workers "
                "(mover worker) or use --executor embedded"
            )

    def map(self, task: str, payloads: Sequence[Payload]) -> Iterator[tuple[int, Result]]:
        task_function(task)  # an unknown name fails here, before anything is sent
        with app.producer_or_acquire() as producer:
            results = [
                app.send_task(PREFIX + task, args=[p], queue=self.queue, producer=producer)
                for p in payloads
            ]
        order = {r.id: i for i, r in enumerate(results)}
        error: BaseException | None = None
        try:
            for task_id, meta in ResultSet(results).iter_native(interval=self.interval_s):
                status = meta.get("status") if isinstance(meta, dict) else None
                if status == "SUCCESS":
                    if error is None:
                        yield order[task_id], meta["result"]
                    continue
                outcome = meta.get("result") if isinstance(meta, dict) else meta
                if error is None:
                    error = TransferError(f"{PREFIX}{task}: {outcome}")
                    # Stop what has not started: revoked messages are dropped by workers.
                    app.control.revoke([r.id for r in results if not r.ready()])
        finally:
            for r in results:
                with contextlib.suppress(Exception):
                    AsyncResult(r.id, app=app).forget()
        if error is not None:
            raise error
