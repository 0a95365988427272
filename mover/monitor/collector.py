"""The Prometheus side of :mod:`mover.monitor.view`: metric families from one look at the fleet.

A custom collector (``prometheus_client``): every scrape reads the fleet again from Redis and
the broker, so nothing is counted in this process and several ``mover metrics`` (or a restart)
agree. Families and labels (all names ``mover_``, base units, counters end in ``_total``):

========================================== ======= ==========================================
family                                     type    labels
========================================== ======= ==========================================
mover_up                                   gauge   (1: Redis and the broker answered)
mover_scrape_duration_seconds              gauge
mover_queue_messages                       gauge   queue (every priority band summed)
mover_queue_band_messages                  gauge   queue, priority (the band: 0, 3, 6, 9)
mover_queue_unacked_messages               gauge   queue (delivered, not acknowledged)
mover_queue_consumers                      gauge   queue (workers consuming it)
mover_queue_oldest_message_age_seconds     gauge   queue (0 when empty)
mover_job_state                            gauge   job_id, state (1 for the job's state)
mover_job_objects / _objects_done /        gauge   job_id
mover_job_objects_failed
mover_job_chunks / mover_job_chunks_done   gauge   job_id
mover_job_size_bytes / mover_job_done_bytes gauge  job_id
mover_job_rate_bytes_per_second            gauge   job_id (chunks done over the last seconds)
mover_job_eta_seconds                      gauge   job_id (only while the job moves)
mover_job_created_timestamp_seconds        gauge   job_id
mover_job_last_progress_timestamp_seconds  gauge   job_id (when a chunk of it last finished)
mover_store_bytes_total                    counter store, direction (in: written, out: read)
mover_store_throughput_bytes_per_second    gauge   store, direction (over the last seconds)
mover_store_chunks_total                   counter store (chunk attempts that touched it)
mover_store_errors_total                   counter store, class (retryable/permanent/checksum)
mover_store_retries_total                  counter store (attempts that were retries)
mover_store_streams                        gauge   store (leases held on max_streams)
mover_store_streams_limit                  gauge   store (its max_streams)
mover_store_streams_high_water             gauge   store (most leases ever held at once)
mover_worker_pool_processes                gauge   worker
mover_worker_busy_slots                    gauge   worker
mover_workers_inspect_age_seconds          gauge   (age of the workers' last answer)
mover_autoscale_desired_slots              gauge   controller, queue (the last target)
mover_autoscale_decision                   gauge   controller, queue, direction (up/down/hold)
mover_autoscale_decision_info              info    controller, queue, strategy, reason
mover_autoscale_last_decision_timestamp_seconds gauge controller
mover_autoscale_pool_slots                 gauge   controller, queue (real pool it decided from)
mover_autoscale_busy_slots                 gauge   controller, queue (busy slots it saw)
mover_autoscale_backlog_chunks             gauge   controller, queue (waiting + in flight)
mover_autoscale_observed_bytes_per_second  gauge   controller, queue (over its rate window)
mover_chunk_duration_seconds               histogram queue
mover_chunk_queue_wait_seconds             histogram queue (publish, or a retry's ETA, to start)
========================================== ======= ==========================================

Job ids are the only label that grows with use: the look keeps the newest jobs not finished
or finished recently (:class:`~mover.monitor.view.FleetReader`, default 50 jobs, 15 minutes),
so at most that many job series exist at a time. The autoscaler's reason is free text: it is
the label of an info metric only (one series per queue at a time, a new one when the reason
changes), while the bounded ``direction`` label is what alerts and graphs use.

``job_id``, not ``job``: Prometheus sets ``job`` on every target, and would rename ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from mover.monitor.view import JOB_STATES, FleetReader, FleetState

#: Longest autoscale reason kept in the info metric (one line).
MAX_REASON = 200


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _queue_families(state: FleetState) -> Iterator[Metric]:
    depth = _gauge("mover_queue_messages", "Messages waiting, every priority band.", ["queue"])
    band = _gauge("mover_queue_band_messages", "Messages waiting per band.", ["queue", "priority"])
    unacked = _gauge(
        "mover_queue_unacked_messages", "Delivered, unacknowledged messages.", ["queue"]
    )
    consumers = _gauge("mover_queue_consumers", "Workers consuming the queue.", ["queue"])
    oldest = _gauge(
        "mover_queue_oldest_message_age_seconds",
        "Seconds the oldest waiting message has waited (0 when empty).",
        ["queue"],
    )
    for q in state.queues:
        depth.add_metric([q.name], q.depth)
        for priority, n in q.bands.items():
            band.add_metric([q.name, str(priority)], n)
        unacked.add_metric([q.name], q.unacked)
        consumers.add_metric([q.name], q.consumers)
        if q.oldest_age_s is not None:
            oldest.add_metric([q.name], q.oldest_age_s)
    yield from (depth, band, unacked, consumers, oldest)


_JOB_GAUGES = (
    ("mover_job_objects", "Objects in the job.", "objects"),
    ("mover_job_objects_done", "Objects copied and verified.", "objects_done"),
    ("mover_job_objects_failed", "Objects failed or cancelled.", "objects_failed"),
    ("mover_job_chunks", "Chunks planned.", "chunks"),
    ("mover_job_chunks_done", "Chunks done.", "chunks_done"),
    ("mover_job_size_bytes", "Bytes of the job's objects.", "size_bytes"),
    ("mover_job_done_bytes", "Bytes of the chunks done.", "done_bytes"),
    ("mover_job_rate_bytes_per_second", "Bytes/s of chunks done lately.", "rate_bytes_per_s"),
    ("mover_job_eta_seconds", "Seconds left at the recent rate.", "eta_s"),
    ("mover_job_created_timestamp_seconds", "When the job was created.", "created"),
    (
        "mover_job_last_progress_timestamp_seconds",
        "When a chunk of the job last finished (its creation before that).",
        "last_progress",
    ),
)


def _job_families(state: FleetState) -> Iterator[Metric]:
    states = _gauge(
        "mover_job_state", "1 for the job's state, 0 for the others.", ["job_id", "state"]
    )
    gauges = {attr: _gauge(name, doc, ["job_id"]) for name, doc, attr in _JOB_GAUGES}
    for job in state.jobs:
        for s in JOB_STATES:
            states.add_metric([job.id, s], 1.0 if job.state == s else 0.0)
        for attr, family in gauges.items():
            value = getattr(job, attr)
            if value is not None:
                family.add_metric([job.id], float(value))
    yield states
    yield from gauges.values()


def _store_families(state: FleetState) -> Iterator[Metric]:
    moved = CounterMetricFamily(
        "mover_store_bytes",
        "Bytes written to (in) and read from (out) the store.",
        labels=["store", "direction"],
    )
    rate = _gauge(
        "mover_store_throughput_bytes_per_second",
        "Bytes/s written to (in) and read from (out) the store lately.",
        ["store", "direction"],
    )
    chunks = CounterMetricFamily(
        "mover_store_chunks", "Chunk attempts that touched the store.", labels=["store"]
    )
    errors = CounterMetricFamily(
        "mover_store_errors",
        "Failed chunk attempts that touched the store, by class.",
        labels=["store", "class"],
    )
    retries = CounterMetricFamily(
        "mover_store_retries", "Chunk attempts that were retries.", labels=["store"]
    )
    streams = _gauge("mover_store_streams", "Leases held on the store's max_streams.", ["store"])
    limit = _gauge("mover_store_streams_limit", "The store's max_streams.", ["store"])
    hwm = _gauge("mover_store_streams_high_water", "Most leases held at once.", ["store"])
    for s in state.stores:
        moved.add_metric([s.key, "in"], s.in_bytes)
        moved.add_metric([s.key, "out"], s.out_bytes)
        rate.add_metric([s.key, "in"], s.in_rate)
        rate.add_metric([s.key, "out"], s.out_rate)
        chunks.add_metric([s.key], s.chunks)
        for cls, n in s.errors.items():
            errors.add_metric([s.key, cls], n)
        retries.add_metric([s.key], s.retries)
        if s.streams is not None:
            streams.add_metric([s.key], s.streams)
            hwm.add_metric([s.key], s.streams_high_water or 0)
        if s.streams_limit is not None:
            limit.add_metric([s.key], s.streams_limit)
    yield from (moved, rate, chunks, errors, retries, streams, limit, hwm)


def _worker_families(state: FleetState) -> Iterator[Metric]:
    pool = _gauge("mover_worker_pool_processes", "Pool processes of the worker.", ["worker"])
    busy = _gauge("mover_worker_busy_slots", "Pool slots running a task.", ["worker"])
    for w in state.workers:
        pool.add_metric([w.name], w.pool)
        busy.add_metric([w.name], w.busy)
    yield from (pool, busy)
    age = _gauge("mover_workers_inspect_age_seconds", "Age of the workers' last answer.", [])
    if state.workers_age_s is not None:
        age.add_metric([], state.workers_age_s)
    yield age


def _direction(desired: int, previous: int | None) -> str:
    if previous is None or desired == previous:
        return "hold"
    return "up" if desired > previous else "down"


def _autoscale_families(state: FleetState) -> Iterator[Metric]:
    desired = _gauge(
        "mover_autoscale_desired_slots",
        "Slots the autoscaler last wanted for the queue.",
        ["controller", "queue"],
    )
    decision = _gauge(
        "mover_autoscale_decision",
        "1 for the direction of the last decision (up, down, hold).",
        ["controller", "queue", "direction"],
    )
    info = InfoMetricFamily(
        "mover_autoscale_decision",
        "The autoscaler's last reason per queue (free text: an info metric).",
        labels=["controller", "queue", "strategy"],
    )
    when = _gauge(
        "mover_autoscale_last_decision_timestamp_seconds",
        "When the controller last decided.",
        ["controller"],
    )
    seen = {
        field: _gauge(f"mover_autoscale_{name}", doc, ["controller", "queue"])
        for field, name, doc in (
            ("pool", "pool_slots", "Pool processes serving the queue when it last decided."),
            ("busy", "busy_slots", "Of those, busy with the queue's chunks."),
            ("backlog", "backlog_chunks", "Chunks waiting and in flight it decided from."),
            ("bytes_per_s", "observed_bytes_per_second", "Bytes/s over its rate window."),
        )
    }
    for d in state.decisions:
        when.add_metric([d.controller], d.time_s)
        for queue, fields in d.queues.items():
            for field, family in seen.items():
                value = fields.get(field)
                if isinstance(value, int | float):
                    family.add_metric([d.controller, queue], float(value))
        for queue, want in d.desired.items():
            desired.add_metric([d.controller, queue], want)
            way = _direction(want, d.previous.get(queue))
            for direction in ("up", "down", "hold"):
                decision.add_metric([d.controller, queue, direction], float(direction == way))
            reason = " ".join(d.reasons.get(queue, "").split())[:MAX_REASON]
            info.add_metric([d.controller, queue, d.strategy], {"reason": reason})
    yield from (desired, decision, info, when, *seen.values())


_HISTOGRAMS = {
    "chunk_duration": ("mover_chunk_duration_seconds", "Seconds a chunk attempt ran."),
    "queue_wait": (
        "mover_chunk_queue_wait_seconds",
        "Seconds a chunk waited in its queue (from publish, or a retry's ETA, to its start).",
    ),
}


def _histogram_families(state: FleetState) -> Iterator[Metric]:
    families = {
        key: HistogramMetricFamily(name, doc, labels=["queue"])
        for key, (name, doc) in _HISTOGRAMS.items()
    }
    for h in state.histograms:
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip((*h.bounds, float("inf")), h.counts, strict=True):
            total += n
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        families[h.name].add_metric([h.queue], buckets, h.sum)
    yield from families.values()


def families(state: FleetState) -> Iterator[Metric]:
    """Every metric family of one look (only ``mover_up`` and the scrape time when down)."""
    up = _gauge("mover_up", "1 when Redis and the broker answered this scrape.", [])
    up.add_metric([], 1.0 if state.up else 0.0)
    yield up
    took = _gauge("mover_scrape_duration_seconds", "Seconds this look at the fleet took.", [])
    took.add_metric([], state.seconds)
    yield took
    if not state.up:
        return
    yield from _queue_families(state)
    yield from _job_families(state)
    yield from _store_families(state)
    yield from _worker_families(state)
    yield from _autoscale_families(state)
    yield from _histogram_families(state)


class FleetCollector(Collector):
    """A collector that looks at the fleet at every scrape."""

    def __init__(self, reader: FleetReader) -> None:
        self.reader = reader

    def collect(self) -> Iterator[Metric]:
        yield from families(self.reader.read())

    def describe(self) -> list[Any]:
        return []  # nothing to look at when registering


def registry_for(reader: FleetReader) -> CollectorRegistry:
    """A registry with only the fleet's families (no process or platform metrics: they would
    describe this monitor, not the fleet)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(reader))
    return registry
