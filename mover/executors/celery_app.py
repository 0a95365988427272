"""The fleet's Celery settings and the app that publishes to it, in the core.

The celery executor publishes with :func:`client_app`; the worker side
(:mod:`mover.workers.app`) builds its app with :func:`make_app` and adds what only a worker
needs (its tasks, consumer, health step): the core never imports :mod:`mover.workers`.

Settings come from the environment, so that a worker, the ``mover`` CLI and a service that only
sends tasks by name agree without sharing a file:

``MOVER_BROKER_URL``
    The broker: Redis (``redis://redis:6379/0``, ``rediss://`` with TLS) or RabbitMQ
    (``amqp://user@rabbit:5672/vhost``, ``amqps://``); default ``redis://127.0.0.1:6379/0``.
    Also ``broker_url`` under ``[fleet]`` in the configuration file, its password in
    ``MOVER_BROKER_PASSWORD`` (:func:`mover.config.fleet_setting`).
``MOVER_JOBS_URL``
    The Redis of the job records, heartbeats and statistics: default the broker when it is
    Redis; required with RabbitMQ.
``MOVER_RESULT_BACKEND``
    Where task results go (only ``mover.submit`` keeps one: the job id); default the broker
    when it is Redis, else the job store's Redis (Celery 5 has no amqp result backend).
    A setting that cannot work is refused in one line before anything is published.
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
- On RabbitMQ: durable quorum queues (``MOVER_QUEUE_TYPE``), publisher confirms
  (``confirm_publish``: a publish returns once the broker has the message), no global QoS.
  RabbitMQ cancels a consumer whose delivery stays unacknowledged longer than its
  ``consumer_timeout`` (30 min by default); with acks late a chunk is acknowledged when it
  ends, so the server's ``consumer_timeout`` must exceed ``MOVER_CHUNK_TIME_LIMIT_S`` (3600 s
  by default): a worker on RabbitMQ says so at start when it cannot tell (docs/FLEET.md). A
  killed worker's chunks come back at once (its connection closes), not after a visibility
  timeout.
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

from mover import config as config_mod
from mover.errors import BrokerError, ConfigError
from mover.executors.names import COMMIT_TASK, DEFAULT_QUEUE, SUBMIT_TASK
from mover.redact import redact

# We keep running chunks alive when the broker connection drops (they are idempotent and
# finish their part); Celery warns about that default at every reconnect. Say it once, here.
warnings.filterwarnings("ignore", message=".*worker_cancel_long_running_tasks_on_connection_loss.*")

#: The broker used when ``MOVER_BROKER_URL`` is not set.
DEFAULT_BROKER_URL = config_mod.DEFAULT_BROKER_URL
#: RabbitMQ queue types mover declares (``MOVER_QUEUE_TYPE``).
QUEUE_TYPES = ("quorum", "classic")
#: The header every published task carries: its publish time (seconds since the epoch).
SENT_HEADER = "mover_sent"


def broker_url() -> str:
    """The broker's URL (:func:`mover.config.broker_url`)."""
    return config_mod.broker_url()


def is_amqp(url: str) -> bool:
    """Whether ``url`` is a RabbitMQ broker."""
    return config_mod.url_scheme(url) in config_mod.AMQP_SCHEMES


def queue_type() -> str:
    """``MOVER_QUEUE_TYPE`` on RabbitMQ: ``quorum`` (default: replicated, durable, poison
    messages counted) or ``classic``. Every process of a fleet must use the same: RabbitMQ
    refuses to declare an existing queue with another type."""
    value = (os.environ.get("MOVER_QUEUE_TYPE") or QUEUE_TYPES[0]).strip().lower()
    if value not in QUEUE_TYPES:
        raise ConfigError(f"MOVER_QUEUE_TYPE {value!r}: write {' or '.join(QUEUE_TYPES)}")
    return value


def amqp_transport_options() -> dict[str, Any]:
    """kombu's AMQP transport options: publisher confirms, and a bounded connect."""
    return {"confirm_publish": True, "connect_timeout": 5.0}


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
    backend = config_mod.result_backend()  # refused here, in one line, if it cannot work
    amqp = is_amqp(broker)
    app = Celery("mover", **extra)
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=amqp_transport_options() if amqp else transport_options(),
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
    if amqp:
        # Quorum queues (or classic), durable either way; with quorum queues Celery turns off
        # global QoS and delivers countdowns (the chunks' retry back-off) through its native
        # delayed delivery exchanges, which workers declare at start.
        kind = queue_type()
        app.conf.update(
            task_default_queue_type=kind,
            task_create_missing_queue_type=kind,
            worker_detect_quorum_queues=True,
        )
    return app


def check_broker(app: Celery, timeout_s: float = 5.0) -> None:
    """Connect to the broker once, before a job is recorded or a task published: a broker
    that is down, a wrong password, a vhost that does not exist or a certificate the CA did
    not sign is one :class:`~mover.errors.BrokerError` line naming the broker (never its
    password), with nothing left behind."""
    url = app.conf.broker_url
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
    except Exception as exc:
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise BrokerError(
            f"cannot use the broker {redact(url)} ({type(exc).__name__}"
            f"{': ' + redact(text) if text else ''}); nothing was enqueued: check "
            "MOVER_BROKER_URL (vhost, user) and MOVER_BROKER_PASSWORD"
        ) from None


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
