#!/usr/bin/env python3
"""The request-engine spike of issue 10 (item 1): botocore as today, botocore trimmed, awscrt and
obstore doing the same data-plane requests against one SeaweedFS, interleaved round by round.

    .venv/bin/pip install obstore          # the spike's only extra (awscrt is a dependency)
    .venv/bin/python benchmarks/spike/run_spike.py --save benchmarks/spike/results-DATE.txt
    .venv/bin/python benchmarks/spike/run_spike.py --only throughput --rounds 3
    .venv/bin/python benchmarks/spike/run_spike.py --only callgrind,startup

Parts (``--only``, comma-separated; all by default):

* ``throughput``: 1 GiB down in 64 MiB ranged GETs, 8 streams, each into a reused buffer and
  ``pwrite`` at its offset into a pre-sized file (fsynced); 1 GiB up in 64 MiB UploadParts with
  a server-checked crc32c, 8 streams; CopyObject of 1 GiB; UploadPartCopy of 1 GiB in 64 MiB
  parts, 8 streams; 2,000 x 16 KiB PutObject (with crc32c) and GetObject (to memory), 32 in
  flight. Each engine runs as its own child process (``worker.py``); best and median of
  ``--rounds``; the engines' order rotates each round so noise hits them alike.
* ``callgrind``: instructions per small request (PUT and GET of 16 KiB, one at a time), from
  ``valgrind --tool=callgrind``: (count of N requests - count of 0) / N, after one warm-up
  request of each kind; stable whatever the machine's load.
* ``startup``: ``python -X importtime`` of each engine's imports, and the wall time of a fresh
  interpreter importing the engine and making its client (best of 5, bare interpreter's
  start-up subtracted).

Every result is checked by an independent reader: downloads against the source file (byte for
byte on the first round), uploads by their multipart ETag (md5 of the parts' md5s, computed here)
or size, small objects by listing (count, bytes) or the sum of their crc32c.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
import engines  # noqa: E402

MiB = 1 << 20
BUCKET = "spike"
SMALL = 16 * 1024
#: Workloads of the throughput part, and the engines that can do each.
#: ``obstore-sha256`` (obstore with its only checksum, sha256, which the server checks) only
#: where a checksum is sent: uploads.
WORKLOADS = {
    "large-down": engines.ENGINES,
    "large-up": (*engines.ENGINES, "obstore-sha256"),
    "copy-object": engines.ENGINES,
    "part-copy": ("botocore", "botocore-trim", "awscrt"),  # obstore: no UploadPartCopy
    "small-up": (*engines.ENGINES, "obstore-sha256"),
    "small-down": engines.ENGINES,
}
#: What a fresh interpreter does to be ready for requests, per engine.
STARTUP = {
    "boto3 (mover today)": "import boto3; boto3.session.Session().client('s3', endpoint_url=E)",
    "botocore": "import botocore.session; botocore.session.get_session()"
    ".create_client('s3', endpoint_url=E)",
    "awscrt": "from awscrt import io, auth, s3; l = io.EventLoopGroup(2); "
    "s3.S3Client(bootstrap=io.ClientBootstrap(l, io.DefaultHostResolver(l)), region='us-east-1',"
    " signing_config=s3.create_default_s3_signing_config(region='us-east-1', credential_provider="
    "auth.AwsCredentialsProvider.new_static('k', 's')), tls_mode=s3.S3RequestTlsMode.DISABLED)",
    "obstore": "import obstore; from obstore.store import S3Store; S3Store('b', endpoint=E, "
    "access_key_id='k', secret_access_key='s', region='us-east-1', "
    "client_options={'allow_http': True})",
}
IMPORTS = {
    "boto3 (mover today)": "boto3",
    "botocore": "botocore.session",
    "awscrt": "awscrt.s3",
    "obstore": "obstore.store",
}


class _Tee:
    """stdout that is also written to a file (``--save``)."""

    def __init__(self, stream: Any, path: Path) -> None:
        self.stream, self.file = stream, open(path, "w")  # noqa: SIM115 - lives as long as we

    def write(self, text: str) -> int:
        self.file.write(text)
        self.file.flush()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def worker(env: dict[str, str], engine: str, workload: str, *extra: str) -> dict[str, Any]:
    argv = [sys.executable, str(HERE / "worker.py"), engine, workload, *extra]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EngineFailed(f"{engine} {workload} failed: {done.stderr.strip()[-600:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class EngineFailed(RuntimeError):
    """One engine failed one workload (a timeout on a loaded machine): reported, not fatal."""


def multipart_etag(path: Path, part: int) -> str:
    """The ETag SeaweedFS (like AWS) gives a multipart object: md5 of the parts' md5s, -N."""
    digests = []
    with open(path, "rb") as f:
        while chunk := f.read(part):
            digests.append(hashlib.md5(chunk).digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def object_md5(s3: Any, key: str) -> str:
    """md5 of an object's bytes as read back by boto3 (an independent reader)."""
    md5 = hashlib.md5()
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    while piece := body.read(8 * MiB):
        md5.update(piece)
    return md5.hexdigest()


def throughput(args: argparse.Namespace, env: dict[str, str], work: Path, s3: Any) -> None:
    size, part = args.size, args.part
    large = work / "large.bin"
    with open(large, "wb") as f:
        for _ in range(size // (4 * MiB)):
            f.write(os.urandom(4 * MiB))
    expected_etag = multipart_etag(large, part)
    md5 = hashlib.md5()
    with open(large, "rb") as f:  # in pieces: a child's ru_maxrss starts at ours (fork)
        while piece := f.read(8 * MiB):
            md5.update(piece)
    source_md5 = md5.hexdigest()
    s3.upload_file(str(large), BUCKET, "large.bin")
    body = s3.get_object(Bucket=BUCKET, Key="large.bin")["Body"]
    while body.read(8 * MiB):  # the server's caches warm, untimed
        pass
    from awscrt import checksums

    crc_sum = 0
    for i in range(args.count):
        data = os.urandom(SMALL)
        s3.put_object(Bucket=BUCKET, Key=f"small-src/{i:05d}", Body=data)
        crc_sum += checksums.crc32c(data)
    crc_sum &= 0xFFFFFFFFFFFF
    checks = {"etag": expected_etag, "md5": source_md5, "crc_sum": crc_sum}
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    failures: list[str] = []
    for round_ in range(args.rounds):
        for workload, names in WORKLOADS.items():
            names = [n for n in names if n in args.engines]
            if workload not in args.workloads or not names:
                continue
            shift = round_ % len(names)
            for engine in names[shift:] + names[:shift]:
                tag = f"{engine}-{round_}"
                try:
                    got = run_one(args, env, work, s3, workload, engine, tag, round_, checks)
                except EngineFailed as exc:
                    print(f"  FAILED {exc}", file=sys.stderr, flush=True)
                    failures.append(f"{workload} {engine} round {round_ + 1}: {exc}")
                    continue
                results.setdefault((workload, engine), []).append(got)
                print(
                    f"  {workload:<12} {engine:<14} round {round_ + 1}: {got['seconds']:7.3f} s"
                    f", cpu {got['cpu_seconds']:.2f} s (load {load()})",
                    file=sys.stderr,
                    flush=True,
                )
        # after every round: an interrupted spike still leaves its figures
        print_throughput(args, results, round_ + 1)
    for line in failures:
        print(f"FAILED (not in the table): {line.splitlines()[0][:300]}")


def run_one(
    args: argparse.Namespace,
    env: dict[str, str],
    work: Path,
    s3: Any,
    workload: str,
    engine: str,
    tag: str,
    round_: int,
    checks: dict[str, Any],
) -> dict[str, Any]:
    """One engine on one workload, its result checked by an independent reader."""
    size = args.size
    large = work / "large.bin"
    expected_etag, source_md5, crc_sum = checks["etag"], checks["md5"], checks["crc_sum"]
    sizes = ["--size", str(size), "--part", str(args.part), "--streams", str(args.streams)]
    small = ["--count", str(args.count), "--inflight", str(args.inflight)]
    if workload == "large-down":
        out = work / f"down-{tag}.bin"
        got = worker(env, engine, workload, "--path", str(out), *sizes)
        if out.stat().st_size != size or (
            round_ == 0 and not filecmp.cmp(large, out, shallow=False)
        ):
            raise SystemExit(f"{engine}: the download differs from its source")
        out.unlink()
    elif workload == "large-up":
        dst = f"up/{tag}.bin"
        got = worker(env, engine, workload, "--path", str(large), "--dst", dst, *sizes)
        etag = str(s3.head_object(Bucket=BUCKET, Key=dst)["ETag"]).strip('"')
        if etag != expected_etag:
            raise SystemExit(f"{engine}: uploaded ETag {etag}, expected {expected_etag}")
        s3.delete_object(Bucket=BUCKET, Key=dst)
    elif workload in ("copy-object", "part-copy"):
        dst = f"copy/{tag}.bin"
        got = worker(env, engine, workload, "--dst", dst, *sizes)
        head = s3.head_object(Bucket=BUCKET, Key=dst)
        if head["ContentLength"] != size:
            raise SystemExit(f"{engine}: copy holds {head['ContentLength']} bytes")
        if round_ == 0 and object_md5(s3, dst) != source_md5:
            raise SystemExit(f"{engine}: {workload} holds other bytes")
        s3.delete_object(Bucket=BUCKET, Key=dst)
    elif workload == "small-up":
        prefix = f"small-up-{tag}"
        got = worker(env, engine, workload, "--prefix", prefix, *small)
        listed = [
            o["Size"]
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=BUCKET, Prefix=prefix + "/"
            )
            for o in page.get("Contents", [])
        ]
        if (len(listed), sum(listed)) != (args.count, args.count * SMALL):
            raise SystemExit(f"{engine}: small-up left {len(listed)} objects")
    else:
        got = worker(env, engine, workload, "--prefix", "small-src", *small)
        if got["check"] != crc_sum:
            raise SystemExit(f"{engine}: small-down read other bytes")
    return got


def print_throughput(
    args: argparse.Namespace, results: dict[tuple[str, str], list[dict[str, Any]]], rounds: int
) -> None:
    size = args.size
    print(f"\nthroughput (load average {load()}; {rounds} round(s), engines interleaved)")
    head = (
        f"{'workload':<12} {'engine':<14} {'best s':>7} {'median':>7} {'best speed':>14} "
        f"{'cpu s':>6} {'cpu/GiB or /1k req':>18} {'RSS MiB':>7}  runs (s)"
    )
    print(head)
    print("-" * len(head))
    for (workload, engine), runs in results.items():
        secs = [r["seconds"] for r in runs]
        cpu = statistics.median(r["cpu_seconds"] for r in runs)
        best = min(secs)
        if workload.startswith("small"):
            speed = f"{args.count / best:,.0f} obj/s"
            per = f"{cpu / args.count * 1000:.2f} s/1k"
        else:
            speed = f"{size / MiB / best:,.0f} MiB/s"
            per = f"{cpu / (size / (1 << 30)):.2f} s/GiB"
        rss = max(r["rss_bytes"] for r in runs) / MiB
        print(
            f"{workload:<12} {engine:<14} {best:>7.3f} {statistics.median(secs):>7.3f} "
            f"{speed:>14} {cpu:>6.2f} {per:>18} {rss:>7.0f}  " + " ".join(f"{s:.3f}" for s in secs)
        )
    print(
        "seconds: the workload alone (imports and client set-up excluded); cpu s: median user +"
        " system of every\nthread of the engine's process (the server's CPU not included; it "
        "shares the 2 cores)"
    )


def callgrind(args: argparse.Namespace, env: dict[str, str]) -> None:
    valgrind = shutil.which("valgrind")
    if not valgrind:
        print("\ncallgrind: valgrind not installed (apt-get install valgrind), skipped")
        return
    n = args.callgrind_count
    print(f"\ninstructions per small request (callgrind, {n} sequential 16 KiB requests)")
    print(f"{'engine':<14} {'PUT Ir/req':>12} {'GET Ir/req':>12} {'set-up Ir':>14}")
    cg_env = {**env, "PYTHONMALLOC": "malloc"}

    def count(engine: str, workload: str, requests: int) -> int:
        argv = [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(HERE / "worker.py"),
            engine,
            workload,
            "--count",
            str(requests),
            "--inflight",
            "1",
            "--prefix",
            f"cg-{engine}",
        ]
        done = subprocess.run(argv, env=cg_env, capture_output=True, text=True, check=False)
        match = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or not match:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
        return int(match.group(1))

    for engine in args.engines:
        base = count(engine, "callgrind-up", 0)
        up = (count(engine, "callgrind-up", n) - base) / n
        down = (count(engine, "callgrind-down", n) - base) / n
        print(f"{engine:<14} {up:>12,.0f} {down:>12,.0f} {base:>14,}", flush=True)
    print(
        "Ir: instructions of every thread of the process (user space), the same figure whatever "
        "the load;\nper request = (run of N requests - run of 0) / N, after one warm-up PUT and "
        "GET in both runs; PUT includes\nthe crc32c of 16 KiB, GET a crc32c of the body (the "
        "check), both in C"
    )


def startup(env: dict[str, str]) -> None:
    print(f"\nstart-up per engine (load average {load()})")
    print(
        f"{'engine':<20} {'import ms':>10} {'import+client ms':>17} {'import+client':>14}   imports"
    )
    print(f"{'':<20} {'':>10} {'':>17} {'M instr.':>14}")

    def best_wall(code: str) -> float:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            times.append(time.perf_counter() - t)
        return min(times)

    valgrind = shutil.which("valgrind")

    def instructions(code: str) -> int:
        """User-space instructions of a fresh interpreter running ``code`` (load-independent)."""
        if not valgrind:
            return 0
        done = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                "-c",
                code,
            ],
            env={**env, "PYTHONMALLOC": "malloc"},
            capture_output=True,
            text=True,
            check=True,
        )
        match = re.search(r"Collected : (\d+)", done.stderr)
        return int(match.group(1)) if match else 0

    bare = best_wall("pass")
    bare_ir = instructions("pass")
    endpoint = env["SPIKE_ENDPOINT"]
    for name, code in STARTUP.items():
        module = IMPORTS[name]
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        total = 0
        for line in done.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and not parts[2].startswith("  ") and parts[1].strip().isdigit():
                total += int(parts[1])  # cumulative us of each top-level import
        wall = best_wall(f"E = {endpoint!r}\n{code}") - bare
        ir = instructions(f"E = {endpoint!r}\n{code}") - bare_ir
        print(
            f"{name:<20} {total / 1000:>10.0f} {wall * 1000:>17.0f} {ir / 1e6:>14,.0f}   {module}"
        )
    print(
        "import ms: python -X importtime, cumulative of the top-level imports; import+client: "
        "wall of a fresh\ninterpreter importing and making its client, best of 5, minus a bare "
        f"interpreter ({bare * 1000:.0f} ms); M instr.: the same under callgrind, minus a bare\n"
        "interpreter's instructions: the figure to compare on a loaded machine"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="throughput,callgrind,startup")
    p.add_argument("--engines", default=",".join((*engines.ENGINES, "obstore-sha256")))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="of the throughput part")
    p.add_argument("--size", type=int, default=1 << 30)
    p.add_argument("--part", type=int, default=64 * MiB)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--inflight", type=int, default=32)
    p.add_argument("--callgrind-count", type=int, default=100)
    p.add_argument("--dir", default=None)
    p.add_argument("--save", type=Path)
    args = p.parse_args(argv)
    args.engines = [e for e in args.engines.split(",") if e]
    args.workloads = [w for w in args.workloads.split(",") if w]
    parts = set(args.only.split(","))
    if args.save:
        sys.stdout = _Tee(sys.stdout, args.save)  # type: ignore[assignment]
    from tests.servers import SeaweedS3Server

    work = Path(tempfile.mkdtemp(prefix="mover-spike-", dir=args.dir))
    try:
        with SeaweedS3Server() as server:
            import awscrt
            import boto3
            import botocore
            import obstore

            env = {
                **os.environ,
                **server.env(),
                "AWS_REGION": server.region,
                "AWS_EC2_METADATA_DISABLED": "true",
                "SPIKE_ENDPOINT": server.endpoint_url,
                "SPIKE_BUCKET": BUCKET,
            }
            s3 = boto3.client("s3", **server.client_kwargs())
            s3.create_bucket(Bucket=BUCKET)
            print(f"request-engine spike, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
            print(f"  {os.cpu_count()} CPUs shared with other work; load average at start {load()}")
            print(
                f"  SeaweedFS {server.endpoint_url}; botocore {botocore.__version__}, awscrt "
                f"{awscrt.__version__}, obstore {obstore.__version__}; python "
                f"{sys.version.split()[0]}"
            )
            print(f"  command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
            sys.stdout.flush()
            if "throughput" in parts:
                throughput(args, env, work, s3)
            if "callgrind" in parts:
                callgrind(args, env)
            if "startup" in parts:
                startup(env)
            print(f"\nload average at end {load()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
