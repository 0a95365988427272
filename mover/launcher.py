"""The launcher contract and its registry (entry-point group ``mover.launchers``; the in-tree
launchers live in :mod:`mover.workers.launchers`).

A launcher starts and stops *worker processes* (whole ``mover worker`` instances, on this host,
on a VM, in a cloud), where the controller's ``pool_grow`` / ``pool_shrink`` only change the
pool inside a worker. The controller asks a launcher for more workers when every pool it found
is at its maximum and the strategy wants more, and for fewer when the fleet has been idle for a
while. It only ever stops workers its launcher says it started.

Names: a launcher gives each worker it starts a name (``auto-3f9c2a``) and starts it as
``mover worker -n NAME@...``, so the controller can tell when the worker has joined the fleet
(its node name, before ``@``, is the name) and which of the workers it found it may stop.

Launchers keep what they started in a state file, so that a restarted controller adopts the
workers its predecessor started instead of losing track of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from mover.registry import LAUNCHERS, Registry


class Launcher(ABC):
    """Starts and stops worker processes; a plugin of the ``mover.launchers`` group.

    Subclasses take their parameters as keyword arguments of ``__init__`` and validate them
    there (raise :class:`~mover.errors.UsageError`). Methods may block for a while (a VM boot
    command); the controller calls them between control intervals.

    Attributes:
        name: the registered name (``local``).
    """

    name: str = ""

    @abstractmethod
    def start(self, n: int = 1) -> list[str]:
        """Start ``n`` workers; return the names of those started (fewer on failure, which is
        logged). Each worker must join the fleet under its name (``-n NAME@host``)."""

    @abstractmethod
    def stop(self, n: int = 1, prefer: Sequence[str] = ()) -> list[str]:
        """Stop ``n`` workers this launcher started, gracefully (let their running chunks
        finish, or kill them after a grace: chunks are acknowledged late and come back).
        ``prefer`` names the workers to stop first (idle ones). Return the names stopped."""

    @abstractmethod
    def running(self) -> list[str]:
        """Names of the workers this launcher started that are still running (oldest
        first); forgets those that died."""

    def stop_all(self) -> list[str]:
        """Stop every worker this launcher started (the controller's exit)."""
        return self.stop(len(self.running()))

    def close(self) -> None:
        """Release what the launcher holds (not its workers)."""


#: Every launcher, by name (entry-point group ``mover.launchers``).
launchers: Registry[type[Launcher] | Launcher] = Registry(
    LAUNCHERS, "launcher", required=("start", "stop", "running"), contract=Launcher
)
