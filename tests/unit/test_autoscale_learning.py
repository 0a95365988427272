"""The rules every shipped strategy shares (strategies/autoscale/learning.py): no slot that
cannot pay for itself, none past the knee where throughput stops rising, and the memory of
each queue's levels kept across bursts. Strategy inputs and the simulator; no clock, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from mover import autoscale_learning as learning
from mover.autoscale import Observations, QueueObservation, ScaleState, get_strategy
from mover.simulator import MiB, SimConfig, StoreModel, Workload, simulate

Q = "mover.s3"
CHUNK = 32 * MiB
#: What one slot was measured to do on this queue: 3.4 chunks/s (a 32 MiB chunk in 0.3 s).
ONE_SLOT = {Q: {"levels": {"1": [3.4 * CHUNK, 3.4, 0.0]}}}
#: Parameters that make each strategy want more than one slot for 20 chunks.
EAGER: dict[str, dict[str, Any]] = {
    "target-tracking": {"target_backlog_per_slot": 2},
    "step": {},
    "throughput": {},
}


def busy_queue(t: float, waiting: int, learned: dict[str, Any]) -> tuple[Observations, ScaleState]:
    """One slot busy, ``waiting`` chunks behind it, nothing finished in the window yet (the
    first look after a burst arrived)."""
    obs = QueueObservation(Q, waiting, 1, 1, {"w1": 1}, busy=1, window_s=5, time_s=t)
    state = ScaleState({Q: 1}, 1, 8, grow_s=2.5, interval_s=5, learned=learned)
    return Observations.of(t, obs), state


def remembered(best: int) -> dict[str, Any]:
    """One slot measured, and ``best`` slots measured to be the fastest level (the throughput
    strategy returns to it when work comes back)."""
    levels = {"1": [3.4 * CHUNK, 3.4, 0.0], str(best): [6.0 * CHUNK, 6.0, 0.0]}
    levels[str(best + 1)] = [6.1 * CHUNK, 6.1, 0.0]
    return {Q: {"levels": levels}}


@pytest.mark.parametrize("name", sorted(EAGER))
def test_a_short_burst_that_one_slot_drains_first_adds_no_slot(name: str) -> None:
    """20 chunks behind one slot that does 3.4 a second: gone in 6 s, before a slot asked
    now (2.5 s to start) could work two 5 s intervals. Every strategy holds; 200 chunks
    grow."""
    strategy = get_strategy(name, **EAGER[name])
    learned = remembered(2) if name == "throughput" else ONE_SLOT
    observations, state = busy_queue(100.0, 20, learned)
    decision = strategy.decide(observations, state)
    assert decision.desired[Q] == 1, decision.reasons[Q]
    assert "before a new slot" in decision.reasons[Q] or "pays for 1" in decision.reasons[Q]
    observations, state = busy_queue(100.0, 200, learned)
    decision = strategy.decide(observations, state)
    assert decision.desired[Q] > 1, decision.reasons[Q]


def test_growth_waits_for_a_first_rate_and_reads_the_chunk_time() -> None:
    observations, state = busy_queue(0.0, 20, {})
    obs = observations.queues[Q]
    pays, why = learning.growth_pays(state, obs, 1)
    assert not pays and "rate is unknown" in why, "a busy slot: look again when one finished"
    idle = QueueObservation(Q, 20, 0, 1, {"w1": 1}, time_s=0.0)
    assert learning.growth_pays(state, idle, 1)[0], "nothing runs: nothing to wait for"
    timed = QueueObservation(Q, 20, 1, 1, {"w1": 1}, busy=1, chunk_s=0.3, time_s=0.0)
    pays, why = learning.growth_pays(state, timed, 1)
    assert not pays and "drain in 6.0 s at 1 slots" in why and "starts in 2.5 s" in why


def test_levels_are_learned_by_littles_law_and_kept_across_bursts() -> None:
    """4 chunks/s finished, each took 0.5 s: 2 slots were busy on average over the window."""
    o = QueueObservation(Q, 10, 2, 1, {"w1": 2}, 4 * CHUNK, 4.0, busy=2, chunk_s=0.5, time_s=10)
    learned = learning.learn({}, Observations.of(10.0, o), 5.0)
    assert learned[Q]["levels"] == {"2": [4 * CHUNK, 4.0, 10.0]}
    idle = QueueObservation(Q, 0, time_s=300.0)
    later = learning.learn(learned, Observations.of(300.0, idle), 5.0)
    assert later[Q]["levels"] == learned[Q]["levels"], "an idle gap forgets nothing"
    gone = learning.learn(learned, Observations.of(10 + learning.MEMORY_S + 1, idle), 5.0)
    assert gone[Q]["levels"] == {}, "an old measurement is measured again"


def test_a_mostly_idle_window_measures_no_level() -> None:
    """0.2 busy slots on average (a burst just began): its bytes/s would make one slot look
    slow."""
    o = QueueObservation(Q, 10, 1, 1, {"w1": 1}, 0.4 * CHUNK, 0.4, chunk_s=0.5, time_s=10)
    assert learning.learn({}, Observations.of(10.0, o), 5.0)[Q]["levels"] == {}


def test_the_knee_is_where_an_added_slot_stops_paying() -> None:
    def state(rates: dict[int, float]) -> ScaleState:
        levels = {str(n): [r * MiB, r / 32, 0.0] for n, r in rates.items()}
        return ScaleState({Q: 1}, learned={Q: {"levels": levels}})

    knee = learning.knee(state({1: 100, 2: 190, 3: 200}), Q)
    assert knee is not None and (knee.level, knee.above, knee.cap) == (2, 3, 2)
    assert "stops rising past 2 slots (2: 190.0 MiB/s, 3: 200.0 MiB/s)" in knee.why()
    knee = learning.knee(state({1: 100, 2: 190, 8: 200}), Q)
    assert knee is not None and knee.cap == 3, "a gap: probe the level just above the knee"
    knee = learning.knee(state({1: 100, 2: 200, 4: 400}), Q)
    assert knee is not None and knee.cap is None, "still linear: no cap"
    assert learning.knee(ScaleState({Q: 1}), Q) is None


#: A store (and host) that saturates at 2 streams and gets slower past them, as the issue's
#: machine did with 128 MiB chunks.
SATURATING = StoreModel(stream_bytes_per_s=60 * MiB, optimum_streams=2, degrade_per_stream=0.1)
TWO_BURSTS = Workload("two long bursts", ((10.5, 150), (130.5, 150)))
CONFIG = SimConfig(min_concurrency=1, chunk_bytes=CHUNK, grow_delay_s=(1.0, 2.0))


@pytest.mark.parametrize("name", ["target-tracking", "step", "throughput"])
def test_every_strategy_stops_at_the_knee_of_a_saturating_store(name: str) -> None:
    """Left alone, target-tracking would ask ceil(150 / 30) = 5 slots and step would climb
    while the backlog per slot stays high; each stops one probe past the knee (3), gives
    the probe back while chunks still wait, and never goes past it in the second burst."""
    result = simulate(get_strategy(name), TWO_BURSTS, CONFIG, SATURATING)
    busy = [s for s in result.samples if s.depth > 0]
    assert max(s.slots for s in result.samples) <= 3
    second = [s for s in busy if s.time_s > 130]
    assert second and max(s.slots for s in second) <= 2, [s.slots for s in second]
    reasons = " ".join(s.reason for s in second)
    assert second[-1].slots == 2 and ("cap at 2" in reasons or "3 was no faster" in reasons)


def test_throughput_goes_back_to_the_best_level_it_remembers() -> None:
    result = simulate(get_strategy("throughput"), TWO_BURSTS, CONFIG, SATURATING)
    second = [s for s in result.samples if s.time_s > 130 and (s.depth or s.in_flight)]
    assert second[0].slots == 2, [(s.slots, s.reason) for s in second[:2]]
    assert "best level remembered 2" in second[0].reason


def test_a_window_never_measures_more_slots_than_the_pool_has() -> None:
    """Chunks that began before the window bring their whole duration into it, so Little's law
    can read 2.4 busy slots off a pool of one (seen live: a first decision that jumped to 3
    slots as if 2 had been measured); the level is capped at the real pool."""
    obs = QueueObservation(
        Q, 83, 1, 1, {"w1": 1}, bytes_per_s=19.2 * MiB, chunks_per_s=2.4, chunk_s=1.0,
        busy=1, window_s=5, time_s=100.0,
    )  # fmt: skip
    learned = learning.learn({}, Observations.of(100.0, obs), 5)
    assert set(learned[Q]["levels"]) == {"1"}
    state = ScaleState({Q: 1}, 1, 8, grow_s=0.5, interval_s=5, learned=learned)
    decision = get_strategy("target-tracking").decide(Observations.of(100.0, obs), state)
    assert decision.desired[Q] == 2, decision.reasons  # climbs to the next level, not past it


def test_a_new_burst_goes_to_the_best_known_level_first_then_probes_one_step() -> None:
    """Levels 1..3 measured to pay: a burst met by one slot climbs to 3 at once (known
    ground), and from 3 probes 4, not 5 (seen live: 1 -> 5 -> 6 before the knee at 3 showed,
    1.4x the slot-seconds of the reference pool)."""
    levels = {str(n): [rate * MiB, rate / 32, 0.0] for n, rate in ((1, 100), (2, 190), (3, 270))}
    learned = {Q: {"levels": levels}}
    strategy = get_strategy("target-tracking")
    for current, want in ((1, 3), (3, 4)):
        obs = QueueObservation(
            Q, 370, current, 1, {"w1": current}, busy=current, window_s=5, time_s=1.0
        )
        state = ScaleState({Q: current}, 1, 8, grow_s=0.5, interval_s=5, learned=learned)
        decision = strategy.decide(Observations.of(1.0, obs), state)
        assert decision.desired[Q] == want, decision.reasons
