#!/usr/bin/env python3
"""Fleet benchmark: the celery executor on 2 workers against the embedded executor, same machine,
same S3 server (issues 4 and 10).

Cases (built by :func:`cases`, run by the shared harness, ``benchmarks/harness/``):

* ``fleet-large``: a 1 GiB file to S3, ``mover copy --executor celery --wait`` with 2 ``mover
  worker`` processes (prefork, ``-c 2`` each: 4 slots) against ``mover copy --executor
  embedded`` (``--streams 4``); same chunk size. Target (issue 10): fleet >= 0.9x embedded.
* ``fleet-small``: 2,000 files of 16 KiB to S3 (``-r``), fleet against embedded (``--streams``
  as ``--small-streams``). Target (issue 10): fleet >= 0.9x embedded.
* ``publish``: 10,000 ``mover.chunk.copy`` tasks through the celery executor's publish path
  (one producer, kombu's pipelined batch) to a queue no worker consumes, then deleted; and the
  whole submit path of a job of 10,000 chunks (plan, job record, publish), not run. Target
  (issue 4): >= 4,000 tasks/s.

Every run is wall time of the whole CLI process, start-up included, for both executors; runs
interleave the executors (rotating which goes first); each writes a fresh key prefix.

Servers come from tests/servers.py (a private ``redis-server`` and SeaweedFS on free ports) and
are stopped by PID at the end, with the workers, also on error or Ctrl-C.

    .venv/bin/python benchmarks/bench_fleet.py               # 1 GiB, 10,000 tasks, 2,000 files
    .venv/bin/python benchmarks/bench_fleet.py --quick       # 256 MiB, 10,000 tasks, 300 files
    .venv/bin/python benchmarks/bench_fleet.py --save benchmarks/results-fleet.txt
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness/, beside this file
import harness as h

# The fleet lived here before the harness had it; kept importable from here.
from harness import WORKER_QUEUES, Fleet  # noqa: F401

#: The queue the publish case fills: no worker consumes ``mover.benchpublish``.
PUBLISH_DESTINATION = "benchpublish://nowhere/x"
#: Tasks/s the publish path must reach (issue 4).
PUBLISH_MIN_PER_S = 4000
BUCKETS = ("bench-fleet", "bench-fleetsmall")
#: The publish case, for --only.
PUBLISH = "publish"

TARGETS = (
    h.Target("fleet-large", ("embedded",), 0.9, subject="fleet"),
    h.Target(
        "fleet-small",
        ("embedded",),
        0.9,
        subject="fleet",
        cause=(
            "every object's plan goes through Redis (written by the command, read by a worker,"
            " read back for the report) and a worker reopens each; records are a few round"
            " trips per 64-object batch since issue 10; srv cpu counts workers and Redis"
        ),
    ),
)


def cases(bench: h.Bench, concurrency: int = 2) -> list[h.Case]:
    """The fleet cases: embedded and fleet on the same data and server."""
    keys = ("fleet-large", "fleet-small")
    if not any(bench.wants(k) for k in keys):
        return []
    bench.s3().ensure_buckets(BUCKETS)
    fleet = Fleet(bench, 2, concurrency)
    movers = (
        ("embedded", ("--executor", "embedded"), {}),
        ("fleet", ("--executor", "celery", "--wait"), {"MOVER_BROKER_URL": fleet.broker}),
    )
    made = [
        h.from_local(bench, source, key, "S3, fleet", dst, (), movers=movers)
        for source, key, dst in (
            ("large", "fleet-large", h.fresh("s3", "bench-fleet", "large.bin")),
            ("tree", "fleet-small", h.fresh("s3", "bench-fleetsmall")),
        )
    ]
    # The fleet's workers and Redis count as servers here (for both executors: idle workers
    # cost the embedded runs little): the CPU a fleet run spends is not in the command alone.
    for case in made:
        case.server_pids = [*case.server_pids, *fleet.pids()]
    return made


def _queue_depth(client: Any, queue: str) -> int:
    """Messages of ``queue`` over its priority bands (kombu's Redis layout)."""
    bands = [queue] + [f"{queue}\x06\x16{p}" for p in (3, 6, 9)]
    pipe = client.pipeline()
    for band in bands:
        pipe.llen(band)
    return sum(pipe.execute())


def _drop_queue(client: Any, queue: str) -> None:
    client.delete(queue, *(f"{queue}\x06\x16{p}" for p in (3, 6, 9)))


def bench_publish(bench: h.Bench, tasks: int) -> tuple[list[float], list[float]]:
    """Tasks/s of the celery executor's ``publish`` (``rounds`` times), and of the whole submit
    path of a job of ``tasks`` chunks (plan + record + publish), which is not run."""
    import redis

    os.environ["MOVER_BROKER_URL"] = bench.redis_url()
    from mover.executors import celery as fleet
    from mover.jobs import Item
    from mover.jobstores.redis import RedisJobStore

    app = fleet.get_app()
    jobs = RedisJobStore(bench.redis_url())
    client = redis.Redis.from_url(bench.redis_url())
    item = Item(0, "bench", PUBLISH_DESTINATION)
    queue = fleet.queue_for(PUBLISH_DESTINATION)
    direct: list[float] = []
    # One untimed publish of 100 tasks: connection pool and producer warm, as in a service.
    fleet.publish(jobs, "bench-publish", [(item, list(range(100)))], app)
    _drop_queue(client, queue)
    for _ in range(bench.rounds):
        started = time.perf_counter()
        sent = fleet.publish(jobs, "bench-publish", [(item, list(range(tasks)))], app)
        elapsed = time.perf_counter() - started
        depth = _queue_depth(client, queue)
        _drop_queue(client, queue)
        if sent != tasks or depth != tasks:
            raise h.BenchError(f"publish: sent {sent}, queued {depth}, expected {tasks}")
        direct.append(tasks / elapsed)
    # The whole path of a real job: a file of `tasks` chunks of 1 KiB to memory://, whose
    # queue (mover.memory) the workers of this benchmark do not consume; never run.
    src = bench.work / "tiny-chunks.bin"
    h.write_random(src, tasks * 1024)
    whole: list[float] = []
    for run in range(bench.rounds):
        started = time.perf_counter()
        job = fleet.submit(str(src), f"memory://bench/{run}", chunk_size=1024, jobs=jobs, app=app)
        elapsed = time.perf_counter() - started
        chunks = sum(len(i.chunks) for i in job.items)
        depth = _queue_depth(client, "mover.memory")
        _drop_queue(client, "mover.memory")
        if depth != chunks:
            raise h.BenchError(f"submit: {depth} tasks queued for {chunks} chunks")
        whole.append(chunks / elapsed)
    client.close()
    return direct, whole


def publish_rows(bench: h.Bench, tasks: int) -> list[h.Row]:
    """The publish case as target rows (no peer: an absolute rate)."""
    if not bench.wants(PUBLISH):
        return []
    target = f">= {PUBLISH_MIN_PER_S:,} tasks/s (issue 4)"
    try:
        direct, whole = bench_publish(bench, tasks)
    except ImportError as exc:  # the executor's API moved: say so, keep the other rows
        return [h.limit_row(f"publish {tasks:,} chunk tasks", "-", None, target, str(exc))]
    rate = max(direct)
    return [
        h.limit_row(
            f"publish {tasks:,} chunk tasks",
            f"{rate:,.0f} tasks/s (runs {', '.join(f'{r:,.0f}' for r in direct)})",
            rate >= PUBLISH_MIN_PER_S,
            target,
        ),
        h.Row(
            f"submit a {tasks:,}-chunk job",
            f"{statistics.median(whole):,.0f} chunks/s (plan + record + publish)",
            "-",
            "-",
            "-",
            "no target",
        ),
    ]


def rows(bench: h.Bench, results: dict[str, h.CaseResult]) -> list[h.Row]:
    return [h.judge(t, results) for t in TARGETS]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = h.parser(__doc__)
    p.add_argument("--tasks", type=int, default=10_000, help="tasks of the publish case")
    p.add_argument("--concurrency", type=int, default=2, help="pool size of each worker")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return h.run_script(
        args,
        "mover fleet benchmark",
        lambda bench: cases(bench, args.concurrency),
        lambda bench, results: [*rows(bench, results), *publish_rows(bench, args.tasks)],
    )


if __name__ == "__main__":
    sys.exit(main())
