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
CASES = count(30, 10)
#: Faults a client is expected to ride out by retrying.
RETRYABLE = ("slowdown", "error500", "reset", "stall")
#: The store's read time-out: a stall longer than this makes the client give up and retry.
READ_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def bucket(s3_server: Any) -> Iterator[tuple[Any, str]]:
    import boto3

    client = boto3.client("s3", **s3_server.client_kwargs())
    with rigs.bucket(client, "faults-s3proxy") as name:
        yield client, name


#: Requests of an upload a fault may hit: (method, path pattern, header).
UPLOAD_TARGETS = {
    "part": ("PUT", r"[?&]partNumber=", None),
    "create": ("POST", r"\?uploads", None),
    "complete": ("POST", r"[?&]uploadId=", None),
}


def _targets(direction: str, kind: str, key: str) -> dict[str, tuple[str, str, str | None]]:
    """The requests a fault of this kind may hit, with their weights given by repetition."""
    if direction == "download":
        get = {"get": ("GET", re.escape(key), "Range")}
        if kind in ("slowdown", "error500"):
            return {**get, "head": ("HEAD", re.escape(key) + "$", None)}
        return get
    if kind == "flip":
        return {"part": UPLOAD_TARGETS["part"]}
    if kind == "reset":
        return {k: UPLOAD_TARGETS[k] for k in ("part", "complete")}
    return UPLOAD_TARGETS


def _rule(r: Any, direction: str, kind: str, key: str, requests: int) -> tuple[Rule, str]:
    """One fault: its rule for the proxy and a description for the record.

    Which request (a part, the create or complete of an upload, a ranged GET, a HEAD), how
    many matching requests go through first, how many times it fires, how long a stall is.
    """
    targets = _targets(direction, kind, key)
    names = sorted(targets)
    weights = [3 if t in ("part", "get") else 1 for t in names]
    target = r.choices(names, weights)[0]
    method, path, header = targets[target]
    after = r.randrange(requests) if target in ("part", "get") else 0
    times = r.choice([1, 1, 2, 3]) if kind in ("slowdown", "error500") else r.choice([1, 1, 2])
    text = f"{kind} on {target} after {after} x{times}"
    base = {"method": method, "path": path, "header": header, "after": after, "times": times}
    if kind == "slowdown":
        return Rule("status", status=503, code="SlowDown", **base), text
    if kind == "error500":
        return Rule("status", status=500, code="InternalError", **base), text
    if kind == "reset":
        action = "reset" if direction == "download" else "reset_request"
        return Rule(action, **base), text
    if kind == "stall":
        stall = round(r.uniform(0.5, READ_TIMEOUT_S + 1.5), 2)
        return Rule("stall", stall_s=stall, **base), f"{text} {stall} s"
    action = "flip_response" if direction == "download" else "flip_request"
    return Rule(action, **base), text


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
            requests = parts
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
            requests = chunks
            dest = FileDest(tmp_path / "out" / "copy.bin")
            dest.path.parent.mkdir()
            args = [f"store:faulty/{key}", str(dest.path), "--chunk-size", f"{chunk}MiB"]
        # A second fault of another kind in the same job, half of the time (never with a
        # flip, whose effect must stay its own).
        kinds = [kind]
        if kind != "flip" and r.random() < 0.5:
            kinds.append(
                r.choice([k for k in ("slowdown", "error500", "reset", "stall") if k != kind])
            )
        rules = []
        for k in kinds:
            rule, text = _rule(r, direction, k, key, requests)
            rules.append(proxy.add(rule))
            fault.params.setdefault("faults", []).append(text)
        result = rigs.run(env, tmp_path, "copy", "-q", *args, "--streams", str(streams))
        fault.injected = sum(rule.fired for rule in rules)
        fault.params["fired"] = [rule.fired for rule in rules]
        offsets = [f.offset for f in proxy.fired if f.offset is not None]
        if offsets:
            fault.params["at"] = offsets
    if not fault.injected:
        fault.outcome = MISSED
    else:
        job = rigs.embedded_job(tmp_path)
        judge(fault, rigs.verdict_of(job, [result], fault), dest, {"source": sha256_bytes(data)})
    conclude(fault, request.node.nodeid)
