"""Placement: which image store of a zone (or of the region) gets a new copy.

CloudStack puts a private template on one image store per zone, shuffled or by a placement rule,
skipping stores short of capacity. In mover that rule is a plugin of the ``mover.placement``
entry-point group (its contract: :mod:`mover.placement`): a class with a ``name`` and
``choose(candidates, request) -> Candidate``.
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

import os
from collections.abc import Sequence
from typing import Any

from mover import config as config_mod
from mover.errors import MoverError, UsageError
from mover.placement import (  # noqa: F401  (the contract, re-exported for plugins)
    Candidate,
    Placement,
    PlacementRequest,
    placements,
)

DEFAULT = "capacity"


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
    from mover.resolve import open_location

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
    chosen = placements.get(name)().choose(list(candidates), request)
    if chosen not in candidates:
        raise MoverError(f"placement {name!r} chose {chosen!r}, which is not a candidate")
    return chosen
