"""A worker's health: heartbeats, a watchdog that ends a zombie, and the fleet's sweeps.

Why: a worker that loses Redis must reconnect, or exit so that its supervisor (systemd
``Restart=always``, compose ``restart: unless-stopped``, a Kubernetes Deployment) starts a fresh
one; it must never stay a silent zombie that holds no connection and answers nothing.
Celery reconnects by itself on broker restarts (with the guards of
:mod:`mover.workers.consumer` against a kombu bug that used to end the worker about once in
ten restarts). A worker whose event loop stops for any other reason (a hung reconnect, a
shutdown stuck on a dead socket, a bug of the same kind elsewhere) is the zombie the watchdog
is for.

What runs where, in the worker's main process:

- a consumer bootstep (:class:`HealthStep`) adds a timer to Celery's event loop that only
  records "the loop ran" and the queues consumed: no I/O in the loop;
- the *monitor* thread, every :data:`~mover.presence.BEAT_S` seconds, writes the heartbeat to
  Redis (:mod:`mover.presence`) while the loop is fresh, with a client of short time-outs and no
  retries; it exits the worker (code :data:`EXIT_STALLED`, pool children killed first, their
  chunks come back by the visibility timeout) when the loop has not run for
  :data:`STALL_S` seconds, or Redis has not answered a heartbeat for as long. It is armed once
  the worker first connected (a worker waiting for Redis at start-up logs its retries and is
  not a zombie) and disarmed by a requested shutdown (a warm shutdown waits for its chunks);
- the *sweeper* thread, every :data:`SWEEP_S` seconds while the heartbeat succeeds, takes over
  commits whose lease expired and retries pending aborts (:mod:`mover.workers.tasks`).

With the solo pool a chunk runs in the loop's own thread: the loop is "busy", not stalled,
while a task runs there.

Settings (environment): ``MOVER_WORKER_STALL_S`` (default 60), ``MOVER_HEARTBEAT_S`` (2),
``MOVER_SWEEP_S`` (5).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import redis
from celery import bootsteps, signals
from redis.backoff import NoBackoff
from redis.retry import Retry

from mover.presence import BEAT_S, Presence

log = logging.getLogger("mover.worker.health")

#: Seconds without a run of the event loop (or a heartbeat Redis accepted) before the worker
#: exits so that its supervisor restarts it (``MOVER_WORKER_STALL_S``).
STALL_S = float(os.environ.get("MOVER_WORKER_STALL_S") or 60)
#: Seconds between two sweeps for expired commit leases and pending aborts (``MOVER_SWEEP_S``).
SWEEP_S = float(os.environ.get("MOVER_SWEEP_S") or 5)
#: The exit code of a worker the watchdog ends (EX_TEMPFAIL: try again, i.e. restart it).
EXIT_STALLED = 75


class _Liveness:
    """What the event loop last told the monitor; written by the loop, read by the threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_loop = 0.0  # monotonic time the loop last ran; 0 before the first connect
        self.last_beat = 0.0  # monotonic time Redis last accepted a heartbeat
        self.hostname = ""
        self.queues: tuple[str, ...] = ()
        self.armed = False  # connected once, and no shutdown was asked for
        self.shutting_down = False
        self.solo = False  # tasks run in the loop's own thread
        self.busy = 0  # tasks running in the loop's thread now (solo pool)
        self.started = False

    def loop_ran(self, hostname: str, queues: tuple[str, ...]) -> None:
        with self.lock:
            self.last_loop = time.monotonic()
            self.hostname, self.queues = hostname, queues
            self.armed = not self.shutting_down
            if self.last_beat == 0.0:
                self.last_beat = self.last_loop

    def stalled_for(self, now: float) -> float:
        """Seconds the loop has not run (0 while a task runs in the loop's thread)."""
        with self.lock:
            if not self.armed or self.busy:
                return 0.0
            return now - self.last_loop


_live = _Liveness()


def _queue_names(c: Any) -> tuple[str, ...]:
    consumer = getattr(c, "task_consumer", None)
    return tuple(sorted(q.name for q in getattr(consumer, "queues", None) or ()))


class HealthStep(bootsteps.StartStopStep):
    """Consumer bootstep: a timer in the event loop, and the monitor and sweeper threads."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        self.tref: Any = None
        super().__init__(c, **kwargs)

    def start(self, c: Any) -> None:
        _live.solo = type(c.pool).__module__.endswith(".solo")
        _live.loop_ran(c.hostname, _queue_names(c))
        self.tref = c.timer.call_repeatedly(min(1.0, BEAT_S / 2), self._tick, (c,))
        with _live.lock:
            start_threads = not _live.started
            _live.started = True
        if start_threads:
            threading.Thread(target=_monitor, name="mover-monitor", daemon=True).start()
            threading.Thread(target=_sweeper, name="mover-sweeper", daemon=True).start()

    @staticmethod
    def _tick(c: Any) -> None:
        _live.loop_ran(c.hostname, _queue_names(c))

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            with contextlib.suppress(Exception):
                self.tref.cancel()
            self.tref = None

    shutdown = stop


def _client() -> redis.Redis:
    """A client for heartbeats: short time-outs and no retries, so that a dead Redis shows at
    once instead of after the job store's half minute of retries."""
    from mover.config import jobs_url

    return redis.Redis.from_url(
        jobs_url(),
        socket_connect_timeout=3,
        socket_timeout=3,
        retry=Retry(NoBackoff(), 0),
    )


def _presence() -> Presence:
    prefix = os.environ.get("MOVER_REDIS_PREFIX") or "mover"
    return Presence(_client(), prefix)


def exit_reason(live: _Liveness, now: float) -> str | None:
    """Why the worker must exit at monotonic time ``now``; None while it need not: its event
    loop ran (or a task runs in the loop's thread) and Redis accepted a heartbeat within
    :data:`STALL_S` seconds, or it never connected yet, or a shutdown was asked for."""
    stalled = live.stalled_for(now)
    if stalled > STALL_S:
        return f"its event loop has not run for {stalled:.0f} s (broker lost)"
    with live.lock:
        armed, silent = live.armed, now - live.last_beat
    if armed and silent > STALL_S:
        return f"Redis has not answered its heartbeat for {silent:.0f} s"
    return None


def _monitor() -> None:
    """Heartbeats while the loop runs; exit when it stalls or Redis stays unreachable."""
    presence = _presence()
    reported = False
    while True:
        time.sleep(BEAT_S)
        now = time.monotonic()
        reason = exit_reason(_live, now)
        if reason is not None:
            exit_worker(reason)
        if _live.stalled_for(now) > 2 * BEAT_S:
            continue  # no heartbeat for a loop that does not run: followers see no worker
        with _live.lock:
            hostname, queues = _live.hostname, _live.queues
        try:
            presence.beat(hostname, queues)
        except redis.RedisError as exc:
            if not reported:
                log.warning("heartbeat: cannot reach Redis (%s)", type(exc).__name__)
                reported = True
            continue
        with _live.lock:
            _live.last_beat = time.monotonic()
        if reported:
            log.info("heartbeat: Redis answers again")
            reported = False


def healthy() -> bool:
    """The loop runs and Redis accepted the last heartbeat (what sweeps wait for)."""
    now = time.monotonic()
    with _live.lock:
        return _live.armed and now - _live.last_beat < 3 * BEAT_S + 1


def _sweeper() -> None:
    """Sweep for expired commit leases and due aborts while this worker is healthy."""
    from mover.workers import tasks

    while True:
        time.sleep(SWEEP_S)
        if not healthy():
            continue
        try:
            tasks.sweep()
        except Exception as exc:  # a sweep must never end the thread
            log.warning("sweep: %s: %s", type(exc).__name__, exc)


def _children() -> list[int]:
    """PIDs of this process's children (the prefork pool), from /proc (Linux)."""
    pids: list[int] = []
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(p) for p in open(path).read().split()]  # noqa: SIM115
    return pids


def exit_worker(reason: str) -> None:
    """End this worker at once so that its supervisor starts a fresh one: pool children are
    killed (their unacknowledged chunks come back after the visibility timeout), then the
    main process exits with :data:`EXIT_STALLED`."""
    log.critical(
        "worker %s exits (code %d): %s; its supervisor must restart it",
        _live.hostname or "?",
        EXIT_STALLED,
        reason,
    )
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    sys.stderr.flush()
    for pid in _children():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    os._exit(EXIT_STALLED)


@signals.worker_shutting_down.connect
def _on_shutting_down(**_: Any) -> None:
    """A shutdown someone asked for (SIGTERM, SIGINT): let it take its time, and leave the
    fleet's list of live workers at once."""
    with _live.lock:
        _live.armed = False
        _live.shutting_down = True
        hostname = _live.hostname
    if hostname:
        with contextlib.suppress(redis.RedisError):
            _presence().leave(hostname)


@signals.task_prerun.connect
def _on_task_start(**_: Any) -> None:
    with _live.lock:
        if _live.solo:
            _live.busy += 1


@signals.task_postrun.connect
def _on_task_end(**_: Any) -> None:
    with _live.lock:
        _live.busy = max(0, _live.busy - 1)
