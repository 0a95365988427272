"""The fleet's public names, defined once: task names and queues.

Other services send tasks by these names (Celery's advice: explicit, namespaced names that do
not depend on a module's path), and workers consume these queues; the celery executor, the
worker side (:mod:`mover.workers.tasks`), the follower (:mod:`mover.executors.waiting`) and the
CLI all read them from here. A leaf: it imports nothing of mover but the location parser.
"""

from __future__ import annotations

from mover.errors import MoverError
from mover.location import parse

#: ``mover.submit``: a whole copy request, validated and planned on the worker side.
SUBMIT_TASK = "mover.submit"
#: ``mover.chunk.copy``: one chunk of one object (args: job id, item, chunk).
CHUNK_TASK = "mover.chunk.copy"
#: ``mover.job.commit``: the commit of an object whose chunks are all done.
COMMIT_TASK = "mover.job.commit"
#: ``mover.batch.copy``: many small one-chunk objects bound for one queue, in one task
#: (a task costs about what a 16 KiB object does; :mod:`mover.workers.batch_tasks`).
BATCH_TASK = "mover.batch.copy"
#: Most objects in one ``mover.batch.copy``.
BATCH_OBJECTS = 64
#: Objects up to this size may go in a batch.
BATCH_MAX_BYTES = 1024 * 1024
#: ``mover.repo.<task>``: a range of a backup or restore of the repository.
REPO_TASK_PREFIX = "mover.repo."
#: The queue of ``mover.submit``, ``mover.job.commit`` and of chunks with no better queue;
#: every worker consumes it.
DEFAULT_QUEUE = "mover"


def queue_for(destination: str) -> str:
    """The queue a chunk writing to ``destination`` goes to: ``mover.store.<name>`` for a
    configured store (``store:NAME/key``), else ``mover.<scheme>``; ``mover`` if unparsable."""
    try:
        loc = parse(destination)
    except MoverError:
        return DEFAULT_QUEUE
    if loc.name:
        return f"mover.store.{loc.name}"
    return f"mover.{loc.scheme}" if loc.scheme else DEFAULT_QUEUE
