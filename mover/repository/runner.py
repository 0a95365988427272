"""Runners: how a plan's range tasks run. One small interface, two implementations.

A plan (:mod:`.backup`, :mod:`.restore`) is a list of independent range tasks, each a JSON
payload for a named task function of :data:`TASKS`, returning a JSON result. A task must be
safe to run twice (a retry, a redelivery after a worker died): a backup range re-uploads its
packs under new names (the spare copies are pruned), a restore range rewrites its parts.

- :class:`ThreadRunner` (``embedded``) runs them on ``streams`` threads of this process, each
  under mover's one retry policy (:mod:`mover.retry`).
- ``mover.repository.fleet.CeleryRunner`` (``celery``) publishes them as ``mover.repo.*``
  tasks to the fleet; Celery's retry replaces mover's there, never both.

Payloads name stores and locations only: each process resolves credentials and the repository
key from its own configuration.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from mover import retry
from mover.errors import UsageError

log = logging.getLogger("mover.repository")

#: Task name -> ``module:function`` taking a payload dict and returning a result dict.
TASKS = {
    "backup_range": "mover.repository.backup:run_range",
    "restore_range": "mover.repository.restore:run_range",
    "copy_blobs": "mover.repository.transfer:run_copy",
}

Payload = dict[str, Any]
Result = dict[str, Any]


def task_function(name: str) -> Callable[[Payload], Result]:
    try:
        module, _, attr = TASKS[name].partition(":")
    except KeyError:
        raise UsageError(f"unknown repository task {name!r} (known: {', '.join(TASKS)})") from None
    fn: Callable[[Payload], Result] = getattr(importlib.import_module(module), attr)
    return fn


class Runner(Protocol):
    """Runs range tasks; yields ``(payload index, result)`` as each finishes.

    On the first failure it stops starting new tasks, lets the running ones end, and raises
    that failure (after yielding what had finished, so the caller can keep it).
    """

    name: str

    def map(self, task: str, payloads: Sequence[Payload]) -> Iterator[tuple[int, Result]]: ...


class ThreadRunner:
    """Range tasks on ``streams`` threads of this process (the embedded executor)."""

    name = "embedded"

    def __init__(self, streams: int = 4, policy: retry.RetryPolicy | None = None) -> None:
        if streams < 1:
            raise UsageError("streams must be at least 1")
        self.streams = streams
        self.policy = policy or retry.RetryPolicy()

    def map(self, task: str, payloads: Sequence[Payload]) -> Iterator[tuple[int, Result]]:
        fn = task_function(task)

        def one(payload: Payload) -> Result:
            return retry.call(
                lambda: fn(payload),
                self.policy,
                on_retry=lambda n, exc: log.info("%s retry %d: %s", task, n, exc),
            )

        pending = list(enumerate(payloads))
        pending.reverse()
        running: dict[Future[Result], int] = {}
        error: BaseException | None = None
        with ThreadPoolExecutor(self.streams, thread_name_prefix=f"repo-{task}") as pool:
            while pending or running:
                while pending and len(running) < self.streams and error is None:
                    i, payload = pending.pop()
                    running[pool.submit(one, payload)] = i
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    i = running.pop(f)
                    exc = f.exception()
                    if exc is not None:
                        error = error or exc
                    elif error is None:
                        yield i, f.result()
                if error is not None:
                    pending.clear()
        if error is not None:
            raise error
