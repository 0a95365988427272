"""The catalogue of zones, the region, stores, templates and snapshots, and its operations.

The Python API (every function takes and returns JSON-able values, so that a Celery task can
wrap it with a JSON payload as is)::

    from mover import catalogue as cat

    cat.add_zone("a")
    cat.add_store("region-s3", "s3://images/", scope="region",
                  options={"endpoint_url": "http://127.0.0.1:8333"}, credentials_env="REGION")
    cat.register_template("centos9", "/srv/centos9.qcow2", scope="region")
    cat.locate_template("centos9", zone="a")
    cat.backup_snapshot("/dev/vg0/vol-1", to="region-s3", name="vol-1")
    cat.restore_snapshot("vol-1", "/srv/restore/vol-1.img")
"""

from __future__ import annotations

from typing import Any

from mover.catalogue.checks import check_store, check_stores
from mover.catalogue.placement import Candidate, Placement, PlacementRequest, placements
from mover.catalogue.repo_snapshots import (
    backup_snapshot,
    delete_snapshot,
    forget_snapshot,
    restore_snapshot,
)
from mover.catalogue.snapshots import list_snapshots, show_snapshot
from mover.catalogue.store import Catalogue
from mover.catalogue.templates import (
    copy_template,
    delete_template,
    export_template,
    list_templates,
    locate_template,
    register_template,
    show_template,
)

__all__ = [
    "Candidate",
    "Catalogue",
    "Placement",
    "PlacementRequest",
    "add_store",
    "add_zone",
    "backup_snapshot",
    "check_store",
    "check_stores",
    "copy_template",
    "delete_snapshot",
    "delete_template",
    "export_template",
    "forget_snapshot",
    "list_snapshots",
    "list_stores",
    "list_templates",
    "list_zones",
    "locate_template",
    "placements",
    "register_template",
    "remove_store",
    "restore_snapshot",
    "set_store_options",
    "show_snapshot",
    "show_template",
]


def add_zone(name: str, description: str = "") -> dict[str, Any]:
    return Catalogue().add_zone(name, description).to_dict()


def list_zones() -> list[dict[str, Any]]:
    return [z.to_dict() for z in Catalogue().zones()]


def add_store(name: str, url: str, **settings: Any) -> dict[str, Any]:
    """Add a store; ``settings`` are :meth:`Catalogue.add_store`'s keywords (``role``,
    ``scope``, ``credentials_env``, ``credentials_file``, ``options``). A literal secret in
    ``options`` is refused (give a reference)."""
    return Catalogue().add_store(name, url, **settings).to_dict()


def list_stores() -> list[dict[str, Any]]:
    return [s.to_dict() for s in Catalogue().stores()]


def set_store_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Add or change options of a catalogue store (a literal secret is refused)."""
    return Catalogue().set_store_options(name, options).to_dict()


def remove_store(name: str, *, force: bool = False) -> dict[str, Any]:
    return Catalogue().remove_store(name, force=force).to_dict()
