"""What the fleet learns of each queue from the rates it observes, shared by every strategy.

Two questions every shipped strategy asks before it adds a slot, and the answers need memory
that outlives one burst and one strategy's history:

1. **Can a new slot pay?** A slot asked for now starts ``ScaleState.grow_s`` seconds later (a
   measured ``pool_grow``). If the chunks waiting drain before it could do a decision
   interval's work, it only costs (the issue's "grew 1 -> 2 after the burst was done").
2. **Where does throughput stop rising?** Each level of busy slots is measured from the chunks
   that finished in a rate window (their mean duration and their count give the mean busy
   slots, Little's law, and what those slots moved); the **knee** is the highest level up to
   which each added slot still brought at least ``MIN_GAIN`` of the per-slot bytes/s of the
   level below. Past it, more slots only cost (and a store can get slower).

The memory is plain data (JSON), one entry per queue, kept by the caller (the controller in
Redis, the simulator in a dict) and handed to strategies as :attr:`ScaleState.learned`;
:func:`learn` is pure: memory and observations in, new memory out. Levels are forgotten after
:data:`MEMORY_S`, so a store that got faster is measured again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from mover.autoscale import Observations, QueueObservation, ScaleState

MiB = 1024 * 1024
#: Seconds a measured level is trusted (across bursts; a level measured again is refreshed).
MEMORY_S = 900.0
#: Weight of a new measurement of a level already measured.
EMA_ALPHA = 0.5
#: An added slot is worth it while it adds at least this share of the per-slot bytes/s of the
#: level below: 0.5 stops where two more slots bring what one brought before (a host or store
#: past saturation), not at the first sign of sub-linear growth.
MIN_GAIN = 0.5
#: A window with fewer busy slots than this on average was mostly idle: it measures nothing.
IDLE_BELOW = 0.75


def mib(bytes_per_s: float) -> str:
    """A rate in the one unit the decision log uses."""
    return f"{bytes_per_s / MiB:.1f} MiB/s"


def _queue_memory(learned: Mapping[str, Any], queue: str, now: float) -> dict[str, Any]:
    mem = dict(learned.get(queue) or {})
    mem["levels"] = {
        k: list(v) for k, v in dict(mem.get("levels") or {}).items() if now - v[2] <= MEMORY_S
    }
    return mem


def learn(
    learned: Mapping[str, Any], observations: Observations, window_s: float
) -> dict[str, Any]:
    """The memory after ``observations`` (pure; ``learned`` is not changed).

    Each window in which chunks finished measures one level: by Little's law the mean number
    of busy slots over the window is chunks/s x the mean seconds a chunk took, and those
    slots moved bytes/s between them. Rounded to a whole level, its bytes/s and chunks/s are
    kept (an EMA over repeated measurements). Windows where slots sat idle measure a lower
    level, which is what they were; a burst too short to fill a window still measures one;
    a window mostly idle measures none.
    ``window_s`` is unused but kept for callers that pass their interval.
    """
    del window_s
    now = observations.time_s
    out = {q: dict(v) for q, v in learned.items() if isinstance(v, Mapping)}
    for queue, obs in observations.queues.items():
        mem = _queue_memory(out, queue, now)
        busy = obs.chunks_per_s * obs.chunk_s  # mean busy slots over the window
        # A window mostly idle (a burst just began or ended) measures no level: its bytes/s
        # is diluted by the idle time and would make one slot look slow.
        if obs.bytes_per_s > 0 and busy >= IDLE_BELOW:
            # Never more than the slots that exist: chunks that began before the window and
            # ended in it bring their whole duration, which can read as slots never there.
            pool = sum(obs.pool_sizes.values())
            level = min(round(busy), pool) if pool > 0 else round(busy)
            bytes_per_chunk = obs.bytes_per_s / obs.chunks_per_s
            cps = level / obs.chunk_s
            bps = cps * bytes_per_chunk
            key = str(level)
            old = mem["levels"].get(key)
            if old is not None:
                bps = EMA_ALPHA * bps + (1 - EMA_ALPHA) * old[0]
                cps = EMA_ALPHA * cps + (1 - EMA_ALPHA) * old[1]
            mem["levels"][key] = [bps, cps, now]
        out[queue] = mem
    return out


@dataclass(frozen=True)
class Knee:
    """Where throughput stops rising, from the measured levels of one queue.

    Attributes:
        level: the highest level reached from the lowest measured one with every step paying.
        above: the next measured level, the one that did not pay (None: none measured above).
        rates: bytes/s by level, for the reason.
    """

    level: int
    above: int | None
    rates: Mapping[int, float]

    @property
    def saturated(self) -> bool:
        """A level above the knee was measured and brought too little."""
        return self.above is not None

    @property
    def cap(self) -> int | None:
        """Most slots worth having: the knee; one more while the level just above it was
        never measured (the knee may sit between two measured levels). None: no cap known."""
        if self.above is None:
            return None
        return self.level if self.above == self.level + 1 else self.level + 1

    def why(self) -> str:
        if self.above is None:
            return f"{self.level} slots: {mib(self.rates[self.level])}, nothing measured above"
        return (
            f"throughput stops rising past {self.level} slots ({self.level}: "
            f"{mib(self.rates[self.level])}, {self.above}: {mib(self.rates[self.above])})"
        )


def knee(state: ScaleState, queue: str, min_gain: float = MIN_GAIN) -> Knee | None:
    """The knee of ``queue`` from :attr:`ScaleState.learned`; None before any level was
    measured."""
    mem = state.learned.get(queue) or {}
    rates = {int(k): float(v[0]) for k, v in dict(mem.get("levels") or {}).items()}
    if not rates:
        return None
    levels = sorted(rates)
    here = levels[0]
    for above in levels[1:]:
        gain_per_slot = (rates[above] - rates[here]) / (above - here)
        if gain_per_slot < min_gain * rates[here] / here:
            return Knee(here, above, rates)
        here = above
    return Knee(here, None, rates)


def chunks_per_s(state: ScaleState, obs: QueueObservation, slots: int) -> float:
    """Chunks/s that ``slots`` busy slots finish: the measured level, else the per-slot rate of
    the nearest measured level (linear: optimistic, so it never hides a slot that pays), else
    what the observer saw; 0 when nothing is known."""
    mem = state.learned.get(obs.queue) or {}
    levels = {int(k): float(v[1]) for k, v in dict(mem.get("levels") or {}).items()}
    if slots in levels:
        return levels[slots]
    if levels:
        near = min(levels, key=lambda n: (abs(n - slots), n))
        return levels[near] / near * slots
    if obs.chunk_s > 0:
        return slots / obs.chunk_s
    return obs.chunks_per_s


def pay_s(state: ScaleState) -> float:
    """Seconds of work a slot asked for now must find for it to pay: it starts ``grow_s``
    later, and once the work is gone it sits idle until the decision that removes it, up to
    an interval later; with two intervals of work it is busy at least two thirds of what it
    costs (one interval made a slot for a 7 s burst cost as much idle as it worked)."""
    return state.grow_s + 2 * state.interval_s


def slots_that_pay(state: ScaleState, obs: QueueObservation, upto: int) -> int:
    """The most slots, up to ``upto``, that would each still find :func:`pay_s` seconds of
    work once started: ``n`` such that the backlog lasts that long at ``n`` slots' rate (at
    least 1; ``upto`` when no rate is known)."""
    need_s = pay_s(state)
    best = 1
    for n in range(1, max(1, upto) + 1):
        rate = chunks_per_s(state, obs, n)
        if rate <= 0:
            return max(1, upto)
        if obs.backlog / rate >= need_s:
            best = n
    return best


def growth_pays(state: ScaleState, obs: QueueObservation, current: int) -> tuple[bool, str]:
    """Whether a slot asked for now would still find :func:`pay_s` seconds of work once it
    has started; the reason when it would not.

    With no rate known at all (the queue's first burst, before any chunk finished) a pool
    that is already busy waits for the next look (the controller looks again within seconds
    of new work); an idle or empty pool may grow."""
    if current <= 0:
        return True, ""
    rate = chunks_per_s(state, obs, min(current, max(1, obs.backlog)))
    if rate <= 0:
        if obs.busy or obs.unacked:
            return False, "no chunk of this queue finished yet: its rate is unknown"
        return True, ""
    drain_s = obs.depth / rate
    if drain_s >= pay_s(state):
        return True, ""
    return False, (
        f"the {obs.depth} waiting drain in {drain_s:.1f} s at {current} slots, before a new "
        f"slot (starts in {state.grow_s:.1f} s) could work {2 * state.interval_s:g} s"
    )


class Limited(NamedTuple):
    """``desired`` after the shared rules, the words to add to the reason ("" when nothing
    changed), and whether growth was held because it could not pay (a hold, not a cap)."""

    desired: int
    note: str
    held: bool = False

    def wanted(self, wanted: int) -> int:
        """What the strategy wanted, as the log's cap/hold tells it: a growth that could not
        pay is a hold, so nothing was wanted beyond what it got."""
        return self.desired if self.held else max(wanted, self.desired)


def limit(
    state: ScaleState, obs: QueueObservation, queue: str, current: int, desired: int
) -> Limited:
    """``desired`` with the shared rules applied (no growth that cannot pay, none past the
    knee, known levels first, then unmeasured ones climbed by half again)."""
    lo, _ = state.bounds(queue)
    note = ""
    found = knee(state, queue)
    cap = None if found is None or found.cap is None else max(found.cap, lo)
    # Past the knee: never grow, and give back the slots above it while chunks still wait
    # (they only slow the others); a queue that is draining gives them back anyway.
    if cap is not None and desired > cap and (desired > current or obs.depth > 0):
        desired = max(cap, min(desired, current)) if desired > current and obs.depth == 0 else cap
        note = f"cap at {desired}: {found.why()}" if found else ""
    if desired > current:
        pays, why = growth_pays(state, obs, current)
        if not pays:
            return Limited(current, "; ".join(filter(None, (note, f"hold {current}: {why}"))), True)
        # A pool below the highest level measured to pay goes there first (known ground).
        # From there, levels never measured are probed one decision at a time, by half again
        # the highest measured level (one step while it is small), so each level on the way
        # is measured and the knee is found, not jumped over: a slot past the knee is retired
        # only once its chunk is done, and until then it loads the store.
        known = found.level if found is not None else 0
        if found is None or found.above is None:
            reach = known if current < known else max(known + max(1, known // 2), current + 1, 2)
            if desired > reach:
                desired = max(reach, lo)
                note = "; ".join(
                    filter(None, (note, f"to {desired} first: measured up to {known} slots"))
                )
    return Limited(desired, note)
