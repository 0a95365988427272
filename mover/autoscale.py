"""The autoscale strategy contract: observations and state in, a decision out.

An autoscale strategy answers one question each control interval: how many slots (pool
processes) should each queue have? The controller (live) and the simulator (:mod:`mover.simulator`)
gather :class:`Observations`, hold a :class:`ScaleState`, call
:meth:`AutoscaleStrategy.decide` and apply the :class:`Decision`. Both run the *same* strategy
code, which is why a strategy must be PURE:

- no I/O (no Redis, no Celery, no logging side effects that matter): the caller observes and acts;
- no clock reads: the time comes in :attr:`Observations.time_s`;
- deterministic: the same observations and state give the same decision;
- memory between calls is plain data (JSON-serialisable) returned in :attr:`Decision.history` and
  handed back in the next :attr:`ScaleState.history`, so a restarted controller can persist it and
  a test can replay it.

Strategies are plugins of the ``mover.autoscale`` entry-point group, loaded lazily through
:data:`autoscale_strategies`; :func:`get_strategy` builds one with its parameters.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mover.errors import ConfigError, UsageError
from mover.registry import AUTOSCALE, Registry


class StrategyContractError(ConfigError):
    """Raised when an autoscale strategy returns a decision that breaks the contract (a queue
    left out, a value outside the bounds, history that is not plain data)."""


def _non_negative(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise UsageError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class QueueObservation:
    """What the observer saw of one queue at one moment.

    Attributes:
        queue: the queue name (``mover.store.<name>``).
        depth: messages waiting in the broker, summed over every priority band (``LLEN Q`` alone
            undercounts; see CELERY-FACTS.md).
        unacked: messages delivered and not yet acknowledged: chunks in flight (with
            ``acks_late`` and prefetch 1, one per busy slot).
        consumers: workers consuming the queue.
        pool_sizes: the real pool size of each worker (``inspect().stats()['pool']['processes']``),
            by worker name; a grow that has not landed yet is not in here.
        bytes_per_s: aggregate bytes per second of the chunks that finished recently.
        chunks_per_s: chunks per second that finished recently.
        error_rate: failed / finished chunks recently, 0..1 (0 when nothing finished).
        time_s: when the observation was taken, seconds on the observer's clock.
        busy: pool processes of its consumers executing a task now (``inspect().active()``);
            ``slots - busy`` is what a shrink can take. 0 when unknown (the simulator fills it).
        window_s: seconds the rates cover (never longer than the decision interval); 0 when
            unknown.
        chunk_s: mean seconds the chunks that finished in the window took, start to end, on
            their slot; 0 when none finished. With ``chunks_per_s`` it gives the mean number of
            busy slots over the window (Little's law), hence the rate per level of slots.
    """

    queue: str
    depth: int
    unacked: int = 0
    consumers: int = 0
    pool_sizes: Mapping[str, int] = field(default_factory=dict)
    bytes_per_s: float = 0.0
    chunks_per_s: float = 0.0
    error_rate: float = 0.0
    time_s: float = 0.0
    busy: int = 0
    window_s: float = 0.0
    chunk_s: float = 0.0

    def __post_init__(self) -> None:
        owner = f"observation of queue {self.queue!r}"
        if not self.queue:
            raise UsageError("an observation needs a queue name")
        _non_negative(
            owner,
            depth=self.depth,
            unacked=self.unacked,
            consumers=self.consumers,
            bytes_per_s=self.bytes_per_s,
            chunks_per_s=self.chunks_per_s,
            error_rate=self.error_rate,
            time_s=self.time_s,
            busy=self.busy,
            window_s=self.window_s,
            chunk_s=self.chunk_s,
        )
        if self.error_rate > 1:
            raise UsageError(f"{owner}: error_rate is a fraction 0..1, got {self.error_rate}")
        for worker, size in self.pool_sizes.items():
            _non_negative(owner, **{f"pool_sizes[{worker}]": size})

    @property
    def backlog(self) -> int:
        """Work not yet done: waiting plus in flight."""
        return self.depth + self.unacked

    @property
    def slots(self) -> int:
        """Pool processes that exist now, over all workers."""
        return sum(self.pool_sizes.values())


@dataclass(frozen=True)
class Observations:
    """One control interval's observations: the time and every queue the controller manages."""

    time_s: float
    queues: Mapping[str, QueueObservation]

    def __post_init__(self) -> None:
        _non_negative("observations", time_s=self.time_s)
        for name, obs in self.queues.items():
            if name != obs.queue:
                raise UsageError(f"observations: key {name!r} holds queue {obs.queue!r}")

    @classmethod
    def of(cls, time_s: float, *queues: QueueObservation) -> Observations:
        """Build from a list of queue observations (keys are their names)."""
        return cls(time_s, {q.queue: q for q in queues})


@dataclass(frozen=True)
class ScaleState:
    """What the caller holds between decisions.

    Attributes:
        concurrency: slots asked for per queue (including grows that have not landed yet: the
            strategy must not ask again for what is already coming).
        min_concurrency, max_concurrency: the default bounds of every queue.
        bounds_per_queue: ``queue -> (min, max)`` overriding the default bounds (a store's
            ``max_streams`` lands here).
        history: what the strategy returned in its last :attr:`Decision.history`; plain data.
        grow_s: seconds a new slot takes from the grow sent to its first chunk (the caller
            measures ``pool_grow`` and remembers it); a slot that would start after the backlog
            is gone is not worth adding. Default 3.5 (the middle of the 2-5 s seen here).
        interval_s: seconds between two decisions (what a slot added now costs at least before
            the next decision can take it back). Default 5.
        learned: what the caller learned of each queue from the rates it observed, shared by
            every strategy and kept across bursts and restarts: ``queue -> plain data`` as
            :mod:`mover.autoscale_learning` reads and writes it (bytes/s per level of
            busy slots, hence the knee past which more slots add nothing).
    """

    concurrency: Mapping[str, int]
    min_concurrency: int = 0
    max_concurrency: int = 16
    bounds_per_queue: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    history: Mapping[str, Any] = field(default_factory=dict)
    grow_s: float = 3.5
    interval_s: float = 5.0
    learned: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for queue, (lo, hi) in [("*", self.default_bounds), *self.bounds_per_queue.items()]:
            _non_negative(f"bounds of queue {queue!r}", min=lo, max=hi)
            if lo > hi:
                raise UsageError(f"bounds of queue {queue!r}: min {lo} > max {hi}")
        for queue, value in self.concurrency.items():
            _non_negative(f"concurrency of queue {queue!r}", concurrency=value)
        _non_negative("scale state", grow_s=self.grow_s, interval_s=self.interval_s)

    @property
    def default_bounds(self) -> tuple[int, int]:
        return self.min_concurrency, self.max_concurrency

    def bounds(self, queue: str) -> tuple[int, int]:
        """``(min, max)`` slots for ``queue``."""
        return self.bounds_per_queue.get(queue, self.default_bounds)

    def current(self, queue: str) -> int:
        """Slots asked for ``queue`` so far (0 for a queue seen for the first time)."""
        return int(self.concurrency.get(queue, 0))

    def clamp(self, queue: str, value: int) -> int:
        lo, hi = self.bounds(queue)
        return max(lo, min(hi, int(value)))


@dataclass(frozen=True)
class Decision:
    """A strategy's answer.

    Attributes:
        desired: slots wanted per queue; every observed queue must be present, within bounds.
        reason: one human-readable line per queue, joined; what the controller logs.
        history: plain data the strategy wants back in the next :attr:`ScaleState.history`.
        reasons: the reason per queue (``reason`` joins them).
        wanted: per queue, what the strategy would have asked without its bounds or caps
            (``--max``, a store's ``max_streams``, the knee); where it is above ``desired`` the
            controller logs the decision as a cap. Optional: empty means "as desired".
    """

    desired: Mapping[str, int]
    reason: str
    history: Mapping[str, Any] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    wanted: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def per_queue(
        cls,
        answers: Mapping[str, tuple[int, str] | tuple[int, str, int]],
        history: Mapping[str, Any],
    ) -> Decision:
        """Join per-queue ``(desired, reason)`` or ``(desired, reason, wanted)`` answers into
        one decision."""
        desired = {q: a[0] for q, a in answers.items()}
        reasons = {q: a[1] for q, a in answers.items()}
        wanted = {q: int(a[2]) for q, a in answers.items() if len(a) > 2}
        reason = "; ".join(f"{q}: {r}" for q, r in reasons.items()) or "no queues observed"
        return cls(desired, reason, history, reasons, wanted)


class AutoscaleStrategy(ABC):
    """How many slots each queue should have; a plugin of the ``mover.autoscale`` group.

    Subclasses take their parameters as keyword arguments of ``__init__`` (units in the names:
    ``cooldown_s``, ``target_backlog_per_slot``), validate them there (raise
    :class:`~mover.errors.UsageError`), and implement :meth:`decide`.

    Attributes:
        name: the registered name (``target-tracking``).
        summary: one line for listings.
    """

    name: str = ""
    summary: str = ""

    @abstractmethod
    def decide(self, observations: Observations, state: ScaleState) -> Decision:
        """Desired slots per observed queue, with a reason.

        Called once per control interval. Must be pure: read only the arguments and the
        parameters given at construction; no I/O, no clock, no randomness. Return a value for
        every queue in ``observations`` within ``state.bounds(queue)``; put whatever must be
        remembered in :attr:`Decision.history` (JSON-serialisable).
        """

    def params(self) -> dict[str, Any]:
        """The parameters in effect, for logs and ``simulate`` output."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def validate_decision(
    strategy: AutoscaleStrategy | str,
    decision: Decision,
    observations: Observations,
    state: ScaleState,
) -> Decision:
    """Check a decision against the contract; return it, or raise :class:`StrategyContractError`.

    The controller and the simulator call this on every decision, so that a plugin that breaks
    the contract is named at once instead of scaling a fleet to a wrong number.
    """
    name = strategy if isinstance(strategy, str) else (strategy.name or type(strategy).__name__)
    if not isinstance(decision, Decision):
        raise StrategyContractError(
            f"autoscale strategy {name!r} returned {type(decision).__name__}, not a Decision"
        )
    missing = sorted(set(observations.queues) - set(decision.desired))
    if missing:
        raise StrategyContractError(
            f"autoscale strategy {name!r} gave no desired concurrency for {', '.join(missing)}"
        )
    for queue, value in decision.desired.items():
        lo, hi = state.bounds(queue)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise StrategyContractError(
                f"autoscale strategy {name!r} wants {value!r} slots for {queue!r}, "
                f"outside its bounds [{lo}, {hi}]"
            )
    if not decision.reason:
        raise StrategyContractError(f"autoscale strategy {name!r} gave no reason")
    try:
        json.dumps(decision.history, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StrategyContractError(
            f"autoscale strategy {name!r} keeps history that is not plain data: {exc}"
        ) from exc
    return decision


#: Every autoscale strategy, by name (entry-point group ``mover.autoscale``).
autoscale_strategies: Registry[type[AutoscaleStrategy] | AutoscaleStrategy] = Registry(
    AUTOSCALE, "autoscale strategy", required=("decide",), contract=AutoscaleStrategy
)

#: What ``mover autoscale`` runs without ``--strategy``: the strategy that scored best live
#: (``benchmarks/bench_autoscale.py``; the README gives the run and why).
DEFAULT_STRATEGY = "throughput"


def get_strategy(name: str, **params: Any) -> AutoscaleStrategy:
    """A new instance of the strategy registered as ``name``, built with ``params``.

    Raises :class:`~mover.errors.UnknownPlugin` (listing the known names) for an unknown name
    and :class:`~mover.errors.UsageError` for a bad parameter.
    """
    plugin = autoscale_strategies.get(name)
    if isinstance(plugin, AutoscaleStrategy):
        if params:
            raise UsageError(f"autoscale strategy {name!r} is an instance: it takes no parameters")
        return plugin
    try:
        return plugin(**params)
    except TypeError as exc:
        raise UsageError(f"autoscale strategy {name!r}: {exc}") from exc
