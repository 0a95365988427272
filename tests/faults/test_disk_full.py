"""A full disk: the destination is a small tmpfs that the harness fills to the last byte
while a copy writes into it (after a chosen number of chunks), or before the copy starts.

Routes: file -> file and S3 -> file embedded, file -> file on the fleet, and a copy that
finds the disk already too full. A copy that meets the full disk must fail clean (its
temporary file removed, nothing at the destination, one line of error); in about half of the
faults the harness then frees the space and runs ``mover resume``, which must end done and
identical.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults import rigs
from tests.faults.harness import (
    MISSED,
    Fault,
    FileDest,
    MiB,
    case_ids,
    conclude,
    count,
    judge,
    kind_of,
    rng,
    sha256_bytes,
    wait_until,
)

FAMILY = "disk_full"
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults, pytest.mark.s3]

KINDS = [("file", "mid"), ("s3", "mid"), ("fleet", "mid"), ("file", "before")]
CASES = count(8, 3)
PACE_S = 0.08
DISK_BYTES = 24 * MiB


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with rigs.tmpfs(tmp_path_factory.mktemp("disk") / "mnt", DISK_BYTES) as mount:
        yield mount


@pytest.fixture(scope="module")
def bucket(s3_server: Any) -> Iterator[tuple[Any, str]]:
    import boto3

    client = boto3.client("s3", **s3_server.client_kwargs())
    with rigs.bucket(client, "faults-disk") as name:
        yield client, name


@pytest.mark.parametrize("index", range(CASES), ids=case_ids(KINDS, CASES))
def test_disk_full(
    index: int,
    fault: Fault,
    s3_server: Any,
    bucket: tuple[Any, str],
    disk: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    route, moment = kind_of(KINDS, index, CASES)
    r = rng(FAMILY, index)
    out = disk / f"case-{index}"
    out.mkdir()
    try:
        _run_case(index, route, moment, r, fault, s3_server, bucket, out, tmp_path, request)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    conclude(fault, request.node.nodeid)


def _run_case(
    index: int,
    route: str,
    moment: str,
    r: Any,
    fault: Fault,
    s3_server: Any,
    bucket: tuple[Any, str],
    out: Path,
    folder: Path,
    request: pytest.FixtureRequest,
) -> None:
    size = r.randint(6 * MiB, 10 * MiB)
    data = r.randbytes(size)
    n = -(-size // MiB)
    # The fleet runs four chunks at once: strike in the first half there.
    after = r.randint(1, n // 2 if route == "fleet" else n - 2)
    streams = r.choice([1, 2])
    resume = moment == "mid" and r.random() < 0.5
    fault.params.update(route=route, moment=moment, size=size, chunks=n, streams=streams)
    if moment == "mid":
        fault.params.update(after_chunks=after, resume=resume)
    if route == "fleet":
        fleet = request.getfixturevalue("fault_fleet")
        fleet.reset(r.randrange(2**31))
        pace, env = fleet.pace, fleet.env
    else:
        pace = rigs.Pace(folder / "pace.json")
        env = rigs.mover_env(folder, pace, **s3_server.env())
    client, name = bucket
    if route == "s3":
        key = f"disk-{index:03d}-{r.randrange(10**6)}.bin"
        client.put_object(Bucket=name, Key=key, Body=data)
        source = f"s3://{name}/{key}"
        pace.set([out], PACE_S)
    else:
        src_dir = folder / "src"
        src_dir.mkdir()
        (src_dir / "src.bin").write_bytes(data)
        source = str(src_dir / "src.bin")
        pace.set([src_dir], 3 * PACE_S if route == "fleet" else PACE_S)
    dest = FileDest(out / "copy.bin")
    args = [source, dest.url, "--chunk-size", "1MiB", "--streams", str(streams)]
    versions = {"source": sha256_bytes(data)}

    if moment == "before":
        rigs.fill(out)
        free = shutil.disk_usage(out).free
        os.truncate(out / "filler", (out / "filler").stat().st_size - size // 2 + free)
        fault.params["free"] = shutil.disk_usage(out).free
        fault.injected = 1
        result = rigs.run(env, folder, "copy", "-q", *args)
        pace.off()
        (out / "filler").unlink()
        judge(fault, rigs.verdict_of(rigs.embedded_job(folder), [result], fault), dest, versions)
        return

    runs = []
    if route == "fleet":
        job_id = rigs.submit(fleet, folder, *args)
        progress = lambda: fleet.job(job_id)  # noqa: E731
    else:
        cli = rigs.start(env, folder, "copy", "-q", *args)
        progress = lambda: rigs.embedded_job(folder)  # noqa: E731
    job = wait_until(lambda: (j := progress()) and rigs.chunks_done(j) >= after and j, 60)
    if job is not None and job.state not in rigs.FINAL:
        fault.params["done_at_fill"] = rigs.chunks_done(job)
        rigs.fill(out)
        fault.injected = 1
    if route == "fleet":
        job = rigs.fleet_outcome(fleet, job_id, folder, fault)
    else:
        runs.append(cli.result(120))
        job = rigs.embedded_job(folder)
        job_id = job.id if job is not None else ""
    pace.off()
    (out / "filler").unlink(missing_ok=True)
    if not fault.injected:
        fault.outcome = MISSED
        return
    verdict = rigs.verdict_of(job, runs, fault)
    if not resume or job is None or job.state == "done":
        judge(fault, verdict, dest, versions)
        return
    judge(fault, verdict, dest, versions, step="before resume")
    runs.append(rigs.run(env, folder, "resume", job_id, "-q", timeout_s=120))
    job = fleet.job(job_id) if route == "fleet" else rigs.embedded_job(folder, job_id)
    judge(fault, rigs.verdict_of(job, runs, fault), dest, versions)
