"""Smoke tests that prove the real-server fixtures work, one store feature at a time.

They check the features mover's providers depend on (ranged reads, S3 multipart, Swift SLO,
Redis persistence across a restart), so a failure here points at the test servers, not at
mover. They are not tests of mover itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import redis
    from swiftclient.client import Connection

    from tests.servers import RedisServer, SeaweedS3Server, SwiftServer

pytestmark = pytest.mark.integration

#: S3's smallest part size (except the last part): 5 MiB.
S3_MIN_PART_BYTES = 5 * 1024 * 1024
#: Swift's default smallest SLO segment (except the last one): 1 MiB.
SWIFT_MIN_SEGMENT_BYTES = 1024 * 1024


# --- S3 -------------------------------------------------------------------------------------


@pytest.mark.s3
def test_s3_put_get_and_ranged_get(s3_client: Any, s3_bucket: str) -> None:
    body = os.urandom(100_000)
    s3_client.put_object(Bucket=s3_bucket, Key="dir/object.bin", Body=body)

    assert s3_client.get_object(Bucket=s3_bucket, Key="dir/object.bin")["Body"].read() == body
    ranged = s3_client.get_object(Bucket=s3_bucket, Key="dir/object.bin", Range="bytes=10-19")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["ContentRange"] == f"bytes 10-19/{len(body)}"
    assert ranged["Body"].read() == body[10:20]


@pytest.mark.s3
def test_s3_multipart_upload_of_two_parts(s3_client: Any, s3_bucket: str) -> None:
    parts_data = [os.urandom(S3_MIN_PART_BYTES), os.urandom(S3_MIN_PART_BYTES)]
    upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="big.bin")
    parts = []
    for number, data in enumerate(parts_data, start=1):
        answer = s3_client.upload_part(
            Bucket=s3_bucket,
            Key="big.bin",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=data,
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    s3_client.complete_multipart_upload(
        Bucket=s3_bucket,
        Key="big.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )

    whole = b"".join(parts_data)
    head = s3_client.head_object(Bucket=s3_bucket, Key="big.bin")
    assert head["ContentLength"] == len(whole)
    assert head["ETag"].strip('"').endswith("-2")
    got = s3_client.get_object(Bucket=s3_bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(whole).digest()
    # A range across the part boundary.
    start = S3_MIN_PART_BYTES - 5
    ranged = s3_client.get_object(
        Bucket=s3_bucket, Key="big.bin", Range=f"bytes={start}-{start + 9}"
    )
    assert ranged["Body"].read() == whole[start : start + 10]


@pytest.mark.s3
def test_s3_missing_bucket_and_wrong_secret_are_refused(
    s3_server: SeaweedS3Server, s3_client: Any
) -> None:
    """The server must behave like AWS where mover's error handling depends on it."""
    botocore_exceptions = pytest.importorskip("botocore.exceptions")
    boto3 = pytest.importorskip("boto3")

    with pytest.raises(botocore_exceptions.ClientError) as missing:
        s3_client.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"x")
    assert missing.value.response["Error"]["Code"] == "NoSuchBucket"

    wrong = boto3.client("s3", **{**s3_server.client_kwargs(), "aws_secret_access_key": "bad"})
    with pytest.raises(botocore_exceptions.ClientError) as denied:
        wrong.list_buckets()
    assert denied.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


# --- Swift ----------------------------------------------------------------------------------


@pytest.mark.swift
def test_swift_put_get_and_ranged_get(swift_connection: Connection, swift_container: str) -> None:
    body = os.urandom(100_000)
    swift_connection.put_object(swift_container, "dir/object.bin", body)

    _, got = swift_connection.get_object(swift_container, "dir/object.bin")
    assert got == body
    headers, ranged = swift_connection.get_object(
        swift_container, "dir/object.bin", headers={"Range": "bytes=10-19"}
    )
    assert headers["content-range"] == f"bytes 10-19/{len(body)}"
    assert ranged == body[10:20]


@pytest.mark.swift
def test_swift_static_large_object_of_two_segments(
    swift_server: SwiftServer, swift_connection: Connection, swift_container: str
) -> None:
    segments = [os.urandom(SWIFT_MIN_SEGMENT_BYTES), os.urandom(1000)]
    manifest = []
    for index, data in enumerate(segments):
        path = f"big.bin/segments/{index:08d}"
        etag = swift_connection.put_object(swift_container, path, data)
        manifest.append(
            {"path": f"/{swift_container}/{path}", "etag": etag, "size_bytes": len(data)}
        )
    swift_connection.put_object(
        swift_container,
        "big.bin",
        json.dumps(manifest),
        query_string="multipart-manifest=put",
    )

    whole = b"".join(segments)
    headers = swift_connection.head_object(swift_container, "big.bin")
    assert headers["x-static-large-object"] == "True"
    assert int(headers["content-length"]) == len(whole)
    _, got = swift_connection.get_object(swift_container, "big.bin")
    assert got == whole
    # A range across the segment boundary.
    start = SWIFT_MIN_SEGMENT_BYTES - 5
    _, ranged = swift_connection.get_object(
        swift_container, "big.bin", headers={"Range": f"bytes={start}-{start + 9}"}
    )
    assert ranged == whole[start : start + 10]
    # The data really lives on the object server's device.
    assert any(swift_server.data_dir.rglob("*.data"))


@pytest.mark.swift
def test_swift_wrong_key_is_refused(swift_server: SwiftServer) -> None:
    client = pytest.importorskip("swiftclient.client")
    wrong = client.Connection(**{**swift_server.connection_kwargs(), "key": "bad"}, retries=0)
    with pytest.raises(client.ClientException) as denied:
        wrong.get_auth()
    assert denied.value.http_status == 401


# --- Redis ----------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_set_get(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    assert redis_server.port != 6379  # private, not the machine's shared Redis
    redis_client.set("greeting", b"hello")
    assert redis_client.get("greeting") == b"hello"


@pytest.mark.redis
@pytest.mark.parametrize("hard", [False, True], ids=["graceful", "killed"])
def test_redis_restart_keeps_appendonly_data(
    redis_server: RedisServer, redis_client: redis.Redis, hard: bool
) -> None:
    port = redis_server.port
    redis_client.set("survivor", b"still here")

    redis_server.restart(hard=hard)

    assert redis_server.port == port
    redis_lib = pytest.importorskip("redis")
    with redis_lib.Redis.from_url(redis_server.url) as fresh:
        assert fresh.get("survivor") == b"still here"
