#!/usr/bin/env python3
"""mover's backup repository side by side with restic: same data, same machine, same S3 server
and the same local disk, both encrypted.

The data set (issue 13), made once and shared by both tools, step by step:

* ``first``: a volume of ``--size`` (2 GiB) random bytes;
* ``day1`` .. ``dayN`` (``--days``, 5): each day 1-3 % of the volume's 64 KiB blocks (qcow2's
  cluster size) are rewritten with new random bytes, at random positions, in place;
* ``clone``: a second volume, a copy of the first (as of the last day) with 5 % of its blocks
  changed;
* ``sparse``: a ``--sparse-size`` (4 GiB) sparse image holding ``--sparse-data`` (500 MiB) of
  random data in 10 MiB extents, the rest holes.

Each step is backed up by every tool into every target (a local folder, and SeaweedFS over
S3), the tools taking turns in alternating order so that drift hits both. Then the last state
of the volume is restored by each, to a local file, and checked with ``sha256sum`` against the
source. Printed: seconds and MiB/s of each backup and restore, bytes added to each repository
by each step and in all, peak RSS of mover's processes, and the ratios against the targets:

* stored bytes: mover <= 1.1 x restic's;
* first backup and every incremental: >= 1.5 x restic's speed;
* restore: >= 1.5 x restic's speed.

Every target is a row of the harness's target table (``case  mover  peer  ratio  target
met/missed``); a miss says its measured cause (the store's raw write or read speed measured
here, the machine's load), never hidden.

Commands timed: ``mover snapshot backup FILE --to STORE --name NAME --json`` (embedded
executor, ``--streams``, 4), ``mover snapshot restore NAME OUT --from STORE`` (``--streams``
from ``--restore-streams``, 8: downloads do best with 8 here, TEST-SERVERS.md);
``restic -r REPO backup FILE --host bench``, ``restic -r REPO restore latest --host bench
--path FILE --target DIR`` followed by ``sync -f DIR`` (restic does not fsync what it
restores, mover does: the bench_local convention, "+sync"), restic 0.14's defaults otherwise
(repository v2, compression auto, its own cache folder per repository). Both derive their key
from a passphrase at each start (restic: scrypt; mover: Argon2id), so that cost is in both.
Both fsync their packs when backing up to a folder (strace).

Run: ``.venv/bin/python benchmarks/bench_restic.py`` (``--quick`` for a smoke check with 256
MiB; ``--targets local`` for the folder only). The work folder is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness/, beside this file
import harness as h
from harness import GiB, KiB, MiB, human

BLOCK = 64 * KiB
PASSPHRASE = "bench-restic passphrase: not a secret"
TARGET_STORED = 1.1
TARGET_SPEED = 1.5
BUCKETS = {"mover": "bench-mover", "restic": "bench-restic"}


@dataclass
class Run:
    seconds: float
    stdout: str
    rss: int = 0  #: bytes, peak resident set of the process
    cpu: float = 0.0  #: user + system CPU seconds of the process


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run(argv: list[str], env: dict[str, str]) -> Run:
    """Run a command, timed from start to exit, with its peak RSS and CPU seconds as GNU
    ``time`` reports them (a child's own wait4 figures would include this process's memory at
    the fork), or none where GNU time is missing."""
    report = Path(tempfile.mkstemp(prefix="bench-time-")[1]) if GNU_TIME else None
    full = [GNU_TIME, "-f", "%M %U %S", "-o", str(report), *argv] if report else argv
    start = time.perf_counter()
    proc = subprocess.Popen(full, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv[:4])}... failed ({proc.returncode}):\n{err.decode()}")
    if report is None:
        return Run(seconds, out.decode())
    rss, user, system = report.read_text().split()[-3:]
    report.unlink()
    return Run(seconds, out.decode(), int(rss) * KiB, float(user) + float(system))


def sha256sum(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


# --- the data set -----------------------------------------------------------------------------


def rewrite_blocks(path: Path, fraction: float, rng: random.Random) -> int:
    """Rewrite ``fraction`` of the file's 64 KiB blocks with random bytes; return the count."""
    blocks = os.path.getsize(path) // BLOCK
    chosen = rng.sample(range(blocks), max(1, int(blocks * fraction)))
    fd = os.open(path, os.O_WRONLY)
    try:
        for b in chosen:
            os.pwrite(fd, os.urandom(BLOCK), b * BLOCK)
    finally:
        os.close(fd)
    return len(chosen)


def make_sparse(path: Path, size: int, data: int, rng: random.Random) -> None:
    """A sparse image of ``size`` bytes holding ``data`` random bytes in 10 MiB extents."""
    extent = 10 * MiB
    slots = sorted(rng.sample(range(size // extent), max(1, data // extent)))
    h.write_random(path, size, [(slot * extent, extent) for slot in slots])


# --- the tools --------------------------------------------------------------------------------


class Tool:
    name = ""

    def __init__(self, target: str, work: Path, env: dict[str, str]) -> None:
        self.target = target
        self.work = work
        self.env = env
        self.rss = 0

    @property
    def label(self) -> str:
        return f"{self.name}/{self.target}"

    def init(self) -> None:
        raise NotImplementedError

    def backup(self, path: Path, name: str) -> Run:
        raise NotImplementedError

    def restore(self, path: Path, name: str, out: Path) -> tuple[Run, Path]:
        raise NotImplementedError


class Mover(Tool):
    name = "mover"

    def __init__(
        self, target: str, work: Path, env: dict[str, str], streams: int, restore_streams: int
    ) -> None:
        super().__init__(target, work, env)
        self.store = f"bench-{target}"
        self.streams = streams
        self.restore_streams = restore_streams
        self.cli = [sys.executable, "-m", "mover.cli.main"]

    def init(self) -> None:
        run([*self.cli, "repo", "init", self.store], self.env)

    def backup(self, path: Path, name: str) -> Run:
        r = run(
            [
                *self.cli,
                "snapshot",
                "backup",
                str(path),
                "--to",
                self.store,
                "--name",
                name,
                "--streams",
                str(self.streams),
                "--json",
            ],
            self.env,
        )
        self.rss = max(self.rss, r.rss)
        return r

    def restore(self, path: Path, name: str, out: Path) -> tuple[Run, Path]:
        dest = out / path.name
        r = run(
            [
                *self.cli,
                "snapshot",
                "restore",
                name,
                str(dest),
                "--from",
                self.store,
                "--streams",
                str(self.restore_streams),
            ],
            self.env,
        )
        self.rss = max(self.rss, r.rss)
        return r, dest


class Restic(Tool):
    name = "restic"

    def __init__(self, target: str, work: Path, env: dict[str, str], repo: str) -> None:
        super().__init__(target, work, env)
        self.repo = repo
        self.cache = work / f"restic-cache-{target}"
        self.base = ["restic", "-r", repo, "--cache-dir", str(self.cache), "--quiet"]

    def init(self) -> None:
        run([*self.base, "init"], self.env)

    def backup(self, path: Path, name: str) -> Run:
        return run([*self.base, "backup", "--host", "bench", str(path)], self.env)

    def restore(self, path: Path, name: str, out: Path) -> tuple[Run, Path]:
        r = run(
            [
                *self.base,
                "restore",
                "latest",
                "--host",
                "bench",
                "--path",
                str(path),
                "--target",
                str(out),
            ],
            self.env,
        )
        # restic does not fsync what it restores (strace: no fsync of the file); mover does,
        # before it renames the file into place. As in bench_local, the peer is timed with a
        # `sync -f` of the destination that follows ("+sync"), which the target is judged on.
        synced = run(["sync", "-f", str(out)], self.env)
        r.seconds += synced.seconds
        return r, out / str(path).lstrip("/")


# --- bounds: what the stores themselves do here ------------------------------------------------


def s3_bounds(client: Any, bucket: str, total: int) -> tuple[float, float]:
    """Raw PUT and GET MiB/s of 16 MiB objects on 4 threads with boto3 (no mover, no restic)."""
    body = os.urandom(16 * MiB)
    n = max(4, total // (16 * MiB))
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda i: client.put_object(Bucket=bucket, Key=f"bound/{i}", Body=body), range(n)
            )
        )
    put = n * 16 / (time.perf_counter() - start)
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda i: client.get_object(Bucket=bucket, Key=f"bound/{i}")["Body"].read(),
                range(n),
            )
        )
    get = n * 16 / (time.perf_counter() - start)
    for i in range(n):
        client.delete_object(Bucket=bucket, Key=f"bound/{i}")
    return put, get


def disk_bound(work: Path, total: int) -> float:
    """MiB/s of writing ``total`` bytes to a new file in 8 MiB pieces, fdatasync included."""
    path = work / "bound.bin"
    piece = os.urandom(8 * MiB)
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    for _ in range(total // (8 * MiB)):
        os.write(fd, piece)
    os.fdatasync(fd)
    os.close(fd)
    rate = total / MiB / (time.perf_counter() - start)
    path.unlink()
    return rate


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    logical: int
    seconds: dict[str, float] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    rss: dict[str, int] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the work folder goes")
    ap.add_argument("--size", type=int, default=2 * GiB)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--sparse-size", type=int, default=4 * GiB)
    ap.add_argument("--sparse-data", type=int, default=500 * MiB)
    ap.add_argument("--targets", default="local,s3")
    ap.add_argument("--streams", type=int, default=4, help="mover's streams for backups")
    ap.add_argument("--restore-streams", type=int, default=8, help="mover's streams for restores")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--quick", action="store_true", help="256 MiB, 2 days, 512 MiB sparse")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.days = 256 * MiB, 2
        args.sparse_size, args.sparse_data = 512 * MiB, 64 * MiB
    if shutil.which("restic") is None:
        raise SystemExit("restic is not installed: apt-get install restic")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    rng = random.Random(args.seed)
    sys.path.insert(0, str(h.REPO))  # tests.servers

    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="bench-restic-", dir=args.dir))
        if not args.keep:
            stack.callback(shutil.rmtree, work, True)
        env = dict(os.environ)
        env.update(
            MOVER_STATE_DIR=str(work / "state"),
            MOVER_CONFIG=str(work / "mover.toml"),
            BENCH_REPO_KEY=PASSPHRASE,
            RESTIC_PASSWORD=PASSPHRASE,
        )
        config = [
            "[stores.bench-local]",
            f'url = "file://{work}/mover-local/"',
            'repository_key_env = "BENCH_REPO_KEY"',
        ]
        (work / "mover-local").mkdir()
        tools: list[Tool] = []
        side: h.S3Side | None = None
        bounds: dict[str, float] = {}
        if "s3" in targets:
            from tests.servers import SeaweedS3Server

            s3 = stack.enter_context(SeaweedS3Server())
            side = h.S3Side(s3.endpoint_url, s3.access_key, s3.secret_key, s3.region, s3.pids)
            side.ensure_buckets(list(BUCKETS.values()))
            config += [
                "[stores.bench-s3]",
                f'url = "s3://{BUCKETS["mover"]}/m/"',
                f'endpoint_url = "{s3.endpoint_url}"',
                'credentials_env = "BENCH_S3"',
                'repository_key_env = "BENCH_REPO_KEY"',
            ]
            env.update(
                BENCH_S3_ACCESS_KEY_ID=s3.access_key,
                BENCH_S3_SECRET_ACCESS_KEY=s3.secret_key,
                AWS_ACCESS_KEY_ID=s3.access_key,
                AWS_SECRET_ACCESS_KEY=s3.secret_key,
            )
            bounds["s3_put"], bounds["s3_get"] = s3_bounds(side.client, BUCKETS["mover"], 512 * MiB)
        (work / "mover.toml").write_text("\n".join(config) + "\n")
        bounds["disk_write"] = disk_bound(work, 512 * MiB)
        for t in targets:
            restic_repo = (
                str(work / "restic-local")
                if t == "local"
                else f"s3:{s3.endpoint_url}/{BUCKETS['restic']}/r"
            )
            tools += [
                Mover(t, work, env, args.streams, args.restore_streams),
                Restic(t, work, env, restic_repo),
            ]
        for tool in tools:
            tool.init()

        def stored(tool: Tool) -> int:
            if tool.target == "local":
                root = work / ("mover-local/repository" if tool.name == "mover" else "restic-local")
                return h.total_of(root)
            assert side is not None
            prefix = "m/repository/" if tool.name == "mover" else "r/"
            return side.shape(BUCKETS[tool.name], prefix)[1]

        vol = work / "vol.img"
        clone = work / "clone.img"
        sparse = work / "sparse.img"
        print(f"# making the data: {human(args.size)} volume", flush=True)
        h.write_random(vol, args.size)
        steps: list[Step] = []
        totals = {t.label: 0 for t in tools}
        load: list[float] = [os.getloadavg()[0]]

        def step(name: str, path: Path, snapshot: str, logical: int) -> None:
            s = Step(name, logical)
            order = tools if len(steps) % 2 == 0 else list(reversed(tools))
            for tool in order:
                before = totals[tool.label]
                r = tool.backup(path, snapshot)
                s.seconds[tool.label], s.cpu[tool.label], s.rss[tool.label] = (
                    r.seconds,
                    r.cpu,
                    r.rss,
                )
                totals[tool.label] = stored(tool)
                s.added[tool.label] = totals[tool.label] - before
            steps.append(s)
            load.append(os.getloadavg()[0])
            cells = "  ".join(
                f"{lab} {s.seconds[lab]:6.1f}s (cpu {s.cpu[lab]:5.1f}s, rss "
                f"{s.rss[lab] // MiB} MiB) +{human(s.added[lab])}"
                for lab in s.seconds
            )
            print(f"{name:7s} {cells}", flush=True)

        step("first", vol, "vol", args.size)
        for day in range(1, args.days + 1):
            n = rewrite_blocks(vol, 0.01 + 0.02 * rng.random(), rng)
            print(f"# day {day}: {n} blocks of 64 KiB rewritten ({n * BLOCK / args.size:.1%})")
            step(f"day{day}", vol, "vol", args.size)
        shutil.copyfile(vol, clone)
        rewrite_blocks(clone, 0.05, rng)
        step("clone", clone, "clone", args.size)
        make_sparse(sparse, args.sparse_size, args.sparse_data, rng)
        step("sparse", sparse, "sparse", args.sparse_size)

        print("# restoring the volume's last state, checked with sha256sum", flush=True)
        expected = sha256sum(vol)
        restores: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for tool in tools:
            out = work / f"restore-{tool.name}-{tool.target}"
            out.mkdir()
            r, path = tool.restore(vol, "vol", out)
            if sha256sum(path) != expected:
                raise SystemExit(f"{tool.label}: the restored volume differs from the source")
            restores[tool.label], cpu[tool.label] = r.seconds, r.cpu
            shutil.rmtree(out)
            print(
                f"restore {tool.label:14s} {r.seconds:6.1f}s {args.size / MiB / r.seconds:7.1f} "
                f"MiB/s (cpu {r.cpu:5.1f}s, rss {r.rss // MiB} MiB)"
            )
        load.append(os.getloadavg()[0])

        report(args, steps, totals, restores, cpu, bounds, tools, load, targets)
    return 0


def report(
    args: argparse.Namespace,
    steps: list[Step],
    totals: dict[str, int],
    restores: dict[str, float],
    restore_cpu: dict[str, float],
    bounds: dict[str, float],
    tools: list[Tool],
    load: list[float],
    targets: list[str],
) -> None:
    cores = os.cpu_count() or 1
    print()
    version = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout
    print(
        f"## mover vs restic {version.split()[1]}"
        f", volume {human(args.size)}, {args.days} days, sparse {human(args.sparse_size)} "
        f"({human(args.sparse_data)} data); load average {min(load):.1f}-{max(load):.1f} "
        f"on {cores} cores"
    )
    print("bounds measured here: " + ", ".join(f"{k} {v:.0f} MiB/s" for k, v in bounds.items()))
    speed_target = f">= {TARGET_SPEED}x restic"
    rows: list[h.Row] = []

    def speed_row(case: str, mover_s: float, restic_s: float, why: str) -> None:
        ratio = restic_s / mover_s
        verdict = "met" if ratio >= TARGET_SPEED else f"MISSED: {why}"
        row = (f"{mover_s:.1f} s", f"restic {restic_s:.1f} s", f"{ratio:.2f}x")
        rows.append(h.Row(case, *row, speed_target, verdict))

    for t in targets:
        m, r = f"mover/{t}", f"restic/{t}"
        print(f"\n### {t}")
        print(
            f"{'step':8s} {'mover s':>8s} {'restic s':>9s} {'speed x':>8s} {'cpu x':>6s} "
            f"{'mover +':>11s} {'restic +':>11s}"
        )
        for s in steps:
            print(
                f"{s.name:8s} {s.seconds[m]:8.1f} {s.seconds[r]:9.1f} "
                f"{s.seconds[r] / s.seconds[m]:7.2f}x {s.cpu[r] / max(s.cpu[m], 0.01):5.2f}x "
                f"{human(s.added[m]):>11s} {human(s.added[r]):>11s}"
            )
            why = cause(t, s.name, s.logical, s.seconds[m], s.added[m], bounds, load, cores)
            speed_row(f"{s.name} backup, {t}", s.seconds[m], s.seconds[r], why)
        ratio = totals[m] / totals[r]
        print(f"{'stored':8s} {human(totals[m]):>8s} {human(totals[r]):>9s} {ratio:7.2f}x")
        rows.append(
            h.Row(
                f"stored bytes, {t}",
                human(totals[m]),
                f"restic {human(totals[r])}",
                f"{ratio:.2f}x",
                f"<= {TARGET_STORED}x restic",
                "met" if ratio <= TARGET_STORED else "MISSED: see the per-step growth above",
            )
        )
        rr = restores[r] / restores[m]
        print(
            f"{'restore':8s} {restores[m]:8.1f} {restores[r]:9.1f} {rr:7.2f}x "
            f"{restore_cpu[r] / max(restore_cpu[m], 0.01):5.2f}x"
        )
        why = cause(t, "restore", args.size, restores[m], 0, bounds, load, cores, reading=True)
        speed_row(f"restore, {t}", restores[m], restores[r], why)
    rss = max((t.rss for t in tools if isinstance(t, Mover)), default=0)
    bound = args.streams * (8 + 16 + 2) * MiB + 150 * MiB
    rows.append(
        h.limit_row(
            "mover peak RSS",
            human(rss),
            rss <= bound,
            f"<= streams x (read 8 + pack 16 + 2 chunks) MiB + 150 MiB = {human(bound)}",
        )
    )
    h.print_targets(
        rows,
        "targets",
        note="ratio: restic seconds / mover seconds (restic's restore with its `sync -f`); "
        "stored: mover bytes / restic bytes.",
    )


def cause(
    target: str,
    step: str,
    logical: int,
    seconds: float,
    stored: int,
    bounds: dict[str, float],
    load: list[float],
    cores: int,
    reading: bool = False,
) -> str:
    """Why a speed target was missed, from what was measured."""
    parts = [f"{step}: mover {logical / MiB / seconds:.0f} MiB/s of volume"]
    if not reading and stored:
        rate = stored / MiB / seconds
        bound = bounds.get("s3_put" if target == "s3" else "disk_write")
        parts.append(f"stored {human(stored)} at {rate:.0f} MiB/s")
        if bound and rate > 0.6 * bound:
            parts.append(
                f"near the store's raw write speed here ({bound:.0f} MiB/s): "
                "bound by the store, not by either client"
            )
    if reading:
        # A restore reads from the store, then writes and syncs the local file: in series for
        # one byte, in parallel across streams; the slower of the two bounds it at best.
        read = bounds.get("s3_get" if target == "s3" else "disk_write")
        write = bounds.get("disk_write")
        if read and write:
            serial = 1 / (1 / read + 1 / write)
            parts.append(
                f"reads at {read:.0f} MiB/s and a synced local write at {write:.0f} MiB/s here "
                f"(one after the other: {serial:.0f} MiB/s; overlapped at best "
                f"{min(read, write):.0f} MiB/s), on the 2 cores the server shares"
            )
    if max(load) > cores:
        parts.append(
            f"load average up to {max(load):.1f} on {cores} cores: other work "
            "took CPU from both tools"
        )
    return "; ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
