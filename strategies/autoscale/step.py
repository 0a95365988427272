"""Step scaling: bands of backlog per slot mapped to step changes, with a cool-down.

As AWS step scaling: the metric falls into exactly one band (bands have no gaps and no overlaps,
from 0 to infinity, checked at construction), and the band says how many slots to add or remove.
After a change the queue waits ``cooldown_s`` before the next one, so a change has time to land
(a grow takes 2-5 s) and show in the metric; a scale-up may cut a scale-down's cool-down short,
because a growing backlog should never wait for a shrink to settle.

The metric is backlog per slot: (waiting + in flight) / current slots; infinite (the top band)
when work waits and the queue has no slot yet. Per slot rather than absolute, so that the same
bands stop adding once there are enough slots instead of adding on every interval while a large
backlog drains.

Two rules shared with every shipped strategy (:mod:`mover.autoscale_learning`): no
slot is added when the chunks waiting drain before it could start and work an interval, and
none past the knee, the level of busy slots where throughput stopped rising.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from mover import autoscale_learning as learning
from mover.autoscale import AutoscaleStrategy, Decision, Observations, ScaleState
from mover.errors import UsageError

#: ``(lower, upper, change)``: backlog per slot in ``[lower, upper)`` changes the slots by
#: ``change``.
Band = tuple[float, float, int]

#: Shed slots fast when most are idle (below 0.5 chunk per slot), one at a time when a few are;
#: hold while each slot has up to 8 chunks (about two 5 s intervals of 64 MiB chunks) of work,
#: a dead band wide enough that steady arrivals do not flap; add one, or two when far behind.
DEFAULT_BANDS: tuple[Band, ...] = (
    (0.0, 0.5, -8),
    (0.5, 1.0, -1),
    (1.0, 8.0, 0),
    (8.0, 30.0, 1),
    (30.0, math.inf, 2),
)


def parse_bands(text: str) -> tuple[Band, ...]:
    """Parse ``"0:0.5:-4,0.5:1:-1,1:24:0,24:inf:+2"`` (lower:upper:change, comma-separated)."""
    bands: list[Band] = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3:
            raise UsageError(f"step: band {item!r} is not lower:upper:change")
        try:
            bands.append((float(parts[0]), float(parts[1]), int(parts[2])))
        except ValueError as exc:
            raise UsageError(f"step: band {item!r}: {exc}") from exc
    return tuple(bands)


def check_bands(bands: Sequence[Sequence[Any]]) -> tuple[Band, ...]:
    """The bands, validated: sorted, from 0 to infinity, each starting where the last ended."""
    out: list[Band] = []
    for band in bands:
        if len(band) != 3:
            raise UsageError(f"step: band {band!r} is not (lower, upper, change)")
        lower, upper, change = float(band[0]), float(band[1]), band[2]
        if not isinstance(change, int) or isinstance(change, bool):
            raise UsageError(f"step: band {band!r}: change must be an integer number of slots")
        if not lower < upper:
            raise UsageError(f"step: band {band!r}: lower must be below upper")
        out.append((lower, upper, change))
    if not out:
        raise UsageError("step: at least one band is needed")
    if out[0][0] != 0:
        raise UsageError(f"step: the first band must start at 0, not {out[0][0]:g} (a gap)")
    for prev, nxt in itertools.pairwise(out):
        if nxt[0] < prev[1]:
            raise UsageError(f"step: bands {prev} and {nxt} overlap")
        if nxt[0] > prev[1]:
            raise UsageError(f"step: gap between bands {prev} and {nxt}")
    if out[-1][1] != math.inf:
        raise UsageError(f"step: the last band must end at inf, not {out[-1][1]:g} (a gap)")
    return tuple(out)


class StepStrategy(AutoscaleStrategy):
    """Bands of backlog per slot mapped to step changes, with a cool-down.

    Parameters:
        bands (sequence of (lower, upper, change), or a string for :func:`parse_bands`):
            backlog per slot in ``[lower, upper)`` adds ``change`` slots (negative removes).
            Default :data:`DEFAULT_BANDS`.
        cooldown_s (float): seconds after a change before the next change of the same queue;
            a scale-up is allowed during a scale-down's cool-down. Default 5.
    """

    name = "step"
    summary = "bands of backlog per slot mapped to step changes, with a cool-down"

    def __init__(
        self, bands: Sequence[Sequence[Any]] | str = DEFAULT_BANDS, cooldown_s: float = 10.0
    ) -> None:
        if isinstance(bands, str):
            bands = parse_bands(bands)
        if not cooldown_s >= 0:
            raise UsageError(f"step: cooldown_s must be >= 0, got {cooldown_s}")
        self.bands = check_bands(bands)
        self.cooldown_s = float(cooldown_s)

    def band(self, metric: float) -> Band:
        """The band that holds ``metric``."""
        for band in self.bands:
            if band[0] <= metric < band[1]:
                return band
        return self.bands[-1]  # metric == inf: work waiting and no slot

    def decide(self, observations: Observations, state: ScaleState) -> Decision:
        now = observations.time_s
        last: dict[str, Any] = dict(state.history.get("last_change", {}))
        answers: dict[str, tuple[int, str, int]] = {}
        for queue, obs in observations.queues.items():
            current = state.current(queue)
            # No slot and work waiting is the worst case there is: the top band.
            metric = obs.backlog / current if current else math.inf if obs.backlog else 0.0
            lower, upper, change = self.band(metric)
            what = f"backlog {obs.backlog} over {current} slots = {metric:.1f} per slot"
            band = f"band [{lower:g}, {upper:g}) says {change:+d}"
            wanted = max(0, current + change)
            limited = learning.limit(
                state, obs, queue, current, state.clamp(queue, current + change)
            )
            target, note = limited.desired, limited.note
            wanted = limited.wanted(wanted)
            band = f"{band}; {note}" if note else band
            if target == current:
                answers[queue] = (current, f"{what}: {band}; hold {current}", wanted)
                continue
            up = target > current
            since, direction = last.get(queue, [None, 0])
            cooling = since is not None and now - since < self.cooldown_s
            if cooling and not (up and direction < 0):
                answers[queue] = (
                    current,
                    f"{what}: {band}; hold {current}, cooling down for another "
                    f"{since + self.cooldown_s - now:.0f} s",
                    wanted,
                )
                continue
            if up or not note.startswith("cap at"):  # a cap's step back starts no cool-down
                last[queue] = [now, 1 if up else -1]
            answers[queue] = (
                target,
                f"{what}: {band}; {'up' if up else 'down'} to {target}",
                wanted,
            )
        return Decision.per_queue(answers, {"last_change": last})
