"""Templates kept in image stores' repositories (``mover template register --repository``).

A template registered this way is a manifest in each target store's repository
(``templates/NAME/ID``), its chunks shared with everything else that store holds: the volumes
cloned from it (their snapshots store only what they changed) and other templates built on the
same base image. Copying it to another zone's store (``mover template copy``) moves only the
chunks that store's repository lacks (:mod:`mover.repository.transfer`). Hypervisors cannot
read a manifest as an image, so ``mover template export NAME DEST --zone Z`` rebuilds the image
(verified chunk by chunk) from the copy that zone reads.

A copy row's location says which kind it is: ``store:S/repository/templates/NAME/ID`` here,
``store:S/templates/NAME/FILE`` for a plain copy (:mod:`mover.catalogue.templates`).
"""

from __future__ import annotations

from typing import Any

from mover.catalogue.store import CREATING, FAILED, READY, Catalogue, DataObject
from mover.errors import MoverError
from mover.location import parse
from mover.repository.layout import PREFIX, manifest_key


def is_repository_copy(location: str) -> bool:
    return parse(location).key.startswith(f"{PREFIX}templates/")


def _location(store: str, name: str, backup: str) -> str:
    return f"store:{store}/{PREFIX}{manifest_key('template', name, backup)}"


def _backup_of(location: str) -> str:
    return parse(location).key.rsplit("/", 1)[1]


def register_into(
    cat: Catalogue,
    obj: DataObject,
    store: str,
    source: str,
    streams: int,
    chunk_size: int | None,
) -> dict[str, Any]:
    """Back ``source`` up as template ``obj`` into ``store``'s repository; the copy's row goes
    creating -> ready | failed with the error, as a plain copy's does."""
    from mover.repository.backup import backup
    from mover.repository.repo import Repository
    from mover.repository.runner import ThreadRunner

    pending = f"store:{store}/{PREFIX}templates/{obj.name}/"
    cat.set_copy(obj.id, store, CREATING, pending)
    try:
        repo = Repository.open(store, create=True)
        summary = backup(
            repo,
            source,
            kind="template",
            name=obj.name,
            chunk_size=chunk_size,
            runner=ThreadRunner(streams),
        )
    except MoverError as exc:
        cat.set_copy(obj.id, store, FAILED, pending, error=exc.message)
        return {"store": store, "state": FAILED, "location": pending, "error": exc.message}
    location = _location(store, obj.name, summary["backup"])
    cat.set_copy(obj.id, store, READY, location)
    return {
        "store": store,
        "state": READY,
        "location": location,
        "new_chunks": summary["new_chunks"],
        "reused_chunks": summary["reused_chunks"],
        "stored_bytes": summary["stored_bytes"],
    }


def copy_into(cat: Catalogue, obj: DataObject, source_location: str, store: str) -> dict[str, Any]:
    """Copy a repository template to ``store``'s repository: only the chunks it lacks move."""
    from mover.repository.repo import Repository
    from mover.repository.transfer import copy

    backup = _backup_of(source_location)
    location = _location(store, obj.name, backup)
    cat.set_copy(obj.id, store, CREATING, location)
    try:
        result = copy(
            Repository.open(parse(source_location).name or ""),
            Repository.open(store, create=True),
            "template",
            obj.name,
            backup,
        )
    except MoverError as exc:
        cat.set_copy(obj.id, store, FAILED, location, error=exc.message)
        return {"store": store, "state": FAILED, "location": location, "error": exc.message}
    cat.set_copy(obj.id, store, READY, location)
    return {"store": store, "state": READY, "location": location, **result}


def export(location: str, name: str, destination: str, streams: int = 4) -> dict[str, Any]:
    """Rebuild the template image of a repository copy at ``destination``, verified."""
    from mover.repository.repo import Repository
    from mover.repository.restore import restore
    from mover.repository.runner import ThreadRunner

    store = parse(location).name or ""
    result = restore(
        Repository.open(store),
        "template",
        name,
        _backup_of(location),
        destination,
        runner=ThreadRunner(streams),
        label=f"template {name!r} in {store}",
    )
    result.pop("manifest")
    return result


def delete(location: str, name: str) -> None:
    """Delete a repository copy's manifest (its chunks go at the store's next prune)."""
    from mover.repository import manifests
    from mover.repository.repo import Repository

    manifests.delete(
        Repository.open(parse(location).name or ""), "template", name, _backup_of(location)
    )
