"""The Celery app of the fleet: ``celery -A mover.workers.app worker`` (or ``mover worker``).

The fleet's settings (broker, visibility timeout, restore sweep, JSON only, late acks, prefetch
1: why each, and the environment variables that set them) are the core's, in
:mod:`mover.executors.celery_app`, shared with every publisher. This module adds what only a
worker needs: mover's tasks (:func:`mover.workers.tasks.register`, given this app), the
consumer with its broker-loss guard, the health step (heartbeats, watchdog, sweeps) and the
log redaction.
"""

from __future__ import annotations

import logging

from celery import Celery, signals

from mover.executors.celery_app import (  # noqa: F401  (re-exported for the worker side)
    DEFAULT_BROKER_URL,
    broker_url,
    transport_options,
)
from mover.executors.celery_app import (
    make_app as _base_app,
)
from mover.executors.names import DEFAULT_QUEUE  # noqa: F401


def make_app() -> Celery:
    """The worker's app: the fleet's settings (:mod:`mover.executors.celery_app`) with mover's
    tasks registered on it (:func:`mover.workers.tasks.register`), its consumer and its
    health step (tests build one per broker)."""
    from mover.workers import repo_tasks, tasks
    from mover.workers.health import HealthStep

    app = _base_app(task_cls="mover.workers.consumer:Task")
    # Celery's consumer with a guard for a kombu bug on broker loss (workers/consumer.py).
    app.conf.worker_consumer = "mover.workers.consumer:Consumer"
    # Heartbeats, the watchdog that ends a zombie worker, and the sweeps (workers/health.py).
    app.steps["consumer"].add(HealthStep)
    tasks.register(app)
    repo_tasks.register(app)
    return app


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **_: object) -> None:
    """No credential of a signed URL in a worker's log lines (mover.redact)."""
    from mover.redact import install_log_filter

    install_log_filter(logger)


#: The app ``celery -A mover.workers.app`` finds.
app = make_app()

# Signal handlers: workers log JSON when MOVER_LOG_FORMAT=json, with each task's job fields.
from mover.workers import logcontext as _logcontext  # noqa: E402, F401
from mover.workers import metrics_recorder as _metrics_recorder  # noqa: E402, F401
