"""The backup repository's ranges on the fleet: the runner that sends them as tasks.

:class:`CeleryRunner` implements :class:`mover.repository.runner.Runner`: it publishes every
range of a plan as a ``mover.repo.*`` task through one producer, then collects results as they
arrive (the Redis result backend's pub/sub, not polling per task), and forgets them once read.
The caller (``mover snapshot backup --executor celery``) holds the repository lease and writes
the index and the manifest: a task never waits for another task. The tasks themselves run on
the workers (:mod:`mover.workers.repo_tasks`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from mover.errors import ConfigError, TransferError
from mover.executors.names import DEFAULT_QUEUE
from mover.executors.names import REPO_TASK_PREFIX as PREFIX
from mover.repository.runner import Payload, Result, Runner, task_function


class CeleryRunner:
    """Range tasks as ``mover.repo.*`` messages to the fleet (see the module docstring)."""

    name = "celery"

    def __init__(self, queue: str = DEFAULT_QUEUE, interval_s: float = 0.2) -> None:
        """Refuses at once (before any lease or plan) when no worker answers."""
        self.queue = queue
        self.interval_s = interval_s
        from mover.executors.celery_app import client_app  # Celery only when used

        self.app = app = client_app()
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
        from celery.result import AsyncResult, ResultSet

        task_function(task)  # an unknown name fails here, before anything is sent
        app = self.app
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


def runner_for(executor: str | None, streams: int) -> Runner:
    """The runner of ``executor`` (None: ``embedded``, threads here; ``celery``: the fleet,
    ``MOVER_BROKER_URL``), looked up with every other executor's in
    :mod:`mover.executors.contract`."""
    from mover.executors.contract import executor_class

    return executor_class(executor or "embedded").range_runner(streams)
