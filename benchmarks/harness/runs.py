"""Measuring programs and running cases: interleaved rounds, fresh destinations, +sync."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .base import BenchError, KiB, MiB
from .host import find_program


@dataclass(frozen=True)
class Usage:
    """What one run of a program cost."""

    seconds: float  #: wall clock, start to exit
    cpu_seconds: float  #: user + system time of the program (and the children it waited for)
    rss_bytes: int  #: peak resident set (wait4's ru_maxrss)
    stdout: str
    server_cpu_seconds: float  #: CPU the local servers spent meanwhile (nan if not ours)


def process_cpu(pids: Sequence[int]) -> float:
    """User + system seconds of the processes ``pids`` so far, from /proc (nan if none)."""
    if not pids:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / ticks


def run_measured(
    argv: Sequence[str], env: dict[str, str], server_pids: Sequence[int] = ()
) -> Usage:
    """Run a program to completion and say what it cost; a failure stops the benchmark.

    ``os.wait4`` gives the rusage of that one child, where ``RUSAGE_CHILDREN`` would mix in
    every run so far. stdout is kept (mover's ``--json`` summary); stderr is quoted on failure.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        server_before = process_cpu(server_pids)
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=env, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        server_cpu = process_cpu(server_pids) - server_before
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        if proc.returncode != 0:
            text = err.read().decode(errors="replace").strip()[-2000:]
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {text}")
    return Usage(
        seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * KiB, stdout, server_cpu
    )


def run(argv: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Run a program untimed; a failure stops the benchmark with its stderr."""
    done = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")


def _nothing(tag: str) -> None:
    """The default check, clean-up and preparation: nothing to do."""


@dataclass(frozen=True)
class Tool:
    """One program on one case.

    Attributes:
        name: the row's name (``mover``, ``s5cmd``, ``fleet``).
        argv: the command for one run, given the run's destination tag (fresh each run).
        mover: a mover run: its ``--json`` summary (if printed) must say ``done``.
        local_dst: for a peer that writes local files without fsync: the path its run writes,
            synced (``sync -f``) and timed after it, for the ``NAME+sync`` row.
        env: variables added to the bench's environment for this tool only.
    """

    name: str
    argv: Callable[[str], list[str]]
    mover: bool = False
    local_dst: Callable[[str], Path] | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Case:
    """One thing to copy, the tools that copy it, and how to check and clean a destination.

    Attributes:
        key: short name for ``--only`` and targets (``s3-down``).
        label: what tables print (``1 GiB S3 -> file``).
        total_bytes, objects: what one run moves (for MiB/s and objects/s).
        tools: in the order of the first round.
        check: ``check(tag, first)`` raises BenchError when run ``tag`` left a wrong copy;
            ``first`` is True on a tool's first round (the place for a byte-for-byte check).
        clean: removes run ``tag``'s destination (untimed), after the check.
        prepare: makes what run ``tag`` needs before it starts (untimed).
        before: runs once before the rounds (warm the source, read it through the server).
        server_pids: processes whose CPU is charged to the run (the local servers).
        unit: how the tables show speed: ``MiB/s`` (large), ``obj/s`` (many objects) or ``s``.
    """

    key: str
    label: str
    total_bytes: int
    objects: int
    tools: list[Tool]
    check: Callable[[str, bool], None] = lambda tag, first: None
    clean: Callable[[str], None] = _nothing
    prepare: Callable[[str], None] = _nothing
    before: Callable[[], None] = lambda: None
    server_pids: Sequence[int] = ()
    unit: str = "MiB/s"


@dataclass
class Measure:
    """The runs of one tool (or ``tool+sync``) on one case."""

    tool: str
    case: Case
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    rss_bytes: list[int] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)  #: mover's --json
    failures: list[str] = field(default_factory=list)  #: errors of runs that failed

    def add(self, used: Usage, extra_seconds: float = 0.0, extra_cpu: float = 0.0) -> None:
        self.seconds.append(used.seconds + extra_seconds)
        self.cpu_seconds.append(used.cpu_seconds + extra_cpu)
        self.rss_bytes.append(used.rss_bytes)
        self.server_cpu.append(used.server_cpu_seconds)

    @property
    def best(self) -> float:
        return min(self.seconds) if self.seconds else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else float("nan")

    @property
    def server(self) -> float:
        return statistics.median(self.server_cpu) if self.server_cpu else float("nan")

    @property
    def rss_peak(self) -> int:
        return max(self.rss_bytes) if self.rss_bytes else 0

    def speed(self, seconds: float | None = None) -> str:
        """The best run as the case's unit shows it (MiB/s, objects/s or seconds)."""
        s = self.best if seconds is None else seconds
        if self.case.unit == "s":
            return f"{s:.3f} s"
        if self.case.unit == "obj/s":
            return f"{self.case.objects / s:,.0f} obj/s" if s > 0 else "inf"
        return f"{self.case.total_bytes / MiB / s:,.0f} MiB/s" if s > 0 else "inf"


#: The runs of a case, by tool name (``tool+sync`` beside each peer with a local destination).
CaseResult = dict[str, Measure]


def _mover_summary(tool: Tool, case: Case, used: Usage) -> dict[str, Any] | None:
    text = used.stdout.strip()
    if not text.startswith("{"):
        return None
    summary = json.loads(text)
    if summary.get("state") not in (None, "done"):
        raise BenchError(f"{tool.name} on {case.label}: job {summary.get('state')}")
    return summary


def run_case(
    case: Case,
    env: dict[str, str],
    rounds: int,
    warmup: bool = False,
    log: TextIO = sys.stderr,
) -> CaseResult:
    """Run every tool of ``case`` ``rounds`` times, interleaved, and return their measures.

    The order rotates each round, so no tool always follows a clean-up (after another tool's
    run the server's caches are warmer). With ``warmup`` the first tool runs once untimed
    before the rounds (the first run after a server start is slower for every client).
    """
    results: CaseResult = {}
    for tool in case.tools:
        results[tool.name] = Measure(tool.name, case)
        if tool.local_dst is not None:
            results[tool.name + "+sync"] = Measure(tool.name + "+sync", case)
    sync = find_program("sync") or "sync"
    case.before()

    def one(tool: Tool, tag: str) -> tuple[Usage, float, float]:
        case.prepare(tag)
        run([sync], env)  # what earlier runs left dirty, untimed
        tool_env = {**env, **tool.env} if tool.env else env
        used = run_measured(tool.argv(tag), tool_env, case.server_pids)
        flushed = (0.0, 0.0)
        if tool.local_dst is not None:
            synced = run_measured([sync, "-f", str(tool.local_dst(tag))], env)
            flushed = (synced.seconds, synced.cpu_seconds)
        return used, *flushed

    if warmup and case.tools:
        first = case.tools[0]
        one(first, f"warmup-{first.name}")
        case.check(f"warmup-{first.name}", False)
        case.clean(f"warmup-{first.name}")
    for index in range(rounds):
        shift = index % len(case.tools)
        for tool in case.tools[shift:] + case.tools[:shift]:
            tag = f"{tool.name}-{index}"
            try:
                used, sync_s, sync_cpu = one(tool, tag)
            except BenchError as exc:
                # A failed run is a result too (a timeout or a 500 on a loaded machine): it is
                # reported in the tables and the targets, and the other runs go on.
                for name in (tool.name, tool.name + "+sync"):
                    if name in results:
                        results[name].failures.append(str(exc))
                print(f"  {case.key:<14} {tool.name:<12} FAILED: {exc}", file=log, flush=True)
                with contextlib.suppress(Exception):
                    case.clean(tag)
                continue
            results[tool.name].add(used)
            if tool.mover:
                summary = _mover_summary(tool, case, used)
                if summary is not None:
                    results[tool.name].summaries.append(summary)
            if tool.local_dst is not None:
                results[tool.name + "+sync"].add(used, sync_s, sync_cpu)
            case.check(tag, index == 0)
            case.clean(tag)
            print(
                f"  {case.key:<14} {tool.name:<12} round {index + 1}: {used.seconds:8.3f} s",
                file=log,
                flush=True,
            )
    return results
