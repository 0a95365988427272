"""The one harness every benchmark script uses: data, runs, timing, servers, peers, report.

A benchmark script describes *cases* (what to copy, the tools that copy it, how to check and
clean a destination) and *targets* (which ratio a case must reach against which peers); this
module does the rest the same way for every script:

* **data**: a large random file and a tree of small random files (:func:`write_random`,
  :func:`make_tree`), read once before timing so every tool starts with a warm page cache
  (:func:`warm`);
* **runs**: every tool of a case runs ``rounds`` times, interleaved round by round with the
  order rotated, so that a slow spell of the shared machine hits every tool alike; each run
  writes to a fresh destination (a new key prefix or folder: rclone cannot skip anything) after
  an untimed ``sync`` that flushes what earlier runs left dirty (:func:`run_case`);
* **timing**: wall clock, client CPU and peak RSS of the program from ``os.wait4`` (of that one
  child), and the CPU the local servers spent meanwhile (:func:`run_measured`);
* **``+sync``**: mover fsyncs what it writes; ``cp``, ``rclone``, ``s5cmd``, boto3, the aws and
  swift CLIs do not (checked with strace). A peer that writes local files is therefore timed
  twice: at its exit, and with a ``sync -f DST`` (syncfs of the destination's file system) that
  follows; the ``+sync`` row is the like-for-like one that download targets name;
* **servers**: SeaweedFS (S3), Swift and Redis from ``tests/servers.py`` on free ports, started
  once per :class:`Bench` and stopped by PID at the end, also on error, Ctrl-C or SIGTERM;
* **peers**: the environment of rclone (remotes from variables, no config file), s5cmd, the aws
  CLI and the swift CLI for those servers (:meth:`S3Side.env`, :meth:`SwiftSide.env`);
* **report**: a detail table per group of cases, and one target table whose rows read
  ``case  mover  peer  ratio  target  met/missed`` (a miss with its cause when known), each
  printed with the load average (:func:`print_details`, :func:`print_targets`).

Ratios are peer seconds / mover seconds of the *best* run of each tool (best of the warm
rounds, as issue 10 asks); the detail table shows the median and every run beside it.

Standard library only at import time; boto3 and swiftclient are imported by the server sides.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: The repository this benchmark belongs to (tests/servers.py lives there).
REPO = Path(__file__).resolve().parent.parent
#: Sub-folders the small files are spread over.
SMALL_FOLDERS = 20
#: Size of each small file.
SMALL_FILE_BYTES = 16 * KiB
#: Slack over chunk size x streams that mover's peak RSS may use (interpreter, libraries).
RSS_SLACK_BYTES = 100 * MiB
#: Bytes written or read per call while making or warming data (keeps our own memory small).
WRITE_SLICE_BYTES = 4 * MiB
#: rclone remote names; remotes come from environment variables, no config file.
RCLONE_S3 = "bs3"
RCLONE_SWIFT = "bsw"
#: Default sizes: the issue's target table, and the ``--quick`` developer run.
FULL_LARGE_BYTES = 1 * GiB
FULL_SMALL_FILES = 2000
QUICK_LARGE_BYTES = 256 * MiB
QUICK_SMALL_FILES = 300
#: Peers a ``--quick`` run leaves out: the slowest to run, and never the fastest peer here.
QUICK_LEAVES_OUT = ("boto3", "aws")


class BenchError(RuntimeError):
    """Raised when a tool fails or copies something other than its source."""


# ---------------------------------------------------------------------------------------------
# the host and its programs


def find_program(name: str, override: str | None = None) -> str | None:
    """Find ``name`` next to this interpreter first (a venv's bin/ need not be on PATH)."""
    if override:
        return override if os.access(override, os.X_OK) else None
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def version(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    """The first line a program prints about its version, or ``?``."""
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        return f"? ({exc.strerror})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: above the CPU count, other work competed."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "?"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def git_revision(where: Path = REPO) -> str:
    """The short revision of ``where``, with ``+changes`` when mover's code is not committed."""
    rev = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if rev.returncode != 0:
        return f"{where} (not a git checkout)"
    dirty = subprocess.run(
        ["git", "-C", str(where), "status", "--porcelain", "--", "mover", "strategies", "workers"],
        capture_output=True,
        text=True,
        check=False,
    )
    return rev.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def fs_type(path: Path) -> str:
    """The file system type of ``path``, from the longest matching mount point."""
    best, kind = "", "?"
    with contextlib.suppress(OSError), open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], f"{parts[2]} on {parts[0]}"
    return kind


def parse_size(text: str) -> int:
    """``64MiB``, ``8M``, ``1G``, ``4096`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*(KiB|MiB|GiB|K|M|G|KB|MB|GB)?\s*", text)
    if not m:
        raise SystemExit(f"not a size: {text!r} (e.g. 64MiB)")
    unit = {"": 1, "K": KiB, "M": MiB, "G": GiB}[(m.group(2) or "")[:1]]
    return int(m.group(1)) * unit


# ---------------------------------------------------------------------------------------------
# data


def write_random(path: Path, size: int) -> None:
    """Write ``size`` random bytes (incompressible, so no file system or store can cheat)."""
    with open(path, "wb") as f:
        left = size
        while left > 0:
            step = min(left, WRITE_SLICE_BYTES)
            f.write(os.urandom(step))
            left -= step


def make_tree(tree: Path, files: int, each: int = SMALL_FILE_BYTES) -> None:
    """``files`` random files of ``each`` bytes, spread over :data:`SMALL_FOLDERS` folders."""
    for i in range(files):
        folder = tree / f"d{i % SMALL_FOLDERS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(each))


def tree_files(path: Path) -> Iterator[Path]:
    """Every file under ``path`` (or ``path`` itself), in a stable order."""
    if path.is_file():
        yield path
        return
    for dirpath, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            yield Path(dirpath, name)


def warm(path: Path) -> None:
    """Read a file or a tree once so that every tool starts with it in the page cache."""
    for p in tree_files(path):
        with open(p, "rb") as f:
            while f.read(WRITE_SLICE_BYTES):
                pass


def tree_shape(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path`` (or of the file ``path``); (0, 0) when it is missing."""
    if not path.exists():
        return 0, 0
    files = total = 0
    for p in tree_files(path):
        files += 1
        total += p.stat().st_size
    return files, total


def same_content(source: Path, copy: Path) -> bool:
    """Byte-for-byte comparison of a file or tree with its copy (an independent reader)."""
    if source.is_file():
        return copy.is_file() and filecmp.cmp(source, copy, shallow=False)
    for p in tree_files(source):
        other = copy / p.relative_to(source)
        if not other.is_file() or not filecmp.cmp(p, other, shallow=False):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# measuring one program


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


# ---------------------------------------------------------------------------------------------
# cases, tools, runs


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

    def add(self, used: Usage, extra_seconds: float = 0.0, extra_cpu: float = 0.0) -> None:
        self.seconds.append(used.seconds + extra_seconds)
        self.cpu_seconds.append(used.cpu_seconds + extra_cpu)
        self.rss_bytes.append(used.rss_bytes)
        self.server_cpu.append(used.server_cpu_seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

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
            used, sync_s, sync_cpu = one(tool, tag)
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


# ---------------------------------------------------------------------------------------------
# targets and the report


@dataclass(frozen=True)
class Target:
    """A ratio a case must reach: ``subject`` against the fastest of ``peers`` that ran.

    Attributes:
        case: the case key.
        peers: peer rows (``s5cmd+sync``); the ratio is taken against the fastest present.
        min_ratio: peer seconds / subject seconds must be at least this (best runs).
        subject: the row judged (``mover``; ``fleet`` on the fleet cases).
        cause: what is known to cause a miss (printed beside a miss with the measured CPU).
        source: which issue set the target.
    """

    case: str
    peers: tuple[str, ...]
    min_ratio: float
    subject: str = "mover"
    cause: str = ""
    source: str = "issue 10"

    def label(self) -> str:
        who = self.peers[0] if len(self.peers) == 1 else "best of " + ", ".join(self.peers)
        return f">= {self.min_ratio:g}x {who}"


@dataclass(frozen=True)
class Row:
    """One line of the target table: ``case  mover  peer  ratio  target  met/missed``."""

    case: str
    mover: str
    peer: str
    ratio: str
    target: str
    verdict: str  #: ``met``, ``MISSED: cause`` or ``skipped: why``


def judge(target: Target, results: dict[str, CaseResult]) -> Row:
    """The row of one target from the measured cases."""
    res = results.get(target.case)
    if res is None or target.subject not in res:
        return Row(target.case, "-", "-", "-", target.label(), "skipped: case not run")
    subject = res[target.subject]
    label = subject.case.label
    present = [res[p] for p in target.peers if p in res and res[p].seconds]
    if not present:
        return Row(
            label,
            subject.speed(),
            "-",
            "-",
            target.label(),
            f"skipped: {', '.join(target.peers)} not installed",
        )
    peer = min(present, key=lambda m: m.best)
    ratio = peer.best / subject.best if subject.best > 0 else float("inf")
    name = f"{subject.tool} " if target.subject != "mover" else ""
    if ratio >= target.min_ratio:
        verdict = "met"
    else:
        measured = f"CPU {subject.tool} {subject.cpu:.2f} s vs {peer.tool} {peer.cpu:.2f} s"
        if subject.server == subject.server:  # not NaN: the servers are ours
            measured += f", servers {subject.server:.2f} s vs {peer.server:.2f} s"
        verdict = "MISSED: " + "; ".join(x for x in (target.cause, measured) if x)
    return Row(
        label,
        name + subject.speed(),
        f"{peer.tool} {peer.speed()}",
        f"{ratio:.2f}x",
        target.label(),
        verdict,
    )


def _fmt_num(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN is the only value unequal to itself


def limit_row(case_label: str, figure: str, ok: bool | None, target: str, cause: str = "") -> Row:
    """A row with an absolute target (seconds, bytes, tasks/s): no peer, no ratio."""
    if ok is None:
        verdict = "skipped: not measured"
    else:
        verdict = "met" if ok else "MISSED" + (f": {cause}" if cause else "")
    return Row(case_label, figure, "-", "-", target, verdict)


def rss_row(results: dict[str, CaseResult], chunk: int, streams: int) -> Row:
    """Peak RSS of every mover run against chunk size x streams + 100 MiB (one row)."""
    bound = chunk * streams + RSS_SLACK_BYTES
    peak, where = 0, "-"
    for res in results.values():
        for m in res.values():
            is_mover = any(t.name == m.tool and t.mover for t in m.case.tools)
            if is_mover and m.rss_peak > peak:
                peak, where = m.rss_peak, f"{m.tool} on {m.case.label}"
    target = f"<= {chunk // MiB} MiB x {streams} + {RSS_SLACK_BYTES // MiB} MiB"
    if not peak:
        return limit_row("peak RSS of a copy", "-", None, target)
    return limit_row(
        "peak RSS of a copy", f"{peak / MiB:,.0f} MiB ({where})", peak <= bound, target
    )


def print_details(results: dict[str, CaseResult], title: str, out: TextIO = sys.stdout) -> None:
    """Every tool of every case: best and median seconds, speed, CPU, server CPU, RSS, runs."""
    print(f"\n{title} (load average {load_average()})", file=out)
    head = (
        f"{'case':<26} {'tool':<16} {'best s':>8} {'median':>8} {'speed (best)':>16} "
        f"{'cpu s':>6} {'srv cpu':>7} {'RSS MiB':>7}  runs (s)"
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    for res in results.values():
        for name, m in res.items():
            runs = " ".join(f"{s:.3f}" for s in m.seconds)
            print(
                f"{m.case.label:<26} {name:<16} {m.best:>8.3f} {m.median:>8.3f} "
                f"{m.speed():>16} {m.cpu:>6.2f} {_fmt_num(m.server):>7} "
                f"{m.rss_peak / MiB:>7.0f}  {runs}",
                file=out,
            )
    print(
        "best s / median: wall clock of the whole program, best and median of the rounds; "
        "cpu s: median user+system\nseconds of the client; srv cpu: median CPU seconds of the "
        "local servers during the run (same cores);\nRSS: the client's largest peak; "
        "NAME+sync: the peer's run plus a `sync -f` of its destination (mover fsyncs).",
        file=out,
    )


def print_targets(rows: Sequence[Row], title: str, out: TextIO = sys.stdout) -> None:
    """The target table: ``case  mover  peer  ratio  target  met/missed``."""
    print(f"\n{title} (load average {load_average()})", file=out)
    widths = [
        max(len(getattr(r, f)) for r in [*rows, _HEADER])
        for f in ("case", "mover", "peer", "ratio", "target")
    ]
    for r in [_HEADER, *rows]:
        cells = (r.case, r.mover, r.peer, r.ratio, r.target)
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        print(f"{line}  {r.verdict}", file=out)
    print(
        "ratio: peer seconds / mover seconds of the best warm round of each (> 1: mover is "
        "faster); a peer's +sync\nrow includes a `sync -f` of what it wrote (mover fsyncs, "
        "peers do not).",
        file=out,
    )


_HEADER = Row("case", "mover", "peer", "ratio", "target", "met/missed")


# ---------------------------------------------------------------------------------------------
# the stores, from the benchmark's side (set-up, checks, clean-up: never timed)


@dataclass
class S3Side:
    """An S3 endpoint the benchmark uses: a boto3 client for checks, peers' environment."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    pids: list[int]

    def __post_init__(self) -> None:
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
        )

    def env(self) -> dict[str, str]:
        """Variables for mover, boto3, the aws CLI, s5cmd and rclone (remote ``bs3:``)."""
        r = f"RCLONE_CONFIG_{RCLONE_S3.upper()}_"
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "S3_ENDPOINT_URL": self.endpoint_url,  # s5cmd
            r + "TYPE": "s3",
            r + "PROVIDER": "SeaweedFS",
            r + "ENDPOINT": self.endpoint_url,
            r + "ACCESS_KEY_ID": self.access_key,
            r + "SECRET_ACCESS_KEY": self.secret_key,
            r + "REGION": self.region,
            r + "FORCE_PATH_STYLE": "true",
        }

    def ensure_buckets(self, names: Sequence[str]) -> None:
        existing = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        for bucket in names:
            if bucket not in existing:
                self.client.create_bucket(Bucket=bucket)

    def shape(self, bucket: str, prefix: str) -> tuple[int, int]:
        """(objects, bytes) under ``prefix``."""
        count = total = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            for obj in page.get("Contents", []):
                count += 1
                total += obj["Size"]
        return count, total

    def check_shape(self, bucket: str, prefix: str, objects: int, total: int) -> None:
        got = self.shape(bucket, prefix)
        if got != (objects, total):
            raise BenchError(f"s3://{bucket}/{prefix}: {got}, expected ({objects}, {total})")

    def delete_prefix(self, bucket: str, prefix: str) -> None:
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

    def upload(self, path: Path, bucket: str, key: str, chunk: int, streams: int) -> None:
        """Put a large file (untimed set-up of a download's source)."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=streams
        )
        self.client.upload_file(str(path), bucket, key, Config=config)

    def upload_tree(self, tree: Path, bucket: str, prefix: str) -> None:
        """Put every file of ``tree`` under ``prefix/`` (untimed set-up), 16 at a time."""
        files = list(tree_files(tree))

        def put(p: Path) -> None:
            self.client.put_object(
                Bucket=bucket, Key=f"{prefix}/{p.relative_to(tree)}", Body=p.read_bytes()
            )

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, files))

    def read_through(self, bucket: str, key: str) -> None:
        """GET an object and throw its bytes away: warms the server's caches, untimed."""
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        while body.read(8 * MiB):
            pass


@dataclass
class SwiftSide:
    """A Swift account the benchmark uses: a swiftclient connection, peers' environment."""

    auth_url: str
    user: str
    key: str
    pids: list[int]

    def __post_init__(self) -> None:
        self.conn = self._connect()

    def _connect(self) -> Any:
        from swiftclient import client as swift_client

        return swift_client.Connection(
            authurl=self.auth_url, user=self.user, key=self.key, auth_version="1.0"
        )

    def env(self) -> dict[str, str]:
        """Variables for the swift CLI, mover and rclone (remote ``bsw:``)."""
        r = f"RCLONE_CONFIG_{RCLONE_SWIFT.upper()}_"
        return {
            "ST_AUTH": self.auth_url,
            "ST_USER": self.user,
            "ST_KEY": self.key,
            r + "TYPE": "swift",
            r + "AUTH": self.auth_url,
            r + "USER": self.user,
            r + "KEY": self.key,
        }

    def ensure_containers(self, names: Sequence[str]) -> None:
        for container in names:
            self.conn.put_container(container)
            self.conn.put_container(container + "_segments")

    def listing(self, container: str, prefix: str) -> list[dict[str, Any]]:
        _headers, objects = self.conn.get_container(container, prefix=prefix, full_listing=True)
        return objects

    def shape(self, container: str, prefix: str) -> tuple[int, int]:
        objects = self.listing(container, prefix)
        if len(objects) == 1:  # a large object: HEAD gives the SLO's/DLO's real size
            head = self.conn.head_object(container, objects[0]["name"])
            return 1, int(head["content-length"])
        return len(objects), sum(int(o["bytes"]) for o in objects)

    def check_shape(self, container: str, prefix: str, objects: int, total: int) -> None:
        got = self.shape(container, prefix)
        if got != (objects, total):
            raise BenchError(f"swift://{container}/{prefix}: {got}, expected ({objects}, {total})")

    def read_through(self, container: str, name: str) -> None:
        """GET an object and throw its bytes away (warms the server's caches, untimed)."""
        _headers, body = self.conn.get_object(container, name, resp_chunk_size=8 * MiB)
        for _piece in body:
            pass

    def empty(self, container: str) -> None:
        """Delete everything in ``container`` and its segments container, 8 connections at
        once (a swiftclient Connection is not thread-safe)."""
        from swiftclient import client as swift_client

        both = (container, container + "_segments")
        names = [(c, o["name"]) for c in both for o in self.listing(c, "")]

        def delete(batch: list[tuple[str, str]]) -> None:
            conn = self._connect()
            for c, name in batch:
                try:
                    conn.delete_object(c, name)
                except swift_client.ClientException as exc:
                    if exc.http_status != 404:
                        raise

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(delete, [names[i::8] for i in range(8)]))


# ---------------------------------------------------------------------------------------------
# where a tool reads or writes, and the command of each tool for a pair of places


@dataclass(frozen=True)
class Loc:
    """A place a tool reads or writes: a local path, ``bucket/key`` on S3 or
    ``container/name`` on Swift. A folder or prefix ends in ``/`` on the stores."""

    kind: str  #: "file", "s3" or "swift"
    path: str

    @property
    def store(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def key(self) -> str:
        return self.path.split("/", 1)[1] if "/" in self.path else ""

    def url(self) -> str:
        """mover's, s5cmd's and the aws CLI's spelling."""
        return self.path if self.kind == "file" else f"{self.kind}://{self.path}"

    def rclone(self) -> str:
        remote = {"file": "", "s3": RCLONE_S3 + ":", "swift": RCLONE_SWIFT + ":"}[self.kind]
        return remote + self.path


def _boto3_op(src: Loc, dst: Loc, recursive: bool) -> list[str] | None:
    """The arguments of peer_boto3.py for this pair, or None when it has no such operation."""
    pair = (src.kind, dst.kind)
    if pair == ("file", "s3"):
        if recursive:
            return ["small-up", src.path, dst.store, dst.key.rstrip("/")]
        return ["up", src.path, dst.store, dst.key]
    if pair == ("s3", "file"):
        if recursive:
            return ["small-down", src.store, src.key.rstrip("/"), dst.path]
        return ["down", src.store, src.key, dst.path]
    if pair == ("s3", "s3") and not recursive:
        return ["copy", src.store, src.key, dst.store, dst.key]
    return None


def peer_argv(bench: Bench, name: str, src: Loc, dst: Loc, recursive: bool) -> list[str] | None:
    """The command of peer ``name`` copying ``src`` to ``dst``, given mover's part size and
    concurrency where the peer has such settings; None when the peer cannot do that pair
    (``cp`` to S3) or is not installed."""
    prog = bench.programs.get(name) if name != "boto3" else sys.executable
    if not prog:
        return None
    streams = bench.small_streams if recursive else bench.streams
    chunk_m = f"{bench.chunk // MiB}M"
    kinds = {src.kind, dst.kind}
    if name == "cp":
        if kinds != {"file"}:
            return None
        return [prog, *(["-r"] if recursive else []), src.path, dst.path]
    if name == "rclone":
        verb = "copy" if recursive else "copyto"
        if kinds == {"file"}:  # rclone's defaults, as before the harness
            return [prog, verb, "-q", "--ignore-times", src.path, dst.path]
        argv = [prog, verb, "-q", "--transfers", str(streams)]
        if not recursive and "s3" in kinds and dst.kind == "s3":
            argv += ["--s3-upload-concurrency", str(streams), "--s3-chunk-size", chunk_m]
        if not recursive and dst.kind == "swift":
            argv += ["--swift-chunk-size", chunk_m]
        if not recursive and dst.kind == "file":
            argv += ["--multi-thread-streams", str(streams), "--multi-thread-chunk-size", chunk_m]
        return [*argv, src.rclone(), dst.rclone()]
    if name in ("s5cmd", "aws"):
        if "swift" in kinds or kinds == {"file"}:
            return None
        if name == "aws":
            flags = ["--recursive"] if recursive else []
            return [prog, "s3", "cp", "--quiet", *flags, src.url(), dst.url()]
        # s5cmd copies trees with a wildcard: 'dir/*' or 's3://b/p/*' into a folder or prefix
        source = src.url().rstrip("/") + "/*" if recursive else src.url()
        target = dst.url().rstrip("/") + "/" if recursive else dst.url()
        parts = ["--concurrency", str(streams), "--part-size", str(bench.chunk // MiB)]
        return [prog, "--log", "error", "cp", *([] if recursive else parts), source, target]
    if name == "boto3":
        op = _boto3_op(src, dst, recursive)
        if op is None:
            return None
        script = str(Path(__file__).resolve().parent / "peer_boto3.py")
        return [prog, script, *op, "--chunk", str(bench.chunk), "--streams", str(streams)]
    if name == "swift":
        if src.kind == "file" and dst.kind == "swift":
            threads = ["--object-threads" if recursive else "--segment-threads", str(streams)]
            large = [] if recursive else ["--use-slo", "--segment-size", chunk_m]
            obj = ["--object-name", dst.key.rstrip("/")]
            return [prog, "-q", "upload", *large, *threads, *obj, dst.store, src.path]
        if src.kind == "swift" and dst.kind == "file" and not recursive:
            return [prog, "-q", "download", src.store, src.key, "-o", dst.path]
        return None
    raise BenchError(f"unknown peer {name!r}")


def transfer_case(
    bench: Bench,
    key: str,
    label: str,
    src: Loc,
    dst: Callable[[str], Loc],
    peers: Sequence[str],
    *,
    recursive: bool = False,
    reference: Path | None = None,
    before: Callable[[], None] = lambda: None,
    total_bytes: int | None = None,
    objects: int | None = None,
    movers: Sequence[tuple[str, Sequence[str], dict[str, str]]] = (("mover", (), {}),),
) -> Case:
    """A case copying ``src`` to a fresh ``dst(tag)`` per run: mover and every installed peer.

    ``movers`` names the mover rows, each with extra ``mover copy`` options and environment
    (the fleet cases run ``embedded`` and ``fleet``); peers are left out with ``--quick``
    where :data:`QUICK_LEAVES_OUT` says.

    ``reference`` is the local data ``src`` holds (its source file or tree): each destination
    is checked against it, by shape on every run and byte for byte on each tool's first round
    where the destination is local. Large destinations are removed after each run, small-object
    ones kept until the end (deleting thousands of objects takes long; they are tiny).
    """
    ref = reference if reference is not None else Path(src.path)
    n_objects = objects if objects is not None else (bench.small_files if recursive else 1)
    n_bytes = total_bytes if total_bytes is not None else total_of(ref)
    tools = [
        Tool(
            name,
            lambda t, x=tuple(extra): bench.mover_argv(
                *x, src.url(), dst(t).url(), recursive=recursive
            ),
            mover=True,
            env=dict(env),
        )
        for name, extra, env in movers
    ]
    for name in peers:
        if bench.quick and name in QUICK_LEAVES_OUT:
            continue
        probe = peer_argv(bench, name, src, dst("probe"), recursive)
        if probe is None:
            continue
        local = dst("probe").kind == "file"
        tools.append(
            Tool(
                name,
                lambda t, n=name: peer_argv(bench, n, src, dst(t), recursive) or [],
                local_dst=(lambda t: Path(dst(t).path)) if local else None,
            )
        )

    def prepare(tag: str) -> None:
        where = dst(tag)
        if where.kind == "file":
            Path(where.path).parent.mkdir(parents=True, exist_ok=True)

    def check(tag: str, first: bool) -> None:
        bench.check_loc(dst(tag), n_objects, n_bytes, ref if first else None)

    def clean(tag: str) -> None:
        bench.clean_loc(dst(tag), large=not recursive)

    return Case(
        key,
        label,
        n_bytes,
        n_objects,
        tools,
        check=check,
        clean=clean,
        prepare=prepare,
        before=before,
        server_pids=bench.server_pids(src, dst("probe")),
        unit="obj/s" if recursive else ("s" if n_bytes < MiB else "MiB/s"),
    )


def total_of(path: Path) -> int:
    """Bytes of a file or tree."""
    return tree_shape(path)[1]


# ---------------------------------------------------------------------------------------------
# one benchmark run: options, work folder, servers, data, peers


def add_common_args(p: argparse.ArgumentParser, rounds: int = 3) -> None:
    """Options every script takes (scripts add their own)."""
    p.add_argument("--dir", help="make the temporary work folder under this path (default /tmp)")
    p.add_argument(
        "--runs", type=int, default=rounds, help=f"warm rounds per tool; the best counts ({rounds})"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"developer run: {QUICK_LARGE_BYTES // MiB} MiB, {QUICK_SMALL_FILES} objects, 1 round",
    )
    p.add_argument("--streams", type=int, default=4, help="mover --streams (default 4)")
    p.add_argument(
        "--small-streams",
        type=int,
        default=32,
        help="mover --streams on many small objects, and the peers' transfers (default 32)",
    )
    p.add_argument("--chunk-size", default="64MiB", help="mover --chunk-size (default 64MiB)")
    p.add_argument("--only", default="", help="comma-separated case keys (default: all)")
    p.add_argument("--skip", default="", help="comma-separated tools to leave out (rclone,...)")
    p.add_argument("--no-rclone", action="store_true", help="same as --skip rclone")
    p.add_argument("--warmup", action="store_true", help="one untimed run per case first")
    p.add_argument("--mover", help="path of the mover console script (default: beside python)")
    p.add_argument("--rclone", help="path of rclone (default: beside python, then PATH)")
    p.add_argument("--save", type=Path, help="also write the report (stdout) to this file")
    p.add_argument("--s3-endpoint", help="use this running S3 server instead of starting one")
    p.add_argument("--s3-access-key", default="testkey")
    p.add_argument("--s3-secret-key", default="testsecret")
    p.add_argument("--s3-region", default="us-east-1")
    p.add_argument("--swift-auth", help="use this running Swift (v1 auth URL) instead")
    p.add_argument("--swift-user", default="test:tester")
    p.add_argument("--swift-key", default="testing")


#: Programs the benchmark may run, beside the interpreter first, then on PATH.
PROGRAMS = ("mover", "cp", "sync", "rclone", "s5cmd", "aws", "swift", "weed")


class _Tee:
    """stdout that is also written to a file (``--save``)."""

    def __init__(self, stream: TextIO, path: Path) -> None:
        self.stream = stream
        self.file = open(path, "w")  # noqa: SIM115 - closed by Bench.__exit__

    def write(self, text: str) -> int:
        self.file.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.file.flush()
        self.stream.flush()


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class Bench:
    """One benchmark run: work folder, environment, programs, servers, shared data.

    A context manager: on exit (also after an error, Ctrl-C or SIGTERM) the servers it started
    are stopped by PID and the work folder is removed. Servers and data are made on first use
    and shared by every case of the run (``bench_all`` runs all scripts' cases on one set).
    """

    def __init__(self, args: argparse.Namespace, title: str) -> None:
        self.args = args
        self.title = title
        self.quick: bool = bool(getattr(args, "quick", False))
        self.rounds: int = 1 if self.quick else int(args.runs)
        if self.rounds < 1:
            raise SystemExit("--runs must be at least 1")
        self.streams: int = int(args.streams)
        self.small_streams: int = int(getattr(args, "small_streams", 32))
        self.chunk_size: str = str(args.chunk_size)
        self.chunk: int = parse_size(self.chunk_size)
        self.large_bytes = QUICK_LARGE_BYTES if self.quick else FULL_LARGE_BYTES
        self.small_files = QUICK_SMALL_FILES if self.quick else FULL_SMALL_FILES
        self.only = {k for k in str(getattr(args, "only", "") or "").split(",") if k}
        skip = {k for k in str(getattr(args, "skip", "") or "").split(",") if k}
        if getattr(args, "no_rclone", False):
            skip.add("rclone")
        overrides = {"mover": getattr(args, "mover", None), "rclone": getattr(args, "rclone", None)}
        self.programs: dict[str, str | None] = {
            name: None if name in skip else find_program(name, overrides.get(name))
            for name in PROGRAMS
        }
        if not self.programs["mover"] or not self.programs["sync"]:
            raise SystemExit("need mover (installed in this interpreter's env) and sync")
        self.work = Path(tempfile.mkdtemp(prefix="mover-bench-", dir=getattr(args, "dir", None)))
        self.env = dict(os.environ)
        self.env["MOVER_STATE_DIR"] = str(self.work / "state")  # job records die with the folder
        self.env["RCLONE_CONFIG"] = str(self.work / "rclone.conf")  # none: remotes from env
        self.env["MOVER_CONFIG"] = str(self.work / "mover.toml")
        (self.work / "mover.toml").write_text("")
        self.env.pop("MOVER_BROKER_URL", None)  # the embedded executor unless a case says
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))  # tests.servers
        self.stack = ExitStack()
        self._s3: S3Side | None = None
        self._swift: SwiftSide | None = None
        self._redis: Any = None
        self._large: Path | None = None
        self._tree: Path | None = None
        self._tee: _Tee | None = None
        self.load_start = load_average()

    # -- life cycle --

    def __enter__(self) -> Bench:
        signal.signal(signal.SIGTERM, _terminate)
        if getattr(self.args, "save", None):
            self._tee = _Tee(sys.stdout, self.args.save)
            sys.stdout = self._tee  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stack.close()  # servers and workers stopped by PID before the folder goes
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
            if self._tee is not None:
                sys.stdout = self._tee.stream
                self._tee.file.close()

    def wants(self, key: str) -> bool:
        """Whether case ``key`` is to run (``--only``)."""
        return not self.only or key in self.only

    # -- servers --

    def s3(self) -> S3Side:
        """The S3 endpoint: ``--s3-endpoint``, or a SeaweedFS started now (once)."""
        if self._s3 is None:
            a = self.args
            if getattr(a, "s3_endpoint", None):
                self._s3 = S3Side(a.s3_endpoint, a.s3_access_key, a.s3_secret_key, a.s3_region, [])
            else:
                from tests.servers import SeaweedS3Server

                server = self.stack.enter_context(SeaweedS3Server())
                self._s3 = S3Side(
                    server.endpoint_url,
                    server.access_key,
                    server.secret_key,
                    server.region,
                    server.pids,
                )
                signal.signal(signal.SIGTERM, _terminate)  # after the server's own handler
            self.env.update(self._s3.env())
            self._write_aws_config()
        return self._s3

    def swift(self) -> SwiftSide:
        """The Swift account: ``--swift-auth``, or an all-in-one Swift started now (once)."""
        if self._swift is None:
            a = self.args
            if getattr(a, "swift_auth", None):
                self._swift = SwiftSide(a.swift_auth, a.swift_user, a.swift_key, [])
            else:
                from tests.servers import SwiftServer

                server = self.stack.enter_context(SwiftServer())
                self._swift = SwiftSide(server.auth_url, server.user, server.key, server.pids)
                signal.signal(signal.SIGTERM, _terminate)
            self.env.update(self._swift.env())
        return self._swift

    def redis_url(self) -> str:
        """A private redis-server, started now (once)."""
        if self._redis is None:
            from tests.servers import RedisServer

            self._redis = self.stack.enter_context(RedisServer())
            signal.signal(signal.SIGTERM, _terminate)
        return str(self._redis.url)

    def _write_aws_config(self) -> None:
        """The aws CLI's config: path style, mover's part size and concurrency."""
        chunk_mb = self.chunk // MiB
        (self.work / "aws.cfg").write_text(
            f"[default]\nregion = {self.s3().region}\ns3 =\n  addressing_style = path\n"
            f"  max_concurrent_requests = {self.streams}\n"
            f"  multipart_chunksize = {chunk_mb}MB\n  multipart_threshold = {chunk_mb}MB\n"
        )
        self.env["AWS_CONFIG_FILE"] = str(self.work / "aws.cfg")
        self.env["AWS_SHARED_CREDENTIALS_FILE"] = str(self.work / "aws.credentials")  # none

    # -- data --

    def large(self) -> Path:
        """The large random file (1 GiB; 256 MiB with --quick), made once."""
        if self._large is None:
            self._large = self.work / "src-large.bin"
            write_random(self._large, self.large_bytes)
        return self._large

    def tree(self) -> Path:
        """The tree of small random files (2,000 x 16 KiB; 300 with --quick), made once."""
        if self._tree is None:
            self._tree = self.work / "src-small"
            make_tree(self._tree, self.small_files)
        return self._tree

    def large_label(self) -> str:
        n = self.large_bytes
        return f"{n // GiB} GiB" if n % GiB == 0 else f"{n // MiB} MiB"

    def small_label(self) -> str:
        return f"{self.small_files:,} x {SMALL_FILE_BYTES // KiB} KiB"

    def dst(self, tag: str, name: str) -> Path:
        """A fresh local destination for run ``tag`` (``transfer_case`` makes its folder)."""
        return self.work / "dst" / tag / name

    def clean_dst(self, tag: str) -> None:
        shutil.rmtree(self.work / "dst" / tag, ignore_errors=True)

    def server_pids(self, *locs: Loc) -> list[int]:
        """The processes of the local servers that ``locs`` live on (their CPU is charged)."""
        pids: list[int] = []
        kinds = {loc.kind for loc in locs}
        if "s3" in kinds and self._s3 is not None:
            pids += self._s3.pids
        if "swift" in kinds and self._swift is not None:
            pids += self._swift.pids
        return pids

    def check_loc(self, loc: Loc, objects: int, total: int, reference: Path | None) -> None:
        """Raise BenchError unless ``loc`` holds ``objects`` objects of ``total`` bytes, and
        (for a local ``loc`` and a ``reference``) the same bytes as the reference."""
        if loc.kind == "s3":
            self.s3().check_shape(loc.store, loc.key, objects, total)
        elif loc.kind == "swift":
            self.swift().check_shape(loc.store, loc.key, objects, total)
        else:
            path = Path(loc.path)
            if tree_shape(path) != (objects, total):
                raise BenchError(f"{path}: {tree_shape(path)}, expected ({objects}, {total})")
            if reference is not None and not same_content(reference, path):
                raise BenchError(f"{path} differs from its source {reference}")

    def clean_loc(self, loc: Loc, large: bool) -> None:
        """Remove a run's destination: local ones always, large objects on the stores."""
        if loc.kind == "file":
            shutil.rmtree(Path(loc.path).parent, ignore_errors=True)
        elif large and loc.kind == "s3":
            self.s3().delete_prefix(loc.store, loc.key)
        elif large and loc.kind == "swift":
            self.swift().empty(loc.store)

    # -- commands --

    def mover_argv(self, *args: str, recursive: bool = False, json_out: bool = True) -> list[str]:
        """``mover copy --quiet [--json] --streams N --chunk-size C [-r] ARGS``; a recursive
        copy gets ``--small-streams``."""
        mover = self.programs["mover"]
        assert mover
        return [
            mover,
            "copy",
            "--quiet",
            *(["--json"] if json_out else []),
            "--streams",
            str(self.small_streams if recursive else self.streams),
            "--chunk-size",
            self.chunk_size,
            *(["-r"] if recursive else []),
            *args,
        ]

    def run_cases(self, cases: Sequence[Case]) -> dict[str, CaseResult]:
        """Run each wanted case (see :func:`run_case`)."""
        warmup = bool(getattr(self.args, "warmup", False))
        return {
            c.key: run_case(c, self.env, self.rounds, warmup) for c in cases if self.wants(c.key)
        }

    def header(self) -> None:
        """What ran where: host, versions, sizes, command, load."""
        p = self.programs
        print(f"{self.title}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        print(f"  host: {platform.node()}, {os.cpu_count()} CPU(s), {platform.platform()}")
        print(f"  work folder: {self.work} ({fs_type(self.work)})")
        print(f"  mover: {version([str(p['mover']), '--version'])} (source {git_revision()})")
        for name, argv in (
            ("rclone", ["version"]),
            ("s5cmd", ["version"]),
            ("aws", ["--version"]),
            ("swift", ["--version"]),
            ("cp", ["--version"]),
        ):
            path = p[name]
            print(f"  {name}: {version([path, *argv]) if path else 'not found, skipped'}")
        print(
            f"  python {sys.version.split()[0]}; best of {self.rounds} round(s); "
            f"{self.large_label()} and {self.small_label()}; mover --streams {self.streams} "
            f"--chunk-size {self.chunk_size} (--streams {self.small_streams} on small objects); "
            "peers given the same where they have the setting"
        )
        print(f"  command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
        print(f"  load average at start: {self.load_start} ({os.cpu_count()} CPUs)")
        print("  noisy: client and servers share the cores; read the load beside every table")
        sys.stdout.flush()


def run_script(
    args: argparse.Namespace,
    title: str,
    cases: Callable[[Bench], Sequence[Case]],
    rows: Callable[[Bench, dict[str, CaseResult]], Sequence[Row]],
) -> int:
    """A whole benchmark script: header, cases, detail table, target table (with the RSS row).

    Returns the exit status: 0, or 1 after a tool failed or copied something wrong.
    """
    try:
        with Bench(args, title) as bench:
            bench.header()
            results = bench.run_cases(cases(bench))
            print_details(results, "cases")
            found = [*rows(bench, results), rss_row(results, bench.chunk, bench.streams)]
            print_targets(found, "targets")
    except BenchError as exc:
        print(f"{Path(sys.argv[0]).name}: {exc}", file=sys.stderr)
        return 1
    return 0
