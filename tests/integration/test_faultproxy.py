"""The fault proxy (tests/faultproxy.py) does what fault tests rely on, against real SeaweedFS
and plain boto3: each fault is seen by the client exactly as injected."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from tests.faultproxy import FaultProxy, Rule

pytestmark = [pytest.mark.integration, pytest.mark.s3]


def _client(s3_server: Any, endpoint: str, retries: int = 0) -> Any:
    import boto3
    from botocore.config import Config

    kwargs = s3_server.client_kwargs()
    kwargs["endpoint_url"] = endpoint
    kwargs["config"] = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": retries + 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=5,
    )
    return boto3.client("s3", **kwargs)


def test_proxy_passes_through_and_injects(s3_server: Any, s3_client: Any, s3_bucket: str) -> None:
    from botocore.exceptions import ClientError

    data = os.urandom(3 * 1024 * 1024 + 17)
    s3_client.put_object(Bucket=s3_bucket, Key="x", Body=data)
    with FaultProxy("127.0.0.1", s3_server.port, seed=3) as proxy:
        client = _client(s3_server, proxy.url)
        # Untouched: the same bytes, signatures verify through the proxy.
        assert client.get_object(Bucket=s3_bucket, Key="x")["Body"].read() == data

        # One flipped byte in a ranged GET body: the client gets wrong bytes and nothing else.
        rule = proxy.add(Rule("flip_response", method="GET", header="Range"))
        got = client.get_object(Bucket=s3_bucket, Key="x", Range="bytes=0-1048575")["Body"].read()
        assert len(got) == 1048576 and got != data[:1048576] and rule.fired == 1
        (fired,) = proxy.fired
        assert got[fired.offset] == data[fired.offset] ^ 0xFF  # type: ignore[index]
        assert (
            client.get_object(Bucket=s3_bucket, Key="x", Range="bytes=0-9")["Body"].read()
            == (data[:10])
        )

        # One flipped byte in a PUT body: the server refuses it (checksum of the body).
        proxy.add(Rule("flip_request", method="PUT"))
        with pytest.raises(ClientError) as info:
            client.put_object(Bucket=s3_bucket, Key="y", Body=data, ChecksumAlgorithm="CRC32C")
        assert info.value.response["Error"]["Code"] in (
            "BadDigest",
            "InvalidDigest",
            "XAmzContentChecksumMismatch",
            "InvalidRequest",
        )

        # A 503 SlowDown is answered by the proxy; the next request goes through.
        proxy.add(Rule("status", method="HEAD", status=503, code="SlowDown"))
        with pytest.raises(ClientError):
            client.head_object(Bucket=s3_bucket, Key="x")
        assert client.head_object(Bucket=s3_bucket, Key="x")["ContentLength"] == len(data)

        # A reset in the middle of a body: the client sees a broken read.
        proxy.add(Rule("reset", method="GET"))
        with pytest.raises(Exception):  # noqa: B017 - botocore/urllib3 raise several kinds
            body = client.get_object(Bucket=s3_bucket, Key="x")["Body"].read()
            assert len(body) == len(data)
            raise AssertionError("not reached: the body was whole")
        assert (
            hashlib.sha256(client.get_object(Bucket=s3_bucket, Key="x")["Body"].read()).hexdigest()
            == hashlib.sha256(data).hexdigest()
        )


def test_seeded_rules_replay(s3_server: Any, s3_client: Any, s3_bucket: str) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="z", Body=os.urandom(100_000))
    offsets = []
    for _ in range(2):
        with FaultProxy("127.0.0.1", s3_server.port, seed=11) as proxy:
            client = _client(s3_server, proxy.url)
            proxy.add(Rule("flip_response", method="GET", times=None, probability=0.5))
            for _ in range(6):
                # Ranged: a whole-object GET carries the stored CRC, which botocore checks.
                client.get_object(Bucket=s3_bucket, Key="z", Range="bytes=0-49999")["Body"].read()
            offsets.append([f.offset for f in proxy.fired])
    assert offsets[0] == offsets[1] and offsets[0]
