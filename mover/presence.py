"""Which workers of the fleet are alive, and which queues they consume: heartbeats in Redis.

Each worker's main process writes a heartbeat every :data:`BEAT_S` seconds while its Celery
event loop runs (``mover.workers.health``): its name in the sorted set ``P:workers`` with the
Redis server's clock as score, and its queues in the hash ``P:workers:queues``. A worker is
*live* when its last beat is younger than :data:`LIVE_S`. A zombie (a process whose event loop
stopped, which holds no broker connection and answers nothing) stops beating, so it is not
counted, and its watchdog ends it.

Why heartbeats of mover's own rather than ``inspect().active_queues()``: a broadcast needs the
Celery app in the caller, a reply from every worker of the fleet each time, and a time-out to
wait for the silent ones; reading a sorted set is one round trip that costs Redis nothing, so
``mover copy --wait`` and ``mover status`` can ask every couple of seconds. Scores come from
Redis's ``TIME``, so hosts whose clocks differ agree on who is live.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import redis

#: Seconds between two heartbeats of a worker (``MOVER_HEARTBEAT_S``).
BEAT_S = float(os.environ.get("MOVER_HEARTBEAT_S") or 2.0)
#: A worker whose last heartbeat is older than this is not live.
LIVE_S = max(3.5 * BEAT_S, 5.0)
#: Heartbeats older than this are removed by the next beat of any worker.
FORGET_S = 3600.0


def server_time(r: redis.Redis) -> float:
    """Redis's own clock, in seconds: the one clock every host of the fleet shares."""
    seconds, micros = r.time()
    return float(seconds) + micros / 1e6


class Presence:
    """Heartbeats of the fleet's workers under ``prefix`` in Redis ``r``."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.r = r
        self.key = f"{prefix}:workers"
        self.queues_key = f"{prefix}:workers:queues"

    def beat(self, worker: str, queues: Iterable[str]) -> None:
        """Record that ``worker`` is live and consumes ``queues`` (one round trip after TIME)."""
        now = server_time(self.r)
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(self.key, {worker: now})
        pipe.hset(self.queues_key, worker, json.dumps(sorted(set(queues))))
        pipe.zremrangebyscore(self.key, "-inf", now - FORGET_S)
        pipe.execute()

    def leave(self, worker: str) -> None:
        """Forget ``worker`` at once (a worker shutting down cleanly)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zrem(self.key, worker)
        pipe.hdel(self.queues_key, worker)
        pipe.execute()

    def live(self, window_s: float = LIVE_S) -> dict[str, list[str]]:
        """Live workers and the queues each consumes."""
        now = server_time(self.r)
        names = [n.decode() for n in self.r.zrangebyscore(self.key, now - window_s, "+inf")]
        if not names:
            return {}
        raw = self.r.hmget(self.queues_key, names)
        return {n: json.loads(q) if q else [] for n, q in zip(names, raw, strict=True)}

    def unserved(self, queues: Iterable[str], window_s: float = LIVE_S) -> list[str]:
        """Those of ``queues`` that no live worker consumes, sorted."""
        served = {q for qs in self.live(window_s).values() for q in qs}
        return sorted(set(queues) - served)
