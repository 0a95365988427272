"""The default placement: the most free space where stores report it, else round robin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from mover.errors import NotEnoughSpace
from mover.placement import Candidate, Placement, PlacementRequest
from mover.planning import human

#: Keep this share of a store free, as CloudStack skips stores beyond 90 % used.
HEADROOM = 0.10


class CapacityPlacement(Placement):
    """Stores that report free space: the one with the most, after the copy leaves
    :data:`HEADROOM` of it free; a store that reports too little is skipped. Stores that report
    nothing (object stores) take turns: the catalogue's turn counter picks, round robin.

    When some report and some do not, the reporting ones are preferred: a known fit is better
    than an unknown one.
    """

    name: ClassVar[str] = "capacity"
    summary: ClassVar[str] = "most free space where reported, else round robin"

    def choose(self, candidates: Sequence[Candidate], request: PlacementRequest) -> Candidate:
        reporting = [c for c in candidates if c.free_bytes is not None]
        size = request.size or 0
        fits = [c for c in reporting if (c.free_bytes or 0) * (1 - HEADROOM) >= size]
        if fits:
            return max(fits, key=lambda c: (c.free_bytes or 0, c.name))
        silent = sorted((c for c in candidates if c.free_bytes is None), key=lambda c: c.name)
        if silent:
            return silent[request.turn % len(silent)]
        most = max(reporting, key=lambda c: c.free_bytes or 0)
        raise NotEnoughSpace(
            f"no image store in {request.scope} can hold {request.kind} {request.name!r} "
            f"({human(size)}): the most free is {human(most.free_bytes or 0)} on {most.name}"
        )
