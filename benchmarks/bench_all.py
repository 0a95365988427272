#!/usr/bin/env python3
"""The whole target table of issue 10 in one run: local, object-store and fleet cases on one set
of servers and one set of data, then one table ``case  mover  peer  ratio  target  met/missed``.

It runs the cases of ``bench_local.py``, ``bench_objects.py`` and ``bench_fleet.py`` (and their
targets) through the shared harness: best of 3 warm rounds per tool by default (``--runs``),
tools interleaved within each round, a fresh destination per run, page cache warm, peers that do
not fsync also timed with a following ``sync -f``. Servers (SeaweedFS, Swift, Redis) and the two
fleet workers are started here and stopped by PID at the end.

    .venv/bin/python benchmarks/bench_all.py --save benchmarks/results-$(date +%F).txt
    .venv/bin/python benchmarks/bench_all.py --quick     # a developer's check, under 3 minutes
    .venv/bin/python benchmarks/bench_all.py --only s3-down,s3-small-up --runs 5

Each case gets one untimed warm-up run first (the first run after a server start, or on a new
bucket, is slower for every client). ``--quick``: 256 MiB and 300 small objects, one round, no
warm-up, without the boto3 and aws CLI peers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts, beside this file
import bench_fleet
import bench_local
import bench_objects
import harness as h


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = h.parser(__doc__)
    p.add_argument("--tasks", type=int, default=10_000, help="tasks of the publish case")
    p.add_argument("--concurrency", type=int, default=2, help="pool size of each fleet worker")
    p.add_argument("--no-swift", action="store_true", help="skip the Swift cases")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.warmup = args.warmup or not args.quick  # warm rounds: one untimed run per case first

    def body(bench: h.Bench) -> None:
        results: dict[str, h.CaseResult] = {}
        rows: list[h.Row] = []
        # One group at a time, so the fleet's workers are not running (idle, but there)
        # during the other groups, and each group's table carries its own load average.
        groups = (
            ("local", lambda: bench_local.cases(bench), bench_local.rows),
            (
                "object stores",
                lambda: bench_objects.cases(bench, swift=not args.no_swift),
                bench_objects.rows,
            ),
            ("fleet", lambda: bench_fleet.cases(bench, args.concurrency), bench_fleet.rows),
        )
        for title, make, judge in groups:
            found = bench.run_cases(make())
            if found:
                h.print_details(found, f"{title}: cases")
            results.update(found)
            rows += judge(bench, found)
        rows += bench_fleet.publish_rows(bench, args.tasks)
        rows.append(h.rss_row(results, bench.chunk, bench.streams))
        h.print_targets(rows, "targets (issue 10)")

    return h.run_bench(args, "mover benchmark, the target table of issue 10", body)


if __name__ == "__main__":
    sys.exit(main())
