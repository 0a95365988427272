"""The simulator: metrics on a workload small enough to compute by hand, the model's rules
(grow delay, shrink only idle, a store that degrades), workload files, and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mover.autoscale import (
    AutoscaleStrategy,
    Decision,
    Observations,
    ScaleState,
    StrategyContractError,
    get_strategy,
)
from mover.cli.autoscale import autoscale_group
from mover.errors import UsageError
from mover.simulator import (
    SimConfig,
    StoreModel,
    Workload,
    builtin_burst,
    detect_steps,
    load_workload,
    plot,
    simulate,
)

MiB = 1024 * 1024


class Fixed(AutoscaleStrategy):
    """``n`` slots while there is any backlog, else none."""

    name = "fixed"

    def __init__(self, n: int = 2) -> None:
        self.n = n

    def decide(self, observations: Observations, state: ScaleState) -> Decision:
        answers = {
            q: (state.clamp(q, self.n if o.backlog else 0), f"backlog {o.backlog}")
            for q, o in observations.queues.items()
        }
        return Decision.per_queue(answers, {})


#: One chunk takes exactly 1 s on one stream; the store never degrades up to 8 streams.
STORE = StoreModel(stream_bytes_per_s=64 * MiB, optimum_streams=8, degrade_per_stream=0.0)
TINY = SimConfig(interval_s=5, grow_delay_s=(2, 2), tail_s=5, chunk_bytes=64 * MiB)


def test_metrics_of_a_tiny_workload_by_hand() -> None:
    # 10 chunks arrive at t=1. Tick 5 asks for 2 slots, usable at 7; they finish 2 chunks a
    # second: done at 12. Tick 10 keeps 2 (4 left), tick 15 sees none and frees both.
    r = simulate(Fixed(2), Workload("tiny", ((1.0, 10),)), TINY, STORE)
    m = r.metrics
    assert m.ideal_worker_seconds == pytest.approx(10.0)  # 10 chunks x 1 s
    assert m.worker_seconds == pytest.approx(20.0)  # 2 slots from 5 to 15
    assert m.ratio == pytest.approx(2.0)
    assert m.starting_seconds == pytest.approx(4.0)  # 2 slots x 2 s grow delay
    assert m.idle_seconds == pytest.approx(6.0)  # 2 slots x 3 s after the last chunk
    (burst,) = m.bursts
    assert burst.drain_s == pytest.approx(11.0)  # from 1 to 12
    assert burst.ideal_drain_s == pytest.approx(1.25)  # 640 MiB at 8 x 64 MiB/s
    assert [(s.time_s, s.direction) for s in m.steps] == [(1.0, 1), (10.0, -1)]
    assert m.reaction_up == (1,)  # the first tick after the step (t=5)
    assert m.reaction_down == (1,)  # drained at 12, freed at the tick of 15
    assert m.reversals_per_step == (0, 1)  # up at 5, down at 15 (in the segment from 10)
    assert [s.slots for s in r.samples] == [0, 2, 2, 0]
    assert m.targets() == {"worker_seconds": False, "reaction": True, "reversals": True}


def test_a_grown_slot_costs_from_the_request_and_a_shrink_takes_only_idle_slots() -> None:
    class UpThenZero(AutoscaleStrategy):
        name = "up-then-zero"

        def decide(self, observations: Observations, state: ScaleState) -> Decision:
            (q,) = observations.queues
            want = 4 if observations.time_s < 6 else 0
            return Decision({q: want}, f"{want}")

    # 4 chunks of 20 s each (slow store): at t=10 all four are busy and cannot be freed.
    slow = StoreModel(stream_bytes_per_s=64 * MiB / 20, optimum_streams=8)
    r = simulate(UpThenZero(), Workload("w", ((0.0, 4),)), TINY, slow)
    by_t = {s.time_s: s for s in r.samples}
    assert by_t[0].slots == 4 and by_t[0].usable == 0  # asked for, not usable yet
    assert by_t[10].slots == 4 and by_t[10].desired == 0  # busy: pool_shrink refuses
    assert by_t[25].slots == 0  # chunks done at 22: freed at the next tick


def test_more_streams_make_the_store_slower() -> None:
    store = StoreModel(stream_bytes_per_s=50 * MiB, optimum_streams=8, degrade_per_stream=0.05)
    assert store.throughput(4) == pytest.approx(200 * MiB)
    assert store.throughput(8) == pytest.approx(400 * MiB)
    assert store.throughput(16) == pytest.approx(400 * MiB / 1.4)
    wl = Workload("w", ((0.0, 200),))
    at8 = simulate(Fixed(8), wl, TINY, store).metrics
    at16 = simulate(Fixed(16), wl, TINY, store).metrics
    assert at16.worker_seconds > 2 * at8.worker_seconds
    assert at16.bursts[0].drain_s > at8.bursts[0].drain_s
    assert at16.slow_seconds > 100
    assert at8.slow_seconds == pytest.approx(0, abs=1e-6)


def test_overshoot_past_the_optimum_is_given_back_while_the_burst_lasts() -> None:
    """The backlog asks target-tracking for the maximum; the shared rules make it climb
    through the levels (half again per decision), so it stops short of 16 but past the
    store's optimum of 8; once the level above the optimum is measured, the slots past it are
    retired as their chunks finish (``mover_pool_shrink_to``), within two ticks, while chunks
    still wait, so its cost ends near the throughput strategy's, which never went past 9."""
    from mover.simulator import builtin_big

    by_name = {
        n: simulate(get_strategy(n), builtin_big()) for n in ("target-tracking", "throughput")
    }
    peak = {n: max(s.slots for s in r.samples) for n, r in by_name.items()}
    assert 9 < peak["target-tracking"] < 16
    assert peak["throughput"] <= 9  # one past the store's optimum of 8 at most
    samples = by_name["target-tracking"].samples
    top = next(i for i, s in enumerate(samples) if s.slots == peak["target-tracking"])
    back = samples[top + 2]
    assert back.slots <= 9 and back.depth > 100, back
    ratio = {n: r.metrics.ratio for n, r in by_name.items()}
    assert ratio["throughput"] < 1.3 and ratio["target-tracking"] < 1.3, ratio


def test_runs_are_deterministic_and_the_same_strategy_code_is_called() -> None:
    a = simulate(get_strategy("target-tracking"), builtin_burst())
    b = simulate(get_strategy("target-tracking"), builtin_burst())
    assert a.metrics == b.metrics
    assert a.samples == b.samples
    assert "scale up at once" in " ".join(s.reason for s in a.samples)


def test_a_strategy_that_breaks_the_contract_stops_the_run() -> None:
    class Greedy(AutoscaleStrategy):
        name = "greedy"

        def decide(self, observations: Observations, state: ScaleState) -> Decision:
            return Decision(dict.fromkeys(observations.queues, 99), "more")

    with pytest.raises(StrategyContractError, match="'greedy' wants 99 slots"):
        simulate(Greedy(), Workload("w", ((0.0, 1),)), TINY)


def test_builtin_burst_has_bursts_and_step_changes() -> None:
    wl = builtin_burst()
    steps = detect_steps(wl, 10)
    assert [s.direction for s in steps] == [1, -1, 1, 1, -1, -1, 1, -1]
    assert wl.total_chunks == 240 + 120 + 240 + 60 + 120


def test_workload_files(tmp_path: Path) -> None:
    jl = tmp_path / "w.jsonl"
    jl.write_text('{"time_s": 2, "chunks": 3}\n\n{"time_s": 1, "chunks": 1}\n')
    assert load_workload(str(jl)).arrivals == ((1.0, 1), (2.0, 3))
    cv = tmp_path / "w.csv"
    cv.write_text("time_s,chunks\n0.5,4\n3,0\n7,2\n")
    assert load_workload(str(cv)).arrivals == ((0.5, 4), (7.0, 2))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"time": 1}\n')
    with pytest.raises(UsageError, match=r"bad.jsonl:1: expected"):
        load_workload(str(bad))
    with pytest.raises(UsageError, match="known: builtin:burst"):
        load_workload("builtin:nope")
    with pytest.raises(UsageError, match="neither builtin:NAME nor a readable file"):
        load_workload(str(tmp_path / "missing.csv"))
    empty = tmp_path / "e.csv"
    empty.write_text("time_s,chunks\n")
    with pytest.raises(UsageError, match="no chunks arrive"):
        load_workload(str(empty))


def test_bad_configuration() -> None:
    with pytest.raises(UsageError, match="min"):
        SimConfig(min_concurrency=5, max_concurrency=2)
    with pytest.raises(UsageError, match="dt_s"):
        SimConfig(interval_s=0)


def test_plot_names_the_missing_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    r = simulate(Fixed(2), Workload("tiny", ((1.0, 10),)), TINY, STORE)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match="pip install matplotlib"):
        plot([r], tmp_path / "x.png")


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    r = simulate(Fixed(2), Workload("tiny", ((1.0, 10),)), TINY, STORE)
    out = plot([r], tmp_path / "x.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_prints_the_four_figures() -> None:
    res = CliRunner().invoke(autoscale_group, ["simulate", "--strategy", "target-tracking"])
    assert res.exit_code == 0, res.output
    for figure in ("worker-seconds", "drain per burst", "reaction", "reversals"):
        assert figure in res.output
    assert "target <= 1.2x" in res.output


def test_cli_all_prints_a_table_and_json(tmp_path: Path) -> None:
    res = CliRunner().invoke(autoscale_group, ["simulate", "--strategy", "all"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[1].split()[:4] == ["strategy", "worker-s", "ideal", "ratio"]
    assert {line.split()[0] for line in lines[2:5]} == {"step", "target-tracking", "throughput"}
    wl = tmp_path / "w.csv"
    wl.write_text("0.5,30\n60,30\n")
    res = CliRunner().invoke(
        autoscale_group,
        [
            "simulate",
            "--strategy",
            "step",
            "--workload",
            str(wl),
            "--json",
            "--max",
            "8",
            "-p",
            "cooldown_s=5",
            "--interval",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert row["params"]["cooldown_s"] == 5 and row["interval_s"] == 2
    assert len(row["drain_s"]) == 2 and set(row["targets_met"]) == {
        "worker_seconds",
        "reaction",
        "reversals",
    }


def test_cli_usage_errors() -> None:
    runner = CliRunner()
    res = runner.invoke(autoscale_group, ["simulate", "--strategy", "nope"])
    assert res.exit_code == 2 and "unknown autoscale strategy 'nope'" in res.output
    res = runner.invoke(autoscale_group, ["simulate", "--strategy", "all", "-p", "cooldown_s=1"])
    assert res.exit_code == 2 and "STRATEGY.KEY=VALUE" in res.output
    res = runner.invoke(autoscale_group, ["simulate", "--strategy", "step", "-p", "bands=0:1:0"])
    assert res.exit_code == 2 and "must end at inf" in res.output
    res = runner.invoke(autoscale_group, ["simulate", "--min", "3", "--max", "1"])
    assert res.exit_code == 2


def test_cli_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.png"
    res = CliRunner().invoke(
        autoscale_group, ["simulate", "--strategy", "throughput", "--plot", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert f"plot written to {out}" in res.output and out.stat().st_size > 1000


def test_cli_lists_strategies() -> None:
    res = CliRunner().invoke(autoscale_group, ["strategies"])
    assert res.exit_code == 0
    assert "target_backlog_per_slot = 30.0" in res.output and "cooldown_s" in res.output
