#!/usr/bin/env python3
"""One engine on one workload, as a child process: prints a JSON line of what it cost.

    worker.py ENGINE WORKLOAD [--key K] [--path P] [--size N] [--part N] [--streams N]
                              [--count N] [--inflight N] [--prefix P]

Workloads (see ``engines.Workloads``): ``large-down``, ``large-up``, ``copy-object``,
``part-copy``, ``small-up``, ``small-down``, and ``callgrind-up`` / ``callgrind-down``: one
warm-up PUT and GET (connections made, lazy loading done), then ``--count`` PUTs or GETs of
16 KiB one at a time, for instruction counts per request under valgrind (``--count 0`` is the
baseline). The JSON holds ``seconds`` (the workload alone: imports and set-up excluded),
``cpu_seconds`` (user + system of every thread of this process during the workload),
``rss_bytes`` (peak) and ``check`` (bytes, ETag or checksum sum, compared by the runner).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engines

SMALL_BYTES = 16 * 1024


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("engine")
    p.add_argument("workload")
    p.add_argument("--key", default="large.bin")
    p.add_argument("--dst", default="out.bin")
    p.add_argument("--path", default="")
    p.add_argument("--size", type=int, default=1 << 30)
    p.add_argument("--part", type=int, default=64 << 20)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--inflight", type=int, default=32)
    p.add_argument("--prefix", default="small")
    a = p.parse_args()
    target = engines.Target.from_env()
    w = engines.make(a.engine, target)
    ups = a.workload in ("small-up", "callgrind-up")
    items = [(f"{a.prefix}/{i:05d}", os.urandom(SMALL_BYTES)) for i in range(a.count if ups else 0)]
    keys = [f"{a.prefix}/{i:05d}" for i in range(a.count)]
    w.prepare(max(a.streams, a.inflight))
    if a.workload.startswith("callgrind"):
        w.small_up([(f"{a.prefix}/warm", b"w" * SMALL_BYTES)], 1)
        w.small_down([f"{a.prefix}/warm"], 1)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if a.workload == "large-down":
        check: object = w.large_down(a.key, a.path, a.size, a.part, a.streams)
    elif a.workload == "large-up":
        check = w.large_up(a.path, a.dst, a.size, a.part, a.streams)
    elif a.workload == "copy-object":
        check = w.copy_object(a.key, a.dst)
    elif a.workload == "part-copy":
        check = w.upload_part_copy(a.key, a.dst, a.size, a.part, a.streams)
    elif a.workload in ("small-up", "callgrind-up"):
        check = w.small_up(items, a.inflight)
    elif a.workload in ("small-down", "callgrind-down"):
        if a.workload == "callgrind-down":
            keys = [f"{a.prefix}/warm"] * a.count
        check = w.small_down(keys, a.inflight)
    else:
        raise SystemExit(f"unknown workload {a.workload!r}")
    seconds = time.perf_counter() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    print(
        json.dumps(
            {
                "engine": a.engine,
                "workload": a.workload,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "rss_bytes": usage1.ru_maxrss * 1024,
                "check": check,
            }
        ),
        flush=True,
    )
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
