"""A simulator of queues, workers and a store, driven by the SAME autoscale strategy code.

Why: the targets of autoscaling (worker-seconds close to the ideal, reaction within two control
intervals, no flapping) depend on things a unit test cannot show and a live fleet shows slowly:
the 2-5 s a grown pool process takes to appear, that a shrink retires a busy process only when
its chunk is done, and a
store whose aggregate throughput saturates and then *falls* when given more streams. The
simulator models exactly those, calls :meth:`AutoscaleStrategy.decide` every control interval
with the observations the live observer would gather, and measures the outcome.

The model (all deterministic for a given seed):

- **work**: chunks of ``chunk_bytes`` arrive at the times of the workload; a FIFO queue.
- **slots**: pool processes. A slot asked for becomes usable after a grow delay drawn uniformly
  from ``grow_delay_s`` (2-5 s, as measured for ``pool_grow``); a slot costs worker-seconds from
  the moment it is asked for. A shrink removes idle, usable slots at once and retires busy or
  starting ones when their chunk is done (``mover_pool_shrink_to``: they take no new chunk);
  until then they are in the pool the strategy sees. A grow first takes back slots still
  retiring. A free slot takes the next chunk at once (prefetch 1).
- **store**: with ``n`` chunks in flight its aggregate throughput is
  ``n * stream_bytes_per_s`` up to ``optimum_streams``, then
  ``optimum_streams * stream_bytes_per_s / (1 + degrade_per_stream * (n - optimum_streams))``:
  more streams past the optimum make it slower. Each chunk in flight gets an equal share.
- **observations**, per control interval: depth (waiting), unacked (in flight), the usable pool
  size, and bytes/s and chunks/s of the chunks that *finished* in the last interval (what the
  live observer reads from chunk records; lumpy, as there).

Workloads: ``builtin:burst`` (bursts separated by idle periods, with step changes of the arrival
rate; the one issue 5's targets are set on), ``builtin:big`` (one burst large enough to push a
throughput-blind strategy past the store's optimum), or a file (:func:`load_workload`).

The metrics (:class:`Metrics`), defined precisely:

- **worker-seconds**: the integral of slots asked for (usable or still starting) over the run,
  which lasts until every chunk is done plus ``tail_s`` (so slots left idle after the work
  count). **Ideal**: total bytes / ``stream_bytes_per_s``: a slot never moves more than one
  unloaded stream's rate, so no schedule uses fewer slot-seconds; a schedule that keeps every slot
  busy at or below the store's optimum reaches it.
- **drain time** of a burst (arrivals separated by at least ``burst_gap_s`` of silence): from its
  first arrival to its last chunk done; beside it the ideal drain, a fluid queue served at the
  store's best throughput from the first arrival (and not before the last arrival plus one
  chunk's unloaded time).
- **step changes**: the arrival rate, counted in windows of ``step_window_s``, starts (from 0),
  stops (to 0) or changes by a factor of 2 or more. **Reaction** to a rising step: the number of
  control ticks from the step up to and including the first tick that asks for more slots
  (1 = the first tick after the step; 0 when the slots were already at the maximum; ``None``,
  a miss, when no rise was asked before the next step); to a drained burst: ticks from the
  moment the backlog reaches zero to the first tick that asks for fewer slots (0 when already at
  the minimum).
- **direction reversals**: the direction of each change the strategy asks for (up or down);
  a reversal is a change opposite to the previous one. Each reversal is charged to the latest
  step change, at or before it, in its new direction (a turn up answers the latest rise, a turn
  down the latest fall), or to the latest step at all when there is none. A burst costs one
  reversal up and one down; flapping shows as two or more on one step.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mover.autoscale import (
    AutoscaleStrategy,
    Observations,
    QueueObservation,
    ScaleState,
    validate_decision,
)
from mover.errors import UsageError

MiB = 1024 * 1024

#: Targets from issue 5, for the report (never asserted by timers).
TARGET_WORKER_SECONDS_RATIO = 1.2
TARGET_REACTION_INTERVALS = 2
TARGET_REVERSALS_PER_STEP = 1


@dataclass(frozen=True)
class StoreModel:
    """A store whose aggregate throughput rises with streams, saturates, then degrades.

    Parameters:
        stream_bytes_per_s (float): what one stream moves when the store is not saturated.
            Default 50 MiB/s.
        optimum_streams (int): streams at which the store peaks. Default 8 (TEST-SERVERS.md:
            8 streams did best on this machine's local S3).
        degrade_per_stream (float): relative loss per stream past the optimum. Default 0.05.
    """

    stream_bytes_per_s: float = 50 * MiB
    optimum_streams: int = 8
    degrade_per_stream: float = 0.05

    def __post_init__(self) -> None:
        if self.stream_bytes_per_s <= 0 or self.optimum_streams < 1 or self.degrade_per_stream < 0:
            raise UsageError("store model: stream rate > 0, optimum >= 1, degradation >= 0")

    @property
    def best_bytes_per_s(self) -> float:
        return self.optimum_streams * self.stream_bytes_per_s

    def throughput(self, streams: int) -> float:
        """Aggregate bytes/s with ``streams`` chunks in flight."""
        if streams <= self.optimum_streams:
            return streams * self.stream_bytes_per_s
        extra = streams - self.optimum_streams
        return self.best_bytes_per_s / (1 + self.degrade_per_stream * extra)


@dataclass(frozen=True)
class SimConfig:
    """How the simulated fleet is driven.

    Parameters:
        interval_s: seconds between control decisions. Default 5.
        min_concurrency, max_concurrency: slot bounds of the queue. Default 0 and 16.
        chunk_bytes: bytes per chunk. Default 64 MiB.
        grow_delay_s: (low, high) seconds a grown slot takes to become usable. Default (2, 5).
        dt_s: simulation time step. Default 0.05.
        tail_s: seconds simulated after the last chunk is done. Default 30.
        burst_gap_s: silence that separates two bursts. Default 30.
        step_window_s: window in which arrival rates are compared for step changes. Default 10.
        seed: seed of the grow delays.
        queue: the simulated queue's name.
    """

    interval_s: float = 5.0
    min_concurrency: int = 0
    max_concurrency: int = 16
    chunk_bytes: int = 64 * MiB
    grow_delay_s: tuple[float, float] = (2.0, 5.0)
    dt_s: float = 0.05
    tail_s: float = 30.0
    burst_gap_s: float = 30.0
    step_window_s: float = 10.0
    seed: int = 0
    queue: str = "mover.store.sim"

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.dt_s <= 0 or self.dt_s > self.interval_s:
            raise UsageError("simulator: need 0 < dt_s <= interval_s")
        if not 0 <= self.min_concurrency <= self.max_concurrency:
            raise UsageError(
                f"simulator: need 0 <= min ({self.min_concurrency}) <= max ({self.max_concurrency})"
            )
        lo, hi = self.grow_delay_s
        if not 0 <= lo <= hi:
            raise UsageError("simulator: grow_delay_s must be (low, high) with 0 <= low <= high")
        if self.chunk_bytes <= 0:
            raise UsageError("simulator: chunk_bytes must be > 0")


@dataclass(frozen=True)
class Workload:
    """Arrivals: ``(time_s, chunks)`` pairs, sorted by time."""

    name: str
    arrivals: tuple[tuple[float, int], ...]

    @property
    def total_chunks(self) -> int:
        return sum(n for _, n in self.arrivals)


def builtin_burst() -> Workload:
    """Bursts separated by idle periods, with step changes of the arrival rate.

    - 20 s idle; at 20.5 s, 240 chunks at once (a backup of a 15 GiB volume enqueued);
    - idle until 150 s; then 2 chunks/s for 60 s, a step to 8 chunks/s (above the store's best,
      6 chunks/s) for 30 s, back to 2 chunks/s for 30 s;
    - idle until 400 s; at 400.5 s, 120 chunks at once.
    """
    rows: list[tuple[float, int]] = [(20.5, 240)]
    rows += [(150.5 + i, 2) for i in range(60)]
    rows += [(210.5 + i, 8) for i in range(30)]
    rows += [(240.5 + i, 2) for i in range(30)]
    rows.append((400.5, 120))
    return Workload("builtin:burst", tuple(rows))


def builtin_big() -> Workload:
    """One large burst: 1,000 chunks (62.5 GiB) at once, after 10 s of quiet.

    Big enough that a strategy blind to throughput asks for more streams than the store's
    optimum, where the store gets slower: what the ``throughput`` strategy is for.
    """
    return Workload("builtin:big", ((10.5, 1000),))


#: Built-in workloads by name (after ``builtin:``).
BUILTIN_WORKLOADS = {"burst": builtin_burst, "big": builtin_big}


def load_workload(spec: str) -> Workload:
    """``builtin:NAME``, or a file: JSON lines ``{"time_s": 1.5, "chunks": 3}`` (``.jsonl``,
    ``.json``, ``.ndjson``) or CSV with columns ``time_s,chunks`` (a header row is optional)."""
    if spec.startswith("builtin:"):
        name = spec.removeprefix("builtin:")
        if name not in BUILTIN_WORKLOADS:
            known = ", ".join(f"builtin:{n}" for n in BUILTIN_WORKLOADS)
            raise UsageError(f"unknown workload {spec!r} (known: {known}, or a file)")
        return BUILTIN_WORKLOADS[name]()
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"workload {spec!r} is neither builtin:NAME nor a readable file")
    rows: list[tuple[float, int]] = []
    text = path.read_text()
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                rows.append((float(item["time_s"]), int(item["chunks"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise UsageError(
                    f'workload {spec}:{lineno}: expected {{"time_s": T, "chunks": N}} ({exc})'
                ) from exc
    else:
        for lineno, rec in enumerate(csv.reader(text.splitlines()), 1):
            if not rec or not "".join(rec).strip():
                continue
            try:
                rows.append((float(rec[0]), int(rec[1])))
            except (ValueError, IndexError) as exc:
                if lineno == 1:
                    continue  # a header
                raise UsageError(f"workload {spec}:{lineno}: expected time_s,chunks") from exc
    bad = [r for r in rows if r[0] < 0 or r[1] < 0 or not math.isfinite(r[0])]
    if bad:
        raise UsageError(f"workload {spec}: negative or infinite values in {bad[0]}")
    rows = sorted(r for r in rows if r[1] > 0)
    if not rows:
        raise UsageError(f"workload {spec}: no chunks arrive")
    return Workload(spec, tuple(rows))


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """The fleet at one control tick (after the decision was applied)."""

    time_s: float
    depth: int
    in_flight: int
    slots: int  #: asked for, usable or starting
    usable: int
    desired: int
    bytes_per_s: float  #: observed (finished chunks of the last interval)
    direction: int  #: +1 asked for more, -1 for fewer, 0 unchanged
    reason: str


@dataclass(frozen=True)
class Step:
    """A step change of the arrival rate."""

    time_s: float
    direction: int  #: +1 rising, -1 falling
    rate_before: float  #: chunks/s
    rate_after: float


@dataclass(frozen=True)
class Burst:
    """One burst of arrivals and when it drained."""

    start_s: float
    last_arrival_s: float
    chunks: int
    drained_s: float
    ideal_drain_s: float

    @property
    def drain_s(self) -> float:
        return self.drained_s - self.start_s


@dataclass(frozen=True)
class Metrics:
    """The four figures of a run (see the module docstring for the definitions)."""

    worker_seconds: float
    ideal_worker_seconds: float
    bursts: tuple[Burst, ...]
    steps: tuple[Step, ...]
    reaction_up: tuple[int | None, ...]  #: per rising step; None: no rise asked before the next
    reaction_down: tuple[int | None, ...]  #: per burst drained
    reversals_per_step: tuple[int, ...]
    #: Where the worker-seconds above the ideal went: slots asked for and not usable yet (grow
    #: delay), usable and idle, and (the rest) busy but slower than one unloaded stream.
    starting_seconds: float = 0.0
    idle_seconds: float = 0.0

    @property
    def slow_seconds(self) -> float:
        busy = self.worker_seconds - self.starting_seconds - self.idle_seconds
        return max(0.0, busy - self.ideal_worker_seconds)

    @property
    def ratio(self) -> float:
        return self.worker_seconds / self.ideal_worker_seconds if self.ideal_worker_seconds else 0

    @property
    def max_reaction(self) -> int | None:
        """The slowest reaction, up or down; None counts as a miss (never reacted)."""
        values = [*self.reaction_up, *self.reaction_down]
        if any(v is None for v in values):
            return None
        return max((v for v in values if v is not None), default=0)

    @property
    def max_reversals(self) -> int:
        return max(self.reversals_per_step, default=0)

    def targets(self) -> dict[str, bool]:
        """Which of issue 5's targets this run meets."""
        react = self.max_reaction
        return {
            "worker_seconds": self.ratio <= TARGET_WORKER_SECONDS_RATIO,
            "reaction": react is not None and react <= TARGET_REACTION_INTERVALS,
            "reversals": self.max_reversals <= TARGET_REVERSALS_PER_STEP,
        }


@dataclass(frozen=True)
class SimResult:
    """One run: the strategy, the model, every tick and the metrics."""

    strategy: str
    params: dict[str, Any]
    workload: Workload
    config: SimConfig
    store: StoreModel
    samples: tuple[Sample, ...]
    metrics: Metrics
    trace: tuple[tuple[float, int, int], ...] = field(repr=False, default=())
    """(time_s, backlog, slots) every 0.5 s, for plots."""


# --- the run ---------------------------------------------------------------------------------


@dataclass
class _Slot:
    usable_at: float
    remaining: float = 0.0  #: bytes left of the chunk in hand; 0 = idle
    burst: int = -1
    started_at: float = 0.0  #: when the chunk in hand started
    retiring: bool = False  #: leaves the pool when its chunk is done, takes no new one


def simulate(
    strategy: AutoscaleStrategy,
    workload: Workload,
    config: SimConfig | None = None,
    store: StoreModel | None = None,
) -> SimResult:
    """Run ``strategy`` against ``workload`` on the model; return every tick and the metrics."""
    config = config or SimConfig()
    store = store or StoreModel()
    rng = random.Random(config.seed)
    bursts_of = _burst_ids(workload, config.burst_gap_s)
    arrivals = deque(zip(workload.arrivals, bursts_of, strict=True))
    pending: deque[int] = deque()  # burst id of each waiting chunk
    slots: list[_Slot] = []
    finished: list[tuple[float, int]] = []  # (time, burst id) of each chunk done
    durations: list[tuple[float, float]] = []  # (time, seconds it took) of each chunk done
    history: dict[str, Any] = {}
    learned: dict[str, Any] = {}  # what the fleet learned of the queue: every strategy reads it
    samples: list[Sample] = []
    trace: list[tuple[float, int, int]] = []
    worker_seconds = 0.0
    starting_seconds = 0.0
    idle_seconds = 0.0
    left = workload.total_chunks
    last_arrival = workload.arrivals[-1][0]
    hard_stop = last_arrival + 3600.0
    dt = config.dt_s
    tick = 0
    step = 0
    done_at: float | None = None
    while True:
        t = step * dt
        if done_at is not None and t >= done_at + config.tail_s:
            break
        if t > hard_stop:
            break
        # Arrivals up to now.
        while arrivals and arrivals[0][0][0] <= t + 1e-9:
            (_, n), burst = arrivals.popleft()
            pending.extend([burst] * n)
        # The control loop, every interval.
        if t + 1e-9 >= tick * config.interval_s:
            tick += 1
            samples.append(
                _control(
                    strategy,
                    config,
                    store,
                    t,
                    pending,
                    slots,
                    finished,
                    history,
                    rng,
                    learned,
                    durations,
                )
            )
        # Free usable slots take work; chunks progress at the store's share.
        _take(slots, pending, t, config)
        busy = [s for s in slots if s.remaining > 0]
        # Cost of this step [t, t + dt), as the slots stand at its start.
        usable_now = sum(1 for s in slots if s.usable_at <= t + 1e-9)
        worker_seconds += len(slots) * dt
        starting_seconds += (len(slots) - usable_now) * dt
        idle_seconds += (usable_now - len(busy)) * dt
        if busy:
            share = store.throughput(len(busy)) / len(busy) * dt
            for s in busy:
                s.remaining -= share
                while s.remaining <= 1e-6:
                    finished.append((t + dt, s.burst))
                    durations.append((t + dt, t + dt - s.started_at))
                    left -= 1
                    spare = -s.remaining
                    s.remaining, s.burst = 0.0, -1
                    if not pending or s.retiring:
                        break
                    s.burst = pending.popleft()
                    s.remaining = config.chunk_bytes - spare
                    s.started_at = t + dt
        if step % max(1, round(0.5 / dt)) == 0:
            trace.append((t, len(pending) + len(busy), len(slots)))
        if left == 0 and done_at is None and not arrivals:
            done_at = t + dt
        step += 1
    metrics = _metrics(workload, config, store, samples, finished, bursts_of, worker_seconds)
    metrics = replace(metrics, starting_seconds=starting_seconds, idle_seconds=idle_seconds)
    return SimResult(
        strategy.name or type(strategy).__name__,
        strategy.params(),
        workload,
        config,
        store,
        tuple(samples),
        metrics,
        tuple(trace),
    )


def _take(slots: list[_Slot], pending: deque[int], t: float, config: SimConfig) -> None:
    # A retiring slot that is free and usable has exited (mover_pool_shrink_to's timer).
    slots[:] = [s for s in slots if not (s.retiring and s.remaining <= 0 and s.usable_at <= t)]
    for s in slots:
        if not pending:
            return
        if s.remaining <= 0 and s.usable_at <= t + 1e-9 and not s.retiring:
            s.burst = pending.popleft()
            s.remaining = float(config.chunk_bytes)
            s.started_at = t


def _control(
    strategy: AutoscaleStrategy,
    config: SimConfig,
    store: StoreModel,
    t: float,
    pending: deque[int],
    slots: list[_Slot],
    finished: list[tuple[float, int]],
    history: dict[str, Any],
    rng: random.Random,
    learned: dict[str, Any] | None = None,
    durations: Sequence[tuple[float, float]] = (),
) -> Sample:
    q = config.queue
    window = [f for f in finished if f[0] > t - config.interval_s]
    done = len(window)
    took = [d for when, d in durations if when > t - config.interval_s]
    usable = sum(1 for s in slots if s.usable_at <= t + 1e-9)
    in_flight = sum(1 for s in slots if s.remaining > 0)
    bytes_per_s = done * config.chunk_bytes / config.interval_s
    obs = QueueObservation(
        queue=q,
        depth=len(pending),
        unacked=in_flight,
        consumers=1,
        pool_sizes={"sim-worker": usable},
        bytes_per_s=bytes_per_s,
        chunks_per_s=done / config.interval_s,
        error_rate=0.0,
        time_s=t,
        busy=in_flight,
        window_s=config.interval_s,
        chunk_s=sum(took) / len(took) if took else 0.0,
    )
    observations = Observations.of(t, obs)
    if learned is not None:  # as the controller: learn from what was seen, then decide
        from mover.autoscale_learning import learn

        fresh = learn(learned, observations, config.interval_s)
        learned.clear()
        learned.update(fresh)
    state = ScaleState(
        {q: len(slots)},
        config.min_concurrency,
        config.max_concurrency,
        history=dict(history),
        grow_s=sum(config.grow_delay_s) / 2,
        interval_s=config.interval_s,
        learned=dict(learned or {}),
    )
    decision = validate_decision(
        strategy, strategy.decide(observations, state), observations, state
    )
    history.clear()
    history.update(decision.history)
    desired = decision.desired[q]
    current = len(slots)
    staying = [s for s in slots if not s.retiring]
    if desired > len(staying):
        grow = desired - len(staying)
        for s in slots:  # a grow takes back retirements first: those processes are there
            if grow and s.retiring:
                s.retiring, grow = False, grow - 1
        lo, hi = config.grow_delay_s
        for _ in range(grow):
            slots.append(_Slot(usable_at=t + rng.uniform(lo, hi)))
    elif desired < len(staying):
        # Idle usable children go at once; busy and starting ones retire after their chunk.
        excess = len(staying) - desired
        idle = [s for s in staying if s.remaining <= 0 and s.usable_at <= t + 1e-9]
        for s in idle[:excess]:
            slots.remove(s)
        excess -= min(excess, len(idle))
        for s in sorted(staying, key=lambda s: (-s.usable_at, s.remaining)):
            if excess and s in slots:
                s.retiring, excess = True, excess - 1
    direction = (desired > current) - (desired < current)
    return Sample(
        t,
        len(pending),
        in_flight,
        len(slots),
        sum(1 for s in slots if s.usable_at <= t + 1e-9),
        desired,
        bytes_per_s,
        direction,
        decision.reasons.get(q, decision.reason),
    )


# --- metrics ---------------------------------------------------------------------------------


def _burst_ids(workload: Workload, gap_s: float) -> list[int]:
    ids: list[int] = []
    burst = -1
    prev: float | None = None
    for t, _ in workload.arrivals:
        if prev is None or t - prev >= gap_s:
            burst += 1
        ids.append(burst)
        prev = t
    return ids


def detect_steps(workload: Workload, window_s: float) -> list[Step]:
    """Step changes of the arrival rate (see the module docstring)."""
    bins: dict[int, list[tuple[float, int]]] = {}
    for t, n in workload.arrivals:
        bins.setdefault(int(t // window_s), []).append((t, n))
    steps: list[Step] = []
    first, last = min(bins), max(bins)
    prev_rate = 0.0
    for b in range(first, last + 2):
        rows = bins.get(b, [])
        rate = sum(n for _, n in rows) / window_s
        if rate > 0 and (prev_rate == 0 or rate >= 2 * prev_rate):
            steps.append(Step(rows[0][0], 1, prev_rate, rate))
        elif prev_rate > 0 and (rate == 0 or prev_rate >= 2 * rate):
            # Arrivals stopping: the rate falls to 0 where the last busy window ends.
            when = rows[0][0] if rows else b * window_s
            steps.append(Step(when, -1, prev_rate, rate))
        prev_rate = rate
    return steps


def _metrics(
    workload: Workload,
    config: SimConfig,
    store: StoreModel,
    samples: Sequence[Sample],
    finished: Sequence[tuple[float, int]],
    bursts_of: Sequence[int],
    worker_seconds: float,
) -> Metrics:
    total_bytes = workload.total_chunks * config.chunk_bytes
    ideal = total_bytes / store.stream_bytes_per_s
    bursts = _bursts(workload, config, store, finished, bursts_of)
    steps = detect_steps(workload, config.step_window_s)

    def ticks_until(start: float, end: float, want: int) -> int | None:
        count = 0
        for s in samples:
            if s.time_s + 1e-9 < start:
                continue
            if s.time_s >= end:
                return None
            count += 1
            if s.direction == want:
                return count
        return None

    reaction_up: list[int | None] = []
    for i, st in enumerate(steps):
        if st.direction < 0:
            continue
        # Until the next rising step: arrivals stopping right after an instant burst do not
        # cut the time the strategy has to react to it.
        end = next((s.time_s for s in steps[i + 1 :] if s.direction > 0), math.inf)
        before = [s for s in samples if s.time_s < st.time_s]
        if before and before[-1].slots >= config.max_concurrency:
            reaction_up.append(0)  # already at the maximum: nothing to react with
            continue
        reaction_up.append(ticks_until(st.time_s, end, +1))
    reaction_down: list[int | None] = []
    for i, b in enumerate(bursts):
        nxt = bursts[i + 1].start_s if i + 1 < len(bursts) else math.inf
        at = [s for s in samples if s.time_s <= b.drained_s]
        if not at or at[-1].slots <= config.min_concurrency:
            reaction_down.append(0)
            continue
        reaction_down.append(ticks_until(b.drained_s, nxt, -1))
    # Reversals, each charged to the latest step that calls for its new direction (a turn up
    # answers a rise), or the latest step of any direction when none does.
    per_step = [0] * len(steps)
    last_dir = 0
    for s in samples:
        if s.direction == 0:
            continue
        if last_dir and s.direction != last_dir:
            before = [i for i, st in enumerate(steps) if st.time_s <= s.time_s + 1e-9]
            same = [i for i in before if steps[i].direction == s.direction]
            if same or before:
                per_step[(same or before)[-1]] += 1
        last_dir = s.direction
    return Metrics(
        worker_seconds,
        ideal,
        tuple(bursts),
        tuple(steps),
        tuple(reaction_up),
        tuple(reaction_down),
        tuple(per_step),
    )


def _bursts(
    workload: Workload,
    config: SimConfig,
    store: StoreModel,
    finished: Sequence[tuple[float, int]],
    bursts_of: Sequence[int],
) -> list[Burst]:
    out: list[Burst] = []
    done_by_burst: dict[int, float] = {}
    for t, b in finished:
        done_by_burst[b] = max(done_by_burst.get(b, 0.0), t)
    groups: dict[int, list[tuple[float, int]]] = {}
    for row, b in zip(workload.arrivals, bursts_of, strict=True):
        groups.setdefault(b, []).append(row)
    one_chunk_s = config.chunk_bytes / store.stream_bytes_per_s
    for b, rows in sorted(groups.items()):
        start = rows[0][0]
        fluid = start
        for t, n in rows:
            fluid = max(fluid, t) + n * config.chunk_bytes / store.best_bytes_per_s
        ideal_end = max(fluid, rows[-1][0] + one_chunk_s)
        out.append(
            Burst(
                start,
                rows[-1][0],
                sum(n for _, n in rows),
                done_by_burst.get(b, math.inf),
                ideal_end - start,
            )
        )
    return out


# --- reports ---------------------------------------------------------------------------------


def _fmt_reaction(values: Iterable[int | None]) -> str:
    return ", ".join("never" if v is None else str(v) for v in values) or "-"


def report(result: SimResult) -> str:
    """The four figures of one run, against the targets, as text."""
    m = result.metrics
    ok = m.targets()
    mark = {True: "met", False: "MISSED"}
    drains = ", ".join(f"{b.drain_s:.1f} s (ideal {b.ideal_drain_s:.1f})" for b in m.bursts)
    react = m.max_reaction
    lines = [
        f"strategy {result.strategy} on {result.workload.name} (interval "
        f"{result.config.interval_s:g} s, slots {result.config.min_concurrency}.."
        f"{result.config.max_concurrency}, store best {result.store.optimum_streams} streams)",
        f"  worker-seconds   {m.worker_seconds:.0f} / ideal {m.ideal_worker_seconds:.0f} = "
        f"{m.ratio:.2f}x (target <= {TARGET_WORKER_SECONDS_RATIO}x: {mark[ok['worker_seconds']]})",
        f"                   above the ideal: {m.starting_seconds:.0f} starting, "
        f"{m.idle_seconds:.0f} idle, {m.slow_seconds:.0f} slowed by the store",
        f"  drain per burst  {drains}",
        f"  reaction         up {_fmt_reaction(m.reaction_up)}; down "
        f"{_fmt_reaction(m.reaction_down)} intervals (max "
        f"{'never' if react is None else react}; target <= {TARGET_REACTION_INTERVALS}: "
        f"{mark[ok['reaction']]})",
        f"  reversals        {', '.join(map(str, m.reversals_per_step)) or '-'} over "
        f"{len(m.steps)} step changes (max {m.max_reversals}; target <= "
        f"{TARGET_REVERSALS_PER_STEP}: {mark[ok['reversals']]})",
    ]
    return "\n".join(lines)


def table(results: Sequence[SimResult]) -> str:
    """One row per strategy: the four figures and the targets met."""
    head = (
        f"{'strategy':<16} {'worker-s':>9} {'ideal':>7} {'ratio':>6} {'drain max s':>11} "
        f"{'react max':>9} {'reversals max':>13}  targets met"
    )
    rows = [head]
    for r in results:
        m = r.metrics
        met = [k for k, v in m.targets().items() if v]
        react = m.max_reaction
        rows.append(
            f"{r.strategy:<16} {m.worker_seconds:>9.0f} {m.ideal_worker_seconds:>7.0f} "
            f"{m.ratio:>5.2f}x {max((b.drain_s for b in m.bursts), default=0):>11.1f} "
            f"{'never' if react is None else react:>9} {m.max_reversals:>13}  "
            f"{len(met)}/3 {','.join(met)}"
        )
    return "\n".join(rows)


def plot(results: Sequence[SimResult], path: str | Path) -> Path:
    """Draw backlog and slots over time, one panel per run, into ``path`` (PNG).

    Raises :class:`~mover.errors.UsageError` naming the package when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UsageError("--plot needs matplotlib: pip install matplotlib") from exc
    fig, axes = plt.subplots(len(results), 1, figsize=(11, 3.2 * len(results)), squeeze=False)
    for ax, r in zip(axes[:, 0], results, strict=True):
        ts = [p[0] for p in r.trace]
        ax.fill_between(
            ts,
            [p[1] for p in r.trace],
            step="post",
            alpha=0.3,
            color="tab:blue",
            label="backlog (waiting + in flight), chunks",
        )
        ax.set_ylabel("backlog, chunks")
        ax2 = ax.twinx()
        ax2.step(
            ts, [p[2] for p in r.trace], where="post", color="tab:red", label="slots (asked for)"
        )
        ax2.axhline(r.store.optimum_streams, color="grey", linestyle=":", label="store optimum")
        ax2.set_ylabel("slots")
        ax2.set_ylim(0, r.config.max_concurrency + 1)
        m = r.metrics
        ax.set_title(
            f"{r.strategy}: {m.ratio:.2f}x ideal worker-seconds, reaction max "
            f"{m.max_reaction}, reversals max {m.max_reversals}",
            fontsize=10,
        )
        for st in m.steps:
            ax.axvline(
                st.time_s, color="green" if st.direction > 0 else "orange", alpha=0.4, linewidth=0.8
            )
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time, s")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
