"""Templates registered region-wide or per zone, copied between zones, located, deleted.

CloudStack registers a template either into every zone's image store or, when a region store
exists, once for all zones (cross-zone). mover offers both side by side:

- ``scope="region"``: one copy, in the region's image store (placement picks one if there are
  several); every zone reads it there unless it has its own copy;
- ``scope="zone"``: one copy in an image store of each named zone, written as parallel jobs.

Each copy is a ``mover.copy`` (so the dispatcher picks server-side copy, streaming, ...) whose
job id is kept on the copy's row; the row goes allocated -> creating -> ready (or failed, with
the job's error). A copy lives at ``store:STORE/templates/NAME/BASENAME``.

A checksum given at registration (``sha256:HEX``; any hashlib algorithm name works) is checked
against the *source*, read once through its provider before any copy starts: a wrong source is
refused with nothing written, and the copies are then verified chunk by chunk by mover's own
store-confirmed digests (the core does not expose the sha256 of what it read while copying).

Every function takes and returns JSON-able values, so a Celery task can wrap it as is.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from mover.catalogue import repo_templates
from mover.catalogue.objectio import sha256_of
from mover.catalogue.placement import PlacementRequest, candidates_for, choose
from mover.catalogue.store import (
    ALLOCATED,
    CREATING,
    FAILED,
    READY,
    REGION,
    TEMPLATE,
    Catalogue,
    DataObject,
    check_name,
)
from mover.errors import MoverError, ObjectNotFound, UsageError, VerificationFailed
from mover.jobs import DONE, JobStore
from mover.location import parse
from mover.resolve import open_location
from mover.resolve import resolve as resolve_store

#: File name extensions that name a disk format.
FORMATS = {
    "qcow2": "qcow2",
    "raw": "raw",
    "img": "raw",
    "vhd": "vhd",
    "vhdx": "vhdx",
    "vmdk": "vmdk",
    "ova": "ova",
    "iso": "iso",
    "tar": "tar",
}


def _format_of(basename: str) -> str | None:
    ext = basename.rsplit(".", 1)[-1].lower() if "." in basename else ""
    return FORMATS.get(ext)


def _key(name: str, basename: str) -> str:
    return f"templates/{name}/{basename or name}"


def _parse_checksum(checksum: str) -> tuple[str, str]:
    import hashlib

    algorithm, _, hexpart = checksum.partition(":")
    algorithm = algorithm.lower()
    if not hexpart or algorithm not in hashlib.algorithms_available:
        raise UsageError(f"checksum {checksum!r}: write ALGORITHM:HEX, e.g. sha256:9f86d0...")
    try:
        bytes.fromhex(hexpart)
    except ValueError:
        raise UsageError(f"checksum {checksum!r}: {hexpart!r} is not hexadecimal") from None
    return algorithm, hexpart.lower()


def _default_jobs() -> JobStore:
    from mover.api import default_jobstore

    return default_jobstore()


def _image_stores(cat: Catalogue, scope: str) -> list[Any]:
    stores = cat.stores(role="image", scope=scope)
    if not stores:
        where = "the region" if scope == REGION else f"zone {scope[5:]!r}"
        raise UsageError(
            f"{where} has no image store: add one with mover stores add NAME URL "
            f"--role image --scope {scope}"
        )
    return stores


def _place(
    cat: Catalogue, scope: str, name: str, key: str, size: int | None, placement: str | None
) -> str:
    """The store placement picks for a new copy in ``scope``."""
    candidates = candidates_for(_image_stores(cat, scope), key)
    request = PlacementRequest(TEMPLATE, name, size, scope, cat.next_turn(scope))
    return choose(candidates, request, placement).name


def _run_copy(
    cat: Catalogue,
    obj: DataObject,
    store: str,
    source: str,
    destination: str,
    streams: int,
    chunk_size: int | None,
    jobs: JobStore | None,
) -> dict[str, Any]:
    """One copy through ``mover.copy``, its row moved creating -> ready | failed."""
    from mover.api import copy

    cat.set_copy(obj.id, store, CREATING, destination)
    try:
        # The template's folder is the catalogue's to make (a file store refuses a copy into
        # a folder that does not exist, as ``mover copy`` should).
        dst_store, dst_loc = open_location(destination)
        dst_store.make_parents(dst_loc.full_key)
        job = copy(
            source,
            destination,
            streams=streams,
            chunk_size=chunk_size,
            jobs=jobs,
            raise_on_failure=False,
        )
    except MoverError as exc:
        cat.set_copy(obj.id, store, FAILED, destination, error=exc.message)
        return {"store": store, "state": FAILED, "location": destination, "error": exc.message}
    if job.state != DONE:
        cat.set_copy(obj.id, store, FAILED, destination, job_id=job.id, error=job.error)
        return {"store": store, "state": FAILED, "location": destination, "job": job.summary()}
    cat.set_copy(obj.id, store, READY, destination, job_id=job.id)
    return {"store": store, "state": READY, "location": destination, "job": job.summary()}


def register_template(
    name: str,
    source: str,
    *,
    scope: str = REGION,
    zones: list[str] | None = None,
    format: str | None = None,
    checksum: str | None = None,
    streams: int = 4,
    chunk_size: int | None = None,
    placement: str | None = None,
    repository: bool = False,
    catalogue: Catalogue | None = None,
    jobs: JobStore | None = None,
) -> dict[str, Any]:
    """Register template ``name`` from ``source`` region-wide or into each of ``zones``.

    With ``repository``, each copy is a manifest in the target store's backup repository
    (:mod:`mover.catalogue.repo_templates`): chunks shared with what the store holds.

    Validates everything first (zones, image stores, the source, its checksum), then records the
    template with one allocated copy per target and runs the copies in parallel. Returns the
    template (``show_template``) with ``copies_run`` (each copy's job summary) and ``ok``.
    A copy that fails leaves its row failed with the error; the others are kept.
    """
    cat = catalogue or Catalogue()
    check_name(name, "template")
    if cat.find_object(TEMPLATE, name) is not None:
        raise UsageError(
            f"template {name!r} already exists: mover template copy {name} --to-zone Z adds a "
            "zone, mover template delete removes it"
        )
    if scope == REGION:
        if zones:
            raise UsageError("--zones goes with --scope zone; a region template serves every zone")
        scopes = [REGION]
    elif scope == "zone":
        if not zones:
            raise UsageError("--scope zone needs --zones a,b")
        for zone in zones:
            cat.get_zone(zone)
        scopes = [f"zone:{z}" for z in dict.fromkeys(zones)]
    else:
        raise UsageError(f"scope {scope!r}: 'region' or 'zone'")
    for s in scopes:
        _image_stores(cat, s)
    src_store, src_loc = open_location(source)
    info = src_store.stat(src_loc.full_key)
    verified = None
    info_size: int | None = info.size
    if checksum:
        algorithm, expected = _parse_checksum(checksum)
        got, size = sha256_of(src_store, src_loc.full_key, algorithm)
        if got != expected:
            raise VerificationFailed(
                f"template {name!r}: {source} has {algorithm}:{got}, not the {checksum} given; "
                "nothing was registered"
            )
        verified = f"{algorithm}:{got}"
        info_size = size
    basename = src_loc.basename or name
    key = _key(name, basename)
    targets = [(s, _place(cat, s, name, key, info_size, placement)) for s in scopes]
    obj = cat.create_object(
        TEMPLATE,
        name,
        format=format or _format_of(basename),
        size=info_size,
        checksum=verified,
        scope="region" if scope == REGION else "zone",
        meta={"source": src_loc.shown, "checksum_verified_on": "source" if verified else None},
    )
    for _s, store in targets:
        cat.set_copy(obj.id, store, ALLOCATED, f"store:{store}/{key}")
    jobs = jobs or _default_jobs()  # one job store for the parallel copies

    def one(target: tuple[str, str]) -> dict[str, Any]:
        if repository:
            return repo_templates.register_into(cat, obj, target[1], source, streams, chunk_size)
        return _run_copy(
            cat, obj, target[1], source, f"store:{target[1]}/{key}", streams, chunk_size, jobs
        )

    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="template") as pool:
        runs = list(pool.map(one, targets))
    out = show_template(name, catalogue=cat)
    out["copies_run"] = runs
    out["ok"] = all(r["state"] == READY for r in runs)
    return out


def copy_template(
    name: str,
    to_zone: str,
    *,
    streams: int = 4,
    chunk_size: int | None = None,
    placement: str | None = None,
    catalogue: Catalogue | None = None,
    jobs: JobStore | None = None,
) -> dict[str, Any]:
    """Copy template ``name`` into an image store of ``to_zone``, store to store (server-side
    where the stores allow: the dispatcher decides). A zone that already has a ready copy gets
    none; ``already`` says so."""
    cat = catalogue or Catalogue()
    cat.get_zone(to_zone)
    obj = cat.get_object(TEMPLATE, name)
    scope = f"zone:{to_zone}"
    ready = [c for c in obj.copies if c.state == READY]
    mine = [c for c in ready if c.scope == scope]
    if mine:
        out = show_template(name, catalogue=cat)
        out.update(ok=True, already=True, copies_run=[])
        return out
    if not ready:
        raise ObjectNotFound(f"template {name!r} has no ready copy to copy from")
    # Prefer a source in the same zone's region store, else any ready copy: the dispatcher
    # then decides how (server-side when both stores allow it).
    source = next((c for c in ready if c.scope == REGION), ready[0])
    key = parse(source.location).key
    store = _place(cat, scope, name, key, obj.size, placement)
    destination = f"store:{store}/{key}"
    cat.set_copy(obj.id, store, ALLOCATED, destination)
    if repo_templates.is_repository_copy(source.location):
        run = repo_templates.copy_into(cat, obj, source.location, store)
    else:
        jobs = jobs or _default_jobs()
        run = _run_copy(cat, obj, store, source.location, destination, streams, chunk_size, jobs)
    out = show_template(name, catalogue=cat)
    out.update(ok=run["state"] == READY, already=False, copies_run=[run])
    return out


def locate_template(name: str, zone: str, *, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Where ``zone`` reads template ``name``: its own ready copy, else the region's.

    Returns the store, its scope, ``via`` (``zone`` or ``region``), the catalogue location
    (``store:NAME/key``) and the provider URL it resolves to (no secret).
    """
    cat = catalogue or Catalogue()
    cat.get_zone(zone)
    obj = cat.get_object(TEMPLATE, name)
    ready = [c for c in obj.copies if c.state == READY]
    for via, scope in (("zone", f"zone:{zone}"), ("region", REGION)):
        for c in ready:
            if c.scope == scope:
                resolved, _options = resolve_store(parse(c.location))
                return {
                    "template": name,
                    "zone": zone,
                    "via": via,
                    "store": c.store,
                    "scope": c.scope,
                    "location": c.location,
                    "url": replace(resolved, name=None).url,
                    "format": "repository"
                    if repo_templates.is_repository_copy(c.location)
                    else "image",
                }
    raise ObjectNotFound(
        f"template {name!r} is not readable in zone {zone!r}: no ready copy in its image stores "
        f"nor in the region; mover template copy {name} --to-zone {zone}"
    )


def export_template(
    name: str,
    destination: str,
    *,
    zone: str | None = None,
    streams: int = 4,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """Write template ``name``'s image to ``destination`` from the copy ``zone`` reads (or any
    ready copy): a repository copy is rebuilt chunk by chunk, verified; a plain copy is copied."""
    cat = catalogue or Catalogue()
    if zone is not None:
        location = locate_template(name, zone, catalogue=cat)["location"]
    else:
        ready = [c for c in cat.get_object(TEMPLATE, name).copies if c.state == READY]
        if not ready:
            raise ObjectNotFound(f"template {name!r} has no ready copy")
        location = ready[0].location
    if repo_templates.is_repository_copy(location):
        result = repo_templates.export(location, name, destination, streams)
    else:
        from mover.api import copy

        result = copy(location, destination, streams=streams).summary()
    return {"template": name, "from": location, **result}


def show_template(name: str, *, catalogue: Catalogue | None = None) -> dict[str, Any]:
    return (catalogue or Catalogue()).get_object(TEMPLATE, name).to_dict()


def list_templates(*, catalogue: Catalogue | None = None) -> list[dict[str, Any]]:
    return [o.to_dict() for o in (catalogue or Catalogue()).objects(TEMPLATE)]


def delete_template(name: str, *, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Delete every copy of ``name``, then its record. A copy that cannot be deleted keeps its
    row (failed, with the error) and the record stays, so the delete can be run again."""
    cat = catalogue or Catalogue()
    obj = cat.get_object(TEMPLATE, name)
    deleted, errors = [], []
    for c in obj.copies:
        try:
            if repo_templates.is_repository_copy(c.location):
                repo_templates.delete(c.location, name)
            else:
                store, location = open_location(c.location)
                store.delete(location.full_key)
        except ObjectNotFound:
            pass  # already gone: the goal is reached
        except MoverError as exc:
            cat.set_copy(obj.id, c.store, FAILED, c.location, error=f"delete: {exc.message}")
            errors.append(f"{c.store}: {exc.message}")
            continue
        cat.delete_copy(obj.id, c.store)
        deleted.append({"store": c.store, "location": c.location})
    if errors:
        raise MoverError(f"template {name!r}: some copies were not deleted: {'; '.join(errors)}")
    cat.delete_object(obj.id)
    return {"template": name, "deleted": deleted}
