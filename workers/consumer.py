"""The fleet's Celery consumer: Celery's own, with a guard for a kombu bug on broker loss.

With Celery 5.7 and kombu 5.7 on Redis, when the broker connection breaks while messages are
unacknowledged, ``Consumer.on_connection_error_after_connected`` first ``collect()`` s the
connection (which drops the transport's ``client``) and then closes it; closing the channel
restores the unacknowledged messages, which needs a new Redis client whose parameters are read
from the dropped ``client``: ``AttributeError: 'NoneType' object has no attribute 'hostname'``
(``kombu/transport/redis.py``, ``_connparams``). That error is not one Celery retries, so it
leaves the consumer's start loop and the worker shuts down (exit code 1): about once in ten
Redis restarts that catch chunks in flight, here, and sometimes both workers of a fleet at once.

The same error comes a second way: a chunk that was running when the connection broke
finishes after the worker reconnected, and its late acknowledgement goes to the message's old
channel, whose connection was collected; Celery logs an ack that fails with a *connection*
error ("Couldn't ack") and goes on, but this one is an AttributeError, which escapes the event
loop and ends the worker the same way.

The guards: the cleanup is best effort anyway (the connection is gone), so an AttributeError in
it is logged and the consumer goes on to reconnect, as after any other connection error
(:class:`Consumer`); and an acknowledgement counts that AttributeError among the connection
errors it logs and survives (:class:`Request`, the request class of every mover task). The
messages whose restore or ack failed stay in Redis's ``unacked`` hash and come back through the
restore sweep after the visibility timeout, like those of a killed worker; chunks are
idempotent. Should a worker still not recover, its watchdog (:mod:`mover.workers.health`) ends
it for its supervisor.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task as CeleryTask
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.request import Request as CeleryRequest
from celery.worker.request import logger as request_logger

log = logging.getLogger("mover.worker")


class Consumer(CeleryConsumer):
    """Celery's consumer; a broken cleanup after a lost broker does not end the worker."""

    def on_connection_error_after_connected(self, exc: Any) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as err:
            self.connection = None
            log.warning(
                "broker lost: cleaning up the old connection failed (%s); reconnecting anyway "
                "(its unacknowledged chunks come back after the visibility timeout)",
                err,
            )


class Request(CeleryRequest):
    """Celery's request; an acknowledgement on a channel whose connection was collected is
    logged ("Couldn't ack") instead of ending the worker."""

    def acknowledge(self) -> None:
        if not self.acknowledged:
            self._on_ack(request_logger, (*self._connection_errors, AttributeError))
            self.acknowledged = True


class Task(CeleryTask):
    """The base of every mover task: only its request class differs from Celery's."""

    Request = "mover.workers.consumer:Request"
