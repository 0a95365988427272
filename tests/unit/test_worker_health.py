"""The worker watchdog's decision (workers/health.py): when a worker must exit so that its
supervisor restarts it, and when it must not (the fleet's real exits are tested with real
Redis and workers in tests/integration/test_fleet_faults.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("celery")

from mover.workers import health

STALL = health.STALL_S


def live_at(t: float) -> health._Liveness:
    live = health._Liveness()
    live.loop_ran("w1@h", ("mover",))
    live.last_loop = live.last_beat = t
    return live


def test_a_fresh_worker_stays() -> None:
    assert health.exit_reason(live_at(100.0), 100.0 + STALL / 2) is None


def test_a_stalled_event_loop_ends_the_worker() -> None:
    live = live_at(100.0)
    live.last_beat = 100.0 + STALL  # Redis answers, but the loop does not run
    reason = health.exit_reason(live, 100.0 + STALL + 1)
    assert reason is not None and "event loop" in reason


def test_redis_silent_for_too_long_ends_the_worker() -> None:
    live = live_at(100.0)
    live.last_loop = 100.0 + STALL  # the loop runs, Redis does not answer
    reason = health.exit_reason(live, 100.0 + STALL + 1)
    assert reason is not None and "Redis" in reason


def test_never_connected_or_shutting_down_or_busy_in_the_loop_stays() -> None:
    waiting = health._Liveness()  # never connected: Celery retries and logs; not a zombie
    assert health.exit_reason(waiting, 10 * STALL) is None
    stopping = live_at(100.0)
    stopping.armed, stopping.shutting_down = False, True  # a warm shutdown takes its time
    assert health.exit_reason(stopping, 100.0 + 10 * STALL) is None
    solo = live_at(100.0)
    solo.solo, solo.busy = True, 1  # a chunk runs in the loop's own thread (solo pool)
    solo.last_beat = 100.0 + 10 * STALL
    assert health.exit_reason(solo, 100.0 + 10 * STALL) is None
