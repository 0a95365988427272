"""``mover autoscale``: the autoscale controller, its strategies, and a simulator to tune them.

``mover autoscale --strategy NAME`` runs the controller (:mod:`mover.workers.controller`): it scales
the pools of the workers it finds, and starts or stops worker processes through a launcher.

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

from mover.cli.params import count, seconds, stacked
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


#: --interval, --min and --max: the same for the live controller and the simulator.
_control_options = stacked(
    seconds("--interval", "interval_s", default=5.0, help="Seconds between control decisions."),
    count("--min", "min_slots", default=0, help="Fewest slots a queue has."),
    count("--max", "max_slots", default=16, help="Most slots a queue has."),
)


@click.group(
    "autoscale",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--strategy",
    "strategy_name",
    default=None,
    help="The autoscale strategy (mover autoscale strategies lists them); default: the one "
    "that scored best live (step; see the README).",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A strategy parameter (repeatable), e.g. -p target_backlog_per_slot=20.",
)
@_control_options
@count("--min-per-worker", default=1, help="Smallest pool of a worker.")
@count("--max-per-worker", default=8, help="Largest pool of a worker.")
@click.option(
    "-Q",
    "--queue",
    "queues",
    multiple=True,
    help="A queue to manage (repeatable; default: every queue a worker consumes, but celery).",
)
@seconds(
    "--poll",
    "poll_s",
    default=0.5,
    help="Seconds between looks at the queues' lengths between decisions; new work is "
    "decided on at once (0: only every --interval).",
)
@click.option("--dry-run", is_flag=True, help="Observe, decide and log; change nothing.")
@click.option("--once", is_flag=True, help="Run one control interval and exit.")
@click.option(
    "--launcher",
    "launcher_name",
    default="none",
    show_default=True,
    help="Starts more worker processes when every pool is full: none, local, command, or a "
    "plugin of mover.launchers.",
)
@count("--max-workers", default=4, help="Most launched workers.")
@seconds(
    "--idle",
    "idle_s",
    default=30.0,
    help="Seconds the fleet must do without a launched worker before it is stopped.",
)
@click.option(
    "--keep-workers", is_flag=True, help="Leave launched workers running when this exits."
)
@count(
    "--worker-concurrency",
    default=1,
    help="local launcher: the pool size a new worker starts with.",
)
@click.option("--worker-queues", default=None, help="local launcher: -Q of new workers.")
@click.option(
    "--worker-arg", "worker_args", multiple=True, help="local launcher: an extra worker argument."
)
@seconds(
    "--grace",
    "grace_s",
    default=30.0,
    help="local launcher: seconds between SIGTERM and SIGKILL when stopping a worker.",
)
@click.option("--start-command", default=None, help="command launcher: starts worker {name}.")
@click.option("--stop-command", default=None, help="command launcher: stops worker {name}.")
@click.option("--list-command", default=None, help="command launcher: prints worker names.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where launchers keep their state and logs (default $MOVER_STATE_DIR/launcher).",
)
@click.option(
    "--name",
    "controller_name",
    default="default",
    show_default=True,
    help="The controller's name: its lock and saved state in Redis.",
)
@click.pass_context
def autoscale_group(ctx: click.Context, /, **options: Any) -> None:
    """Scale the fleet: pool sizes by queue backlog and throughput, worker processes on demand.

    Without a subcommand, runs the controller: every --interval it observes each queue (depth
    over all priority bands, chunks in flight, pools, recent bytes/s), asks the --strategy for
    the slots each queue needs, and grows or shrinks the prefork pools of the workers it finds
    (pool_grow / pool_shrink), within each store's max_streams. With a --launcher, it starts
    more workers when every pool is at --max-per-worker and stops them when idle. Each
    decision is logged with its reason; --dry-run only logs.

    Strategies are plugins (entry-point group mover.autoscale): target-tracking, step and
    throughput ship with mover.
    """
    if ctx.invoked_subcommand is not None:
        return
    run_controller(**options)


def _launcher(name: str, options: dict[str, Any]) -> Any:
    """The launcher named ``name`` built from the command-line options (None for none)."""
    if name in ("", "none"):
        return None
    from mover.launcher import Launcher, launchers

    plugin: Any = launchers.get(name)
    if isinstance(plugin, Launcher):
        return plugin
    if name == "local":
        queues = options["worker_queues"]
        return plugin(
            state_dir=options["state_dir"],
            concurrency=options["worker_concurrency"],
            queues=queues.split(",") if queues else None,
            extra_args=options["worker_args"],
            grace_s=options["grace_s"],
        )
    if name == "command":
        return plugin(
            start_command=options["start_command"] or "",
            stop_command=options["stop_command"] or "",
            list_command=options["list_command"],
            state_dir=options["state_dir"],
        )
    return plugin()


def run_controller(**options: Any) -> None:
    """``mover autoscale [OPTIONS]``: build the controller and run it until SIGTERM/SIGINT."""
    import logging
    import signal

    from mover import config as config_mod
    from mover.broker_queues import open_queues
    from mover.jobstores.redis import client_from_url

    logging.getLogger("mover.autoscale").setLevel(logging.INFO)
    logging.getLogger("mover.limits").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from mover.autoscale import DEFAULT_STRATEGY
        from mover.executors.celery import get_app
        from mover.executors.celery_app import broker_url
        from mover.workers.controller import Controller, ControllerConfig

        name = options["strategy_name"] or DEFAULT_STRATEGY
        params = _params(options["params"], [name])[name]
        config = ControllerConfig(
            strategy=name,
            params=params,
            interval_s=options["interval_s"],
            min_concurrency=options["min_slots"],
            max_concurrency=options["max_slots"],
            min_per_worker=options["min_per_worker"],
            max_per_worker=options["max_per_worker"],
            dry_run=options["dry_run"],
            queues=list(options["queues"]) or None,
            max_workers=options["max_workers"],
            idle_s=options["idle_s"],
            name=options["controller_name"],
            keep_workers=options["keep_workers"],
            poll_s=options["poll_s"],
        )
        launcher = _launcher(options["launcher_name"], options)
        controller = Controller(
            config,
            get_app(),
            open_queues(broker_url()),
            client_from_url(config_mod.jobs_url()),
            launcher=launcher,
        )
    except MoverError as exc:
        _fail(exc.message, exc.exit_code)
        return

    def on_signal(signum: int, _frame: Any) -> None:
        controller.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    click.echo(
        f"mover autoscale: strategy {name} {controller.strategy.params()}, every "
        f"{config.interval_s:g} s, pools {config.min_per_worker}..{config.max_per_worker}, "
        f"launcher {options['launcher_name']}{', dry run' if config.dry_run else ''}",
        err=True,
    )
    try:
        controller.run(ticks=1 if options["once"] else None)
    except MoverError as exc:
        _fail(exc.message, exc.exit_code)


@autoscale_group.command("strategies")
def strategies_cmd() -> None:
    """List the registered autoscale strategies and their default parameters."""
    from mover.autoscale import autoscale_strategies, get_strategy

    try:
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
@_control_options
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="[STRATEGY.]KEY=VALUE",
    help="A strategy parameter (repeatable), e.g. -p target_backlog_per_slot=20.",
)
@count("--seed", default=0, help="Seed of the grow delays.")
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
    from mover.autoscale import autoscale_strategies, get_strategy

    try:
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
