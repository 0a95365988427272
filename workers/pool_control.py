"""Pool changes that take effect when they should (worker side): ``mover_pool_grow`` and
``mover_pool_shrink_to``.

**Grow.** Celery's ``pool_grow`` only raises the pool's target: billiard starts the new child
at its next maintenance tick, every 5 s, so a slot asked for came 2-5 s later
(CELERY-FACTS.md). ``mover_pool_grow`` does the same grow and then runs that maintenance itself,
in the worker's event loop as the timer would, so the child is forked before the reply is sent:
the reply's ``processes`` says the pool's size after it, and the controller measures the grow's
latency from the round trip.

**Shrink.** Celery's ``pool_shrink`` takes idle children only and refuses when every child is
busy, so a pool that grew into a burst kept every slot until the burst was over (a long burst
that saturates the store paid for slots that brought nothing). ``mover_pool_shrink_to(size)``
retires children as their chunks finish: it lowers the consumer's prefetch at once (so a child
that finishes gets no new chunk and goes idle), then, on the worker's timer, takes one idle
child at a time until the pool has ``size`` processes. No chunk is interrupted. It names the
size wanted, not a count, so sending it twice retires nothing twice; a later grow first takes
back retirements not yet done.

Workers without this module answer "No such control command"; the controller then falls back
to ``pool_grow`` / ``pool_shrink``. Registered when the worker's app module
(:mod:`mover.workers.app`) imports it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.control import control_command

log = logging.getLogger(__name__)

#: The commands' names (what the controller broadcasts).
GROW = "mover_pool_grow"
SHRINK_TO = "mover_pool_shrink_to"
#: Seconds between two looks for an idle child while retirements are pending: a child that
#: finished its chunk is taken within this, well before the next decision tick.
RETIRE_POLL_S = 0.05


class _Retirements:
    """Children still to retire from one worker's pool, and the timer entry that retires them.

    ``pending`` prefetch slots were already given back; each retirement then only removes the
    process. One child at a time: billiard keeps a terminated child in its list (counted idle)
    until it has exited, so a second shrink meanwhile would take the same child again.
    """

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.pending = 0
        self.entry: Any = None

    def set_pending(self, pending: int) -> None:
        """Retire ``pending`` children in all (more or fewer than before: the prefetch follows)."""
        delta = pending - self.pending
        qos = self.consumer.qos
        if delta > 0:
            qos.decrement_eventually(delta * self.consumer.prefetch_multiplier)
        elif delta < 0:
            qos.increment_eventually(-delta * self.consumer.prefetch_multiplier)
        qos.update()
        self.pending = pending
        if pending > 0 and self.entry is None:
            self.entry = self.consumer.timer.call_repeatedly(RETIRE_POLL_S, self.tick)
        self.tick()

    def tick(self) -> None:
        """Take one idle child if one is free and none is still on its way out."""
        if self.pending <= 0:
            self._stop()
            return
        maintain = getattr(self.consumer.pool, "maintain_pool", None)
        if maintain is not None:
            maintain()  # join children that have exited, as billiard's own timer would
        pool = self.consumer.pool._pool
        children = list(pool._pool)
        if any(getattr(c, "_controlled_termination", False) for c in children):
            # The last one taken is still listed (running, or exited and not yet joined):
            # billiard counts it idle, and its shrink would take it again.
            return
        if not any(not pool._worker_active(c) for c in children):
            return  # every child is still on its chunk
        try:
            pool.shrink(1)
        except ValueError:  # taken by a chunk between the look and the shrink
            return
        self.pending -= 1
        consumer = self.consumer
        consumer.initial_prefetch_count = consumer.pool.num_processes * consumer.prefetch_multiplier
        log.info("pool: retired one child, %d to go", self.pending)
        if self.pending <= 0:
            self._stop()

    def _stop(self) -> None:
        if self.entry is not None:
            self.entry.cancel()
            self.entry = None


def _retirements(consumer: Any) -> _Retirements:
    found = getattr(consumer, "_mover_retirements", None)
    if found is None:
        found = _Retirements(consumer)
        consumer._mover_retirements = found
    return found


def _processes(pool: Any) -> int | None:
    processes = getattr(getattr(pool, "_pool", None), "_pool", None)
    return len(processes) if processes is not None else None


@control_command(args=[("n", int)], signature="[N=1]", name=GROW)
def mover_pool_grow(state: Any, n: int = 1, **_: Any) -> dict[str, Any]:
    """Grow the prefork pool by ``n`` and start the new processes now; retirements not yet
    done are taken back first (their processes are still there)."""
    consumer = state.consumer
    if consumer.controller.autoscaler:
        return {"error": "pool_grow is not supported with --autoscale"}
    retiring = _retirements(consumer)
    kept = min(n, retiring.pending)
    if kept:
        retiring.set_pending(retiring.pending - kept)
        n -= kept
    pool = consumer.pool
    if n > 0:
        pool.grow(n)
        consumer._update_prefetch_count(n)
        maintain = getattr(pool, "maintain_pool", None)
        if maintain is not None:
            maintain()  # fork the new children now, not at the next 5 s maintenance tick
    return {"ok": "pool grown", "processes": _processes(pool)}


@control_command(args=[("size", int)], signature="SIZE", name=SHRINK_TO)
def mover_pool_shrink_to(state: Any, size: int = 1, **_: Any) -> dict[str, Any]:
    """Bring the pool down to ``size`` processes (at least 1), each child retired once its
    chunk is done."""
    consumer = state.consumer
    if consumer.controller.autoscaler:
        return {"error": "pool_shrink is not supported with --autoscale"}
    pool = consumer.pool
    retiring = _retirements(consumer)
    target = max(1, int(size))
    retiring.set_pending(max(0, int(pool.num_processes) - target))
    return {"ok": "pool shrinking", "processes": _processes(pool), "retiring": retiring.pending}
