"""A source that changes while it is copied: rewritten in place (as ``dd conv=notrunc`` does),
truncated, or appended to, after a chosen number of its chunks are done.

Routes: file -> file (the kernel-copy strategy), file -> S3, S3 -> file (the object replaced
by a PUT of the changed bytes) and file -> file on the fleet. Local I/O is paced (see
tests/faults/pacer) so that each chunk takes a noticeable time and the change lands between
chunks. A done copy must be byte-identical to one consistent version of the source, the
original or the changed one; a mix of both is bad.
"""

from __future__ import annotations

import os
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
    S3Dest,
    case_ids,
    conclude,
    count,
    judge,
    kind_of,
    rng,
    sha256_bytes,
    wait_until,
)

FAMILY = "source_change"
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults, pytest.mark.s3]

KINDS = [
    (route, change)
    for route in ("file-file", "file-s3", "s3-file", "fleet-file")
    for change in ("rewrite", "truncate", "append")
]
CASES = count(12, 4)
#: Seconds added to every read or write of the paced folder.
PACE_S = 0.08


@pytest.fixture(scope="module")
def bucket(s3_server: Any) -> Iterator[tuple[Any, str]]:
    import boto3

    client = boto3.client("s3", **s3_server.client_kwargs())
    with rigs.bucket(client, "faults-change") as name:
        yield client, name


def changed(r: Any, data: bytes, change: str, chunk: int, fault: Fault) -> bytes:
    """The source after the change, as bytes (drawn from the fault's generator). A rewrite
    spans from the first chunk to the last, so that it covers chunks already copied and
    chunks not yet read: a new version written over the old one."""
    if change == "rewrite":
        at = r.randrange(chunk)
        end = r.randint(len(data) - (len(data) - 1) % chunk, len(data))
        fault.params.update(at=at, length=end - at)
        return data[:at] + r.randbytes(end - at) + data[end:]
    if change == "truncate":
        size = r.randint(len(data) // 4, len(data) - 1)
        fault.params.update(new_size=size)
        return data[:size]
    extra = r.randint(1, 2 * MiB)
    fault.params.update(appended=extra)
    return data + r.randbytes(extra)


def apply_to_file(path: Path, old: bytes, new: bytes, fault: Fault) -> None:
    """Change the file in place, as a program writing to it would (same inode)."""
    change = fault.params["change"]
    if change == "truncate":
        os.truncate(path, len(new))
        return
    at = len(old) if change == "append" else fault.params["at"]
    end = len(new) if change == "append" else at + fault.params["length"]
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(new[at:end])


@pytest.mark.parametrize("index", range(CASES), ids=case_ids(KINDS, CASES))
def test_source_change(
    index: int,
    fault: Fault,
    s3_server: Any,
    bucket: tuple[Any, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    route, change = kind_of(KINDS, index, CASES)
    r = rng(FAMILY, index)
    fault.params.update(route=route, change=change)
    if route == "fleet-file":
        fleet = request.getfixturevalue("fault_fleet")
        fleet.reset(r.randrange(2**31))
        pace, env = fleet.pace, fleet.env
    else:
        pace = rigs.Pace(tmp_path / "pace.json")
        env = rigs.mover_env(tmp_path, pace, **s3_server.env())
    client, name = bucket
    src_dir, out_dir = tmp_path / "src", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    chunk = 5 if route == "file-s3" else 1
    # The fleet runs four chunks at once: more of them, so that the change lands mid-job.
    low, high = (8, 10) if route == "fleet-file" else (3, 5)
    size = r.randint(low * chunk * MiB, high * chunk * MiB - 1)
    data = r.randbytes(size)
    n = -(-size // (chunk * MiB))
    after = r.randint(1, n - 2)
    streams = r.choice([1, 2])
    new = changed(r, data, change, chunk * MiB, fault)
    fault.params.update(size=size, chunk_mib=chunk, chunks=n, after_chunks=after, streams=streams)

    key = f"change-{index:03d}-{r.randrange(10**6)}.bin"
    if route == "s3-file":
        client.put_object(Bucket=name, Key=key, Body=data)
        source = f"s3://{name}/{key}"
        pace.set([out_dir], 3 * PACE_S)  # one paced call per chunk (its write)
    else:
        (src_dir / "src.bin").write_bytes(data)
        source = str(src_dir / "src.bin")
        pace.set([src_dir], 3 * PACE_S if route == "fleet-file" else PACE_S)
    dest: Any
    if route == "file-s3":
        dest = S3Dest(client, name, key, f"s3://{name}/{key}")
    else:
        dest = FileDest(out_dir / "copy.bin")
    args = [source, dest.url, "--chunk-size", f"{chunk}MiB", "--streams", str(streams)]

    runs = []
    if route == "fleet-file":
        job_id = rigs.submit(fleet, tmp_path, *args)
        progress = lambda: fleet.job(job_id)  # noqa: E731
    else:
        cli = rigs.start(env, tmp_path, "copy", "-q", *args)
        progress = lambda: rigs.embedded_job(tmp_path)  # noqa: E731
    job = wait_until(lambda: (j := progress()) and rigs.chunks_done(j) >= after and j, 60)
    if job is not None and job.state not in rigs.FINAL:
        fault.params["done_at_change"] = rigs.chunks_done(job)
        if route == "s3-file":
            client.put_object(Bucket=name, Key=key, Body=new)
        else:
            apply_to_file(src_dir / "src.bin", data, new, fault)
        fault.injected = 1
    pace.off()
    if route == "fleet-file":
        job = rigs.fleet_outcome(fleet, job_id, tmp_path, fault)
    else:
        runs.append(cli.result(120))
        job = rigs.embedded_job(tmp_path)
    if not fault.injected:
        fault.outcome = MISSED
    else:
        versions = {"original": sha256_bytes(data), "changed": sha256_bytes(new)}
        judge(fault, rigs.verdict_of(job, runs, fault), dest, versions)
    conclude(fault, request.node.nodeid)
