"""The fleet's shared state in Redis, written by workers and read by the controller and the
monitor: store stream limits (:mod:`.limits`), per-chunk metrics (:mod:`.metrics_recorder`)
and the observation of queues and worker pools (:mod:`.observer`). In the core, so that
``mover metrics`` and ``mover dashboard`` read it without importing the worker side.
"""
