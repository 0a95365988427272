"""A vendor placement: always the candidate whose name sorts last (test plugin).

It proves a placement rule can come from outside mover: it is found through the
``mover.placement`` entry point of this package, and counts its calls so tests can see it ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from mover.placement import Candidate, Placement, PlacementRequest


class LastNamePlacement(Placement):
    name: ClassVar[str] = "vendorx-last"
    summary: ClassVar[str] = "the store whose name sorts last (test plugin)"
    #: How many placements this plugin decided.
    calls: ClassVar[int] = 0

    def choose(self, candidates: Sequence[Candidate], request: PlacementRequest) -> Candidate:
        type(self).calls += 1
        return max(candidates, key=lambda c: c.name)
