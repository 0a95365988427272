"""Throughput seeking, after CERN FTS3's optimizer: add streams while bytes/s still rises.

FTS3 tunes the number of active transfers per link every 60 s (see shared/ANCHORS.md and
``OptimizerConnections.cpp``). Its rules, in order, and how they read here:

1. success rate below 97 % -> one step down (hold if it is improving and at least 96 %); a
   success rate that worsens -> one step down. Here success = 1 - ``error_rate``.
2. no throughput data -> hold.
3. never more actives than queued files. FTS3's actives are a limit that costs nothing when idle;
   here a slot is a process that costs while idle, so the slots follow the backlog down (the
   highest backlog of the last ``queue_window_s``, so that a steady trickle does not flap).
4. throughput rising by more than ``rise_margin`` -> +1 (``step_up``); falling by an order of
   magnitude (``round(log10(bytes/s))`` drops, FTS3's noise damping) -> one step down.

What is added, because chunks finish in seconds, not minutes: a level is only judged once the
last change has landed (a grow takes 2-5 s) and one full measurement (``settle_s``) has been
taken with every slot busy (otherwise the queue, not the store, limits the throughput); each
level's throughput is remembered for ``memory_s``, so that a level measured slower than the one
below it (by more than ``fall_margin``) is stepped back from, and not probed again while that
memory is fresh. That is the answer to "more streams can make a store slower": the strategy
settles on the concurrency where aggregate bytes/s stops rising.
"""

from __future__ import annotations

import math
from typing import Any

from mover.autoscale import (
    AutoscaleStrategy,
    Decision,
    Observations,
    QueueObservation,
    ScaleState,
)
from mover.errors import UsageError


def _mb(bps: float) -> str:
    return f"{bps / 1e6:.1f} MB/s"


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
        queue_window_s (float): the slots never exceed the highest backlog of this many seconds.
            Default 10.
        ema_alpha (float): weight of a new measurement of a level already measured. Default 0.5.
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
        queue_window_s: float = 10.0,
        ema_alpha: float = 0.5,
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
            "ema_alpha": 0 < ema_alpha <= 1,
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
        self.ema_alpha = float(ema_alpha)

    def decide(self, observations: Observations, state: ScaleState) -> Decision:
        now = observations.time_s
        queues: dict[str, Any] = dict(state.history.get("queues", {}))
        answers: dict[str, tuple[int, str]] = {}
        for queue, obs in observations.queues.items():
            mem = _fresh(queues.get(queue), now, self.memory_s, self.queue_window_s)
            desired, why = self._decide_one(obs, state, queue, mem, now)
            desired = state.clamp(queue, desired)
            if desired != state.current(queue):
                mem["changed_at"] = now
                mem["landed_at"] = None
            queues[queue] = mem
            answers[queue] = (desired, why)
        return Decision.per_queue(answers, {"queues": queues})

    def _decide_one(
        self, obs: QueueObservation, state: ScaleState, queue: str, mem: dict[str, Any], now: float
    ) -> tuple[int, str]:
        current = state.current(queue)
        lo, hi = state.bounds(queue)
        levels: dict[str, list[float]] = mem["levels"]
        mem["backlog"].append([now, obs.backlog])
        queue_cap = max(b for _, b in mem["backlog"])
        finished = obs.chunks_per_s > 0
        success = 1.0 - obs.error_rate if finished else 1.0
        prev_success = mem.get("success", 1.0)
        mem["success"] = success
        if mem.get("landed_at") is None and obs.slots >= current:
            mem["landed_at"] = now

        def capped(value: int, why: str) -> tuple[int, str]:
            # Rule 3: never more slots than the backlog (waiting + in flight) of the window.
            if value > max(lo, queue_cap):
                return max(lo, queue_cap), f"{why}; capped at the backlog ({queue_cap})"
            return value, why

        if obs.backlog == 0 and queue_cap == 0:
            return lo, f"queue empty for {self.queue_window_s:g} s: down to {lo}"
        if current == 0:
            best = _best_level(levels)
            start = best if best is not None else self.start_streams
            origin = f"the best measured level ({best})" if best is not None else "start_streams"
            return capped(max(start, lo), f"work arrived, no slot: start at {origin}")
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
        below = levels.get(str(current - 1))
        above = levels.get(str(current + 1))
        here = f"level {current}: {_mb(bps)}"
        if below is None:
            if above is not None and above[0] <= bps * (1 + self.rise_margin):
                return current, f"{here}, {current + 1} was no faster ({_mb(above[0])}): hold"
            return capped(current + self.step_up, f"{here}, nothing measured below: probe up")
        ref = below[0]
        if bps > ref * (1 + self.rise_margin):
            if above is not None and above[0] <= bps * (1 + self.rise_margin):
                return current, f"{here}, {current + 1} was no faster ({_mb(above[0])}): hold"
            return capped(
                current + self.step_up, f"{here} > {current - 1}: {_mb(ref)}, rising: add"
            )
        # Rule 4's order of magnitude, then the finer step back past the optimum.
        if round(math.log10(bps)) < round(math.log10(ref)):
            return current - 1, f"{here} fell an order of magnitude from {_mb(ref)}: step down"
        if bps < ref * (1 - self.fall_margin):
            return current - 1, f"{here} < {current - 1}: {_mb(ref)}, past the optimum: step back"
        return capped(current, f"{here} ~ {current - 1}: {_mb(ref)}, flat: hold")


def _fresh(mem: Any, now: float, memory_s: float, queue_window_s: float) -> dict[str, Any]:
    """A copy of one queue's memory with stale measurements dropped (never mutate the input)."""
    mem = dict(mem or {})
    mem["levels"] = {
        k: list(v) for k, v in dict(mem.get("levels", {})).items() if now - v[1] <= memory_s
    }
    mem["backlog"] = [list(b) for b in mem.get("backlog", []) if b[0] > now - queue_window_s]
    mem.setdefault("landed_at", None)
    return mem


def _best_level(levels: dict[str, list[float]]) -> int | None:
    """The lowest level within 5 % of the best measured bytes/s: the knee, not the plateau."""
    if not levels:
        return None
    best = max(v[0] for v in levels.values())
    return min(int(k) for k, v in levels.items() if v[0] >= 0.95 * best)
