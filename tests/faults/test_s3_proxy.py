"""S3 faults: a fault proxy (tests/faultproxy.py) between mover and SeaweedFS answers 503
SlowDown or 500, resets connections in the middle of a body, stalls answers past the client's
read time-out, or flips one byte of a GET body or of a PUT body.

mover reaches S3 through a configured store whose ``endpoint_url`` is the proxy; the harness
reads and writes with its own boto3 client on the real endpoint. Uploads are file -> S3 (5 MiB
parts, so 2-4 parts); downloads are S3 -> file from an object written in one PUT or as a
multipart upload (ETag ``-N``), in chunks of 1-4 MiB. Each fault picks which request it hits
(a part, the create or complete of the upload, a HEAD, a ranged GET), how many times, and
where in the body, from the fault's seeded generator.
"""

from __future__ import annotations

import re
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
    case_ids,
    conclude,
    count,
    judge,
    kind_of,
    rng,
    sha256_bytes,
)

FAMILY = "s3_proxy"
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults, pytest.mark.s3]

KINDS = [
    (direction, kind)
    for direction in ("upload", "download")
    for kind in ("slowdown", "error500", "reset", "stall", "flip")
]
CASES = count(40, 10)
#: The store's read time-out: a stall longer than this makes the client give up and retry.
READ_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def bucket(s3_server: Any) -> Iterator[tuple[Any, str]]:
    import boto3

    client = boto3.client("s3", **s3_server.client_kwargs())
    name = "faults-s3proxy"
    client.create_bucket(Bucket=name)
    yield client, name


def _upload_rule(r: Any, kind: str, bucket: str, key: str, parts: int, fault: Fault) -> Rule:
    """The rule of an upload fault: which request (part, create, complete, HEAD) and how."""
    target = "part" if kind == "flip" else r.choice(["part", "part", "part", "create", "complete"])
    if kind == "reset":
        target = r.choice(["part", "part", "complete"])
    patterns = {
        "part": ("PUT", r"[?&]partNumber="),
        "create": ("POST", r"\?uploads"),
        "complete": ("POST", r"[?&]uploadId="),
    }
    method, path = patterns[target]
    after = r.randrange(parts) if target == "part" else 0
    times = r.choice([1, 1, 2, 3]) if kind in ("slowdown", "error500") else r.choice([1, 1, 2])
    fault.params.update(target=target, after=after, times=times)
    if kind == "slowdown":
        return Rule("status", method, path, status=503, code="SlowDown", after=after, times=times)
    if kind == "error500":
        return Rule(
            "status", method, path, status=500, code="InternalError", after=after, times=times
        )
    if kind == "reset":
        return Rule("reset_request", method, path, after=after, times=times)
    if kind == "stall":
        stall = round(r.uniform(0.5, READ_TIMEOUT_S + 1.5), 2)
        fault.params["stall_s"] = stall
        return Rule("stall", method, path, after=after, times=times, stall_s=stall)
    return Rule("flip_request", method, path, after=after, times=times)


def _download_rule(r: Any, kind: str, key: str, chunks: int, fault: Fault) -> Rule:
    """The rule of a download fault: a ranged GET (or the HEAD that sizes the source)."""
    target = "get"
    if kind in ("slowdown", "error500"):
        target = r.choice(["get", "get", "get", "head"])
    method, path, header = (
        ("GET", re.escape(key), "Range")
        if target == "get"
        else (
            "HEAD",
            re.escape(key) + "$",
            None,
        )
    )
    after = r.randrange(chunks) if target == "get" else 0
    times = r.choice([1, 1, 2, 3]) if kind in ("slowdown", "error500") else r.choice([1, 1, 2])
    fault.params.update(target=target, after=after, times=times)
    if kind == "slowdown":
        return Rule("status", method, path, header, after, times, status=503, code="SlowDown")
    if kind == "error500":
        return Rule("status", method, path, header, after, times, status=500, code="InternalError")
    if kind == "reset":
        return Rule("reset", method, path, header, after, times)
    if kind == "stall":
        stall = round(r.uniform(0.5, READ_TIMEOUT_S + 1.5), 2)
        fault.params["stall_s"] = stall
        return Rule("stall", method, path, header, after, times, stall_s=stall)
    return Rule("flip_response", method, path, header, after, times)


@pytest.mark.parametrize("index", range(CASES), ids=case_ids(KINDS, CASES))
def test_s3_proxy(
    index: int,
    fault: Fault,
    s3_server: Any,
    bucket: tuple[Any, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    client, name = bucket
    direction, kind = kind_of(KINDS, index, CASES)
    r = rng(FAMILY, index)
    streams = r.choice([1, 2, 4])
    fault.params.update(direction=direction, kind=kind, streams=streams)
    with FaultProxy("127.0.0.1", s3_server.port, seed=r.randrange(2**31)) as proxy:
        rigs.write_config(
            tmp_path,
            {
                "faulty": {
                    "url": f"s3://{name}/",
                    "endpoint_url": proxy.url,
                    "read_timeout": READ_TIMEOUT_S,
                    "connect_timeout": READ_TIMEOUT_S,
                }
            },
        )
        env = rigs.mover_env(tmp_path, **s3_server.env())
        key = f"{direction}-{index:03d}-{r.randrange(10**6)}.bin"
        if direction == "upload":
            size = r.randint(10 * MiB, 20 * MiB - 1)
            data = r.randbytes(size)
            src = tmp_path / "src.bin"
            src.write_bytes(data)
            parts = -(-size // (5 * MiB))
            fault.params.update(size=size, parts=parts)
            rule = proxy.add(_upload_rule(r, kind, name, key, parts, fault))
            dest: Any = S3Dest(client, name, key, f"store:faulty/{key}")
            args = [str(src), dest.url, "--chunk-size", "5MiB"]
        else:
            size = r.randint(6 * MiB, 14 * MiB)
            data = r.randbytes(size)
            multipart = r.random() < 0.5
            rigs.put_source(client, name, key, data, multipart)
            chunk = r.choice([1, 2, 4])
            chunks = -(-size // (chunk * MiB))
            fault.params.update(size=size, multipart=multipart, chunk_mib=chunk)
            rule = proxy.add(_download_rule(r, kind, key, chunks, fault))
            dest = FileDest(tmp_path / "out" / "copy.bin")
            dest.path.parent.mkdir()
            args = [f"store:faulty/{key}", str(dest.path), "--chunk-size", f"{chunk}MiB"]
        result = rigs.run(env, tmp_path, "copy", "-q", *args, "--streams", str(streams))
        fault.injected = rule.fired
        offsets = [f.offset for f in proxy.fired if f.offset is not None]
        if offsets:
            fault.params["at"] = offsets
    if not fault.injected:
        fault.outcome = MISSED
    else:
        job = rigs.embedded_job(tmp_path)
        judge(fault, rigs.verdict_of(job, [result], fault), dest, {"source": sha256_bytes(data)})
    conclude(fault, request.node.nodeid)
