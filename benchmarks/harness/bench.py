"""One benchmark run: options, work folder, environment, servers, shared data."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from .base import (
    FULL_LARGE_BYTES,
    FULL_SMALL_FILES,
    QUICK_LARGE_BYTES,
    QUICK_SMALL_FILES,
    REPO,
    SMALL_FILE_BYTES,
    BenchError,
    GiB,
    KiB,
    MiB,
)
from .data import make_tree, same_content, tree_shape, write_random
from .host import find_program, fs_type, git_revision, load_average, parse_size, version
from .peers import Loc
from .report import Row, print_details, print_targets, rss_row
from .runs import Case, CaseResult, run_case
from .stores import S3Side, SwiftSide


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


def parser(doc: str | None, rounds: int = 3) -> argparse.ArgumentParser:
    """A script's parser: the first paragraph of its docstring as description, and the options
    every script takes (:func:`add_common_args`); the script adds its own."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    add_common_args(p, rounds)
    return p


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
        # a script with its own size option passes ``large_bytes`` (bench_metrics)
        self.large_bytes: int = getattr(args, "large_bytes", None) or (
            QUICK_LARGE_BYTES if self.quick else FULL_LARGE_BYTES
        )
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
        # mover runs as installed, from its compiled modules (a sandbox may forbid writing
        # them: every command would compile ~100 modules again, 0.1-0.2 s of the tiny case)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))  # tests.servers
        self.stack = ExitStack()
        self._s3: S3Side | None = None
        self._swift: SwiftSide | None = None
        self._redis: Any = None
        self._large: Path | None = None
        self._tree: Path | None = None
        self._tiny: Path | None = None
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

    def tiny(self) -> Path:
        """A 1-byte file (what a command costs whatever it copies), made once."""
        if self._tiny is None:
            self._tiny = self.work / "tiny.bin"
            self._tiny.write_bytes(b"x")
        return self._tiny

    def large_label(self) -> str:
        n = self.large_bytes
        return f"{n // GiB} GiB" if n % GiB == 0 else f"{n // MiB} MiB"

    def small_label(self) -> str:
        return f"{self.small_files:,} x {SMALL_FILE_BYTES // KiB} KiB"

    def dst(self, tag: str, name: str) -> Path:
        """A fresh local destination for run ``tag`` (``transfer_case`` makes its folder)."""
        return self.work / "dst" / tag / name

    def fresh_local(self, name: str) -> Callable[[str], Loc]:
        """Run ``tag``'s local destination ``name`` (a file or folder in :meth:`dst`)."""
        return lambda tag: Loc("file", str(self.dst(tag, name)))

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


def run_bench(args: argparse.Namespace, title: str, body: Callable[[Bench], None]) -> int:
    """``body`` on a :class:`Bench` of ``args``, after the header; servers, workers and the work
    folder are gone when it returns.

    Returns the exit status: 0, or 1 after a tool failed or copied something wrong (said on
    stderr, after the script's name).
    """
    try:
        with Bench(args, title) as bench:
            bench.header()
            body(bench)
    except BenchError as exc:
        print(f"{Path(sys.argv[0]).name}: {exc}", file=sys.stderr)
        return 1
    return 0


def run_script(
    args: argparse.Namespace,
    title: str,
    cases: Callable[[Bench], Sequence[Case]],
    rows: Callable[[Bench, dict[str, CaseResult]], Sequence[Row]],
) -> int:
    """A whole benchmark script: header, cases, detail table, target table (with the RSS row);
    the exit status of :func:`run_bench`."""

    def body(bench: Bench) -> None:
        results = bench.run_cases(cases(bench))
        print_details(results, "cases")
        found = [*rows(bench, results), rss_row(results, bench.chunk, bench.streams)]
        print_targets(found, "targets")

    return run_bench(args, title, body)
