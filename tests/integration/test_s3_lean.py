"""The S3 store's lean engine (awscrt, mover/providers/s3_crt.py) against a real SeaweedFS.

Small requests go through awscrt; what the store promised on botocore must hold on it too:
the server checks the crc32c mover sends (a wrong one is refused, nothing stored), reads are
pinned to the version the job was prepared from, and a command that moves one small object
does not import boto3 at all (issue 10 item 4). Every result is read back with plain boto3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mover.digests import digest
from mover.errors import SourceChanged, VerificationFailed
from mover.providers.s3 import S3Provider
from mover.resolve import clear_cache, open_location

if TYPE_CHECKING:
    from tests.servers import SeaweedS3Server

pytestmark = [pytest.mark.integration, pytest.mark.s3]

_PROBE = """
import json, sys
from mover.cli.main import main
sys.argv = ["mover", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.fixture
def s3_env(
    s3_server: SeaweedS3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The server in the environment (as any AWS tool reads it), no profile files."""
    for name in ("AWS_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_ENDPOINT_URL_S3", "MOVER_S3_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    env = {
        **s3_server.env(),
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "MOVER_STATE_DIR": str(tmp_path / "state"),
        "MOVER_CONFIG": str(tmp_path / "no-config.toml"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clear_cache()
    yield env
    clear_cache()


def _copy_in_fresh_process(env: dict[str, str], *argv: str) -> set[str]:
    """Run ``mover ARGV`` in a new interpreter; the top-level modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _store(bucket: str) -> S3Provider:
    store, _ = open_location(f"s3://{bucket}/")
    assert isinstance(store, S3Provider)
    return store


def test_one_byte_copy_imports_no_boto3(
    s3_env: dict[str, str], s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    source = tmp_path / "one.bin"
    source.write_bytes(b"z")
    modules = _copy_in_fresh_process(s3_env, "copy", str(source), f"s3://{s3_bucket}/one.bin")
    assert s3_client.get_object(Bucket=s3_bucket, Key="one.bin")["Body"].read() == b"z"
    assert not modules & {"boto3", "botocore", "celery", "kombu", "redis"}, sorted(modules)
    assert "awscrt" in modules


def test_botocore_engine_by_environment(
    s3_env: dict[str, str], s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """``MOVER_S3_ENGINE=botocore`` keeps every request on botocore (the fallback)."""
    source = tmp_path / "one.bin"
    source.write_bytes(b"y")
    env = {**s3_env, "MOVER_S3_ENGINE": "botocore"}
    modules = _copy_in_fresh_process(env, "copy", str(source), f"s3://{s3_bucket}/b.bin")
    assert s3_client.get_object(Bucket=s3_bucket, Key="b.bin")["Body"].read() == b"y"
    assert "botocore" in modules


def test_put_with_a_wrong_checksum_is_refused_by_the_server(
    s3_env: dict[str, str], s3_bucket: str, s3_client: Any
) -> None:
    store = _store(s3_bucket)
    data = memoryview(b"the bytes mover read")
    wrong = digest("crc32c", b"other bytes")
    with pytest.raises(VerificationFailed) as refused:
        store.put("bad.bin", data, wrong)
    assert refused.value.retryable
    listed = s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents") or []
    assert [o["Key"] for o in listed] == []
    info = store.put("good.bin", data, digest("crc32c", data))
    head = s3_client.head_object(Bucket=s3_bucket, Key="good.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data) and info.etag == head["ETag"].strip('"')
    assert head.get("ChecksumCRC32C") in (None, digest("crc32c", data).b64)


def test_small_reads_land_in_the_buffer_and_hold_the_version(
    s3_env: dict[str, str], s3_bucket: str, s3_client: Any
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"0123456789")
    store = _store(s3_bucket)
    info = store.stat("k")
    assert info.size == 10 and info.etag == s3_client.head_object(Bucket=s3_bucket, Key="k")[
        "ETag"
    ].strip('"')
    buf = bytearray(4)
    assert store.read_version_into("k", info.etag or "", 3, memoryview(buf)) == 4
    assert bytes(buf) == b"3456"
    assert store.read_into("k", 10, memoryview(bytearray(4))) == 0  # past the end
    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"replaced!!")
    with pytest.raises(SourceChanged):
        store.read_version_into("k", info.etag or "", 0, memoryview(bytearray(4)))
