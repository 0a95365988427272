"""The fleet's Celery settings and the app that publishes to it, in the core.

The celery executor publishes with :func:`client_app`; the worker side
(:mod:`mover.workers.app`) builds its app with :func:`make_app` and adds what only a worker
needs (its tasks, consumer, health step): the core never imports :mod:`mover.workers`.

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

import os
import time
import warnings
from typing import Any

from celery import Celery
from celery.signals import before_task_publish

from mover.executors.names import COMMIT_TASK, DEFAULT_QUEUE, SUBMIT_TASK

# We keep running chunks alive when the broker connection drops (they are idempotent and
# finish their part); Celery warns about that default at every reconnect. Say it once, here.
warnings.filterwarnings("ignore", message=".*worker_cancel_long_running_tasks_on_connection_loss.*")

#: The broker used when ``MOVER_BROKER_URL`` is not set.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
#: The header every published task carries: its publish time (seconds since the epoch).
SENT_HEADER = "mover_sent"


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


def make_app(**extra: Any) -> Celery:
    """An app with the fleet's settings from the environment; ``extra`` are the Celery
    arguments only a worker needs (``include``, ``task_cls``)."""
    broker = broker_url()
    app = Celery("mover", **extra)
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
            SUBMIT_TASK: {"queue": DEFAULT_QUEUE},
            COMMIT_TASK: {"queue": DEFAULT_QUEUE},
        },
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        enable_utc=True,
    )
    return app


_apps: dict[str, Celery] = {}


def client_app() -> Celery:
    """The app that publishes to the current ``MOVER_BROKER_URL`` (one per broker URL, built
    on first use, so that embedded runs never load Celery)."""
    url = broker_url()
    if url not in _apps:
        _apps[url] = make_app()
    return _apps[url]


@before_task_publish.connect
def _stamp_publish_time(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Every task this process publishes carries its publish time: the queue's oldest-message
    age and the chunks' time in the queue are read from it (:mod:`mover.monitor`)."""
    if headers is not None:
        headers[SENT_HEADER] = time.time()
