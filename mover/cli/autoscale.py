"""``mover autoscale``: autoscale strategies, and a simulator to choose and tune them.

``mover autoscale simulate`` runs a strategy's own ``decide`` against the model in
:mod:`mover.simulator` and prints the four figures of issue 5 against their targets:
worker-seconds against the ideal, time to drain each burst, reaction in control intervals,
direction reversals per step change. Nothing here talks to Redis or Celery.

Run alone with ``python -m mover.cli.autoscale``; the main CLI attaches :data:`autoscale_group`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from mover.errors import EXIT_USAGE, MoverError, UsageError


def _fail(message: str, code: int) -> None:
    click.echo(f"mover: {message}", err=True)
    sys.exit(code)


def _value(text: str) -> Any:
    """A parameter value: JSON when it parses (numbers, lists, null), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _params(items: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``key=value`` (for the one strategy) or ``name.key=value``, per strategy name."""
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected KEY=VALUE or STRATEGY.KEY=VALUE")
        name, dot, short = key.rpartition(".")
        if dot and name in out:
            out[name][short] = _value(value)
        elif len(names) == 1 and not dot:
            out[names[0]][key] = _value(value)
        else:
            raise UsageError(
                f"--param {item!r}: with several strategies, name one: STRATEGY.KEY=VALUE "
                f"(strategies: {', '.join(names)})"
            )
    return out


@click.group("autoscale", context_settings={"help_option_names": ["-h", "--help"]})
def autoscale_group() -> None:
    """Autoscale strategies: how many worker slots each queue gets.

    Strategies are plugins (entry-point group mover.autoscale): target-tracking, step and
    throughput ship with mover.
    """


@autoscale_group.command("strategies")
def strategies_cmd() -> None:
    """List the registered autoscale strategies and their default parameters."""
    from mover.autoscale import autoscale_strategies, ensure_builtin, get_strategy

    try:
        ensure_builtin()
        for name in autoscale_strategies.names():
            try:
                strategy = get_strategy(name)
            except MoverError as exc:
                click.echo(f"{name:<18} failed to load: {exc.message}")
                continue
            click.echo(f"{name:<18} {strategy.summary}")
            for key, value in strategy.params().items():
                click.echo(f"{'':<20}{key} = {value!r}")
    except MoverError as exc:
        _fail(exc.message, exc.exit_code)


@autoscale_group.command("simulate")
@click.option(
    "--strategy",
    "strategy_name",
    default="all",
    show_default=True,
    help="A registered strategy name, or 'all' for every one (a table).",
)
@click.option(
    "--workload",
    default="builtin:burst",
    show_default=True,
    help="builtin:burst, builtin:big, or a FILE of arrivals: JSON lines "
    '{"time_s": T, "chunks": N} or CSV time_s,chunks.',
)
@click.option(
    "--interval",
    "interval_s",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds between control decisions.",
)
@click.option(
    "--min", "min_slots", type=int, default=0, show_default=True, help="Fewest slots of the queue."
)
@click.option(
    "--max", "max_slots", type=int, default=16, show_default=True, help="Most slots of the queue."
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="[STRATEGY.]KEY=VALUE",
    help="A strategy parameter (repeatable), e.g. -p target_backlog_per_slot=20.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the grow delays.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write backlog and slots over time to this PNG (needs matplotlib).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def simulate_cmd(
    strategy_name: str,
    workload: str,
    interval_s: float,
    min_slots: int,
    max_slots: int,
    params: tuple[str, ...],
    seed: int,
    plot_path: str | None,
    as_json: bool,
) -> None:
    """Run a strategy against a model of queues, workers and a saturating store.

    The same decide() code the live controller runs; grows land after 2-5 s, shrinks take
    only idle slots, the store slows down past its optimum. Prints worker-seconds against the
    ideal, drain time per burst, reaction in intervals and direction reversals per step change,
    each against issue 5's targets.
    """
    from mover import simulator
    from mover.autoscale import autoscale_strategies, ensure_builtin, get_strategy

    try:
        ensure_builtin()
        names = autoscale_strategies.names() if strategy_name == "all" else [strategy_name]
        per_name = _params(params, names)
        config = simulator.SimConfig(
            interval_s=interval_s, min_concurrency=min_slots, max_concurrency=max_slots, seed=seed
        )
        wl = simulator.load_workload(workload)
        results = [simulator.simulate(get_strategy(n, **per_name[n]), wl, config) for n in names]
        if as_json:
            click.echo(json.dumps([_as_dict(r) for r in results], indent=2))
        elif len(results) == 1:
            click.echo(simulator.report(results[0]))
        else:
            click.echo(
                f"workload {wl.name}, interval {interval_s:g} s, slots {min_slots}..{max_slots}"
            )
            click.echo(simulator.table(results))
            click.echo("")
            for r in results:
                click.echo(simulator.report(r))
        if plot_path:
            out = simulator.plot(results, plot_path)
            click.echo(f"plot written to {out}")
    except MoverError as exc:
        _fail(exc.message, exc.exit_code)
    except OSError as exc:
        _fail(str(exc), EXIT_USAGE)


def _as_dict(result: Any) -> dict[str, Any]:
    m = result.metrics
    return {
        "strategy": result.strategy,
        "params": result.params,
        "workload": result.workload.name,
        "interval_s": result.config.interval_s,
        "worker_seconds": round(m.worker_seconds, 1),
        "ideal_worker_seconds": round(m.ideal_worker_seconds, 1),
        "ratio": round(m.ratio, 3),
        "drain_s": [round(b.drain_s, 1) for b in m.bursts],
        "ideal_drain_s": [round(b.ideal_drain_s, 1) for b in m.bursts],
        "reaction_up_intervals": list(m.reaction_up),
        "reaction_down_intervals": list(m.reaction_down),
        "reversals_per_step": list(m.reversals_per_step),
        "targets_met": m.targets(),
    }


if __name__ == "__main__":
    autoscale_group()
