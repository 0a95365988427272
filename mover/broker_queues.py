"""Queue depth on the broker, whichever it is: Redis lists, or RabbitMQ queues.

The observer (:mod:`mover.fleetstate.observer`) and the controller need, per queue, the messages
waiting and those delivered but not acknowledged. On Redis both are keys the observer reads
itself (every priority band, the ``unacked`` hash), so :func:`open_queues` hands it a Redis
client. On RabbitMQ the same numbers come from the broker: a *passive* ``queue.declare`` answers
with the ready messages and the consumers of a queue without creating it
(:class:`AmqpQueues`). Unacknowledged messages are not visible over AMQP 0-9-1 (only the
management plugin's HTTP API shows them): :meth:`AmqpQueues.unacked` answers nothing, so on
RabbitMQ the autoscale strategies see the backlog waiting, not the chunks in flight (which
their pools' busy slots show anyway).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from mover import config as config_mod
from mover.errors import MoverError
from mover.redact import redact

log = logging.getLogger("mover.autoscale.observer")


class AmqpQueues:
    """Depth of RabbitMQ queues by passive declare, on one connection opened on first use.

    Parameters:
        url (str): the broker's ``amqp://`` URL (a vhost of its own per fleet).
        timeout_s (float): connect and call time-out, seconds.
    """

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._conn: Any = None
        self._channel: Any = None

    def _open(self) -> Any:
        if self._channel is None:
            from kombu import Connection

            self._conn = Connection(self.url, connect_timeout=self.timeout_s)
            try:
                self._conn.ensure_connection(max_retries=1, timeout=self.timeout_s)
            except Exception as exc:
                self.close()
                raise MoverError(
                    f"cannot reach the broker {redact(self.url)} ({type(exc).__name__})",
                    retryable=True,
                ) from None
            self._channel = self._conn.channel()
        return self._channel

    def declared(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) of ``queue``; (0, 0) when it does not exist yet."""
        from amqp.exceptions import NotFound

        channel = self._open()
        try:
            ok = channel.queue_declare(queue=queue, passive=True)
        except NotFound:
            # The server closed the channel with 404: open another for the next queue.
            with contextlib.suppress(Exception):
                channel.close()
            self._channel = self._conn.channel()
            return 0, 0
        except Exception as exc:
            self.close()  # a dead connection: open a new one next time
            raise MoverError(
                f"the broker {redact(self.url)} failed ({type(exc).__name__})", retryable=True
            ) from None
        return int(ok.message_count), int(ok.consumer_count)

    def depths(self, queues: list[str]) -> dict[str, int]:
        """Ready messages per queue (RabbitMQ keeps priorities inside one queue)."""
        return {q: self.declared(q)[0] for q in queues}

    def unacked(self) -> dict[str, int]:
        """Not visible over AMQP (see the module docstring): nothing."""
        return {}

    def ping(self) -> bool:
        self._open()
        return True

    def close(self) -> None:
        for thing in (self._channel, self._conn):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        self._channel = self._conn = None


def open_queues(url: str) -> Any:
    """What the observer reads queue depth from: a Redis client for a Redis broker (the
    observer reads its lists and ``unacked`` hash), an :class:`AmqpQueues` for RabbitMQ."""
    if config_mod.url_scheme(url) in config_mod.AMQP_SCHEMES:
        return AmqpQueues(url)
    from mover.jobstores.redis import client_from_url

    return client_from_url(url)
