"""A vendor autoscale strategy: one slot per ``chunks_per_slot`` waiting, nothing else.

It exists to prove that a package outside mover plugs an autoscale strategy in through the
``mover.autoscale`` entry-point group (``vendorx-ratio``) and that the simulator and the CLI run
it without any edit of the core. Deliberately naive: no stabilization window, no cool-down.
"""

from __future__ import annotations

import math

from mover.autoscale import AutoscaleStrategy, Decision, Observations, ScaleState
from mover.errors import UsageError


class RatioStrategy(AutoscaleStrategy):
    """``ceil(backlog / chunks_per_slot)`` slots, within the bounds.

    Parameters:
        chunks_per_slot (int): backlog (waiting + in flight) each slot should carry; >= 1.
            Default 10.
    """

    name = "vendorx-ratio"
    summary = "vendor X's naive ratio of backlog to slots (test plugin)"
    #: How many decisions this strategy made, so tests can see it was used.
    decisions = 0

    def __init__(self, chunks_per_slot: int = 10) -> None:
        if not isinstance(chunks_per_slot, int) or chunks_per_slot < 1:
            raise UsageError(
                f"vendorx-ratio: chunks_per_slot must be an int >= 1, got {chunks_per_slot!r}"
            )
        self.chunks_per_slot = chunks_per_slot

    def decide(self, observations: Observations, state: ScaleState) -> Decision:
        type(self).decisions += 1
        answers = {
            q: (
                state.clamp(q, math.ceil(obs.backlog / self.chunks_per_slot)),
                f"backlog {obs.backlog} / {self.chunks_per_slot} per slot",
            )
            for q, obs in observations.queues.items()
        }
        return Decision.per_queue(answers, {})
