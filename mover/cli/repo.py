"""``mover repo init|prune|check|stats STORE``: a store's backup repository.

Thin layer over :mod:`mover.repository` as the catalogue commands are over the catalogue:
parse, call one function, print a short human report or ``--json``. Exit codes: 0 done (a
check that found nothing wrong), 1 failed or problems found, 2 usage.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from mover.cli.catalogue import _echo_json, _human, _run, _size
from mover.errors import EXIT_FAILED


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = value.strip().lower()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r}: a duration such as 0, 90s, 15m, 2h") from None


@click.group()
def repo() -> None:
    """The backup repository of a store: chunks stored once, encrypted, pruned, checked."""


@repo.command("init")
@click.argument("store")
@click.option("--chunk-size", callback=_size, help="Bytes per chunk of new backups (1MiB).")
@click.option("--pack-size", callback=_size, help="Bytes per pack object (16MiB).")
@click.option("--compression", help="zstd:LEVEL (zstd:1) or none.")
@click.option(
    "--like",
    help="Share this other store's master key: chunk ids then match, and "
    "copies between the two move only missing chunks.",
)
def repo_init(
    store: str,
    chunk_size: int | None,
    pack_size: int | None,
    compression: str | None,
    like: str | None,
) -> None:
    """Create STORE's repository, encrypted with the key its options name
    (repository_key_env / repository_key_file), or unencrypted if they say
    repository_encryption=none."""
    from mover.repository.repo import Repository

    r = _run(
        lambda: Repository.init(
            store, chunk_size=chunk_size, pack_bytes=pack_size, compression=compression, like=like
        )
    )
    c = r.config
    click.echo(
        f"repository of store {store} created: {c.encryption}, {c.compression}, chunks "
        f"{_human(c.chunk_size)}, packs {_human(c.pack_bytes)}"
    )


@repo.command("prune")
@click.argument("store")
@click.option(
    "--grace",
    callback=_duration,
    default="15m",
    show_default=True,
    help="Time between marking a pack and deleting it.",
)
@click.option("--dry-run", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def repo_prune(store: str, grace: float, dry_run: bool, as_json: bool) -> None:
    """Delete packs no manifest needs (marked by an earlier prune at least --grace ago, no
    backup that started before the mark still running), then mark those unneeded now."""
    from mover.repository.prune import prune
    from mover.repository.repo import Repository

    report: dict[str, Any] = _run(
        lambda: prune(Repository.open(store), grace_s=grace, dry_run=dry_run)
    )
    if as_json:
        _echo_json(report)
        return
    would = "would delete" if dry_run else "deleted"
    click.echo(
        f"{report['manifests']} manifests reference {report['referenced_chunks']} chunks in "
        f"{report['packs']} packs ({_human(report['stored_bytes'])}); {would} "
        f"{report['deleted_packs']} packs ({_human(report['deleted_bytes'])}), marked "
        f"{report['marked_packs']} ({_human(report['marked_bytes'])}) for the next prune"
    )
    for line in report["postponed"]:
        click.echo(f"  postponed: {line}")


@repo.command("check")
@click.argument("store")
@click.option(
    "--read-data-subset",
    "subset",
    metavar="PERCENT",
    help="Also read this share of the packs and verify every chunk in them (10%).",
)
@click.option("--json", "as_json", is_flag=True)
def repo_check(store: str, subset: str | None, as_json: bool) -> None:
    """Verify manifests, index and packs; name missing or corrupt chunks and the snapshots
    that need them. Exit 1 if anything is wrong."""
    from mover.repository.check import check, parse_fraction
    from mover.repository.repo import Repository

    def go() -> dict[str, Any]:
        fraction = parse_fraction(subset) if subset else 0.0
        return check(Repository.open(store), read_data=fraction)

    report: dict[str, Any] = _run(go)
    if as_json:
        _echo_json(report)
    else:
        for line in report["errors"]:
            click.echo(f"error: {line}")
        state = "ok" if report["ok"] else f"{len(report['errors'])} problem(s)"
        click.echo(
            f"{state}: {report['manifests']} manifests, {report['referenced_chunks']} chunks, "
            f"{report['packs']} packs ({report['packs_read']} read)"
        )
    if not report["ok"]:
        sys.exit(EXIT_FAILED)


@repo.command("stats")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True)
def repo_stats(store: str, as_json: bool) -> None:
    """Logical bytes the manifests describe against bytes the store holds."""
    from mover.repository.repo import Repository
    from mover.repository.stats import stats

    report: dict[str, Any] = _run(lambda: stats(Repository.open(store)))
    if as_json:
        _echo_json(report)
        return
    click.echo(
        f"{report['backups']} backups of {report['snapshots']} snapshots and "
        f"{report['templates']} templates: {_human(report['logical_bytes'])} logical "
        f"({_human(report['zero_bytes'])} zeros), {_human(report['unique_bytes'])} unique, "
        f"{_human(report['stored_bytes'])} stored; dedup {report['dedup_ratio']}x, "
        f"compression {report['compression_ratio']}x, overall {report['total_ratio']}x; "
        f"unused in packs {_human(report['unused_pack_bytes'])}"
    )
