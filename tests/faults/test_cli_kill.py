"""``mover copy`` itself killed with SIGKILL, then ``mover resume``: the resumed job must end
done and identical, with nothing of the killed run left behind.

Moments: as soon as the object is planned (its temporary file or upload exists), after a
chosen number of chunks, or during the commit: the file's ``fdatasync`` (paced to take a
second), or S3's CompleteMultipartUpload held by the fault proxy before the server sees it
(``hold``) or after the server completed it, its answer not yet delivered (``stall``).
Routes: file -> file, file -> S3, S3 -> file, file -> Swift. Between the kill and the resume
no partial object may be visible at the destination.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faultproxy import FaultProxy, Rule
from tests.faults import rigs
from tests.faults.harness import (
    MISSED,
    Fault,
    FileDest,
    MiB,
    S3Dest,
    SwiftDest,
    case_ids,
    conclude,
    count,
    judge,
    kind_of,
    rng,
    sha256_bytes,
    wait_until,
)

FAMILY = "cli_kill"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.faults,
    pytest.mark.s3,
    pytest.mark.swift,
]

KINDS = [
    ("file-file", "start"),
    ("file-file", "mid"),
    ("file-file", "commit"),
    ("file-s3", "start"),
    ("file-s3", "mid"),
    ("file-s3", "commit"),
    ("s3-file", "mid"),
    ("s3-file", "commit"),
    ("file-swift", "start"),
    ("file-swift", "mid"),
]
CASES = count(10, 4)
PACE_S = 0.08
#: How long a paced commit (fdatasync) or a held CompleteMultipartUpload lasts.
COMMIT_S = 1.5


@pytest.fixture(scope="module")
def stores(s3_server: Any, swift_server: Any) -> Iterator[dict[str, Any]]:
    import boto3
    from swiftclient.client import Connection

    client = boto3.client("s3", **s3_server.client_kwargs())
    conn = Connection(**swift_server.connection_kwargs())
    with rigs.bucket(client, "faults-cli"), rigs.container(conn, "faults-cli"):
        yield {"s3": client, "swift": conn}
    conn.close()


def _moment_reached(moment: str, after: int, proxy: FaultProxy) -> Any:
    """A predicate on the job record (and the proxy) that is true at the chosen moment."""

    def reached(job: Any) -> bool:
        if job is None or not job.items:
            return False
        if moment == "start":
            return job.items[0].plan is not None
        if moment == "mid":
            return rigs.chunks_done(job) >= after
        if proxy.fired:
            return True  # the commit request is held or stalled at the proxy
        return rigs.item_state(job) == "committing"

    return reached


@pytest.mark.parametrize("index", range(CASES), ids=case_ids(KINDS, CASES))
def test_cli_kill(
    index: int,
    fault: Fault,
    s3_server: Any,
    swift_server: Any,
    stores: dict[str, Any],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    route, moment = kind_of(KINDS, index, CASES)
    r = rng(FAMILY, index)
    source_kind, dest_kind = route.split("-")
    chunk = 5 if dest_kind == "s3" else 1
    size = r.randint(3 * chunk * MiB, 5 * chunk * MiB - 1)
    data = r.randbytes(size)
    n = -(-size // (chunk * MiB))
    after = r.randint(1, n - 2)
    streams = r.choice([1, 2])
    fault.params.update(route=route, moment=moment, size=size, chunk_mib=chunk, streams=streams)
    if moment == "mid":
        fault.params["after_chunks"] = after
    src_dir, out_dir = tmp_path / "src", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    key = f"cli-{index:03d}-{r.randrange(10**6)}.bin"
    with FaultProxy("127.0.0.1", s3_server.port, seed=r.randrange(2**31)) as proxy:
        rigs.write_config(
            tmp_path,
            {"faulty": {"url": "s3://faults-cli/", "endpoint_url": proxy.url}},
        )
        pace = rigs.Pace(tmp_path / "pace.json")
        env = rigs.mover_env(
            tmp_path,
            pace,
            **s3_server.env(),
            ST_AUTH=swift_server.auth_url,
            ST_USER=swift_server.user,
            ST_KEY=swift_server.key,
        )
        if source_kind == "s3":
            stores["s3"].put_object(Bucket="faults-cli", Key=key, Body=data)
            source = f"store:faulty/{key}"
            paced = [out_dir]
        else:
            (src_dir / "src.bin").write_bytes(data)
            source = str(src_dir / "src.bin")
            paced = [src_dir, out_dir]
        pace.set(paced, PACE_S, COMMIT_S if moment == "commit" else PACE_S)
        dest: Any
        if dest_kind == "s3":
            dest = S3Dest(stores["s3"], "faults-cli", key, f"store:faulty/{key}")
            if moment == "commit":
                action = r.choice(["hold", "stall"])
                fault.params["complete"] = action
                proxy.add(Rule(action, "POST", r"[?&]uploadId=", stall_s=COMMIT_S))
        elif dest_kind == "swift":
            dest = SwiftDest(stores["swift"], "faults-cli", key, f"swift://faults-cli/{key}")
        else:
            dest = FileDest(out_dir / "copy.bin")
        args = [source, dest.url, "--chunk-size", f"{chunk}MiB", "--streams", str(streams)]

        cli = rigs.start(env, tmp_path, "copy", "-q", *args)
        reached = _moment_reached(moment, after, proxy)
        job = wait_until(lambda: (j := rigs.embedded_job(tmp_path)) and reached(j) and j, 60)
        if job is not None and cli.alive():
            cli.kill()
            fault.injected = 1
        else:
            cli.result(60)
        pace.off()
        job = rigs.embedded_job(tmp_path)
        if not fault.injected or job is None or job.state == "done":
            fault.outcome = MISSED
            conclude(fault, request.node.nodeid)
            return
        fault.params["killed_in"] = f"{job.state}/{rigs.item_state(job)}"
        versions = {"source": sha256_bytes(data)}
        visible = dest.sha256()
        if visible is not None and visible not in versions.values():
            fault.problems.append("after the kill, a partial object is visible at the destination")
        resumed = rigs.run(env, tmp_path, "resume", job.id, "-q", timeout_s=120)
        job = rigs.embedded_job(tmp_path, job.id)
        judge(fault, rigs.verdict_of(job, [resumed], fault), dest, versions)
    conclude(fault, request.node.nodeid)
