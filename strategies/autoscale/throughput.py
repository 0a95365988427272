"""Throughput seeking, after CERN FTS3's optimizer: add streams while bytes/s still rises.

FTS3 tunes the number of active transfers per link every 60 s (see shared/ANCHORS.md and
``src/server/services/optimizer/OptimizerConnections.cpp``). Its rules, and how they read here:

1. success rate below 97 % -> one step down (hold if it is improving and at least 96 %); a
   success rate that worsens -> one step down. Here success = 1 - ``error_rate`` of the chunks
   that finished in the observer's window.
2. no throughput data -> hold.
3. never more actives than queued files: no increase beyond the chunks waiting.
4. throughput rising by more than ``rise_margin`` over the level below -> +``step_up``;
   falling by an order of magnitude (``round(log10(bytes/s))`` drops, FTS3's noise damping) ->
   one step down.

What mover adds, because chunks finish in seconds (not minutes) and a slot is a process that
costs while idle (an FTS3 active is only a limit):

- a level is judged only once the last change has landed (a grow takes 2-5 s) and it has run for
  ``settle_s`` with every slot busy and chunks waiting; otherwise the queue, not the store,
  limits the throughput, and the strategy holds;
- each level's bytes/s is remembered for ``memory_s``: a level measured slower than the one below
  (by more than ``fall_margin``) is stepped back from, and a level above that was no faster is
  not probed again while that memory is fresh. With FTS3's order-of-magnitude rule alone, a store
  that loses 5 % per extra stream would be pushed far past its optimum;
- no slot is added when the waiting chunks would drain before it could start (the measured
  ``pool_grow`` time) and work a decision interval, nor past the knee that every strategy shares
  (:mod:`mover.autoscale_learning`); a queue that comes back starts at the best level
  remembered for it (across bursts), and grows straight to it when its backlog pays for that;
- slots follow the backlog down: never more than the highest backlog of ``queue_window_s``, nor,
  when nothing has waited for ``idle_window_s``, more than the chunks in flight plus
  ``spare_slots``; an empty queue goes to its minimum at once.

That is the answer to "more streams can make a store slower": the strategy settles on the
concurrency where aggregate bytes/s stops rising, and the simulator shows it (``builtin:big``).
"""

from __future__ import annotations

import math
from typing import Any

from mover import autoscale_learning as learning
from mover.autoscale import (
    AutoscaleStrategy,
    Decision,
    Observations,
    QueueObservation,
    ScaleState,
)
from mover.errors import UsageError

_mb = learning.mib


class ThroughputStrategy(AutoscaleStrategy):
    """Seek the concurrency where aggregate bytes/s stops rising (FTS3's optimizer, in seconds).

    Parameters:
        start_streams (int): slots for a queue that has none when work arrives, when no fresh
            measurement says better. Default 2 (FTS3's minimum actives).
        step_up (int): slots added while throughput rises. Default 1 (FTS3; 2 is its
            aggressive mode).
        rise_margin (float): relative rise of bytes/s over the level below that counts as
            rising. Default 0.05.
        fall_margin (float): relative fall below the level below that steps back. Default 0.05.
        min_success_rate (float): below it, step down (FTS3: 0.97).
        base_success_rate (float): an improving success rate at least this high holds instead
            (FTS3: 0.96).
        settle_s (float): seconds a level must have run, all slots present, before its bytes/s
            is judged; at least the observer's measurement window. Default 5.
        memory_s (float): seconds a level's measured bytes/s is trusted. Default 120.
        queue_window_s (float): the slots never exceed the highest backlog of this many seconds
            (long enough that a steady trickle does not flap). Default 30.
        idle_window_s (float): a queue whose backlog stayed 0 this long goes to its minimum at
            once; the spare-slot rule looks this far back too. Default 5 (the last tick at a 5 s
            interval: an empty queue frees its slots at once; a grow is 2-5 s away if work
            comes back).
        ema_alpha (float): weight of a new measurement of a level already measured. Default 0.5.
        spare_slots (int | None): when nothing has waited for ``idle_window_s``, keep at most the
            chunks in flight plus this many slots; None keeps the ``queue_window_s`` cap only.
            Default 1.
        slow_start (bool): while each added slot still adds its full share of bytes/s, add half
            again the current slots instead of ``step_up``. Default False: on a store that
            saturates within a few streams it overshoots the optimum.
        drain_horizon_s (float | None): no slot is added when the waiting chunks would drain
            within this many seconds at the current chunks/s. Default None: the measured grow
            time plus one decision interval (the rule every shipped strategy applies).
    """

    name = "throughput"
    summary = "add streams while aggregate bytes/s rises, back off when it falls (FTS3)"

    def __init__(
        self,
        start_streams: int = 2,
        step_up: int = 1,
        rise_margin: float = 0.05,
        fall_margin: float = 0.05,
        min_success_rate: float = 0.97,
        base_success_rate: float = 0.96,
        settle_s: float = 5.0,
        memory_s: float = 120.0,
        queue_window_s: float = 30.0,
        idle_window_s: float = 5.0,
        ema_alpha: float = 0.5,
        spare_slots: int | None = 1,
        slow_start: bool = False,
        drain_horizon_s: float | None = None,
    ) -> None:
        checks = {
            "start_streams": start_streams >= 1,
            "step_up": step_up >= 1,
            "rise_margin": 0 <= rise_margin < 1,
            "fall_margin": 0 <= fall_margin < 1,
            "min_success_rate": 0 <= min_success_rate <= 1,
            "base_success_rate": 0 <= base_success_rate <= min_success_rate,
            "settle_s": settle_s >= 0,
            "memory_s": memory_s > 0,
            "queue_window_s": queue_window_s >= 0,
            "idle_window_s": 0 <= idle_window_s <= queue_window_s,
            "ema_alpha": 0 < ema_alpha <= 1,
            "spare_slots": spare_slots is None or spare_slots >= 0,
            "drain_horizon_s": drain_horizon_s is None or drain_horizon_s >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise UsageError(f"throughput: bad value for {', '.join(bad)} (see the docstring)")
        self.start_streams = int(start_streams)
        self.step_up = int(step_up)
        self.rise_margin = float(rise_margin)
        self.fall_margin = float(fall_margin)
        self.min_success_rate = float(min_success_rate)
        self.base_success_rate = float(base_success_rate)
        self.settle_s = float(settle_s)
        self.memory_s = float(memory_s)
        self.queue_window_s = float(queue_window_s)
        self.idle_window_s = float(idle_window_s)
        self.ema_alpha = float(ema_alpha)
        self.spare_slots = None if spare_slots is None else int(spare_slots)
        self.slow_start = bool(slow_start)
        self.drain_horizon_s = None if drain_horizon_s is None else float(drain_horizon_s)

    def decide(self, observations: Observations, state: ScaleState) -> Decision:
        now = observations.time_s
        queues: dict[str, Any] = dict(state.history.get("queues", {}))
        answers: dict[str, tuple[int, str, int]] = {}
        for queue, obs in observations.queues.items():
            mem = _fresh(queues.get(queue), now, self.memory_s, self.queue_window_s)
            wanted, why = self._decide_one(obs, state, queue, mem, now)
            current = state.current(queue)
            limited = learning.limit(state, obs, queue, current, state.clamp(queue, wanted))
            desired, note = limited.desired, limited.note
            wanted = limited.wanted(wanted)
            why = f"{why}; {note}" if note else why
            if desired > current:  # a new level to settle; a shrink may be refused (busy)
                mem["changed_at"] = now
                mem["landed_at"] = None
            queues[queue] = mem
            answers[queue] = (desired, why, wanted)
        return Decision.per_queue(answers, {"queues": queues})

    def _decide_one(
        self, obs: QueueObservation, state: ScaleState, queue: str, mem: dict[str, Any], now: float
    ) -> tuple[int, str]:
        current = state.current(queue)
        lo, _ = state.bounds(queue)
        levels: dict[str, list[float]] = mem["levels"]
        mem["backlog"].append([now, obs.backlog, obs.depth])
        queue_cap = max(b[1] for b in mem["backlog"])
        recent = [b for b in mem["backlog"] if b[0] > now - self.idle_window_s]
        if self.spare_slots is not None and all(b[2] == 0 for b in recent):
            # Nothing waited for the idle window: the slots beyond those in flight (and a spare)
            # are idle, and an idle slot is a process that costs.
            queue_cap = min(queue_cap, max(b[1] for b in recent) + self.spare_slots)
        finished = obs.chunks_per_s > 0
        success = 1.0 - obs.error_rate if finished else 1.0
        prev_success = mem.get("success", 1.0)
        if finished:  # a window where nothing finished says nothing of the success rate
            mem["success"] = success
        if mem.get("landed_at") is None and obs.slots >= current:
            mem["landed_at"] = now

        def capped(value: int, why: str) -> tuple[int, str]:
            # Rule 3, FTS3's reading: no increase beyond the chunks waiting to use it.
            if current < value and obs.depth < value and current > 0:
                value, why = current, f"{why}; but only {obs.depth} waiting: hold"
            # A slot that lands (2-5 s) after the queue is gone only costs; by default the
            # shared rule (learning.growth_pays) judges it, after this.
            drains_s = obs.depth / obs.chunks_per_s if obs.chunks_per_s else math.inf
            horizon = self.drain_horizon_s
            if horizon is not None and current < value and current > 0 and drains_s < horizon:
                value = current
                why = f"{why}; but the queue drains in {drains_s:.0f} s at this rate: hold"
            # Mover's addition: a slot costs while idle, so never more slots than the backlog
            # (waiting + in flight) of the window.
            if value > max(lo, queue_cap):
                return max(lo, queue_cap), f"{why}; capped at the backlog ({queue_cap})"
            return value, why

        if max(b[1] for b in recent) == 0:
            return lo, f"queue empty for {self.idle_window_s:g} s: down to {lo}"
        best = learning.knee(state, queue)
        if current == 0:
            if best is not None:
                start = learning.slots_that_pay(state, obs, best.level)
                return capped(
                    max(start, lo),
                    f"work arrived, no slot: start at {start} (best level remembered "
                    f"{best.level}; the backlog pays for {start})",
                )
            return capped(
                max(self.start_streams, lo), f"work arrived, no slot: start at {self.start_streams}"
            )
        saturated = best is not None and best.saturated
        if not saturated and current < self.start_streams and obs.depth > 0:
            # Fewer slots than FTS3's minimum actives with work waiting, and no knee known
            # below it: start there now, as an empty queue would (the shared rules hold it
            # back when it cannot pay).
            return capped(
                self.start_streams,
                f"work waiting on {current} slot(s): start at {self.start_streams}",
            )
        back = learning.slots_that_pay(state, obs, best.level) if best is not None else 0
        if best is not None and current < best.level and obs.depth > 0:
            # Back toward the best level remembered for this queue (across bursts), not +1 a
            # settle time, as far as the backlog pays for.
            if current < back:
                return capped(
                    back, f"work waiting: back to {back} (best level remembered {best.level})"
                )
            return capped(
                current,
                f"best level remembered {best.level}, but the backlog pays for {back}: "
                f"hold {current}",
            )
        # Rule 1: the success-rate gate (recoverable failures make a store slower for all).
        if finished and success < self.min_success_rate:
            if success > prev_success and success >= self.base_success_rate:
                return current, f"success {success:.1%} low but improving: hold {current}"
            return current - 1, f"success {success:.1%} < {self.min_success_rate:.0%}: step down"
        if finished and success < prev_success:
            return (
                current - 1,
                f"success worsening ({prev_success:.1%} -> {success:.1%}): step down",
            )
        if obs.slots < current or mem.get("landed_at") is None:
            return capped(current, f"{obs.slots} of {current} slots up: wait for the grow to land")
        if now - mem["landed_at"] < self.settle_s:
            return capped(current, f"level {current} measured for less than {self.settle_s:g} s")
        # Rule 2: no data, no decision.
        if obs.bytes_per_s <= 0:
            return capped(current, "no throughput data: hold")
        if obs.unacked < current or obs.depth == 0:
            return capped(
                current,
                f"{obs.unacked} of {current} slots busy, {obs.depth} waiting: the queue limits "
                f"throughput ({_mb(obs.bytes_per_s)}), hold",
            )
        # A clean measurement of this level: remember it (EMA over repeated measurements).
        key = str(current)
        old = levels.get(key)
        bps = obs.bytes_per_s
        if old is not None:
            bps = self.ema_alpha * bps + (1 - self.ema_alpha) * old[0]
        levels[key] = [bps, now]
        lower = [int(k) for k in levels if int(k) < current]
        higher = [int(k) for k in levels if int(k) > current]
        here = f"level {current}: {_mb(bps)}"
        if higher:
            nxt = min(higher)
            if levels[str(nxt)][0] <= bps * (1 + self.rise_margin):
                nxt_bps = _mb(levels[str(nxt)][0])
                return current, f"{here}, {nxt} was no faster ({nxt_bps}): hold"
        if not lower:
            return capped(
                current + self._step(current, True), f"{here}, nothing measured below: probe up"
            )
        ref_level = max(lower)
        ref = levels[str(ref_level)][0]
        than = f"{ref_level}: {_mb(ref)}"
        if bps > ref * (1 + self.rise_margin):
            # Each added slot still brought its full share: the store is far from saturation.
            linear = bps / current >= (1 - self.fall_margin) * ref / ref_level
            step = self._step(current, linear)
            if higher:
                step = min(step, min(higher) - current)
            return capped(current + step, f"{here} > {than}, rising: add {step}")
        # Rule 4's order of magnitude, then the finer step back past the optimum.
        if round(math.log10(bps)) < round(math.log10(ref)):
            return current - 1, f"{here} fell an order of magnitude from {than}: step down"
        if bps < ref * (1 - self.fall_margin):
            return current - 1, f"{here} < {than}, past the optimum: step back"
        return capped(current, f"{here} ~ {than}, flat: hold")

    def _step(self, current: int, linear: bool) -> int:
        """Slots to add: ``step_up``, or half again the current slots while throughput still
        grows in proportion (``slow_start``, as TCP's window; FTS3 ramps by +1 per minute)."""
        if self.slow_start and linear:
            return max(self.step_up, current // 2)
        return self.step_up


def _fresh(mem: Any, now: float, memory_s: float, queue_window_s: float) -> dict[str, Any]:
    """A copy of one queue's memory with stale measurements dropped (never mutate the input)."""
    out: dict[str, Any] = dict(mem or {})
    out["levels"] = {
        k: list(v) for k, v in dict(out.get("levels", {})).items() if now - v[1] <= memory_s
    }
    out["backlog"] = [list(b) for b in out.get("backlog", []) if b[0] > now - queue_window_s]
    out.setdefault("landed_at", None)
    return out
