"""mover: an asynchronous, chunked data mover for backup data.

The Python API::

    import mover
    job = mover.copy("s3://backups/vol-1.img", "/srv/restore/vol-1.img", streams=8)
    print(job.state, job.digest)

    handle = mover.submit("s3://backups/vol-1.img", "swift://restore/vol-1.img")  # the fleet
    handle.wait()

    for entry in mover.ls("s3://backups/templates/", recursive=True):
        print(entry.path, entry.size)
    result = mover.sync("/srv/templates/", "s3://backups/templates/", delete=True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "copy", "ls", "resume", "submit", "sync"]


def _bridge_source_checkout() -> None:
    """Make ``mover.strategies`` and ``mover.workers`` importable from a source checkout.

    The repository keeps ``strategies/`` and ``workers/`` beside ``mover/`` (pyproject maps them
    to ``mover.strategies`` and ``mover.workers``, so a wheel installs them inside ``mover``).
    When ``mover`` is imported straight from a checkout (``python -m pytest`` puts it on
    ``sys.path``), the checkout's root joins this package's search path so that the two names
    resolve to the folders beside it. An installed wheel has them inside and skips this.
    """
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    if not os.path.isdir(os.path.join(here, "strategies")) and os.path.isfile(
        os.path.join(root, "strategies", "__init__.py")
    ):
        __path__.append(root)


_bridge_source_checkout()

if TYPE_CHECKING:
    from mover.api import copy, resume
    from mover.fleet import submit
    from mover.listing import ls
    from mover.syncing import sync


def __getattr__(name: str) -> Any:
    # Lazy: importing mover (a worker, a plugin) does not pull in the executor and SQLite.
    if name in ("copy", "resume"):
        from mover import api

        return getattr(api, name)
    if name == "ls":
        from mover.listing import ls

        return ls
    if name == "sync":
        from mover.syncing import sync

        return sync
    if name == "submit":  # the fleet: needs MOVER_BROKER_URL and running workers
        from mover import fleet

        return fleet.submit
    raise AttributeError(f"module 'mover' has no attribute {name!r}")
