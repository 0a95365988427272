"""A fleet for the benchmarks: ``mover worker`` processes on the bench's private Redis."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .base import BenchError

if TYPE_CHECKING:
    from .bench import Bench

#: What the workers consume: not ``mover.memory``, where bench_fleet's submit case parks its
#: job (a queue no worker reads, so that job is published and never run).
WORKER_QUEUES = "mover,celery,mover.file,mover.s3"


class Fleet:
    """``count`` ``mover worker`` processes (prefork, ``-c concurrency``) on the bench's private
    Redis, started now and ready (answering a ping); stopped by PID when the bench ends."""

    def __init__(self, bench: Bench, count: int, concurrency: int) -> None:
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
                        raise BenchError(f"worker died:\n{log.read_text()[-3000:]}")
                seen = {name for reply in app.control.ping(timeout=1.0) or [] for name in reply}
                if want <= seen:
                    return
                if time.monotonic() > deadline:
                    raise BenchError(f"workers not ready: {sorted(seen)}")
        finally:
            app.close()

    def pids(self) -> list[int]:
        """The workers' processes (main and pool children) and the private Redis's: what a
        fleet run costs beyond the command, charged to every run of a fleet case so that the
        CPU columns compare the whole of each executor."""
        pids = [p.pid for p in self.procs]
        for pid in list(pids):
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    pids += [int(x) for x in f.read().split()]
            except OSError:
                continue
        redis = self.bench._redis
        return pids + (list(redis.pids) if redis is not None else [])

    def stop(self) -> None:
        """Stop the workers (see :func:`stop_groups`)."""
        stop_groups(self.procs)
        self.procs.clear()


def stop_groups(procs: Sequence[subprocess.Popen[bytes]], grace_s: float = 15) -> None:
    """SIGTERM the process group of each of ``procs`` (started with ``start_new_session``),
    then SIGKILL a group whose leader has not exited after ``grace_s``: by PID only."""
    for p in procs:
        _signal_group(p, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait(5)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
