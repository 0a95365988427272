"""``mover_pool_grow``: a pool grow that starts its new processes at once (worker side).

Celery's ``pool_grow`` only raises the pool's target: billiard starts the new child at its next
maintenance tick, every 5 s, so a slot asked for came 2-5 s later (CELERY-FACTS.md). This
remote-control command does the same grow and then runs that maintenance itself, in the
worker's event loop as the timer would, so the child is forked before the reply is sent: the
reply's ``processes`` says the pool's size after it, and the controller measures the grow's
latency from the round trip. Workers without this module answer "No such control command";
the controller then falls back to ``pool_grow``.

Registered when the worker's app module (:mod:`mover.workers.app`) imports it.
"""

from __future__ import annotations

from typing import Any

from celery.worker.control import control_command

#: The command's name (what the controller broadcasts).
GROW = "mover_pool_grow"


@control_command(args=[("n", int)], signature="[N=1]", name=GROW)
def mover_pool_grow(state: Any, n: int = 1, **_: Any) -> dict[str, Any]:
    """Grow the prefork pool by ``n`` and start the new processes now."""
    consumer = state.consumer
    if consumer.controller.autoscaler:
        return {"error": "pool_grow is not supported with --autoscale"}
    pool = consumer.pool
    pool.grow(n)
    consumer._update_prefetch_count(n)
    maintain = getattr(pool, "maintain_pool", None)
    if maintain is not None:
        maintain()  # fork the new children now, not at the next 5 s maintenance tick
    processes = getattr(getattr(pool, "_pool", None), "_pool", None)
    return {"ok": "pool grown", "processes": len(processes) if processes is not None else None}
