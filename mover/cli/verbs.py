"""``mover ls`` and ``mover sync``: rclone's everyday verbs, over every store.

``sync`` plans here (two listings, no object read), then runs one ordinary copy job of the
objects that differ: in this process, or on the fleet when the celery executor is chosen,
exactly as ``mover copy -r`` does; extras are deleted here after that job is done
(:mod:`mover.syncing`).
"""

from __future__ import annotations

import json
from typing import Any

import click

from mover.cli.main import _fail, _run, _size, executor_option
from mover.errors import EXIT_USAGE

#: ``--include`` / ``--exclude``, shared by ``copy``, ``sync`` and ``ls`` (docs: mover.filters).
FILTER_HELP = (
    "Glob of objects to {} (rclone's rules: relative to the folder; * stops at /, ** does "
    "not; /x anchors at the folder; repeatable; includes are tested before excludes)."
)


def filter_options(fn: Any) -> Any:
    fn = click.option("--exclude", multiple=True, help=FILTER_HELP.format("leave out"))(fn)
    return click.option("--include", multiple=True, help=FILTER_HELP.format("select"))(fn)


@click.command("ls")
@click.argument("url")
@click.option("-r", "--recursive", is_flag=True, help="Every object below, not one level.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@filter_options
def ls_command(
    url: str, recursive: bool, as_json: bool, include: tuple[str, ...], exclude: tuple[str, ...]
) -> None:
    """List the objects under URL with their sizes in bytes (folders end in /)."""
    from mover.listing import ls

    entries = _run(lambda: ls(url, recursive=recursive, include=include, exclude=exclude))
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    for entry in entries:
        size = "-" if entry.size is None else str(entry.size)
        click.echo(f"{size:>14} {entry.path}")


@click.command("sync")
@click.argument("source")
@click.argument("destination")
@click.option("--delete", is_flag=True, help="Delete objects of DESTINATION that SOURCE lacks.")
@click.option("--dry-run", is_flag=True, help="List each action; change nothing.")
@filter_options
@click.option("--streams", type=click.IntRange(1, 256), default=4, show_default=True)
@click.option("--chunk-size", callback=_size, help="Bytes per chunk (64MiB, 8M ...).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no summary.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@executor_option
def sync_command(
    source: str,
    destination: str,
    dry_run: bool,
    quiet: bool,
    as_json: bool,
    executor: str | None,
    **how: Any,
) -> None:
    """Make the folder DESTINATION hold what the folder SOURCE holds.

    Copies the objects that are missing or differ (size, then a whole-object digest both
    stores hold, else a newer modification time); with --delete, then deletes the extras.
    A second run copies nothing."""
    # ``how``: --delete, --include, --exclude, --streams, --chunk-size, named as sync's keywords.
    from mover.cli.progress import ProgressBar
    from mover.syncing import sync

    if "-" in (source, destination):
        _fail("sync works on folders: standard input/output cannot be synced", EXIT_USAGE)
    bar_on = not (quiet or as_json or dry_run)

    def body() -> Any:
        with ProgressBar("syncing", None, enabled=bar_on) as bar:
            return sync(
                source,
                destination,
                dry_run=dry_run,
                executor=executor,
                on_progress=bar,
                on_start=lambda job: bar.set_total(job.size),
                on_notice=bar.note,
                **how,
            )

    # A failed copy job raises: one line naming the job, exit 1, nothing deleted.
    result = _run(body)
    if not quiet or dry_run:
        _print_actions(result, as_json, dry_run)


def _print_actions(result: Any, as_json: bool, dry_run: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    for action in result.actions:
        size = "" if action.size is None else f" ({action.size} bytes)"
        click.echo(f"{action.verb} {action.path}: {action.reason}{size}")
    copies, deletes = len(result.copies), len(result.deletes)
    if dry_run:
        click.echo(
            f"dry run: {copies} to copy, {deletes} to delete, {result.unchanged} unchanged; "
            "nothing changed",
            err=True,
        )
        return
    job = f", job {result.job.id}" if result.job is not None else ""
    click.echo(
        f"synced: {copies} copied, {len(result.deleted)} deleted, {result.unchanged} "
        f"unchanged{job}",
        err=True,
    )
