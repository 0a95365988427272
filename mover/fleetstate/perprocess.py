"""One object per process, and a thread that works for it: what the fleet's lease renewers
share (:mod:`mover.fleetstate.limits`, :mod:`mover.workers.repo_tasks`).

A Celery prefork pool forks its processes after the parent may have built such an object: the
child inherits the object but not its thread, so each process builds its own on first use.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``factory()`` built once in each process that asks for it (:meth:`get`)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._made: tuple[int, T] | None = None

    def get(self) -> T:
        pid = os.getpid()
        if self._made is None or self._made[0] != pid:
            self._made = (pid, self._factory())
        return self._made[1]


def every(seconds: float, action: Callable[[], None], name: str) -> None:
    """Call ``action`` every ``seconds`` in a daemon thread called ``name``, for the life of
    the process (``action`` handles its own errors: one that escapes ends the thread)."""

    def loop() -> None:
        while True:
            time.sleep(seconds)
            action()

    threading.Thread(target=loop, name=name, daemon=True).start()
