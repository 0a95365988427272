"""Executors run a job's chunks and commits: ``embedded`` (threads in this process) here;
``celery`` (tasks on workers) in :mod:`workers`."""
