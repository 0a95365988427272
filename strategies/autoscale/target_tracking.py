"""Target tracking on backlog per slot, as the Kubernetes HPA (fed by KEDA) and AWS do.

The recommendation is ``ceil(backlog / target_backlog_per_slot)``, with the backlog counted
right: every priority band plus the chunks in flight (KEDA's Redis scaler reads one list and
misses both). A recommendation above the current concurrency is applied at once; one below it
only when every recommendation of the last ``scale_down_window_s`` agrees, by taking the highest
of them (HPA's scale-down stabilization), so a dip in the backlog does not shed slots that the
next wave needs. A change within the tolerance of the target is ignored, as HPA does (10 %).
An empty queue with nothing in flight is no dip: its slots are idle, and go at once.

Choosing the target (AWS's recipe): acceptable latency / average chunk time. With 64 MiB chunks
taking about 1.3 s and an acceptable wait of about 40 s, 30 chunks per slot.

Two rules shared with every shipped strategy (:mod:`mover.autoscale_learning`): no
slot is added when the chunks waiting drain before it could start and work an interval, and
none past the knee, the level of busy slots where throughput stopped rising.
"""

from __future__ import annotations

import math
from typing import Any

from mover import autoscale_learning as learning
from mover.autoscale import AutoscaleStrategy, Decision, Observations, ScaleState
from mover.errors import UsageError


class TargetTrackingStrategy(AutoscaleStrategy):
    """Keep backlog per slot near a target; up at once, down after a stabilization window.

    Parameters:
        target_backlog_per_slot (float): chunks waiting or in flight per slot to aim at; > 0.
            Default 30.
        scale_down_window_s (float): seconds of recommendations whose highest is taken before
            scaling down; 0 scales down at once. Default 10 (HPA's 300 s is tuned for pods that
            take minutes; chunks take seconds). Without it the pool follows every dip.
        tolerance (float): relative deviation from the target that is ignored, 0..1. Default 0.1.
    """

    name = "target-tracking"
    summary = "backlog per slot near a target; up at once, down after a stabilization window"

    def __init__(
        self,
        target_backlog_per_slot: float = 30.0,
        scale_down_window_s: float = 10.0,
        tolerance: float = 0.1,
    ) -> None:
        if not target_backlog_per_slot > 0:
            raise UsageError(
                f"target-tracking: target_backlog_per_slot must be > 0, got "
                f"{target_backlog_per_slot}"
            )
        if not scale_down_window_s >= 0:
            raise UsageError(
                f"target-tracking: scale_down_window_s must be >= 0, got {scale_down_window_s}"
            )
        if not 0 <= tolerance < 1:
            raise UsageError(f"target-tracking: tolerance must be in [0, 1), got {tolerance}")
        self.target_backlog_per_slot = float(target_backlog_per_slot)
        self.scale_down_window_s = float(scale_down_window_s)
        self.tolerance = float(tolerance)

    def decide(self, observations: Observations, state: ScaleState) -> Decision:
        now = observations.time_s
        windows: dict[str, Any] = dict(state.history.get("recommendations", {}))
        answers: dict[str, tuple[int, str, int]] = {}
        target = self.target_backlog_per_slot
        for queue, obs in observations.queues.items():
            current = state.current(queue)
            backlog = obs.backlog
            what = f"backlog {backlog}"
            raw = math.ceil(backlog / target)
            if current > 0 and abs(backlog / (current * target) - 1) <= self.tolerance:
                rec, why = current, f"{backlog / current:.1f} per slot is within tolerance"
            else:
                rec, why = raw, f"ceil({backlog} / {target:g} per slot) = {raw}"
            wanted = rec
            rec = state.clamp(queue, rec)
            # Recommendations strictly newer than the window's start: a window of W seconds
            # sampled every I seconds holds W / I values, the current one included.
            kept = [[t, r] for t, r in windows.get(queue, []) if t > now - self.scale_down_window_s]
            kept.append([now, rec])
            windows[queue] = kept
            if backlog == 0 and rec < current:
                # Nothing waits and nothing runs: no dip to ride out, the slots are idle.
                desired = rec
                text = f"{what}: queue empty, nothing in flight; scale down to {desired} at once"
            elif rec >= current:
                desired = rec
                verb = "hold" if rec == current else "scale up at once to"
                text = f"{what}: {why}; {verb} {desired}"
            else:
                highest = max(r for _, r in kept)
                desired = state.clamp(queue, min(current, highest))
                if desired < current:
                    text = (
                        f"{what}: {why}; scale down to {desired}, the highest recommendation "
                        f"of the last {self.scale_down_window_s:g} s"
                    )
                else:
                    text = (
                        f"{what}: {why}; hold {desired}: the last "
                        f"{self.scale_down_window_s:g} s recommended up to {highest}"
                    )
            limited = learning.limit(state, obs, queue, current, desired)
            desired, note = limited.desired, limited.note
            answers[queue] = (desired, f"{text}; {note}" if note else text, limited.wanted(wanted))
        return Decision.per_queue(answers, {"recommendations": windows})
