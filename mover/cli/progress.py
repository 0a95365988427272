"""A live progress bar (bytes, rate, ETA) on a terminal; nothing when quiet or not a tty.

Progress arrives from many threads as byte counts; the bar is redrawn by rich's own refresh
thread, so the hot path only adds to a counter.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any


class ProgressBar:
    """Counts bytes from any thread and shows them as a bar when ``enabled``."""

    def __init__(self, description: str, total: int | None, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.done = 0
        self._lock = threading.Lock()
        self._progress: Any = None  # a rich Progress, imported only when shown
        self._task: Any = None
        self._description = description
        self._total = total

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                ProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.text import Text

            from mover.planning import human

            class BinarySpeed(ProgressColumn):
                """The rate in binary units, as the summary line says it (rich's own
                column is decimal: MB/s beside MiB)."""

                def render(self, task: Any) -> Text:
                    speed = task.finished_speed or task.speed
                    return Text("?" if speed is None else f"{human(int(speed))}/s")

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                BinarySpeed(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=self._total)
        return self

    def __call__(self, nbytes: int) -> None:
        with self._lock:
            self.done += nbytes
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=nbytes)

    def note(self, text: str) -> None:
        """Print one line on standard error, above the bar while it shows."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def set_total(self, total: int | None) -> None:
        self._total = total
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
