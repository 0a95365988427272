"""``mover zones|stores|template|snapshot``: the catalogue from the command line.

Each command is a thin layer over :mod:`mover.catalogue` (the same functions a Python caller
or a Celery task uses): it parses options, calls one function, and prints either a short
human line or, with ``--json``, the function's JSON result. Exit codes as everywhere in mover:
0 done, 1 failed (a failed copy, a store that fails its check), 2 usage.

Options are named as the function's keywords, so a command hands them on as they come
(``**how``) and takes by name only those it reads itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from mover.errors import EXIT_FAILED, MoverError


def _run(fn: Callable[[], Any]) -> Any:
    """Run a command body; a mover error becomes one line on stderr and its exit code."""
    try:
        return fn()
    except MoverError as exc:
        click.echo(f"mover: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        click.echo(f"mover: {exc}", err=True)
        sys.exit(EXIT_FAILED)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    from mover.config import parse_size

    try:
        return parse_size(value)
    except MoverError as exc:
        raise click.BadParameter(exc.message) from exc


def _value(text: str) -> Any:
    """``-o key=value``: true/false and integers typed, the rest kept as text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{key or pair!r}: write KEY=VALUE", param_hint="-o")
        out[key.strip()] = _value(value.strip())
    return out


def _human(n: int | None) -> str:
    from mover.planning import human

    return human(n)


def _print_list(
    fetch: Callable[[], list[dict[str, Any]]], as_json: bool, line: Callable[[dict[str, Any]], str]
) -> None:
    """A ``list`` command's output: the JSON list, or one ``line(record)`` per record."""
    found = _run(fetch)
    if as_json:
        _echo_json(found)
        return
    for record in found:
        click.echo(line(record))


#: Options several commands share.
_JSON = click.option("--json", "as_json", is_flag=True)
_PLACEMENT = click.option("--placement", help="Placement plugin (default: capacity).")


def _streams(default: int = 4, help: str | None = None) -> Any:
    return click.option(
        "--streams", type=click.IntRange(1, 256), default=default, show_default=True, help=help
    )


def _chunk_size(help: str | None = None) -> Any:
    return click.option("--chunk-size", callback=_size, help=help)


# --- zones ----------------------------------------------------------------------------------


@click.group()
def zones() -> None:
    """Zones: the places whose image stores hold per-zone templates."""


@zones.command("add")
@click.argument("name")
@click.option("--description", default="", help="Free text.")
def zones_add(name: str, description: str) -> None:
    """Add zone NAME."""
    from mover import catalogue

    zone = _run(lambda: catalogue.add_zone(name, description))
    click.echo(f"zone {zone['name']} added")


@zones.command("list")
@_JSON
def zones_list(as_json: bool) -> None:
    """List zones, each with its image stores."""
    from mover import catalogue

    found = _run(catalogue.list_zones)
    stores = _run(catalogue.list_stores)
    for zone in found:
        zone["stores"] = [s["name"] for s in stores if s["scope"] == f"zone:{zone['name']}"]
    if as_json:
        _echo_json(found)
        return
    region = [s["name"] for s in stores if s["scope"] == "region"]
    click.echo(f"region  stores: {', '.join(region) or '-'}")
    for zone in found:
        click.echo(f"{zone['name']:<8} stores: {', '.join(zone['stores']) or '-'}")


# --- stores ---------------------------------------------------------------------------------


@click.group()
def stores() -> None:
    """Stores: where templates and snapshots are kept; no secret is ever stored."""


@stores.command("add")
@click.argument("name")
@click.argument("url")
@click.option(
    "--role",
    type=click.Choice(["image", "primary"]),
    default="image",
    show_default=True,
    help="image: templates, snapshots, backups; primary: volumes.",
)
@click.option("--scope", default="", help="'region' or 'zone:NAME' (unscoped if omitted).")
@click.option(
    "--credentials-env",
    metavar="PREFIX",
    help="Credentials from $PREFIX_ACCESS_KEY_ID/_SECRET_ACCESS_KEY (S3), $PREFIX_KEY (Swift).",
)
@click.option("--credentials-file", metavar="PATH", help="Credentials from this file.")
@click.option(
    "-o",
    "--option",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Provider option (endpoint_url, auth_url, user, region...); repeatable. "
    "Secrets are refused: reference them with --credentials-env/--credentials-file.",
)
def stores_add(name: str, url: str, pairs: tuple[str, ...], **how: Any) -> None:
    """Add store NAME at URL (s3://bucket/prefix/, swift://container/, file:///srv/images/)."""
    from mover import catalogue

    options = _options(pairs)
    record = _run(lambda: catalogue.add_store(name, url, options=options, **how))
    click.echo(
        f"store {record['name']} added: {record['url']} role {record['role']} "
        f"scope {record['scope'] or '-'} (mover stores check {record['name']} tests it)"
    )


def _store_line(s: dict[str, Any]) -> str:
    creds = (
        f"env {s['credentials_env']}"
        if s["credentials_env"]
        else f"file {s['credentials_file']}"
        if s["credentials_file"]
        else "provider default (none named)"
    )
    origin = "" if s["origin"] == "catalogue" else f"  (from {s['origin']})"
    return (
        f"{s['name']:<16} {s['role']:<8} {s['scope'] or '-':<12} {s['url']}  "
        f"credentials: {creds}{origin}"
    )


@stores.command("list")
@_JSON
def stores_list(as_json: bool) -> None:
    """List stores: the catalogue's and the configuration file's."""
    from mover import catalogue

    _print_list(catalogue.list_stores, as_json, _store_line)


@stores.command("set")
@click.argument("name")
@click.option(
    "-o",
    "--option",
    "pairs",
    multiple=True,
    required=True,
    metavar="KEY=VALUE",
    help="Provider or repository option to add or change (KEY= removes it); repeatable. "
    "Secrets are refused: e.g. -o repository_key_env=VAR names where the key is.",
)
def stores_set(name: str, pairs: tuple[str, ...]) -> None:
    """Change options of store NAME (e.g. name the key of its backup repository)."""
    from mover import catalogue

    record = _run(lambda: catalogue.set_store_options(name, _options(pairs)))
    shown = ", ".join(f"{k}={v}" for k, v in sorted(record["options"].items())) or "none"
    click.echo(f"store {name} options: {shown}")


@stores.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also forget the copies it holds (data stays).")
def stores_remove(name: str, force: bool) -> None:
    """Remove store NAME from the catalogue (its data is not touched)."""
    from mover import catalogue

    _run(lambda: catalogue.remove_store(name, force=force))
    click.echo(f"store {name} removed")


@stores.command("check")
@click.argument("names", nargs=-1)
@_JSON
def stores_check(names: tuple[str, ...], as_json: bool) -> None:
    """Check stores (all if none named): reachable, authenticated, can write, list, read and
    delete a probe object. Exit 1 if any fails."""
    from mover import catalogue
    from mover.catalogue.checks import report_line

    results = _run(lambda: catalogue.check_stores(list(names) or None))
    if as_json:
        _echo_json(results)
    else:
        for r in results:
            click.echo(report_line(r))
    if not all(r["ok"] for r in results):
        sys.exit(EXIT_FAILED)


# --- templates ------------------------------------------------------------------------------


@click.group()
def template() -> None:
    """Templates: registered region-wide or per zone, copied, located, deleted."""


def _copies_line(result: dict[str, Any]) -> str:
    return ", ".join(f"{c['store']} {c['state']}" for c in result["copies"]) or "no copies"


@template.command("register")
@click.argument("name")
@click.argument("source")
@click.option(
    "--scope",
    type=click.Choice(["region", "zone"]),
    default="region",
    show_default=True,
    help="region: one copy every zone reads; zone: one copy in each of --zones.",
)
@click.option("--zones", "zone_list", help="Comma-separated zones (with --scope zone).")
@click.option("--format", help="Disk format (default: from the file name).")
@click.option("--checksum", help="ALGORITHM:HEX, e.g. sha256:...; verified before any copy.")
@_streams()
@_chunk_size("Bytes per chunk (64MiB, 8M ...).")
@_PLACEMENT
@click.option(
    "--repository",
    is_flag=True,
    help="Keep each copy in the store's backup repository (chunks shared with its snapshots; "
    "copies to other zones move only missing chunks; mover template export writes the image).",
)
@_JSON
def template_register(
    name: str, source: str, zone_list: str | None, as_json: bool, **how: Any
) -> None:
    """Register template NAME from SOURCE (any location mover reads)."""
    from mover import catalogue

    zone_names = [z.strip() for z in (zone_list or "").split(",") if z.strip()] or None
    result = _run(lambda: catalogue.register_template(name, source, zones=zone_names, **how))
    if as_json:
        _echo_json(result)
    else:
        click.echo(
            f"template {name} ({result['scope']}, {_human(result['size'])}): {_copies_line(result)}"
        )
        for run in result["copies_run"]:
            if run["state"] != "ready":
                error = run.get("error") or (run.get("job") or {}).get("error")
                click.echo(f"  {run['store']}: {error}", err=True)
    if not result["ok"]:
        sys.exit(EXIT_FAILED)


@template.command("copy")
@click.argument("name")
@click.option("--to-zone", required=True, help="The zone that gets its own copy.")
@_streams()
@_chunk_size()
@_PLACEMENT
@_JSON
def template_copy(name: str, to_zone: str, as_json: bool, **how: Any) -> None:
    """Copy template NAME into an image store of zone --to-zone."""
    from mover import catalogue

    result = _run(lambda: catalogue.copy_template(name, to_zone, **how))
    if as_json:
        _echo_json(result)
    elif result.get("already"):
        click.echo(f"template {name} is already in zone {to_zone}: {_copies_line(result)}")
    else:
        click.echo(f"template {name}: {_copies_line(result)}")
    if not result["ok"]:
        sys.exit(EXIT_FAILED)


@template.command("locate")
@click.argument("name")
@click.option("--zone", required=True)
@_JSON
def template_locate(name: str, zone: str, as_json: bool) -> None:
    """Where zone --zone reads template NAME: its own copy, or the region's."""
    from mover import catalogue

    result = _run(lambda: catalogue.locate_template(name, zone))
    if as_json:
        _echo_json(result)
    else:
        click.echo(f"{result['url']}  ({result['via']} copy in store {result['store']})")


@template.command("export")
@click.argument("name")
@click.argument("destination")
@click.option("--zone", help="Export the copy this zone reads (default: any ready copy).")
@_streams()
@_JSON
def template_export(name: str, destination: str, as_json: bool, **how: Any) -> None:
    """Write template NAME's image to DESTINATION (rebuilt and verified from a repository copy)."""
    from mover import catalogue

    result = _run(lambda: catalogue.export_template(name, destination, **how))
    if as_json:
        _echo_json(result)
    else:
        click.echo(f"template {name} exported from {result['from']} to {destination}")


def _template_line(t: dict[str, Any]) -> str:
    return (
        f"{t['name']:<20} {t['scope']:<7} {t['format'] or '-':<6} {_human(t['size']):>10}  "
        f"{t['state']:<9} {_copies_line(t)}"
    )


@template.command("list")
@_JSON
def template_list(as_json: bool) -> None:
    """List templates with the state of their copies."""
    from mover import catalogue

    _print_list(catalogue.list_templates, as_json, _template_line)


@template.command("show")
@click.argument("name")
def template_show(name: str) -> None:
    """Show template NAME and every copy (JSON)."""
    from mover import catalogue

    _echo_json(_run(lambda: catalogue.show_template(name)))


@template.command("delete")
@click.argument("name")
def template_delete(name: str) -> None:
    """Delete template NAME: every copy in every store, then its record."""
    from mover import catalogue

    result = _run(lambda: catalogue.delete_template(name))
    click.echo(f"template {name} deleted ({len(result['deleted'])} copies)")


# --- snapshots ------------------------------------------------------------------------------


@click.group()
def snapshot() -> None:
    """Snapshots: volumes backed up into a store's repository (deduplicated, encrypted),
    restored verified, forgotten by retention policy."""


_EXECUTOR = click.option(
    "--executor",
    type=click.Choice(["embedded", "celery"]),
    default=None,
    help="Where range tasks run: threads here (default) or the fleet's workers.",
)


@snapshot.command("backup")
@click.argument("source")
@click.option("--to", "to", required=True, help="The store to back up into.")
@click.option("--name", help="Snapshot name (default: the source's file name).")
@_chunk_size("Bytes per chunk (the repository's: 1MiB).")
@_streams()
@click.option("--full", is_flag=True, help="Store every chunk again, even those the store has.")
@_EXECUTOR
@_JSON
def snapshot_backup(source: str, to: str, as_json: bool, **how: Any) -> None:
    """Back SOURCE up into store --to's repository: only chunks the store lacks are stored.

    SOURCE may be a file, a block device (snapshot a volume in use first: LVM, the
    hypervisor) or a pipe. Holes and all-zero chunks are stored as nothing."""
    from mover import catalogue

    result = _run(lambda: catalogue.backup_snapshot(source, to, **how))
    if as_json:
        _echo_json(result)
        return
    if result.get("format") != "repository":
        kind = "full" if result["full"] else f"incremental on {result['parent']}"
        click.echo(
            f"snapshot {result['snapshot']} backup {result['id']} ({kind}): "
            f"{result['chunks_sent']} of {result['chunks']} chunks sent, "
            f"{_human(result['bytes_sent'])} of {_human(result['size'])}; "
            f"sha256 {result['sha256']}"
        )
        return
    click.echo(
        f"snapshot {result['snapshot']} backup {result['id']} in {result['store']}: "
        f"{_human(result['size'])}, {result['chunks_sent']} new chunks "
        f"({_human(result['bytes_sent'])} stored), {result['reused_chunks']} reused, "
        f"{result['zero_chunks']} zero ({_human(result['zero_bytes'])}) "
        f"in {result['seconds']:.1f} s"
    )
    for note in result.get("notes") or []:
        click.echo(f"  note: {note}")


@snapshot.command("restore")
@click.argument("name")
@click.argument("destination")
@click.option("--backup", help="A backup id or its prefix (default: the latest).")
@click.option("--from", "store", help="The store to restore from (default: any).")
@click.option(
    "--to-device",
    is_flag=True,
    help="DESTINATION is a block device, to be overwritten in place (refused without it).",
)
@_streams(8, "Ranges read and written at once (downloads do best with 8 here).")
@_EXECUTOR
@_JSON
def snapshot_restore(name: str, destination: str, as_json: bool, **how: Any) -> None:
    """Rebuild snapshot NAME at DESTINATION, every chunk verified before it is written.

    A file destination keeps the volume's zeros as holes; a block device (with --to-device)
    is written in place, zeros included."""
    from mover import catalogue

    result = _run(lambda: catalogue.restore_snapshot(name, destination, **how))
    if as_json:
        _echo_json(result)
        return
    # A backup made before the repository has a whole-volume digest; a repository backup
    # verifies every chunk by its keyed id.
    check = result.get("digest") or (
        f"sha256 {result['sha256']}" if result.get("sha256") else "every chunk"
    )
    click.echo(
        f"snapshot {name} backup {result['backup']} restored to {result['destination']} "
        f"({_human(result['size'])}, {check} verified)"
    )
    for note in result.get("notes") or []:
        click.echo(f"  note: {note}")


@snapshot.command("forget")
@click.argument("name")
@click.option("--keep-last", type=click.IntRange(0), default=0, help="Keep the N newest backups.")
@click.option("--keep-daily", type=click.IntRange(0), default=0, help="Keep the last of N days.")
@click.option("--keep-weekly", type=click.IntRange(0), default=0, help="Keep the last of N weeks.")
@click.option("--backup", help="Forget this one backup (an id or its prefix) instead.")
@click.option("--store", help="Only the backups in this store.")
@click.option("--dry-run", is_flag=True, help="Say what would be forgotten; change nothing.")
@_JSON
def snapshot_forget(name: str, dry_run: bool, as_json: bool, **how: Any) -> None:
    """Forget backups of NAME (per store) that the policy does not keep, or one --backup.
    Their manifests go now; their chunks when mover repo prune finds them unneeded."""
    from mover import catalogue

    result = _run(lambda: catalogue.forget_snapshot(name, dry_run=dry_run, **how))
    if as_json:
        _echo_json(result)
        return
    verb = "would forget" if dry_run else "forgot"
    for b in result["forgotten"]:
        click.echo(f"{verb} {b['id']} in {b['store']}")
    for b in result["kept"]:
        click.echo(f"kept   {b['id']} in {b['store']} ({', '.join(b['reasons'])})")


def _snapshot_line(s: dict[str, Any]) -> str:
    stores = ", ".join(c["store"] for c in s["copies"]) or "-"
    return f"{s['name']:<20} {_human(s['size']):>10}  {len(s['backups'])} backups  in {stores}"


@snapshot.command("list")
@_JSON
def snapshot_list(as_json: bool) -> None:
    """List snapshots and their backups."""
    from mover import catalogue

    _print_list(catalogue.list_snapshots, as_json, _snapshot_line)


@snapshot.command("show")
@click.argument("name")
def snapshot_show(name: str) -> None:
    """Show snapshot NAME and its backups (JSON)."""
    from mover import catalogue

    _echo_json(_run(lambda: catalogue.show_snapshot(name)))


@snapshot.command("delete")
@click.argument("name")
def snapshot_delete(name: str) -> None:
    """Delete snapshot NAME: every backup in every store, then its record."""
    from mover import catalogue

    result = _run(lambda: catalogue.delete_snapshot(name))
    click.echo(f"snapshot {name} deleted ({result['objects_deleted']} objects)")


#: The groups ``mover.cli.main`` attaches: ``for g in catalogue_groups: cli.add_command(g)``.
catalogue_groups: list[click.Group] = [zones, stores, template, snapshot]
