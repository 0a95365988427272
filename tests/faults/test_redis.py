"""The fleet's Redis (broker and job records) restarted in the middle of a job: SIGTERM (a
clean shutdown) or SIGKILL (a crash), then started again on the same port with its
append-only file, after a chosen number of chunks are done.

Half of the jobs are followed by ``mover copy --executor celery --wait``, which must end with
the job: exit 0 when it is done, exit 1 with one line when it failed, never a traceback and
never a silent wait. After the job settles, every worker process still running must answer
a ping (a worker that lost Redis either reconnects or exits; it never stays as a zombie that
consumes nothing). Routes: file -> file (1 MiB chunks, paced reads) and file -> S3 (5 MiB
parts, answered late by the fault proxy).
"""

from __future__ import annotations

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

FAMILY = "redis"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.faults,
    pytest.mark.s3,
    pytest.mark.redis,
    pytest.mark.celery,
]

KINDS = [
    ("file-file", "sigterm", "wait"),
    ("file-s3", "sigkill", "nowait"),
    ("file-file", "sigkill", "wait"),
    ("file-s3", "sigterm", "nowait"),
    ("file-file", "sigterm", "nowait"),
    ("file-s3", "sigkill", "wait"),
]
CASES = count(6, 2)
#: Seconds every live worker has to answer a ping once the job settled.
PING_S = 15


def _newest_job(fleet: Any, since: float) -> Any:
    """The job ``mover copy --wait`` recorded (it prints its id only at the end)."""
    fleet.job("")  # opens the shared job store
    try:
        found = fleet.jobs.list(1)
    except Exception:
        return None
    return found[0] if found and found[0].created >= since else None


@pytest.mark.parametrize("index", range(CASES), ids=case_ids(KINDS, CASES))
def test_redis(
    index: int,
    fault: Fault,
    fault_fleet: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    import time

    fleet = fault_fleet
    route, signal_name, follow = kind_of(KINDS, index, CASES)
    r = rng(FAMILY, index)
    fleet.reset(r.randrange(2**31))
    dest_kind = route.split("-")[1]
    chunk = 5 if dest_kind == "s3" else 1
    size = (
        r.randint(4 * chunk * MiB, 6 * chunk * MiB) if chunk > 1 else r.randint(8 * MiB, 10 * MiB)
    )
    data = r.randbytes(size)
    n = -(-size // (chunk * MiB))
    after = r.randint(1, n - 2) if chunk == 1 else r.randint(0, 1)
    fault.params.update(route=route, signal=signal_name, follow=follow, size=size, chunks=n)
    fault.params["after_chunks"] = after
    src_dir, out_dir = tmp_path / "src", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    (src_dir / "src.bin").write_bytes(data)
    key = f"redis-{index:03d}-{r.randrange(10**6)}.bin"
    dest: Any
    if dest_kind == "s3":
        dest = S3Dest(fleet.client, fleet.bucket, key, f"store:faulty/{key}")
        fleet.proxy.add(Rule("stall", "PUT", r"[?&]partNumber=", times=None, stall_s=1.0))
    else:
        dest = FileDest(out_dir / "copy.bin")
        fleet.pace.set([src_dir], 0.25)
    args = [str(src_dir / "src.bin"), dest.url, "--chunk-size", f"{chunk}MiB"]

    runs = []
    cli = None
    if follow == "wait":
        since = time.time() - 1
        cli = rigs.start(fleet.env, tmp_path, "copy", "-q", *args, "--executor", "celery", "--wait")
        job = wait_until(lambda: _newest_job(fleet, since), 30, 0.05)
        assert job is not None, f"no job was recorded: {cli.result(1).stderr}"
        job_id = job.id
    else:
        job_id = rigs.submit(fleet, tmp_path, *args)
    job = wait_until(lambda: (j := fleet.job(job_id)) and rigs.chunks_done(j) >= after and j, 60)
    if job is not None and job.state not in rigs.FINAL:
        fleet.fleet.redis.restart(hard=signal_name == "sigkill")
        fault.injected = 1
    job = rigs.fleet_outcome(fleet, job_id, tmp_path, fault)
    fleet.pace.off()
    if cli is not None:
        runs.append(cli.result(30))
        if runs[-1].returncode is None:
            fault.problems.append(
                "`mover copy --wait` still waiting 30 s after the job was "
                f"{job.state if job else 'lost'} (killed by the harness)"
            )

    alive = [w for w in fleet.live if w.proc.poll() is None]
    exited = [w.name for w in fleet.live if w.proc.poll() is not None]
    if exited:
        fault.notes.append(f"workers exited after the restart: {', '.join(exited)}")
    answered = wait_until(lambda: {w.name for w in alive} <= fleet.ping(1.0), PING_S, 0.5)
    if not answered:
        silent = sorted({w.name for w in alive} - fleet.ping(2.0))
        if silent:
            fault.problems.append(
                f"worker(s) {', '.join(silent)} still running but not answering a ping "
                f"{PING_S} s after the job settled (zombies)"
            )
            for w in alive:
                if w.name in silent:
                    fleet.replace(w)
    fleet.ensure()

    if not fault.injected:
        fault.outcome = MISSED
    else:
        judge(fault, rigs.verdict_of(job, runs, fault), dest, {"source": sha256_bytes(data)})
    conclude(fault, request.node.nodeid)
