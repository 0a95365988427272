"""The Celery app of the fleet: ``celery -A mover.workers.app worker`` (or ``mover worker``).

Settings come from the environment, so that a worker, the ``mover`` CLI and a service that only
sends tasks by name agree without sharing a file:

``MOVER_BROKER_URL``
    The broker, e.g. ``redis://redis:6379/0`` (default ``redis://127.0.0.1:6379/0``). The job
    records live in the same Redis unless ``MOVER_JOBS_URL`` names another.
``MOVER_RESULT_BACKEND``
    Where task results go (only ``mover.submit`` keeps one: the job id); default the broker.
``MOVER_VISIBILITY_TIMEOUT_S`` (default 60)
    Seconds a delivered, unacknowledged chunk stays invisible before Redis hands it to another
    worker. A running chunk renews its lease every third of this (see
    :mod:`mover.workers.tasks`), so a chunk may run longer than the timeout without being delivered
    twice; a *dead* worker's chunk is redelivered after the timeout plus one restore sweep.
``MOVER_RESTORE_INTERVAL_S`` (default 10)
    How often a worker sweeps for expired unacked messages (kombu's
    ``unacked_restore_interval``, with ``unacked_restore_throttle`` 1 so the sweep really runs
    that often). With the defaults, a killed worker's chunk runs again within about a minute.

Why these Celery settings (CELERY-FACTS.md has the measurements):

- JSON only: task messages are public API (other services send ``mover.submit`` by name) and
  must never unpickle anything.
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a chunk is acknowledged after it ran, so
  a worker killed mid-chunk loses nothing (a killed pool child's chunk is requeued at once; a
  killed worker's waits for the visibility timeout). Chunks are idempotent, and the commit is
  claimed once in the job store, so a second delivery does no harm.
- ``worker_prefetch_multiplier`` 1: a worker holds no more chunks than it runs, so chunks are
  not stuck behind a busy worker and reserved chunks do not outlive their lease.
- ``broker_connection_max_retries`` None: a worker rides out a broker restart however long; a
  worker that cannot (its event loop stopped) is ended by its watchdog
  (:mod:`mover.workers.health`) so that its supervisor restarts it.
- ``worker_send_task_events``: Flower sees tasks. Task-sent events stay off: they cost a
  PUBLISH per chunk at enqueue time (about a quarter of the publish rate).
"""

from __future__ import annotations

import logging
import os
import warnings

from celery import Celery, signals

# We keep running chunks alive when the broker connection drops (they are idempotent and
# finish their part); Celery warns about that default at every reconnect. Say it once, here.
warnings.filterwarnings("ignore", message=".*worker_cancel_long_running_tasks_on_connection_loss.*")

#: The broker used when ``MOVER_BROKER_URL`` is not set.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
#: The queue ``mover.submit`` and ``mover.job.commit`` go to, and every worker consumes.
DEFAULT_QUEUE = "mover"


def broker_url() -> str:
    return os.environ.get("MOVER_BROKER_URL") or DEFAULT_BROKER_URL


def transport_options() -> dict[str, float]:
    """kombu's Redis transport options: visibility timeout and restore sweep, and time-outs
    so that no socket waits forever on a broker that vanished without closing it (a publish
    then fails in 30 s instead of hanging; kombu drops a silent BRPOP connection after about
    ``1 + 2 x 10`` s)."""
    return {
        "visibility_timeout": float(os.environ.get("MOVER_VISIBILITY_TIMEOUT_S") or 60),
        "unacked_restore_interval": float(os.environ.get("MOVER_RESTORE_INTERVAL_S") or 10),
        "unacked_restore_throttle": 1,
        "socket_timeout": 30.0,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
        "health_check_interval": 10,
    }


def make_app() -> Celery:
    """Build the app from the environment (tests build one per broker)."""
    broker = broker_url()
    app = Celery(
        "mover",
        include=["mover.workers.tasks", "mover.workers.repo_tasks", "mover.workers.batch_tasks"],
        task_cls="mover.workers.consumer:Task",
    )
    app.conf.update(
        broker_url=broker,
        result_backend=os.environ.get("MOVER_RESULT_BACKEND") or broker,
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options(),
        result_backend_transport_options={"retry_policy": {"max_retries": 20}},
        redis_socket_timeout=30.0,
        redis_socket_connect_timeout=5.0,
        redis_socket_keepalive=True,
        redis_backend_health_check_interval=10,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # ride out a broker restart, however long
        worker_send_task_events=True,
        task_send_sent_event=False,
        task_default_queue=DEFAULT_QUEUE,
        task_routes={
            "mover.submit": {"queue": DEFAULT_QUEUE},
            "mover.job.commit": {"queue": DEFAULT_QUEUE},
        },
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # Celery's consumer with a guard for a kombu bug on broker loss (workers/consumer.py).
        worker_consumer="mover.workers.consumer:Consumer",
        enable_utc=True,
    )
    # Heartbeats, the watchdog that ends a zombie worker, and the sweeps (workers/health.py).
    from mover.workers.health import HealthStep

    app.steps["consumer"].add(HealthStep)
    return app


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **_: object) -> None:
    """No credential of a signed URL in a worker's log lines (mover.redact)."""
    from mover.redact import install_log_filter

    install_log_filter(logger)


#: The app ``celery -A mover.workers.app`` finds.
app = make_app()

# Signal handlers: every task published carries its publish time (queue age, time in queue,
# for metrics); workers log JSON when MOVER_LOG_FORMAT=json, with each task's job fields.
from mover.workers import logcontext as _logcontext  # noqa: E402, F401
from mover.workers import metrics_recorder as _metrics_recorder  # noqa: E402, F401
