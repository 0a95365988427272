"""Executors run a job's chunks and commits: ``embedded`` (threads in this process) here;
``celery`` (tasks on workers) in :mod:`workers`. Their contract and the one lookup by name are
:mod:`mover.executors.contract`."""

#: Each executor's name -> ``module:class``, imported only when asked for (an embedded copy
#: never loads Celery). Here, in the package's leaf, so that the CLI can offer the names
#: without importing the contract and the job records behind it.
EXECUTORS = {
    "embedded": "mover.executors.embedded:EmbeddedExecutor",
    "celery": "mover.executors.celery:CeleryExecutor",
}
