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
import os
from typing import Any

from celery import Celery, signals

from mover.executors.celery_app import (  # noqa: F401  (re-exported for the worker side)
    DEFAULT_BROKER_URL,
    broker_url,
    check_broker,
    is_amqp,
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
    from mover.workers import batch_tasks, repo_tasks, tasks
    from mover.workers.health import HealthStep

    app = _base_app(task_cls="mover.workers.consumer:Task")
    # Celery's consumer with a guard for a kombu bug on broker loss (workers/consumer.py).
    app.conf.worker_consumer = "mover.workers.consumer:Consumer"
    # Heartbeats, the watchdog that ends a zombie worker, and the sweeps (workers/health.py).
    app.steps["consumer"].add(HealthStep)
    tasks.register(app)
    repo_tasks.register(app)
    batch_tasks.register(app)
    return app


#: RabbitMQ's default ``consumer_timeout`` (ms in rabbitmq.conf): 30 minutes.
RABBITMQ_CONSUMER_TIMEOUT_S = 1800


@signals.worker_ready.connect
def _warn_consumer_timeout(sender: Any = None, **_: object) -> None:
    """On RabbitMQ, say once at start that a chunk longer than the server's
    ``consumer_timeout`` would have its channel closed (and run again elsewhere)."""
    if not is_amqp(broker_url()):
        return
    limit = float(os.environ.get("MOVER_CHUNK_TIME_LIMIT_S") or 3600)
    if limit > RABBITMQ_CONSUMER_TIMEOUT_S:
        logging.getLogger("mover.worker").warning(
            "broker is RabbitMQ: its consumer_timeout (default %d s) must exceed the chunk time "
            "limit MOVER_CHUNK_TIME_LIMIT_S (%g s); set consumer_timeout = %d in rabbitmq.conf "
            "or lower the limit (docs/FLEET.md)",
            RABBITMQ_CONSUMER_TIMEOUT_S,
            limit,
            int(limit * 1000 * 1.5),
        )


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **_: object) -> None:
    """No credential of a signed URL in a worker's log lines (mover.redact)."""
    from mover.redact import install_log_filter

    install_log_filter(logger)


#: The app ``celery -A mover.workers.app`` finds.
app = make_app()

# Signal handlers: workers log JSON when MOVER_LOG_FORMAT=json, with each task's job fields.
from mover.fleetstate import metrics_recorder as _metrics_recorder  # noqa: E402, F401
from mover.workers import logcontext as _logcontext  # noqa: E402, F401
from mover.workers import pool_control as _pool_control  # noqa: E402, F401  (mover_pool_grow)


@signals.worker_init.connect
def _warm(**_: object) -> None:
    """Import every provider and motion strategy, and the checksum libraries, in the worker's
    main process before it forks its pool: each child (and each child a ``pool_grow`` adds)
    inherits them, so a burst's first chunks do not pay the imports (they ran several times
    slower than the next ones and made one slot look slow to the autoscale controller)."""
    from mover import digests
    from mover.motion import strategies
    from mover.provider import providers

    for registry in (providers, strategies):
        for _name, _plugin, _error in registry.load_all():
            pass  # a provider whose optional dependency is missing fails later, by name
    digests.warm()
