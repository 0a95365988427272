"""``mover``: copy, check and follow jobs from the command line.

Exit codes: 0 done; 1 failed (the job failed or was cancelled, or what it names does not work:
a missing source, a store that refuses); 2 usage (bad options, a malformed URL, an unknown
store or plugin); 4 not found (a job id no job store knows); 130 interrupted. Errors are one
line naming what is wrong; ``--debug`` adds the traceback. Global options (``--debug``, and
``--quiet``/``--json`` of the command) go before or after the command name. Sizes are in
binary units (KiB, MiB, GiB) everywhere. A closed pipe (``mover jobs | head -1``) ends quietly.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from mover.errors import EXIT_FAILED, EXIT_USAGE, MoverError, UsageError
from mover.executors import EXECUTORS

_debug = False


def _fail(message: str, code: int) -> None:
    click.echo(f"mover: {message}", err=True)
    sys.exit(code)


def _run(fn: Callable[[], Any]) -> Any:
    """Run a command body, turning errors into one line and an exit code."""
    try:
        return fn()
    except MoverError as exc:
        if _debug:
            raise
        _fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; partial data cleaned (mover resume continues the job)", 130)
    except BrokenPipeError:
        _quiet_pipe()  # the reader went away (| head): not an error
    except OSError as exc:
        if _debug:
            raise
        _fail(str(exc), EXIT_FAILED)
    except Exception as exc:
        # The broker's libraries (a Redis restart under a command): one line, no traceback.
        if _debug or type(exc).__module__.split(".")[0] not in _BROKER_LIBRARIES:
            raise
        from mover.redact import redact

        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        _fail(
            f"the broker failed: {type(exc).__name__}{': ' + redact(text) if text else ''} (is "
            "the broker up? a job it left is resumable: mover jobs, mover resume JOB)",
            EXIT_FAILED,
        )


#: Top-level modules whose errors are the broker's (Redis client, kombu, Celery).
_BROKER_LIBRARIES = frozenset({"redis", "kombu", "celery", "billiard", "amqp"})


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """``--chunk-size`` of the commands that take it as a click option (sync): checked by the
    one options function (:mod:`mover.options`), with its error text."""
    from mover.options import chunk_size_bytes

    try:
        return chunk_size_bytes(value)
    except MoverError as exc:
        raise click.BadParameter(exc.message) from exc


def _fleet_configured() -> bool:
    """A broker is configured (``MOVER_BROKER_URL`` or ``[fleet] broker_url``): jobs live in
    Redis and copies go to the fleet by default."""
    from mover.config import fleet_setting

    return bool(fleet_setting("broker_url"))


def _jobstore() -> Any:
    """The job store ``mover jobs/status/resume/cancel`` read: Redis when a broker is
    configured (the fleet's records), else the local SQLite file."""
    if _fleet_configured():
        from mover.jobstores.redis import RedisJobStore

        store = RedisJobStore()
        store.check()
        return store
    from mover.api import default_jobstore

    return default_jobstore()


class _LazyGroup(click.Group):
    """Command groups that live in their own modules (one concern per module) are imported
    only when used or listed, so that ``mover copy`` does not pay for ``mover template``."""

    #: name -> ``module:attribute`` of a click command or group
    lazy = {
        "zones": "mover.cli.catalogue:zones",
        "stores": "mover.cli.catalogue:stores",
        "template": "mover.cli.catalogue:template",
        "snapshot": "mover.cli.catalogue:snapshot",
        "repo": "mover.cli.repo:repo",
        "autoscale": "mover.cli.autoscale:autoscale_group",
        "flower": "mover.cli.flower:flower_command",
        "metrics": "mover.cli.monitor:metrics_command",
        "dashboard": "mover.cli.monitor:dashboard_command",
        "ls": "mover.cli.verbs:ls_command",
        "sync": "mover.cli.verbs:sync_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            module, _, attr = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    envvar="MOVER_LOG_FORMAT",
    help="Log lines as text, or one JSON object each (with job, item, chunk, store, queue); "
    "workers and the autoscale controller started from here log alike.",
)
@click.version_option(package_name="mover")
def cli(debug: bool, log_format: str | None) -> None:
    """mover moves backup data between stores, in chunks, verified.

    Locations are URLs (s3://bucket/key, swift://container/obj, file:///path, https://...),
    plain paths, - for standard input or output, or store:NAME/key for a configured store.
    """
    global _debug
    _debug = debug
    from mover.monitor import logs

    logs.configure(logging.DEBUG if debug else logging.WARNING, log_format)
    from mover.redact import install_log_filter

    install_log_filter()  # a signed URL's credential never reaches a log line


def _print_plan(request: Any) -> None:
    from mover import dispatcher
    from mover.motion import Endpoint
    from mover.planning import choose_chunk_size, human
    from mover.transfer import endpoints, prepare

    recursive, options = request.recursive, request.options
    chunk, streams = options.chunk_size, options.streams
    job = prepare(request)
    for item in job.items[:50]:
        src, dst = endpoints(item)
        if not recursive:  # what the source is (a device, a stream) decides the strategy too
            src = Endpoint(src.store, src.location, src.store.stat(src.key))
        strategy, priority = dispatcher.choose(src, dst)
        limits = dst.caps.chunk_writer
        if limits is not None:
            size, notes = choose_chunk_size(item.size, limits, chunk, streams)
            n = 1 if not item.size else -(-item.size // size)
            if item.size is not None:
                size = min(size, item.size)  # a 12-byte file is one chunk of 12 bytes
            detail = f"{n} chunk(s) of {human(size)}"
            if notes:
                detail += "; " + "; ".join(notes)
        else:
            detail = "server-side"
        click.echo(
            f"{item.source} -> {item.destination}: {human(item.size)}, "
            f"{strategy.name} ({priority.name}), {detail}"
        )
    if len(job.items) > 50:
        click.echo(f"... and {len(job.items) - 50} more objects")
    click.echo(f"dry run: {len(job.items)} object(s), {human(job.size)}; nothing moved")


def _report(job: Any, as_json: bool, quiet: bool) -> None:
    from mover.planning import human

    summary = job.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        rate = (job.bytes_done / summary["seconds"]) if summary["seconds"] else 0
        line = (
            f"{job.state}: {summary['objects']} object(s), {human(job.bytes_done)} in "
            f"{summary['seconds']:.2f} s ({human(int(rate))}/s), "
            f"strategy {', '.join(summary['strategies']) or '-'}, job {job.id}"
        )
        click.echo(line, err=True)
        if job.digest:
            click.echo(f"verified: {job.digest}; {_source_checked(job)}", err=True)
        for note in job.notes:
            click.echo(f"note: {note}", err=True)
    if job.state != "done":
        if job.error:
            click.echo(f"mover: {job.error}", err=True)
        click.echo(f"mover: resume with: mover resume {job.id}", err=True)
        sys.exit(EXIT_FAILED)


def _source_checked(job: Any) -> str:
    """What the objects' reads were checked against (README: What "verified" means)."""
    checks = [(i.plan or {}).get("source") or {} for i in job.items]
    against = sorted({c["what"] for c in checks if c.get("what")})
    if len(job.items) == 1 and against:
        return f"source checked against {against[0]}"
    if against:
        held = sum(1 for c in checks if c.get("what"))
        return f"sources checked against their stores' values ({held} of {len(checks)} objects)"
    if any(c.get("version") for c in checks):
        return "source held to its version (its store keeps no digest of the bytes)"
    return "source not checked (its store keeps no digest or version)"


#: ``--executor``, for every command that runs a copy job (copy, sync).
executor_option = click.option(
    "--executor",
    type=click.Choice(list(EXECUTORS)),
    default=None,
    help="Where chunks run: in this process, or on the Celery fleet "
    "(default: celery when MOVER_BROKER_URL is set, else embedded).",
)


@cli.command()
@click.argument("source")
@click.argument("destination")
@click.option("-r", "--recursive", is_flag=True, help="Copy a folder or prefix.")
@click.option(
    "--streams",
    type=int,
    default=4,
    show_default=True,
    help="Chunks in flight at once (1 to 256).",
)
@click.option("--chunk-size", help="Bytes per chunk (64MiB, 8M ...).")
@click.option(
    "--to-device",
    is_flag=True,
    help="DESTINATION is a block device, to be overwritten in place (refused without it).",
)
@click.option("--dry-run", is_flag=True, help="Print the strategy and plan; move nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no summary.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@executor_option
@click.option(
    "--detach",
    is_flag=True,
    help="Fleet only: print the job id and return at once (mover status, mover jobs follow "
    "it); without it the copy waits for its end whatever the executor.",
)
@click.option("--wait/--no-wait", default=None, hidden=True, help="--no-wait is --detach.")
@click.option("--include", multiple=True, help="With -r: glob of objects to copy (mover ls -h).")
@click.option("--exclude", multiple=True, help="With -r: glob of objects to leave out.")
def copy(
    source: str,
    destination: str,
    recursive: bool,
    streams: int,
    chunk_size: str | None,
    to_device: bool,
    dry_run: bool,
    quiet: bool,
    as_json: bool,
    executor: str | None,
    detach: bool,
    wait: bool | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
) -> None:
    """Copy SOURCE to DESTINATION, verified chunk by chunk.

    SOURCE may be a file, an object, a block device (a volume: snapshot it first if it is in
    use), a pipe or a socket; DESTINATION a block device only with --to-device."""
    from mover.cli.progress import ProgressBar
    from mover.executors.contract import Follow, executor_class
    from mover.options import request_for

    options = {
        "streams": streams,
        "chunk_size": chunk_size,
        "recursive": recursive,
        "to_device": to_device,
        "include": include,
        "exclude": exclude,
    }
    request = _run(lambda: request_for(source, destination, options))
    if dry_run:
        _run(lambda: _print_plan(request))
        return
    kind = _run(lambda: executor_class(executor))
    if (detach or wait is False) and not kind.detachable:
        _fail(
            "--detach leaves a job to the fleet; an embedded copy runs in this process "
            "(set MOVER_BROKER_URL or add --executor celery)",
            EXIT_USAGE,
        )
    runner = _run(lambda: kind.open(streams=request.options.streams))
    # The executor's own checks (the fleet: device, pipe, signed URL, a broker that cannot
    # work) run before anything is planned, recorded or published.
    job = _run(lambda: runner.prepare(request))
    if detach or wait is False:
        job = _run(lambda: runner.start(job))
        click.echo(json.dumps(runner.status(job.id).summary(), indent=2) if as_json else job.id)
        return
    bar_on = not quiet and not as_json and destination != "-"

    def body() -> Any:
        with ProgressBar("copying", job.size, enabled=bar_on) as bar:
            try:
                return runner.complete(job, Follow(on_progress=bar, on_notice=bar.note))
            except KeyboardInterrupt:
                if not runner.detachable:
                    raise  # the job stopped with this process, its partial data cleaned
                _fail(f"stopped following; job {job.id} goes on (mover cancel {job.id})", 130)

    _report(_run(body), as_json, quiet)


def _resume_elsewhere(runner: Any, job: Any, quiet: bool, as_json: bool, wait: bool) -> None:
    """Resume a job of an executor whose jobs go on without this process (the fleet): it
    enqueues what is not done; then follow it, or return at once."""
    from mover.cli.progress import ProgressBar

    resumed = _run(lambda: runner.resume(job.id))
    if not wait:
        click.echo(resumed.id)
        return

    def follow() -> Any:
        enabled = not quiet and not as_json
        with ProgressBar("resuming", resumed.size, enabled=enabled) as bar:
            return runner.wait(resumed.id, on_progress=bar, on_notice=bar.note)

    _report(_run(follow), as_json, quiet)


@cli.command()
@click.argument("job_id")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for the workers to stop; then unfinished objects are aborted "
    "from here. 0: only ask, do not wait.",
)
def cancel(job_id: str, wait_s: float) -> None:
    """Cancel a job of the fleet: queued chunks are dropped, running ones stop at their next
    read, uploads are aborted and temporary data removed; the job ends cancelled."""
    from mover.executors.contract import open_executor

    def body() -> Any:
        store = _jobstore()
        if not hasattr(store, "transition"):
            raise UsageError(
                "mover cancel acts on fleet jobs: set MOVER_BROKER_URL (an embedded copy "
                "stops with Ctrl-C)"
            )
        fleet: Any = open_executor("celery", store)
        return fleet.cancel(job_id, wait_s=wait_s or None)

    job = _run(body)
    click.echo(f"job {job.id}: {job.state}")


@cli.command()
@click.argument("job_id")
@click.option("--streams", type=click.IntRange(1, 256), default=None)
@click.option("-q", "--quiet", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--wait/--no-wait",
    default=True,
    help="Fleet jobs: follow the job to its end (default), or return once re-enqueued.",
)
@click.option(
    "--source",
    help="The job's source URL again, when it was a signed URL (recorded without its credential).",
)
def resume(
    job_id: str, streams: int | None, quiet: bool, as_json: bool, wait: bool, source: str | None
) -> None:
    """Finish a failed, cancelled or interrupted job: only what is not done runs again.

    A job of the fleet (executor celery) is resumed on the fleet: only its chunks not done are
    enqueued again."""
    from mover import api
    from mover.cli.progress import ProgressBar

    if _fleet_configured():
        from mover.errors import JobNotFound

        store = _run(_jobstore)

        def find() -> Any:
            try:
                return store.get(job_id)
            except JobNotFound:
                return None  # not a fleet job: perhaps an embedded one, in SQLite

        job = _run(find)
        if job is not None:
            from mover.executors.contract import open_executor

            runner = _run(lambda: open_executor(job.executor, store))
            if runner.detachable:  # resumed where it runs; an embedded one runs again here
                _resume_elsewhere(runner, job, quiet, as_json, wait)
                return

    def body() -> Any:
        with ProgressBar("resuming", None, enabled=not quiet and not as_json) as bar:
            return api.resume(
                job_id,
                source=source,
                streams=streams,
                on_progress=bar,
                on_start=lambda job: bar.set_total(job.size),
                raise_on_failure=False,
            )

    _report(_run(body), as_json, quiet)


@cli.command("cleanup")
def cleanup_command() -> None:
    """Retry now every abort that met a dead store (a multipart upload, Swift segments, a
    temporary file left by a failed job); they are otherwise retried by the fleet's workers
    and by mover resume."""
    from mover import cleanup

    def body() -> None:
        store = _jobstore()
        records = store.pending_aborts()
        left = [r for r in records if not cleanup.retry(store, r)]
        click.echo(f"{len(records) - len(left)} removed, {len(left)} still pending")
        for r in left:
            click.echo(f"  job {r.job_id} object {r.item} ({r.destination}): {r.error}")
        if left:
            sys.exit(EXIT_FAILED)

    _run(body)


@cli.command()
@click.argument("source")
@click.argument("destination")
def strategies(source: str, destination: str) -> None:
    """Show every motion strategy's priority for SOURCE -> DESTINATION and the winner."""
    from mover import dispatcher
    from mover.motion import Endpoint
    from mover.resolve import open_location

    def body() -> None:
        src_store, src_loc = open_location(source)
        dst_store, dst_loc = open_location(destination)
        try:
            info = src_store.stat(src_loc.full_key)
        except MoverError:
            # Without the object (or the network) the size is unknown: rank as for a
            # sized object, which is what a real copy would have.
            from mover.provider import ObjectInfo

            info = ObjectInfo(src_loc.full_key, 1)
        ranking = dispatcher.rank(Endpoint(src_store, src_loc, info), Endpoint(dst_store, dst_loc))
        winner = next((c for c in ranking if c.priority > 0), None)
        click.echo(f"{'strategy':<16} {'priority':<14} summary")
        for cand in ranking:
            mark = "*" if winner is not None and cand.name == winner.name else " "
            text = cand.error or cand.summary
            click.echo(f"{mark}{cand.name:<15} {cand.priority.name:<14} {text}")
        if winner is None:
            _fail(f"no strategy can move {source} to {destination}", EXIT_FAILED)
        click.echo(f"winner: {winner.name}")

    _run(body)


@cli.command()
@click.argument("source")
@click.argument("destination")
@click.option("-r", "--recursive", is_flag=True, help="Compare folders or prefixes.")
@click.option("--streams", type=click.IntRange(1, 256), default=4, show_default=True)
def check(source: str, destination: str, recursive: bool, streams: int) -> None:
    """Compare sizes and contents; list the differences. Exit 1 when they differ."""
    from mover.check import compare

    def body() -> None:
        result = compare(source, destination, recursive=recursive, streams=streams)
        for line in result.differences:
            click.echo(line)
        click.echo(f"{result.matched} matching, {len(result.differences)} differing", err=True)
        if result.differences:
            sys.exit(EXIT_FAILED)

    _run(body)


@cli.command()
@click.option("-n", "--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def jobs(limit: int, as_json: bool) -> None:
    """List recent jobs, newest first: embedded ones (this host's SQLite file) and, when
    MOVER_BROKER_URL is set, the fleet's (in Redis) together; the executor column says which."""
    from mover.planning import human

    def body() -> None:
        from mover.api import default_jobstore

        found = default_jobstore().list(limit)
        if _fleet_configured():
            found += _jobstore().list(limit)
        found = sorted(found, key=lambda j: j.created, reverse=True)[:limit]
        if as_json:
            click.echo(json.dumps([j.summary() for j in found], indent=2))
            return
        for job in found:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.created))
            click.echo(
                f"{job.id}  {job.state:<9} {job.executor or 'embedded':<8} {when}  "
                f"{human(job.size):>10}  {len(job.items):>5} obj  "
                f"{job.source} -> {job.destination}"
            )

    _run(body)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def status(job_id: str, as_json: bool) -> None:
    """Show a job: state, bytes, objects and chunks, errors."""
    from mover.planning import human

    def body() -> None:
        store = _jobstore()
        job = store.get(job_id)
        waiting = _waiting_for(store, job)
        if as_json:
            record = job.to_dict()
            if waiting:
                record["waiting_for_workers"] = waiting
            click.echo(json.dumps(record, indent=2, default=str))
            return
        s = job.summary()
        click.echo(f"job {job.id}: {job.state}")
        if waiting:
            from mover.executors.waiting import waiting_line

            click.echo(f"  {waiting_line(waiting)}")
        click.echo(f"  {job.source} -> {job.destination}")
        click.echo(f"  {human(job.bytes_done)} of {human(job.size)}, {s['objects']} object(s)")
        click.echo(f"  strategies: {', '.join(s['strategies']) or '-'}")
        if job.digest:
            click.echo(f"  digest: {job.digest}")
        if job.items and job.items[0].plan:
            click.echo(f"  source: {_source_checked(job)}")
        for note in job.notes:
            click.echo(f"  note: {note}")
        if job.error:
            click.echo(f"  error: {job.error}")
        elapsed = (job.finished or time.time()) - job.created
        if elapsed > 0 and job.bytes_done:
            click.echo(f"  rate: {human(int(job.bytes_done / elapsed))}/s over {elapsed:.1f} s")
        for item in job.items[:20]:
            done = sum(1 for c in item.chunks if c.state == "done")
            click.echo(
                f"  [{item.index}] {item.state:<10} {done}/{len(item.chunks)} chunks "
                f"{human(item.size):>10}  {item.destination}"
                + (f"  ({item.error})" if item.error else "")
            )
            for chunk in item.chunks:
                if chunk.error and chunk.state != "done":
                    click.echo(f"      chunk {chunk.index}: {chunk.state}: {chunk.error}")
        if len(job.items) > 20:
            click.echo(f"  ... {len(job.items) - 20} more objects")

    _run(body)


def _waiting_for(store: Any, job: Any) -> list[str]:
    """The queues a fleet job waits for a worker on (empty elsewhere)."""
    if job.executor != "celery" or not hasattr(store, "prefix"):
        return []
    from mover.executors.waiting import unserved

    return unserved(store, job)


def default_queues() -> list[str]:
    """The queues a worker consumes unless told (``-Q``): ``mover`` (submit, commit),
    ``celery`` (where a bare ``send_task`` lands), ``mover.<scheme>`` for every registered
    provider and ``mover.store.<name>`` for every store of the configuration file and of the
    catalogue."""
    from mover import config as config_mod
    from mover.resolve import providers

    queues = ["mover", "celery"]
    queues += [f"mover.{name}" for name in providers.names()]
    try:
        stores = set(config_mod.load().stores)
    except MoverError:
        stores = set()  # a broken configuration is reported by the commands that use it
    try:
        from mover.catalogue.store import store_names

        stores |= set(store_names())  # the catalogue's stores (a shared one: every host's)
    except MoverError:
        pass  # an unreachable catalogue is reported by the commands that use it
    return queues + [f"mover.store.{name}" for name in sorted(stores)]


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "-Q",
    "--queues",
    help="Comma-separated queues (default: mover, celery, mover.SCHEME for every provider, "
    "mover.store.NAME for every configured store).",
)
@click.option("-c", "--concurrency", type=click.IntRange(1, 1024), help="Pool size.")
@click.option("-n", "--hostname", help="Worker name, e.g. mover1@%h.")
@click.option(
    "--pool",
    type=click.Choice(["prefork", "threads", "solo"]),
    default="prefork",
    show_default=True,
)
@click.option("-l", "--loglevel", default="INFO", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    queues: str | None,
    concurrency: int | None,
    hostname: str | None,
    pool: str,
    loglevel: str,
    celery_args: tuple[str, ...],
) -> None:
    """Run a Celery worker of the fleet (a thin wrapper of: celery -A mover.workers.app worker).

    The broker is MOVER_BROKER_URL. By default the worker consumes mover, celery,
    mover.SCHEME for every provider and mover.store.NAME for every configured store; -Q
    narrows it (e.g. -Q mover.s3 for a pool dedicated to S3 destinations). Extra arguments go
    to celery unchanged. Credentials come from this process's environment and configuration,
    never from task messages.
    """
    import os

    from mover import config as config_mod

    try:  # a configuration that cannot work: one line here, not a traceback in Celery's import
        config_mod.broker_url(), config_mod.jobs_url(), config_mod.result_backend()
    except MoverError as exc:
        _fail(exc.message, exc.exit_code)
    argv = [sys.executable, "-m", "celery", "-A", "mover.workers.app", "worker"]
    argv += ["-Q", queues or ",".join(default_queues()), "--pool", pool, "-l", loglevel, "-E"]
    if concurrency:
        argv += ["-c", str(concurrency)]
    if hostname:
        argv += ["-n", hostname]
    argv += list(celery_args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


@cli.command()
def plugins() -> None:
    """List registered providers, strategies and other plugins, and any that fail to load."""
    from mover.autoscale import autoscale_strategies
    from mover.catalogue.placement import placements
    from mover.dispatcher import strategies as motion
    from mover.launcher import launchers
    from mover.resolve import providers

    def body() -> None:
        for registry in (providers, motion, autoscale_strategies, launchers, placements):
            click.echo(f"{registry.group}:")
            infos = {i.name: i for i in registry.infos()}
            for name, _plugin, error in registry.load_all():
                info = infos[name]
                state = f"error: {error}" if error else "ok"
                click.echo(f"  {name:<14} {info.target:<50} {state}")

    _run(body)


#: Options of the ``mover`` group that are flags: accepted after the command name too.
_GROUP_FLAGS = frozenset({"--debug"})
#: Options of the group that take a value (skipped when finding the command name).
_GROUP_VALUED = frozenset({"--log-format"})
#: Options of a command accepted before the command name too (moved after it).
_COMMAND_FLAGS = frozenset({"--json", "-q", "--quiet"})


def reorder(argv: list[str]) -> list[str]:
    """Global options before or after the command: ``mover copy --debug A B`` and ``mover
    --json jobs`` mean ``mover --debug copy A B`` and ``mover jobs --json``. Only options the
    target takes are moved, and nothing after ``--``."""
    at = 0
    while at < len(argv) and argv[at].startswith("-") and argv[at] != "--":
        at += 2 if argv[at] in _GROUP_VALUED else 1
    if at >= len(argv) or argv[at] == "--":
        return argv
    command = cli.get_command(click.Context(cli), argv[at])
    takes = set()
    if command is not None and not isinstance(command, click.Group):
        takes = {opt for p in command.params for opt in getattr(p, "opts", [])}
    head = argv[:at]
    moved = [a for a in head if a in _COMMAND_FLAGS and a in takes]
    head = [a for a in head if a not in moved]
    end = argv.index("--") if "--" in argv[at:] else len(argv)
    rest = argv[at + 1 : end]
    lifted = [a for a in rest if a in _GROUP_FLAGS and a not in takes]
    rest = [a for a in rest if a not in lifted]
    return [*lifted, *head, argv[at], *moved, *rest, *argv[end:]]


def _quiet_pipe() -> None:
    """The reader of our output went away (``| head -1``): end quietly, exit 0."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not fail again
    sys.exit(0)


def main() -> None:
    try:
        cli(args=reorder(sys.argv[1:]), standalone_mode=False)
    except BrokenPipeError:
        _quiet_pipe()
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.exceptions.NoSuchOption as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except SystemExit:
        raise


if __name__ == "__main__":
    main()
