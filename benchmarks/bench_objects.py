#!/usr/bin/env python3
"""Object-store benchmark: ``mover copy`` against rclone, boto3 (s3transfer), the aws CLI and the
``swift`` CLI, on a local SeaweedFS (S3) and a local OpenStack Swift, side by side in one run.

Cases (1 GiB and 2,000 x 16 KiB by default; 256 MiB and 300 with ``--quick``):

* S3: file -> S3, S3 -> file, S3 -> S3 (same endpoint, another bucket), a folder of small files
  -> S3 (recursive);
* Swift: file -> Swift, Swift -> file, a folder of small files -> Swift.

Every tool writes to a fresh destination each run (a new key prefix or a new local folder, so
rclone cannot skip anything), the local source is in the page cache (read once first), and the
median of ``--runs`` runs is reported. Tools run one after another, interleaved run by run, so
that drift (the server's caches, other work on the machine) hits all of them alike. Large
destinations are deleted after each run (untimed); small-file prefixes are kept until the end.

Peers are given mover's stream count and part size where they have such settings (rclone
``--s3-upload-concurrency``/``--s3-chunk-size``/``--multi-thread-streams``/``--transfers``,
s3transfer's ``TransferConfig``, the aws CLI's ``max_concurrent_requests``/``multipart_chunksize``,
the swift CLI's ``--segment-threads``/``--object-threads``/``--segment-size``); rclone also runs
with its defaults ("rclone-dflt") where they differ. "mover-nosign" is mover through a configured
store with ``payload_signing_enabled = false`` (no SigV4 sha256 of each body over plain HTTP).

Downloads: mover fsyncs what it writes; the peers do not, so each peer download is also timed
with a ``sync -f`` of its destination that follows ("+sync" rows), and the download targets are
judged on those, as in bench_local.

Ratios are peer seconds / mover seconds (> 1: mover is faster). Targets (issue 3): >= 1.2x
rclone and >= 1.0x boto3 on large objects up and down; >= 1.0x rclone on small objects; S3 to
S3 no slower than rclone with zero bytes through mover; peak RSS of ``mover copy`` within chunk
size x streams + 100 MiB.

Servers: started here from tests/servers.py (free ports, temporary folders, stopped by PID at the
end), unless ``--s3-endpoint`` / ``--swift-auth`` name running ones. Client and servers share the
machine's cores, so the figures are noisy: read medians, and the "srv cpu" column (CPU seconds
the local servers spent during the run).
"""

from __future__ import annotations

import argparse
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
import textwrap
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

REPO = Path(__file__).resolve().parent.parent
#: Sub-folders the small files are spread over.
SMALL_FOLDERS = 20
SMALL_FILE_BYTES = 16 * KiB
#: Slack over chunk size x streams that mover's peak RSS may use (interpreter, libraries).
RSS_SLACK_BYTES = 100 * MiB
DEFAULT_CHUNK_BYTES = 64 * MiB
WRITE_SLICE_BYTES = 4 * MiB
#: Targets from the issue, as peer seconds / mover seconds.
TARGET_LARGE_VS_RCLONE = 1.2
TARGET_LARGE_VS_BOTO3 = 1.0
TARGET_SMALL_VS_RCLONE = 1.0
TARGET_COPY_VS_RCLONE = 1.0

#: Buckets and containers the benchmark uses (created at start).
S3_BUCKETS = ("bench-src", "bench-up", "bench-copy", "bench-small")
SWIFT_CONTAINERS = ("bench-swsrc", "bench-sw", "bench-swsmall")
#: rclone remote names (configured by environment variables, no config file).
RCLONE_S3 = "bs3"
RCLONE_SWIFT = "bsw"


class BenchError(RuntimeError):
    """Raised when a tool fails or copies something other than its source."""


# ---------------------------------------------------------------------------------------------
# measuring


@dataclass(frozen=True)
class Usage:
    """What one run of a program cost."""

    seconds: float  #: wall clock, start to exit
    cpu_seconds: float  #: user + system time of the program (and its children)
    rss_bytes: int  #: peak resident set (wait4's ru_maxrss)
    stdout: str
    server_cpu_seconds: float  #: CPU the local servers spent meanwhile (nan if not ours)


def process_cpu(pids: Sequence[int]) -> float:
    """User + system seconds of the processes ``pids`` so far, from /proc (nan if unknown)."""
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

    ``os.wait4`` gives the rusage of that one child (``RUSAGE_CHILDREN`` would mix in every
    run so far), as in bench_local; stdout is kept (mover's ``--json`` summary).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        server_before = process_cpu(server_pids)
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
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


@dataclass(frozen=True)
class Case:
    """One thing to copy."""

    key: str  #: e.g. "s3-up"
    label: str  #: what the table prints
    total_bytes: int
    objects: int
    kind: str  #: "large-up", "large-down", "copy" or "small"


@dataclass
class Measure:
    """The runs of one tool on one case."""

    tool: str
    case: Case
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    rss_bytes: list[int] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    through: list[int] = field(default_factory=list)  #: mover's bytes_through_mover

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def mib_per_s(self) -> float:
        return self.case.total_bytes / MiB / self.median if self.median > 0 else float("inf")

    @property
    def objects_per_s(self) -> float:
        return self.case.objects / self.median if self.median > 0 else float("inf")


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------------------
# set-up


def find_program(name: str) -> str | None:
    """Find ``name`` next to this interpreter first (a venv's bin/ need not be on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def write_random(path: Path, size: int) -> None:
    """Write ``size`` random bytes (incompressible, so no store can cheat)."""
    with open(path, "wb") as f:
        left = size
        while left > 0:
            step = min(left, WRITE_SLICE_BYTES)
            f.write(os.urandom(step))
            left -= step


def make_tree(tree: Path, files: int) -> None:
    for i in range(files):
        folder = tree / f"d{i % SMALL_FOLDERS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(SMALL_FILE_BYTES))


def warm(path: Path) -> None:
    """Read a file or folder once so that every tool starts with it in the page cache."""
    paths = [path] if path.is_file() else sorted(path.rglob("*"))
    for p in paths:
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(WRITE_SLICE_BYTES):
                    pass


def version(argv: Sequence[str], env: dict[str, str]) -> str:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        return f"? ({exc.strerror})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "?"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def git_revision() -> str:
    rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "mover", "strategies"],
        capture_output=True,
        text=True,
        check=False,
    )
    return rev.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


# ---------------------------------------------------------------------------------------------
# the stores, from the benchmark's side (set-up, checks, clean-up: never timed)


@dataclass
class S3Side:
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
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            # for mover's configured "nosign" stores (credentials_env = "BENCHS3")
            "BENCHS3_ACCESS_KEY_ID": self.access_key,
            "BENCHS3_SECRET_ACCESS_KEY": self.secret_key,
            f"RCLONE_CONFIG_{RCLONE_S3.upper()}_TYPE": "s3",
            f"RCLONE_CONFIG_{RCLONE_S3.upper()}_PROVIDER": "SeaweedFS",
            f"RCLONE_CONFIG_{RCLONE_S3.upper()}_ENDPOINT": self.endpoint_url,
            f"RCLONE_CONFIG_{RCLONE_S3.upper()}_ACCESS_KEY_ID": self.access_key,
            f"RCLONE_CONFIG_{RCLONE_S3.upper()}_SECRET_ACCESS_KEY": self.secret_key,
            f"RCLONE_CONFIG_{RCLONE_S3.upper()}_REGION": self.region,
            f"RCLONE_CONFIG_{RCLONE_S3.upper()}_FORCE_PATH_STYLE": "true",
        }

    def ensure_buckets(self) -> None:
        existing = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        for bucket in S3_BUCKETS:
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

    def delete_prefix(self, bucket: str, prefix: str) -> None:
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

    def upload(self, path: Path, bucket: str, key: str, chunk: int, streams: int) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=streams
        )
        self.client.upload_file(str(path), bucket, key, Config=config)

    def read_through(self, bucket: str, key: str) -> None:
        """GET an object and throw its bytes away: warms the server's caches, untimed (the
        first read after an upload is much slower for every client)."""
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        while body.read(8 * MiB):
            pass

    def empty_all(self) -> None:
        for bucket in S3_BUCKETS:
            self.delete_prefix(bucket, "")


@dataclass
class SwiftSide:
    auth_url: str
    user: str
    key: str
    pids: list[int]

    def __post_init__(self) -> None:
        from swiftclient import client as swift_client

        self.conn = swift_client.Connection(
            authurl=self.auth_url, user=self.user, key=self.key, auth_version="1.0"
        )

    def env(self) -> dict[str, str]:
        r = RCLONE_SWIFT.upper()
        return {
            "ST_AUTH": self.auth_url,
            "ST_USER": self.user,
            "ST_KEY": self.key,
            f"RCLONE_CONFIG_{r}_TYPE": "swift",
            f"RCLONE_CONFIG_{r}_AUTH": self.auth_url,
            f"RCLONE_CONFIG_{r}_USER": self.user,
            f"RCLONE_CONFIG_{r}_KEY": self.key,
        }

    def ensure_containers(self) -> None:
        for container in SWIFT_CONTAINERS:
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

    def read_through(self, container: str, name: str) -> None:
        """GET an object and throw its bytes away (warms the server's caches, untimed)."""
        _headers, body = self.conn.get_object(container, name, resp_chunk_size=8 * MiB)
        for _piece in body:
            pass

    def empty(self, container: str) -> None:
        """Delete everything in ``container`` and its segments container (threads of their
        own connections: a swiftclient Connection is not thread-safe)."""
        from swiftclient import client as swift_client

        names = [
            (c, o["name"])
            for c in (container, container + "_segments")
            for o in self.listing(c, "")
        ]

        def delete(batch: list[tuple[str, str]]) -> None:
            conn = swift_client.Connection(
                authurl=self.auth_url, user=self.user, key=self.key, auth_version="1.0"
            )
            for c, name in batch:
                try:
                    conn.delete_object(c, name)
                except swift_client.ClientException as exc:
                    if exc.http_status != 404:
                        raise

        batches = [names[i::8] for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(delete, batches))


# ---------------------------------------------------------------------------------------------
# boto3 peer: this file run as a child, so that its CPU and RSS are measured like every tool's


def boto3_worker(argv: Sequence[str]) -> int:
    """``bench_objects.py --boto3 OP ...``: one s3transfer operation, as a program."""
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from s3transfer.manager import TransferConfig as ManagerConfig
    from s3transfer.manager import TransferManager

    p = argparse.ArgumentParser(prog="bench_objects.py --boto3")
    p.add_argument("op", choices=["up", "down", "copy", "small"])
    p.add_argument("args", nargs="+")
    p.add_argument("--chunk", type=int, required=True)
    p.add_argument("--streams", type=int, required=True)
    a = p.parse_args(argv)
    client = boto3.client(
        "s3",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=max(10, a.streams)),
    )
    config = TransferConfig(
        multipart_threshold=a.chunk, multipart_chunksize=a.chunk, max_concurrency=a.streams
    )
    if a.op == "up":
        path, bucket, key = a.args
        client.upload_file(path, bucket, key, Config=config)
    elif a.op == "down":
        bucket, key, path = a.args
        client.download_file(bucket, key, path, Config=config)
    elif a.op == "copy":
        src_bucket, src_key, bucket, key = a.args
        client.copy({"Bucket": src_bucket, "Key": src_key}, bucket, key, Config=config)
    else:  # small: every file of a folder through one TransferManager, as the aws CLI does
        folder, bucket, prefix = a.args
        manager_config = ManagerConfig(
            multipart_threshold=a.chunk,
            multipart_chunksize=a.chunk,
            max_request_concurrency=a.streams,
        )
        with TransferManager(client, manager_config) as manager:
            futures = []
            for dirpath, _dirs, names in os.walk(folder):
                for name in names:
                    full = os.path.join(dirpath, name)
                    rel = os.path.relpath(full, folder)
                    futures.append(manager.upload(full, bucket, f"{prefix}/{rel}"))
            for future in futures:
                future.result()
    return 0


# ---------------------------------------------------------------------------------------------
# the cases and the command of each tool


@dataclass(frozen=True)
class Tool:
    """A tool on a case: its command for run ``index`` (a destination tag), and whether it is
    a mover run (JSON summary) or a peer that does not fsync its local writes."""

    name: str
    argv: Callable[[str], list[str]]
    mover: bool = False


@dataclass
class Setup:
    tools: dict[str, str | None]
    env: dict[str, str]
    work: Path
    chunk: int
    streams: int
    mover_extra: list[str]
    large: Path
    tree: Path
    large_bytes: int
    small_files: int
    s3: S3Side | None
    swift: SwiftSide | None


def mover_argv(st: Setup, *args: str, recursive: bool = False) -> list[str]:
    mover = st.tools["mover"]
    assert mover
    return [
        mover,
        "copy",
        "--quiet",
        "--json",
        *st.mover_extra,
        *(["-r"] if recursive else []),
        *args,
    ]


def s3_cases(
    st: Setup,
) -> list[tuple[Case, list[Tool], Callable[[str], None], Callable[[str], None]]]:
    """Cases on S3 with their tools, a check and a clean-up for a destination tag."""
    assert st.s3 is not None
    s3 = st.s3
    rclone, aws, py = st.tools["rclone"], st.tools["aws"], sys.executable
    me = str(Path(__file__).resolve())
    size, chunk, streams = st.large_bytes, st.chunk, st.streams
    cm = f"{chunk // MiB}M"
    boto = ["--chunk", str(chunk), "--streams", str(streams)]
    rc = f"{RCLONE_S3}:"
    out: list[tuple[Case, list[Tool], Callable[[str], None], Callable[[str], None]]] = []

    def large_dst(tag: str) -> str:
        return f"{tag}/large.bin"

    def check_obj(bucket: str) -> Callable[[str], None]:
        def check(tag: str) -> None:
            got = s3.shape(bucket, f"{tag}/")
            if got != (1, size):
                raise BenchError(f"s3://{bucket}/{tag}/: {got}, expected (1, {size})")

        return check

    def clean_obj(bucket: str) -> Callable[[str], None]:
        return lambda tag: s3.delete_prefix(bucket, f"{tag}/")

    # file -> S3
    up = Case("s3-up", f"file->S3 {size / MiB:,.0f} MiB", size, 1, "large-up")
    tools = [
        Tool(
            "mover", lambda t: mover_argv(st, str(st.large), f"s3://bench-up/{large_dst(t)}"), True
        ),
        Tool(
            "mover-nosign",
            lambda t: mover_argv(st, str(st.large), f"store:nosign-up/{large_dst(t)}"),
            True,
        ),
    ]
    if rclone:
        tools += [
            Tool(
                "rclone",
                lambda t: [
                    rclone,
                    "copyto",
                    "-q",
                    "--s3-upload-concurrency",
                    str(streams),
                    "--s3-chunk-size",
                    cm,
                    str(st.large),
                    f"{rc}bench-up/{large_dst(t)}",
                ],
            ),
            Tool(
                "rclone-dflt",
                lambda t: [rclone, "copyto", "-q", str(st.large), f"{rc}bench-up/{large_dst(t)}"],
            ),
        ]
    tools.append(
        Tool(
            "boto3",
            lambda t: [py, me, "--boto3", "up", str(st.large), "bench-up", large_dst(t), *boto],
        )
    )
    if aws:
        tools.append(
            Tool(
                "awscli",
                lambda t: [
                    aws,
                    "s3",
                    "cp",
                    "--quiet",
                    str(st.large),
                    f"s3://bench-up/{large_dst(t)}",
                ],
            )
        )
    out.append((up, tools, check_obj("bench-up"), clean_obj("bench-up")))

    # S3 -> file
    down = Case("s3-down", f"S3->file {size / MiB:,.0f} MiB", size, 1, "large-down")

    def local(tag: str) -> Path:
        return st.work / "dl" / tag / "large.bin"

    src = "bench-src/large.bin"
    tools = [Tool("mover", lambda t: mover_argv(st, f"s3://{src}", str(local(t))), True)]
    if rclone:
        tools += [
            Tool(
                "rclone",
                lambda t: [
                    rclone,
                    "copyto",
                    "-q",
                    "--multi-thread-streams",
                    str(streams),
                    "--multi-thread-chunk-size",
                    cm,
                    f"{rc}{src}",
                    str(local(t)),
                ],
            ),
            Tool("rclone-dflt", lambda t: [rclone, "copyto", "-q", f"{rc}{src}", str(local(t))]),
        ]
    tools.append(
        Tool(
            "boto3",
            lambda t: [py, me, "--boto3", "down", "bench-src", "large.bin", str(local(t)), *boto],
        )
    )
    if aws:
        tools.append(
            Tool("awscli", lambda t: [aws, "s3", "cp", "--quiet", f"s3://{src}", str(local(t))])
        )
    out.append((down, tools, check_local(st, local), clean_local(st)))

    # S3 -> S3
    copy = Case("s3-copy", f"S3->S3 {size / MiB:,.0f} MiB", size, 1, "copy")
    tools = [
        Tool(
            "mover",
            lambda t: mover_argv(st, f"s3://{src}", f"s3://bench-copy/{large_dst(t)}"),
            True,
        )
    ]
    if rclone:
        tools.append(
            Tool(
                "rclone",
                lambda t: [rclone, "copyto", "-q", f"{rc}{src}", f"{rc}bench-copy/{large_dst(t)}"],
            )
        )
    tools.append(
        Tool(
            "boto3",
            lambda t: [
                py,
                me,
                "--boto3",
                "copy",
                "bench-src",
                "large.bin",
                "bench-copy",
                large_dst(t),
                *boto,
            ],
        )
    )
    if aws:
        tools.append(
            Tool(
                "awscli",
                lambda t: [
                    aws,
                    "s3",
                    "cp",
                    "--quiet",
                    f"s3://{src}",
                    f"s3://bench-copy/{large_dst(t)}",
                ],
            )
        )
    out.append((copy, tools, check_obj("bench-copy"), clean_obj("bench-copy")))

    # small files -> S3
    n = st.small_files
    small = Case("s3-small", f"{n:,}x16KiB->S3", n * SMALL_FILE_BYTES, n, "small")
    tools = [
        Tool(
            "mover",
            lambda t: mover_argv(st, str(st.tree), f"s3://bench-small/{t}", recursive=True),
            True,
        ),
        Tool(
            "mover-nosign",
            lambda t: mover_argv(st, str(st.tree), f"store:nosign-small/{t}", recursive=True),
            True,
        ),
    ]
    if rclone:
        tools.append(
            Tool(
                "rclone",
                lambda t: [
                    rclone,
                    "copy",
                    "-q",
                    "--transfers",
                    str(streams),
                    str(st.tree),
                    f"{rc}bench-small/{t}",
                ],
            )
        )
        if streams != 4:
            tools.append(
                Tool(
                    "rclone-dflt",
                    lambda t: [rclone, "copy", "-q", str(st.tree), f"{rc}bench-small/{t}"],
                )
            )
    tools.append(
        Tool("boto3", lambda t: [py, me, "--boto3", "small", str(st.tree), "bench-small", t, *boto])
    )
    if aws:
        tools.append(
            Tool(
                "awscli",
                lambda t: [
                    aws,
                    "s3",
                    "cp",
                    "--quiet",
                    "--recursive",
                    str(st.tree),
                    f"s3://bench-small/{t}/",
                ],
            )
        )

    def check_small(tag: str) -> None:
        got = s3.shape("bench-small", f"{tag}/")
        if got != (n, n * SMALL_FILE_BYTES):
            raise BenchError(
                f"s3://bench-small/{tag}/: {got}, expected ({n}, {n * SMALL_FILE_BYTES})"
            )

    out.append((small, tools, check_small, lambda tag: None))
    return out


def check_local(st: Setup, local: Callable[[str], Path]) -> Callable[[str], None]:
    def check(tag: str) -> None:
        path = local(tag)
        got = path.stat().st_size if path.exists() else -1
        if got != st.large_bytes:
            raise BenchError(f"{path}: {got} bytes, expected {st.large_bytes}")
        if tag.endswith("-0") and not filecmp.cmp(st.large, path, shallow=False):
            raise BenchError(f"{path} differs from its source")

    return check


def clean_local(st: Setup) -> Callable[[str], None]:
    return lambda tag: shutil.rmtree(st.work / "dl" / tag, ignore_errors=True)


def swift_cases(
    st: Setup,
) -> list[tuple[Case, list[Tool], Callable[[str], None], Callable[[str], None]]]:
    assert st.swift is not None
    sw = st.swift
    swift, rclone = st.tools["swift"], st.tools["rclone"]
    size, chunk, streams = st.large_bytes, st.chunk, st.streams
    cm = f"{chunk // MiB}M"
    rc = f"{RCLONE_SWIFT}:"
    out: list[tuple[Case, list[Tool], Callable[[str], None], Callable[[str], None]]] = []

    def large_dst(tag: str) -> str:
        return f"{tag}/large.bin"

    up = Case("sw-up", f"file->Swift {size / MiB:,.0f} MiB", size, 1, "large-up")
    tools = [
        Tool(
            "mover",
            lambda t: mover_argv(st, str(st.large), f"swift://bench-sw/{large_dst(t)}"),
            True,
        )
    ]
    if swift:
        tools.append(
            Tool(
                "swift",
                lambda t: [
                    swift,
                    "-q",
                    "upload",
                    "--use-slo",
                    "--segment-size",
                    cm,
                    "--segment-threads",
                    str(streams),
                    "--object-name",
                    large_dst(t),
                    "bench-sw",
                    str(st.large),
                ],
            )
        )
    if rclone:
        tools += [
            Tool(
                "rclone",
                lambda t: [
                    rclone,
                    "copyto",
                    "-q",
                    "--swift-chunk-size",
                    cm,
                    str(st.large),
                    f"{rc}bench-sw/{large_dst(t)}",
                ],
            ),
            Tool(
                "rclone-dflt",
                lambda t: [rclone, "copyto", "-q", str(st.large), f"{rc}bench-sw/{large_dst(t)}"],
            ),
        ]

    def check_up(tag: str) -> None:
        got = sw.shape("bench-sw", f"{tag}/")
        if got != (1, size):
            raise BenchError(f"swift://bench-sw/{tag}/: {got}, expected (1, {size})")

    out.append((up, tools, check_up, lambda tag: sw.empty("bench-sw")))

    down = Case("sw-down", f"Swift->file {size / MiB:,.0f} MiB", size, 1, "large-down")

    def local(tag: str) -> Path:
        return st.work / "dl" / tag / "large.bin"

    tools = [
        Tool(
            "mover", lambda t: mover_argv(st, "swift://bench-swsrc/large.bin", str(local(t))), True
        )
    ]
    if swift:
        tools.append(
            Tool(
                "swift",
                lambda t: [
                    swift,
                    "-q",
                    "download",
                    "bench-swsrc",
                    "large.bin",
                    "-o",
                    str(local(t)),
                ],
            )
        )
    if rclone:
        tools += [
            Tool(
                "rclone",
                lambda t: [
                    rclone,
                    "copyto",
                    "-q",
                    "--multi-thread-streams",
                    str(streams),
                    "--multi-thread-chunk-size",
                    cm,
                    f"{rc}bench-swsrc/large.bin",
                    str(local(t)),
                ],
            ),
            Tool(
                "rclone-dflt",
                lambda t: [rclone, "copyto", "-q", f"{rc}bench-swsrc/large.bin", str(local(t))],
            ),
        ]
    out.append((down, tools, check_local(st, local), clean_local(st)))

    n = st.small_files
    small = Case("sw-small", f"{n:,}x16KiB->Swift", n * SMALL_FILE_BYTES, n, "small")
    tools = [
        Tool(
            "mover",
            lambda t: mover_argv(st, str(st.tree), f"swift://bench-swsmall/{t}", recursive=True),
            True,
        )
    ]
    if swift:
        tools.append(
            Tool(
                "swift",
                lambda t: [
                    swift,
                    "-q",
                    "upload",
                    "--object-threads",
                    str(streams),
                    "--object-name",
                    t,
                    "bench-swsmall",
                    str(st.tree),
                ],
            )
        )
    if rclone:
        tools.append(
            Tool(
                "rclone",
                lambda t: [
                    rclone,
                    "copy",
                    "-q",
                    "--transfers",
                    str(streams),
                    str(st.tree),
                    f"{rc}bench-swsmall/{t}",
                ],
            )
        )

    def check_small(tag: str) -> None:
        got = sw.shape("bench-swsmall", f"{tag}/")
        if got != (n, n * SMALL_FILE_BYTES):
            raise BenchError(f"swift://bench-swsmall/{tag}/: {got}, expected ({n}, ...)")

    out.append((small, tools, check_small, lambda tag: None))
    return out


def bench_case(
    st: Setup,
    case: Case,
    tools: list[Tool],
    check: Callable[[str], None],
    clean: Callable[[str], None],
    runs: int,
    server_pids: Sequence[int],
) -> dict[str, Measure]:
    """Run every tool ``runs`` times on ``case``, interleaved so that drift hits all alike."""
    results: dict[str, Measure] = {}
    for tool in tools:
        results[tool.name] = Measure(tool.name, case)
        if case.kind == "large-down" and not tool.mover:
            results[tool.name + "+sync"] = Measure(tool.name + "+sync", case)
    sync = st.tools["sync"]
    assert sync
    for index in range(runs):
        # Rotated each run, so that no tool always goes first (after another tool's run, the
        # server's caches are warmer than after a clean-up).
        shift = index % len(tools)
        for tool in tools[shift:] + tools[:shift]:
            tag = f"{tool.name}-{index}"
            if case.kind == "large-down":
                (st.work / "dl" / tag).mkdir(parents=True, exist_ok=True)
                subprocess.run([sync], check=False)  # earlier runs' dirty pages, untimed
            used = run_measured(tool.argv(tag), st.env, server_pids)
            m = results[tool.name]
            m.seconds.append(used.seconds)
            m.cpu_seconds.append(used.cpu_seconds)
            m.rss_bytes.append(used.rss_bytes)
            m.server_cpu.append(used.server_cpu_seconds)
            if tool.mover:
                summary = json.loads(used.stdout)
                if summary.get("state") != "done":
                    raise BenchError(f"mover on {case.label}: job {summary.get('state')}")
                m.through.append(int(summary.get("bytes_through_mover", -1)))
            elif case.kind == "large-down":
                flushed = run_measured([sync, "-f", str(st.work / "dl" / tag)], st.env)
                s = results[tool.name + "+sync"]
                s.seconds.append(used.seconds + flushed.seconds)
                s.cpu_seconds.append(used.cpu_seconds + flushed.cpu_seconds)
                s.rss_bytes.append(used.rss_bytes)
                s.server_cpu.append(used.server_cpu_seconds)
            check(tag)
            clean(tag)
            print(
                f"  {case.key:<9} {tool.name:<13} run {index + 1}: {used.seconds:7.3f} s",
                file=sys.stderr,
                flush=True,
            )
    return results


# ---------------------------------------------------------------------------------------------
# report


def ratio(peer: Measure | None, mover: Measure) -> float | None:
    if peer is None or not peer.seconds:
        return None
    return peer.median / mover.median if mover.median > 0 else None


def fmt_cpu(value: float) -> str:
    """Server CPU seconds, or "-" for servers this run did not start (no PIDs to read)."""
    return "-" if value != value else f"{value:.2f}"  # NaN is the only value unequal to itself


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "SKIP (tool missing)"
    return "PASS" if value >= target else "MISS"


def print_table(all_results: dict[str, dict[str, Measure]]) -> None:
    print(
        f"{'case':<21} {'tool':<16} {'seconds':>8} {'MiB/s':>8} {'obj/s':>7} {'ratio':>6} "
        f"{'cpu s':>6} {'srv cpu':>7} {'RSS MiB':>8}  runs (s)"
    )
    for results in all_results.values():
        mover = results["mover"]
        for name, m in results.items():
            r = "" if name == "mover" else fmt_ratio(ratio(m, mover))
            runs = " ".join(f"{s:.2f}" for s in m.seconds)
            objs = f"{m.objects_per_s:7.0f}" if m.case.kind == "small" else f"{'':>7}"
            print(
                f"{m.case.label:<21} {name:<16} {m.median:>8.3f} {m.mib_per_s:>8.1f} {objs} "
                f"{r:>6} {med(m.cpu_seconds):>6.2f} {fmt_cpu(med(m.server_cpu)):>7} "
                f"{max(m.rss_bytes) / MiB:>8.0f}  {runs}"
            )
    print(
        "seconds, MiB/s, obj/s: medians of wall clock; ratio = peer seconds / mover seconds "
        "(> 1: mover is faster);\ncpu s: median user+system seconds of the client program; "
        "srv cpu: median CPU seconds the local\nserver processes spent during the run (same 2 "
        "cores); RSS: the client's largest peak RSS over the runs;\n+sync rows: the peer's "
        "time plus a `sync -f` of its destination (mover fsyncs its files, peers do not)."
    )


def print_targets(all_results: dict[str, dict[str, Measure]], chunk: int, streams: int) -> None:
    print("targets:")

    def line(case: str, peer: str, target: float, note: str = "") -> None:
        results = all_results.get(case)
        if results is None:
            return
        mover = results["mover"]
        value = ratio(results.get(peer), mover)
        print(
            f"  {mover.case.label}: mover vs {peer} {fmt_ratio(value)} (target >= {target}x): "
            f"{verdict(value, target)}{note}"
        )

    for case in ("s3-up", "sw-up"):
        line(case, "rclone", TARGET_LARGE_VS_RCLONE)
        line(case, "rclone-dflt", TARGET_LARGE_VS_RCLONE)
    line("s3-up", "boto3", TARGET_LARGE_VS_BOTO3)
    for case in ("s3-down", "sw-down"):
        line(case, "rclone+sync", TARGET_LARGE_VS_RCLONE)
        line(case, "rclone-dflt+sync", TARGET_LARGE_VS_RCLONE)
    line("s3-down", "boto3+sync", TARGET_LARGE_VS_BOTO3)
    line("s3-small", "rclone", TARGET_SMALL_VS_RCLONE)
    line("sw-small", "rclone", TARGET_SMALL_VS_RCLONE)
    if "s3-copy" in all_results:
        line("s3-copy", "rclone", TARGET_COPY_VS_RCLONE)
        through = all_results["s3-copy"]["mover"].through
        state = "PASS" if through and all(t == 0 for t in through) else "MISS"
        print(f"  S3->S3: bytes_through_mover per run {through} (target 0): {state}")
    print("  no target, for reference (mover-nosign: payload_signing_enabled = false):")
    for results in all_results.values():
        mover = results["mover"]
        for name in results:
            if name == "mover":
                continue
            print(
                f"    {mover.case.label}: mover vs {name} {fmt_ratio(ratio(results[name], mover))}"
            )
    bound = chunk * streams + RSS_SLACK_BYTES
    for results in all_results.values():
        for name, m in results.items():
            if not name.startswith("mover"):
                continue
            peak = max(m.rss_bytes)
            state = "within" if peak <= bound else "OVER"
            print(
                f"  {name} peak RSS, {m.case.label}: {peak / MiB:.0f} MiB (bound chunk "
                f"{chunk // MiB} MiB x {streams} + {RSS_SLACK_BYTES // MiB} MiB = "
                f"{bound // MiB} MiB): {'PASS' if peak <= bound else 'MISS'} ({state})"
            )


# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--dir", help="make the temporary work folder under this path (default /tmp)")
    p.add_argument("--runs", type=int, default=3, help="runs per tool and case (median; 3)")
    p.add_argument("--quick", action="store_true", help="smoke run: 256 MiB, 300 objects, 1 run")
    p.add_argument("--streams", type=int, default=4, help="mover --streams (default 4)")
    p.add_argument("--chunk-size", default="64MiB", help="mover --chunk-size (default 64MiB)")
    p.add_argument("--only", default="", help="comma-separated case keys (s3-up,sw-small,...)")
    p.add_argument("--no-s3", action="store_true", help="skip the S3 cases")
    p.add_argument("--no-swift", action="store_true", help="skip the Swift cases")
    p.add_argument("--s3-endpoint", help="use this running S3 server instead of starting one")
    p.add_argument("--s3-access-key", default="testkey")
    p.add_argument("--s3-secret-key", default="testsecret")
    p.add_argument("--s3-region", default="us-east-1")
    p.add_argument("--swift-auth", help="use this running Swift (v1 auth URL) instead")
    p.add_argument("--swift-user", default="test:tester")
    p.add_argument("--swift-key", default="testing")
    return p.parse_args(argv)


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*(KiB|MiB|GiB|K|M|G)?\s*", text)
    if not m:
        raise SystemExit(f"--chunk-size: not a size: {text!r}")
    unit = {"": 1, "K": KiB, "KiB": KiB, "M": MiB, "MiB": MiB, "G": GiB, "GiB": GiB}
    return int(m.group(1)) * unit[m.group(2) or ""]


def write_configs(work: Path, s3: S3Side | None, chunk: int, streams: int) -> dict[str, str]:
    """mover's store config (the "nosign" stores) and the aws CLI's, in the work folder."""
    env: dict[str, str] = {}
    if s3 is not None:
        stores = ""
        for name, bucket in (("nosign-up", "bench-up"), ("nosign-small", "bench-small")):
            stores += textwrap.dedent(
                f"""\
                [stores.{name}]
                url = "s3://{bucket}/"
                endpoint_url = "{s3.endpoint_url}"
                region = "{s3.region}"
                credentials_env = "BENCHS3"
                payload_signing_enabled = false

                """
            )
        (work / "mover.toml").write_text(stores)
        env["MOVER_CONFIG"] = str(work / "mover.toml")
        (work / "aws.cfg").write_text(
            textwrap.dedent(
                f"""\
                [default]
                region = {s3.region}
                s3 =
                  addressing_style = path
                  max_concurrent_requests = {streams}
                  multipart_chunksize = {chunk // MiB}MB
                  multipart_threshold = {chunk // MiB}MB
                """
            )
        )
        env["AWS_CONFIG_FILE"] = str(work / "aws.cfg")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(work / "aws.credentials")  # none: env keys
    else:
        (work / "mover.toml").write_text("")
        env["MOVER_CONFIG"] = str(work / "mover.toml")
    return env


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["--boto3"]:
        return boto3_worker(raw[1:])
    args = parse_args(raw)
    if args.quick:
        args.runs = 1
    large_bytes = 256 * MiB if args.quick else 1 * GiB
    small_files = 300 if args.quick else 2000
    chunk = parse_size(args.chunk_size)
    tools = {name: find_program(name) for name in ("mover", "rclone", "aws", "swift", "sync")}
    if not tools["mover"] or not tools["sync"]:
        print("need mover (in this interpreter's env) and sync", file=sys.stderr)
        return 2
    only = {k for k in args.only.split(",") if k}
    sys.path.insert(0, str(REPO))
    from tests.servers import SeaweedS3Server, SwiftServer

    work = Path(tempfile.mkdtemp(prefix="mover-bench-objects-", dir=args.dir or "/tmp"))
    env = dict(os.environ)
    env["MOVER_STATE_DIR"] = str(work / "state")
    env["RCLONE_CONFIG"] = str(work / "rclone.conf")  # none: remotes come from the environment
    status = 0
    with ExitStack() as stack:
        try:
            s3 = swift = None
            if not args.no_s3:
                if args.s3_endpoint:
                    s3 = S3Side(
                        args.s3_endpoint, args.s3_access_key, args.s3_secret_key, args.s3_region, []
                    )
                else:
                    server = stack.enter_context(SeaweedS3Server())
                    s3 = S3Side(
                        server.endpoint_url,
                        server.access_key,
                        server.secret_key,
                        server.region,
                        server.pids,
                    )
                env.update(s3.env())
            if not args.no_swift:
                if args.swift_auth:
                    swift = SwiftSide(args.swift_auth, args.swift_user, args.swift_key, [])
                else:
                    sserver = stack.enter_context(SwiftServer())
                    swift = SwiftSide(sserver.auth_url, sserver.user, sserver.key, sserver.pids)
                env.update(swift.env())
            # After the servers' own handler (installed as they start): a SIGTERM unwinds
            # through the finally below, which stops them and removes the work folder.
            signal.signal(signal.SIGTERM, _terminate)
            env.update(write_configs(work, s3, chunk, args.streams))
            mover_extra = ["--streams", str(args.streams), "--chunk-size", args.chunk_size]
            print(f"mover object-store benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
            print(f"  host: {platform.node()}, {os.cpu_count()} CPU(s), {platform.platform()}")
            print(
                f"  mover: {version([tools['mover'], '--version'], env)} (source {git_revision()})"
            )
            for name, argv_v in (
                ("rclone", ["version"]),
                ("aws", ["--version"]),
                ("swift", ["--version"]),
            ):
                path = tools[name]
                print(
                    f"  {name}: {version([path, *argv_v], env) if path else 'not found, skipped'}"
                )
            import boto3
            import botocore

            print(f"  boto3 {boto3.__version__}, botocore {botocore.__version__}")
            if s3:
                origin = "given" if args.s3_endpoint else "SeaweedFS, started here"
                weed = version([find_program("weed") or "weed", "version"], env)
                print(f"  S3: {s3.endpoint_url} ({origin}: {weed})")
            if swift:
                print(
                    f"  Swift: {swift.auth_url} ({'given' if args.swift_auth else 'started here'})"
                )
            print(
                f"  runs: {args.runs}; mover {' '.join(mover_extra)}; peers: same part size and "
                f"concurrency where they have the setting"
            )
            print(f"  command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
            print(f"  load average at start: {load_average()}")
            print("  noisy: 2 cores shared by client and server; figures are medians", flush=True)

            st = Setup(
                tools,
                env,
                work,
                chunk,
                args.streams,
                mover_extra,
                work / "large.bin",
                work / "tree",
                large_bytes,
                small_files,
                s3,
                swift,
            )
            write_random(st.large, large_bytes)
            make_tree(st.tree, small_files)
            warm(st.large)
            warm(st.tree)
            cases: list[tuple[Case, list[Tool], Callable[[str], None], Callable[[str], None]]] = []
            if s3:
                s3.ensure_buckets()
                s3.upload(st.large, "bench-src", "large.bin", chunk, args.streams)
                cases += s3_cases(st)
            if swift:
                swift.ensure_containers()
                if tools["swift"]:
                    subprocess.run(
                        [
                            tools["swift"],
                            "-q",
                            "upload",
                            "--use-slo",
                            "--segment-size",
                            f"{chunk // MiB}M",
                            "--object-name",
                            "large.bin",
                            "bench-swsrc",
                            str(st.large),
                        ],
                        env=env,
                        check=True,
                    )
                else:
                    run_measured(
                        mover_argv(st, str(st.large), "swift://bench-swsrc/large.bin"), env
                    )
                cases += swift_cases(st)
            all_results: dict[str, dict[str, Measure]] = {}
            for case, case_tools, check, clean in cases:
                if only and case.key not in only:
                    continue
                pids = (
                    (s3.pids if s3 else [])
                    if case.key.startswith("s3")
                    else (swift.pids if swift else [])
                )
                warm(st.large)
                if case.kind in ("large-down", "copy") and s3 and case.key.startswith("s3"):
                    s3.read_through("bench-src", "large.bin")
                if case.kind == "large-down" and swift and case.key.startswith("sw"):
                    swift.read_through("bench-swsrc", "large.bin")
                all_results[case.key] = bench_case(
                    st, case, case_tools, check, clean, args.runs, pids
                )
            print()
            print_table(all_results)
            print()
            print_targets(all_results, chunk, args.streams)
            print(f"load average at end: {load_average()} (high values: other work, noisy runs)")
        except BenchError as exc:
            print(f"bench_objects: {exc}", file=sys.stderr)
            status = 1
        finally:
            stack.close()  # servers stopped by PID before the work folder goes
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
