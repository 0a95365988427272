"""JSON logs on the workers (``MOVER_LOG_FORMAT=json``, set by ``mover --log-format json worker``).

Celery sets up the worker's log handlers itself; its ``after_setup_logger`` signals let mover
put its formatter (:mod:`mover.monitor.logs`) on them. While a chunk or commit task runs, the
job, item, chunk, queue and destination store are bound to the thread's log context
(``task_prerun`` / ``task_postrun``), so every line the task logs (mover's, botocore's,
Celery's "succeeded in") carries them without each call naming them.

With the text format none of this runs: it costs a chunk nothing.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun

from mover.monitor import logs

#: The tasks whose first arguments are ``job_id, item[, chunk]``.
JOB_TASKS = ("mover.chunk.copy", "mover.job.commit")

_tokens: dict[str, contextvars.Token[Any]] = {}
_state: dict[str, Any] = {}


def _json_logs() -> bool:
    return (os.environ.get(logs.ENV) or "").lower() == "json"


@after_setup_logger.connect
@after_setup_task_logger.connect
def _reformat(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is not None and _json_logs():
        logs.reformat(logger)


def _store_of(job_id: str, item: int) -> str | None:
    """The destination store of an item (``store:NAME`` or ``scheme://bucket-or-host``),
    read once per process and item from the job record; None when it cannot be read."""
    cache: dict[tuple[str, int], str | None] = _state.setdefault("stores", {})
    if (job_id, item) in cache:
        return cache[(job_id, item)]
    store = None
    try:
        from mover.jobstores.redis import RedisJobStore
        from mover.location import parse

        if _state.get("pid") != os.getpid():
            _state.clear()
            _state.update(pid=os.getpid(), jobs=RedisJobStore(), stores={})
            cache = _state["stores"]
        jobs: RedisJobStore = _state["jobs"]
        raw = jobs.r.hget(jobs.item_key(job_id, item), "destination")
        if raw:
            loc = parse(json.loads(raw))
            store = f"store:{loc.name}" if loc.name else f"{loc.scheme}://{loc.store}"
    except Exception:  # a log field is never worth a failed task
        store = None
    if len(cache) > 1024:
        cache.clear()
    cache[(job_id, item)] = store
    return store


@task_prerun.connect
def _bind(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
    if not _json_logs() or task is None or task.name not in JOB_TASKS or not args:
        return
    fields: dict[str, Any] = {"job": args[0]}
    if len(args) > 1:
        fields["item"] = args[1]
        fields["store"] = _store_of(str(args[0]), int(args[1]))
    fields["chunk"] = args[2] if len(args) > 2 else None
    fields["queue"] = (getattr(task.request, "delivery_info", None) or {}).get("routing_key")
    _tokens[task_id] = logs.push(fields)


@task_postrun.connect
def _unbind(task_id: str = "", **_: Any) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        logs.pop(token)
