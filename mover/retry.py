"""The one retry policy for chunks: exponential back-off with full jitter, a bounded number of
attempts, for errors marked ``retryable`` only.

Providers only *classify* errors (``MoverError.retryable``); this module decides. Under the
fleet, Celery's retry takes this role instead, never both, so that retries do not multiply.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from mover.errors import MoverError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Parameters:
    attempts (int): tries in all, the first included (default 3).
    base_s (float): the first back-off ceiling in seconds (default 0.5), doubled each time.
    cap_s (float): the largest back-off in seconds (default 10).
    """

    attempts: int = 3
    base_s: float = 0.5
    cap_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.cap_s, self.base_s * (2**attempt)))

    def next_delay(self, exc: BaseException, attempt: int) -> float | None:
        """After attempt number ``attempt`` (0 for the first) failed with ``exc``: the seconds
        to wait before the next one, or None to give up (not retryable, or no attempt left).
        The embedded executor's loop (:func:`call`) and the fleet's Celery retry both ask."""
        if attempt + 1 >= self.attempts or not is_retryable(exc):
            return None
        return self.delay(attempt)


def is_retryable(exc: BaseException) -> bool:
    """The one classification: a MoverError says so itself (providers set ``retryable`` at
    their boundary); of other errors, only a lost connection or a time-out."""
    if isinstance(exc, MoverError):
        return exc.retryable
    return isinstance(exc, (ConnectionError, TimeoutError))


def call(
    fn: Callable[[], T],
    policy: RetryPolicy | None = None,
    on_retry: Callable[[int, BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn``; retry it while it raises a retryable error and attempts remain."""
    policy = policy or RetryPolicy()
    for attempt in range(policy.attempts):
        try:
            return fn()
        except Exception as exc:
            pause = policy.next_delay(exc, attempt)
            if pause is None:
                raise
            if on_retry is not None:
                on_retry(attempt + 1, exc)
            sleep(pause)
    raise AssertionError("unreachable")
