"""Every pair of {file, S3, Swift, HTTP source} on the real servers, at the size edges.

Sources are written and destinations read back with independent clients (boto3, swiftclient,
plain file and HTTP I/O), never with mover itself, and compared by sha256. ``mover check``
must agree for every pair.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import mover
from mover.check import compare
from tests.httpserver import HttpServer

pytestmark = [pytest.mark.integration, pytest.mark.s3, pytest.mark.swift, pytest.mark.slow]

MiB = 1024 * 1024
SIZES = {"0B": 0, "1B": 1, "5MiB+1": 5 * MiB + 1, "100MiB": 100 * MiB}
SOURCES = ("file", "s3", "swift", "http")
DESTINATIONS = ("file", "s3", "swift")


@dataclass
class World:
    """Where each kind keeps the test's objects, and independent readers for each."""

    root: Path
    bucket: str
    container: str
    http: HttpServer
    s3: Any
    swift: Any
    digests: dict[str, str]

    def url(self, kind: str, name: str) -> str:
        return {
            "file": str(self.root / "files" / name),
            "s3": f"s3://{self.bucket}/{name}",
            "swift": f"swift://{self.container}/{name}",
            "http": self.http.url(name),
        }[kind]

    def read(self, kind: str, name: str) -> bytes:
        readers: dict[str, Callable[[], bytes]] = {
            "file": lambda: (self.root / "files" / name).read_bytes(),
            "s3": lambda: self.s3.get_object(Bucket=self.bucket, Key=name)["Body"].read(),
            "swift": lambda: self.swift.get_object(self.container, name)[1],
        }
        return readers[kind]()


@pytest.fixture(scope="module")
def world(s3_server, swift_server, tmp_path_factory) -> Iterator[World]:
    import boto3
    from swiftclient.client import Connection

    root = tmp_path_factory.mktemp("matrix")
    (root / "files").mkdir()
    (root / "served").mkdir()
    s3 = boto3.client("s3", **s3_server.client_kwargs())
    swift = Connection(**swift_server.connection_kwargs())
    bucket = f"matrix-{uuid.uuid4().hex[:10]}"
    container = f"matrix-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    swift.put_container(container)
    env = {
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_DEFAULT_REGION": s3_server.region,
        "AWS_CONFIG_FILE": str(root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        "ST_AUTH": swift_server.auth_url,
        "ST_USER": swift_server.user,
        "ST_KEY": swift_server.key,
    }
    digests: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as mp, HttpServer(root / "served") as http:
        for name, value in env.items():
            mp.setenv(name, value)
        for label, size in SIZES.items():
            data = os.urandom(size)
            digests[label] = hashlib.sha256(data).hexdigest()
            name = f"src-{label}"
            (root / "files" / name).write_bytes(data)
            (root / "served" / name).write_bytes(data)
            s3.put_object(Bucket=bucket, Key=name, Body=data)
            swift.put_object(container, name, data)
        yield World(root, bucket, container, http, s3, swift, digests)
    swift.close()


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("dst", DESTINATIONS)
@pytest.mark.parametrize("src", SOURCES)
def test_pair(world: World, src: str, dst: str, size: str) -> None:
    name = f"to-{dst}-from-{src}-{size}"
    job = mover.copy(
        world.url(src, f"src-{size}"), world.url(dst, name), chunk_size=5 * MiB, streams=4
    )
    assert job.state == "done", job.error
    got = world.read(dst, name)
    assert len(got) == SIZES[size]
    assert hashlib.sha256(got).hexdigest() == world.digests[size]
    result = compare(world.url(src, f"src-{size}"), world.url(dst, name))
    assert result.differences == [] and result.matched == 1
    summary = job.summary()
    if summary["strategies"] == ["server-side"]:
        assert src == dst and summary["bytes_through_mover"] == 0
    else:
        assert summary["bytes_through_mover"] == SIZES[size]
