"""Fleet workers killed with SIGKILL while they run a job: a pool child running one of its
chunks (Celery sees WorkerLostError and requeues it), the worker's main process alone (its
pool children orphaned), or the whole worker, main process and pool together (its chunks
come back after the visibility time-out, 5 s here); in the middle of the job or during its
commit.

Commits are made slow enough to be hit: S3's CompleteMultipartUpload is held by the fault
proxy before the server sees it (``hold``) or answered late after the server completed it
(``stall``); a file's ``fdatasync`` is paced. Routes: file -> S3 (5 MiB parts), file -> file
and S3 -> file (1 MiB chunks), all through real ``mover worker`` processes (prefork, -c 2).
A job that does not settle within 30 s is resumed by the harness (``mover resume``).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.faultproxy import Rule
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

FAMILY = "worker_kill"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.faults,
    pytest.mark.s3,
    pytest.mark.redis,
    pytest.mark.celery,
]

#: (route, victim, moment); victim: a pool ``child``, the ``main`` process alone (its pool
#: children orphaned), or the whole process ``group`` (a host or container dying).
KINDS = [
    ("file-s3", "child", "mid"),
    ("file-file", "main", "mid"),
    ("s3-file", "child", "commit"),
    ("file-s3", "group", "commit"),
    ("file-file", "group", "mid"),
    ("file-s3", "main", "commit"),
    ("file-file", "child", "commit"),
    ("s3-file", "group", "mid"),
]
CASES = count(8, 3)
#: How long a paced fdatasync, or a held or stalled CompleteMultipartUpload, takes.
COMMIT_S = 3.0


def _strike(fleet: Any, job_id: str, victim: str, fault: Fault, orphans: list[int]) -> bool:
    """Kill the pool child, the main process or the whole worker running a task of the job;
    True if it was done. The pool children a killed main process leaves are added to
    ``orphans`` (the harness stops them once the job settled)."""

    def running() -> Any:
        job = fleet.job(job_id)
        if job is not None and job.state in rigs.FINAL:
            return "over"
        return fleet.active(job_id, 0.5)

    found = wait_until(running, 15, 0.05)
    if not found or found == "over":
        return False
    worker, pid, task = found[0]
    job = fleet.job(job_id)
    if job is None or job.state in rigs.FINAL:
        return False
    if victim == "child":
        os.kill(pid, signal.SIGKILL)
    elif victim == "main":
        orphans.extend(worker.children())
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(10)
    else:
        worker.kill(signal.SIGKILL)
        worker.proc.wait(10)
    fault.params.setdefault("killed", []).append(f"{victim} of {worker.name} in {task}")
    return True


@pytest.mark.parametrize("index", range(CASES), ids=case_ids(KINDS, CASES))
def test_worker_kill(
    index: int,
    fault: Fault,
    fault_fleet: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    fleet = fault_fleet
    route, victim, moment = kind_of(KINDS, index, CASES)
    r = rng(FAMILY, index)
    fleet.reset(r.randrange(2**31))
    source_kind, dest_kind = route.split("-")
    chunk = 5 if dest_kind == "s3" else 1
    # Enough chunks for four pool slots to take several rounds: 10-14 of 1 MiB, 4-6 parts.
    low, high = (4, 6) if chunk > 1 else (10, 14)
    size = r.randint(low * chunk * MiB, high * chunk * MiB)
    data = r.randbytes(size)
    n = -(-size // (chunk * MiB))
    # Several kills in one job where chunks are many (1 MiB); S3 parts come in one wave.
    kills = r.choice([1, 2]) if moment == "mid" and chunk == 1 else 1
    fault.params.update(route=route, victim=victim, moment=moment, size=size, chunks=n)
    src_dir, out_dir = tmp_path / "src", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    key = f"kill-{index:03d}-{r.randrange(10**6)}.bin"
    client, bucket = fleet.client, fleet.bucket

    if source_kind == "s3":
        client.put_object(Bucket=bucket, Key=key, Body=data)
        source = f"store:faulty/{key}"
        fleet.proxy.add(Rule("stall", "GET", key, "Range", times=None, stall_s=0.3))
    else:
        (src_dir / "src.bin").write_bytes(data)
        source = str(src_dir / "src.bin")
    dest: Any
    if dest_kind == "s3":
        dest = S3Dest(client, bucket, key, f"store:faulty/{key}")
        if moment == "commit":
            action = r.choice(["hold", "stall"])
            fault.params["complete"] = action
            fleet.proxy.add(Rule(action, "POST", r"[?&]uploadId=", stall_s=COMMIT_S))
        # Parts answered late, so that several are in flight when the kill comes.
        fleet.proxy.add(Rule("stall", "PUT", r"[?&]partNumber=", times=None, stall_s=1.0))
    else:
        dest = FileDest(out_dir / "copy.bin")
    if dest_kind == "file" or source_kind == "file":
        fleet.pace.set([src_dir, out_dir], 0.25, COMMIT_S if moment == "commit" else 0.25)

    job_id = rigs.submit(fleet, tmp_path, source, dest.url, "--chunk-size", f"{chunk}MiB")
    orphans: list[int] = []
    if moment == "commit":

        def committing() -> bool:
            job = fleet.job(job_id)
            if job is None or job.state in rigs.FINAL:
                return True
            held = any(
                f.action in ("hold", "stall") and "uploadId" in f.path for f in fleet.proxy.fired
            )
            return held or rigs.item_state(job) == "committing"

        wait_until(committing, 60, 0.05)
        fault.injected = int(_strike(fleet, job_id, victim, fault, orphans))
    else:
        for k in range(kills):
            # S3 parts run in one or two waves: strike in the first; 1 MiB chunks by thirds.
            after = r.randint(0, 1) if chunk > 1 else r.randint(k * n // 3, (k + 1) * n // 3)
            fault.params.setdefault("after_chunks", []).append(after)
            wait_until(lambda: rigs.chunks_done(fleet.job(job_id)) >= after, 60, 0.05)  # noqa: B023
            fault.injected += int(_strike(fleet, job_id, victim, fault, orphans))
    fleet.ensure(wait=False)  # a killed worker's replacement starts while the job goes on
    job = rigs.fleet_outcome(fleet, job_id, tmp_path, fault)
    fleet.pace.off()
    left = [pid for pid in orphans if rigs.stop_pid(pid)]
    if left:
        fault.notes.append(f"pool children of the killed main process still ran: {left}")
    if not fault.injected:
        fault.outcome = MISSED
    else:
        judge(fault, rigs.verdict_of(job, [], fault), dest, {"source": sha256_bytes(data)})
    conclude(fault, request.node.nodeid)
