"""The placement contract: a plugin of the ``mover.placement`` entry-point group decides which
image store of a scope gets a new copy (the catalogue gathers the candidates,
:mod:`mover.catalogue.placement`). A leaf: plugins import this module and nothing of the
catalogue.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from mover.registry import PLACEMENT, Registry


@dataclass(frozen=True)
class Candidate:
    """An image store a copy may go to.

    Attributes:
        name: the store's name in the catalogue.
        url: its provider URL (secret-free).
        scope: ``zone:NAME`` or ``region``.
        free_bytes: free space its provider reports (:meth:`StoreProvider.free_bytes`), or None
            when the store cannot tell (object stores).
    """

    name: str
    url: str
    scope: str
    free_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlacementRequest:
    """What is being placed: its kind, name and size (None if unknown), where, and the turn."""

    kind: str
    name: str
    size: int | None
    scope: str
    turn: int


class Placement(abc.ABC):
    """A placement plugin. Stateless: anything to remember belongs in the request's ``turn``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    @abc.abstractmethod
    def choose(self, candidates: Sequence[Candidate], request: PlacementRequest) -> Candidate:
        """Return one of ``candidates`` (never empty) for the new copy.

        Raise :class:`~mover.errors.NotEnoughSpace` when none can hold ``request.size``.
        """


#: Every placement plugin, by name (entry-point group ``mover.placement``).
placements: Registry[type[Placement]] = Registry(
    PLACEMENT, "placement", required=("choose",), contract=Placement, instances=False
)
