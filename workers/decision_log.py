"""The autoscale controller's decision log: what one tick saw, decided and did, in words.

One line per tick; for each queue it states what the decision was made from, as seen at that
tick (the real pool from ``inspect().stats()``, busy slots, slots starting or stopping, the
backlog, the rate over a window no longer than the interval), the action (``grow to``,
``hold``, ``shrink to``, ``cap at``) with the slots the pools will have, and the reason in
words; then each worker's pool now -> its target, and what was sent. :class:`QueueReport`
holds the same fields for JSON logs and ``mover metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mover.autoscale import Decision, ScaleState
from mover.fleetstate.observer import Snapshot


@dataclass
class Tick:
    """What one tick saw, decided and did (returned for tests and ``--once``)."""

    snapshot: Snapshot
    decision: Decision
    targets: dict[str, int]
    grown: dict[str, int] = field(default_factory=dict)
    shrunk: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    line: str = ""
    queues: list[QueueReport] = field(default_factory=list)


#: A decision's action, in the words of the log.
GROW_TO, HOLD, SHRINK_TO, CAP_AT = "grow to", "hold", "shrink to", "cap at"


@dataclass(frozen=True)
class QueueReport:
    """What one tick decided for one queue, from what it really saw: the log line's fields,
    the same in text, in JSON logs and in ``mover metrics``.

    Attributes:
        queue: the queue.
        pool: pool processes of the workers serving it, as ``inspect().stats()`` showed them
            at this tick (not what was asked for before).
        starting: slots asked for and not in the pool yet (negative: stopping).
        busy: of those, executing a chunk of this queue (``inspect().active()``).
        waiting, in_flight: messages in the broker (every priority band), and delivered not
            yet acknowledged; backlog is their sum.
        bytes_per_s, window_s: the rate of the chunks finished over the last ``window_s``
            seconds (never longer than the decision interval).
        action: ``grow to``, ``hold``, ``shrink to`` or ``cap at``; slots: the pools' total
            after it; wanted: what the strategy would have had without a bound or cap.
        reason: the strategy's words, with the controller's where it changed the number.
    """

    queue: str
    pool: int
    starting: int
    busy: int
    waiting: int
    in_flight: int
    bytes_per_s: float
    window_s: float
    action: str
    slots: int
    wanted: int
    reason: str

    @property
    def backlog(self) -> int:
        return self.waiting + self.in_flight

    def fields(self) -> dict[str, Any]:
        """Plain data for JSON logs and metrics (rates in bytes/s and MiB/s, no epoch time)."""
        return {
            "queue": self.queue,
            "pool": self.pool,
            "starting": self.starting,
            "busy": self.busy,
            "backlog": self.backlog,
            "waiting": self.waiting,
            "in_flight": self.in_flight,
            "bytes_per_s": round(self.bytes_per_s, 1),
            "mib_per_s": round(self.bytes_per_s / 2**20, 1),
            "window_s": self.window_s,
            "action": self.action.partition(" ")[0],
            "slots": self.slots,
            "wanted": self.wanted,
            "reason": self.reason,
        }

    def text(self) -> str:
        moving = ""
        if self.starting > 0:
            moving = f", {self.starting} starting"
        elif self.starting < 0:
            moving = f", {-self.starting} stopping"
        return (
            f"{self.queue}: pool {self.pool} ({self.busy} busy{moving}), backlog {self.backlog} "
            f"({self.waiting} waiting + {self.in_flight} in flight), "
            f"{self.bytes_per_s / 2**20:.1f} MiB/s over {self.window_s:g} s -> "
            f"{self.action} {self.slots}: {self.reason}"
        )


def queue_reports(
    tick: Tick, state: ScaleState, unmet: Mapping[str, int], cfg: Any
) -> list[QueueReport]:
    """Each queue's decision as the pools will carry it out (see :class:`QueueReport`);
    ``cfg`` is the controller's configuration (its per-worker bounds)."""
    snap = tick.snapshot
    decision = tick.decision
    reasons = decision.reasons or {}
    out = []
    for queue, want in decision.desired.items():
        o = snap.observations.queues[queue]
        consumers = snap.consumers(queue)
        expected = state.current(queue)
        slots = sum(tick.targets.get(w.name, w.pool) for w in consumers)
        wanted = max(want, int((decision.wanted or {}).get(queue, want)))
        reason = reasons.get(queue, decision.reason)
        notes = []
        if queue in unmet:
            movable = len([w for w in consumers if w.prefork])
            notes.append(
                f"{movable} worker(s) hold at most {movable * cfg.max_per_worker} "
                f"(--max-per-worker {cfg.max_per_worker})"
            )
        elif slots > want and consumers:
            notes.append(f"the pools keep {slots} (--min-per-worker {cfg.min_per_worker})")
        if wanted > slots:
            action = CAP_AT
        elif slots > expected:
            action = GROW_TO
        elif slots < expected:
            action = SHRINK_TO
        else:
            action = HOLD
        out.append(
            QueueReport(
                queue=queue,
                pool=o.slots,
                starting=expected - o.slots,
                busy=o.busy,
                waiting=o.depth,
                in_flight=o.unacked,
                bytes_per_s=o.bytes_per_s,
                window_s=o.window_s,
                action=action,
                slots=slots,
                wanted=wanted,
                reason="; ".join([reason, *notes]),
            )
        )
    return out


def describe(tick: Tick, unmet: Mapping[str, int], strategy: str, dry_run: bool) -> str:
    """One log line: each queue that matters as it was seen and decided, and what was
    done."""
    parts = []
    quiet = 0
    for q in tick.queues:
        if q.backlog == 0 and q.action == HOLD and q.busy == 0:
            quiet += 1
            continue
        parts.append(q.text())
    if quiet:
        parts.append(f"{quiet} idle queue(s) held")
    pools = ", ".join(
        f"{n} {tick.snapshot.workers[n].pool}->{t}" for n, t in sorted(tick.targets.items())
    )
    acts = []
    if tick.grown:
        acts.append("grow " + ", ".join(f"{n} +{k}" for n, k in tick.grown.items()))
    if tick.shrunk:
        acts.append("shrink " + ", ".join(f"{n} -{k}" for n, k in tick.shrunk.items()))
    if tick.refused:
        acts.append("shrink refused (all busy, retry next tick): " + ", ".join(tick.refused))
    if unmet:
        acts.append("short " + ", ".join(f"{q} {k}" for q, k in unmet.items()))
    if tick.launched:
        acts.append("launch " + ", ".join(tick.launched))
    if tick.stopped:
        acts.append("stop " + ", ".join(tick.stopped))
    mode = " (dry run: nothing sent)" if dry_run else ""
    return (
        f"autoscale {strategy}{mode}: "
        f"{'; '.join(parts) or 'no queues'} | pools: {pools or 'no workers'}"
        f"{' | ' + '; '.join(acts) if acts else ''}"
    )
