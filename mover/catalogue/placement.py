"""Placement: which image store of a zone (or of the region) gets a new copy.

CloudStack puts a private template on one image store per zone, shuffled or by a placement rule,
skipping stores short of capacity. In mover that rule is a plugin of the ``mover.placement``
entry-point group: a class with a ``name`` and ``choose(candidates, request) -> Candidate``.
The core gathers the candidates (the scope's image stores, each with the free bytes its provider
reports, or None) and a *turn* (how many placements this scope had before, counted in the
catalogue so round robin holds across processes); the plugin only decides. The default
(``capacity``, :mod:`mover.strategies.placement.capacity`) picks the store with the most free space
where stores report it, else round robin.

The plugin used is, in order: the ``placement=`` argument (CLI ``--placement``), the
``MOVER_PLACEMENT`` environment variable, ``[defaults] placement`` in the TOML configuration,
else ``capacity``.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from mover import config as config_mod
from mover.errors import MoverError, UsageError
from mover.registry import PLACEMENT, Registry

DEFAULT = "capacity"


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


def _validate(plugin: Any) -> None:
    if not isinstance(plugin, type) or not issubclass(plugin, Placement):
        raise TypeError("a placement plugin must be a subclass of mover.catalogue.Placement")


#: Every placement plugin, by name (entry-point group ``mover.placement``).
placements: Registry[type[Placement]] = Registry(
    PLACEMENT, "placement", required=("choose",), validate=_validate
)


def plugin_name(explicit: str | None = None) -> str:
    """The placement in force (see the module docstring for the order)."""
    if explicit:
        return explicit
    env = os.environ.get("MOVER_PLACEMENT")
    if env:
        return env
    try:
        configured = config_mod.load().defaults.get("placement")
    except MoverError:
        configured = None
    return str(configured or DEFAULT)


def candidates_for(records: Sequence[Any], key: str) -> list[Candidate]:
    """Candidates for the store records given, asking each provider its free space at
    ``key`` (one statvfs for a file store; object stores answer None without a request)."""
    from mover.stores import open_location

    out = []
    for record in records:
        try:
            store, location = open_location(f"store:{record.name}/{key}")
            free = store.free_bytes(location.full_key)
        except MoverError:
            free = None
        out.append(Candidate(record.name, record.url, record.scope, free))
    return out


def choose(
    candidates: Sequence[Candidate], request: PlacementRequest, placement: str | None = None
) -> Candidate:
    """Ask the placement plugin in force; check that it answered with a candidate."""
    if not candidates:
        raise UsageError(f"no image store in scope {request.scope} for {request.kind}")
    name = plugin_name(placement)
    if name == DEFAULT and DEFAULT not in placements:
        # Until the in-tree entry point is declared (pyproject.toml), the default registers
        # itself: placement must work out of the box.
        from mover.strategies.placement.capacity import CapacityPlacement

        placements.register(DEFAULT, CapacityPlacement)
    chosen = placements.get(name)().choose(list(candidates), request)
    if chosen not in candidates:
        raise MoverError(f"placement {name!r} chose {chosen!r}, which is not a candidate")
    return chosen
