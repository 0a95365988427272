"""The catalogue's operations by task name, with JSON payloads: what the fleet's Celery tasks
(``mover.template.register``, ``mover.snapshot.backup``, ...) call, and what any service that
enqueues backup work can call in-process.

A task is then one line per name, e.g. in ``workers/tasks.py``::

    for name in service.OPERATIONS:
        app.task(name=name)(functools.partial(service.run, name))   # payload: a dict

Payloads hold names and locations only (stores are named, never their credentials: the worker
resolves them from its own catalogue or configuration), and results are JSON-able dicts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mover import catalogue
from mover.errors import UsageError
from mover.options import normalize

#: Task name -> the function it runs.
OPERATIONS: dict[str, Callable[..., Any]] = {
    "mover.template.register": catalogue.register_template,
    "mover.template.copy": catalogue.copy_template,
    "mover.template.locate": catalogue.locate_template,
    "mover.template.delete": catalogue.delete_template,
    "mover.template.export": catalogue.export_template,
    "mover.template.show": catalogue.show_template,
    "mover.template.list": catalogue.list_templates,
    "mover.snapshot.backup": catalogue.backup_snapshot,
    "mover.snapshot.restore": catalogue.restore_snapshot,
    "mover.snapshot.delete": catalogue.delete_snapshot,
    "mover.snapshot.forget": catalogue.forget_snapshot,
    "mover.snapshot.show": catalogue.show_snapshot,
    "mover.snapshot.list": catalogue.list_snapshots,
    "mover.stores.check": catalogue.check_stores,
    "mover.stores.list": catalogue.list_stores,
    "mover.zones.list": catalogue.list_zones,
}

#: Parameters that take Python objects (a catalogue, a job store): never from a payload.
_LOCAL_ONLY = frozenset({"catalogue", "jobs"})


def run(name: str, payload: dict[str, Any] | None = None) -> Any:
    """Run operation ``name`` with the JSON ``payload`` as keyword arguments.

    Unknown operations and payload keys are refused with the list of valid ones, so a typo in
    an enqueuing service fails at once with a clear message instead of a TypeError.
    """
    try:
        fn = OPERATIONS[name]
    except KeyError:
        known = ", ".join(sorted(OPERATIONS))
        raise UsageError(f"unknown catalogue operation {name!r} (known: {known})") from None
    payload = dict(payload or {})
    params = inspect.signature(fn).parameters
    allowed = [p for p in params if p not in _LOCAL_ONLY]
    bad = sorted(set(payload) - set(allowed))
    if bad:
        raise UsageError(
            f"{name}: unknown payload keys {', '.join(bad)} (accepted: {', '.join(allowed)})"
        )
    missing = [
        p.name
        for p in params.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in payload
    ]
    if missing:
        raise UsageError(f"{name}: payload lacks {', '.join(missing)}")
    # Copy options (streams, chunk_size as "8MiB" ...) checked as every door checks them.
    return fn(**normalize(payload))
