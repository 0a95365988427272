"""Autoscale strategies on recorded observation sequences, and the contract's errors.

Strategies are pure, so these tests replay observations and feed each decision's history back,
as the controller and the simulator do; no clock, no Redis.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from mover.autoscale import (
    AutoscaleStrategy,
    Decision,
    Observations,
    QueueObservation,
    ScaleState,
    StrategyContractError,
    autoscale_strategies,
    get_strategy,
    validate_decision,
)
from mover.errors import PluginLoadError, UnknownPlugin, UsageError
from mover.strategies.autoscale.step import StepStrategy, check_bands, parse_bands
from mover.strategies.autoscale.target_tracking import TargetTrackingStrategy
from mover.strategies.autoscale.throughput import ThroughputStrategy

Q = "mover.store.s3-east"
MiB = 1024 * 1024
CHUNK = 64 * MiB


def obs(
    t: float,
    depth: int,
    unacked: int = 0,
    slots: int | None = None,
    bps: float = 0.0,
    error_rate: float = 0.0,
    queue: str = Q,
) -> Observations:
    """One observation of one queue; ``slots`` defaults to the slots in flight."""
    pool = unacked if slots is None else slots
    cps = bps / CHUNK
    return Observations.of(
        t,
        QueueObservation(queue, depth, unacked, 1, {"w1": pool}, bps, cps, error_rate, time_s=t),
    )


#: A store measured to scale linearly up to 32 slots: the strategies' own rules decide, the
#: shared ones (learning.py: no level jumped over, no slot past the knee) do not intervene.
LINEAR = {
    q: {"levels": {str(n): [n * 50e6, n * 50e6 / CHUNK, 0.0] for n in range(1, 33)}}
    for q in (Q, "a", "b", "c")
}


class Replay:
    """Feeds observations to a strategy, carrying current concurrency and history along."""

    def __init__(self, strategy: AutoscaleStrategy, current: int = 0, lo: int = 0, hi: int = 16):
        self.strategy = strategy
        self.current = current
        self.lo, self.hi = lo, hi
        self.history: dict[str, Any] = {}
        self.reasons: list[str] = []

    def state(self) -> ScaleState:
        # The throughput strategy measures levels itself, one step at a time: it is tested
        # on what it finds, with nothing learned before.
        learned = {} if isinstance(self.strategy, ThroughputStrategy) else LINEAR
        return ScaleState(
            {Q: self.current}, self.lo, self.hi, history=self.history, learned=learned
        )

    def __call__(self, observations: Observations) -> int:
        state = self.state()
        before = copy.deepcopy(state.history)
        decision = self.strategy.decide(observations, state)
        validate_decision(self.strategy, decision, observations, state)
        assert state.history == before, "decide() must not mutate the history it was given"
        json.dumps(decision.history)  # plain data
        self.history = dict(decision.history)
        self.current = decision.desired[Q]
        self.reasons.append(decision.reasons[Q])
        return self.current


# --- target tracking -------------------------------------------------------------------------


def test_target_tracking_rising_backlog_scales_up_at_once_in_proportion() -> None:
    run = Replay(TargetTrackingStrategy(target_backlog_per_slot=30), current=2)
    assert run(obs(0, depth=298, unacked=2)) == 10  # ceil(300 / 30), in one step
    assert "scale up at once" in run.reasons[-1]
    assert run(obs(5, depth=590, unacked=10)) == 16  # ceil(600 / 30) = 20, capped at max


def test_target_tracking_ignores_changes_within_tolerance() -> None:
    run = Replay(TargetTrackingStrategy(target_backlog_per_slot=30, tolerance=0.1), current=10)
    assert run(obs(0, depth=310)) == 10  # 31 per slot: 3 % off target
    assert "within tolerance" in run.reasons[-1]
    assert run(obs(5, depth=340)) == 12  # 34 per slot: 13 % off


def test_target_tracking_falling_backlog_scales_down_only_after_the_window() -> None:
    run = Replay(TargetTrackingStrategy(target_backlog_per_slot=30, scale_down_window_s=10))
    assert run(obs(0, depth=300)) == 10
    assert run(obs(5, depth=150)) == 10  # recommends 5; the window still holds 10
    assert "recommended up to 10" in run.reasons[-1]
    # t=10: the window (0, 10] holds 5 and 2: the highest wins, not the latest.
    assert run(obs(10, depth=60)) == 5
    assert "highest recommendation" in run.reasons[-1]
    assert run(obs(15, depth=60)) == 2
    assert run(obs(20, depth=1)) == 2  # 1 recommended, 2 still in the window
    assert run(obs(30, depth=1)) == 1


def test_target_tracking_an_empty_queue_sheds_its_slots_at_once() -> None:
    """Nothing waiting and nothing in flight: every slot is idle, no dip to ride out (a slot
    is back within a second when work returns: mover_pool_grow)."""
    run = Replay(TargetTrackingStrategy(target_backlog_per_slot=30, scale_down_window_s=30))
    assert run(obs(0, depth=300)) == 10
    assert run(obs(5, depth=0, unacked=2)) == 10  # two chunks still run: the window holds
    assert run(obs(10, depth=0)) == 0
    assert "queue empty, nothing in flight" in run.reasons[-1]


def test_target_tracking_a_dip_inside_the_window_sheds_nothing() -> None:
    run = Replay(TargetTrackingStrategy(target_backlog_per_slot=30, scale_down_window_s=30))
    seq = [300, 30, 1, 300, 30, 1, 300]
    assert [run(obs(5 * i, d)) for i, d in enumerate(seq)] == [10] * len(seq)


def test_target_tracking_bounds_and_per_queue_bounds() -> None:
    strategy = TargetTrackingStrategy(target_backlog_per_slot=10)
    o = Observations.of(
        0, QueueObservation("a", 1000), QueueObservation("b", 1000), QueueObservation("c", 0)
    )
    state = ScaleState({}, 1, 16, bounds_per_queue={"b": (0, 4)}, learned=LINEAR)
    d = validate_decision(strategy, strategy.decide(o, state), o, state)
    assert d.desired == {"a": 16, "b": 4, "c": 1}
    assert d.reason.count(";") >= 2 and "a:" in d.reason and "b:" in d.reason


@pytest.mark.parametrize(
    "kwargs",
    [{"target_backlog_per_slot": 0}, {"scale_down_window_s": -1}, {"tolerance": 1.5}],
)
def test_target_tracking_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError, match="target-tracking"):
        TargetTrackingStrategy(**kwargs)


def test_decisions_are_deterministic() -> None:
    seq = [obs(5 * i, d, unacked=min(d, 4)) for i, d in enumerate([0, 90, 300, 120, 0, 0, 40])]
    for name in ("target-tracking", "step", "throughput"):
        a, b = Replay(get_strategy(name)), Replay(get_strategy(name))
        assert [a(o) for o in seq] == [b(o) for o in seq], name
        assert a.reasons == b.reasons


# --- step --------------------------------------------------------------------------------------


BANDS = ((0, 0.5, -4), (0.5, 1, -1), (1, 10, 0), (10, 40, 2), (40, math.inf, 4))


def test_step_bands_map_backlog_per_slot_to_changes() -> None:
    run = Replay(StepStrategy(BANDS, cooldown_s=0), current=4)
    assert run(obs(0, depth=200, unacked=4)) == 8  # 51 per slot: +4
    assert run(obs(5, depth=150, unacked=8)) == 10  # 19.75 per slot: +2
    assert run(obs(10, depth=50, unacked=10)) == 10  # 6 per slot: hold
    assert run(obs(15, depth=0, unacked=8)) == 9  # 0.8 per slot: -1
    assert run(obs(20, depth=0, unacked=2)) == 5  # 0.22 per slot: -4


def test_step_work_and_no_slot_is_the_top_band() -> None:
    run = Replay(StepStrategy(BANDS))
    assert run(obs(0, depth=3)) == 4
    assert "inf" in run.reasons[-1]


def test_step_cooldown_holds_and_a_scale_up_cuts_a_scale_down_cooldown_short() -> None:
    run = Replay(StepStrategy(BANDS, cooldown_s=10), current=4)
    assert run(obs(0, depth=200, unacked=4)) == 8
    assert run(obs(5, depth=400, unacked=8)) == 8  # +4 wanted, cooling down
    assert "cooling down" in run.reasons[-1]
    assert run(obs(10, depth=400, unacked=8)) == 12  # cool-down over
    assert run(obs(20, depth=0, unacked=2)) == 8  # down
    assert run(obs(25, depth=0, unacked=1)) == 8  # down again: still cooling
    assert run(obs(26, depth=600, unacked=8)) == 12  # up during a down's cool-down: allowed


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        (((0, 1, 0), (2, math.inf, 1)), "gap between"),
        (((0, 2, 0), (1, math.inf, 1)), "overlap"),
        (((1, math.inf, 0),), "must start at 0"),
        (((0, 1, 0), (1, 5, 1)), "must end at inf"),
        (((0, math.inf, 1.5),), "integer"),
        (((0, 0, 1), (0, math.inf, 1)), "lower must be below upper"),
        ((), "at least one band"),
    ],
)
def test_step_bands_without_gaps_or_overlaps(bands: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_bands(bands)


def test_step_bands_parse_from_text() -> None:
    assert parse_bands("0:1:-1, 1:8:0 ,8:inf:+2") == ((0, 1, -1), (1, 8, 0), (8, math.inf, 2))
    assert StepStrategy("0:1:-1,1:inf:1").bands[-1] == (1, math.inf, 1)
    with pytest.raises(UsageError, match="lower:upper:change"):
        parse_bands("0:1")


# --- throughput --------------------------------------------------------------------------------


def drive_store(
    strategy: ThroughputStrategy,
    store: Callable[[int], float],
    ticks: int,
    depth: int = 10_000,
    start: int = 2,
) -> list[int]:
    """Every slot busy on a deep queue; a change lands before the next tick (as 2-5 s < 5 s)."""
    run = Replay(strategy, current=start, hi=32)
    seen = []
    for i in range(ticks):
        n = run.current
        seen.append(run(obs(5.0 * i, depth, unacked=n, slots=n, bps=store(n))))
    return seen


def saturating(n: int) -> float:
    """Rises 50 MB/s per stream to 6 streams, then falls 15 % per extra stream."""
    return 50e6 * n if n <= 6 else 300e6 / (1 + 0.15 * (n - 6))


def test_throughput_rises_then_saturates_then_steps_back_from_a_slower_store() -> None:
    seen = drive_store(ThroughputStrategy(), saturating, ticks=30)
    assert seen[:2] == [2, 3]  # waits a tick for each level to land and be measured
    assert max(seen) == 7  # probed one past the optimum...
    assert seen[-10:] == [6] * 10  # ...stepped back, and holds where bytes/s stopped rising
    assert sum(1 for a, b in itertools.pairwise(seen) if b < a) == 1


def test_throughput_holds_on_a_plateau() -> None:
    flat = lambda n: 50e6 * min(n, 4)  # noqa: E731
    seen = drive_store(ThroughputStrategy(), flat, ticks=20)
    assert seen[-5:] == [5] * 5  # 5 measured no faster than 4: hold, never probe 6


def test_throughput_holds_without_data_and_waits_for_a_grow_to_land() -> None:
    run = Replay(ThroughputStrategy(), current=4)
    assert run(obs(0, depth=100, unacked=4, slots=4, bps=0)) == 4
    assert "measured for less than" in run.reasons[-1]  # a level is judged after settle_s
    assert run(obs(5, depth=100, unacked=4, slots=4, bps=0)) == 4
    assert "no throughput data" in run.reasons[-1]
    run = Replay(ThroughputStrategy(), current=4)
    assert run(obs(0, depth=100, unacked=2, slots=2, bps=100e6)) == 4
    assert "wait for the grow to land" in run.reasons[-1]


def test_throughput_never_more_than_the_queue() -> None:
    run = Replay(ThroughputStrategy(), current=0)
    assert run(obs(0, depth=1)) == 1  # start_streams 2, but one chunk waits
    run = Replay(ThroughputStrategy(), current=4)
    run(obs(0, depth=3, unacked=4, slots=4, bps=200e6))
    run(obs(5, depth=3, unacked=4, slots=4, bps=200e6))
    assert run.current == 4 and "waiting: hold" in run.reasons[-1]  # no +1 for 3 waiting
    assert run(obs(10, depth=0, unacked=0, slots=4)) == 0  # empty queue: down to the minimum


def test_throughput_success_rate_gate() -> None:
    run = Replay(ThroughputStrategy(), current=8)
    assert run(obs(0, depth=100, unacked=8, slots=8, bps=300e6, error_rate=0.10)) == 7
    assert "success 90.0%" in run.reasons[-1]
    assert run(obs(5, depth=100, unacked=7, slots=7, bps=300e6, error_rate=0.035)) == 7  # better
    assert "improving" in run.reasons[-1]
    assert run(obs(10, depth=100, unacked=7, slots=7, bps=300e6, error_rate=0.035)) == 6


def test_throughput_order_of_magnitude_fall_steps_down() -> None:
    run = Replay(ThroughputStrategy(fall_margin=0.99), current=4)  # only the log10 rule
    for i, bps in enumerate([400e6, 400e6, 400e6, 30e6]):
        n = run.current
        run(obs(5.0 * i, depth=500, unacked=n, slots=n, bps=bps))
    assert run.current == 4
    assert "fell an order of magnitude" in run.reasons[-1]


def test_throughput_rejects_bad_parameters() -> None:
    with pytest.raises(UsageError, match="step_up"):
        ThroughputStrategy(step_up=0)


# --- the contract --------------------------------------------------------------------------------


def test_observation_and_state_errors() -> None:
    with pytest.raises(UsageError, match="depth must be"):
        QueueObservation(Q, depth=-1)
    with pytest.raises(UsageError, match="error_rate is a fraction"):
        QueueObservation(Q, depth=0, error_rate=2)
    with pytest.raises(UsageError, match="holds queue"):
        Observations(0, {"other": QueueObservation(Q, 0)})
    with pytest.raises(UsageError, match="min 5 > max 2"):
        ScaleState({}, 5, 2)
    assert QueueObservation(Q, 5, 3, pool_sizes={"a": 2, "b": 3}).backlog == 8
    assert QueueObservation(Q, 5, 3, pool_sizes={"a": 2, "b": 3}).slots == 5


class _Bad(AutoscaleStrategy):
    name = "bad"

    def __init__(self, answer: Callable[[Observations], Decision]) -> None:
        self.answer = answer

    def decide(self, observations: Observations, state: ScaleState) -> Decision:
        return self.answer(observations)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda o: Decision({}, "r"), "no desired concurrency for"),
        (lambda o: Decision({Q: 99}, "r"), r"outside its bounds \[0, 16\]"),
        (lambda o: Decision({Q: 2.5}, "r"), "outside its bounds"),  # type: ignore[dict-item]
        (lambda o: Decision({Q: 1}, ""), "no reason"),
        (lambda o: Decision({Q: 1}, "r", {"t": object()}), "not plain data"),
        (lambda o: {Q: 1}, "not a Decision"),
    ],
)
def test_a_decision_that_breaks_the_contract_is_named(
    answer: Callable[[Observations], Any], message: str
) -> None:
    strategy = _Bad(answer)
    o = obs(0, 1)
    state = ScaleState({Q: 0})
    with pytest.raises(StrategyContractError, match=f"'bad'.*{message}|{message}"):
        validate_decision(strategy, strategy.decide(o, state), o, state)


def test_registry_names_errors_and_parameters() -> None:
    assert {"target-tracking", "step", "throughput"} <= set(
        get_strategy(n).name for n in ("target-tracking", "step", "throughput")
    )
    with pytest.raises(UnknownPlugin, match=r"unknown autoscale strategy 'nope' \(known: .*step"):
        get_strategy("nope")
    with pytest.raises(UsageError, match="unexpected keyword argument 'cooldown'"):
        get_strategy("step", cooldown=3)
    with pytest.raises(PluginLoadError, match="missing decide"):
        autoscale_strategies.register("not-a-strategy", object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AutoscaleStrategy()  # type: ignore[abstract]


def test_a_strategy_from_a_package_outside_mover() -> None:
    import mover_testplugin.autoscale as plugin  # on the path by tests/testplugin.py

    if "vendorx-ratio" not in autoscale_strategies:
        autoscale_strategies.register("vendorx-ratio", plugin.RatioStrategy)
    try:
        strategy = get_strategy("vendorx-ratio", chunks_per_slot=5)
        run = Replay(strategy)
        assert [run(obs(5 * i, d)) for i, d in enumerate([0, 23, 5, 0])] == [0, 5, 1, 0]
        assert plugin.RatioStrategy.decisions >= 4
    finally:
        if autoscale_strategies.infos() and any(
            i.name == "vendorx-ratio" and i.origin == "runtime"
            for i in autoscale_strategies.infos()
        ):
            autoscale_strategies.unregister("vendorx-ratio")
