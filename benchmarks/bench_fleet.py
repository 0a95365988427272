#!/usr/bin/env python3
"""Fleet benchmark: the celery executor on 2 workers against the embedded executor, same machine,
same S3 server (issues 4 and 10).

Cases (built by :func:`cases`, run by the shared harness, ``benchmarks/harness.py``):

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
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py, beside this file
import harness as h

#: What the workers consume: not ``mover.memory``, where the submit case parks its job.
WORKER_QUEUES = "mover,celery,mover.file,mover.s3"
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
        cause="per-object Redis records (chunk done, commit claim); a task carries 64 objects",
    ),
)


class Fleet:
    """Two ``mover worker`` processes on a private Redis, started once, stopped by PID."""

    def __init__(self, bench: h.Bench, count: int, concurrency: int) -> None:
        self.bench = bench
        self.broker = bench.redis_url()
        self.env = {**bench.env, "MOVER_BROKER_URL": self.broker}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        bench.stack.callback(self.stop)
        mover = bench.programs["mover"]
        assert mover
        for n in range(1, count + 1):
            log = bench.work / f"worker{n}.log"
            self.logs.append(log)
            with open(log, "wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        [
                            *(mover, "worker", "-c", str(concurrency), "--pool", "prefork"),
                            *("-n", f"bench{n}@%h", "-l", "WARNING", "-Q", WORKER_QUEUES),
                        ],
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        self._wait_ready({f"bench{n}@{platform.node()}" for n in range(1, count + 1)})

    def _wait_ready(self, want: set[str]) -> None:
        """-l WARNING keeps per-chunk INFO lines out of the timing; readiness is asked by ping."""
        from celery import Celery

        app = Celery(broker=self.broker)
        deadline = time.monotonic() + 60
        try:
            while True:
                for p, log in zip(self.procs, self.logs, strict=True):
                    if p.poll() is not None:
                        raise h.BenchError(f"worker died:\n{log.read_text()[-3000:]}")
                seen = {name for reply in app.control.ping(timeout=1.0) or [] for name in reply}
                if want <= seen:
                    return
                if time.monotonic() > deadline:
                    raise h.BenchError(f"workers not ready: {sorted(seen)}")
        finally:
            app.close()

    def stop(self) -> None:
        """SIGTERM each worker's process group, SIGKILL after a grace: by PID only."""
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        self.procs.clear()


def cases(bench: h.Bench, concurrency: int = 2) -> list[h.Case]:
    """The fleet cases: embedded and fleet on the same data and server."""
    keys = ("fleet-large", "fleet-small")
    if not any(bench.wants(k) for k in keys):
        return []
    s3 = bench.s3()
    s3.ensure_buckets(BUCKETS)
    fleet = Fleet(bench, 2, concurrency)
    movers = (
        ("embedded", ("--executor", "embedded"), {}),
        ("fleet", ("--executor", "celery", "--wait"), {"MOVER_BROKER_URL": fleet.broker}),
    )
    large, tree = bench.large(), bench.tree()
    return [
        h.transfer_case(
            bench,
            "fleet-large",
            f"{bench.large_label()} file -> S3, fleet",
            h.Loc("file", str(large)),
            lambda t: h.Loc("s3", f"bench-fleet/{t}/large.bin"),
            (),
            movers=movers,
            before=lambda: h.warm(large),
        ),
        h.transfer_case(
            bench,
            "fleet-small",
            f"{bench.small_label()} -> S3, fleet",
            h.Loc("file", str(tree)),
            lambda t: h.Loc("s3", f"bench-fleetsmall/{t}/"),
            (),
            movers=movers,
            recursive=True,
            before=lambda: h.warm(tree),
        ),
    ]


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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    h.add_common_args(p)
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
