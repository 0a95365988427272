#!/usr/bin/env python3
"""Autoscaling on real workers (issue 16): each shipped strategy against fixed pools.

One ``mover worker`` (prefork), one real controller (``mover autoscale``), a real S3
(SeaweedFS from tests/servers.py, through the shared harness) and a private Redis. Each
workload replays bursts of copy jobs (a local file to S3, ``--chunk-size`` chunks) onto the
worker's queue, and is run:

* with the worker started ``-c 1`` and ``mover autoscale --strategy S --interval 5
  --min-per-worker 1 --max-per-worker 8``, for every shipped strategy S;
* with the worker started ``-c N`` and no controller, for N in 1, 2, 4, 8 (fixed pools).

Workloads (``--quick``: smaller and closer, minutes in all):

* ``short``: bursts that one slot absorbs (small jobs): growth cannot pay;
* ``long``: bursts that saturate the store and the host (large jobs);
* ``ramp``: jobs arriving at a rising rate.

Figures per run, measured from outside the controller:

* **drain**: first job submitted to last job done (job records), seconds;
* **slot-seconds**: the worker's pool size, polled from ``inspect().stats()`` every
  ``--sample`` seconds, integrated over the drain (a fixed pool: N x drain);
* **reaction**: per burst in which the pool grew, from the burst's first job to the first
  look that saw a bigger pool (the slot has started), seconds;
* **reversals**: per burst, changes of the pool's direction (up then down is one).

Per workload and strategy, the issue's criteria: drain <= 1.1 x the best fixed pool's;
slot-seconds <= 1.2 x those of the smallest fixed pool that drains within 10 % of the best;
reaction <= 5 s; at most 1 reversal per burst. The strategy that passes most (then the one
with the fewest slot-seconds against the fixed pools) is named the best live.

Every copy is checked on the server (HEAD: the object's size); objects are deleted after
each run. Servers, workers and controllers are stopped by PID at the end. The machine may be
shared: the load average is printed beside every run and in the summary, and figures taken
under load are no more than that.

    .venv/bin/python benchmarks/bench_autoscale.py --quick
    .venv/bin/python benchmarks/bench_autoscale.py --save benchmarks/results-autoscale.txt
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the harness, beside this file
import itertools

import harness as h

#: Strategies measured, and the fixed pools they are measured against.
STRATEGIES = ("target-tracking", "step", "throughput")
FIXED = (1, 2, 4, 8)
BUCKET = "bench-autoscale"
#: The issue's criteria.
DRAIN_RATIO = 1.1
SLOT_RATIO = 1.2
WITHIN_BEST = 1.1
REACTION_S = 5.0
REVERSALS = 1


@dataclass(frozen=True)
class Burst:
    """``jobs`` jobs of ``size`` bytes published ``spread_s`` apart, from ``at_s``."""

    at_s: float
    jobs: int
    size: int
    spread_s: float = 0.0


@dataclass(frozen=True)
class Workload:
    name: str
    what: str
    bursts: tuple[Burst, ...]

    @property
    def jobs(self) -> int:
        return sum(b.jobs for b in self.bursts)


def workloads(quick: bool) -> list[Workload]:
    """The three workloads, full (the issue's sizes) or quick."""
    # (jobs per burst, seconds between bursts) for short and long; (jobs, seconds) for the ramp.
    (short, short_gap), (long, long_gap), (ramp, ramp_s) = (
        ((8, 20), (6, 30), (30, 20)) if quick else ((24, 40), (24, 40), (90, 60))
    )
    small, large = 32 * h.MiB, 128 * h.MiB
    return [
        Workload(
            "short",
            f"2 bursts of {short} x 32 MiB, {short_gap} s apart",
            (Burst(0, short, small), Burst(short_gap, short, small)),
        ),
        Workload(
            "long",
            f"2 bursts of {long} x 128 MiB, {long_gap} s apart",
            (Burst(0, long, large), Burst(long_gap, long, large)),
        ),
        Workload(
            "ramp",
            f"{ramp} x 32 MiB over {ramp_s} s, rate rising",
            tuple(Burst(ramp_s * math.sqrt(i / ramp), 1, small) for i in range(ramp)),
        ),
    ]


def burst_starts(workload: Workload, gap_s: float = 10.0) -> list[float]:
    """Where the bursts begin: arrivals separated by ``gap_s`` of silence or more (a ramp is
    one burst)."""
    starts: list[float] = []
    last = -math.inf
    for b in sorted(workload.bursts, key=lambda b: b.at_s):
        if b.at_s - last >= gap_s:
            starts.append(b.at_s)
        last = b.at_s + b.spread_s * b.jobs
    return starts


@dataclass
class Run:
    """One workload on one set-up (a strategy or a fixed pool)."""

    label: str
    strategy: str | None
    fixed: int | None
    drain_s: float = math.nan
    slot_seconds: float = math.nan
    reactions: list[float | None] = field(default_factory=list)
    reversals: list[int] = field(default_factory=list)
    peak: int = 0
    load: str = ""
    failed: str = ""

    @property
    def reaction(self) -> float | None:
        seen = [r for r in self.reactions if r is not None]
        return max(seen) if seen else None


class Worker:
    """One ``mover worker -c N`` consuming ``queue``, started and stopped by PID."""

    def __init__(self, bench: h.Bench, env: dict[str, str], queue: str, concurrency: int) -> None:
        mover = bench.programs["mover"]
        assert mover
        self.name = f"auto{concurrency}-{os.getpid()}"
        self.node = f"{self.name}@{platform.node()}"
        self.log = bench.work / f"{self.name}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    *(mover, "worker", "-c", str(concurrency), "--pool", "prefork"),
                    *("-n", f"{self.name}@%h", "-l", "WARNING", "-Q", queue),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, app: Any, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise h.BenchError(f"worker died:\n{self.log.read_text()[-3000:]}")
            replies = app.control.ping(destination=[self.node], timeout=1.0) or []
            if any(self.node in r for r in replies):
                return
            if time.monotonic() > deadline:
                raise h.BenchError(f"worker {self.node} not ready")

    def stop(self) -> None:
        stop_group(self.proc, 30)


def stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the process group, SIGKILL after ``grace_s``: by PID only."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class PoolWatch:
    """Polls a worker's pool size (``inspect().stats()``) in a thread: the series that
    slot-seconds, reaction and reversals are read from."""

    def __init__(self, app: Any, node: str, every_s: float) -> None:
        self.app, self.node, self.every_s = app, node, every_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                stats = self.app.control.inspect(timeout=0.5, destination=[self.node]).stats()
                pool = (stats or {}).get(self.node, {}).get("pool", {}).get("processes")
                if isinstance(pool, list):
                    self.samples.append((started, len(pool)))
            except Exception:  # the broker busy: the next look
                pass
            self._stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def size_at(self, t: float) -> int:
        size = self.samples[0][1] if self.samples else 0
        for when, n in self.samples:
            if when > t:
                break
            size = n
        return size

    def slot_seconds(self, start: float, end: float) -> float:
        """The pool size integrated over [start, end] (steps between looks)."""
        total, t, size = 0.0, start, self.size_at(start)
        for when, n in self.samples:
            if when <= start:
                continue
            if when >= end:
                break
            total += size * (when - t)
            t, size = when, n
        return total + size * (end - t)


def judge_bursts(
    watch: PoolWatch, starts: Sequence[float], t0: float, end: float
) -> tuple[list[float | None], list[int]]:
    """Reaction and reversals per burst (see the module docstring)."""
    reactions: list[float | None] = []
    reversals: list[int] = []
    bounds = [t0 + s for s in starts] + [end]
    for begin, stop in itertools.pairwise(bounds):
        base = watch.size_at(begin)
        seen = [(t, n) for t, n in watch.samples if begin <= t < stop]
        grew = next((t for t, n in seen if n > base), None)
        reactions.append(None if grew is None else grew - begin)
        flips, last, prev = 0, 0, base
        for _, n in seen:
            if n == prev:
                continue
            way = 1 if n > prev else -1
            if last and way != last:
                flips += 1
            last, prev = way, n
        reversals.append(flips)
    return reactions, reversals


class Driver:
    """Runs the workloads: servers, source files, jobs, checks."""

    def __init__(self, bench: h.Bench, args: argparse.Namespace) -> None:
        self.bench = bench
        self.args = args
        self.s3 = bench.s3()
        self.s3.ensure_buckets([BUCKET])
        self.broker = bench.redis_url()
        self.env = {**bench.env, "MOVER_BROKER_URL": self.broker}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("AWS_", "S3_"))})
        os.environ["MOVER_BROKER_URL"] = self.broker
        os.environ["MOVER_STATE_DIR"] = self.env["MOVER_STATE_DIR"]
        os.environ["MOVER_CONFIG"] = self.env["MOVER_CONFIG"]
        from mover.executors import celery as fleet
        from mover.jobstores.redis import RedisJobStore

        self.fleet = fleet
        self.app = fleet.get_app()
        self.jobs = RedisJobStore(self.broker)
        self.queue = fleet.queue_for(f"s3://{BUCKET}/x")
        self.sources: dict[int, Path] = {}
        self.chunk = h.parse_size(args.chunk_size)

    def source(self, size: int) -> Path:
        if size not in self.sources:
            path = self.bench.work / f"src-{size // h.MiB}MiB.bin"
            h.write_random(path, size)
            h.warm(path)
            self.sources[size] = path
        return self.sources[size]

    def publish(self, workload: Workload, tag: str, t0: float, ids: list[str]) -> None:
        """Submit the workload's jobs at their times (from this thread)."""
        n = 0
        for burst in sorted(workload.bursts, key=lambda b: b.at_s):
            for i in range(burst.jobs):
                delay = t0 + burst.at_s + i * burst.spread_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                dst = f"s3://{BUCKET}/{tag}/{n:04d}.bin"
                job = self.fleet.submit(
                    str(self.source(burst.size)),
                    dst,
                    chunk_size=self.chunk,
                    jobs=self.jobs,
                    app=self.app,
                )
                ids.append(job.id)
                n += 1

    def run(self, workload: Workload, run: Run) -> Run:
        """One workload on one set-up; fills ``run`` (``failed`` on error)."""
        tag = f"{workload.name}-{run.label}-{int(time.time())}"
        for b in workload.bursts:
            self.source(b.size)
        worker = Worker(self.bench, self.env, self.queue, run.fixed or 1)
        controller: subprocess.Popen[bytes] | None = None
        watch: PoolWatch | None = None
        try:
            worker.wait_ready(self.app)
            if run.strategy:
                controller = self.controller(run.strategy, tag)
                time.sleep(2 * self.args.sample)  # its first tick has looked
            watch = PoolWatch(self.app, worker.node, self.args.sample)
            time.sleep(2 * self.args.sample)
            run.load = h.load_average()
            ids: list[str] = []
            t0 = time.monotonic()
            publisher = threading.Thread(target=self.publish, args=(workload, tag, t0, ids))
            publisher.start()
            end = self.wait_done(publisher, ids, workload.jobs, t0)
            run.drain_s = end - t0
            watch.stop()
            run.slot_seconds = (run.fixed or 0) * run.drain_s if run.fixed else (
                watch.slot_seconds(t0, end)
            )  # fmt: skip
            run.reactions, run.reversals = judge_bursts(watch, burst_starts(workload), t0, end)
            run.peak = max((n for _, n in watch.samples), default=0)
            self.check(tag, workload)
        except h.BenchError as exc:
            run.failed = str(exc)[:300]
        finally:
            if watch is not None:
                watch.stop()
            if controller is not None:
                stop_group(controller, 30)
                if self.args.logs:
                    self.args.logs.mkdir(parents=True, exist_ok=True)
                    log = self.bench.work / f"controller-{tag}.log"
                    shutil.copy(log, self.args.logs / log.name)
            worker.stop()
            with contextlib.suppress(Exception):
                self.s3.delete_prefix(BUCKET, f"{tag}/")
        return run

    def controller(self, strategy: str, tag: str) -> subprocess.Popen[bytes]:
        mover = self.bench.programs["mover"]
        assert mover
        log = self.bench.work / f"controller-{tag}.log"
        with open(log, "wb") as out:
            return subprocess.Popen(
                [
                    *(mover, "autoscale", "--strategy", strategy, "--interval", "5"),
                    *("--min-per-worker", "1", "--max-per-worker", "8", "-Q", self.queue),
                    *("--name", tag),
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_done(
        self, publisher: threading.Thread, ids: list[str], total: int, t0: float
    ) -> float:
        """When the last job reached ``done`` (monotonic); BenchError on a failed job."""
        limit = t0 + self.args.timeout
        while True:
            states = [self.jobs.job_state(i) for i in list(ids)]
            bad = [s for s in states if s in ("failed", "cancelled")]
            if bad:
                raise h.BenchError(f"a job ended {bad[0]}")
            if len(ids) == total and not publisher.is_alive() and all(s == "done" for s in states):
                return time.monotonic()
            if time.monotonic() > limit:
                raise h.BenchError(f"not drained after {self.args.timeout:g} s")
            time.sleep(0.2)

    def check(self, tag: str, workload: Workload) -> None:
        """Every object on the server, of its size (HEAD through boto3, not mover)."""
        sizes = [
            b.size for b in sorted(workload.bursts, key=lambda b: b.at_s) for _ in range(b.jobs)
        ]
        from botocore.exceptions import ClientError

        for n, size in enumerate(sizes):
            try:
                head = self.s3.client.head_object(Bucket=BUCKET, Key=f"{tag}/{n:04d}.bin")
            except ClientError as exc:
                raise h.BenchError(f"{tag}/{n:04d}.bin after its job was done: {exc}") from exc
            if head["ContentLength"] != size:
                raise h.BenchError(f"{tag}/{n:04d}.bin: {head['ContentLength']} bytes, not {size}")


# -- the report --------------------------------------------------------------------------------


@dataclass
class Verdict:
    strategy: str
    workload: str
    drain_ratio: float
    slot_ratio: float
    reference: str
    reaction: float | None
    reversals: int
    passed: dict[str, bool]

    @property
    def ok(self) -> bool:
        return all(self.passed.values())


def judge(workload: str, runs: Sequence[Run]) -> list[Verdict]:
    fixed = [r for r in runs if r.fixed and not r.failed]
    if not fixed:
        return []
    best = min(r.drain_s for r in fixed)
    near = [r for r in fixed if r.drain_s <= WITHIN_BEST * best]
    smallest = min(near, key=lambda r: r.fixed or 0)
    out = []
    for r in runs:
        if not r.strategy:
            continue
        if r.failed:
            out.append(
                Verdict(
                    r.strategy,
                    workload,
                    math.nan,
                    math.nan,
                    "-",
                    None,
                    0,
                    {"drain": False, "slot-seconds": False, "reaction": False, "reversals": False},
                )
            )
            continue  # fmt: skip
        reaction = r.reaction
        flips = max(r.reversals, default=0)
        passed = {
            "drain": r.drain_s <= DRAIN_RATIO * best,
            "slot-seconds": r.slot_seconds <= SLOT_RATIO * smallest.slot_seconds,
            "reaction": reaction is None or reaction <= REACTION_S,
            "reversals": flips <= REVERSALS,
        }
        out.append(
            Verdict(
                r.strategy,
                workload,
                r.drain_s / best,
                r.slot_seconds / smallest.slot_seconds,
                f"fixed {smallest.fixed}",
                reaction,
                flips,
                passed,
            )
        )
    return out


def fmt_reaction(values: Sequence[float | None]) -> str:
    return ", ".join("-" if v is None else f"{v:.1f}" for v in values) or "-"


def print_workload(workload: Workload, runs: Sequence[Run], verdicts: Sequence[Verdict]) -> None:
    print(f"\n{workload.name}: {workload.what} ({workload.jobs} jobs)")
    print(
        f"  {'run':<16} {'drain s':>8} {'slot-s':>8} {'peak':>4} {'reaction s per burst':>21} "
        f"{'reversals':>9}  load"
    )
    for r in runs:
        if r.failed:
            print(f"  {r.label:<16} FAILED: {r.failed}")
            continue
        print(
            f"  {r.label:<16} {r.drain_s:>8.1f} {r.slot_seconds:>8.1f} {r.peak:>4} "
            f"{fmt_reaction(r.reactions):>21} {','.join(map(str, r.reversals)) or '-':>9}  "
            f"{r.load}"
        )
    for v in verdicts:
        marks = " ".join(f"{k} {'PASS' if ok else 'MISS'}" for k, ok in v.passed.items())
        print(
            f"  {v.strategy:<16} drain/best-fixed {v.drain_ratio:.2f} (<= {DRAIN_RATIO}), "
            f"slot-s/{v.reference} {v.slot_ratio:.2f} (<= {SLOT_RATIO}), reaction "
            f"{'-' if v.reaction is None else f'{v.reaction:.1f} s'} (<= {REACTION_S:g}), "
            f"reversals {v.reversals} (<= {REVERSALS}): {marks}"
        )
    sys.stdout.flush()


def best_live(verdicts: Sequence[Verdict]) -> tuple[str, list[str]]:
    """The strategy that passes most criteria, then has the fewest slot-seconds."""
    score: dict[str, tuple[int, float]] = {}
    for v in verdicts:
        passed, cost = score.get(v.strategy, (0, 0.0))
        slot = v.slot_ratio if math.isfinite(v.slot_ratio) else 10.0
        score[v.strategy] = (passed + sum(v.passed.values()), cost + slot)
    ranked = sorted(score, key=lambda s: (-score[s][0], score[s][1]))
    lines = [
        f"  {s:<16} {score[s][0]} criteria passed, slot-seconds {score[s][1]:.2f} x the "
        f"reference summed over the workloads"
        for s in ranked
    ]
    return ranked[0], lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    h.add_common_args(p)
    p.set_defaults(chunk_size="8MiB")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="strategies to measure")
    p.add_argument("--fixed", default=",".join(map(str, FIXED)), help="fixed pool sizes")
    p.add_argument("--workloads", default="short,long,ramp", help="workloads to run")
    p.add_argument("--sample", type=float, default=0.5, help="seconds between pool looks")
    p.add_argument("--timeout", type=float, default=600, help="seconds a run may take")
    p.add_argument(
        "--logs", type=Path, help="copy each run's controller log into this folder (kept)"
    )
    return p.parse_args(argv)


def target_rows(verdicts: Sequence[Verdict]) -> list[h.Row]:
    """The shared target table's rows: one per strategy, workload and criterion."""
    rows = []
    for v in verdicts:
        figures = {
            "drain": (f"{v.drain_ratio:.2f}", "best fixed", f"<= {DRAIN_RATIO}x"),
            "slot-seconds": (f"{v.slot_ratio:.2f}", v.reference, f"<= {SLOT_RATIO}x"),
            "reaction": (
                "-" if v.reaction is None else f"{v.reaction:.1f} s",
                "-",
                f"<= {REACTION_S:g} s",
            ),
            "reversals": (str(v.reversals), "-", f"<= {REVERSALS} per burst"),
        }
        for criterion, ok in v.passed.items():
            value, peer, target = figures[criterion]
            ratio = value if peer != "-" else "-"
            mover = "-" if peer != "-" else value
            rows.append(
                h.Row(
                    f"{v.workload} {v.strategy} {criterion}",
                    mover,
                    peer,
                    ratio,
                    target,
                    "met" if ok else "MISSED: see the run's lines above",
                )
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = set(args.workloads.split(","))
    strategies = [s for s in args.strategies.split(",") if s]
    fixed = [int(n) for n in args.fixed.split(",") if n]

    def body(bench: h.Bench) -> None:
        print(
            f"  worker -c 1 + mover autoscale --interval 5 --min-per-worker 1 "
            f"--max-per-worker 8 (poll 0.5 s), against fixed -c {', '.join(map(str, fixed))}"
            f"; chunks {args.chunk_size}; pool looked at every {args.sample:g} s"
        )
        print(
            "  measured under the load printed beside each run: on a shared machine the "
            "figures move from run to run; read them as this run's, not as the machine's"
        )
        driver = Driver(bench, args)
        verdicts: list[Verdict] = []
        for workload in workloads(bench.quick):
            if workload.name not in wanted:
                continue
            runs = [Run(f"fixed {n}", None, n) for n in fixed]
            runs += [Run(s, s, None) for s in strategies]
            for run in runs:
                driver.run(workload, run)
                print(
                    f"  ran {workload.name:<6} {run.label:<16} "
                    f"{'FAILED ' + run.failed if run.failed else f'{run.drain_s:.1f} s'}",
                    file=sys.stderr,
                    flush=True,
                )
            found = judge(workload.name, runs)
            verdicts += found
            print_workload(workload, runs, found)
        if not verdicts:
            return
        h.print_targets(
            target_rows(verdicts),
            "targets (issue 16)",
            note="ratio: the strategy's drain time over the best fixed pool's, or its "
            "slot-seconds over those of the smallest fixed pool within 10 % of the best",
        )
        best, lines = best_live(verdicts)
        print("\nscore (criteria passed over every workload; fewer slot-seconds breaks ties):")
        print("\n".join(lines))
        print(f"best live: {best}")
        missed = [f"{v.strategy}/{v.workload}" for v in verdicts if not v.ok]
        print(f"all criteria met: {'yes' if not missed else 'no (' + ', '.join(missed) + ')'}")

    return h.run_bench(args, "mover autoscale benchmark (issue 16)", body)


if __name__ == "__main__":
    sys.exit(main())
