"""What "verified" means for sources on the fleet: real ``mover worker`` processes (prefork)
read an S3 object through the fault proxy, as a configured store whose ``endpoint_url`` is the
proxy (workers resolve it from their own configuration).

A byte flipped in a GET body is caught by the worker (the chunk is retried by Celery, or the
object is read again at commit) and the copy equals boto3's own GET of the object; a source
replaced or rewritten during the job fails it as "source changed", leaving nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faultproxy import FaultProxy, Rule
from tests.integration.test_fleet import Fleet, fleet, sha256, temp_files, wait_final
from tests.integration.test_source_checks import (
    ChangeSource,
    change_before_get,
    plain_client,
    put_multipart,
    put_slo,
    sha256_s3,
    sha256_swift,
    uploads,
)

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.celery, pytest.mark.s3]

MiB = 1 << 20
#: Fixtures of tests/integration/test_fleet.py this module uses (workers of its own).
FIXTURES = (fleet,)


@pytest.fixture(scope="module")
def proxied_bucket(fleet: Fleet) -> Iterator[tuple[FaultProxy, str]]:
    """Store ``viaproxy`` (a bucket of its own, through a fault proxy) in the fleet's
    configuration, and a worker started after it, so that it consumes the store's queue
    (``mover.store.viaproxy``) too; both stopped at the end."""
    if fleet.s3 is None:
        pytest.skip("no S3 server")
    bucket = f"viaproxy-{os.getpid()}"
    client = plain_client(fleet.s3)
    client.create_bucket(Bucket=bucket)
    config = Path(fleet.env["MOVER_CONFIG"])
    with FaultProxy("127.0.0.1", fleet.s3.port, seed=13) as proxy:
        config.write_text(
            f'[stores.viaproxy]\nurl = "s3://{bucket}/"\nendpoint_url = "{proxy.url}"\n'
        )
        worker = fleet.start_worker("proxied")
        try:
            fleet.wait_ready(worker)
            yield proxy, bucket
        finally:
            fleet.stop(worker)
            fleet.workers.remove(worker)
            config.unlink(missing_ok=True)


@pytest.fixture
def proxied(proxied_bucket: tuple[FaultProxy, str]) -> FaultProxy:
    proxy, _ = proxied_bucket
    proxy.clear()
    return proxy


@pytest.fixture
def s3_bucket(proxied_bucket: tuple[FaultProxy, str], fleet: Fleet) -> str:
    """The proxied store's bucket, emptied before each test."""
    _, bucket = proxied_bucket
    assert fleet.s3 is not None
    client = plain_client(fleet.s3)
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents") or []:
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    return bucket


def run(fleet: Fleet, source: str, destination: str, chunk: str = "5MiB") -> Any:
    """``mover copy --executor celery --detach``; the job's final record."""
    out = fleet.mover(
        "copy", source, destination, "--chunk-size", chunk, "--executor", "celery", "--detach"
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    assert re.fullmatch(r"\w+", job_id), out.stdout
    return wait_final(fleet.jobs(), job_id, 120, poll_s=0.2)


@pytest.mark.parametrize("layout", ["single", "multipart"])
def test_fleet_flipped_byte_in_a_get_is_caught(
    fleet: Fleet, proxied: FaultProxy, s3_bucket: str, tmp_path: Path, layout: str
) -> None:
    assert fleet.s3 is not None
    client = plain_client(fleet.s3)
    data = os.urandom(12 * MiB + 7)
    if layout == "single":
        data = data[: 4 * MiB]
        client.put_object(Bucket=s3_bucket, Key="obj", Body=data)  # md5 ETag, one chunk
    else:
        put_multipart(client, s3_bucket, "obj", data, [5 * MiB, 5 * MiB, 2 * MiB + 7])
    rule = proxied.add(Rule("flip_response", method="GET", header="Range"))
    dst = tmp_path / "copy.bin"

    job = run(fleet, "store:viaproxy/obj", str(dst))

    assert job.state == "done", job.error
    assert rule.fired == 1
    assert sha256(dst) == sha256_s3(client, s3_bucket, "obj")
    assert sha256(dst) == hashlib.sha256(data).hexdigest()
    assert not temp_files(tmp_path)
    logs = "".join(w.text() for w in fleet.workers)
    if layout == "single":  # the chunk failed its check and Celery ran it again
        assert re.search(rf"job {job.id} object 0 chunk 0: retry 1 in .*md5", logs), logs[-3000:]
    else:  # the commit found the ETag wrong and read the object again
        assert "reading the object again" in logs


def test_fleet_s3_source_replaced_mid_copy_fails_clean(
    fleet: Fleet, proxied: FaultProxy, s3_bucket: str, tmp_path: Path
) -> None:
    """The object is replaced before the fourth ranged GET reaches the server (the first
    three were answered from the old version); the reads after carry If-Match with its ETag
    and get 412, so the job fails instead of mixing two versions."""
    assert fleet.s3 is not None
    client = plain_client(fleet.s3)
    put_multipart(client, s3_bucket, "obj", os.urandom(50 * MiB), [5 * MiB] * 10)
    newer = os.urandom(MiB)
    change = change_before_get(
        proxied, 3, lambda: client.put_object(Bucket=s3_bucket, Key="obj", Body=newer)
    )
    dst = tmp_path / "copy.bin"

    job = run(fleet, "store:viaproxy/obj", str(dst))

    assert change.done.is_set()
    assert job.state == "failed"
    assert "source changed during the copy" in (job.error or ""), job.error
    assert not dst.exists() and not temp_files(tmp_path)


def test_fleet_file_rewritten_in_place_mid_copy_fails_clean(
    fleet: Fleet, proxied: FaultProxy, s3_bucket: str, tmp_path: Path
) -> None:
    """File to S3 on the workers: the second UploadPart waits in the proxy while the file is
    rewritten in place (as ``dd conv=notrunc``); the commit compares the file's version and
    refuses."""
    assert fleet.s3 is not None
    client = plain_client(fleet.s3)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(20 * MiB))

    def rewrite() -> None:
        with open(src, "r+b") as f:
            f.seek(12 * MiB)
            f.write(os.urandom(MiB))

    change = proxied.add(ChangeSource("stall", method="PUT", path=r"partNumber=", change=rewrite))

    job = run(fleet, str(src), "store:viaproxy/copy.bin")

    assert change.done.is_set()
    assert job.state == "failed"
    assert "source changed during the copy" in (job.error or ""), job.error
    assert not client.list_objects_v2(Bucket=s3_bucket).get("Contents")
    assert uploads(client, s3_bucket) == []


@pytest.mark.swift
def test_fleet_flipped_byte_in_a_swift_slo_get_is_caught(
    fleet: Fleet, proxied_bucket: tuple[FaultProxy, str], tmp_path: Path
) -> None:
    """An SLO read by the workers through a fault proxy in front of Swift (a configured store
    whose storage_url is the proxy): the segment whose bytes were flipped fails its md5 from
    the manifest, Celery runs the chunk again, and the copy equals swiftclient's own GET."""
    if fleet.swift is None:
        pytest.skip("no Swift server")
    from urllib.parse import urlsplit

    from swiftclient.client import Connection

    connection = Connection(**fleet.swift.connection_kwargs())
    container = f"fleet-slo-{os.getpid()}"
    connection.put_container(container)
    data = os.urandom(9 * MiB + 1)
    put_slo(connection, container, "obj", data, 2 * MiB)
    storage_url, _ = connection.get_auth()
    config = Path(fleet.env["MOVER_CONFIG"])
    before = config.read_text()
    with FaultProxy("127.0.0.1", fleet.swift.port, seed=17) as proxy:
        config.write_text(
            before + f'[stores.swproxy]\nurl = "swift://{container}/"\n'
            f'storage_url = "{proxy.url}{urlsplit(storage_url).path}"\n'
        )
        try:
            rule = proxy.add(Rule("flip_response", method="GET", header="Range"))
            dst = tmp_path / "copy.bin"
            job = run(fleet, "store:swproxy/obj", str(dst), chunk="4MiB")
        finally:
            config.write_text(before)

    assert job.state == "done", job.error
    assert rule.fired == 1
    assert sha256(dst) == sha256_swift(connection, container, "obj")
    assert sha256(dst) == hashlib.sha256(data).hexdigest()
    logs = "".join(w.text() for w in fleet.workers)
    assert re.search(rf"job {job.id} object 0 chunk \d+: retry 1 in .*segments", logs), logs[-3000:]
