"""Which backups a retention policy keeps: ``--keep-last N --keep-daily N --keep-weekly N``.

Pure (no I/O), restic's rules: each policy keeps, from the newest backward, the latest backup
of each of N distinct periods (the N newest backups; N days; N ISO weeks) that hold any; a
backup is kept when any policy keeps it, and every decision says why. Periods are in local
time, as an operator reads a calendar.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mover.errors import UsageError


@dataclass(frozen=True)
class Policy:
    last: int = 0
    daily: int = 0
    weekly: int = 0

    def __post_init__(self) -> None:
        if min(self.last, self.daily, self.weekly) < 0:
            raise UsageError("--keep-* values must be 0 or more")

    @property
    def empty(self) -> bool:
        return not (self.last or self.daily or self.weekly)


def _day(t: float) -> tuple[int, ...]:
    lt = time.localtime(t)
    return (lt.tm_year, lt.tm_yday)


def _week(t: float) -> tuple[int, ...]:
    iso = time.strftime("%G-%V", time.localtime(t))
    year, week = iso.split("-")
    return (int(year), int(week))


def decide(backups: Sequence[tuple[str, float]], policy: Policy) -> dict[str, list[str]]:
    """For (backup id, created) pairs, the reasons each is kept: an empty list means forget.

    An empty policy keeps everything (forgetting all backups takes an explicit choice).
    """
    if policy.empty:
        return {b: ["no policy"] for b, _ in backups}
    newest_first = sorted(backups, key=lambda b: b[1], reverse=True)
    reasons: dict[str, list[str]] = {b: [] for b, _ in backups}
    rules: list[tuple[str, int, Callable[[float], object]]] = [
        ("last", policy.last, lambda t: t),
        ("daily", policy.daily, _day),
        ("weekly", policy.weekly, _week),
    ]
    for label, count, period in rules:
        seen: list[object] = []
        for backup, created in newest_first:
            if len(seen) >= count:
                break
            p = period(created) if label != "last" else backup
            if p in seen:
                continue
            seen.append(p)
            reasons[backup].append(label)
    return reasons
