"""mover: an asynchronous, chunked data mover for backup data.

The Python API::

    import mover
    job = mover.copy("s3://backups/vol-1.img", "/srv/restore/vol-1.img", streams=8)
    print(job.state, job.digest)

    handle = mover.submit("s3://backups/vol-1.img", "swift://restore/vol-1.img")  # the fleet
    handle.wait()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "copy", "resume", "submit"]

if TYPE_CHECKING:
    from mover.api import copy, resume
    from mover.fleet import submit


def __getattr__(name: str) -> Any:
    # Lazy: importing mover (a worker, a plugin) does not pull in the executor and SQLite.
    if name in ("copy", "resume"):
        from mover import api

        return getattr(api, name)
    if name == "submit":  # the fleet: needs MOVER_BROKER_URL and running workers
        from mover import fleet

        return fleet.submit
    raise AttributeError(f"module 'mover' has no attribute {name!r}")
