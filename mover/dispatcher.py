"""The dispatcher: which motion strategy moves a pair, and why.

Every strategy registered in ``mover.motion`` is asked :meth:`MotionStrategy.can_handle`; the
highest priority wins, ties going to the name that sorts first (a stable order that does not
depend on installation order), ``CANT_HANDLE`` never wins. No protocol is named here: strategies
decide from capabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

from mover.errors import NoStrategy, PluginLoadError
from mover.motion import Endpoint, MotionStrategy, Priority, strategies
from mover.provider import check_capabilities

_instances: dict[str, MotionStrategy] = {}


def get_strategy(name: str) -> MotionStrategy:
    """The strategy instance registered as ``name``."""
    plugin = strategies.get(name)
    inst = _instances.get(name)
    if inst is None or (isinstance(plugin, type) and type(inst) is not plugin):
        inst = plugin() if isinstance(plugin, type) else plugin
        _instances[name] = inst
    return inst


@dataclass(frozen=True)
class Candidate:
    """One strategy's answer for a pair, for ``mover strategies``."""

    name: str
    priority: Priority
    summary: str
    error: str | None = None


def rank(source: Endpoint, destination: Endpoint) -> list[Candidate]:
    """Every registered strategy's priority for the pair, best first (the winner first).

    Strategies decide from the stores' capabilities: each store is first held to what it
    declares (:func:`mover.provider.check_capabilities`), here where capabilities are read,
    not when it is opened (learning some costs a request, an HTTP server's range support)."""
    check_capabilities(source.store)
    check_capabilities(destination.store)
    out: list[Candidate] = []
    for name in strategies.names():
        try:
            strategy = get_strategy(name)
            priority = Priority(strategy.can_handle(source, destination))
            out.append(Candidate(name, priority, strategy.summary))
        except PluginLoadError as exc:
            out.append(Candidate(name, Priority.CANT_HANDLE, "", error=str(exc)))
    order = {c.name: i for i, c in enumerate(out)}
    return sorted(out, key=lambda c: (-int(c.priority), order[c.name]))


def choose(
    source: Endpoint, destination: Endpoint, exclude: tuple[str, ...] = ()
) -> tuple[MotionStrategy, Priority]:
    """The winning strategy for the pair; raise :class:`NoStrategy` if none can move it."""
    for cand in rank(source, destination):
        if cand.name in exclude or cand.priority == Priority.CANT_HANDLE:
            continue
        return get_strategy(cand.name), cand.priority
    raise NoStrategy(
        f"no motion strategy can move {source.location} to {destination.location} "
        f"(tried: {', '.join(strategies.names()) or 'none registered'})"
    )
