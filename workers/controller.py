"""The autoscale controller: observe, decide, act, once per interval (``mover autoscale``).

Each tick:

1. **Observe** (:class:`mover.fleetstate.observer.Observer`): per queue the depth over every
   priority band, the chunks in flight, the workers consuming it with their real pool sizes, recent
   bytes/s, chunks/s and error rate.
2. **Decide**: the configured strategy's ``decide`` (pure) gets the observations and a
   :class:`~mover.autoscale.ScaleState` (the slots asked for so far, the bounds, with each
   store's ``max_streams`` as the bound of its queue, and the strategy's own history);
   :func:`~mover.autoscale.validate_decision` checks the answer.
3. **Plan**: each queue's desired slots are split evenly across the prefork workers consuming
   it (bigger pools take the remainder, so nothing moves for nothing); a worker's target is
   the sum of its shares within ``[min_per_worker, max_per_worker]``.
4. **Act**: ``pool_grow`` / ``pool_shrink`` with ``destination=[worker]``. A grow lands after
   2-5 s and a shrunk child lingers until it exits, so a change sent and not yet seen is
   remembered (``settle_s``) and never sent twice. A shrink (``mover_pool_shrink_to``,
   :mod:`mover.workers.pool_control`) names the pool size wanted and retires children as
   their chunks finish, so a pool that overshot into a saturated store gives the slots back
   during the burst, not after it; a worker without that command gets ``pool_shrink`` for the
   children idle at the last look, and a refused one ("All processes busy") is tried again
   next tick. When a queue wants more slots than
   its workers can hold and every one of them is at ``max_per_worker``, the launcher is asked
   for more worker processes; when the fleet could do without one of the launched workers for
   ``idle_s``, one is stopped.
5. **Log** one line (:mod:`mover.workers.decision_log`): what each queue was decided from, the
   action and its reason, and what was done.

Safety:

- only workers that answered ``inspect`` are scaled (never one it did not find), only prefork
  pools without ``--autoscale`` (the others cannot grow or shrink), and only workers its own
  launcher started are ever stopped;
- ``dry_run`` observes, decides and logs what it would do; it sends nothing, launches
  nothing, and writes no state;
- the state (the strategy's history, slots asked for, pool changes in flight, when the surplus
  began) is kept in Redis after every tick, and a lock (renewed each tick, expiring after
  three intervals) keeps two controllers from fighting: a restarted controller takes over
  where the last one stopped, and the launcher's state file gives it the workers started
  before.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from mover import autoscale_learning as learning
from mover.autoscale import (
    DEFAULT_STRATEGY,
    AutoscaleStrategy,
    Observations,
    ScaleState,
    get_strategy,
    validate_decision,
)
from mover.errors import MoverError, UsageError
from mover.fleetstate import limits, metrics_recorder
from mover.fleetstate.observer import Observer, Snapshot, WorkerInfo
from mover.launcher import Launcher
from mover.workers import decision_log
from mover.workers.decision_log import QueueReport, Tick
from mover.workers.pool_control import GROW, SHRINK_TO

log = logging.getLogger("mover.autoscale")

#: Prefix of the controller's keys in Redis.
STATE_PREFIX = "mover:autoscale:"
#: Seconds after a tick that new work triggered before the next look: by then the first
#: chunks of the burst have finished, and their rate says whether more slots pay.
FOLLOW_UP_S = 2.0


@dataclass
class ControllerConfig:
    """What ``mover autoscale`` was told.

    Attributes:
        strategy: the registered strategy name; params its parameters.
        interval_s: seconds between ticks.
        min_concurrency, max_concurrency: slots per queue (the strategy's bounds).
        min_per_worker, max_per_worker: pool size bounds of each worker.
        dry_run: decide and log only.
        queues: the queues to manage (default: every queue a worker consumes, but ``exclude``).
        exclude: queues never managed.
        max_workers: most workers the launcher may have running at once.
        idle_s: seconds the fleet must do without a launched worker before one is stopped.
        launch_timeout_s: seconds a launched worker has to show up before another is asked.
        settle_s: seconds a pool change sent counts as coming, unless seen earlier.
        name: the controller's name (its lock and state in Redis).
        keep_workers: leave launched workers running when the controller exits.
        poll_s: seconds between two looks at the queues' lengths between ticks (one
            pipelined ``LLEN`` of every priority band); when a queue grew, the next tick runs
            at once instead of up to ``interval_s`` later. 0 turns it off.
    """

    strategy: str = DEFAULT_STRATEGY
    params: dict[str, Any] = field(default_factory=dict)
    interval_s: float = 5.0
    min_concurrency: int = 0
    max_concurrency: int = 16
    min_per_worker: int = 1
    max_per_worker: int = 8
    dry_run: bool = False
    queues: list[str] | None = None
    exclude: tuple[str, ...] = ("celery",)
    max_workers: int = 4
    idle_s: float = 30.0
    launch_timeout_s: float = 60.0
    settle_s: float = 15.0
    name: str = "default"
    keep_workers: bool = False
    poll_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise UsageError(f"--interval must be > 0, got {self.interval_s}")
        if not 1 <= self.min_per_worker <= self.max_per_worker:
            raise UsageError(
                f"need 1 <= --min-per-worker ({self.min_per_worker}) <= --max-per-worker "
                f"({self.max_per_worker})"
            )
        if not 0 <= self.min_concurrency <= self.max_concurrency:
            raise UsageError(
                f"need 0 <= --min ({self.min_concurrency}) <= --max ({self.max_concurrency})"
            )
        if self.max_workers < 0 or self.idle_s < 0:
            raise UsageError("--max-workers and --idle must be >= 0")
        if self.poll_s < 0:
            raise UsageError(f"--poll must be >= 0, got {self.poll_s}")


@dataclass
class ControllerState:
    """What survives a tick, and a restart (kept in Redis as JSON)."""

    history: dict[str, Any] = field(default_factory=dict)
    concurrency: dict[str, int] = field(default_factory=dict)
    changes: dict[str, list[float]] = field(default_factory=dict)  # worker -> [size, sent]
    launches: dict[str, float] = field(default_factory=dict)  # launched name -> asked at
    surplus_since: float | None = None
    time_s: float = 0.0
    #: Seconds a grow took to land, measured (EMA); the strategies' ``ScaleState.grow_s``.
    grow_s: float = 3.5
    #: What was learned of each queue (:mod:`mover.autoscale_learning`).
    learned: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, allow_nan=False)

    @classmethod
    def from_json(cls, raw: str | bytes | None) -> ControllerState:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(
                history=dict(data.get("history") or {}),
                concurrency={k: int(v) for k, v in (data.get("concurrency") or {}).items()},
                changes={k: list(v) for k, v in (data.get("changes") or {}).items()},
                launches={k: float(v) for k, v in (data.get("launches") or {}).items()},
                surplus_since=data.get("surplus_since"),
                time_s=float(data.get("time_s") or 0.0),
                grow_s=float(data.get("grow_s") or 3.5),
                learned=dict(data.get("learned") or {}),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("autoscale: ignoring unreadable saved state: %s", exc)
            return cls()


def base_name(worker: str) -> str:
    return worker.partition("@")[0]


def split_targets(
    desired: Mapping[str, int], workers: Mapping[str, WorkerInfo], config: ControllerConfig
) -> tuple[dict[str, int], dict[str, int]]:
    """Per-worker pool targets from per-queue desired slots, and the slots each queue wants
    beyond what its workers can hold at ``max_per_worker`` (to be met by more workers)."""
    scalable = {n: w for n, w in workers.items() if w.prefork}
    share = dict.fromkeys(scalable, 0)
    unmet: dict[str, int] = {}
    for queue, want in desired.items():
        consumers = [w for w in workers.values() if queue in w.queues]
        fixed = sum(w.pool for w in consumers if not w.prefork)
        movable = sorted((w for w in consumers if w.prefork), key=lambda w: (-w.pool, w.name))
        need = max(0, want - fixed)
        capacity = len(movable) * config.max_per_worker
        if need > capacity:
            unmet[queue] = need - capacity
        if not movable:
            continue
        base, extra = divmod(need, len(movable))
        for i, w in enumerate(movable):
            share[w.name] += base + (1 if i < extra else 0)
    targets = {
        n: max(config.min_per_worker, min(config.max_per_worker, s)) for n, s in share.items()
    }
    return targets, unmet


def _text(value: Any) -> str | None:
    """A Redis reply as text (clients may or may not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value


def _replies_ok(replies: Any) -> tuple[bool, str]:
    """Whether every reply of a control command says ok; the first error's text."""
    if not replies:
        return False, "no reply"
    for reply in replies:
        for answer in reply.values():
            if isinstance(answer, dict) and "error" in answer:
                return False, str(answer["error"])
    return True, ""


def _unknown_command(error: str) -> bool:
    """Whether a control reply's error says the worker lacks the command (an older mover):
    then the controller falls back to Celery's own."""
    return any(w in error.lower() for w in ("no such", "keyerror"))


class Controller:
    """The control loop; see the module docstring.

    Parameters:
        config: what it was told.
        app: the fleet's Celery app.
        broker: Redis client on the broker (queues); state: Redis client for the
            controller's state, the statistics and the limits (the job store's Redis).
        launcher: starts and stops worker processes; None to scale pools only.
        strategy: a strategy instance (default: built from ``config``).
        observer: default one on ``broker`` and ``state``.
    """

    def __init__(
        self,
        config: ControllerConfig,
        app: Any,
        broker: redis.Redis,
        state: redis.Redis | None = None,
        launcher: Launcher | None = None,
        strategy: AutoscaleStrategy | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.redis = state if state is not None else broker
        self.launcher = launcher
        self.strategy = strategy or get_strategy(config.strategy, **config.params)
        self.observer = observer or Observer(
            app,
            broker,
            self.redis,
            window_s=config.interval_s,
            queues=config.queues,
            exclude=config.exclude,
        )
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.state = ControllerState()
        self._loaded = False
        self._stop = threading.Event()
        self._plain_grows: set[str] = set()
        self._plain_shrinks: set[str] = set()
        #: Each managed queue's depth at the last look (tick or poll).
        self._depths: dict[str, int] = {}
        #: The last tick was for new work: look again soon (FOLLOW_UP_S).
        self._follow_up = False

    # -- state and lock ---------------------------------------------------------------------

    @property
    def state_key(self) -> str:
        return f"{STATE_PREFIX}{self.config.name}:state"

    @property
    def lock_key(self) -> str:
        return f"{STATE_PREFIX}{self.config.name}:lock"

    def _hold_lock(self) -> bool:
        """Take or renew the controller lock; False when another controller holds it."""
        ttl_ms = int(max(3 * self.config.interval_s, 5.0) * 1000)
        if self.redis.set(self.lock_key, self.id, nx=True, px=ttl_ms):
            return True
        if _text(self.redis.get(self.lock_key)) == self.id:
            self.redis.pexpire(self.lock_key, ttl_ms)
            return True
        return False

    def _release_lock(self) -> None:
        if _text(self.redis.get(self.lock_key)) == self.id:
            self.redis.delete(self.lock_key)

    def _load_state(self) -> None:
        if not self._loaded:
            self.state = ControllerState.from_json(self.redis.get(self.state_key))
            self._loaded = True
            if self.state.time_s:
                log.info(
                    "autoscale: resuming the state saved %.0f s ago",
                    time.time() - self.state.time_s,
                )

    def _save_state(self) -> None:
        self.redis.set(self.state_key, self.state.to_json(), ex=7 * 24 * 3600)

    # -- one tick ---------------------------------------------------------------------------

    def expected_slots(self, queue: str, workers: Mapping[str, WorkerInfo]) -> int:
        """Slots the pools serving ``queue`` have, counting a change sent and not landed yet
        as done: what the strategy decides from (never the last value it asked for, which
        the pools' bounds may not have kept)."""
        total = 0
        for w in workers.values():
            if queue not in w.queues:
                continue
            pending = self.state.changes.get(w.name) if w.prefork else None
            total += int(pending[0]) if pending else w.pool
        return total

    def scale_state(
        self, observations: Observations, workers: Mapping[str, WorkerInfo] | None = None
    ) -> ScaleState:
        """The strategy's view: the slots the pools really have (plus changes in flight),
        bounds that honour every store's cap, the measured grow time, what was learned."""
        cfg = self.config
        concurrency = {}
        for queue, obs in observations.queues.items():
            concurrency[queue] = (
                self.expected_slots(queue, workers) if workers is not None else obs.slots
            )
        bounds = limits.queue_bounds(
            observations.queues, (cfg.min_concurrency, cfg.max_concurrency)
        )
        return ScaleState(
            concurrency,
            cfg.min_concurrency,
            cfg.max_concurrency,
            bounds_per_queue=bounds,
            history=self.state.history,
            grow_s=self.state.grow_s,
            interval_s=cfg.interval_s,
            learned=self.state.learned,
        )

    def tick(self, now: float | None = None) -> Tick | None:
        """Observe, decide, act once. None when another controller holds the lock."""
        cfg = self.config
        if not cfg.dry_run and not self._hold_lock():
            log.info("autoscale: another controller holds %s; waiting", self.lock_key)
            return None
        self._load_state()
        now = time.time() if now is None else now
        snap = self.observer.observe(now)
        observations = snap.observations
        self._depths = {q: o.depth for q, o in observations.queues.items()}
        self._note_landed(snap, now)
        self.state.learned = learning.learn(self.state.learned, observations, cfg.interval_s)
        state = self.scale_state(observations, snap.workers)
        decision = validate_decision(
            self.strategy, self.strategy.decide(observations, state), observations, state
        )
        targets, unmet = split_targets(decision.desired, snap.workers, cfg)
        tick = Tick(snap, decision, targets)
        if not cfg.dry_run:
            self._act_on_pools(tick, now)
        self._act_on_workers(tick, unmet, now)
        tick.queues = self._queue_reports(tick, state, unmet)
        tick.line = self._describe(tick, unmet)
        log.info("%s", tick.line, extra={"autoscale": [q.fields() for q in tick.queues]})
        self.state.history = dict(decision.history)
        if not cfg.dry_run:
            self.state.concurrency = {q: int(v) for q, v in decision.desired.items()}
            self.state.time_s = now
            self._save_state()
            metrics_recorder.save_decision(  # what mover metrics shows of this tick
                self.redis,
                cfg.name,
                self.strategy.name or cfg.strategy,
                decision.desired,
                state.concurrency,
                decision.reasons or {},
                now,
                queues={q.queue: q.fields() for q in tick.queues},
            )
        else:
            # Nothing was applied: the next dry-run tick starts from the slots that exist.
            self.state.concurrency = {}
        return tick

    def _act_on_pools(self, tick: Tick, now: float) -> None:
        """Grow or shrink each worker's pool toward its target.

        A pool change is remembered until ``inspect`` shows it (or ``settle_s`` passed, for
        a grow): more grows may follow a grow in flight. A shrink names the size wanted
        (``mover_pool_shrink_to``), so it is sent again each tick until the pool shows it: a
        repeat retires nothing twice, and a retirement waiting for long chunks never expires.
        A worker without that command gets one ``pool_shrink`` per landed change, for at most
        the children idle at the last look (see :meth:`_shrink`).
        """
        changes = self.state.changes
        for name, target in tick.targets.items():
            real = tick.snapshot.workers[name].pool
            pending = changes.get(name)
            # A retirement lasts as long as the chunks it waits for: it never expires, and is
            # sent again each tick (it names a size: a repeat retires nothing twice).
            retiring = (
                pending is not None and int(pending[0]) < real and name not in self._plain_shrinks
            )
            settled = now - pending[1] >= self.config.settle_s if pending else False
            if pending and (real == pending[0] or (settled and not retiring)):
                changes.pop(name)
                pending = None
            expected = int(pending[0]) if pending else real
            try:
                if target > expected:
                    ok, error = self._grow(name, target - expected, target)
                    if ok:
                        changes[name] = [target, now]
                        tick.grown[name] = target - expected
                    else:
                        log.warning("autoscale: %s refused to grow: %s", name, error)
                elif (pending is None and target < expected) or (retiring and target < real):
                    k = self._shrink(tick, name, real, expected, target)
                    if k:
                        changes[name] = [
                            target if name not in self._plain_shrinks else real - k,
                            now,
                        ]
            except Exception as exc:  # a broker hiccup: try again next tick
                log.warning("autoscale: cannot scale %s: %s", name, exc)
        for name in list(changes):
            if name not in tick.targets:
                changes.pop(name)

    def _shrink(self, tick: Tick, name: str, real: int, expected: int, target: int) -> int:
        """Bring ``name``'s pool down to ``target``: ``mover_pool_shrink_to`` retires busy
        children as their chunks finish (it names the size, so a repeat retires nothing
        twice); a worker without it gets ``pool_shrink`` for the children idle at the last
        look. The number of slots given up (0: nothing sent, or refused)."""
        control = self.app.control
        if name not in self._plain_shrinks:
            replies = control.broadcast(
                SHRINK_TO, arguments={"size": target}, destination=[name], reply=True, timeout=1.0
            )
            ok, error = _replies_ok(replies)
            if ok:
                if expected > target:
                    tick.shrunk[name] = expected - target
                return expected - target
            if not _unknown_command(error):
                log.warning("autoscale: %s refused to shrink: %s", name, error)
                return 0
            self._plain_shrinks.add(name)
        # One call for all: billiard's shrink takes distinct idle children in one pass, but a
        # later call would count a dying child idle again.
        k = min(expected - target, max(0, real - tick.snapshot.workers[name].busy))
        if k == 0:
            tick.refused.append(name)
            return 0
        replies = control.pool_shrink(k, destination=[name], reply=True, timeout=1.0)
        if _replies_ok(replies)[0]:
            tick.shrunk[name] = k
        else:  # a task took a child meanwhile: some went, wait and look
            tick.refused.append(name)
        return k

    def _grow(self, name: str, n: int, target: int) -> tuple[bool, str]:
        """Grow ``name``'s pool by ``n``: ``mover_pool_grow`` (the processes start before it
        answers, and the answer's round trip is the grow's latency), else ``pool_grow``."""
        control = self.app.control
        started = time.monotonic()
        replies = control.broadcast(
            GROW, arguments={"n": n}, destination=[name], reply=True, timeout=2.0
        )
        ok, error = _replies_ok(replies)
        if ok:
            size = next(iter(replies[0].values())).get("processes")
            if isinstance(size, int) and size >= target:
                self._measured_grow(time.monotonic() - started)
            return True, ""
        if not _unknown_command(error):
            return False, error  # no reply: never send a second grow that might add twice
        self._plain_grows.add(name)  # a worker without mover_pool_grow
        replies = control.pool_grow(n, destination=[name], reply=True, timeout=1.0)
        return _replies_ok(replies)

    def _measured_grow(self, seconds: float) -> None:
        """Fold one measured grow latency into ``grow_s`` (EMA: the host's load changes)."""
        self.state.grow_s = round(0.5 * self.state.grow_s + 0.5 * max(0.0, seconds), 3)

    def _note_landed(self, snap: Snapshot, now: float) -> None:
        """A ``pool_grow`` seen landed: at most this long since it was sent (an upper bound,
        a tick late; ``mover_pool_grow`` measures itself)."""
        for name, (size, sent) in self.state.changes.items():
            worker = snap.workers.get(name)
            landed = worker is not None and worker.pool == int(size) and now - sent > 0
            if landed and name in self._plain_grows:
                self._measured_grow(now - sent)
                self._plain_grows.discard(name)

    def _act_on_workers(self, tick: Tick, unmet: Mapping[str, int], now: float) -> None:
        """Ask the launcher for more workers, or fewer (see the module docstring)."""
        if self.launcher is None:
            return
        cfg = self.config
        snap = tick.snapshot
        running = self.launcher.running()
        seen = {w.base_name for w in snap.workers.values()} | set(snap.workers)
        launches = {} if cfg.dry_run else self.state.launches
        for name in list(launches):
            if base_name(name) in seen or name not in running:
                launches.pop(name)
            elif now - launches[name] > cfg.launch_timeout_s:
                log.warning(
                    "autoscale: launched worker %s has not joined after %g s",
                    name,
                    cfg.launch_timeout_s,
                )
                launches.pop(name)
        # More: a queue wants more than its workers can hold, and all of them are full.
        wanted = 0
        for queue, extra in unmet.items():
            pools = [w for w in snap.consumers(queue) if w.prefork]
            # A dry run grew nothing: judge by the targets it would have set.
            sizes = [tick.targets.get(w.name, w.pool) if cfg.dry_run else w.pool for w in pools]
            if all(size >= cfg.max_per_worker for size in sizes):
                wanted = max(wanted, math.ceil(extra / cfg.max_per_worker))
        room = cfg.max_workers - len(running)
        if wanted and not launches and room > 0:
            n = min(wanted, room)
            if cfg.dry_run:
                tick.launched = [f"(would start {n})"]
            else:
                tick.launched = self.launcher.start(n)
                for name in tick.launched:
                    launches[name] = now
            self.state.surplus_since = None
            return
        # Fewer: the other workers could hold every slot wanted, for idle_s.
        ours = [
            w
            for w in snap.workers.values()
            if w.prefork and w.base_name in {base_name(r) for r in running}
        ]
        if not ours or launches:
            self.state.surplus_since = None
            return
        total = sum(tick.targets.values())
        others = len([w for w in snap.workers.values() if w.prefork]) - 1
        if unmet or total > others * cfg.max_per_worker:
            self.state.surplus_since = None
            return
        if self.state.surplus_since is None:
            self.state.surplus_since = now
        if now - self.state.surplus_since < cfg.idle_s:
            return
        # The launched worker doing the least: smallest pool, then the newest.
        victim = min(ours, key=lambda w: (w.pool, w.name))
        prefer = [r for r in running if base_name(r) == victim.base_name]
        if cfg.dry_run:
            tick.stopped = [f"(would stop {victim.name})"]
            return
        tick.stopped = self.launcher.stop(1, prefer=prefer)
        self.state.surplus_since = None
        for name in tick.stopped:
            self.state.changes.pop(name, None)

    def _queue_reports(
        self, tick: Tick, state: ScaleState, unmet: Mapping[str, int]
    ) -> list[QueueReport]:
        return decision_log.queue_reports(tick, state, unmet, self.config)

    def _describe(self, tick: Tick, unmet: Mapping[str, int]) -> str:
        name = self.strategy.name or self.config.strategy
        return decision_log.describe(tick, unmet, name, self.config.dry_run)

    # -- the loop ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current tick."""
        self._stop.set()

    def new_work(self) -> list[str]:
        """The queues whose length grew since the last look (one pipelined round trip of
        ``LLEN`` over their priority bands); remembers the lengths seen."""
        if not self._depths:
            return []
        depths = self.observer.depths(list(self._depths))
        grew = [q for q, d in depths.items() if d > self._depths.get(q, 0)]
        self._depths.update(depths)
        return grew

    def _wait_for_next_tick(self, started: float) -> None:
        """Sleep until the next tick is due, or until work arrives on a queue (polled every
        ``poll_s``): a burst is decided on within ``poll_s`` of being published, not up to
        an interval later, and looked at again :data:`FOLLOW_UP_S` later, once its first
        chunks have finished."""
        cfg = self.config
        deadline = started + cfg.interval_s
        if self._follow_up and cfg.poll_s > 0:
            deadline = min(deadline, started + FOLLOW_UP_S)
        self._follow_up = False
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if cfg.poll_s <= 0:
                self._stop.wait(left)
                return
            self._stop.wait(min(cfg.poll_s, left))
            try:
                grew = self.new_work()
            except Exception as exc:  # the broker away: the tick will say so
                log.debug("autoscale: cannot poll the queues: %s", exc)
                continue
            if grew:
                log.debug("autoscale: new work on %s: deciding now", ", ".join(grew))
                self._follow_up = True
                return

    def run(self, ticks: int | None = None) -> None:
        """Tick every ``interval_s`` (and at once when work arrives between ticks) until
        :meth:`stop` (or ``ticks`` ticks); then stop the launched workers unless
        ``keep_workers``."""
        done = 0
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.tick()
                except MoverError:
                    raise  # a strategy that breaks its contract, a bad configuration
                except Exception as exc:  # Redis or the broker away: keep going, look again
                    log.warning("autoscale: tick failed, trying again: %s", exc)
                done += 1
                if ticks is not None and done >= ticks:
                    break
                self._wait_for_next_tick(started)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop launched workers (unless kept), release the lock."""
        try:
            cfg = self.config
            if self.launcher is not None and not cfg.keep_workers and not cfg.dry_run:
                stopped = self.launcher.stop_all()
                if stopped:
                    log.info("autoscale: stopped launched worker(s) %s", ", ".join(stopped))
            if not self.config.dry_run:
                self._release_lock()
        except (redis.RedisError, OSError) as exc:
            log.warning("autoscale: shutdown: %s", exc)
        finally:
            self.observer.close()
